"""The request gate: Retry-After, backoff and the weight budget, on a clock
the test moves."""

import pytest

from binance_exporter.binance.request_gate import PAUSE_FILE, RequestGate, RequestSkipped
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
    sent_at = gate.admit("/api/v3/depth", 25)
    assert gate.retry_after(30, 429, sent_at) == clock.now + 30
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
    gate.retry_after(10, 429, clock.now)
    clock.advance(1)
    assert gate.retry_after(120, 429, clock.now) == clock.now + 120


def test_answers_to_requests_already_in_flight_belong_to_the_pause_they_meet(clock):
    gate = RequestGate(clock=clock)
    in_flight = [gate.admit("/api/v3/depth", 25) for _ in range(6)]
    clock.advance(0.2)
    assert gate.retry_after(60, 429, in_flight[0]) == clock.now + 60  # news: logged and counted once
    for sent_at in in_flight[1:]:
        clock.advance(0.01)
        assert gate.retry_after(60, 429, sent_at) is None  # the same pause, extended silently
    assert gate.state().paused_until == clock.now + 60


def test_a_418_beside_a_429_is_news(clock):
    gate = RequestGate(clock=clock)
    sent_at = gate.admit("/api/v3/depth", 25)
    clock.advance(0.1)
    gate.retry_after(60, 429, sent_at)
    assert gate.retry_after(30, 418, sent_at) == clock.now + 60  # a ban is worth its own warning
    assert gate.retry_after(10, 429, sent_at) is None


def test_a_wild_retry_after_is_capped_at_three_days(clock):
    gate = RequestGate(clock=clock)
    assert gate.retry_after(1e12, 429, clock.now) == clock.now + 3 * 86400
    clock.advance(3 * 86400)
    gate.admit("/api/v3/depth", 25)


def test_a_retry_after_pause_outlives_a_restart(clock, tmp_path, caplog):
    RequestGate(clock=clock, state_dir=tmp_path).retry_after(90, 418, clock.now)
    clock.advance(30)
    restarted = RequestGate(clock=clock, state_dir=tmp_path)
    with pytest.raises(RequestSkipped, match="Retry-After until"):
        restarted.admit("/api/v3/exchangeInfo", 20)
    assert restarted.state().paused_until == clock.now + 60
    assert "(HTTP 418) to send nothing until" in caplog.text
    clock.advance(60)
    RequestGate(clock=clock, state_dir=tmp_path).admit("/api/v3/exchangeInfo", 20)


@pytest.mark.parametrize("content", ["{", '{"paused_until": "soon", "status": 429}', "[]", '{"paused_until": 1e999}'])
def test_an_unreadable_pause_file_is_logged_and_ignored(clock, tmp_path, caplog, content):
    (tmp_path / PAUSE_FILE).write_text(content)
    RequestGate(clock=clock, state_dir=tmp_path).admit("/api/v3/exchangeInfo", 20)
    assert "cannot be read" in caplog.text or "1e999" in content


def test_an_unwritable_state_dir_is_logged_and_the_pause_still_holds(clock, tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")
    gate = RequestGate(clock=clock, state_dir=blocked / "dir")
    gate.retry_after(60, 429, clock.now)
    assert "cannot keep the Retry-After pause" in caplog.text
    with pytest.raises(RequestSkipped):
        gate.admit("/api/v3/depth", 25)


def test_the_budget_stopping_requests_is_worth_one_warning_a_minute(clock):
    gate = RequestGate(weight_budget=30, clock=clock)
    gate.admit("/api/v3/depth", 25)
    firsts = []
    for _ in range(3):
        with pytest.raises(RequestSkipped, match="requests wait for the next minute") as skipped:
            gate.admit("/api/v3/depth", 25)
        firsts.append(skipped.value.first)
    clock.advance(60)
    gate.admit("/api/v3/depth", 25)
    with pytest.raises(RequestSkipped) as skipped:
        gate.admit("/api/v3/depth", 25)
    assert firsts + [skipped.value.first] == [True, False, False, True]


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
    gate.retry_after(120, 429, clock.now)
    assert gate.back_off(60) == clock.now + 120


def test_the_bucket_refills_evenly_so_two_minutes_never_burst_two_budgets(clock):
    gate = RequestGate(weight_budget=120, clock=clock)
    clock.advance(50)  # late in the minute: the whole bucket is there
    gate.admit("/api/v3/depth", 100)
    clock.advance(10)  # a new minute, but the bucket holds 20 + 20 refilled
    with pytest.raises(RequestSkipped, match="is more than the 40 the budget's bucket holds now; it refills at 120"):
        gate.admit("/api/v3/depth", 50)
    gate.admit("/api/v3/depth", 40)
    assert gate.wait_for(10) == pytest.approx(5.0)  # 2 weight a second
    clock.advance(5)
    assert gate.wait_for(10) == 0.0
    gate.admit("/api/v3/depth", 10)


def test_wait_for_says_how_long_a_request_of_some_weight_waits(clock):
    gate = RequestGate(weight_budget=100, clock=clock)
    assert gate.wait_for(100) == 0.0
    assert gate.wait_for(101) == float("inf")  # never fits
    gate.report_weight(90)  # other clients on the IP: this minute is nearly spent
    assert gate.wait_for(20) == pytest.approx(60.0)  # the next minute
    gate.retry_after(30, 429, clock())
    assert gate.wait_for(1) == pytest.approx(30.0)
