"""Shared fixtures: the fake Binance on a free loopback port, and property
tests that do not depend on the machine's speed."""

from __future__ import annotations

import os
import time
from typing import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from binance_exporter.fake.market import LISTED_SYMBOLS, Market, synthetic_symbols
from binance_exporter.fake.simulator import BinanceSimulator

FROZEN_WALL_CLOCK = 1_767_225_600.0  # 2026-01-01T00:00:00Z

# Property tests must not fail for being slow on a busy machine: no
# per-example deadline, and slow data generation is not an error.
settings.register_profile("binance_exporter", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("binance_exporter")


# Exporter processes started by the tests poll over REST unless a test
# says --source stream (a flag wins over its variable): the stream tests
# give them the fake Binance's stream URL.
os.environ.setdefault("BINANCE_EXPORTER_SOURCE", "rest")


@pytest.fixture(scope="session", autouse=True)
def first_books() -> None:
    """Generates the fake market's first books once, before any test: a
    test's first request for them must not wait on their making."""
    market = Market(LISTED_SYMBOLS + synthetic_symbols(70), tick_seconds=0)
    for symbol in market.symbols:
        market.depth(symbol, 1)


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Exporters started by the tests keep their state (a Retry-After
    pause) in a directory of the test run's own, never in the user's."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield os.environ["XDG_STATE_HOME"]
    if saved is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = saved


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


@pytest.fixture
def streaming() -> Iterator[BinanceSimulator]:
    """The fake Binance with its websocket streams, every book moving every
    0.1 s, as ``<symbol>@depth@100ms`` sends."""
    sim = BinanceSimulator(Market(tick_seconds=0.1), stream_port=0).start()
    yield sim
    sim.stop()
