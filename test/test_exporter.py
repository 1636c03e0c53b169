"""The exporter process's own parts, in-process: the report printer and
the start-up checks. (The process as a whole: test_end_to_end.py.)"""

import io
import logging

import pytest

from binance_exporter.config import Config
from binance_exporter.binance.rest_client import BinanceClient
from binance_exporter.exporter import build_scheduler, configure_logging, weight_per_minute
from binance_exporter.exposition.report import ReportPrinter
from binance_exporter.market.definitions import DEFAULT_TOP_LISTS, top_lists
from binance_exporter.cycle.scheduler import STALE_AFTER_INTERVALS
from binance_exporter.cycle.snapshot import Snapshot
from .test_report import SNAPSHOT


def test_a_weight_budget_above_binances_limit_is_accepted_with_a_warning(caplog, tmp_path):
    caplog.set_level(logging.WARNING)
    scheduler = build_scheduler(Config(weight_budget=10_000, top=7, state_dir=str(tmp_path)))
    scheduler.close()
    assert "--weight-budget 10000 is above Binance's 6000 per minute" in caplog.text
    assert scheduler.schedule.top_n == 7


def test_the_weight_the_settings_spend_per_minute():
    # 5 depths (25 each) and a bookTicker (4) every 10 s, all tickers (80) every minute, exchangeInfo (20) hourly
    assert weight_per_minute(Config()) == pytest.approx(6 * 129 + 80 + 20 / 60)
    assert weight_per_minute(Config(update_interval=2, rank_interval=10)) == pytest.approx(30 * 129 + 6 * 80 + 1 / 3)


def test_settings_that_would_overspend_the_budget_are_a_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        build_scheduler(Config(update_interval=2, rank_interval=10, state_dir=str(tmp_path), source="rest"))
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "binance-exporter: error: --update-interval 2 with --top 5 and --rank-interval 10 needs 4351 request "
        "weight a minute, over --weight-budget 1200: raise --update-interval, lower --top or raise --weight-budget\n"
    )


def test_every_lists_books_count_in_the_weight_the_settings_spend():
    # 3 lists of 5 depths (25 each) and one bookTicker (4) for the 2 trade count lists every 10 s
    two_more = Config(quote_volume_assets=("BTC", "ETH", "USDC"), trade_count_assets=("USDT", "USDC"))
    assert weight_per_minute(two_more) == pytest.approx(6 * (3 * 5 * 25 + 4) + 80 + 20 / 60)


def test_the_scheduler_keeps_the_configured_lists(tmp_path):
    lists = {"quote_volume_assets": ("ETH", "BTC"), "trade_count_assets": ("USDC",)}
    scheduler = build_scheduler(Config(update_interval=20, state_dir=str(tmp_path), **lists))
    scheduler.close()
    assert scheduler.schedule.top_lists == top_lists(("ETH", "BTC"), ("USDC",))
    assert scheduler.snapshot.top_lists == scheduler.schedule.top_lists  # from before the first cycle
    defaults = build_scheduler(Config(state_dir=str(tmp_path)))
    defaults.close()
    assert defaults.schedule.top_lists == DEFAULT_TOP_LISTS


def test_lists_that_would_overspend_the_budget_are_named_in_the_error(capsys, tmp_path):
    lists = {"quote_volume_assets": ("BTC", "ETH"), "trade_count_assets": ("USDT", "USDC")}
    config = Config(state_dir=str(tmp_path), source="rest", **lists)
    with pytest.raises(SystemExit) as exited:
        build_scheduler(config)
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "binance-exporter: error: --update-interval 10 with --top 5, --quote-volume-assets BTC,ETH and "
        "--rank-interval 60 needs 1605 request weight a minute, over --weight-budget 1200: raise --update-interval, "
        "lower --top, name fewer --quote-volume-assets or raise --weight-budget\n"
    )


class FailingStream(io.StringIO):
    """A stdout whose writes fail as a full disk's do."""

    def write(self, text):
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("out", [FailingStream(), io.StringIO(), None])
def test_a_closed_or_full_stdout_is_logged_once_and_printing_stops(caplog, out):
    if isinstance(out, io.StringIO) and not isinstance(out, FailingStream):
        out.close()
    printer = ReportPrinter("text", out)
    for _ in range(STALE_AFTER_INTERVALS + 2):
        printer.publish(SNAPSHOT)
    assert len([r for r in caplog.records if "cannot print the report to stdout" in r.message]) == 1


def test_nothing_to_print_writes_nothing():
    out = io.StringIO()
    ReportPrinter("text", out).publish(Snapshot())
    assert out.getvalue() == ""


def test_debug_logging_never_dumps_response_bodies(simulator, caplog):
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    BinanceClient(simulator.url, timeout=5).tickers_24h()
    assert "raw response" not in caplog.text
    assert "/api/v3/ticker/24hr: HTTP 200, " in caplog.text
    assert max(len(record.getMessage()) for record in caplog.records) < 1000
