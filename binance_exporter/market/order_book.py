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
from decimal import Decimal
from typing import Iterable, Optional

from binance_exporter.market.definitions import BOOK_DEPTH, PriceLevel
from binance_exporter.market.microstructure import DEPTH_BANDS_BPS, BookView, band_edge, mid_price

# A side never holds more levels than this: past it the worst are let go
# and the horizon moves in to the deepest level kept.
MAX_LEVELS_PER_SIDE = 5000
ZERO = Decimal(0)


class BookSide:
    """One side of a book: quantity by price, and the prices in ascending
    order. Bids are best at the high end, asks at the low end."""

    __slots__ = ("is_bid", "horizon", "_quantities", "_prices")

    def __init__(self, is_bid: bool, levels: Iterable[PriceLevel] = (), horizon: Optional[Decimal] = None):
        self.is_bid = is_bid
        self.horizon = horizon  # the deepest price known; None: the side is known whole
        self._quantities: dict[Decimal, Decimal] = {}
        for price, qty in levels:
            if qty != ZERO and self._inside(price):
                self._quantities[price] = qty
        self._prices = sorted(self._quantities)
        self._cap()

    def __len__(self) -> int:
        return len(self._prices)

    def _inside(self, price: Decimal) -> bool:
        """Whether ``price`` is at or before the horizon."""
        if self.horizon is None:
            return True
        return price >= self.horizon if self.is_bid else price <= self.horizon

    def set(self, price: Decimal, qty: Decimal) -> None:
        """Sets a level's quantity; 0 removes the level (removing a level
        the book does not hold is normal). Past the horizon: ignored."""
        horizon = self.horizon
        if horizon is not None and (price < horizon if self.is_bid else price > horizon):
            return
        quantities = self._quantities
        if qty == ZERO:
            if quantities.pop(price, None) is not None:
                prices = self._prices
                del prices[bisect.bisect_left(prices, price)]
            return
        if price not in quantities:
            bisect.insort(self._prices, price)
            quantities[price] = qty
            if len(quantities) > MAX_LEVELS_PER_SIDE:
                self._cap()
        else:
            quantities[price] = qty

    def _cap(self) -> None:
        excess = len(self._prices) - MAX_LEVELS_PER_SIDE
        if excess <= 0:
            return
        worst = self._prices[:excess] if self.is_bid else self._prices[-excess:]
        for price in worst:
            del self._quantities[price]
        self._prices = self._prices[excess:] if self.is_bid else self._prices[:-excess]
        self.horizon = self._prices[0] if self.is_bid else self._prices[-1]

    def best(self) -> Optional[PriceLevel]:
        """The best level, or None for an empty side."""
        if not self._prices:
            return None
        price = self._prices[-1] if self.is_bid else self._prices[0]
        return price, self._quantities[price]

    def top(self, count: int) -> list[PriceLevel]:
        """The best ``count`` levels (all when fewer), best first."""
        prices = self._prices[: -count - 1 : -1] if self.is_bid else self._prices[:count]
        quantities = self._quantities
        return [(price, quantities[price]) for price in prices]

    def count_within(self, price: Decimal) -> int:
        """How many levels are at ``price`` or better (at or above it for
        bids, at or below it for asks)."""
        if self.is_bid:
            return len(self._prices) - bisect.bisect_left(self._prices, price)
        return bisect.bisect_right(self._prices, price)

    def exact(self, depth: int = BOOK_DEPTH) -> bool:
        """Whether the best ``depth`` levels are known exactly: the side is
        known whole, or at least ``depth`` levels lie inside its horizon
        (every level it holds does: updates past it are never kept)."""
        return self.horizon is None or len(self._prices) >= depth


class LocalBook:
    """A book built from a snapshot (``update_id`` its ``lastUpdateId``)
    and kept by applying diff events in order."""

    __slots__ = ("update_id", "bids", "asks")

    def __init__(self, update_id: int, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], limit: int):
        bids, asks = list(bids), list(asks)
        self.update_id = update_id
        self.bids = BookSide(True, bids, _horizon(bids, limit, max_price=False))
        self.asks = BookSide(False, asks, _horizon(asks, limit, max_price=True))

    def apply(self, last_id: int, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        """Applies one event's levels; the book is then at ``last_id``."""
        for price, qty in bids:
            self.bids.set(price, qty)
        for price, qty in asks:
            self.asks.set(price, qty)
        self.update_id = last_id

    def crossed(self) -> bool:
        """Whether the best bid is at or above the best ask: a book that
        cannot be right."""
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def exact(self, depth: int = BOOK_DEPTH) -> bool:
        """Whether the best ``depth`` levels of both sides are known exactly."""
        return self.bids.exact(depth) and self.asks.exact(depth)

    def view(self, depth: int = BOOK_DEPTH) -> BookView:
        """A copy of each side's best levels, out to the widest depth band
        of the mid (at least the best ``depth``), and the horizons."""
        mid = mid_price(BookView(tuple(self.bids.top(1)), tuple(self.asks.top(1))))
        return BookView(
            tuple(self.bids.top(levels_to_read(self.bids, mid, depth))),
            tuple(self.asks.top(levels_to_read(self.asks, mid, depth))),
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
