"""A Binance-compatible fake spot market server, for tests and demos.

``python -m binance_exporter.simulator --port 9999`` serves the market-data
endpoints the exporter uses, as Binance serves them:

* ``GET /api/v3/exchangeInfo``, ``/api/v3/ticker/24hr``,
  ``/api/v3/depth``, ``/api/v3/ticker/bookTicker`` and ``/api/v3/ping``,
  with Binance's parameter handling (``symbol``/``symbols`` as a JSON array,
  ``limit`` defaults and caps) and error bodies such as
  ``{"code":-1121,"msg":"Invalid symbol."}``;
* prices and quantities as strings with 8 decimals;
* request weights, and the weight used in the current minute in the
  ``X-MBX-USED-WEIGHT-1M`` header.

The market moves: every ``tick_seconds`` the books and 24 h statistics take
a new state that is a pure function of (seed, symbol, step), so a test can
reproduce exactly what was served. Among the symbols are the traps real
Binance data holds: BTCDOWNUSDT (USDT-quoted, despite its name), WBTCBTC
(BTC-quoted), USDTTRY (TRY-quoted), symbols in BREAK and HALT status that
still appear in the ticker, tiny prices with 8 decimals and sparse books
with fewer than 200 levels.

``GET /sim/stats`` (not a Binance endpoint) reports the requests and weight
the server has seen, so tests and benchmarks measure rather than compute.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

UNIT = 10**8  # Binance prices and quantities have 8 decimals
MAX_DEPTH_LIMIT = 5000


def to_units(text: str) -> int:
    """An 8-decimal string as an integer number of 1e-8 units."""
    whole, _, frac = text.partition(".")
    return int(whole) * UNIT + int((frac + "0" * 8)[:8])


def from_units(units: int) -> str:
    """Integer 1e-8 units as Binance formats them: ``0.00001234``."""
    return f"{units // UNIT}.{units % UNIT:08d}"


@dataclass(frozen=True)
class ListedSymbol:
    """A symbol of the simulated market and its reference values."""

    symbol: str
    base: str
    quote: str
    status: str
    price: str
    tick: str
    qty_step: str
    quote_volume: str
    trades: int
    levels: int


# Reference values loosely follow real markets; the traps are the point.
# quote_volume and trades are the 24 h values around which the market drifts.
_LISTING = """
symbol       base     quote  status   price             tick        qty_step    quote_volume  trades   levels
ETHBTC       ETH      BTC    TRADING  0.05123000        0.00001000  0.00010000  3100          240000   1000
BNBBTC       BNB      BTC    TRADING  0.00812300        0.00000100  0.00100000  1450          130000   1000
SOLBTC       SOL      BTC    TRADING  0.00231400        0.00000100  0.00100000  1300          125000   1000
XRPBTC       XRP      BTC    TRADING  0.00000812        0.00000001  1.00000000  900           98000    1000
WBTCBTC      WBTC     BTC    TRADING  0.99980000        0.00010000  0.00001000  820           7000     40
DOGEBTC      DOGE     BTC    TRADING  0.00000213        0.00000001  1.00000000  700           64000    1000
LINKBTC      LINK     BTC    TRADING  0.00021870        0.00000010  0.01000000  520           41000    1000
LTCBTC       LTC      BTC    TRADING  0.00123400        0.00000100  0.00100000  480           39000    1000
ADABTC       ADA      BTC    TRADING  0.00000560        0.00000001  1.00000000  300           30000    150
FTTBTC       FTT      BTC    HALT     0.00003100        0.00000001  0.01000000  9900          990000   1000
LUNABTC      LUNA     BTC    BREAK    0.00000100        0.00000001  1.00000000  0             0        1000
BTCUSDT      BTC      USDT   TRADING  67012.45000000    0.01000000  0.00001000  1250000000    2100000  1000
ETHUSDT      ETH      USDT   TRADING  3433.21000000     0.01000000  0.00010000  640000000     1500000  1000
BTCDOWNUSDT  BTCDOWN  USDT   TRADING  0.00612300        0.00000100  0.01000000  95000000      1200000  1000
SOLUSDT      SOL      USDT   TRADING  155.12000000      0.01000000  0.00100000  410000000     1100000  1000
PEPEUSDT     PEPE     USDT   TRADING  0.00001234        0.00000001  1.00000000  300000000     950000   1000
DOGEUSDT     DOGE     USDT   TRADING  0.14560000        0.00001000  1.00000000  220000000     900000   1000
XRPUSDT      XRP      USDT   TRADING  0.54430000        0.00010000  0.10000000  180000000     700000   1000
BNBUSDT      BNB      USDT   TRADING  592.40000000      0.01000000  0.00100000  150000000     650000   1000
USTCUSDT     USTC     USDT   BREAK    0.02000000        0.00001000  1.00000000  0             0        1000
USDTTRY      USDT     TRY    TRADING  34.21000000       0.01000000  0.10000000  9000000000    9000000  1000
BTCTRY       BTC      TRY    TRADING  2292000.00000000  1.00000000  0.00001000  2000000000    400000   1000
ETHEUR       ETH      EUR    TRADING  3170.55000000     0.01000000  0.00010000  40000000      80000    1000
"""


def _parse_listing(table: str) -> tuple[ListedSymbol, ...]:
    rows = [line.split() for line in table.strip().splitlines()[1:]]
    return tuple(
        ListedSymbol(sym, base, quote, status, price, tick, step, qv, int(trades), int(levels))
        for sym, base, quote, status, price, tick, step, qv, trades, levels in rows
    )


LISTED_SYMBOLS = _parse_listing(_LISTING)


def _phase(seed: int, symbol: str) -> float:
    return random.Random(f"{seed}/{symbol}/phase").uniform(0, 2 * math.pi)


def _wave(seed: int, symbol: str, step: int, period_steps: float, amplitude: float) -> float:
    """1 + a smooth, symbol-specific oscillation: how the market drifts."""
    return 1 + amplitude * math.sin(2 * math.pi * step / period_steps + _phase(seed, symbol))


class Market:
    """The simulated market: its state at any step is a pure function of
    (seed, symbol, step), and the step advances every ``tick_seconds``
    (never, when ``tick_seconds`` is 0)."""

    def __init__(
        self,
        symbols: tuple[ListedSymbol, ...] = LISTED_SYMBOLS,
        seed: int = 1,
        tick_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.symbols = {listed.symbol: listed for listed in symbols}
        self.seed = seed
        self.tick_seconds = tick_seconds
        self.clock = clock
        self._start = clock()
        self.book = functools.lru_cache(maxsize=256)(self._book)

    def step(self) -> int:
        """The market's current step."""
        if self.tick_seconds <= 0:
            return 0
        return int((self.clock() - self._start) / self.tick_seconds)

    def _book(self, symbol: str, step: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        """(bids, asks) at ``step``, best first, as (price, qty) in 1e-8 units."""
        listed = self.symbols[symbol]
        rng = random.Random(f"{self.seed}/{symbol}/{step}/book")
        tick, qty_step = to_units(listed.tick), to_units(listed.qty_step)
        mid = to_units(listed.price) * _wave(self.seed, symbol, step, 600, 0.01)
        best_bid = max(tick, int(mid) // tick * tick)
        best_ask = best_bid + tick * rng.choice((1, 1, 1, 2, 3, 5))

        def side(best: int, direction: int) -> tuple[tuple[int, int], ...]:
            levels, price = [], best
            while len(levels) < listed.levels and price > 0:
                qty = rng.randint(1, 2000) * rng.choice((1, 1, 1, 10, 100)) * qty_step
                levels.append((price, qty))
                price += direction * tick * rng.choice((1, 1, 1, 1, 2, 3))
            return tuple(levels)

        return side(best_bid, -1), side(best_ask, +1)

    def exchange_info(self, symbols: Optional[list[str]] = None) -> dict[str, Any]:
        """The exchangeInfo body, for all symbols or the ones asked for."""
        listed = [self.symbols[s] for s in symbols] if symbols else list(self.symbols.values())
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [
                {
                    "symbol": s.symbol,
                    "status": s.status,
                    "baseAsset": s.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": s.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                    "isSpotTradingAllowed": s.status == "TRADING",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": s.tick,
                            "maxPrice": "1000000.00000000",
                            "tickSize": s.tick,
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": s.qty_step,
                            "maxQty": "9000000.00000000",
                            "stepSize": s.qty_step,
                        },
                    ],
                    "permissions": ["SPOT"],
                }
                for s in listed
            ],
        }

    def ticker(self, symbol: str, full: bool = True) -> dict[str, Any]:
        """One symbol's ticker/24hr record at the current step."""
        listed, step = self.symbols[symbol], self.step()
        bids, asks = self.book(symbol, step)
        price = to_units(listed.price)
        if listed.trades == 0:  # a symbol in BREAK: no trades, ids -1
            count, first_id, quote_volume, volume = 0, -1, 0, 0
        else:
            count = int(listed.trades * _wave(self.seed, symbol, step, 240, 0.3)) + step
            first_id = 1_000_000 + step * 37
            quote_volume = int(to_units(listed.quote_volume) * _wave(self.seed, symbol + "/qv", step, 240, 0.3))
            volume = quote_volume * UNIT // price
        record: dict[str, Any] = {"symbol": symbol}
        if full:
            record.update(
                priceChange="0.00000000",
                priceChangePercent="0.000",
                weightedAvgPrice=listed.price,
                prevClosePrice=listed.price,
                lastPrice=from_units(bids[0][0]),
                lastQty=from_units(bids[0][1]),
                bidPrice=from_units(bids[0][0]),
                bidQty=from_units(bids[0][1]),
                askPrice=from_units(asks[0][0]),
                askQty=from_units(asks[0][1]),
            )
        now_ms = int(time.time() * 1000)
        record.update(
            openPrice=listed.price,
            highPrice=from_units(asks[0][0]),
            lowPrice=from_units(bids[0][0]),
            volume=from_units(volume),
            quoteVolume=from_units(quote_volume),
            openTime=now_ms - 86_400_000,
            closeTime=now_ms,
            firstId=first_id,
            lastId=first_id + count - 1 if count else -1,
            count=count,
        )
        if not full:
            record["lastPrice"] = from_units(bids[0][0])
        return record

    def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        """The depth body: the best ``limit`` levels of each side."""
        step = self.step()
        bids, asks = self.book(symbol, step)
        return {
            "lastUpdateId": 1_000_000_000 + step * 101,
            "bids": [[from_units(p), from_units(q)] for p, q in bids[:limit]],
            "asks": [[from_units(p), from_units(q)] for p, q in asks[:limit]],
        }

    def book_ticker(self, symbol: str) -> dict[str, Any]:
        """One symbol's bookTicker record at the current step."""
        bids, asks = self.book(symbol, self.step())
        return {
            "symbol": symbol,
            "bidPrice": from_units(bids[0][0]),
            "bidQty": from_units(bids[0][1]),
            "askPrice": from_units(asks[0][0]),
            "askQty": from_units(asks[0][1]),
        }


@dataclass
class Fault:
    """A misbehaviour to serve instead of the real answer, to requests for
    ``path`` (and, if given, naming ``symbol`` in ``symbol``/``symbols``).

    After ``delay`` seconds the request gets ``status`` with ``body`` (raw
    bytes), or the real answer when ``body`` is None and ``status`` is 200.
    ``times`` limits how many requests it hits (None: all of them).
    """

    path: str
    symbol: Optional[str] = None
    status: int = 200
    body: Optional[bytes] = None
    delay: float = 0.0
    times: Optional[int] = None

    def matches(self, path: str, query: str) -> bool:
        """Whether a request for ``path`` with ``query`` gets this fault."""
        return path == self.path and (self.symbol is None or f'"{self.symbol}"' in _symbols_named(query))


def _symbols_named(query: str) -> str:
    params = parse_qs(query)
    names = [f'"{name}"' for name in params.get("symbol", [])]
    return ",".join(names + params.get("symbols", []))


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

    def limit(self, default: int) -> int:
        """The ``limit`` parameter: a positive integer, capped at 5000."""
        value = self.params.get("limit")
        if value is None:
            return default
        if not value.isdigit() or len(value) > 20 or int(value) == 0:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")
        return min(int(value), MAX_DEPTH_LIMIT)


class WeightWindow:
    """Request weight used per clock minute, as Binance counts it per IP."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._minute = -1
        self._used = 0
        self.total = 0

    def add(self, weight: int) -> int:
        """Counts ``weight`` and returns the weight used this minute."""
        with self._lock:
            minute = int(self._clock() // 60)
            if minute != self._minute:
                self._minute, self._used = minute, 0
            self._used += weight
            self.total += weight
            return self._used


class SimulatorStats:
    """What the server has seen: requests by path and status, and weight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()

    def record(self, path: str, status: int) -> None:
        """Counts one answered request."""
        with self._lock:
            self.requests[path] += 1
            self.statuses[f"{path} {status}"] += 1

    def as_dict(self, weights: WeightWindow) -> dict[str, Any]:
        """The stats as the /sim/stats body."""
        with self._lock:
            return {"requests": dict(self.requests), "statuses": dict(self.statuses), "weight_total": weights.total}


class BinanceSimulator:
    """The fake Binance HTTP server; ``start()`` serves on a thread."""

    def __init__(self, market: Optional[Market] = None, address: str = "127.0.0.1", port: int = 0):
        self.market = market or Market()
        self.weights = WeightWindow()
        self.stats = SimulatorStats()
        self._routes = {
            "/api/v3/ping": self._ping,
            "/api/v3/exchangeInfo": self._exchange_info,
            "/api/v3/ticker/24hr": self._ticker_24hr,
            "/api/v3/depth": self._depth,
            "/api/v3/ticker/bookTicker": self._book_ticker,
        }
        self.faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self.server = ThreadingHTTPServer((address, port), _handler_for(self))
        self.server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        """The base URL to give a Binance client."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "BinanceSimulator":
        """Serves on a background thread."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="binance-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        self.server.shutdown()
        self.server.server_close()

    def inject(self, fault: Fault) -> Fault:
        """Serves ``fault`` from now on (see ``Fault``)."""
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Serves real answers again."""
        with self._faults_lock:
            self.faults.clear()

    def fault_for(self, path: str, query: str) -> Optional[Fault]:
        """The fault the request gets, if any, counting it against ``times``."""
        with self._faults_lock:
            for fault in self.faults:
                if fault.matches(path, query):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def answer(self, path: str, query: str) -> tuple[int, Any, int]:
        """(HTTP status, JSON body, weight) for a GET of ``path``."""
        route = self._routes.get(path)
        if route is None:
            return 404, {"code": -1000, "msg": f"Unknown path {path}"}, 0
        try:
            body, weight = route(query)
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
        names = symbols or list(self.market.symbols)
        return [self.market.ticker(name, kind == "FULL") for name in names], ticker_weight(symbols)

    def _depth(self, query: str) -> tuple[Any, int]:
        params = Query(query, ("symbol", "limit", "symbolStatus"))
        limit = params.limit(100)
        symbol = params.symbol(self.market, required=True)
        return self.market.depth(symbol, limit), depth_weight(limit)

    def _book_ticker(self, query: str) -> tuple[Any, int]:
        params = Query(query, ("symbol", "symbols", "symbolStatus"))
        symbol = params.symbol(self.market)
        symbols = params.symbols(self.market)
        if symbol:
            return self.market.book_ticker(symbol), 2
        return [self.market.book_ticker(name) for name in symbols or self.market.symbols], 4


def _handler_for(simulator: BinanceSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Answers one HTTP request as Binance would."""

        protocol_version = "HTTP/1.1"
        server_version = "binance-simulator"

        def do_GET(self) -> None:  # pylint: disable=invalid-name  # http.server's naming
            """GET: route to the endpoint."""
            parts = urlsplit(self.path)
            if parts.path == "/sim/stats":
                self._send(200, simulator.stats.as_dict(simulator.weights), {})
                return
            fault = simulator.fault_for(parts.path, parts.query)
            if fault is not None:
                time.sleep(fault.delay)
            if fault is not None and (fault.body is not None or fault.status != 200):
                simulator.stats.record(parts.path, fault.status)
                self._send_bytes(fault.status, fault.body or b"", {})
                return
            status, body, weight = simulator.answer(parts.path, parts.query)
            headers = {}
            if weight:
                used = simulator.weights.add(weight)
                headers = {"X-MBX-USED-WEIGHT-1M": str(used), "x-mbx-used-weight": str(used)}
            simulator.stats.record(parts.path, status)
            self._send(status, body, headers)

        def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
            self._send_bytes(status, json.dumps(body, separators=(",", ":")).encode(), headers)

        def _send_bytes(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(
            self, format: str, *args: Any
        ) -> None:  # pylint: disable=redefined-builtin  # http.server's signature
            logger.debug("%s " + format, self.address_string(), *args)

    return Handler


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the simulator until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m binance_exporter.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=9999, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="market seed (default: %(default)s)")
    parser.add_argument(
        "--tick-seconds",
        type=float,
        default=1.0,
        help="seconds between market moves; 0 freezes the market (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 to 65535, not {args.port}")
    if not math.isfinite(args.tick_seconds) or args.tick_seconds < 0:
        parser.error(f"--tick-seconds must be 0 or more, not {args.tick_seconds}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        simulator = BinanceSimulator(Market(seed=args.seed, tick_seconds=args.tick_seconds), args.address, args.port)
    except OSError as exc:
        parser.error(f"cannot listen on {args.address}:{args.port}: {exc.strerror}")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    simulator.start()
    print(f"binance simulator listening on {simulator.url}", flush=True)
    while not stop.wait(0.5):
        pass
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
