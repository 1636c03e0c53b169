"""The exporter's HTTP endpoints: ``/``, ``/metrics`` and ``/healthz``.

Each connection is served on its own thread and never waits on Binance:
``/metrics`` renders the current snapshot, ``/healthz`` compares the last
successful update with the clock.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from binance_exporter import __version__
from binance_exporter.collector import MetricsPage
from binance_exporter.snapshot import Snapshot

logger = logging.getLogger(__name__)

# A client that stalls mid-request is dropped after this many seconds, so
# it holds one thread for a bounded time and never blocks other scrapers.
CLIENT_TIMEOUT = 10.0

LANDING_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Binance exporter</title></head>
<body>
<h1>Binance exporter</h1>
<p>Prometheus exporter for Binance spot market data, version {__version__}.</p>
<ul>
<li><a href="metrics">/metrics</a>: the metrics, in Prometheus text format</li>
<li><a href="healthz">/healthz</a>: 200 while updates succeed, 503 when they have gone stale</li>
</ul>
</body>
</html>
""".encode()


class Health:
    """Whether the last successful update is recent enough."""

    def __init__(self, current: Callable[[], Snapshot], max_age: float, clock: Callable[[], float] = time.time):
        self._current = current
        self.max_age = max_age
        self._clock = clock

    def check(self) -> tuple[bool, str]:
        """(healthy, explanation)."""
        last = self._current().last_success
        if last is None:
            return False, "no successful update yet"
        age = self._clock() - last
        if age < self.max_age:
            return True, f"ok: last successful update {age:.1f} s ago"
        return False, f"stale: last successful update {age:.1f} s ago (limit {self.max_age:g} s)"


class ExporterHTTPServer(ThreadingHTTPServer):
    """Serves the exporter's endpoints, one thread per connection."""

    daemon_threads = True
    # Connections waiting to be accepted; past this the kernel drops new
    # ones and the scraper retries a second later (socketserver's default is 5).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], metrics: MetricsPage, health: Health):
        self.metrics = metrics
        self.health = health
        self._thread: Optional[threading.Thread] = None
        super().__init__(address, _Handler)

    def start(self) -> "ExporterHTTPServer":
        """Serves on a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the listening socket."""
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD on the exporter's paths; 404 elsewhere, 405 for other methods."""

    server: ExporterHTTPServer
    server_version = f"binance-exporter/{__version__}"
    timeout = CLIENT_TIMEOUT
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls

    def do_GET(self) -> None:  # pylint: disable=invalid-name  # http.server's naming
        """Serves a path."""
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # pylint: disable=invalid-name  # http.server's naming
        """Serves a path's headers."""
        self._serve(send_body=False)

    def _not_allowed(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"method not allowed\n", True, {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _serve(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            body, content_type = self.server.metrics.render(self.headers.get("Accept"))
            self._send(200, content_type, body, send_body)
        elif path == "/healthz":
            healthy, text = self.server.health.check()
            self._send(200 if healthy else 503, "text/plain; charset=utf-8", f"{text}\n".encode(), send_body)
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", LANDING_PAGE, send_body)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found; see /metrics\n", send_body)

    def _send(
        self, status: int, content_type: str, body: bytes, send_body: bool, headers: Optional[dict] = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(
        self, format: str, *args: Any
    ) -> None:  # pylint: disable=redefined-builtin  # http.server's signature
        logger.debug("%s " + format, self.address_string(), *args)
