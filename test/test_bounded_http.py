"""The bounded transport against a server that misbehaves on purpose:
trickled answers end at the deadline, bodies stop at their cap (gzip
included), redirects are refused."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from typing import Callable, Iterator

import pytest
import requests

from binance_exporter.binance.bounded_http import AnswerRefused, BoundedAdapter, RequestLimits

Script = Callable[[socket.socket, threading.Event], None]


class ScriptedServer:
    """Answers every connection on a loopback port by running ``script``
    on its socket; counts the requests it saw."""

    def __init__(self, script: Script):
        self.script = script
        self.requests = 0
        self.stopped = threading.Event()
        self.client_gone = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                if conn.recv(65536):
                    self.requests += 1
                    self.script(conn, self.stopped)
            except OSError:
                self.client_gone.set()

    def stop(self) -> None:
        self.stopped.set()
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def get(url: str, seconds: float = 30.0, max_bytes: int = 1 << 20) -> requests.Response:
    session = requests.Session()
    transport = BoundedAdapter()
    session.mount("http://", transport)
    transport.limits = RequestLimits(time.monotonic() + seconds, max_bytes)
    try:
        return session.get(url + "/api/v3/depth", timeout=seconds)
    finally:
        session.close()


def answer(head: str, body: bytes = b"") -> Script:
    def script(conn: socket.socket, _stopped: threading.Event) -> None:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)

    return script


def trickle(data: bytes) -> Script:
    """Sends ``data`` a byte at a time, 20 a second: never idle long enough
    for a per-read timeout."""

    def script(conn: socket.socket, stopped: threading.Event) -> None:
        for byte in data:
            if stopped.wait(0.05):
                return
            conn.sendall(bytes([byte]))

    return script


HEAD_200 = "HTTP/1.1 200 OK\nContent-Type: application/json\n"


def test_a_trickled_body_ends_at_the_whole_request_deadline(serve):
    body = b'{"bids": [], "asks": []}' * 100  # 2,400 bytes: two minutes at 20 bytes/s
    server = serve(lambda conn, stopped: (answer(HEAD_200 + f"Content-Length: {len(body)}\n")(conn, stopped),
                                          trickle(body)(conn, stopped)))
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        get(server.url, seconds=0.5)
    assert time.monotonic() - started < 60  # the trickle alone takes 120 s
    assert server.client_gone.wait(10)


def test_trickled_headers_end_at_the_whole_request_deadline(serve):
    server = serve(trickle(b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 5000 + b"\r\n\r\n"))
    with pytest.raises(requests.Timeout):
        get(server.url, seconds=0.5)


def test_an_endless_chunked_body_is_refused_at_the_cap(serve):
    def endless(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"[" + b"1," * 30000
        while not stopped.is_set():
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    server = serve(endless)
    with pytest.raises(AnswerRefused, match="over the 1048576 byte limit") as refused:
        get(server.url, max_bytes=1 << 20)
    assert not refused.value.retryable


def test_a_body_announced_over_the_cap_is_refused_before_reading_it(serve):
    server = serve(answer(HEAD_200 + "Content-Length: 200000000\n"))  # and then nothing: never read
    with pytest.raises(AnswerRefused, match="200000000 bytes is over the 1000 byte limit"):
        get(server.url, max_bytes=1000)


def test_a_gzip_bomb_is_inflated_only_up_to_the_cap(serve):
    bomb = gzip.compress(b"0" * (64 << 20))  # 64 MB of zeros in about 64 kB
    server = serve(answer(HEAD_200 + f"Content-Encoding: gzip\nContent-Length: {len(bomb)}\n", bomb))
    with pytest.raises(AnswerRefused, match="over the 1048576 byte limit"):
        get(server.url, max_bytes=1 << 20)


def test_a_gzip_body_within_the_cap_is_decoded(serve):
    body = b'{"lastUpdateId": 1, "bids": [["1.5", "2"]], "asks": [["1.6", "3"]]}'
    packed = gzip.compress(body)
    server = serve(answer(HEAD_200 + f"Content-Encoding: gzip\nContent-Length: {len(packed)}\n", packed))
    assert get(server.url).json()["bids"] == [["1.5", "2"]]


def test_a_gzip_body_cut_short_is_refused_as_retryable(serve):
    packed = gzip.compress(b'{"a": 1}' * 100)[:30]
    server = serve(answer(HEAD_200 + f"Content-Encoding: gzip\nContent-Length: {len(packed)}\n", packed))
    with pytest.raises(AnswerRefused, match="cut short") as refused:
        get(server.url)
    assert refused.value.retryable


def test_a_body_cut_short_is_refused_as_retryable(serve):
    server = serve(answer(HEAD_200 + "Content-Length: 100\n", b'{"bids": ['))
    with pytest.raises(AnswerRefused, match="cut short") as refused:
        get(server.url)
    assert refused.value.retryable


def test_an_encoding_not_asked_for_is_refused(serve):
    server = serve(answer(HEAD_200 + "Content-Encoding: br\nContent-Length: 4\n", b"abcd"))
    with pytest.raises(AnswerRefused, match="encoding not asked for: 'br'"):
        get(server.url)


def test_a_redirect_is_refused_not_followed(serve):
    target = serve(answer(HEAD_200 + "Content-Length: 2\n", b"{}"))
    server = serve(answer(f"HTTP/1.1 302 Found\nLocation: {target.url}/elsewhere\nContent-Length: 0\n"))
    with pytest.raises(AnswerRefused, match="HTTP 302: a redirect"):
        get(server.url)
    assert (server.requests, target.requests) == (1, 0)
