"""The market arithmetic and rankings, table-driven."""

import decimal
from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from binance_exporter.market import (
    EXACT,
    BookTop,
    SymbolInfo,
    Ticker24h,
    best_levels,
    format_decimal,
    side_notional,
    spread,
    spread_delta,
    top_symbols_by_quote_volume,
    top_symbols_by_trade_count,
)


def info(symbol: str, base: str, quote: str, status: str = "TRADING") -> SymbolInfo:
    return SymbolInfo(symbol, status, base, quote)


def ticker(symbol: str, quote_volume: str = "0", count: int = 0, volume: str = "1") -> Ticker24h:
    return Ticker24h(symbol, D(volume), D(quote_volume), count)


SYMBOLS = {
    s.symbol: s
    for s in (
        info("ETHBTC", "ETH", "BTC"),
        info("WBTCBTC", "WBTC", "BTC"),
        info("BNBBTC", "BNB", "BTC"),
        info("LTCBTC", "LTC", "BTC"),
        info("XRPBTC", "XRP", "BTC"),
        info("ADABTC", "ADA", "BTC"),
        info("HALTBTC", "HALT", "BTC", "HALT"),
        info("BREAKBTC", "BRK", "BTC", "BREAK"),
        info("BTCUSDT", "BTC", "USDT"),
        info("BTCDOWNUSDT", "BTCDOWN", "USDT"),
        info("ETHUSDT", "ETH", "USDT"),
        info("SOLUSDT", "SOL", "USDT"),
        info("XRPUSDT", "XRP", "USDT"),
        info("DOGEUSDT", "DOGE", "USDT"),
        info("USDTTRY", "USDT", "TRY"),
        info("BTCTRY", "BTC", "TRY"),
    )
}


@pytest.mark.parametrize(
    "tickers, expected",
    [
        pytest.param(
            [ticker("ETHBTC", "10"), ticker("BNBBTC", "30"), ticker("WBTCBTC", "20")],
            ["BNBBTC", "WBTCBTC", "ETHBTC"],
            id="descending by quote volume; WBTCBTC is BTC-quoted",
        ),
        pytest.param(
            [
                ticker("BTCUSDT", "99999"),
                ticker("BTCDOWNUSDT", "99999"),
                ticker("BTCTRY", "99999"),
                ticker("ETHBTC", "1"),
            ],
            ["ETHBTC"],
            id="symbols with BTC in their name but another quote asset are not BTC-quoted",
        ),
        pytest.param(
            [ticker("HALTBTC", "500"), ticker("BREAKBTC", "400"), ticker("ETHBTC", "1")],
            ["ETHBTC"],
            id="symbols not TRADING are left out",
        ),
        pytest.param(
            [ticker("XRPBTC", "7"), ticker("BNBBTC", "7"), ticker("ETHBTC", "7"), ticker("LTCBTC", "8")],
            ["LTCBTC", "BNBBTC", "ETHBTC", "XRPBTC"],
            id="ties broken by symbol name ascending",
        ),
        pytest.param(
            [ticker("ETHBTC", "1", volume="1"), ticker("XRPBTC", "2", volume="1000000")],
            ["XRPBTC", "ETHBTC"],
            id="ranked by quote volume, not base volume",
        ),
        pytest.param(
            [ticker(s, str(i)) for i, s in enumerate(["ETHBTC", "WBTCBTC", "BNBBTC", "LTCBTC", "XRPBTC", "ADABTC"])],
            ["ADABTC", "XRPBTC", "LTCBTC", "BNBBTC", "WBTCBTC"],
            id="only the top 5",
        ),
        pytest.param(
            [ticker("NEWBTC", "9999"), ticker("ETHBTC", "0.00000001")],
            ["ETHBTC"],
            id="a symbol unknown to exchange info has no known quote asset",
        ),
        pytest.param([], [], id="no tickers"),
    ],
)
def test_top_symbols_by_quote_volume(tickers, expected):
    ranking = top_symbols_by_quote_volume(tickers, SYMBOLS)
    assert ranking.symbols == tuple(expected)
    assert (ranking.name, ranking.quote_asset) == ("quote_volume", "BTC")


@pytest.mark.parametrize(
    "tickers, expected",
    [
        pytest.param(
            [ticker("BTCUSDT", count=5), ticker("ETHUSDT", count=9), ticker("BTCDOWNUSDT", count=7)],
            ["ETHUSDT", "BTCDOWNUSDT", "BTCUSDT"],
            id="descending by trade count; BTCDOWNUSDT is USDT-quoted",
        ),
        pytest.param(
            [ticker("USDTTRY", count=10**9), ticker("SOLUSDT", count=1)],
            ["SOLUSDT"],
            id="USDTTRY is TRY-quoted",
        ),
        pytest.param(
            [ticker("XRPUSDT", count=3), ticker("DOGEUSDT", count=3), ticker("BTCUSDT", count=3)],
            ["BTCUSDT", "DOGEUSDT", "XRPUSDT"],
            id="ties broken by symbol name ascending",
        ),
        pytest.param(
            [ticker("SOLUSDT", "1000000", count=1), ticker("ETHUSDT", "1", count=2)],
            ["ETHUSDT", "SOLUSDT"],
            id="ranked by trade count, not volume",
        ),
    ],
)
def test_top_symbols_by_trade_count(tickers, expected):
    ranking = top_symbols_by_trade_count(tickers, SYMBOLS)
    assert ranking.symbols == tuple(expected)
    assert (ranking.name, ranking.quote_asset) == ("trade_count", "USDT")


def levels(*pairs: tuple[str, str]) -> list[tuple[D, D]]:
    return [(D(p), D(q)) for p, q in pairs]


@pytest.mark.parametrize(
    "side, book, depth, expected",
    [
        pytest.param("bid", levels(("2", "3"), ("1", "5")), 200, "11", id="all levels when fewer than 200"),
        pytest.param("bid", [], 200, "0", id="an empty side is 0"),
        pytest.param("ask", levels(("0.00000001", "100000000")), 200, "1.00000000", id="tiny 8-decimal price"),
        pytest.param(
            "bid",
            levels(("1", "1"), ("3", "1"), ("2", "1")),
            2,
            "5",
            id="best bids are the highest, whatever the order",
        ),
        pytest.param(
            "ask", levels(("3", "1"), ("1", "1"), ("2", "1")), 2, "3", id="best asks are the lowest, whatever the order"
        ),
        pytest.param(
            "ask",
            levels(("100", "0.001"), ("101", "1000000")),
            1,
            "0.100",
            id="best levels by price, not the largest notional",
        ),
        pytest.param(
            "bid",
            [(D(1000 - i), D("0.5")) for i in range(300)],
            200,
            str(sum(D(1000 - i) * D("0.5") for i in range(200))),
            id="exactly the best 200 of 300",
        ),
        pytest.param(
            "ask",
            levels(("123456789.12345678", "987654321.87654321")),
            200,
            # computed in integer 1e-8 units, independently of Decimal
            f"{12345678912345678 * 98765432187654321 // 10**16}.{12345678912345678 * 98765432187654321 % 10**16:016d}",
            id="large values stay exact",
        ),
    ],
)
def test_side_notional(side, book, depth, expected):
    assert side_notional(book, side, depth) == D(expected)


def test_best_levels_rejects_an_unknown_side():
    with pytest.raises(ValueError, match="side must be"):
        best_levels([], "middle")


def test_notional_is_exact_where_default_precision_would_round():
    price, qty = D("123456789.12345678"), D("987654321.87654321")
    assert price * qty != side_notional([(price, qty)], "ask")  # Python's 28 digits round
    units = 12345678912345678 * 98765432187654321
    assert side_notional([(price, qty)], "ask") == D(f"{units // 10**16}.{units % 10**16:016d}")


def test_sum_of_200_levels_is_exact():
    book = [(D("0.00000001") * (i + 1), D("12345.67891234")) for i in range(200)]
    expected = sum(D("0.00000001") * (i + 1) * D("12345.67891234") for i in range(200))
    assert side_notional(book, "ask") == expected
    # sum(i for i in 1..200) = 20100, so the sum is 20100e-8 x 12345.67891234
    assert format_decimal(side_notional(book, "ask")) == "2.48148146138034"


@pytest.mark.parametrize(
    "bid, ask, expected",
    [
        ("0.1", "0.11", "0.01"),
        ("67012.45000000", "67012.46000000", "0.01"),
        ("0.00000812", "0.00000813", "0.00000001"),
        ("0.30000000", "0.30000001", "0.00000001"),
    ],
)
def test_spread_is_exact(bid, ask, expected):
    top = BookTop("X", D(bid), D("1"), D(ask), D("1"))
    assert format_decimal(spread(top)) == expected


@pytest.mark.parametrize(
    "previous, current, expected",
    [
        (None, "0.01", None),
        ("0.01", "0.03", "0.02"),
        ("0.03", "0.01", "0.02"),
        ("0.01", "0.01", "0"),
        ("0.00000001", "0.00000003", "0.00000002"),
    ],
)
def test_spread_delta_is_the_absolute_change(previous, current, expected):
    delta = spread_delta(D(previous) if previous else None, D(current))
    assert (format_decimal(delta) if delta is not None else None) == expected


@pytest.mark.parametrize(
    "value, text",
    [
        ("0.01000000", "0.01"),
        ("0.00000001", "0.00000001"),
        ("100.00000000", "100"),
        ("1E+2", "100"),
        ("0E-8", "0"),
        ("-0.00", "0"),
        ("12.5", "12.5"),
        ("0.010000000002037268", "0.010000000002037268"),
    ],
)
def test_format_decimal_is_exact_and_plain(value, text):
    assert format_decimal(D(value)) == text


prices = st.decimals(min_value=D("0.00000001"), max_value=D("100000000"), places=8)
quantities = st.decimals(min_value=D("0.00000001"), max_value=D("10000000000"), places=8)


@given(st.lists(st.tuples(prices, quantities), max_size=400), st.sampled_from(["bid", "ask"]))
def test_notional_is_the_exact_sum_over_the_best_200_price_levels(levels, side):
    best = sorted(levels, key=lambda level: level[0], reverse=side == "bid")[:200]
    total = side_notional(levels, side)
    assert total >= 0
    # an independent exact sum, in integer units of 1e-16
    with decimal.localcontext(EXACT):
        assert total * 10**16 == sum(int(p * 10**8) * int(q * 10**8) for p, q in best)


@given(prices, prices)
def test_spread_is_exact_and_printed_without_float_artefacts(bid, ask):
    top = BookTop("X", bid, D(1), ask, D(1))
    assert D(format_decimal(spread(top))) == ask - bid
    assert "e" not in format_decimal(spread(top)).lower()
