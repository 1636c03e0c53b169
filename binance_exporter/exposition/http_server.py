"""The exporter's HTTP endpoints: ``/metrics``, ``/-/healthy``,
``/-/ready`` and ``/healthz``, and the live view's pages and event
streams (``pages.LiveSite``) unless it is turned off, over HTTP or HTTPS,
with basic authentication when the web configuration file asks for it.

One thread serves every connection, and never waits on a client or on
Binance: sockets are non-blocking, and every answer comes from memory
(``/metrics`` from the snapshot rendered once per cycle, the health
endpoints from the clock) in about a millisecond. Checking a password
(bcrypt, tens of milliseconds) is the one slow step: it runs on a thread of
its own, once per user and password. What a client can hold is bounded:

- its TLS handshake and request head (request line and headers) must
  arrive within ``Limits.head_timeout`` of connecting (on a kept-alive
  connection, of its first byte) and be at most ``Limits.max_head_bytes`` long (431 otherwise);
- a kept-alive connection may idle ``Limits.idle_timeout`` between
  requests, and a client has ``Limits.write_timeout`` to read an answer;
- at most ``Limits.max_connections`` are open: the next one makes room by
  closing one already answered and closing, else the connection that has
  waited longest on its client, so a scraper, which sends its request at
  once, always gets in;
- out of file descriptors, the server closes that same connection rather
  than spin on a listening socket it cannot accept from;
- at most ``MAX_PENDING_AUTH_CHECKS`` passwords wait to be checked: past
  that, a request with credentials never checked before gets a 429;
- at most ``Limits.max_live_clients`` follow an event stream (a 503
  past that), apart from ``max_connections``; each gets the latest event
  of its topic at most every ``MIN_EVENT_INTERVAL`` seconds, never a
  backlog, and one that has not read what it was sent within
  ``Limits.write_timeout`` is dropped. Their kernel send buffers are
  ``LIVE_SEND_BUFFER``.

``parse_request`` turns a request head into a ``Request``, with no I/O.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import resource
import selectors
import socket
import ssl
import struct
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Optional, Union
from urllib.parse import urlsplit

from binance_exporter import __version__
from binance_exporter.cycle.snapshot import Snapshot
from binance_exporter.exposition.collector import MetricsPage
from binance_exporter.exposition.web_config import BasicAuth, Credentials, WebConfig

if TYPE_CHECKING:
    from binance_exporter.exposition.live_view import LiveEvents
    from binance_exporter.exposition.pages import LiveSite

logger = logging.getLogger(__name__)

SERVER = f"binance-exporter/{__version__}"
TEXT = "text/plain; charset=utf-8"
EVENTS = "text/event-stream; charset=utf-8"
# Connections waiting to be accepted; past this the kernel drops new ones
# and the client retries a second later (socketserver's default is 5).
LISTEN_BACKLOG = 128
# Kernel receive buffer per connection. A request head is at most 16 KiB;
# left to itself the kernel grows the buffer to megabytes for a client that
# keeps sending, and freeing that on close costs the serving thread time.
RECEIVE_BUFFER = 64 * 1024
# Descriptors kept for the exporter's own work (connections to Binance,
# /proc reads for the process metrics, logs) when --web.max-connections is
# more than the open-files limit (ulimit -n) allows.
RESERVED_DESCRIPTORS = 64
# Before closing a connection after its last answer (an error, or the client
# asked to close), the server reads and discards up to this much more of what
# the client sends, for at most the head timeout, so that the client reads
# the answer rather than a reset (RFC 9112, section 9.6).
LINGER_BYTES = 64 * 1024
# An attack should cost a line in the log a minute, not a line a connection.
WARNING_INTERVAL = 60.0
# Connections accepted per pass of the serving loop. Between passes the
# server learns which of its connections their clients have closed; accepting
# many more in one pass would count those as open, and making room for the
# newcomers could close a live one.
ACCEPTS_PER_PASS = 16
# Requests whose password waits for its check; a legitimate scraper's is
# checked once and remembered, so only new passwords ever wait.
MAX_PENDING_AUTH_CHECKS = 16
# A live client gets an event at most this often: 10 a second.
MIN_EVENT_INTERVAL = 0.1
# What the kernel holds for a live client that does not read: a few events.
LIVE_SEND_BUFFER = 64 * 1024
# A browser reconnects this long after losing its event stream.
RETRY_MILLISECONDS = 2000
# Live clients sent something per pass of the serving loop: between passes,
# a scrape that came meanwhile is answered.
LIVE_SENDS_PER_PASS = 16
AUTHENTICATE = ("WWW-Authenticate", 'Basic realm="binance-exporter", charset="UTF-8"')

LANDING_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Binance exporter</title></head>
<body>
<h1>Binance exporter</h1>
<p>Prometheus exporter for Binance spot market data, version {__version__}.</p>
<ul>
<li><a href="metrics">/metrics</a>: the metrics, in Prometheus text format</li>
<li><a href="-/healthy">/-/healthy</a>: liveness, 200 while the exporter serves and updates</li>
<li><a href="-/ready">/-/ready</a>: readiness, 200 while the data is fresh, 503 with the reason otherwise
(<a href="healthz">/healthz</a> is the same, and will go)</li>
</ul>
</body>
</html>
""".encode()


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server. The defaults are the exporter's."""

    # Connections open at once (--web.max-connections): a few scrapers need a
    # few; 128 is room to spare, far below the usual limit of 1024 descriptors.
    max_connections: int = 128
    # A scraper sends its request head at once; 2 s is generous even on a busy
    # host, and a client trickling its head in (slowloris) holds a connection
    # for no longer.
    head_timeout: float = 2.0
    # Longer than Prometheus's default scrape interval (1 min), so a scraper
    # keeps its connection between scrapes.
    idle_timeout: float = 90.0
    # A /metrics answer is at most a few hundred KB: a client that has not
    # read it within this time has stopped reading.
    write_timeout: float = 10.0
    # The whole request head; Prometheus sends about 300 bytes.
    max_head_bytes: int = 16 * 1024
    # With no descriptor free and no connection to close, wait this long
    # before accepting again.
    accept_backoff: float = 0.1
    # Browsers following the live view's events (--web.max-live-clients).
    max_live_clients: int = 100

    @property
    def heartbeat(self) -> float:
        """How often a live client with no news gets a comment: often
        enough that one reading is never taken for one that stopped."""
        return self.write_timeout / 2


class Health:
    """Liveness (the process serves and its update thread runs) and
    readiness (the last successful update is recent enough)."""

    def __init__(
        self,
        current: Callable[[], Snapshot],
        max_age: float,
        clock: Callable[[], float] = time.time,
        updating: Callable[[], bool] = lambda: True,
    ):
        self._current = current
        self.max_age = max_age
        self._clock = clock
        self._updating = updating

    def live(self) -> tuple[bool, str]:
        """(alive, explanation): false only when a restart would help, never because Binance is away."""
        if not self._updating():
            return False, "the update thread has stopped"
        return True, "ok: serving and updating"

    def ready(self) -> tuple[bool, str]:
        """(ready, explanation)."""
        last = self._current().last_success
        if last is None:
            return False, "no successful update yet"
        age = self._clock() - last
        if age < self.max_age:
            return True, f"ok: last successful update {age:.1f} s ago"
        return False, f"stale: last successful update {age:.1f} s ago (limit {self.max_age:g} s)"


class BadRequest(Exception):
    """A request head that cannot be answered; ``status`` says why (400, 505)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Request:
    """What answering a request needs from its head."""

    method: str
    target: str
    version: str
    accept: Optional[str]
    keep_alive: bool  # the client wants the connection kept, and sent no body
    accept_encoding: Optional[str] = None
    authorization: Optional[str] = None

    @property
    def path(self) -> str:
        """The target's path: ``/metrics`` of ``/metrics?x=1``."""
        return urlsplit(self.target).path


_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # all but tab
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_HTTP_VERSION = re.compile(r"HTTP/(\d)\.(\d)")
_DIGITS = re.compile(r"[0-9]+")


def end_of_head(received: bytearray) -> Optional[tuple[int, int]]:
    """Once ``received`` holds the empty line that ends a request head: (the
    head's length, where the next request would start). Lines may end in
    CRLF or in a bare LF."""
    ends = [(found, found + len(blank)) for blank in (b"\n\r\n", b"\n\n") if (found := received.find(blank)) >= 0]
    return min(ends) if ends else None


def parse_request(head: bytes) -> Request:
    """The request whose head is ``head``, the bytes before the empty line
    that ends it; raises ``BadRequest`` for anything malformed."""
    request_line, *field_lines = [line.removesuffix("\r") for line in head.decode("latin-1").split("\n")]
    parts = request_line.split(" ")
    version = _HTTP_VERSION.fullmatch(parts[-1])
    if len(parts) != 3 or not version or not _TOKEN.fullmatch(parts[0]) or _SPACE_OR_CONTROL.search(parts[1]):
        raise BadRequest(400, "malformed request line")
    if version.group(1) != "1":
        raise BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are served")
    try:
        urlsplit(parts[1])
    except ValueError as exc:
        raise BadRequest(400, "malformed request target") from exc
    fields = _header_fields(field_lines)
    lengths = {part.strip() for part in fields.get("content-length", "0").split(",")}
    if len(lengths) != 1 or not _DIGITS.fullmatch(length := lengths.pop()):
        raise BadRequest(400, "invalid Content-Length")
    has_body = int(length) > 0 or "transfer-encoding" in fields
    options = {part.strip().lower() for part in fields.get("connection", "").split(",")}
    wants_keep_alive = "keep-alive" in options if version.group(2) == "0" else "close" not in options
    return Request(
        parts[0],
        parts[1],
        parts[2],
        fields.get("accept"),
        wants_keep_alive and not has_body,
        fields.get("accept-encoding"),
        fields.get("authorization"),
    )


def accepts_gzip(accept_encoding: Optional[str]) -> bool:
    """Whether an ``Accept-Encoding`` field lets the answer be gzip-compressed
    (``gzip`` or ``*`` with a quality above 0, and gzip not refused)."""
    qualities = {}
    for coding in (accept_encoding or "").split(","):
        name, *parameters = (part.strip() for part in coding.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[name.lower()] = quality
    return qualities.get("gzip", qualities.get("x-gzip", qualities.get("*", 0.0))) > 0


def _header_fields(lines: list[str]) -> dict[str, str]:
    """Header fields by lower-case name; a repeated field's values joined with commas."""
    fields: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if line[:1] in (" ", "\t"):
            raise BadRequest(400, "obsolete line folding is not accepted")
        if not colon or not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            raise BadRequest(400, "malformed header line")
        name, value = name.lower(), value.strip(" \t")
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return fields


@dataclass(frozen=True)
class Response:
    """An answer, before it is written."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def encode(
        self, send_body: bool, keep_alive: bool, version: str, extra_headers: tuple[tuple[str, str], ...] = ()
    ) -> bytes:
        """The answer as sent: status line, headers (its own, then
        ``extra_headers``), and the body unless ``send_body`` is false (HEAD)."""
        lines = [
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
            f"Server: {SERVER}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in (*self.headers, *extra_headers))
        if not keep_alive:
            lines.append("Connection: close")
        elif version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (self.body if send_body else b"")


_UNAUTHORIZED = Response(401, TEXT, b"unauthorized: this exporter asks for a user name and password\n", (AUTHENTICATE,))
_TOO_MANY_CHECKS = Response(
    429, TEXT, b"too many passwords waiting to be checked; try again\n", (("Retry-After", "1"),)
)
_EVENTS_HEAD = Response(200, EVENTS, b"", (("Cache-Control", "no-store"),))
_HTTPS_ONLY = Response(400, TEXT, b"this server speaks HTTPS only: ask https:// rather than http://\n")
# Each health endpoint and the check it answers with.
HEALTH_PATHS: dict[str, Callable[[Health], tuple[bool, str]]] = {
    "/-/healthy": Health.live,
    "/-/ready": Health.ready,
    "/healthz": Health.ready,  # the name before /-/ready; kept for one release
}


class _Phase(enum.Enum):
    """What a connection waits for from its client; the value says it in logs."""

    HEAD = "to send its request head"
    AUTH = "for its password to be checked"
    IDLE = "to send another request"
    ANSWER = "to read its answer"
    CLOSE = "to close"
    LIVE = "to read its events"


class _Connection:  # pylint: disable=too-many-instance-attributes  # one client's socket, phase and buffers
    """One client connection and what the server holds for it."""

    __slots__ = (
        "sock",
        "peer",
        "phase",
        "since",
        "received",
        "unsent",
        "keep_alive",
        "discarded",
        "open",
        "handshaking",
        "topic",
        "sent_version",
        "next_event_at",
    )

    def __init__(self, sock: socket.socket, peer: str, handshaking: bool = False):
        self.sock = sock
        self.peer = peer
        self.handshaking = handshaking  # a TLS handshake is under way
        self.phase = _Phase.HEAD
        self.since = 0.0  # when the current phase began, time.monotonic()
        self.received = bytearray()
        self.unsent = memoryview(b"")
        self.keep_alive = False
        self.discarded = 0
        self.open = True
        self.topic: Optional[str] = None  # the live view's topic it follows
        self.sent_version = 0  # of the latest event it was sent
        self.next_event_at = 0.0  # time.monotonic() before which it gets no event


def _within_open_files(flag: str, wanted: int, what: str, beside: int = 0) -> int:
    """``wanted``, or less if the open-files limit would not leave the
    exporter descriptors for its own work and for ``beside`` connections."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - RESERVED_DESCRIPTORS - beside
    if soft == resource.RLIM_INFINITY or wanted <= room:
        return wanted
    allowed = max(0 if beside else 1, room)
    logger.warning(
        "%s %d is more than the open-files limit (ulimit -n) of %d allows beside the %d descriptors kept for "
        "the exporter's own work%s: serving at most %d %s",
        flag,
        wanted,
        soft,
        RESERVED_DESCRIPTORS,
        f" and {beside} connections" if beside else "",
        allowed,
        what,
    )
    return allowed


def _listening_socket(address: tuple[str, int]) -> socket.socket:
    """A non-blocking socket listening on ``address``, an IPv4 or IPv6
    address or a host name (``::`` listens on IPv4 too where the host
    allows); raises OSError (with the system's own message) if it cannot be
    bound."""
    host, port = address
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):  # a host without IPv4 serves IPv6 only
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # accepted sockets inherit it
        listener.bind(sockaddr)
        listener.listen(LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


class _PasswordChecks:
    """Checks passwords on a thread of its own, one at a time, and hands
    the outcomes back to the serving thread, which ``wake`` wakes up. The
    thread starts with the first check."""

    def __init__(self, wake: Callable[[], None]):
        self._auth = BasicAuth({})
        self._wake = wake
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="password-check")
        self.pending = 0  # submitted, and not yet taken back by finished()
        self._done: deque[tuple[BasicAuth, _Connection, Request, Credentials, bool]] = deque()

    def auth_for(self, users: Mapping[str, bytes]) -> BasicAuth:
        """The checker for ``users``: the same one while they stay the same."""
        if self._auth.users != users:
            self._auth = BasicAuth(users)
        return self._auth

    def submit(self, auth: BasicAuth, connection: _Connection, request: Request, credentials: Credentials) -> None:
        """Checks ``credentials`` with ``auth``; the outcome comes back from ``finished``."""
        self.pending += 1

        def check() -> None:
            outcome = False
            try:
                outcome = auth.check(credentials)
            except Exception:  # pylint: disable=broad-exception-caught  # a bug refuses one request, never all
                logger.exception("cannot check the password of %s", connection.peer)
            self._done.append((auth, connection, request, credentials, outcome))
            self._wake()

        self._thread.submit(check)

    def finished(self) -> Iterator[tuple[_Connection, Request, bool]]:
        """The checks done since the last call, each outcome remembered by its checker."""
        while self._done:
            auth, connection, request, credentials, outcome = self._done.popleft()
            self.pending -= 1
            auth.remember(credentials, outcome)
            yield connection, request, outcome

    def stop(self) -> None:
        """Drops the checks not begun and waits for the one under way."""
        self._thread.shutdown(wait=True, cancel_futures=True)


class ExporterHTTPServer:  # pylint: disable=too-many-instance-attributes  # its sockets, queues and settings
    """Serves the exporter's endpoints on one thread, within ``limits``, as ``web`` asks."""

    def __init__(  # pylint: disable=too-many-arguments
        self,
        address: tuple[str, int],
        metrics: MetricsPage,
        health: Health,
        limits: Limits = Limits(),
        web: Callable[[], WebConfig] = WebConfig,
        live: Optional[tuple["LiveSite", "LiveEvents"]] = None,
    ):
        self.metrics = metrics
        self.health = health
        self.site, self.events = live if live is not None else (None, None)
        self.web = web  # the current web configuration (WebConfigFile reads a changed file again)
        self._passwords = _PasswordChecks(self._wake_up)
        self._stopping = False
        connections = _within_open_files("--web.max-connections", limits.max_connections, "connections")
        live = _within_open_files("--web.max-live-clients", limits.max_live_clients, "live clients", connections)
        self.limits = replace(limits, max_connections=connections, max_live_clients=live)
        self._timeouts = {
            _Phase.HEAD: limits.head_timeout,
            _Phase.AUTH: limits.write_timeout,
            _Phase.IDLE: limits.idle_timeout,
            _Phase.ANSWER: limits.write_timeout,
            _Phase.CLOSE: limits.head_timeout,
            _Phase.LIVE: limits.write_timeout,  # since the last event it read whole
        }
        # Each phase's connections in the order they entered it: with one
        # timeout per phase, that is also the order of their deadlines.
        self._waiting: dict[_Phase, OrderedDict[_Connection, None]] = {phase: OrderedDict() for phase in _Phase}
        self._listener = _listening_socket(address)
        self._wakeup, self._wake = socket.socketpair()
        self._wake.setblocking(False)  # a wake-up already pending is enough: never wait to add one
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wakeup, selectors.EVENT_READ)
        self._accept_paused_until: Optional[float] = None
        self._next_live_send: Optional[float] = None  # when a live client may next be sent something
        self._warned_at: dict[str, float] = {}
        self._thread: Optional[threading.Thread] = None
        if self.events is not None:
            self.events.on_publish = self._wake_up

    @property
    def server_address(self) -> tuple[str, int]:
        """The (host, port) listened on: the port is the one bound when 0 was asked for."""
        return self._listener.getsockname()[:2]

    def start(self) -> "ExporterHTTPServer":
        """Serves on a background thread."""
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes every socket."""
        self._stopping = True
        self._wake_up()
        if self._thread is not None:
            self._thread.join()
        self._passwords.stop()
        for queue in self._waiting.values():
            for connection in list(queue):
                self._close(connection)
        self._selector.close()
        for sock in (self._listener, self._wakeup, self._wake):
            sock.close()

    def _wake_up(self) -> None:
        with contextlib.suppress(OSError):  # closed: the server has stopped
            self._wake.send(b"\0")

    def _serve(self) -> None:
        while True:
            ready = self._selector.select(self._seconds_to_next_deadline())
            # New connections first: a scraper's request is complete on arrival and is answered at once.
            ready.sort(key=lambda event: event[0].fileobj is not self._listener)
            for key, _ in ready:
                if key.fileobj is self._wakeup:
                    if self._stopping:
                        return
                    self._wakeup.recv(4096)
                    self._answer_checked()
                elif key.fileobj is self._listener:
                    self._accept()
                elif key.data is not None and key.data.open:
                    self._on_ready(key.data)
            self._send_events()
            self._close_expired()
            self._resume_accepting()

    def _seconds_to_next_deadline(self) -> Optional[float]:
        deadlines = [
            next(iter(queue)).since + self._timeouts[phase] for phase, queue in self._waiting.items() if queue
        ]
        if self._accept_paused_until is not None:
            deadlines.append(self._accept_paused_until)
        if self._next_live_send is not None:
            deadlines.append(self._next_live_send)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _open_connections(self) -> int:
        return sum(len(queue) for phase, queue in self._waiting.items() if phase is not _Phase.LIVE)

    def _accept(self) -> None:
        """Accepts the connections waiting, up to ``ACCEPTS_PER_PASS``.

        The listener is readable, so one is waiting. Out of descriptors,
        accept() fails whether one is waiting or not: only a first failure
        says one is, and makes room for it."""
        for attempt in range(ACCEPTS_PER_PASS):
            try:
                sock, (host, port, *_) = self._listener.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue  # the client gave up before it was accepted
            except OSError as exc:  # out of descriptors (EMFILE, ENFILE) or memory
                if attempt == 0:
                    self._warn("accept", "cannot accept connections: %s; closing the one that has waited longest", exc)
                    if not self._close_longest_waiting(f"cannot accept: {exc}"):
                        self._pause_accepting()
                return  # if one is waiting, the listener is still readable: the next round accepts it
            self._admit(sock, f"{host}:{port}")

    def _admit(self, sock: socket.socket, peer: str) -> None:
        if self._open_connections() >= self.limits.max_connections:
            self._warn(
                "limit",
                "%d connections open, the limit: each new one closes the one that has waited longest on its "
                "client (--web.max-connections)",
                self.limits.max_connections,
            )
            self._close_longest_waiting("making room for a new connection")
        sock.setblocking(False)
        # Headers and body are one write, but a large body goes in several.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self.web().tls
        if tls is not None:
            sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        connection = _Connection(sock, peer, handshaking=tls is not None)
        self._selector.register(sock, selectors.EVENT_READ, connection)
        self._enter(connection, _Phase.HEAD)
        self._on_ready(connection)  # a scraper's request is usually there already: answer it this round

    def _pause_accepting(self) -> None:
        self._selector.unregister(self._listener)
        self._accept_paused_until = time.monotonic() + self.limits.accept_backoff

    def _resume_accepting(self) -> None:
        if self._accept_paused_until is not None and time.monotonic() >= self._accept_paused_until:
            self._accept_paused_until = None
            self._selector.register(self._listener, selectors.EVENT_READ)

    def _warn(self, topic: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned_at.get(topic, -WARNING_INTERVAL) >= WARNING_INTERVAL:
            self._warned_at[topic] = now
            logger.warning(message, *args)

    def _enter(self, connection: _Connection, phase: _Phase) -> None:
        if (connection.phase is _Phase.ANSWER) != (phase is _Phase.ANSWER):
            events = selectors.EVENT_WRITE if phase is _Phase.ANSWER else selectors.EVENT_READ
            self._selector.modify(connection.sock, events, connection)
        self._waiting[connection.phase].pop(connection, None)
        connection.phase, connection.since = phase, time.monotonic()
        self._waiting[phase][connection] = None

    def _close_expired(self) -> None:
        now = time.monotonic()
        for phase, queue in self._waiting.items():
            timeout = self._timeouts[phase]
            while queue and (oldest := next(iter(queue))).since + timeout <= now:
                self._close(oldest, f"waited {timeout:g} s {phase.value}")

    def _close_longest_waiting(self, reason: str) -> bool:
        """Closes a connection already answered and closing, else the one
        that has waited longest on its client; false if there is none."""
        closing = self._waiting[_Phase.CLOSE]
        waiting = (queue for phase, queue in self._waiting.items() if queue and phase is not _Phase.LIVE)
        fronts = [next(iter(closing))] if closing else [next(iter(queue)) for queue in waiting]
        if not fronts:
            return False
        longest = min(fronts, key=lambda connection: connection.since)
        self._close(longest, f"{reason}; it had waited {time.monotonic() - longest.since:.1f} s {longest.phase.value}")
        return True

    def _close(self, connection: _Connection, reason: Optional[str] = None) -> None:
        if reason:
            logger.debug("closed %s: %s", connection.peer, reason)
        self._waiting[connection.phase].pop(connection, None)
        self._selector.unregister(connection.sock)
        if connection.topic is not None and self.events is not None:
            self.events.unwatch(connection.topic)
            connection.topic = None
        if connection.unsent:
            # Reset rather than leave the kernel holding an answer nobody reads.
            with contextlib.suppress(OSError):
                connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.sock.close()
        connection.open = False

    def _on_ready(self, connection: _Connection) -> None:
        try:
            if connection.handshaking:
                self._handshake(connection)
            elif connection.phase is _Phase.LIVE:
                self._on_live_ready(connection)
            elif connection.phase is _Phase.ANSWER:
                self._write(connection)
            else:
                self._read(connection)
        except Exception:  # pylint: disable=broad-exception-caught  # a bug costs one connection, never the server
            logger.exception("closed %s after an unexpected error", connection.peer)
            self._close(connection)

    def _handshake(self, connection: _Connection) -> None:
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(sock, selectors.EVENT_READ, connection)
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(sock, selectors.EVENT_WRITE, connection)
            return
        except (ssl.SSLError, OSError) as exc:
            # A client without a valid certificate, or not speaking TLS: its business, at debug level.
            if getattr(exc, "reason", None) == "HTTP_REQUEST":
                self._answer_in_plain_text(connection, sock)
            else:
                self._close(connection, f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}")
            return
        if self.web().client_allowed_sans and not self._san_allowed(sock):
            self._close(connection, "its certificate names none of client_allowed_sans")
            return
        connection.handshaking = False
        self._selector.modify(sock, selectors.EVENT_READ, connection)
        self._read(connection)  # the request may have come with the handshake's last message

    def _answer_in_plain_text(self, connection: _Connection, sock: ssl.SSLSocket) -> None:
        """Tells a client that sent plain HTTP to the TLS port to use HTTPS, as Go's servers do."""
        self._selector.unregister(sock)
        connection.sock = socket.socket(fileno=sock.detach())
        connection.sock.setblocking(False)
        connection.handshaking = False
        self._selector.register(connection.sock, selectors.EVENT_READ, connection)
        self._reply(connection, _HTTPS_ONLY, keep_alive=False)

    def _san_allowed(self, sock: ssl.SSLSocket) -> bool:
        names = (value for _, value in (sock.getpeercert() or {}).get("subjectAltName", ()))
        return any(name in self.web().client_allowed_sans for name in names)

    def _read(self, connection: _Connection) -> None:
        lingering = connection.phase is _Phase.CLOSE
        wanted = LINGER_BYTES if lingering else self.limits.max_head_bytes + 1 - len(connection.received)
        data = self._receive(connection, wanted)
        if data is None:
            return
        if not data:
            self._close(connection)
        elif lingering:
            connection.discarded += len(data)
            if connection.discarded > LINGER_BYTES:
                self._close(connection)
        else:
            if connection.phase is _Phase.IDLE:
                self._enter(connection, _Phase.HEAD)
            connection.received += data
            if connection.phase is _Phase.HEAD:  # not while its password is being checked
                self._answer_if_complete(connection)

    def _receive(self, connection: _Connection, wanted: int) -> Optional[bytes]:
        """Up to ``wanted`` bytes the client sent, ``b""`` once it closed;
        None when nothing has come yet, or when the read failed (the
        connection is then closed)."""
        try:
            return connection.sock.recv(wanted)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except ssl.SSLZeroReturnError:  # the client closed its TLS session
            return b""
        except OSError as exc:
            self._close(connection, f"read failed: {exc}")
            return None

    def _answer_if_complete(self, connection: _Connection) -> None:
        end = end_of_head(connection.received)
        if end is None or end[1] > self.limits.max_head_bytes:
            if len(connection.received) > self.limits.max_head_bytes:
                body = f"request head larger than {self.limits.max_head_bytes} bytes\n".encode()
                self._reply(connection, Response(431, TEXT, body), keep_alive=False)
            return
        head = bytes(connection.received[: end[0]])
        del connection.received[: end[1]]  # what remains was pipelined
        try:
            request = parse_request(head)
        except BadRequest as exc:
            self._reply(connection, Response(exc.status, TEXT, f"{exc}\n".encode()), keep_alive=False)
            return
        users = self.web().users
        if not users:
            self._respond(connection, request, self._answer(request))
            return
        auth = self._passwords.auth_for(users)
        credentials = Credentials.parse(request.authorization)
        known = auth.known(credentials) if credentials else False
        if known is not None:
            self._respond(connection, request, self._answer(request) if known else _UNAUTHORIZED)
        elif self._passwords.pending >= MAX_PENDING_AUTH_CHECKS:
            self._warn("auth", "%d passwords wait to be checked: new ones get a 429", MAX_PENDING_AUTH_CHECKS)
            self._respond(connection, request, _TOO_MANY_CHECKS)
        else:
            assert credentials is not None
            self._enter(connection, _Phase.AUTH)
            self._passwords.submit(auth, connection, request, credentials)

    def _answer_checked(self) -> None:
        for connection, request, outcome in self._passwords.finished():
            if connection.open and connection.phase is _Phase.AUTH:
                self._enter(connection, _Phase.HEAD)
                self._respond(connection, request, self._answer(request) if outcome else _UNAUTHORIZED)

    def _respond(self, connection: _Connection, request: Request, answer: Union[Response, str]) -> None:
        if isinstance(answer, str):  # an event stream's topic
            if len(self._waiting[_Phase.LIVE]) < self.limits.max_live_clients:
                self._start_live(connection, request, answer)
                return
            self._warn("live", "%d live clients, the limit: new ones get a 503 (--web.max-live-clients)",
                       self.limits.max_live_clients)
            answer = Response(
                503,
                TEXT,
                f"too many live clients: at most {self.limits.max_live_clients} follow the live view at once "
                "(--web.max-live-clients); try again later\n".encode(),
                (("Retry-After", "5"),),
            )
        response = answer
        logger.debug(
            '%s "%s %s %s" %d', connection.peer, request.method, request.target, request.version, response.status
        )
        # Pipelined requests are answered one per connection: the client sends the rest again on a new one.
        keep_alive = request.keep_alive and not connection.received
        self._reply(connection, response, keep_alive, request.method != "HEAD", request.version)

    def _answer(self, request: Request) -> Union[Response, str]:
        """The answer to ``request``, or the topic of the event stream it asks for."""
        if request.method not in ("GET", "HEAD"):
            return Response(405, TEXT, b"method not allowed; use GET or HEAD\n", (("Allow", "GET, HEAD"),))
        try:
            return self._answer_path(request)
        except Exception:  # pylint: disable=broad-exception-caught  # a failed render is a 500, not a dead server
            logger.exception("cannot answer %s %s", request.method, request.path)
            return Response(500, TEXT, b"internal error; see the exporter's log\n")

    def _answer_path(self, request: Request) -> Union[Response, str]:
        path = request.path
        if path == "/metrics":
            compress = accepts_gzip(request.accept_encoding)
            body, content_type = self.metrics.render(request.accept, compress)
            encoding = (("Content-Encoding", "gzip"),) if compress else ()
            return Response(200, content_type, body, (*encoding, ("Vary", "Accept-Encoding")))
        if path in HEALTH_PATHS:
            healthy, text = HEALTH_PATHS[path](self.health)
            return Response(200 if healthy else 503, TEXT, f"{text}\n".encode())
        live = self._live_answer(request) if self.site is not None else None
        if live is not None:
            return live
        if path == "/":
            return Response(200, "text/html; charset=utf-8", LANDING_PAGE)
        return Response(404, TEXT, b"not found; see /metrics\n")

    def _live_answer(self, request: Request) -> Union[Response, str, None]:
        """A live view page, the topic of an event stream (headers only for
        HEAD), or None for a path that is neither."""
        assert self.site is not None
        page = self.site.page(request.path)
        if page is not None:
            return page
        topic = self.site.topic(request.path)
        return _EVENTS_HEAD if isinstance(topic, str) and request.method == "HEAD" else topic

    # Live clients: event streams.

    def _start_live(self, connection: _Connection, request: Request, topic: str) -> None:
        """Answers with an event stream of ``topic``: its head now, its
        latest event as soon as there is one."""
        assert self.events is not None
        logger.debug('%s "%s %s %s" 200 (events)', connection.peer, request.method, request.target, request.version)
        head = [
            "HTTP/1.1 200 OK",
            f"Server: {SERVER}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {EVENTS}",
            "Cache-Control: no-store",
            "X-Accel-Buffering: no",  # a proxy such as nginx passes each event on at once
            "Connection: close",  # the stream ends when the connection does
        ]
        head.extend(f"{name}: {value}" for name, value in self.web().headers)
        with contextlib.suppress(OSError):
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LIVE_SEND_BUFFER)
        connection.received.clear()
        connection.topic = topic
        self.events.watch(topic)
        self._enter(connection, _Phase.LIVE)
        self._send_live(connection, ("\r\n".join(head) + f"\r\n\r\nretry: {RETRY_MILLISECONDS}\n\n").encode("latin-1"))

    def _send_events(self) -> None:
        """Sends each live client with nothing unsent the latest event of its
        topic if it has not had it and may have one now, else a comment
        if it has had nothing for ``heartbeat`` seconds; notes when the
        next may be sent something."""
        live = self._waiting[_Phase.LIVE]
        self._next_live_send = None
        if not live:
            return
        assert self.events is not None
        now, sends, next_send = time.monotonic(), 0, float("inf")
        # Those that read everything longest ago first: a completed write moves a client to the end.
        for connection in list(live):
            if connection.unsent or not connection.open:
                continue  # it is sent something when it has read what it was sent
            latest = self.events.latest(connection.topic or "")
            news = latest is not None and latest[0] > connection.sent_version
            due = connection.next_event_at if news else connection.since + self.limits.heartbeat
            if due > now:
                next_send = min(next_send, due)
            elif sends == LIVE_SENDS_PER_PASS:
                next_send = now  # the rest next pass, after the scrapes waiting
                break
            else:
                sends += 1
                if news:
                    assert latest is not None
                    connection.sent_version = latest[0]
                    self._send_live(connection, latest[1])
                    # From the send, not from the pass's start: sends are never closer than the interval.
                    connection.next_event_at = time.monotonic() + MIN_EVENT_INTERVAL
                else:
                    self._send_live(connection, b": keep-alive\n\n")
                next_send = min(next_send, now + min(MIN_EVENT_INTERVAL, self.limits.heartbeat))
        self._next_live_send = None if next_send == float("inf") else next_send

    def _send_live(self, connection: _Connection, data: bytes) -> None:
        connection.unsent = memoryview(data)
        self._write_live(connection)

    def _write_live(self, connection: _Connection) -> None:
        """Sends what a live client has not been sent yet; once it has all
        of it, waits for news (and for the client to close)."""
        try:
            sent = connection.sock.send(connection.unsent)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError as exc:
            self._close(connection, f"write failed: {exc}")
            return
        connection.unsent = connection.unsent[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.unsent else 0)
        if self._selector.get_key(connection.sock).events != events:
            self._selector.modify(connection.sock, events, connection)
        if not connection.unsent:
            self._enter(connection, _Phase.LIVE)  # it reads: its deadline starts again

    def _on_live_ready(self, connection: _Connection) -> None:
        """A live client's socket is writable (it read some of what was
        sent) or readable (it closed, or sent what is discarded)."""
        if connection.unsent:
            self._write_live(connection)
        if not connection.open:
            return
        data = self._receive(connection, LINGER_BYTES)
        if data is None:
            return
        if not data:
            self._close(connection)
            return
        connection.discarded += len(data)
        if connection.discarded > LINGER_BYTES:  # a live client has nothing to say
            self._close(connection, "it sent more than a live client may")

    def _reply(
        self,
        connection: _Connection,
        response: Response,
        keep_alive: bool,
        send_body: bool = True,
        version: str = "HTTP/1.1",
    ) -> None:
        connection.unsent = memoryview(response.encode(send_body, keep_alive, version, self.web().headers))
        connection.keep_alive = keep_alive
        self._write(connection)

    def _write(self, connection: _Connection) -> None:
        try:
            sent = connection.sock.send(connection.unsent)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError as exc:  # the client reset or went away
            self._close(connection, f"write failed: {exc}")
            return
        connection.unsent = connection.unsent[sent:]
        if connection.unsent:
            if connection.phase is not _Phase.ANSWER:
                self._enter(connection, _Phase.ANSWER)
        elif connection.keep_alive:
            self._enter(connection, _Phase.IDLE)
        else:
            if isinstance(connection.sock, ssl.SSLSocket):
                with contextlib.suppress(OSError):  # sends TLS's close_notify; the peer's is not awaited
                    connection.sock.unwrap()
            try:
                connection.sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                self._close(connection, f"shutdown failed: {exc}")
                return
            self._enter(connection, _Phase.CLOSE)
