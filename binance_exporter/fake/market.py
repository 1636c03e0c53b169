"""The simulated spot market behind the fake Binance: symbols, books and
24 h statistics, moving with time.

Each symbol has one order book that evolves every ``tick_seconds``, each
change of a level counting one update id, as Binance's books do; the REST
endpoints and the websocket streams all read the same books. Prices and
quantities are kept as integers of 1e-8 units and formatted as Binance
formats them (``"0.00001234"``).

Two kinds of market share this code (their symbols are ``symbols``'). The
default one, ``LISTED_SYMBOLS`` (the traps real data holds), moves every
book at every step, each step's changes drawn from (seed, symbol, step).
The whole market (``whole_market``: 1,500 trading symbols shaped like
Binance's own) gives each symbol rates instead: a book changes at a step
with its ``change_rate`` and trades with its ``trade_rate``, the gaps
between drawn in order from the symbol's own generator, so that a step in
which nothing happens costs nothing; ``peak`` changes every trading book
at every step. Either way the same seed gives the same market. Books and
their histories are arrays of integers, and a large market's books each
keep a share of a fixed budget of changes and trades: however long it
runs, the whole market's books and histories stay within about 120 MB.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
import threading
import time
from array import array
from dataclasses import replace
from typing import Any, Callable, NamedTuple, Optional

from binance_exporter.fake.symbols import (  # pylint: disable=unused-import  # the market's users import them here
    LISTED_SYMBOLS,
    UNIT,
    ListedSymbol,
    from_units,
    synthetic_symbols,
    to_units,
)

MAX_SYMBOLS = 10_000  # listed at once, listings at run time included


@functools.lru_cache(maxsize=65536)  # read at every step of every book, and by every ticker
def _phase(seed: int, symbol: str) -> float:
    return random.Random(f"{seed}/{symbol}/phase").uniform(0, 2 * math.pi)


def _wave(seed: int, symbol: str, step: int, period_steps: float, amplitude: float) -> float:
    """1 + a smooth, symbol-specific oscillation: how the market drifts."""
    return 1 + amplitude * math.sin(2 * math.pi * step / period_steps + _phase(seed, symbol))


# How deep a book is kept, per side: the listing's 1000 means deeper than a
# 1000-level snapshot, so that the levels past a snapshot's horizon move too.
DEEP_BOOK_LEVELS = 1600
# Changes kept per symbol for the streams' diffs: this many at most, and
# HISTORY_BUDGET shared among the symbols of a large market (1,000 each of
# 1,500), MIN_HISTORY at least. 24 bytes each.
MAX_HISTORY = 10_000
HISTORY_BUDGET, MIN_HISTORY = 1_500_000, 500
# The book's mid drifts along the wave by at most this many ticks from the
# listed price (and by 1% of it at most): a few ticks a step.
MAX_DRIFT_TICKS = 300
PRICE_PERIOD_STEPS = 600
# The whole market's steps are 0.1 s: its wave is ten times as long in steps,
# and a busy book's best level moves about once a second, not at every step.
WHOLE_PRICE_PERIOD_STEPS = 6000
# The 24 h statistics follow a wave of this many steps (the whole market's
# steps are 0.1 s: its wave is as long in time).
TICKER_PERIOD_STEPS, WHOLE_TICKER_PERIOD_STEPS = 240, 2400
# Changes near the top per step: up to this many for symbols traded this much
# (in the whole market, a step that changes a quiet book makes 1 to 3, as
# Binance's quiet books' 100 ms events hold).
BUSY_TRADES = 500_000
BUSY_CHANGES, QUIET_CHANGES, SPARSE_CHANGES = 15, 6, 3
TOP_LEVELS = 20  # how near the top random changes fall
_QTY_SCALES = (1, 1, 1, 10, 100)  # most levels small, a few large
# Aggregate trades kept per symbol: what GET /api/v3/aggTrades and the
# aggTrade streams serve. This many at most, TRADE_BUDGET shared among the
# symbols of a large market (500 each of 1,500), MIN_TRADE_HISTORY at least.
# 40 bytes each.
MAX_TRADE_HISTORY = 10_000
TRADE_BUDGET, MIN_TRADE_HISTORY = 750_000, 200
_TRADES_PER_STEP = (0, 0, 1, 1, 2, 3)
_TRADES_PER_TRADING_STEP = (1, 1, 2, 3)  # the whole market's, in the steps that trade
MAX_TRADES_PER_AGGREGATE = 5
FIRST_TRADES = 3  # made with the first book
TRADE_TRIM = 1000  # trades past the most kept before the oldest go, all at once (a quarter of them at most)
_SPACINGS = (1, 1, 1, 1, 2, 3)  # ticks between neighbouring levels
NEVER = 2**62  # the step at which something that never happens is due


def _gap(rng: random.Random, rate: float) -> int:
    """Steps until the next one in which something of probability ``rate``
    a step happens: geometric, one draw however far."""
    if rate >= 1:
        return 1
    if rate <= 0:
        return NEVER
    return 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - rate))


class HistoryLost(LookupError):
    """The changes asked for are older than the history kept (``MAX_HISTORY``)."""


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
    """One side of a book: its levels best first, in two arrays of 64-bit
    integers (16 bytes a level, so that 1,500 books of up to 2,500 levels a
    side stay small): the keys (-price for bids, price for asks: ascending
    is best first) and the quantities."""

    __slots__ = ("bid", "keys", "qtys")

    def __init__(self, bid: bool, levels: Optional[dict[int, int]] = None):
        self.bid = bid
        ordered = sorted((levels or {}).items(), reverse=bid)
        self.keys = array("q", [-price if bid else price for price, _ in ordered])
        self.qtys = array("q", [qty for _, qty in ordered])

    def __len__(self) -> int:
        return len(self.keys)

    def price(self, index: int) -> int:
        """The price of the level ``index`` from the best (-1: the farthest)."""
        key = self.keys[index]
        return -key if self.bid else key

    def set(self, price: int, qty: int) -> int:
        """Sets the level at ``price`` (0: removes it); returns the quantity it had."""
        key = -price if self.bid else price
        keys = self.keys
        index = bisect.bisect_left(keys, key)
        if index < len(keys) and keys[index] == key:
            before = self.qtys[index]
            if qty:
                self.qtys[index] = qty
            else:
                del keys[index]
                del self.qtys[index]
            return before
        if qty:
            keys.insert(index, key)
            self.qtys.insert(index, qty)
        return 0

    def levels(self, limit: Optional[int] = None) -> list[tuple[int, int]]:
        """(price, qty) of the best ``limit`` levels (None: all)."""
        keys, qtys = (self.keys, self.qtys) if limit is None else (self.keys[:limit], self.qtys[:limit])
        if self.bid:
            return [(-key, qty) for key, qty in zip(keys, qtys)]
        return list(zip(keys, qtys))

    def beyond(self, price: int) -> list[int]:
        """The prices at or past ``price`` towards the other side (which
        the other side's move to ``price`` crosses), best first."""
        key = -price if self.bid else price
        keys = self.keys[: bisect.bisect_right(self.keys, key)]
        return [-k for k in keys] if self.bid else list(keys)

    def copy(self) -> "_Side":
        """The same levels, apart."""
        side = _Side(self.bid)
        side.keys, side.qtys = self.keys[:], self.qtys[:]
        return side


class _Shape(NamedTuple):
    """What the steps of a whole-market book read of its listing, worked
    out once: the tick and the quantity step (1e-8 units), the levels a
    side holds, the listed price in ticks, the drift's amplitude in ticks
    and its phase, and how many changes near the top a step makes at most."""

    tick: int
    qty_unit: int
    depth: int
    base: int
    amplitude: int
    phase: float
    most: int

    def target_bid(self, step: int) -> int:
        """The best bid the drift leads to at ``step``, on the tick grid."""
        swing = self.amplitude * math.sin(2 * math.pi * step / WHOLE_PRICE_PERIOD_STEPS + self.phase)
        return max(1, self.base + round(swing)) * self.tick


class _Book:  # pylint: disable=too-many-instance-attributes  # its sides, ids, histories and schedule
    """One symbol's book as it evolves: its sides, the step it is at, its
    update id, its latest changes and aggregate trades, each a few
    integers in an array (trimmed in bulk: appending stays cheap), and, in
    the whole market, its own generator and the steps at which it next
    changes and trades."""

    __slots__ = (
        "bids", "asks", "step", "update_id", "history", "keep_changes", "trades", "keep_trades",
        "next_agg_id", "next_trade_id", "rng", "shape", "next_change", "next_trade", "moved_step",
    )  # fmt: skip

    def __init__(self, update_id: int, first_trade: int, keep_changes: int, keep_trades: int):
        self.bids, self.asks = _Side(True), _Side(False)
        self.step = 0
        self.update_id = update_id
        # The latest changes, 3 integers each: the price (negative: an ask),
        # the quantity before and after; the last one is update_id's.
        self.history = array("q")
        self.keep_changes = keep_changes
        # The latest aggregate trades, 5 integers each: price, quantity,
        # first trade id, time (ms), trades * 2 + whether the buyer was the
        # maker; the last one is next_agg_id - 1's.
        self.trades = array("q")
        self.keep_trades = keep_trades
        self.next_agg_id = self.next_trade_id = first_trade
        self.rng: Optional[random.Random] = None
        self.shape: Optional[_Shape] = None
        self.next_change = self.next_trade = NEVER
        self.moved_step = 0  # the latest step at which it changed or traded

    def change(self, bid: bool, price: int, qty: int) -> None:
        """Sets one level, counting it as one update if it changes anything."""
        before = (self.bids if bid else self.asks).set(price, qty)
        if before != qty:
            self._record(bid, price, before, qty)

    def change_at(self, bid: bool, index: int, qty: int) -> None:
        """``change`` of the level ``index`` from the best of one side, its
        place known (a whole-market step knows the places of its changes)."""
        side = self.bids if bid else self.asks
        before = side.qtys[index]
        if before == qty:
            return
        key = side.keys[index]
        if qty:
            side.qtys[index] = qty
        else:
            del side.keys[index]
            del side.qtys[index]
        self._record(bid, -key if bid else key, before, qty)

    def insert_at(self, bid: bool, index: int, price: int, qty: int) -> None:
        """``change`` adding a level at ``price``, which falls at ``index``
        from the best of one side (between the levels there)."""
        side = self.bids if bid else self.asks
        side.keys.insert(index, -price if bid else price)
        side.qtys.insert(index, qty)
        self._record(bid, price, 0, qty)

    def _record(self, bid: bool, price: int, before: int, qty: int) -> None:
        """Counts one change as one update id and keeps it."""
        self.update_id += 1
        history = self.history
        history.extend((price if bid else -price, before, qty))
        if len(history) > 3 * (self.keep_changes + self.keep_changes // 4):
            del history[: len(history) - 3 * self.keep_changes]

    def since(self, update_id: int) -> array:
        """The changes after ``update_id``, 3 integers each (see
        ``history``); HistoryLost if some are no longer kept."""
        count = self.update_id - update_id
        if count <= 0:
            return array("q")
        kept = len(self.history) // 3
        if count > kept:
            raise HistoryLost(f"changes after {update_id} are gone: the oldest kept is {self.update_id - kept + 1}")
        return self.history[-3 * count :]

    def undone(self, lag: int) -> tuple[int, dict[int, int], dict[int, int]]:
        """(update id, bids, asks) ``lag`` changes ago, as far back as the
        history goes."""
        levels = {True: dict(self.bids.levels()), False: dict(self.asks.levels())}
        history, kept = self.history, len(self.history) // 3
        undone = min(lag, kept)
        for index in range(kept - 1, kept - 1 - undone, -1):
            signed, before = history[3 * index], history[3 * index + 1]
            side = levels[signed > 0]
            if before:
                side[abs(signed)] = before
            else:
                side.pop(abs(signed), None)
        return self.update_id - undone, levels[True], levels[False]

    def trade(self, price: int, qty: int, count: int, time_ms: int, buyer_maker: bool) -> None:
        """Records one aggregate trade of ``count`` trades."""
        trades = self.trades
        trades.extend((price, qty, self.next_trade_id, time_ms, count * 2 + buyer_maker))
        self.next_agg_id += 1
        self.next_trade_id += count
        keep = min(MAX_TRADE_HISTORY, self.keep_trades)
        if len(trades) > 5 * (keep + min(TRADE_TRIM, max(1, keep // 4))):
            del trades[: len(trades) - 5 * keep]

    @property
    def oldest_trade(self) -> int:
        """The id of the oldest aggregate trade kept (next_agg_id: none)."""
        return self.next_agg_id - len(self.trades) // 5

    def trades_from(self, agg_id: int, limit: Optional[int] = None) -> list[AggTrade]:
        """The trades kept from id ``agg_id`` on (all of them, from an id
        older than the oldest kept), ``limit`` at most."""
        oldest, kept = self.oldest_trade, len(self.trades) // 5
        start = min(max(0, agg_id - oldest), kept)
        end = kept if limit is None else min(kept, start + limit)
        trades, made = self.trades, []
        for index in range(start, end):
            price, qty, first, time_ms, flags = trades[5 * index : 5 * index + 5]
            made.append(AggTrade(oldest + index, price, qty, first, first + (flags >> 1) - 1, time_ms, bool(flags & 1)))
        return made


# Books at step 0 of the default market by (seed, symbol): (update id, bids, asks).
_FIRST_BOOKS: dict[tuple[int, ListedSymbol], tuple[int, _Side, _Side]] = {}
MAX_FIRST_BOOKS = 4096


class Market:  # pylint: disable=too-many-instance-attributes,too-many-public-methods  # clocks, books, caches, lock
    """The simulated market. Each symbol has one book, which evolves step
    by step: step 0 is generated from (seed, symbol); every later step
    that changes it applies a batch of changes — a few level changes near
    the top, and the mid's slow drift along a wave. A symbol with no
    ``change_rate`` changes at every step, its changes drawn from (seed,
    symbol, step); one with a rate changes at a step with that probability
    (every step with ``peak``) and trades with its ``trade_rate``, both
    drawn from its own generator, and a step in which it does neither
    costs nothing. Every change of a level counts one update id, as
    Binance's do, and the latest ones are kept (``changes_since``) for the
    streams.

    The step advances every ``tick_seconds`` (never, when ``tick_seconds``
    is 0, or while ``freeze()`` holds it) of ``clock``; a book catches up
    with the step when it is read. The times it serves (``serverTime``,
    ``openTime``, ``closeTime``, events' ``E``) are read from
    ``wall_clock``, Unix time. Everything is read under one lock, so every
    endpoint and stream sees the same books. Symbols can be listed and
    their status changed at run time (``list_symbol``, ``set_status``); a
    symbol not TRADING stands still."""

    def __init__(  # pylint: disable=too-many-arguments  # the market, its seed, its clocks, its pace
        self,
        symbols: tuple[ListedSymbol, ...] = LISTED_SYMBOLS,
        seed: int = 1,
        tick_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        *,
        peak: bool = False,
    ):
        self.symbols = {listed.symbol: listed for listed in symbols}
        self.seed = seed
        self.tick_seconds = tick_seconds
        self.clock = clock
        self.wall_clock = wall_clock
        self.peak = peak
        self.lock = threading.RLock()
        self._start = clock()
        self._frozen_at: Optional[int] = None
        self._books: dict[str, _Book] = {}
        count = max(1, len(self.symbols))
        self._keep_changes = max(MIN_HISTORY, min(MAX_HISTORY, HISTORY_BUDGET // count))
        self._keep_trades = max(MIN_TRADE_HISTORY, min(MAX_TRADE_HISTORY, TRADE_BUDGET // count))
        self._listed_at: dict[str, int] = {}  # symbols listed at run time: the step they were listed at
        # What each symbol's 24 h ticker and exchangeInfo entry were made
        # of, and what they are: made again only when that changed.
        self._tickers: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self._entries: dict[str, tuple[ListedSymbol, dict[str, Any]]] = {}

    def now_ms(self) -> int:
        """The wall clock, in Unix milliseconds."""
        return int(self.wall_clock() * 1000)

    def step(self) -> int:
        """The market's current step."""
        with self.lock:
            return self._step()

    def _step(self) -> int:
        """The current step (lock held)."""
        if self._frozen_at is not None:
            return self._frozen_at
        if self.tick_seconds <= 0:
            return 0
        return int((self.clock() - self._start) / self.tick_seconds)

    def next_step_at(self) -> Optional[float]:
        """When the next step begins, on ``clock`` (None while the market
        stands still)."""
        with self.lock:
            if self._frozen_at is not None or self.tick_seconds <= 0:
                return None
            return self._start + (self.step() + 1) * self.tick_seconds

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

    # Listings

    def list_symbol(self, listed: ListedSymbol) -> None:
        """Lists a new symbol, its book starting at the current step;
        ValueError if it is listed already or ``MAX_SYMBOLS`` are."""
        with self.lock:
            if listed.symbol in self.symbols:
                raise ValueError(f"{listed.symbol} is listed already")
            if len(self.symbols) >= MAX_SYMBOLS:
                raise ValueError(f"the market lists {MAX_SYMBOLS} symbols already, the most it holds")
            self._books.pop(listed.symbol, None)
            self._listed_at[listed.symbol] = self.step()
            self.symbols[listed.symbol] = listed

    def set_status(self, symbol: str, status: str) -> ListedSymbol:
        """Changes a listed symbol's status (KeyError if it is not listed),
        its book first caught up under the old one: from now on, a symbol
        not TRADING stands still, and one TRADING again moves on from here."""
        with self.lock:
            listed = self.symbols[symbol]
            if symbol in self._books:
                self._book(symbol)
            self.symbols[symbol] = replace(listed, status=status)
            return self.symbols[symbol]

    # The books

    def _depth_target(self, listed: ListedSymbol) -> int:
        return DEEP_BOOK_LEVELS if listed.levels == 1000 else listed.levels

    def _target_bid(self, listed: ListedSymbol, step: int) -> int:
        """The best bid the drift leads to at ``step``, on the tick grid."""
        tick = to_units(listed.tick)
        base = to_units(listed.price) // tick
        amplitude = min(base // 100, MAX_DRIFT_TICKS)
        period = PRICE_PERIOD_STEPS if listed.change_rate is None else WHOLE_PRICE_PERIOD_STEPS
        swing = amplitude * (_wave(self.seed, listed.symbol, step, period, 1.0) - 1)
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
        step = self._step()
        if book.step < step:
            if listed.status != "TRADING":  # nothing moves a halted book
                book.step = step
            elif listed.change_rate is None:
                while book.step < step:
                    book.step += 1
                    self._evolve(book, listed, random.Random(f"{self.seed}/{symbol}/{book.step}/changes"))
                    self._trade(book, listed, random.Random(f"{self.seed}/{symbol}/{book.step}/trades"))
            else:
                self._catch_up(book, listed, step)
        return book

    def _catch_up(self, book: _Book, listed: ListedSymbol, step: int) -> None:
        """Takes a book with rates to ``step``, through the steps at which
        it changes or trades only."""
        rng = book.rng
        assert rng is not None and listed.change_rate is not None
        change_rate = 1.0 if self.peak else listed.change_rate
        if book.next_change <= book.step:  # trading again after a pause: from here
            book.next_change = book.step + _gap(rng, change_rate)
        if book.next_trade <= book.step:
            book.next_trade = book.step + _gap(rng, listed.trade_rate)
        while True:
            due = min(book.next_change, book.next_trade)
            if due > step:
                break
            book.step = book.moved_step = due
            if due == book.next_change:
                self._evolve_sparse(book, rng)
                book.next_change = due + _gap(rng, change_rate)
            if due == book.next_trade:
                for _ in range(_TRADES_PER_TRADING_STEP[int(rng.random() * len(_TRADES_PER_TRADING_STEP))]):
                    self._trade_once(book, listed, rng)
                book.next_trade = due + _gap(rng, listed.trade_rate)
        book.step = step

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
        """The book at step 0 (at its listing, for a symbol listed at run
        time). The default market's are generated once per process for
        each (seed, symbol), then copied (generating 1600 levels a side
        takes a few milliseconds, a copy a fraction of one); the whole
        market's, with their own generators, once per market."""
        if listed.change_rate is not None:
            return self._first_sparse_book(listed)
        key = (self.seed, listed)
        if key not in _FIRST_BOOKS:
            if len(_FIRST_BOOKS) >= MAX_FIRST_BOOKS:
                _FIRST_BOOKS.clear()
            rng = random.Random(f"{self.seed}/{listed.symbol}/0/book")
            generated = self._generate(listed, rng, self._target_bid(listed, 0))
            _FIRST_BOOKS[key] = (generated.update_id, generated.bids, generated.asks)
        update_id, bids, asks = _FIRST_BOOKS[key]
        rng = random.Random(f"{self.seed}/{listed.symbol}/0/trades")
        book = _Book(update_id, rng.randrange(10**6, 10**9), self._keep_changes, self._keep_trades)
        book.bids, book.asks = bids.copy(), asks.copy()
        for _ in range(FIRST_TRADES):  # a market that has traded before: its history is never empty
            self._trade_once(book, listed, rng)
        return book

    def _first_sparse_book(self, listed: ListedSymbol) -> _Book:
        start = self._listed_at.get(listed.symbol, 0)
        rng = random.Random(f"{self.seed}/{listed.symbol}/book")
        tick, busy = to_units(listed.tick), listed.trades >= BUSY_TRADES
        base = to_units(listed.price) // tick
        shape = _Shape(
            tick, to_units(listed.qty_step), self._depth_target(listed), base, min(base // 100, MAX_DRIFT_TICKS),
            _phase(self.seed, listed.symbol), BUSY_CHANGES if busy else SPARSE_CHANGES,
        )  # fmt: skip
        book = self._generate(listed, rng, shape.target_bid(start))
        book.shape = shape
        book.next_agg_id = book.next_trade_id = rng.randrange(10**6, 10**9)
        for _ in range(FIRST_TRADES):
            self._trade_once(book, listed, rng)
        book.rng, book.step, book.moved_step = rng, start, start
        book.next_change = start + _gap(rng, 1.0 if self.peak else (listed.change_rate or 0.0))
        book.next_trade = start + _gap(rng, listed.trade_rate)
        return book

    def _generate(self, listed: ListedSymbol, rng: random.Random, best_bid: int) -> _Book:
        book = _Book(1_000_000_000 + rng.randrange(1_000_000_000), 0, self._keep_changes, self._keep_trades)
        tick = to_units(listed.tick)
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

    @staticmethod
    def _evolve_sparse(  # pylint: disable=too-many-locals,too-many-branches,too-many-statements  # one step, written out
        book: _Book, rng: random.Random
    ) -> None:
        """A step that changes a whole-market book: as ``_evolve`` does
        (the drift, changes near the top, the depth kept), with 1 to 3
        changes near the top for all but the busiest, and at least one
        change whatever the draws (a step due to change does). Written out
        in one function, on local names, every draw a ``random()``: at
        --peak it runs 15,000 times a second."""
        assert book.shape is not None
        tick, unit, depth, base, amplitude, phase, most = book.shape
        draw, bids, asks = rng.random, book.bids, book.asks
        bid_keys, ask_keys = bids.keys, asks.keys  # the arrays themselves: they change in place
        before = book.update_id
        # The drift: the levels it crosses go, the other side gets a new best level.
        swing = amplitude * math.sin(2 * math.pi * book.step / WHOLE_PRICE_PERIOD_STEPS + phase)
        bid = max(1, base + round(swing)) * tick
        if ask_keys and bid >= ask_keys[0]:
            for _ in range(bisect.bisect_right(ask_keys, bid)):
                book.change_at(False, 0, 0)
            book.insert_at(True, 0, bid, (1 + int(draw() * 2000)) * _QTY_SCALES[int(draw() * 5)] * unit)
        elif bid_keys and bid + tick <= -bid_keys[0]:
            for _ in range(bisect.bisect_right(bid_keys, -bid - tick)):
                book.change_at(True, 0, 0)
            book.insert_at(False, 0, bid + tick, (1 + int(draw() * 2000)) * _QTY_SCALES[int(draw() * 5)] * unit)
        # Near the top: a quantity, a deletion, or an insertion between two prices (or in the spread).
        for _ in range(1 + int(draw() * most)):
            is_bid = draw() < 0.5
            keys, other = (bid_keys, ask_keys) if is_bid else (ask_keys, bid_keys)
            size = len(keys)
            if not size:
                continue
            index = int(-math.log(1.0 - draw()) / 0.3)  # expovariate(0.3)
            if index >= TOP_LEVELS:
                index = TOP_LEVELS - 1
            if index >= size:
                index = size - 1
            key, kind = keys[index], draw()
            if kind < 1 / 3:
                inner = keys[index - 1] if index else (-other[0] if other else None)
                if inner is not None and key - inner >= 2 * tick:  # keys: -bid or ask, best smallest
                    inserted = inner + tick * (1 + int(draw() * ((key - inner) // tick - 1)))
                    qty = (1 + int(draw() * 2000)) * _QTY_SCALES[int(draw() * 5)] * unit
                    book.insert_at(is_bid, index, -inserted if is_bid else inserted, qty)
                    continue
            elif kind < 1 / 2 and size > 1:
                book.change_at(is_bid, index, 0)
                continue
            book.change_at(is_bid, index, (1 + int(draw() * 2000)) * _QTY_SCALES[int(draw() * 5)] * unit)
        # The depth of each side, at its far end (bids down to one tick).
        for is_bid, keys, other in ((True, bid_keys, ask_keys), (False, ask_keys, bid_keys)):
            size = len(keys)
            while size > depth:
                size -= 1
                book.change_at(is_bid, size, 0)
            while size < depth:
                far = keys[-1] if size else -other[0]  # as a key
                key = far + tick * _SPACINGS[int(draw() * 6)]
                if is_bid and -key < tick:
                    break
                qty = (1 + int(draw() * 2000)) * _QTY_SCALES[int(draw() * 5)] * unit
                book.insert_at(is_bid, size, -key if is_bid else key, qty)
                size += 1
        if book.update_id == before and bid_keys:  # every draw set a level to what it was
            book.change_at(True, 0, bids.qtys[0] + unit)

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
            direction, keys = -1 if side.bid else 1, side.keys
            while len(keys) > target:
                self._set(book, side, side.price(-1), 0, record)
            while len(keys) < target:
                far = side.price(-1) if keys else other.price(0)
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
            for symbol in list(self.symbols):
                self._book(symbol)

    def update_id(self, symbol: str) -> int:
        """The update id of ``symbol``'s book now."""
        with self.lock:
            return self._book(symbol).update_id

    def changes_since(self, symbol: str, update_id: int) -> Optional[DepthDiff]:
        """The changes of ``symbol``'s book after ``update_id``, folded into a
        diff (None when there are none); HistoryLost when they are older
        than the latest kept (``MAX_HISTORY``, fewer in a large market)."""
        with self.lock:
            book = self._book(symbol)
            changes, last = book.since(update_id), book.update_id
        if not changes:
            return None
        if len(changes) == 3:  # one change: the quiet books' usual diff
            price, _, qty = changes
            return DepthDiff(update_id + 1, last, [(price, qty)], []) if price > 0 else DepthDiff(
                update_id + 1, last, [], [(-price, qty)]
            )
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for index in range(0, len(changes), 3):  # the last change of each level wins
            price = changes[index]
            if price > 0:
                bids[price] = changes[index + 2]
            else:
                asks[-price] = changes[index + 2]
        return DepthDiff(update_id + 1, last, sorted(bids.items(), reverse=True), sorted(asks.items()))

    def trades_since(self, symbol: str, agg_id: int) -> list[AggTrade]:
        """The aggregate trades of ``symbol`` after id ``agg_id``;
        HistoryLost when some of them are no longer kept."""
        with self.lock:
            book = self._book(symbol)
            oldest = book.oldest_trade
            if book.trades and agg_id + 1 < oldest:
                raise HistoryLost(f"trades after {agg_id} are gone: the oldest kept is {oldest}")
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
                trades = book.trades_from(from_id, limit)
            elif start_time is not None or end_time is not None:
                trades = [
                    t
                    for t in book.trades_from(0)
                    if (start_time is None or t.time_ms >= start_time) and (end_time is None or t.time_ms <= end_time)
                ][:limit]
            else:
                trades = book.trades_from(book.next_agg_id - limit)
        return [t.payload() for t in trades]

    def true_book(self, symbol: str) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """(update id, bids, asks) of the whole book now, best first, in 1e-8 units."""
        with self.lock:
            book = self._book(symbol)
            return book.update_id, book.bids.levels(), book.asks.levels()

    def book_top(self, symbol: str) -> Optional[BookTop]:
        """The best bid and ask of ``symbol``'s book now and its update id,
        read at once (None while a side is empty): the top a local book made
        of a snapshot and the diffs up to that update id has."""
        with self.lock:
            book = self._book(symbol)
            if not book.bids or not book.asks:
                return None
            return BookTop(
                book.update_id, book.bids.price(0), book.bids.qtys[0], book.asks.price(0), book.asks.qtys[0]
            )

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

    def exchange_info(self, symbols: Optional[list[str]] = None) -> dict[str, Any]:
        """The exchangeInfo body, for all symbols or the ones asked for
        (each symbol's entry made once per listing, then shared)."""
        listed = [self.symbols[s] for s in symbols] if symbols else list(self.symbols.values())
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [self._entry(s) for s in listed],
        }

    def _entry(self, listed: ListedSymbol) -> dict[str, Any]:
        """A symbol's exchangeInfo entry."""
        made = self._entries.get(listed.symbol)
        if made is not None and made[0] is listed:
            return made[1]
        entry = {
            "symbol": listed.symbol,
            "status": listed.status,
            "baseAsset": listed.base,
            "baseAssetPrecision": 8,
            "quoteAsset": listed.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "isSpotTradingAllowed": listed.status == "TRADING",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": listed.tick,
                    "maxPrice": "1000000.00000000",
                    "tickSize": listed.tick,
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": listed.qty_step,
                    "maxQty": "9000000.00000000",
                    "stepSize": listed.qty_step,
                },
            ],
            "permissions": ["SPOT"],
        }
        self._entries[listed.symbol] = (listed, entry)
        return entry

    def ticker(self, symbol: str, full: bool = True) -> dict[str, Any]:
        """One symbol's ticker/24hr record now: made again only when its
        book moved (or, in the default market, at every step)."""
        with self.lock:
            listed, book = self.symbols[symbol], self._book(symbol)
            moved = book.step if listed.change_rate is None else book.moved_step
            made = self._tickers.get(symbol)
            if made is None or made[0][0] is not listed or made[0][1:] != (moved, book.update_id):
                made = self._tickers[symbol] = ((listed, moved, book.update_id), self._ticker_record(listed, moved))
        now_ms = self.now_ms()
        record = dict(made[1])
        record["openTime"], record["closeTime"] = now_ms - 86_400_000, now_ms
        if full:
            return record
        mini = {name: record[name] for name in _MINI_TICKER}
        mini["lastPrice"] = record["lastPrice"]
        return mini

    def _ticker_record(self, listed: ListedSymbol, step: int) -> dict[str, Any]:
        """A FULL ticker/24hr record at ``step`` (times left to fill; lock held)."""
        symbol = listed.symbol
        book = self._books[symbol]
        bid, bid_qty = from_units(book.bids.price(0)), from_units(book.bids.qtys[0])
        ask = from_units(book.asks.price(0))
        price = to_units(listed.price)
        period = TICKER_PERIOD_STEPS if listed.change_rate is None else WHOLE_TICKER_PERIOD_STEPS
        if listed.trades == 0:  # a symbol in BREAK: no trades, ids -1
            count, first_id, quote_volume, volume = 0, -1, 0, 0
        else:
            count = int(listed.trades * _wave(self.seed, symbol, step, period, 0.3)) + step
            first_id = 1_000_000 + step * 37
            quote_volume = int(to_units(listed.quote_volume) * _wave(self.seed, symbol + "/qv", step, period, 0.3))
            volume = quote_volume * UNIT // price
        return {
            "symbol": symbol,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": listed.price,
            "prevClosePrice": listed.price,
            "lastPrice": bid,
            "lastQty": bid_qty,
            "bidPrice": bid,
            "bidQty": bid_qty,
            "askPrice": ask,
            "askQty": from_units(book.asks.qtys[0]),
            "openPrice": listed.price,
            "highPrice": ask,
            "lowPrice": bid,
            "volume": from_units(volume),
            "quoteVolume": from_units(quote_volume),
            "openTime": 0,
            "closeTime": 0,
            "firstId": first_id,
            "lastId": first_id + count - 1 if count else -1,
            "count": count,
        }

    def depth(self, symbol: str, limit: int, lag: int = 0) -> dict[str, Any]:
        """The depth body: the best ``limit`` levels of each side and the
        book's update id; ``lag`` changes ago, when given (as far back as
        the history kept goes)."""
        with self.lock:
            book = self._book(symbol)
            if lag:
                update_id, bid_levels, ask_levels = book.undone(lag)
                bids = sorted(bid_levels.items(), reverse=True)[:limit]
                asks = sorted(ask_levels.items())[:limit]
            else:
                update_id, bids, asks = book.update_id, book.bids.levels(limit), book.asks.levels(limit)
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


# The MINI ticker/24hr record's fields before lastPrice, which it has last.
_MINI_TICKER = (
    "symbol", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume", "openTime", "closeTime", "firstId",
    "lastId", "count",
)  # fmt: skip
