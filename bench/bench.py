# pylint: disable=too-many-lines  # the REST runs and the stream section, printed as one table
"""Benchmark of the real exporter process against the fake Binance, with
an injected network delay on every request: cycle latency, Binance request
weight, /metrics latency, memory and CPU, in REST and in stream mode; and
the cost of keeping order books from the streams.

    python bench/bench.py [--latency 0.05] [--only rest|stream|live|record|replay]
        [--recording DIR] [--replay-record-seconds 120] [--json bench/results/latest.json]

The REST section: four runs of the exporter with ``--source rest``, each
with a fresh simulator and exporter process (the fourth, two):

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

The stream section (the fake's books moving every 0.1 s, as
``<symbol>@depth@100ms`` sends):

5. stream mode at defaults: the weight spent until every book is shown in
   sync, then for a minute the weight, the exporter's CPU seconds, and its
   resident memory at the end;
6. the same at ``--update-interval 1``;
7. book maintenance in this process, one thread: diff events of 5 bids and
   5 asks near the top of a 1000-level book through orjson,
   ``parse_depth_event`` and ``DepthSync.on_event``, in events per second,
   and bytes per level held; beside it, tables comparing decoders (json,
   orjson, msgspec) and book structures (the exporter's dict and sorted
   list of Decimal prices; a dict sorted when read; integer ticks);
8. event-to-book latency: 100 books kept by a ``StreamHub`` in this process
   from a fake Binance in its own process, the time from each event's ``E``
   to its being applied, p50/p99/max; and the same streams read by a bare
   websocket client, the part that is the fake's and the loopback's;
9. /metrics with 100 live books in stream mode (the top 50 of each list):
   p50/p99 with 1 and 10 scrapers, and the page's size; item 7 also
   measures the cost trade flow adds per aggTrade event and the
   microstructure read of one book.

The live view's section:

10. stream mode at --update-interval 1, the fake's books moving every
    0.1 s: with the default lists (10 live books), with no live client
    and with 100 clients following the 10 books' pages (10 on each); then
    with 100 live books, with no client and with 100 clients each on a
    book of its own. For each, over 20 s: the exporter's CPU share of a
    core (and so the cost per client), its books' mean event lag and its
    cycles' p99; then /metrics p50/p99 with 1 and 10 scrapers; the events
    each client received per second, and the time from a depth event to
    the page event showing it arriving.

The recording's section:

11. stream mode with 100 live books moving every 0.1 s (about 1000 depth
    events a second), for 20 s without and with --record: the exporter's
    CPU share of a core and the messages a second; the compressed bytes
    per line recorded; and, on those lines, gzip (levels 1, 6, 9) and
    zstandard (levels 3, 9) compared, in batches with a flush as
    --record writes them: bytes and CPU microseconds per line.

The replay's section:

12. a recording of the demo's market (``make demo``: the fake Binance at
    its defaults, the exporter in stream mode at --update-interval 8
    --rank-interval 30), made for --replay-record-seconds (120) with
    --record and --format json, or the one --recording names: the offline
    report (``python -m binance_exporter.replay --report``) timed, in times
    real time and lines a second, and, on a recording made here, whether
    it prints what the recorded exporter printed; then the replay server
    at --speed 50, read by a websocket client on every depth stream the
    recording carries: each event's schedule lag (its arrival less the
    time its last recorded event was due at 50 times real time)
    p50/p99/max, the events a second, the server's CPU share of a core,
    and the real seconds it took to serve the whole recording; then the
    unchanged exporter (--update-interval 0.5) against the replay at
    --speed 50: its books in sync at the end, and their resyncs.

It prints one table (and the comparison tables), writes them as JSON for
comparisons across commits, and names the targets the numbers miss.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import functools
import gc
import gzip
import http.client
import json
import math
import multiprocessing
import os
import random
import re
import resource
import secrets
import selectors
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import zlib
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import bcrypt
import msgspec
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before the standard library's own "test" package

# The project's "test" package, once the path above is set. Run on this file
# alone, pylint finds the standard library's "test" instead, which has neither.
# pylint: disable=wrong-import-position,wrong-import-order,import-error,no-name-in-module
from test.certificates import make_pki
from test.helpers import free_port, wait_for

from binance_exporter.binance import responses, streams
from binance_exporter.binance.depth_sync import SNAPSHOT_LIMIT, DepthEvent, DepthSnapshot, DepthSync
from binance_exporter.binance.recording import read_recording, read_recordings
from binance_exporter.binance.responses import (
    parse_agg_trade_event,
    parse_agg_trades,
    parse_depth_event,
    parse_depth_snapshot,
)
from binance_exporter.binance.trade_sync import TradeSync
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import BOOK_DEPTH
from binance_exporter.market.microstructure import AggTrade, microstructure
from binance_exporter.market.order_book import LocalBook

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


def simulator_urls(line: str) -> tuple[str, str]:
    """The REST and stream URLs of the fake Binance's first line,
    "binance simulator streaming on ws://..., listening on http://..."."""
    words = line.split()
    return words[-1], words[4].rstrip(",")


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
    with ``security``, the exporter serves TLS and asks for a password;
    with ``stream``, it keeps its books from the fake's websocket streams
    (``--source stream``), else it polls (``--source rest``)."""

    def __init__(
        self,
        latency: float,
        exporter_args: list[str],
        simulator_args: Optional[list[str]] = None,
        security: Optional[Security] = None,
        exporter: tuple[str, ...] = EXPORTER,
        stream: bool = False,
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
        self.binance, self.stream_url = simulator_urls(self.simulator.stdout.readline())
        self.port = free_port()
        source = ["--source", "stream", "--stream-url", self.stream_url] if stream else ["--source", "rest"]
        self.exporter = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by close()
            [sys.executable, *exporter, "--port", str(self.port), "--address", "127.0.0.1"]
            + ["--base-url", self.binance, "--loglevel", "ERROR"]
            + source
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

    def page(self) -> str:
        """The exporter's /metrics, uncompressed."""
        connection = self.connection()
        try:
            connection.request("GET", "/metrics", headers=self.headers())
            response = connection.getresponse()
            return checked_body(response, response.read(), compressed=False).decode()
        finally:
            connection.close()

    def metrics(self) -> dict[str, float]:
        """The exporter's unlabelled samples, and bookTicker requests as ``cycles``."""
        samples = {}
        for line in self.page().splitlines():
            if line.startswith("binance_exporter_api_requests_total") and '"/api/v3/ticker/bookTicker"' in line:
                samples["cycles"] = samples.get("cycles", 0.0) + float(line.rsplit(" ", 1)[1])
            elif line and not line.startswith("#") and "{" not in line:
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def labelled(self, name: str) -> list[float]:
        """The values of every labelled sample of metric ``name``."""
        return [value for _, value in self.labelled_samples(name)]

    def labelled_samples(self, name: str) -> list[tuple[str, float]]:
        """Every labelled sample of metric ``name``: its labels as written, and its value."""
        samples = [line.rsplit(" ", 1) for line in self.page().splitlines() if line.startswith(name + "{")]
        return [(labels[len(name) :], float(value)) for labels, value in samples]

    def binance_stats(self) -> dict[str, Any]:
        """The fake Binance's counts so far (``GET /sim/stats``)."""
        with urllib.request.urlopen(self.binance + "/sim/stats", timeout=5) as response:
            return json.loads(response.read())

    def binance_weight(self) -> int:
        """Request weight the fake Binance has counted so far."""
        return self.binance_stats()["weight_total"]

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


# The stream section: stream mode's REST weight, CPU and memory in the real
# exporter process; book maintenance, decoders and book structures in this
# process; event-to-book latency over loopback websockets.

# The fake market at its own pace, as `make demo` runs it (a step a second):
# at ten times that, its top lists change every few seconds, and each symbol
# that enters one costs a snapshot.
STREAM_SIMULATOR: list[str] = []
SNAPSHOT_WEIGHT = 50  # GET /api/v3/depth?limit=1000
BASELINE_WEIGHT = 4  # GET /api/v3/aggTrades?limit=1: where a new symbol's trade counters start


def stream_resyncs(run: Run) -> Counter:
    """The exporter's order-book resyncs so far, by reason, summed over its books."""
    resyncs: Counter = Counter()
    for labels, value in run.labelled_samples("binance_order_book_resyncs_total"):
        resyncs[labels.split('reason="', 1)[1].split('"', 1)[0]] += int(value)
    return resyncs


def stream_top_100_run(latency: float) -> dict[str, float]:
    """Stream mode with 100 live books (the top 50 of each list, the fake
    Binance with 100 more symbols per quote asset): /metrics latency and
    body size once every book is in sync, with every microstructure and
    trade-flow series."""
    args = ["--top", "50", "--weight-budget", "1000000"]
    run = Run(latency, args, ["--extra-symbols", "100", "--weight-limit", "1000000"], stream=True)
    try:
        wait_for(lambda: len(run.labelled("binance_order_book_in_sync")) == 100, timeout=60)
        wait_for(lambda: min(run.labelled("binance_order_book_in_sync")) == 1.0, timeout=120)
        result = {"books": len(run.labelled("binance_order_book_in_sync")), "series": run.page().count("\nbinance_")}
        result.update(scrape_stats(run, sizes=True))
    finally:
        run.close()
    return {f"stream_top100_{key}": value for key, value in result.items()}


def stream_run(latency: float, minute: float, prefix: str, exporter_args: list[str]) -> dict[str, float]:
    """Stream mode: the weight the fake Binance counted until every book
    is shown in sync, then over ``minute`` the weight and the exporter's
    CPU seconds and, at the end, its resident memory."""
    started = time.monotonic()
    run = Run(latency, exporter_args, STREAM_SIMULATOR, stream=True)
    try:
        wait_for(lambda: min(run.labelled("binance_order_book_in_sync") or [0.0]) == 1.0, timeout=90)
        synced_at = time.monotonic()
        stats, cpu, resyncs = run.binance_stats(), run.cpu_seconds(), stream_resyncs(run)
        time.sleep(minute)
        after = run.binance_stats()
        requests = {path: n - stats["requests"].get(path, 0) for path, n in after["requests"].items()}
        resyncs = stream_resyncs(run) - resyncs
        result = {
            "books": len(run.labelled("binance_order_book_in_sync")),
            "seconds_to_all_in_sync": round(synced_at - started, 1),
            "weight_to_sync": stats["weight_total"],
            "weight_per_minute": round((after["weight_total"] - stats["weight_total"]) * 60 / minute),
            # Less the first snapshot and trade baseline of symbols that entered
            # a top list in the minute (each depth request not counted as a
            # resync): what the streams cost while the lists stay as they are.
            "steady_weight_per_minute": round(
                (
                    after["weight_total"]
                    - stats["weight_total"]
                    - (SNAPSHOT_WEIGHT + BASELINE_WEIGHT) * (requests.get("/api/v3/depth", 0) - sum(resyncs.values()))
                )
                * 60
                / minute
            ),
            "cpu_seconds_per_minute": round((run.cpu_seconds() - cpu) * 60 / minute, 2),
            "rss_mb_after_warm_up": round(run.resident_mb(), 1),
            "binance_violations": after["violations"] + after["stream_violations"],
            "requests_in_the_minute": ", ".join(f"{path} {n}" for path, n in sorted(requests.items()) if n) or "none",
            "resyncs_in_the_minute": ", ".join(f"{reason} {n}" for reason, n in sorted(resyncs.items()) if n) or "none",
        }
    finally:
        run.close()
    return {f"{prefix}_{key}": value for key, value in result.items()}


# Book maintenance: a book of 1000 levels a side, a cent apart, and diff
# events of 5 bids and 5 asks among the best 20 of each side, a fifth of
# them deletions, written as Binance writes them.
BOOK_LEVELS = 1000
EVENT_LEVELS = 5
NEAR_TOP = 20
DELETED_SHARE = 0.2
MID_CENTS = 3_000_000  # 30000.00
BENCH_SYMBOL = "BTCUSDT"
BENCH_EVENTS = 20_000
MEMORY_BOOKS = 100


def price_text(cents: int) -> str:
    """A price in cents as Binance writes it, with 8 decimals."""
    return f"{cents // 100}.{cents % 100:02d}000000"


def quantity_text(rng: random.Random) -> str:
    """A random quantity: the parser's cache of numbers misses on nearly every one, the slow case."""
    return f"{rng.randint(1, 10**8) / 1e5:.8f}"


def snapshot_data(rng: random.Random) -> dict[str, Any]:
    """A ``GET /api/v3/depth?limit=1000`` answer as decoded from JSON."""
    return {
        "lastUpdateId": 1000,
        "bids": [[price_text(MID_CENTS - 1 - i), quantity_text(rng)] for i in range(BOOK_LEVELS)],
        "asks": [[price_text(MID_CENTS + 1 + i), quantity_text(rng)] for i in range(BOOK_LEVELS)],
    }


def depth_frames(rng: random.Random, count: int) -> list[bytes]:
    """``count`` combined-stream frames of consecutive diff events that follow ``snapshot_data``."""
    frames = []
    for number in range(count):
        sides = [
            [
                [price_text(MID_CENTS + sign * (1 + offset)),
                 "0.00000000" if rng.random() < DELETED_SHARE else quantity_text(rng)]
                for offset in rng.sample(range(NEAR_TOP), EVENT_LEVELS)
            ]
            for sign in (-1, 1)
        ]  # fmt: skip
        event = {
            "e": "depthUpdate", "E": 1_700_000_000_000 + 100 * number, "s": BENCH_SYMBOL,
            "U": 1001 + 3 * number, "u": 1003 + 3 * number, "b": sides[0], "a": sides[1],
        }  # fmt: skip
        frames.append(orjson.dumps({"stream": "btcusdt@depth@100ms", "data": event}))
    return frames


def synced_book(data: dict[str, Any]) -> DepthSync:
    """A ``DepthSync`` in sync at the snapshot ``data``."""
    sync = DepthSync()
    first = {"e": "depthUpdate", "E": 0, "s": BENCH_SYMBOL, "U": 1000, "u": 1000, "b": [], "a": []}
    sync.on_event(parse_depth_event(first))  # buffered: the snapshot is then wanted
    sync.on_snapshot(parse_depth_snapshot(BENCH_SYMBOL, data, SNAPSHOT_LIMIT))
    assert sync.in_sync
    return sync


def best_rate(measure: Callable[[], float], count: int, trials: int = 3) -> int:
    """Operations per second: ``count`` over the fastest of ``trials``
    calls of ``measure``, each returning the seconds its ``count`` took."""
    return round(count / min(measure() for _ in range(trials)))


def maintained_rate(frames: list[bytes], data: dict[str, Any], decode: Callable[[bytes], Any]) -> int:
    """Events per second through ``decode``, ``parse_depth_event`` and
    ``DepthSync.on_event``, the parser's cache of numbers empty at the start."""

    def measure() -> float:
        sync = synced_book(data)
        responses._EVENT_NUMBERS.clear()  # pylint: disable=protected-access  # each trial starts cold
        started = time.perf_counter()
        for frame in frames:
            sync.on_event(parse_depth_event(decode(frame)["data"]))
        seconds = time.perf_counter() - started
        assert sync.in_sync and sync.book is not None and sync.book.update_id == 1000 + 3 * len(frames)
        return seconds

    return best_rate(measure, len(frames))


def decode_rate(frames: list[bytes], decode: Callable[[bytes], Any]) -> int:
    """Frames per second through ``decode`` alone."""

    def measure() -> float:
        started = time.perf_counter()
        for frame in frames:
            decode(frame)
        return time.perf_counter() - started

    return best_rate(measure, len(frames))


class TypedDepthEvent(msgspec.Struct):
    """A depth event as a typed msgspec decoder reads it, types checked, numbers left as text."""

    e: str
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class TypedFrame(msgspec.Struct):
    """A combined-stream frame of a depth event, for the typed decoder."""

    stream: str
    data: TypedDepthEvent


def decoder_rows(frames: list[bytes], data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each decoder's frames per second, alone and followed by the
    exporter's parse and apply (not for the typed decoder, whose objects
    ``parse_depth_event`` does not take)."""
    decoders = (
        ("json (stdlib)", json.loads, True),
        ("orjson", orjson.loads, True),
        ("msgspec.json", msgspec.json.decode, True),
        ("msgspec.json typed Struct", msgspec.json.Decoder(TypedFrame).decode, False),
    )
    return [
        {
            "decoder": name,
            "decode_per_second": decode_rate(frames, decode),
            "decode_parse_apply_per_second": maintained_rate(frames, data, decode) if parses else None,
        }
        for name, decode, parses in decoders
    ]


class SortOnReadSide:
    """A book side kept as a dict of price to quantity only: the best
    price is a pass over every level, the best levels a sort of them all."""

    __slots__ = ("is_bid", "horizon", "quantities")

    def __init__(self, is_bid: bool, levels: Iterable[tuple[Any, Any]]):
        self.is_bid = is_bid
        self.quantities = dict(levels)
        self.horizon = min(self.quantities) if is_bid else max(self.quantities)  # a full snapshot's

    def set(self, price: Any, qty: Any) -> None:
        """Sets a level; 0 removes it; past the horizon, ignored."""
        if price < self.horizon if self.is_bid else price > self.horizon:
            return
        if qty:
            self.quantities[price] = qty
        else:
            self.quantities.pop(price, None)

    def best(self) -> Any:
        """The best price."""
        return max(self.quantities) if self.is_bid else min(self.quantities)

    def top(self, count: int) -> list[tuple[Any, Any]]:
        """The best ``count`` levels, best first."""
        prices = sorted(self.quantities, reverse=self.is_bid)[:count]
        return [(price, self.quantities[price]) for price in prices]


class SortedListSide(SortOnReadSide):
    """A book side kept as ``BookSide`` keeps it, a dict and the prices
    in a list kept sorted with bisect; here for integer ticks."""

    __slots__ = ("prices",)

    def __init__(self, is_bid: bool, levels: Iterable[tuple[Any, Any]]):
        super().__init__(is_bid, levels)
        self.prices = sorted(self.quantities)

    def set(self, price: Any, qty: Any) -> None:
        if price < self.horizon if self.is_bid else price > self.horizon:
            return
        quantities = self.quantities
        if not qty:
            if quantities.pop(price, None) is not None:
                del self.prices[bisect.bisect_left(self.prices, price)]
        elif price not in quantities:
            bisect.insort(self.prices, price)
            quantities[price] = qty
        else:
            quantities[price] = qty

    def best(self) -> Any:
        return self.prices[-1] if self.is_bid else self.prices[0]

    def top(self, count: int) -> list[tuple[Any, Any]]:
        prices = self.prices[: -count - 1 : -1] if self.is_bid else self.prices[:count]
        return [(price, self.quantities[price]) for price in prices]


def ticks(text: str) -> int:
    """A decimal number string in 1e-8 units, checked as the exporter's parser checks numbers."""
    if not responses._DECIMAL.fullmatch(text):  # pylint: disable=protected-access
        raise ValueError(f"not a decimal number: {text!r}")
    whole, _, fraction = text.partition(".")
    if len(fraction) > 8:
        raise ValueError(f"finer than 1e-8: {text!r}")
    return int(whole + fraction.ljust(8, "0"))


class BenchBook:
    """A book built from decoded snapshot ``data`` and kept from decoded
    event data: the exporter's ``LocalBook`` after ``parse_depth_event``."""

    name = "dict + bisect sorted list, Decimal (current)"

    def __init__(self, data: dict[str, Any]):
        snapshot = parse_depth_snapshot(BENCH_SYMBOL, data, SNAPSHOT_LIMIT)
        self.book = LocalBook(snapshot.last_update_id, snapshot.bids, snapshot.asks, snapshot.limit)

    def apply(self, data: dict[str, Any]) -> None:
        """Parses one event's data and applies it."""
        event = parse_depth_event(data)
        self.book.apply(event.last_id, event.bids, event.asks)

    def crossed(self) -> bool:
        """The check ``DepthSync`` makes after every event."""
        return self.book.crossed()

    def read(self) -> Any:
        """Both sides' best ``BOOK_DEPTH`` levels, as each update reads them."""
        return self.book.bids.top(BOOK_DEPTH), self.book.asks.top(BOOK_DEPTH)


class SortOnReadBook(BenchBook):
    """Decimal prices, each side a ``SortOnReadSide``."""

    name = "dict + sort on read, Decimal"
    side: type = SortOnReadSide

    def __init__(self, data: dict[str, Any]):  # pylint: disable=super-init-not-called  # a book of its own
        snapshot = parse_depth_snapshot(BENCH_SYMBOL, data, SNAPSHOT_LIMIT)
        self.bids, self.asks = self.side(True, snapshot.bids), self.side(False, snapshot.asks)

    def apply(self, data: dict[str, Any]) -> None:
        event = parse_depth_event(data)
        for price, qty in event.bids:
            self.bids.set(price, qty)
        for price, qty in event.asks:
            self.asks.set(price, qty)

    def crossed(self) -> bool:
        return self.bids.best() >= self.asks.best()

    def read(self) -> Any:
        return self.bids.top(BOOK_DEPTH), self.asks.top(BOOK_DEPTH)


_TICKS: dict[str, int] = {}  # the integer book's cache of numbers, as the exporter's parser has one


def event_ticks(levels: Any) -> list[tuple[int, int]]:
    """An event's levels in 1e-8 units (its other fields are not checked: a shortcut in this book's favour)."""
    changed = []
    for price, qty in levels:
        pair = []
        for text in (price, qty):
            number = _TICKS.get(text)
            if number is None:
                if len(_TICKS) >= responses.MAX_EVENT_NUMBERS:
                    _TICKS.clear()
                number = _TICKS[text] = ticks(text)
            pair.append(number)
        changed.append((pair[0], pair[1]))
    return changed


class TickBook(SortOnReadBook):
    """Prices and quantities as integers of 1e-8, each side a ``SortedListSide``."""

    name = "dict + bisect sorted list, int ticks"

    def __init__(self, data: dict[str, Any]):  # pylint: disable=super-init-not-called  # a book of its own
        self.bids = SortedListSide(True, ((ticks(p), ticks(q)) for p, q in data["bids"]))
        self.asks = SortedListSide(False, ((ticks(p), ticks(q)) for p, q in data["asks"]))

    def apply(self, data: dict[str, Any]) -> None:
        for price, qty in event_ticks(data["b"]):
            self.bids.set(price, qty)
        for price, qty in event_ticks(data["a"]):
            self.asks.set(price, qty)


def book_bytes_per_level(book_type: type, data: dict[str, Any], books: int = MEMORY_BOOKS) -> int:
    """Bytes a book of ``book_type`` holds per level, by tracemalloc over ``books`` books built from ``data``."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = [book_type(data) for _ in range(books)]
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return round(held / (len(built) * 2 * BOOK_LEVELS))


def structure_seconds(book_type: type, events: list[dict[str, Any]], data: dict[str, Any], checked: bool) -> float:
    """Seconds a ``book_type`` book built from ``data`` takes to parse and
    apply ``events`` (decoded data), with its caches of numbers empty at the
    start; with ``checked``, checking after every event whether it is crossed."""
    book = book_type(data)
    responses._EVENT_NUMBERS.clear()  # pylint: disable=protected-access  # cold, as in maintained_rate
    _TICKS.clear()
    started = time.perf_counter()
    for event in events:
        book.apply(event)
        if checked:
            book.crossed()
    return time.perf_counter() - started


def structure_rows(frames: list[bytes], data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each book structure: events per second through its parse and apply
    (frames decoded beforehand), alone and with the crossed-book check
    ``DepthSync`` makes after every event; microseconds to read both
    sides' best ``BOOK_DEPTH`` (200) levels; bytes per level held."""
    events = [orjson.loads(frame)["data"] for frame in frames]
    rows = []
    for book_type in (BenchBook, SortOnReadBook, TickBook):
        book = book_type(data)
        for event in events:
            book.apply(event)
        reads = 1000
        started = time.perf_counter()
        for _ in range(reads):
            book.read()
        read_us = 1e6 * (time.perf_counter() - started) / reads
        unchecked, checked = (functools.partial(structure_seconds, book_type, events, data, c) for c in (False, True))
        rows.append(
            {
                "structure": book_type.name,
                "apply_per_second": best_rate(unchecked, len(events)),
                "apply_check_per_second": best_rate(checked, len(events)),
                f"read_best_{BOOK_DEPTH}_us": round(read_us, 1),
                "bytes_per_level": book_bytes_per_level(book_type, data),
            }
        )
    return rows


def book_maintenance(events: int) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """In this process, one thread: the exporter's own book maintenance
    (orjson, ``parse_depth_event``, ``DepthSync.on_event``) in events per
    second, and bytes per level of its books; and the comparison tables
    of decoders and book structures."""
    rng = random.Random(1)
    data, frames = snapshot_data(rng), depth_frames(rng, events)
    decoders, structures = decoder_rows(frames, data), structure_rows(frames, data)
    result = {
        "book_events_per_second": next(row for row in decoders if row["decoder"] == "orjson")[
            "decode_parse_apply_per_second"
        ],
        "book_bytes_per_level": structures[0]["bytes_per_level"],
        "trade_events_per_second": trade_rate(trade_frames(events)),
        "microstructure_us_per_book": microstructure_us(data),
    }
    return result, {"decoders": decoders, "book_structures": structures}


def trade_frames(count: int) -> list[bytes]:
    """``count`` aggTrade events of one symbol in a row, as Binance writes them."""
    rng = random.Random(2)
    return [
        orjson.dumps(
            {
                "stream": "btcusdt@aggTrade",
                "data": {
                    "e": "aggTrade", "E": 1_800_000_000_000 + i, "s": "BTCUSDT", "a": 10_000 + i,
                    "p": price_text(MID_CENTS + rng.randrange(-20, 20)), "q": quantity_text(rng),
                    "f": 3 * i, "l": 3 * i + 2, "T": 1_800_000_000_000 + i, "m": rng.random() < 0.5, "M": True,
                },
            }
        )  # fmt: skip
        for i in range(count)
    ]


def trade_rate(frames: list[bytes]) -> int:
    """aggTrade events per second through orjson, ``parse_agg_trade_event``
    and ``TradeSync.on_trade``: the cost trade flow adds per event."""

    def measure() -> float:
        sync = TradeSync()
        sync.on_baseline(None)
        started = time.perf_counter()
        for frame in frames:
            _, trade = parse_agg_trade_event(orjson.loads(frame)["data"])
            sync.on_trade(trade)
        return time.perf_counter() - started

    return best_rate(measure, len(frames))


def microstructure_us(data: dict[str, Any]) -> float:
    """Microseconds to read one 1000-level book's microstructure (mid,
    micro price, 12 depth bands, 3 imbalances), as the cycle does per book."""
    sync = synced_book(data)
    assert sync.book is not None
    view = sync.book.view(BOOK_DEPTH)
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        microstructure(view)
    return round(1e6 * (time.perf_counter() - started) / rounds, 1)


LATENCY_BOOKS = 100


def rest_snapshots(base_url: str) -> Callable[[str, int, Optional[float]], DepthSnapshot]:
    """Snapshots read over REST with ``urllib``, for a ``StreamHub``."""

    def snapshot(symbol: str, limit: int, time_left: Optional[float] = None) -> DepthSnapshot:
        url = f"{base_url}/api/v3/depth?symbol={symbol}&limit={limit}"
        try:
            with urllib.request.urlopen(url, timeout=time_left or 10) as answer:
                return parse_depth_snapshot(symbol, orjson.loads(answer.read()), limit)
        except (OSError, ValueError) as exc:
            raise MarketDataError(f"depth {symbol}: {exc}") from exc

    return snapshot


def rest_trades(base_url: str) -> Callable[[str, Optional[int], int, Optional[float]], list[AggTrade]]:
    """Aggregate trades read over REST with ``urllib``, for a ``StreamHub``."""

    def trades(symbol: str, from_id: Optional[int], limit: int, time_left: Optional[float] = None) -> list[AggTrade]:
        start = "" if from_id is None else f"&fromId={from_id}"
        url = f"{base_url}/api/v3/aggTrades?symbol={symbol}&limit={limit}{start}"
        try:
            with urllib.request.urlopen(url, timeout=time_left or 10) as answer:
                return parse_agg_trades(symbol, orjson.loads(answer.read()))
        except (OSError, ValueError) as exc:
            raise MarketDataError(f"aggTrades {symbol}: {exc}") from exc

    return trades


async def received_lags(stream_url: str, symbols: list[str], seconds: float) -> list[float]:
    """The baseline: for each depth event a bare websocket client (no
    books, no parsing) receives from ``symbols``' streams over ``seconds``,
    the ms from its event time ``E`` to its arrival. It subscribes what the
    hub does, the 24 h ticker stream too: the fake makes that array on the
    same connection, between two ticks' depth events."""
    lags = []
    async with connect(stream_url + "/stream", max_size=None) as ws:
        names = [streams.depth_stream(symbol) for symbol in symbols] + [streams.TICKER_STREAM]
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
        await ws.recv()  # the answer
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                frame = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            message = orjson.loads(frame)
            if message["stream"] != streams.TICKER_STREAM:
                lags.append(time.time() * 1000 - message["data"]["E"])
    return lags


def lag_stats(prefix: str, lags: list[float], seconds: float) -> dict[str, float]:
    """Events per second and the lags' p50, p99 and max."""
    return {
        f"{prefix}_events_per_second": round(len(lags) / seconds),
        f"{prefix}_p50_ms": round(percentile(lags, 0.50), 2),
        f"{prefix}_p99_ms": round(percentile(lags, 0.99), 2),
        f"{prefix}_max_ms": round(max(lags), 2),
    }


def hub_lags(base_url: str, stream_url: str, symbols: list[str], seconds: float) -> dict[str, Any]:
    """A ``StreamHub`` in this process keeping ``symbols``' books: once all
    are in sync, for each event applied over ``seconds``, the ms from its
    event time ``E`` to the moment it was applied; the books in sync at the
    end, and the hub's reconnects and the books' resyncs meanwhile."""
    # lags: ms from E to the book updated; processing: ms from the hub taking
    # the frame to the book updated; taken: when the hub took the last frame.
    timing: dict[str, Any] = {"lags": [], "processing": [], "taken": 0.0}

    class TimedDepthSync(DepthSync):
        """A ``DepthSync`` that notes each event's lag when it applies it."""

        def on_event(self, event: DepthEvent) -> Optional[str]:
            before = self.book.update_id if self.book is not None else None
            reason = super().on_event(event)
            if self.in_sync and self.book is not None and self.book.update_id != before:
                timing["lags"].append(time.time() * 1000 - event.event_time)
                timing["processing"].append((time.perf_counter() - timing["taken"]) * 1000)
            return reason

    class TimedHub(streams.StreamHub):
        """A ``StreamHub`` that notes when it takes each frame."""

        def _on_frame(self, connection: Any, frame: Any) -> None:
            timing["taken"] = time.perf_counter()
            super()._on_frame(connection, frame)

    streams.DepthSync = TimedDepthSync  # the hub makes its books from the module's name
    hub = TimedHub((stream_url,), rest_snapshots(base_url), rest_trades(base_url))
    try:
        hub.start().track(symbols)

        def resyncs() -> tuple[int, int]:
            states = [reading.state for reading in hub.book_readings(5).values()]
            return sum(state.in_sync for state in states), sum(n for state in states for _, n in state.resyncs)

        wait_for(lambda: resyncs()[0] == len(symbols), timeout=120)
        timing["lags"].clear()
        timing["processing"].clear()
        started, before, reconnects = time.monotonic(), resyncs()[1], sum(n for _, n in hub.counts().reconnects)
        time.sleep(seconds)
        elapsed, (in_sync, after) = time.monotonic() - started, resyncs()
        return {
            "lags": list(timing["lags"]),
            "processing": list(timing["processing"]),
            "seconds": elapsed,
            "in_sync": in_sync,
            "resyncs": after - before,
            "reconnects": sum(n for _, n in hub.counts().reconnects) - reconnects,
        }
    finally:
        hub.stop()
        streams.DepthSync = DepthSync


def latency_run(seconds: float) -> dict[str, float]:
    """100 books kept by a ``StreamHub`` in this process from a fake
    Binance in its own process (every book moving every 0.1 s): for each
    event applied, the ms from its event time ``E`` (whole ms: the fake's
    clock at the tick that made it) to the moment it was applied. First,
    as a baseline, the same streams read by a bare websocket client: how
    much of that is the fake's own (it makes a tick's events one by one,
    then sends them) and the loopback's."""
    simulator = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped below
        [sys.executable, "-m", "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0"]
        + ["--tick-seconds", "0.1", "--extra-symbols", "50", "--weight-limit", "1000000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        base_url, stream_url = simulator_urls(simulator.stdout.readline())
        with urllib.request.urlopen(base_url + "/api/v3/exchangeInfo", timeout=10) as answer:
            listed = orjson.loads(answer.read())["symbols"]
        symbols = [record["symbol"] for record in listed if record["status"] == "TRADING"][:LATENCY_BOOKS]
        baseline = asyncio.run(received_lags(stream_url, symbols, seconds))
        hub = hub_lags(base_url, stream_url, symbols, seconds)
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
        simulator.stdout.close()
    return {
        "latency_books": len(symbols),
        "latency_books_in_sync_at_end": hub["in_sync"],
        "latency_resyncs": hub["resyncs"],
        "latency_reconnects": hub["reconnects"],
        **lag_stats("event_to_book", hub["lags"], hub["seconds"]),
        **lag_stats("frame_to_book", hub["processing"], hub["seconds"]),
        **lag_stats("event_to_bare_client", baseline, seconds),
    }


# The live view: browsers following book pages, as raw event-stream clients.
LIVE_CLIENTS = 100
LIVE_SECONDS = 20.0


def follow_books(  # pylint: disable=too-many-locals  # the clients, their buffers and counts
    port: int, paths: list[str], stop: Any, results: Any
) -> None:
    """In a process of its own: one event-stream client per path, all read
    by one selector loop until ``stop`` is set; puts on ``results`` the
    events each received per second and, per book event, the seconds from
    the last depth event it shows (its ``time`` less its
    ``last_event_age``) to its arrival here."""
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    counts: Counter = Counter()
    lags: list[float] = []
    for path in paths:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode())
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, path)
        buffers[sock] = b""
    started = time.monotonic()
    while not stop.is_set():
        for key, _ in selector.select(0.1):
            sock = key.fileobj
            chunk = sock.recv(1 << 20)
            if not chunk:
                selector.unregister(sock)
                continue
            arrived = time.time()
            *events, buffers[sock] = (buffers[sock] + chunk).split(b"\n\n")
            for block in events:
                if block.startswith(b"data: "):
                    counts[sock.fileno()] += 1
                    data = orjson.loads(block[6:])
                    if data.get("last_event_age") is not None:
                        lags.append(arrived - (data["time"] - data["last_event_age"]))
    elapsed = time.monotonic() - started
    results.put({"per_second": [counts[sock.fileno()] / elapsed for sock in buffers], "lags": lags})
    for sock in buffers:
        sock.close()


def live_phase(  # pylint: disable=too-many-locals  # one figure each
    run: Run, paths: list[str], seconds: float
) -> dict[str, float]:
    """With a client following each of ``paths`` (none: no client): over
    ``seconds``, the exporter's CPU share of a core, its books' mean event
    lag (from its histogram) and its cycles' p99 (read every 0.25 s); then
    /metrics p50/p99 with 1 and 10 scrapers; and what the clients received."""
    context = multiprocessing.get_context("fork")
    results, stop = context.Queue(), context.Event()
    clients = context.Process(target=follow_books, args=(run.port, paths, stop, results)) if paths else None
    if clients:
        clients.start()
        time.sleep(2)  # every client connected and sent its first events
    before, cpu, started = run.metrics(), run.cpu_seconds(), time.monotonic()
    durations: dict[float, float] = {}
    while time.monotonic() - started < seconds:
        sample = run.metrics()
        durations[sample["binance_exporter_last_update_timestamp_seconds"]] = sample[
            "binance_exporter_update_duration_seconds"
        ]
        time.sleep(0.25)
    elapsed, after = time.monotonic() - started, run.metrics()
    lag = "binance_stream_event_lag_seconds"
    events = after[f"{lag}_count"] - before[f"{lag}_count"]
    result = {
        "cpu_percent_of_a_core": round(100 * (run.cpu_seconds() - cpu) / elapsed, 1),
        "event_lag_mean_ms": round(1000 * (after[f"{lag}_sum"] - before[f"{lag}_sum"]) / max(1.0, events), 2),
        "cycle_p99_ms": round(1000 * percentile(list(durations.values()), 0.99), 2),
        **scrape_stats(run),
    }
    if clients:
        stop.set()
        received = results.get(timeout=60)
        clients.join(timeout=30)
        result["clients"] = len(received["per_second"])
        result["events_per_client_per_second_min"] = round(min(received["per_second"]), 1)
        result["events_per_client_per_second_max"] = round(max(received["per_second"]), 1)
        result["event_to_page_p50_ms"] = round(1000 * percentile(received["lags"], 0.50), 2)
        result["event_to_page_p99_ms"] = round(1000 * percentile(received["lags"], 0.99), 2)
    return result


def live_view_run(latency: float) -> dict[str, float]:  # pylint: disable=too-many-locals  # two runs, two phases
    """The live view, the fake's books moving every 0.1 s (10 updates a
    second): at defaults (10 live books), with no live client and with 100
    clients on the 10 books' pages (10 on each); and with 100 live books
    (the top 50 of each list), with no client and with 100 clients each on
    a book of its own."""
    simulator = ["--weight-limit", "1000000", "--tick-seconds", "0.1"]
    exporter = ["--weight-budget", "1000000", "--update-interval", "1"]
    runs = {
        "": (exporter, simulator),
        "top100_": (["--top", "50", *exporter], ["--extra-symbols", "100", *simulator]),
    }
    result = {}
    for name, (exporter_args, simulator_args) in runs.items():
        run = Run(latency, exporter_args, simulator_args, stream=True)
        try:
            wait_for(lambda run=run: min(run.labelled("binance_order_book_in_sync") or [0.0]) == 1.0, timeout=120)
            samples = run.labelled_samples("binance_order_book_in_sync")
            books = sorted({labels.split('symbol="', 1)[1].split('"', 1)[0] for labels, _ in samples})
            paths = [f"/events/book/{books[i % len(books)]}" for i in range(LIVE_CLIENTS)]
            result[f"{name}books"] = len(books)
            for phase, clients in (("no_clients", []), ("100_clients", paths)):
                for key, value in live_phase(run, clients, LIVE_SECONDS).items():
                    result[f"{name}{phase}_{key}"] = value
        finally:
            run.close()
        added = result[f"{name}100_clients_cpu_percent_of_a_core"] - result[f"{name}no_clients_cpu_percent_of_a_core"]
        result[f"{name}100_clients_added_cpu_percent_of_a_core"] = round(added, 1)
        result[f"{name}cpu_percent_per_client"] = round(added / LIVE_CLIENTS, 3)
    return {f"live_{key}": value for key, value in result.items()}


RECORD_SECONDS = 20.0
RECORD_BATCH = 200  # lines a sync flush: what --record writes every 0.2 s at 1000 a second


def codec_costs(lines: list[bytes]) -> dict[str, float]:
    """For each way of compressing ``lines`` as --record writes them (in
    batches of ``RECORD_BATCH``, each ended by a flush that makes all of
    it readable): the compressed bytes per line and CPU microseconds per
    line, on one thread."""
    import zstandard  # pylint: disable=import-outside-toplevel  # measured here only

    def gzip_level(level: int) -> Callable[[], tuple[Callable[[bytes], bytes], Callable[[], bytes]]]:
        def make() -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
            compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
            return compressor.compress, lambda: compressor.flush(zlib.Z_SYNC_FLUSH)

        return make

    def zstd_level(level: int) -> Callable[[], tuple[Callable[[bytes], bytes], Callable[[], bytes]]]:
        def make() -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
            compressor = zstandard.ZstdCompressor(level=level).compressobj()
            return compressor.compress, lambda: compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

        return make

    codecs = {f"gzip_{n}": gzip_level(n) for n in (1, 6, 9)} | {f"zstd_{n}": zstd_level(n) for n in (3, 9)}
    result: dict[str, float] = {"raw_bytes_per_line": round(sum(map(len, lines)) / len(lines), 1)}
    for name, make in codecs.items():
        compress, flush = make()
        written, started = 0, time.process_time()
        for index, line in enumerate(lines, start=1):
            written += len(compress(line))
            if index % RECORD_BATCH == 0:
                written += len(flush())
        written += len(flush())
        cpu = time.process_time() - started
        result[f"{name}_bytes_per_line"] = round(written / len(lines), 1)
        result[f"{name}_us_per_line"] = round(1e6 * cpu / len(lines), 2)
    return result


def recording_run(latency: float) -> dict[str, float]:
    """Stream mode with 100 live books moving every 0.1 s (about 1000
    depth events a second), without and with --record: the exporter's
    CPU share of a core over ``RECORD_SECONDS``, the messages a second,
    and with --record the compressed bytes per line; then the codecs
    compared on the lines recorded."""
    simulator = ["--extra-symbols", "100", "--weight-limit", "1000000", "--tick-seconds", "0.1"]
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="record-") as directory:
        for name, extra in (("without", []), ("with", ["--record", directory])):
            run = Run(latency, ["--top", "50", "--weight-budget", "1000000", *extra], simulator, stream=True)
            try:
                wait_for(lambda run=run: min(run.labelled("binance_order_book_in_sync") or [0.0]) == 1.0, timeout=120)
                messages = sum(value for _, value in run.labelled_samples("binance_stream_messages_total"))
                cpu, started = run.cpu_seconds(), time.monotonic()
                time.sleep(RECORD_SECONDS)
                elapsed = time.monotonic() - started
                result[f"{name}_record_cpu_percent_of_a_core"] = round(100 * (run.cpu_seconds() - cpu) / elapsed, 1)
                received = sum(value for _, value in run.labelled_samples("binance_stream_messages_total"))
                result[f"{name}_record_messages_per_second"] = round((received - messages) / elapsed)
            finally:
                run.close()
        lines = [
            json.dumps(line, separators=(",", ":")).encode() + b"\n"
            for path in sorted(Path(directory).iterdir())
            for line in read_recording(path)
        ]
        result["recorded_lines"] = len(lines)
        written = sum(path.stat().st_size for path in Path(directory).iterdir())
        result["recorded_bytes_per_line"] = round(written / len(lines), 1)
    added = result["with_record_cpu_percent_of_a_core"] - result["without_record_cpu_percent_of_a_core"]
    result["added_cpu_percent_per_1000_messages_a_second"] = round(
        1000 * added / result["with_record_messages_per_second"], 1
    )
    result.update(codec_costs(lines))
    return {f"record_{key}": value for key, value in result.items()}



# The replay: a recording of the demo's market (`make demo`: the fake
# Binance at its defaults, the exporter in stream mode at --update-interval 8
# --rank-interval 30), its answers computed offline, and served again fast.
DEMO_EXPORTER_ARGS = ("--update-interval", "8", "--rank-interval", "30")
REPLAY_SPEED = 50.0
REPLAY_RECORD_SECONDS = 120.0
REPLAY_ENDED = "the recording ends here"
REPLAY_URLS = re.compile(r"streaming on (\S+), listening on (\S+)")
# The report's own figure, its process's start and imports left out.
REPORT_LOGGED = re.compile(r"\(([0-9.]+|inf) times real time\)")


def stopped(process: Optional[subprocess.Popen], timeout: float = 10.0) -> None:
    """Stops ``process`` (SIGTERM, then SIGKILL after ``timeout``) if it runs."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) process ``pid`` has used."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def demo_recording(directory: Path, seconds: float) -> str:
    """Runs the demo (the fake Binance at its defaults, the exporter
    against it with ``DEMO_EXPORTER_ARGS``) with ``--record directory
    --format json`` for ``seconds``; the whole lines the exporter printed."""
    output = directory / "exporter.out"
    recording = directory / "recording"
    simulator = exporter = None
    try:
        simulator = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped in finally
            [sys.executable, "-m", "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        base_url, stream_url = simulator_urls(simulator.stdout.readline())
        with open(output, "wb") as out, open(directory / "exporter.err", "wb") as err:
            exporter = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped in finally
                [sys.executable, *EXPORTER, "--port", str(free_port()), "--address", "127.0.0.1"]
                + ["--base-url", base_url, "--stream-url", stream_url, *DEMO_EXPORTER_ARGS]
                + ["--record", str(recording), "--format", "json"],
                cwd=ROOT,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if exporter.poll() is not None or simulator.poll() is not None:
                raise RuntimeError(f"the demo stopped while recording: see {directory}/exporter.err")
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    finally:
        stopped(exporter)
        stopped(simulator)
    printed = output.read_text(encoding="utf-8")
    return printed[: printed.rfind("\n") + 1]  # a line cut by the stop is not compared


@dataclass
class RecordingFacts:
    """What the replay's figures need of a recording: its lines with a
    time, the first and last of those times, and the recorded time of
    each depth event by (symbol, last update id), with their streams."""

    lines: int = 0
    first: float = 0.0
    last: float = 0.0
    depth_times: dict[tuple[str, int], float] = field(default_factory=dict)
    depth_streams: set[str] = field(default_factory=set)


def recording_facts(directory: str) -> RecordingFacts:
    """Reads the recording in ``directory`` once (``read_recordings``)."""
    facts = RecordingFacts()
    for line in read_recordings([directory]):
        when = line.get("t")
        if when is None:
            continue  # a header
        if not facts.lines:
            facts.first = when
        facts.lines, facts.last = facts.lines + 1, when
        if "ws" not in line or '"depthUpdate"' not in line["msg"]:
            continue
        message = orjson.loads(line["msg"])
        payload = message.get("data", message) if isinstance(message, dict) else None
        if isinstance(payload, dict) and payload.get("e") == "depthUpdate":
            facts.depth_times.setdefault((payload["s"], payload["u"]), when)
            facts.depth_streams.add(streams.depth_stream(payload["s"]))
    return facts


def timed_report(directory: str) -> dict[str, Any]:
    """``python -m binance_exporter.replay --report directory --format
    json``: its stdout, exit status, wall seconds and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    report = subprocess.run(
        [sys.executable, "-m", "binance_exporter.replay", "--report", directory, "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    logged = REPORT_LOGGED.search(report.stderr)
    return {
        "stdout": report.stdout,
        "status": report.returncode,
        "seconds": seconds,
        "cpu": cpu,
        "logged": float(logged.group(1)) if logged else math.nan,
    }


async def depth_receipts(
    stream_url: str, names: list[str], ended: threading.Event, deadline: float
) -> list[tuple[float, str, int]]:
    """Subscribed to the streams ``names`` (by the URL, as a combined
    stream): (receive time, symbol, u) of each depthUpdate, until a second
    after ``ended`` is set, or ``deadline`` (monotonic)."""
    url = stream_url + "/stream?streams=" + "/".join(names)
    while True:  # the replay lists the symbols from its first lines: a refusal before is retried
        try:
            ws = await connect(url, max_size=None, open_timeout=5, ping_interval=None)
            break
        except (OSError, InvalidStatus):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    receipts = []
    stop_at = deadline
    async with ws:
        while (left := stop_at - time.monotonic()) > 0:
            if ended.is_set():
                stop_at = min(stop_at, time.monotonic() + 1.0)
            try:
                frame = await asyncio.wait_for(ws.recv(), min(left, 0.2))
            except TimeoutError:
                continue
            arrived = time.time()
            data = orjson.loads(frame).get("data", {})
            if data.get("e") == "depthUpdate":
                receipts.append((arrived, data["s"], data["u"]))
    return receipts


def schedule_stats(
    receipts: list[tuple[float, str, int]], facts: RecordingFacts, speed: float, marks: dict[str, float]
) -> dict[str, float]:
    """The figures of ``served_replay`` from what its client received and
    the server's ``marks`` (when it listened and when it logged the end,
    with its CPU seconds at each). The replay's start is taken as the
    earliest of its listening and of each event's arrival less its due
    offset, so that lags are measured from the best case, never below 0."""
    recorded = facts.last - facts.first
    due = [facts.depth_times.get((symbol, u)) for _, symbol, u in receipts]
    offsets = [arrived - (when - facts.first) / speed for (arrived, _, _), when in zip(receipts, due) if when]
    start = min([marks["listening"], *offsets])
    lags = [1000 * (offset - start) for offset in offsets] or [math.nan]
    took = marks["ended"] - start
    return {
        "speed_50_depth_streams": len(facts.depth_streams),
        "speed_50_events_received": len(receipts),
        "speed_50_events_unmatched": len(receipts) - len(offsets),
        "speed_50_events_per_second": round(len(receipts) / took, 1),
        "speed_50_p50_schedule_lag_ms": round(percentile(lags, 0.50), 1),
        "speed_50_p99_schedule_lag_ms": round(percentile(lags, 0.99), 1),
        "speed_50_max_schedule_lag_ms": round(max(lags), 1),
        "speed_50_server_cpu_percent_of_a_core": round(
            100 * (marks["cpu_at_end"] - marks["cpu_at_start"]) / (marks["ended"] - marks["listening"]), 1
        ),
        "speed_50_served_seconds": round(took, 2),
        "speed_50_due_seconds": round(recorded / speed, 2),
    }


class ReplayServer:
    """``python -m binance_exporter.replay directory --speed speed`` on
    free ports, started: its URLs; when it started listening and when it
    logged the end of the recording (``marks``: "listening", "ended"),
    with its CPU seconds at each ("cpu_at_start", "cpu_at_end"); ``ended``
    is set at the end. ``close()`` stops it."""

    def __init__(self, directory: str, speed: float):
        self.ended = threading.Event()
        self.marks: dict[str, float] = {}
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by close()
            [sys.executable, "-m", "binance_exporter.replay", directory, "--speed", f"{speed:g}"]
            + ["--port", "0", "--stream-port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.watcher: Optional[threading.Thread] = None
        try:
            first_line = self.process.stdout.readline()
            self.marks["listening"], self.marks["cpu_at_start"] = time.time(), self.cpu_seconds()
            urls = REPLAY_URLS.search(first_line)
            if urls is None:
                raise RuntimeError(f"the replay did not start: {first_line!r} {self.process.stderr.read()[-2000:]}")
            self.stream_url, self.url = urls.group(1), urls.group(2)
            self.watcher = threading.Thread(target=self._watch, daemon=True)
            self.watcher.start()
        except BaseException:
            self.close()
            raise

    def cpu_seconds(self) -> float:
        """CPU time the server has used."""
        return process_cpu_seconds(self.process.pid)

    def _watch(self) -> None:
        for line in self.process.stderr:
            if REPLAY_ENDED in line and not self.ended.is_set():
                self.marks["ended"], self.marks["cpu_at_end"] = time.time(), self.cpu_seconds()
                self.ended.set()

    def wait_for_end(self, timeout: float) -> None:
        """Polls until the server logs the end of the recording; RuntimeError after ``timeout``."""
        if not self.ended.wait(timeout):
            raise RuntimeError(f"the replay did not reach the end of the recording in {timeout:.0f} s")

    def freeze(self, frozen: bool) -> None:
        """Holds replay time still (``POST /sim/market``), or lets it run on."""
        request = urllib.request.Request(
            self.url + "/sim/market", data=json.dumps({"frozen": frozen}).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()

    def close(self) -> None:
        """Stops the server, its stderr read to its end."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.watcher is not None:
            self.watcher.join(timeout=10)
        stopped(self.process)


def served_replay(directory: str, facts: RecordingFacts, speed: float) -> dict[str, float]:
    """``python -m binance_exporter.replay directory --speed speed``, read
    by a websocket client subscribed to every depth stream the recording
    carries: for each depthUpdate received, its schedule lag (the time it
    arrived less the time it was due: the replay's start plus its last
    merged event's recorded time from the first line, divided by
    ``speed``); the events received a second; the server's CPU share of
    a core; the real seconds it took to serve the whole recording."""
    timeout = (facts.last - facts.first) / speed + 120
    server = ReplayServer(directory, speed)
    try:
        receipts = asyncio.run(
            depth_receipts(server.stream_url, sorted(facts.depth_streams), server.ended, time.monotonic() + timeout)
        )
        server.wait_for_end(0)
    finally:
        server.close()
    return schedule_stats(receipts, facts, speed, server.marks)


def exporter_samples(port: int, name: str) -> list[tuple[str, float]]:
    """Every labelled sample of metric ``name`` on the exporter's /metrics at ``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        page = answer.read().decode()
    samples = [line.rsplit(" ", 1) for line in page.splitlines() if line.startswith(name + "{")]
    return [(labels[len(name) :], float(value)) for labels, value in samples]


def replayed_exporter(directory: str, facts: RecordingFacts, speed: float) -> dict[str, float]:
    """The unchanged exporter (stream mode, ``--update-interval 0.5``)
    against the replay server at ``speed``, started while replay time is
    held at its start and let run once the exporter answers: at the end
    of the recording, its books and those in sync, and its books' resyncs."""
    timeout = (facts.last - facts.first) / speed + 120
    server = ReplayServer(directory, speed)
    exporter = None
    port = free_port()
    try:
        server.freeze(True)
        exporter = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped in finally
            [sys.executable, *EXPORTER, "--port", str(port), "--address", "127.0.0.1", "--loglevel", "ERROR"]
            + ["--base-url", server.url, "--stream-url", server.stream_url, "--update-interval", "0.5"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: exporter_samples(port, "binance_order_book_in_sync"), timeout=60)
        server.freeze(False)
        server.wait_for_end(timeout)
        time.sleep(1.0)  # the last tick's events applied
        books = exporter_samples(port, "binance_order_book_in_sync")
        resyncs = exporter_samples(port, "binance_order_book_resyncs_total")
    finally:
        stopped(exporter)
        server.close()
    return {
        "exporter_books": len(books),
        "exporter_books_in_sync_at_end": int(sum(value for _, value in books)),
        "exporter_resyncs": int(sum(value for _, value in resyncs)),
    }


def replay_run(recording: Optional[str], record_seconds: float) -> dict[str, float]:
    """A recording of the demo's market (``recording``, or one made now
    for ``record_seconds``): the offline report's speed against real
    time, and, with a recording made here, whether it prints what the
    recorded exporter printed; then the replay server at speed 50 (see
    ``served_replay``), and the unchanged exporter against it (see
    ``replayed_exporter``)."""
    result: dict[str, float] = {"load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="replay-") as temporary:
        live = None
        if recording is None:
            live = demo_recording(Path(temporary), record_seconds)
            recording = str(Path(temporary) / "recording")
        facts = recording_facts(recording)
        recorded = facts.last - facts.first
        report = timed_report(recording)
        result.update(
            {
                "recorded_seconds": round(recorded, 1),
                "recorded_lines": facts.lines,
                "report_seconds": round(report["seconds"], 3),
                "report_cpu_seconds": round(report["cpu"], 3),
                "report_exit_status": report["status"],
                "report_times_real_time": round(recorded / report["seconds"], 1),
                "report_logged_times_real_time": report["logged"],
                "report_lines_per_second": round(facts.lines / report["seconds"]),
            }
        )
        if live is not None:
            result["live_printed_lines"] = live.count("\n")
            result["report_printed_lines"] = report["stdout"].count("\n")
            result["report_identical"] = int(bool(live) and report["stdout"][: len(live)] == live)
        result.update(served_replay(recording, facts, REPLAY_SPEED))
        result.update(replayed_exporter(recording, facts, REPLAY_SPEED))
    return {f"replay_{key}": value for key, value in result.items()}


def missed_targets(results: dict[str, Any], latency: float) -> list[str]:
    """The targets the results miss, each as a sentence; a target whose
    figure was not measured (a section not run) is not checked."""
    ceilings = [
        ("cycle_p50_ms", 1000 * (1.5 * latency) + 20, "cycle p50 <= 1.5 x round trip + 20 ms"),
        ("weight_per_minute", 900, "weight <= 900 per minute at defaults"),
        ("metrics_p99_ms_10_scrapers", 10, "/metrics p99 <= 10 ms with 10 scrapers at defaults"),
        ("top100_metrics_p99_ms_10_scrapers", 50, "/metrics p99 <= 50 ms with 10 scrapers at top 100"),
        ("top100_gzip_body_percent_of_plain", 20, "gzip body <= 1/5 of the plain body at top 100, in %"),
        ("top100_gzip_kept_metrics_p99_ms_10_scrapers", 50, "/metrics p99 <= 50 ms with 10 scrapers, gzip"),
        ("top100_tls_gzip_kept_metrics_p99_ms_10_scrapers", 50, "/metrics p99 <= 50 ms with 10 scrapers, TLS"),
        ("rss_mb_after_1000_cycles", 60, "resident memory <= 60 MB"),
        ("stream_steady_weight_per_minute", 30, "stream mode: steady weight <= 30 per minute at defaults"),
        (
            "stream_update_1s_steady_weight_per_minute",
            30,
            "stream mode: steady weight <= 30 per minute at --update-interval 1",
        ),
        ("stream_rss_mb_after_warm_up", 80, "stream mode: resident memory <= 80 MB at defaults"),
        ("event_to_book_p99_ms", 5, "event-to-book p99 <= 5 ms with 100 books"),
        ("stream_top100_metrics_p99_ms_10_scrapers", 25, "stream mode: /metrics p99 <= 25 ms with 100 live books"),
        ("stream_binance_violations", 0, "stream mode: no Binance limit broken"),
        ("stream_update_1s_binance_violations", 0, "stream mode: no Binance limit broken at --update-interval 1"),
        ("live_100_clients_added_cpu_percent_of_a_core", 10, "live view: 100 clients cost <= 10 % of a core"),
        (
            "record_added_cpu_percent_per_1000_messages_a_second",
            10,
            "--record adds <= 10 % of a core at 1000 events a second",
        ),
        (
            "live_100_clients_metrics_p99_ms_10_scrapers",
            25,
            "live view: /metrics p99 <= 25 ms with 10 scrapers and 100 clients",
        ),
    ]
    ceilings.append(
        ("replay_speed_50_p99_schedule_lag_ms", 500, "the replay keeps up at --speed 50: schedule lag p99 <= 500 ms")
    )
    floors = [
        ("book_events_per_second", 30_000, "book maintenance >= 30000 events/s on one core"),
        ("replay_report_times_real_time", 100, "the offline report runs >= 100 times real time"),
    ]
    missed = [f"{text}: {results[key]}" for key, limit, text in ceilings if key in results and results[key] > limit]
    missed += [f"{text}: {results[key]}" for key, limit, text in floors if key in results and results[key] < limit]
    failures = {key: value for key, value in results.items() if key.endswith("_failed_scrapes") and value}
    missed += [f"every scrape answered: {key} {value}" for key, value in failures.items()]
    if "rss_mb_after_1000_cycles" in results:
        growth = results["rss_mb_after_1000_cycles"] - results["rss_mb_before_1000_cycles"]
        if growth > 2:
            missed.append(f"no memory growth over 1000 cycles: grew {growth:.1f} MB")
    if results.get("replay_report_identical", 1) != 1:
        missed.append("the offline report prints what the recorded exporter printed: it does not")
    if results.get("latency_books_in_sync_at_end", LATENCY_BOOKS) < results.get("latency_books", LATENCY_BOOKS):
        missed.append(f"every book in sync to the end of the latency run: {results['latency_books_in_sync_at_end']}")
    return missed


def print_table(rows: list[dict[str, Any]]) -> None:
    """Prints ``rows`` (dicts with the same keys) as an aligned table."""
    columns = list(rows[0])
    cells = [[str(row[column]) if row[column] is not None else "-" for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    for line in [columns, *cells]:
        print("  ".join([line[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(line[1:], widths[1:]))]))


SECTIONS = ("rest", "stream", "live", "record", "replay")


def main() -> int:
    """Runs the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="injected delay per request, s (default: 0.05)")
    parser.add_argument("--minute", type=float, default=60.0, help="length of the defaults runs, s (default: 60)")
    parser.add_argument("--cycles", type=int, default=1000, help="fast cycles to run (default: 1000)")
    parser.add_argument(
        "--latency-seconds", type=float, default=30.0, help="length of the event-to-book latency run, s (default: 30)"
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        help="run one section: rest (runs 1-4), stream (runs 5-9), live (run 10), record (run 11) or replay (run 12)",
    )
    parser.add_argument(
        "--recording", metavar="DIR", help="replay: a recording of the demo's market to use (default: make one)"
    )
    parser.add_argument(
        "--replay-record-seconds",
        type=float,
        default=REPLAY_RECORD_SECONDS,
        help="replay: how long to record the demo's market when no --recording is given, s (default: 120)",
    )
    parser.add_argument("--json", default=str(ROOT / "bench/results/latest.json"), help="where to write the results")
    args = parser.parse_args()
    if (
        not 0 < args.latency <= 1
        or args.minute < 10
        or args.cycles < 10
        or args.latency_seconds < 5
        or args.replay_record_seconds < 10
    ):
        parser.error(
            "--latency must be from 0 to 1 s, --minute at least 10, --cycles at least 10, "
            "--latency-seconds at least 5 and --replay-record-seconds at least 10"
        )
    if args.recording is not None and not Path(args.recording).is_dir():
        parser.error(f"--recording: {args.recording} is not a directory")
    sections = (args.only,) if args.only else SECTIONS
    results: dict[str, Any] = {"latency_ms": 1000 * args.latency}
    tables: dict[str, list[dict[str, Any]]] = {}
    if "rest" in sections:
        results.update(defaults_run(args.latency, args.minute))
        results.update(fast_run(args.latency, args.cycles))
        results.update(top_100_run(args.latency))
        results.update(secure_run(args.latency))
    if "stream" in sections:
        results.update(stream_run(args.latency, args.minute, "stream", []))
        results.update(stream_run(args.latency, args.minute, "stream_update_1s", ["--update-interval", "1"]))
        results.update(stream_top_100_run(args.latency))
        maintained, tables = book_maintenance(BENCH_EVENTS)
        results.update(maintained)
        results.update(latency_run(args.latency_seconds))
    if "live" in sections:
        results.update(live_view_run(args.latency))
    if "record" in sections:
        results.update(recording_run(args.latency))
    if "replay" in sections:
        results.update(replay_run(args.recording, args.replay_record_seconds))
    missed = missed_targets(results, args.latency)
    width = max(len(key) for key in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    for name, rows in tables.items():
        print(f"\n{name} (events per second, one thread; frames of 5 bids and 5 asks, a 1000-level book):")
        print_table(rows)
    print("\n".join(["targets missed:", *missed]) if missed else "all targets met")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({**results, **tables, "missed": missed}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
