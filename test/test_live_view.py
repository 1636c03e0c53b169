"""The live view's data (what / and /book/<SYMBOL> show), its events and
who watches them, and the publisher that makes them: with hand-made
snapshots and books, no browser."""

from dataclasses import replace
from decimal import Decimal as D

import orjson

from binance_exporter.cycle.snapshot import ApiCounts, BookState, LiveBook
from binance_exporter.errors import MarketDataError
from binance_exporter.exposition.live_view import (
    CHART_LEVELS,
    CHART_SCALE,
    LADDER_LEVELS,
    MAX_CPU_SHARE,
    PUBLISH_INTERVAL,
    OVERVIEW,
    LiveEvents,
    LivePublisher,
    book_data,
    book_topic,
    overview_data,
)
from binance_exporter.market.microstructure import AggTrade, BookView

from .helpers import FakeClock, wait_for
from .test_collector import EVERY_FAMILY, SNAPSHOT

READY = (True, "ok: last successful update 0.5 s ago")


def level_rows(count, start, step):
    return tuple((D(start) + D(step) * i, D("0.5") + D(i)) for i in range(count))


BIDS = level_rows(150, "0.05100", "-0.00001")
ASKS = level_rows(150, "0.05102", "0.00001")
TRADES = (
    AggTrade(7, D("0.05101"), D("0.2"), 10, 11, 1795236344000, False),
    AggTrade(8, D("0.05100"), D("1.25"), 12, 12, 1795236345500, True),
)
STATE = BookState("ETHBTC", True, 150, 150, 1795236345.0, (("gap", 2),))
LIVE = LiveBook((1, 2, 8, 2), STATE, BookView(BIDS[:CHART_LEVELS], ASKS[:CHART_LEVELS]), TRADES)


def parse(event_bytes):
    assert event_bytes.startswith(b"data: ") and event_bytes.endswith(b"\n\n")
    return orjson.loads(event_bytes[6:])


def test_the_overview_shows_every_list_with_its_figures_and_the_cycles_own_values():
    data = overview_data(EVERY_FAMILY, 1795236345.0, READY, "stream")
    quote_volume, trade_count = data["lists"][0], data["lists"][1]
    assert (quote_volume["ranking"], quote_volume["quote_asset"]) == ("quote_volume", "BTC")
    eth, wbtc = quote_volume["rows"][0], quote_volume["rows"][1]
    assert eth == {
        "rank": 1,
        "symbol": "ETHBTC",
        "quote_volume": "8993.32796111",
        "volume": "271029.283",
        "trades": "122239",
        "in_sync": True,  # a live book, in sync
        "bid_notional": "123.45678901",
        "ask_notional": "98.7",
    }
    # WBTCBTC's notional is from an earlier cycle: not shown. It has no live book.
    assert (wbtc["bid_notional"], wbtc["ask_notional"], wbtc["in_sync"]) == (None, None, None)
    btc, pepe = trade_count["rows"][0], trade_count["rows"][1]
    assert (btc["spread"], btc["spread_change"], btc["in_sync"]) == ("0.01", "0.02", False)
    assert (pepe["spread"], pepe["spread_change"]) == ("0.00000001", None)  # a first value has no change
    assert data["books"] == [{"symbol": "ETHBTC", "in_sync": True}, {"symbol": "BTCUSDT", "in_sync": False}]
    assert data["health"] == {
        "up": True,
        "ready": True,
        "ready_text": READY[1],
        "last_update": "2026-11-21T04:45:44Z",
        "last_update_age": 0.5,
        "update_interval": 10.0,
        "cycle_duration": 0.125,
        "books_in_sync": 1,
        "books": 2,
        "weight_used": 287,
        "weight_budget": 1200,
        "paused_until": None,
    }


def test_the_overview_says_when_a_ranking_is_not_known_and_when_requests_are_paused():
    paused = replace(SNAPSHOT, rankings=(), api=ApiCounts(paused_until=1795236400.0), last_success=None)
    data = overview_data(paused, 1795236345.0, (False, "no successful update yet"), "rest")
    assert [(top["known"], top["rows"]) for top in data["lists"]] == [(False, []), (False, [])]
    assert data["health"]["paused_until"] == "2026-11-21T04:46:40Z"
    assert (data["health"]["last_update"], data["health"]["last_update_age"]) == (None, None)
    assert data["source"] == "rest" and data["books"] == []


def test_a_book_in_sync_shows_its_ladder_microstructure_chart_and_trades_exactly():
    data = book_data("ETHBTC", LIVE, 1795236345.25)
    assert (data["tracked"], data["in_sync"], data["resyncs"], data["last_event_age"]) == (True, True, {"gap": 2}, 0.25)
    assert data["time"] == 1795236345.25
    assert len(data["bids"]) == len(data["asks"]) == LADDER_LEVELS
    assert data["bids"][0] == ["0.051", "0.5", "0.0255"]
    assert data["asks"][1] == ["0.05103", "1.5", "0.076545"]
    assert data["spread"] == "0.00002"
    assert data["mid"] == "0.05101"
    assert data["micro"] == "0.05101"  # equal quantities at the top
    assert data["imbalance"] == {"1": "0", "5": "0", "20": "0"}
    chart = data["chart"]
    assert len(chart["bids"]) == len(chart["asks"]) == CHART_LEVELS
    bid_total = sum(price * qty for price, qty in BIDS[:CHART_LEVELS])
    ask_total = sum(price * qty for price, qty in ASKS[:CHART_LEVELS])
    assert (chart["low"], chart["high"], D(chart["total"])) == ("0.05001", "0.05201", max(bid_total, ask_total))
    # Positions from 0 to CHART_SCALE: the deepest bid at 0, the deepest ask at the end, the larger total at the top.
    assert chart["bids"][-1][0] == 0 and chart["asks"][-1] == [CHART_SCALE, CHART_SCALE]
    assert chart["bids"][0] == [round(CHART_SCALE * 0.99 / 2), round(CHART_SCALE * float(D("0.0255") / ask_total))]
    assert [x for x, _ in chart["bids"]] == sorted((x for x, _ in chart["bids"]), reverse=True)
    assert [y for _, y in chart["asks"]] == sorted(y for _, y in chart["asks"])  # cumulative
    assert data["trades"] == [  # newest first
        [1795236345500, "sell", "0.051", "1.25"],
        [1795236344000, "buy", "0.05101", "0.2"],
    ]


def test_a_book_out_of_sync_shows_no_book_value_and_a_symbol_no_longer_tracked_says_so():
    resyncing = LiveBook((None, 3, 8, 2), replace(STATE, in_sync=False, bid_levels=0, ask_levels=0), None, TRADES)
    data = book_data("ETHBTC", resyncing, 1795236346.0)
    assert data["in_sync"] is False
    for key in ("bids", "asks", "spread", "mid", "micro", "imbalance", "chart"):
        assert data[key] is None
    assert len(data["trades"]) == 2  # trades are counted exactly whatever the book's state
    assert book_data("ETHBTC", None, 0.0) == {"symbol": "ETHBTC", "tracked": False}


def test_imbalance_past_a_horizon_is_not_shown():
    short = LiveBook((1,), STATE, BookView(BIDS[:3], ASKS[:3], bid_horizon=D("0.04"), ask_horizon=D("0.06")), ())
    assert book_data("ETHBTC", short, 0.0)["imbalance"] == {"1": "0", "5": None, "20": None}


def test_events_are_kept_for_watched_topics_only_and_dropped_with_their_last_viewer():
    events = LiveEvents()
    events.publish(OVERVIEW, b"data: 1\n\n")
    assert events.latest(OVERVIEW) is None and events.last_version == 0  # nobody watches
    events.watch(OVERVIEW)
    events.watch(OVERVIEW)
    events.publish(OVERVIEW, b"data: 2\n\n")
    events.publish(OVERVIEW, b"data: 3\n\n")
    version, data = events.latest(OVERVIEW)
    assert data == b"data: 3\n\n" and events.last_version == version == 2
    events.unwatch(OVERVIEW)
    assert events.latest(OVERVIEW) == (version, data)  # one viewer left
    events.unwatch(OVERVIEW)
    assert events.latest(OVERVIEW) is None and events.watched() == set()


class Books:
    """A hub's live_books: the books given, each read call recorded."""

    def __init__(self, books):
        self.books = books
        self.calls = []

    def __call__(self, symbols, levels, known, timeout):
        self.calls.append((symbols, levels, dict(known), timeout))
        return {s: b for s, b in self.books.items() if s in symbols and (b is None or known.get(s) != b.version)}


def test_the_publisher_makes_events_of_watched_topics_only_and_again_only_when_they_change():
    events, clock, wakes = LiveEvents(), FakeClock(1795236345.0), []
    events.on_publish = lambda: wakes.append(events.last_version)
    books = Books({"ETHBTC": LIVE, "GONE": None})
    state = {"snapshot": SNAPSHOT}
    publisher = LivePublisher(events, lambda: state["snapshot"], lambda: READY, books, "stream", clock)
    publisher.publish_once()
    assert not books.calls  # nothing watched, nothing read
    events.watch(OVERVIEW)
    events.watch(book_topic("ETHBTC"))
    events.watch(book_topic("GONE"))
    publisher.publish_once()
    versions = {topic: events.latest(topic)[0] for topic in events.watched()}
    assert wakes == [3]  # the server woken once for the three events
    assert parse(events.latest(book_topic("ETHBTC"))[1])["mid"] == "0.05101"
    assert parse(events.latest(book_topic("GONE"))[1]) == {"symbol": "GONE", "tracked": False}
    assert parse(events.latest(OVERVIEW)[1])["lists"][0]["rows"][0]["symbol"] == "ETHBTC"
    clock.advance(0.1)
    publisher.publish_once()  # nothing changed
    assert {topic: events.latest(topic)[0] for topic in events.watched()} == versions and wakes == [3]
    assert books.calls[-1][2]["ETHBTC"] == LIVE.version  # the hub is told what is shown already
    books.books["ETHBTC"] = LIVE._replace(version=(2, 2, 8, 2))
    state["snapshot"] = replace(SNAPSHOT, cycle=3)
    publisher.publish_once()
    assert events.latest(book_topic("ETHBTC"))[0] > versions[book_topic("ETHBTC")]
    assert events.latest(OVERVIEW)[0] > versions[OVERVIEW]
    assert events.latest(book_topic("GONE"))[0] == versions[book_topic("GONE")]
    overview_version = events.latest(OVERVIEW)[0]
    clock.advance(1.0)
    publisher.publish_once()  # the same snapshot, but its ages moved on
    assert events.latest(OVERVIEW)[0] > overview_version


def test_a_book_watched_again_is_published_again_and_rest_mode_has_no_books():
    events = LiveEvents()
    books = Books({"ETHBTC": LIVE})
    publisher = LivePublisher(events, lambda: SNAPSHOT, lambda: READY, books, "stream", FakeClock())
    events.watch(book_topic("ETHBTC"))
    publisher.publish_once()
    events.unwatch(book_topic("ETHBTC"))
    events.watch(book_topic("ETHBTC"))
    publisher.publish_once()
    assert parse(events.latest(book_topic("ETHBTC"))[1])["tracked"] is True
    rest = LivePublisher(events, lambda: SNAPSHOT, lambda: READY, None, "rest", FakeClock())
    events.watch(book_topic("BTCUSDT"))
    rest.publish_once()
    assert parse(events.latest(book_topic("BTCUSDT"))[1]) == {"symbol": "BTCUSDT", "tracked": False}


def test_a_late_streams_loop_costs_one_pass_and_a_failing_pass_never_stops_the_publisher(caplog):
    events = LiveEvents()
    calls = []

    def late(*_):
        calls.append(1)
        raise MarketDataError("the streams' loop did not answer in time", "late")

    events.watch(book_topic("ETHBTC"))
    LivePublisher(events, lambda: SNAPSHOT, lambda: READY, late, "stream").publish_once()
    assert calls and events.latest(book_topic("ETHBTC")) is None

    def broken():
        raise RuntimeError("a bug")

    events.watch(OVERVIEW)
    publisher = LivePublisher(events, broken, lambda: READY, late, "stream").start()
    try:
        wait_for(lambda: caplog.text.count("cannot make the live view's events") >= 2)
    finally:
        publisher.stop()


def test_past_its_share_of_a_core_a_pass_leaves_the_other_books_to_the_next_waiting_longest_first():
    events, ticks = LiveEvents(), iter(range(10_000))
    books = Books({symbol: LIVE._replace(state=replace(STATE, symbol=symbol)) for symbol in ("A", "B", "C")})
    # Each reading of the CPU clock is 0.6 budgets later: one book a pass fits in the budget.
    cpu = lambda: 0.6 * MAX_CPU_SHARE * PUBLISH_INTERVAL * next(ticks)  # noqa: E731  # pylint: disable=unnecessary-lambda-assignment
    publisher = LivePublisher(events, lambda: SNAPSHOT, lambda: READY, books, "stream", FakeClock(), cpu)
    for symbol in ("A", "B", "C"):
        events.watch(book_topic(symbol))
    published = []
    for _ in range(3):
        publisher.publish_once()
        published.append({s for s in ("A", "B", "C") if events.latest(book_topic(s))})
    assert published == [{"A"}, {"A", "B"}, {"A", "B", "C"}]
    books.books["C"] = books.books["C"]._replace(version=(9,))
    books.books["B"] = books.books["B"]._replace(version=(9,))
    before = {s: events.latest(book_topic(s))[0] for s in ("B", "C")}
    publisher.publish_once()  # B and C changed: B, made longer ago, goes first
    assert events.latest(book_topic("B"))[0] > before["B"] and events.latest(book_topic("C"))[0] == before["C"]
    publisher.publish_once()
    assert events.latest(book_topic("C"))[0] > before["C"]
