"""Signals, from the first instant: SIGTERM, SIGINT and SIGQUIT stop the
exporter (docker stop, Ctrl-C, Ctrl-\\); SIGHUP, which conventionally asks
a daemon to reload, is logged and ignored: there is nothing to reload, as
every setting is read once at start.

The handlers only record the signal. A handler runs in the main thread
between any two bytecodes: one that took a lock (``Event.set()`` does)
could deadlock against the main thread holding that same lock, so the
main loop polls the record and acts on it.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Callable, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
IGNORED_SIGNALS = (signal.SIGHUP,)

logger = logging.getLogger(__name__)


class SignalRecord:
    """The first stop signal received, and how many SIGHUPs are not yet logged."""

    def __init__(self) -> None:
        self.stop: Optional[int] = None
        self.hangups = 0

    def _received(self, signum: int, _frame: object) -> None:
        if signum in IGNORED_SIGNALS:
            self.hangups += 1
        elif self.stop is None:
            self.stop = signum

    def install(self) -> "SignalRecord":
        """Takes over the signals from their default actions."""
        for signum in STOP_SIGNALS + IGNORED_SIGNALS:
            signal.signal(signum, self._received)
        return self

    def log_hangups(self) -> None:
        """Logs SIGHUPs received since the last call."""
        if self.hangups:
            logger.info("SIGHUP received %d time(s): ignored, there is nothing to reload", self.hangups)
            self.hangups = 0

    def wait(self, done: Callable[[], bool] = lambda: False, poll: float = 0.05) -> Optional[int]:
        """Returns the stop signal once one is received, or None once
        ``done()`` is true, whichever comes first."""
        while self.stop is None and not done():
            self.log_hangups()
            time.sleep(poll)
        self.log_hangups()
        return self.stop

    @property
    def stop_name(self) -> str:
        """The stop signal's name, e.g. SIGTERM."""
        return signal.Signals(self.stop).name if self.stop is not None else "no signal"
