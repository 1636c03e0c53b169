"""What may be sent to Binance, and when: the rules that keep the host's IP
from being banned.

Every request passes ``RequestGate.admit`` first, from whichever thread it
is sent. The gate refuses it, without sending anything, while

* a ``Retry-After`` from a 429 or 418 has not passed: Binance bans IPs that
  keep calling after a 429, so nothing at all is sent until then, and the
  pause is kept in a small state file so that a restart honours it too
  (capped at 3 days, Binance's longest ban, so that a wild value cannot
  stop the exporter for ever);
* the exporter is backing off because Binance is unreachable or refuses
  it (HTTP 451, 403): retried after exponentially growing pauses rather
  than every cycle;
* the request's weight would push the projected use of the current minute
  over the client-side budget. The projection is the larger of what this
  process sent this minute and what Binance last reported
  (``X-MBX-USED-WEIGHT-1M``, which counts every client on the IP);
* or it would take more weight than the token bucket holds: the bucket
  holds at most the budget and refills at the budget per minute, evenly,
  so that no two minutes back to back spend two budgets in a burst.

``wait_for`` says how long a request of some weight would wait, so that
who sends many (the live books' snapshots) paces them instead of being
refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import format_utc

DEFAULT_WEIGHT_BUDGET = 1200
BINANCE_WEIGHT_LIMIT = 6000  # per minute and IP
BACKOFF_INITIAL = 10.0
BACKOFF_CAP_UNREACHABLE = 60.0
BACKOFF_CAP_BLOCKED = 300.0
DEFAULT_RETRY_AFTER = {429: 60.0, 418: 120.0}
MAX_RETRY_AFTER = 3 * 86400.0  # Binance's longest ban
SEVERITY = {429: 1, 418: 2}  # a ban (418) is worse than a warning (429)
PAUSE_FILE = "binance-pause.json"

logger = logging.getLogger(__name__)


class RequestSkipped(MarketDataError):
    """A request the gate did not let through; nothing was sent.

    ``reason`` is ``retry_after``, ``backoff`` or ``weight_budget``;
    ``first`` is true for the first request the weight budget stops in a
    minute (the one worth logging).
    """

    def __init__(self, message: str, reason: str, first: bool = False):
        super().__init__(message, reason)
        self.first = first


@dataclass(frozen=True)
class GateState:
    """The gate at one moment, for the metrics."""

    weight_budget: int
    weight_used: Optional[int]
    paused_until: Optional[float]


@dataclass
class _Pause:
    """A pause in force (or past): nothing is sent until ``until``."""

    until: float = 0.0
    reason: Optional[str] = None  # "Retry-After" or "backing off"
    began: float = -math.inf  # when a Retry-After pause began
    status: int = 0  # the worst answer of a Retry-After pause: 429 or 418


class RequestGate:  # pylint: disable=too-many-instance-attributes  # its minute, its bucket and its pause
    """Admits or refuses requests to Binance. Thread-safe; ``clock`` is
    Unix time (Binance counts weight per clock minute). With a
    ``state_dir``, a Retry-After pause outlives the process."""

    def __init__(
        self,
        weight_budget: int = DEFAULT_WEIGHT_BUDGET,
        clock: Callable[[], float] = time.time,
        state_dir: Optional[Path] = None,
    ):
        self.weight_budget = weight_budget
        self._clock = clock
        self._lock = threading.Lock()
        self._minute = -1
        self._sent = 0  # weight this process sent in the current minute
        self._reported = 0  # highest weight Binance reported for the current minute
        self._any_report = False
        self._budget_skipped_minute = -1  # the minute the budget last stopped a request
        self._pause = _Pause()
        self._tokens = float(weight_budget)  # the bucket: weight that may be sent now
        self._filled_at = clock()
        self._backoff = 0.0
        self._state_file = state_dir / PAUSE_FILE if state_dir is not None else None
        self._load_pause()

    def _roll_minute(self, now: float) -> None:
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._sent, self._reported = minute, 0, 0

    def admit(self, endpoint: str, weight: int) -> float:
        """Reserves ``weight`` for a request to ``endpoint`` and returns
        the time it was admitted, or raises ``RequestSkipped``."""
        with self._lock:
            now = self._clock()
            if now < self._pause.until:
                raise RequestSkipped(
                    f"{endpoint}: not sent, {self._pause.reason} until {format_utc(self._pause.until)}",
                    "retry_after" if self._pause.reason == "Retry-After" else "backoff",
                )
            self._roll_minute(now)
            self._refill(now)
            projected = max(self._sent, self._reported) + weight
            if projected > self.weight_budget or weight > self._tokens:
                first = self._budget_skipped_minute != self._minute
                self._budget_skipped_minute = self._minute
                why = (
                    f"would bring this minute to {projected} of the {self.weight_budget} budget; requests wait "
                    f"for the next minute, {format_utc((self._minute + 1) * 60)}"
                    if projected > self.weight_budget
                    else f"is more than the {self._tokens:.0f} the budget's bucket holds now; it refills at "
                    f"{self.weight_budget} a minute"
                )
                raise RequestSkipped(f"{endpoint}: not sent, its weight {weight} {why}", "weight_budget", first)
            self._sent += weight
            self._tokens -= weight
            return now

    def wait_for(self, weight: int) -> float:
        """Seconds until a request of ``weight`` would be admitted (0: now;
        infinite: never, its weight is over the budget)."""
        with self._lock:
            now = self._clock()
            if now < self._pause.until:
                return self._pause.until - now
            if weight > self.weight_budget:
                return math.inf
            self._roll_minute(now)
            self._refill(now)
            if max(self._sent, self._reported) + weight > self.weight_budget:
                return (self._minute + 1) * 60 - now
            return max(0.0, (weight - self._tokens) * 60 / self.weight_budget)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._filled_at)
        self._tokens = min(float(self.weight_budget), self._tokens + elapsed * self.weight_budget / 60)
        self._filled_at = now

    def report_weight(self, used: int) -> None:
        """Takes in the weight Binance reports used this minute."""
        with self._lock:
            self._roll_minute(self._clock())
            # Concurrent answers arrive in any order: within a minute the
            # highest figure is the latest.
            self._reported = max(self._reported, used)
            self._any_report = True

    def retry_after(self, seconds: float, status: int, sent_at: float) -> Optional[float]:
        """Sends nothing for ``seconds`` (at most ``MAX_RETRY_AFTER``),
        as the ``status`` (429 or 418) answer to a request admitted at
        ``sent_at`` asks. Returns the resume time when this answer is news
        (the caller logs and counts it once); None when it belongs to the
        pause in force: an answer to a request that was already in flight
        when the pause began, and no worse than the answer that began it."""
        with self._lock:
            now = self._clock()
            until = now + min(seconds, MAX_RETRY_AFTER)
            in_force = self._pause.reason == "Retry-After" and now < self._pause.until
            worse = SEVERITY.get(status, 0) > SEVERITY.get(self._pause.status, 0)
            news = not in_force or sent_at >= self._pause.began or worse
            if news:
                self._pause.began = now
                self._pause.status = status if worse or not in_force else self._pause.status
            if news or until > self._pause.until:
                self._pause.until, self._pause.reason = max(until, self._pause.until), "Retry-After"
                self._save_pause()
            return self._pause.until if news else None

    def back_off(self, cap: float) -> float:
        """Pauses for the next step of an exponential backoff (10 s,
        doubling up to ``cap``); returns the resume time."""
        with self._lock:
            self._backoff = min(cap, self._backoff * 2 if self._backoff else BACKOFF_INITIAL)
            until = self._clock() + self._backoff
            if until > self._pause.until:
                self._pause.until, self._pause.reason = until, "backing off"
            return self._pause.until

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
                self._pause.until if self._pause.until > now else None,
            )

    def _save_pause(self) -> None:
        if self._state_file is None:
            return
        record = {"paused_until": self._pause.until, "status": self._pause.status}
        temporary = self._state_file.with_name(f".{PAUSE_FILE}.{os.getpid()}")
        try:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(record), encoding="utf-8")
            os.replace(temporary, self._state_file)
        except OSError as exc:
            logger.warning("cannot keep the Retry-After pause in %s for a restart: %s", self._state_file, exc)

    def _load_pause(self) -> None:
        if self._state_file is None or not self._state_file.exists():
            return
        try:
            record = json.loads(self._state_file.read_text(encoding="utf-8"))
            until, status = float(record["paused_until"]), int(record["status"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring %s, which cannot be read: %s", self._state_file, exc)
            return
        now = self._clock()
        if not math.isfinite(until) or until <= now:
            return
        self._pause.until = min(until, now + MAX_RETRY_AFTER)
        self._pause.reason, self._pause.began, self._pause.status = "Retry-After", now, status
        logger.warning(
            "Binance asked this host (HTTP %d) to send nothing until %s: waiting until then before any request",
            status,
            format_utc(self._pause.until),
        )
