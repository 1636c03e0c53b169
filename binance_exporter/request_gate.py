"""What may be sent to Binance, and when: the rules that keep the host's IP
from being banned.

Every request passes ``RequestGate.admit`` first, from whichever thread it
is sent. The gate refuses it, without sending anything, while

* a ``Retry-After`` from a 429 or 418 has not passed: Binance bans IPs that
  keep calling after a 429, so nothing at all is sent until then;
* the exporter is backing off because Binance is unreachable or refuses
  it (HTTP 451, 403): retried after exponentially growing pauses rather
  than every cycle;
* the request's weight would push the projected use of the current minute
  over the client-side budget. The projection is the larger of what this
  process sent this minute and what Binance last reported
  (``X-MBX-USED-WEIGHT-1M``, which counts every client on the IP).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from binance_exporter.errors import MarketDataError
from binance_exporter.market import format_utc

DEFAULT_WEIGHT_BUDGET = 1200
BINANCE_WEIGHT_LIMIT = 6000  # per minute and IP
BACKOFF_INITIAL = 10.0
BACKOFF_CAP_UNREACHABLE = 60.0
BACKOFF_CAP_BLOCKED = 300.0
DEFAULT_RETRY_AFTER = {429: 60.0, 418: 120.0}


class RequestSkipped(MarketDataError):
    """A request the gate did not let through; nothing was sent.

    ``reason`` is ``retry_after``, ``backoff`` or ``weight_budget``.
    """


@dataclass(frozen=True)
class GateState:
    """The gate at one moment, for the metrics."""

    weight_budget: int
    weight_used: Optional[int]
    paused_until: Optional[float]


class RequestGate:
    """Admits or refuses requests to Binance. Thread-safe; ``clock`` is
    Unix time (Binance counts weight per clock minute)."""

    def __init__(self, weight_budget: int = DEFAULT_WEIGHT_BUDGET, clock: Callable[[], float] = time.time):
        self.weight_budget = weight_budget
        self._clock = clock
        self._lock = threading.Lock()
        self._minute = -1
        self._sent = 0  # weight this process sent in the current minute
        self._reported = 0  # highest weight Binance reported for the current minute
        self._any_report = False
        self._paused_until = 0.0
        self._pause_reason: Optional[str] = None
        self._backoff = 0.0

    def _roll_minute(self, now: float) -> None:
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._sent, self._reported = minute, 0, 0

    def admit(self, endpoint: str, weight: int) -> None:
        """Reserves ``weight`` for a request to ``endpoint`` or raises
        ``RequestSkipped``."""
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                raise RequestSkipped(
                    f"{endpoint}: not sent, {self._pause_reason} until {format_utc(self._paused_until)}",
                    "retry_after" if self._pause_reason == "Retry-After" else "backoff",
                )
            self._roll_minute(now)
            projected = max(self._sent, self._reported) + weight
            if projected > self.weight_budget:
                raise RequestSkipped(
                    f"{endpoint}: not sent, its weight {weight} would bring this minute to {projected} "
                    f"of the {self.weight_budget} budget",
                    "weight_budget",
                )
            self._sent += weight

    def report_weight(self, used: int) -> None:
        """Takes in the weight Binance reports used this minute."""
        with self._lock:
            self._roll_minute(self._clock())
            # Concurrent answers arrive in any order: within a minute the
            # highest figure is the latest.
            self._reported = max(self._reported, used)
            self._any_report = True

    def retry_after(self, seconds: float) -> Optional[float]:
        """Sends nothing for ``seconds``. Returns the resume time if this
        starts or extends the pause (the caller logs it once), else None."""
        with self._lock:
            until = self._clock() + seconds
            if until <= self._paused_until and self._pause_reason == "Retry-After":
                return None
            self._paused_until, self._pause_reason = max(until, self._paused_until), "Retry-After"
            return self._paused_until

    def back_off(self, cap: float) -> float:
        """Pauses for the next step of an exponential backoff (10 s,
        doubling up to ``cap``); returns the resume time."""
        with self._lock:
            self._backoff = min(cap, self._backoff * 2 if self._backoff else BACKOFF_INITIAL)
            until = self._clock() + self._backoff
            if until > self._paused_until:
                self._paused_until, self._pause_reason = until, "backing off"
            return self._paused_until

    def succeeded(self) -> None:
        """Binance answered: the next backoff starts small again."""
        with self._lock:
            self._backoff = 0.0

    def state(self) -> GateState:
        """The budget, the weight Binance reported used this minute (None
        before any report) and the end of any pause in force."""
        with self._lock:
            now = self._clock()
            self._roll_minute(now)
            return GateState(
                self.weight_budget,
                self._reported if self._any_report else None,
                self._paused_until if self._paused_until > now else None,
            )
