"""The Binance client against the fake Binance: parsed values, counted
requests, the weight header, and every failure turned into MarketDataError."""

import json
from decimal import Decimal as D

import pytest

from binance_exporter.binance_client import ApiStats, BinanceClient
from binance_exporter.errors import MarketDataError
from binance_exporter.simulator import Fault
from .helpers import FakeClock, free_port


@pytest.fixture
def client(simulator):
    return BinanceClient(simulator.url + "/", timeout=1.0)


def requests_of(client):
    return {(endpoint, code): count for endpoint, code, count in client.api_counts().requests}


def errors_of(client):
    return {(endpoint, reason): count for endpoint, reason, count in client.api_counts().errors}


def test_exchange_info_and_tickers(client):
    symbols = client.exchange_info()
    assert symbols["BTCDOWNUSDT"].quote_asset == "USDT"
    tickers = {t.symbol: t for t in client.tickers_24h()}
    assert set(tickers) == set(symbols)
    assert requests_of(client) == {("/api/v3/exchangeInfo", "200"): 1, ("/api/v3/ticker/24hr", "200"): 1}
    assert client.api_counts().weight_used == 100


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


def test_an_invalid_symbol_is_a_market_data_error_with_its_reason(client):
    with pytest.raises(MarketDataError, match="-1121 Invalid symbol") as error:
        client.order_book("NOPEBTC")
    assert error.value.reason == "invalid_symbol"
    assert requests_of(client) == {("/api/v3/depth", "400"): 1}
    assert errors_of(client) == {("/api/v3/depth", "invalid_symbol"): 1}


def test_a_server_error_is_counted_by_status(client, simulator):
    simulator.inject(Fault("/api/v3/depth", status=503, body=b"<html>Service Unavailable</html>"))
    with pytest.raises(MarketDataError, match="HTTP 503") as error:
        client.order_book("ETHBTC")
    assert error.value.reason == "http"
    assert requests_of(client) == {("/api/v3/depth", "503"): 1}


@pytest.mark.parametrize(
    "status, body",
    [(400, b"not json at all"), (400, b'{"unexpected": true}'), (429, b"[]")],
)
def test_error_bodies_binance_connector_cannot_read_are_market_data_errors(client, simulator, status, body):
    simulator.inject(Fault("/api/v3/depth", status=status, body=body))
    with pytest.raises(MarketDataError):
        client.order_book("ETHBTC")
    assert requests_of(client) == {("/api/v3/depth", str(status)): 1}


@pytest.mark.parametrize(
    "body, message",
    [
        (b"<html>maintenance</html>", "not JSON"),
        (b'{"lastUpdateId": 1, "bids": [["1", "2"]]', "not JSON"),  # truncated
        (json.dumps({"bids": [["x", "1"]], "asks": []}).encode(), "not a decimal number"),
        (json.dumps({"code": 0}).encode(), "'bids' is missing"),
    ],
)
def test_a_body_that_is_not_a_book_is_an_invalid_response(client, simulator, body, message):
    simulator.inject(Fault("/api/v3/depth", body=body))
    with pytest.raises(MarketDataError, match=message) as error:
        client.order_book("ETHBTC")
    assert error.value.reason == "invalid_response"
    assert errors_of(client) == {("/api/v3/depth", "invalid_response"): 1}


def test_a_bad_record_in_book_tops_costs_only_its_symbol(client, simulator):
    good = simulator.market.book_ticker("BTCUSDT")
    crossed = {**simulator.market.book_ticker("ETHUSDT"), "bidPrice": "999999.00000000"}
    simulator.inject(Fault("/api/v3/ticker/bookTicker", body=json.dumps([good, crossed]).encode()))
    tops = client.book_tops(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    assert list(tops) == ["BTCUSDT"]
    assert errors_of(client) == {("/api/v3/ticker/bookTicker", "invalid_response"): 2}


def test_a_hanging_request_times_out(simulator):
    client = BinanceClient(simulator.url, timeout=0.2)
    simulator.inject(Fault("/api/v3/depth", delay=2.0))
    with pytest.raises(MarketDataError, match="no answer within 0.2 s") as error:
        client.order_book("ETHBTC")
    assert error.value.reason == "timeout"
    assert requests_of(client) == {("/api/v3/depth", "timeout"): 1}


def test_a_refused_connection_is_counted_as_error():
    client = BinanceClient(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(
        MarketDataError, match="cannot reach http://127.0.0.1:[0-9]+: Failed to establish a new connection"
    ) as error:
        client.exchange_info()
    assert error.value.reason == "connection"
    assert requests_of(client) == {("/api/v3/exchangeInfo", "error"): 1}
    assert client.api_counts().weight_used is None


def test_a_base_url_with_a_path_prefix_keeps_endpoint_labels(simulator):
    client = BinanceClient(simulator.url + "/prefix", timeout=1.0)
    with pytest.raises(MarketDataError):
        client.exchange_info()
    assert requests_of(client) == {("/api/v3/exchangeInfo", "404"): 1}


def test_weight_used_is_the_highest_reported_this_minute_and_resets_each_minute():
    clock = FakeClock(6000.0)
    stats = ApiStats(clock)
    stats.record_request("/api/v3/depth", "200", 50)
    stats.record_request("/api/v3/depth", "200", 45)  # an earlier request's answer, arriving late
    assert stats.counts().weight_used == 50
    clock.advance(60)
    stats.record_request("/api/v3/depth", "200", 25)
    assert stats.counts().weight_used == 25
    stats.record_request("/api/v3/depth", "timeout")
    assert stats.counts().weight_used == 25
