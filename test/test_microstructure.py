"""The microstructure definitions, case by case and as properties: mid and
micro price, depth within basis points of the mid, imbalance, trade flow."""

import decimal
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_exporter.market.microstructure import (
    DEPTH_BANDS_BPS,
    IMBALANCE_LEVELS,
    QUOTIENT_DIGITS,
    AggTrade,
    BookView,
    SideFlow,
    band_edge,
    depth_bands,
    depth_within,
    imbalance,
    micro_price,
    microstructure,
    mid_price,
)
from binance_exporter.market.definitions import side_notional
from binance_exporter.market.units import EXACT, LevelsInUnits, to_units



def in_units(view):
    """The same book as a live book's reading gives it: each side's levels
    copied in 1e-8 units."""

    def side(is_bid, levels):
        return LevelsInUnits(is_bid, [to_units(p) for p, _ in levels], [to_units(q) for _, q in levels])

    return BookView(side(True, view.bids), side(False, view.asks), view.bid_horizon, view.ask_horizon)


def as_given(view):
    return view


BOOK = BookView(
    bids=((D("100.00"), D("2")), (D("99.95"), D("1")), (D("99.00"), D("4")), (D("95.00"), D("10"))),
    asks=((D("100.10"), D("3")), (D("100.20"), D("1")), (D("101.00"), D("2")), (D("106.00"), D("5"))),
)


@pytest.mark.parametrize(
    "view, mid, micro",
    [
        (BOOK, D("100.05"), D("100.04")),  # (100 x 3 + 100.1 x 2) / 5: nearer the bid, the thinner side
        (BookView(((D("1"), D("1")),), ((D("2"), D("1")),)), D("1.5"), D("1.5")),  # equal quantities: the mid
        (BookView(((D("0.00000001"), D("3")),), ((D("0.00000003"), D("1")),)), D("0.00000002"), D("0.000000025")),
        (BookView(((D("100"), D("1")),), ()), None, None),  # one-sided
        (BookView((), ()), None, None),
    ],
)
def test_mid_and_micro_price(view, mid, micro):
    assert mid_price(view) == mid
    assert micro_price(view) == micro


def test_a_micro_price_that_does_not_terminate_is_rounded_to_the_quotient_digits():
    view = BookView(((D("1"), D("1")),), ((D("2"), D("2")),))  # (1 x 2 + 2 x 1) / 3 = 4/3
    value = micro_price(view)
    assert value == D("1." + "3" * (QUOTIENT_DIGITS - 1))


@pytest.mark.parametrize(
    "bps, bid, ask",
    [
        # mid 100.05: 10 bps reaches 99.94995 below and 100.15005 above
        (10, D("100.00") * 2 + D("99.95") * 1, D("100.10") * 3),
        # 100 bps: 99.04950 and 101.05050; 99.00 is outside, 101.00 inside
        (100, D("100.00") * 2 + D("99.95") * 1, D("100.10") * 3 + D("100.20") + D("101.00") * 2),
        # 500 bps: 95.04750 and 105.05250
        (500, D("100.00") * 2 + D("99.95") + D("99.00") * 4, D("100.10") * 3 + D("100.20") + D("101.00") * 2),
    ],
)
def test_depth_within_a_band_sums_the_levels_inside_it(bps, bid, ask):
    mid = mid_price(BOOK)
    for book in (BOOK, in_units(BOOK)):
        assert depth_within(book.bids, True, mid, bps, None) == bid
        assert depth_within(book.asks, False, mid, bps, None) == ask


@pytest.mark.parametrize("form", [as_given, in_units])
def test_a_level_exactly_on_the_band_edge_counts(form):
    view = form(BookView(((D("99"), D("1")),), ((D("101"), D("1")),)))  # mid 100: 100 bps reaches 99 and 101
    assert band_edge(D(100), 100, True) == D(99) and band_edge(D(100), 100, False) == D(101)
    assert depth_bands(view)[("bid", 100)] == D(99)
    assert depth_bands(view)[("ask", 100)] == D(101)
    assert depth_bands(view)[("bid", 50)] == 0  # a band with no level: 0, known


def test_a_band_past_the_horizon_is_not_given_but_one_on_it_is():
    mid = D(100)
    levels = ((D("99.9"), D("1")), (D("99"), D("1")))
    assert depth_within(levels, True, mid, 100, horizon=D("99")) == D("198.9")
    assert depth_within(levels, True, mid, 200, horizon=D("99")) is None
    assert depth_within(((D("101"), D("1")),), False, mid, 200, horizon=D("101.5")) is None


def test_depth_bands_leave_out_what_a_side_cannot_give_and_everything_for_a_one_sided_book():
    view = BookView(BOOK.bids, BOOK.asks, bid_horizon=D("99.00"), ask_horizon=None)
    bands = depth_bands(view)
    assert {bps for side, bps in bands if side == "bid"} == {10, 25, 50, 100}  # 200 bps reaches 98.04900
    assert {bps for side, bps in bands if side == "ask"} == set(DEPTH_BANDS_BPS)
    assert not depth_bands(BookView(BOOK.bids, ()))


SIX_28THS = D("0.2142857142857142857142857142857143")  # 6/28 to 34 digits


@pytest.mark.parametrize(
    "view, levels, expected",
    [
        (BOOK, 1, D("-0.2")),  # (2 - 3) / 5
        (BOOK, 5, SIX_28THS),  # (17 - 11) / 28: every level, both sides known whole
        (BookView(((D("1"), D("2")),), ((D("2"), D("2")),)), 1, D("0")),  # equal quantities
        (BookView(((D("1"), D("2")),), ()), 5, D("1")),  # bids only
        (BookView((), ((D("2"), D("2")),)), 5, D("-1")),  # asks only
        (BookView((), ()), 1, None),
        (BookView(BOOK.bids, BOOK.asks, bid_horizon=D("95.00")), 5, None),  # 4 bids known, the 5th unknown
        (BookView(BOOK.bids, BOOK.asks, bid_horizon=D("95.00")), 4, SIX_28THS),
    ],
)
def test_imbalance(view, levels, expected):
    assert imbalance(view, levels) == expected


def test_a_book_gives_every_value_it_knows():
    values = microstructure(BOOK)
    assert values.mid == D("100.05") and values.micro == D("100.04")
    assert set(values.imbalance) == set(IMBALANCE_LEVELS)
    assert len(values.depth) == 2 * len(DEPTH_BANDS_BPS)


def trade(agg_id, price, qty, buyer_maker, first=None, last=None):
    first = agg_id * 10 if first is None else first
    return AggTrade(agg_id, D(price), D(qty), first, first if last is None else last, 0, buyer_maker)


def test_trade_flow_counts_trades_volume_and_quote_volume_exactly():
    buy = trade(1, "0.00000001", "0.00000003", False, first=10, last=14)
    assert buy.taker_side == "buy" and buy.trades == 5
    assert trade(2, "1", "1", True).taker_side == "sell"
    flow = SideFlow().add(buy).add(trade(3, "30000.12345678", "1.5", False))
    assert flow.trades == 6
    assert flow.volume == D("1.50000003")
    assert flow.quote_volume == D("0.0000000000000003") + D("45000.18518517")


# Properties over books of distinct positive prices, best first, bids under asks.
prices = st.lists(st.integers(1, 10**6), min_size=1, max_size=40, unique=True)
quantities = st.integers(1, 10**9).map(lambda n: D(n).scaleb(-8))


@st.composite
def books(draw):
    bid_ticks, ask_ticks = draw(prices), draw(prices)
    top, tick = max(bid_ticks), draw(st.sampled_from((-2, -8)))  # at -8, band edges fall between units
    bids = tuple((D(t).scaleb(tick), draw(quantities)) for t in sorted(bid_ticks, reverse=True))
    asks = tuple((D(top + t).scaleb(tick), draw(quantities)) for t in sorted(ask_ticks))
    horizon = draw(st.none() | st.sampled_from([price for price, _ in bids]))
    return BookView(bids, asks, bid_horizon=horizon)


@given(books(), st.integers(1, 50))
def test_a_live_books_levels_in_units_give_the_same_values_as_its_decimals(view, depth):
    live = in_units(view)
    assert microstructure(live) == microstructure(view)
    for side, levels, copied in (("bid", view.bids, live.bids), ("ask", view.asks, live.asks)):
        assert side_notional(copied, side, depth) == side_notional(levels, side, depth)
        assert copied[:depth] == levels[:depth] and copied[-1] == levels[-1] and list(copied) == list(levels)


@given(books(), st.lists(st.integers(0, 50), max_size=8))
def test_a_notional_goes_on_from_the_last_sum_or_starts_again_and_is_always_the_sum_of_its_levels(view, counts):
    live = in_units(view).asks
    for count in counts:
        with decimal.localcontext(EXACT):
            assert live.notional(count) == sum((price * qty for price, qty in view.asks[:count]), D(0))


@given(books())
def test_bands_are_monotone_in_their_width(view):
    bands = depth_bands(view)
    for side in ("bid", "ask"):
        known = [bands[(side, bps)] for bps in DEPTH_BANDS_BPS if (side, bps) in bands]
        assert known == sorted(known)
        widths = [bps for bps in DEPTH_BANDS_BPS if (side, bps) in bands]
        assert widths == list(DEPTH_BANDS_BPS[: len(widths)])  # only the widest go missing


@given(books())
def test_imbalance_is_within_minus_one_and_one_and_the_micro_price_within_the_spread(view):
    for levels in IMBALANCE_LEVELS:
        value = imbalance(view, levels)
        assert value is None or D(-1) <= value <= D(1)
    assert view.bids[0][0] <= micro_price(view) <= view.asks[0][0]
