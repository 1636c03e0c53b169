"""The printed report of Q1-Q4 and the Q5 lines, as text and as JSON."""

import json
from decimal import Decimal as D

from binance_exporter.market import BookTop, Ranking, Ticker24h
from binance_exporter.report import render_report, render_spread_lines
from binance_exporter.snapshot import BookNotional, Snapshot, SpreadReading

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
