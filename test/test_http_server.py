"""The exporter's HTTP endpoints, served by the real server on a loopback port."""

import socket

import pytest
from binance_exporter.collector import MetricsPage
from binance_exporter.http_server import CLIENT_TIMEOUT, ExporterHTTPServer, Health
from binance_exporter.snapshot import Snapshot
from .helpers import FakeClock, http_get


@pytest.fixture
def state():
    return {"snapshot": Snapshot(up=True, last_success=1000.0)}


@pytest.fixture
def clock():
    return FakeClock(1005.0)


@pytest.fixture
def server(state, clock):
    health = Health(lambda: state["snapshot"], max_age=30, clock=clock)
    srv = ExporterHTTPServer(("127.0.0.1", 0), MetricsPage(lambda: state["snapshot"]), health).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.stop()


def test_metrics_are_served_in_prometheus_text_format(server):
    status, headers, body = http_get(server + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"binance_up 1.0" in body


def test_metrics_can_be_negotiated_as_openmetrics(server):
    import urllib.request  # pylint: disable=import-outside-toplevel

    request = urllib.request.Request(server + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().endswith(b"# EOF\n")


def test_landing_page_links_to_metrics(server):
    status, headers, body = http_get(server + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'href="metrics"' in body


def test_healthz_is_200_while_updates_are_recent_and_503_when_stale(server, state, clock):
    assert http_get(server + "/healthz")[0] == 200
    clock.advance(24)  # 29 s after the last update
    assert http_get(server + "/healthz")[0] == 200
    clock.advance(1)
    status, _, body = http_get(server + "/healthz")
    assert status == 503 and b"stale" in body
    state["snapshot"] = Snapshot()
    status, _, body = http_get(server + "/healthz")
    assert status == 503 and b"no successful update yet" in body


def test_unknown_paths_are_404(server):
    assert http_get(server + "/nothing")[0] == 404


def test_head_answers_headers_only(server):
    status, headers, body = http_get(server + "/metrics", method="HEAD")
    assert status == 200 and int(headers["Content-Length"]) > 0 and body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(server, method):
    status, headers, _ = http_get(server + "/metrics", method=method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_a_stalled_client_does_not_block_other_scrapers(server):
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as stalled:
        stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        # Answered before the stalled client is dropped (CLIENT_TIMEOUT, 10 s), however slow the machine:
        assert http_get(server + "/metrics", timeout=CLIENT_TIMEOUT / 2)[0] == 200
