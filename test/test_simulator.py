"""The fake Binance speaks Binance's protocol: shapes, parameters, errors,
weights, and a market that moves."""

import contextlib
import gzip
import http.client
import json
import socket
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
import zlib
from decimal import Decimal as D
from pathlib import Path

import pytest
import requests

from binance_exporter.fake import market as market_module
from binance_exporter.fake.market import (
    DEEP_BOOK_LEVELS,
    LISTED_SYMBOLS,
    MAX_HISTORY,
    HistoryLost,
    Market,
    from_units,
    synthetic_symbols,
    to_units,
)
from binance_exporter.fake.faults import ENDLESS_LEVEL, FAULT_FIELDS, accepts_gzip
from binance_exporter.fake.simulator import MAX_FAULTS, BinanceSimulator, Fault, depth_weight, main, ticker_weight
from .conftest import FROZEN_WALL_CLOCK
from .helpers import ROOT, FakeClock, http_get, start_module, stop_process, wait_for


def get_json(sim: BinanceSimulator, path: str):
    status, headers, body = http_get(sim.url + path)
    return status, headers, json.loads(body) if body else None


def test_depth_serves_string_levels_best_first_with_weight_header(simulator):
    status, headers, body = get_json(simulator, "/api/v3/depth?symbol=ETHBTC&limit=200")
    assert status == 200
    assert len(body["bids"]) == len(body["asks"]) == 200
    bids = [D(p) for p, _ in body["bids"]]
    asks = [D(p) for p, _ in body["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0]
    assert all(isinstance(p, str) and len(p.split(".")[1]) == 8 for p, _ in body["bids"])
    assert headers["X-MBX-USED-WEIGHT-1M"] == "25"


def test_sparse_books_have_fewer_levels_than_asked(simulator):
    _, _, body = get_json(simulator, "/api/v3/depth?symbol=WBTCBTC&limit=200")
    assert len(body["bids"]) == len(body["asks"]) == 40


@pytest.mark.parametrize(
    "query, status, code",
    [
        ("", 400, -1102),
        ("symbol=NOPE", 400, -1121),
        ("symbol=ETHBTC&limit=abc", 400, -1100),
        ("symbol=ETHBTC&limit=0", 400, -1100),
        ("symbol=ETHBTC&bogus=1", 400, -1104),
        ("symbol=ETHBTC&limit=%C2%B2", 400, -1100),
    ],
)
def test_depth_rejects_bad_parameters_as_binance_does(simulator, query, status, code):
    got_status, _, body = get_json(simulator, "/api/v3/depth?" + query)
    assert (got_status, body["code"]) == (status, code)
    assert body["msg"]


def test_depth_limit_defaults_to_100_and_caps_at_5000(simulator):
    _, headers, body = get_json(simulator, "/api/v3/depth?symbol=ETHBTC")
    assert len(body["bids"]) == 100 and headers["X-MBX-USED-WEIGHT-1M"] == "5"
    _, _, body = get_json(simulator, "/api/v3/depth?symbol=ETHBTC&limit=99999")
    assert len(body["bids"]) == DEEP_BOOK_LEVELS  # the whole simulated side, deeper than 1000 levels


@pytest.mark.parametrize(
    "limit, weight", [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50), (1001, 250), (5000, 250)]
)
def test_depth_weight_by_limit(limit, weight):
    assert depth_weight(limit) == weight


@pytest.mark.parametrize("count, weight", [(None, 80), (1, 2), (20, 2), (21, 40), (100, 40), (101, 80)])
def test_ticker_weight_by_symbol_count(count, weight):
    assert ticker_weight(None if count is None else ["X"] * count) == weight


def test_ticker_24hr_lists_every_symbol_including_halted_ones(simulator):
    status, headers, body = get_json(simulator, "/api/v3/ticker/24hr")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "80"
    by_symbol = {record["symbol"]: record for record in body}
    assert {"FTTBTC", "LUNABTC", "USDTTRY", "BTCDOWNUSDT"} <= set(by_symbol)
    assert by_symbol["LUNABTC"]["count"] == 0 and by_symbol["LUNABTC"]["firstId"] == -1
    assert isinstance(by_symbol["ETHBTC"]["quoteVolume"], str)


def test_ticker_24hr_by_symbols_and_mini_type(simulator):
    _, headers, body = get_json(simulator, '/api/v3/ticker/24hr?symbols=["ETHBTC","BNBBTC"]&type=MINI')
    assert [r["symbol"] for r in body] == ["ETHBTC", "BNBBTC"]
    assert "bidPrice" not in body[0] and "quoteVolume" in body[0]
    assert headers["X-MBX-USED-WEIGHT-1M"] == "2"
    status, _, body = get_json(simulator, "/api/v3/ticker/24hr?symbol=ETHBTC")
    assert status == 200 and body["symbol"] == "ETHBTC"
    status, _, body = get_json(simulator, "/api/v3/ticker/24hr?type=HUGE")
    assert (status, body["code"]) == (400, -1100)


@pytest.mark.parametrize(
    "query, code",
    [
        ('symbols=["BTCUSDT","NOPE"]', -1121),
        ("symbols=BTCUSDT", -1100),
        ("symbols=[]", -1100),
        ('symbol=BTCUSDT&symbols=["ETHUSDT"]', -1128),
    ],
)
def test_book_ticker_rejects_bad_symbols(simulator, query, code):
    status, _, body = get_json(simulator, "/api/v3/ticker/bookTicker?" + query)
    assert (status, body["code"]) == (400, code)


def test_book_ticker_matches_the_top_of_the_depth(simulator):
    _, headers, [top] = get_json(simulator, '/api/v3/ticker/bookTicker?symbols=["BTCUSDT"]')
    _, _, book = get_json(simulator, "/api/v3/depth?symbol=BTCUSDT&limit=5")
    assert [top["bidPrice"], top["bidQty"]] == book["bids"][0]
    assert [top["askPrice"], top["askQty"]] == book["asks"][0]
    assert headers["X-MBX-USED-WEIGHT-1M"] == "4"
    _, _, single = get_json(simulator, "/api/v3/ticker/bookTicker?symbol=BTCUSDT")
    assert single == top
    _, _, everything = get_json(simulator, "/api/v3/ticker/bookTicker")
    assert len(everything) == len(simulator.market.symbols)


def test_exchange_info_names_quote_assets_and_statuses(simulator):
    _, headers, body = get_json(simulator, "/api/v3/exchangeInfo")
    by_symbol = {s["symbol"]: s for s in body["symbols"]}
    assert by_symbol["BTCDOWNUSDT"]["quoteAsset"] == "USDT"
    assert by_symbol["WBTCBTC"]["quoteAsset"] == "BTC"
    assert by_symbol["USDTTRY"]["quoteAsset"] == "TRY"
    assert by_symbol["FTTBTC"]["status"] == "HALT"
    assert headers["X-MBX-USED-WEIGHT-1M"] == "20"
    _, _, body = get_json(simulator, "/api/v3/exchangeInfo?symbol=ETHBTC")
    assert [s["symbol"] for s in body["symbols"]] == ["ETHBTC"]


def test_weight_accumulates_and_stats_count_requests(simulator):
    get_json(simulator, "/api/v3/ping")
    _, headers, _ = get_json(simulator, "/api/v3/depth?symbol=ETHBTC&limit=200")
    assert headers["X-MBX-USED-WEIGHT-1M"] == "26"
    status, _, stats = get_json(simulator, "/sim/stats")
    assert status == 200
    assert stats["requests"] == {"/api/v3/ping": 1, "/api/v3/depth": 1}
    assert stats["weight_total"] == 26


def test_unknown_paths_are_404(simulator):
    status, _, _ = get_json(simulator, "/api/v3/nothing")
    assert status == 404


def test_the_market_moves_with_time():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock, wall_clock=FakeClock(1_767_225_600.0))
    before = market.depth("BTCUSDT", 5), market.ticker("BTCUSDT")
    assert (market.depth("BTCUSDT", 5), market.ticker("BTCUSDT")) == before
    clock.advance(30)
    after = market.depth("BTCUSDT", 5), market.ticker("BTCUSDT")
    assert after[0]["bids"] != before[0]["bids"]
    assert after[1]["count"] != before[1]["count"]


def apply_diff(levels: dict, diff_side) -> None:
    """Applies one side of a diff to {price: qty}, as a local book does."""
    for price, qty in diff_side:
        if qty:
            levels[price] = qty
        else:
            levels.pop(price, None)


def test_every_change_counts_one_update_id_and_the_changes_replay_the_book():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    first_id, bids, asks = market.true_book("BTCUSDT")
    local_bids, local_asks = dict(bids), dict(asks)
    clock.advance(40)
    diff = market.changes_since("BTCUSDT", first_id)
    last_id, bids, asks = market.true_book("BTCUSDT")
    assert (diff.first, diff.last) == (first_id + 1, last_id)
    assert last_id - first_id >= 40  # at least a change a step
    assert [p for p, _ in diff.bids] == sorted((p for p, _ in diff.bids), reverse=True)
    apply_diff(local_bids, diff.bids)
    apply_diff(local_asks, diff.asks)
    assert sorted(local_bids.items(), reverse=True) == bids and sorted(local_asks.items()) == asks
    assert market.changes_since("BTCUSDT", last_id) is None
    assert market.depth("BTCUSDT", 5)["lastUpdateId"] == last_id


def test_books_evolve_near_the_top_never_cross_and_keep_their_depth():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    for _ in range(60):
        clock.advance(1)
        for symbol in ("BTCUSDT", "ETHBTC", "WBTCBTC", "ADABTC", "PEPEUSDT"):
            _, bids, asks = market.true_book(symbol)
            assert bids[0][0] < asks[0][0], symbol
            tick = to_units(market.symbols[symbol].tick)
            assert all(price % tick == 0 and qty > 0 for price, qty in bids + asks)
    for symbol, depth in (("BTCUSDT", DEEP_BOOK_LEVELS), ("WBTCBTC", 40), ("ADABTC", 150)):
        _, bids, asks = market.true_book(symbol)
        assert len(bids) == len(asks) == depth, symbol


def test_a_halted_symbols_book_does_not_move():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    before = market.true_book("FTTBTC")
    clock.advance(30)
    assert market.true_book("FTTBTC") == before


def test_a_frozen_market_holds_its_step_and_moves_on_from_it_when_unfrozen():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    clock.advance(10)
    market.freeze()
    frozen = market.true_book("ETHUSDT")
    clock.advance(100)
    assert market.true_book("ETHUSDT") == frozen and market.step() == 10 and market.frozen
    market.unfreeze()
    assert market.step() == 10 and not market.frozen  # no jump: it goes on from where it stood
    clock.advance(1)
    assert market.step() == 11 and market.true_book("ETHUSDT")[0] > frozen[0]


def test_changes_older_than_the_history_kept_are_reported_lost():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    first_id = market.update_id("BTCUSDT")
    clock.advance(3 * MAX_HISTORY // 8)  # more than MAX_HISTORY changes: at least 8 a step on a busy symbol
    assert market.update_id("BTCUSDT") - first_id > MAX_HISTORY
    market.changes_since("BTCUSDT", market.update_id("BTCUSDT") - MAX_HISTORY)  # the latest are kept
    with pytest.raises(HistoryLost):
        market.changes_since("BTCUSDT", first_id)


def test_a_lagging_depth_is_the_book_as_it_was_that_many_changes_ago():
    clock = FakeClock()
    market = Market(tick_seconds=1.0, clock=clock)
    clock.advance(5)
    earlier = market.depth("ETHBTC", 5000)
    clock.advance(5)
    lag = market.update_id("ETHBTC") - earlier["lastUpdateId"]
    assert lag > 0 and market.depth("ETHBTC", 5000, lag=lag) == earlier
    assert market.depth("ETHBTC", 5000)["lastUpdateId"] == earlier["lastUpdateId"] + lag


def test_a_sweep_removes_the_best_levels_of_one_side_at_once():
    market = Market(tick_seconds=0)
    before_id, bids, asks = market.true_book("BTCUSDT")
    assert market.sweep("BTCUSDT", True, 0.9) == 1440
    after_id, swept, same_asks = market.true_book("BTCUSDT")
    assert swept == bids[1440:] and same_asks == asks and after_id == before_id + 1440
    diff = market.changes_since("BTCUSDT", before_id)
    assert diff.bids == [(price, 0) for price, _ in bids[:1440]] and not diff.asks


def test_the_same_seed_gives_the_same_evolution():
    books = []
    for _ in range(2):
        clock = FakeClock()
        market = Market(seed=3, tick_seconds=1.0, clock=clock)
        clock.advance(25)
        books.append(market.true_book("SOLUSDT"))
    assert books[0] == books[1]


def test_served_times_come_from_the_wall_clock():
    wall_clock = FakeClock(1_767_225_600.0)
    market = Market(tick_seconds=0, wall_clock=wall_clock)
    wall_clock.advance(0.25)
    ticker = market.ticker("BTCUSDT")
    assert ticker["closeTime"] == 1_767_225_600_250
    assert ticker["openTime"] == 1_767_225_600_250 - 86_400_000
    assert market.exchange_info(["BTCUSDT"])["serverTime"] == 1_767_225_600_250


def test_the_same_seed_and_step_give_the_same_market():
    assert Market(seed=7, tick_seconds=0).depth("ETHBTC", 50) == Market(seed=7, tick_seconds=0).depth("ETHBTC", 50)
    assert Market(seed=7, tick_seconds=0).depth("ETHBTC", 50) != Market(seed=8, tick_seconds=0).depth("ETHBTC", 50)


def test_units_round_trip():
    assert from_units(to_units("0.00001234")) == "0.00001234"
    assert from_units(to_units("67012.45")) == "67012.45000000"
    assert to_units("3100") == 3100 * 10**8


def test_faults_replace_answers_for_a_path_and_symbol(simulator):
    simulator.inject(Fault("/api/v3/depth", symbol="ETHBTC", status=503, body=b"busy", times=1))
    assert http_get(simulator.url + "/api/v3/depth?symbol=ETHBTC")[0] == 503
    assert http_get(simulator.url + "/api/v3/depth?symbol=ETHBTC")[0] == 200
    simulator.inject(Fault("/api/v3/ticker/bookTicker", symbol="ETHUSDT", body=b"not json"))
    assert http_get(simulator.url + '/api/v3/ticker/bookTicker?symbols=["BTCUSDT"]')[2] != b"not json"
    assert http_get(simulator.url + '/api/v3/ticker/bookTicker?symbols=["BTCUSDT","ETHUSDT"]')[2] == b"not json"
    simulator.clear_faults()
    assert http_get(simulator.url + '/api/v3/ticker/bookTicker?symbols=["ETHUSDT"]')[0] == 200


def test_command_line_serves_until_sigterm():
    process = start_module(
        "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0", "--tick-seconds", "0"
    )
    try:
        line = wait_for(process.stdout.readline)
        url = line.split()[-1]
        assert http_get(url + "/api/v3/ping")[0] == 200
    finally:
        status, _, _ = stop_process(process)
    assert status == 0


@pytest.mark.parametrize("args", [["--port", "70000"], ["--tick-seconds", "-1"], ["--port", "x"]])
def test_command_line_rejects_bad_input(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.fixture
def clocked():
    clock = FakeClock(6000.0)
    sim = BinanceSimulator(Market(tick_seconds=0), clock=clock, weight_limit=60, ban_seconds=120).start()
    yield sim, clock
    sim.stop()


def test_past_the_weight_limit_binance_answers_429_with_retry_after_to_the_minute_end(clocked):
    sim, clock = clocked
    clock.advance(15)
    assert http_get(sim.url + "/api/v3/depth?symbol=ETHBTC&limit=200")[0] == 200  # 25
    assert http_get(sim.url + "/api/v3/depth?symbol=ETHBTC&limit=200")[0] == 200  # 50
    status, headers, body = http_get(sim.url + "/api/v3/depth?symbol=ETHBTC&limit=200")  # 75 > 60
    assert status == 429 and headers["Retry-After"] == "45"
    assert json.loads(body)["code"] == -1003
    assert sim.violations == 0


def test_a_request_inside_a_retry_after_window_gets_418_and_counts_as_a_violation(clocked):
    sim, clock = clocked
    sim.inject(Fault("/api/v3/ping", status=429, body=b"{}", headers={"Retry-After": "30"}, times=1))
    assert http_get(sim.url + "/api/v3/ping")[0] == 429
    assert http_get(sim.url + "/api/v3/ping")[0] == 429  # still in flight when the 429 was sent
    assert sim.violations == 0
    clock.advance(1)
    status, headers, _ = http_get(sim.url + "/api/v3/depth?symbol=ETHBTC")
    assert (status, headers["Retry-After"]) == (418, "120")
    assert sim.violations == 1
    clock.advance(119.9)
    assert http_get(sim.url + "/api/v3/ping")[0] == 418  # the ban was extended
    clock.advance(120)
    assert http_get(sim.url + "/api/v3/ping")[0] == 200
    assert sim.stats()["violations"] == 2


def test_faults_follow_their_schedule(clocked):
    sim, clock = clocked
    sim.inject(Fault("/api/v3/ping", status=503, body=b"", after=10, duration=5))
    assert http_get(sim.url + "/api/v3/ping")[0] == 200
    clock.advance(10)
    assert http_get(sim.url + "/api/v3/ping")[0] == 503
    clock.advance(5)
    assert http_get(sim.url + "/api/v3/ping")[0] == 200


def test_a_fault_can_reset_the_connection_or_cut_the_body_short(simulator):
    simulator.inject(Fault("/api/v3/ping", reset=True, times=1))
    with pytest.raises(ConnectionError):
        http_get(simulator.url + "/api/v3/ping")
    simulator.inject(Fault("/api/v3/depth", truncate_at=10, times=1))
    with pytest.raises(http.client.IncompleteRead):
        http_get(simulator.url + "/api/v3/depth?symbol=ETHBTC")


def test_command_line_rejects_a_weight_limit_below_1(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--weight-limit", "0"])
    assert exit_info.value.code == 2
    assert "--weight-limit must be 1 or more" in capsys.readouterr().err


def control(sim, method, body=None):
    request = urllib.request.Request(
        sim.url + "/sim/faults",
        data=None if body is None else body.encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_faults_can_be_injected_and_cleared_over_http(simulator):
    fault = {"path": "/api/v3/depth", "symbol": "ETHBTC", "status": 503, "body": "busy", "headers": {"X-A": "1"}}
    assert control(simulator, "POST", json.dumps(fault))[0] == 201
    status, headers, body = http_get(simulator.url + "/api/v3/depth?symbol=ETHBTC")
    assert (status, headers["X-A"], body) == (503, "1", b"busy")
    assert control(simulator, "DELETE")[0] == 204
    assert http_get(simulator.url + "/api/v3/depth?symbol=ETHBTC")[0] == 200


@pytest.mark.parametrize(
    "body, message",
    [
        ("[]", "a fault is a JSON object with at least a path"),
        ('{"status": 500}', "a fault is a JSON object with at least a path"),
        ("not json", "a fault is a JSON object: Expecting value: line 1 column 1 (char 0)"),
        ('{"path": "/api/v3/nothing"}', "fault field 'path' must be one of /api/v3/ping, /api/v3/exchangeInfo, "),
        ('{"path": "/sim/stats"}', "fault field 'path' must be one of /api/v3/ping, "),
        ('{"path": "/api/v3/depth", "colour": "red"}', "unknown fault field 'colour'; the fields are path, symbol, "),
        ('{"path": "/api/v3/depth", "status": "500"}', "'status' must be an HTTP status from 100 to 599, not '500'"),
        ('{"path": "/api/v3/depth", "status": 700}', "'status' must be an HTTP status from 100 to 599, not 700"),
        ('{"path": "/api/v3/depth", "status": null}', "'status' must be an HTTP status from 100 to 599, not None"),
        ('{"path": "/api/v3/depth", "delay": null}', "fault field 'delay' must be seconds, 0 or more, not None"),
        ('{"path": "/api/v3/depth", "headers": null}', "fault field 'headers' must be an object of header names"),
        ('{"path": "/api/v3/depth", "body": 5}', "fault field 'body' must be a string, not 5"),
        ('{"path": "/api/v3/depth", "headers": {"X-A": 1}}', "fault field 'headers' must be an object of header names"),
        ('{"path": "/api/v3/depth", "headers": {"X-A": "1\\r\\nX-B: 2"}}', "fault field 'headers' must be an object"),
        ('{"path": "/api/v3/depth", "delay": -1}', "fault field 'delay' must be seconds, 0 or more, not -1"),
        ('{"path": "/api/v3/depth", "delay": NaN}', "fault field 'delay' must be seconds, 0 or more, not nan"),
        ('{"path": "/api/v3/depth", "times": 0}', "fault field 'times' must be a count, 1 or more, not 0"),
        ('{"path": "/api/v3/depth", "times": true}', "fault field 'times' must be a count, 1 or more, not True"),
        ('{"path": "/api/v3/depth", "times": 1.5}', "fault field 'times' must be a count, 1 or more, not 1.5"),
        ('{"path": "/api/v3/depth", "reset": 1}', "fault field 'reset' must be true or false, not 1"),
        ('{"path": "/api/v3/depth", "trickle_bytes_per_second": 0}', "'trickle_bytes_per_second' must be bytes per"),
        ('{"path": "/api/v3/depth", "body_bytes": -1}', "fault field 'body_bytes' must be a byte count from 0 to"),
        ('{"path": "/api/v3/depth", "gzip_bomb": 5000000000}', "'gzip_bomb' must be a byte count from 0 to"),
        ('{"path": "/api/v3/depth", "reset": true, "status": 503}', "a reset sends no answer: leave out status"),
        ('{"path": "/api/v3/depth", "endless": true, "body_bytes": 9}', "endless and body_bytes are different bodies"),
        ('{"path": "/api/v3/depth", "gzip_bomb": 9, "gzip": true}', "a gzip_bomb is gzip-encoded already"),
        ('{"path": "/api/v3/depth", "location": "/x"}', "a location goes with a redirect status (301, 302, 303, 307"),
        ('{"path": "/api/v3/depth", "status": 302, "location": "x"}', "'location' must be a path or an http(s) URL"),
    ],
)
def test_a_bad_fault_is_refused_with_a_one_line_json_error(simulator, body, message):
    status, answer = control(simulator, "POST", body)
    assert status == 400 and b"\n" not in answer
    assert message in json.loads(answer)["msg"]
    assert not simulator.faults


def test_a_fault_past_the_size_limit_or_the_fault_limit_is_refused(simulator):
    status, answer = control(simulator, "POST", json.dumps({"path": "/api/v3/ping", "body": "x" * 70000}))
    assert status == 400 and json.loads(answer)["msg"].startswith("a fault is at most 65536 bytes")
    for _ in range(MAX_FAULTS):
        simulator.inject(Fault("/api/v3/ping", symbol="NEVER"))
    status, answer = control(simulator, "POST", '{"path": "/api/v3/ping"}')
    assert status == 400 and json.loads(answer)["msg"].startswith("100 faults are in force already")
    assert control(simulator, "DELETE")[0] == 204
    assert control(simulator, "POST", '{"path": "/api/v3/ping"}')[0] == 201


def test_control_methods_elsewhere_are_404(simulator):
    for method in ("POST", "DELETE"):
        request = urllib.request.Request(simulator.url + "/api/v3/depth", data=b"{}", method=method)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=5)  # pylint: disable=consider-using-with
        assert error.value.code == 404
        error.value.close()


def test_latency_delays_every_answer():
    sim = BinanceSimulator(Market(tick_seconds=0), latency=0.2).start()
    try:
        started = time.monotonic()
        assert http_get(sim.url + "/api/v3/ping")[0] == 200
        assert time.monotonic() - started >= 0.2
    finally:
        sim.stop()


def test_synthetic_symbols_are_quoted_in_btc_and_usdt():
    symbols = synthetic_symbols(3)
    assert [s.symbol for s in symbols] == [
        "SYN001BTC",
        "SYN001USDT",
        "SYN002BTC",
        "SYN002USDT",
        "SYN003BTC",
        "SYN003USDT",
    ]
    market = Market(LISTED_SYMBOLS + symbols, tick_seconds=0)
    assert market.depth("SYN002USDT", 200)["bids"]


@pytest.mark.parametrize("args", [["--latency", "-1"], ["--extra-symbols", "1000"]])
def test_command_line_rejects_bad_latency_or_symbol_count(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "--latency must be 0 or more" in capsys.readouterr().err


@pytest.fixture
def sim_clock():
    """The fake Binance's clock, standing still: every request of a test
    falls in the same weight minute, whenever the test runs."""
    return FakeClock(6000.0)


@contextlib.contextmanager
def get(sim, path, headers=None):
    """The response to a GET, its body still to be read; http.client, so
    that nothing is decoded, followed or retried behind the test's back."""
    connection = http.client.HTTPConnection(*sim.server.server_address[:2], timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        yield connection.getresponse()
    finally:
        connection.close()


def raw_get(sim, path, timeout=10.0):
    """A socket that has sent a GET of ``path`` and reads its answer raw."""
    sock = socket.create_connection(sim.server.server_address[:2], timeout=timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: binance\r\n\r\n".encode())
    return sock


def test_faults_in_force_are_listed_with_how_often_they_answered(clocked):
    sim, clock = clocked
    assert control(sim, "POST", '{"path": "/api/v3/depth", "status": 503, "body": "busy", "times": 2}')[0] == 201
    sim.inject(Fault("/api/v3/ping", delay=0.5, after=30))
    assert http_get(sim.url + "/api/v3/depth?symbol=ETHBTC")[0] == 503
    status, _, body = http_get(sim.url + "/sim/faults")
    assert status == 200
    assert json.loads(body) == [
        {"path": "/api/v3/depth", "status": 503, "body": "busy", "times": 2}
        | {"started": True, "fired": 1, "remaining": 1},
        {"path": "/api/v3/ping", "delay": 0.5, "after": 30, "started": False, "fired": 0, "remaining": None},
    ]
    assert http_get(sim.url + "/api/v3/depth?symbol=ETHBTC")[0] == 503
    clock.advance(30)
    assert [(f["path"], f["started"]) for f in json.loads(http_get(sim.url + "/sim/faults")[2])] == [
        ("/api/v3/ping", True)
    ]
    assert control(sim, "DELETE")[0] == 204
    assert json.loads(http_get(sim.url + "/sim/faults")[2]) == []


def test_normal_answers_are_gzipped_when_the_client_accepts_it(simulator):
    plain = http_get(simulator.url + "/api/v3/depth?symbol=ETHBTC&limit=500")[2]
    with get(simulator, "/api/v3/depth?symbol=ETHBTC&limit=500", {"Accept-Encoding": "gzip, br"}) as response:
        compressed = response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) == len(compressed) < len(plain) / 2
    assert gzip.decompress(compressed) == plain
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "50"
    with get(simulator, "/api/v3/ping", {"Accept-Encoding": "gzip;q=0, deflate"}) as response:
        assert response.read() == b"{}" and "Content-Encoding" not in response.headers
    answer = requests.get(simulator.url + "/api/v3/exchangeInfo", timeout=10)  # the exporter's HTTP library
    assert answer.headers["Content-Encoding"] == "gzip"
    assert len(answer.json()["symbols"]) == len(simulator.market.symbols)


@pytest.mark.parametrize(
    "header, accepted",
    [
        ("gzip", True),
        ("gzip, deflate", True),
        ("deflate, GZIP;q=0.5", True),
        ("br, gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("deflate", False),
        ("", False),
    ],
)
def test_accept_encoding_is_read_as_http_says(header, accepted):
    assert accepts_gzip(header) is accepted


def test_a_fault_body_is_sent_as_given_unless_gzip_is_true(simulator):
    simulator.inject(Fault("/api/v3/depth", body=b"<html>busy</html>", status=503, times=1))
    simulator.inject(Fault("/api/v3/ping", body=b'{"a":1}', gzip=True, times=1))
    with get(simulator, "/api/v3/depth?symbol=ETHBTC", {"Accept-Encoding": "gzip"}) as response:
        assert (response.status, response.read()) == (503, b"<html>busy</html>")
    with get(simulator, "/api/v3/ping") as response:  # gzip whether asked for or not
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(response.read()) == b'{"a":1}'


def test_fault_kinds_compose_a_status_a_body_and_a_trickle(simulator):
    fault = Fault("/api/v3/depth", status=503, body=b"busy", headers={"X-A": "1"}, trickle_bytes_per_second=900)
    simulator.inject(fault)
    status, headers, body = http_get(simulator.url + "/api/v3/depth?symbol=ETHBTC")
    assert (status, headers["X-A"], body) == (503, "1", b"busy")


def test_a_trickle_keeps_every_read_short_while_the_answer_takes_longer_than_a_read_timeout(simulator):
    rate, read_timeout = 80, 2.0
    simulator.inject(Fault("/api/v3/ping", trickle_bytes_per_second=rate, times=1))
    started = time.monotonic()
    with raw_get(simulator, "/api/v3/ping", timeout=read_timeout) as sock:  # no read may wait longer than this
        answer = b""
        while not answer.endswith(b"\r\n\r\n{}"):
            answer += sock.recv(4096)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nContent-Length: 2\r\n" in answer
    # The first rate // 10 bytes go at once, then rate bytes a second:
    assert elapsed >= (len(answer) - rate // 10) / rate > read_timeout


def test_a_trickle_stops_when_the_client_goes_away(simulator):
    simulator.inject(Fault("/api/v3/ping", trickle_bytes_per_second=1))
    with raw_get(simulator, "/api/v3/ping") as sock:
        assert sock.recv(100) == b"H"  # then a byte a second, for minutes
        assert simulator.stats()["in_progress"] == 1
    wait_for(lambda: simulator.stats()["in_progress"] == 0)


def test_a_delayed_answer_is_given_up_when_the_client_goes_away(simulator):
    simulator.inject(Fault("/api/v3/ping", delay=600))
    with raw_get(simulator, "/api/v3/ping"):
        wait_for(lambda: simulator.stats()["in_progress"] == 1)
    wait_for(lambda: simulator.stats()["in_progress"] == 0)  # not in 600 s


def test_stopping_the_simulator_ends_a_trickling_answer_and_does_not_wait_for_it():
    sim = BinanceSimulator(Market(tick_seconds=0)).start()
    sim.inject(Fault("/api/v3/ping", trickle_bytes_per_second=1))
    with raw_get(sim, "/api/v3/ping") as sock:
        assert sock.recv(100) == b"H"
        stopping = threading.Thread(target=sim.stop)
        stopping.start()
        stopping.join(timeout=10)
        assert not stopping.is_alive()
        received, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline and (data := sock.recv(100)):
            received += data
        assert data == b"", "the answer went on trickling"
    assert len(received) < 20
    wait_for(lambda: sim.in_progress == 0)


def test_stopping_the_simulator_ends_an_endless_answer_to_a_client_that_does_not_read():
    sim = BinanceSimulator(Market(tick_seconds=0)).start()
    sim.inject(Fault("/api/v3/depth", endless=True))
    with raw_get(sim, "/api/v3/depth?symbol=ETHBTC") as sock:  # never read: the server's writes block
        wait_for(lambda: len(sock.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)) >= 1 << 16)
        sim.stop()
        wait_for(lambda: sim.in_progress == 0)


def test_a_body_made_as_it_is_sent_can_be_gzipped_too(simulator):
    simulator.inject(Fault("/api/v3/ping", body_bytes=1_000_000, gzip=True, times=1))
    with get(simulator, "/api/v3/ping") as response:  # not asked for: a misbehaving server
        assert response.headers["Transfer-Encoding"] == "chunked" and response.headers["Content-Encoding"] == "gzip"
        inflated = gzip.decompress(response.read())
    assert len(inflated) == 1_000_000 and inflated.startswith(b"{}  ") and not inflated.strip(b" {}")


def test_an_endless_body_is_valid_chunks_until_the_client_goes_away(simulator):
    simulator.inject(Fault("/api/v3/depth", endless=True))
    with get(simulator, "/api/v3/depth?symbol=ETHBTC") as response:
        assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
        start = response.read(1 + 10 * len(ENDLESS_LEVEL))  # http.client decodes the chunks
        assert start == b"[" + ENDLESS_LEVEL * 10
        received = len(start)
        while received < 20_000_000:
            received += len(response.read(1 << 20))
        assert not response.isclosed()
    wait_for(lambda: simulator.stats()["in_progress"] == 0)


def test_body_bytes_sends_exactly_that_many_bytes_without_holding_them(simulator):
    simulator.inject(Fault("/api/v3/ping", body_bytes=200_000_000, times=1))
    tracemalloc.start()
    try:
        with get(simulator, "/api/v3/ping") as response:
            assert response.headers["Content-Length"] == "200000000"
            buffer, received = bytearray(1 << 20), 0
            while count := response.readinto(buffer):
                if received == 0:
                    assert buffer[:4] == b"{}  "  # the real answer, padded with spaces: still valid JSON
                received += count
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received == 200_000_000
    assert peak < 10_000_000
    simulator.inject(Fault("/api/v3/depth", body_bytes=10, times=1))
    assert http_get(simulator.url + "/api/v3/depth?symbol=ETHBTC")[2] == b'{"lastUpda'  # cut short


def test_a_gzip_bomb_is_small_on_the_wire_and_inflates_to_its_size(simulator):
    size = 64 << 20
    assert control(simulator, "POST", json.dumps({"path": "/api/v3/depth", "gzip_bomb": size}))[0] == 201
    with get(simulator, "/api/v3/depth?symbol=ETHBTC", {"Accept-Encoding": "gzip"}) as response:
        compressed = response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert len(compressed) < size / 500
    inflater, inflated, first = zlib.decompressobj(16 + zlib.MAX_WBITS), 0, None
    piece = inflater.decompress(compressed, 1 << 20)
    while piece:
        first = first or piece
        inflated += len(piece)
        piece = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
    assert inflater.eof and inflated == size
    assert first.startswith(b"[]  ")


def test_a_redirect_goes_somewhere_new_each_time_and_loops(simulator):
    simulator.inject(Fault("/api/v3/depth", status=302, location="/api/v3/depth/{n}"))
    locations = []
    path = "/api/v3/depth?symbol=ETHBTC"
    for _ in range(3):
        status, headers, _ = raw_http(simulator, path)
        assert status == 302
        path = headers["Location"]
        locations.append(path)
    assert locations == ["/api/v3/depth/1", "/api/v3/depth/2", "/api/v3/depth/3"]
    assert raw_http(simulator, "/api/v3/ping")[0] == 200
    with pytest.raises(requests.TooManyRedirects):
        requests.get(simulator.url + "/api/v3/depth?symbol=ETHBTC", timeout=10)
    assert simulator.stats()["requests"]["other"] == 2 + 30  # the fresh paths, counted together
    simulator.clear_faults()
    assert raw_http(simulator, "/api/v3/depth/5")[0] == 404


def test_a_redirect_elsewhere_is_sent_as_given(simulator):
    simulator.inject(Fault("/api/v3/ping", status=301, location="https://binance.example/api/v3/ping", times=1))
    status, headers, _ = raw_http(simulator, "/api/v3/ping")
    assert (status, headers["Location"]) == (301, "https://binance.example/api/v3/ping")


def raw_http(sim, path):
    """(status, headers, body) of a GET that follows no redirect."""
    with get(sim, path) as response:
        return response.status, dict(response.headers), response.read()


def test_an_unreadable_retry_after_of_a_fault_bans_for_the_usual_time(clocked):
    sim, clock = clocked
    sim.inject(Fault("/api/v3/ping", status=429, body=b"{}", headers={"Retry-After": "soon"}, times=1))
    assert http_get(sim.url + "/api/v3/ping")[0] == 429
    clock.advance(119)
    assert http_get(sim.url + "/api/v3/ping")[0] == 418


def test_help_describes_the_simulator_and_every_fault_field(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "A Binance-compatible fake spot market server, for tests, demos and benchmarks.\n" in out
    for name in FAULT_FIELDS:
        assert f"\n  {name} " in out, name


def test_the_readme_lists_every_fault_field_and_no_other():
    readme = Path(ROOT, "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("The fields:\n\n| field | what it does |") :].split("\n\n")[1]
    listed = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert listed == list(FAULT_FIELDS)


# Aggregate trades: one history per symbol, made as the market moves.
FROZEN_WALL_CLOCK_MS = int(FROZEN_WALL_CLOCK * 1000)


def trading_market(clock: FakeClock) -> Market:
    """A market moving one step per second of ``clock``."""
    return Market(tick_seconds=1, clock=clock, wall_clock=lambda: FROZEN_WALL_CLOCK)


@pytest.fixture(name="traded")
def traded_simulator():
    """The fake Binance over a market 300 steps on: a few hundred trades a symbol."""
    clock = FakeClock()
    sim = BinanceSimulator(trading_market(clock), clock=clock).start()
    clock.advance(300)
    yield sim
    sim.stop()


def test_agg_trades_answers_the_latest_oldest_first_with_consecutive_ids_and_weight_4(traded):
    status, headers, trades = get_json(traded, "/api/v3/aggTrades?symbol=BTCUSDT&limit=50")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "4" and len(trades) == 50
    assert trades[-1]["a"] == traded.market.last_trade_id("BTCUSDT")
    for earlier, later in zip(trades, trades[1:]):
        assert later["a"] == earlier["a"] + 1 and later["f"] == earlier["l"] + 1
    assert all(set(t) == {"a", "p", "q", "f", "l", "T", "m", "M"} for t in trades)
    assert all(len(t["p"].split(".")[1]) == len(t["q"].split(".")[1]) == 8 and t["M"] is True for t in trades)
    assert all(1 <= t["l"] - t["f"] + 1 <= 5 and isinstance(t["m"], bool) for t in trades)
    assert {t["m"] for t in trades} == {True, False}  # both taker sides
    assert traded.stats()["agg_trade_baselines"] == {"BTCUSDT": trades[-1]["a"]}
    assert traded.stats()["requests"] == {"/api/v3/aggTrades": 1}


def test_agg_trades_from_an_id_within_a_time_range_and_by_limit(traded):
    _, _, latest = get_json(traded, "/api/v3/aggTrades?symbol=ETHBTC&limit=1000")
    first = latest[0]["a"]
    _, _, page = get_json(traded, f"/api/v3/aggTrades?symbol=ETHBTC&fromId={first + 3}&limit=5")
    assert page == latest[3:8]
    _, _, default = get_json(traded, f"/api/v3/aggTrades?symbol=ETHBTC&fromId={first}")
    assert default == latest[:500]
    _, _, beyond = get_json(traded, f"/api/v3/aggTrades?symbol=ETHBTC&fromId={latest[-1]['a'] + 1}")
    assert beyond == []
    _, _, capped = get_json(traded, "/api/v3/aggTrades?symbol=ETHBTC&fromId=0&limit=5000")
    assert capped == latest[:1000]  # from an id older than the history: from the oldest kept, 1000 at most
    times = f"startTime={FROZEN_WALL_CLOCK_MS}&endTime={FROZEN_WALL_CLOCK_MS}"
    _, _, timed = get_json(traded, f"/api/v3/aggTrades?symbol=ETHBTC&{times}&limit=1000")
    assert timed == latest  # every trade is stamped at the frozen wall clock
    _, _, before = get_json(traded, f"/api/v3/aggTrades?symbol=ETHBTC&endTime={FROZEN_WALL_CLOCK_MS - 1}")
    assert before == []


@pytest.mark.parametrize(
    "query, code",
    [
        ("", -1102),
        ("symbol=NOPE", -1121),
        ("symbol=ETHBTC&fromId=abc", -1100),
        ("symbol=ETHBTC&fromId=-1", -1100),
        ("symbol=ETHBTC&limit=0", -1100),
        ("symbol=ETHBTC&fromId=1&startTime=1", -1128),
        ("symbol=ETHBTC&fromId=%C2%B2", -1100),  # a digit, but not an ASCII one
        ("symbol=ETHBTC&limit=%C2%B2", -1100),
        ("symbol=ETHBTC&colour=red", -1104),
    ],
)
def test_agg_trades_rejects_bad_parameters_as_binance_does(traded, query, code):
    status, _, body = get_json(traded, "/api/v3/aggTrades?" + query)
    assert (status, body["code"]) == (400, code) and body["msg"]


def test_a_taker_buy_takes_the_best_ask_and_a_taker_sell_the_best_bid():
    clock = FakeClock()
    market = trading_market(clock)
    seen = market.last_trade_id("SOLUSDT")
    checked = 0
    for _ in range(60):
        clock.advance(1)
        _, bids, asks = market.true_book("SOLUSDT")
        for trade in market.trades_since("SOLUSDT", seen):
            assert trade.price == (bids[0][0] if trade.buyer_maker else asks[0][0])
            seen, checked = trade.agg_id, checked + 1
    assert checked > 20


def test_the_same_seed_makes_the_same_trades_and_a_frozen_market_none():
    clocks = FakeClock(), FakeClock()
    markets = [trading_market(clock) for clock in clocks]
    for clock in clocks:
        clock.advance(40)
    assert markets[0].agg_trades("XRPUSDT", limit=1000) == markets[1].agg_trades("XRPUSDT", limit=1000)
    markets[0].freeze()
    held = markets[0].last_trade_id("XRPUSDT")
    clocks[0].advance(40)
    assert markets[0].last_trade_id("XRPUSDT") == held


def test_the_trade_history_is_bounded_and_older_ids_answer_from_the_oldest_kept(monkeypatch):
    monkeypatch.setattr(market_module, "MAX_TRADE_HISTORY", 20)
    monkeypatch.setattr(market_module, "TRADE_TRIM", 10)
    clock = FakeClock()
    market = trading_market(clock)
    clock.advance(500)
    latest = market.last_trade_id("BTCUSDT")
    kept = market.agg_trades("BTCUSDT", from_id=0, limit=1000)
    assert 20 <= len(kept) <= 30 and kept[-1]["a"] == latest
    with pytest.raises(HistoryLost):
        market.trades_since("BTCUSDT", kept[0]["a"] - 2)
    assert market.trades_since("BTCUSDT", kept[0]["a"] - 1)[0].agg_id == kept[0]["a"]
