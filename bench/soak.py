"""Soak run: thousands of fast update cycles against the fake Binance with
faults sprinkled in, reporting memory after warm-up and at the end.

    python bench/soak.py --cycles 3000

The fake Binance runs as its own process, so the memory measured is the
exporter's. Cycles run back to back (no waiting between them) and the
rankings refresh every few cycles, so every code path turns over many
times: fetching, retries, parsing, rankings, snapshots and their rendering
for /metrics. A fault is injected (over the simulator's /sim/faults) before
a random share of the cycles: HTTP 5xx, a hang past the timeout, a reset
connection, a truncated or non-JSON body, a crossed book, a 429 with a
zero Retry-After, or a symbol Binance stops listing.
Growth is judged after warm-up: Python's allocated blocks must not grow by
more than 1 %, and resident memory not by more than --max-growth-mb over
the second half of the run (the first half lets the allocator's per-thread
arenas settle). Exits 1 on growth, or if the fake Binance saw a request
inside a Retry-After window.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# pylint: disable=wrong-import-position  # the path above makes the package importable from a checkout
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from binance_exporter.binance.rest_client import BinanceClient
from binance_exporter.exposition.collector import SnapshotCollector
from binance_exporter.binance.request_gate import RequestGate
from binance_exporter.cycle.scheduler import Schedule, Scheduler

FAULTS = (
    {"path": "/api/v3/depth", "status": 503, "body": "<html>busy</html>", "times": 2},
    {"path": "/api/v3/ticker/bookTicker", "delay": 1.5, "times": 1},
    {"path": "/api/v3/depth", "symbol": "ETHBTC", "reset": True, "times": 1},
    {"path": "/api/v3/depth", "truncate_at": 100, "times": 1},
    {"path": "/api/v3/ticker/24hr", "body": "<html>maintenance</html>", "times": 1},
    {"path": "/api/v3/depth", "body": json.dumps({"bids": [["2", "1"]], "asks": [["1", "1"]]}), "times": 1},
    {"path": "/api/v3/ticker/bookTicker", "status": 429, "body": "{}", "headers": {"Retry-After": "0"}, "times": 1},
    {"path": "/api/v3/depth", "symbol": "XRPBTC", "status": 400, "body": '{"code":-1121,"msg":"Invalid symbol."}'},
)


class FakeBinance:
    """The simulator as its own process, so that memory measured here is
    the exporter's alone."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with  # lives until stop()
            [sys.executable, "-m", "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0"]
            + ["--weight-limit", "1000000000"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.process.stdout.readline().split()[-1]

    def call(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        """A request to the simulator's control endpoints."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read()
        return json.loads(text) if text else {}

    def stop(self) -> None:
        """Ends the simulator process."""
        self.process.terminate()
        self.process.communicate(timeout=10)


def resident_mb() -> float:
    """Resident memory of this process now, in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1e6


class MemoryTrend:
    """Resident memory sampled along the run, and Python's allocated blocks."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.blocks: list[int] = []

    def sample(self, count_blocks: bool = False) -> None:
        """Takes a reading; ``count_blocks`` also counts Python's objects."""
        gc.collect()
        self.samples.append(resident_mb())
        if count_blocks:
            self.blocks.append(sys.getallocatedblocks())

    def report(self) -> dict:
        """The readings and the growth they show."""
        return {
            "rss_mb_after_warm_up_and_each_quarter": [round(sample, 1) for sample in self.samples],
            "rss_growth_second_half_mb": round(self.samples[-1] - self.samples[len(self.samples) // 2], 1),
            "python_blocks_after_warm_up": self.blocks[0],
            "python_blocks_at_end": self.blocks[-1],
            "python_blocks_growth_percent": round(100 * (self.blocks[-1] - self.blocks[0]) / self.blocks[0], 2),
        }


def run(cycles: int, fault_share: float, seed: int) -> dict:
    """Runs the soak and returns its measurements."""
    rng = random.Random(seed)
    binance = FakeBinance()
    client = BinanceClient(binance.url, timeout=1.0, gate=RequestGate(weight_budget=10**9), sleep=lambda _: None)
    scheduler = Scheduler(client, Schedule(update_interval=5.0, rank_interval=0.2))
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: scheduler.snapshot))
    outcomes = {True: 0, False: 0}
    memory = MemoryTrend()
    warm_up = min(300, cycles // 5)
    quarter = max(1, (cycles - warm_up) // 4)
    started = time.monotonic()
    try:
        for cycle in range(cycles):
            if cycle >= warm_up and (cycle - warm_up) % quarter == 0:
                memory.sample(count_blocks=cycle == warm_up)
            if cycle % 10 == 0:
                binance.call("DELETE", "/sim/faults")
            if rng.random() < fault_share:
                binance.call("POST", "/sim/faults", rng.choice(FAULTS))
            outcomes[scheduler.run_cycle().up] += 1
            generate_latest(registry)
        memory.sample(count_blocks=True)
        violations = binance.call("GET", "/sim/stats")["violations"]
    finally:
        scheduler.close()
        binance.stop()
    return {
        "cycles": cycles,
        "seconds": round(time.monotonic() - started, 1),
        "cycles_up": outcomes[True],
        "cycles_down": outcomes[False],
        "violations": violations,
        **memory.report(),
    }


def main() -> int:
    """Runs the soak from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3000, help="update cycles to run (default: %(default)s)")
    parser.add_argument("--fault-share", type=float, default=0.2, help="share of cycles with a fault (default: 0.2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--max-growth-mb", type=float, default=1.0, help="allowed RSS growth over the second half (default: 1)"
    )
    args = parser.parse_args()
    if args.cycles < 10 or not 0 <= args.fault_share <= 1:
        parser.error("--cycles must be 10 or more and --fault-share from 0 to 1")
    report = run(args.cycles, args.fault_share, args.seed)
    width = max(len(key) for key in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    growing = report["rss_growth_second_half_mb"] > args.max_growth_mb or report["python_blocks_growth_percent"] > 1
    if growing or report["violations"]:
        print(
            f"FAIL: memory still growing (second half over {args.max_growth_mb} MB, or Python objects over 1 %) "
            "or Binance saw violations"
        )
        return 1
    print("OK: no memory growth, no violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
