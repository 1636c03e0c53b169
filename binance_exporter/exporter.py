"""The exporter process: ``python -m binance_exporter.exporter``.

Reads the configuration, then either prints one report and exits
(``--once``) or serves /metrics while the scheduler updates the snapshot
every update interval, printing the report and then a Q5 line per symbol
per cycle. SIGTERM and SIGINT stop it promptly with exit status 0, even
while a request to Binance is hanging.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Mapping, Optional, Sequence, TextIO

from binance_exporter import __version__
from binance_exporter.binance_client import BinanceClient
from binance_exporter.collector import MetricsPage
from binance_exporter.config import Config, config_error, parse_args
from binance_exporter.http_server import ExporterHTTPServer, Health, Limits
from binance_exporter.report import render_report, render_spread_lines
from binance_exporter.request_gate import BINANCE_WEIGHT_LIMIT, RequestGate
from binance_exporter.scheduler import STALE_AFTER_INTERVALS, Schedule, Scheduler
from binance_exporter.signals import record_stop_signals, wait_for_signal
from binance_exporter.snapshot import Snapshot

logger = logging.getLogger("binance_exporter.exporter")  # __name__ is __main__ under -m


class ReportPrinter:
    """Prints the report once the first rankings are in, then the Q5
    lines of every cycle. A closed stdout is logged, never fatal."""

    def __init__(self, output_format: str, out: TextIO):
        self.output_format = output_format
        self.out = out
        self.reported = False

    def publish(self, snapshot: Snapshot) -> None:
        """Prints what ``snapshot`` answers."""
        now = time.time()
        text = ""
        if not self.reported and snapshot.rankings:
            text += render_report(snapshot, now, self.output_format)
            self.reported = True
        if self.reported:
            text += "".join(line + "\n" for line in render_spread_lines(snapshot, now, self.output_format))
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError) as exc:
            logger.warning("cannot print to stdout: %s", exc)


def build_scheduler(config: Config) -> Scheduler:
    if config.weight_budget > BINANCE_WEIGHT_LIMIT:
        logger.warning(
            "--weight-budget %d is above Binance's %d per minute: only Binance's own 429s will limit requests",
            config.weight_budget,
            BINANCE_WEIGHT_LIMIT,
        )
    client = BinanceClient(config.base_urls, config.request_timeout, RequestGate(config.weight_budget))
    schedule = Schedule(config.update_interval, config.rank_interval, top_n=config.top)
    return Scheduler(client, schedule)


def run_once(config: Config, out: TextIO) -> int:
    """Prints one report; 0 if every answer could be fetched, else 1."""
    scheduler = build_scheduler(config)
    snapshot = scheduler.run_cycle()
    scheduler.close()
    out.write(render_report(snapshot, time.time(), config.output_format))
    out.flush()
    if not snapshot.up:
        logger.error("could not read everything from Binance at %s", ", ".join(config.base_urls))
        return 1
    return 0


def serve(config: Config, out: TextIO) -> int:
    """Serves /metrics and updates until SIGTERM or SIGINT; returns 0."""
    scheduler = build_scheduler(config)
    metrics = MetricsPage(lambda: scheduler.snapshot)
    health = Health(lambda: scheduler.snapshot, STALE_AFTER_INTERVALS * config.update_interval)
    try:
        limits = Limits(max_connections=config.web_max_connections)
        server = ExporterHTTPServer((config.address, config.port), metrics, health, limits).start()
    except OSError as exc:
        config_error(f"cannot listen on {config.address}:{config.port}: {exc.strerror or exc}")
    signalled = record_stop_signals()
    logger.info(
        "binance-exporter %s serving http://%s:%d/metrics, reading %s every %g s (rankings every %g s)",
        __version__,
        config.address,
        config.port,
        ", ".join(config.base_urls),
        config.update_interval,
        config.rank_interval,
    )
    printer = ReportPrinter(config.output_format, out)
    stop = threading.Event()
    threading.Thread(target=scheduler.run, args=(stop, printer.publish), name="scheduler", daemon=True).start()
    wait_for_signal(signalled)
    stop.set()
    logger.info("stopping")
    server.stop()
    return 0


def main(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None) -> int:
    """Runs the exporter; returns the exit status."""
    config = parse_args(sys.argv[1:] if argv is None else argv, os.environ if env is None else env)
    logging.basicConfig(
        level=config.loglevel, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if config.once:
        return run_once(config, sys.stdout)
    return serve(config, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
