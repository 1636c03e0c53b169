"""The fake Binance's websocket streams, from the same market as its REST
endpoints, as Binance's spot streams documentation describes them.

* ``/ws`` and ``/ws/<stream>`` send raw payloads, ``/stream`` and
  ``/stream?streams=a/b/c`` wrap each as ``{"stream": name, "data": payload}``;
  ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY`` and
  ``GET_PROPERTY`` control messages are answered with ``{"result": ..., "id": ...}``
  or ``{"error": {"code": ..., "msg": ...}, "id": ...}``.
* ``<symbol>@depth@100ms`` and ``<symbol>@depth`` (1000 ms): ``depthUpdate``
  events with the final quantity of every level changed since the previous
  event, each event's ``U`` the previous one's ``u`` + 1;
  ``<symbol>@aggTrade``: each aggregate trade as it is made;
  ``<symbol>@bookTicker``: the best bid and ask (``b B a A``) with the
  book's update id ``u`` at that moment, at subscription and whenever
  either changed (at most once a tick);
  ``!ticker_1d@arr``: every second, the 24 h rolling-window tickers of the
  symbols whose values changed.
* Pings every ``ping_interval`` seconds; a connection whose ping has gone
  unanswered for ``pong_timeout`` seconds is closed; the client's pings are
  answered.
* Binance's limits, enforced and counted as violations: 5 incoming messages
  a second (pings and pongs count), 1024 streams a connection, 300
  connection attempts per 5 minutes per IP (handshakes refused with 429).
  A connection ends after ``lifetime_seconds`` (24 h), and one that does not
  read what is sent is dropped after ``send_timeout`` rather than buffered.

``StreamSession`` is one connection's state and protocol, with no I/O: it
answers control messages and says what to send each tick. ``StreamServer``
moves its messages, on an asyncio loop of its own in a daemon thread, and
carries out the stream faults (``faults.StreamFault``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections import Counter, deque
from typing import Any, Callable, Iterator, NamedTuple, Optional, Union
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

from binance_exporter.fake.faults import StreamFault
from binance_exporter.fake.market import UNIT, AggTrade, BookTop, DepthDiff, HistoryLost, Market, from_units

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.1  # the fastest stream's interval: every send loop wakes this often
TICKS_PER_SECOND = 10
STEP_LAG = 0.01  # how long after a market's step the ticks fall, when they keep to its steps
MAX_STREAMS = 1024  # per connection (Binance's)
MAX_MESSAGES_PER_SECOND = 5  # incoming, pings and pongs included (Binance's)
MAX_ATTEMPTS, ATTEMPTS_WINDOW_SECONDS = 300, 300.0  # connection attempts per IP (Binance's)
MAX_CONNECTIONS = 1000  # open at once: this fake's own cap, refused with 503 past it
MAX_ADDRESSES = 10_000  # client addresses whose attempts are remembered
MAX_MESSAGE_BYTES = 65536  # an incoming control message
LIFETIME_SECONDS = 86_400.0
PING_INTERVAL, PONG_TIMEOUT = 20.0, 60.0
SEND_TIMEOUT = 10.0  # a client that takes no data for this long is dropped
TICKER_ARR = "!ticker_1d@arr"
_DEPTH_STREAM = re.compile(r"([a-z0-9]{1,20})@depth(@100ms)?")
_TRADE_STREAM = re.compile(r"([a-z0-9]{1,20})@aggTrade")
_BOOK_TICKER_STREAM = re.compile(r"([a-z0-9]{1,20})@bookTicker")
# What a stream carries.
DEPTH, TRADES, BOOK_TICKER, TICKERS = "depth", "aggTrade", "bookTicker", "tickers"
_COUNTED = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
# The faults, by when they act.
REFUSE = frozenset({"refuse"})
SWEEP = frozenset({"sweep"})
GAP, DUPLICATE, DROP_TRADES = frozenset({"gap"}), frozenset({"duplicate"}), frozenset({"drop_trades"})
CONNECTION_FAULTS = frozenset({"garbage", "drop", "close", "stall", "shutdown"})

FaultSource = Callable[[frozenset, Optional[set]], Optional[StreamFault]]


def no_faults(_actions: frozenset, _symbols: Optional[set]) -> Optional[StreamFault]:
    """The fault source of a server with no faults."""
    return None


def _json(body: Any) -> str:
    return orjson.dumps(body).decode()  # a whole market's ticker array is 1,500 events


# The events the whole market sends tens of thousands of a second are
# written as JSON text directly, in Binance's field order: symbols, stream
# names and numbers need no escaping, and this is several times quicker
# than building a dict and encoding it.


def _levels_text(levels: list[tuple[int, int]]) -> str:
    # ``from_units`` written out: the whole market's peak writes 15,000 events a second.
    return ",".join([f'["{p // UNIT}.{p % UNIT:08d}","{q // UNIT}.{q % UNIT:08d}"]' for p, q in levels])


def depth_text(symbol: str, now_ms: int, diff: DepthDiff) -> str:
    """A ``depthUpdate`` payload as JSON text: the final quantity of every
    level changed (``"0.00000000"``: deleted) from ``U`` to ``u``."""
    return (
        f'{{"e":"depthUpdate","E":{now_ms},"s":"{symbol}","U":{diff.first},"u":{diff.last},'
        f'"b":[{_levels_text(diff.bids)}],"a":[{_levels_text(diff.asks)}]}}'
    )


def trade_text(symbol: str, now_ms: int, trade: AggTrade) -> str:
    """An ``aggTrade`` payload as JSON text, ``trade_event``'s."""
    if not isinstance(trade, AggTrade):  # a recorded market's trade: its fields as recorded
        return _json(trade_event(symbol, now_ms, trade))
    return (
        f'{{"e":"aggTrade","E":{now_ms},"s":"{symbol}","a":{trade.agg_id},"p":"{from_units(trade.price)}",'
        f'"q":"{from_units(trade.qty)}","f":{trade.first_id},"l":{trade.last_id},"T":{trade.time_ms},'
        f'"m":{"true" if trade.buyer_maker else "false"},"M":true}}'
    )


def book_ticker_text(symbol: str, top: BookTop) -> str:
    """A ``bookTicker`` payload as JSON text, as Binance's spot streams
    send it (no event type or time): the book's update id and its best levels."""
    return (
        f'{{"u":{top.update_id},"s":"{symbol}","b":"{from_units(top.bid_price)}","B":"{from_units(top.bid_qty)}",'
        f'"a":"{from_units(top.ask_price)}","A":"{from_units(top.ask_qty)}"}}'
    )


class Stream(NamedTuple):
    """A stream a connection can subscribe to: its name, the symbol it is
    of (None: the whole market), how many ticks apart its events are, and
    what it carries (``DEPTH``, ``TRADES``, ``BOOK_TICKER``, ``TICKERS``)."""

    name: str
    symbol: Optional[str]
    every: int
    kind: str = DEPTH


def parse_stream(name: str, market: Market) -> Stream:
    """The stream called ``name``; ValueError if the market serves none."""
    if name == TICKER_ARR:
        return Stream(name, None, TICKS_PER_SECOND, TICKERS)
    for pattern, kind in ((_TRADE_STREAM, TRADES), (_BOOK_TICKER_STREAM, BOOK_TICKER)):
        match = pattern.fullmatch(name)
        if match is not None and match.group(1).upper() in market.symbols:
            return Stream(name, match.group(1).upper(), 1, kind)
    match = _DEPTH_STREAM.fullmatch(name)
    if match is None or match.group(1).upper() not in market.symbols:
        raise ValueError(f"Invalid request: unknown stream name {name[:60]!r}")
    return Stream(name, match.group(1).upper(), 1 if match.group(2) else TICKS_PER_SECOND)


def trade_event(symbol: str, now_ms: int, trade: AggTrade) -> dict[str, Any]:
    """An ``aggTrade`` payload."""
    return {"e": "aggTrade", "E": now_ms, "s": symbol, **trade.payload()}


def book_top(market: Market, symbol: str) -> Optional[BookTop]:
    """The top of ``symbol``'s book now with its update id, read at once;
    None when a side is empty. A market without ``book_top`` of its own
    (a recorded one) gives it from its whole book."""
    own = getattr(market, "book_top", None)
    if own is not None:
        return own(symbol)
    update_id, bids, asks = market.true_book(symbol)
    if not bids or not asks:
        return None
    return BookTop(update_id, *bids[0], *asks[0])


def ticker_event(record: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The rolling-window (1d) ticker payload of a ticker/24hr record."""
    return {
        "e": "1dTicker",
        "E": now_ms,
        "s": record["symbol"],
        "p": record["priceChange"],
        "P": record["priceChangePercent"],
        "o": record["openPrice"],
        "h": record["highPrice"],
        "l": record["lowPrice"],
        "c": record["lastPrice"],
        "w": record["weightedAvgPrice"],
        "v": record["volume"],
        "q": record["quoteVolume"],
        "O": record["openTime"],
        "C": record["closeTime"],
        "F": record["firstId"],
        "L": record["lastId"],
        "n": record["count"],
    }


# What a ticker event's values are made of: every field of it but the times.
_TICKER_VALUES = (
    "symbol", "priceChange", "priceChangePercent", "openPrice", "highPrice", "lowPrice", "lastPrice",
    "weightedAvgPrice", "volume", "quoteVolume", "firstId", "lastId", "count",
)  # fmt: skip


def error_reply(code: int, msg: str, request_id: Any = None) -> dict[str, Any]:
    """A control message's error answer, as Binance words them."""
    return {"error": {"code": code, "msg": msg}, "id": request_id}


class NoRecord(LookupError):
    """A market has no record of what was asked for, yet: a recorded
    market (``binance_exporter.replay.server``) before the recording holds
    it. A list leaves the symbol out; asked for alone, it is an error."""


class TooManyStreams(Exception):
    """A subscription past ``MAX_STREAMS``: Binance disconnects."""


def _valid_id(request_id: Any) -> bool:
    if request_id is None:
        return True
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return -(2**63) <= request_id < 2**63
    return isinstance(request_id, str) and re.fullmatch(r"[A-Za-z0-9]{1,36}", request_id) is not None


def _read_request(message: Union[str, bytes]) -> tuple[Any, str, list]:
    """(id, method, params) of a control message; ValueError(message, code)
    as Binance words it (code 2 unless given)."""
    try:
        request = json.loads(message)
    except ValueError as exc:
        raise ValueError(f"Invalid JSON: {exc}", 3) from exc
    if not isinstance(request, dict):
        raise ValueError("Invalid request: expected an object")
    request_id = request.get("id")
    if not _valid_id(request_id):
        raise ValueError("Invalid request: request ID must be an unsigned integer")
    method, params = request.get("method"), request.get("params", [])
    if method is None:
        raise ValueError("Invalid request: missing field `method`")
    if method not in _METHODS:
        expected = ", ".join(f"`{name}`" for name in _METHODS)
        raise ValueError(f"Invalid request: unknown variant `{method!s:.40}`, expected one of {expected}")
    if not isinstance(params, list) or not all(isinstance(p, (str, bool)) for p in params):
        raise ValueError("Invalid request: params must be a list of strings")
    return request_id, method, params


class StreamSession:
    """One connection's streams, with no I/O: its subscriptions, where
    each depth stream stands (the ``u`` of its latest event), what its
    ticker array sent last; it answers control messages (``control``) and
    says what to send each tick (``tick``)."""

    def __init__(self, market: Market, combined: bool, max_streams: int = MAX_STREAMS):
        self.market = market
        self.combined = combined
        self.max_streams = max_streams
        self.streams: dict[str, Stream] = {}
        # depth stream: the u of its latest event (sent or skipped); trade
        # stream: the id of its latest trade (sent or dropped)
        self.positions: dict[str, int] = {}
        self.latest: dict[str, str] = {}  # depth stream: the frame of its latest event sent
        self.tops_sent: dict[str, tuple] = {}  # bookTicker stream: the best levels it sent last
        self.tickers_sent: dict[str, tuple] = {}  # symbol: the values the ticker array sent last
        self.ticks = 0

    def symbols(self) -> set[str]:
        """The symbols of its streams."""
        return {stream.symbol for stream in self.streams.values() if stream.symbol}

    def subscribe(self, names: list[str]) -> None:
        """Adds the streams ``names`` (ValueError if one is unknown, and then
        none is added); TooManyStreams past ``max_streams``. A depth stream
        starts from the book's update id now."""
        streams = [parse_stream(name, self.market) for name in names]
        new = {stream.name: stream for stream in streams if stream.name not in self.streams}
        if len(self.streams) + len(new) > self.max_streams:
            raise TooManyStreams(f"{len(self.streams) + len(new)} streams: at most {self.max_streams}")
        for stream in new.values():
            self.streams[stream.name] = stream
            if stream.kind == TRADES:
                self.positions[stream.name] = self.market.last_trade_id(stream.symbol)
            elif stream.kind == DEPTH:
                self.positions[stream.name] = self.market.update_id(stream.symbol)

    def unsubscribe(self, names: list[str]) -> None:
        """Removes the streams ``names``; ValueError if one is unknown."""
        for stream in [parse_stream(name, self.market) for name in names]:
            self.streams.pop(stream.name, None)
            self.positions.pop(stream.name, None)
            self.latest.pop(stream.name, None)
            self.tops_sent.pop(stream.name, None)
        if TICKER_ARR not in self.streams:
            self.tickers_sent.clear()

    def control(self, message: Union[str, bytes]) -> dict[str, Any]:
        """The answer to one control message; TooManyStreams when it
        subscribes past the limit."""
        request_id = None
        try:
            request_id, method, params = _read_request(message)
            return {"result": self._call(method, params), "id": request_id}
        except ValueError as exc:
            code = int(exc.args[1]) if len(exc.args) > 1 else 2
            return error_reply(code, str(exc.args[0]), request_id)

    def _call(self, method: str, params: list) -> Any:
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            names = [p for p in params if isinstance(p, str)]
            if len(names) != len(params):
                raise ValueError("Invalid request: params must be a list of stream names")
            (self.subscribe if method == "SUBSCRIBE" else self.unsubscribe)(names)
            return None
        if method == "LIST_SUBSCRIPTIONS":
            return list(self.streams)
        if not params or params[0] != "combined":
            raise ValueError("Unknown property", 0)
        if method == "GET_PROPERTY":
            return self.combined
        if len(params) != 2 or not isinstance(params[1], bool):
            raise ValueError("Invalid value type: expected Boolean", 1)
        self.combined = params[1]
        return None

    def frame(self, stream: str, payload: Any) -> str:
        """The text frame of one payload, wrapped on a combined connection."""
        return self.wrap(stream, _json(payload))

    def wrap(self, stream: str, text: str) -> str:
        """The text frame of one payload given as JSON text, wrapped on a
        combined connection."""
        return f'{{"stream":"{stream}","data":{text}}}' if self.combined else text

    def tick(self, now_ms: int, faults: FaultSource = no_faults) -> list[str]:
        """The frames of one tick (ticks are ``TICK_SECONDS`` apart), all
        stamped ``now_ms``; see ``frames``."""
        return list(self.frames(faults, lambda: now_ms))

    def frames(self, faults: FaultSource = no_faults, now_ms: Optional[Callable[[], int]] = None) -> Iterator[str]:
        """The frames of one tick, each made when it is asked for and
        stamped with the time it was made (``now_ms``, default the
        market's clock), as Binance stamps and sends each event: the events
        of the streams due, with the gaps and duplicates ``faults`` call
        for. HistoryLost if a depth stream fell further behind than the
        book's history."""
        clock = now_ms or self.market.now_ms
        self.ticks += 1
        for stream in list(self.streams.values()):
            if self.ticks % stream.every or stream.name not in self.streams:
                continue
            try:
                if stream.kind == DEPTH:
                    yield from self._depth(stream, clock, faults)
                elif stream.kind == TRADES:
                    yield from self._trades(stream, clock, faults)
                elif stream.kind == BOOK_TICKER:
                    yield from self._book_ticker(stream)
                else:
                    tickers = self._tickers(clock())
                    if tickers is not None:
                        yield self.frame(stream.name, tickers)
            except (KeyError, NoRecord):  # a symbol taken off the market (or not recorded yet): silent
                continue

    def _depth(self, stream: Stream, clock: Callable[[], int], faults: FaultSource) -> list[str]:
        """The stream's duplicate (when a fault calls for one) and its event
        of the changes since its last one (none: none; a gap fault: skipped)."""
        symbol = stream.symbol
        assert symbol is not None
        frames = []
        if stream.name in self.latest and faults(DUPLICATE, {symbol}):
            frames.append(self.latest[stream.name])
        diff = self.market.changes_since(symbol, self.positions[stream.name])
        if diff is None:
            return frames
        self.positions[stream.name] = diff.last
        if faults(GAP, {symbol}):
            return frames
        frame = self.wrap(stream.name, depth_text(symbol, clock(), diff))
        self.latest[stream.name] = frame
        frames.append(frame)
        return frames

    def _book_ticker(self, stream: Stream) -> list[str]:
        """The book's top, if it is not the one the stream sent last."""
        symbol = stream.symbol
        assert symbol is not None
        top = book_top(self.market, symbol)
        if top is None or self.tops_sent.get(stream.name) == top[1:]:
            return []
        self.tops_sent[stream.name] = top[1:]
        return [self.wrap(stream.name, book_ticker_text(symbol, top))]

    def _trades(self, stream: Stream, clock: Callable[[], int], faults: FaultSource) -> list[str]:
        """The frames of the trades made since the stream's last one, each
        its own event, but those a ``drop_trades`` fault takes."""
        symbol = stream.symbol
        assert symbol is not None
        trades = self.market.trades_since(symbol, self.positions[stream.name])
        if not trades:
            return []
        self.positions[stream.name] = trades[-1].agg_id
        now_ms = clock()
        return [
            self.wrap(stream.name, trade_text(symbol, now_ms, trade))
            for trade in trades
            if not faults(DROP_TRADES, {symbol})
        ]

    def _tickers(self, now_ms: int) -> Optional[list[dict[str, Any]]]:
        """The rolling-window tickers of the TRADING symbols whose values
        (all but the times) changed since this session's last push."""
        events = []
        for symbol, listed in list(self.market.symbols.items()):
            if listed.status != "TRADING":
                continue
            try:
                record = self.market.ticker(symbol)
            except NoRecord:  # a recorded market has no ticker of it yet
                continue
            values = tuple(record[name] for name in _TICKER_VALUES)
            if self.tickers_sent.get(symbol) != values:
                self.tickers_sent[symbol] = values
                events.append(ticker_event(record, now_ms))
        return events or None


class _Connection(ServerConnection):
    """A server connection that counts every incoming message (data, ping,
    pong) with ``admit`` and drops those past the limit."""

    session: StreamSession
    admit: Callable[["_Connection"], bool]
    recent: deque  # times of the latest incoming messages
    stalled_until: float = 0.0  # loop time until which it sends nothing and reads nothing

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode in _COUNTED and hasattr(self, "admit"):
            if not self.admit(self):
                return
        super().process_event(event)


class StreamServer:  # pylint: disable=too-many-instance-attributes  # its limits, its counters and its loop
    """The websocket stream server: listens on (``address``, ``port``) from
    construction (OSError if it cannot), serves on its own asyncio loop in
    a daemon thread from ``start()`` until ``stop()``. ``faults`` hands out
    the stream faults due (the simulator's); ``clock`` times the rate
    limits (message and connection-attempt windows)."""

    def __init__(  # pylint: disable=too-many-arguments  # Binance's limits, each a parameter for the tests
        self,
        market: Market,
        address: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: FaultSource = no_faults,
        clock: Callable[[], float] = time.monotonic,
        ping_interval: float = PING_INTERVAL,
        pong_timeout: float = PONG_TIMEOUT,
        lifetime_seconds: float = LIFETIME_SECONDS,
        send_timeout: float = SEND_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ):
        self.market = market
        self.faults = faults
        self.clock = clock
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.lifetime_seconds = lifetime_seconds
        self.send_timeout = send_timeout
        self.max_connections = max_connections
        self.sock = socket.create_server((address, port))
        self._lock = threading.Lock()  # the counters, read by the HTTP server's threads
        self.attempts = 0
        self.messages = 0
        self.violations: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.pings_sent = 0
        self._open: set[_Connection] = set()
        self._attempts_by_address: dict[str, deque] = {}
        self._tasks: set[asyncio.Task] = set()  # closes started from callbacks, kept until done
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: Optional[asyncio.Event] = None
        self._thread = threading.Thread(target=self._run, name="binance-streams", daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give a websocket client: ``ws://host:port``."""
        host, port = self.sock.getsockname()[:2]
        return f"ws://{host}:{port}"

    def start(self) -> "StreamServer":
        """Serves on a background thread; returns once it accepts connections."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the stream server did not start within 10 s")
        return self

    def stop(self) -> None:
        """Drops every connection and stops serving."""
        if self._thread.is_alive() and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
        else:
            self.sock.close()
            if not self._thread.is_alive() and not self._loop.is_closed():  # never started: its loop never ran
                self._loop.close()

    def stats(self) -> dict[str, Any]:
        """The streams' part of GET /sim/stats."""
        with self._lock:
            return {
                "stream_connections": len(self._open),
                "stream_connection_attempts": self.attempts,
                "stream_messages_received": self.messages,
                "stream_subscriptions": sum(len(connection.session.streams) for connection in self._open),
                "stream_violations": sum(self.violations.values()),
                "stream_violations_by_limit": dict(self.violations),
                "stream_disconnects": dict(self.disconnects),
                "stream_pings_sent": self.pings_sent,
            }

    def _violation(self, limit: str) -> None:
        with self._lock:
            self.violations[limit] += 1
        logger.warning("stream limit exceeded: %s", limit)

    def _disconnect(self, reason: str) -> None:
        with self._lock:
            self.disconnects[reason] += 1

    # The loop

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        async with serve(
            self._handle,
            sock=self.sock,
            process_request=self._process_request,
            create_connection=_Connection,
            ping_interval=None,  # pings are this server's own (see _keepalive), so a stall can hold them
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=16,
            close_timeout=1,
            server_header="binance-simulator",
        ):
            self._ready.set()
            sweeps = asyncio.create_task(self._sweeps())
            await self._stopping.wait()
            sweeps.cancel()
            for connection in list(self._open):
                connection.transport.abort()

    async def _sweeps(self) -> None:
        """Carries out sweep faults as they fall due, whoever is connected."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            fault = self.faults(SWEEP, None)
            if fault is not None and fault.symbol in self.market.symbols:
                self.market.sweep(fault.symbol, fault.side == "bids", fault.fraction)

    def _process_request(self, connection: _Connection, request: Request) -> Optional[Response]:
        """Checks the limits and faults of a handshake, and subscribes the
        streams its URL names before it is answered (so that a depth taken
        after the handshake is never older than the first event)."""
        refusal = self._over_limits(connection)
        if refusal is not None:
            return refusal
        parts = urlsplit(request.path)
        if parts.path == "/stream":
            combined, names = True, parse_qs(parts.query).get("streams", [""])[-1].split("/")
        elif parts.path == "/ws" or parts.path.startswith("/ws/"):
            combined, names = False, parts.path[len("/ws/") :].split("/")
        else:
            return connection.respond(404, "Not found.\n")
        session = StreamSession(self.market, combined)
        try:
            session.subscribe([name for name in names if name])
        except ValueError as exc:
            return connection.respond(400, f"{exc}\n")
        except TooManyStreams as exc:
            self._violation("streams")
            return connection.respond(400, f"{exc}\n")
        fault = self.faults(REFUSE, session.symbols())
        if fault is not None:
            return connection.respond(fault.status, "Refused.\n")
        connection.session = session
        connection.recent = deque(maxlen=MAX_MESSAGES_PER_SECOND + 1)
        connection.admit = self._admit
        return None

    def _over_limits(self, connection: _Connection) -> Optional[Response]:
        """Counts a connection attempt; the answer to one past the limits."""
        now, address = self.clock(), str(connection.remote_address[0])
        with self._lock:
            self.attempts += 1
            attempts = self._attempts_by_address.pop(address, None) or deque(maxlen=MAX_ATTEMPTS + 1)
            self._attempts_by_address[address] = attempts  # the most recent address last
            if len(self._attempts_by_address) > MAX_ADDRESSES:
                del self._attempts_by_address[next(iter(self._attempts_by_address))]
            while attempts and attempts[0] <= now - ATTEMPTS_WINDOW_SECONDS:
                attempts.popleft()
            attempts.append(now)
            too_many_attempts, full = len(attempts) > MAX_ATTEMPTS, len(self._open) >= self.max_connections
        if too_many_attempts:
            self._violation("connection_attempts")
            return connection.respond(429, "Too many connection attempts.\n")
        if full:
            return connection.respond(503, "Too many connections.\n")
        return None

    def _admit(self, connection: _Connection) -> bool:
        """Counts an incoming message; past the rate limit, closes the
        connection (once) and refuses the message."""
        now = self.clock()
        with self._lock:
            self.messages += 1
        recent = connection.recent
        if len(recent) > MAX_MESSAGES_PER_SECOND:
            return False  # over the limit already: being closed
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        recent.append(now)
        if len(recent) <= MAX_MESSAGES_PER_SECOND:
            return True
        self._violation("messages")
        self._disconnect("messages")
        self._in_background(connection.close(1008, "Too many messages"))
        return False

    def _in_background(self, coroutine: Any) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, connection: _Connection) -> None:
        # Each event goes out as soon as it is made. asyncio turns Nagle's
        # algorithm off only on the sockets it connects, not on those it
        # accepts; left on, a small frame waits for the client's delayed
        # ACK of the one before it, up to 40 ms.
        connection.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open.add(connection)
        tasks = [
            asyncio.create_task(self._receive(connection)),
            asyncio.create_task(self._send(connection)),
            asyncio.create_task(self._keepalive(connection)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with self._lock:
                self._open.discard(connection)

    async def _receive(self, connection: _Connection) -> None:
        """Answers control messages until the connection ends."""
        session = connection.session
        try:
            async for message in connection:
                try:
                    reply = session.control(message)
                except TooManyStreams:
                    self._violation("streams")
                    self._disconnect("streams")
                    await connection.close(1008, "Too many streams")
                    return
                if not await self._deliver(connection, _json(reply)):
                    return
        except ConnectionClosed:
            return

    async def _deliver(self, connection: _Connection, frame: str) -> bool:
        """Sends one frame; a client that does not take it within
        ``send_timeout`` is dropped. Whether the connection goes on."""
        try:
            await asyncio.wait_for(connection.send(frame), self.send_timeout)
            return True
        except asyncio.TimeoutError:
            self._disconnect("slow_reader")
            connection.transport.abort()
        except ConnectionClosed:
            pass
        return False

    async def _send(self, connection: _Connection) -> None:
        """Every tick: the faults due, then the events due, until the
        connection ends or reaches its lifetime."""
        loop, session = asyncio.get_running_loop(), connection.session
        opened = next_tick = loop.time()
        while True:
            next_tick = self._keep_to_steps(next_tick + TICK_SECONDS)
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            if loop.time() - opened >= self.lifetime_seconds:
                self._disconnect("lifetime")
                await connection.close(1000, "Connection lifetime reached")
                return
            fault = self.faults(CONNECTION_FAULTS, session.symbols())
            if fault is not None and not await self._act(connection, fault):
                return
            next_tick = max(next_tick, loop.time() - TICK_SECONDS)  # after a stall: no burst of ticks
            try:
                frames = list(session.frames(self.faults))
            except HistoryLost:
                self._disconnect("fell_behind")
                await connection.close(1011, "Fell behind the book's history")
                return
            if frames and not await self._deliver_events(connection, frames):
                return

    def _keep_to_steps(self, tick: float) -> float:
        """The tick due at ``tick`` (loop time), moved by half a tick at most
        to fall just after a step of a market that steps every tick on the
        loop's clock: each event then holds the changes of one step, as
        Binance's 100 ms events hold those of one 100 ms, and a book that
        changes at every step has an event at every tick."""
        market = self.market
        if getattr(market, "clock", None) is not time.monotonic or getattr(market, "tick_seconds", 0) != TICK_SECONDS:
            return tick
        step_at = market.next_step_at()
        if step_at is None:
            return tick
        phase = (step_at + STEP_LAG - tick) % TICK_SECONDS
        return tick + phase - (TICK_SECONDS if phase > TICK_SECONDS / 2 else 0.0)

    async def _deliver_events(self, connection: _Connection, frames: list[str]) -> bool:
        """Sends a tick's events, all at once: each framed by the
        connection's protocol, then written to the socket together (a
        whole market's tick is thousands of events: one ``send()`` each
        would cost more than making them). A client that does not take
        them within ``send_timeout`` is dropped. Whether the connection
        goes on."""
        protocol = connection.protocol
        if protocol.state is not State.OPEN:  # closing: the library finishes that
            return False
        for frame in frames:
            protocol.send_text(frame.encode())
        connection.transport.write(b"".join(protocol.data_to_send()))
        if not connection.paused:  # written, or within the socket's buffer
            return True
        try:
            async with asyncio.timeout(self.send_timeout):
                await connection.drain()
            return True
        except TimeoutError:
            self._disconnect("slow_reader")
            connection.transport.abort()
        except ConnectionError:
            pass
        return False

    async def _act(self, connection: _Connection, fault: StreamFault) -> bool:
        """Carries out a connection fault; whether the connection goes on."""
        logger.info("stream fault: %s", fault.action)
        if fault.action == "garbage":
            return await self._deliver(connection, fault.body)
        if fault.action == "stall":
            loop = asyncio.get_running_loop()
            connection.stalled_until = loop.time() + (fault.seconds or 0.0)
            connection.transport.pause_reading()  # no pongs either: pings are not even read
            await asyncio.sleep(fault.seconds or 0.0)
            connection.stalled_until = 0.0
            if fault.resume:
                connection.transport.resume_reading()
                return True
        if fault.action == "shutdown":
            # As Binance does: the announcement, the stream going on, then the close.
            event = {"e": "serverShutdown", "E": self.market.now_ms()}
            if not await self._deliver(connection, _json(event)):
                return False
            self._in_background(self._close_later(connection, 1.0 if fault.seconds is None else fault.seconds))
            return True
        self._disconnect("fault")
        if fault.action == "close":
            await connection.close(fault.code, "Closed")
        else:  # drop, or a stall that does not resume
            connection.transport.abort()
        return False

    async def _close_later(self, connection: _Connection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._disconnect("fault")
        await connection.close(1001, "Server shutdown")

    async def _keepalive(self, connection: _Connection) -> None:
        """Pings every ``ping_interval``; closes the connection when a ping
        has waited ``pong_timeout`` for its pong (a later pong answers the
        earlier pings too)."""
        loop = asyncio.get_running_loop()
        waiting: deque = deque(maxlen=1000)  # (sent at, pong received) of the pings unanswered
        try:
            while True:
                await asyncio.sleep(self.ping_interval)
                now = loop.time()
                if connection.stalled_until > now:
                    continue
                while waiting and waiting[0][1].done():
                    waiting.popleft()
                if waiting and now - waiting[0][0] >= self.pong_timeout:
                    self._disconnect("pong_timeout")
                    await connection.close(1008, "Pong timeout")
                    return
                waiting.append((now, await connection.ping()))
                with self._lock:
                    self.pings_sent += 1
        except ConnectionClosed:
            return
