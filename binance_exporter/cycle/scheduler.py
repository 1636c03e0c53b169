"""The update cycle: what to fetch from Binance when, and the snapshot
each cycle publishes.

Each cycle (every ``update_interval`` seconds):

1. refreshes exchange info when it is an hour old (or missing);
2. refreshes the rankings (every Q1 and Q2 list) when they are
   ``rank_interval`` old, all from one request;
3. fetches the order book of every Q1 symbol and the book tops of all Q2
   symbols (a request per ``BOOK_TICKER_BATCH`` of them) concurrently, so a
   cycle costs about one round trip; a symbol in several lists is fetched
   once;
4. publishes a new ``Snapshot``.

A failure costs only what failed: other symbols still update, the next
cycle tries again, and a symbol's last good values are published for at
most ``STALE_AFTER_INTERVALS`` intervals.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional, Protocol

from binance_exporter.binance.request_gate import RequestSkipped
from binance_exporter.binance.workers import WorkerPool
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import (
    BY_QUOTE_VOLUME,
    BY_TRADE_COUNT,
    DEFAULT_TOP_LISTS,
    TOP_N,
    BookTop,
    OrderBook,
    Ranking,
    SymbolInfo,
    Ticker24h,
    TopList,
    listed_symbols,
    rank_top_lists,
    side_notional,
    spread,
    spread_delta,
)
from binance_exporter.cycle.snapshot import ApiCounts, BookNotional, Snapshot, SpreadReading

logger = logging.getLogger(__name__)

STALE_AFTER_INTERVALS = 3
EXCHANGE_INFO_INTERVAL = 3600.0
# Symbols per bookTicker request: --top 100's whole list, as one request
# always asked for; more lists take more requests rather than longer URLs.
BOOK_TICKER_BATCH = 100
MAX_WORKERS = 16


class MarketSource(Protocol):
    """Where market data comes from (today Binance's REST API)."""

    # Each call gives up (MarketDataError) rather than run past ``time_left`` seconds.

    def exchange_info(self, time_left: Optional[float] = None) -> dict[str, SymbolInfo]:
        """Every listed symbol, by name."""

    def tickers_24h(self, time_left: Optional[float] = None) -> list[Ticker24h]:
        """Every symbol's 24 h statistics."""

    def order_book(self, symbol: str, time_left: Optional[float] = None) -> OrderBook:
        """The best levels of ``symbol``'s book."""

    def book_tops(self, symbols: list[str], time_left: Optional[float] = None) -> dict[str, BookTop]:
        """Best bid and ask of each of ``symbols`` that could be read."""

    def api_counts(self) -> ApiCounts:
        """Requests made so far and their outcomes."""


def _log_failure(what: str, error: MarketDataError, level: int = logging.WARNING) -> None:
    # A request the gate skipped was logged once, where the pause began.
    logger.log(logging.DEBUG if isinstance(error, RequestSkipped) else level, "%s: %s", what, error)


@dataclass(frozen=True)
class Schedule:
    """How often each piece of data is refreshed, in seconds."""

    update_interval: float = 10.0
    rank_interval: float = 60.0
    exchange_info_interval: float = EXCHANGE_INFO_INTERVAL
    top_n: int = TOP_N
    top_lists: tuple[TopList, ...] = DEFAULT_TOP_LISTS

    def lists(self, name: str) -> int:
        """How many top lists rank by ``name``."""
        return sum(1 for top_list in self.top_lists if top_list.name == name)

    @property
    def depths_per_cycle(self) -> int:
        """Order books a cycle fetches at most: one per symbol of each Q1
        list (lists of distinct quote assets share no symbol)."""
        return self.lists(BY_QUOTE_VOLUME) * self.top_n

    @property
    def book_ticker_requests_per_cycle(self) -> int:
        """bookTicker requests a cycle makes at most, for the Q2 lists' symbols."""
        return math.ceil(self.lists(BY_TRADE_COUNT) * self.top_n / BOOK_TICKER_BATCH)

    def weight_per_minute(self, weights: Mapping[str, int]) -> float:
        """The request weight this schedule spends per minute when every
        request succeeds, at the ``weights`` of the endpoints: each cycle
        a depth per symbol of the Q1 lists and a bookTicker per
        ``BOOK_TICKER_BATCH`` symbols of the Q2 lists; each ranking all 24 h
        tickers; exchange info hourly."""
        cycle = (
            self.depths_per_cycle * weights["/api/v3/depth"]
            + self.book_ticker_requests_per_cycle * weights["/api/v3/ticker/bookTicker"]
        )
        ranking = weights["/api/v3/ticker/24hr"]
        exchange_info = weights["/api/v3/exchangeInfo"]
        return 60 * (
            cycle / self.update_interval
            + ranking / max(self.rank_interval, self.update_interval)
            + exchange_info / max(self.exchange_info_interval, self.update_interval)
        )


class SymbolReadings:
    """Each ranked symbol's last good readings, and the symbols Binance no
    longer lists.

    A reading is kept with the time it was fetched; ``fresh`` returns only
    those younger than ``max_age``. A symbol that leaves its list, or is
    dropped, is forgotten: it vanishes from /metrics at once, and if it
    returns its first spread has no delta.
    """

    def __init__(self, max_age: float):
        self.max_age = max_age
        self.notionals: dict[str, tuple[float, BookNotional]] = {}
        self.spreads: dict[str, tuple[float, SpreadReading]] = {}
        self.dropped: set[str] = set()  # answered -1121 (invalid symbol) since the last ranking

    def add_notional(self, now: float, reading: BookNotional) -> None:
        """Keeps a Q3 reading."""
        self.notionals[reading.symbol] = (now, reading)

    def add_spread(self, now: float, top: BookTop, cycle: int) -> None:
        """Keeps a Q4 reading, with its change since the symbol's previous one."""
        previous = self.spreads.get(top.symbol)
        value = spread(top)
        delta = spread_delta(previous[1].spread if previous else None, value)
        self.spreads[top.symbol] = (now, SpreadReading(top, value, delta, cycle))

    def new_ranking(self, notional_symbols: tuple[str, ...], spread_symbols: tuple[str, ...]) -> None:
        """Forgets symbols no longer answered for; dropped symbols get another chance."""
        self.notionals = {s: v for s, v in self.notionals.items() if s in notional_symbols}
        self.spreads = {s: v for s, v in self.spreads.items() if s in spread_symbols}
        self.dropped.clear()

    def drop(self, symbol: str) -> None:
        """Forgets a symbol Binance no longer lists, until the next ranking."""
        self.dropped.add(symbol)
        self.notionals.pop(symbol, None)
        self.spreads.pop(symbol, None)

    def fresh_notionals(self, symbols: tuple[str, ...], now: float) -> tuple[BookNotional, ...]:
        """The Q3 readings of ``symbols`` that are not too old, in list order."""
        return self._fresh(self.notionals, symbols, now)

    def fresh_spreads(self, symbols: tuple[str, ...], now: float) -> tuple[SpreadReading, ...]:
        """The Q4 readings of ``symbols`` that are not too old, in list order."""
        return self._fresh(self.spreads, symbols, now)

    def _fresh(self, readings: Mapping[str, tuple[float, Any]], symbols: tuple[str, ...], now: float) -> tuple:
        return tuple(readings[s][1] for s in symbols if s in readings and now - readings[s][0] <= self.max_age)


class Scheduler:
    """Runs update cycles against a ``MarketSource`` and publishes snapshots.

    ``snapshot`` is always the latest complete one; it is replaced whole,
    never changed in place.
    """

    def __init__(
        self,
        source: MarketSource,
        schedule: Schedule = Schedule(),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.source = source
        self.schedule = schedule
        self.snapshot = Snapshot(top_lists=schedule.top_lists)
        self._clock = clock
        self._wall_clock = wall_clock
        self._pool = WorkerPool(self._fetch_workers())
        self._cycle = 0
        self._symbols: Optional[tuple[float, Mapping[str, SymbolInfo]]] = None  # (fetched at, symbols)
        self._rankings: Optional[tuple[float, tuple[Ranking, ...]]] = None  # (fetched at, rankings)
        self._readings = SymbolReadings(STALE_AFTER_INTERVALS * schedule.update_interval)
        self._deadline = 0.0
        self._started = 0.0  # when the cycle running (or the last one) started, on clock

    def _fetch_workers(self) -> int:
        """Threads for a cycle's requests: enough for all at once, up to ``MAX_WORKERS``."""
        requests = self.schedule.depths_per_cycle + self.schedule.book_ticker_requests_per_cycle
        return min(max(requests, 1), MAX_WORKERS)

    def close(self) -> None:
        """Releases the worker threads."""
        self._pool.close()

    def _current_rankings(self) -> tuple[Ranking, ...]:
        """The rankings, less the symbols Binance no longer lists."""
        dropped = self._readings.dropped
        return tuple(
            replace(ranking, tickers=tuple(t for t in ranking.tickers if t.symbol not in dropped))
            for ranking in (self._rankings[1] if self._rankings else ())
        )

    def _ranked(self, name: str) -> tuple[str, ...]:
        """The symbols of the lists of a ranking, each once, less those
        Binance no longer lists."""
        return tuple(listed_symbols(self._current_rankings(), name))

    def notional_symbols(self) -> tuple[str, ...]:
        """The symbols whose Q3 is answered: those of the Q1 lists."""
        return self._ranked(BY_QUOTE_VOLUME)

    def spread_symbols(self) -> tuple[str, ...]:
        """The symbols whose Q4 and Q5 are answered: those of the Q2 lists."""
        return self._ranked(BY_TRADE_COUNT)

    def _tickers(self, now: float) -> list[Ticker24h]:
        """Every symbol's 24 h statistics, to rank (``now`` on ``clock``)."""
        del now  # read afresh each time
        return self.source.tickers_24h(self._time_left())

    def _time_left(self) -> float:
        return max(0.0, self._deadline - self._clock())

    def _refresh_symbols(self, now: float) -> bool:
        if self._symbols is not None and now - self._symbols[0] < self.schedule.exchange_info_interval:
            return True
        try:
            symbols = self.source.exchange_info(self._time_left())
        except MarketDataError as exc:
            if self._symbols is None:  # nothing can be ranked until this works
                _log_failure("cannot read exchange info, without which nothing can be ranked", exc, logging.ERROR)
            else:
                _log_failure("exchange info not refreshed", exc)
            return False
        self._symbols = (now, symbols)
        logger.info("exchange info: %d symbols", len(symbols))
        return True

    def _refresh_rankings(self, now: float) -> bool:
        if self._rankings is not None and now - self._rankings[0] < self.schedule.rank_interval:
            return True
        if self._symbols is None:
            return False
        try:
            tickers = self._tickers(now)
        except MarketDataError as exc:
            _log_failure("rankings not refreshed", exc)
            return False
        rankings = rank_top_lists(tickers, self._symbols[1], self.schedule.top_lists, self.schedule.top_n)
        previous = {ranking.top_list: ranking for ranking in self._rankings[1]} if self._rankings else {}
        if self._rankings is None or rankings != self._rankings[1]:
            for ranking in rankings:
                if ranking.tickers:
                    logger.info("top %s %s: %s", ranking.quote_asset, ranking.name, ", ".join(ranking.symbols))
                elif previous.get(ranking.top_list) != ranking:  # said once, when the list becomes empty
                    logger.warning(
                        "top %s %s: none, no TRADING symbol is quoted in %s",
                        ranking.quote_asset,
                        ranking.name,
                        ranking.quote_asset,
                    )
        self._rankings = (now, rankings)
        self._readings.new_ranking(self.notional_symbols(), self.spread_symbols())
        return True

    def _refresh_books(self) -> bool:
        q1, q2 = self.notional_symbols(), list(self.spread_symbols())
        time_left = self._time_left()
        books = {symbol: self._pool.submit(self.source.order_book, symbol, time_left) for symbol in q1}
        batches = [q2[start : start + BOOK_TICKER_BATCH] for start in range(0, len(q2), BOOK_TICKER_BATCH)]
        tops = [(batch, self._pool.submit(self.source.book_tops, batch, time_left)) for batch in batches]
        notionals_complete = self._collect_notionals(books)
        spreads_complete = [self._collect_spreads(batch, future) for batch, future in tops]
        return notionals_complete and all(spreads_complete)

    def _collect_notionals(self, books: Mapping[str, Future]) -> bool:
        complete = True
        for symbol, future in books.items():
            try:
                book = self._wait(future, f"order book of {symbol}")
            except MarketDataError as exc:
                complete = False
                if exc.reason == "invalid_symbol":
                    self._drop(symbol)
                continue
            bid, ask = side_notional(book.bids, "bid"), side_notional(book.asks, "ask")
            self._readings.add_notional(self._clock(), BookNotional(symbol, bid, ask, self._cycle))
        return complete

    def _collect_spreads(self, symbols: list[str], tops: Future) -> bool:
        try:
            fetched = self._wait(tops, "book tops")
        except MarketDataError as exc:
            fetched = self._book_tops_one_by_one(symbols) if exc.reason == "invalid_symbol" else {}
        for symbol in symbols:
            if symbol in fetched:
                self._readings.add_spread(self._clock(), fetched[symbol], self._cycle)
        return all(symbol in fetched for symbol in symbols)

    def _book_tops_one_by_one(self, symbols: list[str]) -> dict[str, BookTop]:
        # Binance refuses a whole batch that names one symbol it no longer
        # lists: asking per symbol lets the others update and finds that one.
        futures = {s: self._pool.submit(self.source.book_tops, [s], self._time_left()) for s in symbols}
        fetched: dict[str, BookTop] = {}
        for symbol, future in futures.items():
            try:
                fetched.update(self._wait(future, f"book top of {symbol}"))
            except MarketDataError as exc:
                if exc.reason == "invalid_symbol":
                    self._drop(symbol)
        return fetched

    def _drop(self, symbol: str) -> None:
        """Stops asking for ``symbol``, which Binance no longer lists, until
        the next ranking, and has exchange info read again next cycle."""
        logger.warning("%s is not listed by Binance any more: dropped until the next ranking", symbol)
        self._readings.drop(symbol)
        if self._symbols is not None:
            self._symbols = (-math.inf, self._symbols[1])

    def _wait(self, future: Future, what: str) -> Any:
        """The future's result. If it failed or would run past the cycle,
        logs why and raises ``MarketDataError``."""
        try:
            return future.result(timeout=self._time_left())
        except FutureTimeout:
            future.cancel()
            error = MarketDataError("no answer before the next cycle was due", "late")
        except MarketDataError as exc:
            error = exc
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a bug costs only this request
            logger.exception("%s: unexpected error", what)
            raise MarketDataError(f"unexpected error: {exc!r}", "internal") from exc
        _log_failure(what, error)
        raise error

    def run_cycle(self) -> Snapshot:
        """Runs one update cycle and publishes (and returns) its snapshot.

        Whatever goes wrong, the snapshot is published: values past their
        age leave it, and it is not ``up``."""
        self._cycle += 1
        started = self._started = self._clock()
        # Everything a cycle waits for ends before the next cycle is due.
        self._deadline = started + self.schedule.update_interval
        try:
            complete = self._refresh_symbols(started)
            complete = self._refresh_rankings(started) and complete
            complete = self._refresh_books() and complete
        except Exception:  # pylint: disable=broad-exception-caught  # the cycle's boundary: values still age out
            logger.exception("update cycle %d failed", self._cycle)
            complete = False
        now = self._clock()
        fetched_at = self._rankings[0] if self._rankings else -math.inf
        rankings_fresh = now - fetched_at <= STALE_AFTER_INTERVALS * self.schedule.rank_interval
        snapshot = Snapshot(
            cycle=self._cycle,
            top_lists=self.schedule.top_lists,
            rankings=self._current_rankings() if rankings_fresh else (),
            notionals=self._readings.fresh_notionals(self.notional_symbols(), now),
            spreads=self._readings.fresh_spreads(self.spread_symbols(), now),
            up=complete,
            last_success=self._wall_clock() if complete else self.snapshot.last_success,
            read_at=self._wall_clock(),
            cycle_duration=now - started,
            update_interval=self.schedule.update_interval,
            api=self.source.api_counts(),
        )
        self.snapshot = self._completed(snapshot)
        return self.snapshot

    def _completed(self, snapshot: Snapshot) -> Snapshot:
        """``snapshot`` with what a subclass adds, before it is published
        (``self.snapshot`` is read by scrapes at any moment: never half made)."""
        return snapshot

    def run(self, stop: threading.Event, publish: Callable[[Snapshot], None]) -> None:
        """Runs a cycle every ``update_interval`` seconds until ``stop`` is
        set, handing each snapshot to ``publish``. Cycles keep a fixed
        rate; one that overruns skips the slots it missed. When a pause
        Binance asked for ends between two cycles, the next cycle runs as
        it ends, and the rate continues from there."""
        interval = self.schedule.update_interval
        next_at = self._clock()
        while not stop.is_set():
            snapshot = self.run_cycle()
            try:
                publish(snapshot)
            except Exception:  # pylint: disable=broad-exception-caught  # the updates must go on
                logger.exception("cannot publish the snapshot of cycle %d", snapshot.cycle)
            now = self._clock()
            while next_at <= now:
                next_at += interval
            if snapshot.api.paused_until is not None:
                resume_at = now + max(0.0, snapshot.api.paused_until - self._wall_clock())
                next_at = min(next_at, resume_at)
            stop.wait(next_at - now)
