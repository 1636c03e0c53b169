"""Helpers for tests: a hand-moved clock, free ports nothing else takes,
HTTP without exceptions, polling with a deadline, and running the real
processes."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any, Callable

from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


_HANDED_OUT: set[int] = set()


def _ephemeral_ports() -> range:
    """The ports the kernel picks the local end of connections from."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as ports:
            low, high = map(int, ports.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A loopback port nobody listens on right now, for a server a test is
    about to start (or for a URL nothing answers at).

    It is taken below the ephemeral range, so that no connection made in the
    meantime (by this run or anything else on the machine) gets it as its
    own local port, and it is never handed out twice in a run.
    """
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(20000, 32768) if port not in ephemeral and port not in _HANDED_OUT]
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
        _HANDED_OUT.add(port)
        return port
    raise AssertionError("no free port from 20000 to 32767")


def http_get(url: str, timeout: float = 5.0, method: str = "GET") -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request, errors included."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post(simulator: Any, path: str, body: Any) -> tuple[int, Any]:
    """(status, decoded body) of POSTing ``body`` as JSON to the fake
    Binance's ``path`` (``/sim/faults``, ``/sim/market``); only a 2xx
    answer is expected."""
    request = urllib.request.Request(simulator.url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert 200 <= answer.status < 300
        return answer.status, json.loads(answer.read())


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of ``url``/metrics, by (name, sorted (label, value) pairs)."""
    status, _, body = http_get(url + "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def wait_for(condition: Callable[[], object], timeout: float = 15.0, interval: float = 0.05) -> object:
    """Polls ``condition`` until it returns something truthy; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def start_module(module: str, *args: str, env: dict | None = None, stdout: int = subprocess.PIPE) -> subprocess.Popen:
    """Runs ``python -m module args`` from the project root, pipes captured
    (stdout: unless ``stdout`` says otherwise)."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_process(process: subprocess.Popen, timeout: float = 5.0) -> tuple[int, str, str]:
    """SIGTERMs ``process`` (if still running) and returns (exit status,
    stdout, stderr), its pipes closed."""
    if process.poll() is None:
        process.terminate()
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def true_best_levels(simulator: Any, symbol: str, depth: int) -> tuple[int, tuple, tuple]:
    """The fake Binance's true book of ``symbol``: its update id and the best
    ``depth`` levels of each side, as (price, quantity) ``Decimal`` pairs."""
    update_id, bids, asks = simulator.market.true_book(symbol)
    unit = Decimal(10) ** -8  # the fake keeps prices and quantities in 1e-8 units
    return update_id, *(tuple((p * unit, q * unit) for p, q in side[:depth]) for side in (bids, asks))


def messages(ws: Any, timeout: float = 15.0) -> Any:
    """The messages of the websocket client ``ws``, decoded, as they come;
    fails the test when none comes before the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"nothing awaited came within {timeout} s")
        yield json.loads(ws.recv(timeout=left))


def start_make(target: str, *variables: str) -> subprocess.Popen:
    """``make target`` with make's ``variables``, in a session of its own
    so that the test can stop all of it (``stop_make``). ``-o``: never
    reinstall the .venv the tests themselves run in."""
    return subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by stop_make
        ["make", "--no-print-directory", "-o", ".venv/.installed-runtime", target, *variables],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop_make(run: subprocess.Popen) -> tuple[int, str, str]:
    """SIGTERMs a ``start_make`` run, all of it; (exit status, stdout, stderr)."""
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGTERM)
    out, err = run.communicate(timeout=30)
    return run.returncode, out, err
