"""The immutable picture of the market that each update cycle publishes.

The scheduler builds a new ``Snapshot`` every cycle and swaps it in with
one assignment; scrapes and the printed report read whichever snapshot is
current, so they never see a half-updated state and never wait on Binance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

from binance_exporter.market.definitions import DEFAULT_TOP_LISTS, BookTop, Ranking, Ticker24h, TopList


@dataclass(frozen=True)
class ApiCounts:
    """Requests to Binance and their outcomes, copied at one moment.

    ``requests`` holds (endpoint, code, count), ``errors`` and ``skipped``
    hold (endpoint, reason, count), ``rate_limited`` holds (status, count).
    ``weight_used`` is the highest X-MBX-USED-WEIGHT-1M Binance reported
    this minute (None before any), ``weight_budget`` the client-side limit
    per minute, ``paused_until`` the Unix time until which nothing is sent
    (None when requests flow).
    """

    requests: tuple[tuple[str, str, int], ...] = ()
    errors: tuple[tuple[str, str, int], ...] = ()
    skipped: tuple[tuple[str, str, int], ...] = ()
    rate_limited: tuple[tuple[str, int], ...] = ()
    weight_used: Optional[int] = None
    weight_budget: Optional[int] = None
    paused_until: Optional[float] = None


@dataclass(frozen=True)
class BookNotional:
    """Q3 for one symbol: notional of the best levels of each side."""

    symbol: str
    bid: Decimal
    ask: Decimal
    cycle: int


@dataclass(frozen=True)
class SpreadReading:
    """Q4 and Q5 for one symbol: its book top, spread and spread delta
    (None for the symbol's first value)."""

    top: BookTop
    spread: Decimal
    delta: Optional[Decimal]
    cycle: int

    @property
    def symbol(self) -> str:
        """The symbol read."""
        return self.top.symbol


@dataclass(frozen=True)
class Snapshot:
    """Everything the exporter publishes, as of the end of one cycle.

    Readings (``notionals``, ``spreads``) carry the number of the cycle
    that fetched them: older ones are values kept from an earlier cycle
    because this one could not refresh them. ``update_interval`` is the
    configured time between cycles, in seconds (None before the first).
    ``top_lists`` are the configured top lists, in order; ``rankings``
    holds one ranking per list once they are known, () until then.
    """

    cycle: int = 0
    rankings: tuple[Ranking, ...] = ()
    notionals: tuple[BookNotional, ...] = ()
    spreads: tuple[SpreadReading, ...] = ()
    up: bool = False
    last_success: Optional[float] = None
    cycle_duration: Optional[float] = None
    update_interval: Optional[float] = None
    api: ApiCounts = field(default_factory=ApiCounts)
    top_lists: tuple[TopList, ...] = DEFAULT_TOP_LISTS

    def ranking(self, top_list: TopList) -> Optional[Ranking]:
        """The ranking of ``top_list``, if it is known."""
        return next((ranking for ranking in self.rankings if ranking.top_list == top_list), None)

    def notionals_this_cycle(self) -> dict[str, BookNotional]:
        """The Q3 readings this snapshot's own cycle fetched, by symbol."""
        return {reading.symbol: reading for reading in self.notionals if reading.cycle == self.cycle}

    def spreads_this_cycle(self) -> dict[str, SpreadReading]:
        """The Q4 readings this snapshot's own cycle fetched, by symbol."""
        return {reading.symbol: reading for reading in self.spreads if reading.cycle == self.cycle}

    @property
    def tickers(self) -> tuple[Ticker24h, ...]:
        """The 24 h statistics of every ranked symbol, each once."""
        unique = {t.symbol: t for ranking in self.rankings for t in ranking.tickers}
        return tuple(unique.values())
