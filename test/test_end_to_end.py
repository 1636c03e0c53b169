"""The real exporter process against the fake Binance: what it serves at
/metrics matches what Binance served, it prints its report, survives an
unreachable Binance and stops cleanly on SIGTERM and SIGINT; and
``make demo``, which runs both."""

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal as D

import bcrypt
import pytest

from binance_exporter.exposition.collector import BUILD_INFO
from binance_exporter.signals import IGNORED_SIGNALS, STOP_SIGNALS
from binance_exporter.fake.simulator import Fault
from .certificates import make_pki
from .helpers import ROOT, free_port, http_get, scrape, start_make, start_module, stop_make, stop_process, wait_for

Q1 = ("ETHBTC", "BNBBTC", "SOLBTC", "XRPBTC", "LINKBTC")
Q2 = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BTCDOWNUSDT")


@pytest.fixture(scope="module")
def binance():
    """The simulator as its own process, its market frozen so that the
    test can ask it for exactly what the exporter was served."""
    process = start_module(
        "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0", "--tick-seconds", "0"
    )
    url = wait_for(process.stdout.readline).split()[-1]
    yield url
    stop_process(process)


def start_exporter(base_url, *args, env=None):
    """The exporter on a free port, with a state directory of its own;
    fast updates are allowed past the default weight budget (the fake
    Binance enforces its own limit)."""
    port = free_port()
    state_dir = tempfile.mkdtemp(dir=os.environ["XDG_STATE_HOME"])
    process = start_module(
        "binance_exporter",
        *("--port", str(port), "--address", "127.0.0.1", "--base-url", base_url),
        *("--weight-budget", "100000", "--state-dir", state_dir),
        *args,
        env=env,
    )
    return process, f"http://127.0.0.1:{port}"


def up(url):
    try:
        return scrape(url).get(("binance_up", ())) == 1
    except OSError:
        return False


def served(binance, path):
    status, _, body = http_get(binance + path)
    assert status == 200
    return json.loads(body)


def notional(levels):
    return sum((D(p) * D(q) for p, q in levels), D(0))


@pytest.fixture(scope="module")
def run(binance):
    """One run of the exporter against the frozen simulator: its metrics
    once it is up, then its exit status and output after SIGTERM."""
    exporter, url = start_exporter(binance, "--update-interval", "1")
    try:
        wait_for(lambda: up(url))
        metrics = scrape(url)
    finally:
        status, out, err = stop_process(exporter)
    return {"metrics": metrics, "status": status, "out": out, "err": err}


def test_q1_ranks_and_book_notionals_match_what_binance_served(binance, run):
    metrics = run["metrics"]
    for rank, symbol in enumerate(Q1, start=1):
        labels = (("quote_asset", "BTC"), ("ranking", "quote_volume"), ("symbol", symbol))
        assert metrics[("binance_top_symbol_rank", labels)] == rank
        book = served(binance, f"/api/v3/depth?symbol={symbol}&limit=200")
        for side, levels in (("bid", book["bids"]), ("ask", book["asks"])):
            assert metrics[("binance_order_book_notional", (("side", side), ("symbol", symbol)))] == float(
                notional(levels)
            )


def test_q2_ranks_and_spreads_match_what_binance_served(binance, run):
    metrics = run["metrics"]
    query = json.dumps(list(Q2)).replace(" ", "")
    tops = {t["symbol"]: t for t in served(binance, "/api/v3/ticker/bookTicker?symbols=" + query)}
    for rank, symbol in enumerate(Q2, start=1):
        labels = (("quote_asset", "USDT"), ("ranking", "trade_count"), ("symbol", symbol))
        assert metrics[("binance_top_symbol_rank", labels)] == rank
        bid, ask = D(tops[symbol]["bidPrice"]), D(tops[symbol]["askPrice"])
        assert metrics[("binance_spread", (("symbol", symbol),))] == float(ask - bid)
        assert metrics[("binance_best_bid_price", (("symbol", symbol),))] == float(bid)
        assert metrics[("binance_best_ask_price", (("symbol", symbol),))] == float(ask)


def test_24h_statistics_match_and_traps_are_not_ranked(binance, run):
    metrics = run["metrics"]
    tickers = {t["symbol"]: t for t in served(binance, "/api/v3/ticker/24hr")}
    for symbol in Q1 + Q2:
        key = (("symbol", symbol),)
        assert metrics[("binance_quote_volume_24h", key)] == float(D(tickers[symbol]["quoteVolume"]))
        assert metrics[("binance_volume_24h", key)] == float(D(tickers[symbol]["volume"]))
        assert metrics[("binance_trades_24h", key)] == tickers[symbol]["count"]
    ranked = {dict(labels)["symbol"] for name, labels in metrics if name == "binance_top_symbol_rank"}
    assert ranked == set(Q1 + Q2)  # not BTCDOWNUSDT as BTC-quoted, nor USDTTRY, FTTBTC (HALT), LUNABTC (BREAK)


def test_exporter_health_metrics_are_served(run):
    metrics = run["metrics"]
    assert metrics[("binance_up", ())] == 1
    assert metrics[("binance_exporter_api_requests_total", (("code", "200"), ("endpoint", "/api/v3/depth")))] >= 5
    assert metrics[("binance_exporter_api_weight_used", ())] > 0
    build_info = [labels for name, labels in metrics if name == "binance_exporter_build_info"]
    assert [dict(labels) for labels in build_info] == [BUILD_INFO]
    assert time.time() - metrics[("binance_exporter_last_update_timestamp_seconds", ())] < 60
    assert ("binance_spread_delta", (("symbol", "BTCUSDT"),)) not in metrics  # a first value has no delta


def test_it_prints_the_report_then_spread_lines_and_exits_0_on_sigterm(run):
    assert run["status"] == 0, run["err"]
    report, _, lines = run["out"].partition("Q4")
    assert report.startswith("Binance spot market report")
    for symbol in Q1 + Q2:
        assert symbol in report
    first_lines = [line for line in lines.splitlines() if "delta" in line][: len(Q2)]
    assert [line.split()[1] for line in first_lines] == list(Q2)
    assert all(line.split()[-1] == "n/a" for line in first_lines)
    assert "serving http://127.0.0.1:" in run["err"]


def test_spread_deltas_appear_from_the_second_cycle_as_the_market_moves():
    process = start_module(
        "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0", "--tick-seconds", "0.2"
    )
    moving = wait_for(process.stdout.readline).split()[-1]
    exporter, url = start_exporter(moving, "--update-interval", "0.5", "--format", "json")
    try:
        wait_for(lambda: any(name == "binance_spread_delta" for name, _ in scrape(url)))
    finally:
        _, out, _ = stop_process(exporter)
        stop_process(process)
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["type"] == "report" and len(records[0]["q1"]) == 5
    spreads = [r for r in records if r["type"] == "spread"]
    assert spreads[0]["delta"] is None
    assert any(r["delta"] is not None for r in spreads)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_at_once_with_status_0_even_while_a_request_hangs(simulator, signum):
    exporter, url = start_exporter(simulator.url, "--update-interval", "1", "--request-timeout", "300")
    try:
        wait_for(lambda: up(url))
        simulator.inject(Fault("/api/v3/depth", delay=600))
        wait_for(lambda: not up(url))  # a cycle gave up on its hanging requests; they and the next ones still hang
        exporter.send_signal(signum)
        started = time.monotonic()
        # Waited for, not stopped: stop_process's own SIGTERM could arrive as
        # Python restores the default handlers in its last moments of exiting.
        exporter.wait(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        status, _, err = stop_process(exporter)
    assert status == 0, err
    assert elapsed < 30  # a fraction of a second on an idle machine; the hanging requests would take 300 s
    assert "stopping" in err


def test_an_unreachable_binance_is_survived_and_reported():
    dead = f"http://127.0.0.1:{free_port()}"
    exporter, url = start_exporter(dead, "--update-interval", "0.5", "--request-timeout", "0.5")
    skipped = ("binance_exporter_requests_skipped_total", (("endpoint", "/api/v3/exchangeInfo"), ("reason", "backoff")))
    try:
        wait_for(lambda: scrape(url).get(skipped, 0) >= 2)  # backing off, not asking every cycle
        metrics = scrape(url)
        assert metrics[("binance_up", ())] == 0
        assert metrics[("binance_exporter_last_update_timestamp_seconds", ())] == 0
        assert metrics[("binance_exporter_paused_until_timestamp_seconds", ())] > time.time()
        assert http_get(url + "/healthz")[0] == 503
        assert exporter.poll() is None
    finally:
        status, out, err = stop_process(exporter)
    assert status == 0
    assert f"cannot reach {dead}: Failed to establish a new connection" in err
    assert err.count("ERROR") == 1  # said once, not every cycle
    assert "Traceback" not in err
    assert out == ""


def test_it_becomes_healthy_when_binance_comes_back(simulator):
    simulator.inject(Fault("/api/v3/exchangeInfo", status=503, body=b"down", times=2))
    exporter, url = start_exporter(simulator.url, "--update-interval", "0.5")
    try:
        wait_for(lambda: up(url))
        assert http_get(url + "/healthz")[0] == 200
    finally:
        status, _, err = stop_process(exporter)
    assert status == 0
    assert "HTTP 503" in err


def test_once_prints_the_report_and_exits_0(binance):
    process = start_module("binance_exporter", "--once", "--base-url", binance)
    process.wait(timeout=30)
    status, out, err = stop_process(process)
    assert status == 0, err
    assert out.startswith("Binance spot market report")
    for symbol in Q1 + Q2:
        assert symbol in out
    assert "n/a" not in out


def test_once_as_json(binance):
    process = start_module(
        "binance_exporter.exporter",
        "--base-url",
        binance,
        env={"BINANCE_EXPORTER_ONCE": "1", "BINANCE_EXPORTER_FORMAT": "json"},
    )
    process.wait(timeout=30)
    status, out, _ = stop_process(process)
    report = json.loads(out)
    assert status == 0
    assert [row["symbol"] for row in report["q1"]] == list(Q1)
    assert [row["symbol"] for row in report["q4"]] == list(Q2)


Q1_ETH = ("BNBETH", "LINKETH", "ADAETH", "XRPETH")
Q2_USDC = ("BTCUSDC", "ETHUSDC", "SOLUSDC")
MORE_LISTS = ("--quote-volume-assets", "BTC,ETH,BUSD", "--trade-count-assets", "USDT,USDC")


def test_once_with_a_list_per_quote_asset_prints_every_list_and_fetches_each_book_once(simulator):
    lists = (*MORE_LISTS, "--top", "4", "--update-interval", "30")  # within the default weight budget
    process = start_module("binance_exporter", "--once", "--base-url", simulator.url, *lists)
    process.wait(timeout=30)
    status, out, err = stop_process(process)
    assert status == 0, err
    sections = [line for line in out.splitlines() if line[:2] in ("Q1", "Q2", "Q3", "Q4")]
    assert sections == [
        "Q1  Top BTC-quoted symbols by 24 h quote volume (BTC)",
        "Q1  Top ETH-quoted symbols by 24 h quote volume (ETH)",
        "Q1  Top BUSD-quoted symbols by 24 h quote volume (BUSD)",
        "Q2  Top USDT-quoted symbols by 24 h trade count",
        "Q2  Top USDC-quoted symbols by 24 h trade count",
        "Q3  Notional of the best 200 price levels of each side (quote asset)",
        "Q4  Spread: best ask - best bid (quote asset)",
    ]
    busd = out.splitlines().index(sections[2])
    assert out.splitlines()[busd + 1] == "    none: no TRADING symbol is quoted in BUSD"
    notionals = out.partition(sections[5])[2].partition(sections[6])[0]
    assert [line.split()[0] for line in notionals.splitlines() if line] == list(Q1[:4] + Q1_ETH)
    spreads = out.partition(sections[6])[2]
    assert [line.split()[0] for line in spreads.splitlines() if line] == list(Q2[:4] + Q2_USDC)
    assert "n/a" not in out
    assert "top BUSD quote_volume: none, no TRADING symbol is quoted in BUSD" in err
    # the 24 h tickers once for all lists, a depth per Q1 symbol, one bookTicker for all Q2 symbols
    assert simulator.stats()["requests"] == {
        "/api/v3/exchangeInfo": 1,
        "/api/v3/ticker/24hr": 1,
        "/api/v3/depth": 8,
        "/api/v3/ticker/bookTicker": 1,
    }


def test_more_lists_at_settings_over_the_budget_are_refused_naming_them():
    process = start_module("binance_exporter", "--quote-volume-assets", "BTC,ETH", "--base-url", "http://127.0.0.1:1")
    process.wait(timeout=30)
    status, out, err = stop_process(process)
    assert (status, out) == (2, "")
    assert err == (
        "binance-exporter: error: --update-interval 10 with --top 5, --quote-volume-assets BTC,ETH and "
        "--rank-interval 60 needs 1605 request weight a minute, over --weight-budget 1200: raise --update-interval, "
        "lower --top, name fewer --quote-volume-assets or raise --weight-budget\n"
    )


def listed(*lists):
    """(quote asset, symbol) of each symbol of ``lists`` of (quote asset, symbols), in order."""
    return [(asset, symbol) for asset, symbols in lists for symbol in symbols]


def ranks_of(metrics):
    """The scraped ranks, by (ranking, quote asset, symbol)."""
    return {
        (labels["ranking"], labels["quote_asset"], labels["symbol"]): value
        for (name, items), value in metrics.items()
        if name == "binance_top_symbol_rank"
        for labels in [dict(items)]
    }


def test_every_list_is_served_at_metrics_and_printed_as_json(binance):
    exporter, url = start_exporter(binance, "--update-interval", "1", "--format", "json", *MORE_LISTS)
    try:
        wait_for(lambda: up(url))
        metrics = scrape(url)
    finally:
        status, out, err = stop_process(exporter)
    assert status == 0, err
    assert ranks_of(metrics) == {  # and nothing for BUSD
        (ranking, asset, symbol): rank
        for ranking, asset, symbols in (
            ("quote_volume", "BTC", Q1),
            ("quote_volume", "ETH", Q1_ETH),
            ("trade_count", "USDT", Q2),
            ("trade_count", "USDC", Q2_USDC),
        )
        for rank, symbol in enumerate(symbols, start=1)
    }
    for symbol in Q1_ETH:
        book = served(binance, f"/api/v3/depth?symbol={symbol}&limit=200")
        for side, levels in (("bid", book["bids"]), ("ask", book["asks"])):
            assert metrics[("binance_order_book_notional", (("side", side), ("symbol", symbol)))] == float(
                notional(levels)
            )
    for top in served(binance, "/api/v3/ticker/bookTicker?symbols=" + json.dumps(list(Q2_USDC)).replace(" ", "")):
        assert metrics[("binance_spread", (("symbol", top["symbol"]),))] == float(
            D(top["askPrice"]) - D(top["bidPrice"])
        )
    report, *spread_lines = [json.loads(line) for line in out.splitlines()]
    assert report["type"] == "report"
    assert [(row["quote_asset"], row["symbol"]) for row in report["q1"]] == listed(("BTC", Q1), ("ETH", Q1_ETH))
    assert [(row["quote_asset"], row["symbol"]) for row in report["q3"]] == listed(("BTC", Q1), ("ETH", Q1_ETH))
    q2 = listed(("USDT", Q2), ("USDC", Q2_USDC))
    assert [(row["quote_asset"], row["symbol"]) for row in report["q4"]] == q2
    assert [(line["quote_asset"], line["symbol"]) for line in spread_lines[: len(q2)]] == q2


def test_once_exits_1_when_binance_cannot_be_reached():
    process = start_module("binance_exporter.exporter", "--once", "--base-url", f"http://127.0.0.1:{free_port()}")
    process.wait(timeout=30)
    status, out, err = stop_process(process)
    assert status == 1
    assert "could not read everything from Binance" in err
    assert "Traceback" not in err
    assert "Q1" in out


def test_a_port_in_use_is_a_one_line_error():
    process, url = start_exporter("http://127.0.0.1:1")
    try:
        wait_for(lambda: http_get(url + "/healthz")[0])
        second = start_module("binance_exporter.exporter", "--port", url.rsplit(":", 1)[1], "--address", "127.0.0.1")
        second.wait(timeout=30)
        status, _, err = stop_process(second)
    finally:
        stop_process(process)
    assert status == 2
    assert err.endswith(
        f"binance-exporter: error: cannot listen on 127.0.0.1:{url.rsplit(':', 1)[1]}: Address already in use\n"
    )
    assert "Traceback" not in err


def test_metrics_answer_while_every_call_to_binance_hangs(simulator):
    exporter, url = start_exporter(simulator.url, "--update-interval", "1", "--request-timeout", "300")
    latencies = []
    try:
        wait_for(lambda: up(url))
        for path in ("/api/v3/depth", "/api/v3/ticker/bookTicker", "/api/v3/ticker/24hr", "/api/v3/exchangeInfo"):
            simulator.inject(Fault(path, delay=600))
        wait_for(lambda: not up(url))  # a cycle gave up on its hanging requests
        for _ in range(20):
            started = time.monotonic()
            assert http_get(url + "/metrics", timeout=300)[0] == 200
            latencies.append(time.monotonic() - started)
    finally:
        stop_process(exporter)
    # Never waits for Binance's hang (how fast it answers is measured by make bench).
    assert max(latencies) < 30


def test_a_rate_limited_exporter_sends_nothing_until_retry_after_then_recovers(simulator):
    simulator.inject(
        Fault(
            "/api/v3/ticker/bookTicker",
            status=429,
            body=b'{"code":-1003,"msg":"Too much request weight used"}',
            headers={"Retry-After": "5"},
            times=1,
        )
    )
    exporter, url = start_exporter(simulator.url, "--update-interval", "0.5")
    rate_limited = ("binance_exporter_rate_limited_total", (("code", "429"),))
    try:
        # The first scrape that shows the 429 shows the exporter down: it is paused for 5 s.
        metrics = wait_for(lambda: (m := scrape(url)).get(rate_limited, 0) >= 1 and m)
        assert metrics[("binance_up", ())] == 0
        wait_for(lambda: up(url))
    finally:
        status, _, err = stop_process(exporter)
    assert status == 0
    assert simulator.violations == 0
    assert "sending nothing to Binance for 5 s" in err


def test_several_base_urls_fail_over_to_one_that_answers(simulator):
    dead = f"http://127.0.0.1:{free_port()}"
    exporter, url = start_exporter(f"{dead},{simulator.url}", "--update-interval", "0.5")
    try:
        wait_for(lambda: up(url))
    finally:
        status, _, err = stop_process(exporter)
    assert status == 0
    assert f"switching from {dead} to {simulator.url}" in err


def _last_update(url):
    return scrape(url).get(("binance_exporter_last_update_timestamp_seconds", ()), 0)


@pytest.mark.parametrize("stdout", ["closed", "full", "broken"])
def test_a_closed_full_or_broken_stdout_is_logged_once_and_updates_go_on(binance, stdout):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = ["sh", "-c", 'exec "$@" >&-', "sh"] if stdout == "closed" else []
    command += [sys.executable, "-m", "binance_exporter", "--port", str(port), "--address", "127.0.0.1"]
    command += ["--base-url", binance, "--update-interval", "0.5", "--weight-budget", "100000"]
    with open("/dev/full", "w", encoding="utf-8") as full:
        exporter = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped below
            command,
            cwd=ROOT,
            stdout={"closed": None, "full": full, "broken": subprocess.PIPE}[stdout],
            stderr=subprocess.PIPE,
            text=True,
        )
    if stdout == "broken":
        exporter.stdout.close()  # nobody reads: the first write fails with EPIPE
    try:
        wait_for(lambda: up(url))
        first = _last_update(url)
        wait_for(lambda: _last_update(url) > first)
        seen = _last_update(url)
        wait_for(lambda: _last_update(url) > seen)  # cycles go on, and so does printing's failure
    finally:
        exporter.terminate()
        err = exporter.communicate(timeout=10)[1]
    assert exporter.returncode == 0, err
    assert err.count("cannot print the report to stdout") == 1
    assert "Traceback" not in err and "Exception ignored" not in err


def test_signal_handlers_are_in_place_before_the_slow_imports():
    probe = (
        "import runpy, signal, sys\n"
        "def audit(event, args):\n"
        "    if event == 'import' and args[0] == 'requests':\n"
        "        print('handled' if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL else 'default')\n"
        "        sys.stdout.flush()\n"
        "sys.addaudithook(audit)\n"
        "sys.argv = ['binance_exporter', '--version']\n"
        "runpy.run_module('binance_exporter', run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines()[0] == "handled"


def _handles(process, signum):
    """Whether ``process`` has its own handler for ``signum`` installed yet."""
    with open(f"/proc/{process.pid}/status", encoding="ascii") as status:
        caught = next(line for line in status if line.startswith("SigCgt:"))
    return int(caught.split()[1], 16) & (1 << (signum - 1))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_a_stop_signal_at_start_up_ends_it_cleanly(binance, signum):
    exporter, _ = start_exporter(binance)
    # The last signal it takes over: every stop signal is its own by then. (SIGINT alone
    # would not do: Python catches it from the start, to raise KeyboardInterrupt.)
    wait_for(lambda: _handles(exporter, (STOP_SIGNALS + IGNORED_SIGNALS)[-1]), interval=0.001)
    exporter.send_signal(signum)
    exporter.wait(timeout=30)  # not stop_process at once: its own SIGTERM would be a second signal
    status, _, err = stop_process(exporter)
    assert status == 0, err
    assert "Traceback" not in err
    assert f"stopping on {signal.Signals(signum).name}" in err


def test_sighup_is_logged_and_ignored(binance):
    exporter, url = start_exporter(binance, "--update-interval", "0.5")
    try:
        wait_for(lambda: up(url))
        exporter.send_signal(signal.SIGHUP)
        first = _last_update(url)
        wait_for(lambda: _last_update(url) > first)
        assert exporter.poll() is None
    finally:
        status, _, err = stop_process(exporter)
    assert status == 0
    assert "SIGHUP received 1 time(s): ignored, there is nothing to reload" in err


def test_json_logs_are_one_object_per_line_on_stderr(simulator):
    simulator.inject(Fault("/api/v3/depth", symbol="ETHBTC", status=503, body=b"down", times=1))
    exporter, url = start_exporter(
        simulator.url, "--update-interval", "0.5", "--loglevel", "debug", env={"BINANCE_EXPORTER_LOG_FORMAT": "json"}
    )
    try:
        wait_for(lambda: up(url))
    finally:
        status, out, err = stop_process(exporter)
    assert status == 0, err
    entries = [json.loads(line) for line in err.splitlines()]  # every line, or this fails
    for entry in entries:
        assert {"time", "level", "logger", "message", "source", "thread"} <= set(entry), entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry
    assert any(re.match(r"binance-exporter \S+ serving http://127\.0\.0\.1:", e["message"]) for e in entries)
    assert any("HTTP 503" in e["message"] for e in entries)
    assert {"DEBUG", "INFO"} <= {e["level"] for e in entries}
    assert "scheduler" in {e["thread"] for e in entries}
    assert entries[-1]["message"] == "stopping on SIGTERM" and entries[-1]["source"].startswith("exporter.py:")
    assert out.startswith("Binance spot market report")  # the report is not a log: still on stdout, as text


def start_demo(*variables):
    """``make demo`` with make's ``variables``."""
    return start_make("demo", *variables)


def stop_demo(demo):
    return stop_make(demo)


def run_demo_to_its_end(sim_port):
    """(exit status, stderr) of a ``make demo`` on ``sim_port`` that is expected to stop by itself."""
    demo = start_demo(f"PORT={free_port()}", f"SIM_PORT={sim_port}", f"SIM_STREAM_PORT={free_port()}")
    try:
        demo.wait(timeout=60)
    finally:
        status, _, err = stop_demo(demo)
    return status, err


def test_make_demo_runs_the_exporter_on_port_against_the_fake_on_sim_port():
    port, sim_port = free_port(), free_port()
    demo = start_demo(f"PORT={port}", f"SIM_PORT={sim_port}", f"SIM_STREAM_PORT={free_port()}")
    try:
        wait_for(lambda: up(f"http://127.0.0.1:{port}"), timeout=60)
    finally:
        _, _, err = stop_demo(demo)
    assert f"reading http://127.0.0.1:{sim_port} every" in err


def test_make_demo_stops_at_once_when_the_fake_binance_cannot_listen():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()  # accepts connections, answers nothing
        sim_port = taken.getsockname()[1]
        status, err = run_demo_to_its_end(sim_port)
    assert status == 2
    assert err.splitlines()[0] == (
        "python -m binance_exporter.fake.simulator: error: "
        f"cannot listen on 127.0.0.1:{sim_port}: Address already in use"
    )
    assert "binance-exporter" not in err  # never started


def test_make_demo_refuses_a_sim_port_where_a_fake_binance_answers_already(simulator):
    sim_port = simulator.server.server_address[1]
    status, err = run_demo_to_its_end(sim_port)
    assert status == 2
    assert err.splitlines()[0] == (
        f"make demo: port {sim_port} is in use (a demo running already?); choose another: make demo SIM_PORT=..."
    )
    assert simulator.stats()["requests"] == {"/api/v3/ping": 1}  # asked once, then nothing


def test_served_over_tls_with_basic_auth_from_a_web_config_file(binance, tmp_path):
    pki = make_pki(tmp_path)
    hashed = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(4)).decode()
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"basic_auth_users:\n  prometheus: {hashed}\n"
    )
    exporter, url = start_exporter(binance, "--web.config.file", str(web_config))
    url = url.replace("http://", "https://")
    context = ssl.create_default_context(cafile=str(pki.ca))
    token = base64.b64encode(b"prometheus:wonderland").decode()

    def scrape_over_tls(password_token):
        request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Basic {password_token}"})
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    try:
        wait_for(lambda: b"\nbinance_up 1.0\n" in scrape_over_tls(token)[1])
        assert scrape_over_tls(base64.b64encode(b"prometheus:guess").decode())[0] == 401
    finally:
        status, _, err = stop_process(exporter)
    assert status == 0
    assert f"serving {url}/metrics" in err


def test_a_web_config_file_that_cannot_be_used_is_a_one_line_error(tmp_path):
    web_config = tmp_path / "web.yml"
    web_config.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    process = start_module("binance_exporter", "--port", str(free_port()), "--web.config.file", str(web_config))
    process.wait(timeout=30)
    status, _, err = stop_process(process)
    assert status == 2
    assert err == (
        f"binance-exporter: error: --web.config.file {web_config}: basic_auth_users.prometheus is not a bcrypt hash "
        "($2y$10$ and 53 more characters): passwords are stored hashed, see the README on how to make one\n"
    )


def test_it_listens_on_ipv6(binance):
    port = free_port()
    state_dir = tempfile.mkdtemp(dir=os.environ["XDG_STATE_HOME"])
    exporter = start_module(
        "binance_exporter", "--port", str(port), "--address", "::1", "--base-url", binance, "--state-dir", state_dir
    )
    try:
        wait_for(lambda: http_get(f"http://[::1]:{port}/-/healthy")[0] == 200)
    finally:
        status, _, err = stop_process(exporter)
    assert status == 0 and f"serving http://[::1]:{port}/metrics" in err
