"""The market arithmetic and rankings, table-driven."""

import decimal
from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from binance_exporter.market.definitions import (
    DEFAULT_TOP_LISTS,
    EXACT,
    WHOLE,
    BookTop,
    Ranking,
    Shard,
    SymbolInfo,
    Ticker24h,
    TopList,
    best_levels,
    format_decimal,
    is_name,
    listed_symbols,
    rank_top_lists,
    side_notional,
    spread,
    spread_delta,
    top_lists,
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
        info("ETHUSDC", "ETH", "USDC"),
        info("BTCUSDC", "BTC", "USDC"),
        info("USDCUSDT", "USDC", "USDT"),
        info("BTCBUSD", "BTC", "BUSD", "BREAK"),
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


def test_the_default_top_lists_are_q1_for_btc_then_q2_for_usdt():
    assert DEFAULT_TOP_LISTS == top_lists() == (TopList("quote_volume", "BTC"), TopList("trade_count", "USDT"))


def test_top_lists_are_the_quote_volume_lists_then_the_trade_count_lists_each_in_the_order_given():
    assert top_lists(("USDC", "BTC"), ("USDT", "USDC")) == (
        TopList("quote_volume", "USDC"),
        TopList("quote_volume", "BTC"),
        TopList("trade_count", "USDT"),
        TopList("trade_count", "USDC"),
    )


MANY_TICKERS = [
    ticker("ETHBTC", "10", count=1),
    ticker("BNBBTC", "10", count=9),
    ticker("WBTCBTC", "30", count=2),
    ticker("HALTBTC", "99", count=99),
    ticker("BTCUSDT", "500", count=3),
    ticker("ETHUSDT", "900", count=3),
    ticker("USDCUSDT", "2000", count=1),
    ticker("ETHUSDC", "7", count=50),
    ticker("BTCUSDC", "7", count=40),
    ticker("USDTTRY", "99999", count=99999),
    ticker("BTCBUSD", "99999", count=99999),
]


def test_each_list_is_ranked_exactly_as_q1_or_q2_for_its_own_quote_asset():
    lists = top_lists(("BTC", "USDC", "USDT"), ("USDT", "USDC", "TRY"))
    rankings = rank_top_lists(iter(MANY_TICKERS), SYMBOLS, lists, count=2)  # one pass over the tickers suffices
    assert [r.top_list for r in rankings] == list(lists)
    assert [r.symbols for r in rankings] == [
        ("WBTCBTC", "BNBBTC"),  # ETHBTC ties BNBBTC at 10 and loses on its name; HALTBTC is not TRADING
        ("BTCUSDC", "ETHUSDC"),  # a tie at 7, by name
        ("USDCUSDT", "ETHUSDT"),  # USDCUSDT is USDT-quoted
        ("BTCUSDT", "ETHUSDT"),  # a tie at 3 trades, by name
        ("ETHUSDC", "BTCUSDC"),
        ("USDTTRY",),
    ]
    for ranking in rankings:
        alone = {"quote_volume": top_symbols_by_quote_volume, "trade_count": top_symbols_by_trade_count}[ranking.name]
        assert ranking == alone(MANY_TICKERS, SYMBOLS, ranking.quote_asset, 2)


@pytest.mark.parametrize("asset", ["BUSD", "EUR", "XYZ"])
def test_a_quote_asset_without_trading_symbols_has_an_empty_list(asset):
    rankings = rank_top_lists(MANY_TICKERS, SYMBOLS, top_lists((asset,), (asset,)))
    assert rankings == (Ranking("quote_volume", asset, ()), Ranking("trade_count", asset, ()))


def test_listed_symbols_are_each_symbol_of_one_rankings_lists_once_in_list_order_with_its_quote_asset():
    rankings = (
        Ranking("quote_volume", "USDT", (ticker("USDCUSDT"), ticker("BTCUSDT"))),
        Ranking("trade_count", "USDT", (ticker("BTCUSDT"), ticker("ETHUSDT"))),
        Ranking("quote_volume", "BTC", (ticker("ETHBTC"),)),
        Ranking("quote_volume", "BUSD", ()),
        Ranking("quote_volume", "USDT", (ticker("BTCUSDT"),)),  # never configured, but counted once all the same
    )
    assert list(listed_symbols(rankings, "quote_volume").items()) == [
        ("USDCUSDT", "USDT"),
        ("BTCUSDT", "USDT"),
        ("ETHBTC", "BTC"),
    ]
    assert list(listed_symbols(rankings, "trade_count")) == ["BTCUSDT", "ETHUSDT"]
    assert not listed_symbols((), "trade_count")


@pytest.mark.parametrize(
    "text, valid",
    [
        ("BTC", True),
        ("USDT", True),
        ("1INCH", True),
        ("币安人生", True),  # Binance has listed names in other scripts
        ("A" * 40, True),
        ("A" * 41, False),
        ("", False),
        ("usdt", False),
        ("Usdt", False),
        ("BTC-USDT", False),
        ("BTC USDT", False),
        (" BTC", False),
        ("BTC\n", False),
        ("ß", False),  # its upper case is SS
    ],
)
def test_a_symbol_or_asset_name_is_upper_case_letters_and_digits(text, valid):
    assert is_name(text) is valid


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


def test_shards_split_any_symbols_with_no_overlap_and_no_gap():
    symbols = [f"SYM{i}USDT" for i in range(3000)] + ["BTCUSDT", "ETHBTC"]
    for count in (1, 2, 3, 7):
        owners = [[k for k in range(1, count + 1) if Shard(k, count).owns(s)] for s in symbols]
        assert all(len(found) == 1 for found in owners)
        sizes = [sum(1 for found in owners if found == [k]) for k in range(1, count + 1)]
        assert min(sizes) > len(symbols) / count * 0.9  # an even split
    # The hash is CRC-32 of the name, the same on every platform and Python run: these never move.
    assert [k for k in (1, 2) if Shard(k, 2).owns("BTCUSDT")] == [2]  # CRC-32 0xAC8EA3C3
    assert [k for k in (1, 2, 3) if Shard(k, 3).owns("BTCUSDT")] == [0xAC8EA3C3 % 3 + 1]
    assert str(Shard(2, 3)) == "2/3" and WHOLE.owns("ANYTHING")
