"""The exporter process: ``python -m binance_exporter``.

Reads the configuration, then either prints one report and exits
(``--once``) or serves /metrics while the scheduler updates the snapshot
every update interval, printing the report and then a Q5 line per symbol
per cycle. SIGTERM, SIGINT and SIGQUIT stop it promptly with exit status
0, even while a request to Binance is hanging; SIGHUP is logged and
ignored.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

from binance_exporter import __version__
from binance_exporter.binance.recording import Recorder
from binance_exporter.binance.request_gate import BINANCE_WEIGHT_LIMIT, RequestGate
from binance_exporter.binance.rest_client import WEIGHTS, BinanceClient
from binance_exporter.binance.streams import StreamHub
from binance_exporter.config import Config, config_error, parse_args
from binance_exporter.cycle.scheduler import STALE_AFTER_INTERVALS, Schedule, Scheduler
from binance_exporter.cycle.snapshot import Snapshot
from binance_exporter.cycle.stream_scheduler import StreamScheduler
from binance_exporter.exposition.collector import MetricsPage
from binance_exporter.exposition.http_server import ExporterHTTPServer, Health, Limits
from binance_exporter.exposition.live_view import LiveEvents, LivePublisher
from binance_exporter.exposition.pages import LiveSite
from binance_exporter.exposition.report import ReportPrinter
from binance_exporter.exposition.web_config import WebConfig, WebConfigError, WebConfigFile
from binance_exporter.logs import configure_logging
from binance_exporter.market.definitions import ALL_SYMBOLS, top_lists
from binance_exporter.signals import SignalRecord

logger = logging.getLogger("binance_exporter.exporter")  # __name__ is __main__ under -m


# How long a thread may keep the interpreter while another waits for it
# (Python's default is 5 ms): the serving thread, back from sending, waits
# at most this long for the threads keeping books and making events.
SWITCH_INTERVAL = 0.001


def schedule_for(config: Config) -> Schedule:
    """The update schedule and top lists the configuration asks for."""
    return Schedule(
        config.update_interval,
        config.rank_interval,
        top_n=config.top,
        top_lists=top_lists(config.quote_volume_assets, config.trade_count_assets),
    )


def weight_per_minute(config: Config) -> float:
    """The request weight the settings spend per minute when every request succeeds."""
    return schedule_for(config).weight_per_minute(WEIGHTS)


def build_scheduler(config: Config, source: Optional[str] = None, recorder: Optional[Recorder] = None) -> Scheduler:
    """The scheduler and Binance client the configuration asks for, for
    ``source`` (default: ``config.source``), handing what they receive to
    ``recorder``; a REST configuration that would overspend its weight
    budget is a one-line error (exit status 2)."""
    source = source or config.source
    needed = weight_per_minute(config)
    if source == "rest" and needed > config.weight_budget:
        # Each Q1 list's books cost the most: with several, they are named.
        several = len(config.quote_volume_assets) > 1
        assets = f", --quote-volume-assets {','.join(config.quote_volume_assets)}" if several else ""
        fewer = ", name fewer --quote-volume-assets" if several else ""
        config_error(
            f"--update-interval {config.update_interval:g} with --top {config.top}{assets} and --rank-interval "
            f"{config.rank_interval:g} needs {math.ceil(needed)} request weight a minute, over --weight-budget "
            f"{config.weight_budget}: raise --update-interval, lower --top{fewer} or raise --weight-budget"
        )
    if config.weight_budget > BINANCE_WEIGHT_LIMIT:
        logger.warning(
            "--weight-budget %d is above Binance's %d per minute: only Binance's own 429s will limit requests",
            config.weight_budget,
            BINANCE_WEIGHT_LIMIT,
        )
    gate = RequestGate(config.weight_budget, state_dir=Path(config.state_dir))
    client = BinanceClient(config.base_urls, config.request_timeout, gate, recorder=recorder)
    if source == "rest":
        return Scheduler(client, schedule_for(config))
    hub = StreamHub(
        config.stream_urls,
        client.depth_snapshot,
        client.agg_trades,
        recorder=recorder,
        tops=config.symbols == ALL_SYMBOLS,
        weight_wait=gate.wait_for,
    ).start()
    return StreamScheduler(client, hub, schedule_for(config), config.symbols, shard=config.shard)


def recorded_settings(config: Config, source: str) -> dict[str, Any]:
    """The settings that decide the answers, as a recording's header keeps them."""
    return {
        "source": source,
        "update_interval": config.update_interval,
        "rank_interval": config.rank_interval,
        "top": config.top,
        "quote_volume_assets": list(config.quote_volume_assets),
        "trade_count_assets": list(config.trade_count_assets),
        "symbols": config.symbols if config.symbols == ALL_SYMBOLS else list(config.symbols),
        "shard": str(config.shard),
    }


def start_recorder(config: Config, source: str) -> Optional[Recorder]:
    """The recorder of everything received from Binance, with --record."""
    if not config.record:
        return None
    return Recorder(config.record, config.record_max_bytes, settings=recorded_settings(config, source)).start()


def publishing(*publishers: Callable[[Snapshot], None]) -> Callable[[Snapshot], None]:
    """Hands each snapshot to every one of ``publishers``, in order."""

    def publish(snapshot: Snapshot) -> None:
        for publisher in publishers:
            publisher(snapshot)

    return publish


def run_once(config: Config, signals: SignalRecord) -> int:
    """Prints one report, read over REST (one report needs no live
    books); 0 if every answer could be fetched, else 1."""
    recorder = start_recorder(config, "rest")
    scheduler = build_scheduler(config, "rest", recorder)
    cycle: Future = Future()

    def run() -> None:
        try:
            cycle.set_result(scheduler.run_cycle())
        except BaseException as exc:  # pylint: disable=broad-exception-caught  # raised again below
            cycle.set_exception(exc)

    threading.Thread(target=run, name="once", daemon=True).start()
    if signals.wait(cycle.done) is not None:
        logger.error("stopped by %s before the report was complete", signals.stop_name)
        return 1
    snapshot = cycle.result()
    scheduler.close()
    if recorder is not None:
        recorder.stop()
    ReportPrinter(config.output_format, sys.stdout).print_report(snapshot)
    if not snapshot.up:
        logger.error("could not read everything from Binance at %s", ", ".join(config.base_urls))
        return 1
    return 0


def read_web_config(config: Config) -> Callable[[], WebConfig]:
    """The web configuration file's settings, kept current (none without
    the flag); a file that cannot be used at start is a one-line error
    (exit status 2)."""
    if not config.web_config_file:
        return WebConfig
    try:
        web = WebConfigFile(config.web_config_file)
    except WebConfigError as exc:
        config_error(f"--web.config.file {config.web_config_file}: {exc}")
    if web.current.users and web.current.tls is None:
        logger.warning("basic_auth_users without tls_server_config: passwords cross the network in clear text")
    return web


class LiveView(NamedTuple):
    """The live view: what makes its events, and what serves its pages."""

    publisher: LivePublisher
    site: LiveSite


def live_view(config: Config, scheduler: Scheduler, health: Health) -> LiveView:
    """What makes the live view's events (the answers from the scheduler's
    snapshots, the books from its live books in stream mode) and what
    serves its pages."""
    hub = scheduler.hub if isinstance(scheduler, StreamScheduler) else None
    books = hub.live_books if hub is not None else None
    publisher = LivePublisher(LiveEvents(), lambda: scheduler.snapshot, health.ready, books, config.source)

    def tracked() -> frozenset[str]:
        return frozenset(book.symbol for book in scheduler.snapshot.books)

    return LiveView(publisher, LiveSite(tracked, config.source == "stream"))


def serve(config: Config, signals: SignalRecord) -> int:
    """Serves /metrics and updates until a stop signal; returns 0."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    web = read_web_config(config)
    recorder = start_recorder(config, config.source)
    scheduler = build_scheduler(config, recorder=recorder)
    stop = threading.Event()
    metrics = MetricsPage(lambda: scheduler.snapshot)
    updates = threading.Thread(
        target=scheduler.run,
        args=(stop, publishing(ReportPrinter(config.output_format, sys.stdout).publish, metrics.prepare)),
        name="scheduler",
        daemon=True,
    )
    health = Health(
        lambda: scheduler.snapshot, STALE_AFTER_INTERVALS * config.update_interval, updating=updates.is_alive
    )
    view = None if config.web_disable_ui else live_view(config, scheduler, health)
    host = f"[{config.address}]" if ":" in config.address else config.address
    try:
        limits = Limits(max_connections=config.web_max_connections, max_live_clients=config.web_max_live_clients)
        server = ExporterHTTPServer(
            (config.address, config.port), metrics, health, limits, web, view and (view.site, view.publisher.events)
        ).start()
    except OSError as exc:
        config_error(f"cannot listen on {host}:{config.port}: {exc.strerror or exc}")
    streams = f" and streams from {', '.join(config.stream_urls)}" if config.source == "stream" else ""
    logger.info(
        "binance-exporter %s serving %s://%s:%d/metrics, reading %s%s every %g s (rankings every %g s)",
        __version__,
        web().scheme,
        host,
        config.port,
        ", ".join(config.base_urls),
        streams,
        config.update_interval,
        config.rank_interval,
    )
    # Everything made so far (modules, classes, the setup) lives as long as
    # the process: the garbage collector stops walking it at each full
    # collection, a third of the objects it walked at the whole market's peak.
    gc.collect()
    gc.freeze()
    updates.start()
    if view is not None:
        view.publisher.start()
    signals.wait()
    stop.set()
    logger.info("stopping on %s", signals.stop_name)
    if view is not None:
        view.publisher.stop()
    server.stop()
    scheduler.close()
    if recorder is not None:
        recorder.stop()
    return 0


def main(
    argv: Optional[Sequence[str]] = None,
    env: Optional[Mapping[str, str]] = None,
    signals: Optional[SignalRecord] = None,
) -> int:
    """Runs the exporter; returns the exit status."""
    signals = signals or SignalRecord().install()
    config = parse_args(sys.argv[1:] if argv is None else argv, os.environ if env is None else env)
    configure_logging(config.loglevel, config.log_format)
    if signals.stop is not None:
        logger.info("stopping on %s before starting", signals.stop_name)
        return 0
    if config.once:
        return run_once(config, signals)
    return serve(config, signals)


if __name__ == "__main__":
    sys.exit(main())
