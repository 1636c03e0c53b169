"""Log records on stderr, one per line: as text (the default) or as JSON.

Text is ``2026-11-23 00:15:02,123 INFO binance_exporter.cycle.scheduler: message``,
with a traceback on the lines that follow when there is one. JSON is one
object per line, for log shippers::

    {"time": "2026-11-23T00:15:02.123Z", "level": "INFO", "logger": "binance_exporter.cycle.scheduler",
     "message": "...", "source": "scheduler.py:210", "thread": "scheduler"}

plus ``exception`` (the formatted traceback) when there is one, and any
``extra`` fields given to the logger. A record is never split over lines
and is plain ASCII whatever it holds (non-ASCII is escaped as JSON allows),
so that stderr's encoding cannot break it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any, Optional

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every record holds; anything else on a record was passed as ``extra``.
# ``message`` and ``asctime`` are left on a record by other formatters.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def rfc3339(created: float, msecs: float) -> str:
    """``created`` (Unix time) in UTC with milliseconds, e.g. 2026-11-23T00:15:02.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # pylint: disable=broad-exception-caught  # a log line must not fail
        return f"<unprintable {type(value).__name__}>"


def _jsonable(value: Any) -> Any:
    """``value`` when JSON holds it as it is, else its text."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError, RecursionError):
        return _text(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "message": self._message(record),
            "source": f"{record.filename}:{record.lineno}",
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                entry["extra_" + key if key in entry else key] = _jsonable(value)
        return json.dumps(entry, ensure_ascii=True, allow_nan=False)

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        try:
            return record.getMessage()
        except Exception as exc:  # pylint: disable=broad-exception-caught  # the record still gets out
            return f"{_text(record.msg)} (arguments {_text(record.args)} do not fit it: {exc!r})"


def _log_uncaught(exc_info: tuple[Any, Any, Optional[TracebackType]], thread: str) -> None:
    logging.getLogger("binance_exporter").critical("uncaught exception in thread %s", thread, exc_info=exc_info)


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:  # as Python's own hook: a thread may end itself so
        _log_uncaught((args.exc_type, args.exc_value, args.exc_traceback), getattr(args.thread, "name", "unknown"))


def _log_uncaught_in_main(
    exc_type: type[BaseException], exc: BaseException, traceback: Optional[TracebackType]
) -> None:
    _log_uncaught((exc_type, exc, traceback), threading.current_thread().name)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Logs at ``level`` and above to stderr, one line per record, in
    ``log_format`` (text or json). In json, Python's warnings and uncaught
    exceptions become records too, so that stderr holds nothing else."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    if log_format == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught_in_main
        threading.excepthook = _log_uncaught_in_thread
    # binance-connector logs whole response bodies at DEBUG; the client logs a line per request itself.
    logging.getLogger("binance").setLevel(max(logging.INFO, logging.getLevelName(level)))
