"""Profile of rendering one scrape of a large configuration: the top 100
of each list, against the fake Binance, in-process.

    python bench/profile_scrape.py [--top 100] [--scrapes 200]

Prints the series count, the time per render of the snapshot's metrics,
and pyinstrument's profile of those renders.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry
from pyinstrument import Profiler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# pylint: disable=wrong-import-position  # the path above makes the package importable from a checkout
from binance_exporter.binance.rest_client import BinanceClient
from binance_exporter.exposition.collector import SnapshotCollector
from binance_exporter.binance.request_gate import RequestGate
from binance_exporter.cycle.scheduler import Schedule, Scheduler
from binance_exporter.fake.market import LISTED_SYMBOLS, Market, synthetic_symbols
from binance_exporter.fake.simulator import BinanceSimulator


def main() -> int:
    """Builds one snapshot, then renders and profiles it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=100, help="symbols per top list (default: 100)")
    parser.add_argument("--scrapes", type=int, default=200, help="renders to time and profile (default: 200)")
    args = parser.parse_args()
    simulator = BinanceSimulator(Market(LISTED_SYMBOLS + synthetic_symbols(args.top), tick_seconds=0)).start()
    scheduler = Scheduler(BinanceClient(simulator.url, 5, RequestGate(10**6)), Schedule(10, 60, top_n=args.top))
    try:
        snapshot = scheduler.run_cycle()
    finally:
        scheduler.close()
        simulator.stop()
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snapshot))
    body = generate_latest(registry)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    print(f"series: {series}, bytes: {len(body)}")
    started = time.perf_counter()
    for _ in range(args.scrapes):
        generate_latest(registry)
    print(f"render: {(time.perf_counter() - started) / args.scrapes * 1000:.2f} ms per scrape")
    profiler = Profiler()
    profiler.start()
    for _ in range(args.scrapes):
        generate_latest(registry)
    profiler.stop()
    print(profiler.output_text(color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
