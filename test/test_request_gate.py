"""The request gate: Retry-After, backoff and the weight budget, on a clock
the test moves."""

import pytest

from binance_exporter.request_gate import RequestGate, RequestSkipped
from .helpers import FakeClock


@pytest.fixture
def clock():
    return FakeClock(6000.0)  # the start of a clock minute


def test_requests_within_the_budget_pass_and_the_next_one_is_skipped(clock):
    gate = RequestGate(weight_budget=100, clock=clock)
    gate.admit("/api/v3/depth", 50)
    gate.admit("/api/v3/depth", 50)
    with pytest.raises(RequestSkipped, match="its weight 1 would bring this minute to 101 of the 100 budget"):
        gate.admit("/api/v3/ping", 1)


def test_binance_reported_weight_counts_toward_the_budget(clock):
    gate = RequestGate(weight_budget=100, clock=clock)
    gate.report_weight(90)  # other clients on the same IP
    gate.report_weight(40)  # an older answer arriving late
    assert gate.state().weight_used == 90
    with pytest.raises(RequestSkipped):
        gate.admit("/api/v3/depth", 25)
    gate.admit("/api/v3/ping", 10)


def test_the_budget_resets_each_clock_minute(clock):
    gate = RequestGate(weight_budget=100, clock=clock)
    gate.admit("/api/v3/depth", 100)
    gate.report_weight(100)
    clock.advance(59.9)
    with pytest.raises(RequestSkipped):
        gate.admit("/api/v3/ping", 1)
    clock.advance(0.1)
    assert gate.state().weight_used == 0
    gate.admit("/api/v3/depth", 100)


def test_no_weight_reported_yet_is_none(clock):
    assert RequestGate(clock=clock).state().weight_used is None


def test_retry_after_blocks_everything_until_it_has_passed(clock):
    gate = RequestGate(clock=clock)
    assert gate.retry_after(30) == clock.now + 30
    assert gate.retry_after(10) is None  # within the pause already in force: not logged again
    clock.advance(29.9)
    with pytest.raises(RequestSkipped, match="Retry-After until") as skipped:
        gate.admit("/api/v3/ticker/bookTicker", 4)
    assert skipped.value.reason == "retry_after"
    assert gate.state().paused_until == 6030.0
    clock.advance(0.1)
    gate.admit("/api/v3/ticker/bookTicker", 4)
    assert gate.state().paused_until is None


def test_a_longer_retry_after_extends_the_pause(clock):
    gate = RequestGate(clock=clock)
    gate.retry_after(10)
    assert gate.retry_after(120) == clock.now + 120


def test_backoff_doubles_up_to_its_cap_and_resets_on_success(clock):
    gate = RequestGate(clock=clock)
    pauses = []
    for _ in range(7):
        pauses.append(gate.back_off(300) - clock.now)
    assert pauses == [10, 20, 40, 80, 160, 300, 300]
    with pytest.raises(RequestSkipped, match="backing off") as skipped:
        gate.admit("/api/v3/depth", 25)
    assert skipped.value.reason == "backoff"
    gate.succeeded()
    clock.advance(300)
    assert gate.back_off(60) - clock.now == 10


def test_backoff_never_shortens_a_retry_after(clock):
    gate = RequestGate(clock=clock)
    gate.retry_after(120)
    assert gate.back_off(60) == clock.now + 120
