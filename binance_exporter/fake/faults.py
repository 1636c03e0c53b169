"""The fake Binance's faults: what a fault is made of (``Fault``, its
fields in ``FAULT_FIELDS``), the answer it makes (``Reply``), and how an
answer's body is made and sent: encoded, padded, endless, gzipped, a gzip
bomb, trickled, given up on when the client goes away.

The simulator (``simulator``) decides which fault answers a request; this
module is everything a fault can do once it does.
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
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional
from urllib.parse import parse_qs, urlsplit

# The REST paths the fake Binance serves, and so the paths a fault can be for.
REST_PATHS = (
    "/api/v3/ping",
    "/api/v3/exchangeInfo",
    "/api/v3/ticker/24hr",
    "/api/v3/depth",
    "/api/v3/ticker/bookTicker",
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
        str, REST_PATHS.__contains__, "one of " + ", ".join(REST_PATHS), "the endpoint it answers (required)"
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


@dataclass
class Fault:  # pylint: disable=too-many-instance-attributes  # one attribute per field of the JSON form
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
    ``truncate_at`` bytes, sent at ``trickle_bytes_per_second``.
    Invalid values raise ValueError.
    """

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
    after: float = 0.0
    duration: Optional[float] = None
    times: Optional[int] = None
    fired: int = field(default=0, init=False)  # requests answered so far
    injected_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        defaults = self._defaults()
        for name, spec in FAULT_FIELDS.items():
            value = getattr(self, name)
            if value is None and defaults[name] is None:
                continue
            kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
            well_typed = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
            if not (well_typed and spec.valid(value)):
                shown = repr(value.decode(errors="replace") if isinstance(value, bytes) else value)
                raise ValueError(f"fault field {name!r} must be {spec.requirement}, not {shown[:80]}")
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

    @classmethod
    def from_json(cls, text: bytes) -> "Fault":
        """A fault from its JSON form, as POSTed to /sim/faults: the fields
        of ``FAULT_FIELDS``, ``body`` as a string. Raises ValueError with a
        one-line reason if it is not one."""
        try:
            spec = json.loads(text)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ValueError(f"a fault is a JSON object: {exc}") from exc
        if not isinstance(spec, dict) or "path" not in spec:
            raise ValueError("a fault is a JSON object with at least a path")
        unknown = sorted(set(spec) - set(FAULT_FIELDS))
        if unknown:
            raise ValueError(f"unknown fault field {unknown[0]!r}; the fields are {', '.join(FAULT_FIELDS)}")
        if spec.get("body") is not None:
            if not isinstance(spec["body"], str):
                raise ValueError(f"fault field 'body' must be a string, not {spec['body']!r:.80}")
            spec["body"] = spec["body"].encode()
        return cls(**spec)

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {f.name: f.default if f.default_factory is MISSING else f.default_factory() for f in fields(cls)}

    def given(self) -> set[str]:
        """The names of the fields that are not at their defaults."""
        defaults = self._defaults()
        return {name for name in FAULT_FIELDS if getattr(self, name) != defaults[name]}

    def listing(self, now: float) -> dict[str, Any]:
        """Its entry in GET /sim/faults: its fields as POSTed, whether it
        has started, how often it has answered and how often it still will."""
        spec = {name: getattr(self, name) for name in FAULT_FIELDS if name in self.given()}
        if "body" in spec:
            spec["body"] = spec["body"].decode(errors="replace")
        remaining = None if self.times is None else self.times - self.fired
        return {**spec, "started": now >= self.injected_at + self.after, "fired": self.fired, "remaining": remaining}

    def over(self, now: float) -> bool:
        """Whether it has answered its ``times`` or lasted its ``duration``."""
        if self.times is not None and self.fired >= self.times:
            return True
        return self.duration is not None and now >= self.injected_at + self.after + self.duration

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


def fault_help() -> str:
    """The faults part of --help: every field a fault is made of."""
    fields_help = "\n".join(
        textwrap.fill(spec.meaning, 79, initial_indent=f"  {name:<25} ", subsequent_indent=" " * 28)
        for name, spec in FAULT_FIELDS.items()
    )
    return (
        "Faults: POST /sim/faults takes one as a JSON object, e.g.\n"
        '  {"path": "/api/v3/depth", "symbol": "ETHBTC", "status": 503, "times": 2};\n'
        "GET /sim/faults lists those in force, with how often each has answered\n"
        "and how often it still will; DELETE /sim/faults clears them. Fields:\n"
        f"{fields_help}\n"
        "GET /sim/stats reports the requests, weight and violations seen."
    )
