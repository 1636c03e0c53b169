"""The printed report of Q1-Q4 and the Q5 lines, as text and as JSON."""

import json
from decimal import Decimal as D

from binance_exporter.market.definitions import BookTop, Ranking, Ticker24h, top_lists
from binance_exporter.exposition.report import render_report, render_spread_lines
from binance_exporter.cycle.snapshot import BookNotional, Snapshot, SpreadReading

NOW = 1795236344.0  # 2026-11-21T04:45:44Z


def reading(symbol, bid, ask, delta, cycle):
    return SpreadReading(BookTop(symbol, D(bid), D(1), D(ask), D(1)), D(ask) - D(bid), delta and D(delta), cycle)


SNAPSHOT = Snapshot(
    cycle=4,
    rankings=(
        Ranking(
            "quote_volume",
            "BTC",
            (Ticker24h("ETHBTC", D(1), D("8993.32796111"), 5), Ticker24h("WBTCBTC", D(1), D("12.50000000"), 3)),
        ),
        Ranking(
            "trade_count",
            "USDT",
            (Ticker24h("BTCUSDT", D(1), D(1), 2100345), Ticker24h("PEPEUSDT", D(1), D(1), 950000)),
        ),
    ),
    notionals=(BookNotional("ETHBTC", D("24.19582729200000000"), D("22.5"), 4), BookNotional("WBTCBTC", D(1), D(2), 3)),
    spreads=(
        reading("BTCUSDT", "67000.00000000", "67000.01000000", "0.02000000", 4),
        reading("PEPEUSDT", "0.00001234", "0.00001235", None, 3),
    ),
    up=False,
)


def test_text_report_answers_q1_to_q4_with_exact_decimals():
    assert render_report(SNAPSHOT, NOW) == (
        "Binance spot market report, 2026-11-21T04:45:44Z\n"
        "\n"
        "Q1  Top BTC-quoted symbols by 24 h quote volume (BTC)\n"
        "    1  ETHBTC                    8993.32796111\n"
        "    2  WBTCBTC                            12.5\n"
        "Q2  Top USDT-quoted symbols by 24 h trade count\n"
        "    1  BTCUSDT                         2100345\n"
        "    2  PEPEUSDT                         950000\n"
        "Q3  Notional of the best 200 price levels of each side (quote asset)\n"
        "    ETHBTC            bid           24.195827292   ask                   22.5\n"
        "    WBTCBTC           bid                    n/a   ask                    n/a\n"
        "Q4  Spread: best ask - best bid (quote asset)\n"
        "    BTCUSDT                               0.01\n"
        "    PEPEUSDT                               n/a\n"
    )


def test_json_report_has_exact_decimal_strings_and_null_for_missing_values():
    text = render_report(SNAPSHOT, NOW, "json")
    assert text.endswith("}\n") and text.count("\n") == 1
    report = json.loads(text)
    assert report["type"] == "report" and report["time"] == "2026-11-21T04:45:44Z"
    assert report["q1"] == [
        {"rank": 1, "symbol": "ETHBTC", "quote_volume": "8993.32796111"},
        {"rank": 2, "symbol": "WBTCBTC", "quote_volume": "12.5"},
    ]
    assert report["q2"][0] == {"rank": 1, "symbol": "BTCUSDT", "trades": 2100345}
    assert report["q3"][1] == {"symbol": "WBTCBTC", "bid_notional": None, "ask_notional": None}
    assert report["q4"] == [{"symbol": "BTCUSDT", "spread": "0.01"}, {"symbol": "PEPEUSDT", "spread": None}]


def test_spread_lines_show_value_and_delta_or_n_a():
    assert render_spread_lines(SNAPSHOT, NOW) == [
        "2026-11-21T04:45:44Z  BTCUSDT        spread             0.01   delta             0.02",
        "2026-11-21T04:45:44Z  PEPEUSDT       spread              n/a   delta              n/a",
    ]


def test_first_value_has_no_delta():
    first = Snapshot(cycle=1, rankings=SNAPSHOT.rankings[1:], spreads=(reading("BTCUSDT", "1", "1.5", None, 1),))
    assert render_spread_lines(first, NOW)[0].endswith("spread              0.5   delta              n/a")


def test_json_spread_lines():
    lines = [json.loads(line) for line in render_spread_lines(SNAPSHOT, NOW, "json")]
    assert lines == [
        {"type": "spread", "time": "2026-11-21T04:45:44Z", "symbol": "BTCUSDT", "spread": "0.01", "delta": "0.02"},
        {"type": "spread", "time": "2026-11-21T04:45:44Z", "symbol": "PEPEUSDT", "spread": None, "delta": None},
    ]


def test_nothing_ranked_yet_gives_n_a_in_every_section():
    lines = render_report(Snapshot(), NOW).splitlines()
    sections = [i for i, line in enumerate(lines) if line[:2] in ("Q1", "Q2", "Q3", "Q4")]
    assert [lines[i + 1] for i in sections] == ["    n/a"] * 4
    assert not render_spread_lines(Snapshot(), NOW)


# BTCUSDT is in a quote volume list and a trade count list; BUSD has no TRADING symbol.
MANY_LISTS = Snapshot(
    cycle=4,
    top_lists=top_lists(("BTC", "USDT", "BUSD"), ("USDT", "USDC")),
    rankings=(
        SNAPSHOT.rankings[0],
        Ranking("quote_volume", "USDT", (Ticker24h("BTCUSDT", D(1), D("1340000000.5"), 2100345),)),
        Ranking("quote_volume", "BUSD", ()),
        SNAPSHOT.rankings[1],
        Ranking("trade_count", "USDC", (Ticker24h("ETHUSDC", D(1), D(1), 420733),)),
    ),
    notionals=SNAPSHOT.notionals + (BookNotional("BTCUSDT", D("5000000.25"), D("4000000"), 4),),
    spreads=SNAPSHOT.spreads + (reading("ETHUSDC", "3432.87", "3432.88", None, 4),),
)


def test_text_report_shows_every_list_in_order_and_an_empty_one_as_none():
    assert render_report(MANY_LISTS, NOW) == (
        "Binance spot market report, 2026-11-21T04:45:44Z\n"
        "\n"
        "Q1  Top BTC-quoted symbols by 24 h quote volume (BTC)\n"
        "    1  ETHBTC                    8993.32796111\n"
        "    2  WBTCBTC                            12.5\n"
        "Q1  Top USDT-quoted symbols by 24 h quote volume (USDT)\n"
        "    1  BTCUSDT                    1340000000.5\n"
        "Q1  Top BUSD-quoted symbols by 24 h quote volume (BUSD)\n"
        "    none: no TRADING symbol is quoted in BUSD\n"
        "Q2  Top USDT-quoted symbols by 24 h trade count\n"
        "    1  BTCUSDT                         2100345\n"
        "    2  PEPEUSDT                         950000\n"
        "Q2  Top USDC-quoted symbols by 24 h trade count\n"
        "    1  ETHUSDC                          420733\n"
        "Q3  Notional of the best 200 price levels of each side (quote asset)\n"
        "    ETHBTC            bid           24.195827292   ask                   22.5\n"
        "    WBTCBTC           bid                    n/a   ask                    n/a\n"
        "    BTCUSDT           bid             5000000.25   ask                4000000\n"
        "Q4  Spread: best ask - best bid (quote asset)\n"
        "    BTCUSDT                               0.01\n"
        "    PEPEUSDT                               n/a\n"
        "    ETHUSDC                               0.01\n"
    )


def test_json_rows_name_their_quote_asset_when_a_ranking_has_several_lists():
    report = json.loads(render_report(MANY_LISTS, NOW, "json"))
    assert list(report) == ["type", "time", "q1", "q2", "q3", "q4"]
    assert report["q1"] == [
        {"quote_asset": "BTC", "rank": 1, "symbol": "ETHBTC", "quote_volume": "8993.32796111"},
        {"quote_asset": "BTC", "rank": 2, "symbol": "WBTCBTC", "quote_volume": "12.5"},
        {"quote_asset": "USDT", "rank": 1, "symbol": "BTCUSDT", "quote_volume": "1340000000.5"},
    ]  # BUSD's list is empty: no row
    assert [(row["quote_asset"], row["rank"], row["symbol"]) for row in report["q2"]] == [
        ("USDT", 1, "BTCUSDT"),
        ("USDT", 2, "PEPEUSDT"),
        ("USDC", 1, "ETHUSDC"),
    ]
    assert report["q3"][2] == {
        "quote_asset": "USDT",
        "symbol": "BTCUSDT",
        "bid_notional": "5000000.25",
        "ask_notional": "4000000",
    }
    assert report["q4"] == [
        {"quote_asset": "USDT", "symbol": "BTCUSDT", "spread": "0.01"},
        {"quote_asset": "USDT", "symbol": "PEPEUSDT", "spread": None},
        {"quote_asset": "USDC", "symbol": "ETHUSDC", "spread": "0.01"},
    ]


def test_spread_lines_cover_every_trade_count_list():
    assert render_spread_lines(MANY_LISTS, NOW) == [
        "2026-11-21T04:45:44Z  BTCUSDT        spread             0.01   delta             0.02",
        "2026-11-21T04:45:44Z  PEPEUSDT       spread              n/a   delta              n/a",
        "2026-11-21T04:45:44Z  ETHUSDC        spread             0.01   delta              n/a",
    ]
    assert [json.loads(line) for line in render_spread_lines(MANY_LISTS, NOW, "json")][2] == {
        "type": "spread",
        "time": "2026-11-21T04:45:44Z",
        "quote_asset": "USDC",
        "symbol": "ETHUSDC",
        "spread": "0.01",
        "delta": None,
    }


def test_one_list_of_each_ranking_names_no_quote_asset_whichever_the_assets():
    one_each = Snapshot(
        cycle=4,
        top_lists=top_lists(("ETH",), ("USDC",)),
        rankings=(Ranking("quote_volume", "ETH", ()), MANY_LISTS.rankings[4]),
        spreads=MANY_LISTS.spreads,
    )
    report = json.loads(render_report(one_each, NOW, "json"))
    assert report["q1"] == report["q3"] == []
    assert report["q2"] == [{"rank": 1, "symbol": "ETHUSDC", "trades": 420733}]
    assert json.loads(render_spread_lines(one_each, NOW, "json")[0])["symbol"] == "ETHUSDC"
    assert "quote_asset" not in render_spread_lines(one_each, NOW, "json")[0]
    text = render_report(one_each, NOW)
    assert "(ETH)\n    none: no TRADING symbol is quoted in ETH\nQ2  Top USDC-quoted" in text
    assert "(quote asset)\n    none: no symbol in the quote volume lists\nQ4" in text


def test_lists_not_ranked_yet_are_each_n_a():
    nothing_yet = Snapshot(top_lists=MANY_LISTS.top_lists)
    lines = render_report(nothing_yet, NOW).splitlines()
    sections = [i for i, line in enumerate(lines) if line[:2] in ("Q1", "Q2", "Q3", "Q4")]
    assert [lines[i][:40] for i in sections] == [
        "Q1  Top BTC-quoted symbols by 24 h quote",
        "Q1  Top USDT-quoted symbols by 24 h quot",
        "Q1  Top BUSD-quoted symbols by 24 h quot",
        "Q2  Top USDT-quoted symbols by 24 h trad",
        "Q2  Top USDC-quoted symbols by 24 h trad",
        "Q3  Notional of the best 200 price level",
        "Q4  Spread: best ask - best bid (quote a",
    ]
    assert [lines[i + 1] for i in sections] == ["    n/a"] * 7
    assert json.loads(render_report(nothing_yet, NOW, "json"))["q1"] == []
