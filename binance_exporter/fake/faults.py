"""The fake Binance's faults: what a fault is made of (``Fault``, its
fields in ``FAULT_FIELDS``; ``StreamFault`` for the websocket streams,
``STREAM_FAULT_FIELDS``), the answer it makes (``Reply``), and how an
answer's body is made and sent: encoded, padded, endless, gzipped, a gzip
bomb, trickled, given up on when the client goes away.

The simulator (``simulator``) decides which fault answers a request, and
the stream server (``streams``) which one a connection gets; this module is
everything a REST fault can do once it does.
"""

from __future__ import annotations

import functools
import json
import math
import re
import select
import socket
import textwrap
import threading
import time
import zlib
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar, Iterable, Iterator, NamedTuple, Optional, Union
from urllib.parse import parse_qs, urlsplit

# The REST paths the fake Binance serves, and so the paths a fault can be for.
REST_PATHS = (
    "/api/v3/ping",
    "/api/v3/exchangeInfo",
    "/api/v3/ticker/24hr",
    "/api/v3/depth",
    "/api/v3/ticker/bookTicker",
    "/api/v3/aggTrades",
)
MAX_BODY_BYTES = 2**40
# A gzip bomb is built in memory, about 1 byte per 1000 it inflates to, at
# some 3 s per GiB: 4 GiB is a 4 MB body.
MAX_GZIP_BOMB = 2**32
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# How often an answer that waits (a delay, a trickle, a client that does
# not read) checks whether the client has gone or the simulator is stopping.
POLL_SECONDS = 0.1
PADDING = b" " * 65536  # JSON allows any amount of whitespace after a value
ENDLESS_LEVEL = b'["0.00000001","1.00000000"],'


def valid_seconds(value: float) -> bool:
    """Whether ``value`` is a finite number of seconds, 0 or more."""
    return math.isfinite(value) and value >= 0


def _header_map(headers: dict) -> bool:
    """Header names and values that go on the wire as they are."""
    return all(
        isinstance(name, str)
        and isinstance(value, str)
        and re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name)
        and re.fullmatch(r"[\t\x20-\x7e\x80-\xff]*", value)
        for name, value in headers.items()
    )


class FaultField(NamedTuple):
    """One field of a fault: its type, what a valid value is, and what it does."""

    kind: Any  # the Python type(s) of its value
    valid: Callable[[Any], bool]
    requirement: str  # what the error message asks for
    meaning: str  # what --help and the README say it does


FAULT_FIELDS = {
    "path": FaultField(
        str,
        REST_PATHS.__contains__,
        "one of " + ", ".join(REST_PATHS) + " (or stream, for a stream fault)",
        "the endpoint it answers (required)",
    ),
    "symbol": FaultField(str, bool, "a symbol", "only requests naming this symbol in symbol or symbols"),
    "status": FaultField(
        int, lambda v: 100 <= v <= 599, "an HTTP status from 100 to 599", "the HTTP status to answer (default 200)"
    ),
    "body": FaultField(
        bytes,
        lambda v: True,
        "a string",
        "the body to send; without it, a fault with status 200 sends the real answer, others an empty body",
    ),
    "headers": FaultField(
        dict, _header_map, "an object of header names and string values", "extra response headers, e.g. Retry-After"
    ),
    "delay": FaultField((int, float), valid_seconds, "seconds, 0 or more", "seconds to wait before answering"),
    "reset": FaultField(bool, lambda v: True, "true or false", "reset the connection instead of answering"),
    "truncate_at": FaultField(
        int, lambda v: v >= 0, "a byte count, 0 or more", "close the connection after this many bytes of the body"
    ),
    "trickle_bytes_per_second": FaultField(
        int,
        lambda v: v >= 1,
        "bytes per second, 1 or more",
        "send the answer, headers and body, at this many bytes per second: no read ever times out, yet it "
        "takes forever",
    ),
    "endless": FaultField(
        bool,
        lambda v: True,
        "true or false",
        f"a chunked body that never ends: the body (default [), then {ENDLESS_LEVEL.decode()} forever",
    ),
    "body_bytes": FaultField(
        int,
        lambda v: 0 <= v <= MAX_BODY_BYTES,
        f"a byte count from 0 to {MAX_BODY_BYTES}",
        "a body of exactly this many bytes, made as it is sent: the body (or the real answer) cut, or padded "
        "with spaces",
    ),
    "gzip_bomb": FaultField(
        int,
        lambda v: 0 <= v <= MAX_GZIP_BOMB,
        f"a byte count from 0 to {MAX_GZIP_BOMB}",
        "a gzip-encoded body that inflates to this many bytes: the body (default []) padded with spaces; "
        "built when injected (1 GB inflated is about 1 MB sent, 3 s to build)",
    ),
    "gzip": FaultField(
        bool,
        lambda v: True,
        "true or false",
        "true: gzip the body whatever the client accepts; false: never; unset: the real answer is gzipped "
        "when the client accepts it, a body given here is not",
    ),
    "location": FaultField(
        str,
        lambda v: re.fullmatch(r"(/|https?://)[\x21-\x7e]*", v) is not None,
        "a path or an http(s) URL",
        "the Location of a 301, 302, 303, 307 or 308; {n} in it becomes how many times the fault has answered, "
        "so each redirect goes somewhere new; the fault answers the paths it redirects to as well: a loop",
    ),
    "lag_changes": FaultField(
        int,
        lambda v: v >= 1,
        "a count of changes, 1 or more",
        "/api/v3/depth only: the real answer as the book was this many changes ago, its lastUpdateId as far "
        "behind: a snapshot older than the stream",
    ),
    "after": FaultField(
        (int, float), valid_seconds, "seconds, 0 or more", "seconds after injection before it starts"
    ),
    "duration": FaultField(
        (int, float), valid_seconds, "seconds, 0 or more", "seconds it lasts once started (default: until cleared)"
    ),
    "times": FaultField(
        int, lambda v: v >= 1, "a count, 1 or more", "requests it answers before it ends (default: all)"
    ),
}
# The fields that shape an answer: a reset sends none.
ANSWER_FIELDS = frozenset(FAULT_FIELDS) - {"path", "symbol", "delay", "reset", "after", "duration", "times"}
BODY_KINDS = ("endless", "body_bytes", "gzip_bomb")


class _Scheduled:
    """What REST and stream faults share: fields checked against a table
    (``FIELDS``), a JSON form, and a schedule (``after``, ``duration``,
    ``times``). Mixed into dataclasses that have those attributes."""

    FIELDS: ClassVar[dict[str, FaultField]]
    after: float
    duration: Optional[float]
    times: Optional[int]
    fired: int
    injected_at: float

    def _check_fields(self) -> None:
        defaults = self._defaults()
        for name, spec in self.FIELDS.items():
            value = getattr(self, name)
            if value is None and defaults[name] is None:
                continue
            kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
            well_typed = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
            if not (well_typed and spec.valid(value)):
                shown = repr(value.decode(errors="replace") if isinstance(value, bytes) else value)
                raise ValueError(f"fault field {name!r} must be {spec.requirement}, not {shown[:80]}")

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {
            f.name: f.default if f.default_factory is MISSING else f.default_factory()
            for f in fields(cls)  # type: ignore[arg-type]  # a dataclass
        }

    def given(self) -> set[str]:
        """The names of the fields that are not at their defaults."""
        defaults = self._defaults()
        return {name for name in self.FIELDS if getattr(self, name) != defaults[name]}

    def listing(self, now: float) -> dict[str, Any]:
        """Its entry in GET /sim/faults: its fields as POSTed, whether it
        has started, how often it has answered and how often it still will."""
        spec = {name: getattr(self, name) for name in self.FIELDS if name in self.given()}
        if isinstance(spec.get("body"), bytes):
            spec["body"] = spec["body"].decode(errors="replace")
        remaining = None if self.times is None else self.times - self.fired
        return {**spec, "started": self.started(now), "fired": self.fired, "remaining": remaining}

    def started(self, now: float) -> bool:
        """Whether its ``after`` has passed."""
        return now >= self.injected_at + self.after

    def over(self, now: float) -> bool:
        """Whether it has answered its ``times`` or lasted its ``duration``."""
        if self.times is not None and self.fired >= self.times:
            return True
        return self.duration is not None and now >= self.injected_at + self.after + self.duration


@dataclass
class Fault(_Scheduled):  # pylint: disable=too-many-instance-attributes  # one attribute per field of the JSON form
    """A misbehaviour served instead of the real answer to requests for
    ``path`` (and, if given, naming ``symbol`` in ``symbol``/``symbols``).
    ``FAULT_FIELDS`` says what each field does; they compose: e.g.
    ``status`` + ``body`` + ``trickle_bytes_per_second``.

    It starts ``after`` seconds after it is injected and lasts ``duration``
    seconds (None: until cleared), for at most ``times`` requests (None:
    all). A matching request waits ``delay`` seconds, then gets its
    connection reset (``reset``) or an answer: ``status`` with ``headers``
    and a body, which is ``body``, or the real answer when ``body`` is None
    and ``status`` is 200, made ``endless``, ``body_bytes`` long or a
    ``gzip_bomb``, maybe gzipped (``gzip``), cut short after
    ``truncate_at`` bytes, sent at ``trickle_bytes_per_second``; a depth
    answer may be ``lag_changes`` behind the book. Invalid values raise
    ValueError.
    """

    FIELDS: ClassVar[dict[str, FaultField]] = FAULT_FIELDS

    path: str
    symbol: Optional[str] = None
    status: int = 200
    body: Optional[bytes] = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    truncate_at: Optional[int] = None
    trickle_bytes_per_second: Optional[int] = None
    endless: bool = False
    body_bytes: Optional[int] = None
    gzip_bomb: Optional[int] = None
    gzip: Optional[bool] = None
    location: Optional[str] = None
    lag_changes: Optional[int] = None
    after: float = 0.0
    duration: Optional[float] = None
    times: Optional[int] = None
    fired: int = field(default=0, init=False)  # requests answered so far
    injected_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._check_fields()
        given = self.given()
        if self.reset and given & ANSWER_FIELDS:
            raise ValueError(f"a reset sends no answer: leave out {', '.join(sorted(given & ANSWER_FIELDS))}")
        bodies = [kind for kind in BODY_KINDS if kind in given]
        if len(bodies) > 1:
            raise ValueError(f"{' and '.join(bodies)} are different bodies: give one")
        if self.gzip_bomb is not None and self.gzip is not None:
            raise ValueError("a gzip_bomb is gzip-encoded already: leave out gzip")
        if self.location is not None and self.status not in REDIRECT_STATUSES:
            statuses = ", ".join(map(str, REDIRECT_STATUSES))
            raise ValueError(f"a location goes with a redirect status ({statuses}), not {self.status}")
        if self.lag_changes is not None and (self.path != "/api/v3/depth" or given & (ANSWER_FIELDS - {"lag_changes"})):
            raise ValueError("lag_changes makes the real answer of /api/v3/depth older: give it alone, for that path")

    @classmethod
    def from_json(cls, text: bytes) -> Union["Fault", "StreamFault"]:
        """A fault from its JSON form, as POSTed to /sim/faults: the fields
        of ``FAULT_FIELDS``, ``body`` as a string, or with ``"path":
        "stream"`` those of ``STREAM_FAULT_FIELDS``. Raises ValueError with
        a one-line reason if it is not one."""
        try:
            spec = json.loads(text)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ValueError(f"a fault is a JSON object: {exc}") from exc
        if not isinstance(spec, dict) or "path" not in spec:
            raise ValueError("a fault is a JSON object with at least a path")
        if spec["path"] == STREAM_PATH:
            return StreamFault.from_spec(spec)
        unknown = sorted(set(spec) - set(FAULT_FIELDS))
        if unknown:
            raise ValueError(f"unknown fault field {unknown[0]!r}; the fields are {', '.join(FAULT_FIELDS)}")
        if spec.get("body") is not None:
            if not isinstance(spec["body"], str):
                raise ValueError(f"fault field 'body' must be a string, not {spec['body']!r:.80}")
            spec["body"] = spec["body"].encode()
        return cls(**spec)

    def matches(self, path: str, query: str, now: float) -> bool:
        """Whether a request for ``path`` with ``query`` at ``now`` gets this fault."""
        if now < self.injected_at + self.after or self.over(now):
            return False
        if path != self.path:
            return self._redirected_path is not None and self._redirected_path.fullmatch(path) is not None
        return (self.symbol is None or f'"{self.symbol}"' in _symbols_named(query))

    @functools.cached_property
    def _redirected_path(self) -> Optional[re.Pattern]:
        """The paths its ``location`` sends clients to, which it answers too
        (whatever symbol they name): each answer redirects again."""
        if self.location is None:
            return None
        return re.compile(re.escape(urlsplit(self.location).path).replace(re.escape("{n}"), "[0-9]+"))

    def where_to(self) -> Optional[str]:
        """The Location of this answer, {n} filled in."""
        return None if self.location is None else self.location.replace("{n}", str(self.fired))


STREAM_PATH = "stream"
# What a stream fault does, by its action; how each is carried out is the
# stream server's (``streams``).
STREAM_ACTIONS = {
    "gap": "skip one event of the symbol's depth streams: the next event's U jumps past the changes skipped",
    "duplicate": "send the symbol's latest depth event again, as it was",
    "drop_trades": "leave the symbol's aggTrade events out of the stream: the trades stay in the history "
    "GET /api/v3/aggTrades answers from (symbol required)",
    "garbage": "send a text frame that is not JSON (body, default: not json)",
    "drop": "drop the TCP connection at once, with no close frame",
    "close": "close the connection with a close frame of code (default 1001)",
    "stall": "send nothing, read nothing and so answer no ping for seconds (required), then go on "
    "(resume, the default) or drop the connection",
    "shutdown": 'send {"e":"serverShutdown","E":<ms>} as Binance does before maintenance, go on streaming, '
    "and close with 1001 after seconds (default 1)",
    "refuse": "refuse the websocket handshake with status (default 503)",
    "sweep": "remove the best fraction (default 0.9) of one side (default bids) of the symbol's book at once: "
    "one large depth event, and the true book too (symbol required)",
}
STREAM_FAULT_FIELDS = {
    "path": FaultField(str, STREAM_PATH.__eq__, "stream", "stream: a fault of the websocket streams (required)"),
    "action": FaultField(
        str, STREAM_ACTIONS.__contains__, "one of " + ", ".join(STREAM_ACTIONS), "what it does (required): see below"
    ),
    "symbol": FaultField(
        str,
        bool,
        "a symbol",
        "only connections with a stream of this symbol (as REST names it, BTCUSDT), and the symbol a gap, "
        "duplicate, drop_trades or sweep is of",
    ),
    "code": FaultField(int, lambda v: 1000 <= v <= 4999, "a close code from 1000 to 4999", "close: the close code"),
    "status": FaultField(
        int, lambda v: 400 <= v <= 599, "an HTTP status from 400 to 599", "refuse: the HTTP status to answer"
    ),
    "seconds": FaultField(
        (int, float), valid_seconds, "seconds, 0 or more", "stall: how long; shutdown: how long until the close"
    ),
    "resume": FaultField(bool, lambda v: True, "true or false", "stall: go on afterwards, or drop the connection"),
    "body": FaultField(str, lambda v: len(v) <= 2**20, "a string of at most 1 MiB", "garbage: the frame's text"),
    "side": FaultField(str, ("bids", "asks").__contains__, "bids or asks", "sweep: the side swept"),
    "fraction": FaultField(
        (int, float), lambda v: 0 < v <= 1, "a fraction above 0 and at most 1", "sweep: the share of levels removed"
    ),
    "after": FAULT_FIELDS["after"],
    "duration": FAULT_FIELDS["duration"],
    "times": FaultField(
        int,
        lambda v: v >= 1,
        "a count, 1 or more",
        "times it acts before it ends (default: every time it can): handshakes for refuse, events for gap, "
        "duplicate and drop_trades, sweeps, connections otherwise",
    ),
}
# The fields each action takes, besides path, action, symbol and the schedule.
_ACTION_FIELDS = {
    "garbage": {"body"},
    "close": {"code"},
    "stall": {"seconds", "resume"},
    "shutdown": {"seconds"},
    "refuse": {"status"},
    "sweep": {"side", "fraction"},
}


@dataclass
class StreamFault(_Scheduled):  # pylint: disable=too-many-instance-attributes  # one attribute per field
    """A misbehaviour of the websocket streams (``STREAM_ACTIONS``): for
    connections with a stream of ``symbol`` (any connection when None),
    on the schedule of ``Fault``. Invalid values raise ValueError."""

    FIELDS: ClassVar[dict[str, FaultField]] = STREAM_FAULT_FIELDS

    path: str
    action: str
    symbol: Optional[str] = None
    code: int = 1001
    status: int = 503
    seconds: Optional[float] = None
    resume: bool = True
    body: str = "not json"
    side: str = "bids"
    fraction: float = 0.9
    after: float = 0.0
    duration: Optional[float] = None
    times: Optional[int] = None
    fired: int = field(default=0, init=False)  # times it has acted
    injected_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._check_fields()
        extra = self.given() - {"path", "action", "symbol", "after", "duration", "times"}
        if extra - _ACTION_FIELDS.get(self.action, set()):
            raise ValueError(f"{', '.join(sorted(extra))} do not go with the {self.action} action")
        if self.action == "stall" and self.seconds is None:
            raise ValueError("a stall needs seconds: how long it lasts")
        if self.action == "sweep" and self.symbol is None:
            raise ValueError("a sweep needs a symbol: the book it sweeps")
        if self.action == "drop_trades" and self.symbol is None:
            raise ValueError("drop_trades needs a symbol: the trades it drops")

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "StreamFault":
        """A stream fault from its JSON form (a decoded object)."""
        unknown = sorted(set(spec) - set(STREAM_FAULT_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown stream fault field {unknown[0]!r}; the fields are {', '.join(STREAM_FAULT_FIELDS)}"
            )
        if "action" not in spec:
            raise ValueError("a stream fault needs an action: one of " + ", ".join(STREAM_ACTIONS))
        return cls(**spec)

    def acts_on(self, actions: frozenset[str], symbols: Optional[set[str]], now: float) -> bool:
        """Whether it acts now as one of ``actions`` on a connection with
        streams of ``symbols`` (None: whatever its symbol)."""
        if self.action not in actions or not self.started(now) or self.over(now):
            return False
        return self.symbol is None or symbols is None or self.symbol in symbols


def _symbols_named(query: str) -> str:
    params = parse_qs(query)
    names = [f'"{name}"' for name in params.get("symbol", [])]
    return ",".join(names + params.get("symbols", []))


@dataclass(frozen=True)
class Reply:
    """What the server does with one request: wait ``delay`` seconds, then
    reset the connection or send ``status``, ``headers`` and a body made
    from ``body`` (see ``Fault`` for the rest)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    truncate_at: Optional[int] = None
    trickle_bytes_per_second: Optional[int] = None
    endless: bool = False
    body_bytes: Optional[int] = None
    gzip_bomb: Optional[bytes] = None  # the compressed body, sent as it is
    gzip: Optional[bool] = None  # None: when the client accepts it


@functools.lru_cache(maxsize=4)
def gzip_bomb(content: bytes, size: int) -> bytes:
    """A gzip stream that inflates to ``content`` padded with spaces to
    ``size`` bytes; built piece by piece, never holding what it inflates to."""
    return b"".join(_gzipped(_padded(content, size), zlib.Z_BEST_COMPRESSION))


def _padded(content: bytes, size: int) -> Iterator[bytes]:
    """``content`` cut or padded with spaces to exactly ``size`` bytes."""
    head = content[:size]
    yield head
    left = size - len(head)
    while left > 0:
        piece = PADDING[:left]
        left -= len(piece)
        yield piece


def _endless(prefix: bytes) -> Iterator[bytes]:
    yield prefix
    levels = ENDLESS_LEVEL * 2048
    while True:
        yield levels


def _gzipped(chunks: Iterable[bytes], level: int = 6) -> Iterator[bytes]:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: a gzip header and trailer
    for chunk in chunks:
        if compressed := compressor.compress(chunk):
            yield compressed
    yield compressor.flush()


def _chunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked transfer coding of ``chunks``."""
    for chunk in chunks:
        if chunk:
            yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
    yield b"0\r\n\r\n"


def encoded_body(reply: Reply, client_accepts_gzip: bool) -> tuple[dict[str, str], Iterator[bytes]]:
    """The framing headers and the bytes of ``reply``'s body as they go on
    the wire: with a Content-Length when it is known up front, chunked
    when it is not."""
    headers: dict[str, str] = {}
    chunks: Iterable[bytes]
    length: Optional[int]
    compress = reply.gzip is True or (reply.gzip is None and client_accepts_gzip)
    if reply.gzip_bomb is not None:
        headers["Content-Encoding"] = "gzip"
        chunks, length = [reply.gzip_bomb], len(reply.gzip_bomb)
    elif reply.endless or reply.body_bytes is not None:  # made as it is sent
        if reply.endless:
            chunks, length = _endless(reply.body or b"["), None
        else:
            chunks, length = _padded(reply.body, reply.body_bytes or 0), reply.body_bytes
        if compress:
            headers["Content-Encoding"] = "gzip"
            chunks, length = _gzipped(chunks), None
    else:
        body = b"".join(_gzipped([reply.body])) if compress else reply.body
        if compress:
            headers["Content-Encoding"] = "gzip"
        chunks, length = [body], len(body)
    if length is None:
        headers["Transfer-Encoding"] = "chunked"
        return headers, _chunked(chunks)
    headers["Content-Length"] = str(length)
    return headers, iter(chunks)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header accepts gzip (``gzip;q=0`` does not)."""
    for coding in accept_encoding.split(","):
        name, _, params = coding.partition(";")
        if name.strip().lower() == "gzip":
            return re.fullmatch(r"\s*q\s*=\s*0(\.0*)?\s*", params) is None
    return False


class AnswerAbandoned(Exception):
    """An answer given up on: the client went away or the simulator is stopping."""


def _client_gone(sock: socket.socket) -> bool:
    """Whether the client has closed the connection (or its sending half)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class AnswerWriter:
    """One answer on its way to the client: as fast as the client reads,
    or at ``rate`` bytes per second; either way it gives up
    (``AnswerAbandoned``) within ``POLL_SECONDS`` of the simulator stopping
    or the client going away, so no answer outlives either."""

    def __init__(self, sock: socket.socket, stopping: threading.Event, rate: Optional[int]):
        self._sock = sock
        self._stopping = stopping
        self._rate = rate
        self._step = 1 if rate is None else max(1, rate // 10)  # about ten writes a second
        self._started: Optional[float] = None
        self._sent = 0

    def pause(self, seconds: float) -> None:
        """Waits ``seconds``, giving up early as an answer does."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stopping.wait(min(left, POLL_SECONDS)):
                raise AnswerAbandoned("the simulator is stopping")
            if _client_gone(self._sock):
                raise AnswerAbandoned("the client went away")

    def send(self, data: bytes) -> None:
        """Sends ``data``, paced at the rate if there is one."""
        view = memoryview(data)
        while view:
            if self._rate is None:
                piece, view = view, view[len(view) :]
            else:
                if self._started is None:
                    self._started = time.monotonic()
                self.pause(self._started + self._sent / self._rate - time.monotonic())
                piece, view = view[: self._step], view[self._step :]
            self._send_all(piece)

    def _send_all(self, piece: memoryview) -> None:
        self._sock.settimeout(POLL_SECONDS)  # a client that does not read must not block stop()
        while piece:
            if self._stopping.is_set():
                raise AnswerAbandoned("the simulator is stopping")
            try:
                sent = self._sock.send(piece)
            except TimeoutError:
                continue
            piece = piece[sent:]
            self._sent += sent


def _described(table: dict[str, Any]) -> str:
    """``name  meaning`` lines of a table of fields (or of actions), wrapped."""
    return "\n".join(
        textwrap.fill(
            getattr(meaning, "meaning", meaning), 79, initial_indent=f"  {name:<25} ", subsequent_indent=" " * 28
        )
        for name, meaning in table.items()
    )


def fault_help() -> str:
    """The faults part of --help: every field a fault is made of, and the
    stream faults' fields and actions."""
    fields_help = _described(FAULT_FIELDS)
    return (
        "Faults: POST /sim/faults takes one as a JSON object, e.g.\n"
        '  {"path": "/api/v3/depth", "symbol": "ETHBTC", "status": 503, "times": 2};\n'
        "GET /sim/faults lists those in force, with how often each has answered\n"
        "and how often it still will; DELETE /sim/faults clears them. Fields:\n"
        f"{fields_help}\n"
        'Stream faults: {"path": "stream", "action": ..., ...}, e.g.\n'
        '  {"path": "stream", "action": "gap", "symbol": "BTCUSDT", "times": 1}. Fields:\n'
        f"{_described(STREAM_FAULT_FIELDS)}\n"
        "Actions:\n"
        f"{_described(STREAM_ACTIONS)}\n"
        "GET /sim/stats reports the requests, weight and violations seen, and the\n"
        'streams\' connections, messages and violations; POST /sim/market {"frozen": true}\n'
        "holds the market still, false lets it move again."
    )
