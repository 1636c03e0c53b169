"""Shared fixtures: the fake Binance on a free loopback port."""

from __future__ import annotations

from typing import Iterator

import pytest

from binance_exporter.simulator import BinanceSimulator, Market


@pytest.fixture
def market() -> Market:
    """A frozen market: every request sees the same state."""
    return Market(tick_seconds=0)


@pytest.fixture
def simulator(market: Market) -> Iterator[BinanceSimulator]:
    """The fake Binance, serving ``market`` on a free loopback port."""
    sim = BinanceSimulator(market).start()
    yield sim
    sim.stop()
