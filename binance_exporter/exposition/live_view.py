"""The live view's data: what ``/`` and ``/book/<SYMBOL>`` show, sent to
browsers as server-sent events.

Each page follows one topic: ``overview`` (the answers and the exporter's
health) or ``book/<SYMBOL>`` (one live book). ``LiveEvents`` holds the
latest event of each topic someone watches, and who watches what; the
HTTP server sends each client the latest event of its topic, never a
backlog. ``LivePublisher`` makes those events on a thread of its own, at
most every ``PUBLISH_INTERVAL`` seconds, and only for watched topics: the
overview when a cycle published a new snapshot (and every second, for
the ages it shows), a book when its version changed. Each event is
rendered once, however many clients watch it, and the events take at
most ``MAX_CPU_SHARE`` of a core.

Every number is a string: the exact decimal the printed report would
show (``format_decimal``), never a float.
"""

from __future__ import annotations

import decimal
import functools
import logging
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any, Callable, Optional

import orjson

from binance_exporter import __version__
from binance_exporter.cycle.snapshot import LiveBook, Snapshot
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import (
    BY_QUOTE_VOLUME,
    BY_TRADE_COUNT,
    EXACT,
    BookTop,
    PriceLevel,
    TopList,
    format_decimal,
    format_utc,
    spread,
)
from binance_exporter.market.microstructure import IMBALANCE_LEVELS, BookView, imbalance, micro_price, mid_price

logger = logging.getLogger(__name__)

OVERVIEW = "overview"
BOOK_TOPIC_PREFIX = "book/"
LADDER_LEVELS = 20  # levels a side in a book page's ladder
CHART_LEVELS = 100  # levels a side in its depth chart
CHART_SCALE = 10_000  # positions along each axis of the depth chart
PUBLISH_INTERVAL = 0.1  # a book's event at most 10 times a second
OVERVIEW_REFRESH = 1.0  # the overview's ages are at most this old
HUB_TIMEOUT = 1.0  # for the streams' loop to copy the watched books
# The share of a core the live view's events may take: past it in a pass,
# the books not yet made wait for the next pass (those waiting longest go
# first), so however many books are watched, the books, the update cycle
# and /metrics keep the rest.
MAX_CPU_SHARE = 0.1
# Books read from the live books a pass: at first, and at most.
FIRST_BATCH = 16
MAX_BATCH = 1024

BooksReader = Callable[[tuple[str, ...], int, dict[str, tuple], float], dict[str, Optional[LiveBook]]]


def book_topic(symbol: str) -> str:
    """The topic of ``symbol``'s live book."""
    return BOOK_TOPIC_PREFIX + symbol


# A book's prices and quantities change little from one event to the next:
# their text is kept rather than made again for every event.
_text = functools.lru_cache(maxsize=16384)(format_decimal)


def _number(value: Optional[Decimal]) -> Optional[str]:
    return None if value is None else _text(value)


def _age(now: float, then: Optional[float]) -> Optional[float]:
    return None if then is None else round(max(0.0, now - then), 3)


def overview_data(snapshot: Snapshot, now: float, ready: tuple[bool, str], source: str) -> dict[str, Any]:
    """What ``/`` shows: every top list with its 24 h figures, Q3's
    notionals, Q4's spreads and Q5's changes as this snapshot's cycle read
    them (None where it could not), each book's sync state, and the
    exporter's health."""
    api = snapshot.api
    return {
        "time": format_utc(now),
        "version": __version__,
        "source": source,
        "lists": [_list_data(snapshot, top_list) for top_list in snapshot.top_lists],
        "books": [{"symbol": book.symbol, "in_sync": book.in_sync} for book in snapshot.books],
        "health": {
            "up": snapshot.up,
            "ready": ready[0],
            "ready_text": ready[1],
            "last_update": format_utc(snapshot.last_success) if snapshot.last_success is not None else None,
            "last_update_age": _age(now, snapshot.last_success),
            "update_interval": snapshot.update_interval,
            "cycle_duration": None if snapshot.cycle_duration is None else round(snapshot.cycle_duration, 3),
            "books_in_sync": sum(book.in_sync for book in snapshot.books),
            "books": len(snapshot.books),
            "weight_used": api.weight_used,
            "weight_budget": api.weight_budget,
            "paused_until": format_utc(api.paused_until) if api.paused_until is not None else None,
        },
    }


def _list_data(snapshot: Snapshot, top_list: TopList) -> dict[str, Any]:
    """One top list: each symbol's rank and 24 h figures, whether it has a
    live book in sync (None: no live book), and its Q3 or its Q4 and Q5."""
    ranking = snapshot.ranking(top_list)
    notionals, spreads = snapshot.notionals_this_cycle(), snapshot.spreads_this_cycle()
    live = {book.symbol: book.in_sync for book in snapshot.books}
    rows = []
    for rank, ticker in enumerate(ranking.tickers if ranking else (), start=1):
        row: dict[str, Any] = {
            "rank": rank,
            "symbol": ticker.symbol,
            "quote_volume": format_decimal(ticker.quote_volume),
            "volume": format_decimal(ticker.volume),
            "trades": str(ticker.trade_count),
            "in_sync": live.get(ticker.symbol),
        }
        if top_list.name == BY_QUOTE_VOLUME:
            notional = notionals.get(ticker.symbol)
            row["bid_notional"] = _number(notional.bid if notional else None)
            row["ask_notional"] = _number(notional.ask if notional else None)
        elif top_list.name == BY_TRADE_COUNT:
            reading = spreads.get(ticker.symbol)
            row["spread"] = _number(reading.spread if reading else None)
            row["spread_change"] = _number(reading.delta if reading else None)
        rows.append(row)
    return {"ranking": top_list.name, "quote_asset": top_list.quote_asset, "known": ranking is not None, "rows": rows}


def _ladder(levels: tuple[PriceLevel, ...]) -> list[list[str]]:
    """Each of a side's best ``LADDER_LEVELS``: price, quantity, notional."""
    with decimal.localcontext(EXACT):
        return [[_text(p), _text(q), _text(p * q)] for p, q in levels[:LADDER_LEVELS]]


def _depth_chart(view: BookView) -> dict[str, Any]:
    """The depth chart of each side's best ``CHART_LEVELS``: its points, at
    each level (price, the notional of it and every better level), as
    positions from 0 to ``CHART_SCALE`` along each axis — the price axis
    from the deepest bid shown to the deepest ask, the notional axis up to
    the larger side's total; and what the chart writes, exact: the deepest
    prices and the larger total."""
    sides = {"bids": view.bids[:CHART_LEVELS], "asks": view.asks[:CHART_LEVELS]}
    points = {}
    for name, levels in sides.items():
        total, side = 0.0, []
        for price, qty in levels:
            total += float(price) * float(qty)
            side.append((float(price), total))
        points[name] = side
    edges = [levels[-1][0] for levels in sides.values() if levels]
    low = float(min(edges))
    x_scale = CHART_SCALE / ((float(max(edges)) - low) or 1.0)
    y_scale = CHART_SCALE / (max((side[-1][1] for side in points.values() if side), default=0.0) or 1.0)
    with decimal.localcontext(EXACT):
        totals = [sum((p * q for p, q in levels), Decimal(0)) for levels in sides.values()]
    chart: dict[str, Any] = {
        name: [[int((x - low) * x_scale + 0.5), int(y * y_scale + 0.5)] for x, y in side]
        for name, side in points.items()
    }
    return chart | {"low": _text(min(edges)), "high": _text(max(edges)), "total": _text(max(totals))}


def book_data(symbol: str, live: Optional[LiveBook], now: float) -> dict[str, Any]:
    """What ``/book/<SYMBOL>`` shows: the book's state; while it is in
    sync, its ladder, spread, mid, micro price, imbalances and depth
    chart (all None otherwise: never a book not known to be right); and
    the latest trades, newest first."""
    if live is None:
        return {"symbol": symbol, "tracked": False}
    state, view = live.state, live.view
    data: dict[str, Any] = {
        "symbol": symbol,
        "time": now,  # when the event was made, Unix seconds
        "tracked": True,
        "in_sync": view is not None,
        "resyncs": dict(state.resyncs),
        "last_event_age": _age(now, state.last_event_time),
        "levels": {"bid": state.bid_levels, "ask": state.ask_levels},
        "trades": [[t.time_ms, t.taker_side, _text(t.price), _text(t.qty)] for t in reversed(live.trades)],
    }
    if view is None:
        return data | dict.fromkeys(("bids", "asks", "spread", "mid", "micro", "imbalance", "chart"))
    return data | {
        "bids": _ladder(view.bids),
        "asks": _ladder(view.asks),
        "spread": _number(_spread(view)),
        "mid": _number(mid_price(view)),
        "micro": _number(micro_price(view)),
        "imbalance": {str(n): _number(imbalance(view, n)) for n in IMBALANCE_LEVELS},
        "chart": _depth_chart(view) if view.bids or view.asks else None,
    }


def _spread(view: BookView) -> Optional[Decimal]:
    if not view.bids or not view.asks:
        return None
    (bid, bid_qty), (ask, ask_qty) = view.bids[0], view.asks[0]
    return spread(BookTop("", bid, bid_qty, ask, ask_qty))


def event(data: dict[str, Any]) -> bytes:
    """``data`` as one server-sent event."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


class LiveEvents:
    """The latest event of each watched topic, and how many clients watch
    each. Thread-safe: the HTTP server watches and reads, the publisher
    publishes, then calls ``on_publish`` (the server's wake-up) once for
    all it published."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._viewers: Counter[str] = Counter()
        self._latest: dict[str, tuple[int, bytes]] = {}
        self._versions = 0
        self.on_publish: Callable[[], None] = lambda: None

    def watch(self, topic: str) -> None:
        """One more client follows ``topic``."""
        with self._lock:
            self._viewers[topic] += 1

    def unwatch(self, topic: str) -> None:
        """One client fewer follows ``topic``; its event is dropped with its last viewer."""
        with self._lock:
            self._viewers[topic] -= 1
            if self._viewers[topic] <= 0:
                del self._viewers[topic]
                self._latest.pop(topic, None)

    def watched(self) -> set[str]:
        """The topics someone follows."""
        with self._lock:
            return set(self._viewers)

    def publish(self, topic: str, data: bytes) -> None:
        """Makes ``data`` the latest event of ``topic``, if it is watched."""
        with self._lock:
            if topic not in self._viewers:
                return
            self._versions += 1
            self._latest[topic] = (self._versions, data)

    @property
    def last_version(self) -> int:
        """The version of the latest event published, of any topic."""
        return self._versions

    def latest(self, topic: str) -> Optional[tuple[int, bytes]]:
        """(version, event) of the latest event of ``topic``; versions only grow."""
        return self._latest.get(topic)


class LivePublisher:  # pylint: disable=too-many-instance-attributes  # its sources, clocks, what it showed, its thread
    """Makes the watched topics' events, every ``PUBLISH_INTERVAL`` seconds
    on its own thread once started, or one pass at a time with
    ``publish_once`` (tests)."""

    def __init__(  # pylint: disable=too-many-arguments
        self,
        events: LiveEvents,
        current: Callable[[], Snapshot],
        ready: Callable[[], tuple[bool, str]],
        books: Optional[BooksReader],
        source: str,
        clock: Callable[[], float] = time.time,
        cpu_clock: Callable[[], float] = time.thread_time,
    ):
        self.events = events
        self._current, self._ready, self._books, self._source, self._clock = current, ready, books, source, clock
        self._cpu_clock = cpu_clock
        self._passes = 0
        self._read_in: dict[str, int] = {}  # symbol: the pass its book was last read (and made if it changed) in
        self._batch = FIRST_BATCH  # books read a pass: as many as a pass's share of a core can make
        self._overview: tuple[Optional[Snapshot], float] = (None, 0.0)  # the snapshot shown, and when
        self._known: dict[str, tuple] = {}  # symbol: the version of its book shown
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-view", daemon=True)

    def start(self) -> "LivePublisher":
        """Publishes on a thread of its own until ``stop``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops publishing."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(PUBLISH_INTERVAL):
            try:
                self.publish_once()
            except Exception:  # pylint: disable=broad-exception-caught  # a bug costs one pass, never the view
                logger.exception("cannot make the live view's events")

    def publish_once(self) -> None:
        """Makes the event of each watched topic that changed, within the
        pass's share of a core (``MAX_CPU_SHARE``)."""
        watched = self.events.watched()
        now, started = self._clock(), self._cpu_clock()
        self._passes += 1
        before = self.events.last_version
        try:
            self._publish(watched, now, started)
        finally:
            if self.events.last_version != before:
                self.events.on_publish()  # once a pass: whatever changed is sent in one go

    def _publish(self, watched: set[str], now: float, started: float) -> None:
        if OVERVIEW in watched:
            self._publish_overview(now)
        symbols = tuple(sorted(t.removeprefix(BOOK_TOPIC_PREFIX) for t in watched if t.startswith(BOOK_TOPIC_PREFIX)))
        self._known = {s: v for s, v in self._known.items() if s in symbols and self.events.latest(book_topic(s))}
        self._read_in = {s: n for s, n in self._read_in.items() if s in symbols}
        # The books read longest ago first, as many as were made in time last pass (or twice that).
        wanted = sorted(symbols, key=lambda s: self._read_in.get(s, 0))[: self._batch]
        if not wanted:
            return
        if self._books is None:  # no live books (REST mode)
            found: dict[str, Optional[LiveBook]] = {symbol: None for symbol in wanted}
        else:
            try:
                found = self._books(tuple(wanted), CHART_LEVELS, self._known, HUB_TIMEOUT)
            except MarketDataError as exc:
                logger.debug("no live books for the live view: %s", exc)
                return
        budget, made = MAX_CPU_SHARE * PUBLISH_INTERVAL, 0
        for symbol in wanted:
            if symbol in found:  # changed (else: nothing to make)
                if self._cpu_clock() - started >= budget:
                    self._batch = max(1, made)  # the rest next pass, first: their events are the latest state
                    return
                live = found[symbol]
                version = live.version if live is not None else ("untracked",)
                if self._known.get(symbol) != version:
                    self.events.publish(book_topic(symbol), event(book_data(symbol, live, now)))
                    self._known[symbol] = version
                    made += 1
                    time.sleep(0)  # lets a thread waiting for the interpreter (a scrape) in at once
            self._read_in[symbol] = self._passes
        self._batch = min(MAX_BATCH, 2 * self._batch)

    def _publish_overview(self, now: float) -> None:
        snapshot = self._current()
        shown, at = self._overview
        if snapshot is shown and now - at < OVERVIEW_REFRESH and self.events.latest(OVERVIEW):
            return
        self.events.publish(OVERVIEW, event(overview_data(snapshot, now, self._ready(), self._source)))
        self._overview = (snapshot, now)
