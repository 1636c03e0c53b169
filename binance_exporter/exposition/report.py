"""The printed answers: a report of Q1-Q4, then a Q5 line per symbol per
cycle, as readable text or as JSON lines. Numbers are printed as exact
decimals (``0.01``, never ``0.010000000002``).

The report shows every top list the snapshot was configured with: a Q1
section per quote-volume list and a Q2 section per trade-count list, in
order; Q3 covers the symbols of every Q1 list, Q4 and Q5 those of every Q2
list, each symbol once. A list whose ranking is not known yet is ``n/a``; a
known list with no symbol (its quote asset has no TRADING symbol) is
``none``. When either ranking has more than one list, every JSON row and
spread line also names its ``quote_asset``."""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from binance_exporter.market.definitions import (
    BOOK_DEPTH,
    BY_QUOTE_VOLUME,
    BY_TRADE_COUNT,
    Ranking,
    format_decimal,
    format_utc,
    listed_symbols,
)
from binance_exporter.cycle.snapshot import Snapshot

NOT_AVAILABLE = "n/a"
NONE = "none"


def _lists(snapshot: Snapshot, name: str) -> list[tuple[str, Optional[Ranking]]]:
    """(quote asset, ranking or None while unknown) of each list called ``name``."""
    return [(listed.quote_asset, snapshot.ranking(listed)) for listed in snapshot.top_lists if listed.name == name]


def _tag(snapshot: Snapshot) -> Callable[[str], dict[str, str]]:
    """What a JSON row adds to say which list it is from: its quote asset,
    when either ranking has more than one list; nothing otherwise."""
    names = [top_list.name for top_list in snapshot.top_lists]
    several = any(names.count(name) > 1 for name in names)
    return lambda asset: {"quote_asset": asset} if several else {}


def _report_data(snapshot: Snapshot) -> dict[str, Any]:
    tag = _tag(snapshot)
    notionals, spreads = snapshot.notionals_this_cycle(), snapshot.spreads_this_cycle()
    return {
        "q1": [
            {**tag(asset), "rank": i, "symbol": t.symbol, "quote_volume": format_decimal(t.quote_volume)}
            for asset, ranking in _lists(snapshot, BY_QUOTE_VOLUME)
            for i, t in enumerate(ranking.tickers if ranking else (), start=1)
        ],
        "q2": [
            {**tag(asset), "rank": i, "symbol": t.symbol, "trades": t.trade_count}
            for asset, ranking in _lists(snapshot, BY_TRADE_COUNT)
            for i, t in enumerate(ranking.tickers if ranking else (), start=1)
        ],
        "q3": [
            {
                **tag(asset),
                "symbol": symbol,
                "bid_notional": format_decimal(notionals[symbol].bid) if symbol in notionals else None,
                "ask_notional": format_decimal(notionals[symbol].ask) if symbol in notionals else None,
            }
            for symbol, asset in listed_symbols(snapshot.rankings, BY_QUOTE_VOLUME).items()
        ],
        "q4": [
            {
                **tag(asset),
                "symbol": symbol,
                "spread": format_decimal(spreads[symbol].spread) if symbol in spreads else None,
            }
            for symbol, asset in listed_symbols(snapshot.rankings, BY_TRADE_COUNT).items()
        ],
    }


def render_report(snapshot: Snapshot, now: float, output_format: str = "text") -> str:
    """The report of Q1-Q4 from ``snapshot``, ending in a newline; values
    the latest cycle could not fetch are ``n/a`` (null in JSON)."""
    data = _report_data(snapshot)
    if output_format == "json":
        return json.dumps({"type": "report", "time": format_utc(now), **data}) + "\n"
    volume_lists, trade_lists = _lists(snapshot, BY_QUOTE_VOLUME), _lists(snapshot, BY_TRADE_COUNT)
    lines = [f"Binance spot market report, {format_utc(now)}", ""]
    for asset, ranking in volume_lists:
        lines.append(f"Q1  Top {asset}-quoted symbols by 24 h quote volume ({asset})")
        rows = [
            f"    {i}  {t.symbol:<14} {format_decimal(t.quote_volume):>24}"
            for i, t in enumerate(ranking.tickers if ranking else (), start=1)
        ]
        lines += _rows(rows, ranking is not None, f"no TRADING symbol is quoted in {asset}")
    for asset, ranking in trade_lists:
        lines.append(f"Q2  Top {asset}-quoted symbols by 24 h trade count")
        rows = [
            f"    {i}  {t.symbol:<14} {t.trade_count:>24}"
            for i, t in enumerate(ranking.tickers if ranking else (), start=1)
        ]
        lines += _rows(rows, ranking is not None, f"no TRADING symbol is quoted in {asset}")
    lines.append(f"Q3  Notional of the best {BOOK_DEPTH} price levels of each side (quote asset)")
    rows = [
        f"    {row['symbol']:<17} bid {row['bid_notional'] or NOT_AVAILABLE:>22}"
        f"   ask {row['ask_notional'] or NOT_AVAILABLE:>22}"
        for row in data["q3"]
    ]
    lines += _rows(rows, _known(volume_lists), "no symbol in the quote volume lists")
    lines.append("Q4  Spread: best ask - best bid (quote asset)")
    rows = [f"    {row['symbol']:<17} {row['spread'] or NOT_AVAILABLE:>24}" for row in data["q4"]]
    lines += _rows(rows, _known(trade_lists), "no symbol in the trade count lists")
    return "\n".join(lines) + "\n"


def _known(lists: list[tuple[str, Optional[Ranking]]]) -> bool:
    return any(ranking is not None for _, ranking in lists)


def _rows(lines: list[str], known: bool, why_none: str) -> list[str]:
    """A section's lines; ``n/a`` when its rankings are not known yet, and
    ``none`` with why when they are known and hold no symbol."""
    if not known:
        return [f"    {NOT_AVAILABLE}"]
    return lines or [f"    {NONE}: {why_none}"]


def render_spread_lines(snapshot: Snapshot, now: float, output_format: str = "text") -> list[str]:
    """Q5: for each symbol of the Q2 lists, the spread the latest cycle
    fetched and its absolute change from the previous one (``n/a`` when
    there is none)."""
    tag = _tag(snapshot)
    spreads = snapshot.spreads_this_cycle()
    lines = []
    for symbol, asset in listed_symbols(snapshot.rankings, BY_TRADE_COUNT).items():
        reading = spreads.get(symbol)
        value = format_decimal(reading.spread) if reading else None
        delta = format_decimal(reading.delta) if reading and reading.delta is not None else None
        if output_format == "json":
            lines.append(
                json.dumps(
                    {
                        "type": "spread",
                        "time": format_utc(now),
                        **tag(asset),
                        "symbol": symbol,
                        "spread": value,
                        "delta": delta,
                    }
                )
            )
        else:
            lines.append(
                f"{format_utc(now)}  {symbol:<14} spread {value or NOT_AVAILABLE:>16}"
                f"   delta {delta or NOT_AVAILABLE:>16}"
            )
    return lines
