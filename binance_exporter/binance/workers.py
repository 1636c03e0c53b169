"""Threads that make blocking requests to Binance."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, Optional


class WorkerPool:
    """A fixed set of daemon threads running submitted calls.

    Unlike ``ThreadPoolExecutor``, whose threads the interpreter joins at
    exit, a request hanging in one of these never holds up shutdown.
    """

    def __init__(self, workers: int, name: str = "fetch"):
        self._jobs: queue.SimpleQueue[Optional[tuple[Future, Callable[..., Any], tuple]]] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> Future:
        """Runs ``call(*args)`` on a worker; its outcome lands in the future."""
        future: Future = Future()
        self._jobs.put((future, call, args))
        return future

    def close(self) -> None:
        """Lets the workers end once the queued calls are done."""
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call, args = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled: its cycle is over
            try:
                future.set_result(call(*args))
            except BaseException as exc:  # pylint: disable=broad-exception-caught  # handed to the waiting cycle
                future.set_exception(exc)
