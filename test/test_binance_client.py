"""The Binance client against the fake Binance: parsed values, counted
requests, retries of transient failures, pauses Binance asks for, and every
failure turned into MarketDataError."""

import json
import logging
import threading
import time
from decimal import Decimal as D

import pytest

from binance_exporter.binance.rest_client import RETRIES, BinanceClient, depth_weight
from binance_exporter.errors import MarketDataError
from binance_exporter.binance.request_gate import RequestGate, RequestSkipped
from binance_exporter.fake.market import Market
from binance_exporter.fake.simulator import BinanceSimulator, Fault
from .helpers import FakeClock, free_port


class Sleeps(list):
    """Records the pauses between retries instead of sleeping."""

    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def clock():
    return FakeClock(6000.0)


@pytest.fixture
def sim_clock(clock):
    """The fake Binance shares the client's clock: its weight minute does not
    roll over between two requests of a test, whenever the test runs."""
    return clock


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def client(simulator, clock, sleeps):
    return BinanceClient(simulator.url + "/", timeout=1.0, gate=RequestGate(clock=clock), sleep=sleeps)


def requests_of(client):
    return {(endpoint, code): count for endpoint, code, count in client.api_counts().requests}


def errors_of(client):
    return {(endpoint, reason): count for endpoint, reason, count in client.api_counts().errors if count}


def skipped_of(client):
    return {(endpoint, reason): count for endpoint, reason, count in client.api_counts().skipped if count}


def test_failure_counters_start_at_zero_for_every_endpoint_and_reason(client):
    counts = client.api_counts()
    assert ("/api/v3/depth", "timeout", 0) in counts.errors
    assert ("/api/v3/ticker/24hr", "weight_budget", 0) in counts.skipped
    assert counts.rate_limited == (("418", 0), ("429", 0))


def test_exchange_info_and_tickers(client):
    symbols = client.exchange_info()
    assert symbols["BTCDOWNUSDT"].quote_asset == "USDT"
    tickers = {t.symbol: t for t in client.tickers_24h()}
    assert set(tickers) == set(symbols)
    assert requests_of(client) == {("/api/v3/exchangeInfo", "200"): 1, ("/api/v3/ticker/24hr", "200"): 1}
    assert client.api_counts().weight_used == 100
    assert client.api_counts().weight_budget == 1200


def test_order_book_asks_for_200_levels_and_parses_them_exactly(client, simulator):
    book = client.order_book("BTCUSDT")
    served = simulator.market.depth("BTCUSDT", 200)
    assert book.bids == tuple((D(p), D(q)) for p, q in served["bids"])
    assert book.asks == tuple((D(p), D(q)) for p, q in served["asks"])
    assert client.api_counts().weight_used == 25


def test_book_tops_in_one_call(client, simulator):
    tops = client.book_tops(["BTCUSDT", "ETHUSDT"])
    assert list(tops) == ["BTCUSDT", "ETHUSDT"]
    assert str(tops["ETHUSDT"].ask_price) == simulator.market.book_ticker("ETHUSDT")["askPrice"]
    assert requests_of(client) == {("/api/v3/ticker/bookTicker", "200"): 1}


def test_an_invalid_symbol_is_not_retried(client, sleeps):
    with pytest.raises(MarketDataError, match="-1121 Invalid symbol") as error:
        client.order_book("NOPEBTC")
    assert error.value.reason == "invalid_symbol"
    assert requests_of(client) == {("/api/v3/depth", "400"): 1}
    assert errors_of(client) == {("/api/v3/depth", "invalid_symbol"): 1}
    assert not sleeps


@pytest.mark.parametrize(
    "fault, reason, code",
    [
        (Fault("/api/v3/depth", status=503, body=b"<html>Service Unavailable</html>"), "server_error", "503"),
        (Fault("/api/v3/depth", status=500, body=b'{"code":-1001,"msg":"Internal error"}'), "server_error", "500"),
        (Fault("/api/v3/depth", body=b"<html>maintenance</html>"), "invalid_response", "200"),
        (Fault("/api/v3/depth", body=b'{"lastUpdateId": 1, "bids": [["1", "2"]]'), "invalid_response", "200"),
        (Fault("/api/v3/depth", reset=True), "connection", "error"),
        (Fault("/api/v3/depth", truncate_at=20), "invalid_response", "200"),
    ],
)
def test_transient_failures_are_retried_with_capped_exponential_backoff(client, simulator, sleeps, fault, reason, code):
    simulator.inject(fault)
    with pytest.raises(MarketDataError) as error:
        client.order_book("ETHBTC")
    assert error.value.reason == reason
    assert requests_of(client) == {("/api/v3/depth", code): RETRIES + 1}
    assert errors_of(client) == {("/api/v3/depth", reason): RETRIES + 1}
    assert len(sleeps) == RETRIES
    assert 0.25 <= sleeps[0] <= 0.5  # 0.5 s with jitter
    assert 0.5 <= sleeps[1] <= 1.0  # doubled


def test_a_transient_failure_that_clears_is_survived_by_a_retry(client, simulator, sleeps):
    simulator.inject(Fault("/api/v3/depth", status=502, body=b"bad gateway", times=1))
    assert client.order_book("ETHBTC").bids
    assert requests_of(client) == {("/api/v3/depth", "502"): 1, ("/api/v3/depth", "200"): 1}
    assert len(sleeps) == 1


def test_no_retry_that_would_run_past_the_time_left(client, simulator, sleeps):
    simulator.inject(Fault("/api/v3/depth", status=503, body=b""))
    with pytest.raises(MarketDataError):
        client.order_book("ETHBTC", time_left=1.2)  # a retry needs its pause plus a 1 s timeout
    assert requests_of(client) == {("/api/v3/depth", "503"): 1}
    assert not sleeps


@pytest.mark.parametrize(
    "body, message",
    [
        (json.dumps({"bids": [["x", "1"]], "asks": []}).encode(), "not a decimal number"),
        (json.dumps({"code": 0}).encode(), "'bids' is missing"),
        (json.dumps({"bids": [["2", "1"]], "asks": [["1", "1"]]}).encode(), "crossed book"),
        (json.dumps({"bids": [], "asks": [["1", "1"]]}).encode(), "a side of the book is empty"),
    ],
)
def test_wrong_data_is_rejected_whole_and_not_retried(client, simulator, sleeps, body, message):
    simulator.inject(Fault("/api/v3/depth", body=body))
    with pytest.raises(MarketDataError, match=message) as error:
        client.order_book("ETHBTC")
    assert error.value.reason == "invalid_response"
    assert errors_of(client) == {("/api/v3/depth", "invalid_response"): 1}
    assert not sleeps


@pytest.mark.parametrize("status, body", [(400, b"not json at all"), (400, b'{"unexpected": true}'), (404, b"[]")])
def test_error_bodies_binance_connector_cannot_read_are_client_errors(client, simulator, status, body):
    simulator.inject(Fault("/api/v3/depth", status=status, body=body))
    with pytest.raises(MarketDataError) as error:
        client.order_book("ETHBTC")
    assert error.value.reason == "client_error"
    assert requests_of(client) == {("/api/v3/depth", str(status)): 1}


def test_a_bad_record_in_book_tops_costs_only_its_symbol(client, simulator):
    good = simulator.market.book_ticker("BTCUSDT")
    crossed = {**simulator.market.book_ticker("ETHUSDT"), "bidPrice": "999999.00000000"}
    simulator.inject(Fault("/api/v3/ticker/bookTicker", body=json.dumps([good, crossed]).encode()))
    tops = client.book_tops(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    assert list(tops) == ["BTCUSDT"]
    assert errors_of(client) == {("/api/v3/ticker/bookTicker", "invalid_response"): 2}


def test_a_hanging_request_times_out(simulator, sleeps):
    client = BinanceClient(simulator.url, timeout=0.2, sleep=sleeps)
    simulator.inject(Fault("/api/v3/depth", delay=2.0))
    with pytest.raises(MarketDataError, match="no answer within 0.2 s") as error:
        client.order_book("ETHBTC", time_left=5)
    assert error.value.reason == "timeout"
    assert requests_of(client) == {("/api/v3/depth", "timeout"): RETRIES + 1}


def test_a_request_never_outlives_the_cycle_waiting_for_it(simulator, sleeps):
    client = BinanceClient(simulator.url, timeout=60, sleep=sleeps)
    simulator.inject(Fault("/api/v3/depth", delay=60))
    started = time.monotonic()
    with pytest.raises(MarketDataError) as error:
        client.order_book("ETHBTC", time_left=0.3)
    assert error.value.reason == "timeout"
    assert time.monotonic() - started < 30  # cut with its cycle, not after the 60 s timeout


@pytest.mark.parametrize("status, retry_after, pause", [(429, "7", 7.0), (418, "300", 300.0), (429, None, 60.0)])
def test_429_and_418_pause_every_request_for_retry_after(clock, sleeps, caplog, status, retry_after, pause):
    simulator = BinanceSimulator(Market(tick_seconds=0), clock=clock, ban_seconds=pause).start()
    try:
        client = BinanceClient(simulator.url, timeout=1.0, gate=RequestGate(clock=clock), sleep=sleeps)
        _pause_for_retry_after(simulator, client, clock, caplog, status, retry_after, pause)
    finally:
        simulator.stop()
    assert simulator.violations == 0


def _pause_for_retry_after(simulator, client, clock, caplog, status, retry_after, pause):
    headers = {"Retry-After": retry_after} if retry_after else {}
    simulator.inject(Fault("/api/v3/depth", status=status, body=b'{"code":-1003,"msg":"Too many."}', headers=headers))
    with pytest.raises(MarketDataError) as error:
        client.order_book("ETHBTC")
    assert error.value.reason == "rate_limited"
    simulator.clear_faults()
    for call in (lambda: client.order_book("ETHBTC"), client.tickers_24h, lambda: client.book_tops(["BTCUSDT"])):
        with pytest.raises(RequestSkipped) as skipped:
            call()
        assert skipped.value.reason == "retry_after"
    assert requests_of(client) == {("/api/v3/depth", str(status)): 1}  # nothing more was sent
    counts = client.api_counts()
    assert (str(status), 1) in counts.rate_limited
    assert counts.paused_until == clock.now + pause
    assert ("/api/v3/ticker/24hr", "retry_after", 1) in counts.skipped
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "sending nothing" in r.message]
    assert len(warnings) == 1
    clock.advance(pause)
    assert client.order_book("ETHBTC").bids


def test_451_and_403_back_off_and_suggest_the_market_data_host(client, simulator, clock, caplog):
    simulator.inject(Fault("/api/v3/exchangeInfo", status=451, body=b'{"code":0,"msg":"restricted location"}'))
    with pytest.raises(MarketDataError) as error:
        client.exchange_info()
    assert error.value.reason == "blocked"
    assert "--base-url https://data-api.binance.vision" in caplog.text
    assert client.api_counts().paused_until == clock.now + 10
    clock.advance(10)
    simulator.inject(Fault("/api/v3/exchangeInfo", status=403, body=b"<html>Forbidden</html>"))
    with pytest.raises(MarketDataError):
        client.exchange_info()
    assert client.api_counts().paused_until == clock.now + 20  # exponential
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2


def test_a_refused_connection_backs_off_after_the_retries(clock, sleeps):
    dead = f"http://127.0.0.1:{free_port()}"
    client = BinanceClient(dead, timeout=1.0, gate=RequestGate(clock=clock), sleep=sleeps)
    with pytest.raises(MarketDataError, match=f"cannot reach {dead}: Failed to establish a new connection") as error:
        client.exchange_info()
    assert error.value.reason == "connection"
    assert requests_of(client) == {("/api/v3/exchangeInfo", "error"): RETRIES + 1}
    assert client.api_counts().weight_used is None
    with pytest.raises(RequestSkipped, match="backing off"):
        client.exchange_info()
    assert skipped_of(client) == {("/api/v3/exchangeInfo", "backoff"): 1}


def test_success_resets_the_backoff(simulator, clock, sleeps):
    client = BinanceClient(simulator.url, timeout=1.0, gate=RequestGate(clock=clock), sleep=sleeps)
    simulator.inject(Fault("/api/v3/ping", status=403, body=b""))
    simulator.inject(Fault("/api/v3/exchangeInfo", status=403, body=b"", times=2))
    for expected_pause in (10, 20):
        with pytest.raises(MarketDataError):
            client.exchange_info()
        assert client.api_counts().paused_until == clock.now + expected_pause
        clock.advance(expected_pause)
    assert client.exchange_info()
    simulator.inject(Fault("/api/v3/exchangeInfo", status=403, body=b"", times=1))
    with pytest.raises(MarketDataError):
        client.exchange_info()
    assert client.api_counts().paused_until == clock.now + 10


def test_requests_over_the_weight_budget_are_skipped_not_sent(simulator, clock, caplog):
    client = BinanceClient(simulator.url, timeout=1.0, gate=RequestGate(weight_budget=60, clock=clock))
    client.order_book("ETHBTC")
    client.order_book("BNBBTC")
    with pytest.raises(RequestSkipped, match="would bring this minute to 75 of the 60 budget") as skipped:
        client.order_book("SOLBTC")
    assert skipped.value.reason == "weight_budget"
    assert requests_of(client) == {("/api/v3/depth", "200"): 2}
    assert skipped_of(client) == {("/api/v3/depth", "weight_budget"): 1}
    assert "/api/v3/depth: not sent" in caplog.text
    clock.advance(60)
    assert client.order_book("SOLBTC").bids


def test_a_depth_snapshot_is_charged_the_weight_of_its_limit_and_keeps_its_update_id(simulator, clock):
    client = BinanceClient(simulator.url, timeout=1.0, gate=RequestGate(weight_budget=100, clock=clock))
    snapshot = client.depth_snapshot("BTCUSDT", 1000)
    assert snapshot.last_update_id == simulator.market.depth("BTCUSDT", 1)["lastUpdateId"]
    assert len(snapshot.bids) == len(snapshot.asks) == 1000 and snapshot.limit == 1000
    client.depth_snapshot("ETHBTC", 1000)
    with pytest.raises(RequestSkipped, match="would bring this minute to 150 of the 100 budget"):
        client.depth_snapshot("SOLBTC", 1000)
    assert [depth_weight(limit) for limit in (5, 100, 101, 500, 1000, 5000)] == [5, 5, 25, 25, 50, 250]


def test_a_base_url_with_a_path_prefix_keeps_endpoint_labels(simulator):
    client = BinanceClient(simulator.url + "/prefix", timeout=1.0)
    with pytest.raises(MarketDataError):
        client.exchange_info()
    assert requests_of(client) == {("/api/v3/exchangeInfo", "404"): 1}


def test_a_refusing_base_url_fails_over_to_the_next_without_backing_off(simulator, clock, sleeps, caplog):
    refusing = BinanceSimulator(Market(tick_seconds=0)).start()
    refusing.inject(Fault("/api/v3/exchangeInfo", status=451, body=b'{"code":0,"msg":"restricted location"}'))
    try:
        client = BinanceClient([refusing.url, simulator.url], 1.0, gate=RequestGate(clock=clock), sleep=sleeps)
        with pytest.raises(MarketDataError):
            client.exchange_info()
        assert client.api_counts().paused_until is None
        assert f"switching from {refusing.url} to {simulator.url}" in caplog.text
        assert client.exchange_info() and client.tickers_24h()
        assert client.base_url == simulator.url  # stays with the one that answers
    finally:
        refusing.stop()
    assert refusing.stats()["requests"] == {"/api/v3/exchangeInfo": 1}


def test_when_every_base_url_fails_in_a_row_the_client_backs_off(clock, sleeps):
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    client = BinanceClient(dead, 1.0, gate=RequestGate(clock=clock), sleep=sleeps)
    with pytest.raises(MarketDataError, match=f"cannot reach {dead[0]}"):
        client.exchange_info()
    assert client.api_counts().paused_until is None
    with pytest.raises(MarketDataError, match=f"cannot reach {dead[1]}"):
        client.exchange_info()
    assert client.api_counts().paused_until == clock.now + 10
    assert client.base_url == dead[0]  # the next round starts again from the first


def test_concurrent_failures_at_one_base_url_move_on_once(simulator, clock, caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    client = BinanceClient([dead, simulator.url], 1.0, gate=RequestGate(clock=clock), sleep=lambda _: None)
    errors = []

    def fetch(symbol):
        try:
            client.order_book(symbol)
        except MarketDataError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(s,)) for s in ("ETHBTC", "BNBBTC", "SOLBTC", "XRPBTC")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.base_url == simulator.url
    assert client.api_counts().paused_until is None  # one dead URL is not "every URL failed"
    assert caplog.text.count("switching from") == 1


def test_one_429_met_by_several_requests_in_flight_is_one_warning_and_one_count(simulator, caplog):
    client = BinanceClient(simulator.url, timeout=5.0, gate=RequestGate())  # real time: the requests overlap
    body = b'{"code":-1003,"msg":"Too many requests."}'
    simulator.inject(Fault("/api/v3/depth", status=429, body=body, headers={"Retry-After": "60"}, delay=0.5))
    threads = [threading.Thread(target=_failing, args=(client.order_book, "ETHBTC")) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ("429", 1) in client.api_counts().rate_limited
    assert len([r for r in caplog.records if "sending nothing" in r.message]) == 1


def _failing(call, *args):
    with pytest.raises(MarketDataError):
        call(*args)


@pytest.mark.parametrize("retry_after", ["1e9", "1e12"])
def test_a_wild_retry_after_is_capped_and_the_cap_logged(client, simulator, clock, caplog, retry_after):
    simulator.inject(Fault("/api/v3/depth", status=429, body=b"{}", headers={"Retry-After": retry_after}))
    with pytest.raises(MarketDataError):
        client.order_book("ETHBTC")
    assert client.api_counts().paused_until == clock.now + 3 * 86400
    assert "for 259200 s (capped at Binance's longest ban)" in caplog.text


@pytest.mark.parametrize(
    "status, body, message",
    [
        (503, b"", "HTTP 503, retrying"),
        (503, b"\n<html>\n  down\x1b[2J </html>\n", "HTTP 503: <html> down[2J </html>, retrying"),
        (429, b"not json", "HTTP 429: not json;"),
    ],
)
def test_error_bodies_are_logged_on_one_printable_line(client, simulator, caplog, status, body, message):
    caplog.set_level(logging.INFO)
    simulator.inject(Fault("/api/v3/depth", status=status, body=body, times=1))
    try:
        client.order_book("ETHBTC")
    except MarketDataError:
        pass
    assert message in caplog.text
    assert "None" not in caplog.text
    assert all("\n" not in r.getMessage() and "\x1b" not in r.getMessage() for r in caplog.records)


def test_deeply_nested_json_is_an_invalid_response(client, simulator):
    simulator.inject(Fault("/api/v3/depth", body=b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(MarketDataError, match="nested too deeply") as error:
        client.order_book("ETHBTC")
    assert error.value.reason == "invalid_response"


def test_a_redirect_is_refused_and_labels_stay_in_the_fixed_set(client, simulator):
    for n in range(3):
        location = f"{simulator.url}/api/v3/elsewhere{n}"
        simulator.inject(Fault("/api/v3/depth", status=302, body=b"", headers={"Location": location}, times=1))
        with pytest.raises(MarketDataError, match="HTTP 302: a redirect") as error:
            client.order_book("ETHBTC")
        assert error.value.reason == "invalid_response"
    assert requests_of(client) == {("/api/v3/depth", "302"): 3}
