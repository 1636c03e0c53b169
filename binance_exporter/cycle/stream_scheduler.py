"""The update cycle in stream mode: the same rhythm and snapshot as REST
mode, read from live order books and a live 24 h table.

Each cycle (every ``update_interval`` seconds):

1. refreshes exchange info when it is an hour old (REST, as in REST mode);
2. refreshes the rankings every ``rank_interval`` from the 24 h table the
   ``!ticker_1d@arr`` stream keeps, seeded from one ``GET
   /api/v3/ticker/24hr`` at start and every ``TICKER_RESEED_INTERVAL``;
3. tracks a live book for every symbol of the Q1 and Q2 lists and every
   ``--symbols`` symbol Binance lists as TRADING, or with ``--symbols
   all`` every TRADING symbol (and keeps, unexported, the books of TRADING
   symbols that left the lists in the last hour: ``STANDBY_SECONDS``); with
   ``--shard K/N``, only those of its shard. Their snapshots are taken in
   this order: the lists' symbols, then the others by 24 h trade count,
   the most traded first;
4. reads every tracked book in sync, all as of one moment, for Q3, Q4 and
   Q5 alike and for its microstructure, and every tracked symbol's trade
   flow, and publishes the snapshot. With ``--symbols all``, a symbol
   whose book is not in sync yet has its Q4 and Q5 from its best bid and
   ask on the ``@bookTicker`` stream (``BookReading.top``).

A book not in sync gives no reading: its last values age out after
``STALE_AFTER_INTERVALS`` intervals, as in REST mode. ``up`` is true when
every tracked book is in sync and the rankings are fresh. No cycle makes a
request but for exchange info and the table's reseed: the interval can be
as short as the books allow.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Callable, Optional, Union

from binance_exporter.binance.streams import StreamHub
from binance_exporter.cycle.scheduler import MarketSource, Schedule, Scheduler
from binance_exporter.cycle.snapshot import BookNotional, BookState, MicroReading, Snapshot, TradeFlow
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import (
    ALL_SYMBOLS,
    WHOLE,
    BookTop,
    Shard,
    SymbolInfo,
    Ticker24h,
    side_notional,
)
from binance_exporter.market.microstructure import microstructure

logger = logging.getLogger(__name__)

TICKER_RESEED_INTERVAL = 3600.0
# A book whose symbol left the lists is kept, unexported, this long, so that
# a symbol hovering at the edge of a top list costs no snapshot (weight 50)
# each time it comes back; at most as many such books as exported ones.
STANDBY_SECONDS = 3600.0
# The ticker stream pushes every second; this long without it, the table
# is no longer current and the rankings are not refreshed from it.
TICKER_SILENCE = 60.0
LOGGED_SYMBOLS = 30  # a change of the live books names them up to this many, else counts them


class StreamScheduler(Scheduler):  # pylint: disable=too-many-instance-attributes  # its settings and what it keeps
    """Runs update cycles from a ``StreamHub``'s books and table; REST
    (``source``) only for exchange info and the table's seed."""

    def __init__(  # pylint: disable=too-many-arguments
        self,
        source: MarketSource,
        hub: StreamHub,
        schedule: Schedule = Schedule(),
        symbols: Union[tuple[str, ...], str] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        shard: Shard = WHOLE,
    ):
        super().__init__(source, schedule, clock, wall_clock)
        self.hub = hub
        self.whole_market = symbols == ALL_SYMBOLS
        self.wanted_symbols: tuple[str, ...] = () if isinstance(symbols, str) else symbols  # --symbols
        self.shard = shard
        self._seeded_at = -math.inf
        self._tracked: tuple[str, ...] = ()
        self._standby: dict[str, float] = {}  # symbol: when it left the tracked ones (on clock)
        self._checked_at: Optional[float] = None  # when the exchange info --symbols was last checked against came
        self._extra: tuple[str, ...] = ()  # the --symbols Binance lists as TRADING
        self._book_states: tuple[BookState, ...] = ()
        self._micro: dict[str, tuple[float, MicroReading]] = {}  # symbol: (read at, reading)
        self._flows: dict[str, tuple[float, TradeFlow]] = {}
        self._read_at = 0.0  # the Unix time of the last reading of the books

    def _fetch_workers(self) -> int:
        return 0  # its requests (exchange info, the table's seed) are one at a time, on the cycle's thread

    def notional_symbols(self) -> tuple[str, ...]:
        """Every symbol with a live book."""
        return self._tracked

    def spread_symbols(self) -> tuple[str, ...]:
        """Every symbol with a live book."""
        return self._tracked

    def _tickers(self, now: float) -> list[Ticker24h]:
        if now - self._seeded_at >= TICKER_RESEED_INTERVAL:
            tickers = self.source.tickers_24h(self._time_left())
            self.hub.seed_tickers(tickers)
            self._seeded_at = now
            return tickers
        streamed_at, tickers = self.hub.tickers()
        if now - (streamed_at if streamed_at is not None else self._seeded_at) > TICKER_SILENCE:
            raise MarketDataError(f"the 24 h ticker stream has been silent for over {TICKER_SILENCE:.0f} s", "stale")
        return tickers

    def _check_wanted_symbols(self) -> None:
        """The ``--symbols`` Binance lists as TRADING (with ``--symbols
        all``, every TRADING symbol), of this shard; the others are logged,
        once per exchange info."""
        if self._symbols is None or self._checked_at == self._symbols[0]:
            return
        self._checked_at, listed = self._symbols
        if self.whole_market:
            self._extra = tuple(s for s, info in listed.items() if info.trading and self.shard.owns(s))
            logger.info("the whole market: %d TRADING symbols in shard %s", len(self._extra), self.shard)
            return
        trading = tuple(s for s in self.wanted_symbols if s in listed and listed[s].trading)
        self._extra = tuple(s for s in trading if self.shard.owns(s))
        for symbol in self.wanted_symbols:
            if symbol not in trading:
                status = listed[symbol].status if symbol in listed else "not listed"
                logger.warning("--symbols %s skipped: not a TRADING symbol (%s)", symbol, status)

    def _track(self) -> None:
        self._check_wanted_symbols()
        ranked = tuple(s for s in self._ranked_symbols() if self.shard.owns(s))
        tracked = tuple(dict.fromkeys(ranked + self._by_trade_count(self._extra)))
        now = self._clock()
        if set(tracked) != set(self._tracked):
            for symbol in set(self._tracked) - set(tracked):
                self._standby[symbol] = now
            self._readings.new_ranking(tracked, tracked)
            named = ", ".join(tracked) if len(tracked) <= LOGGED_SYMBOLS else f"{len(tracked)} symbols"
            logger.info("live order books: %s", named or "none")
        self._tracked = tracked
        listed = self._symbols[1] if self._symbols is not None else {}
        recent = sorted(
            (
                (left, s)
                for s, left in self._standby.items()
                if s not in tracked and now - left < STANDBY_SECONDS and s in listed and listed[s].trading
            ),
            reverse=True,
        )[: len(tracked)]
        self._standby = {symbol: left for left, symbol in recent}
        self.hub.track(tracked + tuple(self._standby))

    def _by_trade_count(self, symbols: tuple[str, ...]) -> tuple[str, ...]:
        """``symbols``, the most traded in 24 h first (the order their
        snapshots are taken in)."""
        if len(symbols) < 2:
            return symbols
        counts = {ticker.symbol: ticker.trade_count for ticker in self.hub.tickers()[1]}
        return tuple(sorted(symbols, key=lambda symbol: -counts.get(symbol, 0)))

    def listings(self) -> tuple[SymbolInfo, ...]:
        """What exchange info says of each symbol with a live book."""
        listed = self._symbols[1] if self._symbols is not None else {}
        return tuple(listed[symbol] for symbol in self._tracked if symbol in listed)

    def _ranked_symbols(self) -> tuple[str, ...]:
        return super().notional_symbols() + super().spread_symbols()

    def _refresh_books(self) -> bool:
        self._track()
        self._read_at = self._wall_clock()
        try:
            cycle = {"n": self._cycle, "clock": self._started, "time": self._read_at}
            readings = self.hub.book_readings(max(self._time_left(), 0.1), cycle)
        except MarketDataError as exc:
            logger.warning("cannot read the live order books: %s", exc)
            return False
        self._book_states = tuple(readings[s].state for s in self._tracked if s in readings)
        now = self._clock()
        complete = True
        for symbol in self._tracked:
            reading = readings.pop(symbol, None)  # its levels go once read: 1,500 books at once would not
            if reading is not None and reading.flow is not None:
                self._flows[symbol] = (now, reading.flow)
            if reading is None or reading.view is None:
                complete = False
                if reading is not None and reading.top is not None:
                    self._readings.add_spread(now, reading.top, self._cycle)  # the stream's top, until the book syncs
                continue
            bids, asks = reading.view.bids, reading.view.asks
            self._micro[symbol] = (now, MicroReading(symbol, microstructure(reading.view), self._cycle))
            self._readings.add_notional(
                now, BookNotional(symbol, side_notional(bids, "bid"), side_notional(asks, "ask"), self._cycle)
            )
            if bids and asks:
                top = BookTop(symbol, bids[0][0], bids[0][1], asks[0][0], asks[0][1])
                self._readings.add_spread(now, top, self._cycle)
            else:
                complete = False  # a side is empty: no spread
        return complete

    def _completed(self, snapshot: Snapshot) -> Snapshot:
        """The cycle's snapshot with the books' and the connections' state."""
        now, max_age = self._clock(), self._readings.max_age
        for kept in (self._micro, self._flows):
            for symbol in [s for s, (read_at, _) in kept.items() if s not in self._tracked or now - read_at > max_age]:
                del kept[symbol]
        return replace(
            snapshot,
            read_at=self._read_at,
            books=self._book_states,
            microstructure=tuple(self._micro[s][1] for s in self._tracked if s in self._micro),
            trade_flows=tuple(self._flows[s][1] for s in self._tracked if s in self._flows),
            streams=self.hub.counts(),
            shard=self.shard,
            listings=self.listings(),
        )

    def close(self) -> None:
        """Closes the connections and releases the worker threads."""
        self.hub.stop()
        super().close()
