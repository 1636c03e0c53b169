"""Shared fixtures: the fake Binance on a free loopback port, and property
tests that do not depend on the machine's speed."""

from __future__ import annotations

import time
from typing import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from binance_exporter.simulated_market import Market
from binance_exporter.simulator import BinanceSimulator

FROZEN_WALL_CLOCK = 1_767_225_600.0  # 2026-01-01T00:00:00Z

# Property tests must not fail for being slow on a busy machine: no
# per-example deadline, and slow data generation is not an error.
settings.register_profile("binance_exporter", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("binance_exporter")


@pytest.fixture
def market() -> Market:
    """A frozen market: every request sees the same state, at the same time."""
    return Market(tick_seconds=0, wall_clock=lambda: FROZEN_WALL_CLOCK)


@pytest.fixture
def sim_clock() -> Callable[[], float]:
    """The fake Binance's clock (weight windows, bans, fault schedules);
    a test module whose code runs on a fake clock overrides it."""
    return time.time


@pytest.fixture
def simulator(market: Market, sim_clock: Callable[[], float]) -> Iterator[BinanceSimulator]:
    """The fake Binance, serving ``market`` on a free loopback port."""
    sim = BinanceSimulator(market, clock=sim_clock).start()
    yield sim
    sim.stop()
