"""A Binance-compatible fake spot market server, for tests, demos and
benchmarks.

``python -m binance_exporter.fake.simulator --port 9999`` serves the market-data
endpoints the exporter uses, as Binance serves them:

* ``GET /api/v3/exchangeInfo``, ``/api/v3/ticker/24hr``,
  ``/api/v3/depth``, ``/api/v3/ticker/bookTicker``, ``/api/v3/aggTrades``
  and ``/api/v3/ping``,
  with Binance's parameter handling (``symbol``/``symbols`` as a JSON array,
  ``limit`` defaults and caps) and error bodies such as
  ``{"code":-1121,"msg":"Invalid symbol."}``, gzip-compressed when the
  client accepts it;
* request weights, the weight used in the current window in the
  ``X-MBX-USED-WEIGHT-1M`` header, and 429 with ``Retry-After`` past the
  weight limit;
* Binance's ban: a request that arrives while a ``Retry-After`` it was
  given is still running gets 418 and counts as a violation.

The market (``simulated_market``) moves with time and holds the traps real
data holds. Faults (``Fault``) can be injected per endpoint and symbol, on a
schedule: a status with headers, a hang, a reset connection, a truncated,
non-JSON or wrongly shaped body, an answer trickling out byte by byte, an
endless or huge body, a gzip bomb, a redirect loop.

With a ``stream_port``, it serves Binance's websocket streams too
(``streams``), from the same market: diff-depth, aggregate trade and 24 h
ticker streams, with Binance's limits, and stream faults (``StreamFault``).

``GET /sim/stats`` (not a Binance endpoint) reports the requests, weight
and violations the server has seen, the latest aggregate trade of each
symbol the first time its latest trades were asked for (where a client's
trade counting starts), and the streams' connections, messages
and violations, so tests and benchmarks measure rather than compute;
``POST /sim/faults`` injects a fault given as JSON (the fields of
``Fault``, e.g. ``{"path": "/api/v3/depth", "status": 503, "times": 2}``,
or of ``StreamFault``, e.g. ``{"path": "stream", "action": "gap"}``),
``GET /sim/faults`` lists them and ``DELETE /sim/faults`` clears them;
``POST /sim/market`` with ``{"frozen": true}`` holds the market still and
``{"frozen": false}`` lets it move again; ``POST /sim/symbols`` with
``{"symbol": "NEWUSDT", "status": "TRADING"}`` lists a new symbol or
changes a listed one's status (``"BREAK"`` delists it).

``--whole-market`` serves about the whole of Binance's spot market
(``symbols.whole_market``: 1,500 TRADING symbols and some in BREAK, skewed
rates, thin and deep books) at 10 steps a second, ``--peak`` with every trading book changing
at every step.
"""

from __future__ import annotations

import argparse
import json
import re
import logging
import math
import os
import socket
import struct
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Optional, Union
from urllib.parse import parse_qs, urlsplit

import orjson

from binance_exporter.config import OneLineParser
from binance_exporter.signals import SignalRecord
from binance_exporter.fake.faults import (
    REST_PATHS,
    AnswerAbandoned,
    AnswerWriter,
    Fault,
    Reply,
    StreamFault,
    accepts_gzip,
    encoded_body,
    fault_help,
    gzip_bomb,
    valid_seconds,
)
from binance_exporter.fake.market import Market
from binance_exporter.fake.symbols import LISTED_SYMBOLS, new_listing, split_symbol, synthetic_symbols, whole_market
from binance_exporter.fake.streams import NoRecord, StreamServer

logger = logging.getLogger(__name__)

MAX_DEPTH_LIMIT = 5000
MAX_AGG_TRADES_LIMIT = 1000
WEIGHT_LIMIT = 6000
BAN_SECONDS = 120.0
# A request that arrives this soon after a 429 or 418 was sent was already
# on its way: it gets 429 again but is not a violation.
IN_FLIGHT_GRACE = 0.25

MAX_FAULTS = 100
MAX_FAULT_JSON = 65536  # bytes of one POSTed fault (or listing)
STREAM_PORT = 9443  # Binance's
# A listing (POST /sim/symbols): its fields, and Binance's symbol statuses.
LISTING_FIELDS = ("symbol", "status", "baseAsset", "quoteAsset", "price")
STATUSES = ("PRE_TRADING", "TRADING", "POST_TRADING", "END_OF_DAY", "HALT", "AUCTION_MATCH", "BREAK")
_SYMBOL_NAME = re.compile(r"[A-Z0-9]{2,20}")
_ASSET_NAME = re.compile(r"[A-Z0-9]{1,20}")
_PRICE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,8})?")
WHOLE_MARKET_TICK_SECONDS = 0.1  # the whole market steps as often as @depth@100ms sends


def _retry_after(headers: dict[str, str], default: float) -> float:
    try:
        seconds = float(headers.get("Retry-After", default))
    except ValueError:
        return default
    return seconds if valid_seconds(seconds) else default


def _json(body: Any) -> bytes:
    return orjson.dumps(body)  # several times json's speed: the whole market's answers are large


class ApiError(Exception):
    """A Binance error response: HTTP status, Binance code and message."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def invalid_symbol() -> ApiError:
    """Binance's answer to a symbol it does not list."""
    return ApiError(400, -1121, "Invalid symbol.")


def depth_weight(limit: int) -> int:
    """Request weight of GET /api/v3/depth by ``limit``."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def ticker_weight(symbols: Optional[list[str]]) -> int:
    """Request weight of GET /api/v3/ticker/24hr by how many symbols."""
    if symbols is None:
        return 80
    if len(symbols) <= 20:
        return 2
    return 40 if len(symbols) <= 100 else 80


_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'


class Query:
    """A request's query parameters, read as Binance reads them."""

    def __init__(self, raw: str, allowed: tuple[str, ...]):
        self.params = {name: values[-1] for name, values in parse_qs(raw, keep_blank_values=True).items()}
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ApiError(
                400,
                -1104,
                f"Not all sent parameters were read; read '{len(self.params) - len(unknown)}' parameter(s) "
                f"but was sent '{len(self.params)}'.",
            )

    def symbol(self, market: Market, required: bool = False) -> Optional[str]:
        """The ``symbol`` parameter, checked against the listed symbols."""
        value = self.params.get("symbol")
        if value is None or value == "":
            if required:
                raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        if value not in market.symbols:
            raise invalid_symbol()
        return value

    def symbols(self, market: Market) -> Optional[list[str]]:
        """The ``symbols`` parameter, a JSON array of listed symbols."""
        value = self.params.get("symbols")
        if value is None:
            return None
        try:
            names = json.loads(value)
        except ValueError:
            names = None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise ApiError(
                400, -1100, f"Illegal characters found in parameter 'symbols'; legal range is '{_SYMBOLS_RANGE}'."
            )
        if any(name not in market.symbols for name in names):
            raise invalid_symbol()
        if "symbol" in self.params:
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        return list(dict.fromkeys(names))

    def integer(self, name: str) -> Optional[int]:
        """An optional non-negative integer parameter (an id, a time in ms)."""
        value = self.params.get(name)
        if value is None:
            return None
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise ApiError(
                400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,19}}$'."
            )
        return int(value)

    def limit(self, default: int) -> int:
        """The ``limit`` parameter: a positive integer, capped at 5000."""
        value = self.params.get("limit")
        if value is None:
            return default
        if not (value.isascii() and value.isdigit()) or len(value) > 20 or int(value) == 0:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")
        return min(int(value), MAX_DEPTH_LIMIT)


class WeightWindow:
    """Request weight used per window (Binance: per clock minute, per IP)."""

    def __init__(self, seconds: float = 60.0, clock: Callable[[], float] = time.time, limit: int = WEIGHT_LIMIT):
        self.seconds = seconds
        self.limit = limit
        self._clock = clock
        self._window = -1
        self.used = 0
        self.total = 0

    def _roll(self) -> None:
        window = int(self._clock() // self.seconds)
        if window != self._window:
            self._window, self.used = window, 0

    def fits(self, weight: int) -> bool:
        """Whether ``weight`` more stays within the limit this window."""
        self._roll()
        return self.used + weight <= self.limit

    def add(self, weight: int) -> int:
        """Counts ``weight`` and returns the weight used this window."""
        self._roll()
        self.used += weight
        self.total += weight
        return self.used

    def seconds_left(self) -> float:
        """Seconds until the window ends."""
        return self.seconds - self._clock() % self.seconds


class BinanceSimulator:  # pylint: disable=too-many-instance-attributes  # its state, its counters and its server
    """The fake Binance HTTP server, and its stream server when
    ``stream_port`` is given (0: a free port; ``stream_options`` are
    ``StreamServer``'s, e.g. a shorter ``ping_interval``); ``start()``
    serves on threads."""

    def __init__(  # pylint: disable=too-many-arguments  # each a knob of the fake
        self,
        market: Optional[Market] = None,
        address: str = "127.0.0.1",
        port: int = 0,
        weight_limit: int = WEIGHT_LIMIT,
        window_seconds: float = 60.0,
        ban_seconds: float = BAN_SECONDS,
        clock: Callable[[], float] = time.time,
        latency: float = 0.0,
        *,
        stream_port: Optional[int] = None,
        stream_options: Optional[dict[str, Any]] = None,
    ):
        self.market = market or Market()
        self.latency = latency  # seconds added to every answer: a network round trip
        self.clock = clock  # Unix time: weight windows are clock minutes, as Binance's are
        self.weights = WeightWindow(window_seconds, clock, weight_limit)
        self.ban_seconds = ban_seconds
        self.faults: list[Union[Fault, StreamFault]] = []
        self.answered: Counter[tuple[str, int]] = Counter()  # (path, status); paths not served count as "other"
        self.violations = 0
        self.agg_trade_baselines: dict[str, int] = {}  # symbol: the latest trade first answered without fromId
        self.in_progress = 0  # answers being waited for or sent right now
        self.stopping = threading.Event()  # set by stop(): every answer still going gives up
        self._banned = (-math.inf, -math.inf)  # (since, until), on ``clock``
        self._lock = threading.Lock()
        self.server = _Server((address, port), self)
        self.streams: Optional[StreamServer] = None
        if stream_port is not None:
            try:
                self.streams = StreamServer(
                    self.market, address, stream_port, faults=self.take_stream_fault, clock=clock,
                    **(stream_options or {}),
                )  # fmt: skip
            except OSError:
                self.server.server_close()
                raise

    @property
    def url(self) -> str:
        """The base URL to give a Binance client."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def stream_url(self) -> str:
        """The base URL of the websocket streams: ``ws://host:port``."""
        if self.streams is None:
            raise RuntimeError("this simulator serves no streams: give it a stream_port")
        return self.streams.url

    def start(self) -> "BinanceSimulator":
        """Serves on background threads."""
        threading.Thread(target=self.server.serve_forever, args=(0.05,), name="binance-simulator", daemon=True).start()
        if self.streams is not None:
            self.streams.start()
        return self

    def stop(self) -> None:
        """Stops serving, closes the sockets, drops the stream connections,
        and has every answer still waiting or being sent give up within
        ``POLL_SECONDS``."""
        self.stopping.set()
        if self.streams is not None:
            self.streams.stop()
        self.server.shutdown()
        self.server.server_close()

    def inject(self, fault: Union[Fault, StreamFault]) -> Union[Fault, StreamFault]:
        """Serves ``fault`` from now on (see ``Fault`` and ``StreamFault``);
        ValueError if ``MAX_FAULTS`` are in force already."""
        if isinstance(fault, Fault) and fault.gzip_bomb is not None:
            gzip_bomb(fault.body or b"[]", fault.gzip_bomb)  # built now rather than while a request waits
        with self._lock:
            if len(self.faults) >= MAX_FAULTS:
                raise ValueError(f"{MAX_FAULTS} faults are in force already; DELETE /sim/faults clears them")
            fault.injected_at = self.clock()
            self.faults.append(fault)
        return fault

    def fault_list(self) -> list[dict[str, Any]]:
        """The GET /sim/faults body: the faults in force (see ``Fault.listing``)."""
        with self._lock:
            now = self.clock()
            self.faults = [fault for fault in self.faults if not fault.over(now)]
            return [fault.listing(now) for fault in self.faults]

    def clear_faults(self) -> None:
        """Serves real answers again."""
        with self._lock:
            self.faults.clear()

    def take_stream_fault(self, actions: frozenset, symbols: Optional[set]) -> Optional[StreamFault]:
        """The first stream fault in force that acts now as one of
        ``actions`` on a connection with streams of ``symbols`` (None:
        any), counted as having acted; the stream server asks (for every
        depth and trade stream at every tick: with no fault in force, it
        answers without the lock)."""
        if not self.faults:
            return None
        with self._lock:
            now = self.clock()
            for fault in self.faults:
                if isinstance(fault, StreamFault) and fault.acts_on(actions, symbols, now):
                    fault.fired += 1
                    if fault.over(now):
                        self.faults.remove(fault)
                    return fault
            return None

    def set_frozen(self, frozen: bool) -> dict[str, Any]:
        """Freezes or unfreezes the market; the POST /sim/market answer."""
        if frozen:
            self.market.freeze()
        else:
            self.market.unfreeze()
        return {"frozen": self.market.frozen, "step": self.market.step()}

    def set_listing(self, spec: Any) -> tuple[int, dict[str, Any]]:
        """Lists a new symbol or changes a listed one's status, as
        ``spec`` (a POST /sim/symbols body) says; (201 or 200, the
        symbol's exchangeInfo entry now). ValueError, saying what is
        wrong, for a body that is not a listing."""
        fields = _listing_fields(spec)
        market = self.market
        if not hasattr(market, "set_status"):
            raise ValueError("this market's symbols are not the simulator's to list")
        symbol, status = fields["symbol"], fields["status"]
        if symbol in market.symbols:
            other = sorted(set(fields) - {"symbol", "status"})
            if other:
                raise ValueError(f"{symbol} is listed already: only its status changes, not {', '.join(other)}")
            market.set_status(symbol, status)
            created = 200
        else:
            if "baseAsset" in fields or "quoteAsset" in fields:
                base, quote = fields.get("baseAsset", ""), fields.get("quoteAsset", "")
                if base + quote != symbol:
                    raise ValueError(f"baseAsset and quoteAsset must make the symbol: {base} + {quote} is not {symbol}")
            else:
                base, quote = split_symbol(symbol)
            market.list_symbol(new_listing(symbol, status, base, quote, fields.get("price")))
            created = 201
        return created, market.exchange_info([symbol])["symbols"][0]

    def stats(self) -> dict[str, Any]:
        """The /sim/stats body: requests by path and by status, weight,
        violations, the answers in progress, and the streams' counts
        (``StreamServer.stats``) when it serves them."""
        with self._lock:
            requests: Counter[str] = Counter()
            for (path, _), count in self.answered.items():
                requests[path] += count
            stats = {
                "requests": dict(requests),
                "statuses": {f"{path} {status}": count for (path, status), count in self.answered.items()},
                "weight_total": self.weights.total,
                "agg_trade_baselines": dict(self.agg_trade_baselines),
                "violations": self.violations,
                "in_progress": self.in_progress,
            }
        if self.streams is not None:
            stats.update(self.streams.stats())
        return stats

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Counts an answer in ``in_progress`` while it is waited for or sent."""
        with self._lock:
            self.in_progress += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_progress -= 1

    def reply(self, path: str, query: str) -> Reply:
        """Decides the answer to a GET of ``path`` arriving now."""
        with self._lock:
            now = self.clock()
            reply = self._banned_reply(now) or self._fault_reply(path, query, now) or self._real_reply(path, query)
            if self.latency:
                reply = replace(reply, delay=reply.delay + self.latency)
            if reply.status in (429, 418):
                seconds = _retry_after(reply.headers, self.ban_seconds)
                self._banned = (now, max(self._banned[1], now + seconds))
            self.answered[(path if path in self._routes else "other", reply.status)] += 1
            return reply

    def _banned_reply(self, now: float) -> Optional[Reply]:
        since, until = self._banned
        if now >= until:
            return None
        if now < since + IN_FLIGHT_GRACE:
            left = math.ceil(until - now)
            return Reply(429, _json({"code": -1003, "msg": "Too many requests."}), {"Retry-After": str(left)})
        self.violations += 1
        logger.warning("request during a Retry-After window: violation %d, banned", self.violations)
        msg = (
            "Way too much request weight used; IP banned. Please use WebSocket Streams for live updates to avoid bans."
        )
        return Reply(418, _json({"code": -1003, "msg": msg}), {"Retry-After": str(math.ceil(self.ban_seconds))})

    def _fault_reply(self, path: str, query: str, now: float) -> Optional[Reply]:
        fault = next((f for f in self.faults if isinstance(f, Fault) and f.matches(path, query, now)), None)
        self.faults = [other for other in self.faults if not other.over(now)]
        if fault is None:
            return None
        fault.fired += 1
        if fault.over(now):
            self.faults.remove(fault)
        if fault.body is None and fault.status == 200 and not fault.endless and fault.gzip_bomb is None:
            real = self._real_reply(path, query, fault.lag_changes or 0)
            status, body, headers, gzip = real.status, real.body, {**real.headers, **fault.headers}, fault.gzip
        else:
            status, body, headers = fault.status, fault.body or b"", dict(fault.headers)
            gzip = bool(fault.gzip)  # a body given here is sent as given unless gzip is true
        if (location := fault.where_to()) is not None:
            headers["Location"] = location
        bomb = None if fault.gzip_bomb is None else gzip_bomb(fault.body or b"[]", fault.gzip_bomb)
        return Reply(
            status,
            body,
            headers,
            delay=fault.delay,
            reset=fault.reset,
            truncate_at=fault.truncate_at,
            trickle_bytes_per_second=fault.trickle_bytes_per_second,
            endless=fault.endless,
            body_bytes=fault.body_bytes,
            gzip_bomb=bomb,
            gzip=None if fault.gzip_bomb is not None else gzip,
        )

    def _real_reply(self, path: str, query: str, depth_lag: int = 0) -> Reply:
        status, body, weight = self.answer(path, query, depth_lag)
        if not weight:
            return Reply(status, _json(body))
        if not self.weights.fits(weight):
            msg = f"Too much request weight used; current limit is {self.weights.limit} request weight per 1 MINUTE."
            left = str(math.ceil(self.weights.seconds_left()))
            return Reply(429, _json({"code": -1003, "msg": msg}), {"Retry-After": left})
        used = str(self.weights.add(weight))
        return Reply(status, _json(body), {"X-MBX-USED-WEIGHT-1M": used, "x-mbx-used-weight": used})

    def answer(self, path: str, query: str, depth_lag: int = 0) -> tuple[int, Any, int]:
        """(HTTP status, JSON body, weight) for a GET of ``path``; a depth
        ``depth_lag`` changes behind the book."""
        route = self._routes.get(path)
        if route is None:
            return 404, {"code": -1000, "msg": f"Unknown path {path}"}, 0
        try:
            body, weight = self._depth(query, depth_lag) if depth_lag else route(self, query)
        except ApiError as exc:
            return exc.status, {"code": exc.code, "msg": exc.msg}, 1
        return 200, body, weight

    def _ping(self, query: str) -> tuple[Any, int]:
        Query(query, ())
        return {}, 1

    def _exchange_info(self, query: str) -> tuple[Any, int]:
        params = Query(query, ("symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"))
        symbol = params.symbol(self.market)
        symbols = params.symbols(self.market)
        return self.market.exchange_info([symbol] if symbol else symbols), 20

    def _ticker_24hr(self, query: str) -> tuple[Any, int]:
        params = Query(query, ("symbol", "symbols", "type"))
        kind = params.params.get("type", "FULL")
        if kind not in ("FULL", "MINI"):
            raise ApiError(400, -1100, "Illegal characters found in parameter 'type'; legal range is 'FULL, MINI'.")
        symbol = params.symbol(self.market)
        symbols = params.symbols(self.market)
        if symbol:
            return self.market.ticker(symbol, kind == "FULL"), 2
        if symbols:
            return [self.market.ticker(name, kind == "FULL") for name in symbols], ticker_weight(symbols)
        return self._every_record(lambda name: self.market.ticker(name, kind == "FULL")), ticker_weight(symbols)

    def _depth(self, query: str, lag: int = 0) -> tuple[Any, int]:
        params = Query(query, ("symbol", "limit", "symbolStatus"))
        limit = params.limit(100)
        symbol = params.symbol(self.market, required=True)
        return self.market.depth(symbol, limit, lag), depth_weight(limit)

    def _agg_trades(self, query: str) -> tuple[Any, int]:
        params = Query(query, ("symbol", "fromId", "startTime", "endTime", "limit"))
        symbol = params.symbol(self.market, required=True)
        limit = min(params.limit(500), MAX_AGG_TRADES_LIMIT)
        from_id, start, end = (params.integer(name) for name in ("fromId", "startTime", "endTime"))
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        # Binance dropped the one-hour limit between startTime and endTime on 2022-12-05.
        trades = self.market.agg_trades(symbol, from_id, start, end, limit)
        if from_id is None and start is None and end is None and trades:
            self.agg_trade_baselines.setdefault(symbol, trades[-1]["a"])  # answered under the lock
        return trades, 4

    def _book_ticker(self, query: str) -> tuple[Any, int]:
        params = Query(query, ("symbol", "symbols", "symbolStatus"))
        symbol = params.symbol(self.market)
        symbols = params.symbols(self.market)
        if symbol:
            return self.market.book_ticker(symbol), 2
        if symbols:
            return [self.market.book_ticker(name) for name in symbols], 4
        return self._every_record(self.market.book_ticker), 4

    def _every_record(self, record: Callable[[str], Any]) -> list[Any]:
        """The record of every listed symbol, in listing order, but of
        those the market has none of yet (``NoRecord``: a recorded market's)."""
        records = []
        for name in list(self.market.symbols):
            try:
                records.append(record(name))
            except NoRecord:
                continue
        return records

    _routes: dict[str, Callable[[BinanceSimulator, str], tuple[Any, int]]] = dict(
        zip(REST_PATHS, (_ping, _exchange_info, _ticker_24hr, _depth, _book_ticker, _agg_trades))
    )


def _listing_fields(spec: Any) -> dict[str, str]:
    """The fields of a listing (a POST /sim/symbols body), checked;
    ValueError saying what is wrong."""
    example = '{"symbol": "NEWUSDT", "status": "TRADING"}'
    if not isinstance(spec, dict) or "symbol" not in spec or "status" not in spec:
        raise ValueError(f"a listing is a JSON object with a symbol and a status, e.g. {example}")
    unknown = sorted(set(spec) - set(LISTING_FIELDS))
    if unknown:
        raise ValueError(f"unknown listing field {unknown[0]!r}; the fields are {', '.join(LISTING_FIELDS)}")
    checks = {
        "symbol": (_SYMBOL_NAME, "a symbol name of 2 to 20 capital letters and digits"),
        "baseAsset": (_ASSET_NAME, "an asset name of capital letters and digits"),
        "quoteAsset": (_ASSET_NAME, "an asset name of capital letters and digits"),
        "price": (_PRICE, "a price as a decimal string of at most 8 decimals, more than 0"),
    }
    for name, (pattern, requirement) in checks.items():
        value = spec.get(name)
        if name in spec and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise ValueError(f"listing field {name!r} must be {requirement}, not {str(value)[:40]!r}")
    if "price" in spec and not any(digit in "123456789" for digit in spec["price"]):
        raise ValueError(f"listing field 'price' must be more than 0, not {spec['price']!r}")
    if spec["status"] not in STATUSES:
        statuses = ", ".join(STATUSES)
        raise ValueError(f"listing field 'status' must be one of {statuses}, not {str(spec['status'])[:40]!r}")
    return dict(spec)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a cycle's concurrent requests must not overflow the listen backlog

    def __init__(self, address: tuple[str, int], simulator: BinanceSimulator):
        self.simulator = simulator
        super().__init__(address, _Handler)

class _Handler(BaseHTTPRequestHandler):
    """Carries out the simulator's reply to one HTTP request."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "binance-simulator"
    # A trickle goes out a few bytes at a time: without TCP_NODELAY,
    # Nagle's algorithm and the client's delayed ACK would hold them up
    # (and add 40 ms to some answers, which no real server in front of
    # Binance does).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # pylint: disable=invalid-name  # http.server's naming
        """GET: the simulator's reply, its stats or its faults."""
        simulator, parts = self.server.simulator, urlsplit(self.path)
        if parts.path == "/sim/stats":
            self._send(Reply(200, _json(simulator.stats())))
        elif parts.path == "/sim/faults":
            self._send(Reply(200, _json(simulator.fault_list())))
        else:
            self._send(simulator.reply(parts.path, parts.query))

    def do_POST(self) -> None:  # pylint: disable=invalid-name  # http.server's naming
        """POST /sim/faults: inject the fault in the body; POST /sim/market:
        freeze or unfreeze the market; POST /sim/symbols: list a symbol or
        change its status."""
        path = urlsplit(self.path).path
        if path == "/sim/market":
            self._set_market()
            return
        if path == "/sim/symbols":
            self._set_listing()
            return
        if path != "/sim/faults":
            self._send(Reply(404, _json({"msg": "POST /sim/faults, /sim/market or /sim/symbols only"})))
            return
        simulator = self.server.simulator
        try:
            fault = simulator.inject(Fault.from_json(self._request_body()))
        except ValueError as exc:
            self._send(Reply(400, _json({"msg": str(exc)})))
            return
        self._send(Reply(201, _json(fault.listing(simulator.clock()))))

    def _set_market(self) -> None:
        try:
            spec = json.loads(self._request_body())
        except ValueError as exc:
            self._send(Reply(400, _json({"msg": f"a market setting is a JSON object: {exc}"})))
            return
        if not isinstance(spec, dict) or set(spec) != {"frozen"} or not isinstance(spec["frozen"], bool):
            self._send(Reply(400, _json({"msg": 'the market setting is {"frozen": true} or {"frozen": false}'})))
            return
        self._send(Reply(200, _json(self.server.simulator.set_frozen(spec["frozen"]))))

    def _set_listing(self) -> None:
        try:
            body = self._request_body("a listing")
            try:
                spec = json.loads(body)
            except ValueError as exc:
                raise ValueError(f"a listing is a JSON object: {exc}") from exc
            status, entry = self.server.simulator.set_listing(spec)
        except ValueError as exc:
            self._send(Reply(400, _json({"msg": str(exc)})))
            return
        self._send(Reply(status, _json(entry)))

    def do_DELETE(self) -> None:  # pylint: disable=invalid-name  # http.server's naming
        """DELETE /sim/faults: serve real answers again."""
        if urlsplit(self.path).path != "/sim/faults":
            self._send(Reply(404, _json({"msg": "DELETE /sim/faults only"})))
            return
        self.server.simulator.clear_faults()
        self._send(Reply(204, b""))

    def _request_body(self, what: str = "a fault") -> bytes:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_FAULT_JSON:
            self.close_connection = True  # the body is left unread
            raise ValueError(f"{what} is at most {MAX_FAULT_JSON} bytes with a Content-Length, not {length:.20}")
        return self.rfile.read(int(length))

    def _send(self, reply: Reply) -> None:
        simulator = self.server.simulator
        writer = AnswerWriter(self.connection, simulator.stopping, reply.trickle_bytes_per_second)
        with simulator.answering():
            try:
                writer.pause(reply.delay)
                if reply.reset:
                    # Close with SO_LINGER 0: the client sees a reset connection.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                self._write(reply, writer)
            except (AnswerAbandoned, BrokenPipeError, ConnectionResetError) as exc:
                logger.debug("answer abandoned: %s", exc)  # the client timed out: normal
                self.close_connection = True
            finally:
                self.connection.settimeout(self.timeout)  # back to reading requests as usual

    def _write(self, reply: Reply, writer: AnswerWriter) -> None:
        accepted = accepts_gzip(self.headers.get("Accept-Encoding", ""))
        framing, chunks = encoded_body(reply, accepted)
        headers = {"Content-Type": "application/json;charset=UTF-8", **reply.headers, **framing}
        lines = [f"{self.protocol_version} {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
        lines += [f"Server: {self.version_string()}", f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.log_request(reply.status)
        pending = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        left = reply.truncate_at
        for chunk in chunks:
            if left is not None:
                chunk, left = chunk[:left], left - min(left, len(chunk))
            writer.send(pending + chunk)  # the head goes out with the first piece of body
            pending = b""
            if left == 0:
                break
        writer.send(pending)
        if reply.truncate_at is not None:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin  # http.server's
        logger.debug("%s " + format, self.address_string(), *args)

def main(argv: Optional[list[str]] = None) -> int:
    """Runs the simulator until SIGTERM or SIGINT."""
    parser = OneLineParser(
        prog="python -m binance_exporter.fake.simulator",
        description=" ".join(__doc__.split("\n\n", 1)[0].split()),
        epilog=fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=9999, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--stream-port",
        type=int,
        default=STREAM_PORT,
        help="port of the websocket streams; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="market seed (default: %(default)s)")
    parser.add_argument(
        "--weight-limit",
        type=int,
        default=WEIGHT_LIMIT,
        help="request weight per minute before answering 429 (default: %(default)s)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to delay every answer, as a network would (default: 0)"
    )
    parser.add_argument(
        "--extra-symbols",
        type=int,
        default=0,
        help="synthetic BTC- and USDT-quoted symbols to add, for long top lists (default: 0)",
    )
    parser.add_argument(
        "--tick-seconds",
        type=float,
        default=None,
        help=f"seconds between market moves; 0 freezes the market (default: 1, {WHOLE_MARKET_TICK_SECONDS} with "
        "--whole-market)",
    )
    parser.add_argument(
        "--whole-market",
        action="store_true",
        help="serve about the whole spot market: 1,500 TRADING symbols (and some 130 in BREAK) shaped like Binance's, "
        "each book changing and trading at its own rate, a few at nearly every step, most rarely",
    )
    parser.add_argument(
        "--peak", action="store_true", help="every trading book changes at every step (the diff streams' peak)"
    )
    args = parser.parse_args(argv)
    for flag, port in (("--port", args.port), ("--stream-port", args.stream_port)):
        if not 0 <= port <= 65535:
            parser.error(f"{flag} must be from 0 to 65535, not {port}")
    if not math.isfinite(args.latency) or args.latency < 0 or not 0 <= args.extra_symbols <= 999:
        parser.error("--latency must be 0 or more and --extra-symbols from 0 to 999")
    if args.weight_limit < 1:
        parser.error(f"--weight-limit must be 1 or more, not {args.weight_limit}")
    if args.tick_seconds is None:
        args.tick_seconds = WHOLE_MARKET_TICK_SECONDS if args.whole_market else 1.0
    if not math.isfinite(args.tick_seconds) or args.tick_seconds < 0:
        parser.error(f"--tick-seconds must be 0 or more, not {args.tick_seconds}")
    if args.whole_market and args.extra_symbols:
        parser.error("--extra-symbols does not go with --whole-market, which has symbols enough")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        symbols = LISTED_SYMBOLS + synthetic_symbols(args.extra_symbols)
        market = Market(whole_market(args.seed) if args.whole_market else symbols, args.seed, args.tick_seconds,
                        peak=args.peak)  # fmt: skip
        simulator = BinanceSimulator(
            market, args.address, args.port, weight_limit=args.weight_limit, latency=args.latency
        )
    except OSError as exc:
        parser.error(f"cannot listen on {args.address}:{args.port}: {exc.strerror}")
    try:
        simulator.streams = StreamServer(
            market, args.address, args.stream_port, faults=simulator.take_stream_fault, clock=simulator.clock
        )
    except OSError as exc:
        simulator.server.server_close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # socket.create_server adds to strerror
        parser.error(f"cannot listen on {args.address}:{args.stream_port}: {reason}")
    signals = SignalRecord().install()
    market.prepare()  # every book made before the first answer, which is then as quick as any
    simulator.start()
    # The REST URL stays the last word of the line: scripts read it so.
    print(f"binance simulator streaming on {simulator.stream_url}, listening on {simulator.url}", flush=True)
    signals.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
