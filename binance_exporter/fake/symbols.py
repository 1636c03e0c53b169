"""The simulated market's symbols and their reference values: the listed
ones (``LISTED_SYMBOLS``, the traps real data holds), synthetic ones for
long top lists, about the whole of Binance's spot market
(``whole_market``), and symbols listed at run time (``new_listing``).
Prices and quantities are integers of 1e-8 units (``to_units``), written
as Binance writes them (``from_units``)."""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, replace
from typing import NamedTuple, Optional

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
class ListedSymbol:  # pylint: disable=too-many-instance-attributes  # one attribute per column of the listing
    """A symbol of the simulated market and its reference values.

    ``change_rate`` None: the book changes at every step (the default
    market); a probability: it changes at a step with that probability,
    and ``trade_rate`` is the probability that a step makes trades (the
    whole market)."""

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
    change_rate: Optional[float] = None
    trade_rate: float = 0.0


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


# The whole market

# The whole market's TRADING symbols (and about 130 more in BREAK or HALT:
# some 1,630 in all, as Binance's 1,695 of 2021): at every 100 ms step of
# --peak, 15,000 depth events a second.
WHOLE_MARKET_TRADING = 1500

# The quote assets of the whole market. Binance's exchangeInfo of 2021-10-12
# lists 1,695 symbols (1,262 TRADING, 433 BREAK) quoted in BTC 357, USDT 342,
# BUSD 266, BNB 234, ETH 171, USDC 39, EUR 34, TRY 28, BRL 25, BIDR 22, AUD 19,
# GBP 18, ... Since then FDUSD has taken BUSD's place, whose pairs went to
# BREAK. Per asset: its price in USD, how likely a coin among the first
# ranks is quoted in it, how fast that falls with the coin's rank (a power),
# the share of a coin's volume its pair takes, and the share of its pairs in
# BREAK. Generated from this, 1,500 symbols are about 28 % USDT-quoted, 16 %
# BTC, 13 % BNB, 11 % ETH, 7 % FDUSD, 5 % BUSD, 4 % USDC, EUR and TRY, and
# ten more assets; 10 % are in BREAK.
_QUOTES = """
quote  usd_price  listed  falloff  volume_share  breaks
USDT   1          0.98    0.00     1.00          0.02
BTC    67000      1.00    0.10     0.12          0.06
FDUSD  1          0.90    0.55     0.30          0.01
BNB    590        0.90    0.25     0.04          0.10
ETH    3400       0.80    0.30     0.06          0.08
BUSD   1          0.60    0.50     0.00          0.95
USDC   1          0.60    0.60     0.08          0.02
TRY    0.029      0.50    0.60     0.08          0.02
EUR    1.08       0.45    0.55     0.03          0.04
BRL    0.18       0.25    0.55     0.02          0.04
JPY    0.0066     0.20    0.70     0.01          0.00
TUSD   1          0.20    0.60     0.01          0.40
GBP    1.27       0.10    0.60     0.01          0.10
AUD    0.66       0.10    0.60     0.01          0.10
PLN    0.25       0.10    0.70     0.01          0.00
ARS    0.0011     0.10    0.70     0.01          0.00
ZAR    0.055      0.05    0.70     0.01          0.10
UAH    0.024      0.05    0.70     0.01          0.10
IDR    0.000062   0.05    0.70     0.01          0.20
DAI    1          0.08    0.70     0.01          0.20
"""


class QuoteAsset(NamedTuple):
    """A quote asset of the whole market (see ``_QUOTES``)."""

    name: str
    usd_price: float
    listed: float
    falloff: float
    volume_share: float
    breaks: float


QUOTE_ASSETS = tuple(
    QuoteAsset(row[0], *map(float, row[1:])) for row in (line.split() for line in _QUOTES.strip().splitlines()[1:])
)
_USD_PRICES = {asset.name: asset.usd_price for asset in QUOTE_ASSETS}

# A coin's price in USD: 10 to a normal power (the 24 h tickers of
# 2020-09-29 have last prices from 1e-8 to 1e8, most between 1e-6 and 10).
COIN_PRICE_LOG10, COIN_PRICE_SPREAD, MAX_COIN_PRICE = -0.6, 1.4, 20_000.0
# A pair is listed when its price in the quote asset is within these (a
# price of 100 ticks of 1e-8, DOGEBTC's kind, at the least).
MIN_PAIR_PRICE, MAX_PAIR_PRICE = 1e-6, 1e6
# 24 h volume in USD of the coin of rank r (the listed symbols' coins are
# the first 15): a power law, as real volumes are, with lognormal noise.
TOP_COIN_VOLUME, VOLUME_POWER, FIRST_RANK = 75e6, 1.5, 16
# Trades in 24 h by 24 h volume: BTCUSDT's 2.1 million for 1.25 billion USD,
# and fewer trades per dollar the busier the pair.
TRADES_AT, VOLUME_AT, TRADES_POWER = 2.1e6, 1.25e9, 0.8
# Book changes per step (the share of 100 ms ticks with a depth event): a
# power of the trade count, from nearly every tick for the busiest (a
# million trades a day and more) to one every few minutes for the quietest.
BUSIEST_TRADES, CHANGE_POWER = 1e6, 0.5
MIN_CHANGE_RATE, MAX_CHANGE_RATE = 0.0005, 0.97
# Steps with trades: 1 to 3 aggregate trades of 1 to 5 trades each, BTCUSDT's
# 2.1 million trades a day at 10 steps a second in 45 % of its steps.
TRADES_PER_TRADING_STEP = 4.7e6
MAX_TRADE_RATE = 0.9
# Levels per side by the pair's place among the trading ones (0: the least
# traded, 1: the busiest): 10 ** (FEWEST + SPAN * place), from a few tens
# (a snapshot of limit 100 holds the whole side) to 2,500.
FEWEST_LEVELS_LOG10, LEVELS_SPAN_LOG10, MIN_LEVELS, MAX_LEVELS = 1.35, 2.05, 15, 2500


def pair_rates(trades: int) -> tuple[float, float]:
    """(change rate, trade rate) of a pair with ``trades`` trades in 24 h."""
    change_rate = (max(trades, 0) / BUSIEST_TRADES) ** CHANGE_POWER
    return (
        min(max(change_rate, MIN_CHANGE_RATE), MAX_CHANGE_RATE),
        min(max(trades, 0) / TRADES_PER_TRADING_STEP, MAX_TRADE_RATE),
    )


def _power_of_ten(exponent: int) -> str:
    """10 ** ``exponent`` (-8 to 0) as Binance writes a tick or step size."""
    return from_units(10 ** (exponent + 8))


def _pair(  # pylint: disable=too-many-arguments  # a pair's reference values, each drawn by the caller
    base: str, quote: QuoteAsset, status: str, usd_price: float, usd_volume: float, rng: random.Random
) -> ListedSymbol:
    """One generated pair: its price on a tick grid of 3 to 5 significant
    digits, a step size of about a dollar's share, its volume and trades."""
    price = usd_price / quote.usd_price
    tick_exponent = max(-8, min(0, math.floor(math.log10(price)) - rng.choice((3, 4, 4, 4, 5))))
    step_exponent = max(-8, min(0, -(math.floor(math.log10(usd_price)) + 1) + rng.choice((0, 0, 1))))
    tick = 10 ** (tick_exponent + 8)
    if status != "TRADING":
        usd_volume = 0.0
    trades = int(TRADES_AT * (usd_volume / VOLUME_AT) ** TRADES_POWER)
    change_rate, trade_rate = pair_rates(trades)
    return ListedSymbol(
        base + quote.name,
        base,
        quote.name,
        status,
        from_units(max(tick, round(price * UNIT / tick) * tick)),
        _power_of_ten(tick_exponent),
        _power_of_ten(step_exponent),
        from_units(int(usd_volume / quote.usd_price * UNIT)),
        trades,
        0,  # levels: given once every pair is known
        change_rate,
        trade_rate,
    )


def _coin_name(rng: random.Random, taken: set[str]) -> str:
    """A new base asset: 3 to 6 capital letters, a few with a 1000 in front."""
    while True:
        length = rng.choices((3, 4, 5, 6), (55, 30, 12, 3))[0]
        name = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(length))
        if rng.random() < 0.01:
            name = "1000" + name
        if name not in taken:
            taken.add(name)
            return name


def _with_levels(pairs: list[ListedSymbol], rng: random.Random) -> list[ListedSymbol]:
    """The pairs with their levels per side, by their place among the
    trading ones (see ``FEWEST_LEVELS_LOG10``)."""
    order = sorted(range(len(pairs)), key=lambda i: (pairs[i].trades, pairs[i].symbol))
    place = {index: rank / max(1, len(order) - 1) for rank, index in enumerate(order)}
    shaped = []
    for index, listed in enumerate(pairs):
        log10 = FEWEST_LEVELS_LOG10 + LEVELS_SPAN_LOG10 * place[index] + rng.gauss(0, 0.15)
        levels = min(max(int(10**log10), MIN_LEVELS), MAX_LEVELS)
        shaped.append(replace(listed, levels=999 if levels == 1000 else levels))  # 1000: DEEP_BOOK_LEVELS
    return shaped


class _Coin(NamedTuple):
    """A generated coin: its name, price in USD, 24 h volume in USD (all
    its pairs together) and the quote assets it is quoted in."""

    base: str
    usd_price: float
    volume: float
    quotes: list[QuoteAsset]


def _coin(rank: int, rng: random.Random, taken: set[str]) -> _Coin:
    """The coin of popularity ``rank`` (the first is ``FIRST_RANK``)."""
    base = _coin_name(rng, taken)
    usd_price = min(10 ** rng.gauss(COIN_PRICE_LOG10, COIN_PRICE_SPREAD), MAX_COIN_PRICE)
    volume = TOP_COIN_VOLUME * (rank / FIRST_RANK) ** -VOLUME_POWER * rng.lognormvariate(0, 1.0)
    quotes = [
        quote
        for quote in QUOTE_ASSETS
        if rng.random() < quote.listed * (rank / FIRST_RANK) ** -quote.falloff
        and MIN_PAIR_PRICE <= usd_price / quote.usd_price <= MAX_PAIR_PRICE
    ]
    return _Coin(base, usd_price, volume, quotes)


def whole_market(seed: int = 1, trading: int = WHOLE_MARKET_TRADING) -> tuple[ListedSymbol, ...]:
    """About the whole of Binance's spot market: the listed symbols (the
    traps) and generated ones, until ``trading`` of them are TRADING
    (about 10 % more are in BREAK); the same for the same seed. Coins are
    drawn by rank, each quoted in USDT and in more assets the more popular
    it is (``_QUOTES``); prices span many orders of magnitude, with tick
    and step sizes to match; 24 h volumes follow a power law of the rank,
    and so do trades, change and trade rates and the books' depths. Names
    are Binance's kind: base and quote asset, in capital letters and digits."""
    rng = random.Random(f"{seed}/whole-market")
    listed = [replace(s, change_rate=pair_rates(s.trades)[0], trade_rate=pair_rates(s.trades)[1])
              for s in LISTED_SYMBOLS]  # fmt: skip
    names = {s.symbol for s in listed}
    coins = {s.base for s in listed} | {quote.name for quote in QUOTE_ASSETS}
    pairs: list[ListedSymbol] = []
    short, rank = trading - sum(s.status == "TRADING" for s in listed), FIRST_RANK
    while short > 0:
        coin = _coin(rank, rng, coins)
        shares = sum(quote.volume_share for quote in coin.quotes) or 1.0
        for quote in coin.quotes:
            if coin.base + quote.name in names or short <= 0:
                continue
            names.add(coin.base + quote.name)
            status = "BREAK" if rng.random() < quote.breaks else "TRADING"
            volume = coin.volume * quote.volume_share / shares * rng.lognormvariate(0, 0.5)
            pairs.append(_pair(coin.base, quote, status, coin.usd_price, volume, rng))
            short -= status == "TRADING"
        rank += 1
    return tuple(listed) + tuple(_with_levels(pairs, rng))


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a symbol name, by the longest quote asset it ends
    with; ValueError when it ends with none."""
    quotes = sorted({s.quote for s in LISTED_SYMBOLS} | set(_USD_PRICES), key=len, reverse=True)
    for quote in quotes:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"{symbol} ends with no known quote asset: name its baseAsset and quoteAsset")


def new_listing(symbol: str, status: str, base: str, quote: str, price: Optional[str] = None) -> ListedSymbol:
    """A symbol listed at run time: ``price`` (an 8-decimal string; by
    default one drawn from the name) on a tick grid of 5 significant
    digits, the trades and volume of a pair new to the market (20,000
    trades, a million USD in 24 h), a book of 300 levels a side."""
    if price is None:
        draw = random.Random(f"{symbol}/listing")
        price = from_units(max(1, int(10 ** draw.uniform(-3, 3) / _USD_PRICES.get(quote, 1.0) * UNIT)))
    units = to_units(price)
    tick_exponent = max(-8, min(0, math.floor(math.log10(units / UNIT)) - 4))
    tick = 10 ** (tick_exponent + 8)
    usd_price = units / UNIT * _USD_PRICES.get(quote, 1.0)
    step_exponent = max(-8, min(0, -(math.floor(math.log10(usd_price)) + 1)))
    trades = 20_000
    change_rate, trade_rate = pair_rates(trades)
    return ListedSymbol(
        symbol,
        base,
        quote,
        status,
        from_units(max(tick, units // tick * tick)),
        _power_of_ten(tick_exponent),
        _power_of_ten(step_exponent),
        from_units(int(1e6 / _USD_PRICES.get(quote, 1.0) * UNIT)),
        trades,
        300,
        change_rate,
        trade_rate,
    )
