"""Benchmark of the real exporter process against the fake Binance, with
an injected network delay on every request: cycle latency, Binance request
weight, /metrics latency, memory and CPU.

    python bench/bench.py [--latency 0.05] [--json bench/results/latest.json]

Four runs, each with a fresh simulator and exporter process (the fourth, two):

1. defaults (top 5, update every 10 s, rankings every 60 s) for a minute:
   the request weight the fake Binance counted in that minute, /metrics
   latency with 1 and 10 concurrent scrapers, resident memory after warm-up;
2. fast cycles (top 5, a cycle every 0.1 s) until 1000 cycles have run:
   cycle duration p50/p95/max, CPU seconds per cycle, memory at the end;
3. top 100 of each list: /metrics latency with 1 and 10 scrapers;
4. top 100 served securely: /metrics latency with 1 and 10 scrapers and the
   bytes on the wire per scrape, each scraper keeping its connection as
   Prometheus does: over plain HTTP, plain with gzip, then over TLS with basic
   auth and gzip; and over TLS with a new connection (a handshake) per scrape.

It prints one table, writes it as JSON for comparisons across commits, and
names the targets the numbers miss.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import os
import secrets
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import bcrypt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before the standard library's own "test" package

# The project's "test" package, once the path above is set. Run on this file
# alone, pylint finds the standard library's "test" instead, which has neither.
# pylint: disable=wrong-import-position,wrong-import-order,import-error,no-name-in-module
from test.certificates import make_pki
from test.helpers import free_port, wait_for

# pylint: enable=wrong-import-position,wrong-import-order,import-error,no-name-in-module

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Where Linux's struct tcp_info holds tcpi_bytes_received and tcpi_bytes_sent
# (kernel 4.19 and later), and how much of it to ask for.
TCP_INFO_BYTES_RECEIVED, TCP_INFO_BYTES_SENT, TCP_INFO_LENGTH = 128, 200, 208
# The usual bcrypt cost, that of `htpasswd -B` and of the README's example.
BCRYPT_COST = 10
USER = "prometheus"
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
# Run 4's ways of scraping: name, over TLS with basic auth, gzip, and one
# connection per scraper kept for all its scrapes (else a new one per scrape).
SECURE_MODES = (
    ("plain_kept", False, False, True),
    ("gzip_kept", False, True, True),
    ("tls_gzip_kept", True, True, True),
    ("tls_gzip_new", True, True, False),
)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def wire_bytes(sock: socket.socket) -> int:
    """Bytes a TCP connection has carried both ways so far, as counted by
    the kernel: TLS records and HTTP heads included, TCP/IP headers not."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LENGTH)
    return sum(struct.unpack_from("=Q", info, offset)[0] for offset in (TCP_INFO_BYTES_RECEIVED, TCP_INFO_BYTES_SENT))


@dataclass(frozen=True)
class Scrape:
    """One GET /metrics as a scraper saw it."""

    seconds: float
    wire_bytes: int = 0  # both ways, a new connection's handshake included
    body_bytes: int = 0  # as sent: compressed when gzip was asked for
    error: str = ""  # why it failed; empty when it was answered


class ScrapeError(Exception):
    """An answer to GET /metrics that is not the page asked for."""


@dataclass(frozen=True)
class Security:
    """A web configuration file with TLS and one basic-auth user, and what
    a scraper needs to get past it."""

    exporter_args: tuple[str, ...]
    context: ssl.SSLContext
    authorization: str

    @staticmethod
    def make(directory: Path) -> "Security":
        """Certificates, a password and its bcrypt hash, and the file naming them, in ``directory``."""
        pki = make_pki(directory)
        password = secrets.token_urlsafe(16)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
        web_config = directory / "web.yml"
        web_config.write_text(
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
            f"basic_auth_users:\n  {USER}: {hashed}\n",
            encoding="utf-8",
        )
        token = base64.b64encode(f"{USER}:{password}".encode()).decode()
        return Security(
            ("--web.config.file", str(web_config)),
            ssl.create_default_context(cafile=str(pki.ca)),
            f"Basic {token}",
        )


def checked_body(response: http.client.HTTPResponse, body: bytes, compressed: bool) -> bytes:
    """``body`` decompressed if ``compressed``; raises ``ScrapeError``
    unless it is a page with ``binance_up``, gzip-compressed exactly when asked."""
    if response.status != 200:
        raise ScrapeError(f"answered {response.status}: {body[:200]!r}")
    if (response.getheader("Content-Encoding") == "gzip") != compressed:
        raise ScrapeError(f"gzip {'asked' if compressed else 'not asked'} for, Content-Encoding {response.headers}")
    text = gzip.decompress(body) if compressed else body
    if b"\nbinance_up " not in text:
        raise ScrapeError("no binance_up")
    return text


class Run:
    """A fake Binance and an exporter against it, each its own process;
    with ``security``, the exporter serves TLS and asks for a password."""

    def __init__(
        self,
        latency: float,
        exporter_args: list[str],
        simulator_args: Optional[list[str]] = None,
        security: Optional[Security] = None,
        exporter: tuple[str, ...] = EXPORTER,
    ):
        self.security = security
        self.simulator = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by close()
            [sys.executable, "-m", "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0"]
            + ["--latency", str(latency)]
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
            + exporter_args
            + list(security.exporter_args if security else ()),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.metrics().get("binance_up") == 1.0, timeout=60)

    def connection(self) -> http.client.HTTPConnection:
        """A new connection to the exporter (made at its first request), over TLS if it serves TLS."""
        if self.security:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=5, context=self.security.context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def headers(self, compressed: bool = False) -> dict[str, str]:
        """The headers of a GET /metrics: the password if one is needed, and gzip if ``compressed``."""
        headers = {"Authorization": self.security.authorization} if self.security else {}
        return headers | ({"Accept-Encoding": "gzip"} if compressed else {})

    def metrics(self) -> dict[str, float]:
        """The exporter's unlabelled samples, and bookTicker requests as ``cycles``."""
        connection = self.connection()
        try:
            connection.request("GET", "/metrics", headers=self.headers())
            response = connection.getresponse()
            text = checked_body(response, response.read(), compressed=False).decode()
        finally:
            connection.close()
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

    def scrapes(
        self, scrapers: int, per_scraper: int = 200, compressed: bool = False, keep_alive: bool = False
    ) -> list[Scrape]:
        """GET /metrics ``per_scraper`` times from each of ``scrapers``
        clients at once, each on a new connection per scrape or, with
        ``keep_alive``, on one it keeps for all its scrapes; with
        ``compressed``, asking for gzip and decompressing each answer. A
        scrape that fails is counted as such, and the next one reconnects."""
        done: list[Scrape] = []
        lock = threading.Lock()
        headers = self.headers(compressed)

        def scrape() -> None:
            mine = []
            connection: Optional[http.client.HTTPConnection] = None
            counted = 0  # bytes the connection had carried at the end of the last scrape
            for _ in range(per_scraper):
                started = time.perf_counter()
                try:
                    if connection is None:
                        connection, counted = self.connection(), 0
                    connection.request("GET", "/metrics", headers=headers)
                    response = connection.getresponse()
                    body = response.read()
                    carried = wire_bytes(connection.sock)
                    if not keep_alive:
                        connection.close()
                        connection = None
                    seconds = time.perf_counter() - started
                    checked_body(response, body, compressed)
                    mine.append(Scrape(seconds, carried - counted, len(body)))
                    counted = carried
                except (OSError, http.client.HTTPException, ScrapeError) as exc:
                    mine.append(Scrape(time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"))
                    if connection is not None:
                        connection.close()
                        connection = None
            if connection is not None:
                connection.close()
            with lock:
                done.extend(mine)

        threads = [threading.Thread(target=scrape) for _ in range(scrapers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if len(done) < scrapers * per_scraper:
            raise RuntimeError("a scraper stopped early: see its traceback above")
        return done

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


def scrape_stats(run: Run, compressed: bool = False, keep_alive: bool = False, sizes: bool = False) -> dict[str, float]:
    """/metrics p50 and p99 in ms of the scrapes answered, with 1 and with
    10 scrapers (see ``Run.scrapes``), and the scrapes that failed; with
    ``sizes``, also the mean bytes on the wire per scrape and of the body."""
    result: dict[str, float] = {}
    scrapes = []
    for scrapers in (1, 10):
        these = run.scrapes(scrapers, compressed=compressed, keep_alive=keep_alive)
        latencies = [scrape.seconds for scrape in these if not scrape.error]
        result[f"metrics_p50_ms_{scrapers}_scrapers"] = round(1000 * percentile(latencies, 0.50), 2)
        result[f"metrics_p99_ms_{scrapers}_scrapers"] = round(1000 * percentile(latencies, 0.99), 2)
        scrapes += these
    answered = [scrape for scrape in scrapes if not scrape.error]
    result["metrics_failed_scrapes"] = len(scrapes) - len(answered)
    if len(answered) < len(scrapes):
        first = next(scrape.error for scrape in scrapes if scrape.error)
        print(f"{len(scrapes) - len(answered)} of {len(scrapes)} scrapes failed, the first: {first}", file=sys.stderr)
    if sizes:
        result["metrics_wire_bytes_per_scrape"] = round(statistics.mean(scrape.wire_bytes for scrape in answered))
        result["metrics_body_bytes"] = round(statistics.mean(scrape.body_bytes for scrape in answered))
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


def top_100(latency: float, security: Optional[Security] = None) -> Run:
    """The top 100 of each list, the fake Binance with 100 more symbols per quote asset."""
    return Run(latency, ["--top", "100", "--weight-budget", "1000000"], ["--extra-symbols", "100"], security)


def top_100_run(latency: float) -> dict[str, float]:
    """Run 3: the top 100 of each list."""
    run = top_100(latency)
    try:
        return {f"top100_{key}": value for key, value in scrape_stats(run).items()}
    finally:
        run.close()


def secure_run(latency: float) -> dict[str, float]:
    """Run 4: the top 100 scraped in each of ``SECURE_MODES``: an exporter
    over plain HTTP, then one over TLS with basic auth. The password is
    checked (bcrypt) at the first scrape, while the run waits for the
    exporter, and remembered: the figures are those of scrapes that follow."""
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        for security in (None, Security.make(Path(directory))):
            run = top_100(latency, security)
            try:
                for name, over_tls, compressed, keep_alive in SECURE_MODES:
                    if over_tls == (security is not None):
                        stats = scrape_stats(run, compressed, keep_alive, sizes=True)
                        result.update({f"top100_{name}_{key}": value for key, value in stats.items()})
            finally:
                run.close()
    plain, gzipped = (result[f"top100_{name}_metrics_body_bytes"] for name in ("plain_kept", "gzip_kept"))
    result["top100_gzip_body_percent_of_plain"] = round(100 * gzipped / plain, 1)
    return result


def missed_targets(results: dict[str, float], latency: float) -> list[str]:
    """The targets the results miss, each as a sentence."""
    targets = [
        ("cycle_p50_ms", 1000 * (1.5 * latency) + 20, "cycle p50 <= 1.5 x round trip + 20 ms"),
        ("weight_per_minute", 900, "weight <= 900 per minute at defaults"),
        ("metrics_p99_ms_10_scrapers", 10, "/metrics p99 <= 10 ms with 10 scrapers at defaults"),
        ("top100_metrics_p99_ms_10_scrapers", 50, "/metrics p99 <= 50 ms with 10 scrapers at top 100"),
        ("top100_gzip_body_percent_of_plain", 20, "gzip body <= 1/5 of the plain body at top 100, in %"),
        ("top100_gzip_kept_metrics_p99_ms_10_scrapers", 50, "/metrics p99 <= 50 ms with 10 scrapers, gzip"),
        ("top100_tls_gzip_kept_metrics_p99_ms_10_scrapers", 50, "/metrics p99 <= 50 ms with 10 scrapers, TLS"),
        ("rss_mb_after_1000_cycles", 60, "resident memory <= 60 MB"),
    ]
    missed = [f"{text}: {results[key]}" for key, limit, text in targets if results[key] > limit]
    failures = {key: value for key, value in results.items() if key.endswith("_failed_scrapes") and value}
    missed += [f"every scrape answered: {key} {value}" for key, value in failures.items()]
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
    results.update(secure_run(args.latency))
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
