"""One symbol's trade flow, counted from its ``<symbol>@aggTrade`` stream
with nothing lost: every aggregate trade since the symbol was first
tracked is counted once, whether the stream delivered it or a REST
backfill did.

Aggregate trade ids are consecutive per symbol. Counting starts after the
latest trade Binance had when tracking began (the baseline, from ``GET
/api/v3/aggTrades?limit=1``). From then on every id is either counted, or
missing: an event whose id jumps past the next one expected leaves the
ids between missing, and so does a lost connection, for every id until
the first one the new connection brings (``catch_up``). Missing ids are
asked for with ``GET /api/v3/aggTrades?fromId=...`` (``wanted_from``), up
to ``BACKFILL_LIMIT`` at a time; what comes back, from the stream or a
backfill, is counted by one rule (``_count``): an id counted once is
never counted again, so two connections carrying the stream during a
handover, or a backfill racing the stream, cannot count a trade twice.

Ids Binance no longer answers for (an answer that starts past them), or
more than ``MAX_MISSING`` of them, are given up on and counted as lost.

Pure code: no I/O, no clock, no logging.
"""

from __future__ import annotations

import bisect
from collections import deque
from decimal import Decimal
from typing import Iterable, Optional

from binance_exporter.market.microstructure import TAKER_SIDES, AggTrade, SideFlow

BACKFILL_LIMIT = 1000  # trades per GET /api/v3/aggTrades, Binance's most
# Missing ids kept at most: beyond, the oldest are given up on, so a long
# outage of a busy symbol costs at most MAX_MISSING / BACKFILL_LIMIT requests.
MAX_MISSING = 100_000
MAX_MISSING_RANGES = 64
MAX_EARLY_TRADES = 1000  # trades held while the baseline is asked for
# Trades held while the baseline waits its turn (the weight budget, the
# books' snapshots first): only the latest, since the baseline will be past
# the rest; the whole market's symbols waiting minutes would otherwise hold
# 1,000 each.
WAITING_TRADES = 10
RECENT_TRADES = 20  # the latest trades counted, kept for the live view


class TradeSync:  # pylint: disable=too-many-instance-attributes  # the ids, the flow and its counts
    """The trade flow of one symbol and the ids it still misses."""

    def __init__(self, waiting: int = WAITING_TRADES) -> None:
        self.waiting = waiting  # trades kept while no baseline is asked for
        self.baseline_known = False
        self.next_id = 0  # every id below it is counted or missing (once the baseline is known)
        self.missing: list[list[int]] = []  # [first, last] ids, ascending, all below next_id
        self.catch_up = False  # the connection was lost: ids from next_id on may have gone by unseen
        self.flow = {side: SideFlow() for side in TAKER_SIDES}
        self.last_price: Optional[Decimal] = None
        self.last_counted_id = -1
        self.backfilled = 0  # aggregate trades counted from a backfill
        self.lost = 0  # aggregate trades given up on
        self.request_pending = False
        self.recent: list[AggTrade] = []  # the latest RECENT_TRADES counted, by ascending id
        self._early: deque[AggTrade] = deque(maxlen=MAX_EARLY_TRADES)

    def on_baseline(self, latest: Optional[AggTrade]) -> None:
        """Starts counting after ``latest`` (None: Binance had no trade of
        the symbol yet, and counting starts at its first, id 0), then
        counts the trades that came meanwhile."""
        self.baseline_known = True
        self.next_id = latest.agg_id + 1 if latest is not None else 0
        early, self._early = list(self._early), deque(maxlen=MAX_EARLY_TRADES)
        for trade in early:
            self._count(trade)

    def on_trade(self, trade: AggTrade) -> None:
        """A trade from the stream."""
        if not self.baseline_known:
            self._early.append(trade)
            if not self.request_pending:  # the baseline, when asked for, will be past all but the latest
                while len(self._early) > self.waiting:
                    self._early.popleft()
            return
        self._count(trade)

    def interrupted(self) -> None:
        """The stream's connection was lost: trades may have gone by."""
        if self.baseline_known:
            self.catch_up = True

    def wanted_from(self) -> Optional[int]:
        """The id a backfill should start from, None when nothing is missing."""
        if self.missing:
            return self.missing[0][0]
        return self.next_id if self.catch_up else None

    def on_backfill(self, from_id: int, trades: Iterable[AggTrade]) -> None:
        """Counts what an answer to ``fromId=from_id`` brings that is
        missing or new. For the first missing range, the ids from
        ``from_id`` up to the answer's first one are no longer kept by
        Binance: they are given up on. A catch-up is done once an answer
        has fewer than ``BACKFILL_LIMIT`` trades: it reached the latest."""
        answer = sorted((t for t in trades if t.agg_id >= from_id), key=lambda t: t.agg_id)
        catching_up = not (self.missing and self.missing[0][0] == from_id)
        if not catching_up:
            end = self.missing[0][1]
            unkept = end if not answer else min(answer[0].agg_id - 1, end)
            if unkept >= from_id:
                self._give_up(unkept)
        for trade in answer:
            if self._count(trade):
                self.backfilled += 1
        if catching_up:
            self.catch_up = len(answer) >= BACKFILL_LIMIT

    def _count(self, trade: AggTrade) -> bool:
        """Counts ``trade`` unless it was counted before or precedes the
        baseline; whether it was counted."""
        agg_id = trade.agg_id
        if agg_id >= self.next_id:
            if agg_id > self.next_id:
                self.missing.append([self.next_id, agg_id - 1])
                self._trim()
            self.next_id = agg_id + 1
            self.catch_up = False
        elif not self._take_missing(agg_id):
            return False
        self.flow[trade.taker_side] = self.flow[trade.taker_side].add(trade)
        if agg_id > self.last_counted_id:
            self.last_counted_id, self.last_price = agg_id, trade.price
            self.recent.append(trade)
        else:  # a backfilled trade older than the latest
            bisect.insort(self.recent, trade, key=lambda t: t.agg_id)
        if len(self.recent) > RECENT_TRADES:
            del self.recent[0]
        return True

    def _trim(self) -> None:
        """Gives up on the oldest missing ids while more than
        ``MAX_MISSING`` ids or ``MAX_MISSING_RANGES`` ranges are missing."""
        while len(self.missing) > MAX_MISSING_RANGES:
            self._give_up(self.missing[0][1])
        excess = sum(end - start + 1 for start, end in self.missing) - MAX_MISSING
        while excess > 0:
            start, end = self.missing[0]
            last = min(end, start + excess - 1)
            self._give_up(last)
            excess -= last - start + 1

    def _give_up(self, last: int) -> None:
        """Gives up on the first missing range's ids up to ``last``."""
        start, end = self.missing[0]
        self.lost += last - start + 1
        if last >= end:
            del self.missing[0]
        else:
            self.missing[0][0] = last + 1

    def _take_missing(self, agg_id: int) -> bool:
        """Takes ``agg_id`` out of the missing ids; whether it was there."""
        for index, (start, end) in enumerate(self.missing):
            if agg_id < start:
                break
            if agg_id <= end:
                pieces = [[start, agg_id - 1]] if agg_id > start else []
                pieces += [[agg_id + 1, end]] if agg_id < end else []
                self.missing[index : index + 1] = pieces
                self._trim()
                return True
        return False
