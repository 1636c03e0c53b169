"""Parsing and validation of Binance's JSON responses into market values.

Every parser either returns values that are safe to compute with or raises
``MarketDataError``: a response of the wrong shape, a missing field or a
string that is not a plain decimal number never reaches the arithmetic,
and a response is never half-applied.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable, Optional, TypeVar

from binance_exporter.binance.depth_sync import DepthEvent, DepthSnapshot
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import (
    BookTop,
    OrderBook,
    PriceLevel,
    SymbolInfo,
    Ticker24h,
    is_name,
    printable,
)
from binance_exporter.market.microstructure import AggTrade
from binance_exporter.market.units import MAX_UNITS, UNITS_EXPONENT, UnitLevel, from_units

# Binance formats numbers as plain, unsigned decimals ("0.00001234") with at
# most 8 decimals and far fewer than 20 integer digits. Exponents, signs,
# NaN, Infinity, surrounding space and longer numbers are rejected: with at
# most 20 + 20 digits, every product and sum the exporter computes stays
# exact within the EXACT context, and every value fits a float.
_DECIMAL = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?")
# A price or quantity a live book keeps: exact in 1e-8 units, as Binance's
# spot numbers are, and at most ``MAX_UNITS`` of them.
_IN_UNITS = re.compile(r"[0-9]{1,20}(\.[0-9]{0,8}0*)?")
_MAX_IN_UNITS = from_units(MAX_UNITS)
# Counts are 64-bit integers at Binance.
MAX_COUNT = 2**63 - 1
_Parsed = TypeVar("_Parsed")


def _shown(value: Any) -> str:
    """A short, printable account of a bad value for an error message."""
    plain = isinstance(value, (str, int, float, type(None)))
    return printable(repr(value) if plain else f"a JSON {type(value).__name__}", 60)


def _field(record: Any, name: str, what: str) -> Any:
    if not isinstance(record, dict):
        raise MarketDataError(f"{what}: expected an object, got {type(record).__name__}")
    if name not in record:
        raise MarketDataError(f"{what}: field {name!r} is missing")
    return record[name]


def _text(record: Any, name: str, what: str) -> str:
    value = _field(record, name, what)
    if not isinstance(value, str) or not value:
        raise MarketDataError(f"{what}: field {name!r} is not a non-empty string: {_shown(value)}")
    return value


def _name(record: Any, name: str, what: str) -> str:
    """A symbol or asset name (``market.is_name``)."""
    value = _text(record, name, what)
    if not is_name(value):
        raise MarketDataError(f"{what}: field {name!r} is not a symbol or asset name: {_shown(value)}")
    return value


def parse_decimal(value: Any, what: str) -> Decimal:
    """A non-negative ``Decimal`` from one of Binance's number strings."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise MarketDataError(f"{what}: not a decimal number string: {_shown(value)}")
    return Decimal(value)


def _decimal_field(record: Any, name: str, what: str) -> Decimal:
    return parse_decimal(_field(record, name, what), f"{what} {name}")


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise MarketDataError(f"{what}: expected a list, got {type(value).__name__}")
    return value


def _each(records: list, parse: Callable[[Any], _Parsed]) -> tuple[list[_Parsed], list[MarketDataError]]:
    """Every record parsed, and the errors of those rejected: a bad record
    costs only its own symbol."""
    parsed: list[_Parsed] = []
    rejected: list[MarketDataError] = []
    for record in records:
        try:
            parsed.append(parse(record))
        except MarketDataError as exc:
            rejected.append(exc)
    return parsed, rejected


def parse_symbol_info(record: Any) -> SymbolInfo:
    """One symbol's identity and status from an ``exchangeInfo`` record."""
    what = "exchangeInfo symbol"
    return SymbolInfo(
        symbol=_name(record, "symbol", what),
        status=_text(record, "status", what),
        base_asset=_name(record, "baseAsset", what),
        quote_asset=_name(record, "quoteAsset", what),
    )


def parse_exchange_info(data: Any) -> tuple[dict[str, SymbolInfo], list[MarketDataError]]:
    """Symbols by name, from ``GET /api/v3/exchangeInfo``, and the errors
    of the records that were rejected."""
    infos, rejected = _each(_list(_field(data, "symbols", "exchangeInfo"), "exchangeInfo symbols"), parse_symbol_info)
    if not infos:
        raise MarketDataError("exchangeInfo: no valid symbols" + (f"; {rejected[0]}" if rejected else ""))
    return {info.symbol: info for info in infos}, rejected


def parse_ticker(record: Any) -> Ticker24h:
    """One symbol's 24 h statistics from a ``ticker/24hr`` record."""
    symbol = _name(record, "symbol", "ticker/24hr")
    what = f"ticker/24hr {symbol}"
    count = _field(record, "count", what)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
        raise MarketDataError(f"{what}: count is not a 64-bit non-negative integer: {_shown(count)}")
    return Ticker24h(
        symbol=symbol,
        volume=_decimal_field(record, "volume", what),
        quote_volume=_decimal_field(record, "quoteVolume", what),
        trade_count=count,
    )


def parse_tickers(data: Any) -> tuple[list[Ticker24h], list[MarketDataError]]:
    """All symbols' 24 h statistics from an unfiltered ``GET
    /api/v3/ticker/24hr``, and the errors of the records that were rejected."""
    tickers, rejected = _each(_list(data, "ticker/24hr"), parse_ticker)
    if not tickers:
        raise MarketDataError("ticker/24hr: no valid symbols" + (f"; {rejected[0]}" if rejected else ""))
    return tickers, rejected


def _levels(data: Any, side: str, what: str) -> tuple[PriceLevel, ...]:
    levels = []
    prices = set()
    for level in _list(_field(data, side, what), f"{what} {side}"):
        if not isinstance(level, list) or len(level) != 2:
            raise MarketDataError(f"{what}: a {side} level is not [price, quantity]: {_shown(level)}")
        price = parse_decimal(level[0], f"{what} {side} price")
        qty = parse_decimal(level[1], f"{what} {side} quantity")
        if price == 0 or qty == 0:
            raise MarketDataError(f"{what}: a {side} level has a zero price or quantity: {price}, {qty}")
        if price in prices:
            raise MarketDataError(f"{what}: two {side} levels at price {price}")
        prices.add(price)
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
    return _book_top(record, ("symbol", "bidPrice", "bidQty", "askPrice", "askQty"), "bookTicker")


def parse_book_ticker_event(data: Any) -> tuple[int, BookTop]:
    """A ``<symbol>@bookTicker`` event: the book's update id (``u``) and
    its best bid and ask (``b``, ``B``, ``a``, ``A``), rejected as a
    ``ticker/bookTicker`` record is."""
    top = _book_top(data, ("s", "b", "B", "a", "A"), "bookTicker event")
    return _update_id(data, "u", f"bookTicker event {top.symbol}"), top


def _book_top(record: Any, names: tuple[str, str, str, str, str], what: str) -> BookTop:
    symbol = _name(record, names[0], what)
    what = f"{what} {symbol}"
    top = BookTop(symbol, *(_decimal_field(record, name, what) for name in names[1:]))
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
    tops, rejected = _each(_list(data, "bookTicker"), parse_book_top)
    return {top.symbol: top for top in tops}, rejected


def _update_id(record: Any, name: str, what: str) -> int:
    value = _field(record, name, what)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise MarketDataError(f"{what}: {name} is not a 64-bit non-negative integer: {_shown(value)}")
    return value


def parse_depth_snapshot(symbol: str, data: Any, limit: int) -> DepthSnapshot:
    """The book a local order book starts from, from ``GET
    /api/v3/depth?limit=...``: its ``lastUpdateId`` and levels. A crossed
    book is rejected; an empty side is a thin market's, and kept."""
    what = f"depth {symbol}"
    snapshot = DepthSnapshot(
        _update_id(data, "lastUpdateId", what), _levels(data, "bids", what), _levels(data, "asks", what), limit
    )
    for side, levels in (("bids", snapshot.bids), ("asks", snapshot.asks)):
        for level, (price, qty) in zip(data[side], levels):
            if not _IN_UNITS.fullmatch(level[0]) or not _IN_UNITS.fullmatch(level[1]):
                raise MarketDataError(f"{what}: a {side[:-1]} level has more than 8 decimals: {_shown(level)}")
            if price > _MAX_IN_UNITS or qty > _MAX_IN_UNITS:
                raise MarketDataError(f"{what}: a {side[:-1]} level is past Binance's 64-bit range: {_shown(level)}")
    if snapshot.bids and snapshot.asks:
        best_bid, best_ask = max(p for p, _ in snapshot.bids), min(p for p, _ in snapshot.asks)
        if best_bid >= best_ask:
            raise MarketDataError(f"{what}: crossed book, best bid {best_bid} >= best ask {best_ask}")
    return snapshot


# A diff event's number, as a live book keeps it: 1-20 digits, and at most
# 8 decimals that are not zeros (of at most 20): the same numbers as
# ``_DECIMAL`` and ``_IN_UNITS`` together.
_EVENT_NUMBER = re.compile(r"([0-9]{1,20})(?:\.([0-9]{1,8})0{0,12})?")
# Diff events' numbers in 1e-8 units, by their text: a book's prices and
# common quantities recur in event after event, and a cached one costs
# neither the check nor the conversion again. Cleared whole when full.
_EVENT_UNITS: dict[str, int] = {}
MAX_EVENT_NUMBERS = 200_000


def _event_units(text: Any) -> Optional[int]:
    """The number an event's text stands for in 1e-8 units (an exact
    integer of at most ``MAX_UNITS``), None if it is not one."""
    if type(text) is not str:  # pylint: disable=unidiomatic-typecheck  # exactly str: the cache's keys
        return None
    units = _EVENT_UNITS.get(text)
    if units is None:
        match = _EVENT_NUMBER.fullmatch(text)
        if match is None:
            return None
        whole, fraction = match.groups()
        units = int(whole + (fraction or "").ljust(-UNITS_EXPONENT, "0"))
        if units > MAX_UNITS:
            return None
        if len(_EVENT_UNITS) >= MAX_EVENT_NUMBERS:
            _EVENT_UNITS.clear()
        _EVENT_UNITS[text] = units
    return units


def _levels_in_units(levels: Any) -> Optional[tuple[UnitLevel, ...]]:
    """An event's side as JSON decodes it, in 1e-8 units (a quantity of 0
    removes the level); None if it is not a list of [price, quantity]
    number strings a live book keeps."""
    if type(levels) is not list:  # pylint: disable=unidiomatic-typecheck  # as JSON decodes it
        return None
    cached = _EVENT_UNITS.get
    changed = []
    for level in levels:
        if type(level) is not list or len(level) != 2:  # pylint: disable=unidiomatic-typecheck
            return None
        price, qty = level
        if type(price) is not str or type(qty) is not str:  # pylint: disable=unidiomatic-typecheck
            return None
        price_units, qty_units = cached(price), cached(qty)  # most are numbers seen before
        if price_units is None and (price_units := _event_units(price)) is None:
            return None
        if qty_units is None and (qty_units := _event_units(qty)) is None:
            return None
        changed.append((price_units, qty_units))
    return tuple(changed)


def _changed_levels(data: Any, side: str, what: str) -> tuple[UnitLevel, ...]:
    """An event's side (``b`` or ``a``) in 1e-8 units, or the error that says what is wrong with it."""
    levels = _field(data, side, what)
    changed = _levels_in_units(levels)
    if changed is not None:
        return changed
    if type(levels) is not list:  # pylint: disable=unidiomatic-typecheck  # as JSON decodes it
        raise MarketDataError(f"{what}: {side} is not a list")
    level = next(level for level in levels if _levels_in_units([level]) is None)
    if type(level) is not list or len(level) != 2:  # pylint: disable=unidiomatic-typecheck
        raise MarketDataError(f"{what}: a {side} level is not [price, quantity]: {_shown(level)}")
    raise MarketDataError(
        f"{what}: a {side} level is not two decimal number strings within Binance's range: {_shown(level)}"
    )


def parse_depth_event(data: Any) -> DepthEvent:
    """A ``<symbol>@depth@100ms`` event (``depthUpdate``). The usual event
    is read in one go (15,000 a second at the whole market's peak); one
    that is not is read field by field to say what is wrong with it."""
    if type(data) is dict and data.get("e") == "depthUpdate":  # pylint: disable=unidiomatic-typecheck
        symbol, first, last, time_ms = data.get("s"), data.get("U"), data.get("u"), data.get("E")
        if (
            type(first) is type(last) is type(time_ms) is int  # pylint: disable=unidiomatic-typecheck  # not bool
            and 0 <= first <= last <= MAX_COUNT
            and 0 <= time_ms <= MAX_COUNT
            and type(symbol) is str  # pylint: disable=unidiomatic-typecheck
            and is_name(symbol)
        ):
            bids, asks = _levels_in_units(data.get("b")), _levels_in_units(data.get("a"))
            if bids is not None and asks is not None:
                return DepthEvent(symbol, first, last, time_ms, bids, asks)
    return _checked_depth_event(data)


def _checked_depth_event(data: Any) -> DepthEvent:
    if _field(data, "e", "depth event") != "depthUpdate":
        raise MarketDataError(f"depth event: e is not depthUpdate: {_shown(data['e'])}")
    symbol = _name(data, "s", "depth event")
    what = f"depth event {symbol}"
    first, last = _update_id(data, "U", what), _update_id(data, "u", what)
    if first > last:
        raise MarketDataError(f"{what}: U {first} is after u {last}")
    return DepthEvent(
        symbol,
        first,
        last,
        _update_id(data, "E", what),
        _changed_levels(data, "b", what),
        _changed_levels(data, "a", what),
    )


def parse_rolling_ticker(record: Any) -> Ticker24h:
    """One symbol's 24 h statistics from a ``!ticker_1d@arr`` record
    (``v`` volume, ``q`` quote volume, ``n`` trade count)."""
    symbol = _name(record, "s", "1dTicker")
    what = f"1dTicker {symbol}"
    return Ticker24h(
        symbol=symbol,
        volume=_decimal_field(record, "v", what),
        quote_volume=_decimal_field(record, "q", what),
        trade_count=_update_id(record, "n", what),
    )


def parse_rolling_tickers(data: Any) -> tuple[list[Ticker24h], list[MarketDataError]]:
    """The 24 h statistics of the symbols that changed, from one
    ``!ticker_1d@arr`` message, and the errors of the records rejected."""
    return _each(_list(data, "1dTicker array"), parse_rolling_ticker)


def _flag(record: Any, name: str, what: str) -> bool:
    value = _field(record, name, what)
    if not isinstance(value, bool):
        raise MarketDataError(f"{what}: {name} is not true or false: {_shown(value)}")
    return value


def parse_agg_trade(record: Any, what: str = "aggTrade") -> AggTrade:
    """One aggregate trade, from ``GET /api/v3/aggTrades`` or (with its
    ``e``, ``E`` and ``s`` besides) a ``<symbol>@aggTrade`` event."""
    first, last = _update_id(record, "f", what), _update_id(record, "l", what)
    if first > last:
        raise MarketDataError(f"{what}: first trade id f {first} is after the last, l {last}")
    price, qty = _decimal_field(record, "p", what), _decimal_field(record, "q", what)
    if price == 0 or qty == 0:
        raise MarketDataError(f"{what}: a trade of price {price} and quantity {qty}")
    return AggTrade(
        agg_id=_update_id(record, "a", what),
        price=price,
        qty=qty,
        first_id=first,
        last_id=last,
        time_ms=_update_id(record, "T", what),
        buyer_maker=_flag(record, "m", what),
    )


def parse_agg_trade_event(data: Any) -> tuple[str, AggTrade]:
    """A ``<symbol>@aggTrade`` event: its symbol and trade."""
    if _field(data, "e", "aggTrade event") != "aggTrade":
        raise MarketDataError(f"aggTrade event: e is not aggTrade: {_shown(data['e'])}")
    symbol = _name(data, "s", "aggTrade event")
    return symbol, parse_agg_trade(data, f"aggTrade event {symbol}")


def parse_agg_trades(symbol: str, data: Any) -> list[AggTrade]:
    """The answer of ``GET /api/v3/aggTrades``: every trade, or an error
    for the whole answer (a backfill half-counted would hide which ids
    are missing)."""
    what = f"aggTrades {symbol}"
    return [parse_agg_trade(record, what) for record in _list(data, what)]
