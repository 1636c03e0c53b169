"""Stopping on SIGTERM and SIGINT (docker stop, Ctrl-C).

The handlers only record the signal. A handler runs in the main thread
between any two bytecodes: one that took a lock (``Event.set()`` does)
could deadlock against the main thread holding that same lock, so the
main loop polls the record and acts on it.
"""

from __future__ import annotations

import signal
import time


def record_stop_signals() -> list[int]:
    """Installs SIGTERM and SIGINT handlers that append to the returned list."""
    signalled: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: signalled.append(signum))
    return signalled


def wait_for_signal(signalled: list[int], poll: float = 0.1) -> None:
    """Returns once a stop signal has been recorded."""
    while not signalled:
        time.sleep(poll)
