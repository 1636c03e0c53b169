"""Recording what the exporter receives (--record): files that read back
whatever happens to the process or the disk, kept within their bound, and
the real exporter recording the fake Binance."""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading

import pytest

from binance_exporter.binance import recording
from binance_exporter.binance.recording import FORMAT, FORMAT_VERSION, Recorder, RecordingError, read_recording

from .helpers import FakeClock, ROOT, free_port, scrape, start_module, stop_process, wait_for

HOUR = 1795424400.0  # 2026-11-23T09:00:00Z


def records(directory):
    """Every file of ``directory`` read back, by name, in name order."""
    return {path.name: list(read_recording(path)) for path in sorted(directory.iterdir())}


def test_what_is_received_reads_back_in_order_with_its_receive_time_after_a_header(tmp_path):
    clock = FakeClock(HOUR + 12.5)
    recorder = Recorder(tmp_path, 2**30, clock).start()
    recorder.stream_message(1, '{"stream":"ethbtc@depth@100ms","data":{"u":7}}')
    clock.advance(0.25)
    recorder.rest_answer("/api/v3/depth", "symbol=ETHBTC&limit=1000", b'{"lastUpdateId":7,"bids":[],"asks":[]}')
    recorder.stream_message(2, b'{"result":null,"id":1}')
    recorder.stop()
    assert list(records(tmp_path)) == ["binance-20261123T090012Z.jsonl.gz"]
    header, *lines = records(tmp_path)["binance-20261123T090012Z.jsonl.gz"]
    assert (header["format"], header["version"], header["started"]) == (FORMAT, FORMAT_VERSION, HOUR + 12.5)
    assert lines == [
        {"t": HOUR + 12.5, "ws": 1, "msg": '{"stream":"ethbtc@depth@100ms","data":{"u":7}}'},
        {
            "t": HOUR + 12.75,
            "rest": "/api/v3/depth",
            "query": "symbol=ETHBTC&limit=1000",
            "body": '{"lastUpdateId":7,"bids":[],"asks":[]}',
        },
        {"t": HOUR + 12.75, "ws": 2, "msg": '{"result":null,"id":1}'},
    ]
    assert recorder.counts().recorded_bytes == (tmp_path / "binance-20261123T090012Z.jsonl.gz").stat().st_size
    with gzip.open(tmp_path / "binance-20261123T090012Z.jsonl.gz") as file:  # plain gzip, for any tool
        assert len(file.read().splitlines()) == 4


def test_a_new_file_starts_with_each_hour_and_each_start(tmp_path):
    clock = FakeClock(HOUR + 3599.0)
    recorder = Recorder(tmp_path, 2**30, clock).start()
    recorder.stream_message(1, "a")
    clock.advance(2.0)  # the next hour
    recorder.stream_message(1, "b")
    recorder.stop()
    again = Recorder(tmp_path, 2**30, clock).start()  # a restart within the hour
    again.stream_message(1, "c")
    again.stop()
    found = records(tmp_path)
    assert list(found) == [
        "binance-20261123T095959Z.jsonl.gz",
        "binance-20261123T100001Z-1.jsonl.gz",
        "binance-20261123T100001Z.jsonl.gz",
    ]
    assert [[line.get("msg") for line in lines] for lines in found.values()] == [[None, "a"], [None, "c"], [None, "b"]]


def test_past_the_bound_the_oldest_whole_files_go_first(tmp_path):
    clock, rng = FakeClock(HOUR), random.Random(7)
    recorder = Recorder(tmp_path, 600_000, clock).start()
    for _ in range(6):  # six hours, each about 200 kB compressed: random text does not compress
        for _ in range(100):
            recorder.stream_message(1, "".join(rng.choices("0123456789abcdef", k=4000)))
        recorder.stop()  # one write per hour
        clock.advance(3600)
        recorder = Recorder(tmp_path, 600_000, clock).start()
    recorder.stop()
    every = [f"binance-20261123T{hour}0000Z.jsonl.gz" for hour in range(9, 15)]
    names = sorted(path.name for path in tmp_path.iterdir())
    assert len(names) >= 2 and names == every[-len(names) :]  # the newest, whole
    assert sum(path.stat().st_size for path in tmp_path.iterdir()) <= 600_000


WRITER = """
import sys, time
from binance_exporter.binance.recording import Recorder
recorder = Recorder(sys.argv[1], 2**30).start()
number = 0
print("started", flush=True)
while True:
    recorder.stream_message(1, "%d %s" % (number, "x" * (number % 500)))
    number += 1
    if number % 200 == 0:
        time.sleep(0.001)
"""


def test_after_sigkill_at_any_moment_every_file_reads_back(tmp_path):
    rng = random.Random(2026)
    for run in range(20):
        directory = tmp_path / str(run)
        writer = subprocess.Popen(  # pylint: disable=consider-using-with  # killed below
            [sys.executable, "-c", WRITER, str(directory)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout.readline() == "started\n"
        wait_for(lambda path=directory: path.exists() and any(path.iterdir()), timeout=10, interval=0.01)
        try:
            writer.wait(timeout=rng.uniform(0.0, 0.6))  # it never ends by itself: a random moment
        except subprocess.TimeoutExpired:
            pass
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        for lines in records(directory).values():
            numbers = [int(line["msg"].split()[0]) for line in lines[1:]]
            assert numbers == list(range(len(numbers)))  # every line, in order, none half-written


def test_a_write_that_fails_stops_recording_with_one_error_and_nothing_else(tmp_path, monkeypatch, caplog):
    def full_disk(_path, _mode):
        return open(os.devnull if sys.platform != "linux" else "/dev/full", "wb")  # writes fail: ENOSPC

    monkeypatch.setattr(recording, "open", full_disk, raising=False)
    recorder = Recorder(tmp_path, 2**30).start()
    for number in range(1000):
        recorder.stream_message(1, str(number))
    recorder.stop()
    assert recorder.counts().errors == 1
    assert caplog.text.count("recording stopped: cannot write to") == 1
    assert "No space left on device" in caplog.text
    recorder.stream_message(1, "after")  # ignored, no error


def test_a_directory_that_cannot_be_made_stops_recording(tmp_path, caplog):
    (tmp_path / "file").write_text("not a directory")
    recorder = Recorder(tmp_path / "file" / "recording", 2**30).start()
    recorder.stream_message(1, "x")
    recorder.stop()
    assert recorder.counts().errors == 1 and "recording stopped" in caplog.text


def test_lines_past_the_queue_are_dropped_and_counted_never_waited_for(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(recording, "MAX_QUEUED", 10)
    recorder = Recorder(tmp_path, 2**30)  # not started: nothing is taken from the queue
    with caplog.at_level(logging.ERROR):
        for number in range(25):
            recorder.stream_message(1, str(number))
    assert recorder.counts().errors == 15 and caplog.text.count("more are dropped") == 1
    monkeypatch.setattr(recording, "MAX_QUEUED", 100)
    recorder.stream_message(1, "\ud800")  # not valid Unicode: not written, counted
    assert recorder.counts().errors == 16
    recorder.start().stop()
    assert [line["msg"] for line in records(tmp_path).popitem()[1][1:]] == [str(n) for n in range(10)]


def test_a_file_cut_short_reads_back_less_its_last_line(tmp_path):
    recorder = Recorder(tmp_path, 2**30, FakeClock(HOUR)).start()
    for number in range(2000):
        recorder.stream_message(1, f"{number} " + "y" * (number % 97))
    recorder.stop()
    path = next(tmp_path.iterdir())
    whole = path.read_bytes()
    for cut in random.Random(3).sample(range(30, len(whole)), 25):
        path.write_bytes(whole[:cut])
        numbers = [int(line["msg"].split()[0]) for line in list(read_recording(path))[1:]]
        assert numbers == list(range(len(numbers)))


def test_what_is_not_a_recording_is_a_clear_error_naming_the_file_and_the_line(tmp_path):
    garbage = tmp_path / "garbage.jsonl.gz"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(RecordingError, match=rf"^{garbage}: line 1: not gzip-compressed JSON lines"):
        list(read_recording(garbage))
    other = tmp_path / "other.jsonl.gz"
    other.write_bytes(gzip.compress(b'{"some": "tool"}\n{"a": 1}\n'))
    with pytest.raises(RecordingError, match=rf"^{other}: line 1: not a {FORMAT} of version 1$"):
        list(read_recording(other))
    broken = tmp_path / "broken.jsonl.gz"
    header = json.dumps({"format": FORMAT, "version": FORMAT_VERSION})
    broken.write_bytes(gzip.compress(f'{header}\n{{"t": 1, "ws": 1, "msg": "{{}}"}}\nnot json\n'.encode()))
    with pytest.raises(RecordingError, match=rf"^{broken}: line 3: not JSON"):
        list(read_recording(broken))
    for line, why in (
        ({}, "no receive time t"),
        ({"t": float("nan"), "ws": 1, "msg": ""}, "no receive time t"),
        ({"t": 1, "ws": "1", "msg": ""}, "a websocket message needs a connection number ws and a text msg"),
        ({"t": 1, "rest": "/api/v3/depth", "query": "", "body": {}}, "a REST answer needs the texts rest, query"),
        ({"t": 1, "cycle": {"n": 1, "clock": 2, "time": 3, "books": {"A": "1"}}}, "a cycle needs its number n"),
        ({"t": 1, "cycle": []}, "a cycle needs its number n, clock, time and the update id of each book"),
        ({"t": 1, "other": 1}, "neither a websocket message, a REST answer nor a cycle"),
        ({"format": "another", "version": 1}, f"not a {FORMAT} of version 1"),
    ):
        broken.write_bytes(gzip.compress(f"{header}\n{json.dumps(line)}\n".encode()))
        with pytest.raises(RecordingError, match=rf"^{broken}: line 2: {why}"):
            list(read_recording(broken))
    with pytest.raises(RecordingError, match="No such file"):
        list(read_recording(tmp_path / "missing.jsonl.gz"))
    twice = tmp_path / "twice.jsonl.gz"
    cycle = json.dumps({"t": 1, "cycle": {"n": 1, "clock": 1, "time": 1, "books": {}}})
    twice.write_bytes(gzip.compress(f"{header}\n".encode()) + gzip.compress(f"{header}\n{cycle}\n".encode()))
    assert len(list(read_recording(twice))) == 3


def recorded_bytes(port: int) -> float:
    return scrape(f"http://127.0.0.1:{port}").get(("binance_exporter_recorded_bytes_total", ()), 0.0)


def test_the_exporter_records_every_message_and_answer_and_survives_sigkill(streaming, tmp_path):
    port = free_port()
    process = start_module(
        "binance_exporter",
        *("--source", "stream", "--port", str(port), "--address", "127.0.0.1", "--update-interval", "0.5"),
        *("--base-url", streaming.url, "--stream-url", streaming.stream_url, "--record", str(tmp_path)),
        stdout=subprocess.DEVNULL,
    )
    try:
        found = wait_for(
            lambda: (s := scrape(f"http://127.0.0.1:{port}")).get(("binance_exporter_recorded_bytes_total", ())) and s,
            timeout=60,
        )
        assert found[("binance_exporter_recording_errors_total", ())] == 0
        wait_for(lambda: streaming.stats()["requests"].get("/api/v3/depth", 0) >= 10, timeout=60)
        for _ in range(2):  # two more writes: the answers received so far are in the files
            written = recorded_bytes(port)
            wait_for(lambda before=written: recorded_bytes(port) > before, timeout=30)
    finally:
        process.send_signal(signal.SIGKILL)
        stop_process(process)
    lines = [line for file_lines in records(tmp_path).values() for line in file_lines]
    kinds = {line.get("rest", "ws" if "ws" in line else "header") for line in lines}
    assert {"header", "ws", "/api/v3/exchangeInfo", "/api/v3/ticker/24hr", "/api/v3/depth"} <= kinds
    depth = next(line for line in lines if line.get("rest") == "/api/v3/depth")
    assert "lastUpdateId" in json.loads(depth["body"]) and "symbol=" in depth["query"]
    assert any('"depthUpdate"' in line["msg"] for line in lines if "ws" in line)
    assert [line["t"] for line in lines[1:]] == sorted(line["t"] for line in lines[1:])


def test_once_records_the_answers_of_its_report(simulator, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "binance_exporter", "--once", "--source", "rest", "--base-url", simulator.url],
        cwd=ROOT,
        env={**os.environ, "BINANCE_EXPORTER_RECORD": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for file_lines in records(tmp_path).values() for line in file_lines]
    assert {line["rest"] for line in lines[1:]} == {
        "/api/v3/exchangeInfo",
        "/api/v3/ticker/24hr",
        "/api/v3/depth",
        "/api/v3/ticker/bookTicker",
    }


def test_a_bug_in_writing_stops_recording_and_is_logged_never_raised(tmp_path, monkeypatch, caplog):
    recorder = Recorder(tmp_path, 2**30)

    def broken(_when):
        raise RuntimeError("a bug")

    monkeypatch.setattr(recorder, "_open", broken)
    recorder.start()
    recorder.stream_message(1, "x")
    recorder.stop()
    assert recorder.counts().errors == 1 and "recording stopped after an unexpected error" in caplog.text


def test_files_of_one_second_are_deleted_in_the_order_they_were_made(tmp_path):
    first, second = "binance-20261123T100001Z.jsonl.gz", "binance-20261123T100001Z-1.jsonl.gz"
    for name in (first, second):
        (tmp_path / name).write_bytes(b"x" * 300_000)
    recorder = Recorder(tmp_path, 400_000, FakeClock(HOUR + 7200)).start()  # 11:00, after both
    recorder.stream_message(1, "x")
    recorder.stop()
    assert sorted(path.name for path in tmp_path.iterdir()) == [second, "binance-20261123T110000Z.jsonl.gz"]


def test_lines_from_several_threads_keep_the_order_of_their_times(tmp_path):
    recorder = Recorder(tmp_path, 2**30).start()

    def put(name):
        for number in range(2000):
            recorder.stream_message(name, str(number))

    threads = [threading.Thread(target=put, args=(name,)) for name in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.stop()
    lines = [line for file_lines in records(tmp_path).values() for line in file_lines[1:]]
    assert len(lines) == 8000 and [line["t"] for line in lines] == sorted(line["t"] for line in lines)
