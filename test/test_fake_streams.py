"""The fake Binance's websocket streams speak Binance's protocol, from the
same market as its REST endpoints: events whose ids line up with the
depth snapshots, tickers that match the 24 h ticker, Binance's limits,
and the stream faults. Real websocket clients against the real server."""

import base64
import json
import os
import socket
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from binance_exporter.fake.market import LISTED_SYMBOLS, Market, from_units, synthetic_symbols, to_units
from binance_exporter.fake.simulator import BinanceSimulator, main
from binance_exporter.fake.streams import StreamSession, ticker_event
from binance_exporter.fake.faults import Fault, StreamFault
from .conftest import FROZEN_WALL_CLOCK
from .helpers import FakeClock, http_get, messages, post, start_module, stop_process, wait_for


@pytest.fixture
def moving():
    """The fake Binance and its streams, its market moving every 50 ms."""
    sim = BinanceSimulator(Market(tick_seconds=0.05), stream_port=0).start()
    yield sim
    sim.stop()


def start_sim(market=None, **stream_options):
    """A simulator with streams, on a frozen-in-time clock for its limits
    unless one is given."""
    clock = stream_options.pop("clock", None) or FakeClock(6000.0)
    return BinanceSimulator(
        market or Market(tick_seconds=0.05), clock=clock, stream_port=0, stream_options=stream_options
    ).start()


def open_stream(sim, path, **options):
    """A websocket client on ``path``; no pings of its own unless asked."""
    return connect(sim.stream_url + path, ping_interval=options.pop("ping_interval", None), open_timeout=10, **options)


def first(ws, condition, timeout=15.0):
    """The first message of ``ws`` for which ``condition`` holds."""
    return next(message for message in messages(ws, timeout) if condition(message))


def reply(ws, request_id):
    """The answer to the control message ``request_id``, events skipped."""
    return first(ws, lambda m: isinstance(m, dict) and m.get("id") == request_id and ("result" in m or "error" in m))


def rest(sim, path):
    status, _, body = http_get(sim.url + path)
    assert status == 200, body
    return json.loads(body)


class LocalBook:
    """A local order book kept as Binance's "How to manage a local order
    book correctly" says: a snapshot, then every event after it."""

    def __init__(self, snapshot):
        self.last = snapshot["lastUpdateId"]
        self.bids = {to_units(p): to_units(q) for p, q in snapshot["bids"]}
        self.asks = {to_units(p): to_units(q) for p, q in snapshot["asks"]}
        self.started = False

    def apply(self, event) -> None:
        """Applies one depthUpdate event, checking the ids."""
        if event["u"] <= self.last:
            return  # older than the snapshot
        if not self.started:
            assert event["U"] <= self.last + 1 <= event["u"], (event["U"], self.last)
            self.started = True
        else:
            assert event["U"] == self.last + 1
        for levels, side in ((self.bids, event["b"]), (self.asks, event["a"])):
            for price, qty in side:
                if to_units(qty):
                    levels[to_units(price)] = to_units(qty)
                else:
                    levels.pop(to_units(price), None)
        self.last = event["u"]

    def sides(self):
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


def depth_events(ws, timeout=15.0):
    for message in messages(ws, timeout):
        if isinstance(message, dict) and message.get("e") == "depthUpdate":
            yield message
        elif isinstance(message, dict) and message.get("data", {}).get("e") == "depthUpdate":
            yield message["data"]


# Streams and subscriptions


def test_a_combined_stream_wraps_depth_events_whose_ids_follow_on(moving):
    with open_stream(moving, "/stream?streams=btcusdt@depth@100ms") as ws:
        received = [next(messages(ws)) for _ in range(8)]
    assert {m["stream"] for m in received} == {"btcusdt@depth@100ms"}
    events = [m["data"] for m in received]
    assert all(e["e"] == "depthUpdate" and e["s"] == "BTCUSDT" and isinstance(e["E"], int) for e in events)
    assert all(e["U"] <= e["u"] for e in events)
    assert all(later["U"] == earlier["u"] + 1 for earlier, later in zip(events, events[1:]))
    levels = [level for e in events for level in e["b"] + e["a"]]
    assert levels and all(isinstance(v, str) and len(v.split(".")[1]) == 8 for level in levels for v in level)
    bids = [to_units(p) for p, _ in events[0]["b"]]
    assert bids == sorted(bids, reverse=True)


def test_events_are_sent_without_waiting_for_the_clients_acknowledgements(moving):
    # Nagle's algorithm off: a small frame is not held back for the client's
    # delayed ACK of the one before it.
    with open_stream(moving, "/stream?streams=btcusdt@depth@100ms") as ws:
        next(messages(ws))
        (connection,) = moving.streams._open  # pylint: disable=protected-access  # the server's side of it
        sock = connection.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_a_raw_stream_sends_bare_payloads(moving):
    with open_stream(moving, "/ws/ethbtc@depth@100ms") as ws:
        event = next(messages(ws))
    assert event["e"] == "depthUpdate" and event["s"] == "ETHBTC"


def test_subscribe_list_and_unsubscribe_as_binance_answers_them(moving):
    with open_stream(moving, "/ws") as ws:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "ethbtc@depth"], "id": 1}))
        assert reply(ws, 1) == {"result": None, "id": 1}
        event = first(ws, lambda m: m.get("e") == "depthUpdate")
        assert event["s"] in ("BTCUSDT", "ETHBTC")  # raw: no envelope
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert reply(ws, 2) == {"result": ["btcusdt@depth@100ms", "ethbtc@depth"], "id": 2}
        ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 3}))
        assert reply(ws, 3) == {"result": None, "id": 3}
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
        assert reply(ws, 4) == {"result": ["ethbtc@depth"], "id": 4}
    assert wait_for(lambda: moving.stats()["stream_connections"] == 0)
    assert moving.stats()["stream_messages_received"] == 4


def test_a_bad_control_message_over_the_wire_gets_an_error_with_its_id(moving):
    with open_stream(moving, "/stream") as ws:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["nopeusdt@depth"], "id": 7}))
        answer = reply(ws, 7)
    assert answer["error"]["code"] == 2 and "nopeusdt@depth" in answer["error"]["msg"]


@pytest.mark.parametrize(
    "message, code, msg",
    [
        ("not json", 3, "Invalid JSON: "),
        ("[1]", 2, "Invalid request: expected an object"),
        ('{"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": true}', 2, "Invalid request: request ID must be"),
        ('{"params": [], "id": 1}', 2, "Invalid request: missing field `method`"),
        ('{"method": "PUBLISH", "id": 1}', 2, "Invalid request: unknown variant `PUBLISH`, expected one of"),
        ('{"method": "SUBSCRIBE", "params": "btcusdt@depth", "id": 1}', 2, "Invalid request: params must be"),
        ('{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}', 2, "Invalid request: unknown stream name"),
        ('{"method": "SUBSCRIBE", "params": ["BTCUSDT@depth"], "id": 1}', 2, "Invalid request: unknown stream name"),
        ('{"method": "GET_PROPERTY", "params": ["colour"], "id": 1}', 0, "Unknown property"),
        ('{"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1}', 1, "Invalid value type: expected Bool"),
    ],
)
def test_control_messages_binance_refuses_get_its_error_codes(message, code, msg):
    session = StreamSession(Market(tick_seconds=0), combined=False)
    answer = session.control(message)
    assert answer["error"]["code"] == code and answer["error"]["msg"].startswith(msg)
    assert not session.streams


def test_the_combined_property_switches_the_envelope():
    session = StreamSession(Market(tick_seconds=0), combined=False)
    assert session.control('{"method": "GET_PROPERTY", "params": ["combined"], "id": 1}') == {"result": False, "id": 1}
    assert session.control('{"method": "SET_PROPERTY", "params": ["combined", true], "id": "a2"}') == {
        "result": None,
        "id": "a2",
    }
    assert json.loads(session.frame("x", {"a": 1})) == {"stream": "x", "data": {"a": 1}}


@pytest.mark.parametrize("path, status", [("/ws/nope@depth", 400), ("/api/v3/depth", 404), ("/stream?streams=x", 400)])
def test_a_handshake_for_no_stream_served_is_refused(moving, path, status):
    with pytest.raises(InvalidStatus) as refused:
        open_stream(moving, path)
    assert refused.value.response.status_code == status


# The book, the snapshot and the events


def test_a_snapshot_and_the_events_after_it_reproduce_the_true_book(moving):
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        events = depth_events(ws)
        whole = LocalBook(rest(moving, "/api/v3/depth?symbol=BTCUSDT&limit=5000"))
        snapshot_1000 = rest(moving, "/api/v3/depth?symbol=BTCUSDT&limit=1000")
        top = LocalBook(snapshot_1000)
        for _ in range(20):
            event = next(events)
            whole.apply(event)
            top.apply(event)
        assert post(moving, "/sim/market", {"frozen": True})[0] == 200
        update_id, bids, asks = moving.market.true_book("BTCUSDT")
        while whole.last < update_id:
            event = next(events)
            whole.apply(event)
            top.apply(event)
    assert whole.last == top.last == update_id
    assert whole.sides() == (bids, asks)
    # A 1000-level snapshot is exact only within its horizon: its farthest prices.
    low_bid, high_ask = to_units(snapshot_1000["bids"][-1][0]), to_units(snapshot_1000["asks"][-1][0])
    local_bids, local_asks = top.sides()
    assert [b for b in local_bids if b[0] >= low_bid] == [b for b in bids if b[0] >= low_bid]
    assert [a for a in local_asks if a[0] <= high_ask] == [a for a in asks if a[0] <= high_ask]
    assert len(bids) > 1000  # deeper than the snapshot: the horizon matters


def test_depth_taken_after_subscribing_is_never_older_than_the_first_event(moving):
    with open_stream(moving, "/stream") as ws:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth@100ms"], "id": 1}))
        reply(ws, 1)
        snapshot = rest(moving, "/api/v3/depth?symbol=ETHUSDT&limit=1000")
        event = first(ws, lambda m: m.get("data", {}).get("u", 0) > snapshot["lastUpdateId"])["data"]
    assert event["U"] <= snapshot["lastUpdateId"] + 1 <= event["u"]


def test_the_ticker_array_matches_the_24h_ticker_of_the_same_moment():
    market = Market(tick_seconds=0, wall_clock=lambda: FROZEN_WALL_CLOCK)
    sim = start_sim(market)
    try:
        with open_stream(sim, "/ws/!ticker_1d@arr") as ws:
            pushed = next(messages(ws))
        tickers = {record["symbol"]: record for record in rest(sim, "/api/v3/ticker/24hr")}
    finally:
        sim.stop()
    trading = {s.symbol for s in LISTED_SYMBOLS if s.status == "TRADING"}
    assert {event["s"] for event in pushed} == trading
    for event in pushed:
        record = tickers[event["s"]]
        assert event == ticker_event(record, event["E"])
        assert (event["v"], event["q"], event["n"]) == (record["volume"], record["quoteVolume"], record["count"])
        assert event["e"] == "1dTicker" and event["O"] == record["openTime"] and event["C"] == record["closeTime"]


def test_the_ticker_array_sends_only_the_symbols_that_changed():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    session = StreamSession(market, combined=False)
    session.subscribe(["!ticker_1d@arr"])
    frames = [session.tick(0) for _ in range(10)]
    assert [len(f) for f in frames] == [0] * 9 + [1]
    assert len(json.loads(frames[-1][0])) == sum(s.status == "TRADING" for s in LISTED_SYMBOLS)
    assert not any(session.tick(0) for _ in range(10))  # nothing changed: nothing sent
    del market.symbols["ETHBTC"]
    clock.advance(1)
    changed = json.loads(next(f for f in (session.tick(0) for _ in range(10)) if f)[0])
    assert changed and "ETHBTC" not in {event["s"] for event in changed}


def test_a_depth_stream_of_a_symbol_taken_off_the_market_falls_silent():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    session = StreamSession(market, combined=True)
    session.subscribe(["bnbbtc@depth@100ms"])
    del market.symbols["BNBBTC"]
    clock.advance(1)
    assert not session.tick(0)


# The book ticker


def book_ticker_messages(ws, timeout=15.0):
    """(stream, payload) of every depth and book ticker message of a combined ``ws``."""
    for message in messages(ws, timeout):
        if isinstance(message, dict) and "stream" in message:
            yield message["stream"], message["data"]


def test_the_book_ticker_of_every_update_id_it_names_equals_the_book_rebuilt_from_the_depth_stream():
    clock = FakeClock()
    sim = start_sim(Market(tick_seconds=1.0, clock=clock))
    tickers = []

    def check(pending, book):
        """Checks the book tickers the local book has caught up with."""
        while pending and pending[0]["u"] <= book.last:
            ticker = pending.pop(0)
            assert ticker["u"] == book.last  # named at an event's end: checkable
            (bid, bid_qty), (ask, ask_qty) = (side[0] for side in book.sides())
            assert tuple(to_units(ticker[k]) for k in "bBaA") == (bid, bid_qty, ask, ask_qty)
            tickers.append(ticker)

    try:
        names = "btcusdt@depth@100ms/btcusdt@bookTicker"
        with open_stream(sim, f"/stream?streams={names}") as ws:
            received = book_ticker_messages(ws)
            stream, at_subscription = next(received)  # the book stands still: only the top, once
            book = LocalBook(rest(sim, "/api/v3/depth?symbol=BTCUSDT&limit=5000"))
            pending = [at_subscription]
            check(pending, book)
            for _ in range(25):
                clock.advance(1)  # one step; its depth event and book ticker come within a tick
                target = sim.market.update_id("BTCUSDT")
                while book.last < target:
                    name, payload = next(received)
                    if name == "btcusdt@depth@100ms":
                        book.apply(payload)
                    else:
                        pending.append(payload)
                    check(pending, book)
    finally:
        sim.stop()
    assert stream == "btcusdt@bookTicker" and set(at_subscription) == {"u", "s", "b", "B", "a", "A"}
    assert at_subscription["s"] == "BTCUSDT" and tickers[0] == at_subscription
    assert len(tickers) >= 8  # the top of a busy book moves at most steps
    assert all(earlier["u"] < later["u"] for earlier, later in zip(tickers, tickers[1:]))
    tops = [tuple(t[k] for k in "bBaA") for t in tickers]
    assert all(earlier != later for earlier, later in zip(tops, tops[1:]))  # sent only when it changed


def test_a_book_ticker_is_sent_at_subscription_and_then_only_when_the_top_changed():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    session = StreamSession(market, combined=False)
    session.control('{"method": "SUBSCRIBE", "params": ["ethbtc@bookTicker", "fttbtc@bookTicker"], "id": 1}')
    first_frames = [json.loads(frame) for frame in session.tick(0)]
    assert [event["s"] for event in first_frames] == ["ETHBTC", "FTTBTC"]
    assert not session.tick(0)  # nothing moved: nothing sent
    sent = unchanged = 0
    top = market.book_top("ETHBTC")
    for _ in range(60):
        clock.advance(1)
        frames = session.tick(0)
        now = market.book_top("ETHBTC")
        if now[1:] == top[1:]:
            assert not frames
            unchanged += 1
        else:
            (event,) = [json.loads(frame) for frame in frames]
            assert event == {"u": now.update_id, "s": "ETHBTC", "b": from_units(now.bid_price),
                             "B": from_units(now.bid_qty), "a": from_units(now.ask_price),
                             "A": from_units(now.ask_qty)}  # fmt: skip
            sent += 1
        top = now
    assert sent and unchanged  # both happen; the halted FTTBTC never comes again
    session.unsubscribe(["ethbtc@bookTicker"])
    session.subscribe(["ethbtc@bookTicker"])
    assert [json.loads(frame)["u"] for frame in session.tick(0)] == [top.update_id]  # subscribed again: sent again


def test_a_book_ticker_of_an_unknown_symbol_is_refused():
    session = StreamSession(Market(tick_seconds=0), combined=False)
    answer = session.control('{"method": "SUBSCRIBE", "params": ["nopeusdt@bookTicker"], "id": 3}')
    assert answer["error"]["code"] == 2 and "nopeusdt@bookTicker" in answer["error"]["msg"]
    answer = session.control('{"method": "SUBSCRIBE", "params": ["btcusdt@bookticker"], "id": 4}')
    assert answer["error"]["code"] == 2


class WholeBookMarket:
    """A market with no ``book_top`` of its own, only whole books (as a
    recorded market is): a book of one level a side, or one side empty."""

    def __init__(self):
        self.symbols = {"BTCUSDT": None, "ETHUSDT": None}

    def true_book(self, symbol):
        asks = [(101 * 10**8, 3 * 10**8)] if symbol == "BTCUSDT" else []
        return 42, [(100 * 10**8, 2 * 10**8)], asks


def test_a_market_without_book_tops_gives_them_from_its_whole_books():
    session = StreamSession(WholeBookMarket(), combined=False)
    session.subscribe(["btcusdt@bookTicker", "ethusdt@bookTicker"])
    assert [json.loads(frame) for frame in session.tick(0)] == [
        {"u": 42, "s": "BTCUSDT", "b": "100.00000000", "B": "2.00000000", "a": "101.00000000", "A": "3.00000000"}
    ]  # ETHUSDT has no ask: no top to send


# Stream faults


def test_a_gap_fault_skips_one_event_of_the_symbol(moving):
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        events = depth_events(ws)
        previous = next(events)
        moving.inject(StreamFault("stream", "gap", symbol="BTCUSDT", times=1))
        event = next(events)
        while event["U"] == previous["u"] + 1:
            previous, event = event, next(events)
        assert event["U"] > previous["u"] + 1  # the changes in between were never sent
        following = next(events)
    assert following["U"] == event["u"] + 1
    assert moving.fault_list() == []  # acted once, then over


def test_a_duplicate_fault_sends_an_event_again(moving):
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        events = depth_events(ws)
        previous = next(events)
        moving.inject(StreamFault("stream", "duplicate", times=1))
        event = next(events)
        while event != previous:
            assert event["U"] == previous["u"] + 1
            previous, event = event, next(events)
        following = next(events)
    assert following["U"] == event["u"] + 1  # after the duplicate, the stream goes on


def trade_events(ws, timeout=15.0):
    """The aggTrade events of ``ws``, unwrapped, as they come."""
    for message in messages(ws, timeout):
        data = message.get("data", message)
        if isinstance(data, dict) and data.get("e") == "aggTrade":
            yield data


def test_aggregate_trades_stream_as_binance_sends_them_and_equal_the_rest_history(moving):
    with open_stream(moving, "/stream?streams=btcusdt@aggTrade") as ws:
        received = []
        for message in messages(ws):
            assert message["stream"] == "btcusdt@aggTrade"
            received.append(message["data"])
            if len(received) == 12:
                break
    assert all(set(e) == {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"} for e in received)
    assert all(e["e"] == "aggTrade" and e["s"] == "BTCUSDT" and isinstance(e["E"], int) for e in received)
    for earlier, later in zip(received, received[1:]):
        assert later["a"] == earlier["a"] + 1 and later["f"] == earlier["l"] + 1
    history = rest(moving, f"/api/v3/aggTrades?symbol=BTCUSDT&fromId={received[0]['a']}&limit=12")
    assert [{k: v for k, v in e.items() if k not in ("e", "E", "s")} for e in received] == history
    with open_stream(moving, "/ws/ethbtc@aggTrade") as raw:
        assert next(trade_events(raw))["s"] == "ETHBTC"


def test_a_drop_trades_fault_leaves_trades_out_of_the_stream_but_not_the_history(moving):
    with open_stream(moving, "/ws/btcusdt@aggTrade") as ws:
        events = trade_events(ws)
        seen = [next(events)]
        moving.inject(StreamFault("stream", "drop_trades", symbol="BTCUSDT", times=4))
        while len(seen) < 30:
            seen.append(next(events))
    skipped = [a for earlier, later in zip(seen, seen[1:]) for a in range(earlier["a"] + 1, later["a"])]
    assert len(skipped) == 4 and moving.fault_list() == []  # dropped 4, then over
    history = rest(moving, f"/api/v3/aggTrades?symbol=BTCUSDT&fromId={skipped[0]}&limit=1")
    assert history[0]["a"] == skipped[0]  # still in the history


def test_a_garbage_fault_sends_a_frame_that_is_not_json(moving):
    moving.inject(StreamFault("stream", "garbage", body="<html>502 Bad Gateway</html>", times=1))
    with open_stream(moving, "/ws/ethbtc@depth@100ms") as ws:
        deadline = time.monotonic() + 15
        while (frame := ws.recv(timeout=deadline - time.monotonic())).startswith("{"):
            pass
    assert frame == "<html>502 Bad Gateway</html>"


def test_a_drop_fault_ends_the_connection_with_no_close_frame(moving):
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        next(messages(ws))
        moving.inject(StreamFault("stream", "drop", symbol="BTCUSDT", times=1))
        with pytest.raises(ConnectionClosedError) as closed:
            for _ in messages(ws):
                pass
    assert closed.value.rcvd is None
    assert moving.stats()["stream_disconnects"] == {"fault": 1}


def test_a_close_fault_closes_with_its_code(moving):
    moving.inject(StreamFault("stream", "close", times=1))
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            for _ in messages(ws):
                pass
    assert closed.value.rcvd.code == 1001


def test_a_server_shutdown_event_comes_before_the_close(moving):
    with open_stream(moving, "/stream?streams=btcusdt@depth@100ms") as ws:
        moving.inject(StreamFault("stream", "shutdown", seconds=0.2, times=1))
        notice = first(ws, lambda m: "stream" not in m)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in messages(ws):
                pass
    assert notice["e"] == "serverShutdown" and isinstance(notice["E"], int)
    assert closed.value.rcvd.code == 1001


def test_a_stall_sends_nothing_and_answers_no_ping_so_the_client_gives_up(moving):
    with open_stream(moving, "/ws/btcusdt@depth@100ms", ping_interval=0.3, ping_timeout=1, close_timeout=1) as ws:
        next(messages(ws))
        moving.inject(StreamFault("stream", "stall", seconds=600, times=1))
        with pytest.raises(ConnectionClosedError) as closed:
            for _ in messages(ws, timeout=30):
                pass
    assert closed.value.sent.code == 1011  # the client's "keepalive ping timeout"


def test_a_stall_that_resumes_goes_on_where_it_stopped(moving):
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        events = depth_events(ws)
        previous = next(events)
        moving.inject(StreamFault("stream", "stall", seconds=0.5, times=1))
        wait_for(lambda: moving.fault_list() == [])
        for _ in range(5):
            event = next(events)
            assert event["U"] == previous["u"] + 1
            previous = event


def test_a_refuse_fault_refuses_handshakes_with_its_status(moving):
    moving.inject(StreamFault("stream", "refuse", status=503, times=1))
    with pytest.raises(InvalidStatus) as refused:
        open_stream(moving, "/ws/btcusdt@depth@100ms")
    assert refused.value.response.status_code == 503
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        assert next(messages(ws))["e"] == "depthUpdate"


def test_a_lagging_depth_answer_is_older_than_the_stream(moving):
    created = moving.market.update_id("BTCUSDT")
    wait_for(lambda: moving.market.update_id("BTCUSDT") > created + 20)  # a history from before the stream
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        events = depth_events(ws)
        received = [next(events)]
        start = received[0]["U"] - 1  # where the stream began
        post(moving, "/sim/market", {"frozen": True})
        update_id = moving.market.update_id("BTCUSDT")
        while received[-1]["u"] < update_id:
            received.append(next(events))
        lag = update_id - start + 5
        injected = {"path": "/api/v3/depth", "symbol": "BTCUSDT", "lag_changes": lag, "times": 1}
        assert post(moving, "/sim/faults", injected)[0] == 201
        stale = rest(moving, "/api/v3/depth?symbol=BTCUSDT&limit=5000")
        # A snapshot from before the stream began: the procedure finds the gap and starts again.
        assert stale["lastUpdateId"] == start - 5
        assert received[0]["U"] > stale["lastUpdateId"] + 1
        # Lagging less than the stream goes back, the same snapshot and events make the true book.
        moving.inject(Fault("/api/v3/depth", symbol="BTCUSDT", lag_changes=3, times=1))
        book = LocalBook(rest(moving, "/api/v3/depth?symbol=BTCUSDT&limit=5000"))
        assert book.last == update_id - 3
        for event in received:
            book.apply(event)
    assert book.sides() == moving.market.true_book("BTCUSDT")[1:]


def test_a_sweep_removes_most_of_one_side_in_one_event(moving):
    with open_stream(moving, "/ws/btcusdt@depth@100ms") as ws:
        events = depth_events(ws)
        book = LocalBook(rest(moving, "/api/v3/depth?symbol=BTCUSDT&limit=5000"))
        moving.inject(StreamFault("stream", "sweep", symbol="BTCUSDT", side="asks", fraction=0.9, times=1))
        while True:
            event = next(events)
            book.apply(event)
            if sum(to_units(q) == 0 for _, q in event["a"]) >= 1400:
                break
        post(moving, "/sim/market", {"frozen": True})
        update_id = moving.market.update_id("BTCUSDT")
        while book.last < update_id:
            book.apply(next(events))
    assert book.sides() == moving.market.true_book("BTCUSDT")[1:]


@pytest.mark.parametrize(
    "fault, message",
    [
        ({"path": "stream"}, "a stream fault needs an action"),
        ({"path": "stream", "action": "explode"}, "fault field 'action' must be one of gap, duplicate,"),
        ({"path": "stream", "action": "stall"}, "a stall needs seconds"),
        ({"path": "stream", "action": "sweep"}, "a sweep needs a symbol"),
        ({"path": "stream", "action": "drop_trades"}, "drop_trades needs a symbol"),
        ({"path": "stream", "action": "gap", "code": 4000}, "code do not go with the gap action"),
        ({"path": "stream", "action": "close", "code": 999}, "'code' must be a close code from 1000 to 4999"),
        ({"path": "stream", "action": "gap", "colour": 1}, "unknown stream fault field 'colour'"),
        ({"path": "/api/v3/ping", "lag_changes": 5}, "lag_changes makes the real answer of /api/v3/depth older"),
        ({"path": "/api/v3/depth", "lag_changes": 5, "status": 500}, "lag_changes makes the real answer"),
    ],
)
def test_a_bad_stream_fault_is_refused_with_a_one_line_error(moving, fault, message):
    request = urllib.request.Request(moving.url + "/sim/faults", data=json.dumps(fault).encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)  # pylint: disable=consider-using-with
    assert refused.value.code == 400
    assert message in json.loads(refused.value.read())["msg"]
    refused.value.close()


def test_stream_faults_are_listed_and_cleared_with_the_others(moving):
    assert post(moving, "/sim/faults", {"path": "stream", "action": "close", "code": 4000, "after": 600})[0] == 201
    assert moving.fault_list() == [
        {"path": "stream", "action": "close", "code": 4000, "after": 600, "started": False, "fired": 0,
         "remaining": None}
    ]  # fmt: skip
    assert http_get(moving.url + "/sim/faults", method="DELETE")[0] == 204
    assert moving.fault_list() == []


def test_the_market_can_be_frozen_and_unfrozen_over_http(moving):
    status, answer = post(moving, "/sim/market", {"frozen": True})
    assert status == 200 and answer["frozen"] is True
    held, step = moving.market.true_book("ETHBTC"), moving.market.step()
    assert moving.market.frozen and json.loads(http_get(moving.url + "/api/v3/depth?symbol=ETHBTC")[2])[
        "lastUpdateId"
    ] == held[0]
    assert moving.market.step() == step and moving.market.true_book("ETHBTC") == held
    assert post(moving, "/sim/market", {"frozen": False})[1]["frozen"] is False
    wait_for(lambda: moving.market.true_book("ETHBTC")[0] > held[0])
    request = urllib.request.Request(moving.url + "/sim/market", data=b'{"frozen": 1}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)  # pylint: disable=consider-using-with
    assert refused.value.code == 400
    refused.value.close()


# Limits


def test_more_than_5_messages_a_second_closes_the_connection_and_counts_a_violation():
    sim = start_sim()  # its clock stands still: every message falls in the same second
    try:
        with open_stream(sim, "/ws") as ws:
            for n in range(5):
                assert ws.ping().wait(5), n  # pings count, and are answered
            ws.ping()
            with pytest.raises(ConnectionClosed) as closed:
                for _ in messages(ws):
                    pass
        assert closed.value.rcvd.code == 1008
        stats = sim.stats()
        assert stats["stream_violations"] == 1 and stats["stream_messages_received"] == 6
        assert stats["stream_violations_by_limit"] == {"messages": 1}
    finally:
        sim.stop()


def test_more_than_1024_streams_closes_the_connection_and_counts_a_violation():
    sim = start_sim(Market(LISTED_SYMBOLS + synthetic_symbols(260), tick_seconds=0))
    names = [f"{symbol.lower()}@depth{speed}" for symbol in sim.market.symbols for speed in ("", "@100ms")]
    try:
        with open_stream(sim, "/ws") as ws:
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": names[:1024], "id": 1}))
            assert reply(ws, 1) == {"result": None, "id": 1}
            assert sim.stats()["stream_subscriptions"] == 1024
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": names[1024:1025], "id": 2}))
            with pytest.raises(ConnectionClosed) as closed:
                for _ in messages(ws, timeout=30):
                    pass
        assert closed.value.rcvd.code == 1008
        assert sim.stats()["stream_violations_by_limit"] == {"streams": 1}
    finally:
        sim.stop()


def raw_handshake(sim, path, receive_buffer=None):
    """A socket that has opened a websocket on ``path`` by hand, and the
    status line of the answer; it reads nothing more unless asked."""
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(sim.streams.sock.getsockname()[:2])
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: stream\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        piece = sock.recv(1)
        if not piece:
            break
        head += piece
    return sock, head.split(b"\r\n", 1)[0].decode()


def test_more_than_300_connection_attempts_in_5_minutes_are_refused_with_429():
    clock = FakeClock(6000.0)
    sim = start_sim(clock=clock)
    try:
        for _ in range(300):
            sock, status = raw_handshake(sim, "/ws")
            sock.close()
            assert status == "HTTP/1.1 101 Switching Protocols"
        sock, status = raw_handshake(sim, "/ws")
        sock.close()
        assert status.startswith("HTTP/1.1 429")
        assert sim.stats()["stream_violations"] == 1 and sim.stats()["stream_connection_attempts"] == 301
        clock.advance(300)
        with open_stream(sim, "/ws"):
            pass
    finally:
        sim.stop()


def test_a_connection_is_closed_at_the_end_of_its_lifetime():
    sim = start_sim(lifetime_seconds=0.5)
    try:
        with open_stream(sim, "/ws/btcusdt@depth@100ms") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                for _ in messages(ws):
                    pass
        assert closed.value.rcvd.code == 1000
        assert sim.stats()["stream_disconnects"] == {"lifetime": 1}
    finally:
        sim.stop()


def test_a_client_that_does_not_read_is_dropped_not_buffered():
    sim = start_sim(send_timeout=0.5)
    try:
        sim.inject(StreamFault("stream", "garbage", body="x" * 2**20))  # a megabyte a tick
        sock, status = raw_handshake(sim, "/ws", receive_buffer=4096)
        with sock:
            assert status == "HTTP/1.1 101 Switching Protocols"
            wait_for(lambda: sim.stats()["stream_disconnects"].get("slow_reader") == 1, timeout=30)
        assert sim.stats()["stream_connections"] == 0
    finally:
        sim.stop()


def test_the_server_pings_and_closes_a_client_that_never_pongs():
    sim = start_sim(ping_interval=0.2, pong_timeout=0.6)
    try:
        with open_stream(sim, "/ws") as ws:  # the library pongs
            wait_for(lambda: sim.stats()["stream_pings_sent"] >= 4)
            assert ws.ping().wait(5)  # and the server answers the client's pings
        sock, _ = raw_handshake(sim, "/ws")  # never reads, so never pongs
        with sock:
            wait_for(lambda: sim.stats()["stream_disconnects"].get("pong_timeout") == 1)
    finally:
        sim.stop()


# The command line


def test_command_line_serves_streams_on_their_own_port():
    process = start_module(
        "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0", "--tick-seconds", "0"
    )
    try:
        line = wait_for(process.stdout.readline)
        words = line.split()
        stream_url, url = words[-4].rstrip(","), words[-1]
        assert stream_url.startswith("ws://127.0.0.1:") and url.startswith("http://127.0.0.1:")
        with connect(stream_url + "/ws/btcusdt@depth", open_timeout=10) as ws:
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            assert json.loads(ws.recv(timeout=10)) == {"result": ["btcusdt@depth"], "id": 1}
        stats = json.loads(http_get(url + "/sim/stats")[2])
        assert stats["stream_connection_attempts"] == 1
    finally:
        status, _, _ = stop_process(process)
    assert status == 0


def test_command_line_refuses_a_stream_port_out_of_range(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--stream-port", "70000"])
    assert exit_info.value.code == 2
    assert "--stream-port must be from 0 to 65535, not 70000" in capsys.readouterr().err


def test_command_line_stops_with_one_line_when_the_stream_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_module("binance_exporter.fake.simulator", "--port", "0", "--stream-port", str(port))
        process.wait(timeout=30)
        status, _, err = stop_process(process)
    assert status == 2
    assert err.splitlines()[-1].endswith(f"cannot listen on 127.0.0.1:{port}: Address already in use")
