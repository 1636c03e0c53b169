"""Market values and the arithmetic that answers the exporter's questions.

Everything here is pure: no I/O, no clock, no logging. Prices and
quantities are ``Decimal`` values built from Binance's strings, and every
sum and product is computed exactly (an inexact result raises instead of
rounding silently).

The definitions, as the README states them:

* Q1: the ``TOP_N`` symbols whose quote asset (from exchangeInfo, never the
  symbol's name) is BTC and whose status is TRADING, ordered by 24 h
  ``quoteVolume`` descending, ties broken by symbol name ascending.
* Q2: the same for USDT-quoted symbols, ordered by 24 h trade ``count``.
* Q3: per side, the sum of price x quantity over the best ``BOOK_DEPTH``
  price levels (highest bids, lowest asks), or all of them when fewer.
* Q4: spread = best ask - best bid.
* Q5: spread delta = |spread - previous spread| of the same symbol.

Q1 and Q2 are top lists: a ranking of the symbols of one quote asset. The
exporter keeps one Q1 list per asset of ``--quote-volume-assets`` (default
BTC) and one Q2 list per asset of ``--trade-count-assets`` (default USDT),
each ranked as above; Q3 is answered for every symbol of a Q1 list, Q4 and
Q5 for every symbol of a Q2 list.

The whole market (``--symbols all``): every symbol exchangeInfo lists as
TRADING. A shard (``--shard K/N``) owns the symbols whose CRC-32 of the
name (UTF-8), modulo N, is K - 1: a hash every process and platform
computes alike, so that N replicas split any set of symbols with no
overlap and no gap.
"""

from __future__ import annotations

import decimal
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable, Iterable, Mapping, Optional, Sequence

from binance_exporter.market.units import EXACT, LevelsInUnits

TOP_N = 5
ALL_SYMBOLS = "all"  # --symbols all: the whole market
MAX_SHARDS = 1000
BOOK_DEPTH = 200
BY_QUOTE_VOLUME = "quote_volume"  # Q1's ranking
BY_TRADE_COUNT = "trade_count"  # Q2's ranking
DEFAULT_QUOTE_VOLUME_ASSETS = ("BTC",)  # Q1's lists
DEFAULT_TRADE_COUNT_ASSETS = ("USDT",)  # Q2's lists
# Lists of one ranking at most: each holds up to --top symbols, each with its
# own series, and each Q1 list costs a depth request per symbol per cycle.
MAX_LISTS_PER_RANKING = 10
MAX_NAME_LENGTH = 40

PriceLevel = tuple[Decimal, Decimal]


def is_name(text: str) -> bool:
    """Whether ``text`` is a symbol or asset name as Binance spells them:
    upper-case letters and digits (Binance has listed names in other scripts
    too), never punctuation, space or control characters, at most
    ``MAX_NAME_LENGTH`` long."""
    return len(text) <= MAX_NAME_LENGTH and text.isalnum() and text == text.upper()


@dataclass(frozen=True)
class SymbolInfo:
    """A symbol's identity and trading status, from exchangeInfo."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str

    @property
    def trading(self) -> bool:
        """Whether the symbol is open for trading (status TRADING)."""
        return self.status == "TRADING"


@dataclass(frozen=True)
class Ticker24h:
    """A symbol's rolling 24 h statistics, from ticker/24hr."""

    symbol: str
    volume: Decimal
    quote_volume: Decimal
    trade_count: int


@dataclass(frozen=True)
class OrderBook:
    """An order book snapshot, from depth: levels as (price, quantity)."""

    symbol: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]


@dataclass(frozen=True)
class BookTop:
    """Best bid and ask of one symbol, from ticker/bookTicker."""

    symbol: str
    bid_price: Decimal
    bid_qty: Decimal
    ask_price: Decimal
    ask_qty: Decimal


@dataclass(frozen=True)
class TopList:
    """A top list to keep: the ranking (``BY_QUOTE_VOLUME`` for Q1,
    ``BY_TRADE_COUNT`` for Q2) and the quote asset whose symbols it ranks."""

    name: str
    quote_asset: str


def top_lists(
    quote_volume_assets: Sequence[str] = DEFAULT_QUOTE_VOLUME_ASSETS,
    trade_count_assets: Sequence[str] = DEFAULT_TRADE_COUNT_ASSETS,
) -> tuple[TopList, ...]:
    """The top lists in the order they are ranked, exported and printed:
    a Q1 list per quote asset of ``quote_volume_assets``, then a Q2 list
    per quote asset of ``trade_count_assets``, each in the order given."""
    return tuple(TopList(BY_QUOTE_VOLUME, asset) for asset in quote_volume_assets) + tuple(
        TopList(BY_TRADE_COUNT, asset) for asset in trade_count_assets
    )


DEFAULT_TOP_LISTS = top_lists()


@dataclass(frozen=True)
class Ranking:
    """One top list: which tickers lead by which measure, best first."""

    name: str
    quote_asset: str
    tickers: tuple[Ticker24h, ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        """The ranked symbols, best first."""
        return tuple(t.symbol for t in self.tickers)

    @property
    def top_list(self) -> TopList:
        """Which top list this is."""
        return TopList(self.name, self.quote_asset)


def top_symbols(
    tickers: Iterable[Ticker24h],
    symbols: Mapping[str, SymbolInfo],
    quote_asset: str,
    measure: Callable[[Ticker24h], Decimal | int],
    count: int = TOP_N,
) -> tuple[Ticker24h, ...]:
    """The ``count`` TRADING symbols quoted in ``quote_asset`` with the
    highest ``measure``, descending; ties by symbol name, ascending.

    Symbols missing from ``symbols`` (listed after the last exchangeInfo)
    are left out: their quote asset is unknown.
    """
    eligible = [
        ticker
        for ticker in tickers
        if (info := symbols.get(ticker.symbol)) is not None and info.trading and info.quote_asset == quote_asset
    ]
    eligible.sort(key=lambda ticker: (-measure(ticker), ticker.symbol))
    return tuple(eligible[:count])


def top_symbols_by_quote_volume(
    tickers: Iterable[Ticker24h],
    symbols: Mapping[str, SymbolInfo],
    quote_asset: str = DEFAULT_QUOTE_VOLUME_ASSETS[0],
    count: int = TOP_N,
) -> Ranking:
    """Q1: the top symbols of ``quote_asset`` by 24 h quote volume."""
    top = top_symbols(tickers, symbols, quote_asset, lambda t: t.quote_volume, count)
    return Ranking(BY_QUOTE_VOLUME, quote_asset, top)


def top_symbols_by_trade_count(
    tickers: Iterable[Ticker24h],
    symbols: Mapping[str, SymbolInfo],
    quote_asset: str = DEFAULT_TRADE_COUNT_ASSETS[0],
    count: int = TOP_N,
) -> Ranking:
    """Q2: the top symbols of ``quote_asset`` by 24 h trade count."""
    top = top_symbols(tickers, symbols, quote_asset, lambda t: t.trade_count, count)
    return Ranking(BY_TRADE_COUNT, quote_asset, top)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1 to ``count``) of ``count``: the symbols one
    replica keeps."""

    index: int = 1
    count: int = 1

    def owns(self, symbol: str) -> bool:
        """Whether ``symbol`` falls in this shard."""
        return self.count == 1 or zlib.crc32(symbol.encode()) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def of(cls, text: str) -> "Shard":
        """The shard ``K/N`` names; ValueError if it names none."""
        index, slash, count = text.partition("/")
        if not slash or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"must be K/N, shard K of N, with 1 <= K <= N <= {MAX_SHARDS}, e.g. 1/2, not {text!r}")
        shard = cls(int(index), int(count))
        if not 1 <= shard.index <= shard.count <= MAX_SHARDS:
            raise ValueError(f"must be K/N, shard K of N, with 1 <= K <= N <= {MAX_SHARDS}, e.g. 1/2, not {text!r}")
        return shard


WHOLE = Shard()  # one replica keeps every symbol


def rank_top_lists(
    tickers: Iterable[Ticker24h],
    symbols: Mapping[str, SymbolInfo],
    lists: Sequence[TopList] = DEFAULT_TOP_LISTS,
    count: int = TOP_N,
) -> tuple[Ranking, ...]:
    """Each of ``lists`` ranked from the same 24 h tickers, in order. A
    quote asset with no TRADING symbol has an empty list."""
    ranked = list(tickers)
    rank = {BY_QUOTE_VOLUME: top_symbols_by_quote_volume, BY_TRADE_COUNT: top_symbols_by_trade_count}
    return tuple(rank[top_list.name](ranked, symbols, top_list.quote_asset, count) for top_list in lists)


def listed_symbols(rankings: Iterable[Ranking], name: str) -> dict[str, str]:
    """The symbols of the rankings called ``name`` (Q1's or Q2's lists),
    each once, in list order, with the quote asset of the list that holds
    them: the symbols whose books (Q3) or spreads (Q4, Q5) are read."""
    listed: dict[str, str] = {}
    for ranking in rankings:
        if ranking.name == name:
            for symbol in ranking.symbols:
                listed.setdefault(symbol, ranking.quote_asset)
    return listed


def best_levels(levels: Sequence[PriceLevel], side: str, depth: int = BOOK_DEPTH) -> list[PriceLevel]:
    """The best ``depth`` levels of one side: highest bids or lowest asks.

    Binance sends each side best first, but the order is not trusted:
    the levels are sorted by price here.
    """
    if side not in ("bid", "ask"):
        raise ValueError(f"side must be 'bid' or 'ask', not {side!r}")
    return sorted(levels, key=lambda level: level[0], reverse=side == "bid")[:depth]


def side_notional(levels: Sequence[PriceLevel], side: str, depth: int = BOOK_DEPTH) -> Decimal:
    """Q3: sum of price x quantity over the best ``depth`` levels of a side
    (all of them when the side has fewer; 0 for an empty side)."""
    if isinstance(levels, LevelsInUnits):  # a live book's, best first: the same sum, on its integers
        return levels.notional(depth)
    with decimal.localcontext(EXACT):
        return sum(
            (price * qty for price, qty in best_levels(levels, side, depth)),
            Decimal(0),
        )


def spread(top: BookTop) -> Decimal:
    """Q4: best ask - best bid, exact."""
    with decimal.localcontext(EXACT):
        return top.ask_price - top.bid_price


def spread_delta(previous: Optional[Decimal], current: Decimal) -> Optional[Decimal]:
    """Q5: the absolute change of a spread, or None for a first value."""
    if previous is None:
        return None
    with decimal.localcontext(EXACT):
        return abs(current - previous)


def format_utc(when: float) -> str:
    """A Unix time as ``2026-11-21T04:45:44Z``."""
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_decimal(value: Decimal) -> str:
    """An exact decimal without exponent or trailing zeros: ``0.01``,
    ``12.5``, ``100``, ``0``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def printable(text: str, limit: int = 200) -> str:
    """``text`` made safe for one log or report line: runs of whitespace
    become one space, other control and unprintable characters (ESC, NUL,
    lone surrogates) are dropped, and it is cut to ``limit`` characters."""
    kept = "".join(ch if ch.isprintable() else " " if ch.isspace() else "" for ch in text[: 4 * limit])
    kept = " ".join(kept.split())
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"
