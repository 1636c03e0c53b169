"""Stream mode end to end: the real exporter process against the fake
Binance's REST and websocket servers, through every stream fault. After
each, the market is frozen and the exported values must equal the
simulated market's true books; only the symbol a fault hit is taken
again, and Binance's limits are never broken."""

from __future__ import annotations

import json
import signal
import sys

import pytest

from binance_exporter.binance.responses import parse_agg_trades
from binance_exporter.fake.simulator import BinanceSimulator
from binance_exporter.market.definitions import BOOK_DEPTH, Shard, side_notional
from binance_exporter.market.microstructure import BookView, SideFlow, microstructure

from .helpers import (
    free_port,
    http_get,
    post,
    scrape,
    start_make,
    start_module,
    stop_make,
    stop_process,
    true_best_levels,
    wait_for,
)
from .test_stack import promtool

EXTRA = "BNBUSDT"  # a --symbols symbol, in no top list
RECONNECTS = "binance_stream_reconnects_total"


def samples(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of the exporter's /metrics."""
    return scrape(f"http://127.0.0.1:{port}")


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def tracked(found: dict) -> set[str]:
    return {dict(labels)["symbol"] for name, labels in found if name == "binance_order_book_in_sync"}


def all_in_sync(port: int) -> dict | None:
    found = samples(port)
    symbols = tracked(found)
    ok = symbols and all(value(found, "binance_order_book_in_sync", symbol=s) == 1 for s in symbols)
    return found if ok and value(found, "binance_up") == 1 else None


def equals_truth(simulator: BinanceSimulator, port: int) -> bool:
    """Whether every tracked book's exported Q3 and top equal the true book's."""
    found = all_in_sync(port)
    if not found:
        return False
    for symbol in tracked(found):
        _, bids, asks = true_best_levels(simulator, symbol, BOOK_DEPTH)
        expected = {
            ("binance_order_book_notional", "bid"): float(side_notional(bids, "bid")),
            ("binance_order_book_notional", "ask"): float(side_notional(asks, "ask")),
        }
        for (name, side), number in expected.items():
            if value(found, name, symbol=symbol, side=side) != number:
                return False
        if value(found, "binance_best_bid_price", symbol=symbol) != float(bids[0][0]):
            return False
        if value(found, "binance_best_ask_price", symbol=symbol) != float(asks[0][0]):
            return False
        if not microstructure_equals_truth(simulator, found, symbol):
            return False
    return True


def microstructure_equals_truth(simulator: BinanceSimulator, found: dict, symbol: str) -> bool:
    """Whether the symbol's exported mid, micro price, imbalances and depth
    bands equal those of its true book; a band may be absent: past the
    book's horizon (BTCUSDT's 1000 best levels a side, a cent or two
    apart, span less than 10 bps)."""
    _, bids, asks = true_best_levels(simulator, symbol, 100_000)
    truth = microstructure(BookView(bids, asks))
    if value(found, "binance_mid_price", symbol=symbol) != float(truth.mid):
        return False
    if value(found, "binance_micro_price", symbol=symbol) != float(truth.micro):
        return False
    for levels, number in truth.imbalance.items():
        if value(found, "binance_order_book_imbalance", symbol=symbol, levels=str(levels)) != float(number):
            return False
    for (side, bps), number in truth.depth.items():
        exported = value(found, "binance_order_book_depth_notional", symbol=symbol, side=side, within_bps=str(bps))
        if exported is not None and exported != float(number):
            return False
    return True


def resyncs(found: dict) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["symbol"], dict(labels)["reason"]): number
        for (name, labels), number in found.items()
        if name == "binance_order_book_resyncs_total" and number
    }


@pytest.fixture(name="exporter")
def stream_exporter(streaming):
    port = free_port()
    process = start_module(
        "binance_exporter",
        *("--source", "stream", "--port", str(port), "--address", "127.0.0.1"),
        *("--base-url", streaming.url, "--stream-url", streaming.stream_url, "--symbols", EXTRA),
        # Room for every book to be taken again more than once a minute, with no wait.
        *("--weight-budget", "5000"),
        # Rankings from the start only: a book that joins while the market
        # is frozen for a comparison gets no event to sync from.
        *("--update-interval", "0.5", "--rank-interval", "3600", "--loglevel", "INFO"),
    )
    try:
        wait_for(lambda: all_in_sync(port), timeout=60)
        yield port, process
    finally:
        sys.stderr.write(stop_process(process)[2][-5000:])  # the exporter's log, shown if the test failed


def settle_and_compare(streaming: BinanceSimulator, port: int) -> dict:
    """Waits for every book to be in sync, freezes the market, waits for
    the exported values to equal the truth, lets it move again; returns
    the samples."""
    wait_for(lambda: all_in_sync(port), timeout=30)
    post(streaming, "/sim/market", {"frozen": True})
    try:
        wait_for(lambda: equals_truth(streaming, port), timeout=30)
        return samples(port)
    finally:
        post(streaming, "/sim/market", {"frozen": False})


def test_every_tracked_symbol_has_a_live_book_equal_to_the_truth_at_no_request_weight(streaming, exporter):
    port, _ = exporter
    found = settle_and_compare(streaming, port)
    symbols = tracked(found)
    assert EXTRA in symbols and {"ETHBTC", "BTCUSDT"} <= symbols and len(symbols) == 11
    for symbol in symbols:  # Q3, Q4 and Q5 for every live book, whichever list it is in
        assert value(found, "binance_spread", symbol=symbol) is not None
        assert value(found, "binance_order_book_levels", symbol=symbol, side="bid") > 0
        assert value(found, "binance_order_book_last_update_timestamp_seconds", symbol=symbol) > 0
    assert resyncs(found) == {}
    assert value(found, "binance_stream_connections") == 1
    bands = {(dict(labels)["side"], dict(labels)["within_bps"]) for (name, labels) in found
             if name == "binance_order_book_depth_notional" and dict(labels)["symbol"] == "ETHBTC"}  # fmt: skip
    assert bands == {(side, bps) for side in ("bid", "ask") for bps in ("10", "25", "50", "100", "200", "500")}
    depth_requests = streaming.stats()["requests"].get("/api/v3/depth", 0)
    wait_for(lambda: value(samples(port), "binance_stream_messages_total", stream="depth") > 100)
    assert streaming.stats()["requests"].get("/api/v3/depth", 0) == depth_requests  # in sync: no polling
    assert streaming.stats()["violations"] == 0 and streaming.stats()["stream_violations"] == 0


@pytest.mark.parametrize(
    "fault, symbol_resynced, reconnect",
    [
        ({"action": "gap", "symbol": "BTCUSDT", "times": 1}, ("BTCUSDT", "gap"), None),
        ({"action": "sweep", "symbol": "ETHBTC", "side": "bids", "fraction": 0.9}, ("ETHBTC", "horizon"), None),
        ({"action": "duplicate", "symbol": "BTCUSDT", "times": 3}, None, None),
        ({"action": "garbage", "times": 2}, None, None),
        ({"action": "shutdown", "seconds": 3, "times": 1}, None, "server_shutdown"),
        ({"action": "close", "code": 1001, "times": 1}, None, "closed"),
        ({"action": "drop", "times": 1}, None, "error"),
    ],
    ids=["gap", "sweep", "duplicate", "garbage", "server-shutdown", "close-1001", "drop"],
)
def test_each_stream_fault_is_survived_with_exact_values_and_only_its_symbol_resynced(
    streaming, exporter, fault, symbol_resynced, reconnect
):
    port, _ = exporter
    post(streaming, "/sim/faults", {"path": "stream", **fault})
    if symbol_resynced:
        symbol, reason = symbol_resynced
        wait_for(lambda: value(samples(port), "binance_order_book_resyncs_total", symbol=symbol, reason=reason))
    if reconnect:
        wait_for(lambda: value(samples(port), "binance_stream_reconnects_total", reason=reconnect), timeout=30)
    if fault["action"] == "garbage":
        wait_for(lambda: value(samples(port), "binance_stream_invalid_messages_total") == 2)
    found = settle_and_compare(streaming, port)
    lost = resyncs(found)
    if symbol_resynced:
        assert set(lost) == {symbol_resynced}  # that symbol only; every other book kept streaming
    elif fault["action"] in ("drop", "close"):
        assert {reason for _, reason in lost} <= {"reconnect"}  # a lost connection costs only what it lost
    else:
        assert lost == {}  # a duplicate, garbage or a gapless rotation loses nothing
    replaced = {dict(labels)["reason"] for (name, labels), n in found.items() if name == RECONNECTS and n}
    assert replaced == ({reconnect} if reconnect else set())  # one connection replaced, for that reason only
    assert streaming.stats()["violations"] == 0 and streaming.stats()["stream_violations"] == 0


def test_a_snapshot_older_than_the_stream_is_taken_again(streaming):
    post(streaming, "/sim/faults", {"path": "/api/v3/depth", "lag_changes": 500, "times": 3})
    port = free_port()
    process = start_module(
        "binance_exporter",
        *("--source", "stream", "--port", str(port), "--address", "127.0.0.1", "--update-interval", "0.5"),
        *("--base-url", streaming.url, "--stream-url", streaming.stream_url),
    )
    try:
        wait_for(lambda: all_in_sync(port), timeout=60)
        settle_and_compare(streaming, port)
        assert streaming.stats()["statuses"].get("/api/v3/depth 200", 0) >= 10 + 3  # 3 old ones, taken again
    finally:
        status, _, err = stop_process(process)
    assert status == 0
    assert "order book snapshot older than the stream, taken again" in err


def test_sigterm_with_connections_open_exits_0(exporter):
    port, process = exporter
    assert value(samples(port), "binance_stream_connections") == 1
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_stream_mode_metrics_pass_promtool_check_metrics(exporter):
    port, _ = exporter
    _, _, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    assert b"binance_stream_event_lag_seconds_bucket" in metrics and b"binance_order_book_in_sync" in metrics
    result = promtool("check", "metrics", stdin=metrics.decode())
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def trade_history(streaming: BinanceSimulator, symbol: str, after: int) -> list:
    """Every aggregate trade of ``symbol`` after id ``after``, from the fake's REST history."""
    trades = []
    while True:
        _, _, body = http_get(f"{streaming.url}/api/v3/aggTrades?symbol={symbol}&fromId={after + 1}&limit=1000")
        page = parse_agg_trades(symbol, json.loads(body))
        trades += page
        if len(page) < 1000:
            return trades
        after = page[-1].agg_id


def flows_equal_history(streaming: BinanceSimulator, port: int, baselines: dict[str, int]) -> bool:
    """Whether each symbol's exported trade counters equal the sums of the
    fake's trade history after the trade its counting started from."""
    found = samples(port)
    for symbol, baseline in baselines.items():
        flows = {"buy": SideFlow(), "sell": SideFlow()}
        for trade in trade_history(streaming, symbol, baseline):
            flows[trade.taker_side] = flows[trade.taker_side].add(trade)
        for side, flow in flows.items():
            exported = (
                value(found, "binance_trades_total", symbol=symbol, taker_side=side),
                value(found, "binance_trade_volume_total", symbol=symbol, taker_side=side),
                value(found, "binance_trade_quote_volume_total", symbol=symbol, taker_side=side),
            )
            if exported != (flow.trades, float(flow.volume), float(flow.quote_volume)):
                return False
    return True


def test_trade_counters_equal_the_trade_history_after_trades_dropped_and_a_connection_lost(streaming, exporter):
    port, _ = exporter
    baselines = streaming.stats()["agg_trade_baselines"]  # the latest trade each symbol's counting starts after
    assert set(baselines) == tracked(samples(port))
    post(streaming, "/sim/faults", {"path": "stream", "action": "drop_trades", "symbol": "BTCUSDT", "times": 5})
    wait_for(lambda: value(samples(port), "binance_trade_backfilled_total", symbol="BTCUSDT") >= 5, timeout=30)
    post(streaming, "/sim/faults", {"path": "stream", "action": "drop", "times": 1})
    wait_for(lambda: value(samples(port), RECONNECTS, reason="error") == 1, timeout=30)
    wait_for(lambda: all_in_sync(port), timeout=30)
    post(streaming, "/sim/market", {"frozen": True})
    wait_for(lambda: flows_equal_history(streaming, port, baselines), timeout=30)
    found = samples(port)
    assert sum(n for (name, _), n in found.items() if name == "binance_trade_gaps_total") == 0
    assert value(found, "binance_stream_messages_total", stream="trade") > 0
    last = trade_history(streaming, "BTCUSDT", baselines["BTCUSDT"])[-1]
    assert value(found, "binance_last_trade_price", symbol="BTCUSDT") == float(last.price)
    assert streaming.stats()["violations"] == 0 and streaming.stats()["stream_violations"] == 0


def test_the_whole_market_has_a_live_book_of_every_trading_symbol_equal_to_the_truth_within_the_budget(streaming):
    port = free_port()
    process = start_module(
        "binance_exporter",
        *("--source", "stream", "--port", str(port), "--address", "127.0.0.1", "--symbols", "all"),
        *("--base-url", streaming.url, "--stream-url", streaming.stream_url, "--shard", "1/1"),
        # 28 snapshots of weight 25 or 5 and 28 trade baselines of weight 4 fit; the requests are paced, not refused.
        *("--weight-budget", "1000", "--update-interval", "0.5", "--rank-interval", "3600"),
    )
    try:
        trading = {s for s, listed in streaming.market.symbols.items() if listed.status == "TRADING"}
        wait_for(lambda: tracked(samples(port)) == trading, timeout=60)
        found = settle_and_compare(streaming, port)
        assert tracked(found) == trading and len(trading) == 28
        assert {dict(labels)["symbol"] for name, labels in found if name == "binance_symbol_info"} == trading
        assert value(found, "binance_exporter_shard_info", shard="1", shards="1") == 1
        assert value(found, "binance_stream_messages_total", stream="top") > 0
        assert value(found, "binance_stream_connections") == 1  # 85 streams: one connection
        skipped = [n for (name, _), n in found.items() if name == "binance_exporter_requests_skipped_total"]
        assert not any(skipped)  # paced under the budget: nothing refused
        stats = streaming.stats()
        assert stats["violations"] == 0 and stats["stream_violations"] == 0
        assert stats["requests"]["/api/v3/depth"] >= len(trading)
    finally:
        sys.stderr.write(stop_process(process)[2][-5000:])


def test_make_demo_market_has_the_top_of_every_book_of_its_shard_of_the_whole_fake_market():
    port, sim_port = free_port(), free_port()
    demo = start_make("demo-market", f"PORT={port}", f"SIM_PORT={sim_port}", f"SIM_STREAM_PORT={free_port()}",
                      "ARGS=--shard 2/3")  # fmt: skip
    shard = Shard(2, 3)
    try:
        info = wait_for(lambda: http_get(f"http://127.0.0.1:{sim_port}/api/v3/exchangeInfo")[2], timeout=60)
        trading = {s["symbol"] for s in json.loads(info)["symbols"] if s["status"] == "TRADING"}
        mine = {symbol for symbol in trading if shard.owns(symbol)}
        assert len(trading) >= 1300 and len(trading) / 3 * 0.9 < len(mine) < len(trading) / 3 * 1.1

        def tops() -> set[str]:
            found = samples(port)
            return {dict(labels)["symbol"] for name, labels in found if name == "binance_best_bid_price"}

        wait_for(lambda: tops() == mine, timeout=60)  # every top within seconds, no snapshot needed
        found = samples(port)
        assert value(found, "binance_exporter_shard_info", shard="2", shards="3") == 1
        assert {dict(labels)["symbol"] for name, labels in found if name == "binance_symbol_info"} == mine
        assert value(found, "binance_stream_connections") == 2  # 3 streams a symbol, 1024 a connection
    finally:
        status, _, err = stop_make(demo)
    assert status in (0, 2, -15), err  # stopped by the test
    assert f"the whole market: {len(mine)} TRADING symbols in shard 2/3" in err
