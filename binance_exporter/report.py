"""The printed answers: a report of Q1-Q4, then a Q5 line per symbol per
cycle, as readable text or as JSON lines. Numbers are printed as exact
decimals (``0.01``, never ``0.010000000002``)."""

from __future__ import annotations

import json
from typing import Any

from binance_exporter.market import BOOK_DEPTH, BY_QUOTE_VOLUME, BY_TRADE_COUNT, format_decimal, format_utc
from binance_exporter.snapshot import Snapshot

NOT_AVAILABLE = "n/a"


def _report_data(snapshot: Snapshot) -> dict[str, Any]:
    by_volume, by_trades = snapshot.ranking(BY_QUOTE_VOLUME), snapshot.ranking(BY_TRADE_COUNT)
    notionals, spreads = snapshot.notionals_this_cycle(), snapshot.spreads_this_cycle()
    return {
        "q1": [
            {"rank": i, "symbol": t.symbol, "quote_volume": format_decimal(t.quote_volume)}
            for i, t in enumerate(by_volume.tickers if by_volume else (), start=1)
        ],
        "q2": [
            {"rank": i, "symbol": t.symbol, "trades": t.trade_count}
            for i, t in enumerate(by_trades.tickers if by_trades else (), start=1)
        ],
        "q3": [
            {
                "symbol": symbol,
                "bid_notional": format_decimal(notionals[symbol].bid) if symbol in notionals else None,
                "ask_notional": format_decimal(notionals[symbol].ask) if symbol in notionals else None,
            }
            for symbol in (by_volume.symbols if by_volume else ())
        ],
        "q4": [
            {"symbol": symbol, "spread": format_decimal(spreads[symbol].spread) if symbol in spreads else None}
            for symbol in (by_trades.symbols if by_trades else ())
        ],
    }


def render_report(snapshot: Snapshot, now: float, output_format: str = "text") -> str:
    """The report of Q1-Q4 from ``snapshot``, ending in a newline; values
    the latest cycle could not fetch are ``n/a`` (null in JSON)."""
    data = _report_data(snapshot)
    if output_format == "json":
        return json.dumps({"type": "report", "time": format_utc(now), **data}) + "\n"
    by_volume = snapshot.ranking(BY_QUOTE_VOLUME)
    quote = by_volume.quote_asset if by_volume else "BTC"
    lines = [f"Binance spot market report, {format_utc(now)}", ""]
    lines.append(f"Q1  Top BTC-quoted symbols by 24 h quote volume ({quote})")
    lines += _rows([f"    {row['rank']}  {row['symbol']:<14} {row['quote_volume']:>24}" for row in data["q1"]])
    lines.append("Q2  Top USDT-quoted symbols by 24 h trade count")
    lines += _rows([f"    {row['rank']}  {row['symbol']:<14} {row['trades']:>24}" for row in data["q2"]])
    lines.append(f"Q3  Notional of the best {BOOK_DEPTH} price levels of each side (quote asset)")
    lines += _rows(
        [
            f"    {row['symbol']:<17} bid {row['bid_notional'] or NOT_AVAILABLE:>22}"
            f"   ask {row['ask_notional'] or NOT_AVAILABLE:>22}"
            for row in data["q3"]
        ]
    )
    lines.append("Q4  Spread: best ask - best bid (quote asset)")
    lines += _rows([f"    {row['symbol']:<17} {row['spread'] or NOT_AVAILABLE:>24}" for row in data["q4"]])
    return "\n".join(lines) + "\n"


def _rows(lines: list[str]) -> list[str]:
    """A section's lines, or ``n/a`` when the rankings are not known."""
    return lines or [f"    {NOT_AVAILABLE}"]


def render_spread_lines(snapshot: Snapshot, now: float, output_format: str = "text") -> list[str]:
    """Q5: for each Q2 symbol, the spread the latest cycle fetched and its
    absolute change from the previous one (``n/a`` when there is none)."""
    ranking = snapshot.ranking(BY_TRADE_COUNT)
    spreads = snapshot.spreads_this_cycle()
    lines = []
    for symbol in ranking.symbols if ranking else ():
        reading = spreads.get(symbol)
        value = format_decimal(reading.spread) if reading else None
        delta = format_decimal(reading.delta) if reading and reading.delta is not None else None
        if output_format == "json":
            lines.append(
                json.dumps(
                    {"type": "spread", "time": format_utc(now), "symbol": symbol, "spread": value, "delta": delta}
                )
            )
        else:
            lines.append(
                f"{format_utc(now)}  {symbol:<14} spread {value or NOT_AVAILABLE:>16}"
                f"   delta {delta or NOT_AVAILABLE:>16}"
            )
    return lines
