"""The local order book: levels, the best of each side, crossing, and the
horizon of the snapshot it was built from."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_exporter.market import order_book
from binance_exporter.market.order_book import BookSide, LocalBook
from binance_exporter.market.units import EXACT, MAX_UNITS, NotInUnits, from_units, to_units

D = Decimal


def levels(*pairs):
    return [(D(price), D(qty)) for price, qty in pairs]


def units(*pairs):
    """Levels as events change them: in 1e-8 units."""
    return [(to_units(D(price)), to_units(D(qty))) for price, qty in pairs]


def set_level(side, price, qty):
    side.set(to_units(D(price)), to_units(D(qty)))


def test_a_side_keeps_levels_sorted_and_removes_a_level_at_quantity_zero():
    bids = BookSide(True, levels(("10", "1"), ("12", "2"), ("11", "3")))
    assert bids.top(5) == levels(("12", "2"), ("11", "3"), ("10", "1"))
    set_level(bids, "11.5", "4")
    set_level(bids, "12", "0")
    set_level(bids, "9", "0")  # a level the book never held: normal
    set_level(bids, "10", "7")
    assert bids.best() == (D("11.5"), D("4"))
    assert bids.top(2) == levels(("11.5", "4"), ("11", "3"))
    asks = BookSide(False, levels(("13", "1"), ("15", "2"), ("14", "3")))
    assert asks.top(2) == levels(("13", "1"), ("14", "3"))
    assert BookSide(False).best() is None and not BookSide(True).top(3)


def test_a_side_holds_binances_whole_range_exactly_and_refuses_past_it():
    largest = from_units(MAX_UNITS)  # 92233720368.54775807
    asks = BookSide(False, [(largest, largest), (D("0.00000001"), D(1))])
    asks.set(MAX_UNITS - 1, MAX_UNITS)
    assert asks.top(3) == [(D("0.00000001"), D(1)), (largest - D("0.00000001"), largest), (largest, largest)]
    book = LocalBook(1, levels(("1", "2")), [(largest, largest)], 1000)
    assert book.asks.best() == (largest, largest)
    assert book.asks.copy_top(1).notional(1) == EXACT.multiply(largest, largest)
    with pytest.raises(NotInUnits, match="past Binance's 64-bit range"):
        BookSide(True, [(largest + D("0.00000001"), D(1))])


def test_a_side_counts_the_levels_at_or_better_than_a_price():
    bids = BookSide(True, levels(("10", "1"), ("12", "2"), ("11", "3")))
    asks = BookSide(False, levels(("13", "1"), ("15", "2"), ("14", "3")))
    assert [bids.count_within(D(p)) for p in ("13", "12", "11.5", "11", "9")] == [0, 1, 1, 2, 3]
    assert [asks.count_within(D(p)) for p in ("12", "13", "14.5", "15", "16")] == [0, 1, 2, 3, 3]


def test_equal_prices_written_differently_are_one_level():
    asks = BookSide(False, levels(("0.01000000", "5")))
    set_level(asks, "0.01", "6")
    assert asks.top(5) == levels(("0.01", "6")) and len(asks) == 1


@pytest.mark.parametrize(
    "side, snapshot, horizon",
    [
        ("bid", [("10", "1"), ("9", "1"), ("8", "1")], D("8")),  # full: as many levels as the limit
        ("ask", [("10", "1"), ("11", "1"), ("12", "1")], D("12")),
        ("bid", [("10", "1"), ("9", "1")], None),  # fewer than the limit: the whole side
        ("ask", [], None),
    ],
)
def test_a_full_snapshot_side_has_a_horizon_at_its_deepest_price(side, snapshot, horizon):
    book = LocalBook(7, levels(*snapshot) if side == "bid" else [], levels(*snapshot) if side == "ask" else [], 3)
    assert (book.bids if side == "bid" else book.asks).horizon == horizon


def test_updates_past_the_horizon_are_ignored_and_exactness_follows_the_levels_inside():
    book = LocalBook(1, levels(("10", "1"), ("9", "1"), ("8", "1")), levels(("11", "1"), ("12", "1")), 3)
    assert book.bids.horizon == D("8") and book.asks.horizon is None
    book.apply(2, units(("7", "5")), units(("20", "5")))  # past the bid horizon; the asks are whole
    assert book.bids.top(5) == levels(("10", "1"), ("9", "1"), ("8", "1"))
    assert book.asks.top(5) == levels(("11", "1"), ("12", "1"), ("20", "5"))
    assert book.exact(3) and book.update_id == 2
    book.apply(3, units(("10", "0")), [])
    assert not book.bids.exact(3) and book.bids.exact(2) and not book.exact(3)
    book.apply(4, units(("8.5", "2")), [])  # a new level inside the horizon counts
    assert book.exact(3)


def test_a_book_is_crossed_when_the_best_bid_reaches_the_best_ask():
    book = LocalBook(1, levels(("10", "1")), levels(("11", "1")), 1000)
    assert not book.crossed()
    book.apply(2, units(("11", "1")), [])
    assert book.crossed()
    assert not LocalBook(1, [], levels(("11", "1")), 1000).crossed()


def test_a_side_past_its_cap_lets_the_worst_levels_go_and_moves_its_horizon_in(monkeypatch):
    monkeypatch.setattr(order_book, "MAX_LEVELS_PER_SIDE", 3)
    bids = BookSide(True, levels(("10", "1"), ("9", "1")))
    set_level(bids, "8", "1")
    set_level(bids, "11", "1")
    assert bids.top(5) == levels(("11", "1"), ("10", "1"), ("9", "1")) and bids.horizon == D("9")
    asks = BookSide(False, levels(("1", "1"), ("2", "1"), ("3", "1"), ("4", "1")))
    assert asks.top(5) == levels(("1", "1"), ("2", "1"), ("3", "1")) and asks.horizon == D("3")


# Any sequence of level changes: the local side holds exactly the true
# levels inside its horizon, so its best ``depth`` levels equal the true
# ones whenever it says they are exact, and it says so exactly when at
# least ``depth`` true levels lie inside the horizon.
prices = st.integers(min_value=1, max_value=60)
changes = st.lists(st.tuples(prices, st.integers(min_value=0, max_value=3)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    is_bid=st.booleans(),
    initial=st.dictionaries(prices, st.integers(min_value=1, max_value=9), max_size=40),
    limit=st.integers(min_value=1, max_value=30),
    depth=st.integers(min_value=1, max_value=10),
    updates=changes,
)
def test_a_side_equals_the_true_side_inside_its_horizon(is_bid, initial, limit, depth, updates):
    true = {D(p) / 100: D(q) for p, q in initial.items()}
    ordered = sorted(true.items(), reverse=is_bid)
    snapshot = ordered[:limit]
    side = BookSide(is_bid, snapshot, (snapshot[-1][0] if len(snapshot) == limit else None))
    for price, qty in updates:
        price = D(price) / 100
        if qty:
            true[price] = D(qty)
        else:
            true.pop(price, None)
        side.set(to_units(price), qty * 10**8)
    horizon = side.horizon
    inside = sorted(
        ((p, q) for p, q in true.items() if horizon is None or (p >= horizon if is_bid else p <= horizon)),
        reverse=is_bid,
    )
    assert side.top(10**6) == inside
    assert side.exact(depth) == (horizon is None or len(inside) >= depth)
    if side.exact(depth):
        assert side.top(depth) == sorted(true.items(), reverse=is_bid)[:depth]
