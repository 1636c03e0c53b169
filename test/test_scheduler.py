"""Update cycles against the fake Binance: what is fetched, what each
snapshot holds, and how failures, staleness and list changes show."""

import dataclasses
import gc
import json
import logging
import threading
import time
import tracemalloc
from decimal import Decimal as D

import pytest

from binance_exporter.binance.rest_client import RETRIES, WEIGHTS, BinanceClient
from binance_exporter.market.definitions import TopList, top_lists
from binance_exporter.binance.request_gate import RequestGate
from binance_exporter.binance.workers import WorkerPool
from binance_exporter.cycle.scheduler import BOOK_TICKER_BATCH, Schedule, Scheduler
from binance_exporter.fake.market import LISTED_SYMBOLS, Market, synthetic_symbols
from binance_exporter.fake.simulator import BinanceSimulator, Fault
from .helpers import FakeClock, http_get


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sim_clock(clock):
    """The fake Binance shares the scheduler's clock."""
    return clock


def client_for(simulator, clock, **kwargs):
    """A client whose gate runs on the test's clock and whose retries do not sleep."""
    return BinanceClient(simulator.url, timeout=1.0, gate=RequestGate(clock=clock, **kwargs), sleep=lambda _: None)


@pytest.fixture
def scheduler(simulator, clock):
    sched = Scheduler(client_for(simulator, clock), Schedule(10, 60), clock=clock, wall_clock=clock)
    yield sched
    sched.close()


def sim_stats(simulator):
    return simulator.stats()["requests"]


def expected_notional(levels):
    return sum((D(p) * D(q) for p, q in levels[:200]), D(0))


def test_first_cycle_answers_every_question(scheduler, simulator):
    snapshot = scheduler.run_cycle()
    assert snapshot.up
    by_name = {r.name: r for r in snapshot.rankings}
    assert by_name["quote_volume"].symbols == ("ETHBTC", "BNBBTC", "SOLBTC", "XRPBTC", "LINKBTC")
    assert by_name["trade_count"].symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BTCDOWNUSDT")
    for reading in snapshot.notionals:
        served = simulator.market.depth(reading.symbol, 200)
        assert reading.bid == expected_notional(served["bids"])
        assert reading.ask == expected_notional(served["asks"])
    assert [r.symbol for r in snapshot.notionals] == list(by_name["quote_volume"].symbols)
    for reading in snapshot.spreads:
        served = simulator.market.book_ticker(reading.symbol)
        assert reading.spread == D(served["askPrice"]) - D(served["bidPrice"])
        assert reading.delta is None
    assert [r.symbol for r in snapshot.spreads] == list(by_name["trade_count"].symbols)
    assert snapshot.last_success == 1000.0


def test_a_cycle_makes_one_depth_call_per_q1_symbol_and_one_book_ticker_call(scheduler, simulator, clock):
    scheduler.run_cycle()
    clock.advance(10)
    scheduler.run_cycle()
    assert sim_stats(simulator) == {
        "/api/v3/exchangeInfo": 1,
        "/api/v3/ticker/24hr": 1,
        "/api/v3/depth": 10,
        "/api/v3/ticker/bookTicker": 2,
    }


def test_rankings_refresh_every_rank_interval_and_exchange_info_hourly(scheduler, simulator, clock):
    for _ in range(13):  # 120 s of 10 s cycles
        scheduler.run_cycle()
        clock.advance(10)
    assert sim_stats(simulator)["/api/v3/ticker/24hr"] == 3
    assert sim_stats(simulator)["/api/v3/exchangeInfo"] == 1
    clock.advance(3600)
    scheduler.run_cycle()
    assert sim_stats(simulator)["/api/v3/exchangeInfo"] == 2


def test_a_failed_hourly_exchange_info_refresh_keeps_the_known_symbols(scheduler, simulator, clock, caplog):
    scheduler.run_cycle()
    simulator.inject(Fault("/api/v3/exchangeInfo", status=500, body=b"", times=RETRIES + 1))
    clock.advance(3600)
    snapshot = scheduler.run_cycle()
    assert not snapshot.up and len(snapshot.notionals) == 5
    assert "WARNING" in [r.levelname for r in caplog.records if "exchange info not refreshed" in r.message]
    clock.advance(10)
    assert scheduler.run_cycle().up


@pytest.mark.parametrize(
    "lists, requests",
    [
        pytest.param(top_lists(), 6, id="5 depths and a bookTicker"),
        pytest.param(top_lists(("BTC", "ETH"), ("USDT", "USDC")), 10, id="5 + 4 depths and a bookTicker"),
    ],
)
def test_the_book_requests_of_a_cycle_run_concurrently(simulator, clock, lists, requests):
    # Each book request waits for all of them to be under way: one after another, the first would wait in vain.
    all_under_way = threading.Barrier(requests, timeout=5)

    class WaitingSource(BinanceClient):
        """A source whose book requests go out only once all of them have started."""

        def order_book(self, symbol, time_left=None):
            all_under_way.wait()
            return super().order_book(symbol, time_left)

        def book_tops(self, symbols, time_left=None):
            all_under_way.wait()
            return super().book_tops(symbols, time_left)

    gate = RequestGate(weight_budget=6000, clock=clock)
    source = WaitingSource(simulator.url, timeout=1.0, gate=gate, sleep=lambda _: None)
    sched = Scheduler(source, Schedule(10, 60, top_lists=lists), clock=clock, wall_clock=clock)
    try:
        assert sched.run_cycle().up
    finally:
        sched.close()
    assert not all_under_way.broken


def test_spread_delta_is_the_absolute_change_since_the_previous_cycle(scheduler, simulator, clock):
    scheduler.run_cycle()
    first = simulator.market.book_ticker("BTCUSDT")
    bid = D(first["bidPrice"])
    moved = {**first, "askPrice": str(bid + D("0.07")), "bidPrice": str(bid)}
    body = [moved] + [simulator.market.book_ticker(s) for s in ("ETHUSDT", "SOLUSDT", "XRPUSDT", "BTCDOWNUSDT")]
    simulator.inject(Fault("/api/v3/ticker/bookTicker", body=json.dumps(body).encode(), times=1))
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    readings = {r.symbol: r for r in snapshot.spreads}
    old_spread = D(first["askPrice"]) - D(first["bidPrice"])
    assert readings["BTCUSDT"].spread == D("0.07")
    assert readings["BTCUSDT"].delta == abs(D("0.07") - old_spread)
    assert readings["ETHUSDT"].delta == 0


def test_a_failed_symbol_keeps_its_last_value_for_three_intervals_then_disappears(scheduler, simulator, clock):
    scheduler.run_cycle()
    simulator.inject(Fault("/api/v3/depth", symbol="BNBBTC", status=500, body=b"oops"))
    for elapsed in (10, 20, 30):
        clock.advance(10)
        snapshot = scheduler.run_cycle()
        assert not snapshot.up
        kept = {r.symbol: r for r in snapshot.notionals}
        assert "BNBBTC" in kept and kept["BNBBTC"].cycle == 1, elapsed
        assert kept["ETHBTC"].cycle == snapshot.cycle  # the other symbols still update
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    assert "BNBBTC" not in {r.symbol for r in snapshot.notionals}
    assert snapshot.last_success == 1000.0
    simulator.clear_faults()
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    assert snapshot.up and "BNBBTC" in {r.symbol for r in snapshot.notionals}
    assert snapshot.last_success == clock.now


def test_a_failed_book_ticker_call_marks_the_cycle_down(scheduler, simulator, clock):
    scheduler.run_cycle()
    simulator.inject(Fault("/api/v3/ticker/bookTicker", body=b"garbage", times=RETRIES + 1))
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    assert not snapshot.up
    assert all(r.cycle == 1 for r in snapshot.spreads)
    assert all(r.cycle == 2 for r in snapshot.notionals)


def test_a_symbol_leaving_the_top_list_disappears_at_once_and_a_newcomer_appears(scheduler, simulator, clock):
    scheduler.run_cycle()
    listed = simulator.market.symbols["LINKBTC"]
    simulator.market.symbols["LINKBTC"] = dataclasses.replace(listed, quote_volume="0.1")
    clock.advance(60)
    snapshot = scheduler.run_cycle()
    q1 = next(r for r in snapshot.rankings if r.name == "quote_volume")
    assert q1.symbols[:4] == ("ETHBTC", "BNBBTC", "SOLBTC", "XRPBTC")
    newcomer = q1.symbols[4]
    assert newcomer != "LINKBTC"
    assert "LINKBTC" not in {r.symbol for r in snapshot.notionals}
    assert "LINKBTC" not in {t.symbol for t in snapshot.tickers}
    assert newcomer in {r.symbol for r in snapshot.notionals}


def test_a_symbol_returning_to_the_list_starts_without_a_delta(scheduler, simulator, clock):
    scheduler.run_cycle()
    listed = simulator.market.symbols["BTCDOWNUSDT"]
    simulator.market.symbols["BTCDOWNUSDT"] = dataclasses.replace(listed, trades=1)
    clock.advance(60)
    assert "BTCDOWNUSDT" not in {r.symbol for r in scheduler.run_cycle().spreads}
    simulator.market.symbols["BTCDOWNUSDT"] = listed
    clock.advance(60)
    readings = {r.symbol: r for r in scheduler.run_cycle().spreads}
    assert readings["BTCDOWNUSDT"].delta is None
    assert readings["BTCUSDT"].delta is not None


def test_failed_rankings_are_retried_next_cycle_and_expire_after_three_rank_intervals(scheduler, simulator, clock):
    scheduler.run_cycle()
    simulator.inject(Fault("/api/v3/ticker/24hr", status=502, body=b"bad gateway"))
    clock.advance(60)
    snapshot = scheduler.run_cycle()
    assert not snapshot.up and snapshot.rankings  # the last rankings are kept
    clock.advance(10)
    scheduler.run_cycle()
    assert sim_stats(simulator)["/api/v3/ticker/24hr"] == 1 + 2 * (RETRIES + 1)
    clock.advance(120)
    snapshot = scheduler.run_cycle()
    assert snapshot.rankings == ()


def test_binance_unreachable_at_start_gives_down_snapshots_until_it_answers(simulator, clock, caplog):
    simulator.inject(Fault("/api/v3/exchangeInfo", status=503, body=b"", times=2 * (RETRIES + 1)))
    sched = Scheduler(client_for(simulator, clock), Schedule(10, 60), clock=clock, wall_clock=clock)
    try:
        for _ in range(2):
            snapshot = sched.run_cycle()
            assert not snapshot.up and not snapshot.rankings and snapshot.last_success is None
            clock.advance(10)
        assert sched.run_cycle().up
    finally:
        sched.close()
    assert [r.levelname for r in caplog.records if "exchange info" in r.message][:2] == ["ERROR", "ERROR"]


def test_a_cycle_never_waits_past_the_next_cycle(simulator):
    sched = Scheduler(BinanceClient(simulator.url, timeout=300.0), Schedule(update_interval=2, rank_interval=60))
    try:
        assert sched.run_cycle().up
        simulator.inject(Fault("/api/v3/depth", symbol="ETHBTC", delay=600))
        started = time.monotonic()
        snapshot = sched.run_cycle()
        elapsed = time.monotonic() - started
    finally:
        sched.close()
    assert elapsed < 60  # gave up at the 2 s deadline: the answer takes 600 s, the client would wait 300 s
    assert not snapshot.up
    assert {r.symbol: r.cycle for r in snapshot.notionals}["BNBBTC"] == 2  # the others were not held up


def test_snapshots_carry_request_counts_and_weight(scheduler, simulator):
    snapshot = scheduler.run_cycle()
    assert ("/api/v3/depth", "200", 5) in snapshot.api.requests
    # 20 + 80 + 5 * 25 + 4 when no request had to be sent again on a loaded machine: what Binance counted.
    assert snapshot.api.weight_used == simulator.stats()["weight_total"] >= 20 + 80 + 5 * 25 + 4
    assert snapshot.cycle_duration is not None and snapshot.cycle_duration >= 0


class StopAfter(threading.Event):
    """The stop event of ``Scheduler.run``, set once ``count`` snapshots are
    published; its waits return at once, recording how long ``run`` asked
    to wait, and each cycle takes ``cycle_seconds`` of ``clock``."""

    def __init__(self, count, clock, cycle_seconds=0.0):
        super().__init__()
        self.count, self.clock, self.cycle_seconds = count, clock, cycle_seconds
        self.published, self.waits = [], []

    def publish(self, snapshot):
        self.published.append(snapshot)
        self.clock.advance(self.cycle_seconds)
        if len(self.published) == self.count:
            self.set()

    def wait(self, timeout=None):
        self.waits.append(timeout)
        self.clock.advance(timeout)
        return self.is_set()


def run_until_published(sched, stop):
    """Runs ``sched.run`` until ``stop`` is set; returns what it published."""
    try:
        sched.run(stop, stop.publish)
    finally:
        sched.close()
    return stop.published


def test_run_publishes_a_snapshot_every_interval_until_stopped(simulator, clock):
    sched = Scheduler(client_for(simulator, clock), Schedule(update_interval=10, rank_interval=60), clock=clock)
    stop = StopAfter(3, clock, cycle_seconds=3)
    published = run_until_published(sched, stop)
    assert [s.cycle for s in published] == [1, 2, 3]
    assert all(s.up for s in published)
    assert stop.waits == [7, 7, 7]  # a cycle every 10 s, however long each took


def test_an_unexpected_error_in_a_cycle_is_logged_and_survived(simulator, clock, caplog):
    class BrokenSource(BinanceClient):
        """A source whose ranking call has a bug."""

        def tickers_24h(self, time_left=None):
            raise RuntimeError("a bug")

    source = BrokenSource(simulator.url, timeout=1.0, gate=RequestGate(clock=clock), sleep=lambda _: None)
    sched = Scheduler(source, Schedule(update_interval=10, rank_interval=60), clock=clock)
    published = run_until_published(sched, StopAfter(2, clock))
    assert [s.up for s in published] == [False, False]
    assert "update cycle 1 failed" in caplog.text and "a bug" in caplog.text


def test_values_age_out_while_every_cycle_fails_unexpectedly(simulator, clock, caplog):
    class FailingLater(BinanceClient):
        """A source whose exchange info breaks after the first cycle."""

        calls = 0

        def exchange_info(self, time_left=None):
            self.calls += 1
            if self.calls > 1:
                raise RecursionError("a bug")
            return super().exchange_info(time_left)

    schedule = Schedule(10, 60, exchange_info_interval=10)
    sched = Scheduler(FailingLater(simulator.url, timeout=1.0), schedule, clock=clock, wall_clock=clock)
    try:
        assert sched.run_cycle().notionals
        for _ in range(3):
            clock.advance(10)
            snapshot = sched.run_cycle()
            assert not snapshot.up and snapshot.notionals  # still within 3 intervals
        clock.advance(10)
        snapshot = sched.run_cycle()
    finally:
        sched.close()
    assert (snapshot.cycle, snapshot.up, snapshot.notionals, snapshot.spreads) == (5, False, (), ())
    assert "update cycle 5 failed" in caplog.text


def test_a_bug_in_one_symbols_request_costs_only_that_symbol(simulator, clock, caplog):
    class OneBrokenBook(BinanceClient):
        """A source that trips over one symbol's book."""

        def order_book(self, symbol, time_left=None):
            if symbol == "BNBBTC":
                raise ArithmeticError("a bug")
            return super().order_book(symbol, time_left)

    sched = Scheduler(OneBrokenBook(simulator.url, timeout=1.0), Schedule(10, 60), clock=clock, wall_clock=clock)
    try:
        snapshot = sched.run_cycle()
    finally:
        sched.close()
    assert not snapshot.up
    assert [r.symbol for r in snapshot.notionals] == ["ETHBTC", "SOLBTC", "XRPBTC", "LINKBTC"]
    assert len(snapshot.spreads) == 5
    assert "order book of BNBBTC: unexpected error" in caplog.text


def test_the_first_cycle_after_a_pause_runs_as_the_pause_ends(scheduler, simulator, clock):
    waits = []

    class Stop(threading.Event):
        """Moves the test's clock instead of waiting; stops after six waits."""

        def wait(self, timeout=None):
            waits.append(timeout)
            clock.advance(timeout)
            if len(waits) == 6:
                self.set()
            return self.is_set()

    published = []
    simulator.inject(
        Fault("/api/v3/ticker/bookTicker", status=429, body=b"{}", headers={"Retry-After": "25"}, after=5, times=1)
    )
    scheduler.run(Stop(), published.append)
    assert waits == [10, 10, 10, 5, 10, 10]  # the pause ends at 1035: the cycle due at 1040 runs then
    assert [s.up for s in published] == [True, False, False, False, True, True]


def test_worker_pool_skips_cancelled_calls_and_hands_back_exceptions():
    pool = WorkerPool(1)
    gate = threading.Event()
    blocker = pool.submit(gate.wait, 5)
    cancelled = pool.submit(lambda: pytest.fail("a cancelled call ran"))
    assert cancelled.cancel()
    failing = pool.submit(lambda: 1 / 0)
    gate.set()
    assert blocker.result(timeout=5) is True
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)
    pool.close()


def test_http_helper_reports_errors(simulator):
    assert http_get(simulator.url + "/nowhere")[0] == 404


def test_a_symbol_delisted_between_ranking_and_fetch_is_dropped_until_the_next_ranking(scheduler, simulator, clock):
    scheduler.run_cycle()
    del simulator.market.symbols["LINKBTC"]
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    assert not snapshot.up
    assert "LINKBTC" not in {r.symbol for r in snapshot.notionals}
    assert "LINKBTC" not in {t.symbol for t in snapshot.tickers}
    assert ("/api/v3/depth", "invalid_symbol", 1) in snapshot.api.errors
    depth_requests = sim_stats(simulator)["/api/v3/depth"]
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    assert snapshot.up  # what is still listed was all fetched
    assert sim_stats(simulator)["/api/v3/depth"] == depth_requests + 4  # LINKBTC no longer asked for
    assert sim_stats(simulator)["/api/v3/exchangeInfo"] == 2  # read again after the -1121
    clock.advance(40)
    snapshot = scheduler.run_cycle()  # the next ranking brings a newcomer
    q1 = next(r for r in snapshot.rankings if r.name == "quote_volume")
    assert len(q1.symbols) == 5 and "LINKBTC" not in q1.symbols
    assert len(snapshot.notionals) == 5


def test_a_delisted_q2_symbol_does_not_cost_the_others_their_spreads(scheduler, simulator, clock):
    scheduler.run_cycle()
    del simulator.market.symbols["BTCDOWNUSDT"]
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    readings = {r.symbol: r for r in snapshot.spreads}
    assert set(readings) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}
    assert all(r.cycle == 2 for r in readings.values())  # refreshed one by one after the batch was refused
    assert not snapshot.up
    clock.advance(10)
    assert scheduler.run_cycle().up


def test_a_429_pauses_every_request_until_retry_after_and_then_recovers(scheduler, simulator, clock):
    scheduler.run_cycle()
    simulator.inject(
        Fault("/api/v3/ticker/bookTicker", status=429, body=b'{"code":-1003}', headers={"Retry-After": "25"}, times=1)
    )
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    # the cycle's other requests were already on their way: 429 too, but no violation
    assert not snapshot.up and dict(snapshot.api.rate_limited)["429"] >= 1
    assert snapshot.api.paused_until == clock.now + 25
    sent = sum(sim_stats(simulator).values())
    for _ in range(2):
        clock.advance(10)
        snapshot = scheduler.run_cycle()
        assert not snapshot.up
    assert sum(sim_stats(simulator).values()) == sent  # nothing at all was sent
    assert any(reason == "retry_after" and count for _, reason, count in snapshot.api.skipped)
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    assert snapshot.up and snapshot.api.paused_until is None
    assert simulator.violations == 0


def test_binance_weight_limit_429_is_honoured_without_violations(simulator, clock):
    simulator.weights.limit = 300
    sched = Scheduler(client_for(simulator, clock, weight_budget=6000), Schedule(10, 60), clock=clock, wall_clock=clock)
    try:
        assert sched.run_cycle().up  # 229 of 300, at 1000 s: 20 s left in the minute
        clock.advance(10)
        snapshot = sched.run_cycle()  # 129 more would be 358: Binance answers 429, Retry-After 10
        assert not snapshot.up and dict(snapshot.api.rate_limited)["429"] >= 1
        assert snapshot.api.paused_until == clock.now + 10
        clock.advance(10)
        assert sched.run_cycle().up  # a new minute
    finally:
        sched.close()
    assert simulator.violations == 0


def test_the_weight_budget_skips_work_rather_than_send_it(simulator, clock, caplog):
    sched = Scheduler(client_for(simulator, clock, weight_budget=300), Schedule(10, 60), clock=clock, wall_clock=clock)
    try:
        assert sched.run_cycle().up  # 229 of 300
        clock.advance(10)
        snapshot = sched.run_cycle()
        skipped = {(e, r): n for e, r, n in snapshot.api.skipped if n}
        assert skipped == {("/api/v3/depth", "weight_budget"): 3}  # 229 + 2 x 25 + 4 = 283; a third would pass 300
        assert not snapshot.up
        assert snapshot.api.weight_used <= 300
        assert "not sent" in caplog.text
        clock.advance(40)  # a new minute
        assert sched.run_cycle().up
    finally:
        sched.close()
    assert simulator.stats()["weight_total"] <= 300 + 358


def test_binance_blocking_this_host_backs_off_instead_of_retrying_every_cycle(simulator, clock):
    simulator.inject(Fault("/api/v3/exchangeInfo", status=451, body=b'{"code":0,"msg":"restricted location"}'))
    sched = Scheduler(client_for(simulator, clock), Schedule(10, 60), clock=clock, wall_clock=clock)
    try:
        for _ in range(8):  # 70 s: attempts at 0, 10, 30 and 70 s (pauses 10, 20, 40)
            sched.run_cycle()
            clock.advance(10)
    finally:
        sched.close()
    assert sim_stats(simulator)["/api/v3/exchangeInfo"] == 4  # not 8


def test_longer_top_lists(clock):
    market = Market(LISTED_SYMBOLS + synthetic_symbols(30), tick_seconds=0)
    sim = BinanceSimulator(market, clock=clock).start()
    sched = Scheduler(client_for(sim, clock), Schedule(10, 60, top_n=20), clock=clock, wall_clock=clock)
    try:
        snapshot = sched.run_cycle()
    finally:
        sched.close()
        sim.stop()
    assert snapshot.up
    assert [len(r.symbols) for r in snapshot.rankings] == [20, 20]
    assert len(snapshot.notionals) == len(snapshot.spreads) == 20
    assert any(symbol.startswith("SYN") for symbol in snapshot.rankings[0].symbols)
    assert "USDTTRY" not in snapshot.rankings[1].symbols


@pytest.mark.parametrize("body", [{"endless": True}, {"gzip_bomb": 100_000_000}])
def test_refused_bodies_are_freed_at_once_not_kept_cycle_after_cycle(scheduler, simulator, clock, body):
    simulator.inject(Fault("/api/v3/depth", **body))  # every book's body is refused at 2 MiB
    assert not scheduler.run_cycle().notionals  # connections, pools and caches warm
    gc.collect()
    gc.disable()  # what a collection would free some time later must be freed at once
    tracemalloc.start()
    try:
        for _ in range(5):
            clock.advance(10)
            assert not scheduler.run_cycle().notionals
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held < 4 * 2**20  # 5 cycles of 5 refused books: 50 MiB if they were kept


def scheduler_for(simulator, clock, lists, top_n=5):
    """A scheduler of ``lists`` whose budget is Binance's whole limit."""
    schedule = Schedule(10, 60, top_n=top_n, top_lists=lists)
    return Scheduler(client_for(simulator, clock, weight_budget=6000), schedule, clock=clock, wall_clock=clock)


def test_a_list_per_quote_asset_each_answered_as_q1_or_q2(simulator, clock, caplog):
    caplog.set_level(logging.INFO)
    lists = top_lists(("BTC", "ETH", "BUSD"), ("USDT", "USDC"))
    sched = scheduler_for(simulator, clock, lists)
    try:
        snapshot = sched.run_cycle()
    finally:
        sched.close()
    assert snapshot.up
    assert snapshot.top_lists == lists
    assert [(r.name, r.quote_asset, r.symbols) for r in snapshot.rankings] == [
        ("quote_volume", "BTC", ("ETHBTC", "BNBBTC", "SOLBTC", "XRPBTC", "LINKBTC")),  # as with the defaults
        ("quote_volume", "ETH", ("BNBETH", "LINKETH", "ADAETH", "XRPETH")),  # fewer than 5 ETH-quoted symbols
        ("quote_volume", "BUSD", ()),  # every BUSD symbol is in BREAK
        ("trade_count", "USDT", ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BTCDOWNUSDT")),  # as with the defaults
        ("trade_count", "USDC", ("BTCUSDC", "ETHUSDC", "SOLUSDC")),
    ]
    q1 = [s for r in snapshot.rankings[:3] for s in r.symbols]
    q2 = [s for r in snapshot.rankings[3:] for s in r.symbols]
    assert [r.symbol for r in snapshot.notionals] == q1
    for reading in snapshot.notionals:
        served = simulator.market.depth(reading.symbol, 200)
        assert (reading.bid, reading.ask) == (expected_notional(served["bids"]), expected_notional(served["asks"]))
    assert [r.symbol for r in snapshot.spreads] == q2
    for reading in snapshot.spreads:
        served = simulator.market.book_ticker(reading.symbol)
        assert reading.spread == D(served["askPrice"]) - D(served["bidPrice"])
    # every list from one 24 h ticker request, every Q2 symbol from one bookTicker request
    assert sim_stats(simulator) == {
        "/api/v3/exchangeInfo": 1,
        "/api/v3/ticker/24hr": 1,
        "/api/v3/depth": 9,
        "/api/v3/ticker/bookTicker": 1,
    }
    assert "top BUSD quote_volume: none, no TRADING symbol is quoted in BUSD" in caplog.text
    assert "top ETH quote_volume: BNBETH, LINKETH, ADAETH, XRPETH" in caplog.text


def test_an_empty_list_is_warned_about_once_and_does_not_make_the_cycle_down(simulator, clock, caplog):
    caplog.set_level(logging.INFO)
    sched = scheduler_for(simulator, clock, top_lists(("BUSD",), ("BUSD", "USDC")))
    try:
        for trades in (None, 10**7, None):  # rankings at 1000, 1060 and 1120 s, SOLUSDC first at 1060 s
            listed = simulator.market.symbols["SOLUSDC"]
            simulator.market.symbols["SOLUSDC"] = dataclasses.replace(listed, trades=trades or 190000)
            snapshot = sched.run_cycle()
            assert snapshot.up
            clock.advance(60)
    finally:
        sched.close()
    assert [r.symbols for r in snapshot.rankings] == [(), (), ("BTCUSDC", "ETHUSDC", "SOLUSDC")]
    assert "top USDC trade_count: SOLUSDC, BTCUSDC, ETHUSDC" in caplog.text  # the lists changed twice
    assert not snapshot.notionals and len(snapshot.spreads) == 3
    assert "/api/v3/depth" not in sim_stats(simulator)
    warnings = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "top BUSD quote_volume: none, no TRADING symbol is quoted in BUSD",
        "top BUSD trade_count: none, no TRADING symbol is quoted in BUSD",
    ]


def test_a_symbol_in_a_quote_volume_and_a_trade_count_list_is_fetched_once_for_each(simulator, clock):
    sched = scheduler_for(simulator, clock, top_lists(("USDT",), ("USDT",)))
    try:
        snapshot = sched.run_cycle()
        clock.advance(10)
        snapshot = sched.run_cycle()
    finally:
        sched.close()
    by_volume, by_trades = snapshot.rankings
    assert by_volume.symbols == ("BTCUSDT", "USDCUSDT", "ETHUSDT", "SOLUSDT", "PEPEUSDT")
    assert by_trades.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BTCDOWNUSDT")
    assert snapshot.up
    assert [r.symbol for r in snapshot.notionals] == list(by_volume.symbols)  # Q3 for the one list
    assert [r.symbol for r in snapshot.spreads] == list(by_trades.symbols)  # Q4 for the other
    assert sim_stats(simulator)["/api/v3/depth"] == 2 * 5
    assert sim_stats(simulator)["/api/v3/ticker/bookTicker"] == 2


def test_a_symbol_listed_twice_is_fetched_once(simulator, clock):
    twice = (TopList("quote_volume", "BTC"), TopList("quote_volume", "BTC"), TopList("trade_count", "USDT"))
    sched = scheduler_for(simulator, clock, twice)
    try:
        snapshot = sched.run_cycle()
    finally:
        sched.close()
    assert snapshot.up and len(snapshot.notionals) == 5
    assert sim_stats(simulator)["/api/v3/depth"] == 5


def test_the_q2_lists_symbols_are_asked_for_in_batches_of_100(clock):
    market = Market(LISTED_SYMBOLS + synthetic_symbols(70), tick_seconds=0)
    sim = BinanceSimulator(market, clock=clock).start()
    sched = scheduler_for(sim, clock, top_lists(("ETH",), ("USDT", "BTC")), top_n=60)
    try:
        snapshot = sched.run_cycle()
    finally:
        sched.close()
        sim.stop()
    assert snapshot.up
    assert [len(r.symbols) for r in snapshot.rankings] == [4, 60, 60]
    assert len(snapshot.spreads) == 120
    assert sim.stats()["requests"]["/api/v3/ticker/bookTicker"] == 2  # 100 symbols, then 20
    assert BOOK_TICKER_BATCH == 100


def test_a_delisted_symbol_of_one_q2_list_does_not_cost_the_other_lists_their_spreads(simulator, clock):
    sched = scheduler_for(simulator, clock, top_lists(("BTC",), ("USDT", "USDC")), top_n=3)
    try:
        sched.run_cycle()
        del simulator.market.symbols["ETHUSDC"]
        clock.advance(10)
        snapshot = sched.run_cycle()
    finally:
        sched.close()
    assert not snapshot.up
    # the batch of all six was refused for ETHUSDC; asked one by one, the others updated
    assert {r.symbol: r.cycle for r in snapshot.spreads} == {
        "BTCUSDT": 2,
        "ETHUSDT": 2,
        "SOLUSDT": 2,
        "BTCUSDC": 2,
        "SOLUSDC": 2,
    }
    assert [r.symbols for r in snapshot.rankings][1:] == [("BTCUSDT", "ETHUSDT", "SOLUSDT"), ("BTCUSDC", "SOLUSDC")]


@pytest.mark.parametrize(
    "schedule, cycle_weight",
    [
        pytest.param(Schedule(), 5 * 25 + 4, id="defaults: 5 depths and a bookTicker"),
        pytest.param(Schedule(top_lists=top_lists(("BTC", "ETH"), ("USDT",))), 10 * 25 + 4, id="two Q1 lists"),
        pytest.param(Schedule(top_lists=top_lists(("BTC",), ("USDT", "USDC", "FDUSD"))), 5 * 25 + 4, id="three Q2"),
        pytest.param(
            Schedule(top_n=100, top_lists=top_lists(("BTC",), ("USDT", "USDC", "FDUSD"))),
            100 * 25 + 3 * 4,
            id="300 Q2 symbols in 3 bookTickers",
        ),
        pytest.param(
            Schedule(top_n=60, top_lists=top_lists(("BTC",), ("USDT", "USDC"))), 60 * 25 + 2 * 4, id="120 in 2"
        ),
    ],
)
def test_the_weight_a_schedule_spends_counts_every_lists_requests(schedule, cycle_weight):
    assert schedule.weight_per_minute(WEIGHTS) == pytest.approx(6 * cycle_weight + 80 + 20 / 60)
