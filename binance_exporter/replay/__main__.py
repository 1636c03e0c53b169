"""``python -m binance_exporter.replay``: a recording (``--record``) served
as a Binance-compatible server, or the exporter's answers computed again
from it.

``python -m binance_exporter.replay FILE…`` serves the recording's REST
answers and websocket streams, at recorded speed or ``--speed`` times
faster, to an exporter run with ``--base-url`` and ``--stream-url``.

``python -m binance_exporter.replay --report FILE…`` prints what the
recorded exporter printed, computed again from the recording with no
server (text or JSON lines), or a CSV table of every live book's figures
per cycle.

A FILE is a recording file or a directory of them. A file that is not a
recording, or a bad line, is a one-line error (exit status 2), unless
``--skip-bad``: then it is skipped with a warning.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

from binance_exporter.binance.recording import RecordingError, read_recording, read_recordings, recording_files
from binance_exporter.config import MIN_STREAM_UPDATE_INTERVAL, OneLineParser
from binance_exporter.replay.offline import OfflineAnswers
from binance_exporter.replay.server import RecordedMarket, serve_recording
from binance_exporter.signals import SignalRecord

logger = logging.getLogger("binance_exporter.replay")  # __name__ is __main__ under -m

# A 0.1 s tick of the streams then carries 100 s of recording: within the
# 2,000 recent events kept of each book (200 s at 10 a second).
MAX_SPEED = 1000


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
    return value


def parser() -> OneLineParser:
    """The command line."""
    arguments = OneLineParser(
        prog="python -m binance_exporter.replay",
        description=" ".join(__doc__.split("\n\n", 1)[0].split()),
    )
    arguments.add_argument("files", nargs="+", metavar="FILE", help="recording files, or directories of them")
    arguments.add_argument(
        "--report", action="store_true", help="print the exporter's answers computed from the recording, and stop"
    )
    arguments.add_argument(
        "--interval",
        type=_interval,
        help="with --report: a cycle every this many seconds of recorded time, "
        "instead of at the recorded exporter's own cycles",
    )
    arguments.add_argument(
        "--format",
        choices=("text", "json", "csv"),
        default="text",
        help="with --report: text or json as the exporter prints them, or csv: a row per book per cycle "
        "(default: %(default)s)",
    )
    arguments.add_argument(
        "--skip-bad", action="store_true", help="skip a bad file, or the rest of a file from a bad line, with a warning"
    )
    arguments.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help=f"served this many times faster than recorded, up to {MAX_SPEED} (default: 1)",
    )
    arguments.add_argument("--address", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    arguments.add_argument(
        "--port", type=_port, default=9999, help="port of the REST endpoints; 0 picks a free one (default: 9999)"
    )
    arguments.add_argument(
        "--stream-port",
        type=_port,
        default=9443,
        help="port of the websocket streams; 0 picks a free one (default: 9443)",
    )
    return arguments


def _interval(text: str) -> float:
    interval = _positive(text)
    if interval < MIN_STREAM_UPDATE_INTERVAL:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_STREAM_UPDATE_INTERVAL:g} seconds, not {text!r}")
    return interval


def _speed(text: str) -> float:
    speed = _positive(text)
    if speed > MAX_SPEED:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SPEED}, not {text!r}")
    return speed


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, not {text!r}")
    return int(text)


def serve(args: argparse.Namespace) -> int:
    """Serves the recording until SIGTERM or SIGINT; 0."""
    market = RecordedMarket(read_recordings(args.files, args.skip_bad), args.speed)
    try:
        server = serve_recording(market, args.address, args.port, args.stream_port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RecordingError(f"cannot listen on {args.address}: {reason}") from exc
    signals = SignalRecord().install()
    # The REST URL stays the last word of the line: scripts read it so.
    print(f"replaying at speed {args.speed:g}: streaming on {server.stream_url}, listening on {server.url}", flush=True)
    signals.wait(lambda: market.finished)
    if signals.stop is None and market.error is None:
        logger.info("the recording ends here (%d lines): its last state is served until stopped", market.lines_read)
        signals.wait()
    server.stop()
    if market.error is not None:
        raise RecordingError(market.error)
    return 0


def report(args: argparse.Namespace) -> int:
    """Prints the answers; 0, or 1 when the recording did not rebuild a
    book the recorded exporter read (it lost lines)."""
    answers = OfflineAnswers(sys.stdout, args.format, args.interval)
    started = time.perf_counter()
    answers.run(read_recordings(args.files, args.skip_bad))
    took = time.perf_counter() - started
    recorded = (answers.last_time or 0.0) - (answers.first_time or 0.0)
    logger.info(
        "%d cycles from %d lines covering %.0f s of recording, in %.1f s (%.0f times real time)",
        answers.cycles,
        answers.lines,
        recorded,
        took,
        recorded / took if took > 0 else math.inf,
    )
    if answers.cycles == 0 and args.interval is None:
        logger.warning("the recording holds no update cycle: --interval N computes one every N seconds")
        return 1
    if answers.mismatches:
        logger.warning("%d books read by the recorded exporter were not rebuilt: lines are missing", answers.mismatches)
        return 1
    return 0


def check_mode(files: list[Path], skip_bad: bool) -> None:
    """RecordingError for a recording of the exporter in REST mode: its
    books are snapshots a cycle apart, not a stream to rebuild them from."""
    for file in files:
        try:
            header = next(read_recording(file), None) or {}
        except RecordingError:
            if skip_bad:
                continue
            raise
        if (header.get("settings") or {}).get("source") == "rest":
            raise RecordingError(
                f"{file}: recorded with --source rest; replay needs a recording of the exporter in stream mode"
            )


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the command; its exit status."""
    arguments = parser()
    args = arguments.parse_args(argv)
    if not args.report and (args.interval is not None or args.format != "text"):
        arguments.error("--interval and --format go with --report")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.report:
        # What the cycles log (books in sync, top lists, rankings not refreshed) the recorded
        # exporter logged already: only errors are repeated.
        for name in ("binance_exporter.binance", "binance_exporter.cycle"):
            logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger("binance_exporter.binance.recording").setLevel(logging.INFO)  # files skipped
    try:
        check_mode(recording_files(args.files), args.skip_bad)
        return report(args) if args.report else serve(args)
    except RecordingError as exc:
        arguments.error(str(exc))
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
