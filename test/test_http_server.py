"""The exporter's HTTP endpoints, served by the real server on a loopback
port, and what misbehaving clients can and cannot do to it."""

import gzip
import http.client
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack

import pytest
from binance_exporter import __version__
from binance_exporter.exposition.collector import MetricsPage
from binance_exporter.exposition.http_server import (
    BadRequest,
    ExporterHTTPServer,
    Health,
    Limits,
    accepts_gzip,
    end_of_head,
    parse_request,
)
from binance_exporter.cycle.snapshot import Snapshot
from .helpers import ROOT, FakeClock, free_port, http_get, start_module, stop_process, wait_for

HALF_A_HEAD = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class LargePage:
    """A /metrics page of 16 MB: more than the kernel buffers at both ends
    of a loopback connection hold, so a client that does not read it stalls
    the answer."""

    body = b"x" * (16 * 1024 * 1024)

    def render(self, accept, compress=False):  # pylint: disable=unused-argument  # MetricsPage's signature
        return self.body, "text/plain; version=0.0.4; charset=utf-8"


class FailingPage:
    """A /metrics page whose rendering fails, as a bug would make it."""

    def render(self, accept, compress=False):  # pylint: disable=unused-argument  # MetricsPage's signature
        raise RuntimeError(f"cannot render for {accept}")


@pytest.fixture
def state():
    return {"snapshot": Snapshot(up=True, last_success=1000.0)}


@pytest.fixture
def clock():
    return FakeClock(1005.0)


@pytest.fixture
def start_server(state, clock):
    """Starts servers of the current snapshot with the given limits; stops them after the test."""
    servers = []

    def start(limits=Limits(), metrics=None):
        health = Health(lambda: state["snapshot"], max_age=30, clock=clock)
        page = metrics or MetricsPage(lambda: state["snapshot"])
        servers.append(ExporterHTTPServer(("127.0.0.1", 0), page, health, limits).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server):
    return f"http://127.0.0.1:{start_server().server_address[1]}"


@pytest.fixture
def address(server):
    host, port = server.removeprefix("http://").split(":")
    return host, int(port)


def stalled_client(address):
    """A client that has sent half a request head, and waits."""
    sock = socket.create_connection(address)
    sock.sendall(HALF_A_HEAD)
    return sock


def closed_by_server(sock):
    """Whether the server has closed ``sock``; what it sent before is read and dropped."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except ConnectionResetError:
        pass
    return True


def exchange(address, request):
    """Everything the server sends in answer to the raw ``request``, until it closes the connection."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_metrics_are_served_in_prometheus_text_format(server):
    status, headers, body = http_get(server + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"binance_up 1.0" in body


def test_metrics_can_be_negotiated_as_openmetrics(server):
    request = urllib.request.Request(server + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
        assert response.read().endswith(b"# EOF\n")


def test_landing_page_links_to_metrics_and_health(server):
    status, headers, body = http_get(server + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    for link in (b"metrics", b"-/healthy", b"-/ready", b"healthz"):
        assert b'href="' + link + b'"' in body


@pytest.mark.parametrize("path", ["/-/ready", "/healthz"])
def test_readiness_is_200_while_updates_are_recent_and_503_when_stale(server, state, clock, path):
    assert http_get(server + path)[0] == 200
    clock.advance(24)  # 29 s after the last update
    assert http_get(server + path)[0] == 200
    clock.advance(1)
    status, _, body = http_get(server + path)
    assert status == 503 and b"stale: last successful update 30.0 s ago (limit 30 s)" in body
    state["snapshot"] = Snapshot()
    status, _, body = http_get(server + path)
    assert status == 503 and b"no successful update yet" in body


def test_liveness_does_not_depend_on_binance(server, state, clock):
    state["snapshot"] = Snapshot()
    clock.advance(3600)
    status, _, body = http_get(server + "/-/healthy")
    assert status == 200 and body == b"ok: serving and updating\n"


def test_liveness_fails_when_the_update_thread_has_stopped(state):
    health = Health(lambda: state["snapshot"], max_age=30, updating=lambda: False)
    server = ExporterHTTPServer(("127.0.0.1", 0), MetricsPage(lambda: state["snapshot"]), health).start()
    try:
        status, _, body = http_get(f"http://127.0.0.1:{server.server_address[1]}/-/healthy")
    finally:
        server.stop()
    assert status == 503 and body == b"the update thread has stopped\n"


@pytest.mark.parametrize(
    "accept_encoding, compressed",
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("*", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("*, gzip;q=0", False),
        ("gzip;q=nonsense", False),
        ("identity", False),
        ("", False),
        (None, False),
    ],
)
def test_gzip_is_used_when_the_scraper_accepts_it(accept_encoding, compressed):
    assert accepts_gzip(accept_encoding) is compressed


@pytest.mark.parametrize("accept", [None, "application/openmetrics-text; version=1.0.0"])
def test_metrics_are_gzip_compressed_when_asked_and_say_so(server, accept):
    headers = {"Accept-Encoding": "gzip", **({"Accept": accept} if accept else {})}
    with urllib.request.urlopen(urllib.request.Request(server + "/metrics", headers=headers), timeout=5) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Vary"] == "Accept-Encoding"
        body = gzip.decompress(response.read())
    plain = http_get(server + "/metrics") if accept is None else None
    assert b"binance_up 1.0" in body and b"process_cpu_seconds_total" in body
    if plain:
        assert "Content-Encoding" not in plain[1] and plain[1]["Vary"] == "Accept-Encoding"
        # The same lines, but for the process metrics measured a moment apart.
        assert body.split(b"# HELP process_", 1)[0] == plain[2].split(b"# HELP process_", 1)[0]


def test_the_server_listens_on_ipv6_and_dual_stack(state, clock):
    health = Health(lambda: state["snapshot"], max_age=30, clock=clock)
    page = MetricsPage(lambda: state["snapshot"])
    for address, urls in [
        ("::1", ["http://[::1]:{}/metrics"]),
        ("::", ["http://[::1]:{}/metrics", "http://127.0.0.1:{}/metrics"]),
    ]:
        server = ExporterHTTPServer((address, 0), page, health).start()
        try:
            for url in urls:
                assert http_get(url.format(server.server_address[1]))[0] == 200
        finally:
            server.stop()


def test_unknown_paths_are_404(server):
    assert http_get(server + "/nothing")[0] == 404


def test_head_answers_headers_only(server):
    status, headers, body = http_get(server + "/metrics", method="HEAD")
    assert status == 200 and int(headers["Content-Length"]) > 0 and body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "FOO", "get"])
def test_other_methods_are_405_with_allow(address, method):
    answer = exchange(address, f"{method} /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"\r\nAllow: GET, HEAD\r\n" in answer


def test_the_server_header_names_the_exporter_and_nothing_else(server):
    _, headers, _ = http_get(server + "/healthz")
    assert headers["Server"] == f"binance-exporter/{__version__}" and "Python" not in headers["Server"]


def test_prometheus_keeps_its_connection_between_scrapes(address):
    connection = http.client.HTTPConnection(*address, timeout=5)
    connection.request("GET", "/metrics")
    assert connection.getresponse().read()
    first = connection.sock
    assert first is not None  # http.client drops the socket when the server says it will close it
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200 and response.read() and connection.sock is first
    connection.close()


def test_an_http_1_0_client_may_ask_to_keep_its_connection(address):
    with socket.create_connection(address, timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: keep-alive\r\n" in answer


def test_pipelined_requests_get_one_answer_and_a_close(address):
    answer = exchange(address, b"GET /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 1 and b"\r\nConnection: close\r\n" in answer


def test_a_stalled_client_does_not_block_other_scrapers(address, server):
    with stalled_client(address):
        assert http_get(server + "/metrics")[0] == 200


def test_stopping_closes_every_connection(state, clock):
    health = Health(lambda: state["snapshot"], max_age=30, clock=clock)
    server = ExporterHTTPServer(("127.0.0.1", 0), MetricsPage(lambda: state["snapshot"]), health).start()
    address = server.server_address
    with stalled_client(address) as sock:
        assert http_get(f"http://127.0.0.1:{address[1]}/healthz")[0] == 200  # sock was accepted before
        server.stop()
        assert closed_by_server(sock)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5)


def test_a_request_head_that_trickles_in_is_dropped_at_the_head_deadline(start_server):
    server = start_server(Limits(head_timeout=0.3))
    with stalled_client(server.server_address) as sock:

        def another_byte_then_dropped():
            try:
                sock.send(b"a")  # one more byte of a header value: the connection never idles
            except OSError:
                return True
            return closed_by_server(sock)

        wait_for(another_byte_then_dropped)


def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(start_server):
    server = start_server(Limits(idle_timeout=0.3))
    connection = http.client.HTTPConnection(*server.server_address, timeout=5)
    connection.request("GET", "/healthz")
    assert connection.getresponse().read()
    wait_for(lambda: closed_by_server(connection.sock))
    connection.close()


def test_at_the_connection_limit_the_connection_waiting_longest_makes_room(start_server):
    server = start_server(Limits(max_connections=8, head_timeout=3600))
    threads = threading.active_count()
    with ExitStack() as stack:
        stalled = [stack.enter_context(stalled_client(server.server_address)) for _ in range(20)]
        wait_for(lambda: all(closed_by_server(sock) for sock in stalled[:12]))
        assert not any(closed_by_server(sock) for sock in stalled[12:])
        assert threading.active_count() == threads  # no thread per connection
        assert http_get(f"http://127.0.0.1:{server.server_address[1]}/metrics")[0] == 200
        wait_for(lambda: closed_by_server(stalled[12]))
        assert not any(closed_by_server(sock) for sock in stalled[13:])


def test_a_connection_already_answered_and_closing_makes_room_before_a_live_one(start_server):
    server = start_server(Limits(max_connections=2, head_timeout=3600))
    with ExitStack() as stack:
        live = stack.enter_context(stalled_client(server.server_address))  # waiting longest, for its head
        answered = stack.enter_context(socket.create_connection(server.server_address))
        answered.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_for(lambda: answered.recv(65536, socket.MSG_PEEK))  # answered; the server lingers until it closes
        assert http_get(f"http://127.0.0.1:{server.server_address[1]}/metrics")[0] == 200
        wait_for(lambda: closed_by_server(answered))
        live.sendall(b"\r\n")
        live.settimeout(10)
        assert live.recv(12) == b"HTTP/1.1 200"


def test_idle_kept_alive_connections_make_room_too(start_server):
    server = start_server(Limits(max_connections=4))
    idle = []
    for _ in range(4):
        idle.append(http.client.HTTPConnection(*server.server_address, timeout=5))
        idle[-1].request("GET", "/healthz")
        assert idle[-1].getresponse().read()
    assert http_get(f"http://127.0.0.1:{server.server_address[1]}/metrics")[0] == 200
    wait_for(lambda: closed_by_server(idle[0].sock))
    assert not any(closed_by_server(connection.sock) for connection in idle[1:])
    for connection in idle:
        connection.close()


def test_a_client_that_does_not_read_its_answer_is_dropped_at_the_write_deadline(start_server, caplog):
    caplog.set_level(logging.DEBUG, logger="binance_exporter.exposition.http_server")
    server = start_server(Limits(write_timeout=0.3), LargePage())
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(server.server_address)
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        wait_for(lambda: any("to read its answer" in record.getMessage() for record in caplog.records))
        received = 0
        sock.settimeout(10)
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < len(LargePage.body)


@pytest.mark.parametrize(
    "head",
    [
        # 50 legal headers of 400 bytes: 20 KB
        b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-Padding-%d: %s\r\n" % (n, b"a" * 400) for n in range(50)) + b"\r\n",
        # a header that never ends
        HALF_A_HEAD + b"X-Padding: " + b"a" * 20_000,
    ],
)
def test_a_request_head_over_16_kib_is_431_and_the_connection_closed(address, head):
    answer = exchange(address, head)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"\r\nConnection: close\r\n" in answer


def test_an_invalid_accept_version_is_served_as_text_without_an_error(server, caplog, capfd):
    request = urllib.request.Request(
        server + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0x"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "Traceback" not in capfd.readouterr().err


def test_a_folded_header_is_refused_and_never_echoed(address):
    answer = exchange(
        address,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.1.0\r\n x=1\r\n"
        b"Connection: close\r\n\r\n",
    )
    head = answer.split(b"\r\n\r\n", maxsplit=1)[0]
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in head + b"\r\n" and b"x=1" not in head


def test_clients_resetting_right_after_sending_cost_no_error(server, address, caplog, capfd):
    for _ in range(20):
        sock = socket.create_connection(address)
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, with the answer unread
    assert http_get(server + "/metrics")[0] == 200
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "Traceback" not in capfd.readouterr().err


def test_a_failing_render_is_a_500_and_the_server_keeps_serving(start_server, caplog):
    server = start_server(metrics=FailingPage())
    url = f"http://127.0.0.1:{server.server_address[1]}"
    assert http_get(url + "/metrics")[0] == 500
    assert "cannot answer GET /metrics" in caplog.text
    assert http_get(url + "/healthz")[0] == 200


@pytest.mark.parametrize(
    "received, end",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", (24, 27)),
        (b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", (15, 18)),
        (b"GET / HTTP/1.1\nHost: x\n\nrest", (22, 24)),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\n", (24, 26)),
    ],
)
def test_end_of_head_finds_the_empty_line(received, end):
    assert end_of_head(bytearray(received)) == end


@pytest.mark.parametrize(
    "head, method, path, accept, keep_alive",
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept:  b ", "GET", "/metrics", "a, b", True),
        (b"HEAD /metrics?x=1 HTTP/1.0", "HEAD", "/metrics", None, False),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive", "GET", "/", None, True),
        (b"GET / HTTP/1.1\r\nConnection: close", "GET", "/", None, False),
        (b"GET / HTTP/1.1\nHost: x", "GET", "/", None, True),
        (b"GET http://127.0.0.1:8080/healthz HTTP/1.1", "GET", "/healthz", None, True),
        (b"POST / HTTP/1.1\r\nContent-Length: 5", "POST", "/", None, False),
        (b"GET / HTTP/1.1\r\nContent-Length: 0, 0", "GET", "/", None, True),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked", "GET", "/", None, False),
        (b"get / HTTP/1.1", "get", "/", None, True),
    ],
)
def test_parse_request_reads_what_answering_needs(head, method, path, accept, keep_alive):
    request = parse_request(head)
    assert (request.method, request.path, request.accept, request.keep_alive) == (method, path, accept, keep_alive)


@pytest.mark.parametrize(
    "head, status, reason",
    [
        (b"", 400, "malformed request line"),
        (b"GET /", 400, "malformed request line"),
        (b"GET / HTTP/1.1 x", 400, "malformed request line"),
        (b"GET / FOO/1.1", 400, "malformed request line"),
        (b"G(T / HTTP/1.1", 400, "malformed request line"),
        (b"GET /a\x00b HTTP/1.1", 400, "malformed request line"),
        (b"GET / HTTP/2.0", 505, "only HTTP/1.0 and HTTP/1.1"),
        (b"GET http://[::1 HTTP/1.1", 400, "malformed request target"),
        (b"GET / HTTP/1.1\r\nAccept: a\r\n b", 400, "obsolete line folding"),
        (b"GET / HTTP/1.1\r\nno colon", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\nAccept : a", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\nAccept: a\rb", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\nContent-Length: 1, 2", 400, "invalid Content-Length"),
        (b"GET / HTTP/1.1\r\nContent-Length: -1", 400, "invalid Content-Length"),
    ],
)
def test_parse_request_refuses_malformed_heads(head, status, reason):
    with pytest.raises(BadRequest, match=reason) as refused:
        parse_request(head)
    assert refused.value.status == status


# A server in its own process, with a low open-files limit, and files opened
# until only argv[2] descriptors are left (-1: none opened). "release" on
# stdin closes those files; end of input stops the server.
LOW_DESCRIPTORS_SERVER = """
import logging, os, resource, socket, sys
from binance_exporter.exposition.collector import MetricsPage
from binance_exporter.exposition.http_server import ExporterHTTPServer, Health, Limits
from binance_exporter.cycle.snapshot import Snapshot

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
snapshot = Snapshot(up=True, last_success=1e12)
limits = Limits(max_connections=int(sys.argv[1]), head_timeout=3600)
server = ExporterHTTPServer(("127.0.0.1", 0), MetricsPage(lambda: snapshot), Health(lambda: snapshot, 30), limits)
files = []
if int(sys.argv[2]) >= 0:
    try:
        while True:
            files.append(open(os.devnull))
    except OSError:
        pass
    for _ in range(int(sys.argv[2])):
        files.pop().close()
failed_accepts = 0  # the accept() calls that failed: out of descriptors
accept = socket.socket.accept
def counted_accept(sock):
    global failed_accepts
    try:
        return accept(sock)
    except OSError as exc:
        failed_accepts += not isinstance(exc, BlockingIOError)
        raise
socket.socket.accept = counted_accept
print(server.start().server_address[1], flush=True)
for line in sys.stdin:  # "count": prints failed_accepts; anything else frees the descriptors
    if line == "count\\n":
        print(failed_accepts, flush=True)
        continue
    for file in files:
        file.close()
server.stop()
"""


@pytest.fixture
def low_descriptors_server():
    """Starts the server above in its own process; (port, process)."""
    processes = []

    def start(max_connections, free_descriptors):
        process = subprocess.Popen(  # pylint: disable=consider-using-with  # ended below
            [sys.executable, "-c", LOW_DESCRIPTORS_SERVER, str(max_connections), str(free_descriptors)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return ("127.0.0.1", int(process.stdout.readline())), process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def stop_and_read_stderr(process):
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return err


def failed_accepts(process):
    process.stdin.write("count\n")
    process.stdin.flush()
    return int(process.stdout.readline())


def test_a_connection_limit_above_the_open_files_limit_is_lowered(low_descriptors_server):
    address, process = low_descriptors_server(1000, -1)
    with ExitStack() as stack:
        stalled = [stack.enter_context(stalled_client(address)) for _ in range(70)]
        wait_for(lambda: all(closed_by_server(sock) for sock in stalled[:6]))  # 128 - 64 reserved = 64 open
        assert not any(closed_by_server(sock) for sock in stalled[6:])
    err = stop_and_read_stderr(process)
    assert "WARNING --web.max-connections 1000 is more than the open-files limit (ulimit -n) of 128" in err
    assert "serving at most 64 connections" in err
    # Live clients get what is left: nothing, here.
    assert "--web.max-live-clients 100 is more than the open-files limit (ulimit -n) of 128" in err
    assert "own work and 64 connections: serving at most 0 live clients" in err


def test_out_of_descriptors_the_connection_waiting_longest_makes_room(low_descriptors_server):
    address, process = low_descriptors_server(32, 3)
    with ExitStack() as stack:
        stalled = [stack.enter_context(stalled_client(address)) for _ in range(5)]
        wait_for(lambda: closed_by_server(stalled[0]) and closed_by_server(stalled[1]))
        answer = exchange(address, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert closed_by_server(stalled[2]) and not any(closed_by_server(sock) for sock in stalled[3:])
    err = stop_and_read_stderr(process)
    assert err.count("cannot accept connections: [Errno 24] Too many open files") == 1, err
    assert "Traceback" not in err


def test_out_of_descriptors_with_nothing_to_close_the_server_waits_without_spinning(low_descriptors_server):
    address, process = low_descriptors_server(32, 0)
    started = time.monotonic()
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        wait_for(lambda: failed_accepts(process) >= 3)  # out of descriptors, it tried again, and again
        # Tries at most once per accept backoff (0.1 s): a loaded machine makes it try less often, never more.
        assert failed_accepts(process) <= (time.monotonic() - started) / Limits().accept_backoff + 1
        process.stdin.write("release\n")
        process.stdin.flush()
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    err = stop_and_read_stderr(process)
    assert err.count("cannot accept connections") == 1 and "Traceback" not in err


def test_the_exporter_serves_at_most_web_max_connections():
    port = free_port()
    exporter = start_module(
        "binance_exporter.exporter",
        *("--port", str(port), "--address", "127.0.0.1", "--web.max-connections", "2"),
        *("--base-url", f"http://127.0.0.1:{free_port()}", "--loglevel", "WARNING"),
    )
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200)
        with ExitStack() as stack:
            stalled = [stack.enter_context(stalled_client(("127.0.0.1", port))) for _ in range(3)]
            wait_for(lambda: closed_by_server(stalled[0]))
            assert not any(closed_by_server(sock) for sock in stalled[1:])
    finally:
        status, _, err = stop_process(exporter)
    assert status == 0
    assert "2 connections open, the limit" in err
