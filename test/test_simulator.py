"""The fake Binance speaks Binance's protocol: shapes, parameters, errors,
weights, and a market that moves."""

import http.client
import json
import time
import urllib.error
import urllib.request
from decimal import Decimal as D

import pytest

from binance_exporter.simulated_market import LISTED_SYMBOLS, Market, from_units, synthetic_symbols, to_units
from binance_exporter.simulator import BinanceSimulator, Fault, depth_weight, main, ticker_weight
from .helpers import FakeClock, http_get, start_module, stop_process, wait_for


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
    assert len(body["bids"]) == 1000  # the whole simulated side


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
    process = start_module("binance_exporter.simulator", "--port", "0", "--tick-seconds", "0")
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
        sim.url + "/sim/faults", data=None if body is None else body.encode(), method=method
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
        ("[]", b"a fault is a JSON object"),
        ('{"status": 500}', b"a fault is a JSON object"),
        ('{"path": "/api/v3/depth", "status": "500"}', b"'status' is unknown or of the wrong type"),
        ('{"path": "/api/v3/depth", "colour": "red"}', b"'colour' is unknown"),
        ("not json", b"Expecting value"),
    ],
)
def test_a_bad_fault_is_refused(simulator, body, message):
    status, answer = control(simulator, "POST", body)
    assert status == 400 and message in answer
    assert not simulator.faults


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
