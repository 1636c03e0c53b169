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
import logging
import os
from typing import Any, Callable, Optional, TextIO

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

logger = logging.getLogger(__name__)

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


# In stream mode, how many cycles the report waits for the books to sync.
REPORT_WAIT_CYCLES = 3


class ReportPrinter:
    """Prints the report once the first rankings are in and the live book
    of every symbol of the lists is in sync (for at most ``REPORT_WAIT_CYCLES`` cycles), then the
    Q5 lines of every cycle. A closed, full or broken stdout is logged
    once and printing stops; serving goes on."""

    def __init__(self, output_format: str, out: Optional[TextIO]):
        self.output_format = output_format
        self.out = out
        self.reported = False
        self._waited = 0  # cycles with rankings whose books were not all in sync
        if out is None:  # what Python makes of a stdout closed at start (>&-)
            self._stop_printing("it is closed")

    def publish(self, snapshot: Snapshot) -> None:
        """Prints what ``snapshot`` answers, as of the time its cycle read the market."""
        now = snapshot.read_at
        text = ""
        if not self.reported and snapshot.rankings:
            listed = {*listed_symbols(snapshot.rankings, BY_QUOTE_VOLUME)}
            listed.update(listed_symbols(snapshot.rankings, BY_TRADE_COUNT))
            books_ready = all(book.in_sync for book in snapshot.books if book.symbol in listed)
            books_ready = books_ready or self._waited >= REPORT_WAIT_CYCLES
            self._waited += 1
            if books_ready:
                text += render_report(snapshot, now, self.output_format)
                self.reported = True
        if self.reported:
            text += "".join(line + "\n" for line in render_spread_lines(snapshot, now, self.output_format))
        self._write(text)

    def print_report(self, snapshot: Snapshot) -> None:
        """Prints the report of ``snapshot``, whatever it holds."""
        self._write(render_report(snapshot, snapshot.read_at, self.output_format))

    def _write(self, text: str) -> None:
        if self.out is None or not text:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError) as exc:
            self._stop_printing(str(exc))

    def _stop_printing(self, why: str) -> None:
        logger.warning("cannot print the report to stdout (%s): nothing more is printed", why)
        out, self.out = self.out, None
        if out is None:
            return
        try:
            # What the stream still buffers would fail again at exit: let it go to /dev/null.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass  # not a file descriptor: nothing is flushed at exit
