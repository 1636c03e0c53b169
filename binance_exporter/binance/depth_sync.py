"""Binance's procedure for a correct local order book, for one symbol, as a
pure state machine (no I/O, no clock): events and snapshots go in, the
book and what to do next come out.

The procedure ("How to manage a local order book correctly", Binance's
spot API documentation, current version):

1. Subscribe ``<symbol>@depth@100ms`` and buffer the events; note the
   first event's ``U``. (Until the snapshot is asked for, only the latest
   ``WAITING_EVENTS`` are kept: the snapshot will be newer than the rest.)
2. Take a snapshot, ``GET /api/v3/depth?limit=...`` (the limit:
   ``snapshot_limit``, below).
3. If its ``lastUpdateId`` is too old for the first buffered event to
   follow it (``lastUpdateId + 1 < U``), take it again.
4. Drop buffered events with ``u <= lastUpdateId``; the first one applied
   has ``U <= lastUpdateId + 1 <= u``.
5. The book starts at the snapshot, its id ``lastUpdateId``; apply the
   buffered events, then each new one: an event with ``u`` not above the
   book's id is old (ignored); one with ``U > id + 1`` means events were
   lost (a gap); otherwise each level is set, a quantity of 0 removing it,
   and the book's id becomes ``u``.

A gap, a book that comes out crossed, or one whose side no longer holds
``depth`` levels inside its snapshot's horizon (see ``order_book``) starts
the symbol over at step 1 (a resync); nothing else is touched. When the
stream's connection is lost, the book is kept but not trusted: the first
event on the new connection either follows it (the book is in sync again,
with no snapshot) or starts a resync for the reason ``reconnect``.

The snapshot's limit (the horizon rule at the lowest weight): the
smallest of Binance's weight tiers above ``depth`` (500 levels, weight
25, for the best 200), so that the best ``depth`` levels are exact with
room for the price to move; the smallest tier (100, weight 5) once a
snapshot held the whole book in fewer levels than that, both sides (no
horizon: the book stays exact however it grows); and the next tier up
after a horizon resync (the price ran past the room), at most
``MAX_SNAPSHOT_LIMIT``, once every book has had its first snapshot
(``limit_now``).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import NamedTuple, Optional

from binance_exporter.market.definitions import BOOK_DEPTH, PriceLevel
from binance_exporter.market.order_book import LocalBook
from binance_exporter.market.units import UnitLevel

# Binance's weight tiers of GET /api/v3/depth: the largest limit of each.
SNAPSHOT_LIMITS = (100, 500, 1000, 5000)
MAX_SNAPSHOT_LIMIT = 1000  # weight 50: past it a snapshot costs 250
SNAPSHOT_LIMIT = 1000  # a snapshot's limit when nothing else is known
# Events kept while a snapshot is awaited: 100 s of @100ms events. Past
# it the oldest go, and a snapshot older than what is left is taken again.
MAX_BUFFERED_EVENTS = 1000
# Events kept while the snapshot waits its turn (the weight budget, other
# books first): only the latest, since the snapshot will be newer than the
# rest; the whole market's 1,500 books waiting minutes would otherwise hold
# 1,000 events each.
WAITING_EVENTS = 10

SYNCING = "syncing"  # buffering events; a snapshot is wanted once one has arrived
IN_SYNC = "in_sync"
INTERRUPTED = "interrupted"  # the stream was lost; the book waits for the next event

GAP, HORIZON, CROSSED, RECONNECT = "gap", "horizon", "crossed", "reconnect"
RESYNC_REASONS = (GAP, HORIZON, CROSSED, RECONNECT)


class DepthEvent(NamedTuple):  # a tuple: the streams make thousands a second
    """One diff-depth event: updates ``first_id`` (``U``) to ``last_id``
    (``u``) at Binance's ``event_time`` (ms), and the levels changed, in
    1e-8 units."""

    symbol: str
    first_id: int
    last_id: int
    event_time: int
    bids: tuple[UnitLevel, ...]
    asks: tuple[UnitLevel, ...]


@dataclass(frozen=True)
class DepthSnapshot:
    """A depth answer: the book at ``last_update_id``, of at most ``limit``
    levels a side."""

    last_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    limit: int = SNAPSHOT_LIMIT


class DepthSync:
    """One symbol's local book and where it stands in the procedure.

    ``book`` is trustworthy only while ``state`` is ``IN_SYNC``.
    ``resyncs`` counts the times the book was started over, by reason.
    """

    def __init__(self, depth: int = BOOK_DEPTH, max_buffered: int = MAX_BUFFERED_EVENTS, waiting: int = WAITING_EVENTS):
        self.depth = depth
        self.waiting = waiting  # events kept while no snapshot is asked for
        self.state = SYNCING
        self.book: Optional[LocalBook] = None
        self.buffer: deque[DepthEvent] = deque(maxlen=max_buffered)
        self.snapshot_pending = False  # a snapshot was asked for and has not come back
        self.resyncs: Counter[str] = Counter()
        self.last_event_time: Optional[int] = None  # of the last event applied, ms
        self.snapshot_limit = first_snapshot_limit(depth)
        self.taken_in = False  # whether a snapshot ever started the book

    def limit_now(self, market_taken_in: bool) -> int:
        """The limit of the snapshot to take now: ``snapshot_limit``, but
        no higher than the first tier while other books still wait for
        their first snapshot (``market_taken_in`` false): the budget goes
        to bringing every book in first, and the room a higher tier buys
        a fast book comes once they are."""
        return self.snapshot_limit if market_taken_in else min(self.snapshot_limit, first_snapshot_limit(self.depth))

    @property
    def in_sync(self) -> bool:
        """Whether the book is known to equal Binance's."""
        return self.state == IN_SYNC

    @property
    def wants_snapshot(self) -> bool:
        """Whether a snapshot should be requested now: syncing, with an
        event buffered, and none already on its way."""
        return self.state == SYNCING and bool(self.buffer) and not self.snapshot_pending

    def follows(self, event: DepthEvent) -> bool:
        """Whether ``event`` continues the book in sync: it covers the
        book's next update id."""
        return self.in_sync and self.book is not None and event.first_id <= self.book.update_id + 1 <= event.last_id

    def on_event(self, event: DepthEvent) -> Optional[str]:
        """Takes one event; returns the reason when it started a resync."""
        if self.state == SYNCING:
            self._buffer(event)
            return None
        assert self.book is not None
        if event.last_id <= self.book.update_id:
            return None  # old news: a duplicate, or from before the book
        if event.first_id > self.book.update_id + 1:
            reason = RECONNECT if self.state == INTERRUPTED else GAP
            self._resync(reason)
            self._buffer(event)
            return reason
        self.state = IN_SYNC
        return self._apply(event)

    def on_snapshot(self, snapshot: DepthSnapshot) -> bool:
        """Takes the snapshot asked for; False when it is too old for the
        buffered events and another must be taken."""
        self.snapshot_pending = False
        if self.state != SYNCING:
            return True  # an answer no longer awaited: ignored
        if self.buffer and snapshot.last_update_id + 1 < self.buffer[0].first_id:
            return False
        self.book = LocalBook(snapshot.last_update_id, snapshot.bids, snapshot.asks, snapshot.limit)
        self.taken_in = True
        if max(len(snapshot.bids), len(snapshot.asks)) < min(snapshot.limit, SNAPSHOT_LIMITS[0]):
            self.snapshot_limit = SNAPSHOT_LIMITS[0]  # the whole book fits the cheapest snapshot
        self.state = IN_SYNC
        buffered, self.buffer = list(self.buffer), deque(maxlen=self.buffer.maxlen)
        for event in buffered:
            if event.last_id > self.book.update_id and self._apply(event) is not None:
                return True  # resynced: the book came out crossed or thin
        self._broken()
        return True

    def interrupted(self) -> None:
        """The stream was lost: the book is kept, not trusted, until the
        next event says whether anything was missed."""
        if self.state == IN_SYNC:
            self.state = INTERRUPTED

    def _buffer(self, event: DepthEvent) -> None:
        if self.buffer:
            last = self.buffer[-1].last_id
            if event.last_id <= last:
                return  # a duplicate of one already buffered
            if event.first_id != last + 1:
                self.buffer.clear()  # lost some: start over from this one
        self.buffer.append(event)
        if not self.snapshot_pending:  # the snapshot, when asked for, will be newer than all but the latest
            while len(self.buffer) > self.waiting:
                self.buffer.popleft()

    def _apply(self, event: DepthEvent) -> Optional[str]:
        assert self.book is not None
        self.book.apply(event.last_id, event.bids, event.asks)
        self.last_event_time = event.event_time
        return self._broken()

    def _broken(self) -> Optional[str]:
        """Starts a resync when the book cannot be right (crossed) or its
        best levels are no longer exact (horizon); returns the reason."""
        assert self.book is not None
        reason = CROSSED if self.book.crossed() else None if self.book.exact(self.depth) else HORIZON
        if reason is not None:
            self._resync(reason)
        return reason

    def _resync(self, reason: str) -> None:
        if reason == HORIZON:
            self.snapshot_limit = next(
                (limit for limit in SNAPSHOT_LIMITS if self.snapshot_limit < limit <= MAX_SNAPSHOT_LIMIT),
                self.snapshot_limit,
            )
        self.resyncs[reason] += 1
        self.state = SYNCING
        self.book = None
        self.buffer.clear()


def first_snapshot_limit(depth: int) -> int:
    """The limit of a book's first snapshot: the smallest weight tier
    above ``depth`` levels (at most ``MAX_SNAPSHOT_LIMIT``)."""
    return next((limit for limit in SNAPSHOT_LIMITS if depth < limit <= MAX_SNAPSHOT_LIMIT), MAX_SNAPSHOT_LIMIT)
