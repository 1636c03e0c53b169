"""HTTP to Binance that always ends: a deadline for the whole request, a
cap on each body, and no redirects.

``requests`` bounds each socket operation, not the request: an answer
trickled a byte at a time never times out, an endless body is read into
memory, a gzip body is inflated whatever its size, and a redirect is
followed wherever it points. ``BoundedAdapter`` replaces requests'
transport on a session so that

* the request ends at its deadline whatever the server does: one
  ``DeadlineWatch`` thread shuts down the socket of any request still
  running at its deadline (connecting, sending, waiting for headers or
  reading the body), and the request fails as a timeout;
* the body is read by the adapter itself, compressed and decoded sizes
  both capped, gzip inflated only up to the cap; beyond it the answer is
  refused;
* a 3xx is refused, never followed.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

READ_CHUNK = 64 * 1024
ACCEPTED_ENCODINGS = ("gzip", "identity", "")


class AnswerRefused(Exception):
    """An answer that is not what Binance sends: a redirect, a body over
    its cap or in an unknown encoding, or one cut short (``retryable``)."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class _Watched:
    """One request under watch: its deadline and the connection it uses."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.connection: Optional[HTTPConnection] = None
        self.expired = False

    def cut(self) -> None:
        """Shuts the connection's socket down, which wakes any read or
        write blocked on it."""
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            try:
                # socket.socket's own shutdown, also for an SSL socket: the
                # TLS layer must not be torn down under its reading thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class DeadlineWatch:
    """Cuts the connection of every request still running at its deadline.

    A request runs inside ``watching(deadline)`` on its own thread; the
    connection it opens or reuses attaches itself with ``attach``. One
    daemon thread sleeps until the nearest deadline.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._changed = threading.Condition()
        self._watched: set[_Watched] = set()
        self._local = threading.local()
        self._thread: Optional[threading.Thread] = None

    @contextmanager
    def watching(self, deadline: float) -> Iterator[_Watched]:
        """Watches the request the calling thread runs inside the block."""
        entry = _Watched(deadline)
        with self._changed:
            self._watched.add(entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="request-deadlines", daemon=True)
                self._thread.start()
            self._changed.notify()
        self._local.entry = entry
        try:
            yield entry
        finally:
            self._local.entry = None
            with self._changed:
                self._watched.discard(entry)

    def attach(self, connection: HTTPConnection) -> None:
        """Ties ``connection`` to the calling thread's watched request."""
        entry: Optional[_Watched] = getattr(self._local, "entry", None)
        if entry is None:
            return
        with self._changed:
            entry.connection = connection
            if entry.expired:
                entry.cut()

    def _run(self) -> None:
        with self._changed:
            while True:
                now = self._clock()
                for entry in self._watched:
                    if not entry.expired and entry.deadline <= now:
                        entry.expired = True
                        entry.cut()
                pending = [entry.deadline - now for entry in self._watched if not entry.expired]
                self._changed.wait(min(pending) if pending else None)


DEADLINES = DeadlineWatch()


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        DEADLINES.attach(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:  # pylint: disable=arguments-differ  # passed through
        DEADLINES.attach(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        DEADLINES.attach(self)
        super().connect()  # pylint: disable=no-member  # taken for the ssl-less stand-in

    def request(self, *args: Any, **kwargs: Any) -> None:  # pylint: disable=arguments-differ  # passed through
        DEADLINES.attach(self)
        super().request(*args, **kwargs)  # pylint: disable=no-member


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


@dataclass(frozen=True)
class RequestLimits:
    """What the next request may take: until ``deadline`` (on the
    ``DeadlineWatch``'s clock) and ``max_bytes`` of body."""

    deadline: float
    max_bytes: int


class BoundedAdapter(HTTPAdapter):
    """requests' transport, bounded. Used by one thread at a time: the
    owner sets ``limits`` before each request and reads ``answer`` (the
    status and headers of the last response, None if none arrived) after."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.limits = RequestLimits(deadline=0.0, max_bytes=0)
        self.answer: Optional[requests.Response] = None

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPConnectionPool,
            "https": _WatchedHTTPSConnectionPool,
        }

    def send(  # pylint: disable=too-many-arguments  # requests' signature
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        self.answer = None
        limits = self.limits
        with DEADLINES.watching(limits.deadline) as watched:
            try:
                response = super().send(request, True, timeout, verify, cert, proxies)
                self.answer = response
                response._content = _body(response, limits.max_bytes)  # pylint: disable=protected-access
            except (requests.RequestException, AnswerRefused, Urllib3Error, OSError) as exc:
                if self.answer is not None:
                    self.answer.close()
                if watched.expired:
                    raise requests.Timeout("the whole request took longer than its deadline") from exc
                if isinstance(exc, (requests.RequestException, AnswerRefused)):
                    raise
                if self.answer is None:
                    raise requests.ConnectionError(exc) from exc
                raise AnswerRefused(f"the answer was cut short: {exc}", retryable=True) from exc
            if watched.expired:  # a body without a length, ended by the cut
                raise requests.Timeout("the whole request took longer than its deadline")
        return response


def _body(response: requests.Response, max_bytes: int) -> bytes:
    """The response's decoded body, read within ``max_bytes``."""
    status = response.status_code
    if 300 <= status < 400:
        raise AnswerRefused(f"HTTP {status}: a redirect, which Binance's market data never sends; not followed")
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ACCEPTED_ENCODINGS:
        raise AnswerRefused(f"HTTP {status}: body in an encoding not asked for: {encoding[:40]!r}")
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise AnswerRefused(f"HTTP {status}: body of {int(length)} bytes is over the {max_bytes} byte limit")
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    parts: list[bytes] = []
    received = decoded = 0
    try:
        for chunk in response.raw.stream(READ_CHUNK, decode_content=False):
            received += len(chunk)
            if inflate is not None:
                try:
                    chunk = inflate.decompress(chunk, max_bytes - decoded + 1)
                except zlib.error as exc:
                    raise AnswerRefused(f"HTTP {status}: body is not valid gzip: {exc}") from exc
            decoded += len(chunk)
            if received > max_bytes or decoded > max_bytes:
                raise AnswerRefused(f"HTTP {status}: body is over the {max_bytes} byte limit")
            parts.append(chunk)
    except BaseException:
        # Freed now: a traceback holds this frame, and it may be part of a
        # reference cycle (an error kept by a future that a caught frame holds).
        parts.clear()
        chunk = b""
        raise
    if inflate is not None and not inflate.eof:
        raise AnswerRefused(f"HTTP {status}: the gzip body was cut short", retryable=True)
    return b"".join(parts)
