"""The simulated spot market behind the fake Binance: symbols, books and
24 h statistics, moving with time.

Every ``tick_seconds`` the market takes a new state that is a pure function
of (seed, symbol, step), so a test can reproduce exactly what was served.
Prices and quantities are kept as integers of 1e-8 units and formatted as
Binance formats them (``"0.00001234"``).
"""

from __future__ import annotations

import functools
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

UNIT = 10**8  # Binance prices and quantities have 8 decimals


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
# Besides BTC and USDT, four ETH-quoted symbols (fewer than a top 5), three
# USDC-quoted ones (USDCUSDT is USDT-quoted) and BUSD, whose symbols are all
# in BREAK (an asset with no TRADING symbol).
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
BNBETH       BNB      ETH    TRADING  0.17250000        0.00001000  0.00100000  410           52000    1000
LINKETH      LINK     ETH    TRADING  0.00426000        0.00000100  0.01000000  160           21000    1000
XRPETH       XRP      ETH    TRADING  0.00015850        0.00000010  1.00000000  120           17000    1000
ADAETH       ADA      ETH    TRADING  0.00010920        0.00000010  1.00000000  95            14000    1000
BTCUSDC      BTC      USDC   TRADING  67010.12000000    0.01000000  0.00001000  420000000     610000   1000
ETHUSDC      ETH      USDC   TRADING  3432.87000000     0.01000000  0.00010000  150000000     330000   1000
SOLUSDC      SOL      USDC   TRADING  155.09000000      0.01000000  0.00100000  60000000      190000   1000
USDCUSDT     USDC     USDT   TRADING  1.00010000        0.00010000  1.00000000  500000000     150000   1000
BTCBUSD      BTC      BUSD   BREAK    67000.00000000    0.01000000  0.00001000  0             0        1000
ETHBUSD      ETH      BUSD   BREAK    3430.00000000     0.01000000  0.00010000  0             0        1000
"""


def _parse_listing(table: str) -> tuple[ListedSymbol, ...]:
    rows = [line.split() for line in table.strip().splitlines()[1:]]
    return tuple(
        ListedSymbol(sym, base, quote, status, price, tick, step, qv, int(trades), int(levels))
        for sym, base, quote, status, price, tick, step, qv, trades, levels in rows
    )


LISTED_SYMBOLS = _parse_listing(_LISTING)


def synthetic_symbols(count: int) -> tuple[ListedSymbol, ...]:
    """``count`` more BTC-quoted and ``count`` more USDT-quoted symbols
    (``SYN001BTC``, ``SYN001USDT``, ...), less traded than the listed ones,
    for exercising long top lists."""
    symbols = []
    for i in range(1, count + 1):
        base = f"SYN{i:03d}"
        symbols.append(ListedSymbol(f"{base}BTC", base, "BTC", "TRADING", "0.00012345", "0.00000001",
                                    "0.01000000", str(250 - i), 20000 - i, 500))  # fmt: skip
        symbols.append(ListedSymbol(f"{base}USDT", base, "USDT", "TRADING", "1.23450000", "0.00010000",
                                    "0.10000000", str(100000000 - i), 600000 - i, 500))  # fmt: skip
    return tuple(symbols)


def _phase(seed: int, symbol: str) -> float:
    return random.Random(f"{seed}/{symbol}/phase").uniform(0, 2 * math.pi)


def _wave(seed: int, symbol: str, step: int, period_steps: float, amplitude: float) -> float:
    """1 + a smooth, symbol-specific oscillation: how the market drifts."""
    return 1 + amplitude * math.sin(2 * math.pi * step / period_steps + _phase(seed, symbol))


class Market:
    """The simulated market: its state at any step is a pure function of
    (seed, symbol, step), and the step advances every ``tick_seconds``
    (never, when ``tick_seconds`` is 0) of ``clock``. The times it serves
    (``serverTime``, ``openTime``, ``closeTime``) are read from
    ``wall_clock``, Unix time."""

    def __init__(
        self,
        symbols: tuple[ListedSymbol, ...] = LISTED_SYMBOLS,
        seed: int = 1,
        tick_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.symbols = {listed.symbol: listed for listed in symbols}
        self.seed = seed
        self.tick_seconds = tick_seconds
        self.clock = clock
        self.wall_clock = wall_clock
        self._start = clock()
        self.book = functools.lru_cache(maxsize=256)(self._book)

    def _now_ms(self) -> int:
        return int(self.wall_clock() * 1000)

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
            "serverTime": self._now_ms(),
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
        now_ms = self._now_ms()
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
