"""The one module that talks to Binance.

Every REST call goes through binance-connector's ``binance.spot.Spot``;
this is the only module that imports ``binance``, so moving to another
client library (binance-connector is deprecated in favour of
``binance-sdk-spot``) changes this module alone.

Every request has a timeout. Every failure (timeout, refused connection,
HTTP error, a body that is not what Binance documents) is counted in
``ApiStats`` and raised as ``MarketDataError`` with the cause chained; the
callers never see a ``requests`` or ``binance`` exception.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import requests
from binance.error import ClientError, Error as ConnectorError, ServerError
from binance.spot import Spot

from binance_exporter.errors import MarketDataError
from binance_exporter.market import BOOK_DEPTH, BookTop, OrderBook, SymbolInfo, Ticker24h
from binance_exporter.snapshot import ApiCounts
from binance_exporter.responses import (
    parse_book_tops,
    parse_exchange_info,
    parse_order_book,
    parse_tickers,
)

logger = logging.getLogger(__name__)

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
INVALID_SYMBOL_CODE = -1121


class ApiStats:
    """Requests made to Binance by endpoint and outcome, errors by endpoint
    and reason, and the request weight Binance reports used. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._requests: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()
        self._weight_used: Optional[int] = None
        self._weight_minute = -1

    def record_request(self, endpoint: str, code: str, weight_used: Optional[int] = None) -> None:
        """Counts one request; ``code`` is the HTTP status, ``timeout`` or
        ``error``; ``weight_used`` is the response's X-MBX-USED-WEIGHT-1M."""
        with self._lock:
            self._requests[(endpoint, code)] += 1
            if weight_used is not None:
                # Binance counts weight per clock minute. Concurrent answers
                # arrive in any order, so within a minute the highest figure
                # is the latest; a new minute starts afresh.
                minute = int(self._clock() // 60)
                if minute != self._weight_minute or self._weight_used is None:
                    self._weight_minute, self._weight_used = minute, weight_used
                else:
                    self._weight_used = max(self._weight_used, weight_used)

    def record_error(self, endpoint: str, reason: str) -> None:
        """Counts one failed request by the reason it failed."""
        with self._lock:
            self._errors[(endpoint, reason)] += 1

    def counts(self) -> ApiCounts:
        """A consistent copy of the counts."""
        with self._lock:
            return ApiCounts(
                requests=tuple(sorted((e, c, n) for (e, c), n in self._requests.items())),
                errors=tuple(sorted((e, r, n) for (e, r), n in self._errors.items())),
                weight_used=self._weight_used,
            )


def _weight(headers: Any) -> Optional[int]:
    value = headers.get(WEIGHT_HEADER) if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _network_problem(exc: requests.RequestException) -> str:
    """The root cause of a failed connection, without urllib3's wrapping:
    "Failed to resolve 'api.binance.com' ([Errno -2] Name or service not known)"."""
    cause = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", cause)
    return re.sub(r"^\w+\(host=.*?\): ", "", str(cause), count=1)


class BinanceClient:
    """Binance's spot market-data endpoints, parsed into market values.

    Safe to use from several threads at once: each thread gets its own
    ``Spot`` (and so its own HTTP connection pool).
    """

    def __init__(self, base_url: str, timeout: float, stats: Optional[ApiStats] = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.stats = stats or ApiStats()
        self._base_path = urlsplit(self.base_url).path
        self._local = threading.local()

    def _spot(self) -> Spot:
        spot = getattr(self._local, "spot", None)
        if spot is None:
            spot = Spot(base_url=self.base_url, timeout=self.timeout, show_header=True)
            spot.session.hooks["response"].append(self._on_response)
            self._local.spot = spot
        return spot

    def _on_response(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        # Runs for every HTTP response, errors included, before
        # binance-connector looks at it: the one place that sees the real
        # status code and the weight header of each.
        endpoint = urlsplit(response.url).path[len(self._base_path) :]
        self.stats.record_request(endpoint, str(response.status_code), _weight(response.headers))

    def _get(self, endpoint: str, call: Callable[[Spot], Any]) -> Any:
        """The JSON body of one GET, or ``MarketDataError``."""
        try:
            result = call(self._spot())
        except requests.Timeout as exc:
            self._fail(endpoint, "timeout", f"no answer within {self.timeout:g} s", exc, code="timeout")
        except requests.RequestException as exc:
            self._fail(
                endpoint, "connection", f"cannot reach {self.base_url}: {_network_problem(exc)}", exc, code="error"
            )
        except ClientError as exc:
            reason = "invalid_symbol" if exc.error_code == INVALID_SYMBOL_CODE else "http"
            self._fail(endpoint, reason, f"HTTP {exc.status_code}: {exc.error_code} {exc.error_message}", exc)
        except ServerError as exc:
            self._fail(endpoint, "http", f"HTTP {exc.status_code}: {str(exc.message)[:200]}", exc)
        except (ConnectorError, KeyError, TypeError, ValueError) as exc:
            # binance-connector itself trips over some error bodies (a 4xx
            # whose JSON has no "code"); the status was already counted.
            self._fail(endpoint, "invalid_response", f"unreadable error response: {exc!r}", exc)
        data = result["data"]
        if not isinstance(data, (dict, list)):
            self._fail(endpoint, "invalid_response", f"not JSON: {str(data)[:200]!r}")
        return data

    def _fail(
        self,
        endpoint: str,
        reason: str,
        message: str,
        cause: Optional[BaseException] = None,
        code: Optional[str] = None,
    ) -> None:
        if code is not None:  # no HTTP response, so the hook did not count it
            self.stats.record_request(endpoint, code)
        self.stats.record_error(endpoint, reason)
        raise MarketDataError(f"{endpoint}: {message}", reason) from cause

    def _parsed(self, endpoint: str, call: Callable[[Spot], Any], parse: Callable[[Any], Any]) -> Any:
        data = self._get(endpoint, call)
        try:
            return parse(data)
        except MarketDataError as exc:
            self.stats.record_error(endpoint, "invalid_response")
            raise MarketDataError(f"{endpoint}: {exc}") from exc

    def exchange_info(self) -> dict[str, SymbolInfo]:
        """Every listed symbol's status and assets, by symbol."""
        return self._parsed("/api/v3/exchangeInfo", lambda spot: spot.exchange_info(), parse_exchange_info)

    def tickers_24h(self) -> list[Ticker24h]:
        """Every symbol's 24 h statistics, from one unfiltered call."""
        return self._parsed("/api/v3/ticker/24hr", lambda spot: spot.ticker_24hr(), parse_tickers)

    def order_book(self, symbol: str) -> OrderBook:
        """The best ``BOOK_DEPTH`` levels of each side of ``symbol``'s book."""
        return self._parsed(
            "/api/v3/depth",
            lambda spot: spot.depth(symbol, limit=BOOK_DEPTH),
            lambda data: parse_order_book(symbol, data),
        )

    def book_tops(self, symbols: list[str]) -> dict[str, BookTop]:
        """Best bid and ask of each of ``symbols``, from one call.

        A symbol whose record is missing or invalid is absent from the
        result; why is logged and counted.
        """
        endpoint = "/api/v3/ticker/bookTicker"
        tops, rejected = self._parsed(endpoint, lambda spot: spot.book_ticker(symbols=symbols), parse_book_tops)
        for error in rejected:
            logger.warning("%s: %s", endpoint, error)
        missing = [symbol for symbol in symbols if symbol not in tops]
        if missing:
            for _ in missing:
                self.stats.record_error(endpoint, "invalid_response")
            logger.warning("%s: no valid record for %s", endpoint, ", ".join(missing))
        return {symbol: tops[symbol] for symbol in symbols if symbol in tops}

    def api_counts(self) -> ApiCounts:
        """Requests made so far, their outcomes and the last weight used."""
        return self.stats.counts()
