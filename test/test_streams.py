"""The streams' hub against the fake Binance's real websocket server: live
books that equal the simulated market, Binance's limits kept, silent
connections replaced, connections rotated with no gap, every trade counted
once."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from binance_exporter.binance.depth_sync import DepthEvent
from binance_exporter.binance.responses import parse_agg_trades, parse_depth_snapshot
from binance_exporter.binance.request_gate import RequestGate
from binance_exporter.binance.rest_client import depth_weight
from binance_exporter.binance.streams import MAX_STREAMS_PER_CONNECTION, StreamHub, _Connection, _Reading
from binance_exporter.binance.trade_sync import RECENT_TRADES
from binance_exporter.errors import MarketDataError
from binance_exporter.fake.market import LISTED_SYMBOLS, Market, synthetic_symbols
from binance_exporter.fake.simulator import BinanceSimulator
from binance_exporter.market.definitions import BOOK_DEPTH, BookTop, Ticker24h
from binance_exporter.market.microstructure import SideFlow
from binance_exporter.market.order_book import BookSide, levels_to_read

from .helpers import FakeClock, post, true_best_levels, wait_for

def direct_snapshots(simulator: BinanceSimulator):
    """Snapshots read from the simulated market itself, costing no weight."""

    def snapshot(symbol, limit, _time_left=None):
        return parse_depth_snapshot(symbol, simulator.market.depth(symbol, limit), limit)

    return snapshot


def direct_trades(simulator: BinanceSimulator, baselines=None):
    """Aggregate trades read from the simulated market itself, costing no
    weight; the latest trade first answered for a symbol (where its
    counting starts) noted in ``baselines``."""

    def trades(symbol, from_id, limit, _time_left=None):
        answer = parse_agg_trades(symbol, simulator.market.agg_trades(symbol, from_id, limit=limit))
        if from_id is None and answer and baselines is not None:
            baselines.setdefault(symbol, answer[-1].agg_id)
        return answer

    return trades


@pytest.fixture(name="wide_market")
def wide_streaming_simulator():
    """More symbols than one connection may carry streams of, standing still:
    the test counts connections and subscriptions, not events."""
    simulator = BinanceSimulator(
        Market(LISTED_SYMBOLS + synthetic_symbols(600), tick_seconds=0), stream_port=0  # still: no events to send
    ).start()
    yield simulator
    simulator.stop()


def start_hub(simulator, symbols, baselines=None, **options) -> StreamHub:
    hub = StreamHub(
        (simulator.stream_url,),
        direct_snapshots(simulator),
        direct_trades(simulator, baselines),
        first_backoff=0.1,
        **options,
    ).start()
    hub.track(symbols)
    return hub


def all_in_sync(hub, symbols):
    readings = hub.book_readings(5)
    return all(symbol in readings and readings[symbol].state.in_sync for symbol in symbols)


def resyncs(hub):
    readings = hub.book_readings(5).values()
    return {reading.state.symbol: dict(reading.state.resyncs) for reading in readings if reading.state.resyncs}


def test_live_books_equal_the_true_books_once_the_market_stands_still(streaming):
    symbols = ("BTCUSDT", "ETHBTC", "WBTCBTC", "ADABTC")  # deep and shallow books
    hub = start_hub(streaming, symbols)
    try:
        wait_for(lambda: all_in_sync(hub, symbols), timeout=30)
        streaming.market.freeze()

        def equal_to_truth():
            readings = hub.book_readings(5)
            for symbol in symbols:
                _, bids, asks = true_best_levels(streaming, symbol, BOOK_DEPTH)
                state, view, *_ = readings[symbol]
                if not state.in_sync or (view.bids[:BOOK_DEPTH], view.asks[:BOOK_DEPTH]) != (bids, asks):
                    return False
            return True

        wait_for(equal_to_truth, timeout=30)
        assert dict(hub.counts().messages)["depth"] > 0
        assert streaming.stats()["stream_violations"] == 0
    finally:
        hub.stop()


def test_more_streams_than_a_connection_may_carry_open_another_connection_within_binances_limits(wide_market):
    symbols = tuple(sorted(wide_market.market.symbols))[: MAX_STREAMS_PER_CONNECTION // 2 + 50]
    assert len(symbols) == MAX_STREAMS_PER_CONNECTION // 2 + 50  # two streams each: depth and trades
    hub = start_hub(wide_market, symbols)
    try:
        wait_for(lambda: hub.counts().connections == 2, timeout=30)
        wait_for(lambda: wide_market.stats()["stream_subscriptions"] == 2 * len(symbols) + 1, timeout=60)
        stats = wide_market.stats()
        assert stats["stream_violations"] == 0
        assert stats["stream_connections"] == 2
    finally:
        hub.stop()


def test_a_silent_connection_is_replaced_and_its_books_come_back(streaming):
    hub = start_hub(streaming, ("BTCUSDT",), ping_interval=0.3, ping_timeout=0.3)
    try:
        wait_for(lambda: all_in_sync(hub, ("BTCUSDT",)), timeout=30)
        stall = {"path": "stream", "action": "stall", "seconds": 30, "times": 1}
        assert post(streaming, "/sim/faults", stall)[0] == 201
        wait_for(lambda: dict(hub.counts().reconnects).get("silent", 0) >= 1, timeout=30)
        wait_for(lambda: all_in_sync(hub, ("BTCUSDT",)), timeout=30)
        assert streaming.stats()["stream_violations"] == 0
    finally:
        hub.stop()


def test_a_connection_is_rotated_before_its_age_limit_with_no_book_lost(streaming):
    symbols = ("BTCUSDT", "ETHUSDT")
    hub = start_hub(streaming, symbols, max_connection_age=1.0)
    try:
        wait_for(lambda: all_in_sync(hub, symbols), timeout=30)
        wait_for(lambda: dict(hub.counts().reconnects).get("rotation", 0) >= 2, timeout=30)
        assert all_in_sync(hub, symbols)
        assert resyncs(hub) == {}  # handed over: nothing was lost, nothing taken again
    finally:
        hub.stop()


def test_refused_handshakes_back_off_and_then_connect(streaming):
    assert post(streaming, "/sim/faults", {"path": "stream", "action": "refuse", "status": 503, "times": 3})[0] == 201
    hub = start_hub(streaming, ("BTCUSDT",))
    try:
        wait_for(lambda: all_in_sync(hub, ("BTCUSDT",)), timeout=30)
        assert dict(hub.counts().reconnects).get("error", 0) == 3
        assert streaming.stats()["stream_connection_attempts"] == 4
    finally:
        hub.stop()


def test_untracked_books_are_unsubscribed_and_forgotten(streaming):
    hub = start_hub(streaming, ("BTCUSDT", "ETHUSDT"))
    try:
        wait_for(lambda: all_in_sync(hub, ("BTCUSDT", "ETHUSDT")), timeout=30)
        hub.track(("ETHUSDT",))
        wait_for(lambda: set(hub.book_readings(5)) == {"ETHUSDT"}, timeout=10)
        wait_for(lambda: streaming.stats()["stream_subscriptions"] == 3, timeout=10)  # the ticker and ETHUSDT's two
    finally:
        hub.stop()


def flows_equal_history(hub, simulator, baselines) -> bool:
    """Whether every symbol's trade flow equals the sums of the market's
    trade history after the trade its counting started from."""
    readings = hub.book_readings(5)
    for symbol, baseline in baselines.items():
        expected = {"buy": SideFlow(), "sell": SideFlow()}
        history = parse_agg_trades(symbol, simulator.market.agg_trades(symbol, baseline + 1, limit=10_000))
        for trade in history:
            expected[trade.taker_side] = expected[trade.taker_side].add(trade)
        flow = readings[symbol].flow
        if flow is None or (flow.buy, flow.sell) != (expected["buy"], expected["sell"]):
            return False
        if flow.last_price != (history[-1].price if history else None):
            return False
    return True


def test_every_trade_is_counted_once_through_dropped_trades_a_lost_connection_and_rotations(streaming):
    symbols, baselines = ("BTCUSDT", "ETHUSDT"), {}
    hub = start_hub(streaming, symbols, baselines, max_connection_age=2.0)
    try:
        wait_for(lambda: set(baselines) == set(symbols) and all_in_sync(hub, symbols), timeout=30)
        post(streaming, "/sim/faults", {"path": "stream", "action": "drop_trades", "symbol": "BTCUSDT", "times": 6})
        wait_for(lambda: hub.book_readings(5)["BTCUSDT"].flow.backfilled >= 6, timeout=30)
        post(streaming, "/sim/faults", {"path": "stream", "action": "drop", "times": 1})
        wait_for(lambda: dict(hub.counts().reconnects).get("error", 0) == 1, timeout=30)
        wait_for(lambda: dict(hub.counts().reconnects).get("rotation", 0) >= 2, timeout=30)
        streaming.market.freeze()
        wait_for(lambda: flows_equal_history(hub, streaming, baselines), timeout=30)
        assert all(hub.book_readings(5)[symbol].flow.lost == 0 for symbol in symbols)
        assert dict(hub.counts().messages)["trade"] > 0
    finally:
        hub.stop()


def test_the_live_view_reads_a_books_best_levels_and_latest_trades_only_when_they_changed(streaming):
    symbols = ("ETHBTC", "BTCUSDT")
    hub = start_hub(streaming, symbols)
    try:
        wait_for(lambda: all_in_sync(hub, symbols), timeout=30)
        streaming.market.freeze()

        def equal_to_truth():
            live = hub.live_books(("ETHBTC", "NOPE"), 20, {}, 5)
            _, bids, asks = true_best_levels(streaming, "ETHBTC", 20)
            book = live["ETHBTC"]
            history = parse_agg_trades("ETHBTC", streaming.market.agg_trades("ETHBTC", None, limit=RECENT_TRADES))
            # The latest trades since counting began: the end of the market's history.
            if (book.view.bids, book.view.asks) != (bids, asks) or book.trades != tuple(
                history[len(history) - len(book.trades) :]
            ):
                return None
            return live

        live = wait_for(equal_to_truth, timeout=30)
        assert live["NOPE"] is None  # not tracked
        assert live["ETHBTC"].state.in_sync and live["ETHBTC"].view.bid_horizon is not None
        known = {"ETHBTC": live["ETHBTC"].version}
        assert hub.live_books(("ETHBTC",), 20, known, 5) == {}  # nothing changed: nothing copied
    finally:
        hub.stop()


def test_a_reading_copies_every_level_within_the_widest_band_or_the_best_200_if_more():
    bids = BookSide(True, [(D(10_000 - i), D(1)) for i in range(1000)])  # one apart below 10000
    asks = BookSide(False, [(D(10_001 + 10 * i), D(1)) for i in range(1000)])  # ten apart above 10001
    mid = D("10000.5")  # 500 bps: 9500.475 and 10500.525
    assert levels_to_read(bids, mid, BOOK_DEPTH) == 500  # 10000 down to 9501
    assert levels_to_read(asks, mid, BOOK_DEPTH) == BOOK_DEPTH  # only 50 within the band
    assert levels_to_read(bids, None, BOOK_DEPTH) == BOOK_DEPTH


class CycleLines:
    """Stands in for the recorder: the cycle lines it is handed."""

    def __init__(self):
        self.lines = []

    def cycle(self, reading):
        self.lines.append(reading)


def test_a_reading_is_recorded_once_as_taken_by_the_loop_or_as_given_up_by_the_cycle_whichever_comes_first():
    recorder = CycleLines()
    taken = _Reading(recorder, {"n": 1})
    taken.take({"BTCUSDT": "read"}, {"BTCUSDT": 5})
    assert not taken.give_up() and taken.books_read == {"BTCUSDT": "read"}  # the loop took it: the cycle has it
    given_up = _Reading(recorder, {"n": 2})
    assert given_up.give_up()
    given_up.take({"BTCUSDT": "late"}, {"BTCUSDT": 6})  # too late: thrown away by the cycle, not recorded
    assert recorder.lines == [{"n": 1, "books": {"BTCUSDT": 5}}, {"n": 2, "books": None}]
    _Reading(recorder, None).take({}, {"BTCUSDT": 7})  # a reading that is no cycle's (the live view's) is not recorded
    assert len(recorder.lines) == 2


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
def test_a_reading_the_loop_does_not_answer_in_time_is_recorded_as_not_come_and_fails_the_cycle():
    recorder = CycleLines()
    hub = StreamHub((), lambda *_: None, lambda *_: None, recorder=recorder)  # its loop never runs
    try:
        with pytest.raises(MarketDataError, match="did not answer in time"):
            hub.book_readings(0.05, {"n": 3, "clock": 1.0, "time": 2.0})
    finally:
        hub.stop()
        hub._loop.close()  # pylint: disable=protected-access  # never run, so never closed by stop()
    assert recorder.lines == [{"n": 3, "clock": 1.0, "time": 2.0, "books": None}]


def test_snapshots_wait_for_the_weight_budget_and_go_in_tracking_order_at_each_books_limit(streaming):
    clock = FakeClock(6000.0)  # a minute's start: each minute the test lets pass gives one budget
    gate = RequestGate(weight_budget=25, clock=clock)  # one limit-500 snapshot (weight 25) a minute
    gate.admit("/api/v3/ping", 25)  # this minute is spent
    asked: list[tuple[str, int]] = []
    snapshot = direct_snapshots(streaming)

    def paid_snapshot(symbol, limit, time_left=None):
        gate.admit("/api/v3/depth", depth_weight(limit))  # as the REST client does: raises if over the budget
        asked.append((symbol, limit))
        return snapshot(symbol, limit, time_left)

    order = ("XRPUSDT", "ETHBTC", "BTCUSDT", "SOLUSDT")
    hub = StreamHub(
        (streaming.stream_url,), paid_snapshot, direct_trades(streaming), first_backoff=0.1, weight_wait=gate.wait_for
    ).start()
    try:
        hub.track(order)
        syncs = lambda: hub._syncs  # pylint: disable=protected-access,unnecessary-lambda-assignment
        wait_for(lambda: all(s in syncs() and syncs()[s].buffer for s in order))
        assert not asked  # every book waits for a snapshot, and the budget has no room
        for count in range(1, len(order) + 1):
            clock.advance(60)
            wait_for(lambda count=count: len(asked) >= count)
            assert asked == [(symbol, 500) for symbol in order[:count]]  # one a minute, the first tracked first
        wait_for(lambda: all_in_sync(hub, order))
    finally:
        hub.stop()


def test_a_horizon_resync_takes_the_next_tier_only_once_every_book_has_had_its_first_snapshot():
    asked: list[tuple[str, int]] = []
    hub = StreamHub(
        ("ws://127.0.0.1:1",), lambda symbol, limit, _time_left: asked.append((symbol, limit)), lambda *_: []
    )  # never started: the test is its loop
    hub._track(("BNBUSDT", "ETHBTC"))  # pylint: disable=protected-access
    ran_past, waiting = hub._syncs["BNBUSDT"], hub._syncs["ETHBTC"]  # pylint: disable=protected-access
    ran_past.taken_in, ran_past.snapshot_limit = True, 1000  # its price ran past a limit-500 snapshot's room

    def ask_for_snapshots(count):
        for symbol, sync in (("BNBUSDT", ran_past), ("ETHBTC", waiting)):
            sync.on_event(DepthEvent(symbol, 10, 11, 0, (), ()))
        hub._ask_for_requests()  # pylint: disable=protected-access
        while len(asked) < count:
            hub._loop.run_until_complete(hub._changed.wait())  # pylint: disable=protected-access
            hub._changed.clear()  # pylint: disable=protected-access

    ask_for_snapshots(2)
    assert sorted(asked) == [("BNBUSDT", 500), ("ETHBTC", 500)]  # ETHBTC waits for its first: the first tier
    waiting.taken_in = True
    ask_for_snapshots(4)
    assert sorted(asked[2:]) == [("BNBUSDT", 1000), ("ETHBTC", 500)]  # every book in: the room it needs
    hub._loop.close()  # pylint: disable=protected-access
    hub._workers.close()  # pylint: disable=protected-access


def test_a_message_read_off_the_socket_that_is_not_utf8_json_is_counted_invalid_and_ignored(caplog):
    hub = StreamHub(("ws://127.0.0.1:1",), None, None)  # never started: the test is its loop
    connection = _Connection(1)
    for frame in (b'{"stream":"bnbusdt@depth@100ms","data":"\xff"}', b"\xef\xbb", b"[1]"):
        hub._on_frame(connection, frame)  # pylint: disable=protected-access  # as DirectConnection hands them
    assert hub.counts().invalid_messages == 3
    assert caplog.text.count("invalid message ignored") == 1  # once per connection
    hub._loop.close()  # pylint: disable=protected-access
    hub._workers.close()  # pylint: disable=protected-access


def test_a_top_of_book_is_kept_from_its_stream_while_its_connection_is_open():
    hub = StreamHub(("ws://127.0.0.1:1",), None, None, tops=True)  # never started: the test is its loop
    hub._track(("BNBUSDT",))  # pylint: disable=protected-access
    first, second = _Connection(1), _Connection(2)
    first.subscribed = second.subscribed = {"bnbusdt@bookTicker", "ethbtc@bookTicker"}

    def top(connection, update_id, bid, symbol="BNBUSDT", stream="bnbusdt@bookTicker"):
        data = {"u": update_id, "s": symbol, "b": bid, "B": "31.21000000", "a": "25.36520000", "A": "40.66"}
        hub._on_frame(connection, json.dumps({"stream": stream, "data": data}))  # pylint: disable=protected-access

    def read_top():
        return hub._loop.run_until_complete(hub._read_books())["BNBUSDT"].top  # pylint: disable=protected-access

    assert read_top() is None
    top(first, 400900217, "25.35190000")
    assert read_top() == BookTop("BNBUSDT", D("25.3519"), D("31.21"), D("25.3652"), D("40.66"))
    top(second, 400900216, "25.30000000")  # a connection behind the other: not news
    assert read_top().bid_price == D("25.3519")
    top(first, 400900218, "25.36520000")  # crossed: invalid, ignored and counted
    top(first, 1, "25.3", symbol="ETHBTC", stream="ethbtc@bookTicker")  # not tracked
    assert read_top().bid_price == D("25.3519") and hub.counts().invalid_messages == 1
    hub._lost(first)  # pylint: disable=protected-access
    assert read_top() is None  # what went by while the connection was down is unknown
    assert dict(hub.counts().messages)["top"] == 3
    hub._loop.close()  # pylint: disable=protected-access
    hub._workers.close()  # pylint: disable=protected-access


def test_a_books_top_stream_is_carried_only_while_the_book_is_not_in_sync(streaming):
    held = []  # a snapshot waits while this holds anything: a resynced book stays out of sync
    symbols = ("BTCUSDT", "ETHUSDT")
    hub = start_hub(streaming, symbols, tops=True, weight_wait=lambda weight: 60.0 if held else 0.0)
    try:
        wait_for(lambda: all_in_sync(hub, symbols), timeout=30)
        # The ticker and each symbol's depth and trades; their tops unsubscribed, and forgotten.
        wait_for(lambda: streaming.stats()["stream_subscriptions"] == 5, timeout=10)
        wait_for(lambda: all(reading.top is None for reading in hub.book_readings(5).values()), timeout=10)
        held.append(True)
        hub._loop.call_soon_threadsafe(hub._syncs["ETHUSDT"]._resync, "gap")  # pylint: disable=protected-access
        wait_for(lambda: streaming.stats()["stream_subscriptions"] == 6, timeout=10)  # its top is back
        wait_for(lambda: hub.book_readings(5)["ETHUSDT"].top is not None, timeout=10)
        reading = hub.book_readings(5)
        assert not reading["ETHUSDT"].state.in_sync and reading["BTCUSDT"].top is None
        held.clear()
        wait_for(lambda: all_in_sync(hub, symbols), timeout=30)
        wait_for(lambda: streaming.stats()["stream_subscriptions"] == 5, timeout=10)
    finally:
        hub.stop()


def test_the_24h_table_is_given_as_the_latest_reading_of_the_books_saw_it():
    # What the rankings are made from is a moment --record records, in order with the messages.
    hub = StreamHub(("ws://127.0.0.1:1",), None, None)  # never started: the test is its loop
    connection = _Connection(1)

    def ticker_message(count):
        record = {"s": "BNBUSDT", "v": "10", "q": "250", "n": count}
        hub._on_frame(connection, json.dumps({"stream": "!ticker_1d@arr", "data": [record]}))  # pylint: disable=protected-access

    def read_books(reading=None):
        hub._loop.run_until_complete(hub._read_books(reading))  # pylint: disable=protected-access

    def counts():
        return [ticker.trade_count for ticker in hub.tickers()[1]]

    hub.seed_tickers([Ticker24h("BNBUSDT", D(9), D(200), 5)])
    assert counts() == [5]
    ticker_message(6)
    assert counts() == [5]  # not yet read
    read_books()
    assert counts() == [6]
    ticker_message(7)
    given_up = _Reading(None, {"n": 1})
    assert given_up.give_up()
    read_books(given_up)  # the loop came to it too late: not a reading
    assert counts() == [6]
    read_books(_Reading(None, {"n": 2}))
    assert counts() == [7] and hub.tickers()[0] is not None
    hub._loop.close()  # pylint: disable=protected-access
    hub._workers.close()  # pylint: disable=protected-access


def test_connections_lost_together_reconnect_one_by_one():
    clock = FakeClock(100.0)
    hub = StreamHub(("ws://127.0.0.1:1",), None, None, clock=clock)  # never started: only its turns are asked
    waits = [hub._reconnect_turn() for _ in range(5)]  # pylint: disable=protected-access
    assert waits == [0.0, 1.0, 2.0, 3.0, 4.0]  # RECONNECT_SPACING apart
    clock.advance(10)
    assert hub._reconnect_turn() == 0.0  # pylint: disable=protected-access  # alone: at once
    hub._loop.close()  # pylint: disable=protected-access
    hub._workers.close()  # pylint: disable=protected-access


def test_a_snapshot_over_the_whole_budget_is_never_sent_and_said_once(streaming, caplog):
    asked = []
    hub = StreamHub(
        (streaming.stream_url,),
        lambda *request: asked.append(request),
        direct_trades(streaming),
        weight_wait=RequestGate(weight_budget=10).wait_for,  # a snapshot weighs 25
    ).start()
    try:
        hub.track(("BTCUSDT", "ETHUSDT"))
        wait_for(lambda: "its order book snapshot request (weight 25) is over the whole --weight-budget" in caplog.text)
        wait_for(lambda: dict(hub.counts().messages).get("depth", 0) > 20)
        assert not asked and caplog.text.count("over the whole --weight-budget") == 1
    finally:
        hub.stop()
