"""A recording (``--record``) served as Binance: the market the fake
Binance's protocol layer (``fake.simulator``, ``fake.streams``) serves,
read from a recording instead of generated.

``RecordedMarket`` reads the recording's lines lazily, as replay time
passes: replay time T is the first line's ``t`` plus the time since the
market was made, times ``speed``; every read first consumes the lines
received up to T. From them it keeps, per symbol:

* the book, in exact integer 1e-8 units, from the first recorded depth
  snapshot (``/api/v3/depth``) moved by the recorded ``depthUpdate``
  events; an event that does not follow on is a gap in the recording, and
  the book is unknown until the next recorded snapshot of it;
* the latest recorded depth events (``MAX_EVENTS``), which the streams
  serve merged (``changes_since``), a gap in the recording kept a gap;
* the latest aggregate trades (``MAX_TRADES``), from the ``aggTrade``
  events and the ``/api/v3/aggTrades`` answers, by id;
* the 24 h ticker, from the ``/api/v3/ticker/24hr`` answers and the
  rolling-window ticker events; the book ticker, when one was recorded;

and the latest exchange info. It answers as Binance would have at T:
what was recorded, event times ``E`` stamped with the replay's wall
clock as the fake stamps them. What is not known at T yet (a book before
its first snapshot, or after a gap) is Binance's HTTP 503 ``-1001``,
which clients retry. Everything kept is bounded, however long the
recording.

``serve_recording`` starts the fake Binance (REST and streams) on it.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import re
import threading
import time
from typing import Any, Callable, Iterator, NamedTuple, Optional
from urllib.parse import parse_qs

import orjson

from binance_exporter.binance.recording import RecordingError
from binance_exporter.fake.market import DepthDiff, HistoryLost, from_units, to_units
from binance_exporter.fake.simulator import ApiError, BinanceSimulator
from binance_exporter.fake.streams import NoRecord

logger = logging.getLogger(__name__)

MAX_SYMBOLS = 10_000  # symbols remembered (Binance lists a few thousand)
MAX_EVENTS = 2_000  # depth events kept per symbol: 200 s of a 100 ms stream
EVENT_TRIM = 200  # events past MAX_EVENTS before the oldest go, all at once
MAX_TRADES = 5_000  # aggregate trades kept per symbol
TRADE_TRIM = 500
MAX_BOOK_LEVELS = 10_000  # per side: twice the deepest depth answer (5000 levels)
BOOK_TRIM = 1_000
MAX_LOGGED_BAD_LINES = 10  # bad lines logged one by one; the rest are only counted

INTERNAL_ERROR = "Internal error; unable to process your request. Please try again."
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{0,8})?")
_SYMBOL = re.compile(r"[A-Z0-9\-_.]{1,20}")
# A rolling-window ticker event's fields, by the name the 24 h ticker
# (GET /api/v3/ticker/24hr) gives each (see fake.streams.ticker_event);
# the 24 h one (24hrTicker) has a few more.
_ROLLING_TICKER_FIELDS = {
    "s": "symbol",
    "p": "priceChange",
    "P": "priceChangePercent",
    "o": "openPrice",
    "h": "highPrice",
    "l": "lowPrice",
    "c": "lastPrice",
    "w": "weightedAvgPrice",
    "v": "volume",
    "q": "quoteVolume",
    "O": "openTime",
    "C": "closeTime",
    "F": "firstId",
    "L": "lastId",
    "n": "count",
}
_DAY_TICKER_FIELDS = {**_ROLLING_TICKER_FIELDS, "x": "prevClosePrice", "Q": "lastQty", "b": "bidPrice",
                      "B": "bidQty", "a": "askPrice", "A": "askQty"}  # fmt: skip
# The 24 h ticker's fields in Binance's order, FULL and MINI.
_FULL_TICKER = (
    "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice", "lastPrice", "lastQty",
    "bidPrice", "bidQty", "askPrice", "askQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume",
    "openTime", "closeTime", "firstId", "lastId", "count",
)  # fmt: skip
_MINI_TICKER = (
    "symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime", "closeTime",
    "firstId", "lastId", "count",
)  # fmt: skip
_TRADE_FIELDS = ("a", "p", "q", "f", "l", "T", "m", "M")


class NotYetRecorded(ApiError, NoRecord):
    """What was asked for is not known at replay time (yet): Binance's
    HTTP 503 ``-1001``, which clients retry."""

    def __init__(self) -> None:
        super().__init__(503, -1001, INTERNAL_ERROR)


class BadLine(ValueError):
    """A recording's line that is not what Binance sends: counted and skipped."""


@functools.lru_cache(maxsize=16384)  # the same prices and quantities come again and again
def recorded_units(text: Any) -> int:
    """A recorded price or quantity as integer 1e-8 units; BadLine when
    it is not a decimal string of at most 8 decimals."""
    if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
        raise BadLine(f"not a decimal of at most 8 decimals: {str(text)[:40]!r}")
    return to_units(text)


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadLine(f"not an integer: {str(value)[:40]!r}")
    return value


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or _SYMBOL.fullmatch(value) is None:
        raise BadLine(f"not a symbol: {str(value)[:40]!r}")
    return value


def _levels(levels: Any) -> list[tuple[int, int]]:
    """[[price, quantity], ...] strings as (price, quantity) units."""
    if not isinstance(levels, list):
        raise BadLine("levels are not a list")
    parsed = []
    for level in levels:
        if not isinstance(level, list) or len(level) < 2:
            raise BadLine(f"not a level: {str(level)[:40]}")
        parsed.append((recorded_units(level[0]), recorded_units(level[1])))
    return parsed


def _formatted(levels: list[tuple[int, int]]) -> list[list[str]]:
    """(price, quantity) units as Binance writes levels: ``[["0.05123000", "1.20000000"], ...]``."""
    return [[from_units(price), from_units(qty)] for price, qty in levels]


class RecordedSymbol(NamedTuple):
    """A symbol the recording names, and its status in the latest exchange
    info (``TRADING`` for one only seen in market data)."""

    symbol: str
    status: str


class RecordedEvent(NamedTuple):
    """A recorded depth event: its first and last update ids, and the
    final quantity (0: deleted) of each level it changed, in 1e-8 units."""

    first: int
    last: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class RecordedTrade(NamedTuple):
    """A recorded aggregate trade: its id, and its fields as recorded."""

    agg_id: int
    time_ms: int
    fields: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        """As ``GET /api/v3/aggTrades`` writes it: the fields as recorded."""
        return dict(self.fields)


class ReplayedBook:
    """One symbol's book as the recording moves it: quantity by price per
    side, in 1e-8 units, and its update id; ``known`` is False before its
    first snapshot and after a gap in the recorded events."""

    def __init__(self) -> None:
        self.known = False
        self.update_id = 0
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def start(self, update_id: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Starts again from a snapshot."""
        self.known, self.update_id = True, update_id
        self.bids = {price: qty for price, qty in bids if qty}
        self.asks = {price: qty for price, qty in asks if qty}
        self._bound()

    def apply(self, event: RecordedEvent) -> None:
        """Moves the book by one event: one it holds already is skipped;
        one that does not follow on leaves the book unknown."""
        if not self.known or event.last <= self.update_id:
            return
        if event.first > self.update_id + 1:
            self.known = False
            return
        for side, levels in ((self.bids, event.bids), (self.asks, event.asks)):
            for price, qty in levels:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self.update_id = event.last
        self._bound()

    def levels(self, bid: bool, limit: Optional[int] = None) -> list[tuple[int, int]]:
        """(price, quantity) of one side's best ``limit`` levels (None: all)."""
        side = self.bids if bid else self.asks
        prices = sorted(side, reverse=bid)[:limit]
        return [(price, side[price]) for price in prices]

    def _bound(self) -> None:
        """Drops a side's farthest levels past ``MAX_BOOK_LEVELS`` (in bulk):
        no depth answer reaches them."""
        for bid in (True, False):
            side = self.bids if bid else self.asks
            if len(side) > MAX_BOOK_LEVELS + BOOK_TRIM:
                kept = dict(self.levels(bid, MAX_BOOK_LEVELS))
                if bid:
                    self.bids = kept
                else:
                    self.asks = kept


class SymbolReplay:  # pylint: disable=too-many-instance-attributes  # book, events, trades, tickers, each with its state
    """What the recording holds of one symbol up to replay time."""

    def __init__(self) -> None:
        self.book = ReplayedBook()
        self.book_time = -math.inf  # receive time of what the book last took
        self.events: list[RecordedEvent] = []
        self.events_lost_up_to = 0  # the last update id of the latest event dropped from ``events``
        self.trades: list[RecordedTrade] = []
        self.trades_known = False  # a trade, or an answer of none, was recorded
        self.trades_lost_up_to = 0  # the id of the latest trade dropped from ``trades``
        self.ticker: Optional[dict[str, Any]] = None
        self.book_ticker: Optional[dict[str, Any]] = None
        self.book_ticker_time = -math.inf

    def last_update_id(self) -> int:
        """The update id the symbol's depth stream stands at: its latest
        event's (or a newer snapshot's); 0 before any."""
        latest = self.events[-1].last if self.events else 0
        return max(latest, self.book.update_id if self.book.known else 0)

    def add_event(self, event: RecordedEvent, when: float) -> None:
        """Keeps a recorded event (one already kept is skipped; one that
        overlaps the latest kept is kept from where that one ends) and
        moves the book by it."""
        if self.events and event.last <= self.events[-1].last:
            return
        if self.events and event.first <= self.events[-1].last:
            event = event._replace(first=self.events[-1].last + 1)
        self.events.append(event)
        if len(self.events) > MAX_EVENTS + EVENT_TRIM:  # trimmed in bulk: appending stays cheap
            self.events_lost_up_to = self.events[-MAX_EVENTS - 1].last
            del self.events[:-MAX_EVENTS]
        if self.book.known:
            self.book.apply(event)
            self.book_time = when

    def add_snapshot(self, update_id: int, bids: list, asks: list, when: float) -> None:
        """Starts the book from a recorded snapshot, unless the book is
        known and already past it, then moves it by the kept events after it."""
        if self.book.known and self.book.update_id >= update_id:
            return
        self.book.start(update_id, bids, asks)
        self.book_time = when
        for event in self.events[self._after(update_id) :]:
            self.book.apply(event)

    def _after(self, update_id: int) -> int:
        """The index of the first kept event after ``update_id``."""
        return bisect.bisect_right(self.events, update_id, key=lambda event: event.last)

    def changes_since(self, update_id: int) -> Optional[DepthDiff]:
        """The kept events after ``update_id`` up to the first gap, merged
        into one diff whose ``first`` is the first event's; None when
        there are none; HistoryLost when some were dropped."""
        if update_id < self.events_lost_up_to:
            raise HistoryLost(f"events after {update_id} are gone: kept from {self.events_lost_up_to + 1}")
        start = self._after(update_id)
        if start == len(self.events):
            return None
        final: dict[tuple[bool, int], int] = {}
        last = self.events[start].last
        for event in self.events[start:]:
            if event.first > last + 1:
                break  # a gap in the recording: the client sees it with the next diff
            for bid, levels in ((True, event.bids), (False, event.asks)):
                for price, qty in levels:
                    final[(bid, price)] = qty
            last = event.last
        bids = sorted(((price, qty) for (bid, price), qty in final.items() if bid), reverse=True)
        asks = sorted((price, qty) for (bid, price), qty in final.items() if not bid)
        return DepthDiff(self.events[start].first, last, bids, asks)

    def add_trade(self, trade: RecordedTrade) -> None:
        """Keeps a recorded trade, in id order (one kept already is skipped)."""
        self.trades_known = True
        if not self.trades or trade.agg_id > self.trades[-1].agg_id:
            self.trades.append(trade)
        elif trade.agg_id > self.trades_lost_up_to:
            index = bisect.bisect_left(self.trades, trade.agg_id, key=lambda kept: kept.agg_id)
            if self.trades[index].agg_id != trade.agg_id:
                self.trades.insert(index, trade)
        if len(self.trades) > MAX_TRADES + TRADE_TRIM:
            self.trades_lost_up_to = self.trades[-MAX_TRADES - 1].agg_id
            del self.trades[:-MAX_TRADES]

    def trades_from(self, agg_id: int) -> list[RecordedTrade]:
        """The kept trades from id ``agg_id`` on."""
        return self.trades[bisect.bisect_left(self.trades, agg_id, key=lambda kept: kept.agg_id) :]

    def add_ticker(self, fields: dict[str, Any]) -> None:
        """Takes newer 24 h ticker values (all of a record, or some)."""
        if self.ticker is None:
            self.ticker = {name: fields[name] for name in _FULL_TICKER if name in fields}
        else:
            self.ticker = {**self.ticker, **fields}  # a new dict: one being served stays as it is


class RecordedMarket:  # pylint: disable=too-many-instance-attributes,too-many-public-methods  # the fake's Market interface
    """The market of a recording, as the fake Binance serves a ``Market``.

    ``lines`` are a recording's line dicts in time order (``read_recording``
    of several files, one after another; headers and lines of kinds it
    does not know are passed over). Replay time is the first line's ``t``
    plus (``clock()`` − the market's making) × ``speed``, held while
    ``freeze()`` holds it; every read first consumes the lines received
    up to replay time, from ``lines``, never ahead. ``wall_clock`` (Unix
    time) stamps the events' ``E``. Everything is read under one lock.

    ``lines_read`` and ``bad_lines`` count the lines consumed and those
    skipped as not Binance's (a price of 9 decimals, a body that is not
    JSON); ``finished`` is whether the recording is all consumed."""

    def __init__(
        self,
        lines: Iterator[dict[str, Any]],
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"the replay's speed must be a positive number, not {speed}")
        self.speed = speed
        self.clock = clock
        self.wall_clock = wall_clock
        self.lock = threading.RLock()
        self.lines_read = 0
        self.bad_lines = 0
        self.error: Optional[str] = None  # why the recording could not be read to its end
        self._lines = iter(lines)
        self._symbols: dict[str, RecordedSymbol] = {}  # replaced, never changed: read without the lock
        self._replays: dict[str, SymbolReplay] = {}
        self._exchange_info: Optional[dict[str, Any]] = None
        self._listed: dict[str, dict[str, Any]] = {}  # the exchange info's symbol entries, by name
        self._pending = self._next_line()
        self._origin = self._pending["t"] if self._pending is not None else 0.0
        self._start = clock()
        self._frozen_at: Optional[float] = None

    # Replay time

    def replay_time(self) -> float:
        """Replay time: the recording's Unix time being replayed now."""
        with self.lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return self._origin + (self.clock() - self._start) * self.speed

    def now_ms(self) -> int:
        """The wall clock, in Unix milliseconds: the time events are stamped with."""
        return int(self.wall_clock() * 1000)

    def step(self) -> int:
        """How far the replay is: the lines consumed so far."""
        with self.lock:
            self._advance()
            return self.lines_read

    def freeze(self) -> None:
        """Holds replay time still until ``unfreeze()``."""
        with self.lock:
            self._frozen_at = self.replay_time()

    def unfreeze(self) -> None:
        """Lets replay time run on from where it was held."""
        with self.lock:
            if self._frozen_at is not None:
                self._start = self.clock() - (self._frozen_at - self._origin) / self.speed
            self._frozen_at = None

    @property
    def frozen(self) -> bool:
        """Whether ``freeze()`` holds replay time."""
        return self._frozen_at is not None

    @property
    def finished(self) -> bool:
        """Whether every line of the recording has been consumed."""
        with self.lock:
            self._advance()
            return self._pending is None

    # Reading the recording

    def _next_line(self) -> Optional[dict[str, Any]]:
        """The next line with a receive time (headers passed over); None
        at the end of the recording, or where it cannot be read further."""
        while True:
            try:
                line = next(self._lines, None)
            except RecordingError as exc:
                self.error = str(exc)
                logger.error("replay: the recording ends early: %s", exc)
                return None
            if line is None:
                return None
            when = line.get("t")
            if isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when):
                return line
            self.lines_read += 1
            if "format" not in line:  # a header has no time; anything else must
                self._bad_line(line, "no receive time")

    def _advance(self) -> None:
        """Consumes the lines received up to replay time (lock held)."""
        until = self.replay_time()
        while self._pending is not None and self._pending["t"] <= until:
            line, self._pending = self._pending, None
            self.lines_read += 1
            try:
                self._consume(line)
            except (BadLine, ValueError, KeyError, TypeError) as exc:  # not shaped as Binance's
                self._bad_line(line, str(exc))
            self._pending = self._next_line()

    def _bad_line(self, line: dict[str, Any], reason: str) -> None:
        self.bad_lines += 1
        if self.bad_lines <= MAX_LOGGED_BAD_LINES:
            logger.warning("replay: line %d skipped: %s: %.200s", self.lines_read, reason, line)

    def _consume(self, line: dict[str, Any]) -> None:
        when = float(line["t"])
        if "ws" in line:
            message = orjson.loads(line["msg"])
            if isinstance(message, dict) and "stream" in message and "data" in message:
                message = message["data"]  # a combined stream's
            for payload in message if isinstance(message, list) else [message]:
                if isinstance(payload, dict) and "e" in payload:
                    self._event(payload, when)
        elif "rest" in line:
            query = {name: values[-1] for name, values in parse_qs(line.get("query") or "").items()}
            self._rest_answer(line["rest"], query, orjson.loads(line["body"]), when)
        # Other kinds (an update cycle's reading, ...) hold nothing Binance sent.

    def _event(self, payload: dict[str, Any], when: float) -> None:
        kind = payload["e"]
        if kind == "depthUpdate":
            first, last = _integer(payload["U"]), _integer(payload["u"])
            if first > last:
                raise BadLine(f"a depth event from {first} to {last}")
            event = RecordedEvent(first, last, _levels(payload["b"]), _levels(payload["a"]))
            self._replay(payload["s"]).add_event(event, when)
        elif kind == "aggTrade":
            self._trade(payload["s"], payload)
        elif kind in ("1dTicker", "24hrTicker"):
            names = _ROLLING_TICKER_FIELDS if kind == "1dTicker" else _DAY_TICKER_FIELDS
            self._replay(payload["s"]).add_ticker({names[key]: value for key, value in payload.items() if key in names})
        # Other events (serverShutdown, ...) change nothing kept.

    def _trade(self, symbol: Any, fields: dict[str, Any]) -> None:
        agg_id, time_ms = _integer(fields["a"]), _integer(fields["T"])
        for name in ("p", "q"):
            recorded_units(fields[name])
        payload = {name: fields[name] for name in _TRADE_FIELDS if name in fields}
        self._replay(symbol).add_trade(RecordedTrade(agg_id, time_ms, payload))

    def _rest_answer(self, endpoint: str, query: dict[str, str], body: Any, when: float) -> None:
        if isinstance(body, dict) and "code" in body and "msg" in body:
            return  # an error answer: nothing of the market
        if endpoint == "/api/v3/depth":
            bids, asks = _levels(body["bids"]), _levels(body["asks"])
            self._replay(query["symbol"]).add_snapshot(_integer(body["lastUpdateId"]), bids, asks, when)
        elif endpoint == "/api/v3/aggTrades":
            replay = self._replay(query["symbol"])
            for trade in body:
                self._trade(query["symbol"], trade)
            replay.trades_known = True  # an answer of no trades too
        elif endpoint == "/api/v3/ticker/24hr":
            for record in body if isinstance(body, list) else [body]:
                self._replay(record["symbol"]).add_ticker(record)
        elif endpoint == "/api/v3/ticker/bookTicker":
            for record in body if isinstance(body, list) else [body]:
                for name in ("bidPrice", "bidQty", "askPrice", "askQty"):
                    recorded_units(record[name])
                replay = self._replay(record["symbol"])
                replay.book_ticker, replay.book_ticker_time = dict(record), when
        elif endpoint == "/api/v3/exchangeInfo":
            self._take_exchange_info(body, whole="symbol" not in query and "symbols" not in query)

    def _take_exchange_info(self, body: dict[str, Any], whole: bool) -> None:
        """Takes an exchange info answer: the whole listing, or (answering
        ``symbol``/``symbols``) some of its entries."""
        entries = {_symbol(entry["symbol"]): entry for entry in body["symbols"]}
        if any(not isinstance(entry.get("status"), str) for entry in entries.values()):
            raise BadLine("a symbol without a status")
        listed = entries if whole else {**self._listed, **entries}
        if len(listed) > MAX_SYMBOLS:
            raise BadLine(f"more than {MAX_SYMBOLS} symbols")
        self._exchange_info, self._listed = body, listed
        symbols = {} if whole else dict(self._symbols)
        symbols.update((name, RecordedSymbol(name, entry["status"])) for name, entry in listed.items())
        self._symbols = symbols

    def _replay(self, symbol: Any) -> SymbolReplay:
        """What is kept of ``symbol``, made when it is first named."""
        replay = self._replays.get(symbol)
        if replay is None:
            if len(self._replays) >= MAX_SYMBOLS:
                raise BadLine(f"more than {MAX_SYMBOLS} symbols")
            replay = self._replays[_symbol(symbol)] = SymbolReplay()
            if symbol not in self._symbols:  # seen trading before any listing names it
                self._symbols = {**self._symbols, symbol: RecordedSymbol(symbol, "TRADING")}
        return replay

    def _known(self, symbol: str) -> SymbolReplay:
        """What is kept of ``symbol`` at replay time (lock held); NotYetRecorded if nothing."""
        self._advance()
        replay = self._replays.get(symbol)
        if replay is None:
            raise NotYetRecorded()
        return replay

    def kept(self) -> dict[str, int]:
        """How much is kept at replay time — symbols, depth events, trades,
        book levels — each bounded whatever the recording's length."""
        with self.lock:
            self._advance()
            replays = list(self._replays.values())
            return {
                "symbols": len(self._symbols),
                "events": sum(len(replay.events) for replay in replays),
                "trades": sum(len(replay.trades) for replay in replays),
                "levels": sum(len(replay.book.bids) + len(replay.book.asks) for replay in replays),
            }

    # What the fake Binance's protocol layer reads

    @property
    def symbols(self) -> dict[str, RecordedSymbol]:
        """The symbols listed at replay time, by name (and those seen in
        market data before any listing)."""
        with self.lock:
            self._advance()
            return self._symbols

    def update_id(self, symbol: str) -> int:
        """Where ``symbol``'s depth stream stands at replay time: its latest
        recorded event's last update id (0 before any)."""
        with self.lock:
            self._advance()
            replay = self._replays.get(symbol)
            return 0 if replay is None else replay.last_update_id()

    def changes_since(self, symbol: str, update_id: int) -> Optional[DepthDiff]:
        """The recorded depth events of ``symbol`` after ``update_id``, up
        to the first gap in the recording, merged into one diff whose
        ``first`` is the first event's ``U`` (so that a gap shows as one);
        None when there are none; HistoryLost when some were dropped
        (more than ``MAX_EVENTS`` since)."""
        with self.lock:
            self._advance()
            replay = self._replays.get(symbol)
            return None if replay is None else replay.changes_since(update_id)

    def trades_since(self, symbol: str, agg_id: int) -> list[RecordedTrade]:
        """The recorded aggregate trades of ``symbol`` after id ``agg_id``;
        HistoryLost when some of them were dropped."""
        with self.lock:
            self._advance()
            replay = self._replays.get(symbol)
            if replay is None:
                return []
            if agg_id < replay.trades_lost_up_to:
                raise HistoryLost(f"trades after {agg_id} are gone: kept from {replay.trades_lost_up_to + 1}")
            return replay.trades_from(agg_id + 1)

    def last_trade_id(self, symbol: str) -> int:
        """The id of ``symbol``'s latest recorded aggregate trade (0 before any)."""
        with self.lock:
            self._advance()
            replay = self._replays.get(symbol)
            return replay.trades[-1].agg_id if replay is not None and replay.trades else 0

    def exchange_info(self, symbols: Optional[list[str]] = None) -> dict[str, Any]:
        """The latest recorded exchangeInfo body, with the entries of
        ``symbols`` only when given; NotYetRecorded before any."""
        with self.lock:
            self._advance()
            if self._exchange_info is None:
                raise NotYetRecorded()
            if not symbols:
                return self._exchange_info
            return {**self._exchange_info, "symbols": [self._listed[s] for s in symbols if s in self._listed]}

    def ticker(self, symbol: str, full: bool = True) -> dict[str, Any]:
        """``symbol``'s latest recorded 24 h ticker record, FULL or MINI;
        NotYetRecorded when the fields asked for were not all recorded."""
        with self.lock:
            record = self._known(symbol).ticker
        needed = _ROLLING_TICKER_FIELDS.values() if full else _MINI_TICKER
        if record is None or any(name not in record for name in needed):
            raise NotYetRecorded()
        return dict(record) if full else {name: record[name] for name in _MINI_TICKER}

    def depth(self, symbol: str, limit: int, lag: int = 0) -> dict[str, Any]:
        """The depth body: the best ``limit`` levels of each side of the
        book the recording holds at replay time, and its update id;
        NotYetRecorded when the book is not known (before its first
        snapshot, after a gap). ``lag`` is not served: a recording keeps
        no book of the past."""
        del lag
        with self.lock:
            book = self._known(symbol).book
            if not book.known:
                raise NotYetRecorded()
            update_id, bids, asks = book.update_id, book.levels(True, limit), book.levels(False, limit)
        return {"lastUpdateId": update_id, "bids": _formatted(bids), "asks": _formatted(asks)}

    def true_book(self, symbol: str) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """(update id, bids, asks) of the whole book at replay time, best
        first, in 1e-8 units; NotYetRecorded when it is not known."""
        with self.lock:
            book = self._known(symbol).book
            if not book.known:
                raise NotYetRecorded()
            return book.update_id, book.levels(True), book.levels(False)

    def agg_trades(
        self,
        symbol: str,
        from_id: Optional[int] = None,
        start_time: Optional[int] = None,
        end_time: Optional[int] = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """``GET /api/v3/aggTrades`` from the kept trades, as the fake
        answers it: up to ``limit`` from id ``from_id`` on, or within
        ``start_time``..``end_time`` (ms, inclusive), or the latest;
        NotYetRecorded before any trade (or answer of none) of the symbol."""
        with self.lock:
            replay = self._known(symbol)
            if not replay.trades_known:
                raise NotYetRecorded()
            if from_id is not None:
                trades = replay.trades_from(from_id)[:limit]
            elif start_time is not None or end_time is not None:
                trades = [
                    trade
                    for trade in replay.trades
                    if (start_time is None or trade.time_ms >= start_time)
                    and (end_time is None or trade.time_ms <= end_time)
                ][:limit]
            else:
                trades = replay.trades[-limit:]
            return [trade.payload() for trade in trades]

    def book_ticker(self, symbol: str) -> dict[str, Any]:
        """``symbol``'s best bid and ask at replay time: from its book or
        from a recorded book ticker, whichever was received later;
        NotYetRecorded when neither is known."""
        with self.lock:
            replay = self._known(symbol)
            book = replay.book
            if replay.book_ticker is not None and (not book.known or replay.book_ticker_time > replay.book_time):
                return dict(replay.book_ticker)
            if not book.known:
                raise NotYetRecorded()
            best = _formatted(book.levels(True, 1) or [(0, 0)]) + _formatted(book.levels(False, 1) or [(0, 0)])
        return {"symbol": symbol, **dict(zip(("bidPrice", "bidQty", "askPrice", "askQty"), sum(best, [])))}

    def sweep(self, symbol: str, bid: bool, fraction: float) -> int:
        """A recording cannot be swept: the fake's sweep fault does nothing here."""
        del symbol, bid, fraction
        return 0


def serve_recording(
    market: RecordedMarket,
    address: str = "127.0.0.1",
    port: int = 0,
    stream_port: int = 0,
    stream_options: Optional[dict[str, Any]] = None,
) -> BinanceSimulator:
    """The fake Binance serving ``market``, started: REST on ``port``,
    websocket streams on ``stream_port`` (0: a free port; its ``url`` and
    ``stream_url`` say which), ``stream_options`` as ``StreamServer``
    takes them (``ping_interval``, ...). OSError when a port cannot be
    listened on."""
    return BinanceSimulator(market, address, port, stream_port=stream_port, stream_options=stream_options).start()
