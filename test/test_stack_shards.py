"""The whole market split between two replicas, as the compose file's
shards profile runs it (docker/docker-compose.yml, docker/prometheus-shards.yml):
the fake Binance, two exporters with --symbols all, --shard 1/2 and 2/2, and a
real Prometheus scraping both with the stack's alerts and recording rules.
Every TRADING symbol is kept by exactly one replica, the market's recording
rules add both up exactly as the replicas export, every query of the market
overview dashboard answers, and a replica that stops is a missing shard.
"""

import json
import tempfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from .helpers import free_port, http_get, post, scrape, start_module, stop_process, wait_for
from .test_stack import (
    MARKET_DASHBOARD,
    alert_rules,
    dashboard_queries,
    query,
    recording_rules,
    start_prometheus,
    tool,
    write_prometheus_config,
)

# The fake Binance's listed symbols and 120 synthetic ones, every book moving at every step, so that
# each syncs within seconds (--whole-market's 1,500 symbols, most of them changing rarely, take minutes
# and more than these two cores). Its weight limit is Binance's per IP, shared by both replicas as on
# one host: all their first snapshots fit one minute of it.
MARKET = ("--extra-symbols", "60", "--tick-seconds", "0.5")
BUDGET = "5400"  # each replica's, as in the compose file's shards profile


@pytest.fixture(scope="module")
def sharded_stack():
    """The fake Binance, two exporters keeping the whole market as shard 1/2
    and 2/2, and a real Prometheus scraping both, with a configuration
    derived from docker/prometheus-shards.yml."""
    tool("prometheus")
    binance = start_module("binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0", *MARKET)
    replicas, prometheus_process = [], None
    with tempfile.TemporaryDirectory() as workdir:
        try:
            words = wait_for(binance.stdout.readline).split()
            binance_url, stream_url = words[-1], words[4].rstrip(",")
            instances = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
            for shard, instance in enumerate(instances, start=1):
                replicas.append(
                    start_module(
                        "binance_exporter.exporter",
                        *("--source", "stream", "--symbols", "all", "--shard", f"{shard}/2"),
                        *("--base-url", binance_url, "--stream-url", stream_url, "--weight-budget", BUDGET),
                        *("--port", instance.split(":")[1], "--address", "127.0.0.1", "--update-interval", "1"),
                        # A line per book synced would fill the unread pipe: warnings only.
                        *("--loglevel", "WARNING"),
                    )
                )
            port = free_port()
            write_prometheus_config(Path(workdir, "prometheus.yml"), port, instances, "prometheus-shards.yml")
            prometheus_process = start_prometheus(workdir, port)
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: http_get(url + "/-/ready")[0] == 200, timeout=30)
            _, _, body = http_get(binance_url + "/api/v3/exchangeInfo")
            trading = {s["symbol"]: s["quoteAsset"] for s in json.loads(body)["symbols"] if s["status"] == "TRADING"}
            yield {
                "prometheus": url,
                "instances": instances,
                "replicas": replicas,
                "binance": binance_url,
                "trading": trading,
            }
        finally:
            for process in (prometheus_process, *replicas, binance):
                if process is not None:
                    stop_process(process)


def samples(stack, expr):
    """The answer to an instant query: each series' labels (but its name) and value."""
    status, body = query(stack, expr)
    assert status == 200 and body["status"] == "success", f"{expr}: {body}"
    return {
        tuple(sorted((k, v) for k, v in series["metric"].items() if k != "__name__")): float(series["value"][1])
        for series in body["data"]["result"]
    }


def by_label(stack, expr, label):
    """An instant query's values by one label, which tells its series apart."""
    found = samples(stack, expr)
    values = {dict(labels)[label]: value for labels, value in found.items()}
    assert len(values) == len(found), found
    return values


def shard_of(symbol, shards=2):
    """The shard that keeps ``symbol``, by --shard's definition (README): CRC-32 of the name mod N, plus 1."""
    return str(zlib.crc32(symbol.encode()) % shards + 1)


def test_every_trading_symbol_is_kept_by_exactly_one_of_the_two_shards(sharded_stack):
    trading = sharded_stack["trading"]
    assert len(trading) > 100

    def counts_once_all_are_there():
        counts = by_label(sharded_stack, "count by (symbol) (binance_symbol_info)", "symbol")
        return counts if counts.keys() == trading.keys() else None

    counts = wait_for(counts_once_all_are_there, timeout=30)
    assert set(counts.values()) == {1.0}
    assert not samples(sharded_stack, "count by (symbol) (binance_symbol_info) > 1")
    kept = {}
    for labels in samples(sharded_stack, "binance_symbol_info"):
        series = dict(labels)
        assert series["quote_asset"] == trading[series["symbol"]]
        kept.setdefault(series["instance"], set()).add(series["symbol"])
    first, second = sharded_stack["instances"]
    assert kept[first] == {s for s in trading if shard_of(s) == "1"}
    assert kept[second] == {s for s in trading if shard_of(s) == "2"}
    assert kept[first] and kept[second] and kept[first] | kept[second] == set(trading)


def test_each_replica_says_which_shard_it_is_and_no_shard_is_missing(sharded_stack):
    shards = wait_for(lambda: samples(sharded_stack, "binance_exporter_shard_info"), timeout=30)
    first, second = sharded_stack["instances"]
    assert {(dict(labels)["instance"], dict(labels)["shard"], dict(labels)["shards"]) for labels in shards} == {
        (first, "1", "2"),
        (second, "2", "2"),
    }
    wait_for(lambda: by_label(sharded_stack, "shards:binance_exporter_shard_info:count", "shards") == {"2": 2}, 30)
    missing = next(rule for rule in alert_rules() if rule["alert"] == "BinanceShardMissing")
    assert samples(sharded_stack, missing["expr"]) == {}


def test_every_market_dashboard_query_answers_over_both_shards(sharded_stack):
    for expr in dashboard_queries(MARKET_DASHBOARD):

        def answer(expr=expr):
            found = samples(sharded_stack, expr)
            shards = {dict(labels).get("shard") for labels in found} - {None}
            return found and shards in (set(), {"1", "2"})  # a query by shard has both

        assert wait_for(answer, timeout=40), f"no data for {expr}: {samples(sharded_stack, expr)}"


def test_every_recording_rule_records_over_both_shards(sharded_stack):
    for rule in recording_rules():
        assert wait_for(lambda name=rule["record"]: samples(sharded_stack, name), timeout=40), rule["record"]
    thinnest = samples(sharded_stack, "symbol:binance_order_book_notional:min")
    assert {dict(labels)["instance"] for labels in thinnest} == set(sharded_stack["instances"])


def books_of_the_replicas(stack):
    """Each symbol's series from both replicas' /metrics, by (name, side)."""
    books = {}
    for instance in stack["instances"]:
        for (name, labels), value in scrape(f"http://{instance}").items():
            labels = dict(labels)
            if "symbol" in labels:
                books.setdefault(labels["symbol"], {})[(name, labels.get("side"))] = value
    return books


def market_from_the_replicas(stack):
    """The market rules' values worked out here from both replicas' /metrics."""
    depth, bps, thinnest, in_sync = {}, {}, {}, {}
    for symbol, values in books_of_the_replicas(stack).items():
        quote = stack["trading"][symbol]
        if ("binance_order_book_in_sync", None) in values:
            in_sync.setdefault(shard_of(symbol), []).append(values[("binance_order_book_in_sync", None)])
        sides = {side: values.get(("binance_order_book_notional", side)) for side in ("bid", "ask")}
        if None not in sides.values():
            for side, notional in sides.items():
                depth[(quote, side)] = depth.get((quote, side), 0.0) + notional
            thinnest.setdefault(quote, []).append(min(sides.values()))
        if ("binance_spread", None) in values:
            mid = (values[("binance_best_bid_price", None)] + values[("binance_best_ask_price", None)]) / 2
            bps[symbol] = 10000 * values[("binance_spread", None)] / mid
    return depth, sorted(bps.values())[-20:], {q: sorted(v)[:10] for q, v in thinnest.items()}, in_sync


def rules_equal_the_replicas(stack):
    """Whether the market rules now hold what is worked out from both replicas' /metrics."""
    depth, widest, thinnest, in_sync = market_from_the_replicas(stack)
    recorded = samples(stack, "quote_asset_side:binance_order_book_notional:sum")
    recorded = {(dict(labels)["quote_asset"], dict(labels)["side"]): v for labels, v in recorded.items()}
    top = sorted(samples(stack, "symbol:binance_spread_per_mid_price:top20_bps").values())
    bottom = {}
    for labels, value in samples(stack, "symbol:binance_order_book_notional:bottom10_min").items():
        bottom.setdefault(dict(labels)["quote_asset"], []).append(value)
    return (
        recorded.keys() == depth.keys()
        and all(recorded[key] == pytest.approx(notional, rel=1e-12) for key, notional in depth.items())
        and top == pytest.approx(widest, rel=1e-12)
        and bottom.keys() == thinnest.keys()
        and all(sorted(bottom[quote]) == pytest.approx(books, rel=1e-12) for quote, books in thinnest.items())
        and by_label(stack, "shard:binance_order_book_in_sync:sum", "shard")
        == {shard: sum(states) for shard, states in in_sync.items()}
    )


def test_the_market_rules_add_up_both_shards_exactly_as_their_replicas_export(sharded_stack):
    trading = sharded_stack["trading"]
    wait_for(lambda: samples(sharded_stack, ":binance_order_book_in_sync:sum") == {(): len(trading)}, timeout=40)
    post(SimpleNamespace(url=sharded_stack["binance"]), "/sim/market", {"frozen": True})
    try:
        # Nothing moves any more: once Prometheus has scraped and evaluated what the replicas now
        # export, the rules hold what is worked out here from their /metrics.
        assert wait_for(lambda: rules_equal_the_replicas(sharded_stack), timeout=30)
        in_shard = {shard: sum(1 for s in trading if shard_of(s) == shard) for shard in ("1", "2")}
        assert by_label(sharded_stack, "shard:binance_symbol_info:count", "shard") == in_shard
        assert by_label(sharded_stack, "shard:binance_order_book_out_of_sync:sum", "shard") == {"1": 0, "2": 0}
        assert samples(sharded_stack, ":binance_symbol_info:count") == {(): len(trading)}
        assert samples(sharded_stack, ":binance_order_book_out_of_sync:ratio") == {(): 0}
        widest = samples(sharded_stack, "symbol:binance_spread_per_mid_price:top20_bps")
        assert len(widest) == 20 and {dict(labels)["instance"] for labels in widest} == set(sharded_stack["instances"])
    finally:
        post(SimpleNamespace(url=sharded_stack["binance"]), "/sim/market", {"frozen": False})


def test_a_replica_that_stops_leaves_its_shard_missing(sharded_stack):
    # Last of the sharded tests: it stops shard 2.
    stop_process(sharded_stack["replicas"][1])

    def pending():
        alerts = samples(sharded_stack, 'ALERTS{alertname="BinanceShardMissing"}')
        return {(dict(labels)["shards"], dict(labels)["alertstate"]) for labels in alerts}

    assert wait_for(lambda: pending() == {("2", "pending")}, timeout=30)
    shards = "shards:binance_exporter_shard_info:count"
    assert wait_for(lambda: by_label(sharded_stack, shards, "shards") == {"2": 1}, timeout=30)
    in_first = sum(1 for s in sharded_stack["trading"] if shard_of(s) == "1")
    assert wait_for(lambda: samples(sharded_stack, ":binance_symbol_info:count") == {(): in_first}, timeout=30)
