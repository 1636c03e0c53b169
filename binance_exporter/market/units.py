"""Prices and quantities as a live book keeps them: integers of 1e-8
units (Binance's spot numbers have at most 8 decimals), given back as
exact Decimals; and a copy of a side's best levels that computes the
sums the microstructure and Q3 need on those integers, making Decimals
only of what is read one by one.

Pure code: no I/O, no clock, no logging.
"""

from __future__ import annotations

import bisect
import decimal
import math
import operator
from decimal import Decimal
from typing import Any, Iterator, Optional, Sequence

# Binance sends at most 8 decimals; 28 digits (Python's default) could round
# a large book's notional, so sums run in a context wide enough to be exact,
# and any rounding that would still happen is an error rather than a
# silently wrong number.
EXACT = decimal.Context(
    prec=120,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow],
)
UNITS_EXPONENT = -8
UNIT = Decimal(1).scaleb(UNITS_EXPONENT)
UNITS_PER_ONE = 10**-UNITS_EXPONENT
UnitLevel = tuple[int, int]  # a price level's price and quantity in 1e-8 units
# Binance keeps spot prices and quantities as 64-bit integers of 1e-8 units
# (its largest quantity filter, 92233720368.54775807, is this); a live book
# keeps them in arrays of such integers.
MAX_UNITS = 2**63 - 1
UNITS_ARRAY = "q"  # the array typecode of a signed 64-bit integer


class NotInUnits(ValueError):
    """A price or quantity with more than 8 decimals: not one of Binance's."""


def to_units(value: Decimal) -> int:
    """``value`` as an exact integer number of 1e-8 units; NotInUnits if
    it has more decimals or lies past ``MAX_UNITS``."""
    numerator, denominator = value.as_integer_ratio()
    if UNITS_PER_ONE % denominator:
        raise NotInUnits(f"{value} has more than {-UNITS_EXPONENT} decimals")
    units = numerator * (UNITS_PER_ONE // denominator)
    if abs(units) > MAX_UNITS:
        raise NotInUnits(f"{value} is past Binance's 64-bit range of 1e-8 units")
    return units


def from_units(units: int) -> Decimal:
    """The exact Decimal of ``units`` 1e-8 units (of at most 28 digits,
    as Binance's numbers are)."""
    return Decimal(units) * UNIT


class LevelsInUnits(Sequence[tuple[Decimal, Decimal]]):
    """A side's best levels, best first (prices descending for bids,
    ascending for asks), copied in 1e-8 units and read as (price,
    quantity) Decimals: all of them made on the first iteration, once; a
    level read by its index, or a slice, makes only what it reads."""

    __slots__ = ("is_bid", "_prices", "_quantities", "_levels", "_summed")

    def __init__(self, is_bid: bool, prices: Sequence[int], quantities: Sequence[int]):
        self.is_bid = is_bid
        self._prices, self._quantities = prices, quantities
        self._levels: Optional[tuple[tuple[Decimal, Decimal], ...]] = None
        self._summed = (0, 0)  # the notional of the best levels last summed: (how many, sum in 1e-16 units)

    def _made(self) -> tuple[tuple[Decimal, Decimal], ...]:
        if self._levels is None:
            pairs = zip(self._prices, self._quantities)
            self._levels = tuple((from_units(price), from_units(qty)) for price, qty in pairs)
        return self._levels

    def __len__(self) -> int:
        return len(self._prices)

    def __getitem__(self, index: Any) -> Any:
        if self._levels is not None:
            return self._levels[index]
        if isinstance(index, slice):
            return LevelsInUnits(self.is_bid, self._prices[index], self._quantities[index])
        return from_units(self._prices[index]), from_units(self._quantities[index])

    def __iter__(self) -> Iterator[tuple[Decimal, Decimal]]:
        return iter(self._made())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a sequence, compared by value

    def __repr__(self) -> str:
        return repr(self._made())

    def count_within(self, edge: Decimal) -> int:
        """How many of the levels lie at ``edge`` or better (at or above
        it for bids, at or below it for asks)."""
        edge_units = edge.scaleb(-UNITS_EXPONENT, EXACT)
        if self.is_bid:
            return bisect.bisect_right(self._prices, -math.ceil(edge_units), key=operator.neg)
        return bisect.bisect_right(self._prices, math.floor(edge_units))

    def notional(self, count: int) -> Decimal:
        """Sum of price x quantity of the best ``count`` levels, exact. The
        depth bands widen one after another: each goes on from the sum of
        the one before."""
        count = min(count, len(self._prices))
        summed, total = self._summed
        if count < summed:
            summed, total = 0, 0
        total += sum(map(operator.mul, self._prices[summed:count], self._quantities[summed:count]))
        self._summed = (count, total)
        return Decimal(total).scaleb(2 * UNITS_EXPONENT, EXACT)  # exact: the context traps any rounding

    def quantity(self, count: int) -> int:
        """Sum of the quantities of the best ``count`` levels, in 1e-8 units."""
        return sum(self._quantities[:count])
