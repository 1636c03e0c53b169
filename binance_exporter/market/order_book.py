"""A local order book kept from a snapshot and diff events: both sides'
price levels, exact, and what the snapshot it was built from can vouch for.

The horizon: a snapshot of ``limit`` levels says nothing about prices past
its deepest level, and a level out there that never changes never arrives
in the stream. So a side whose snapshot was full (``limit`` levels) has a
horizon, its deepest snapshot price: updates beyond it are ignored, and the
side is exact only over the levels inside it. A side whose snapshot held
fewer levels than ``limit`` held all of it and has no horizon. The best
``depth`` levels of a side are exact while at least ``depth`` levels lie
inside its horizon (``exact``); when fewer do (the price ran, a sweep ate
the side), the book must be taken again.

Pure code: no I/O, no clock, no logging.
"""

from __future__ import annotations

import bisect
import math
from array import array
from decimal import Decimal
from typing import Iterable, Optional

from binance_exporter.market.definitions import BOOK_DEPTH, PriceLevel
from binance_exporter.market.microstructure import DEPTH_BANDS_BPS, BookView, band_edge, mid_price
from binance_exporter.market.units import (
    UNITS_ARRAY,
    UNITS_EXPONENT,
    LevelsInUnits,
    UnitLevel,
    from_units,
    to_units,
)

# A side never holds more levels than this: past it the worst are let go
# and the horizon moves in to the deepest level kept.
MAX_LEVELS_PER_SIDE = 5000
ZERO = Decimal(0)
# A side keeps its prices and quantities in 1e-8 units (``units``), in two
# arrays of 64-bit integers: no dict, no Decimal or int objects (16 bytes a
# level instead of 270 as Decimals in a dict, for the whole market's 1,500
# books), and nothing the garbage collector has to walk through.


class BookSide:
    """One side of a book: its prices in ascending order, and the quantity
    at each, both in 1e-8 units. Bids are best at the high end, asks at
    the low end."""

    __slots__ = ("is_bid", "_horizon", "_prices", "_quantities")

    def __init__(self, is_bid: bool, levels: Iterable[PriceLevel] = (), horizon: Optional[Decimal] = None):
        self.is_bid = is_bid
        self._horizon = None if horizon is None else to_units(horizon)  # the deepest price known; None: whole
        known = {}
        for price, qty in levels:
            units = to_units(price)
            if qty != ZERO and self._inside(units):
                known[units] = to_units(qty)
        self._prices = array(UNITS_ARRAY, sorted(known))
        self._quantities = array(UNITS_ARRAY, [known[price] for price in self._prices])
        self._cap()

    def __len__(self) -> int:
        return len(self._prices)

    @property
    def horizon(self) -> Optional[Decimal]:
        """The deepest price the side knows; None: the side is known whole."""
        return None if self._horizon is None else from_units(self._horizon)

    def _inside(self, units: int) -> bool:
        """Whether the price of ``units`` is at or before the horizon."""
        horizon = self._horizon
        if horizon is None:
            return True
        return units >= horizon if self.is_bid else units <= horizon

    def set(self, price: int, qty: int) -> None:
        """Sets a level's quantity, both in 1e-8 units (at most
        ``MAX_UNITS``); 0 removes the level (removing a level the book does
        not hold is normal). Past the horizon: ignored."""
        horizon = self._horizon
        if horizon is not None and (price < horizon if self.is_bid else price > horizon):
            return
        prices = self._prices
        index = bisect.bisect_left(prices, price)
        if index < len(prices) and prices[index] == price:
            if qty:
                self._quantities[index] = qty
            else:
                del prices[index], self._quantities[index]
            return
        if qty:
            prices.insert(index, price)
            self._quantities.insert(index, qty)
            if len(prices) > MAX_LEVELS_PER_SIDE:
                self._cap()

    def _cap(self) -> None:
        excess = len(self._prices) - MAX_LEVELS_PER_SIDE
        if excess <= 0:
            return
        if self.is_bid:
            del self._prices[:excess], self._quantities[:excess]
            self._horizon = self._prices[0]
        else:
            del self._prices[-excess:], self._quantities[-excess:]
            self._horizon = self._prices[-1]

    def best(self) -> Optional[PriceLevel]:
        """The best level, or None for an empty side."""
        if not self._prices:
            return None
        index = -1 if self.is_bid else 0
        return from_units(self._prices[index]), from_units(self._quantities[index])

    def best_units(self) -> float:
        """The best price in 1e-8 units: minus infinity for an empty bid
        side, plus infinity for an empty ask side (nothing crosses them)."""
        if not self._prices:
            return -math.inf if self.is_bid else math.inf
        return self._prices[-1] if self.is_bid else self._prices[0]

    def top(self, count: int) -> list[PriceLevel]:
        """The best ``count`` levels (all when fewer), best first."""
        return list(self.copy_top(count))

    def copy_top(self, count: int) -> "LevelsInUnits":
        """A copy of the best ``count`` levels (all when fewer), best first,
        made as Decimals only when first read: copying is quick, and the
        reader's thread pays for the Decimals."""
        if self.is_bid:
            return LevelsInUnits(True, self._prices[: -count - 1 : -1], self._quantities[: -count - 1 : -1])
        return LevelsInUnits(False, self._prices[:count], self._quantities[:count])

    def count_within(self, price: Decimal) -> int:
        """How many levels are at ``price`` or better (at or above it for
        bids, at or below it for asks)."""
        if self.is_bid:
            return len(self._prices) - bisect.bisect_left(self._prices, price.scaleb(-UNITS_EXPONENT))
        return bisect.bisect_right(self._prices, price.scaleb(-UNITS_EXPONENT))

    def exact(self, depth: int = BOOK_DEPTH) -> bool:
        """Whether the best ``depth`` levels are known exactly: the side is
        known whole, or at least ``depth`` levels lie inside its horizon
        (every level it holds does: updates past it are never kept)."""
        return self._horizon is None or len(self._prices) >= depth


class LocalBook:
    """A book built from a snapshot (``update_id`` its ``lastUpdateId``)
    and kept by applying diff events in order."""

    __slots__ = ("update_id", "bids", "asks")

    def __init__(self, update_id: int, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], limit: int):
        bids, asks = list(bids), list(asks)
        self.update_id = update_id
        self.bids = BookSide(True, bids, _horizon(bids, limit, max_price=False))
        self.asks = BookSide(False, asks, _horizon(asks, limit, max_price=True))

    def apply(self, last_id: int, bids: Iterable[UnitLevel], asks: Iterable[UnitLevel]) -> None:
        """Applies one event's levels (in 1e-8 units); the book is then at ``last_id``."""
        for price, qty in bids:
            self.bids.set(price, qty)
        for price, qty in asks:
            self.asks.set(price, qty)
        self.update_id = last_id

    def crossed(self) -> bool:
        """Whether the best bid is at or above the best ask: a book that
        cannot be right."""
        return self.bids.best_units() >= self.asks.best_units()

    def exact(self, depth: int = BOOK_DEPTH) -> bool:
        """Whether the best ``depth`` levels of both sides are known exactly."""
        return self.bids.exact(depth) and self.asks.exact(depth)

    def view(self, depth: int = BOOK_DEPTH) -> BookView:
        """A copy of each side's best levels, out to the widest depth band
        of the mid (at least the best ``depth``), and the horizons."""
        mid = mid_price(BookView(tuple(self.bids.top(1)), tuple(self.asks.top(1))))
        return BookView(
            self.bids.copy_top(levels_to_read(self.bids, mid, depth)),
            self.asks.copy_top(levels_to_read(self.asks, mid, depth)),
            self.bids.horizon,
            self.asks.horizon,
        )


def levels_to_read(side: BookSide, mid: Optional[Decimal], depth: int) -> int:
    """How many of a side's best levels a reading copies: the best
    ``depth``, or all within the widest depth band of ``mid`` if more."""
    if mid is None:
        return depth
    return max(depth, side.count_within(band_edge(mid, DEPTH_BANDS_BPS[-1], side.is_bid)))


def _horizon(levels: list[PriceLevel], limit: int, max_price: bool) -> Optional[Decimal]:
    """The deepest price of a full snapshot side, None for one that held
    the whole side (fewer levels than ``limit``)."""
    if len(levels) < limit:
        return None
    prices = [price for price, _ in levels]
    return max(prices) if max_price else min(prices)
