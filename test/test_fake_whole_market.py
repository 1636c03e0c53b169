"""The fake Binance's whole market (``--whole-market``): about Binance's
spot market in size and shape, books changing and trading at rates as
skewed as a real market's, every trading book changing at every step with
``--peak``, thin and deep books, bounded histories, and symbols listed and
delisted at run time. Markets stepped by a hand-moved clock; real servers
and real websocket clients where the streams are concerned."""

import collections
import json
import math
import re
import statistics
import urllib.error
import urllib.request

import pytest

from binance_exporter.fake import market as market_module
from binance_exporter.fake.market import MAX_HISTORY, HistoryLost, Market
from binance_exporter.fake.symbols import LISTED_SYMBOLS, split_symbol, to_units, whole_market
from binance_exporter.fake.simulator import BinanceSimulator, main
from binance_exporter.fake.streams import TICK_SECONDS, StreamServer, StreamSession
from .conftest import FROZEN_WALL_CLOCK
from .helpers import FakeClock, http_get, messages, start_module, stop_process, wait_for
from .test_fake_streams import LocalBook, open_stream, raw_handshake, reply, rest, start_sim

STEPS = 300  # steps of the stepped market: 30 s of a 100 ms market


@pytest.fixture(name="listing", scope="module")
def whole_listing():
    """The whole market of seed 1, by symbol."""
    return {listed.symbol: listed for listed in whole_market()}


def trading(listing):
    return [listed for listed in listing.values() if listed.status == "TRADING"]


@pytest.fixture(name="stepped", scope="module")
def stepped_market():
    """The whole market stepped ``STEPS`` times by hand: per symbol, how
    many steps changed its book and how many aggregate trades it made."""
    clock = FakeClock()
    market = Market(whole_market(), tick_seconds=1, clock=clock, wall_clock=lambda: FROZEN_WALL_CLOCK)
    market.prepare()
    ids = {symbol: market.update_id(symbol) for symbol in market.symbols}
    first_trades = {symbol: market.last_trade_id(symbol) for symbol in market.symbols}
    changed = collections.Counter()
    for _ in range(STEPS):
        clock.advance(1)
        for symbol, before in ids.items():
            ids[symbol] = market.update_id(symbol)
            changed[symbol] += ids[symbol] != before
    trades = {symbol: market.last_trade_id(symbol) - first for symbol, first in first_trades.items()}
    return market, changed, trades


# The market's shape


def test_the_whole_market_is_binances_size_most_of_it_trading_with_the_listed_traps(listing):
    statuses = collections.Counter(listed.status for listed in listing.values())
    assert statuses["TRADING"] == 1500
    assert 1550 <= len(listing) <= 1750 and statuses["BREAK"] >= 100  # as Binance's 1,695 of 2021
    for listed in LISTED_SYMBOLS:  # the traps are all there, as they were
        whole = listing[listed.symbol]
        assert (whole.base, whole.quote, whole.status, whole.price, whole.levels) == (
            listed.base, listed.quote, listed.status, listed.price, listed.levels
        )  # fmt: skip
    for listed in listing.values():
        assert re.fullmatch(r"[A-Z0-9]{2,20}", listed.symbol) and listed.symbol == listed.base + listed.quote


def test_the_whole_market_is_quoted_in_many_assets_in_binances_proportions(listing):
    quotes = collections.Counter(listed.quote for listed in listing.values())
    shares = {quote: count / len(listing) for quote, count in quotes.items()}
    assert max(shares, key=shares.get) == "USDT" and 0.2 <= shares["USDT"] <= 0.35
    assert 0.1 <= shares["BTC"] <= 0.25 and shares["BNB"] >= 0.05 and shares["ETH"] >= 0.05
    assert all(shares[quote] >= 0.02 for quote in ("FDUSD", "BUSD", "USDC", "TRY", "EUR"))
    assert len(quotes) >= 15
    busd = [listed.status for listed in listing.values() if listed.quote == "BUSD"]
    assert busd.count("BREAK") > 0.8 * len(busd)  # BUSD's pairs went to BREAK, FDUSD took its place


def test_prices_span_many_orders_of_magnitude_on_grids_of_powers_of_ten(listing):
    magnitudes = {math.floor(math.log10(to_units(listed.price) / 1e8)) for listed in listing.values()}
    assert max(magnitudes) - min(magnitudes) >= 9
    powers_of_ten = {10**k for k in range(9)}
    for listed in listing.values():
        tick, step, price = to_units(listed.tick), to_units(listed.qty_step), to_units(listed.price)
        assert tick in powers_of_ten and step in powers_of_ten and price % tick == 0
        assert price // tick >= 100  # at least a hundred ticks: a book has room below its best bid
    assert len({listed.tick for listed in listing.values()}) >= 7
    assert len({listed.qty_step for listed in listing.values()}) >= 5


def test_volumes_and_trade_counts_follow_a_power_law(listing):
    counts = sorted((listed.trades for listed in trading(listing)), reverse=True)
    total = sum(counts)
    assert sum(counts[:15]) > 0.5 * total  # the top 1 % trades more than the other 99 %
    assert counts[0] > 500 * statistics.median(counts) > 0
    assert sum(count < 1000 for count in counts) > 0.2 * len(counts)  # a long tail of pairs hardly traded
    for listed in listing.values():
        if listed.status == "BREAK":
            assert listed.trades == 0 and to_units(listed.quote_volume) == 0


def test_books_run_from_a_few_tens_of_levels_to_well_past_a_thousand(listing):
    levels = [1600 if listed.levels == 1000 else listed.levels for listed in trading(listing)]
    # The exporter asks for 100, 500 or 1000 levels by a book's size: every kind is common.
    kinds = collections.Counter(min(limit for limit in (100, 500, 1000, 5000) if depth <= limit) for depth in levels)
    assert all(kinds[limit] >= 0.1 * len(levels) for limit in (100, 500, 1000, 5000)), kinds
    assert min(levels) < 30 and max(levels) >= 2000


def test_a_thin_books_snapshot_is_its_whole_side_and_a_deep_one_is_past_a_thousand(listing):
    thin = min(trading(listing), key=lambda listed: (listed.levels, listed.symbol))
    deep = max((s for s in trading(listing) if s.levels != 1000), key=lambda listed: (listed.levels, listed.symbol))
    sim = BinanceSimulator(Market(whole_market(), tick_seconds=0)).start()
    try:
        thin_book = rest(sim, f"/api/v3/depth?symbol={thin.symbol}&limit=100")
        deep_book = rest(sim, f"/api/v3/depth?symbol={deep.symbol}&limit=5000")
    finally:
        sim.stop()
    assert len(thin_book["bids"]) < 100 and len(thin_book["asks"]) == thin.levels < 100
    assert len(deep_book["asks"]) == deep.levels > 1000


def test_the_same_seed_gives_the_same_whole_market_and_another_seed_another():
    assert whole_market(7) == whole_market(7) != whole_market(8)
    books = []
    for _ in range(2):
        clock = FakeClock()
        market = Market(whole_market(7), seed=7, tick_seconds=1, clock=clock, wall_clock=lambda: FROZEN_WALL_CLOCK)
        sample = list(market.symbols)[::97]
        clock.advance(40)
        books.append([(market.true_book(s), market.agg_trades(s, limit=1000)) for s in sample])
    assert books[0] == books[1]


def test_a_smaller_whole_market_has_as_many_trading_symbols_as_asked():
    symbols = whole_market(3, trading=200)
    assert sum(listed.status == "TRADING" for listed in symbols) == 200
    assert symbols[: len(LISTED_SYMBOLS)] == whole_market(3)[: len(LISTED_SYMBOLS)]


# Rates


def test_a_few_books_change_at_nearly_every_step_and_a_long_tail_hardly_ever(stepped):
    market, changed, _ = stepped
    moving = [changed[s] / STEPS for s, listed in market.symbols.items() if listed.status == "TRADING"]
    assert sum(share >= 0.9 for share in moving) >= 5  # BTCUSDT's kind: nearly 10 events a second
    assert changed["BTCUSDT"] >= 0.9 * STEPS
    assert statistics.median(moving) < 0.1
    assert sum(share < 0.03 for share in moving) > 0.2 * len(moving)  # a change every few seconds or minutes
    assert sum(share == 0 for share in moving) > 0  # not once in 30 s
    events = sum(changed.values()) / STEPS * 10  # a second of 100 ms steps
    assert 500 <= events <= 2000


def test_each_book_changes_about_as_often_as_its_rate_says(stepped):
    market, changed, _ = stepped
    by_rate = sorted((s for s, l in market.symbols.items() if l.status == "TRADING"),
                     key=lambda s: market.symbols[s].change_rate)  # fmt: skip
    for symbols in (by_rate[-100:], by_rate[len(by_rate) // 2 : len(by_rate) // 2 + 300]):
        expected = sum(market.symbols[s].change_rate for s in symbols) * STEPS
        assert 0.8 * expected <= sum(changed[s] for s in symbols) <= 1.2 * expected
    busiest, quietest = by_rate[-100:], by_rate[:750]
    assert statistics.mean(changed[s] for s in busiest) > 10 * statistics.mean(changed[s] for s in quietest)


def test_trades_are_skewed_as_the_book_changes_are(stepped):
    market, _, trades = stepped
    made = sorted((trades[s] for s, l in market.symbols.items() if l.status == "TRADING"), reverse=True)
    assert trades["BTCUSDT"] >= 100 and made[0] >= 200
    assert sum(made[:50]) > 0.6 * sum(made)
    assert sum(count == 0 for count in made) > len(made) / 2  # most pairs trade less than every 30 s


def test_symbols_not_trading_stand_still(stepped):
    market, changed, trades = stepped
    halted = [s for s, listed in market.symbols.items() if listed.status != "TRADING"]
    assert len(halted) > 100 and all(changed[s] == 0 and trades[s] == 0 for s in halted)


def test_steps_in_which_a_book_neither_changes_nor_trades_draw_nothing():
    # Not a timing: the steps are counted, and nothing is drawn for them.
    clock = FakeClock()
    market = Market(whole_market(), tick_seconds=1, clock=clock)
    quiet = min(market.symbols, key=lambda s: (market.symbols[s].status != "TRADING", market.symbols[s].change_rate))
    market.update_id(quiet)
    book = market._books[quiet]  # pylint: disable=protected-access  # its schedule
    idle, state = min(book.next_change, book.next_trade) - book.step - 1, book.rng.getstate()
    assert idle > 100  # a quiet book: minutes between changes
    clock.advance(idle)
    assert market.update_id(quiet) == market.update_id(quiet) and book.step == idle
    assert book.rng.getstate() == state
    clock.advance(1)
    market.update_id(quiet)
    assert book.rng.getstate() != state


def test_at_peak_every_trading_book_changes_at_every_step():
    clock = FakeClock()
    market = Market(whole_market(), tick_seconds=1, clock=clock, peak=True)
    market.prepare()
    ids = {symbol: market.update_id(symbol) for symbol in market.symbols}
    for _ in range(10):
        clock.advance(1)
        for symbol, before in ids.items():
            ids[symbol] = market.update_id(symbol)
            assert (ids[symbol] > before) == (market.symbols[symbol].status == "TRADING"), symbol


# Memory


def test_a_large_market_keeps_fewer_changes_per_book_and_still_loses_only_old_ones():
    clock = FakeClock()
    market = Market(whole_market(), tick_seconds=1, clock=clock, peak=True)
    keep = market._keep_changes  # pylint: disable=protected-access  # the share each book keeps
    assert 500 <= keep < MAX_HISTORY and keep * len(market.symbols) <= market_module.HISTORY_BUDGET
    first = market.update_id("BTCUSDT")
    clock.advance(3 * keep)  # several changes a step
    last = market.update_id("BTCUSDT")
    book = market._books["BTCUSDT"]  # pylint: disable=protected-access
    assert last - first > 2 * keep and keep <= len(book.history) // 3 <= keep * 5 // 4
    diff = market.changes_since("BTCUSDT", last - keep)
    assert (diff.first, diff.last) == (last - keep + 1, last)
    with pytest.raises(HistoryLost):
        market.changes_since("BTCUSDT", first)


def test_the_trade_history_of_a_large_market_is_bounded_per_book():
    clock = FakeClock()
    market = Market(whole_market(), tick_seconds=1, clock=clock)
    keep = market._keep_trades  # pylint: disable=protected-access
    assert keep * len(market.symbols) <= market_module.TRADE_BUDGET
    clock.advance(6 * keep)
    kept = market.agg_trades("BTCUSDT", from_id=0, limit=1000)
    assert keep <= len(kept) <= keep * 5 // 4 and kept[-1]["a"] == market.last_trade_id("BTCUSDT")


# Streams of the whole market


def test_whole_market_books_are_rebuilt_exactly_from_snapshots_and_diffs_over_real_websockets(  # pylint: disable=too-many-locals  # the books, the tickers
    listing,
):
    clock = FakeClock()
    market = Market(whole_market(), tick_seconds=1, clock=clock)
    by_rate = sorted(trading(listing), key=lambda listed: (listed.change_rate, listed.symbol))
    sample = [listed.symbol for listed in by_rate[:: len(by_rate) // 30]] + ["BTCUSDT", "WBTCBTC"]
    sim = BinanceSimulator(market, weight_limit=100_000, clock=FakeClock(6000.0), stream_port=0).start()
    tickers_checked = 0
    try:
        names = [f"{s.lower()}@depth@100ms" for s in sample] + [f"{s.lower()}@bookTicker" for s in sample]
        with open_stream(sim, "/stream") as ws:
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
            received = messages(ws)
            pending = collections.defaultdict(list)
            for message in received:  # the book tickers sent at subscription come before the answer or after
                if message.get("id") == 1:
                    break
                pending[message["data"]["s"]].append(message["data"])
            books = {s: LocalBook(rest(sim, f"/api/v3/depth?symbol={s}&limit=5000")) for s in sample}
            for _ in range(40):
                clock.advance(3)  # three steps; each book's event holds them all
                targets = {s: market.update_id(s) for s in sample}
                while any(books[s].last < targets[s] or pending[s] for s in sample):
                    message = next(received)["data"]
                    symbol = message["s"]
                    if message.get("e") == "depthUpdate":
                        books[symbol].apply(message)
                    else:
                        pending[symbol].append(message)
                    book = books[symbol]
                    while pending[symbol] and pending[symbol][0]["u"] <= book.last:
                        ticker = pending[symbol].pop(0)
                        assert ticker["u"] == book.last
                        (bid, bid_qty), (ask, ask_qty) = (side[0] for side in book.sides())
                        assert tuple(to_units(ticker[k]) for k in "bBaA") == (bid, bid_qty, ask, ask_qty)
                        tickers_checked += 1
    finally:
        sim.stop()
    moved = 0
    for symbol in sample:
        update_id, bids, asks = market.true_book(symbol)
        assert books[symbol].last == update_id and books[symbol].sides() == (bids, asks), symbol
        moved += books[symbol].started
    assert moved >= len(sample) // 2 and tickers_checked >= len(sample)


def test_at_peak_a_connection_of_a_thousand_streams_gets_the_events_of_every_book():
    sim = BinanceSimulator(Market(whole_market(), tick_seconds=TICK_SECONDS, peak=True), stream_port=0).start()
    symbols = [s for s, listed in sim.market.symbols.items() if listed.status == "TRADING"][:340]
    names = [f"{s.lower()}@{kind}" for s in symbols for kind in ("depth@100ms", "aggTrade", "bookTicker")]
    try:
        with open_stream(sim, "/stream", max_size=2**24) as ws:
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
            reply(ws, 1)
            last, events = {}, collections.Counter()
            for message in messages(ws):
                event = message["data"]
                if event.get("e") != "depthUpdate":
                    continue
                symbol = event["s"]
                assert symbol not in last or event["U"] == last[symbol] + 1
                last[symbol] = event["u"]
                events[symbol] += 1
                if len(events) == len(symbols) and min(events.values()) >= 20:
                    break
    finally:
        sim.stop()
    # Every book, its events following on; each holds one step, or a few when a tick comes late.
    assert set(events) == set(symbols)


def test_at_peak_a_client_that_does_not_read_its_events_is_dropped_not_buffered():
    sim = BinanceSimulator(
        Market(whole_market(), tick_seconds=TICK_SECONDS, peak=True), stream_port=0,
        stream_options={"send_timeout": 0.5},
    )  # fmt: skip
    sim.start()
    try:
        symbols = [s for s, listed in sim.market.symbols.items() if listed.status == "TRADING"][:300]
        path = "/stream?streams=" + "/".join(f"{s.lower()}@depth@100ms" for s in symbols)
        sock, status = raw_handshake(sim, path, receive_buffer=4096)
        with sock:
            assert status == "HTTP/1.1 101 Switching Protocols"
            wait_for(lambda: sim.stats()["stream_disconnects"].get("slow_reader") == 1, timeout=60)
        assert sim.stats()["stream_connections"] == 0
    finally:
        sim.stop()


def test_ticks_keep_to_the_steps_of_a_market_that_steps_every_tick():
    stepping = Market(tick_seconds=TICK_SECONDS)
    server = StreamServer(stepping)
    try:
        step_at = stepping.next_step_at()
        for planned in (step_at - 0.03, step_at + 0.02, step_at + 0.049):
            tick = server._keep_to_steps(planned)  # pylint: disable=protected-access  # the schedule alone
            assert abs(tick - planned) <= TICK_SECONDS / 2 + 1e-9
            assert abs((tick - step_at - 0.01) / TICK_SECONDS - round((tick - step_at - 0.01) / TICK_SECONDS)) < 1e-6
        stepping.freeze()
        assert server._keep_to_steps(123.0) == 123.0  # pylint: disable=protected-access
    finally:
        server.stop()
    for other in (Market(tick_seconds=1.0), Market(tick_seconds=TICK_SECONDS, clock=FakeClock())):
        server = StreamServer(other)
        assert server._keep_to_steps(5.0) == 5.0  # pylint: disable=protected-access
        server.stop()


# Listings and delistings


def listing_post(sim, body):
    """(status, decoded answer) of POST /sim/symbols, errors included."""
    request = urllib.request.Request(sim.url + "/sim/symbols", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_a_new_listing_is_in_the_exchange_info_the_tickers_the_depth_and_the_streams():
    clock = FakeClock()
    sim = start_sim(Market(tick_seconds=1, clock=clock, wall_clock=lambda: FROZEN_WALL_CLOCK))
    try:
        status, entry = listing_post(sim, '{"symbol": "NEWUSDT", "status": "TRADING", "price": "2.50000000"}')
        assert status == 201 and (entry["baseAsset"], entry["quoteAsset"]) == ("NEW", "USDT")
        assert entry["status"] == "TRADING" and entry["isSpotTradingAllowed"] is True
        info = {s["symbol"]: s for s in rest(sim, "/api/v3/exchangeInfo")["symbols"]}
        assert info["NEWUSDT"] == entry
        assert "NEWUSDT" in {t["symbol"] for t in rest(sim, "/api/v3/ticker/24hr")}
        book = rest(sim, "/api/v3/depth?symbol=NEWUSDT&limit=5000")
        assert abs(to_units(book["bids"][0][0]) - to_units("2.5")) < to_units("0.01")
        with open_stream(sim, "/ws/newusdt@depth@100ms") as ws:
            local = LocalBook(rest(sim, "/api/v3/depth?symbol=NEWUSDT&limit=5000"))
            clock.advance(30)
            target = sim.market.update_id("NEWUSDT")
            for message in messages(ws):
                local.apply(message)
                if local.last == target:
                    break
        assert local.sides() == sim.market.true_book("NEWUSDT")[1:]
        named = '{"symbol": "ABCTRY", "baseAsset": "ABC", "quoteAsset": "TRY", "status": "BREAK"}'
        status, entry = listing_post(sim, named)
        assert status == 201 and entry["status"] == "BREAK" and entry["quoteAsset"] == "TRY"
    finally:
        sim.stop()


def test_a_delisted_symbol_stands_still_leaves_the_ticker_array_and_moves_again_when_relisted():
    clock = FakeClock()
    market = Market(tick_seconds=1, clock=clock)
    sim = start_sim(market)
    try:
        status, entry = listing_post(sim, '{"symbol": "ETHBTC", "status": "BREAK"}')
        assert status == 200 and entry["status"] == "BREAK" and entry["isSpotTradingAllowed"] is False
        info = {s["symbol"]: s["status"] for s in rest(sim, "/api/v3/exchangeInfo")["symbols"]}
        assert info["ETHBTC"] == "BREAK"
        held = market.true_book("ETHBTC")
        session = StreamSession(market, combined=False)
        session.subscribe(["ethbtc@depth@100ms", "ethbtc@aggTrade", "ethbtc@bookTicker", "!ticker_1d@arr"])
        session.tick(0)
        clock.advance(20)
        frames = [json.loads(frame) for frame in session.tick(0) + [f for _ in range(9) for f in session.tick(0)]]
        (tickers,) = [frame for frame in frames if isinstance(frame, list)]
        assert "ETHBTC" not in {t["s"] for t in tickers} and "BNBBTC" in {t["s"] for t in tickers}
        assert len(frames) == 1  # no depth event, no trade, no new top: only the other symbols' tickers
        assert market.true_book("ETHBTC") == held
        assert listing_post(sim, '{"symbol": "ETHBTC", "status": "TRADING"}')[0] == 200
        clock.advance(1)
        assert market.true_book("ETHBTC")[0] > held[0]  # it moves on from where it stood
    finally:
        sim.stop()


def test_a_whole_market_listing_moves_at_a_new_pairs_rate():
    clock = FakeClock()
    market = Market(whole_market(trading=50), tick_seconds=1, clock=clock)
    sim = BinanceSimulator(market).start()
    try:
        assert listing_post(sim, '{"symbol": "ZZZFDUSD", "status": "TRADING"}')[0] == 201
        first = market.update_id("ZZZFDUSD")
        clock.advance(100)
        assert first < market.update_id("ZZZFDUSD") and split_symbol("ZZZFDUSD") == ("ZZZ", "FDUSD")
    finally:
        sim.stop()


def test_a_whole_market_book_delisted_past_its_next_change_moves_on_from_its_relisting():
    clock = FakeClock()
    market = Market(whole_market(trading=50), tick_seconds=1, clock=clock, wall_clock=lambda: FROZEN_WALL_CLOCK)
    held = market.true_book("BTCUSDT"), market.last_trade_id("BTCUSDT")
    market.set_status("BTCUSDT", "BREAK")
    clock.advance(50)  # it would have changed and traded at most of these steps
    assert (market.true_book("BTCUSDT"), market.last_trade_id("BTCUSDT")) == held
    market.set_status("BTCUSDT", "TRADING")
    clock.advance(10)
    assert market.true_book("BTCUSDT")[0] > held[0][0] and market.last_trade_id("BTCUSDT") > held[1]
    with pytest.raises(ValueError, match="BTCUSDT is listed already"):
        market.list_symbol(market.symbols["BTCUSDT"])


@pytest.mark.parametrize(
    "body, message",
    [
        ("not json", "a listing is a JSON object: Expecting value"),
        ("[]", "a listing is a JSON object with a symbol and a status"),
        ('{"symbol": "NEWUSDT"}', "a listing is a JSON object with a symbol and a status"),
        ('{"symbol": "NEWUSDT", "status": "TRADING", "colour": 1}', "unknown listing field 'colour'"),
        ('{"symbol": "newusdt", "status": "TRADING"}', "'symbol' must be a symbol name of 2 to 20 capital letters"),
        ('{"symbol": 5, "status": "TRADING"}', "'symbol' must be a symbol name"),
        ('{"symbol": "NEWUSDT", "status": "OPEN"}', "'status' must be one of PRE_TRADING, TRADING,"),
        ('{"symbol": "NEWUSDT", "status": "TRADING", "price": "0"}', "'price' must be more than 0"),
        ('{"symbol": "NEWUSDT", "status": "TRADING", "price": 2.5}', "'price' must be a price as a decimal string"),
        ('{"symbol": "NEWUSDT", "status": "TRADING", "price": "1.123456789"}', "of at most 8 decimals"),
        ('{"symbol": "NEWXYZ", "status": "TRADING"}', "NEWXYZ ends with no known quote asset"),
        ('{"symbol": "NEWUSDT", "status": "TRADING", "baseAsset": "NEW", "quoteAsset": "USD"}', "NEW + USD is not"),
        ('{"symbol": "NEWUSDT", "status": "TRADING", "quoteAsset": "us dt"}', "'quoteAsset' must be an asset name"),
        ('{"symbol": "ETHBTC", "status": "TRADING", "price": "1.0"}', "ETHBTC is listed already: only its status"),
    ],
)
def test_a_bad_listing_is_refused_with_a_one_line_error(simulator, body, message):
    status, answer = listing_post(simulator, body)
    assert status == 400 and message in answer["msg"]
    assert "NEWUSDT" not in simulator.market.symbols and simulator.market.symbols["ETHBTC"].status == "TRADING"


def test_listings_stop_at_the_most_symbols_the_market_holds(simulator, monkeypatch):
    monkeypatch.setattr(market_module, "MAX_SYMBOLS", len(simulator.market.symbols) + 1)
    assert listing_post(simulator, '{"symbol": "ONEUSDT", "status": "TRADING"}')[0] == 201
    status, answer = listing_post(simulator, '{"symbol": "TWOUSDT", "status": "TRADING"}')
    most = len(simulator.market.symbols)
    assert status == 400 and answer["msg"] == f"the market lists {most} symbols already, the most it holds"
    assert listing_post(simulator, '{"symbol": "ONEUSDT", "status": "BREAK"}')[0] == 200  # a change is not a listing


def test_a_recorded_market_lists_nothing():
    class Recorded:  # pylint: disable=too-few-public-methods  # the one thing the simulator reads here
        """A market the simulator serves but does not generate."""

        symbols = {"BTCUSDT": None}

    sim = BinanceSimulator(Recorded()).start()  # type: ignore[arg-type]
    try:
        status, answer = listing_post(sim, '{"symbol": "BTCUSDT", "status": "BREAK"}')
    finally:
        sim.stop()
    assert status == 400 and answer["msg"] == "this market's symbols are not the simulator's to list"


def test_posting_elsewhere_names_the_control_paths(simulator):
    status, _, body = http_get(simulator.url + "/sim/nothing", method="POST")
    assert status == 404 and json.loads(body)["msg"] == "POST /sim/faults, /sim/market or /sim/symbols only"


# Cheap answers


def test_the_24h_ticker_of_a_book_that_did_not_move_is_the_same_and_moves_with_it(stepped):
    market, _, _ = stepped
    quiet = next(s for s, l in market.symbols.items() if l.status == "TRADING" and l.change_rate < 0.01)
    assert market.ticker(quiet) == market.ticker(quiet) and market.ticker(quiet, False)["symbol"] == quiet
    entries = market.exchange_info()["symbols"]
    assert market.exchange_info()["symbols"][0] is entries[0]  # made once per listing


# The command line


def test_command_line_serves_the_whole_market_at_peak():
    process = start_module(
        "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0", "--whole-market", "--peak"
    )
    try:
        url = wait_for(process.stdout.readline, timeout=60).split()[-1]
        symbols = json.loads(http_get(url + "/api/v3/exchangeInfo")[2])["symbols"]
        assert sum(s["status"] == "TRADING" for s in symbols) == 1500
    finally:
        status, _, _ = stop_process(process)
    assert status == 0


def test_command_line_refuses_extra_symbols_with_the_whole_market(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--whole-market", "--extra-symbols", "5"])
    assert exit_info.value.code == 2
    assert "--extra-symbols does not go with --whole-market" in capsys.readouterr().err


def test_the_default_market_is_still_the_listed_symbols():
    market = Market()
    assert tuple(market.symbols.values()) == LISTED_SYMBOLS and not market.peak
    assert all(listed.change_rate is None for listed in LISTED_SYMBOLS)
