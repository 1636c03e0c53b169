"""The immutable picture of the market that each update cycle publishes.

The scheduler builds a new ``Snapshot`` every cycle and swaps it in with
one assignment; scrapes and the printed report read whichever snapshot is
current, so they never see a half-updated state and never wait on Binance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple, Optional

from binance_exporter.market.definitions import (
    DEFAULT_TOP_LISTS,
    WHOLE,
    BookTop,
    Ranking,
    Shard,
    SymbolInfo,
    Ticker24h,
    TopList,
)
from binance_exporter.market.microstructure import AggTrade, BookView, Microstructure, SideFlow


@dataclass(frozen=True)
class RecordingCounts:
    """A recording (--record) so far: compressed bytes written, and lines
    or writes that failed."""

    recorded_bytes: int = 0
    errors: int = 0


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
    recording: Optional[RecordingCounts] = None  # None: not recording


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
class BookState:
    """One live order book's health at one moment: whether it is in sync,
    the levels it holds a side, Binance's time of the last event applied
    (Unix seconds, None before any) and its resyncs so far by reason."""

    symbol: str
    in_sync: bool
    bid_levels: int
    ask_levels: int
    last_event_time: Optional[float]
    resyncs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MicroReading:
    """One live book's microstructure, read in cycle ``cycle``."""

    symbol: str
    values: Microstructure
    cycle: int


@dataclass(frozen=True)
class TradeFlow:
    """One symbol's trades counted since it was first tracked, by taker
    side; the price of the last one (None before any, and while trades
    may have gone by unseen); the aggregate trades counted from a REST
    backfill, and those given up on."""

    symbol: str
    buy: SideFlow
    sell: SideFlow
    last_price: Optional[Decimal]
    backfilled: int
    lost: int


class LiveBook(NamedTuple):
    """A tracked symbol for the live view: its book's state; while the
    book is in sync, its best levels a side and its horizons; its latest
    trades counted, oldest first; and ``version``, which changes whenever
    any of them does."""

    version: tuple
    state: BookState
    view: Optional[BookView]
    trades: tuple[AggTrade, ...]


@dataclass(frozen=True)
class StreamCounts:
    """The websocket streams at one moment: connections open, connections
    replaced by reason, messages received by stream (``depth``,
    ``ticker``), and the event lag histogram: counts per bucket of
    ``lag_buckets`` (upper bounds, in seconds; the last count is above
    them all), their sum and count."""

    connections: int = 0
    reconnects: tuple[tuple[str, int], ...] = ()
    messages: tuple[tuple[str, int], ...] = ()
    invalid_messages: int = 0
    lag_buckets: tuple[float, ...] = ()
    lag_counts: tuple[int, ...] = ()
    lag_sum: float = 0.0


@dataclass(frozen=True)
class Snapshot:  # pylint: disable=too-many-instance-attributes  # one attribute per thing published
    """Everything the exporter publishes, as of the end of one cycle.

    ``read_at`` is the Unix time its cycle read the market (in stream
    mode, the moment it read the live books; in REST mode, its end): the
    time the printed report gives.

    Readings (``notionals``, ``spreads``) carry the number of the cycle
    that fetched them: older ones are values kept from an earlier cycle
    because this one could not refresh them. ``update_interval`` is the
    configured time between cycles, in seconds (None before the first).
    ``top_lists`` are the configured top lists, in order; ``rankings``
    holds one ranking per list once they are known, () until then.
    In stream mode ``books`` holds the state of every live book,
    ``microstructure`` the readings of those in sync, ``trade_flows`` the
    symbols' trade flows, ``streams`` the websocket connections'
    counts, and ``listings`` what exchange info says of each symbol with
    a live book; in REST mode they are (), (), (), None and (). ``shard``
    is the part of the market this replica keeps (``--shard``): its
    series are those of its own symbols only.
    """

    cycle: int = 0
    read_at: float = 0.0
    rankings: tuple[Ranking, ...] = ()
    notionals: tuple[BookNotional, ...] = ()
    spreads: tuple[SpreadReading, ...] = ()
    up: bool = False
    last_success: Optional[float] = None
    cycle_duration: Optional[float] = None
    update_interval: Optional[float] = None
    api: ApiCounts = field(default_factory=ApiCounts)
    top_lists: tuple[TopList, ...] = DEFAULT_TOP_LISTS
    books: tuple[BookState, ...] = ()
    microstructure: tuple[MicroReading, ...] = ()
    trade_flows: tuple[TradeFlow, ...] = ()
    streams: Optional[StreamCounts] = None
    shard: Shard = WHOLE
    listings: tuple[SymbolInfo, ...] = ()

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
