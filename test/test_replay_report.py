"""The exporter's answers computed again from a recording
(``python -m binance_exporter.replay --report``): equal to what the live
exporter printed, and clear about recordings it cannot read."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from binance_exporter.binance.recording import Recorder, read_recordings
from binance_exporter.fake.faults import Fault, StreamFault
from binance_exporter.fake.market import Market
from binance_exporter.market.definitions import format_utc
from binance_exporter.replay.offline import CSV_COLUMNS, OfflineAnswers

from .helpers import ROOT, FakeClock, free_port, scrape, start_make, start_module, stop_make, stop_process, wait_for

SPREAD_LINES_WANTED = 160  # about sixteen cycles of ten symbols


def replay(*args: str) -> subprocess.CompletedProcess:
    """``python -m binance_exporter.replay args``, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "binance_exporter.replay", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def spread_lines(path) -> list[dict]:
    """The Q5 lines printed so far (JSON)."""
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines[:-1] if '"type": "spread"' in line]  # the last may be half-written


def reconnects(port: int, reason: str) -> float:
    """The exporter's stream connections replaced for ``reason`` so far."""
    return scrape(f"http://127.0.0.1:{port}").get(("binance_stream_reconnects_total", (("reason", reason),)), 0.0)


@pytest.fixture(name="live_run", scope="module")
def live_run_fixture(tmp_path_factory):
    """The exporter, in stream mode against the fake Binance, recorded,
    with its printed answers (JSON); a stream gap on one book and its
    resync, Binance's shutdown notice (a handover to a new connection) and
    a lost connection happen in the middle."""
    # pylint: disable=import-outside-toplevel  # a module-scoped fixture cannot use the function-scoped one
    from binance_exporter.fake.simulator import BinanceSimulator

    directory = tmp_path_factory.mktemp("replay")
    recording, printed = directory / "recording", directory / "printed.jsonl"
    simulator = BinanceSimulator(Market(tick_seconds=0.1), stream_port=0).start()
    try:
        with printed.open("w") as out:
            port = free_port()
            process = start_module(
                "binance_exporter",
                *("--source", "stream", "--port", str(port), "--address", "127.0.0.1"),
                *("--update-interval", "0.5", "--rank-interval", "2", "--format", "json", "--record", str(recording)),
                *("--base-url", simulator.url, "--stream-url", simulator.stream_url),
                stdout=out,
            )

            def until(lines: int) -> None:
                wait_for(lambda: len(spread_lines(printed)) >= lines or process.poll(), timeout=60)

            try:
                until(SPREAD_LINES_WANTED // 4)
                # BTCUSDT's book resyncs, its snapshot slow to come: cycles without its spread.
                simulator.inject(Fault(path="/api/v3/depth", symbol="BTCUSDT", delay=1.5, times=1))
                simulator.inject(StreamFault(path="stream", action="gap", symbol="BTCUSDT", times=1))
                until(SPREAD_LINES_WANTED // 2)
                # Binance's shutdown notice: the exporter hands every book over to a new connection.
                simulator.inject(StreamFault(path="stream", action="shutdown", times=1))
                until(SPREAD_LINES_WANTED * 3 // 4)
                # A connection lost: its books are interrupted, then resume or resync as it reconnects.
                simulator.inject(StreamFault(path="stream", action="drop", times=1))
                wait_for(lambda: reconnects(port, "error") or process.poll(), timeout=60)
                until(SPREAD_LINES_WANTED)
            finally:
                status, _, err = stop_process(process)
        assert status == 0 and len(spread_lines(printed)) >= SPREAD_LINES_WANTED, err
    finally:
        simulator.stop()
    return recording, printed


def test_the_report_from_a_recording_prints_exactly_what_the_live_exporter_printed(live_run):
    recording, printed = live_run
    result = replay("--report", str(recording), "--format", "json")
    assert result.returncode == 0, result.stderr
    live = printed.read_text()
    assert result.stdout == live[: len(result.stdout)] and len(result.stdout) >= len(live.rsplit("\n", 2)[0])
    spreads = [json.loads(line) for line in result.stdout.splitlines() if '"type": "spread"' in line]
    assert len(spreads) >= SPREAD_LINES_WANTED
    assert sum(line["spread"] is not None for line in spreads) > len(spreads) / 2  # answers, not only n/a
    assert any(line["symbol"] == "BTCUSDT" and line["spread"] is None for line in spreads)  # the gap's resync
    assert "times real time" in result.stderr


def test_the_csv_holds_every_book_of_every_cycle_with_the_printed_spreads(live_run):
    recording, printed = live_run
    result = replay("--report", str(recording), "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    printed_spreads = Counter((line["time"], line["symbol"], line["spread"]) for line in spread_lines(printed))
    from_csv = Counter((row["time"], row["symbol"], row["spread"] or None) for row in rows)
    assert printed_spreads and not printed_spreads - from_csv  # every printed spread in its cycle's row
    in_sync = [row for row in rows if row["in_sync"] == "1"]
    assert in_sync and all(row["mid"] and row["imbalance_1"] for row in in_sync)
    assert all(not row["mid"] for row in rows if row["in_sync"] == "0")


def test_text_and_interval_reports_run_the_cycles_asked_for(live_run):
    recording, _ = live_run
    text = replay("--report", str(recording))
    assert text.returncode == 0 and text.stdout.startswith("Binance spot market report, ")
    assert " spread " in text.stdout and "   delta " in text.stdout
    every_second = replay("--report", str(recording), "--interval", "1", "--format", "json")
    every_half = replay("--report", str(recording), "--interval", "0.5", "--format", "json")
    assert every_second.returncode == every_half.returncode == 0
    seconds, halves = (int(re.search(r"(\d+) cycles from", r.stderr).group(1)) for r in (every_second, every_half))
    assert seconds >= 5 and 2 * seconds - 1 <= halves <= 2 * seconds + 1
    spreads = [json.loads(line) for line in every_second.stdout.splitlines() if '"type": "spread"' in line]
    assert sum(line["spread"] is not None for line in spreads) > len(spreads) / 2  # the books are rebuilt


def recorded_tops(lines: list[dict]) -> dict[tuple[str, int], tuple[Decimal, Decimal]]:
    """The best bid and ask of each recorded book after each of its
    events, by (symbol, update id), rebuilt here from the recorded
    snapshots and diffs on their own."""
    books: dict[str, list] = {}  # symbol: [update id, bids, asks]
    waiting: dict[str, list[dict]] = {}  # events of a book not known (yet, or since a gap)
    tops = {}

    def apply(event: dict) -> None:
        book = books[event["s"]]
        if event["u"] <= book[0]:
            return
        if event["U"] > book[0] + 1:  # a gap: the book is unknown until its next snapshot
            del books[event["s"]]
            return
        for side, levels in ((book[1], event["b"]), (book[2], event["a"])):
            for price, qty in levels:
                side[Decimal(price)] = Decimal(qty)
                if not Decimal(qty):
                    del side[Decimal(price)]
        book[0] = event["u"]
        tops[(event["s"], event["u"])] = (max(book[1]), min(book[2]))

    for line in lines:
        if line.get("rest") == "/api/v3/depth":
            symbol, body = parse_qs(line["query"])["symbol"][0], json.loads(line["body"])
            if symbol not in books:
                sides = [{Decimal(p): Decimal(q) for p, q in body[side]} for side in ("bids", "asks")]
                books[symbol] = [body["lastUpdateId"], *sides]
                for event in waiting.pop(symbol, []):
                    if symbol in books:
                        apply(event)
        elif "ws" in line and '"depthUpdate"' in line["msg"]:
            event = json.loads(line["msg"])["data"]
            if event["s"] in books:
                apply(event)
            if event["s"] not in books:
                waiting.setdefault(event["s"], []).append(event)
    return tops


def run_exporter_on_replay(recording, directory):
    """The exporter, recorded, against ``recording`` served at speed 2,
    until it has printed half the spread lines wanted; (its recording,
    what it printed)."""
    server = start_module(
        "binance_exporter.replay",
        *(str(recording), "--speed", "2", "--port", str(free_port()), "--stream-port", str(free_port())),
    )
    replayed, printed = directory / "replayed", directory / "printed.jsonl"
    try:
        started = server.stdout.readline()
        assert started.startswith("replaying at speed 2: streaming on ws://"), stop_process(server)
        stream_url, rest_url = started.split()[-4].rstrip(","), started.split()[-1]
        with printed.open("w") as out:
            exporter = start_module(
                "binance_exporter",
                *("--source", "stream", "--port", str(free_port()), "--address", "127.0.0.1"),
                *("--update-interval", "0.5", "--rank-interval", "2", "--format", "json", "--record", str(replayed)),
                *("--base-url", rest_url, "--stream-url", stream_url),
                stdout=out,
            )
            try:
                wait_for(lambda: len(spread_lines(printed)) >= SPREAD_LINES_WANTED // 2 or exporter.poll(), timeout=60)
            finally:
                status, _, err = stop_process(exporter)
        assert status == 0 and len(spread_lines(printed)) >= SPREAD_LINES_WANTED // 2, err
    finally:
        stop_process(server)
    return replayed, printed


def test_the_unchanged_exporter_on_the_replayed_recording_reads_exactly_the_recorded_books(live_run, tmp_path):
    recording, _ = live_run
    replayed, printed = run_exporter_on_replay(recording, tmp_path)
    # What it printed is what its own recording gives offline ...
    result = replay("--report", str(replayed), "--format", "json")
    assert result.returncode == 0 and result.stdout.startswith(printed.read_text().rsplit("\n", 2)[0])
    # ... and every book it read, at every cycle, is the live run's book at the same update id.
    tops = recorded_tops(list(read_recordings([recording])))
    read = {line["cycle"]["n"]: line["cycle"]["books"] for line in read_recordings([replayed]) if "cycle" in line}
    table = replay("--report", str(replayed), "--format", "csv")
    checked = 0
    for row in csv.DictReader(io.StringIO(table.stdout)):
        if row["in_sync"] == "1":
            bid, ask = tops[(row["symbol"], read[int(row["cycle"])][row["symbol"]])]
            assert (Decimal(row["spread"]), Decimal(row["mid"])) == (ask - bid, (bid + ask) / 2)
            checked += 1
    assert checked >= SPREAD_LINES_WANTED // 2


def test_a_book_the_recording_does_not_rebuild_is_not_answered_and_the_report_says_so(live_run, tmp_path):
    recording, _ = live_run
    lines = list(read_recordings([recording]))
    cycle = next(line for line in reversed(lines) if "cycle" in line and any(line["cycle"]["books"].values()))
    symbol = next(s for s, update_id in cycle["cycle"]["books"].items() if update_id is not None)
    cycle["cycle"]["books"][symbol] += 1  # a cycle that read an event the recording lost
    out = io.StringIO()
    answers = OfflineAnswers(out, "csv")
    answers.run(lines)
    assert answers.mismatches == 1
    row = [row for row in csv.DictReader(io.StringIO(out.getvalue())) if row["symbol"] == symbol][-1]
    assert row["in_sync"] == "0" and row["spread"] == "" and row["mid"] == ""
    copy = tmp_path / "binance-20261123T000000Z.jsonl.gz"
    with gzip.open(copy, "wt") as file:
        file.writelines(json.dumps(line) + "\n" for line in lines)
    result = replay("--report", str(copy))
    assert result.returncode == 1 and "were not rebuilt: lines are missing" in result.stderr


def test_a_restart_within_a_recording_starts_the_answers_afresh_as_the_exporter_did(live_run, tmp_path):
    recording, _ = live_run
    lines, hour = list(read_recordings([recording])), 3600.0
    later = [later_by(line, hour) for line in lines]
    for name, run in (("binance-20261123T000000Z.jsonl.gz", lines), ("binance-20261123T010000Z.jsonl.gz", later)):
        with gzip.open(tmp_path / name, "wt") as file:
            file.writelines(json.dumps(line) + "\n" for line in run)
    once, twice = io.StringIO(), io.StringIO()
    OfflineAnswers(once, "json").run(lines)
    OfflineAnswers(twice, "json").run(read_recordings([tmp_path]))
    first = [json.loads(line) for line in once.getvalue().splitlines()]
    shifted = [{**line, "time": format_utc(parse_utc(line["time"]) + hour)} for line in first]
    assert [json.loads(line) for line in twice.getvalue().splitlines()] == first + shifted
    assert first[0]["type"] == shifted[0]["type"] == "report"  # the restarted exporter printed its report again


def later_by(line: dict, seconds: float) -> dict:
    """A recording's line as if recorded ``seconds`` later, by a run of the exporter started then."""
    if "format" in line:
        return {**line, "run": line["run"] + seconds, "started": line["started"] + seconds}
    moved = {**line, "t": line["t"] + seconds}
    if "cycle" in line:
        cycle = line["cycle"]
        moved["cycle"] = {**cycle, "clock": cycle["clock"] + seconds, "time": cycle["time"] + seconds}
    return moved


def parse_utc(text: str) -> float:
    """The Unix time of ``2026-11-23T10:00:00Z``."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def write_recording(directory, lines: list[dict], source: str = "stream") -> None:
    """A recording file of ``lines`` after its header, as the recorder writes them."""
    recorder = Recorder(directory, 10**9, clock=FakeClock(1_795_430_000.0), settings={"source": source})
    recorder.start()
    for line in lines:
        if "cycle" in line:
            recorder.cycle(line["cycle"])
        else:
            recorder.rest_answer(line["rest"], line["query"], line["body"].encode())
    recorder.stop()


def test_bad_files_are_a_one_line_error_naming_the_file_and_line_unless_skipped(tmp_path):
    good = tmp_path / "good"
    exchange_info = {"rest": "/api/v3/exchangeInfo", "query": "", "body": json.dumps(Market().exchange_info())}
    write_recording(good, [exchange_info, {"cycle": {"n": 1, "clock": 5.0, "time": 1_795_430_000.0, "books": {}}}])
    other = tmp_path / "other.jsonl.gz"
    other.write_bytes(gzip.compress(b'{"name": "another tool"}\n'))
    corrupt = tmp_path / "corrupt.jsonl.gz"
    header = gzip.compress(b'{"format": "binance-exporter-recording", "version": 1}\n')
    corrupt.write_bytes(header + b"\x1f\x8b\x08\x00 not deflate at all")
    noise = random.Random(1)
    answer = [json.dumps({"result": None, "id": noise.randbytes(200).hex()}) for _ in range(100)]
    lines = [json.dumps({"t": t, "ws": 1, "msg": answer[t]}) + "\n" for t in range(100)]
    whole = gzip.compress(('{"format": "binance-exporter-recording", "version": 1}\n' + "".join(lines)).encode())
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])  # a copy cut short
    for bad, why in (
        (other, f"{other}: line 1: not a binance-exporter-recording of version 1"),
        (corrupt, "line 2: not gzip-compressed JSON lines"),
        (truncated, f"{truncated}: line 51: cut short (the file was truncated, or its recorder killed"),
    ):
        result = replay("--report", str(good), str(bad))
        assert result.returncode == 2 and why in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        skipped = replay("--report", "--skip-bad", str(good), str(bad))
        assert skipped.returncode == 0 and "WARNING" in skipped.stderr and str(bad) in skipped.stderr


def test_a_rest_mode_recording_a_missing_path_and_bad_flags_are_one_line_errors(tmp_path):
    good, rest = tmp_path / "good", tmp_path / "rest"
    write_recording(good, [{"rest": "/api/v3/exchangeInfo", "query": "", "body": '{"symbols": []}'}])
    write_recording(rest, [{"rest": "/api/v3/exchangeInfo", "query": "", "body": '{"symbols": []}'}], "rest")
    for args, why in (
        ([str(rest)], "recorded with --source rest; replay needs a recording of the exporter in stream mode"),
        (["--report", str(rest)], "recorded with --source rest"),
        ([str(tmp_path / "missing")], "no such file or directory"),
        ([str(tmp_path)], "holds no recording file"),
        (["--report", "--interval", "0", str(good)], "--interval: must be a number above 0"),
        (["--report", "--interval", "0.01", str(good)], "--interval: must be at least 0.1 seconds, not '0.01'"),
        (["--interval", "10", str(good)], "--interval and --format go with --report"),
    ):
        result = replay(*args)
        assert result.returncode == 2 and why in result.stderr and len(result.stderr.strip().splitlines()) == 1


def books_in_sync(port: int) -> list[float]:
    """The exporter's binance_order_book_in_sync values."""
    samples = scrape(f"http://127.0.0.1:{port}")
    return [value for (name, _), value in samples.items() if name == "binance_order_book_in_sync"]


def test_make_replay_runs_the_exporter_against_the_recording_and_asks_for_one_when_none_is_named(live_run):
    recording, _ = live_run
    status, _, err = stop_make(wait_for(lambda run=start_make("replay"): run.poll() is not None and run, timeout=30))
    assert status == 2 and err.splitlines()[0] == "make replay: name the recording: make replay FILE=DIR [SPEED=10]"
    port, sim_stream_port = free_port(), free_port()
    run = start_make(
        "replay",
        *(f"FILE={recording}", f"PORT={port}", f"SIM_PORT={free_port()}", f"SIM_STREAM_PORT={sim_stream_port}"),
        "ARGS=--source stream",
    )
    try:
        wait_for(lambda: 1.0 in books_in_sync(port), timeout=60)
    finally:
        _, out, err = stop_make(run)
    assert out.startswith(f"replaying at speed 1: streaming on ws://127.0.0.1:{sim_stream_port}, listening on http://")
    assert "Traceback" not in err


class ClosedPipe(io.StringIO):
    """A stdout whose reader went away after ``writes`` writes."""

    def __init__(self, writes: int):
        super().__init__()
        self.left = writes

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= 1
        return super().write(text)


@pytest.mark.parametrize("output_format", ["csv", "json"])
def test_a_reader_going_away_stops_the_report_without_a_traceback(live_run, output_format, caplog):
    recording, _ = live_run
    out = ClosedPipe(3)
    answers = OfflineAnswers(out, output_format)
    answers.run(read_recordings([recording]))
    assert answers.closed and answers.cycles < 10  # stopped then, not computed to the end
    assert "Broken pipe" in caplog.text


def test_a_recording_without_cycles_needs_an_interval_and_speed_has_a_ceiling(tmp_path):
    exchange_info = {"rest": "/api/v3/exchangeInfo", "query": "", "body": json.dumps(Market().exchange_info())}
    write_recording(tmp_path, [exchange_info])
    result = replay("--report", str(tmp_path))
    assert result.returncode == 1 and "holds no update cycle: --interval N computes one" in result.stderr
    result = replay(str(tmp_path), "--speed", "1001")
    assert result.returncode == 2 and "--speed: must be at most 1000, not '1001'" in result.stderr


def test_a_cycle_whose_reading_did_not_come_prints_no_value_as_the_exporter_did(live_run):
    recording, _ = live_run
    lines = list(read_recordings([recording]))
    last = max(i for i, line in enumerate(lines) if "cycle" in line)
    lines[last] = {**lines[last], "cycle": {**lines[last]["cycle"], "books": None}}
    out = io.StringIO()
    answers = OfflineAnswers(out, "csv")
    answers.run(lines)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    final = [row for row in rows if int(row["cycle"]) == lines[last]["cycle"]["n"]]
    earlier = [row for row in rows if int(row["cycle"]) == lines[last]["cycle"]["n"] - 1]
    assert final and all(row["spread"] == row["mid"] == "" for row in final) and answers.mismatches == 0
    assert any(row["spread"] for row in earlier)
