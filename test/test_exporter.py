"""The exporter process's own parts, in-process: the report printer and
the start-up checks. (The process as a whole: test_end_to_end.py.)"""

import io
import logging

from binance_exporter.config import Config
from binance_exporter.exporter import ReportPrinter, build_scheduler
from binance_exporter.snapshot import Snapshot


def test_a_weight_budget_above_binances_limit_is_accepted_with_a_warning(caplog):
    caplog.set_level(logging.WARNING)
    scheduler = build_scheduler(Config(weight_budget=10_000, top=7))
    scheduler.close()
    assert "--weight-budget 10000 is above Binance's 6000 per minute" in caplog.text
    assert scheduler.schedule.top_n == 7


def test_a_closed_stdout_is_logged_not_fatal(caplog):
    out = io.StringIO()
    out.close()
    ReportPrinter("text", out).publish(Snapshot())
    assert "cannot print to stdout" in caplog.text
