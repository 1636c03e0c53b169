# pylint: disable=too-many-lines  # the REST runs and the stream section, printed as one table
"""Benchmark of the real exporter process against the fake Binance, with
an injected network delay on every request: cycle latency, Binance request
weight, /metrics latency, memory and CPU, in REST and in stream mode; and
the cost of keeping order books from the streams.

    python bench/bench.py [--latency 0.05] [--only rest|stream|live|record|replay|whole-market]
        [--recording DIR] [--replay-record-seconds 120] [--whole-market-seconds 60]
        [--json bench/results/latest.json]

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

The whole market's section (the fake Binance with --whole-market: about
1,500 TRADING symbols, skewed rates; the exporter with --symbols all, both
real processes, measured from outside: /metrics read as Prometheus reads it,
/proc, the fake's /sim/stats):

13. at the market's own pace, --weight-budget 4000: the seconds from the
    exporter's start until every TRADING symbol has a best bid on /metrics
    (its top, from <symbol>@bookTicker) and until 50, 90, 99 and 100 % of
    the books are in sync, with a row of progress a minute; the weight and
    the requests that took (the snapshots by limit as their weight tells);
    the resident memory then, above the process's own when it first
    answered, per level and per book; over --whole-market-seconds (60)
    the CPU share of a core and the messages a second by stream; then
    /metrics with 1 and 10 scrapers keeping their connections, each asking
    for OpenMetrics and gzip as Prometheus does, back to back for 10 and
    30 s, then 10 scraping once a second each for 30 s (the moments
    Prometheus's scrapes fall on, evenly): p50/p99/max, the series, the
    body raw and compressed. Then the
    whole market at its peak (--peak: every TRADING book changes at every
    step, 10 a second), for shards 1/15, 1/3 and the whole (about 100,
    500 and 1,500 books), each taken in sync at once with no weight limit:
    over --whole-market-seconds the exporter's CPU and the fake's, the
    messages a second, the CPU per 1,000 depth events a second, the books'
    mean event lag, then the memory: the cost as the books grow.

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
import itertools
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
from binance_exporter.binance.rest_client import DEPTH_WEIGHTS, WEIGHTS
from binance_exporter.binance.responses import (
    parse_agg_trade_event,
    parse_agg_trades,
    parse_depth_event,
    parse_depth_snapshot,
)
from binance_exporter.binance.trade_sync import TradeSync
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import BOOK_DEPTH, side_notional
from binance_exporter.market.microstructure import AggTrade, microstructure
from binance_exporter.market.order_book import LocalBook
from binance_exporter.market.units import to_units

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


def in_threads(work: Callable[[], list[Any]], count: int, timeout: Optional[float] = None) -> list[Any]:
    """What ``count`` threads running ``work`` at once returned, all
    together (a thread that raised, or is still running after ``timeout``
    s, gives nothing)."""
    done: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        mine = work()
        with lock:
            done.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    with lock:
        return list(done)


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
        headers = self.headers(compressed)

        def scrape() -> list[Scrape]:
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
            return mine

        done = in_threads(scrape, scrapers)
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
        responses._EVENT_UNITS.clear()  # pylint: disable=protected-access  # each trial starts cold
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

    name = "two sorted lists, int 1e-8 units (current)"

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
    """Levels as ``parse_depth_event`` gives them (1e-8 units), each side a ``SortOnReadSide``."""

    name = "dict + sort on read, int 1e-8 units"
    side: type = SortOnReadSide

    def __init__(self, data: dict[str, Any]):  # pylint: disable=super-init-not-called  # a book of its own
        snapshot = parse_depth_snapshot(BENCH_SYMBOL, data, SNAPSHOT_LIMIT)
        self.bids, self.asks = (
            self.side(is_bid, ((to_units(price), to_units(qty)) for price, qty in levels))
            for is_bid, levels in ((True, snapshot.bids), (False, snapshot.asks))
        )

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
    responses._EVENT_UNITS.clear()  # pylint: disable=protected-access  # cold, as in maintained_rate
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
    """Microseconds for what the cycle does per live book of 1000 levels:
    read it (a copy of its levels out to the widest depth band), then its
    microstructure (mid, micro price, 12 depth bands, 3 imbalances) and Q3's
    notional of each side."""
    sync = synced_book(data)
    assert sync.book is not None
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        view = sync.book.view(BOOK_DEPTH)
        microstructure(view)
        side_notional(view.bids, "bid")
        side_notional(view.asks, "ask")
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


# The whole market: the exporter with --symbols all against the fake
# Binance's --whole-market (about 1,500 TRADING symbols, skewed rates; with
# --peak every TRADING book changes at every step), measured from outside.
# Prometheus 3's Accept header: every read of /metrics here asks as it does
# (OpenMetrics, gzip), the one format the exporter renders at each publish,
# so that reading costs it no rendering of its own.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_HEADERS = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
WHOLE_MARKET_BUDGET = 4000  # 1,500 first snapshots at weight 25 in about 9 minutes
# The peak runs take their books in at once (the fake and the exporter
# without a weight limit): what they measure is the books' upkeep.
UNLIMITED_WEIGHT = 1_000_000
WHOLE_MARKET_SHARDS = ("1/15", "1/3", "1/1")  # about 100, 500 and 1,500 books
WHOLE_MARKET_SCRAPERS = 10
WHOLE_MARKET_SCRAPE_SECONDS = 30.0
PEAK_DEPTH_EVENTS = 15_000  # a second: the whole market's diff streams at their peak
SIMULATOR_START_TIMEOUT = 180.0  # the fake makes every book before it answers
FIRST_ANSWER_TIMEOUT = 60.0
TOPS_TIMEOUT = 120.0
SYNC_TIMEOUT = 1200.0  # twice the target
PEAK_SYNC_TIMEOUT = 600.0
PUBLISH_TIMEOUT = 60.0  # for the exporter's next snapshot (one every --update-interval: 10 s)
PROGRESS_SECONDS = 60.0  # between two rows of the sync's progress table
STREAM_KINDS = ("depth", "trade", "top", "ticker")
STREAMS_PART = b"\nbinance_stream_connections "  # on a page of a snapshot with the streams' part
STRAGGLERS = 5  # the last books to come in sync, named
LOG_TAIL = 2000  # characters of a process's log quoted when it fails


@functools.lru_cache(maxsize=None)
def _sample_pattern(name: str) -> re.Pattern[bytes]:
    return re.compile(rb"^" + re.escape(name.encode()) + rb"(\{[^}]*\})? (\S+)", re.MULTILINE)


def page_samples(page: bytes, name: str) -> dict[str, float]:
    """The samples of metric ``name`` on an exposition ``page``, each by
    its labels as written (``{symbol="BTCUSDT"}``; empty for none)."""
    return {labels.decode(): float(value) for labels, value in _sample_pattern(name).findall(page)}


def page_value(page: bytes, name: str) -> float:
    """The value of the unlabelled sample ``name`` on ``page`` (0 if it has none)."""
    return page_samples(page, name).get("", 0.0)


def symbol_values(page: bytes, name: str) -> dict[str, float]:
    """The samples of metric ``name`` on ``page`` by their ``symbol`` label, summed over the other labels."""
    values: Counter = Counter()
    for labels, value in page_samples(page, name).items():
        values[labels.split('symbol="', 1)[1].split('"', 1)[0]] += value
    return dict(values)


def shard_symbols(listed: list[dict[str, Any]], shard: str) -> list[str]:
    """The TRADING symbols of exchange info's ``listed`` that shard ``K/N``
    keeps: those whose CRC-32, modulo N, is K - 1 (as ``--shard`` splits them)."""
    index, count = map(int, shard.split("/"))
    names = (entry["symbol"] for entry in listed if entry["status"] == "TRADING")
    return sorted(name for name in names if zlib.crc32(name.encode()) % count == index - 1)


def process_memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of process ``pid`` now (``VmRSS``) and at its highest (``VmHWM``), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {name: int(fields[name].split()[0]) * 1024 / 1e6 for name in ("VmRSS", "VmHWM")}


@dataclass(frozen=True)
class Publish:
    """The exporter's /metrics when a new snapshot first showed on it, and
    the processes' CPU seconds at that moment (``at``: time.monotonic())."""

    at: float
    page: bytes
    cpu: float
    simulator_cpu: float

    def messages(self) -> dict[str, float]:
        """Messages the exporter has received by stream, as the snapshot counts them."""
        return {
            labels.split('stream="', 1)[1].split('"', 1)[0]: value
            for labels, value in page_samples(self.page, "binance_stream_messages_total").items()
        }


class WholeMarketRun:
    """The fake Binance serving the whole market (``--whole-market``; with
    ``peak``, ``--peak``) and an exporter keeping a live book of every
    TRADING symbol of ``shard`` (``--symbols all --shard``), each its own
    process, their logs and the exporter's state in ``directory``. Measured
    from outside: the exporter's /metrics as Prometheus scrapes it, /proc,
    and the fake's /sim/stats. ``started`` is the exporter's start
    (time.monotonic()); ``baseline_mb`` its resident memory when /metrics
    first answered, before any book, at ``first_answer`` seconds."""

    def __init__(  # pylint: disable=too-many-arguments  # one knob each
        self, directory: Path, latency: float, shard: str, budget: int, peak: bool
    ):
        directory.mkdir(parents=True)
        self.directory = directory
        self.simulator: Optional[subprocess.Popen] = None
        self.exporter: Optional[subprocess.Popen] = None
        self.pages: Counter = Counter()  # read, "whole" or "partial"
        try:
            self._start_simulator(latency, peak, UNLIMITED_WEIGHT if budget >= UNLIMITED_WEIGHT else None)
            with urllib.request.urlopen(self.binance + "/api/v3/exchangeInfo", timeout=30) as answer:
                self.trading = shard_symbols(json.loads(answer.read())["symbols"], shard)
            self.stats_before = self.binance_stats()  # the exchange info just read is not the exporter's
            self.port = free_port()
            self.started = time.monotonic()
            with open(directory / "exporter.log", "wb") as log:
                self.exporter = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by close()
                    [sys.executable, *EXPORTER, "--port", str(self.port), "--address", "127.0.0.1"]
                    + ["--base-url", self.binance, "--stream-url", self.stream_url, "--source", "stream"]
                    + ["--symbols", "all", "--shard", shard, "--weight-budget", str(budget)]
                    + ["--state-dir", str(directory / "state"), "--loglevel", "WARNING"],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            self.wait(self._answered, FIRST_ANSWER_TIMEOUT, "the exporter's first answer", interval=0.1)
            self.first_answer = round(time.monotonic() - self.started, 2)
            self.baseline_mb = process_memory_mb(self.exporter.pid)["VmRSS"]
        except BaseException:
            self.close()
            raise

    def _start_simulator(self, latency: float, peak: bool, weight_limit: Optional[int]) -> None:
        with open(self.directory / "simulator.log", "wb") as log:
            self.simulator = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by close()
                [sys.executable, "-m", "binance_exporter.fake.simulator", "--whole-market", *(["--peak"] * peak)]
                + ["--port", "0", "--stream-port", "0", "--latency", str(latency)]
                + (["--weight-limit", str(weight_limit)] if weight_limit else []),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        with selectors.DefaultSelector() as selector:
            selector.register(self.simulator.stdout, selectors.EVENT_READ)
            line = self.simulator.stdout.readline() if selector.select(SIMULATOR_START_TIMEOUT) else ""
        if "listening on" not in line:
            raise RuntimeError(f"the fake Binance did not start within {SIMULATOR_START_TIMEOUT} s{self.logs()}")
        self.binance, self.stream_url = simulator_urls(line)

    def _answered(self) -> bool:
        try:
            self._read_page()
        except (OSError, http.client.HTTPException, ScrapeError):
            return False
        return True

    def logs(self) -> str:
        """The end of each process's log, to say why something failed."""
        tails = []
        for name in ("simulator", "exporter"):
            path = self.directory / f"{name}.log"
            if path.exists():
                tail = path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL:]
                tails.append(f"\n--- the end of the {name}'s log:\n{tail or '(empty)'}")
        return "".join(tails)

    def check_running(self) -> None:
        """Raises ``RuntimeError`` if either process has stopped."""
        for name, process in (("fake Binance", self.simulator), ("exporter", self.exporter)):
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the {name} stopped, exit status {process.returncode}{self.logs()}")

    def wait(self, condition: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
        """Polls ``condition`` until it returns something truthy, and returns
        that; raises ``RuntimeError`` after ``timeout`` s or if a process stops."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {timeout:.0f} s{self.logs()}")
            time.sleep(interval)

    def page(self) -> bytes:
        """The exporter's /metrics as Prometheus asks for it, uncompressed,
        with the streams' part: once the exporter has shown one, a page
        without it is counted in ``pages["partial"]`` and read again (the
        update cycle makes its snapshot current before it adds the
        streams' part, the books' states and the stream counters)."""
        deadline = time.monotonic() + PUBLISH_TIMEOUT
        while True:
            page = self._read_page()
            if STREAMS_PART in page:
                self.pages["whole"] += 1
                return page
            if not self.pages["whole"] or time.monotonic() > deadline:
                return page  # before the first cycle's streams: the page as it is
            self.pages["partial"] += 1
            time.sleep(0.05)

    def _read_page(self) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
            response = connection.getresponse()
            return checked_body(response, response.read(), compressed=True)
        finally:
            connection.close()

    def tops(self, page: bytes) -> int:
        """How many of the shard's TRADING symbols have a best bid on ``page``."""
        return len(set(self.trading).intersection(symbol_values(page, "binance_best_bid_price")))

    def out_of_sync(self, page: bytes) -> list[str]:
        """The shard's TRADING symbols whose book ``page`` does not show in sync."""
        in_sync = symbol_values(page, "binance_order_book_in_sync")
        return [symbol for symbol in self.trading if in_sync.get(symbol) != 1.0]

    def in_sync(self, page: bytes) -> int:
        """How many of the shard's TRADING symbols ``page`` shows in sync."""
        wanted = set(self.trading)
        return sum(value == 1.0 for symbol, value in symbol_values(page, "binance_order_book_in_sync").items()
                   if symbol in wanted)  # fmt: skip

    def cpu_seconds(self) -> float:
        """CPU time the exporter has used."""
        assert self.exporter is not None
        return process_cpu_seconds(self.exporter.pid)

    def simulator_cpu_seconds(self) -> float:
        """CPU time the fake Binance has used."""
        assert self.simulator is not None
        return process_cpu_seconds(self.simulator.pid)

    def memory_mb(self) -> dict[str, float]:
        """The exporter's resident memory now and at its highest, in MB."""
        assert self.exporter is not None
        return process_memory_mb(self.exporter.pid)

    def binance_stats(self) -> dict[str, Any]:
        """The fake Binance's counts so far (``GET /sim/stats``, which costs no weight)."""
        with urllib.request.urlopen(self.binance + "/sim/stats", timeout=10) as response:
            return json.loads(response.read())

    def next_publish(self) -> Publish:
        """Waits for the exporter's next snapshot (the streams' counters on
        /metrics change), polling every 0.2 s."""
        counters = page_samples(self.page(), "binance_stream_messages_total")

        def published() -> Optional[Publish]:
            page = self.page()
            if page_samples(page, "binance_stream_messages_total") == counters:
                return None
            return Publish(time.monotonic(), page, self.cpu_seconds(), self.simulator_cpu_seconds())

        return self.wait(published, PUBLISH_TIMEOUT, "a new snapshot on /metrics", interval=0.2)

    def close(self) -> None:
        """Stops both processes."""
        stopped(self.exporter)
        stopped(self.simulator)


def progress_row(run: WholeMarketRun, page: bytes, elapsed: float, since: tuple[float, float]) -> dict[str, Any]:
    """A row of the sync's progress table at ``elapsed`` seconds, ``page``
    read then; the exporter's CPU is that since ``since`` (seconds, CPU seconds)."""
    stats = run.binance_stats()
    return {
        "seconds": round(elapsed),
        "symbols_with_a_top": run.tops(page),
        "books_in_sync": run.in_sync(page),
        "snapshots": stats["requests"].get("/api/v3/depth", 0),
        "weight": stats["weight_total"] - run.stats_before["weight_total"],
        "exporter_cpu_percent": round(100 * (run.cpu_seconds() - since[1]) / max(1e-9, elapsed - since[0]), 1),
        "rss_mb": round(run.memory_mb()["VmRSS"], 1),
    }


def followed_sync(  # pylint: disable=too-many-locals  # one figure each
    run: WholeMarketRun, timeout: float
) -> tuple[dict[str, Any], list[dict[str, Any]], bytes]:
    """Follows the exporter from its start until every TRADING symbol of
    its shard has a top (``binance_best_bid_price``) and then its book in
    sync, or ``timeout``: the seconds from the start until the tops and
    until 50, 90, 99 and 100 % of the books were first shown in sync; the
    last few books to be (``STRAGGLERS``); the highest
    ``binance_exporter_api_weight_used``; a row of progress a minute; and
    the last page read. A figure not reached is None."""
    marks = {percent: math.ceil(len(run.trading) * percent / 100) for percent in (50, 90, 99, 100)}
    stragglers: list[str] = []
    reached: dict[str, float] = {}
    weight_used = 0.0
    rows: list[dict[str, Any]] = []
    since = (0.0, run.cpu_seconds())
    while True:
        run.check_running()
        page = run.page()
        elapsed = time.monotonic() - run.started
        weight_used = max(weight_used, page_value(page, "binance_exporter_api_weight_used"))
        if run.tops(page) == len(run.trading):
            reached.setdefault("tops", elapsed)
        books = run.in_sync(page)
        if not stragglers and 0 < len(run.trading) - books <= STRAGGLERS:
            stragglers = run.out_of_sync(page)
        for percent, least in marks.items():
            if books >= least:
                reached.setdefault(f"{percent}_percent_in_sync", elapsed)
        done = all(f"{percent}_percent_in_sync" in reached for percent in marks) or elapsed > timeout
        if elapsed >= len(rows) * PROGRESS_SECONDS or done:
            rows.append(progress_row(run, page, elapsed, since))
            since = (elapsed, run.cpu_seconds())
        if done:
            break
        if "tops" not in reached and elapsed > TOPS_TIMEOUT:
            raise RuntimeError(
                f"{len(run.trading) - run.tops(page)} symbols still without a top after {TOPS_TIMEOUT:.0f} s"
                + run.logs()
            )
        time.sleep(1.0 if "tops" in reached else 0.25)
    result: dict[str, Any] = {"symbols": len(run.trading), "seconds_to_first_answer": run.first_answer}
    for mark in ("tops", *(f"{percent}_percent_in_sync" for percent in marks)):
        result[f"seconds_to_{mark}"] = round(reached[mark], 1) if mark in reached else None
    result[f"last_{STRAGGLERS}_books_to_sync"] = ", ".join(stragglers) or None
    result["api_weight_used_highest"] = int(weight_used)
    return result, rows, page


def snapshot_limits(snapshots: int, weight: int) -> Optional[str]:
    """The snapshots by limit (``"500: 1500, 1000: 130"``) that ``snapshots``
    depth requests weighing ``weight`` in all were, if only one split
    among at most two of the limits 100, 500 and 1000 (weights 5, 25 and
    50) adds up; else None."""
    tiers = [tier for tier in DEPTH_WEIGHTS if tier[0] <= 1000]
    splits = set()
    for (low, light), (high, heavy) in itertools.combinations(tiers, 2):
        heavier, rest = divmod(weight - light * snapshots, heavy - light)  # requests at the higher limit
        if not rest and 0 <= heavier <= snapshots:
            splits.add(tuple((limit, n) for limit, n in ((low, snapshots - heavier), (high, heavier)) if n))
    return ", ".join(f"{limit}: {n}" for limit, n in splits.pop()) if len(splits) == 1 else None


def sync_requests(run: WholeMarketRun, page: bytes) -> dict[str, Any]:
    """What the exporter asked of the fake Binance since it started: the
    weight, the requests by path, those refused (429), and the snapshots
    by limit as their weight tells (``snapshot_limits``: the depth
    requests' weight is the whole less that of the other requests); and
    its books' resyncs by reason, as ``page`` shows them."""
    stats, before = run.binance_stats(), run.stats_before
    weight = stats["weight_total"] - before["weight_total"]
    statuses = Counter(stats["statuses"]) - Counter(before["statuses"])
    requests = Counter(stats["requests"]) - Counter(before["requests"])
    answered = Counter({key.rsplit(" ", 1)[0]: n for key, n in statuses.items() if key.endswith(" 200")})
    refused = sum(n for key, n in statuses.items() if key.endswith(" 429"))
    errors = sum(requests.values()) - sum(answered.values()) - refused  # Binance's error answers weigh 1
    depth = "/api/v3/depth"
    depth_weight_total = weight - errors - sum(WEIGHTS[path] * n for path, n in answered.items() if path != depth)
    resyncs: Counter = Counter()
    for labels, value in page_samples(page, "binance_order_book_resyncs_total").items():
        resyncs[labels.split('reason="', 1)[1].split('"', 1)[0]] += int(value)
    return {
        "weight_to_sync": weight,
        "requests_to_sync": ", ".join(f"{path} {n}" for path, n in sorted(requests.items())),
        "refused_429_to_sync": refused,
        "snapshots_to_sync": answered[depth],
        "snapshot_weight_to_sync": depth_weight_total,
        "snapshots_by_limit_to_sync": (
            snapshot_limits(answered[depth], depth_weight_total) if all(path in WEIGHTS for path in answered) else None
        ),
        "resyncs_to_sync": ", ".join(f"{reason} {n}" for reason, n in sorted(resyncs.items()) if n) or "none",
        "binance_violations": stats["violations"] + stats["stream_violations"],
    }


def book_memory(run: WholeMarketRun, page: bytes) -> dict[str, Any]:
    """The exporter's resident memory now and at its highest, its books
    and levels as ``page`` shows them, and the memory above its baseline
    (``WholeMarketRun.baseline_mb``) per level and per book: an upper
    bound, since everything else that grew is counted too."""
    memory = run.memory_mb()
    levels = sum(page_samples(page, "binance_order_book_levels").values())
    books = run.in_sync(page)
    above = (memory["VmRSS"] - run.baseline_mb) * 1e6
    return {
        "books_in_sync": books,
        "levels": int(levels),
        "rss_mb": round(memory["VmRSS"], 1),
        "highest_rss_mb": round(memory["VmHWM"], 1),
        "baseline_rss_mb": round(run.baseline_mb, 1),
        "bytes_per_level": round(above / levels) if levels else None,
        "kb_per_book": round(above / books / 1000, 1) if books else None,
    }


def window_figures(run: WholeMarketRun, seconds: float) -> dict[str, Any]:
    """Over about ``seconds``, from one of the exporter's snapshots to
    another (each read as it first shows, with the processes' CPU time
    then): the exporter's CPU share of a core and the fake's, the
    messages a second of each stream, the exporter's CPU per 1,000 depth
    events a second, its books' mean event lag, the books in sync at the
    end and the resyncs in between."""
    first = run.next_publish()
    deadline = first.at + seconds
    while time.monotonic() < deadline:
        run.check_running()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    last = run.next_publish()
    elapsed = last.at - first.at
    before, after = first.messages(), last.messages()
    rates = {kind: (after.get(kind, 0.0) - before.get(kind, 0.0)) / elapsed for kind in STREAM_KINDS}
    cpu = 100 * (last.cpu - first.cpu) / elapsed
    lag = "binance_stream_event_lag_seconds"
    events = page_value(last.page, f"{lag}_count") - page_value(first.page, f"{lag}_count")
    resyncs = sum(page_samples(last.page, "binance_order_book_resyncs_total").values()) - sum(
        page_samples(first.page, "binance_order_book_resyncs_total").values()
    )
    return {
        "window_seconds": round(elapsed, 1),
        **{f"{kind}_messages_per_second": round(rate) for kind, rate in rates.items()},
        "cpu_percent_of_a_core": round(cpu, 1),
        "cpu_percent_per_1000_depth_events": round(1000 * cpu / rates["depth"], 2) if rates["depth"] else None,
        "simulator_cpu_percent_of_a_core": round(100 * (last.simulator_cpu - first.simulator_cpu) / elapsed, 1),
        "event_lag_mean_ms": round(
            1000 * (page_value(last.page, f"{lag}_sum") - page_value(first.page, f"{lag}_sum")) / max(1.0, events), 2
        ),
        "books_in_sync_at_end": run.in_sync(last.page),
        "resyncs_in_window": int(resyncs),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # the machine's, the window's last minute
    }


def prometheus_scrapes(
    run: WholeMarketRun, scrapers: int, seconds: float, interval: Optional[float] = None
) -> list[Scrape]:
    """``scrapers`` clients at once, each keeping one connection and
    GETting /metrics as Prometheus does (OpenMetrics, gzip) for
    ``seconds``: back to back, or with ``interval`` once every
    ``interval`` s, each from a random phase (as Prometheus spreads its
    targets' scrapes over the interval). An answer counts when it is a 200 with a gzip body
    (not decompressed here: the scrapers share the exporter's two cores).
    A scrape that fails is counted as such, and the next one reconnects."""
    deadline = time.monotonic() + seconds

    def scrape() -> list[Scrape]:
        mine = []
        connection: Optional[http.client.HTTPConnection] = None
        due = time.monotonic() + random.uniform(0, interval or 0)
        while due < deadline:
            time.sleep(max(0.0, due - time.monotonic()))
            due = time.monotonic() if interval is None else due + interval
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", run.port, timeout=10)
                connection.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
                response = connection.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                encoding = response.getheader("Content-Encoding")
                if response.status != 200 or encoding != "gzip" or body[:2] != b"\x1f\x8b":
                    raise ScrapeError(f"answered {response.status}, {response.getheader('Content-Encoding')}")
                mine.append(Scrape(elapsed, body_bytes=len(body)))
            except (OSError, http.client.HTTPException, ScrapeError) as exc:
                mine.append(Scrape(time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"))
                if connection is not None:
                    connection.close()
                    connection = None
        if connection is not None:
            connection.close()
        return mine

    return in_threads(scrape, scrapers, timeout=seconds + 30)


def metrics_page_size(run: WholeMarketRun) -> dict[str, Any]:
    """/metrics as Prometheus scrapes it: the series (samples) and the body's size, raw and gzip-compressed."""
    connection = http.client.HTTPConnection("127.0.0.1", run.port, timeout=10)
    try:
        connection.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
        response = connection.getresponse()
        compressed = response.read()
        page = checked_body(response, compressed, compressed=True)
    finally:
        connection.close()
    samples = [line for line in page.splitlines() if line and not line.startswith(b"#")]
    return {
        "metrics_series": len(samples),
        "metrics_binance_series": sum(line.startswith(b"binance_") for line in samples),
        "metrics_body_bytes": len(page),
        "metrics_gzip_bytes": len(compressed),
    }


def scraped_metrics(run: WholeMarketRun, seconds: float) -> dict[str, Any]:
    """/metrics as Prometheus scrapes it, once every book is in sync: its
    size (``metrics_page_size``); then p50/p99/max latency with 1 scraper
    for a third of ``seconds`` and with ``WHOLE_MARKET_SCRAPERS`` for
    ``seconds``, back to back, and with ``WHOLE_MARKET_SCRAPERS`` once a
    second each for ``seconds`` (``paced``: the scrapes sample time
    evenly, as Prometheus's do, where back to back ones crowd into the
    fast moments; see ``prometheus_scrapes``), the scrapes answered a
    second, and the exporter's CPU share of a core meanwhile; and the
    answers less than half the size of a whole page (a snapshot shown
    before its streams' part was added: see ``WholeMarketRun.page``)."""
    result = metrics_page_size(run)
    failed, partial = [], 0
    for name, scrapers, length, interval in (
        ("", 1, seconds / 3, None),
        ("", WHOLE_MARKET_SCRAPERS, seconds, None),
        ("paced_", WHOLE_MARKET_SCRAPERS, seconds, 1.0),
    ):
        cpu, started = run.cpu_seconds(), time.monotonic()
        scrapes = prometheus_scrapes(run, scrapers, length, interval)
        share = 100 * (run.cpu_seconds() - cpu) / (time.monotonic() - started)
        latencies = [scrape.seconds for scrape in scrapes if not scrape.error]
        failed += [scrape.error for scrape in scrapes if scrape.error]
        partial += sum(scrape.body_bytes < result["metrics_gzip_bytes"] / 2 for scrape in scrapes if not scrape.error)
        if not latencies:
            raise RuntimeError(f"no scrape answered with {scrapers} scrapers: {failed[0] if failed else 'none made'}")
        key = f"{name}{scrapers}_scrapers"
        result[f"metrics_p50_ms_{key}"] = round(1000 * percentile(latencies, 0.50), 1)
        result[f"metrics_p99_ms_{key}"] = round(1000 * percentile(latencies, 0.99), 1)
        result[f"metrics_max_ms_{key}"] = round(1000 * max(latencies), 1)
        result[f"metrics_over_100_ms_percent_{key}"] = round(100 * sum(t > 0.1 for t in latencies) / len(latencies), 2)
        result[f"metrics_scrapes_per_second_{key}"] = round(len(latencies) / length, 1)
        result[f"cpu_percent_of_a_core_{key}"] = round(share, 1)
    result["metrics_failed_scrapes"] = len(failed)
    result["metrics_partial_scrapes"] = partial
    if failed:
        print(f"{len(failed)} whole-market scrapes failed, the first: {failed[0]}", file=sys.stderr)
    return result


def whole_market_sync_run(directory: Path, latency: float, seconds: float) -> tuple[dict[str, Any], list[dict]]:
    """The whole market at its own pace, ``--symbols all --weight-budget
    4000``: the time to the tops and to 50/90/100 % of the books in sync,
    the weight and snapshots that took, the memory with every book in
    sync; then, for ``seconds``, the CPU and event rates; then /metrics
    with 10 scrapers."""
    run = WholeMarketRun(directory, latency, "1/1", WHOLE_MARKET_BUDGET, peak=False)
    try:
        result, rows, page = followed_sync(run, SYNC_TIMEOUT)
        result.update(sync_requests(run, page))
        result.update(book_memory(run, page))
        result.update(window_figures(run, seconds))
        result.update(scraped_metrics(run, WHOLE_MARKET_SCRAPE_SECONDS))
        result["rss_mb_at_end"] = round(run.memory_mb()["VmRSS"], 1)
        result["partial_pages_read"] = run.pages["partial"]
        result["pages_read"] = run.pages.total()
    finally:
        run.close()
    return result, rows


def whole_market_peak_run(directory: Path, latency: float, shard: str, seconds: float) -> dict[str, Any]:
    """The whole market at its peak (``--peak``: every TRADING book changes
    at every step), the exporter keeping shard ``shard``'s books, taken in
    at once (no weight limit): once every one is in sync, over ``seconds``
    its CPU and the event rates (see ``window_figures``), then its memory."""
    run = WholeMarketRun(directory, latency, shard, UNLIMITED_WEIGHT, peak=True)
    try:
        run.wait(lambda: run.in_sync(run.page()) == len(run.trading), PEAK_SYNC_TIMEOUT, "every book in sync at peak")
        result: dict[str, Any] = {
            "symbols": len(run.trading),
            "seconds_to_all_in_sync": round(time.monotonic() - run.started, 1),
        }
        result.update(window_figures(run, seconds))
        result.update(book_memory(run, run.page()))
        result["partial_pages_read"] = run.pages["partial"]
        result["pages_read"] = run.pages.total()
    finally:
        run.close()
    return result


def whole_market_run(latency: float, seconds: float) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The whole-market section: the sync run at the market's own pace
    (``whole_market_sync_run``), then a peak run for each of
    ``WHOLE_MARKET_SHARDS`` (``whole_market_peak_run``), the whole market
    last: its figures, and the tables of the sync's progress and of the
    cost as the books grow. The machine's load is said at the start and
    the end (the two processes share its cores with this one)."""
    result: dict[str, Any] = {"load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    growth = []
    with tempfile.TemporaryDirectory(prefix="whole-market-") as temporary:
        sync, progress = whole_market_sync_run(Path(temporary) / "sync", latency, seconds)
        result.update(sync)
        for shard in WHOLE_MARKET_SHARDS:
            name = "peak" if shard == "1/1" else f"peak_shard_{shard.replace('/', '_of_')}"
            peak = whole_market_peak_run(Path(temporary) / name, latency, shard, seconds)
            result.update({f"{name}_{key}": value for key, value in peak.items()})
            growth.append(
                {
                    "shard": shard,
                    "books": peak["books_in_sync"],
                    "levels": peak["levels"],
                    "depth_per_second": peak["depth_messages_per_second"],
                    "messages_per_second": sum(peak[f"{kind}_messages_per_second"] for kind in STREAM_KINDS),
                    "cpu_percent": peak["cpu_percent_of_a_core"],
                    "cpu_percent_per_1000_depth": peak["cpu_percent_per_1000_depth_events"],
                    "lag_mean_ms": peak["event_lag_mean_ms"],
                    "rss_mb": peak["rss_mb"],
                    "fake_cpu_percent": peak["simulator_cpu_percent_of_a_core"],
                    "load_1m": peak["load_average_1m_at_end"],
                }
            )
    per_1000 = result.get("peak_cpu_percent_per_1000_depth_events")
    result["peak_cpu_percent_at_15000_depth_events"] = (
        round(per_1000 * PEAK_DEPTH_EVENTS / 1000, 1) if per_1000 is not None else None
    )
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    result = {f"whole_market_{key}": value for key, value in result.items()}
    return result, {"whole_market_sync": progress, "whole_market_growth": growth}


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
    ceilings += [
        ("whole_market_seconds_to_tops", 15, "whole market: every TRADING symbol's top within 15 s"),
        ("whole_market_seconds_to_100_percent_in_sync", 600, "whole market: every book in sync within 10 minutes"),
        ("whole_market_rss_mb", 400, "whole market: resident memory <= 400 MB with every book in sync"),
        ("whole_market_metrics_p99_ms_10_scrapers", 100, "whole market: /metrics p99 <= 100 ms with 10 scrapers"),
        (
            "whole_market_metrics_p99_ms_paced_10_scrapers",
            100,
            "whole market: /metrics p99 <= 100 ms with 10 scrapers, each once a second",
        ),
        (
            "whole_market_peak_cpu_percent_at_15000_depth_events",
            50,
            "whole market at peak: <= 50 % of a core at 15000 depth events/s (read linearly)",
        ),
    ]
    floors = [
        ("book_events_per_second", 30_000, "book maintenance >= 30000 events/s on one core"),
        (
            "whole_market_peak_depth_messages_per_second",
            PEAK_DEPTH_EVENTS,
            "whole market at peak: >= 15000 depth events/s reached",
        ),
        ("replay_report_times_real_time", 100, "the offline report runs >= 100 times real time"),
    ]
    missed = [
        f"{text}: {results[key]}"
        for key, limit, text in ceilings
        if key in results and (results[key] is None or results[key] > limit)  # None: not reached at all
    ]
    missed += [f"{text}: {results[key]}" for key, limit, text in floors if key in results and results[key] < limit]
    for prefix in ("whole_market", "whole_market_peak"):
        books = results.get(f"{prefix}_books_in_sync_at_end", 0)
        if books < results.get(f"{prefix}_symbols", 0):
            missed.append(f"{prefix}: every book in sync to the end of its window: {books}")
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


SECTIONS = ("rest", "stream", "live", "record", "replay", "whole-market")
BOOK_TABLE = "events per second, one thread; frames of 5 bids and 5 asks, a 1000-level book"
TABLE_CAPTIONS = {
    "decoders": BOOK_TABLE,
    "book_structures": BOOK_TABLE,
    "whole_market_sync": "--symbols all --weight-budget 4000, from the exporter's start; snapshots and weight as the "
    "fake Binance counted them, the exporter's CPU since the row before",
    "whole_market_growth": "the whole market at its peak (--peak), every book in sync; rates a second, CPU in % "
    "of a core",
}


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
        help="run one section: rest (runs 1-4), stream (runs 5-9), live (run 10), record (run 11), replay (run 12) "
        "or whole-market (run 13)",
    )
    parser.add_argument(
        "--whole-market-seconds",
        type=float,
        default=60.0,
        help="whole-market: length of each CPU window, s (default: 60)",
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
        or min(args.replay_record_seconds, args.whole_market_seconds) < 10
    ):
        parser.error(
            "--latency must be from 0 to 1 s, --minute at least 10, --cycles at least 10, "
            "--latency-seconds at least 5, --replay-record-seconds and --whole-market-seconds at least 10"
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
    if "whole-market" in sections:
        whole_market, whole_market_tables = whole_market_run(args.latency, args.whole_market_seconds)
        results.update(whole_market)
        tables.update(whole_market_tables)
    missed = missed_targets(results, args.latency)
    width = max(len(key) for key in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    for name, rows in tables.items():
        print(f"\n{name} ({TABLE_CAPTIONS[name]}):")
        print_table(rows)
    print("\n".join(["targets missed:", *missed]) if missed else "all targets met")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({**results, **tables, "missed": missed}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
