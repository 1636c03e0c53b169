"""The simulated spot market behind the fake Binance: symbols, books and
24 h statistics, moving with time.

Each symbol has one order book that evolves every ``tick_seconds``, each
change of a level counting one update id, as Binance's books do; the REST
endpoints and the websocket streams all read the same books. Every step's
changes are drawn from (seed, symbol, step), so the same seed gives the
same market. Prices and quantities are kept as integers of 1e-8 units and
formatted as Binance formats them (``"0.00001234"``).
"""

from __future__ import annotations

import bisect
import functools
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

UNIT = 10**8  # Binance prices and quantities have 8 decimals


@functools.lru_cache(maxsize=4096)  # the listing's prices, ticks and steps, read on every change
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


# How deep a book is kept, per side: the listing's 1000 means deeper than a
# 1000-level snapshot, so that the levels past a snapshot's horizon move too.
DEEP_BOOK_LEVELS = 1600
# Changes kept per symbol for the streams' diffs (at least this many).
MAX_HISTORY = 10_000
# The book's mid drifts along the wave by at most this many ticks from the
# listed price (and by 1% of it at most): a few ticks a step.
MAX_DRIFT_TICKS = 300
PRICE_PERIOD_STEPS = 600
# Changes near the top per step: up to this many for symbols traded this much.
BUSY_TRADES = 500_000
BUSY_CHANGES, QUIET_CHANGES = 15, 6
TOP_LEVELS = 20  # how near the top random changes fall
_QTY_SCALES = (1, 1, 1, 10, 100)  # most levels small, a few large
# Aggregate trades kept per symbol (at least this many): what GET
# /api/v3/aggTrades and the aggTrade streams serve.
MAX_TRADE_HISTORY = 10_000
_TRADES_PER_STEP = (0, 0, 1, 1, 2, 3)
MAX_TRADES_PER_AGGREGATE = 5
FIRST_TRADES = 3  # made with the first book
TRADE_TRIM = 1000  # trades past MAX_TRADE_HISTORY before the oldest go, all at once
_SPACINGS = (1, 1, 1, 1, 2, 3)  # ticks between neighbouring levels


class HistoryLost(LookupError):
    """The changes asked for are older than the history kept (``MAX_HISTORY``)."""


class Change(NamedTuple):
    """One change of a book: its update id, the side, the price, and the
    level's quantity before and after (0: no level)."""

    update_id: int
    bid: bool
    price: int
    before: int
    after: int


class AggTrade(NamedTuple):
    """One aggregate trade: its id, price and quantity (1e-8 units), first
    and last trade ids, time (Unix ms) and whether the buyer was the maker
    (the seller took liquidity)."""

    agg_id: int
    price: int
    qty: int
    first_id: int
    last_id: int
    time_ms: int
    buyer_maker: bool

    def payload(self) -> dict[str, Any]:
        """As ``GET /api/v3/aggTrades`` writes it."""
        return {
            "a": self.agg_id,
            "p": from_units(self.price),
            "q": from_units(self.qty),
            "f": self.first_id,
            "l": self.last_id,
            "T": self.time_ms,
            "m": self.buyer_maker,
            "M": True,
        }


class BookTop(NamedTuple):
    """The best bid and ask of a book (1e-8 units) as of its update id."""

    update_id: int
    bid_price: int
    bid_qty: int
    ask_price: int
    ask_qty: int


class DepthDiff(NamedTuple):
    """The changes from update id ``first`` to ``last`` folded into the final
    quantity of every level they touched (0: deleted), best first, as a
    depthUpdate event carries them."""

    first: int
    last: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class _Side:
    """One side of a book: quantity by price, and the prices best first."""

    def __init__(self, bid: bool, levels: Optional[dict[int, int]] = None):
        self.bid = bid
        self.qty: dict[int, int] = dict(levels or {})
        # -price for bids, price for asks: ascending is best first
        self._keys: list[int] = sorted(-p if bid else p for p in self.qty)

    def __len__(self) -> int:
        return len(self._keys)

    def price(self, index: int) -> int:
        """The price of the level ``index`` from the best (-1: the farthest)."""
        key = self._keys[index]
        return -key if self.bid else key

    def set(self, price: int, qty: int) -> int:
        """Sets the level at ``price`` (0: removes it); returns the quantity it had."""
        key = -price if self.bid else price
        before = self.qty.get(price, 0)
        if qty:
            if not before:
                bisect.insort(self._keys, key)
            self.qty[price] = qty
        elif before:
            del self.qty[price]
            del self._keys[bisect.bisect_left(self._keys, key)]
        return before

    def levels(self, limit: Optional[int] = None) -> list[tuple[int, int]]:
        """(price, qty) of the best ``limit`` levels (None: all)."""
        keys = self._keys if limit is None else self._keys[:limit]
        sign = -1 if self.bid else 1
        return [(sign * key, self.qty[sign * key]) for key in keys]

    def beyond(self, price: int) -> list[int]:
        """The prices at or past ``price`` towards the other side (which
        the other side's move to ``price`` crosses), best first."""
        key = -price if self.bid else price
        return [-k if self.bid else k for k in self._keys[: bisect.bisect_right(self._keys, key)]]


class _Book:
    """One symbol's book as it evolves: its sides, the step it is at, its
    update id, and its latest changes."""

    def __init__(self, update_id: int, first_trade: int):
        self.bids, self.asks = _Side(True), _Side(False)
        self.step = 0
        self.update_id = update_id
        self.history: list[Change] = []
        self.trades: list[AggTrade] = []
        self.next_agg_id = self.next_trade_id = first_trade

    def change(self, bid: bool, price: int, qty: int) -> None:
        """Sets one level, counting it as one update if it changes anything."""
        before = (self.bids if bid else self.asks).set(price, qty)
        if before != qty:
            self.update_id += 1
            self.history.append(Change(self.update_id, bid, price, before, qty))
            if len(self.history) > 2 * MAX_HISTORY:  # trimmed in bulk: appending stays cheap
                del self.history[:-MAX_HISTORY]

    def since(self, update_id: int) -> list[Change]:
        """The changes after ``update_id``; HistoryLost if some are no longer kept."""
        if update_id >= self.update_id:
            return []
        oldest = self.history[0].update_id if self.history else self.update_id + 1
        if update_id + 1 < oldest:
            raise HistoryLost(f"changes after {update_id} are gone: the oldest kept is {oldest}")
        return self.history[update_id + 1 - oldest :]

    def trade(self, price: int, qty: int, count: int, time_ms: int, buyer_maker: bool) -> None:
        """Records one aggregate trade of ``count`` trades."""
        last = self.next_trade_id + count - 1
        self.trades.append(AggTrade(self.next_agg_id, price, qty, self.next_trade_id, last, time_ms, buyer_maker))
        self.next_agg_id += 1
        self.next_trade_id += count
        if len(self.trades) > MAX_TRADE_HISTORY + TRADE_TRIM:  # trimmed in bulk: appending stays cheap
            del self.trades[:-MAX_TRADE_HISTORY]

    def trades_from(self, agg_id: int) -> list[AggTrade]:
        """The trades kept from id ``agg_id`` on (all of them, from an id older than the oldest kept)."""
        if not self.trades:
            return []
        return self.trades[max(0, agg_id - self.trades[0].agg_id) :]


# Books at step 0 by (seed, symbol): (update id, bids, asks).
_FIRST_BOOKS: dict[tuple[int, ListedSymbol], tuple[int, dict[int, int], dict[int, int]]] = {}
MAX_FIRST_BOOKS = 4096


class Market:  # pylint: disable=too-many-instance-attributes  # its clocks, its books and its lock
    """The simulated market. Each symbol has one book, which evolves step
    by step: step 0 is generated from (seed, symbol); every later step
    applies a batch of changes drawn from (seed, symbol, step) — a few
    level changes near the top, and the mid's slow drift along a wave.
    Every change of a level counts one update id, as Binance's do, and the
    latest ones are kept (``changes_since``) for the streams.

    The step advances every ``tick_seconds`` (never, when ``tick_seconds``
    is 0, or while ``freeze()`` holds it) of ``clock``; a book catches up
    with the step when it is read. The times it serves (``serverTime``,
    ``openTime``, ``closeTime``, events' ``E``) are read from
    ``wall_clock``, Unix time. Everything is read under one lock, so every
    endpoint and stream sees the same books."""

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
        self.lock = threading.RLock()
        self._start = clock()
        self._frozen_at: Optional[int] = None
        self._books: dict[str, _Book] = {}

    def now_ms(self) -> int:
        """The wall clock, in Unix milliseconds."""
        return int(self.wall_clock() * 1000)

    def step(self) -> int:
        """The market's current step."""
        with self.lock:
            if self._frozen_at is not None:
                return self._frozen_at
            if self.tick_seconds <= 0:
                return 0
            return int((self.clock() - self._start) / self.tick_seconds)

    def freeze(self) -> None:
        """Holds the market at its current step until ``unfreeze()``."""
        with self.lock:
            self._frozen_at = self.step()

    def unfreeze(self) -> None:
        """Lets the market move on from the step it was frozen at."""
        with self.lock:
            if self._frozen_at is not None and self.tick_seconds > 0:
                self._start = self.clock() - self._frozen_at * self.tick_seconds
            self._frozen_at = None

    @property
    def frozen(self) -> bool:
        """Whether ``freeze()`` holds the market."""
        return self._frozen_at is not None

    # The books

    def _depth_target(self, listed: ListedSymbol) -> int:
        return DEEP_BOOK_LEVELS if listed.levels >= 1000 else listed.levels

    def _target_bid(self, listed: ListedSymbol, step: int) -> int:
        """The best bid the drift leads to at ``step``, on the tick grid."""
        tick = to_units(listed.tick)
        base = to_units(listed.price) // tick
        amplitude = min(base // 100, MAX_DRIFT_TICKS)
        swing = amplitude * (_wave(self.seed, listed.symbol, step, PRICE_PERIOD_STEPS, 1.0) - 1)
        return max(1, base + round(swing)) * tick

    @staticmethod
    def _qty(rng: random.Random, listed: ListedSymbol) -> int:
        draw = rng.random
        return (1 + int(draw() * 2000)) * _QTY_SCALES[int(draw() * 5)] * to_units(listed.qty_step)

    def _book(self, symbol: str) -> _Book:
        """``symbol``'s book, caught up with the current step (lock held)."""
        book = self._books.get(symbol)
        listed = self.symbols[symbol]
        if book is None:
            book = self._books[symbol] = self._first_book(listed)
        step = self.step()
        while book.step < step:
            book.step += 1
            if listed.status == "TRADING":  # nothing moves a halted book
                self._evolve(book, listed, random.Random(f"{self.seed}/{symbol}/{book.step}/changes"))
                self._trade(book, listed, random.Random(f"{self.seed}/{symbol}/{book.step}/trades"))
        return book

    def _trade(self, book: _Book, listed: ListedSymbol, rng: random.Random) -> None:
        """A step's aggregate trades: a taker buy takes the best ask, a
        taker sell the best bid (the book itself is left as it is)."""
        for _ in range(_TRADES_PER_STEP[int(rng.random() * len(_TRADES_PER_STEP))]):
            self._trade_once(book, listed, rng)

    def _trade_once(self, book: _Book, listed: ListedSymbol, rng: random.Random) -> None:
        buyer_maker = rng.random() < 0.5
        side = book.bids if buyer_maker else book.asks
        if side:
            count = 1 + int(rng.random() * MAX_TRADES_PER_AGGREGATE)
            book.trade(side.price(0), self._qty(rng, listed), count, self.now_ms(), buyer_maker)

    def _first_book(self, listed: ListedSymbol) -> _Book:
        """The book at step 0: generated once per process for each (seed,
        symbol), then copied (generating 1600 levels a side takes a few
        milliseconds, a copy a fraction of one)."""
        key = (self.seed, listed)
        if key not in _FIRST_BOOKS:
            if len(_FIRST_BOOKS) >= MAX_FIRST_BOOKS:
                _FIRST_BOOKS.clear()
            generated = self._generate(listed)
            _FIRST_BOOKS[key] = (generated.update_id, dict(generated.bids.qty), dict(generated.asks.qty))
        update_id, bids, asks = _FIRST_BOOKS[key]
        rng = random.Random(f"{self.seed}/{listed.symbol}/0/trades")
        book = _Book(update_id, rng.randrange(10**6, 10**9))
        book.bids, book.asks = _Side(True, bids), _Side(False, asks)
        for _ in range(FIRST_TRADES):  # a market that has traded before: its history is never empty
            self._trade_once(book, listed, rng)
        return book

    def _generate(self, listed: ListedSymbol) -> _Book:
        rng = random.Random(f"{self.seed}/{listed.symbol}/0/book")
        book = _Book(1_000_000_000 + rng.randrange(1_000_000_000), 0)
        tick = to_units(listed.tick)
        best_bid = self._target_bid(listed, 0)
        book.bids.set(best_bid, self._qty(rng, listed))
        book.asks.set(best_bid + tick * rng.choice((1, 1, 1, 2, 3, 5)), self._qty(rng, listed))
        self._keep_depth(book, listed, rng, record=False)
        return book

    def _evolve(self, book: _Book, listed: ListedSymbol, rng: random.Random) -> None:
        """One step: the drift, then a few changes near the top, then the
        depth of each side restored at its far end."""
        self._drift(book, listed, rng)
        busy = listed.trades >= BUSY_TRADES
        for _ in range(rng.randint(1, BUSY_CHANGES if busy else QUIET_CHANGES)):
            self._change_near_top(book, listed, rng)
        self._keep_depth(book, listed, rng)

    def _drift(self, book: _Book, listed: ListedSymbol, rng: random.Random) -> None:
        """When the drift takes the best bid to or past the best ask, the
        asks it crosses go and the bids get a new best level (and the other
        way round); the book is never crossed."""
        tick = to_units(listed.tick)
        bid = self._target_bid(listed, book.step)
        if book.asks and bid >= book.asks.price(0):
            for price in book.asks.beyond(bid):
                book.change(False, price, 0)
            book.change(True, bid, self._qty(rng, listed))
        elif book.bids and bid + tick <= book.bids.price(0):
            for price in book.bids.beyond(bid + tick):
                book.change(True, price, 0)
            book.change(False, bid + tick, self._qty(rng, listed))

    def _change_near_top(self, book: _Book, listed: ListedSymbol, rng: random.Random) -> None:
        """A quantity change, a deletion or an insertion between two prices
        (or inside the spread), within the top levels of one side."""
        bid = rng.random() < 0.5
        side, other = (book.bids, book.asks) if bid else (book.asks, book.bids)
        if not side:
            return
        index = min(int(rng.expovariate(0.3)), len(side) - 1, TOP_LEVELS - 1)
        kind = rng.choice(("qty", "qty", "qty", "delete", "insert", "insert"))
        if kind == "insert":
            tick, direction = to_units(listed.tick), -1 if bid else 1
            inner = side.price(index - 1) if index else (other.price(0) if other else None)
            if inner is not None:
                gap = abs(inner - side.price(index)) // tick - 1
                if gap >= 1:
                    book.change(bid, inner + direction * tick * rng.randint(1, gap), self._qty(rng, listed))
                    return
        if kind == "delete" and len(side) > 1:
            book.change(bid, side.price(index), 0)
            return
        book.change(bid, side.price(index), self._qty(rng, listed))

    def _keep_depth(self, book: _Book, listed: ListedSymbol, rng: random.Random, record: bool = True) -> None:
        """Each side back to its depth: far levels trimmed, or added past
        the farthest one (bids down to one tick)."""
        tick, target = to_units(listed.tick), self._depth_target(listed)
        for side, other in ((book.bids, book.asks), (book.asks, book.bids)):
            direction = -1 if side.bid else 1
            while len(side) > target:
                self._set(book, side, side.price(-1), 0, record)
            while len(side) < target:
                far = side.price(-1) if side else other.price(0)
                price = far + direction * tick * _SPACINGS[int(rng.random() * 6)]
                if price < tick:
                    break
                self._set(book, side, price, self._qty(rng, listed), record)

    @staticmethod
    def _set(book: _Book, side: _Side, price: int, qty: int, record: bool) -> None:
        if record:
            book.change(side.bid, price, qty)
        else:
            side.set(price, qty)

    def prepare(self) -> None:
        """Makes every symbol's book now rather than when it is first read
        (a few milliseconds each)."""
        with self.lock:
            for symbol in self.symbols:
                self._book(symbol)

    def update_id(self, symbol: str) -> int:
        """The update id of ``symbol``'s book now."""
        with self.lock:
            return self._book(symbol).update_id

    def changes_since(self, symbol: str, update_id: int) -> Optional[DepthDiff]:
        """The changes of ``symbol``'s book after ``update_id``, folded into a
        diff (None when there are none); HistoryLost when they are older
        than the ``MAX_HISTORY`` latest."""
        with self.lock:
            changes = self._book(symbol).since(update_id)
        if not changes:
            return None
        final: dict[tuple[bool, int], int] = {}
        for change in changes:
            final[(change.bid, change.price)] = change.after
        bids = sorted(((p, q) for (bid, p), q in final.items() if bid), reverse=True)
        asks = sorted((p, q) for (bid, p), q in final.items() if not bid)
        return DepthDiff(changes[0].update_id, changes[-1].update_id, bids, asks)

    def trades_since(self, symbol: str, agg_id: int) -> list[AggTrade]:
        """The aggregate trades of ``symbol`` after id ``agg_id``;
        HistoryLost when some of them are no longer kept."""
        with self.lock:
            book = self._book(symbol)
            if book.trades and agg_id + 1 < book.trades[0].agg_id:
                raise HistoryLost(f"trades after {agg_id} are gone: the oldest kept is {book.trades[0].agg_id}")
            return book.trades_from(agg_id + 1)

    def last_trade_id(self, symbol: str) -> int:
        """The id of ``symbol``'s latest aggregate trade (the one before its
        first when it has none yet)."""
        with self.lock:
            return self._book(symbol).next_agg_id - 1

    def agg_trades(
        self,
        symbol: str,
        from_id: Optional[int] = None,
        start_time: Optional[int] = None,
        end_time: Optional[int] = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """``GET /api/v3/aggTrades``: up to ``limit`` trades from id
        ``from_id`` on (from the oldest kept, when it is older), or within
        ``start_time``..``end_time`` (ms, inclusive), or the latest; oldest first."""
        with self.lock:
            book = self._book(symbol)
            if from_id is not None:
                trades = book.trades_from(from_id)
            elif start_time is not None or end_time is not None:
                trades = [
                    t
                    for t in book.trades
                    if (start_time is None or t.time_ms >= start_time) and (end_time is None or t.time_ms <= end_time)
                ]
            else:
                return [t.payload() for t in book.trades[-limit:]]
            return [t.payload() for t in trades[:limit]]

    def true_book(self, symbol: str) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """(update id, bids, asks) of the whole book now, best first, in 1e-8 units."""
        with self.lock:
            book = self._book(symbol)
            return book.update_id, book.bids.levels(), book.asks.levels()

    def sweep(self, symbol: str, bid: bool, fraction: float) -> int:
        """Removes the best ``fraction`` of one side's levels at once (at
        least one level stays), as a large market order would; returns how
        many went."""
        with self.lock:
            book = self._book(symbol)
            side = book.bids if bid else book.asks
            count = min(math.ceil(len(side) * fraction), len(side) - 1)
            for price, _ in side.levels(count):
                book.change(bid, price, 0)
            return max(count, 0)

    def _top(self, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best bid and the best ask, each as a list of one level."""
        book = self._book(symbol)
        return book.bids.levels(1), book.asks.levels(1)

    def book_top(self, symbol: str) -> Optional[BookTop]:
        """The best bid and ask of ``symbol``'s book now and its update id,
        read at once (None while a side is empty): the top a local book made
        of a snapshot and the diffs up to that update id has."""
        with self.lock:
            book = self._book(symbol)
            if not book.bids or not book.asks:
                return None
            bid, ask = book.bids.price(0), book.asks.price(0)
            return BookTop(book.update_id, bid, book.bids.qty[bid], ask, book.asks.qty[ask])

    def _sides(self, symbol: str, lag: int = 0) -> tuple[int, _Side, _Side]:
        """(update id, bids, asks) now, or ``lag`` changes ago (as far back
        as the history goes); lock held."""
        book = self._book(symbol)
        if not lag:
            return book.update_id, book.bids, book.asks
        undone = book.history[-lag:]
        levels = {True: dict(book.bids.qty), False: dict(book.asks.qty)}
        for change in reversed(undone):
            if change.before:
                levels[change.bid][change.price] = change.before
            else:
                levels[change.bid].pop(change.price, None)
        return book.update_id - len(undone), _Side(True, levels[True]), _Side(False, levels[False])

    def exchange_info(self, symbols: Optional[list[str]] = None) -> dict[str, Any]:
        """The exchangeInfo body, for all symbols or the ones asked for."""
        listed = [self.symbols[s] for s in symbols] if symbols else list(self.symbols.values())
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
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
        with self.lock:
            listed, step = self.symbols[symbol], self.step()
            bids, asks = self._top(symbol)
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
        now_ms = self.now_ms()
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

    def depth(self, symbol: str, limit: int, lag: int = 0) -> dict[str, Any]:
        """The depth body: the best ``limit`` levels of each side and the
        book's update id; ``lag`` changes ago, when given (as far back as
        the history kept goes)."""
        with self.lock:
            update_id, bid_side, ask_side = self._sides(symbol, lag)
            bids, asks = bid_side.levels(limit), ask_side.levels(limit)
        return {
            "lastUpdateId": update_id,
            "bids": [[from_units(p), from_units(q)] for p, q in bids],
            "asks": [[from_units(p), from_units(q)] for p, q in asks],
        }

    def book_ticker(self, symbol: str) -> dict[str, Any]:
        """One symbol's bookTicker record at the current step."""
        with self.lock:
            bids, asks = self._top(symbol)
        return {
            "symbol": symbol,
            "bidPrice": from_units(bids[0][0]),
            "bidQty": from_units(bids[0][1]),
            "askPrice": from_units(asks[0][0]),
            "askQty": from_units(asks[0][1]),
        }
