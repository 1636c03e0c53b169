"""Benchmark of the real exporter process against the fake Binance, with
an injected network delay on every request: cycle latency, Binance request
weight, /metrics latency, memory and CPU.

    python bench/bench.py [--latency 0.05] [--json bench/results/latest.json]

Three runs, each a fresh simulator and exporter process:

1. defaults (top 5, update every 10 s, rankings every 60 s) for a minute:
   the request weight the fake Binance counted in that minute, /metrics
   latency with 1 and 10 concurrent scrapers, resident memory after warm-up;
2. fast cycles (top 5, a cycle every 0.1 s) until 1000 cycles have run:
   cycle duration p50/p95/max, CPU seconds per cycle, memory at the end;
3. top 100 of each list: /metrics latency with 1 and 10 scrapers.

It prints one table, writes it as JSON for comparisons across commits, and
names the targets the numbers miss.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before the standard library's own "test" package

# pylint: disable-next=wrong-import-position  # needs the path above
from test.helpers import free_port, wait_for

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The exporter as `python -m binance_exporter` starts it.
EXPORTER = ("-m", "binance_exporter")
# The exporter refuses --update-interval below 0.5 s, a floor that spares
# Binance's request weight; the fast run's fake Binance needs no sparing, so
# that run starts the exporter with the floor lowered to its 0.1 s.
EXPORTER_WITH_FAST_CYCLES = (
    "-c",
    "import sys; from binance_exporter import __main__, config; config.MIN_UPDATE_INTERVAL = 0.1; "
    "sys.exit(__main__.main())",
)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class Run:
    """A fake Binance and an exporter against it, each its own process."""

    def __init__(
        self,
        latency: float,
        exporter_args: list[str],
        simulator_args: Optional[list[str]] = None,
        exporter: tuple[str, ...] = EXPORTER,
    ):
        self.simulator = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by close()
            [sys.executable, "-m", "binance_exporter.simulator", "--port", "0", "--latency", str(latency)]
            + (simulator_args or []),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.binance = self.simulator.stdout.readline().split()[-1]
        self.port = free_port()
        self.exporter = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by close()
            [sys.executable, *exporter, "--port", str(self.port), "--address", "127.0.0.1"]
            + ["--base-url", self.binance, "--loglevel", "ERROR"]
            + exporter_args,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.metrics().get("binance_up") == 1.0, timeout=60)

    def metrics(self) -> dict[str, float]:
        """The exporter's unlabelled samples, and bookTicker requests as ``cycles``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line.startswith("binance_exporter_api_requests_total") and '"/api/v3/ticker/bookTicker"' in line:
                samples["cycles"] = samples.get("cycles", 0.0) + float(line.rsplit(" ", 1)[1])
            elif line and not line.startswith("#") and "{" not in line:
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def binance_weight(self) -> int:
        """Request weight the fake Binance has counted so far."""
        with urllib.request.urlopen(self.binance + "/sim/stats", timeout=5) as response:
            return json.loads(response.read())["weight_total"]

    def resident_mb(self) -> float:
        """The exporter process's resident memory."""
        with open(f"/proc/{self.exporter.pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE / 1e6

    def cpu_seconds(self) -> float:
        """CPU time the exporter process has used."""
        with open(f"/proc/{self.exporter.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def scrape_latencies(self, scrapers: int, per_scraper: int = 200) -> list[float]:
        """Seconds per GET /metrics, with ``scrapers`` clients at once."""
        latencies: list[float] = []
        lock = threading.Lock()

        def scrape() -> None:
            mine = []
            for _ in range(per_scraper):
                started = time.perf_counter()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/metrics")
                connection.getresponse().read()
                connection.close()
                mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=scrape) for _ in range(scrapers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies

    def cycle_durations(self, cycles: int, timeout: float) -> list[float]:
        """Durations of the cycles that end while watching, until ``cycles`` have."""
        durations: dict[float, float] = {}
        deadline = time.monotonic() + timeout
        while len(durations) < cycles and time.monotonic() < deadline:
            sample = self.metrics()
            durations[sample["binance_exporter_last_update_timestamp_seconds"]] = sample[
                "binance_exporter_update_duration_seconds"
            ]
            time.sleep(0.02)
        return list(durations.values())

    def close(self) -> None:
        """Stops both processes."""
        for process in (self.exporter, self.simulator):
            process.terminate()
            process.wait(timeout=10)
        self.simulator.stdout.close()


def scrape_stats(run: Run) -> dict[str, float]:
    """/metrics p50 and p99 in ms, with 1 and with 10 scrapers."""
    result = {}
    for scrapers in (1, 10):
        latencies = run.scrape_latencies(scrapers)
        result[f"metrics_p50_ms_{scrapers}_scrapers"] = round(1000 * percentile(latencies, 0.50), 2)
        result[f"metrics_p99_ms_{scrapers}_scrapers"] = round(1000 * percentile(latencies, 0.99), 2)
    return result


def defaults_run(latency: float, minute: float) -> dict[str, float]:
    """Run 1: default settings for a minute."""
    run = Run(latency, [])
    try:
        first = run.binance_weight()
        time.sleep(minute)
        weight = run.binance_weight() - first
        result = {"weight_per_minute": round(weight * 60 / minute), "rss_mb_after_warm_up": round(run.resident_mb(), 1)}
        result.update(scrape_stats(run))
    finally:
        run.close()
    result["weight_share_of_binance_limit_percent"] = round(100 * result["weight_per_minute"] / 6000, 1)
    return result


def fast_run(latency: float, cycles: int) -> dict[str, float]:
    """Run 2: a cycle every 0.1 s until ``cycles`` have run."""
    fast = ["--update-interval", "0.1", "--weight-budget", "1000000"]
    run = Run(latency, fast, ["--weight-limit", "1000000000"], exporter=EXPORTER_WITH_FAST_CYCLES)
    try:
        start = run.metrics()["cycles"]
        cpu, rss = run.cpu_seconds(), run.resident_mb()
        durations = run.cycle_durations(min(cycles, 300), timeout=cycles * 0.5)
        wait_for(lambda: run.metrics()["cycles"] - start >= cycles, timeout=cycles * 0.5)
        ran = run.metrics()["cycles"] - start
        result = {
            "cycles_measured": len(durations),
            "cycle_p50_ms": round(1000 * percentile(durations, 0.50), 1),
            "cycle_p95_ms": round(1000 * percentile(durations, 0.95), 1),
            "cycle_max_ms": round(1000 * max(durations), 1),
            "cpu_seconds_per_cycle": round((run.cpu_seconds() - cpu) / ran, 4),
            "rss_mb_before_1000_cycles": round(rss, 1),
            "rss_mb_after_1000_cycles": round(run.resident_mb(), 1),
        }
    finally:
        run.close()
    for name in ("p50", "p95", "max"):
        result[f"cycle_{name}_round_trips"] = round(result[f"cycle_{name}_ms"] / (1000 * latency), 2)
    result["cycle_mean_ms"] = round(1000 * statistics.mean(durations), 1)
    return result


def top_100_run(latency: float) -> dict[str, float]:
    """Run 3: the top 100 of each list."""
    run = Run(latency, ["--top", "100", "--weight-budget", "1000000"], ["--extra-symbols", "100"])
    try:
        return {f"top100_{key}": value for key, value in scrape_stats(run).items()}
    finally:
        run.close()


def missed_targets(results: dict[str, float], latency: float) -> list[str]:
    """The targets the results miss, each as a sentence."""
    targets = [
        ("cycle_p50_ms", 1000 * (1.5 * latency) + 20, "cycle p50 <= 1.5 x round trip + 20 ms"),
        ("weight_per_minute", 900, "weight <= 900 per minute at defaults"),
        ("metrics_p99_ms_10_scrapers", 10, "/metrics p99 <= 10 ms with 10 scrapers at defaults"),
        ("top100_metrics_p99_ms_10_scrapers", 50, "/metrics p99 <= 50 ms with 10 scrapers at top 100"),
        ("rss_mb_after_1000_cycles", 60, "resident memory <= 60 MB"),
    ]
    missed = [f"{text}: {results[key]}" for key, limit, text in targets if results[key] > limit]
    growth = results["rss_mb_after_1000_cycles"] - results["rss_mb_before_1000_cycles"]
    if growth > 2:
        missed.append(f"no memory growth over 1000 cycles: grew {growth:.1f} MB")
    return missed


def main() -> int:
    """Runs the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="injected delay per request, s (default: 0.05)")
    parser.add_argument("--minute", type=float, default=60.0, help="length of the defaults run, s (default: 60)")
    parser.add_argument("--cycles", type=int, default=1000, help="fast cycles to run (default: 1000)")
    parser.add_argument("--json", default=str(ROOT / "bench/results/latest.json"), help="where to write the results")
    args = parser.parse_args()
    if not 0 < args.latency <= 1 or args.minute < 10 or args.cycles < 10:
        parser.error("--latency must be from 0 to 1 s, --minute at least 10 and --cycles at least 10")
    results: dict[str, Any] = {"latency_ms": 1000 * args.latency}
    results.update(defaults_run(args.latency, args.minute))
    results.update(fast_run(args.latency, args.cycles))
    results.update(top_100_run(args.latency))
    missed = missed_targets(results, args.latency)
    width = max(len(key) for key in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    print("\n".join(["targets missed:", *missed]) if missed else "all targets met")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({**results, "missed": missed}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
