"""Prometheus exposition of the current snapshot.

``SnapshotCollector.collect()`` builds every metric family afresh from
whichever snapshot is current at scrape time, so a symbol that left a top
list is simply absent: there is no stale label set to delete. A scrape
looks like this (abridged)::

    # HELP binance_spread Best ask minus best bid, in quote asset units; refreshed every update interval.
    # TYPE binance_spread gauge
    binance_spread{symbol="BTCUSDT"} 0.01
    # HELP binance_order_book_notional Sum of price x quantity over the best 200 price levels ...
    # TYPE binance_order_book_notional gauge
    binance_order_book_notional{side="bid",symbol="ETHBTC"} 123.45
    binance_up 1.0
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from binance_exporter import __version__
from binance_exporter.binance.depth_sync import RESYNC_REASONS
from binance_exporter.binance.streams import RECONNECT_REASONS
from binance_exporter.cycle.snapshot import Snapshot, StreamCounts
from binance_exporter.exposition import openmetrics_text
from binance_exporter.market.definitions import BOOK_DEPTH
from binance_exporter.market.microstructure import TAKER_SIDES

_EVERY_UPDATE = "refreshed every update interval"
_OPENMETRICS_EOF = b"# EOF\n"  # ends an OpenMetrics body; the process metrics follow the snapshot's
_EVERY_RANKING = "refreshed every rank interval"
_AT_START = "fixed at start"
# zlib's default level: within a few percent of the smallest body, at a
# fraction of level 9's time (prometheus-client's own server uses 9).
GZIP_LEVEL = 6
GZIP_WINDOW_BITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer, not zlib's


def distribution_version(name: str) -> str:
    """The installed version of the distribution ``name``, or "unknown"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# binance_exporter_build_info's labels: what was running, for telling deployments apart.
BUILD_INFO = {
    "version": __version__,
    "python_version": platform.python_version(),
    "binance_connector_version": distribution_version("binance-connector"),
}


def _gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _counter(
    name: str, documentation: str, labels: tuple[str, ...], rows: Iterable[tuple[Any, ...]]
) -> CounterMetricFamily:
    """A counter family from rows of (label values..., count)."""
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    for *values, count in rows:
        family.add_metric(values, count)
    return family


class SnapshotCollector(Collector):
    """Renders the snapshot returned by ``current()`` at each scrape."""

    def __init__(self, current: Callable[[], Snapshot]):
        self._current = current

    def collect(self) -> Iterator[Metric]:
        snapshot = self._current()
        yield from self._rankings(snapshot)
        yield from self._books(snapshot)
        if snapshot.streams is not None:
            yield from self._live_books(snapshot)
            yield from self._microstructure(snapshot)
            yield from self._trade_flows(snapshot)
            yield from self._streams(snapshot.streams)
        yield from self._health(snapshot)

    @staticmethod
    def _live_books(snapshot: Snapshot) -> Iterator[Metric]:
        in_sync = _gauge(
            "binance_order_book_in_sync",
            f"Whether the local order book is in sync with Binance's stream, 1 or 0; {_EVERY_UPDATE}.",
            ("symbol",),
        )
        resyncs = CounterMetricFamily(
            "binance_order_book_resyncs",
            "Times the local order book was taken again from a snapshot, by reason (gap: events were lost; "
            "horizon: fewer than the best levels lie inside the snapshot's horizon; crossed: the book came out "
            f"crossed; reconnect: events were lost while the stream reconnected), a count of resyncs; {_EVERY_UPDATE}.",
            labels=["symbol", "reason"],
        )
        levels = _gauge(
            "binance_order_book_levels",
            f"Price levels held in the local order book on one side, a count of levels; {_EVERY_UPDATE}.",
            ("symbol", "side"),
        )
        last_update = _gauge(
            "binance_order_book_last_update_timestamp_seconds",
            "Binance's event time of the last event applied to the local order book, Unix time in seconds; "
            f"{_EVERY_UPDATE}.",
            ("symbol",),
        )
        listing = _gauge(
            "binance_symbol_info",
            f"The symbol's assets, from exchange info, in its labels, for each symbol with a live book, always 1; "
            f"{_EVERY_UPDATE}.",
            ("symbol", "base_asset", "quote_asset"),
        )
        for info in snapshot.listings:
            listing.add_metric([info.symbol, info.base_asset, info.quote_asset], 1)
        yield listing
        for book in snapshot.books:
            in_sync.add_metric([book.symbol], 1 if book.in_sync else 0)
            counts = dict(book.resyncs)
            for reason in RESYNC_REASONS:
                resyncs.add_metric([book.symbol, reason], counts.get(reason, 0))
            if book.in_sync:
                levels.add_metric([book.symbol, "bid"], book.bid_levels)
                levels.add_metric([book.symbol, "ask"], book.ask_levels)
            if book.last_event_time is not None:
                last_update.add_metric([book.symbol], book.last_event_time)
        yield from (in_sync, resyncs, levels, last_update)

    @staticmethod
    def _microstructure(snapshot: Snapshot) -> Iterator[Metric]:
        mid = _gauge(
            "binance_mid_price", f"(Best bid + best ask) / 2, in quote asset units; {_EVERY_UPDATE}.", ("symbol",)
        )
        micro = _gauge(
            "binance_micro_price",
            "Size-weighted mid: (best bid x best ask quantity + best ask x best bid quantity) / (best bid quantity "
            f"+ best ask quantity), in quote asset units; {_EVERY_UPDATE}.",
            ("symbol",),
        )
        depth = _gauge(
            "binance_order_book_depth_notional",
            "Sum of price x quantity of one side's levels within within_bps basis points of the mid price, in quote "
            "asset units (edges included, cumulative like histogram buckets, absent when the band reaches past what "
            f"the book knows); {_EVERY_UPDATE}.",
            ("symbol", "side", "within_bps"),
        )
        imbalance = _gauge(
            "binance_order_book_imbalance",
            "(Bid quantity - ask quantity) / (bid quantity + ask quantity) over the best levels of each side, "
            f"a ratio from -1 to 1 (-1: asks only, 1: bids only); {_EVERY_UPDATE}.",
            ("symbol", "levels"),
        )
        for reading in snapshot.microstructure:
            values, symbol = reading.values, reading.symbol
            if values.mid is not None:
                mid.add_metric([symbol], float(values.mid))
            if values.micro is not None:
                micro.add_metric([symbol], float(values.micro))
            for (side, bps), notional in values.depth.items():
                depth.add_metric([symbol, side, str(bps)], float(notional))
            for levels, value in values.imbalance.items():
                imbalance.add_metric([symbol, str(levels)], float(value))
        yield from (mid, micro, depth, imbalance)

    @staticmethod
    def _trade_flows(snapshot: Snapshot) -> Iterator[Metric]:
        trades = CounterMetricFamily(
            "binance_trades",
            "Trades since the symbol was first tracked, by taker side (buy: the buyer took liquidity), from "
            f"<symbol>@aggTrade and REST backfills, a count of trades; {_EVERY_UPDATE}.",
            labels=["symbol", "taker_side"],
        )
        volume = CounterMetricFamily(
            "binance_trade_volume",
            f"Quantity traded since the symbol was first tracked, by taker side, in base asset units; {_EVERY_UPDATE}.",
            labels=["symbol", "taker_side"],
        )
        quote_volume = CounterMetricFamily(
            "binance_trade_quote_volume",
            "Amount traded (price x quantity) since the symbol was first tracked, by taker side, in quote asset "
            f"units; {_EVERY_UPDATE}.",
            labels=["symbol", "taker_side"],
        )
        last_price = _gauge(
            "binance_last_trade_price",
            "Price of the last trade, in quote asset units (absent while trades may have gone by unseen); "
            f"{_EVERY_UPDATE}.",
            ("symbol",),
        )
        backfilled = CounterMetricFamily(
            "binance_trade_backfilled",
            "Aggregate trades missed by the stream and fetched with GET /api/v3/aggTrades, a count of aggregate "
            f"trades; {_EVERY_UPDATE}.",
            labels=["symbol"],
        )
        gaps = CounterMetricFamily(
            "binance_trade_gaps",
            "Aggregate trades missed by the stream that could not be fetched (Binance no longer had them, or too "
            f"many were missing), a count of aggregate trades; {_EVERY_UPDATE}.",
            labels=["symbol"],
        )
        for flow in snapshot.trade_flows:
            for side in TAKER_SIDES:
                totals = flow.buy if side == "buy" else flow.sell
                trades.add_metric([flow.symbol, side], totals.trades)
                volume.add_metric([flow.symbol, side], float(totals.volume))
                quote_volume.add_metric([flow.symbol, side], float(totals.quote_volume))
            if flow.last_price is not None:
                last_price.add_metric([flow.symbol], float(flow.last_price))
            backfilled.add_metric([flow.symbol], flow.backfilled)
            gaps.add_metric([flow.symbol], flow.lost)
        yield from (trades, volume, quote_volume, last_price, backfilled, gaps)

    @staticmethod
    def _streams(streams: StreamCounts) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "binance_stream_connections",
            f"Websocket connections to Binance's streams open now, a count of connections; {_EVERY_UPDATE}.",
            value=streams.connections,
        )
        reconnects = dict(streams.reconnects)
        yield _counter(
            "binance_stream_reconnects",
            "Websocket connections replaced, by reason (closed: closed by Binance; error: failed or broken; "
            "silent: no pong within the ping timeout; rotation: before Binance's 24 h limit; server_shutdown: "
            f"Binance announced maintenance), a count of connections; {_EVERY_UPDATE}.",
            ("reason",),
            tuple((reason, reconnects.get(reason, 0)) for reason in RECONNECT_REASONS),
        )
        messages = dict(streams.messages)
        yield _counter(
            "binance_stream_messages",
            "Messages received from Binance's streams, by stream (depth, trade, ticker, top: a best bid and ask "
            "with --symbols all), a count of messages; "
            f"{_EVERY_UPDATE}.",
            ("stream",),
            tuple((stream, messages.get(stream, 0)) for stream in ("depth", "trade", "ticker", "top")),
        )
        yield CounterMetricFamily(
            "binance_stream_invalid_messages",
            "Messages from Binance's streams that were not valid and were ignored, a count of messages; "
            f"{_EVERY_UPDATE}.",
            value=streams.invalid_messages,
        )
        buckets, total = [], 0
        for bound, count in zip((*streams.lag_buckets, math.inf), streams.lag_counts):
            total += count
            buckets.append(("+Inf" if bound == math.inf else floatToGoString(bound), total))
        yield HistogramMetricFamily(
            "binance_stream_event_lag_seconds",
            "Time from Binance's event time to its receipt here, in seconds (clock differences included); "
            f"{_EVERY_UPDATE}.",
            buckets=buckets,
            sum_value=streams.lag_sum,
        )

    @staticmethod
    def _rankings(snapshot: Snapshot) -> Iterator[Metric]:
        rank = _gauge(
            "binance_top_symbol_rank",
            f"Position of the symbol in a top list, a rank (1 = highest); {_EVERY_RANKING}.",
            ("ranking", "quote_asset", "symbol"),
        )
        owns = snapshot.shard.owns  # a shard exports its own symbols in the lists: each list whole across shards
        for ranking in snapshot.rankings:
            for position, ticker in enumerate(ranking.tickers, start=1):
                if owns(ticker.symbol):
                    rank.add_metric([ranking.name, ranking.quote_asset, ticker.symbol], position)
        volume = _gauge(
            "binance_volume_24h", f"Volume traded in the last 24 h, in base asset units; {_EVERY_RANKING}.", ("symbol",)
        )
        quote_volume = _gauge(
            "binance_quote_volume_24h",
            f"Volume traded in the last 24 h, in quote asset units; {_EVERY_RANKING}.",
            ("symbol",),
        )
        trades = _gauge(
            "binance_trades_24h", f"Trades in the last 24 h, a count of trades; {_EVERY_RANKING}.", ("symbol",)
        )
        for ticker in snapshot.tickers:
            if not owns(ticker.symbol):
                continue
            volume.add_metric([ticker.symbol], float(ticker.volume))
            quote_volume.add_metric([ticker.symbol], float(ticker.quote_volume))
            trades.add_metric([ticker.symbol], ticker.trade_count)
        yield from (rank, volume, quote_volume, trades)

    @staticmethod
    def _books(snapshot: Snapshot) -> Iterator[Metric]:
        notional = _gauge(
            "binance_order_book_notional",
            f"Sum of price x quantity over the best {BOOK_DEPTH} price levels of one side of the book, "
            f"in quote asset units; {_EVERY_UPDATE}.",
            ("symbol", "side"),
        )
        for reading in snapshot.notionals:
            notional.add_metric([reading.symbol, "bid"], float(reading.bid))
            notional.add_metric([reading.symbol, "ask"], float(reading.ask))
        bid = _gauge("binance_best_bid_price", f"Best bid price, in quote asset units; {_EVERY_UPDATE}.", ("symbol",))
        ask = _gauge("binance_best_ask_price", f"Best ask price, in quote asset units; {_EVERY_UPDATE}.", ("symbol",))
        spread = _gauge(
            "binance_spread", f"Best ask minus best bid, in quote asset units; {_EVERY_UPDATE}.", ("symbol",)
        )
        delta = _gauge(
            "binance_spread_delta",
            f"Absolute change of the spread since the symbol's previous update, in quote asset units; {_EVERY_UPDATE}.",
            ("symbol",),
        )
        for reading in snapshot.spreads:
            bid.add_metric([reading.symbol], float(reading.top.bid_price))
            ask.add_metric([reading.symbol], float(reading.top.ask_price))
            spread.add_metric([reading.symbol], float(reading.spread))
            if reading.delta is not None:
                delta.add_metric([reading.symbol], float(reading.delta))
        yield from (notional, bid, ask, spread, delta)

    @staticmethod
    def _health(snapshot: Snapshot) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "binance_up",
            f"Whether the latest update cycle fetched everything it needed from Binance, 1 or 0; {_EVERY_UPDATE}.",
            value=1 if snapshot.up else 0,
        )
        yield GaugeMetricFamily(
            "binance_exporter_last_update_timestamp_seconds",
            "End of the last fully successful update cycle, Unix time in seconds (0 before the first); "
            f"{_EVERY_UPDATE}.",
            value=snapshot.last_success or 0,
        )
        yield GaugeMetricFamily(
            "binance_exporter_update_duration_seconds",
            f"Duration of the latest update cycle, in seconds; {_EVERY_UPDATE}.",
            value=snapshot.cycle_duration or 0,
        )
        if snapshot.update_interval is not None:
            yield GaugeMetricFamily(
                "binance_exporter_update_interval_seconds",
                f"Time between the starts of update cycles (--update-interval), in seconds; {_AT_START}.",
                value=snapshot.update_interval,
            )
        yield _counter(
            "binance_exporter_api_requests",
            "Requests made to Binance, by endpoint and HTTP status (or timeout/error when there was no answer), "
            f"a count of requests; {_EVERY_UPDATE}.",
            ("endpoint", "code"),
            snapshot.api.requests,
        )
        yield _counter(
            "binance_exporter_api_errors",
            "Failed requests to Binance, by endpoint and reason (timeout, connection, server_error, client_error, "
            f"rate_limited, blocked, invalid_response, invalid_symbol), a count of attempts; {_EVERY_UPDATE}.",
            ("endpoint", "reason"),
            snapshot.api.errors,
        )
        yield _counter(
            "binance_exporter_requests_skipped",
            "Requests not sent to Binance, by endpoint and reason "
            "(retry_after: Binance asked for a pause; backoff: Binance unreachable or refusing this host; "
            "weight_budget: the request would exceed the per-minute weight budget), "
            f"a count of requests; {_EVERY_UPDATE}.",
            ("endpoint", "reason"),
            snapshot.api.skipped,
        )
        yield _counter(
            "binance_exporter_rate_limited",
            "Answers from Binance saying the request weight limit was exceeded (429) or the IP is banned (418) "
            "that began or worsened a pause (not those to requests already in flight when it began), "
            f"a count of answers; {_EVERY_UPDATE}.",
            ("code",),
            snapshot.api.rate_limited,
        )
        yield GaugeMetricFamily(
            "binance_exporter_paused_until_timestamp_seconds",
            "End of the pause in sending to Binance (Retry-After or backoff), Unix time in seconds "
            f"(0 when requests flow); {_EVERY_UPDATE}.",
            value=snapshot.api.paused_until or 0,
        )
        if snapshot.api.weight_budget is not None:
            yield GaugeMetricFamily(
                "binance_exporter_weight_budget",
                "Request weight the exporter allows itself per minute (--weight-budget), in weight units; "
                f"{_AT_START}.",
                value=snapshot.api.weight_budget,
            )
        if snapshot.api.weight_used is not None:
            yield GaugeMetricFamily(
                "binance_exporter_api_weight_used",
                "Request weight used by the IP in the current minute, the highest X-MBX-USED-WEIGHT-1M Binance "
                f"reported this minute (it starts again at each minute boundary), in weight units; {_EVERY_UPDATE}.",
                value=snapshot.api.weight_used,
            )
        if snapshot.api.recording is not None:
            yield CounterMetricFamily(
                "binance_exporter_recorded_bytes",
                "What --record has written, compressed, a count of bytes; "
                f"{_EVERY_UPDATE}.",
                value=snapshot.api.recording.recorded_bytes,
            )
            yield CounterMetricFamily(
                "binance_exporter_recording_errors",
                "Lines --record could not write (dropped while the writer was behind, or a write that failed and "
                f"stopped recording), a count of errors; {_EVERY_UPDATE}.",
                value=snapshot.api.recording.errors,
            )
        build = GaugeMetricFamily(
            "binance_exporter_build_info",
            f"Versions of the exporter, of Python and of binance-connector in its labels, always 1; {_AT_START}.",
            labels=list(BUILD_INFO),
        )
        build.add_metric(list(BUILD_INFO.values()), 1)
        yield build
        shard = GaugeMetricFamily(
            "binance_exporter_shard_info",
            "The part of the market this exporter keeps (--shard K/N: shard K of N; 1 of 1, the whole), "
            f"always 1; {_AT_START}.",
            labels=["shard", "shards"],
        )
        shard.add_metric([str(snapshot.shard.index), str(snapshot.shard.count)], 1)
        yield shard


@dataclass(frozen=True)
class ExpositionFormat:
    """A format /metrics can be served in: its fixed Content-Type and its encoder."""

    content_type: str
    encode: Callable[[CollectorRegistry], bytes]


TEXT_FORMAT = ExpositionFormat(CONTENT_TYPE_PLAIN_0_0_4, generate_latest)
OPENMETRICS_FORMAT = ExpositionFormat(openmetrics.CONTENT_TYPE_LATEST, openmetrics_text.generate_latest)


def choose_format(accept: Optional[str]) -> ExpositionFormat:
    """OpenMetrics 1.0.0 when the ``Accept`` header lists it (Prometheus
    asks for it first), else the Prometheus text format 0.0.4 — also for an
    invalid or unknown header. Nothing the client sends reaches the answer."""
    for media_range in (accept or "").split(","):
        media_type, *parameters = media_range.split(";")
        if media_type.strip().lower() == "application/openmetrics-text":
            versions = [
                value.strip().strip('"')
                for name, _, value in (parameter.partition("=") for parameter in parameters)
                if name.strip().lower() == "version"
            ]
            if versions in ([], ["1.0.0"]):
                return OPENMETRICS_FORMAT
    return TEXT_FORMAT


class MetricsPage:
    """The /metrics body: the current snapshot's metrics, then the
    exporter process's own (CPU, memory, file descriptors).

    A snapshot never changes, so its part is rendered once per snapshot and
    format (two formats: at most two copies) and served from that copy until
    the next cycle publishes a new snapshot; only the few process metrics are
    rendered at each scrape. No scrape waits for another's rendering: two
    scrapes of a new snapshot may both render it, and one copy is kept.
    """

    def __init__(self, current: Callable[[], Snapshot]):
        self._current = current
        self._process = CollectorRegistry()
        ProcessCollector(registry=self._process)
        self._lock = threading.Lock()  # held to look up and store a rendered part, never while rendering
        self._rendered: tuple[Optional[Snapshot], dict[ExpositionFormat, _Rendered]] = (None, {})
        self._preparing: Optional[Snapshot] = None

    def prepare(self, snapshot: Snapshot) -> None:
        """Renders a new snapshot's part as Prometheus scrapes it
        (OpenMetrics, gzip-compressed) before any scrape asks: with the
        whole market's tens of thousands of series, the cycle's thread
        pays for it rather than a scrape. Meanwhile, scrapes are answered
        at once with the previous snapshot's part."""
        with self._lock:
            self._preparing = snapshot
        try:
            part = _render(snapshot, OPENMETRICS_FORMAT)
            part.gzip(b"")
            self._keep(snapshot, OPENMETRICS_FORMAT, part)
        finally:
            with self._lock:
                self._preparing = None

    def _keep(self, snapshot: Snapshot, exposition: ExpositionFormat, part: "_Rendered") -> "_Rendered":
        """Keeps ``part`` as ``snapshot``'s in ``exposition`` (or the one
        kept already); returns what is kept."""
        with self._lock:
            if self._rendered[0] is not snapshot:
                self._rendered = (snapshot, {})
            return self._rendered[1].setdefault(exposition, part)

    def _snapshot_part(self, snapshot: Snapshot, exposition: ExpositionFormat) -> "_Rendered":
        with self._lock:
            kept, parts = self._rendered
            if exposition in parts and (kept is snapshot or self._preparing is snapshot):
                return parts[exposition]  # this snapshot's, or the previous one's while this one is prepared
        return self._keep(snapshot, exposition, _render(snapshot, exposition))

    def render(self, accept: Optional[str], compress: bool = False) -> tuple[bytes, str]:
        """(body, content type) for a scrape sending ``accept``; the body
        gzip-compressed when ``compress`` is true."""
        exposition = choose_format(accept)
        snapshot_part = self._snapshot_part(self._current(), exposition)
        process_part = exposition.encode(self._process)
        if compress:
            return snapshot_part.gzip(process_part), exposition.content_type
        return snapshot_part.text + process_part, exposition.content_type


def _render(snapshot: Snapshot, exposition: ExpositionFormat) -> "_Rendered":
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snapshot))
    return _Rendered(exposition.encode(registry).removesuffix(_OPENMETRICS_EOF))


class _Rendered:
    """A snapshot's metrics in one format, as text and as the start of a
    gzip stream: a scrape asking for gzip compresses only what follows (the
    process metrics), on a copy of the compressor left where the snapshot's
    text ends."""

    def __init__(self, text: bytes):
        self.text = text
        self._lock = threading.Lock()
        self._compressed: Optional[tuple[bytes, Any]] = None  # compressed so far, and the compressor

    def gzip(self, rest: bytes) -> bytes:
        """The gzip stream (one member) of this text followed by ``rest``."""
        with self._lock:
            if self._compressed is None:  # the first scrape asking for gzip compresses the snapshot's part
                compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WINDOW_BITS)
                self._compressed = (compressor.compress(self.text), compressor)
            compressed, compressor = self._compressed[0], self._compressed[1].copy()
        return compressed + compressor.compress(rest) + compressor.flush()
