"""The one module that talks to Binance.

Every REST call goes through binance-connector's ``binance.spot.Spot``;
this is the only module that imports ``binance``, so moving to another
client library (binance-connector is deprecated in favour of
``binance-sdk-spot``) changes this module alone.

Every request first passes the ``RequestGate`` and has a timeout. Every
failure (timeout, refused connection, HTTP error, a body that is not what
Binance documents) is counted in ``ApiStats`` and raised as
``MarketDataError`` with the cause chained; the callers never see a
``requests`` or ``binance`` exception.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any, Callable, Optional, Sequence
from urllib.parse import urlsplit

import requests
from binance.error import ClientError, Error as ConnectorError
from binance.spot import Spot

from binance_exporter.binance.bounded_http import AnswerRefused, BoundedAdapter, RequestLimits
from binance_exporter.binance.depth_sync import DepthSnapshot
from binance_exporter.binance.recording import Recorder
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import (
    BOOK_DEPTH,
    BookTop,
    OrderBook,
    SymbolInfo,
    Ticker24h,
    format_utc,
    printable,
)
from binance_exporter.binance.request_gate import (
    BACKOFF_CAP_BLOCKED,
    BACKOFF_CAP_UNREACHABLE,
    DEFAULT_RETRY_AFTER,
    MAX_RETRY_AFTER,
    GateState,
    RequestGate,
    RequestSkipped,
)
from binance_exporter.binance.responses import (
    parse_agg_trades,
    parse_book_tops,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_order_book,
    parse_tickers,
)
from binance_exporter.cycle.snapshot import ApiCounts
from binance_exporter.market.microstructure import AggTrade

logger = logging.getLogger(__name__)

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
INVALID_SYMBOL_CODE = -1121


MIB = 1024 * 1024
# Request weights, as Binance documents them, of the calls this client makes.
WEIGHTS = {
    "/api/v3/exchangeInfo": 20,
    "/api/v3/ticker/24hr": 80,  # all symbols
    "/api/v3/depth": 25,  # limit 101-500
    "/api/v3/ticker/bookTicker": 4,  # symbols=[...]
    "/api/v3/aggTrades": 4,
}
# The weight of /api/v3/depth by limit: (largest limit, weight), smallest first.
DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))


def depth_weight(limit: int) -> int:
    """The request weight of ``GET /api/v3/depth?limit=...``."""
    return next(weight for most, weight in DEPTH_WEIGHTS if limit <= most)
# The largest body each may have, decoded: a few times the largest real
# answer (the full exchangeInfo is about 4 MB, all 24 h tickers about 1 MB,
# even a limit-5000 depth about 300 kB, a bookTicker for 100 symbols 15 kB).
MAX_BODY_BYTES = {
    "/api/v3/exchangeInfo": 16 * MIB,
    "/api/v3/ticker/24hr": 8 * MIB,
    "/api/v3/depth": 2 * MIB,
    "/api/v3/ticker/bookTicker": 1 * MIB,
    "/api/v3/aggTrades": 1 * MIB,  # 1000 trades of about 120 bytes
}
RETRIES = 2
RETRY_DELAY = 0.5
RETRY_DELAY_CAP = 4.0
DATA_API_URL = "https://data-api.binance.vision"
ERROR_REASONS = (
    "timeout",
    "connection",
    "server_error",
    "client_error",
    "rate_limited",
    "blocked",
    "invalid_response",
    "invalid_symbol",
)
SKIP_REASONS = ("retry_after", "backoff", "weight_budget")


class ApiStats:
    """Requests made to Binance by endpoint and outcome, failures by
    endpoint and reason, requests the gate skipped, and 429/418 answers.
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        # Known outcomes start at 0, so that a first failure shows in increase()
        # and rate() rather than as a new series.
        self._errors = Counter({(e, r): 0 for e in WEIGHTS for r in ERROR_REASONS})
        self._skipped = Counter({(e, r): 0 for e in WEIGHTS for r in SKIP_REASONS})
        self._rate_limited = Counter({"418": 0, "429": 0})

    def record_request(self, endpoint: str, code: str) -> None:
        """Counts one request; ``code`` is the HTTP status, ``timeout`` or ``error``."""
        with self._lock:
            self._requests[(endpoint, code)] += 1

    def record_error(self, endpoint: str, reason: str) -> None:
        """Counts one failed request by the reason it failed."""
        with self._lock:
            self._errors[(endpoint, reason)] += 1

    def record_skipped(self, endpoint: str, reason: str) -> None:
        """Counts one request the gate did not let through."""
        with self._lock:
            self._skipped[(endpoint, reason)] += 1

    def record_rate_limited(self, status: int) -> None:
        """Counts one 429 or 418 answer."""
        with self._lock:
            self._rate_limited[str(status)] += 1

    def counts(self, gate: GateState) -> ApiCounts:
        """A consistent copy of the counts, with the gate's state."""
        with self._lock:
            return ApiCounts(
                requests=_rows(self._requests),
                errors=_rows(self._errors),
                skipped=_rows(self._skipped),
                rate_limited=tuple(sorted(self._rate_limited.items())),
                weight_used=gate.weight_used,
                weight_budget=gate.weight_budget,
                paused_until=gate.paused_until,
            )


def _rows(counter: Counter[tuple[str, str]]) -> tuple[tuple[str, str, int], ...]:
    return tuple(sorted((first, second, count) for (first, second), count in counter.items()))


class RateLimited(MarketDataError):
    """Binance answered 429 (too much weight) or 418 (IP banned)."""

    def __init__(self, message: str, status: int, retry_after: float):
        super().__init__(message, "rate_limited")
        self.status = status
        self.retry_after = retry_after


def _weight(headers: Any) -> Optional[int]:
    try:
        return int(headers[WEIGHT_HEADER])
    except (KeyError, ValueError):
        return None


def _network_problem(exc: requests.RequestException) -> str:
    """The root cause of a failed connection, without urllib3's wrapping:
    "Failed to resolve 'api.binance.com' ([Errno -2] Name or service not known)"."""
    cause = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", cause)
    return re.sub(r"^\w+\(host=.*?\): ", "", str(cause), count=1)


class BinanceClient:
    """Binance's spot market-data endpoints, parsed into market values.

    Every request first passes the ``RequestGate``. A transient failure (a
    timeout, a refused or reset connection, HTTP 5xx, a truncated or
    non-JSON body) is retried up to ``RETRIES`` times with capped
    exponential backoff and jitter, as long as the caller's ``time_left``
    allows. Safe to use from several threads at once: each thread gets its
    own ``Spot`` (and so its own HTTP connection pool).

    With several base URLs, a request that finds Binance unreachable or
    refusing this host (451, 403) moves every later request to the next
    URL; the client backs off only once all of them have failed in a row,
    and stays with whichever URL answers.
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        timeout: float,
        gate: Optional[RequestGate] = None,
        stats: Optional[ApiStats] = None,
        sleep: Callable[[float], None] = time.sleep,
        recorder: Optional[Recorder] = None,
    ):
        urls = (base_urls,) if isinstance(base_urls, str) else tuple(base_urls)
        self.base_urls = tuple(url.rstrip("/") for url in urls)
        self.timeout = timeout
        self.gate = gate or RequestGate()
        self.stats = stats or ApiStats()
        self._sleep = sleep
        self.recorder = recorder  # takes every answer used, with --record
        self._local = threading.local()
        self._failover_lock = threading.Lock()
        self._active = 0  # index of the base URL in use
        self._failed_in_a_row = 0  # base URLs that failed since one last answered

    @property
    def base_url(self) -> str:
        """The base URL requests go to now."""
        return self.base_urls[self._active]

    def _spot(self, url: str) -> tuple[Spot, BoundedAdapter]:
        spots = self._local.__dict__.setdefault("spots", {})
        if url not in spots:
            spot = Spot(base_url=url, timeout=self.timeout, show_header=True)
            transport = BoundedAdapter()
            spot.session.mount("http://", transport)
            spot.session.mount("https://", transport)
            spot.session.headers["Accept-Encoding"] = "gzip"
            spots[url] = (spot, transport)
        return spots[url]

    def _record_answer(self, endpoint: str, answer: Optional[requests.Response], failure: str) -> None:
        """Counts one request by its HTTP status (``failure`` when no answer
        came) and takes in the weight Binance reports."""
        if answer is None:
            self.stats.record_request(endpoint, failure)
            return
        status = answer.status_code
        self.stats.record_request(endpoint, str(status) if 100 <= status <= 599 else "error")
        weight = _weight(answer.headers)
        if weight is not None:
            self.gate.report_weight(weight)

    def _get(
        self, endpoint: str, call: Callable[[Spot], Any], time_left: Optional[float], weight: Optional[int] = None
    ) -> Any:
        """The JSON body of one GET (of ``weight``, default the endpoint's
        in ``WEIGHTS``), retried while that may help, or ``MarketDataError``."""
        deadline = None if time_left is None else time.monotonic() + time_left
        for attempt in range(RETRIES + 1):
            try:
                sent_at = self.gate.admit(endpoint, WEIGHTS[endpoint] if weight is None else weight)
            except RequestSkipped as exc:
                self.stats.record_skipped(endpoint, exc.reason)
                logger.log(logging.WARNING if exc.first else logging.DEBUG, "%s", exc)
                raise
            url = self.base_url
            # A request ends within the timeout, and never outlives the cycle that waits for it.
            seconds = self.timeout if deadline is None else min(self.timeout, max(0.0, deadline - time.monotonic()))
            try:
                data = self._attempt(endpoint, call, url, seconds)
            except MarketDataError as exc:
                self.stats.record_error(endpoint, exc.reason)
                delay = min(RETRY_DELAY_CAP, RETRY_DELAY * 2**attempt) * random.uniform(0.5, 1.0)
                in_time = deadline is None or time.monotonic() + delay + self.timeout < deadline
                if not (exc.retryable and attempt < RETRIES and in_time):
                    self._after_failure(exc, url, sent_at)
                    raise
                logger.info("%s, retrying in %.1f s", exc, delay)
                self._sleep(delay)
            else:
                self._failed_in_a_row = 0
                self.gate.succeeded()
                return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, endpoint: str, call: Callable[[Spot], Any], url: str, seconds: float) -> Any:
        spot, transport = self._spot(url)
        transport.limits = RequestLimits(time.monotonic() + seconds, MAX_BODY_BYTES[endpoint])
        failure = "error"
        try:
            result = call(spot)
        except requests.Timeout as exc:
            failure = "timeout"
            raise MarketDataError(f"{endpoint}: no answer within {seconds:.3g} s", "timeout", True) from exc
        except requests.RequestException as exc:
            problem = f"cannot reach {url}: {_network_problem(exc)}"
            raise MarketDataError(f"{endpoint}: {problem}", "connection", True) from exc
        except AnswerRefused as exc:
            raise MarketDataError(f"{endpoint}: {exc}", "invalid_response", exc.retryable) from exc
        except RecursionError as exc:
            raise MarketDataError(f"{endpoint}: JSON nested too deeply", "invalid_response") from exc
        except (ConnectorError, KeyError, TypeError, ValueError) as exc:
            # binance-connector raises ClientError/ServerError for 4xx/5xx,
            # and trips over some error bodies itself (a 4xx whose JSON has
            # no "code"): the answer the transport kept says what happened.
            raise self._http_failure(endpoint, transport.answer, exc) from exc
        finally:
            self._record_answer(endpoint, transport.answer, failure)
        data = result["data"]
        if not isinstance(data, (dict, list)):
            raise MarketDataError(f"{endpoint}: not JSON: {printable(str(data))!r}", "invalid_response", True)
        logger.debug("%s: HTTP %d, %d bytes", endpoint, transport.answer.status_code, len(transport.answer.content))
        if self.recorder is not None:
            self.recorder.rest_answer(endpoint, urlsplit(transport.answer.url).query, transport.answer.content)
        return data

    @staticmethod
    def _http_failure(endpoint: str, response: Optional[requests.Response], exc: Exception) -> MarketDataError:
        status = response.status_code if response is not None else 0
        if isinstance(exc, ClientError):
            said = (exc.error_code, exc.error_message)
            detail = " ".join(str(part) for part in said if part is not None)
        else:
            detail = response.text if response is not None else repr(exc)
        detail = printable(detail)
        message = f"{endpoint}: HTTP {status}" + (f": {detail}" if detail else "")
        if status in (429, 418):
            return RateLimited(message, status, _retry_after(response, status))
        if status in (451, 403):
            return MarketDataError(message, "blocked")
        if isinstance(exc, ClientError) and exc.error_code == INVALID_SYMBOL_CODE:
            return MarketDataError(message, "invalid_symbol")
        if status >= 500:
            return MarketDataError(message, "server_error", True)
        return MarketDataError(message, "client_error")

    def _after_failure(self, exc: MarketDataError, url: str, sent_at: float) -> None:
        """Pauses requests, or moves them to another base URL, where Binance
        asks for it, cannot be reached or refuses us at ``url``."""
        if isinstance(exc, RateLimited):
            until = self.gate.retry_after(exc.retry_after, exc.status, sent_at)
            if until is not None:  # news, not another answer to a request already in flight
                self.stats.record_rate_limited(exc.status)
                capped = " (capped at Binance's longest ban)" if exc.retry_after > MAX_RETRY_AFTER else ""
                logger.warning(
                    "%s; sending nothing to Binance for %g s%s, until %s",
                    exc,
                    min(exc.retry_after, MAX_RETRY_AFTER),
                    capped,
                    format_utc(until),
                )
        elif exc.reason in ("blocked", "connection") and self._fail_over(exc, url):
            return
        elif exc.reason == "blocked":
            until = self.gate.back_off(BACKOFF_CAP_BLOCKED)
            logger.error(
                "%s: Binance refuses requests from this host (451: restricted location, 403: blocked by its "
                "firewall); --base-url %s serves the same market data; retrying at %s",
                exc,
                DATA_API_URL,
                format_utc(until),
            )
        elif exc.reason == "connection":
            until = self.gate.back_off(BACKOFF_CAP_UNREACHABLE)
            logger.warning("%s; retrying at %s", exc, format_utc(until))

    def _fail_over(self, exc: MarketDataError, failed: str) -> bool:
        """Moves on from the base URL ``failed``; False when every one has
        now failed in a row (time to back off; the next round starts afresh)."""
        with self._failover_lock:
            if len(self.base_urls) == 1:
                return False
            if failed != self.base_url:
                return True  # a concurrent request already moved on from it
            self._active = (self._active + 1) % len(self.base_urls)
            self._failed_in_a_row += 1
            if self._failed_in_a_row < len(self.base_urls):
                logger.warning("%s; switching from %s to %s", exc, failed, self.base_url)
                return True
            self._failed_in_a_row = 0
            return False

    def _parsed(  # pylint: disable=too-many-arguments
        self,
        endpoint: str,
        call: Callable[[Spot], Any],
        parse: Callable[[Any], Any],
        time_left: Optional[float],
        weight: Optional[int] = None,
    ) -> Any:
        data = self._get(endpoint, call, time_left, weight)
        try:
            return parse(data)
        except MarketDataError as exc:
            self.stats.record_error(endpoint, "invalid_response")
            raise MarketDataError(f"{endpoint}: {exc}") from exc

    def _log_rejected(self, endpoint: str, rejected: list[MarketDataError]) -> None:
        if rejected:
            more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
            logger.warning("%s: record rejected: %s%s", endpoint, rejected[0], more)

    def _records(
        self, endpoint: str, call: Callable[[Spot], Any], parse: Callable[[Any], Any], time_left: Optional[float]
    ) -> Any:
        """The valid records of an answer listing many symbols; each one
        rejected is logged and counted, and costs only its own symbol."""
        records, rejected = self._parsed(endpoint, call, parse, time_left)
        self._log_rejected(endpoint, rejected)
        for _ in rejected:
            self.stats.record_error(endpoint, "invalid_response")
        return records

    def exchange_info(self, time_left: Optional[float] = None) -> dict[str, SymbolInfo]:
        """Every listed symbol's status and assets, by symbol."""
        return self._records("/api/v3/exchangeInfo", lambda spot: spot.exchange_info(), parse_exchange_info, time_left)

    def tickers_24h(self, time_left: Optional[float] = None) -> list[Ticker24h]:
        """Every symbol's 24 h statistics, from one unfiltered call."""
        return self._records("/api/v3/ticker/24hr", lambda spot: spot.ticker_24hr(), parse_tickers, time_left)

    def order_book(self, symbol: str, time_left: Optional[float] = None) -> OrderBook:
        """The best ``BOOK_DEPTH`` levels of each side of ``symbol``'s book."""
        return self._parsed(
            "/api/v3/depth",
            lambda spot: spot.depth(symbol, limit=BOOK_DEPTH),
            lambda data: parse_order_book(symbol, data),
            time_left,
        )

    def depth_snapshot(self, symbol: str, limit: int, time_left: Optional[float] = None) -> DepthSnapshot:
        """The book a local order book starts from: ``limit`` levels a side
        and the ``lastUpdateId`` they stand at."""
        return self._parsed(
            "/api/v3/depth",
            lambda spot: spot.depth(symbol, limit=limit),
            lambda data: parse_depth_snapshot(symbol, data, limit),
            time_left,
            depth_weight(limit),
        )

    def agg_trades(
        self, symbol: str, from_id: Optional[int], limit: int, time_left: Optional[float] = None
    ) -> list[AggTrade]:
        """Up to ``limit`` aggregate trades of ``symbol`` from id
        ``from_id`` on, or the latest ``limit`` when it is None; oldest first."""
        options = {"limit": limit} if from_id is None else {"fromId": from_id, "limit": limit}
        return self._parsed(
            "/api/v3/aggTrades",
            lambda spot: spot.agg_trades(symbol, **options),
            lambda data: parse_agg_trades(symbol, data),
            time_left,
        )

    def book_tops(self, symbols: list[str], time_left: Optional[float] = None) -> dict[str, BookTop]:
        """Best bid and ask of each of ``symbols``, from one call.

        A symbol whose record is missing or invalid is absent from the
        result; why is logged and counted.
        """
        endpoint = "/api/v3/ticker/bookTicker"
        tops, rejected = self._parsed(
            endpoint, lambda spot: spot.book_ticker(symbols=symbols), parse_book_tops, time_left
        )
        self._log_rejected(endpoint, rejected)
        missing = [symbol for symbol in symbols if symbol not in tops]
        for _ in missing:
            self.stats.record_error(endpoint, "invalid_response")
        if missing:
            logger.warning("%s: no valid record for %s", endpoint, ", ".join(missing))
        return {symbol: tops[symbol] for symbol in symbols if symbol in tops}

    def api_counts(self) -> ApiCounts:
        """Requests made so far, their outcomes, the weight used, the gate's
        state, and the recording's counts (with --record)."""
        counts = self.stats.counts(self.gate.state())
        return counts if self.recorder is None else replace(counts, recording=self.recorder.counts())


def _retry_after(response: Optional[requests.Response], status: int) -> float:
    """Seconds from a response's Retry-After header, or Binance's usual
    pause for ``status`` when it is missing or unreadable."""
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        seconds = math.nan
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_RETRY_AFTER[status]
