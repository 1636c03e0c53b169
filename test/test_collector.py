"""The collector renders the current snapshot: exact values, and nothing
for symbols that are no longer in it."""

import gzip
import importlib.metadata
import platform
import re
import threading
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import CollectorRegistry

from binance_exporter import __version__
from binance_exporter.exposition import openmetrics_text
from binance_exporter.exposition.collector import (
    OPENMETRICS_FORMAT,
    TEXT_FORMAT,
    MetricsPage,
    SnapshotCollector,
    choose_format,
    distribution_version,
)
from binance_exporter.market.definitions import BookTop, Ranking, Shard, SymbolInfo, Ticker24h, top_lists
from binance_exporter.cycle.snapshot import (
    ApiCounts,
    BookNotional,
    BookState,
    MicroReading,
    RecordingCounts,
    Snapshot,
    SpreadReading,
    StreamCounts,
    TradeFlow,
)
from binance_exporter.market.microstructure import Microstructure, SideFlow
from .helpers import ROOT

ETHBTC = Ticker24h("ETHBTC", D("271029.283"), D("8993.32796111"), 122239)
WBTCBTC = Ticker24h("WBTCBTC", D("12.5"), D("12.49"), 900)
BTCUSDT = Ticker24h("BTCUSDT", D("20000.1"), D("1340000000.5"), 2000000)
PEPEUSDT = Ticker24h("PEPEUSDT", D("1e12"), D("12340000"), 950000)


def spread_reading(symbol, bid, ask, delta=None, cycle=2):
    top = BookTop(symbol, D(bid), D("1"), D(ask), D("2"))
    return SpreadReading(top, D(ask) - D(bid), None if delta is None else D(delta), cycle)


SNAPSHOT = Snapshot(
    cycle=2,
    rankings=(
        Ranking("quote_volume", "BTC", (ETHBTC, WBTCBTC)),
        Ranking("trade_count", "USDT", (BTCUSDT, PEPEUSDT)),
    ),
    notionals=(BookNotional("ETHBTC", D("123.45678901"), D("98.7"), 2), BookNotional("WBTCBTC", D("0"), D("5"), 1)),
    spreads=(
        spread_reading("BTCUSDT", "67000.00", "67000.01", "0.02"),
        spread_reading("PEPEUSDT", "0.00001234", "0.00001235"),
    ),
    up=True,
    last_success=1795236344.5,
    cycle_duration=0.125,
    api=ApiCounts(
        requests=(("/api/v3/depth", "200", 10), ("/api/v3/depth", "timeout", 1)),
        errors=(("/api/v3/depth", "timeout", 1),),
        weight_used=287,
    ),
)


# A snapshot with every optional value set, so that every family appears.
EVERY_FAMILY = replace(
    SNAPSHOT,
    update_interval=10.0,
    api=replace(SNAPSHOT.api, weight_budget=1200, recording=RecordingCounts(123_456, 2)),
    books=(
        BookState("ETHBTC", True, 1000, 998, 1795236344.125, (("gap", 2),)),
        BookState("BTCUSDT", False, 0, 0, None, ()),
    ),
    microstructure=(
        MicroReading(
            "ETHBTC",
            Microstructure(
                D("0.05123"), D("0.051231"), {("bid", 10): D("12.5"), ("ask", 500): D("700.25")}, {1: D("-0.25")}
            ),
            1,
        ),
        MicroReading("WBTCBTC", Microstructure(None, None, {}, {20: D("1")}), 1),  # one-sided
    ),
    trade_flows=(
        TradeFlow("ETHBTC", SideFlow(12, D("1.5"), D("0.075")), SideFlow(3, D("0.25"), D("0.0125")), D("0.05"), 7, 2),
        TradeFlow("BTCUSDT", SideFlow(), SideFlow(), None, 0, 0),
    ),
    streams=StreamCounts(
        connections=1,
        reconnects=(("server_shutdown", 1),),
        messages=(("depth", 250), ("ticker", 12)),
        invalid_messages=3,
        lag_buckets=(0.01, 0.1),
        lag_counts=(200, 45, 5),
        lag_sum=4.5,
    ),
)

# What every HELP text ends with: ", <unit>[ (note)]; <how often it refreshes>."
HELP_ENDING = re.compile(
    r", (?P<unit>in seconds|Unix time in seconds|in (?:quote asset|base asset|weight) units|a count of (?:\w+ )?\w+"
    r"|a rank|a ratio from -1 to 1|1 or 0|always 1)(?: \([^;]*\))?"
    r"; (?P<refreshed>refreshed every update interval|refreshed every rank interval|fixed at start)\.$"
)


def registry_for(snapshot):
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snapshot))
    return registry


@pytest.mark.parametrize(
    "name, labels, value",
    [
        ("binance_top_symbol_rank", {"ranking": "quote_volume", "quote_asset": "BTC", "symbol": "ETHBTC"}, 1),
        ("binance_top_symbol_rank", {"ranking": "quote_volume", "quote_asset": "BTC", "symbol": "WBTCBTC"}, 2),
        ("binance_top_symbol_rank", {"ranking": "trade_count", "quote_asset": "USDT", "symbol": "PEPEUSDT"}, 2),
        ("binance_volume_24h", {"symbol": "ETHBTC"}, 271029.283),
        ("binance_quote_volume_24h", {"symbol": "BTCUSDT"}, 1340000000.5),
        ("binance_trades_24h", {"symbol": "PEPEUSDT"}, 950000),
        ("binance_order_book_notional", {"symbol": "ETHBTC", "side": "bid"}, 123.45678901),
        ("binance_order_book_notional", {"symbol": "ETHBTC", "side": "ask"}, 98.7),
        ("binance_order_book_notional", {"symbol": "WBTCBTC", "side": "bid"}, 0),
        ("binance_best_bid_price", {"symbol": "BTCUSDT"}, 67000.0),
        ("binance_best_ask_price", {"symbol": "PEPEUSDT"}, 0.00001235),
        ("binance_spread", {"symbol": "BTCUSDT"}, 0.01),
        ("binance_spread", {"symbol": "PEPEUSDT"}, 0.00000001),
        ("binance_spread_delta", {"symbol": "BTCUSDT"}, 0.02),
        ("binance_spread_delta", {"symbol": "PEPEUSDT"}, None),
        ("binance_up", {}, 1),
        ("binance_exporter_last_update_timestamp_seconds", {}, 1795236344.5),
        ("binance_exporter_update_duration_seconds", {}, 0.125),
        ("binance_exporter_api_requests_total", {"endpoint": "/api/v3/depth", "code": "200"}, 10),
        ("binance_exporter_api_requests_total", {"endpoint": "/api/v3/depth", "code": "timeout"}, 1),
        ("binance_exporter_api_errors_total", {"endpoint": "/api/v3/depth", "reason": "timeout"}, 1),
        ("binance_exporter_api_weight_used", {}, 287),
        (
            "binance_exporter_build_info",
            {
                "version": __version__,
                "python_version": platform.python_version(),
                "binance_connector_version": importlib.metadata.version("binance-connector"),
            },
            1,
        ),
        ("binance_exporter_update_interval_seconds", {}, 10.0),
        ("binance_order_book_in_sync", {"symbol": "ETHBTC"}, 1),
        ("binance_order_book_in_sync", {"symbol": "BTCUSDT"}, 0),
        ("binance_order_book_resyncs_total", {"symbol": "ETHBTC", "reason": "gap"}, 2),
        ("binance_order_book_resyncs_total", {"symbol": "ETHBTC", "reason": "horizon"}, 0),
        ("binance_order_book_levels", {"symbol": "ETHBTC", "side": "ask"}, 998),
        ("binance_order_book_levels", {"symbol": "BTCUSDT", "side": "ask"}, None),  # not in sync: nothing
        ("binance_order_book_last_update_timestamp_seconds", {"symbol": "ETHBTC"}, 1795236344.125),
        ("binance_order_book_last_update_timestamp_seconds", {"symbol": "BTCUSDT"}, None),
        ("binance_stream_connections", {}, 1),
        ("binance_stream_reconnects_total", {"reason": "server_shutdown"}, 1),
        ("binance_stream_reconnects_total", {"reason": "silent"}, 0),
        ("binance_stream_messages_total", {"stream": "ticker"}, 12),
        ("binance_stream_invalid_messages_total", {}, 3),
        ("binance_stream_event_lag_seconds_bucket", {"le": "0.01"}, 200),
        ("binance_stream_event_lag_seconds_bucket", {"le": "0.1"}, 245),
        ("binance_stream_event_lag_seconds_bucket", {"le": "+Inf"}, 250),
        ("binance_stream_event_lag_seconds_count", {}, 250),
        ("binance_stream_event_lag_seconds_sum", {}, 4.5),
        ("binance_exporter_weight_budget", {}, 1200),
        ("binance_exporter_recorded_bytes_total", {}, 123_456),
        ("binance_exporter_recording_errors_total", {}, 2),
        ("binance_mid_price", {"symbol": "ETHBTC"}, 0.05123),
        ("binance_mid_price", {"symbol": "WBTCBTC"}, None),
        ("binance_micro_price", {"symbol": "ETHBTC"}, 0.051231),
        ("binance_order_book_depth_notional", {"symbol": "ETHBTC", "side": "bid", "within_bps": "10"}, 12.5),
        ("binance_order_book_depth_notional", {"symbol": "ETHBTC", "side": "ask", "within_bps": "500"}, 700.25),
        ("binance_order_book_depth_notional", {"symbol": "ETHBTC", "side": "ask", "within_bps": "10"}, None),
        ("binance_order_book_imbalance", {"symbol": "ETHBTC", "levels": "1"}, -0.25),
        ("binance_order_book_imbalance", {"symbol": "WBTCBTC", "levels": "20"}, 1),
        ("binance_trades_total", {"symbol": "ETHBTC", "taker_side": "buy"}, 12),
        ("binance_trades_total", {"symbol": "ETHBTC", "taker_side": "sell"}, 3),
        ("binance_trades_total", {"symbol": "BTCUSDT", "taker_side": "sell"}, 0),
        ("binance_trade_volume_total", {"symbol": "ETHBTC", "taker_side": "buy"}, 1.5),
        ("binance_trade_quote_volume_total", {"symbol": "ETHBTC", "taker_side": "sell"}, 0.0125),
        ("binance_last_trade_price", {"symbol": "ETHBTC"}, 0.05),
        ("binance_last_trade_price", {"symbol": "BTCUSDT"}, None),
        ("binance_trade_backfilled_total", {"symbol": "ETHBTC"}, 7),
        ("binance_trade_gaps_total", {"symbol": "ETHBTC"}, 2),
        ("binance_stream_messages_total", {"stream": "trade"}, 0),
    ],
)
def test_sample_values_are_exact(name, labels, value):
    assert registry_for(EVERY_FAMILY).get_sample_value(name, labels) == value


def test_every_family_has_help_with_a_unit_or_meaning_and_a_type():
    families = {f.name: f for f in registry_for(SNAPSHOT).collect()}
    assert families["binance_spread"].type == "gauge"
    assert families["binance_exporter_api_requests"].type == "counter"
    assert "quote asset units" in families["binance_spread"].documentation
    assert "refreshed every update interval" in families["binance_order_book_notional"].documentation
    assert all(f.documentation for f in families.values())


def test_a_symbol_leaving_the_top_list_disappears_from_metrics():
    registry = CollectorRegistry()
    current = [SNAPSHOT]
    registry.register(SnapshotCollector(lambda: current[0]))
    assert registry.get_sample_value("binance_spread", {"symbol": "PEPEUSDT"}) is not None
    current[0] = Snapshot(
        cycle=3,
        rankings=(SNAPSHOT.rankings[0], Ranking("trade_count", "USDT", (BTCUSDT,))),
        notionals=SNAPSHOT.notionals,
        spreads=SNAPSHOT.spreads[:1],
        up=True,
    )
    for name in ("binance_spread", "binance_best_bid_price", "binance_trades_24h", "binance_volume_24h"):
        assert registry.get_sample_value(name, {"symbol": "PEPEUSDT"}) is None, name
    rank_labels = {"ranking": "trade_count", "quote_asset": "USDT", "symbol": "PEPEUSDT"}
    assert registry.get_sample_value("binance_top_symbol_rank", rank_labels) is None
    assert registry.get_sample_value("binance_spread", {"symbol": "BTCUSDT"}) == 0.01


ETHUSDC = Ticker24h("ETHUSDC", D("52000"), D("180000000.5"), 420733)

# A list per quote asset: BTCUSDT is in a quote volume and a trade count list, BUSD's list is empty.
MANY_LISTS = replace(
    SNAPSHOT,
    top_lists=top_lists(("BTC", "USDT", "BUSD"), ("USDT", "USDC")),
    rankings=(
        SNAPSHOT.rankings[0],
        Ranking("quote_volume", "USDT", (BTCUSDT,)),
        Ranking("quote_volume", "BUSD", ()),
        SNAPSHOT.rankings[1],
        Ranking("trade_count", "USDC", (ETHUSDC,)),
    ),
    notionals=SNAPSHOT.notionals + (BookNotional("BTCUSDT", D("5000000.25"), D("4000000"), 2),),
    spreads=SNAPSHOT.spreads + (spread_reading("ETHUSDC", "3432.87", "3432.89"),),
)


def test_each_list_has_its_ranks_under_its_quote_asset_and_each_symbol_its_series_once():
    samples = [sample for family in scraped_families(MANY_LISTS) for sample in family.samples]
    ranks = {
        (s.labels["ranking"], s.labels["quote_asset"], s.labels["symbol"]): s.value
        for s in samples
        if s.name == "binance_top_symbol_rank"
    }
    assert ranks == {
        ("quote_volume", "BTC", "ETHBTC"): 1,
        ("quote_volume", "BTC", "WBTCBTC"): 2,
        ("quote_volume", "USDT", "BTCUSDT"): 1,
        ("trade_count", "USDT", "BTCUSDT"): 1,
        ("trade_count", "USDT", "PEPEUSDT"): 2,
        ("trade_count", "USDC", "ETHUSDC"): 1,
    }  # nothing for BUSD
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
    assert len(keys) == len(set(keys))  # BTCUSDT's 24 h values once, though it is in two lists
    registry = registry_for(MANY_LISTS)
    assert registry.get_sample_value("binance_order_book_notional", {"symbol": "BTCUSDT", "side": "bid"}) == 5000000.25
    assert registry.get_sample_value("binance_spread", {"symbol": "BTCUSDT"}) == 0.01
    assert registry.get_sample_value("binance_spread", {"symbol": "ETHUSDC"}) == pytest.approx(0.02)
    assert registry.get_sample_value("binance_trades_24h", {"symbol": "ETHUSDC"}) == 420733
    assert registry.get_sample_value("binance_quote_volume_24h", {"symbol": "BTCUSDT"}) == 1340000000.5


def test_an_empty_snapshot_exports_down_and_no_market_series():
    registry = registry_for(Snapshot())
    assert registry.get_sample_value("binance_up") == 0
    assert registry.get_sample_value("binance_exporter_last_update_timestamp_seconds") == 0
    assert registry.get_sample_value("binance_exporter_api_weight_used") is None
    market_samples = [
        s for f in registry.collect() for s in f.samples if f.name.startswith("binance_") and "symbol" in s.labels
    ]
    assert market_samples == []


def test_metrics_page_renders_each_snapshot_once_and_appends_process_metrics(monkeypatch):
    renders = []
    original = SnapshotCollector.collect
    monkeypatch.setattr(SnapshotCollector, "collect", lambda self: renders.append(1) or original(self))
    current = [SNAPSHOT]
    page = MetricsPage(lambda: current[0])
    first, content_type = page.render(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert b'binance_spread{symbol="BTCUSDT"} 0.01' in first
    assert b"process_resident_memory_bytes" in first
    for _ in range(3):
        page.render(None)
    assert len(renders) == 1  # the same snapshot is not rendered again
    current[0] = Snapshot(cycle=3, up=False)
    after, _ = page.render(None)
    assert len(renders) == 2
    assert b"binance_spread{" not in after and b"binance_up 0.0" in after


def test_metrics_page_in_openmetrics_ends_once_with_eof():
    page = MetricsPage(lambda: SNAPSHOT)
    body, content_type = page.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.count(b"# EOF\n") == 1 and body.endswith(b"# EOF\n")
    assert b'binance_spread{symbol="BTCUSDT"} 0.01' in body and b"process_cpu_seconds_total" in body


def scraped_families(snapshot):
    """The families of ``snapshot`` as a scraper parses them from the text exposition."""
    return list(text_string_to_metric_families(generate_latest(registry_for(snapshot)).decode()))


def readme_metric_table():
    """The README's metric table: {name: (type, unit, refreshed)}, without the process metrics."""
    readme = Path(ROOT, "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Metrics\n") :].split("\n## ")[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()]
    return {row[0].strip("`"): (row[1], row[4], row[5]) for row in rows if row[0].startswith("`binance_")}


def test_every_help_says_the_unit_and_how_often_it_refreshes():
    for family in scraped_families(EVERY_FAMILY):  # all of them: the README test below checks
        assert HELP_ENDING.search(family.documentation), f"{family.name}: {family.documentation}"


def test_the_readme_metric_table_lists_every_family_with_its_type_unit_and_refresh_as_the_help_says():
    table = readme_metric_table()
    families = scraped_families(EVERY_FAMILY)
    exposed = {f.name + ("_total" if f.type == "counter" else ""): f for f in families}
    assert set(table) == set(exposed)
    for name, (kind, unit, refreshed) in table.items():
        ending = HELP_ENDING.search(exposed[name].documentation)
        assert (kind, unit, refreshed) == (
            exposed[name].type,
            ending["unit"],
            ending["refreshed"].removeprefix("refreshed "),
        ), name


def test_build_info_has_one_series_of_the_versions_running():
    (family,) = [f for f in registry_for(Snapshot()).collect() if f.name == "binance_exporter_build_info"]
    ((labels, value),) = [(sample.labels, sample.value) for sample in family.samples]
    assert set(labels) == {"version", "python_version", "binance_connector_version"} and value == 1
    assert re.fullmatch(r"3\.\d+\.\d+\S*", labels["python_version"])  # e.g. 3.11.2, not "3.11.2 (main, ...)"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", labels["binance_connector_version"])


def test_the_version_of_a_distribution_that_is_not_installed_is_unknown():
    assert distribution_version("binance-exporter-no-such-distribution") == "unknown"


def test_the_update_interval_is_exported_once_a_cycle_has_run():
    name = "binance_exporter_update_interval_seconds"
    assert registry_for(Snapshot()).get_sample_value(name) is None
    assert registry_for(Snapshot(update_interval=2.5)).get_sample_value(name) == 2.5


PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, TEXT_FORMAT),
        ("", TEXT_FORMAT),
        ("text/plain;version=0.0.4", TEXT_FORMAT),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", TEXT_FORMAT),
        ("*/*", TEXT_FORMAT),
        ("application/openmetrics-text", OPENMETRICS_FORMAT),
        ("application/openmetrics-text; version=1.0.0", OPENMETRICS_FORMAT),
        ('Application/OpenMetrics-Text; Version="1.0.0"', OPENMETRICS_FORMAT),
        (PROMETHEUS_3_ACCEPT, OPENMETRICS_FORMAT),
        ("application/openmetrics-text; version=1.0.0x", TEXT_FORMAT),
        ("application/openmetrics-text; version=1.0.7", TEXT_FORMAT),
        ("application/openmetrics-text; version=1.1.0\r\n x=1; escaping=dots", TEXT_FORMAT),
        (";;=,,;version", TEXT_FORMAT),
    ],
)
def test_the_format_is_openmetrics_1_0_0_when_accepted_else_text(accept, expected):
    assert choose_format(accept) is expected


def test_unique_accept_versions_render_each_snapshot_at_most_once_per_format(monkeypatch):
    renders = []
    original = SnapshotCollector.collect
    monkeypatch.setattr(SnapshotCollector, "collect", lambda self: renders.append(1) or original(self))
    page = MetricsPage(lambda: SNAPSHOT)
    content_types = {page.render(f"application/openmetrics-text; version=1.0.{n}")[1] for n in range(1000)}
    assert len(renders) == 2  # version 1.0.0 as OpenMetrics, every other as text: nothing cached per client
    assert content_types == {TEXT_FORMAT.content_type, OPENMETRICS_FORMAT.content_type}


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=1.0.0x",
        "application/openmetrics-text; version=1.1.0\r\n x=1; escaping=dots",
        "application/openmetrics-text; version=1.0.5; escaping=allow-utf-8",
    ],
)
def test_an_invalid_or_unknown_accept_is_served_as_text_with_our_content_type(accept):
    body, content_type = MetricsPage(lambda: SNAPSHOT).render(accept)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b'binance_spread{symbol="BTCUSDT"} 0.01' in body and b"# EOF" not in body


def test_a_shard_exports_its_own_symbols_places_in_the_lists_and_says_which_shard_it_is():
    ethbtc_shard = next(shard for shard in (Shard(1, 2), Shard(2, 2)) if shard.owns("ETHBTC"))
    other = Shard(3 - ethbtc_shard.index, 2)
    registries = {shard: registry_for(replace(EVERY_FAMILY, shard=shard)) for shard in (ethbtc_shard, other)}
    labels = {"ranking": "quote_volume", "quote_asset": "BTC", "symbol": "ETHBTC"}
    assert registries[ethbtc_shard].get_sample_value("binance_top_symbol_rank", labels) == 1
    assert registries[other].get_sample_value("binance_top_symbol_rank", labels) is None
    assert registries[other].get_sample_value("binance_volume_24h", {"symbol": "ETHBTC"}) is None
    for shard, registry in registries.items():
        ranks = [
            sample.labels["symbol"]
            for family in registry.collect()
            if family.name == "binance_top_symbol_rank"
            for sample in family.samples
        ]
        assert all(shard.owns(symbol) for symbol in ranks)
        info = {"shard": str(shard.index), "shards": "2"}
        assert registry.get_sample_value("binance_exporter_shard_info", info) == 1
    assert registry_for(SNAPSHOT).get_sample_value("binance_exporter_shard_info", {"shard": "1", "shards": "1"}) == 1


def test_each_live_book_has_its_assets_to_join_on():
    snapshot = replace(EVERY_FAMILY, listings=(SymbolInfo("ETHBTC", "TRADING", "ETH", "BTC"),))
    labels = {"symbol": "ETHBTC", "base_asset": "ETH", "quote_asset": "BTC"}
    assert registry_for(snapshot).get_sample_value("binance_symbol_info", labels) == 1
    assert registry_for(snapshot).get_sample_value("binance_stream_messages_total", {"stream": "top"}) == 0


def test_a_snapshot_prepared_as_it_is_published_is_served_to_prometheus_without_rendering(monkeypatch):
    renders = []
    original = SnapshotCollector.collect
    monkeypatch.setattr(SnapshotCollector, "collect", lambda self: renders.append(1) or original(self))
    page = MetricsPage(lambda: EVERY_FAMILY)
    page.prepare(EVERY_FAMILY)
    assert len(renders) == 1
    body, _ = page.render("application/openmetrics-text; version=1.0.0", compress=True)
    assert len(renders) == 1  # the scrape took what was prepared
    assert b'binance_spread{symbol="BTCUSDT"} 0.01' in gzip.decompress(body)


def test_scrapes_while_a_snapshot_is_prepared_are_answered_at_once_with_the_previous_one(monkeypatch):
    newer = replace(EVERY_FAMILY, cycle=3, spreads=())
    current = [EVERY_FAMILY]
    page = MetricsPage(lambda: current[0])
    page.prepare(EVERY_FAMILY)
    rendering, release = threading.Event(), threading.Event()
    original = SnapshotCollector.collect

    def slow_collect(self):
        if self._current() is newer:  # pylint: disable=protected-access
            rendering.set()
            release.wait(30)
        return original(self)

    monkeypatch.setattr(SnapshotCollector, "collect", slow_collect)
    current[0] = newer  # published: the scheduler's snapshot is the newer one, still being prepared
    preparing = threading.Thread(target=page.prepare, args=(newer,))
    preparing.start()
    try:
        assert rendering.wait(30)
        body, _ = page.render("application/openmetrics-text; version=1.0.0")  # does not wait for the render
        assert b'binance_spread{symbol="BTCUSDT"} 0.01' in body  # the previous snapshot's page
    finally:
        release.set()
        preparing.join(30)
    body, _ = page.render("application/openmetrics-text; version=1.0.0")
    assert b"binance_spread{" not in body  # the newer one's, once prepared


def whole_market_snapshot(symbols=300):
    """EVERY_FAMILY with the live books of ``symbols`` symbols, as the whole market's are."""
    names = [f"S{n}USDT" for n in range(symbols)]
    micro = Microstructure(D("1.5"), D("1.50001"), {("bid", 10): D("12.5"), ("ask", 500): D("700.25")}, {1: D("0.1")})
    return replace(
        EVERY_FAMILY,
        books=tuple(BookState(name, True, 1000, 998, 1795236344.125, (("gap", 1),)) for name in names),
        microstructure=tuple(MicroReading(name, micro, 1) for name in names),
        listings=tuple(SymbolInfo(name, "TRADING", name[:-4], "USDT") for name in names),
    )


@pytest.mark.parametrize(
    "snapshot", [SNAPSHOT, EVERY_FAMILY, whole_market_snapshot()], ids=["some", "every", "whole market"]
)
def test_openmetrics_is_written_as_prometheus_client_writes_it(snapshot):
    written = openmetrics_text.generate_latest(registry_for(snapshot))
    assert written == openmetrics.generate_latest(registry_for(snapshot))


@pytest.mark.parametrize(
    "family, sample",
    [
        ("binance_odd", ("binance_odd", {"asset": 'a "quoted"\\ back\nslash'}, 1.5)),  # escaped values
        ("binance_odd", ("binance_odd", {"__reserved": "x"}, 2.0)),
        ("binance_odd", ("binance_odd", {}, float("inf"))),
        ("binance:colon", ("binance:colon", {}, 1.0)),  # outside the legacy set: prometheus-client writes it
        ("binance_odd", ("binance_odd", {"2digit": "x"}, 1.0)),
        ("binance_odd", ("binance_odd", {"sym": "x"}, 1.0, 1795236344.5)),  # a timestamp
    ],
)
def test_openmetrics_of_any_family_is_prometheus_clients(family, sample):
    class Odd:  # pylint: disable=too-few-public-methods  # a collector of one family
        """One family of one sample."""

        def collect(self):
            metric = Metric(family, 'help with "quotes" and \\ and\nnewline', "gauge")
            metric.add_sample(*sample)
            yield metric

    registry = CollectorRegistry()
    registry.register(Odd())
    assert openmetrics_text.generate_latest(registry) == openmetrics.generate_latest(registry)
