"""Parsing Binance's responses: valid shapes become market values, anything
else becomes MarketDataError, never another exception."""

from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from binance_exporter.errors import MarketDataError
from binance_exporter.binance.responses import (
    parse_agg_trade_event,
    parse_agg_trades,
    parse_book_top,
    parse_book_tops,
    parse_decimal,
    parse_depth_event,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_order_book,
    parse_rolling_tickers,
    parse_tickers,
)

TICKER = {"symbol": "ETHBTC", "volume": "271029.28300000", "quoteVolume": "8993.32796111", "count": 122239}
TOP = {"symbol": "BTCUSDT", "bidPrice": "67000.00", "bidQty": "1.5", "askPrice": "67000.01", "askQty": "0.1"}


def test_exchange_info_gives_quote_asset_and_status_per_symbol():
    data = {
        "timezone": "UTC",
        "symbols": [
            {"symbol": "BTCDOWNUSDT", "status": "TRADING", "baseAsset": "BTCDOWN", "quoteAsset": "USDT", "filters": []},
            {"symbol": "LUNABTC", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "BTC"},
        ],
    }
    symbols, rejected = parse_exchange_info(data)
    assert not rejected
    assert symbols["BTCDOWNUSDT"].quote_asset == "USDT"
    assert symbols["BTCDOWNUSDT"].trading
    assert not symbols["LUNABTC"].trading


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "expected an object"),
        ({}, "'symbols' is missing"),
        ({"symbols": {}}, "expected a list"),
        ({"symbols": []}, "no valid symbols"),
        (
            {"symbols": [{"symbol": "X", "status": "TRADING", "baseAsset": "X"}]},
            "no valid symbols; .*'quoteAsset' is missing",
        ),
        ({"symbols": [{"symbol": "X", "status": 1, "baseAsset": "X", "quoteAsset": "B"}]}, "'status' is not"),
    ],
)
def test_exchange_info_of_the_wrong_shape_is_rejected(data, message):
    with pytest.raises(MarketDataError, match=message):
        parse_exchange_info(data)


def test_tickers_are_parsed_exactly():
    [ticker], rejected = parse_tickers([TICKER])
    assert not rejected
    assert ticker.volume == D("271029.28300000")
    assert ticker.quote_volume == D("8993.32796111")
    assert ticker.trade_count == 122239


@pytest.mark.parametrize(
    "change, message",
    [
        ({"quoteVolume": "1e5"}, "not a decimal number"),
        ({"quoteVolume": "NaN"}, "not a decimal number"),
        ({"quoteVolume": " 1"}, "not a decimal number"),
        ({"quoteVolume": 12.5}, "not a decimal number"),
        ({"volume": "-1.0"}, "not a decimal number"),
        ({"volume": "-0"}, "not a decimal number"),
        ({"quoteVolume": "1" * 400}, "not a decimal number"),
        ({"quoteVolume": "0." + "1" * 400}, "not a decimal number"),
        ({"count": 10**400}, "count is not a 64-bit"),
        ({"count": 2**63}, "count is not a 64-bit"),
        ({"symbol": "ETH\x1b[2JBTC"}, "not a symbol or asset name: 'ETH\\\\x1b\\[2JBTC'"),
        ({"symbol": "ETH\x00BTC"}, "not a symbol or asset name"),
        ({"symbol": "ETH\ud800BTC"}, "not a symbol or asset name"),
        ({"symbol": "ethbtc"}, "not a symbol or asset name"),
        ({"symbol": 'ETH"} 1\nBTC'}, "not a symbol or asset name"),
        ({"symbol": "A" * 41}, "not a symbol or asset name"),
        ({"count": "12"}, "count is not"),
        ({"count": -1}, "count is not"),
        ({"count": True}, "count is not"),
        ({"symbol": ""}, "'symbol' is not"),
    ],
)
def test_tickers_with_bad_fields_are_rejected(change, message):
    with pytest.raises(MarketDataError, match=message):
        parse_tickers([{**TICKER, **change}])


def test_a_bad_ticker_record_costs_only_its_own_symbol():
    tickers, [error] = parse_tickers([TICKER, {**TICKER, "symbol": "BNBBTC", "count": 10**400}])
    assert [ticker.symbol for ticker in tickers] == ["ETHBTC"]
    assert "BNBBTC" in str(error)


def test_a_bad_exchange_info_record_costs_only_its_own_symbol():
    good = {"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC"}
    symbols, [error] = parse_exchange_info({"symbols": [good, {**good, "symbol": "\udc80"}]})
    assert list(symbols) == ["ETHBTC"]
    assert "not a symbol or asset name" in str(error)


def test_symbol_names_in_other_scripts_are_accepted():
    [ticker], _ = parse_tickers([{**TICKER, "symbol": "币安人生USDT"}])
    assert ticker.symbol == "币安人生USDT"


@pytest.mark.parametrize("data", [{}, [], "<html>", [["ETHBTC"]]])
def test_ticker_lists_of_the_wrong_shape_are_rejected(data):
    with pytest.raises(MarketDataError):
        parse_tickers(data)


def test_order_book_levels_are_parsed_exactly():
    data = {"lastUpdateId": 1, "bids": [["0.00000637", "6500.00000000"]], "asks": [["0.00000638", "12.5"]]}
    book = parse_order_book("LRCBTC", data)
    assert book.bids == ((D("0.00000637"), D("6500")),)
    assert book.asks == ((D("0.00000638"), D("12.5")),)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"bids": []}, "'asks' is missing"),
        ({"bids": [["1"]], "asks": []}, "not \\[price, quantity\\]"),
        ({"bids": [["1", "2", "3"]], "asks": []}, "not \\[price, quantity\\]"),
        ({"bids": [], "asks": [["x", "1"]]}, "not a decimal number"),
        ({"bids": [], "asks": [["0", "1"]]}, "zero price or quantity"),
        ({"bids": [["1", "0.00000000"]], "asks": []}, "zero price or quantity"),
        ({"bids": "none", "asks": []}, "expected a list"),
        ({"bids": [], "asks": []}, "a side of the book is empty"),
        ({"bids": [["1", "1"]], "asks": []}, "a side of the book is empty"),
        ({"bids": [], "asks": [["1", "1"]]}, "a side of the book is empty"),
        ({"bids": [["2", "1"]], "asks": [["2", "1"]]}, "crossed book, best bid 2 >= best ask 2"),
        ({"bids": [["1", "1"], ["3", "1"]], "asks": [["2", "1"]]}, "crossed book, best bid 3 >= best ask 2"),
        ({"bids": [["1", "1"], ["1.0", "2"]], "asks": [["2", "1"]]}, "two bids levels at price 1"),
        ({"bids": [["1", "1"]], "asks": [["2", "1"], ["3", "1"], ["2.00", "1"]]}, "two asks levels at price 2"),
        ({"bids": [["1", "-0"]], "asks": [["2", "1"]]}, "not a decimal number"),
        ({"bids": [["1", "1" * 21]], "asks": [["2", "1"]]}, "not a decimal number"),
        ({"bids": [[["1"] * 3, "1"]], "asks": [["2", "1"]]}, "not a decimal number string: a JSON list"),
    ],
)
def test_order_books_of_the_wrong_shape_are_rejected(data, message):
    with pytest.raises(MarketDataError, match=message):
        parse_order_book("X", data)


def test_book_top_is_parsed_exactly():
    top = parse_book_top(TOP)
    assert (top.bid_price, top.ask_price) == (D("67000.00"), D("67000.01"))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bidPrice": "0.00000000", "bidQty": "0.00000000"}, "one side of the book is empty"),
        ({"askPrice": "0.00000000"}, "one side of the book is empty"),
        ({"bidPrice": "67000.01"}, "crossed book"),
        ({"bidPrice": "67000.02"}, "crossed book"),
        ({"askQty": None}, "not a decimal number"),
    ],
)
def test_book_tops_without_a_meaningful_spread_are_rejected(change, message):
    with pytest.raises(MarketDataError, match=message):
        parse_book_top({**TOP, **change})


def test_a_bad_book_ticker_record_costs_only_its_own_symbol():
    tops, rejected = parse_book_tops([TOP, {**TOP, "symbol": "ETHUSDT", "askPrice": "oops"}])
    assert list(tops) == ["BTCUSDT"]
    assert len(rejected) == 1 and "ETHUSDT" in str(rejected[0])


def test_a_book_ticker_answer_that_is_not_a_list_is_rejected():
    with pytest.raises(MarketDataError, match="expected a list"):
        parse_book_tops(TOP)


@pytest.mark.parametrize("text", ["0", "0.00000001", "123456789.12345678", "5000"])
def test_plain_decimal_strings_parse(text):
    assert parse_decimal(text, "x") == D(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
number_strings = st.one_of(st.decimals(allow_nan=True, allow_infinity=True).map(str), st.text(max_size=12))


def _record(keys, values):
    return st.fixed_dictionaries({key: values for key in keys})


@given(json_values)
def test_any_json_gives_tickers_or_market_data_error(data):
    try:
        tickers, _ = parse_tickers(data)
    except MarketDataError:
        return
    assert tickers and all(t.trade_count >= 0 and t.quote_volume >= 0 for t in tickers)


@given(st.lists(_record(("symbol", "volume", "quoteVolume", "count"), number_strings | st.integers()), max_size=3))
def test_hostile_ticker_records_give_tickers_or_market_data_error(data):
    try:
        tickers, _ = parse_tickers(data)
    except MarketDataError:
        return
    assert all(t.volume.is_finite() and t.quote_volume >= 0 for t in tickers)


@given(json_values)
def test_any_json_gives_an_order_book_or_market_data_error(data):
    try:
        book = parse_order_book("X", data)
    except MarketDataError:
        return
    assert all(price > 0 and qty > 0 for price, qty in book.bids + book.asks)
    assert max(p for p, _ in book.bids) < min(p for p, _ in book.asks)


@given(
    st.fixed_dictionaries(
        {"bids": st.lists(st.lists(number_strings, max_size=3), max_size=3), "asks": st.just([["999999999", "1"]])}
    )
)
def test_hostile_levels_give_an_order_book_or_market_data_error(data):
    try:
        book = parse_order_book("X", data)
    except MarketDataError:
        return
    assert all(price.is_finite() and price > 0 for price, _ in book.bids)


@given(json_values | st.lists(_record(("symbol", "bidPrice", "bidQty", "askPrice", "askQty"), number_strings)))
def test_any_json_gives_book_tops_or_market_data_error(data):
    try:
        tops, _ = parse_book_tops(data)
    except MarketDataError:
        return
    assert all(0 < top.bid_price < top.ask_price for top in tops.values())


@given(json_values)
def test_any_json_gives_exchange_info_or_market_data_error(data):
    try:
        symbols, _ = parse_exchange_info(data)
    except MarketDataError:
        return
    assert symbols


EVENT = {
    "e": "depthUpdate",
    "E": 1633998512068,
    "s": "NKNUSDT",
    "U": 499869750,
    "u": 499869752,
    "b": [["0.35130000", "6195.00000000"], ["0.34750000", "0.00000000"]],
    "a": [],
}


def test_a_depth_event_gives_its_ids_time_and_levels_with_zero_for_a_removed_level():
    event = parse_depth_event(EVENT)
    assert (event.symbol, event.first_id, event.last_id, event.event_time) == ("NKNUSDT", 499869750, 499869752,
                                                                              1633998512068)  # fmt: skip
    assert event.bids == ((35_130_000, 619_500_000_000), (34_750_000, 0)) and not event.asks  # 1e-8 units
    assert parse_depth_event(EVENT) == event  # numbers read again come from the cache, equal


@pytest.mark.parametrize(
    "change",
    [
        {"e": "24hrTicker"},
        {"s": "nkn usdt"},
        {"U": 499869753},  # after u
        {"u": -1},
        {"E": "soon"},
        {"U": True},
        {"b": {"0.1": "1"}},
        {"b": [["0.1"]]},
        {"b": [["0.1", 1]]},
        {"a": [["1e5", "1"]]},
        {"a": [["0.123456789", "1"]]},  # more than 8 decimals: not exact in a live book's units
        {"a": [["1", "92233720368.54775808"]]},  # one unit past Binance's 64-bit integers of 1e-8 units
        {"a": [["-1", "1"]]},
        {"a": [[["x"], "1"]]},
        {"a": "none"},
    ],
)
def test_a_malformed_depth_event_is_a_market_data_error(change):
    with pytest.raises(MarketDataError):
        parse_depth_event({**EVENT, **change})
    with pytest.raises(MarketDataError):
        parse_depth_event([EVENT])
    with pytest.raises(MarketDataError):
        parse_depth_event({key: value for key, value in EVENT.items() if key != "b"})


def test_a_depth_snapshot_keeps_its_update_id_and_a_thin_side_and_refuses_a_crossed_book():
    data = {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]], "asks": []}
    snapshot = parse_depth_snapshot("BNBBTC", data, 1000)
    assert (snapshot.last_update_id, snapshot.bids, snapshot.asks, snapshot.limit) == (
        1027024, ((D(4), D(431)),), (), 1000
    )  # fmt: skip
    with pytest.raises(MarketDataError, match="crossed book"):
        parse_depth_snapshot("BNBBTC", {**data, "asks": [["3.9", "1"]]}, 1000)
    with pytest.raises(MarketDataError, match="lastUpdateId"):
        parse_depth_snapshot("BNBBTC", {**data, "lastUpdateId": "1027024"}, 1000)
    with pytest.raises(MarketDataError, match="a bid level has more than 8 decimals"):
        parse_depth_snapshot("BNBBTC", {**data, "bids": [["4.000000001", "1"]]}, 1000)
    assert parse_depth_snapshot("BNBBTC", {**data, "bids": [["4.1234567800", "1"]]}, 1000).bids[0][0] == D("4.12345678")
    with pytest.raises(MarketDataError, match="a bid level is past Binance's 64-bit range"):
        parse_depth_snapshot("BNBBTC", {**data, "bids": [["4", "92233720368.54775808"]]}, 1000)
    largest = parse_depth_snapshot("BNBBTC", {**data, "bids": [["4", "92233720368.54775807"]]}, 1000)
    assert largest.bids == ((D(4), D("92233720368.54775807")),)


def test_rolling_tickers_give_volume_quote_volume_and_count_and_reject_only_bad_records():
    good = {"e": "1dTicker", "s": "BTCUSDT", "v": "1500.5", "q": "100000000.25", "n": 2100000}
    tickers, rejected = parse_rolling_tickers([good, {**good, "s": "ETHUSDT", "n": -1}])
    assert [(t.symbol, t.volume, t.quote_volume, t.trade_count) for t in tickers] == [
        ("BTCUSDT", D("1500.5"), D("100000000.25"), 2100000)
    ]
    assert len(rejected) == 1 and "n is not" in str(rejected[0])
    with pytest.raises(MarketDataError):
        parse_rolling_tickers({"s": "BTCUSDT"})


AGG_TRADE = {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27783, "T": 1498793709153, "m": True,
             "M": True}  # fmt: skip


def test_aggregate_trades_give_their_ids_price_quantity_and_taker_side():
    (trade,) = parse_agg_trades("BNBBTC", [AGG_TRADE])
    assert (trade.agg_id, trade.price, trade.qty, trade.trades, trade.time_ms) == (
        26129, D("0.01633102"), D("4.70443515"), 3, 1498793709153
    )  # fmt: skip
    assert trade.taker_side == "sell"  # the buyer was the maker
    event = {"e": "aggTrade", "E": 1498793709160, "s": "BNBBTC", **AGG_TRADE, "m": False}
    symbol, streamed = parse_agg_trade_event(event)
    assert symbol == "BNBBTC" and streamed.taker_side == "buy" and streamed.agg_id == 26129
    assert parse_agg_trades("BNBBTC", []) == []


@pytest.mark.parametrize(
    "change",
    [
        {"a": -1},
        {"a": "26129"},
        {"f": 27784},  # after l
        {"p": "0"},
        {"q": "0.00000000"},
        {"p": "1e-3"},
        {"m": 1},
        {"T": None},
    ],
)
def test_a_malformed_aggregate_trade_is_a_market_data_error(change):
    with pytest.raises(MarketDataError):
        parse_agg_trades("BNBBTC", [AGG_TRADE, {**AGG_TRADE, **change}])  # one bad record spoils the answer
    with pytest.raises(MarketDataError):
        parse_agg_trade_event({"e": "aggTrade", "E": 1, "s": "BNBBTC", **AGG_TRADE, **change})


def test_an_aggregate_trade_answer_or_event_of_the_wrong_shape_is_a_market_data_error():
    with pytest.raises(MarketDataError):
        parse_agg_trades("BNBBTC", {"code": -1121})
    with pytest.raises(MarketDataError):
        parse_agg_trade_event({"e": "trade", "E": 1, "s": "BNBBTC", **AGG_TRADE})
    with pytest.raises(MarketDataError):
        parse_agg_trade_event({"e": "aggTrade", "E": 1, "s": "bnb btc", **AGG_TRADE})
