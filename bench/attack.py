"""Attacks on the exporter, from its clients and from "Binance", each
beside a normal scraper.

    python bench/attack.py [--only NAME] [--duration S]

For each attack: a fresh fake Binance and exporter process, on loopback; the
attack runs in its own process for ``--duration`` seconds while a scraper in
this one GETs /metrics every 0.2 s on a new connection; then the attack
stops, and the exporter must answer /metrics and /-/ready with 200 again
(/-/ready: a whole update cycle has succeeded since).

Attacks from downstream are clients misbehaving; attacks from upstream are
the fake Binance misbehaving, through faults POSTed to its /sim/faults.

One row per attack: scrapes that got a 200 of those tried, the share of
them that said ``binance_up 1``, the scraper's p50 and p99 latency, the
exporter's peak resident memory (VmHWM: each attack has a fresh process)
and peak thread count, the lines it logged (at WARNING and above), the
``endpoint`` label values it exported, the requests the fake Binance
answered and the exporter counted (equal but for one in flight when read:
nothing is sent behind the weight budget's back), whether it recovered, and
what the attacker did. The two rows with no attack (top 5, and top 100 as
for unique-accept) are the scraper's latency without one, for comparison.

Targets: scrape p99 <= 50 ms and peak RSS <= 150 MB during every attack,
every scrape answered, at most the 4 endpoints, and recovery after it (after
a 429, the pause Binance asked for, capped at 3 days, instead).

An attack is a function ``attack(target, deadline) -> str`` (it attacks
until the monotonic ``deadline`` and says what it did) plus an entry in
``ATTACKS`` saying how to start the exporter and the fake Binance for it.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.client
import itertools
import json
import math
import multiprocessing
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import bcrypt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before the standard library's own "test" package

# pylint: disable-next=wrong-import-position,wrong-import-order  # needs the path above; "test" is not the standard library's
from test.helpers import free_port, wait_for

SCRAPE_EVERY = 0.2
SCRAPE_TIMEOUT = 5.0
RECOVERY_TIMEOUT = 15.0
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 150.0
# Fast cycles, so that the update loop and the render cache work during the
# attack, within what Binance allows an IP (6000 weight a minute): top 5 every
# 2 s, and top 100 (TOP_100) every 30 s.
EXPORTER_ARGS = ("--update-interval", "2", "--rank-interval", "10", "--weight-budget", "6000")
TOP_100 = ("--top", "100", "--update-interval", "30", "--rank-interval", "60")
SIMULATOR_ARGS = ("--weight-limit", "1000000000")
SCRAPER_USER, SCRAPER_PASSWORD = "prometheus", "the scraper's own password"
# Twice the 16 password checks the exporter lets wait at once.
PASSWORD_GUESSING_CLIENTS = 32

SLOWLORIS_CONNECTIONS = 1030
SLOWLORIS_BYTE_EVERY = 4.0
# A request head that never ends: the attacker sends one byte of it at a time.
SLOWLORIS_HEAD = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100_000

BIG_HEADERS_CLIENTS = 100
# About 6 MB of legal headers: 98 lines of 62 KB (http.server's own limits are
# 100 headers of 64 KB each).
BIG_HEAD = (
    b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    + b"".join(b"X-Padding-%d: %s\r\n" % (number, b"a" * 62_000) for number in range(98))
    + b"\r\n"
)

UNIQUE_ACCEPT_CLIENTS = 8

ENDPOINTS = 4  # the endpoint label's fixed set
LONGEST_PAUSE = 3 * 24 * 3600  # the exporter's cap on Retry-After
# The symbol the upstream attacks aim at: in the BTC top list, so its book is read every cycle.
VICTIM = "ETHBTC"
LONG_NUMBER = "1." + "1" * 399  # 400 significant digits
UP = b"\nbinance_up 1.0\n"


@dataclass(frozen=True)
class Target:
    """Where the attacked exporter and its fake Binance listen."""

    port: int
    binance: str

    @property
    def address(self) -> tuple[str, int]:
        """The exporter's (host, port)."""
        return ("127.0.0.1", self.port)


def _raise_open_files_limit() -> None:
    """Lets the attacker hold more connections than the usual 1024 descriptors."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def no_attack(target: Target, deadline: float) -> str:  # pylint: disable=unused-argument  # an attack's signature
    """Nothing: the scraper alone, for comparison."""
    time.sleep(max(0.0, deadline - time.monotonic()))
    return "nothing"


def slowloris(target: Target, deadline: float) -> str:
    """1030 connections, each sending one byte of a request head every 4 s,
    and reconnecting when it finds itself dropped."""
    _raise_open_files_limit()
    started = time.monotonic()
    # Spread the connections' ticks over the interval, as independent clients would be.
    spread = SLOWLORIS_BYTE_EVERY / SLOWLORIS_CONNECTIONS
    next_byte = [started + number * spread for number in range(SLOWLORIS_CONNECTIONS)]
    sockets: list[Optional[socket.socket]] = [None] * SLOWLORIS_CONNECTIONS
    sent = [0] * SLOWLORIS_CONNECTIONS
    opened = dropped = 0
    while (now := time.monotonic()) < deadline:
        for number in range(SLOWLORIS_CONNECTIONS):
            if next_byte[number] > now:
                continue
            sock = sockets[number]
            if sock is None:
                sock = sockets[number] = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(target.address)
                sent[number] = 0
                opened += 1
            try:
                sent[number] += sock.send(SLOWLORIS_HEAD[sent[number] : sent[number] + 1])
                next_byte[number] = now + SLOWLORIS_BYTE_EVERY
            except BlockingIOError:
                next_byte[number] = now + 0.1  # still connecting
            except OSError:
                sock.close()
                sockets[number] = None
                dropped += 1
        time.sleep(0.05)
    for sock in sockets:
        if sock is not None:
            sock.close()
    return f"{opened} connections, {dropped} found dropped"


def big_headers(target: Target, deadline: float) -> str:
    """100 clients at once, each sending a request with about 6 MB of
    headers and reading the answer, again and again."""
    answers: dict[str, int] = {}
    lock = threading.Lock()

    def client() -> None:
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(target.address, timeout=10) as sock:
                    sock.sendall(BIG_HEAD)
                    outcome = sock.recv(12).decode("latin-1")[9:] or "closed"
            except OSError as exc:
                outcome = type(exc).__name__
            with lock:
                answers[outcome] = answers.get(outcome, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(BIG_HEADERS_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return "requests: " + ", ".join(f"{count} {outcome}" for outcome, count in sorted(answers.items()))


def unique_accept(target: Target, deadline: float) -> str:
    """Requests as fast as 8 clients can send them, each with its own
    ``Accept: application/openmetrics-text; version=1.0.<n>``."""
    numbers = itertools.count(1)
    failed = []

    def client() -> None:
        connection = http.client.HTTPConnection(*target.address, timeout=10)
        while time.monotonic() < deadline:
            accept = f"application/openmetrics-text; version=1.0.{next(numbers)}"
            try:
                connection.request("GET", "/metrics", headers={"Accept": accept})
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                failed.append(1)
                connection.close()
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(UNIQUE_ACCEPT_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return f"{next(numbers) - 1} requests, each its own Accept; {len(failed)} failed"


def password_guessing(target: Target, deadline: float) -> str:
    """Requests as fast as 32 clients can send them, each with a password
    never tried before: each costs a bcrypt check, or a 429 when 16 wait."""
    numbers = itertools.count(1)
    statuses: dict[int, int] = {}

    def client() -> None:
        connection = http.client.HTTPConnection(*target.address, timeout=10)
        while time.monotonic() < deadline:
            token = base64.b64encode(f"{SCRAPER_USER}:guess-{next(numbers)}".encode()).decode()
            try:
                connection.request("GET", "/metrics", headers={"Authorization": f"Basic {token}"})
                response = connection.getresponse()
                response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.getheader("Connection") == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                statuses[0] = statuses.get(0, 0) + 1
                connection.close()
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(PASSWORD_GUESSING_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = ", ".join(f"{count} {status or 'failed'}" for status, count in sorted(statuses.items()))
    return f"{next(numbers) - 1} wrong passwords: {answers}"


def _binance(target: Target, path: str, method: str = "GET", body: Optional[dict] = None) -> Any:
    """The fake Binance's JSON answer to ``method path``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(target.binance + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def upstream(faults: Callable[[Target], list[dict]], target: Target, deadline: float) -> str:
    """The fake Binance answers with ``faults(target)`` until ``deadline``,
    then with real answers again."""
    for fault in faults(target):
        _binance(target, "/sim/faults", "POST", fault)
    time.sleep(max(0.0, deadline - time.monotonic()))
    fired = sum(fault["fired"] for fault in _binance(target, "/sim/faults"))
    _binance(target, "/sim/faults", "DELETE")
    return f"{fired} faulty answers"


def fault(**spec: Any) -> Callable[[Target], list[dict]]:
    """One fault, as given."""
    return lambda target: [spec]


def mutated(path: str, change: Callable[[Any], None], **spec: Any) -> Callable[[Target], list[dict]]:
    """A fault whose body is the fake Binance's real answer to ``path``, changed by ``change``."""

    def faults(target: Target) -> list[dict]:
        answer = _binance(target, path)
        change(answer)
        return [{"path": path.split("?")[0], "body": json.dumps(answer), **spec}]

    return faults


def _victim_ticker(answer: list[dict]) -> dict:
    return next(ticker for ticker in answer if ticker["symbol"] == VICTIM)


def _lone_surrogate(answer: list[dict]) -> None:
    _victim_ticker(answer)["symbol"] = "\ud800" + VICTIM


def _huge_count(answer: list[dict]) -> None:
    _victim_ticker(answer)["count"] = 10**400


def _long_price(answer: dict) -> None:
    answer["asks"][0][0] = LONG_NUMBER


@dataclass(frozen=True)
class Attack:
    """An attack, and how the exporter and the fake Binance run for it."""

    run: Callable[[Target, float], str]
    exporter_args: tuple[str, ...] = ()
    simulator_args: tuple[str, ...] = ()
    open_files: Optional[int] = None  # the exporter's RLIMIT_NOFILE; None leaves it as it is
    pauses: bool = False  # Binance asks for a pause: the exporter recovers when it ends, not at once
    basic_auth: bool = False  # the exporter asks for a password (SCRAPER_PASSWORD, bcrypt cost 10)


ATTACKS = {
    "none": Attack(no_attack),
    "none-top100": Attack(no_attack, TOP_100, ("--extra-symbols", "100")),
    "slowloris": Attack(slowloris),
    # A connection limit above what the descriptors allow: the exporter must
    # not run out of descriptors for its own work.
    "slowloris-low-ulimit": Attack(slowloris, ("--web.max-connections", "1024"), open_files=256),
    "big-headers": Attack(big_headers),
    "unique-accept": Attack(unique_accept, TOP_100, ("--extra-symbols", "100")),
    "password-guessing": Attack(password_guessing, basic_auth=True),
    # Upstream: the fake Binance misbehaves.
    "trickle-tickers": Attack(
        functools.partial(upstream, fault(path="/api/v3/ticker/24hr", trickle_bytes_per_second=1))
    ),
    "trickle-depth": Attack(
        functools.partial(upstream, fault(path="/api/v3/depth", symbol=VICTIM, trickle_bytes_per_second=1))
    ),
    "endless-depth": Attack(functools.partial(upstream, fault(path="/api/v3/depth", endless=True))),
    "200MB-tickers": Attack(functools.partial(upstream, fault(path="/api/v3/ticker/24hr", body_bytes=200_000_000))),
    "gzip-bomb-depth": Attack(functools.partial(upstream, fault(path="/api/v3/depth", gzip_bomb=1_000_000_000))),
    "redirect-other-host": Attack(
        functools.partial(
            upstream, fault(path="/api/v3/ticker/bookTicker", status=302, location="http://localhost:1/bookTicker")
        )
    ),
    "redirect-loop": Attack(
        functools.partial(upstream, fault(path="/api/v3/depth", status=302, location="/api/v3/depth"))
    ),
    "redirect-fresh-path": Attack(
        functools.partial(upstream, fault(path="/api/v3/depth", status=302, location="/api/v3/depth/{n}"))
    ),
    "nested-json-depth": Attack(
        functools.partial(upstream, fault(path="/api/v3/depth", body="[" * 30_000 + "]" * 30_000))
    ),
    "400-digit-price": Attack(
        functools.partial(upstream, mutated(f"/api/v3/depth?symbol={VICTIM}&limit=100", _long_price, symbol=VICTIM))
    ),
    "lone-surrogate-symbol": Attack(functools.partial(upstream, mutated("/api/v3/ticker/24hr", _lone_surrogate))),
    "count-10^400": Attack(functools.partial(upstream, mutated("/api/v3/ticker/24hr", _huge_count))),
    "retry-after-1e12": Attack(
        functools.partial(
            upstream,
            fault(path="/api/v3/ticker/bookTicker", status=429, body="{}", headers={"Retry-After": "1e12"}),
        ),
        pauses=True,
    ),
}


class Stack:
    """A fake Binance and an exporter against it, each its own process; the
    exporter's stderr goes to a file so that its lines can be counted."""

    def __init__(self, attack: Attack):
        self.simulator = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by close()
            [sys.executable, "-m", "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0"]
            + list(SIMULATOR_ARGS)
            + list(attack.simulator_args),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        binance = self.simulator.stdout.readline().split()[-1]
        self.target = Target(free_port(), binance)
        self.log = tempfile.TemporaryFile("w+")  # pylint: disable=consider-using-with  # closed by close()
        # Its own state directory: a pause an attack asks for must not outlive the attack.
        self.state_dir = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with  # closed by close()
        exporter_args = ["--port", str(self.target.port), "--address", "127.0.0.1", "--base-url", binance]
        exporter_args += ["--state-dir", self.state_dir.name]
        exporter_args += ["--loglevel", "WARNING", *EXPORTER_ARGS, *attack.exporter_args]
        self.headers = {}
        if attack.basic_auth:
            web_config = Path(self.state_dir.name) / "web.yml"
            hashed = bcrypt.hashpw(SCRAPER_PASSWORD.encode(), bcrypt.gensalt(10)).decode()
            web_config.write_text(f"basic_auth_users:\n  {SCRAPER_USER}: {hashed}\n", encoding="utf-8")
            exporter_args += ["--web.config.file", str(web_config)]
            token = base64.b64encode(f"{SCRAPER_USER}:{SCRAPER_PASSWORD}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        limit = attack.open_files

        def limit_open_files() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        # pylint: disable-next=consider-using-with,subprocess-popen-preexec-fn  # stopped by close(); no threads yet
        self.exporter = subprocess.Popen(
            [sys.executable, "-m", "binance_exporter", *exporter_args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            preexec_fn=limit_open_files,
        )
        wait_for(lambda: self.get("/-/ready")[0] == 200, timeout=60)

    def get(self, path: str, timeout: float = SCRAPE_TIMEOUT) -> tuple[int, float, bytes]:
        """(status, seconds, body) of one GET on a new connection; status 0 if it failed."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection(*self.target.address, timeout=timeout)
        body = b""
        try:
            connection.request("GET", path, headers=self.headers)
            response = connection.getresponse()
            body = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
        finally:
            connection.close()
        return status, time.perf_counter() - started, body

    def samples(self) -> list[tuple[str, str]]:
        """(name with labels, value) of each sample on /metrics now."""
        status, _, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        lines = body.decode().splitlines()
        return [tuple(line.rsplit(" ", 1)) for line in lines if line and not line.startswith("#")]

    def status(self, field: str) -> int:
        """A field of /proc/<exporter>/status, e.g. VmHWM (kB) or Threads."""
        with open(f"/proc/{self.exporter.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def close(self) -> int:
        """Stops both processes; the number of lines the exporter logged."""
        for process in (self.exporter, self.simulator):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.simulator.stdout.close()
        self.state_dir.cleanup()
        self.log.seek(0)
        lines = len(self.log.readlines())
        self.log.close()
        return lines


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile of ``values`` (nearest rank); NaN if there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def _attacker(attack: Attack, target: Target, deadline: float, report: "multiprocessing.Queue[str]") -> None:
    report.put(attack.run(target, deadline))


def scrape_while(stack: Stack, attacker: multiprocessing.Process) -> tuple[list[tuple[int, float, bytes]], int]:
    """GET /metrics every 0.2 s while ``attacker`` runs: (status, seconds,
    body) of each scrape, and the exporter's peak thread count meanwhile."""
    threads = [stack.status("Threads")]
    stop_sampling = threading.Event()

    def sample_threads() -> None:
        while not stop_sampling.wait(0.1):
            threads.append(stack.status("Threads"))

    sampler = threading.Thread(target=sample_threads)
    sampler.start()
    scrapes = []
    next_scrape = time.monotonic()
    while attacker.is_alive():
        scrapes.append(stack.get("/metrics"))
        next_scrape += SCRAPE_EVERY
        time.sleep(max(0.0, next_scrape - time.monotonic()))
    stop_sampling.set()
    sampler.join()
    return scrapes, max(threads)


def recovery(stack: Stack, attack: Attack) -> str:
    """How long until /metrics and /-/ready both answer 200 again, or "no".
    After a 429: whether the exporter pauses as long as capped, "no" if not."""
    ended = time.monotonic()
    if attack.pauses:
        paused_until = dict(stack.samples()).get("binance_exporter_paused_until_timestamp_seconds", "0")
        days = (float(paused_until) - time.time()) / (24 * 3600)
        return f"paused {days:.2f} days, as capped" if abs(days - 3) < 0.01 else "no"
    try:
        wait_for(lambda: stack.get("/metrics")[0] == 200 and stack.get("/-/ready")[0] == 200, timeout=RECOVERY_TIMEOUT)
    except AssertionError:
        return "no"
    return f"yes, {time.monotonic() - ended:.1f} s"


def endpoint_labels(stack: Stack) -> int:
    """How many ``endpoint`` label values /metrics has."""
    return len({name.split('endpoint="')[1].split('"')[0] for name, _ in stack.samples() if 'endpoint="' in name})


def requests_answered_and_counted(stack: Stack) -> str:
    """The requests the fake Binance answered / those the exporter counted,
    read between two equal counts of the exporter's (no cycle in between)."""
    counted = None
    for _ in range(20):
        before = sum(float(v) for n, v in stack.samples() if n.startswith("binance_exporter_api_requests_total"))
        answered = sum(_binance(stack.target, "/sim/stats")["requests"].values())
        counted = sum(float(v) for n, v in stack.samples() if n.startswith("binance_exporter_api_requests_total"))
        if counted == before:
            return f"{answered}/{counted:.0f}"
        time.sleep(0.1)
    return f"?/{counted:.0f}"


def run_attack(name: str, duration: float) -> dict[str, object]:
    """One attack on a fresh exporter, with a scraper beside it."""
    attack = ATTACKS[name]
    stack = Stack(attack)
    try:
        report: multiprocessing.Queue = multiprocessing.Queue()
        attacker = multiprocessing.Process(
            target=_attacker, args=(attack, stack.target, time.monotonic() + duration, report), daemon=True
        )
        attacker.start()
        scrapes, threads = scrape_while(stack, attacker)
        attacker.join()
        note = report.get(timeout=30) if attacker.exitcode == 0 else f"attacker exited with {attacker.exitcode}"
        after = {
            "recovered": recovery(stack, attack),
            "peak RSS MB": round(stack.status("VmHWM") / 1024, 1),
            "endpoints": endpoint_labels(stack),
            "requests fake/exporter": requests_answered_and_counted(stack),
        }
    finally:
        log_lines = stack.close()
    answered = [body for status, _, body in scrapes if status == 200]
    latencies = [1000 * seconds for status, seconds, _ in scrapes if status == 200]
    return {
        "attack": name,
        "scrapes ok": f"{len(answered)}/{len(scrapes)}",
        "up": f"{sum(UP in body for body in answered) / max(1, len(answered)):.0%}",
        "p50 ms": round(percentile(latencies, 0.50), 1),
        "p99 ms": round(percentile(latencies, 0.99), 1),
        "peak RSS MB": after["peak RSS MB"],
        "threads": threads,
        "log lines": log_lines,
        "endpoints": after["endpoints"],
        "requests fake/exporter": after["requests fake/exporter"],
        "recovered": after["recovered"],
        "attacker": note,
    }


def missed_targets(row: dict[str, object]) -> list[str]:
    """The targets a row misses, each as a sentence."""
    missed = []
    ok, tried = (int(part) for part in str(row["scrapes ok"]).split("/"))
    if ok < tried:
        missed.append(f"{row['attack']}: {tried - ok} of {tried} scrapes failed")
    p99, rss = float(str(row["p99 ms"])), float(str(row["peak RSS MB"]))
    if math.isnan(p99) or p99 > TARGET_P99_MS:
        missed.append(f"{row['attack']}: scrape p99 {p99} ms > {TARGET_P99_MS:g} ms")
    if rss > TARGET_RSS_MB:
        missed.append(f"{row['attack']}: peak RSS {rss} MB > {TARGET_RSS_MB:g} MB")
    if int(str(row["endpoints"])) > ENDPOINTS:
        missed.append(f"{row['attack']}: {row['endpoints']} endpoint label values > {ENDPOINTS}")
    if row["recovered"] == "no":
        missed.append(f"{row['attack']}: no recovery within {RECOVERY_TIMEOUT:g} s after, or not the capped pause")
    return missed


def print_table(rows: list[dict[str, object]]) -> None:
    """The rows as an aligned text table."""
    columns = list(rows[0])
    widths = {column: max(len(column), *(len(str(row[column])) for row in rows)) for column in columns}
    print("  ".join(column.ljust(widths[column]) for column in columns).rstrip())
    for row in rows:
        print("  ".join(str(row[column]).ljust(widths[column]) for column in columns).rstrip(), flush=True)


def main() -> int:
    """Runs the attacks from the command line; 1 if a target was missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(ATTACKS), help="run this attack only (default: all)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each attack lasts (default: 20)")
    args = parser.parse_args()
    if not 5 <= args.duration <= 600:
        parser.error("--duration must be from 5 to 600 s")
    rows = [run_attack(name, args.duration) for name in ([args.only] if args.only else ATTACKS)]
    print_table(rows)
    missed = [line for row in rows for line in missed_targets(row)]
    print("\n".join(["targets missed:", *missed]) if missed else "all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
