"""Log lines: today's text format, and JSON for log shippers, one object
per line whatever a record holds."""

import contextlib
import json
import logging
import math
import re
import sys
import threading
import warnings

import pytest

from binance_exporter.logs import TEXT_FORMAT, JsonFormatter, configure_logging, rfc3339

RECORD_TIME = 1_795_392_902.123456  # 2026-11-23T00:15:02.123456Z


def record(message="cycle %d took %s s", args=(3, "0.25"), level=logging.INFO, exc_info=None, **extra):
    made = logging.getLogger("binance_exporter.cycle.scheduler").makeRecord(
        "binance_exporter.cycle.scheduler",
        level,
        "/x/binance_exporter/cycle/scheduler.py",
        210,
        message,
        args,
        exc_info,
        extra=extra or None,
    )
    made.created, made.msecs = RECORD_TIME, 123.0
    return made


def formatted(log_record):
    line = JsonFormatter().format(log_record)
    assert "\n" not in line and "\r" not in line
    assert line.isascii()
    return json.loads(line)


def test_a_record_as_json_has_what_a_log_shipper_needs():
    assert formatted(record()) == {
        "time": "2026-11-23T00:15:02.123Z",
        "level": "INFO",
        "logger": "binance_exporter.cycle.scheduler",
        "message": "cycle 3 took 0.25 s",
        "source": "scheduler.py:210",
        "thread": threading.current_thread().name,
    }


@pytest.mark.parametrize(
    "created, msecs, expected",
    [
        (0.0, 0.0, "1970-01-01T00:00:00.000Z"),
        (1_795_392_902.9999, 999.0, "2026-11-23T00:15:02.999Z"),
        (1_795_392_902.0005, 0.0, "2026-11-23T00:15:02.000Z"),
    ],
)
def test_the_time_is_rfc_3339_in_utc_with_milliseconds(created, msecs, expected):
    assert rfc3339(created, msecs) == expected


def test_the_time_of_a_real_record_has_its_milliseconds():
    line = formatted(logging.getLogger("x").makeRecord("x", logging.INFO, "f.py", 1, "m", (), None))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


def test_an_exception_is_its_traceback_in_one_field_on_one_line():
    with pytest.raises(ValueError) as raised:
        raise ValueError("bad depth\nsecond line")
    exc_info = (raised.type, raised.value, raised.tb)
    entry = formatted(record("update cycle %d failed", (7,), level=logging.ERROR, exc_info=exc_info))
    assert entry["message"] == "update cycle 7 failed"
    assert entry["exception"].startswith("Traceback (most recent call last):\n")
    assert entry["exception"].endswith("ValueError: bad depth\nsecond line")


def test_an_exception_already_formatted_by_another_handler_is_kept():
    made = record()
    made.exc_text = "Traceback (most recent call last):\nKeyError: 'x'"
    assert formatted(made)["exception"] == made.exc_text


def test_a_stack_is_its_own_field():
    made = record()
    made.stack_info = "Stack (most recent call last):\n  File ..."
    assert formatted(made)["stack"] == made.stack_info


def test_extra_fields_are_fields_and_never_replace_the_record_s_own():
    entry = formatted(record(endpoint="/api/v3/depth", attempts=2, paused=None, ratio=0.5, time="late"))
    assert (entry["endpoint"], entry["attempts"], entry["paused"], entry["ratio"]) == ("/api/v3/depth", 2, None, 0.5)
    assert entry["extra_time"] == "late" and entry["time"] == "2026-11-23T00:15:02.123Z"


class Unprintable:
    """A value whose text cannot be had."""

    def __str__(self):
        raise RuntimeError("no text")


def test_extra_values_json_cannot_hold_become_text():
    entry = formatted(record(symbols=("ETHBTC", "BNBBTC"), nan=math.nan, level_set={1}, odd=Unprintable()))
    assert entry["symbols"] == ["ETHBTC", "BNBBTC"]
    assert (entry["nan"], entry["level_set"], entry["odd"]) == ("nan", "{1}", "<unprintable Unprintable>")


def test_non_ascii_and_control_characters_stay_on_one_ascii_line():
    entry = formatted(record("symbol %s: %s", ("\ud800ETHBTC", "prix élevé\r\n€ \x00\x1b[31m")))
    assert entry["message"] == "symbol \ud800ETHBTC: prix élevé\r\n€ \x00\x1b[31m"


def test_arguments_that_do_not_fit_the_message_still_make_a_record():
    entry = formatted(record("cycle %d of %d", ("three",)))
    assert entry["message"] == (
        "cycle %d of %d (arguments ('three',) do not fit it: "
        "TypeError('%d format: a real number is required, not str'))"
    )


@contextlib.contextmanager
def bare_root():
    """The root logger without handlers, as a process starts (pytest's own
    are added for each test); as it was afterwards."""
    root, binance = logging.getLogger(), logging.getLogger("binance")
    handlers, levels = root.handlers[:], (root.level, binance.level)
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(levels[0])
        binance.setLevel(levels[1])


def test_configure_logging_in_text_keeps_todays_format():
    with bare_root() as root:
        configure_logging("WARNING")
        assert len(root.handlers) == 1
        handler = root.handlers[0]
        assert handler.formatter._fmt == TEXT_FORMAT  # pylint: disable=protected-access
        assert handler.stream is sys.stderr and root.level == logging.WARNING
        assert logging.getLogger("binance").level == logging.WARNING


def test_configure_logging_in_json_makes_warnings_and_uncaught_exceptions_records(monkeypatch, capsys):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    with bare_root(), contextlib.ExitStack() as cleanup:
        cleanup.callback(logging.captureWarnings, False)
        configure_logging("DEBUG", "json")
        assert logging.getLogger("binance").level == logging.INFO  # never its response bodies
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("old\nAPI", DeprecationWarning)
        try:
            raise KeyError("in main")
        except KeyError:
            sys.excepthook(*sys.exc_info())
        thread = threading.Thread(target=lambda: 1 / 0, name="worker")
        thread.start()
        thread.join()
        exiting = threading.Thread(target=sys.exit, name="exiting")  # ends itself: nothing to say, as Python's hook
        exiting.start()
        exiting.join()
    lines = capsys.readouterr().err.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["level"], e["logger"]) for e in entries] == [
        ("WARNING", "py.warnings"),
        ("CRITICAL", "binance_exporter"),
        ("CRITICAL", "binance_exporter"),
    ]
    assert "DeprecationWarning: old\nAPI" in entries[0]["message"]
    assert entries[1]["message"] == "uncaught exception in thread MainThread"
    assert entries[1]["exception"].endswith("KeyError: 'in main'")
    assert entries[2]["message"] == "uncaught exception in thread worker"
    assert entries[2]["exception"].endswith("ZeroDivisionError: division by zero")
