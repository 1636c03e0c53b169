"""Market microstructure and trade flow: what a live book and the trades
say about how a market behaves, beyond Q1-Q5.

The definitions, as the README states them (a book's sides best first):

* mid price: (best bid + best ask) / 2;
* micro price: (best bid x best ask qty + best ask x best bid qty) /
  (best bid qty + best ask qty), the mid weighted towards the side with
  less quantity, where the price is more likely to go;
* depth within ``bps`` basis points: per side, the sum of price x
  quantity of the levels whose price lies within ``bps`` / 10000 of the
  mid (at or above mid x (1 - bps/10000) for bids, at or below
  mid x (1 + bps/10000) for asks; edges included), for each of
  ``DEPTH_BANDS_BPS``: cumulative, as histogram buckets are. A band that
  reaches past what the book knows (its horizon) has no value;
* imbalance over the best ``n`` levels: (bid qty - ask qty) /
  (bid qty + ask qty), summed over the best ``n`` levels of each side (or
  all of a side that has fewer), from -1 (asks only) to 1 (bids only);
* trade flow: per taker side (``buy`` when the buyer took liquidity, that
  is the buyer was not the maker; ``sell`` otherwise), the trades (an
  aggregate trade counts its ``l - f + 1`` trades), the base-asset
  quantity and the quote-asset amount (price x quantity) traded.

Sums and products are exact (``EXACT``). A quotient (micro price,
imbalance) cannot always be written in decimals: it is rounded, half to
even, to ``QUOTIENT_DIGITS`` significant digits, about twice what a
float64 sample holds.

Pure code: no I/O, no clock, no logging.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional, Sequence

from binance_exporter.market.definitions import EXACT, PriceLevel
from binance_exporter.market.units import LevelsInUnits, from_units

DEPTH_BANDS_BPS = (10, 25, 50, 100, 200, 500)
IMBALANCE_LEVELS = (1, 5, 20)
TAKER_SIDES = ("buy", "sell")
QUOTIENT_DIGITS = 34
BPS = Decimal(10_000)
QUOTIENT = decimal.Context(
    prec=QUOTIENT_DIGITS,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)


@dataclass(frozen=True)
class BookView:
    """A live book's best levels of each side at one moment, best first,
    and each side's horizon: the deepest price it knows (every level at or
    before it is held), None when it knows the whole side."""

    bids: Sequence[PriceLevel]
    asks: Sequence[PriceLevel]
    bid_horizon: Optional[Decimal] = None
    ask_horizon: Optional[Decimal] = None


def mid_price(view: BookView) -> Optional[Decimal]:
    """(best bid + best ask) / 2, exact; None when a side is empty."""
    if not view.bids or not view.asks:
        return None
    with decimal.localcontext(EXACT):
        return (view.bids[0][0] + view.asks[0][0]) / 2


def micro_price(view: BookView) -> Optional[Decimal]:
    """The size-weighted mid; None when a side is empty."""
    if not view.bids or not view.asks:
        return None
    (bid, bid_qty), (ask, ask_qty) = view.bids[0], view.asks[0]
    with decimal.localcontext(EXACT):
        weighted, total = bid * ask_qty + ask * bid_qty, bid_qty + ask_qty
    return QUOTIENT.divide(weighted, total)


def band_edge(mid: Decimal, bps: int, is_bid: bool) -> Decimal:
    """The far edge of the band ``bps`` basis points from ``mid`` on one
    side: below the mid for bids, above it for asks. Exact."""
    with decimal.localcontext(EXACT):
        return mid * (BPS - bps if is_bid else BPS + bps) / BPS


def depth_within(
    levels: Sequence[PriceLevel], is_bid: bool, mid: Decimal, bps: int, horizon: Optional[Decimal]
) -> Optional[Decimal]:
    """Sum of price x quantity of the levels of one side (best first)
    within ``bps`` of ``mid``, edges included; None when the band reaches
    past the side's ``horizon`` (levels there are unknown)."""
    edge = band_edge(mid, bps, is_bid)
    if horizon is not None and (horizon > edge if is_bid else horizon < edge):
        return None
    if isinstance(levels, LevelsInUnits):  # a live book's: the same sum, on its integers
        return levels.notional(levels.count_within(edge))
    total = Decimal(0)
    with decimal.localcontext(EXACT):
        for price, qty in levels:
            if price < edge if is_bid else price > edge:
                break
            total += price * qty
    return total


def depth_bands(view: BookView) -> dict[tuple[str, int], Decimal]:
    """Depth within each of ``DEPTH_BANDS_BPS`` of the mid, by (side,
    bps), side ``bid`` or ``ask``; the bands a side cannot give exactly
    are left out, and all of them when a side is empty."""
    mid = mid_price(view)
    if mid is None:
        return {}
    bands = {}
    for side, levels, horizon in (("bid", view.bids, view.bid_horizon), ("ask", view.asks, view.ask_horizon)):
        for bps in DEPTH_BANDS_BPS:
            value = depth_within(levels, side == "bid", mid, bps, horizon)
            if value is not None:
                bands[(side, bps)] = value
    return bands


def imbalance(view: BookView, levels: int) -> Optional[Decimal]:
    """(bid qty - ask qty) / (bid qty + ask qty) over the best ``levels``
    of each side; None when both sides are empty, or a side has fewer
    than ``levels`` known levels but does not know the rest (a horizon)."""
    for side, horizon in ((view.bids, view.bid_horizon), (view.asks, view.ask_horizon)):
        if len(side) < levels and horizon is not None:
            return None
    with decimal.localcontext(EXACT):
        bid_qty, ask_qty = (_quantity(side, levels) for side in (view.bids, view.asks))
        total = bid_qty + ask_qty
        if total == 0:
            return None
        difference = bid_qty - ask_qty
    return QUOTIENT.divide(difference, total)


def _quantity(side: Sequence[PriceLevel], levels: int) -> Decimal:
    """Sum of the quantities of a side's best ``levels`` levels, exact (a
    live book's summed as its integers)."""
    if isinstance(side, LevelsInUnits):
        return from_units(side.quantity(levels))
    return sum((qty for _, qty in side[:levels]), Decimal(0))


@dataclass(frozen=True)
class Microstructure:
    """One live book's microstructure at one moment: mid and micro price
    (None for a one-sided book), depth by (side, bps) of the bands known,
    and imbalance by levels (``IMBALANCE_LEVELS``) where known."""

    mid: Optional[Decimal]
    micro: Optional[Decimal]
    depth: dict[tuple[str, int], Decimal]
    imbalance: dict[int, Decimal]


def microstructure(view: BookView) -> Microstructure:
    """Every microstructure value ``view`` gives exactly."""
    imbalances = {n: value for n in IMBALANCE_LEVELS if (value := imbalance(view, n)) is not None}
    return Microstructure(mid_price(view), micro_price(view), depth_bands(view), imbalances)


@dataclass(frozen=True)
class AggTrade:
    """One aggregate trade (``<symbol>@aggTrade``, ``GET /api/v3/aggTrades``):
    its aggregate id, price, quantity, first and last trade ids, trade
    time (Unix ms) and whether the buyer was the maker."""

    agg_id: int
    price: Decimal
    qty: Decimal
    first_id: int
    last_id: int
    time_ms: int
    buyer_maker: bool

    @property
    def taker_side(self) -> str:
        """``buy`` when the buyer took liquidity, ``sell`` when the seller did."""
        return "sell" if self.buyer_maker else "buy"

    @property
    def trades(self) -> int:
        """The trades it aggregates."""
        return self.last_id - self.first_id + 1


@dataclass(frozen=True)
class SideFlow:
    """The trade flow of one taker side: trades, base-asset quantity and
    quote-asset amount."""

    trades: int = 0
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)

    def add(self, trade: AggTrade) -> "SideFlow":
        """The flow with ``trade`` counted too, exact."""
        with decimal.localcontext(EXACT):
            return SideFlow(
                self.trades + trade.trades, self.volume + trade.qty, self.quote_volume + trade.price * trade.qty
            )
