"""Shared fixtures: the fake Binance on a free loopback port."""

from __future__ import annotations

import time
from typing import Callable, Iterator

import pytest

from binance_exporter.simulated_market import Market
from binance_exporter.simulator import BinanceSimulator


@pytest.fixture
def market() -> Market:
    """A frozen market: every request sees the same state."""
    return Market(tick_seconds=0)


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
