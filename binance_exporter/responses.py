"""Parsing and validation of Binance's JSON responses into market values.

Every parser either returns values that are safe to compute with or raises
``MarketDataError``: a response of the wrong shape, a missing field or a
string that is not a plain decimal number never reaches the arithmetic,
and a response is never half-applied.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from binance_exporter.errors import MarketDataError
from binance_exporter.market import BookTop, OrderBook, PriceLevel, SymbolInfo, Ticker24h

# Binance formats numbers as plain decimals ("0.00001234"); exponents,
# NaN, Infinity, signs other than "-" and surrounding space are rejected.
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _field(record: Any, name: str, what: str) -> Any:
    if not isinstance(record, dict):
        raise MarketDataError(f"{what}: expected an object, got {type(record).__name__}")
    if name not in record:
        raise MarketDataError(f"{what}: field {name!r} is missing")
    return record[name]


def _text(record: Any, name: str, what: str) -> str:
    value = _field(record, name, what)
    if not isinstance(value, str) or not value:
        raise MarketDataError(f"{what}: field {name!r} is not a non-empty string: {value!r}")
    return value


def parse_decimal(value: Any, what: str) -> Decimal:
    """A non-negative ``Decimal`` from one of Binance's number strings."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise MarketDataError(f"{what}: not a decimal number string: {value!r}")
    number = Decimal(value)
    if number < 0:
        raise MarketDataError(f"{what}: negative: {value}")
    return number


def _decimal_field(record: Any, name: str, what: str) -> Decimal:
    return parse_decimal(_field(record, name, what), f"{what} {name}")


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise MarketDataError(f"{what}: expected a list, got {type(value).__name__}")
    return value


def parse_exchange_info(data: Any) -> dict[str, SymbolInfo]:
    """Symbols by name, from ``GET /api/v3/exchangeInfo``."""
    symbols: dict[str, SymbolInfo] = {}
    for record in _list(_field(data, "symbols", "exchangeInfo"), "exchangeInfo symbols"):
        info = SymbolInfo(
            symbol=_text(record, "symbol", "exchangeInfo symbol"),
            status=_text(record, "status", "exchangeInfo symbol"),
            base_asset=_text(record, "baseAsset", "exchangeInfo symbol"),
            quote_asset=_text(record, "quoteAsset", "exchangeInfo symbol"),
        )
        symbols[info.symbol] = info
    if not symbols:
        raise MarketDataError("exchangeInfo: no symbols")
    return symbols


def parse_ticker(record: Any) -> Ticker24h:
    """One symbol's 24 h statistics from a ``ticker/24hr`` record."""
    symbol = _text(record, "symbol", "ticker/24hr")
    what = f"ticker/24hr {symbol}"
    count = _field(record, "count", what)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise MarketDataError(f"{what}: count is not a non-negative integer: {count!r}")
    return Ticker24h(
        symbol=symbol,
        volume=_decimal_field(record, "volume", what),
        quote_volume=_decimal_field(record, "quoteVolume", what),
        trade_count=count,
    )


def parse_tickers(data: Any) -> list[Ticker24h]:
    """All symbols' 24 h statistics from an unfiltered ``GET /api/v3/ticker/24hr``."""
    tickers = [parse_ticker(record) for record in _list(data, "ticker/24hr")]
    if not tickers:
        raise MarketDataError("ticker/24hr: no symbols")
    return tickers


def _levels(data: Any, side: str, what: str) -> tuple[PriceLevel, ...]:
    levels = []
    for level in _list(_field(data, side, what), f"{what} {side}"):
        if not isinstance(level, list) or len(level) != 2:
            raise MarketDataError(f"{what}: a {side} level is not [price, quantity]: {level!r}")
        price = parse_decimal(level[0], f"{what} {side} price")
        qty = parse_decimal(level[1], f"{what} {side} quantity")
        if price == 0 or qty == 0:
            raise MarketDataError(f"{what}: a {side} level has a zero price or quantity: {level!r}")
        levels.append((price, qty))
    return tuple(levels)


def parse_order_book(symbol: str, data: Any) -> OrderBook:
    """An order book from ``GET /api/v3/depth``.

    A book with an empty side, or crossed (best bid >= best ask), is not a
    book the exporter can trust for a symbol in a top list: rejected.
    """
    what = f"depth {symbol}"
    book = OrderBook(symbol, _levels(data, "bids", what), _levels(data, "asks", what))
    if not book.bids or not book.asks:
        raise MarketDataError(f"{what}: a side of the book is empty")
    best_bid, best_ask = max(price for price, _ in book.bids), min(price for price, _ in book.asks)
    if best_bid >= best_ask:
        raise MarketDataError(f"{what}: crossed book, best bid {best_bid} >= best ask {best_ask}")
    return book


def parse_book_top(record: Any) -> BookTop:
    """One symbol's best bid and ask from a ``ticker/bookTicker`` record.

    A record with an empty side (Binance sends price 0) or a crossed book
    (bid >= ask) has no meaningful spread and is rejected.
    """
    symbol = _text(record, "symbol", "bookTicker")
    what = f"bookTicker {symbol}"
    top = BookTop(
        symbol=symbol,
        bid_price=_decimal_field(record, "bidPrice", what),
        bid_qty=_decimal_field(record, "bidQty", what),
        ask_price=_decimal_field(record, "askPrice", what),
        ask_qty=_decimal_field(record, "askQty", what),
    )
    if top.bid_price == 0 or top.ask_price == 0:
        raise MarketDataError(f"{what}: one side of the book is empty")
    if top.bid_price >= top.ask_price:
        raise MarketDataError(f"{what}: crossed book, bid {top.bid_price} >= ask {top.ask_price}")
    return top


def parse_book_tops(data: Any) -> tuple[dict[str, BookTop], list[MarketDataError]]:
    """Best bid and ask by symbol from ``GET /api/v3/ticker/bookTicker``,
    and the errors of the records that were rejected.

    A bad record costs only its own symbol; a response that is not a list
    raises.
    """
    tops: dict[str, BookTop] = {}
    rejected: list[MarketDataError] = []
    for record in _list(data, "bookTicker"):
        try:
            top = parse_book_top(record)
        except MarketDataError as exc:
            rejected.append(exc)
        else:
            tops[top.symbol] = top
    return tops, rejected
