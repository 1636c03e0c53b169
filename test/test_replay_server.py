"""The replay server serves a recording as Binance: recordings of the fake
Binance made as the exporter makes them (a real ``Market``, its stream
frames and REST bodies handed to a ``Recorder``), replayed on a clock the
test moves, read by real websocket clients and real HTTP requests."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any, Iterator
from urllib.parse import quote

import pytest
from websockets.sync.client import connect

from binance_exporter.binance.recording import Recorder, RecordingError, read_recording
from binance_exporter.fake.market import LISTED_SYMBOLS, HistoryLost, Market, to_units
from binance_exporter.fake.streams import StreamSession, ticker_event
from binance_exporter.replay import server
from binance_exporter.replay.server import RecordedMarket, serve_recording

from .helpers import FakeClock, http_get, messages, post

ORIGIN = 1_795_427_998.0  # 2026-11-23T08:59:58Z: two seconds before an hour, so a recording spans two files
STREAMS = ["ethbtc@depth@100ms", "bnbbtc@depth@100ms", "ethbtc@aggTrade", "!ticker_1d@arr"]
NOT_YET = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
EPSILON = 1e-6  # past a line's receive time, for a float clock


class FakeRecording:  # pylint: disable=too-many-instance-attributes  # its clocks, its parts and what it recorded
    """A recording of the fake Binance as the exporter makes one: a real
    ``Market`` moved step by step on a clock of its own, what a
    ``StreamSession`` subscribed to ``STREAMS`` sends each 0.1 s and the
    REST answers the test asks for, handed to a ``Recorder`` whose clock
    (receive time) the test moves; and, for each depth event recorded,
    the market's true book right then."""

    def __init__(self, directory: Any):
        self.directory = directory
        self.clock = FakeClock(ORIGIN)  # receive times
        self.market_clock = FakeClock(0.0)  # the market's steps: one a tick
        listed = tuple(s for s in LISTED_SYMBOLS if s.symbol in ("ETHBTC", "BNBBTC", "BTCUSDT"))
        self.market = Market(listed, tick_seconds=1.0, clock=self.market_clock, wall_clock=self.clock)
        self.recorder = Recorder(directory, 2**30, clock=self.clock).start()
        self.session = StreamSession(self.market, combined=True)
        self.books: dict[tuple[str, int], tuple[list, list]] = {}  # (symbol, update id): the true book then
        self.depth_events: list[tuple[float, dict]] = []  # (receive time, event) of those recorded
        self.trades: list[dict] = []
        self.tickers: list[dict] = []

    def start(self) -> "FakeRecording":
        """What an exporter records first: its subscription's answer, the
        exchange info, the 24 h tickers, the latest trade of ETHBTC."""
        self.session.subscribe(STREAMS)
        self.recorder.stream_message(1, '{"result":null,"id":1}')
        self.exchange_info = self.rest("/api/v3/exchangeInfo", "", self.market.exchange_info())
        self.rest_tickers = self.rest("/api/v3/ticker/24hr", "", [self.market.ticker(s) for s in self.market.symbols])
        latest_trade = self.market.agg_trades("ETHBTC", limit=1)
        self.latest_trade = self.rest("/api/v3/aggTrades", "symbol=ETHBTC&limit=1", latest_trade)
        return self

    def rest(self, endpoint: str, query: str, body: Any) -> Any:
        """Records ``body`` as the answer to ``endpoint`` 0.01 s after the line before; returns it."""
        self.clock.advance(0.01)
        self.recorder.rest_answer(endpoint, query, json.dumps(body, separators=(",", ":")).encode())
        return body

    def snapshot(self, symbol: str = "ETHBTC") -> dict:
        """Records a depth snapshot of the whole book (5000 levels: deeper than the fake's)."""
        body = self.market.depth(symbol, 5000)
        _, bids, asks = self.market.true_book(symbol)
        self.books[(symbol, body["lastUpdateId"])] = (bids, asks)
        self.rest("/api/v3/depth", f"symbol={symbol}&limit=5000", body)
        return body

    def ticks(self, count: int, drop_depth: int = 0) -> None:
        """``count`` steps of the market, each recorded as the frames sent
        0.1 s after the previous; the first ``drop_depth`` depth events are
        left out (a recording with a gap)."""
        for _ in range(count):
            self.clock.advance(0.1)
            self.market_clock.advance(1.0)
            for frame in self.session.tick(self.market.now_ms()):
                data = json.loads(frame)["data"]
                if isinstance(data, list):
                    self.tickers += data
                elif data["e"] == "aggTrade":
                    self.trades.append(data)
                elif drop_depth:
                    drop_depth -= 1
                    continue
                else:
                    _, bids, asks = self.market.true_book(data["s"])
                    self.books[(data["s"], data["u"])] = (bids, asks)
                    self.depth_events.append((self.clock(), data))
                self.recorder.stream_message(1, frame)

    def lines(self) -> Iterator[dict]:
        """The recording's lines, file after file, as the replay reads them."""
        self.recorder.stop(10)
        files = sorted(self.directory.iterdir())
        assert len(files) == (2 if self.clock() > ORIGIN + 2 else 1)  # the hour's turn starts a file
        return itertools.chain.from_iterable(read_recording(path) for path in files)

    def events_of(self, symbol: str) -> list[tuple[float, dict]]:
        return [(when, event) for when, event in self.depth_events if event["s"] == symbol]


@pytest.fixture
def replay_clock() -> FakeClock:
    return FakeClock(500.0)


@pytest.fixture
def serving(replay_clock):
    """Starts the replay server on a recording, at speed 1 unless told;
    stops every server started."""
    started = []

    def start(lines, speed=1.0):
        market = RecordedMarket(lines, speed, clock=replay_clock)
        started.append(serve_recording(market, stream_options={"ping_interval": 3600}))
        return market, started[-1]

    yield start
    for sim in started:
        sim.stop()


def at(clock: FakeClock, when: float) -> None:
    """Moves the replay clock (speed 1) to replay time ``when``."""
    clock.now = 500.0 + (when - ORIGIN) + EPSILON


def get(sim, path: str) -> tuple[int, Any]:
    status, _, body = http_get(sim.url + path)
    return status, json.loads(body)


def open_stream(sim, streams: list[str]):
    return connect(f"{sim.stream_url}/stream?streams={'/'.join(streams)}", ping_interval=None, open_timeout=10)


def received(ws, condition, timeout: float = 15.0) -> Iterator[Any]:
    """The data of the messages of ``ws`` for which ``condition`` holds, as
    they come; fails the test when none comes before the deadline."""
    for message in messages(ws, timeout):
        if "data" in message and condition(message["data"]):
            yield message["data"]


def depth_updates(ws) -> Iterator[dict]:
    return received(ws, lambda data: isinstance(data, dict) and data.get("e") == "depthUpdate")


class LocalBook:
    """A book kept as Binance's "How to manage a local order book
    correctly" says: a snapshot, then every event after it; ``apply``
    says whether an event followed on (False: a gap)."""

    def __init__(self, snapshot: dict):
        self.last = snapshot["lastUpdateId"]
        self.sides = [{to_units(p): to_units(q) for p, q in snapshot[side]} for side in ("bids", "asks")]
        self.started = False

    def apply(self, event: dict) -> bool:
        if event["u"] <= self.last:
            return True
        follows = event["U"] <= self.last + 1 if not self.started else event["U"] == self.last + 1
        if not follows:
            return False
        self.started = True
        for side, levels in zip(self.sides, (event["b"], event["a"])):
            for price, qty in levels:
                if to_units(qty):
                    side[to_units(price)] = to_units(qty)
                else:
                    side.pop(to_units(price), None)
        self.last = event["u"]
        return True

    def levels(self) -> tuple[list, list]:
        return sorted(self.sides[0].items(), reverse=True), sorted(self.sides[1].items())


def served_book(body: dict) -> tuple[list, list]:
    return tuple([(to_units(p), to_units(q)) for p, q in body[side]] for side in ("bids", "asks"))


# The book


def test_the_served_snapshot_and_diffs_rebuild_the_recorded_book_at_every_event(tmp_path, serving, replay_clock):
    recording = FakeRecording(tmp_path).start()
    recording.ticks(3)  # events before the snapshot, as an exporter buffers them
    snapshot = recording.snapshot()
    snapshot_time = recording.clock()
    recording.ticks(30)  # past the hour: the rest is in a second file
    _, sim = serving(recording.lines())
    at(replay_clock, snapshot_time)
    with open_stream(sim, ["ethbtc@depth@100ms"]) as ws:
        status, body = get(sim, "/api/v3/depth?symbol=ETHBTC&limit=5000")
        assert status == 200 and body == snapshot  # the recorded snapshot, moved by nothing yet
        book, updates = LocalBook(body), depth_updates(ws)
        after = [(when, event) for when, event in recording.events_of("ETHBTC") if when > snapshot_time]
        assert len(after) == 30
        for when, event in after:
            at(replay_clock, when)
            while book.last < event["u"]:
                assert book.apply(next(updates))
                assert book.levels() == recording.books[("ETHBTC", book.last)]
            assert book.last == event["u"]
            status, body = get(sim, "/api/v3/depth?symbol=ETHBTC&limit=1000")  # weight 50: 30 fit in a minute
            assert status == 200 and body["lastUpdateId"] == event["u"]
            assert served_book(body) == tuple(side[:1000] for side in recording.books[("ETHBTC", event["u"])])


def test_events_are_served_as_recorded_but_for_their_time(tmp_path, serving, replay_clock):
    recording = FakeRecording(tmp_path).start()
    recording.snapshot()
    recording.ticks(5)
    market, sim = serving(recording.lines())
    at(replay_clock, ORIGIN + 0.035)  # listed, not snapshot yet
    with open_stream(sim, ["ethbtc@depth@100ms"]) as ws:
        updates = depth_updates(ws)
        for when, event in recording.events_of("ETHBTC"):
            at(replay_clock, when)
            served = next(updates)
            assert served["E"] == pytest.approx(time.time() * 1000, abs=5000)  # the replay's wall clock
            assert {**served, "E": event["E"]} == event
    assert market.bad_lines == 0


def test_a_merged_diff_stops_at_a_gap_in_the_recording_and_the_book_is_unknown_until_a_snapshot(
    tmp_path, serving, replay_clock
):
    recording = FakeRecording(tmp_path).start()
    recording.snapshot()
    recording.ticks(5)
    recording.ticks(5, drop_depth=1)  # one ETHBTC event lost: a gap
    gap_time = recording.clock()
    second = recording.snapshot()
    recording.ticks(3)
    sim = serving(recording.lines())[1]
    before_gap = [event for when, event in recording.events_of("ETHBTC") if when < ORIGIN + 0.6]
    after_gap = [event for when, event in recording.events_of("ETHBTC") if ORIGIN + 0.6 < when <= gap_time]
    assert (len(before_gap), len(after_gap)) == (5, 4)
    at(replay_clock, ORIGIN + 0.035)  # listed, not snapshot yet
    with open_stream(sim, ["ethbtc@depth@100ms"]) as ws:
        updates = depth_updates(ws)
        at(replay_clock, gap_time)  # the whole gap at once: merged, but not over it
        merged = next(updates)
        assert (merged["U"], merged["u"]) == (before_gap[0]["U"], before_gap[-1]["u"])
        resumed = next(updates)
        assert resumed["U"] > merged["u"] + 1  # the client sees the gap
        assert (resumed["U"], resumed["u"]) == (after_gap[0]["U"], after_gap[-1]["u"])
        assert get(sim, "/api/v3/depth?symbol=ETHBTC&limit=100") == (503, NOT_YET)
        at(replay_clock, recording.clock())
        status, body = get(sim, "/api/v3/depth?symbol=ETHBTC&limit=5000")
    assert status == 200 and body["lastUpdateId"] > second["lastUpdateId"]
    assert served_book(body) == recording.books[("ETHBTC", body["lastUpdateId"])]


def test_a_symbol_not_yet_known_answers_503_and_one_never_listed_is_invalid(tmp_path, serving, replay_clock):
    recording = FakeRecording(tmp_path).start()
    recording.ticks(2)
    snapshot_time = recording.clock() + 0.01
    recording.snapshot()
    recording.ticks(2)
    _, sim = serving(recording.lines())
    assert get(sim, "/api/v3/exchangeInfo") == (503, NOT_YET)  # before the recorded one
    at(replay_clock, snapshot_time - 0.005)
    assert get(sim, "/api/v3/exchangeInfo")[0] == 200
    assert get(sim, "/api/v3/depth?symbol=ETHBTC&limit=100") == (503, NOT_YET)  # its events only, yet
    assert get(sim, "/api/v3/depth?symbol=BNBBTC&limit=100") == (503, NOT_YET)  # never a snapshot
    assert get(sim, "/api/v3/aggTrades?symbol=BNBBTC") == (503, NOT_YET)  # never a trade
    assert get(sim, "/api/v3/ticker/bookTicker?symbol=BNBBTC") == (503, NOT_YET)
    assert get(sim, "/api/v3/depth?symbol=DOGEBTC&limit=100") == (400, {"code": -1121, "msg": "Invalid symbol."})
    at(replay_clock, snapshot_time)
    assert get(sim, "/api/v3/depth?symbol=ETHBTC&limit=100")[0] == 200
    status, tops = get(sim, "/api/v3/ticker/bookTicker")
    assert status == 200 and [top["symbol"] for top in tops] == ["ETHBTC"]  # the only book known


# Trades, tickers, exchange info


def test_trades_are_served_as_recorded_on_the_stream_and_over_rest(tmp_path, serving, replay_clock):
    recording = FakeRecording(tmp_path).start()
    recording.ticks(20)
    _, sim = serving(recording.lines())
    at(replay_clock, ORIGIN + 0.05)  # after the recorded answer of the latest trade
    status, latest = get(sim, "/api/v3/aggTrades?symbol=ETHBTC&limit=1")
    assert status == 200 and latest == recording.latest_trade
    with open_stream(sim, ["ethbtc@aggTrade"]) as ws:
        at(replay_clock, recording.clock())
        trades = received(ws, lambda data: data.get("e") == "aggTrade")
        served = [next(trades) for _ in recording.trades]
    assert [{**trade, "E": 0} for trade in served] == [{**trade, "E": 0} for trade in recording.trades]
    status, kept = get(sim, "/api/v3/aggTrades?symbol=ETHBTC&limit=1000")
    payloads = [{name: trade[name] for name in "apqflTmM"} for trade in recording.trades]
    assert status == 200 and kept == latest + payloads
    assert get(sim, f"/api/v3/aggTrades?symbol=ETHBTC&fromId={payloads[2]['a']}&limit=2")[1] == payloads[2:4]
    start, end = payloads[1]["T"], payloads[-2]["T"]
    window = get(sim, f"/api/v3/aggTrades?symbol=ETHBTC&startTime={start}&endTime={end}")[1]
    assert window == [trade for trade in payloads if start <= trade["T"] <= end]


def test_tickers_are_the_latest_recorded_on_the_stream_and_over_rest(tmp_path, serving, replay_clock):
    recording = FakeRecording(tmp_path).start()
    recording.ticks(25)  # two ticker arrays
    _, sim = serving(recording.lines())
    at(replay_clock, ORIGIN + 0.05)
    assert get(sim, "/api/v3/ticker/24hr?symbol=ETHBTC") == (200, recording.rest_tickers[0])
    with open_stream(sim, ["!ticker_1d@arr"]) as ws:
        at(replay_clock, recording.clock())
        latest = {event["s"]: event for event in recording.tickers}

        def caught_up(data):
            return isinstance(data, list) and any(event == {**latest[event["s"]], "E": event["E"]} for event in data)

        next(received(ws, caught_up))
    status, records = get(sim, "/api/v3/ticker/24hr")
    assert status == 200 and {record["symbol"] for record in records} == {"ETHBTC", "BNBBTC", "BTCUSDT"}
    for record in records:
        assert {**ticker_event(record, 0), "E": 0} == {**latest[record["symbol"]], "E": 0}
    status, mini = get(sim, "/api/v3/ticker/24hr?symbol=ETHBTC&type=MINI")
    assert status == 200 and mini["count"] == latest["ETHBTC"]["n"] and "priceChange" not in mini


def test_exchange_info_is_the_recorded_one_filtered_as_binance_does(tmp_path, serving, replay_clock):
    recording = FakeRecording(tmp_path).start()
    recording.ticks(1)
    _, sim = serving(recording.lines())
    at(replay_clock, recording.clock())
    status, info = get(sim, "/api/v3/exchangeInfo")
    assert status == 200 and info == recording.exchange_info
    status, one = get(sim, "/api/v3/exchangeInfo?symbols=" + quote('["BTCUSDT","ETHBTC"]'))
    assert status == 200 and [entry["symbol"] for entry in one["symbols"]] == ["BTCUSDT", "ETHBTC"]
    assert one["symbols"][0] == info["symbols"][2]


# Time


def test_speed_maps_the_clock_onto_recorded_time(tmp_path, serving, replay_clock):
    recording = FakeRecording(tmp_path).start()
    recording.snapshot()
    recording.ticks(30)
    market, sim = serving(recording.lines(), speed=10.0)
    replay_clock.advance(0.25)  # 2.5 s of the recording
    assert market.replay_time() == ORIGIN + 2.5
    due = [event for when, event in recording.events_of("ETHBTC") if when <= ORIGIN + 2.5]
    assert len(due) < len(recording.events_of("ETHBTC"))
    status, body = get(sim, "/api/v3/depth?symbol=ETHBTC&limit=5000")
    assert status == 200 and body["lastUpdateId"] == due[-1]["u"]
    assert post(sim, "/sim/market", {"frozen": True})[1]["frozen"] is True
    replay_clock.advance(100.0)
    assert market.replay_time() == ORIGIN + 2.5 and get(sim, "/api/v3/depth?symbol=ETHBTC&limit=1")[1][
        "lastUpdateId"
    ] == due[-1]["u"]
    post(sim, "/sim/market", {"frozen": False})
    replay_clock.advance(0.05)  # on from where it was held
    assert market.replay_time() == pytest.approx(ORIGIN + 3.0, abs=1e-6)
    replay_clock.advance(10.0)
    last = recording.events_of("ETHBTC")[-1][1]
    assert get(sim, "/api/v3/depth?symbol=ETHBTC&limit=1")[1]["lastUpdateId"] == last["u"]
    assert market.finished


def test_lines_are_read_as_replay_time_reaches_them_never_ahead(replay_clock):
    pulled = []

    def endless() -> Iterator[dict]:
        yield {"format": "binance-exporter-recording", "version": 1}
        for number in itertools.count():
            pulled.append(number)
            event = {"e": "depthUpdate", "E": 0, "s": "ETHBTC", "U": number + 1, "u": number + 1, "b": [], "a": []}
            yield {"t": ORIGIN + number / 10, "ws": 1, "msg": json.dumps({"stream": "x", "data": event})}

    market = RecordedMarket(endless(), 1.0, clock=replay_clock)
    replay_clock.advance(1.0 + EPSILON)  # 1 s: the lines of t up to ORIGIN + 1
    assert market.update_id("ETHBTC") == 11
    assert len(pulled) == 12  # and the one after, to know it is not due
    assert not market.finished


# Bounds and bad lines


def depth_line(when: float, symbol: str, first: int, last: int, bids=(), asks=()) -> dict:
    event = {"e": "depthUpdate", "E": 0, "s": symbol, "U": first, "u": last, "b": list(bids), "a": list(asks)}
    return {"t": when, "ws": 1, "msg": json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": event})}


def trade_line(when: float, agg_id: int) -> dict:
    trade = {"e": "aggTrade", "E": 0, "s": "ETHBTC", "a": agg_id, "p": "0.05000000", "q": "1.00000000",
             "f": agg_id, "l": agg_id, "T": 1000 + agg_id, "m": True, "M": True}  # fmt: skip
    return {"t": when, "ws": 1, "msg": json.dumps({"stream": "ethbtc@aggTrade", "data": trade})}


def snapshot_line(when: float, symbol: str, update_id: int, levels: int) -> dict:
    body = {
        "lastUpdateId": update_id,
        "bids": [[f"{100 - n}.00000000", "1.00000000"] for n in range(levels)],
        "asks": [[f"{101 + n}.00000000", "1.00000000"] for n in range(levels)],
    }
    return {"t": when, "rest": "/api/v3/depth", "query": f"symbol={symbol}&limit=5000", "body": json.dumps(body)}


def test_what_is_kept_stays_bounded_however_long_the_recording(replay_clock):
    events = (depth_line(ORIGIN, "ETHBTC", n, n, [[f"{n % 50}.00000000", "1.00000000"]]) for n in range(1, 5001))
    trades = (trade_line(ORIGIN, n) for n in range(1, 8001))
    market = RecordedMarket(itertools.chain([snapshot_line(ORIGIN, "ETHBTC", 0, 50)], events, trades), 1.0,
                            clock=replay_clock)  # fmt: skip
    kept = market.kept()
    assert kept["events"] <= server.MAX_EVENTS + server.EVENT_TRIM
    assert kept["trades"] <= server.MAX_TRADES + server.TRADE_TRIM
    assert market.update_id("ETHBTC") == 5000 and market.last_trade_id("ETHBTC") == 8000
    with pytest.raises(HistoryLost):
        market.changes_since("ETHBTC", 10)
    with pytest.raises(HistoryLost):
        market.trades_since("ETHBTC", 10)
    assert market.changes_since("ETHBTC", 4990).first == 4991
    assert [trade.agg_id for trade in market.trades_since("ETHBTC", 7998)] == [7999, 8000]
    assert market.true_book("ETHBTC")[0] == 5000  # the book followed every event


def test_symbols_and_book_levels_are_capped(replay_clock, monkeypatch):
    monkeypatch.setattr(server, "MAX_SYMBOLS", 3)
    monkeypatch.setattr(server, "MAX_BOOK_LEVELS", 10)
    monkeypatch.setattr(server, "BOOK_TRIM", 2)
    lines = [depth_line(ORIGIN, f"SYM{n}BTC", 1, 1) for n in range(5)] + [snapshot_line(ORIGIN, "SYM0BTC", 1, 40)]
    market = RecordedMarket(iter(lines), 1.0, clock=replay_clock)
    assert list(market.symbols) == ["SYM0BTC", "SYM1BTC", "SYM2BTC"] and market.bad_lines == 2
    update_id, bids, asks = market.true_book("SYM0BTC")
    assert (update_id, len(bids), len(asks)) == (1, 10, 10)
    assert bids[0] == (100 * 10**8, 10**8) and asks[0] == (101 * 10**8, 10**8)  # the best are kept


def test_a_bad_line_is_counted_and_skipped_and_an_event_lost_so_is_a_gap(replay_clock, caplog):
    lines = [
        {"format": "binance-exporter-recording", "version": 1},
        snapshot_line(ORIGIN, "ETHBTC", 10, 3),
        depth_line(ORIGIN, "ETHBTC", 11, 12, [["99.00000000", "2.00000000"]]),
        depth_line(ORIGIN, "ETHBTC", 13, 13, [["99.000000001", "2.00000000"]]),  # 9 decimals
        {"t": ORIGIN, "ws": 1, "msg": "not json"},
        {"t": ORIGIN, "cycle": {"n": 1, "books": {"ETHBTC": 12}}},  # a kind it need not read
        {"format": "binance-exporter-recording", "version": 1},  # the next file's header
        {"ws": 1, "msg": "{}"},  # no receive time
        depth_line(ORIGIN + 1, "ETHBTC", 14, 15, [["98.00000000", "0.00000000"]]),
    ]
    market = RecordedMarket(iter(lines), 1.0, clock=replay_clock)
    assert market.true_book("ETHBTC")[1][1] == (99 * 10**8, 2 * 10**8)
    assert market.bad_lines == 3
    assert "not a decimal of at most 8 decimals: '99.000000001'" in caplog.text
    replay_clock.advance(1.0 + EPSILON)
    diff = market.changes_since("ETHBTC", 12)
    assert (diff.first, diff.last) == (14, 15)  # the gap where the bad event was
    with pytest.raises(server.NotYetRecorded):
        market.depth("ETHBTC", 10)
    assert market.finished and market.lines_read == len(lines)


def test_a_recording_that_cannot_be_read_further_ends_the_replay_where_it_breaks(replay_clock, caplog):
    def broken() -> Iterator[dict]:
        yield snapshot_line(ORIGIN, "ETHBTC", 10, 3)
        raise RecordingError("binance-20261123T090000Z.jsonl.gz: line 2: not JSON")

    market = RecordedMarket(broken(), 1.0, clock=replay_clock)
    assert market.finished and market.depth("ETHBTC", 1)["lastUpdateId"] == 10
    assert "line 2: not JSON" in market.error and "ends early" in caplog.text


def test_a_speed_that_is_not_positive_is_refused():
    for speed in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="speed"):
            RecordedMarket(iter([]), speed)


def test_serve_recording_listens_on_free_ports_and_serves_rest_and_streams(serving):
    market, sim = serving(iter([]))
    assert sim.url.startswith("http://127.0.0.1:") and sim.stream_url.startswith("ws://127.0.0.1:")
    assert get(sim, "/api/v3/ping") == (200, {})
    assert market.finished and market.symbols == {}
    assert market.sweep("ETHBTC", True, 0.5) == 0
