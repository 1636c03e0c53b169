"""A symbol's trade flow counts every aggregate trade since it was first
tracked exactly once, whether the stream or a backfill brought it: case by
case, and as a property of any delivery with drops, duplicates, reordering
and lost connections."""

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_exporter.binance import trade_sync
from binance_exporter.binance.trade_sync import (
    BACKFILL_LIMIT,
    MAX_MISSING_RANGES,
    RECENT_TRADES,
    WAITING_TRADES,
    TradeSync,
)
from binance_exporter.market.microstructure import AggTrade

BASE = 5_000


def history(count, base=BASE):
    """``count`` aggregate trades from id ``base``: every third a taker sell."""
    return [
        AggTrade(base + i, D(100 + i % 7), D(i % 5 + 1).scaleb(-3), 3 * i, 3 * i + i % 3, 1_000 + i, i % 3 == 0)
        for i in range(count)
    ]


TRADES = history(5000)


def by_id(agg_id):
    return TRADES[agg_id - BASE]


def answer(from_id, kept_from=BASE, limit=BACKFILL_LIMIT):
    """What Binance answers to fromId=from_id when it keeps ids from ``kept_from``."""
    return [t for t in TRADES if t.agg_id >= max(from_id, kept_from)][:limit]


def started(after=BASE):
    sync = TradeSync()
    sync.on_baseline(by_id(after))
    return sync


def counted(sync):
    return {side: (flow.trades, flow.volume, flow.quote_volume) for side, flow in sync.flow.items()}


def expected(trades):
    totals = {"buy": (0, D(0), D(0)), "sell": (0, D(0), D(0))}
    for t in trades:
        n, volume, quote = totals[t.taker_side]
        totals[t.taker_side] = (n + t.trades, volume + t.qty, quote + t.price * t.qty)
    return totals


def test_trades_in_order_are_counted_by_taker_side_and_the_last_price_kept():
    sync = started()
    for t in TRADES[1:10]:
        sync.on_trade(t)
    assert counted(sync) == expected(TRADES[1:10])
    assert sync.last_price == TRADES[9].price and sync.wanted_from() is None
    assert sync.backfilled == sync.lost == 0


def test_a_trade_seen_twice_or_before_the_baseline_counts_once():
    sync = started(BASE + 5)
    for t in TRADES[3:9] + TRADES[6:9]:
        sync.on_trade(t)
    assert counted(sync) == expected(TRADES[6:9])


def test_trades_before_the_baseline_is_known_wait_for_it():
    sync = TradeSync()
    for t in TRADES[:6]:
        sync.on_trade(t)
    assert counted(sync) == expected([])
    sync.on_baseline(TRADES[2])
    assert counted(sync) == expected(TRADES[3:6])


def test_a_symbol_with_no_trade_yet_counts_from_its_first_id_0():
    first = history(3, base=0)
    sync = TradeSync()
    sync.on_baseline(None)
    sync.on_trade(first[0])
    sync.on_trade(first[2])
    assert sync.wanted_from() == 1
    sync.on_backfill(1, first[1:])
    assert counted(sync) == expected(first) and sync.wanted_from() is None


def test_a_gap_is_backfilled_and_counted_as_such():
    sync = started()
    sync.on_trade(TRADES[1])
    sync.on_trade(TRADES[6])  # 2..5 went missing
    assert sync.wanted_from() == BASE + 2
    sync.on_backfill(BASE + 2, answer(BASE + 2, limit=10))  # brings 2..11, the stream has 7.. still to come
    for t in TRADES[7:12]:
        sync.on_trade(t)  # already counted from the backfill
    assert counted(sync) == expected(TRADES[1:12])
    assert sync.backfilled == 9 and sync.lost == 0 and sync.wanted_from() is None


def test_the_latest_trades_are_kept_in_id_order_whichever_way_they_came():
    sync = started()
    for t in TRADES[1:40]:
        sync.on_trade(t)
    sync.on_trade(TRADES[45])  # 40..44 missing
    sync.on_backfill(BASE + 40, answer(BASE + 40, limit=5))
    assert sync.recent == TRADES[26:46]
    assert len(sync.recent) == RECENT_TRADES


def test_trades_binance_no_longer_keeps_are_given_up_on():
    sync = started()
    sync.on_trade(TRADES[20])  # 1..19 missing; Binance keeps ids from 11 on
    sync.on_backfill(BASE + 1, answer(BASE + 1, kept_from=BASE + 11, limit=5))
    assert sync.lost == 10 and sync.wanted_from() == BASE + 16
    sync.on_backfill(BASE + 16, answer(BASE + 16, kept_from=BASE + 11))
    assert counted(sync) == expected(TRADES[11 : 16 + BACKFILL_LIMIT]) and sync.wanted_from() is None
    empty = started()
    empty.on_trade(TRADES[4])
    empty.on_backfill(BASE + 1, [])  # Binance answers nothing for them
    assert empty.lost == 3 and empty.wanted_from() is None


def test_a_lost_connection_catches_up_page_by_page():
    sync = started()
    sync.on_trade(TRADES[1])
    sync.interrupted()
    assert sync.wanted_from() == BASE + 2
    sync.on_backfill(BASE + 2, answer(BASE + 2))  # a full page: more may follow
    assert sync.wanted_from() == BASE + 2 + BACKFILL_LIMIT
    sync.on_backfill(BASE + 2 + BACKFILL_LIMIT, answer(BASE + 2 + BACKFILL_LIMIT, limit=3))
    assert sync.wanted_from() is None and counted(sync) == expected(TRADES[1 : 5 + BACKFILL_LIMIT])
    assert sync.last_price == TRADES[4 + BACKFILL_LIMIT].price


def test_the_first_trade_after_a_reconnect_turns_the_catch_up_into_a_gap():
    sync = started()
    sync.interrupted()
    sync.on_trade(TRADES[9])
    assert not sync.catch_up and sync.missing == [[BASE + 1, BASE + 8]]


def test_missing_trades_are_bounded_the_oldest_given_up_first(monkeypatch):
    monkeypatch.setattr(trade_sync, "MAX_MISSING", 100)
    sync = started()
    sync.on_trade(TRADES[151])  # 150 missing
    assert sync.lost == 50 and sync.missing == [[BASE + 51, BASE + 150]]
    ranges = started()
    for i in range(2, 2 * MAX_MISSING_RANGES + 6, 2):  # every other trade missing
        ranges.on_trade(TRADES[i])
    assert len(ranges.missing) == MAX_MISSING_RANGES and ranges.lost == 2


def test_a_trade_inside_a_missing_range_splits_it():
    sync = started()
    sync.on_trade(TRADES[10])
    sync.on_trade(TRADES[5])  # from another connection, late
    sync.on_trade(TRADES[1])
    sync.on_trade(TRADES[9])
    assert sync.missing == [[BASE + 2, BASE + 4], [BASE + 6, BASE + 8]]
    assert sync.last_price == TRADES[10].price


# Any delivery: trades dropped, repeated, a little out of order, connections
# lost; Binance keeping ids from some point on.
events = st.lists(
    st.one_of(st.integers(0, 299).map(lambda i: ("trade", i)), st.just(("interrupt", 0)), st.just(("backfill", 0))),
    max_size=120,
)


class RecordingTradeSync(TradeSync):
    """Notes the ids it counts."""

    def __init__(self):
        super().__init__()
        self.ids = []

    def _count(self, trade):
        if super()._count(trade):
            self.ids.append(trade.agg_id)
            return True
        return False


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 50), st.integers(0, 80), events, st.integers(0, 5))
def test_every_trade_after_the_baseline_is_counted_once_or_given_up_on(baseline, kept, steps, early):
    kept_from = BASE + kept
    sync = RecordingTradeSync()
    delivered = [TRADES[index] for kind, index in steps if kind == "trade"]
    for t in delivered[:early]:
        sync.on_trade(t)
    sync.on_baseline(by_id(BASE + baseline))
    for kind, index in steps[early:]:
        if kind == "trade":
            sync.on_trade(TRADES[index])
        elif kind == "interrupt":
            sync.interrupted()
        elif (start := sync.wanted_from()) is not None:
            sync.on_backfill(start, answer(start, kept_from, limit=7))
    for _ in range(1000):
        start = sync.wanted_from()
        if start is None:
            break
        sync.on_backfill(start, answer(start, kept_from, limit=7))
    assert sync.wanted_from() is None
    owed = set(range(BASE + baseline + 1, sync.next_id))
    assert len(sync.ids) == len(set(sync.ids))  # none counted twice
    assert set(sync.ids) <= owed and {i for i in owed if i >= kept_from} <= set(sync.ids)
    assert len(sync.ids) + sync.lost == len(owed)  # the rest given up on: trades Binance no longer keeps
    assert counted(sync) == expected([by_id(i) for i in sync.ids])
    assert sync.last_price == (by_id(max(sync.ids)).price if sync.ids else None)
    assert sync.recent == [by_id(i) for i in sorted(sync.ids)[-RECENT_TRADES:]]  # the latest counted, by id


def test_trades_before_the_baseline_is_asked_for_are_kept_only_as_the_latest_few():
    sync = TradeSync()
    for t in TRADES[:100]:
        sync.on_trade(t)
    sync.request_pending = True  # the baseline is asked for: every trade from now on may be counted
    for t in TRADES[100:200]:
        sync.on_trade(t)
    sync.on_baseline(TRADES[150])
    assert counted(sync) == expected(TRADES[151:200])
    assert len(sync._early) == 0  # pylint: disable=protected-access
    kept = TradeSync()
    for t in TRADES[:100]:
        kept.on_trade(t)
    assert list(kept._early) == TRADES[100 - WAITING_TRADES : 100]  # pylint: disable=protected-access
