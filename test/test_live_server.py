"""The live view as the HTTP server serves it: its pages, and its event
streams' limits (latest event only, at most 10 a second, a bounded number
of clients, readers that stop are dropped), on a real server and raw
sockets."""

import socket
import threading
import time

import pytest

from binance_exporter.cycle.snapshot import BookState, Snapshot
from binance_exporter.exposition.collector import MetricsPage
from binance_exporter.exposition.http_server import MIN_EVENT_INTERVAL, ExporterHTTPServer, Health, Limits
from binance_exporter.exposition.live_view import OVERVIEW, LiveEvents, book_topic
from binance_exporter.exposition.pages import LiveSite

from .helpers import http_get, wait_for
from .test_http_server import closed_by_server

TRACKED = frozenset({"ETHBTC", "<b>X&Y</b>"})


@pytest.fixture
def start_live():
    """Starts servers with the live view on; stops them after the test."""
    servers = []

    def start(limits=Limits()):
        snapshot = Snapshot(up=True, last_success=time.time(), books=(BookState("ETHBTC", True, 1, 1, None, ()),))
        events = LiveEvents()
        health = Health(lambda: snapshot, max_age=30)
        server = ExporterHTTPServer(
            ("127.0.0.1", 0), MetricsPage(lambda: snapshot), health, limits, live=(LiveSite(lambda: TRACKED), events)
        ).start()
        servers.append(server)
        return server, events, f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.stop()


def publish(events, topic, data):
    """Publishes as the live view's publisher does: the event, then the server woken."""
    events.publish(topic, data)
    events.on_publish()


class EventClient:
    """A raw client of one event stream."""

    def __init__(self, url, path):
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.buffer = b""
        self.head = self._until(b"\r\n\r\n").decode("latin-1")

    def _until(self, end):
        while end not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buffer[:200])
            self.buffer += chunk
        block, self.buffer = self.buffer.split(end, 1)
        return block

    def next_block(self):
        """The next event or comment, without its blank line."""
        return self._until(b"\n\n")

    def next_data(self):
        """The data of the next event, skipping comments and the retry field."""
        while True:
            block = self.next_block()
            if block.startswith(b"data: "):
                return block[len(b"data: ") :]

    def close(self):
        self.sock.close()


def test_the_pages_are_served_with_a_policy_that_loads_nothing_from_elsewhere(start_live):
    _, _, url = start_live()
    status, headers, body = http_get(url + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"] and b'data-page="overview"' in body
    assert b"http" not in body.replace(b"http-equiv", b"")  # every URL is relative: nothing from elsewhere
    script = body.split(b'<script src="')[1].split(b'"')[0].decode()
    status, headers, js = http_get(f"{url}/{script}")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b"EventSource" in js
    assert "immutable" in headers["Cache-Control"]
    status, _, body = http_get(url + "/book/ETHBTC")
    assert status == 200 and b'data-symbol="ETHBTC"' in body and b"../static/live.js" in body


def test_in_rest_mode_a_book_page_says_there_are_no_live_books():
    page = LiveSite(frozenset, stream_mode=False).page("/book/ETHBTC")
    assert page.status == 404 and b"--source rest" in page.body


def test_a_book_with_no_live_book_is_a_404_naming_the_tracked_ones_escaped(start_live):
    _, _, url = start_live()
    status, headers, body = http_get(url + "/book/%3Cimg%20src=x%3E")
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    assert b"&lt;img src=x&gt;" in body and b"<img" not in body
    assert b"&lt;b&gt;X&amp;Y&lt;/b&gt;" in body and b"<b>" not in body and b">ETHBTC<" in body
    assert http_get(url + "/events/book/NOPE")[0] == 404
    status, headers, body = http_get(url + "/book/%3Cb%3EX%26Y%3C%2Fb%3E")  # tracked, however odd its name
    assert status == 200 and b'data-symbol="&lt;b&gt;X&amp;Y&lt;/b&gt;"' in body


def test_a_client_gets_the_latest_event_never_a_backlog_then_each_new_one(start_live):
    _, events, url = start_live()
    events.watch(OVERVIEW)  # someone watches already: events are kept
    for number in range(1, 4):
        publish(events, OVERVIEW, f"data: {number}\n\n".encode())
    client = EventClient(url, "/events/overview")
    try:
        assert client.head.startswith("HTTP/1.1 200 OK") and "Content-Type: text/event-stream" in client.head
        assert "Cache-Control: no-store" in client.head
        assert client.next_block() == b"retry: 2000"
        assert client.next_data() == b"3"
        publish(events, OVERVIEW, b"data: 4\n\n")
        assert client.next_data() == b"4"
    finally:
        client.close()
    wait_for(lambda: events.watched() == {OVERVIEW})  # the closed client no longer watches


def test_a_client_gets_at_most_one_event_per_interval_however_fast_they_come(start_live):
    _, events, url = start_live()
    stop = threading.Event()

    def publish_continuously():
        number = 0
        while not stop.is_set():
            number += 1
            publish(events, book_topic("ETHBTC"), f"data: {number}\n\n".encode())

    started = time.monotonic()  # before the first event can be sent
    client = EventClient(url, "/events/book/ETHBTC")
    publisher = threading.Thread(target=publish_continuously)
    publisher.start()
    try:
        received = [int(client.next_data()) for _ in range(8)]
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        publisher.join()
        client.close()
    # Sends are at least MIN_EVENT_INTERVAL apart: 8 of them take 7 intervals at least.
    assert elapsed >= 7 * MIN_EVENT_INTERVAL
    assert received == sorted(received) and received[-1] - received[0] > 7  # coalesced: events were skipped


def test_past_the_live_client_limit_a_client_gets_a_clear_503_and_scrapers_are_not_counted(start_live):
    _, events, url = start_live(Limits(max_connections=1, max_live_clients=2))
    events.watch(OVERVIEW)
    publish(events, OVERVIEW, b"data: 1\n\n")
    clients = [EventClient(url, "/events/overview") for _ in range(2)]
    try:
        for client in clients:
            assert client.next_data() == b"1"
        status, headers, body = http_get(url + "/events/overview")
        assert status == 503 and headers["Retry-After"] == "5"
        assert b"--web.max-live-clients" in body
        assert http_get(url + "/metrics")[0] == 200  # live clients leave room for scrapers
        clients.pop().close()

        def admitted():
            client = EventClient(url, "/events/overview")
            if client.head.startswith("HTTP/1.1 200"):
                return client
            client.close()
            return None

        clients.append(wait_for(admitted))  # once the server has seen the other one close
        assert clients[-1].next_data() == b"1"
        publish(events, OVERVIEW, b"data: 2\n\n")
        assert [client.next_data() for client in clients] == [b"2", b"2"]  # still served
    finally:
        for client in clients:
            client.close()


def test_a_client_that_stops_reading_is_dropped_and_one_that_reads_is_kept_by_heartbeats(start_live):
    _, events, url = start_live(Limits(write_timeout=0.5))
    stalled = EventClient(url, "/events/book/ETHBTC")
    reading = EventClient(url, "/events/overview")
    try:
        big = b"data: " + b"x" * 1_000_000 + b"\n\n"  # more than both ends' buffers hold
        publish(events, book_topic("ETHBTC"), big)
        wait_for(lambda: book_topic("ETHBTC") not in events.watched())  # dropped (reading here would read)
        assert wait_for(lambda: closed_by_server(stalled.sock))
        # Nothing to send for several write timeouts: comments keep the reader's connection.
        comments = 0
        deadline = time.monotonic() + 4 * 0.5
        while time.monotonic() < deadline:  # the server would close it before: EOFError
            comments += reading.next_block() == b": keep-alive"
        assert comments >= 1 and OVERVIEW in events.watched()
    finally:
        stalled.close()
        reading.close()


def test_head_of_an_event_stream_is_headers_only_and_no_live_client(start_live):
    _, events, url = start_live()
    status, headers, body = http_get(url + "/events/overview", method="HEAD")
    assert (status, body) == (200, b"") and headers["Content-Type"].startswith("text/event-stream")
    assert events.watched() == set()


def test_without_the_live_view_there_are_no_pages_and_no_events():
    snapshot = Snapshot()
    server = ExporterHTTPServer(
        ("127.0.0.1", 0), MetricsPage(lambda: snapshot), Health(lambda: snapshot, max_age=30)
    ).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        status, _, body = http_get(url + "/")
        assert status == 200 and b"EventSource" not in body and b"<script" not in body
        for path in ("/events/overview", "/book/ETHBTC", "/static/live.js"):
            assert http_get(url + path)[0] == 404
    finally:
        server.stop()
