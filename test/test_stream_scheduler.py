"""The update cycle in stream mode, driven directly: rankings from the live
24 h table, readings from the live books, which books are tracked, and
when the snapshot is up. The streams are a stand-in that hands over what
a test sets; REST is the fake Binance."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal as D

import pytest

from binance_exporter.binance.rest_client import BinanceClient
from binance_exporter.binance.request_gate import RequestGate
from binance_exporter.cycle.scheduler import Schedule
from binance_exporter.binance.streams import BookReading
from binance_exporter.cycle.snapshot import BookState, StreamCounts, TradeFlow
from binance_exporter.cycle import stream_scheduler as stream_scheduler_module
from binance_exporter.cycle.stream_scheduler import TICKER_SILENCE, StreamScheduler
from binance_exporter.errors import MarketDataError
from binance_exporter.market.definitions import WHOLE, BookTop, Shard, Ticker24h
from binance_exporter.market.microstructure import BookView, SideFlow

from .helpers import FakeClock

@pytest.fixture(name="clock")
def fake_clock():
    return FakeClock(6000.0)


@pytest.fixture
def sim_clock(clock):
    """The fake Binance shares the cycle's clock: its weight minute does not
    roll over between two requests of a test."""
    return clock


BIDS = ((D("100"), D("2")), (D("99"), D("1")))
ASKS = ((D("101"), D("3")),)


class LiveBooks:
    """Stands in for ``StreamHub``: the books and table a test sets."""

    def __init__(self, clock):
        self.clock = clock
        self.tracked: tuple[str, ...] = ()
        self.in_sync: set[str] = set()
        self.table: dict[str, Ticker24h] = {}
        self.streamed_at = None
        self.late = False
        self.stopped = False
        self.flows: dict[str, TradeFlow] = {}
        self.cycles: list = []  # what each reading was told of its cycle
        self.tops: dict[str, BookTop] = {}  # from @bookTicker

    def track(self, symbols):
        self.tracked = tuple(symbols)

    def book_readings(self, timeout, cycle=None):
        assert timeout > 0
        self.cycles.append(cycle)
        if self.late:
            raise MarketDataError("the streams' loop did not answer in time", "late")
        return {
            s: BookReading(
                BookState(s, s in self.in_sync, 2, 1, 1.5, ()),
                BookView(BIDS, ASKS) if s in self.in_sync else None,
                self.flows.get(s),
                self.tops.get(s),
            )
            for s in self.tracked
        }

    def seed_tickers(self, tickers):
        self.table = {t.symbol: t for t in tickers}

    def tickers(self):
        return self.streamed_at, list(self.table.values())

    def counts(self):
        return StreamCounts(connections=1)

    def stop(self):
        self.stopped = True


def stream_scheduler(simulator, clock, symbols=(), shard=WHOLE):
    client = BinanceClient(simulator.url, timeout=5.0, gate=RequestGate(clock=clock), sleep=lambda _: None)
    books = LiveBooks(clock)
    scheduler = StreamScheduler(client, books, Schedule(10, 60), symbols, clock=clock, wall_clock=clock, shard=shard)
    return scheduler, books


def test_every_tracked_book_in_sync_answers_q3_to_q5_and_the_snapshot_is_up(simulator, clock):
    scheduler, books = stream_scheduler(simulator, clock, ("BNBUSDT",))
    first = scheduler.run_cycle()
    assert not first.up and len(books.tracked) == 11 and "BNBUSDT" in books.tracked
    assert [state.in_sync for state in first.books] == [False] * 11 and first.streams.connections == 1
    books.in_sync = set(books.tracked)
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    assert snapshot.up
    notionals = {reading.symbol: (reading.bid, reading.ask) for reading in snapshot.notionals}
    spreads = {reading.symbol: reading.spread for reading in snapshot.spreads}
    assert set(notionals) == set(spreads) == set(books.tracked)  # Q3, Q4 and Q5 for every live book
    assert notionals["BNBUSDT"] == (D("299"), D("303")) and spreads["ETHBTC"] == D(1)
    assert simulator.stats()["requests"] == {"/api/v3/exchangeInfo": 1, "/api/v3/ticker/24hr": 1}
    scheduler.close()
    assert books.stopped


def test_each_reading_of_the_books_is_told_its_cycle_and_the_snapshot_is_as_of_that_reading(simulator, clock):
    scheduler, books = stream_scheduler(simulator, clock)
    started = clock()
    first = scheduler.run_cycle()
    clock.advance(10)
    second = scheduler.run_cycle()
    assert books.cycles == [
        {"n": 1, "clock": started, "time": started},
        {"n": 2, "clock": started + 10, "time": started + 10},
    ]
    assert (first.read_at, second.read_at) == (started, started + 10)


def test_a_book_out_of_sync_gives_no_reading_and_its_last_values_age_out(simulator, clock):
    scheduler, books = stream_scheduler(simulator, clock)
    scheduler.run_cycle()
    books.in_sync = set(books.tracked)
    scheduler.run_cycle()
    books.in_sync.discard("BTCUSDT")
    for _ in range(3):
        clock.advance(10)
        kept = scheduler.run_cycle()
        assert not kept.up and "BTCUSDT" in {reading.symbol for reading in kept.spreads}
    clock.advance(10)
    gone = scheduler.run_cycle()
    assert "BTCUSDT" not in {reading.symbol for reading in gone.spreads}
    assert [state.in_sync for state in gone.books if state.symbol == "BTCUSDT"] == [False]


def test_rankings_come_from_the_live_table_and_a_silent_ticker_stream_is_not_fresh(simulator, clock, caplog):
    scheduler, books = stream_scheduler(simulator, clock)
    scheduler.run_cycle()
    books.in_sync = set(books.tracked)
    leader = Ticker24h("LTCBTC", D(1), D("999999"), 1)
    books.table["LTCBTC"] = leader
    books.streamed_at = clock()
    clock.advance(60)
    snapshot = scheduler.run_cycle()
    assert snapshot.rankings[0].tickers[0] == leader and "LTCBTC" in books.tracked
    assert simulator.stats()["requests"]["/api/v3/ticker/24hr"] == 1  # read from the table, not polled
    clock.advance(TICKER_SILENCE + 1)
    stale = scheduler.run_cycle()
    assert not stale.up
    assert "the 24 h ticker stream has been silent" in caplog.text


def test_a_symbol_that_left_the_lists_keeps_its_book_unexported_for_a_while(simulator, clock, monkeypatch):
    monkeypatch.setattr(stream_scheduler_module, "STANDBY_SECONDS", 600.0)  # ends before the hourly reseed
    scheduler, books = stream_scheduler(simulator, clock)
    scheduler.run_cycle()
    leaving = scheduler.snapshot.rankings[0].tickers[-1].symbol
    books.table["LTCBTC"] = Ticker24h("LTCBTC", D(1), D("999999"), 1)
    books.streamed_at = clock()
    clock.advance(60)
    snapshot = scheduler.run_cycle()
    assert leaving in books.tracked  # still kept: it may come back
    assert leaving not in {state.symbol for state in snapshot.books}
    assert leaving not in {reading.symbol for reading in snapshot.notionals}
    clock.advance(599)
    books.streamed_at = clock()
    scheduler.run_cycle()
    assert leaving in books.tracked
    clock.advance(1)
    scheduler.run_cycle()
    assert leaving not in books.tracked


def test_symbols_binance_does_not_trade_are_skipped_once_per_exchange_info(simulator, clock, caplog):
    caplog.set_level(logging.WARNING)
    scheduler, books = stream_scheduler(simulator, clock, ("LUNABTC", "NOPE", "BNBUSDT"))
    scheduler.run_cycle()
    clock.advance(10)
    scheduler.run_cycle()
    assert "BNBUSDT" in books.tracked and "LUNABTC" not in books.tracked
    assert caplog.text.count("--symbols LUNABTC skipped: not a TRADING symbol (BREAK)") == 1
    assert caplog.text.count("--symbols NOPE skipped: not a TRADING symbol (not listed)") == 1


def test_books_the_loop_cannot_read_in_time_make_the_cycle_incomplete(simulator, clock, caplog):
    scheduler, books = stream_scheduler(simulator, clock)
    books.late = True
    snapshot = scheduler.run_cycle()
    assert not snapshot.up and not snapshot.notionals
    assert "cannot read the live order books" in caplog.text


def test_every_live_book_in_sync_has_its_microstructure_and_every_tracked_symbol_its_trade_flow(simulator, clock):
    scheduler, books = stream_scheduler(simulator, clock)
    scheduler.run_cycle()
    books.in_sync = set(books.tracked) - {"ETHBTC"}
    flow = TradeFlow("ETHBTC", SideFlow(3, D("1"), D("0.05")), SideFlow(), D("0.05"), 1, 0)
    books.flows = {"ETHBTC": flow}
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    micro = {reading.symbol: reading.values for reading in snapshot.microstructure}
    assert set(micro) == set(books.tracked) - {"ETHBTC"}  # out of sync: nothing from its book
    values = micro["BTCUSDT"]
    assert values.mid == D("100.5") and values.micro == D("100.4")  # (100 x 3 + 101 x 2) / 5
    assert values.imbalance == {1: D("-0.2"), 5: D(0), 20: D(0)}
    assert values.depth[("bid", 100)] == D(200) and values.depth[("bid", 200)] == D(299)  # 99 is 149 bps away
    assert values.depth[("ask", 10)] == 0
    assert snapshot.trade_flows == (flow,)


def test_microstructure_and_trade_flows_age_out_and_leave_with_their_symbol(simulator, clock):
    scheduler, books = stream_scheduler(simulator, clock)
    scheduler.run_cycle()
    books.in_sync = set(books.tracked)
    books.flows = {"BTCUSDT": TradeFlow("BTCUSDT", SideFlow(), SideFlow(), None, 0, 0)}
    scheduler.run_cycle()
    books.in_sync.clear()
    books.late = True  # the loop does not answer: nothing new
    for _ in range(3):
        clock.advance(10)
        kept = scheduler.run_cycle()
        assert kept.trade_flows and "BTCUSDT" in {reading.symbol for reading in kept.microstructure}
    clock.advance(10)
    gone = scheduler.run_cycle()
    assert gone.trade_flows == () and gone.microstructure == ()


def trading_symbols(simulator):
    return {symbol for symbol, listed in simulator.market.symbols.items() if listed.status == "TRADING"}


def test_the_whole_market_is_every_trading_symbol_the_lists_first_then_the_most_traded(simulator, clock, caplog):
    caplog.set_level(logging.INFO)
    scheduler, books = stream_scheduler(simulator, clock, "all")
    snapshot = scheduler.run_cycle()
    assert set(books.tracked) == trading_symbols(simulator) and len(books.tracked) == 28
    ranked = [t.symbol for ranking in snapshot.rankings for t in ranking.tickers]
    assert books.tracked[: len(set(ranked))] == tuple(dict.fromkeys(ranked))
    counts = {t.symbol: t.trade_count for t in books.table.values()}
    rest = books.tracked[len(set(ranked)) :]
    assert [counts[s] for s in rest] == sorted((counts[s] for s in rest), reverse=True)
    assert "the whole market: 28 TRADING symbols in shard 1/1" in caplog.text
    assert "live order books: 28 symbols" not in caplog.text  # few enough to be named
    assert {info.symbol: info.quote_asset for info in snapshot.listings}["ETHBTC"] == "BTC"
    assert {info.symbol for info in snapshot.listings} == set(books.tracked)


def test_the_whole_market_follows_listings_and_delistings_at_each_exchange_info_refresh(simulator, clock):
    scheduler, books = stream_scheduler(simulator, clock, "all")
    scheduler.run_cycle()
    market = simulator.market
    market.symbols["LTCBTC"] = replace(market.symbols["LTCBTC"], status="BREAK")
    market.symbols["LUNABTC"] = replace(market.symbols["LUNABTC"], status="TRADING")
    clock.advance(10)
    scheduler.run_cycle()
    assert "LTCBTC" in books.tracked and "LUNABTC" not in books.tracked  # exchange info is an hour old only later
    clock.advance(3600)
    books.streamed_at = clock()
    scheduler.run_cycle()
    assert "LTCBTC" not in books.tracked and "LUNABTC" in books.tracked
    assert set(books.tracked) == trading_symbols(simulator)


def test_a_book_not_in_sync_has_its_spread_from_its_stream_top_until_it_syncs(simulator, clock):
    scheduler, books = stream_scheduler(simulator, clock, "all")
    scheduler.run_cycle()
    books.tops["LTCBTC"] = BookTop("LTCBTC", D("0.00123"), D("5"), D("0.00124"), D("7"))
    clock.advance(10)
    snapshot = scheduler.run_cycle()
    spreads = {reading.symbol: reading for reading in snapshot.spreads}
    assert set(spreads) == {"LTCBTC"} and spreads["LTCBTC"].spread == D("0.00001")
    assert not snapshot.notionals and not snapshot.up  # no book: no notional, and not every book is in sync
    books.in_sync.add("LTCBTC")
    clock.advance(10)
    synced = {reading.symbol: reading for reading in scheduler.run_cycle().spreads}
    assert synced["LTCBTC"].spread == D(1)  # the book's own top, once in sync


def test_shards_split_the_market_and_each_exports_only_its_own_symbols(simulator, clock):
    tracked = []
    for index in (1, 2):
        scheduler, books = stream_scheduler(simulator, clock, "all", Shard(index, 2))
        snapshot = scheduler.run_cycle()
        tracked.append(set(books.tracked))
        assert snapshot.shard == Shard(index, 2) and all(Shard(index, 2).owns(s) for s in books.tracked)
        assert {info.symbol for info in snapshot.listings} == set(books.tracked)
        scheduler.close()
    assert tracked[0] | tracked[1] == trading_symbols(simulator) and not tracked[0] & tracked[1]
    assert tracked[0] and tracked[1]


def test_a_shard_keeps_only_its_own_symbols_of_the_lists_and_of_symbols(simulator, clock, caplog):
    caplog.set_level(logging.WARNING)
    shard = Shard(1, 2)
    scheduler, books = stream_scheduler(simulator, clock, ("BNBUSDT", "DOGEBTC"), shard)
    snapshot = scheduler.run_cycle()
    listed = {t.symbol for ranking in snapshot.rankings for t in ranking.tickers} | {"BNBUSDT", "DOGEBTC"}
    assert set(books.tracked) == {s for s in listed if shard.owns(s)}
    assert "skipped" not in caplog.text  # another shard's symbol is not an error


def test_a_scrape_during_a_cycle_sees_the_previous_snapshot_whole_never_one_half_made(simulator, clock):
    scheduler, books = stream_scheduler(simulator, clock)
    seen = []
    counts = books.counts
    books.counts = lambda: seen.append(scheduler.snapshot) or counts()  # as a scrape in the middle of a cycle
    for _ in range(3):
        scheduler.run_cycle()
        clock.advance(10)
    assert [snapshot.cycle for snapshot in seen] == [0, 1, 2]
    assert all(snapshot.streams is not None for snapshot in seen[1:])  # each the whole of its cycle
    assert scheduler.snapshot.streams is not None and scheduler.snapshot.cycle == 3
