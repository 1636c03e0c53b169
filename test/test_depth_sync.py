"""Binance's local order book procedure, one symbol at a time: table-driven
cases for each rule, and a property: whatever the stream does (events
lost, repeated, a snapshot too old, a lost connection), a book in sync
equals the true book."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_exporter.binance.depth_sync import (
    CROSSED,
    GAP,
    HORIZON,
    IN_SYNC,
    INTERRUPTED,
    RECONNECT,
    SYNCING,
    DepthEvent,
    DepthSnapshot,
    WAITING_EVENTS,
    DepthSync,
    first_snapshot_limit,
)
from binance_exporter.market.units import to_units

D = Decimal


class TrueBook:
    """The exchange's book: bids at prices up to 50, asks above, so it is
    never crossed; every change is one update id."""

    def __init__(self, bids=(), asks=()):
        self.update_id = 100
        self.bids = {D(p): D(q) for p, q in bids}
        self.asks = {D(p): D(q) for p, q in asks}
        self.history = {self.update_id: self.copy()}

    def copy(self):
        return dict(self.bids), dict(self.asks)

    def move(self, changes):
        """Applies (price, qty) changes; returns the event Binance sends."""
        first = self.update_id + 1
        bids, asks = {}, {}
        for price, deleted in changes:
            side, sent = (self.bids, bids) if price <= 50 else (self.asks, asks)
            self.update_id += 1
            # Each new quantity is unique, so a lost change always shows
            # until the level changes again.
            price, qty = D(price), D(0 if deleted else self.update_id)
            if qty:
                side[price] = qty
            else:
                side.pop(price, None)
            sent[price] = qty
        if not changes:
            self.update_id += 1  # an event always covers at least one id
        self.history[self.update_id] = self.copy()
        return DepthEvent("X", first, self.update_id, 1000 + self.update_id, in_units(bids), in_units(asks))

    def snapshot(self, limit, before=None):
        """The depth answer now, or the latest from before update id ``before``."""
        at = self.update_id if before is None else max((i for i in self.history if i < before), default=None)
        bids, asks = self.history[self.update_id if at is None else at]
        return DepthSnapshot(
            self.update_id if at is None else at,
            tuple(sorted(bids.items(), reverse=True)[:limit]),
            tuple(sorted(asks.items())[:limit]),
            limit,
        )


def levels(*pairs):
    return tuple((D(p), D(q)) for p, q in pairs)


def in_units(changes):
    """An event's levels as the streams give them: in 1e-8 units."""
    return tuple((to_units(price), to_units(qty)) for price, qty in dict(changes).items())


def event(first, last, bids=(), asks=()):
    return DepthEvent("X", first, last, 0, in_units(levels(*bids)), in_units(levels(*asks)))


def synced(depth=1, limit=1000):
    sync = DepthSync(depth=depth)
    sync.on_event(event(100, 101, bids=[("10", "1")]))
    assert sync.wants_snapshot
    sync.snapshot_pending = True
    assert sync.on_snapshot(DepthSnapshot(101, levels(("10", "1"), ("9", "1")), levels(("60", "1")), limit))
    assert sync.state == IN_SYNC and not sync.wants_snapshot
    return sync


def test_a_snapshot_is_wanted_only_once_an_event_is_buffered_and_none_is_on_its_way():
    sync = DepthSync()
    assert sync.state == SYNCING and not sync.wants_snapshot
    sync.on_event(event(10, 12))
    assert sync.wants_snapshot
    sync.snapshot_pending = True
    assert not sync.wants_snapshot


def test_a_snapshot_older_than_the_first_buffered_event_is_taken_again():
    sync = DepthSync()
    sync.on_event(event(10, 12))
    assert not sync.on_snapshot(DepthSnapshot(8, (), ()))  # 8 + 1 < 10: events 9 and on are missing
    assert sync.state == SYNCING and sync.wants_snapshot
    assert sync.on_snapshot(DepthSnapshot(9, levels(("1", "1")), levels(("2", "1"))))  # 10 follows 9
    assert sync.in_sync and sync.book.update_id == 12


def test_buffered_events_the_snapshot_covers_are_dropped_and_the_rest_applied_in_order():
    sync = DepthSync()
    sync.on_event(event(10, 12, bids=[("1", "5")]))
    sync.on_event(event(13, 15, bids=[("1", "6")]))
    sync.on_event(event(16, 16, asks=[("3", "7")]))
    sync.on_snapshot(DepthSnapshot(14, levels(("1", "1")), levels(("2", "1"))))
    assert sync.in_sync and sync.book.update_id == 16
    assert sync.book.bids.top(5) == list(levels(("1", "6")))  # 10-12 dropped, 13-15 bridges 14
    assert sync.book.asks.top(5) == list(levels(("2", "1"), ("3", "7")))
    assert sync.last_event_time == 0


def test_a_gap_while_buffering_keeps_only_the_events_after_it_and_duplicates_are_dropped():
    sync = DepthSync()
    sync.on_event(event(10, 12))
    sync.on_event(event(10, 12))  # a duplicate
    sync.on_event(event(20, 21))  # 13-19 lost
    assert [e.first_id for e in sync.buffer] == [20]


def test_old_events_are_ignored_and_a_gap_resyncs_with_the_event_buffered():
    sync = synced()
    assert sync.on_event(event(90, 101, bids=[("10", "9")])) is None  # u <= id
    assert sync.book.bids.best() == (D("10"), D("1"))
    assert sync.on_event(event(102, 103, bids=[("10", "2")])) is None
    assert sync.on_event(event(105, 106)) == GAP  # 104 lost
    assert sync.state == SYNCING and sync.book is None and sync.resyncs == {GAP: 1}
    assert [e.first_id for e in sync.buffer] == [105] and sync.wants_snapshot


def test_a_book_that_comes_out_crossed_resyncs():
    sync = synced()
    assert sync.on_event(event(102, 102, bids=[("60", "1")])) == CROSSED
    assert sync.resyncs == {CROSSED: 1} and not sync.in_sync and not sync.buffer


def test_a_side_thinner_than_the_depth_inside_its_horizon_resyncs():
    sync = synced(depth=2, limit=2)  # bids: 10 and 9, a full snapshot: horizon 9
    assert sync.on_event(event(102, 102, bids=[("8", "1")])) is None  # past the horizon: not kept
    assert sync.on_event(event(103, 103, bids=[("10", "0")])) == HORIZON
    assert sync.resyncs == {HORIZON: 1}


def test_a_snapshot_thin_or_crossed_with_its_events_resyncs_at_once():
    sync = DepthSync(depth=1)
    sync.on_event(event(10, 10, bids=[("5", "1")]))
    sync.on_snapshot(DepthSnapshot(9, (), levels(("4", "1"))))
    assert sync.resyncs == {CROSSED: 1} and sync.state == SYNCING
    sync.on_event(event(11, 11))
    sync.on_snapshot(DepthSnapshot(11, levels(("5", "1")), levels(("3", "1")), 1))
    assert sync.resyncs == {CROSSED: 2}


def test_after_a_lost_connection_a_following_event_resumes_and_a_gap_resyncs_for_reconnect():
    sync = synced()
    sync.interrupted()
    assert sync.state == INTERRUPTED and not sync.in_sync
    assert sync.on_event(event(100, 101)) is None and sync.state == INTERRUPTED  # old news
    assert sync.on_event(event(102, 102)) is None and sync.in_sync  # nothing missed: no snapshot
    sync.interrupted()
    assert sync.on_event(event(110, 111)) == RECONNECT
    assert sync.resyncs == {RECONNECT: 1}
    syncing = DepthSync()
    syncing.interrupted()
    assert syncing.state == SYNCING


def test_a_late_snapshot_is_ignored_and_the_buffer_is_bounded():
    sync = synced()
    assert sync.on_snapshot(DepthSnapshot(5, (), ()))
    assert sync.in_sync and sync.book.update_id == 101
    small = DepthSync(max_buffered=3)
    for first in range(10, 20):
        small.on_event(event(first, first))
    assert [e.first_id for e in small.buffer] == [17, 18, 19]


# What the stream does, one step at a time.
MOVE, DELIVER, DROP, REPEAT, ANSWER, LAGGING_ANSWER, STALE_ANSWER, DISCONNECT = range(8)
change = st.tuples(st.integers(min_value=41, max_value=60), st.booleans())  # (price, deleted), near the top
step = st.one_of(
    st.tuples(st.just(MOVE), st.lists(change, min_size=1, max_size=6)),
    st.tuples(
        st.sampled_from([DELIVER] * 6 + [DROP, DROP, REPEAT, ANSWER, LAGGING_ANSWER, STALE_ANSWER, DISCONNECT]),
        st.none(),
    ),
)


@settings(max_examples=1500, deadline=None)
@given(
    steps=st.lists(step, max_size=120),
    limit=st.integers(min_value=4, max_value=20),
    depth=st.integers(min_value=1, max_value=4),
)
def test_a_book_in_sync_always_equals_the_true_book_inside_its_horizon(steps, limit, depth):
    market = TrueBook(bids=[(p, 1) for p in range(30, 51)], asks=[(p, 1) for p in range(51, 72)])
    sync = DepthSync(depth=depth)
    sent, delivered = [], []  # events not yet delivered, and delivered
    for kind, changes in steps:
        if kind == MOVE:
            sent.append(market.move(changes))
        elif kind in (DELIVER, DROP) and sent:
            next_event = sent.pop(0)
            if kind == DELIVER:
                sync.on_event(next_event)
                delivered.append(next_event)
        elif kind == REPEAT and delivered:
            sync.on_event(delivered[-1])
        elif kind in (ANSWER, LAGGING_ANSWER, STALE_ANSWER) and sync.wants_snapshot:
            sync.snapshot_pending = True
            # A lagging answer is from within the buffered events, a stale
            # one from before the first buffered event's changes began.
            before = {
                ANSWER: None,
                LAGGING_ANSWER: sync.buffer[len(sync.buffer) // 2].last_id + 1,
                STALE_ANSWER: sync.buffer[0].first_id - 1,
            }[kind]
            sync.on_snapshot(market.snapshot(limit, before))
        elif kind == DISCONNECT:
            sync.interrupted()
        if sync.in_sync:
            assert_matches_truth(sync.book, market.history[sync.book.update_id], depth)


def assert_matches_truth(book, truth, depth):
    """Each side holds exactly the true levels inside its horizon, and its
    best ``depth`` are the true best."""
    for side, levels_of_side, is_bid in ((book.bids, truth[0], True), (book.asks, truth[1], False)):
        ordered = sorted(levels_of_side.items(), reverse=is_bid)
        horizon = side.horizon
        inside = [(p, q) for p, q in ordered if horizon is None or (p >= horizon if is_bid else p <= horizon)]
        assert side.top(10**6) == inside
        assert side.exact(depth)
        assert side.top(depth) == ordered[:depth]


def test_the_snapshot_limit_is_the_cheapest_that_keeps_the_best_levels_exact():
    assert [first_snapshot_limit(depth) for depth in (5, 99, 100, 200, 499, 500, 2000)] == [
        100, 100, 500, 500, 500, 1000, 1000  # weights 5, 5, 25, 25, 25, 50, 50
    ]  # fmt: skip
    sync = DepthSync(depth=200)
    assert sync.snapshot_limit == 500
    # A whole book in fewer than 100 levels a side: the next snapshot needs only limit 100 (weight 5).
    sync.on_event(event(100, 101, bids=[("10", "1")]))
    thin = [(str(p), "1") for p in range(1, 41)]
    sync.on_snapshot(DepthSnapshot(101, levels(*thin), levels(("60", "1"), ("61", "2")), 500))
    assert sync.in_sync and sync.snapshot_limit == 100 and sync.taken_in
    assert sync.limit_now(market_taken_in=False) == sync.limit_now(market_taken_in=True) == 100
    # A book that grew past 100 a side gives a full limit-100 snapshot: too shallow for 200, and the next is 500.
    sync = DepthSync(depth=200)
    sync.snapshot_limit = 100
    sync.on_event(event(100, 101))
    deep_bids = [(str(p), "1") for p in range(1, 101)]
    deep_asks = [(str(p), "1") for p in range(200, 300)]
    sync.on_snapshot(DepthSnapshot(101, levels(*deep_bids), levels(*deep_asks), 100))
    assert not sync.in_sync and sync.resyncs[HORIZON] == 1 and sync.snapshot_limit == 500
    # Each horizon resync takes the next tier, up to 1000 (weight 50), never 5000 (weight 250).
    for expected in (1000, 1000):
        sync._resync(HORIZON)  # pylint: disable=protected-access  # as a price run past the horizon does
        assert sync.snapshot_limit == sync.limit_now(market_taken_in=True) == expected
        assert sync.limit_now(market_taken_in=False) == 500  # while other books wait for their first snapshot


def test_a_book_waiting_for_its_snapshot_keeps_only_its_latest_events_until_the_snapshot_is_asked_for():
    sync = DepthSync()
    for first in range(1, 100, 2):
        sync.on_event(event(first, first + 1))
    assert len(sync.buffer) == WAITING_EVENTS and sync.buffer[-1].last_id == 100
    assert sync.buffer[0].first_id == 100 - 2 * WAITING_EVENTS + 1  # still one unbroken run
    sync.snapshot_pending = True  # asked for: every event from now on may be needed
    for first in range(101, 301, 2):
        sync.on_event(event(first, first + 1))
    assert len(sync.buffer) == WAITING_EVENTS + 100
    assert sync.on_snapshot(DepthSnapshot(150, levels(("10", "1")), levels(("60", "1")), 1000))
    assert sync.in_sync and sync.book.update_id == 300
