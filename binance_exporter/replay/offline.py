"""The exporter's answers computed again from a recording, with no server
and no network: its own update cycles, run by its own code on the books,
trades and 24 h table the recording rebuilds.

A stream-mode recording holds, in order, every message and REST answer
the exporter received and a ``cycle`` line each time an update cycle read
the live books. ``OfflineAnswers`` hands the messages and answers, in
that order, to an ``OfflineHub`` — the exporter's ``StreamHub`` with its
loop and connections taken away, so that the same ``DepthSync``,
``TradeSync`` and parsing take them — and at each ``cycle`` line runs the
exporter's ``StreamScheduler`` on the clock and time the line gives, with
the settings the recording's header gives. The books it reads are then
those the recorded exporter read: the ``cycle`` line says each book's
update id, and a book whose id differs (a recording that lost lines) is
read as out of sync and counted in ``mismatches``.

With ``interval`` given, a cycle is run every ``interval`` seconds of
recorded time instead (the books the recorded exporter stopped keeping,
as its ``cycle`` lines say, are dropped).

What is printed is what the exporter prints (``ReportPrinter``: the
report, then a Q5 line per symbol per cycle, text or JSON lines), or,
as CSV, one row per live book per cycle with Q3, Q4, Q5 and the
microstructure figures.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import deque
from dataclasses import replace
from decimal import Decimal
from typing import Any, Iterable, Optional, TextIO
from urllib.parse import parse_qs

import orjson

from binance_exporter.binance.depth_sync import (
    MAX_BUFFERED_EVENTS,
    RECONNECT,
    SNAPSHOT_LIMIT,
    SYNCING,
    DepthSnapshot,
    DepthSync,
)
from binance_exporter.binance.responses import (
    parse_agg_trades,
    parse_depth_event,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_tickers,
)
from binance_exporter.binance.streams import DEPTH_SUFFIX, TRADE_SUFFIX, BookReading, StreamHub, _Connection
from binance_exporter.config import Config
from binance_exporter.cycle.scheduler import Schedule
from binance_exporter.cycle.snapshot import ApiCounts, Snapshot
from binance_exporter.cycle.stream_scheduler import StreamScheduler
from binance_exporter.errors import MarketDataError
from binance_exporter.exposition.report import ReportPrinter
from binance_exporter.market.definitions import (
    ALL_SYMBOLS,
    Shard,
    SymbolInfo,
    Ticker24h,
    format_decimal,
    format_utc,
    top_lists,
)
from binance_exporter.market.microstructure import IMBALANCE_LEVELS

logger = logging.getLogger(__name__)

MAX_HELD_TICKER_MESSAGES = 64  # ticker messages since the table's last REST answer (one a second)
MAX_CONNECTIONS = 10_000  # connection numbers remembered
MAX_BOOKS = 10_000  # books kept: a whole market's
# A book's latest events kept, for a resync the recording shows only by its
# snapshot: those since the exporter found the gap, 10 s of a 100 ms stream.
RECENT_EVENTS = 100
CSV_COLUMNS = (
    "time",
    "cycle",
    "symbol",
    "in_sync",
    "bid_notional",
    "ask_notional",
    "spread",
    "spread_delta",
    "mid",
    "micro_price",
    *(f"imbalance_{levels}" for levels in IMBALANCE_LEVELS),
)
_DEFAULTS = Config()
DEFAULT_SETTINGS = {  # those of a recording whose header has none
    "update_interval": _DEFAULTS.update_interval,
    "rank_interval": _DEFAULTS.rank_interval,
    "top": _DEFAULTS.top,
    "quote_volume_assets": list(_DEFAULTS.quote_volume_assets),
    "trade_count_assets": list(_DEFAULTS.trade_count_assets),
    "symbols": list(_DEFAULTS.symbols),
    "shard": str(_DEFAULTS.shard),
}


class RecordedSource:
    """The REST side of the recording, as the scheduler's ``MarketSource``:
    the exchange info and 24 h table received since the last cycle
    (``new_cycle``), which is when the recorded cycle asked for them; with
    ``latest``, the latest received, whenever that was."""

    def __init__(self, latest: bool = False) -> None:
        self.latest = latest
        self._answers: dict[str, bytes] = {}  # endpoint: the body received since the last cycle

    def take(self, endpoint: str, query: str, body: str) -> None:
        """Keeps an answer the scheduler asks for: exchange info, and the
        unfiltered 24 h table."""
        if endpoint == "/api/v3/exchangeInfo" or endpoint == "/api/v3/ticker/24hr" and not query:
            self._answers[endpoint] = body.encode()

    def new_cycle(self) -> None:
        """A cycle is over: what it asked for was answered, or was not."""
        if not self.latest:
            self._answers.clear()

    def _answer(self, endpoint: str) -> Any:
        body = self._answers.get(endpoint)
        if body is None:
            raise MarketDataError(f"{endpoint}: no answer recorded for this cycle", "missing")
        try:
            return orjson.loads(body)
        except ValueError as exc:
            raise MarketDataError(f"{endpoint}: not JSON", "invalid_response") from exc

    def exchange_info(self, time_left: Optional[float] = None) -> dict[str, SymbolInfo]:
        """Every listed symbol's status and assets, from the answer recorded."""
        del time_left
        return parse_exchange_info(self._answer("/api/v3/exchangeInfo"))[0]

    def tickers_24h(self, time_left: Optional[float] = None) -> list[Ticker24h]:
        """Every symbol's 24 h statistics, from the answer recorded."""
        del time_left
        return parse_tickers(self._answer("/api/v3/ticker/24hr"))[0]

    def order_book(self, symbol: str, time_left: Optional[float] = None) -> Any:
        """Not asked for in stream mode."""
        raise MarketDataError(f"{symbol}: a recording's books come from its streams", "missing")

    def book_tops(self, symbols: list[str], time_left: Optional[float] = None) -> Any:
        """Not asked for in stream mode."""
        raise MarketDataError(f"{len(symbols)} symbols: a recording's books come from its streams", "missing")

    def api_counts(self) -> ApiCounts:
        """Nothing is requested."""
        return ApiCounts()


def _not_requested(*_args: Any) -> Any:
    raise MarketDataError("offline: nothing is requested", "missing")


class OfflineHub(StreamHub):
    """A ``StreamHub`` that never connects: ``take_message`` and
    ``take_answer`` hand it the recording's lines in order, and it keeps
    its books, trade flows and table as the exporter's hub did, on the
    caller's thread.

    Its clock is the recording's: ``time`` is the Unix time of the line
    being taken, and ``offset`` turns it into the recorded exporter's
    monotonic clock (from its ``cycle`` lines). ``expected`` is the update
    id of each book the recorded cycle read (None: not in sync), and
    ``late`` whether its reading did not come at all."""

    # The recording does not say when the exporter asked for a snapshot (or
    # a trade baseline): every event is kept until the answer comes.
    waiting = MAX_BUFFERED_EVENTS

    def __init__(self, keep_all: bool = False, tops: bool = False) -> None:
        super().__init__((), _not_requested, _not_requested, clock=self._now, wall_clock=self._now, tops=tops)
        self.keep_all = keep_all
        self._workers.close()
        self._loop.close()
        self.time = 0.0
        self.offset = 0.0
        self.expected: Optional[dict[str, Optional[int]]] = None
        self.late = False  # the recorded cycle's reading did not come in time
        self.mismatches = 0
        self._wanted: frozenset[str] = frozenset()
        self._connections_by_number: dict[int, _Connection] = {}
        self._recent: dict[str, tuple[_Connection, deque]] = {}  # symbol: its latest events, of one connection
        # The ticker messages since the latest REST 24 h table (None before one):
        # the exporter's hub took them after it seeded its table from that answer.
        self._since_table: Optional[deque] = None

    def _now(self) -> float:
        return self.time

    # What the scheduler calls.

    def track(self, symbols: Iterable[str]) -> None:
        """Keeps books of exactly ``symbols`` from now on, as the recorded
        exporter did; with ``keep_all`` (cycles at other times than the
        recorded exporter's, which may want a book it did not), every book
        the recording carries is kept, and ``symbols`` are those read."""
        self._wanted = frozenset(symbols)
        self._track(self._wanted | frozenset(self._syncs) if self.keep_all else self._wanted)

    def _track(self, symbols: frozenset[str]) -> None:
        super()._track(symbols)
        for symbol in set(self._recent) - set(self._syncs):
            del self._recent[symbol]

    def book_readings(self, timeout: float, cycle: Optional[dict[str, Any]] = None) -> dict[str, BookReading]:
        """The books as the recorded cycle read them: a book whose update
        id is not the one it read is out of sync."""
        del timeout, cycle
        if self.late:
            raise MarketDataError("the streams' loop did not answer in time", "late")
        readings = {s: reading for s, reading in _result(self._read_books()).items() if s in self._wanted}
        if self.expected is None:
            return readings
        for symbol, reading in readings.items():
            book = self._syncs[symbol].book if reading.view is not None else None
            held = book.update_id if book is not None else None
            read = self.expected.get(symbol)
            if held == read:
                continue
            # In sync here but not yet there is a snapshot recorded as it came, taken by the
            # loop a moment later: harmless. Anything else is a book the recording does not give.
            if read is not None or symbol not in self.expected:
                self.mismatches += 1
                logger.warning(
                    "%s: the recorded exporter read its book at update %s, the recording rebuilds it at %s",
                    symbol,
                    read,
                    held,
                )
            if reading.view is not None:
                readings[symbol] = reading._replace(state=replace(reading.state, in_sync=False), view=None)
        return readings

    def seed_tickers(self, tickers: Iterable[Ticker24h]) -> None:
        """Replaces the table with the REST answer's, then takes again the
        ticker messages received since that answer."""
        super().seed_tickers(tickers)
        for data in self._since_table or ():
            super()._on_tickers(data)

    def tickers(self) -> tuple[Optional[float], list[Ticker24h]]:
        """The table, and when the ticker stream last updated it, on the
        recorded exporter's clock."""
        streamed_at, tickers = super().tickers()
        return (None if streamed_at is None else streamed_at + self.offset), tickers

    def stop(self, timeout: float = 1.5) -> None:
        """Nothing runs."""

    # The recording's lines.

    def take_message(self, number: int, text: str) -> None:
        """A websocket message, as connection ``number`` received it."""
        connection = self._connections_by_number.get(number)
        if connection is None:
            if len(self._connections_by_number) >= MAX_CONNECTIONS:  # forget those no book takes events from
                sources = set(map(id, self._sources.values()))
                self._connections_by_number = {n: c for n, c in self._connections_by_number.items() if id(c) in sources}
            connection = self._connections_by_number[number] = _Connection(number)
        self._on_frame(connection, text)

    def take_answer(self, endpoint: str, query: str, body: str) -> None:
        """A REST answer the exporter used: a book's snapshot, a trade
        flow's baseline or backfill, the 24 h table's seed."""
        if endpoint == "/api/v3/ticker/24hr" and not query:
            self._since_table = deque(maxlen=MAX_HELD_TICKER_MESSAGES)
            return
        params = {name: values[-1] for name, values in parse_qs(query).items()}
        symbol = params.get("symbol", "")
        try:
            if endpoint == "/api/v3/depth" and symbol in self._syncs:
                limit = int(params.get("limit", SNAPSHOT_LIMIT))
                self._take_snapshot_answer(symbol, parse_depth_snapshot(symbol, orjson.loads(body), limit))
            elif endpoint == "/api/v3/aggTrades" and symbol in self._trade_syncs:
                trades, flow = parse_agg_trades(symbol, orjson.loads(body)), self._trade_syncs[symbol]
                if not flow.baseline_known:
                    flow.on_baseline(trades[-1] if trades else None)
                elif "fromId" in params:
                    flow.on_backfill(int(params["fromId"]), trades)
        except (ValueError, MarketDataError) as exc:
            logger.warning("%s?%s: answer not taken: %s", endpoint, query, exc)

    def _replace(self, connection: _Connection, reason: str) -> None:
        """Nothing is opened: the recording shows what came next."""

    def _on_depth(self, connection: _Connection, stream: str, data: Any) -> None:
        symbol = self._keep_book(stream.removesuffix(DEPTH_SUFFIX))
        source = self._sources.get(symbol)
        if source is not None and connection.number > source.number and source.replacement is None:
            # A newer connection carries the book: the exporter was replacing the one it took
            # it from (or had lost it), and moved the book once the new one's events continued it.
            source.replacement = ("recorded", math.inf)
        try:
            event = parse_depth_event(data)
        except MarketDataError:
            event = None
        if event is not None and event.symbol == symbol and symbol in self._syncs:
            recent = self._recent.get(symbol)
            if recent is None or recent[0] is not connection:
                recent = self._recent[symbol] = (connection, deque(maxlen=RECENT_EVENTS))
            recent[1].append(event)
        super()._on_depth(connection, stream, data)

    def _on_trade(self, stream: str, data: Any) -> None:
        self._keep_book(stream.removesuffix(TRADE_SUFFIX))
        super()._on_trade(stream, data)

    def _keep_book(self, name: str) -> str:
        """Keeps a book and trade flow of the symbol a stream named
        ``name`` carries, from its first message on; the symbol."""
        symbol = name.upper()
        if self.keep_all and symbol not in self._syncs and len(self._syncs) < MAX_BOOKS:
            self._track(frozenset(self._syncs) | {symbol})
        return symbol

    def _take_snapshot_answer(self, symbol: str, snapshot: DepthSnapshot) -> None:
        """A depth snapshot the exporter asked for: it was resyncing the
        book. A book kept here in sync all the same (its connection was
        lost, and the events after it did not continue it) resyncs too,
        from the latest events of the connection that carries it now."""
        sync = self._syncs[symbol]
        if sync.state != SYNCING:
            fresh = self._syncs[symbol] = DepthSync(self.depth)
            fresh.resyncs = sync.resyncs
            fresh.resyncs[RECONNECT] += 1
            self._sources.pop(symbol, None)
            self._held.pop(symbol, None)
            connection, events = self._recent.get(symbol, (None, ()))
            for event in events:
                fresh.on_event(event)
            if connection is not None:
                self._sources[symbol] = connection
            sync = fresh
        sync.on_snapshot(snapshot)

    def keep_only(self, symbols: Iterable[str]) -> None:
        """Drops the books the recorded exporter no longer kept: no more
        events come for them."""
        self._track(frozenset(symbols) & frozenset(self._syncs))

    def _on_tickers(self, data: Any) -> None:
        if self._since_table is not None:
            self._since_table.append(data)
        super()._on_tickers(data)


def _result(coroutine: Any) -> Any:
    """The result of a coroutine that never waits."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("a reading of the books waited")  # never: it awaits nothing


def schedule_of(settings: dict[str, Any]) -> Schedule:
    """The schedule the recorded exporter ran with."""
    return Schedule(
        float(settings["update_interval"]),
        float(settings["rank_interval"]),
        top_n=int(settings["top"]),
        top_lists=top_lists(tuple(settings["quote_volume_assets"]), tuple(settings["trade_count_assets"])),
    )


class OfflineAnswers:  # pylint: disable=too-many-instance-attributes  # the hub, the scheduler and the output
    """Runs the recorded exporter's update cycles again over a recording's
    lines (``run``), printing what it printed (``output_format`` text or
    json) or a CSV table (``csv``) to ``out``."""

    def __init__(self, out: TextIO, output_format: str = "text", interval: Optional[float] = None):
        self.out = out
        self.output_format = output_format
        self.interval = interval
        self.cycles = 0
        self.lines = 0
        self.first_time: Optional[float] = None
        self.last_time: Optional[float] = None
        self._hub: Optional[OfflineHub] = None
        self._source = RecordedSource()
        self._scheduler: Optional[StreamScheduler] = None
        self._run: Any = None  # the recorded run (exporter process) being read
        self._earlier_mismatches = 0  # those of earlier runs
        self._clock = 0.0
        self._next_cycle: Optional[float] = None  # with an interval: recorded time of the next cycle
        self._printer = ReportPrinter(output_format, out) if output_format != "csv" else None
        self._csv = csv.writer(out, lineterminator="\n") if output_format == "csv" else None
        if self._csv is not None:
            self._csv.writerow(CSV_COLUMNS)

    @property
    def closed(self) -> bool:
        """Whether the output is closed (a reader went away): nothing more is computed."""
        return self._printer.out is None if self._printer is not None else self._csv is None

    @property
    def mismatches(self) -> int:
        """Books whose recorded reading the recording did not rebuild."""
        return self._earlier_mismatches + (self._hub.mismatches if self._hub is not None else 0)

    def run(self, lines: Iterable[dict[str, Any]]) -> None:
        """Takes every line (as ``read_recordings`` gives them: each file
        starts with its header), running a cycle at each ``cycle`` line
        (or every ``interval`` seconds)."""
        for line in lines:
            if "format" in line:
                self._begin(line)
                continue
            hub, when = self._hub, line["t"]
            assert hub is not None  # a header comes first
            if self._next_cycle is None and self.interval is not None:
                self._next_cycle = when + self.interval
            while self._next_cycle is not None and when >= self._next_cycle:
                self._run_cycle(self._next_cycle, self._next_cycle, None)
                self._next_cycle += self.interval or 0.0
            hub.time = when
            self.lines += 1
            self.first_time = when if self.first_time is None else self.first_time
            self.last_time = when
            if "ws" in line:
                hub.take_message(line["ws"], line["msg"])
            elif "rest" in line:
                self._source.take(line["rest"], line["query"], line["body"])
                hub.take_answer(line["rest"], line["query"], line["body"])
            elif self.interval is None:
                cycle = line["cycle"]
                self._run_cycle(cycle["clock"], cycle["time"], cycle["books"])
            elif line["cycle"]["books"] is not None:
                hub.keep_only(line["cycle"]["books"])
            if self.closed:
                break
        if self._scheduler is not None:
            self._scheduler.close()

    def _begin(self, header: dict[str, Any]) -> None:
        """A file's header: the next hour's file of the same run goes on;
        the first file, or a restart of the exporter, starts everything
        afresh, as the recorded exporter started, with its settings."""
        if self._scheduler is not None:
            if header.get("run") == self._run:
                return
            self._scheduler.close()
        self._run = header.get("run")
        self._earlier_mismatches = self.mismatches
        settings = {**DEFAULT_SETTINGS, **(header.get("settings") or {})}
        if self.interval is not None:
            settings["update_interval"] = self.interval
        symbols = ALL_SYMBOLS if settings["symbols"] == ALL_SYMBOLS else tuple(settings["symbols"])
        hub = self._hub = OfflineHub(keep_all=self.interval is not None, tops=symbols == ALL_SYMBOLS)
        self._source = RecordedSource(latest=self.interval is not None)
        self._next_cycle = None
        self._scheduler = StreamScheduler(
            self._source,
            hub,
            schedule_of(settings),
            symbols,
            clock=lambda: self._clock,
            wall_clock=lambda: hub.time,
            shard=Shard.of(str(settings["shard"])),
        )
        if self.output_format != "csv":
            self._printer = ReportPrinter(self.output_format, self.out)  # a new process prints its report again

    def _run_cycle(self, clock: float, when: float, books: Optional[dict[str, Optional[int]]]) -> None:
        """One update cycle as of ``clock`` (the exporter's monotonic
        clock) and ``when`` (Unix time), checking the books against
        ``books`` when the recording says what the cycle read."""
        hub, scheduler = self._hub, self._scheduler
        assert hub is not None and scheduler is not None
        saved_time = hub.time
        self._clock, hub.time, hub.offset, hub.expected = clock, when, clock - when, books
        hub.late = books is None and self.interval is None
        snapshot = scheduler.run_cycle()
        self._source.new_cycle()
        hub.time = saved_time
        self.cycles += 1
        if self._printer is not None:
            self._printer.publish(snapshot)
        else:
            self._write_rows(snapshot)

    def _write_rows(self, snapshot: Snapshot) -> None:
        try:
            self._write_csv(snapshot)
        except (OSError, ValueError) as exc:  # stdout closed, a full disk
            logger.warning("cannot write the table (%s): nothing more is computed", exc)
            self._csv = None

    def _write_csv(self, snapshot: Snapshot) -> None:
        if self._csv is None:
            return
        notionals, spreads = snapshot.notionals_this_cycle(), snapshot.spreads_this_cycle()
        micro = {r.symbol: r.values for r in snapshot.microstructure if r.cycle == snapshot.cycle}
        when = format_utc(snapshot.read_at)

        for state in snapshot.books:
            notional, spread = notionals.get(state.symbol), spreads.get(state.symbol)
            values = micro.get(state.symbol)
            self._csv.writerow(
                (
                    when,
                    snapshot.cycle,
                    state.symbol,
                    "1" if state.in_sync else "0",
                    _text(notional.bid if notional else None),
                    _text(notional.ask if notional else None),
                    _text(spread.spread if spread else None),
                    _text(spread.delta if spread else None),
                    _text(values.mid if values else None),
                    _text(values.micro if values else None),
                    *(_text(values.imbalance.get(levels) if values else None) for levels in IMBALANCE_LEVELS),
                )
            )


def _text(value: Optional[Decimal]) -> str:
    """A CSV cell: the exact decimal, or empty when there is none."""
    return "" if value is None else format_decimal(value)
