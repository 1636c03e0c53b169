"""Binance's websocket streams: the connections, and the local order books,
trade flows and 24 h table kept from what they carry.

All websocket I/O runs in one asyncio loop on its own thread. Each tracked
symbol has a ``DepthSync`` fed by its ``<symbol>@depth@100ms`` stream and
a ``TradeSync`` fed by its ``<symbol>@aggTrade`` stream; their REST
requests (depth snapshots, the trades' baseline and backfills) go through
the REST client (and so its request gate) on worker threads, at most
``REQUEST_WORKERS`` at once, each when the request gate's weight budget
has room for it (``weight_wait``): the most wanted first, in the order
``track`` was given the symbols. ``!ticker_1d@arr`` keeps the 24 h table
the rankings read. With ``tops``, each symbol's ``<symbol>@bookTicker``
stream gives its best bid and ask from the first message, before its book
is in sync; a top is kept while the connection that carried it is open.
Other threads call ``track``, ``book_readings``, ``tickers`` and
``counts``: they never wait on the network, only (for ``book_readings``)
on the loop copying the books' best levels.

Binance's rules, kept:

* at most ``MAX_STREAMS_PER_CONNECTION`` (1024) streams a connection; more
  open another connection;
* at most 5 messages a second sent per connection, pings and pongs
  included: subscriptions are batched and sent at most every
  ``MESSAGE_INTERVAL`` seconds (3 in any second), which leaves room for
  the keepalive's ping and the pong to Binance's ping in the same second
  (both come every 20 s from the connection's start, so they meet);
* at most 300 connection attempts per 5 minutes per IP: attempts are
  held to ``CONNECTION_ATTEMPTS`` per ``ATTEMPT_WINDOW`` seconds, and
  reconnects back off with jitter, up to ``MAX_BACKOFF`` seconds, and take
  turns ``RECONNECT_SPACING`` apart, so that connections lost together
  come back one by one;
* Binance's pings are answered; ours go every ``PING_INTERVAL`` seconds,
  and a connection whose pong is ``PING_TIMEOUT`` late is replaced
  (``silent``);
* a connection is replaced before Binance closes it at 24 h
  (``MAX_CONNECTION_AGE``), and on a ``serverShutdown`` event, without a
  gap: the new connection is opened and subscribed, and the old one
  closed once every book has moved to the new one (or after
  ``HANDOVER_SECONDS``).

A book takes its events from one connection at a time: two connections'
events may be batched differently, and one's may run ahead of the
other's. While a book's connection is being replaced, the new
connection's events are held (at most ``MAX_HELD_EVENTS``), and the book
moves to the new connection as soon as they continue it exactly
(``DepthSync.follows``), never taken for a gap. A book whose connection
is lost is interrupted (``DepthSync.interrupted``), and the next events
from any connection decide whether it resumes or resyncs.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import json
import logging
import math
import random
import threading
import time
from collections import Counter, deque
from concurrent.futures import CancelledError, Future
from typing import Any, Callable, Iterable, NamedTuple, Optional

import orjson
import uvloop
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI, WebSocketException

from binance_exporter.binance.direct_frames import DirectConnection
from binance_exporter.binance.depth_sync import WAITING_EVENTS, DepthEvent, DepthSnapshot, DepthSync
from binance_exporter.binance.recording import Recorder
from binance_exporter.binance.request_gate import RequestSkipped
from binance_exporter.binance.responses import (
    parse_agg_trade_event,
    parse_book_ticker_event,
    parse_depth_event,
    parse_rolling_tickers,
)
from binance_exporter.binance.rest_client import WEIGHTS, depth_weight
from binance_exporter.binance.trade_sync import BACKFILL_LIMIT, TradeSync
from binance_exporter.binance.workers import WorkerPool
from binance_exporter.cycle.snapshot import BookState, LiveBook, StreamCounts, TradeFlow
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import BOOK_DEPTH, BookTop, Ticker24h, printable
from binance_exporter.market.microstructure import AggTrade, BookView

logger = logging.getLogger(__name__)

TICKER_STREAM = "!ticker_1d@arr"
DEPTH_SUFFIX = "@depth@100ms"
TRADE_SUFFIX = "@aggTrade"
TOP_SUFFIX = "@bookTicker"
MAX_STREAMS_PER_CONNECTION = 1024
MESSAGE_INTERVAL = 0.35
MAX_STREAMS_PER_MESSAGE = 200
CONNECTION_ATTEMPTS = 200
ATTEMPT_WINDOW = 300.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
RECONNECT_SPACING = 1.0  # seconds between two connections' reconnects
STABLE_SECONDS = 30.0  # a connection that lived this long starts its backoff over
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 0.5  # for Binance's answer to our close frame: a stop must not wait longer
MAX_CONNECTION_AGE = 23 * 3600.0
HANDOVER_SECONDS = 30.0
MANAGE_PAUSE = 0.02  # seconds between two passes over the books' wants (1,500 of them with --symbols all)
MAX_HELD_EVENTS = 50
MAX_FRAME_BYTES = 4 * 2**20  # a whole !ticker_1d@arr of every symbol is about 1 MB
MAX_QUEUED_FRAMES = 64
MAX_TICKERS = 10_000
REQUEST_WORKERS = 4
REQUEST_DEADLINE = 10.0
REQUEST_RETRY = (1.0, 30.0)  # first and longest wait before asking again for what failed
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CLOSED, ERROR, SILENT, ROTATION, SERVER_SHUTDOWN = "closed", "error", "silent", "rotation", "server_shutdown"
SNAPSHOT, TRADES = "order book snapshot", "aggregate trades"  # what a REST request is for
AGG_TRADES = "/api/v3/aggTrades"
RECONNECT_REASONS = (CLOSED, ERROR, SILENT, ROTATION, SERVER_SHUTDOWN)
KEEPALIVE_TIMEOUT = 1011  # the close code websockets sends when a pong is late


class BookReading(NamedTuple):
    """A tracked symbol at one moment: its book's state; while the book is
    in sync, its levels out to the widest depth band (at least the best
    ``depth``) and its horizons; its trade flow once counting began; and
    its best bid and ask from its ``@bookTicker`` stream, with ``tops``,
    while the connection that carried it is open."""

    state: BookState
    view: Optional[BookView]
    flow: Optional[TradeFlow]
    top: Optional[BookTop] = None


def depth_stream(symbol: str) -> str:
    """The diff-depth stream of ``symbol``: ``btcusdt@depth@100ms``."""
    return symbol.lower() + DEPTH_SUFFIX


def trade_stream(symbol: str) -> str:
    """The aggregate trade stream of ``symbol``: ``btcusdt@aggTrade``."""
    return symbol.lower() + TRADE_SUFFIX


def top_stream(symbol: str) -> str:
    """The best bid and ask stream of ``symbol``: ``btcusdt@bookTicker``."""
    return symbol.lower() + TOP_SUFFIX


def _read_update_id(sync: DepthSync) -> Optional[int]:
    """The update id a book in sync is at; None for one out of sync."""
    return sync.book.update_id if sync.book is not None and sync.in_sync else None


def _book_state(symbol: str, sync: DepthSync) -> BookState:
    book = sync.book if sync.in_sync else None
    return BookState(
        symbol=symbol,
        in_sync=sync.in_sync,
        bid_levels=len(book.bids) if book else 0,
        ask_levels=len(book.asks) if book else 0,
        last_event_time=sync.last_event_time / 1000 if sync.last_event_time is not None else None,
        resyncs=tuple(sorted(sync.resyncs.items())),
    )


class ConnectionAttempts:
    """Connection attempts in a sliding window, held under a limit."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]):
        self.limit, self.window, self._clock = limit, window, clock
        self._times: deque[float] = deque()

    def wait(self) -> float:
        """Seconds until another attempt is allowed (0: now)."""
        now = self._clock()
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return 0.0 if len(self._times) < self.limit else self._times[0] + self.window - now

    def record(self) -> None:
        """Counts an attempt made now."""
        self._times.append(self._clock())


class _Connection:  # pylint: disable=too-many-instance-attributes  # one websocket's state
    """One websocket connection: the streams it should carry, the ones
    asked for, and its handover to a replacement."""

    def __init__(self, number: int):
        self.number = number
        self.wanted: set[str] = set()
        self.subscribed: set[str] = set()  # asked for on the open socket
        self.ws: Optional[DirectConnection] = None
        self.opened_at: Optional[float] = None
        self.changed = asyncio.Event()
        self.task: Optional[asyncio.Task] = None
        self.stopping = False  # closed on purpose: no reconnect, no interruption
        self.replacement: Optional[tuple[str, float]] = None  # being replaced: (why, when to close it anyway)
        self.warned_invalid = False

    def next_message(self, ids: Iterable[int], paused: frozenset[str] = frozenset()) -> Optional[dict[str, Any]]:
        """The next SUBSCRIBE or UNSUBSCRIBE that brings the socket closer
        to ``wanted`` but for the ``paused`` streams, marked as done; None
        when nothing is left. (A paused stream keeps its place: it comes
        back with no new plan.)"""
        carried = self.wanted - paused
        removed = sorted(self.subscribed - carried)[:MAX_STREAMS_PER_MESSAGE]
        if removed:
            self.subscribed.difference_update(removed)
            return {"method": "UNSUBSCRIBE", "params": removed, "id": next(iter(ids))}
        added = sorted(carried - self.subscribed)[:MAX_STREAMS_PER_MESSAGE]
        if added:
            self.subscribed.update(added)
            return {"method": "SUBSCRIBE", "params": added, "id": next(iter(ids))}
        return None


class _Reading:
    """One update cycle's reading of the books, as ``--record`` records it:
    taken by the loop (``take``: the update id of each book read) or given
    up on by the cycle (``give_up``), whichever comes first, never both."""

    def __init__(self, recorder: Optional[Recorder], cycle: Optional[dict[str, Any]]):
        self.recorder = recorder if cycle is not None else None
        self.cycle = cycle or {}
        self._lock = threading.Lock()
        self._decided = False
        self.taken = False
        self.books_read: dict[str, BookReading] = {}  # what the loop read, once taken

    def take(self, books_read: dict[str, BookReading], update_ids: dict[str, Optional[int]]) -> None:
        """The loop read the books: kept and recorded, unless the cycle gave up."""
        with self._lock:
            if self._decided:
                return
            self._decided = self.taken = True
            self.books_read = books_read
            if self.recorder is not None:
                self.recorder.cycle({**self.cycle, "books": update_ids})

    def give_up(self) -> bool:
        """The cycle stops waiting: recorded as a reading that did not come,
        unless the loop took it already (False: ``books_read`` holds it)."""
        with self._lock:
            if self._decided:
                return not self.taken
            self._decided = True
            if self.recorder is not None:
                self.recorder.cycle({**self.cycle, "books": None})
            return True


class StreamHub:  # pylint: disable=too-many-instance-attributes  # the loop, its connections, books and counts
    """The websocket streams and what is kept from them; ``start()`` runs
    them on a thread, ``stop()`` ends them."""

    waiting = WAITING_EVENTS  # events (and trades) a symbol keeps while its snapshot (baseline) waits its turn

    def __init__(  # pylint: disable=too-many-arguments
        self,
        urls: tuple[str, ...],
        snapshots: Callable[[str, int, Optional[float]], DepthSnapshot],
        trades: Callable[[str, Optional[int], int, Optional[float]], list[AggTrade]],
        *,
        depth: int = BOOK_DEPTH,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
        max_connection_age: float = MAX_CONNECTION_AGE,
        first_backoff: float = FIRST_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Optional[random.Random] = None,
        recorder: Optional[Recorder] = None,
        tops: bool = False,
        weight_wait: Callable[[int], float] = lambda weight: 0.0,
    ):
        self.urls = urls
        self.tops = tops
        self._weight_wait = weight_wait  # seconds until the request gate admits a request of some weight
        self._snapshots, self._trades = snapshots, trades
        self.depth = depth
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.max_connection_age = max_connection_age
        self.first_backoff = first_backoff
        self._clock, self._wall_clock, self._rng = clock, wall_clock, rng or random.Random()
        self._recorder = recorder  # takes every message received, with --record
        self._url_index = 0
        self._loop = uvloop.new_event_loop()  # a third less CPU a frame than asyncio's own loop
        self._thread = threading.Thread(target=self._run, name="streams", daemon=True)
        self._workers = WorkerPool(REQUEST_WORKERS, name="stream-rest")
        self._attempts = ConnectionAttempts(CONNECTION_ATTEMPTS, ATTEMPT_WINDOW, clock)
        self._ids = itertools.count(1)
        self._numbers = itertools.count(1)
        self._changed = asyncio.Event()
        self._managing: Optional[asyncio.Task] = None
        # Owned by the loop's thread:
        self._syncs: dict[str, DepthSync] = {}
        self._trade_syncs: dict[str, TradeSync] = {}
        self._connections: list[_Connection] = []
        self._requests_running = 0
        self._running_weight = 0  # of the requests started and not yet ended
        self._next_reconnect = -math.inf  # the clock time of the next reconnect's turn
        self._warned_over_budget = False
        self._retry: dict[tuple[str, str], tuple[float, float]] = {}  # (what, symbol): (not before, last wait)
        self._sources: dict[str, _Connection] = {}  # symbol: the connection its book takes events from
        self._held: dict[str, tuple[_Connection, deque]] = {}  # symbol: a replacement's events, for the move
        self._tops: dict[str, tuple[_Connection, int, BookTop]] = {}  # symbol: (carried by, update id, best levels)
        self._quiet_tops: frozenset[str] = frozenset()  # the top streams of books in sync: not subscribed
        self._quiet_at = -math.inf  # the clock time they were last looked at
        self._replan = True  # the streams wanted or the connections changed since the last _plan
        # Read by other threads under the lock:
        self._lock = threading.Lock()
        self._tickers: dict[str, Ticker24h] = {}
        self._tickers_at: Optional[float] = None
        self._tickers_read: tuple[Optional[float], list[Ticker24h]] = (None, [])  # see tickers()
        self._reconnects: Counter[str] = Counter()
        self._messages: Counter[str] = Counter()
        self._invalid = 0
        self._lag_counts = [0] * (len(LAG_BUCKETS) + 1)
        self._lag_sum = 0.0
        self._open = 0

    # The other threads' side.

    def start(self) -> "StreamHub":
        """Starts the loop's thread."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.5) -> None:
        """Closes every connection; gives up waiting after ``timeout``
        seconds (the thread is a daemon)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop_managing)
            self._thread.join(timeout)
        self._workers.close()

    def track(self, symbols: Iterable[str]) -> None:
        """Keeps live books of exactly ``symbols`` from now on; their
        snapshots are taken in that order."""
        wanted = tuple(dict.fromkeys(symbols))
        self._loop.call_soon_threadsafe(self._track, wanted)

    def book_readings(self, timeout: float, cycle: Optional[dict[str, Any]] = None) -> dict[str, BookReading]:
        """Every live book's state and, for those in sync, the best
        ``depth`` levels of each side, all as of one moment. With
        ``--record``, the reading is recorded as ``cycle`` (the update
        cycle's number, clock and time) with the update id of each book
        read, in order with the messages received; or, when it does not
        come within ``timeout``, as a reading that did not come (books
        null). Raises ``MarketDataError`` if the loop does not answer
        within ``timeout``."""
        reading = _Reading(self._recorder, cycle)
        future: Optional[Future] = None
        try:
            future = asyncio.run_coroutine_threadsafe(self._read_books(reading), self._loop)
            return future.result(timeout)
        except (TimeoutError, RuntimeError, CancelledError) as exc:
            if not reading.give_up():  # the loop took it just now: what it read is kept
                return reading.books_read
            if future is not None:
                future.cancel()
            raise MarketDataError("the streams' loop did not answer in time", "late") from exc

    def live_books(self, symbols: Iterable[str], levels: int, known: dict[str, tuple], timeout: float) -> dict:
        """The live view of each of ``symbols`` as of one moment, with its
        best ``levels`` a side (None for a symbol not tracked); a symbol
        whose version is ``known[symbol]`` is left out (nothing changed). Raises
        ``MarketDataError`` if the loop does not answer within ``timeout``."""
        return self._on_loop(self._read_live(tuple(symbols), levels, dict(known)), timeout)

    def _on_loop(self, coroutine: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except (TimeoutError, RuntimeError) as exc:
            future.cancel()
            raise MarketDataError("the streams' loop did not answer in time", "late") from exc

    def seed_tickers(self, tickers: Iterable[Ticker24h]) -> None:
        """Replaces the 24 h table with a REST answer's."""
        table = {ticker.symbol: ticker for ticker in itertools.islice(tickers, MAX_TICKERS)}
        with self._lock:
            self._tickers = table
            self._tickers_read = (self._tickers_at, list(table.values()))

    def tickers(self) -> tuple[Optional[float], list[Ticker24h]]:
        """The 24 h table as the latest reading of the books saw it (or as
        seeded since), and when the ticker stream had last updated it then
        (on ``clock``; None if it never had). A reading is a moment
        ``--record`` records, in order with the messages: the rankings and
        the order of the books made from this table are made again the
        same from a recording (the table now could hold a message more)."""
        with self._lock:
            return self._tickers_read

    def counts(self) -> StreamCounts:
        """The connections' counts so far."""
        with self._lock:
            return StreamCounts(
                connections=self._open,
                reconnects=tuple(sorted(self._reconnects.items())),
                messages=tuple(sorted(self._messages.items())),
                invalid_messages=self._invalid,
                lag_buckets=LAG_BUCKETS,
                lag_counts=tuple(self._lag_counts),
                lag_sum=self._lag_sum,
            )

    # The loop's side.

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._managing = self._loop.create_task(self._manage())
        try:
            self._loop.run_until_complete(self._managing)
        except asyncio.CancelledError:
            pass
        finally:
            left = asyncio.all_tasks(self._loop)  # snapshots on their way
            for task in left:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _stop_managing(self) -> None:
        if self._managing is not None:
            self._managing.cancel()

    async def _read_books(self, reading: Optional["_Reading"] = None) -> dict[str, BookReading]:
        readings = {}
        for symbol, sync in self._syncs.items():
            book = sync.book if sync.in_sync else None
            view = book.view(self.depth) if book is not None else None
            top = self._tops.get(symbol)
            readings[symbol] = BookReading(
                _book_state(symbol, sync), view, self._trade_flow(symbol), top[2] if top is not None else None
            )
        if reading is not None:
            reading.take(readings, {symbol: _read_update_id(sync) for symbol, sync in self._syncs.items()})
        if reading is None or reading.taken:  # a reading the cycle gave up on is recorded as not come
            with self._lock:
                self._tickers_read = (self._tickers_at, list(self._tickers.values()))
        return readings

    async def _read_live(
        self, symbols: tuple[str, ...], levels: int, known: dict[str, tuple]
    ) -> dict[str, Optional[LiveBook]]:
        live: dict[str, Optional[LiveBook]] = {}
        for symbol in symbols:
            sync = self._syncs.get(symbol)
            if sync is None:
                live[symbol] = None  # not tracked
                continue
            trades = self._trade_syncs[symbol]
            book = sync.book if sync.in_sync else None
            version = (
                book.update_id if book is not None else None,
                sum(sync.resyncs.values()),
                trades.last_counted_id,
                len(trades.recent),
            )
            if known.get(symbol) == version:
                continue
            view = None
            if book is not None:
                view = BookView(
                    tuple(book.bids.top(levels)), tuple(book.asks.top(levels)), book.bids.horizon, book.asks.horizon
                )
            live[symbol] = LiveBook(version, _book_state(symbol, sync), view, tuple(trades.recent))
        return live

    def _trade_flow(self, symbol: str) -> Optional[TradeFlow]:
        trades = self._trade_syncs[symbol]
        if not trades.baseline_known:
            return None
        return TradeFlow(
            symbol=symbol,
            buy=trades.flow["buy"],
            sell=trades.flow["sell"],
            last_price=None if trades.catch_up else trades.last_price,
            backfilled=trades.backfilled,
            lost=trades.lost,
        )

    def _track(self, symbols: tuple[str, ...]) -> None:
        """Keeps books of ``symbols``, in that order (the order their
        snapshots are asked for in)."""
        for symbol in set(self._syncs) - set(symbols):
            del self._syncs[symbol], self._trade_syncs[symbol]
            self._retry.pop((SNAPSHOT, symbol), None)
            self._retry.pop((TRADES, symbol), None)
            self._sources.pop(symbol, None)
            self._held.pop(symbol, None)
            self._tops.pop(symbol, None)
        kept = self._syncs
        self._syncs = {symbol: kept.get(symbol) or DepthSync(self.depth, waiting=self.waiting) for symbol in symbols}
        for symbol in symbols:
            self._trade_syncs.setdefault(symbol, TradeSync(self.waiting))
        self._replan = True
        self._changed.set()

    async def _manage(self) -> None:
        """Keeps the connections carrying the wanted streams, asks for the
        snapshots books want, and replaces connections that are due."""
        try:
            while True:
                if self._replan:
                    self._replan = False
                    self._plan()
                self._ask_for_requests()
                self._hand_over()
                self._quieten_tops()
                await asyncio.sleep(MANAGE_PAUSE)  # events may ask for a pass each: a pass at most this often
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.5)
                except TimeoutError:
                    pass
                self._changed.clear()
        finally:
            for connection in self._connections:
                connection.stopping = True
                if connection.task:
                    connection.task.cancel()
            await asyncio.gather(*(c.task for c in self._connections if c.task), return_exceptions=True)

    def _quieten_tops(self) -> None:
        """A book's top stream is carried only while the book is not in
        sync (a book in sync has a top of its own; the whole market's top
        streams would otherwise be a third of the messages): looked at
        once every ``MESSAGE_INTERVAL`` at most, and each connection told
        when it changed. The top of a book that has come in sync is
        forgotten at once (it would be stale by the time the book needs it
        again)."""
        now = self._clock()
        if not self.tops or now - self._quiet_at < MESSAGE_INTERVAL:
            return
        self._quiet_at = now
        synced = [symbol for symbol, sync in self._syncs.items() if sync.in_sync]
        quiet = frozenset(map(top_stream, synced))
        if quiet == self._quiet_tops:
            return
        for symbol in synced:
            self._tops.pop(symbol, None)
        self._quiet_tops = quiet
        for connection in self._connections:
            connection.changed.set()

    def _plan(self) -> None:
        """Assigns each wanted stream to one connection (the replacement,
        while one is being handed over to), opening connections as needed
        and closing those left with nothing to carry."""
        wanted = {TICKER_STREAM}
        for symbol in self._syncs:
            wanted |= {depth_stream(symbol), trade_stream(symbol)}
            if self.tops:
                wanted.add(top_stream(symbol))
        live = [c for c in self._connections if not c.stopping and c.replacement is None]
        for connection in live:
            connection.wanted &= wanted
        carried = set().union(*(c.wanted for c in live)) if live else set()
        for stream in sorted(wanted - carried):
            room = next((c for c in live if len(c.wanted) < MAX_STREAMS_PER_CONNECTION), None)
            if room is None:
                room = self._open_connection()
                live.append(room)
            room.wanted.add(stream)
        for connection in live:
            if not connection.wanted:
                self._close(connection)
            else:
                connection.changed.set()

    def _open_connection(self) -> _Connection:
        connection = _Connection(next(self._numbers))
        connection.task = self._loop.create_task(self._keep(connection))
        self._connections.append(connection)
        return connection

    def _close(self, connection: _Connection) -> None:
        self._retire(connection)
        if connection.task:
            connection.task.cancel()

    def _retire(self, connection: _Connection) -> None:
        """Takes ``connection`` out of service for good."""
        connection.stopping = True
        self._connections.remove(connection)
        self._lost(connection)
        self._replan = True

    def _lost(self, connection: _Connection) -> None:
        """The books that took their events from ``connection`` wait for
        the next event from any connection to say whether they missed any."""
        for symbol, source in list(self._sources.items()):
            if source is connection:
                del self._sources[symbol]
                self._syncs[symbol].interrupted()
                if symbol in self._held:
                    self._move(symbol, self._syncs[symbol])
        for symbol, (holder, _) in list(self._held.items()):
            if holder is connection:
                del self._held[symbol]
        for symbol, (carrier, _, _) in list(self._tops.items()):
            if carrier is connection:
                del self._tops[symbol]

    def _replace(self, connection: _Connection, reason: str) -> None:
        """Opens a replacement carrying the same streams; the old one
        closes once every book has moved to the new one (``_hand_over``)."""
        if connection.replacement is not None or connection.stopping:
            return
        new = self._open_connection()
        new.wanted = set(connection.wanted)
        self._replan = True
        connection.replacement = (reason, self._clock() + HANDOVER_SECONDS)
        logger.info("stream connection %d: replaced (%s)", connection.number, reason)

    def _hand_over(self) -> None:
        now = self._clock()
        for connection in list(self._connections):
            if connection.replacement is None:
                if connection.opened_at is not None and now - connection.opened_at >= self.max_connection_age:
                    self._replace(connection, ROTATION)
                continue
            reason, give_up = connection.replacement
            if connection not in self._sources.values() or now >= give_up:
                self._close(connection)
                with self._lock:
                    self._reconnects[reason] += 1

    async def _keep(self, connection: _Connection) -> None:
        """Keeps one connection open: connects, subscribes, reads; on a
        loss, marks its books interrupted and reconnects after a backoff."""
        failures = 0
        while not connection.stopping:
            if failures:
                backoff = min(MAX_BACKOFF, self.first_backoff * 2 ** (failures - 1))
                await asyncio.sleep(backoff * self._rng.uniform(0.5, 1.0) + self._reconnect_turn())
            while (wait := self._attempts.wait()) > 0:
                await asyncio.sleep(wait)
            self._attempts.record()
            reason, lived = await self._connect_and_read(connection)
            if connection.stopping:
                return
            if connection.replacement is not None:  # closed while handing over: its replacement goes on alone
                self._retire(connection)
                with self._lock:
                    self._reconnects[connection.replacement[0]] += 1
                return
            failures = 1 if lived >= STABLE_SECONDS else failures + 1
            with self._lock:
                self._reconnects[reason] += 1
            self._lost(connection)
            for symbol, trades in self._trade_syncs.items():
                if trade_stream(symbol) in connection.wanted:
                    trades.interrupted()
            self._changed.set()

    def _reconnect_turn(self) -> float:
        """Seconds a reconnect waits for its turn: reconnects go one at a
        time, ``RECONNECT_SPACING`` apart, so that connections lost
        together (a network blip) come back one by one, each with its own
        books' resyncs."""
        now = self._clock()
        turn = max(now, self._next_reconnect)
        self._next_reconnect = turn + RECONNECT_SPACING
        return turn - now

    async def _connect_and_read(self, connection: _Connection) -> tuple[str, float]:
        """One connection's life; returns why it ended and how long it lived."""
        url = self.urls[self._url_index % len(self.urls)]
        opened = self._clock()
        try:
            async with connect(
                url.rstrip("/") + "/stream",
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                open_timeout=OPEN_TIMEOUT,
                close_timeout=CLOSE_TIMEOUT,
                max_size=MAX_FRAME_BYTES,
                max_queue=MAX_QUEUED_FRAMES,
                compression=None,
                create_connection=DirectConnection,
            ) as ws:
                opened = self._clock()
                self._opened(connection, ws)
                sender = asyncio.create_task(self._send(connection, ws))
                try:
                    async for frame in ws:  # what the connection does not hand to on_message as it reads
                        self._on_frame(connection, frame)
                finally:
                    sender.cancel()
                    self._closed(connection)
            return CLOSED, self._clock() - opened
        except ConnectionClosed as exc:
            silent = exc.sent is not None and exc.sent.code == KEEPALIVE_TIMEOUT
            logger.warning("stream connection %d lost: %s", connection.number, printable(str(exc)))
            return (SILENT if silent else CLOSED if exc.rcvd is not None else ERROR), self._clock() - opened
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, WebSocketException) as exc:
            self._url_index += 1  # the next URL, if there are several
            logger.warning("stream connection %d to %s failed: %s", connection.number, url, printable(str(exc)))
            return ERROR, self._clock() - opened

    def _opened(self, connection: _Connection, ws: DirectConnection) -> None:
        ws.on_message = functools.partial(self._on_frame, connection)
        connection.ws, connection.opened_at = ws, self._clock()
        connection.subscribed = set()
        connection.changed.set()
        with self._lock:
            self._open += 1
        logger.info("stream connection %d open: %d streams", connection.number, len(connection.wanted))

    def _closed(self, connection: _Connection) -> None:
        connection.ws = None
        with self._lock:
            self._open -= 1

    async def _send(self, connection: _Connection, ws: DirectConnection) -> None:
        """Sends the subscriptions the connection lacks, one message per
        ``MESSAGE_INTERVAL`` at most."""
        while True:
            await connection.changed.wait()
            connection.changed.clear()
            while (message := connection.next_message(self._ids, self._quiet_tops)) is not None:
                await ws.send(json.dumps(message))
                await asyncio.sleep(MESSAGE_INTERVAL)

    def _on_frame(self, connection: _Connection, frame: Any) -> None:
        if self._recorder is not None:
            self._recorder.stream_message(connection.number, frame)
        try:
            message = orjson.loads(frame)
            if not isinstance(message, dict):
                raise MarketDataError(f"expected an object, got {type(message).__name__}")
            stream, data = message.get("stream"), message.get("data")
            if isinstance(data, dict) and data.get("e") == "serverShutdown" or message.get("e") == "serverShutdown":
                self._replace(connection, SERVER_SHUTDOWN)
                self._changed.set()
            elif stream == TICKER_STREAM:
                self._on_tickers(data)
            elif isinstance(stream, str) and stream.endswith(DEPTH_SUFFIX):
                self._on_depth(connection, stream, data)
            elif isinstance(stream, str) and stream.endswith(TRADE_SUFFIX):
                self._on_trade(stream, data)
            elif isinstance(stream, str) and stream.endswith(TOP_SUFFIX):
                self._on_top(connection, stream, data)
            elif "id" in message:
                if message.get("error") is not None:
                    logger.warning("stream connection %d: Binance refused: %s", connection.number, message["error"])
            else:
                raise MarketDataError("neither a stream's message nor an answer")
        except (ValueError, MarketDataError) as exc:  # orjson.JSONDecodeError is a ValueError
            with self._lock:
                self._invalid += 1
            if not connection.warned_invalid:  # once per connection: a flood must not flood the log
                connection.warned_invalid = True
                logger.warning("stream connection %d: invalid message ignored: %s", connection.number, exc)

    def _on_tickers(self, data: Any) -> None:
        tickers, rejected = parse_rolling_tickers(data)
        now = self._clock()
        with self._lock:
            self._messages["ticker"] += 1
            self._invalid += len(rejected)
            for ticker in tickers:
                if ticker.symbol in self._tickers or len(self._tickers) < MAX_TICKERS:
                    self._tickers[ticker.symbol] = ticker
            self._tickers_at = now

    def _on_depth(self, connection: _Connection, stream: str, data: Any) -> None:
        event = parse_depth_event(data)
        lag = max(0.0, self._wall_clock() - event.event_time / 1000)
        with self._lock:
            self._messages["depth"] += 1
            self._lag_counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
            self._lag_sum += lag
        sync = self._syncs.get(event.symbol)
        if sync is None or depth_stream(event.symbol) != stream:
            return  # no longer tracked, or not what this stream carries
        symbol = event.symbol
        source = self._sources.get(symbol)
        if source is not None and source is not connection:
            if source.replacement is not None and connection.replacement is None:  # the book is to move here
                held = self._held.get(symbol)
                if held is None or held[0] is not connection:
                    held = self._held[symbol] = (connection, deque(maxlen=MAX_HELD_EVENTS))
                held[1].append(event)
                self._move(symbol, sync)
            return  # the book's own connection still carries it
        self._sources[symbol] = connection
        self._apply(symbol, sync, event)

    def _on_trade(self, stream: str, data: Any) -> None:
        symbol, trade = parse_agg_trade_event(data)
        with self._lock:
            self._messages["trade"] += 1
        sync = self._trade_syncs.get(symbol)
        if sync is None or trade_stream(symbol) != stream:
            return  # no longer tracked, or not what this stream carries
        sync.on_trade(trade)
        if sync.wanted_from() is not None and not sync.request_pending:
            self._changed.set()

    def _on_top(self, connection: _Connection, stream: str, data: Any) -> None:
        update_id, top = parse_book_ticker_event(data)
        with self._lock:
            self._messages["top"] += 1
        if not self.tops or top.symbol not in self._syncs or top_stream(top.symbol) != stream:
            return  # not wanted, or not what this stream carries
        if stream in self._quiet_tops or stream not in connection.subscribed:
            return  # on its way before its UNSUBSCRIBE
        kept = self._tops.get(top.symbol)
        if kept is None or update_id >= kept[1]:  # a connection lagging behind another is not news
            self._tops[top.symbol] = (connection, update_id, top)

    def _apply(self, symbol: str, sync: DepthSync, event: DepthEvent) -> None:
        reason = sync.on_event(event)
        if reason is not None:
            logger.info("%s: order book resynced (%s)", symbol, reason)
        if sync.wants_snapshot:
            self._changed.set()

    def _move(self, symbol: str, sync: DepthSync) -> None:
        """Moves a book to the connection whose events are held for it,
        once they continue it (or its own connection is lost: then they
        say whether it resumes or resyncs)."""
        connection, events = self._held[symbol]
        while events and sync.book is not None and events[0].last_id <= sync.book.update_id:
            events.popleft()
        lost = symbol not in self._sources
        if not events or not (lost or sync.follows(events[0])):
            return
        del self._held[symbol]
        self._sources[symbol] = connection
        for event in events:
            self._apply(symbol, sync, event)

    def _ask_for_requests(self) -> None:
        """Starts the REST requests the books and trade flows want, at most
        ``REQUEST_WORKERS`` at once and each once the weight budget has room
        for it: snapshots first, then the trades' requests, each in the
        order the symbols are tracked in, and each symbol's once its last
        failure's wait is over. Nothing jumps the queue when the budget
        has no room: the next pass asks again."""
        if self._requests_running >= REQUEST_WORKERS:
            return
        now = self._clock()
        wanted: list[tuple[str, str, Any]] = [
            (SNAPSHOT, symbol, sync) for symbol, sync in self._syncs.items() if sync.wants_snapshot
        ]
        market_taken_in = not wanted or all(sync.taken_in for sync in self._syncs.values())
        trade_syncs = ((symbol, self._trade_syncs[symbol]) for symbol in self._syncs)
        wanted += [
            (TRADES, symbol, trades)
            for symbol, trades in trade_syncs
            if not trades.request_pending and (not trades.baseline_known or trades.wanted_from() is not None)
        ]
        for what, symbol, sync in wanted:
            if self._requests_running >= REQUEST_WORKERS:
                return
            if now < self._retry.get((what, symbol), (0.0, 0.0))[0]:
                continue
            if what == SNAPSHOT:
                limit = sync.limit_now(market_taken_in)
                weight = depth_weight(limit)
            else:
                limit, weight = 0, WEIGHTS[AGG_TRADES]
            # The gate learns of a request's weight only as a worker sends it: those started count meanwhile.
            wait = self._weight_wait(self._running_weight + weight)
            if wait == math.inf and not self._warned_over_budget:
                self._warned_over_budget = True
                logger.warning("%s: its %s request (weight %d) is over the whole --weight-budget", symbol, what, weight)
            if wait > 0:
                return
            self._requests_running += 1
            self._running_weight += weight
            if what == SNAPSHOT:
                sync.snapshot_pending = True
                self._loop.create_task(self._take_snapshot(symbol, sync, limit, weight))
            else:
                sync.request_pending = True
                self._loop.create_task(self._fetch_trades(symbol, sync, weight))

    async def _request(self, what: str, symbol: str, call: Callable[[], Any], weight: int) -> Any:
        """``call`` on a worker thread; None after a failure, logged, and
        the wait before the next try doubled (``REQUEST_RETRY``)."""
        try:
            answer = await asyncio.wrap_future(self._workers.submit(call))
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a bug here must not end the streams
            wait = min(REQUEST_RETRY[1], 2 * self._retry.get((what, symbol), (0.0, REQUEST_RETRY[0] / 2))[1])
            self._retry[(what, symbol)] = (self._clock() + wait, wait)
            if not isinstance(exc, MarketDataError):
                logger.exception("%s: %s failed unexpectedly, again in %.0f s", symbol, what, wait)
                return None
            level = logging.DEBUG if isinstance(exc, RequestSkipped) else logging.WARNING
            logger.log(level, "%s: %s failed, again in %.0f s: %s", symbol, what, wait, exc)
            return None
        finally:
            self._requests_running -= 1
            self._running_weight -= weight
            self._changed.set()
        self._retry.pop((what, symbol), None)
        return answer

    async def _fetch_trades(self, symbol: str, sync: TradeSync, weight: int) -> None:
        """The trades' baseline (the latest trade), or a backfill."""
        from_id = sync.wanted_from() if sync.baseline_known else None
        limit = BACKFILL_LIMIT if sync.baseline_known else 1
        try:
            answer = await self._request(
                TRADES, symbol, lambda: self._trades(symbol, from_id, limit, REQUEST_DEADLINE), weight
            )
        finally:
            sync.request_pending = False
        if answer is None or self._trade_syncs.get(symbol) is not sync:
            return  # failed, or no longer tracked
        if not sync.baseline_known:
            sync.on_baseline(answer[-1] if answer else None)
        elif from_id is not None:
            sync.on_backfill(from_id, answer)

    async def _take_snapshot(self, symbol: str, sync: DepthSync, limit: int, weight: int) -> None:
        try:
            snapshot = await self._request(
                SNAPSHOT, symbol, lambda: self._snapshots(symbol, limit, REQUEST_DEADLINE), weight
            )
        finally:
            sync.snapshot_pending = False
        if snapshot is None or self._syncs.get(symbol) is not sync:
            return  # no longer tracked
        if not sync.on_snapshot(snapshot):
            logger.info("%s: order book snapshot older than the stream, taken again", symbol)
        elif sync.in_sync:
            logger.info("%s: order book in sync at update %d", symbol, snapshot.last_update_id)
