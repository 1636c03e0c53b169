"""The live view in a real browser: Debian's Chromium, headless, against
the real exporter process in stream mode and the fake Binance. The pages
must show what /metrics exports and what the true books hold, move with
the market, say when a book is out of sync, come back after the exporter
restarts, escape what Binance sends, and read well in dark mode and on a
phone."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from decimal import Decimal
from typing import Iterator

import pytest

from binance_exporter.cycle.snapshot import BookState, Snapshot
from binance_exporter.exposition.collector import MetricsPage
from binance_exporter.exposition.http_server import ExporterHTTPServer, Health
from binance_exporter.exposition.live_view import LADDER_LEVELS, LiveEvents, LivePublisher
from binance_exporter.exposition.pages import LiveSite
from binance_exporter.fake.market import Market
from binance_exporter.fake.simulator import BinanceSimulator
from binance_exporter.market.definitions import Ranking, Ticker24h

from .browser import chromium
from .helpers import free_port, http_get, post, scrape, start_module, stop_process, true_best_levels, wait_for

SYMBOL = "ETHBTC"

READ_OVERVIEW = """
const rows = {};
for (const tr of document.querySelectorAll('#lists tr[data-symbol]')) {
  const cells = {};
  for (const td of tr.querySelectorAll('td[data-field]')) cells[td.dataset.field] = td.textContent;
  rows[tr.closest('section').dataset.list + ' ' + tr.dataset.symbol] = cells;
}
return {
  state: document.getElementById('status').dataset.state,
  stale: document.querySelector('main').classList.contains('stale'),
  rows: rows,
  books: [...document.querySelectorAll('#books li')].map(
    li => [li.dataset.symbol, li.querySelector('a').getAttribute('href')]),
  inSync: document.getElementById('books-in-sync').textContent,
};
"""

READ_BOOK = """
const text = id => document.getElementById(id).textContent;
const ladder = [...document.querySelectorAll('#ladder-rows tr[data-price]')].map(tr => {
  const notional = tr.querySelector('td[data-field=notional]');
  return {
    side: tr.className,
    price: tr.querySelector('td[data-field=price]').textContent,
    qty: tr.querySelector('td[data-field=qty]').textContent,
    notional: notional.textContent,
    bar: notional.querySelector('.bar').getBoundingClientRect().width,
    cell: notional.getBoundingClientRect().width,
  };
});
return {
  state: document.getElementById('status').dataset.state,
  inSync: document.getElementById('sync').dataset.inSync,
  banner: text('banner'),
  spread: text('spread'), mid: text('mid'), micro: text('micro'),
  imbalance: {1: text('imbalance-1'), 5: text('imbalance-5'), 20: text('imbalance-20')},
  ladder: ladder,
  chart: [...document.querySelectorAll('#chart path')].map(p => p.getAttribute('class')),
  trades: [...document.querySelectorAll('#trade-rows tr')].map(tr => [...tr.children].map(td => td.textContent)),
};
"""


@pytest.fixture(scope="module")
def market():
    """The fake Binance with its streams, for the whole module."""
    simulator = BinanceSimulator(Market(tick_seconds=0.1), stream_port=0).start()
    yield simulator
    simulator.stop()


def start_exporter(market: BinanceSimulator, port: int) -> subprocess.Popen:
    return start_module(
        "binance_exporter",
        *("--source", "stream", "--port", str(port), "--address", "127.0.0.1"),
        *("--base-url", market.url, "--stream-url", market.stream_url),
        *("--update-interval", "0.5", "--rank-interval", "3600", "--weight-budget", "5000", "--loglevel", "WARNING"),
        stdout=subprocess.DEVNULL,  # the report of every cycle: nobody reads it here
    )


def all_in_sync(port: int) -> dict | None:
    found = scrape(f"http://127.0.0.1:{port}")
    books = {dict(labels)["symbol"]: n for (name, labels), n in found.items() if name == "binance_order_book_in_sync"}
    return found if books and all(books.values()) and found.get(("binance_up", ())) == 1 else None


@pytest.fixture(scope="module")
def exporter(market):
    """The exporter against ``market``: (port, process), every book in sync."""
    port = free_port()
    process = {"process": start_exporter(market, port)}
    try:
        wait_for(lambda: all_in_sync(port), timeout=60)
        yield port, process
    finally:
        sys.stderr.write(stop_process(process["process"])[2][-5000:])


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def metric(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


@contextlib.contextmanager
def frozen(market: BinanceSimulator) -> Iterator[None]:
    """Freezes the market until the block ends."""
    post(market, "/sim/market", {"frozen": True})
    try:
        yield
    finally:
        post(market, "/sim/market", {"frozen": False})


def no_errors_logged(browser) -> None:
    """Nothing failed in the page: no script error, no blocked load (the policy allows what the page needs)."""
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe


def overview_equals_metrics(browser, port: int) -> dict | None:
    page = browser.execute_script(READ_OVERVIEW)
    found = all_in_sync(port)
    if page["state"] != "live" or not page["rows"] or not found:
        return None
    for key, cells in page["rows"].items():
        symbol = key.split()[-1]
        expected = {
            "quote_volume": metric(found, "binance_quote_volume_24h", symbol=symbol),
            "trades": metric(found, "binance_trades_24h", symbol=symbol),
            "bid_notional": metric(found, "binance_order_book_notional", symbol=symbol, side="bid"),
            "ask_notional": metric(found, "binance_order_book_notional", symbol=symbol, side="ask"),
            "spread": metric(found, "binance_spread", symbol=symbol),
            "spread_change": metric(found, "binance_spread_delta", symbol=symbol),
        }
        for field, text in cells.items():
            if field in expected and (text == "n/a" or float(Decimal(text)) != expected[field]):
                return None
    return page


def test_the_answers_page_shows_exactly_what_metrics_exports_and_links_every_book(market, exporter, browser):
    port, _ = exporter
    browser.get(f"http://127.0.0.1:{port}/")
    with frozen(market):
        page = wait_for(lambda: overview_equals_metrics(browser, port), timeout=30)
    found = all_in_sync(port)
    lists = {key.split()[0] for key in page["rows"]}
    assert lists == {"quote_volume:BTC", "trade_count:USDT"} and len(page["rows"]) == 10
    tracked = {dict(labels)["symbol"] for (name, labels) in found if name == "binance_order_book_in_sync"}
    assert sorted(page["books"]) == [[symbol, f"book/{symbol}"] for symbol in sorted(tracked)]
    assert page["inSync"] == f"{len(tracked)} of {len(tracked)}"
    no_errors_logged(browser)


def book_equals_truth(browser, market: BinanceSimulator, port: int) -> dict | None:
    page = browser.execute_script(READ_BOOK)
    found = all_in_sync(port)
    if page["state"] != "live" or page["inSync"] != "true" or not found:
        return None
    _, bids, asks = true_best_levels(market, SYMBOL, LADDER_LEVELS)
    shown = [(row["side"], Decimal(row["price"]), Decimal(row["qty"])) for row in page["ladder"]]
    truth = [("ask", p, q) for p, q in reversed(asks)] + [("bid", p, q) for p, q in bids]
    if shown != truth:
        return None
    for name, text in (("binance_mid_price", page["mid"]), ("binance_micro_price", page["micro"])):
        if float(Decimal(text)) != metric(found, name, symbol=SYMBOL):
            return None
    for levels, text in page["imbalance"].items():
        if float(Decimal(text)) != metric(found, "binance_order_book_imbalance", symbol=SYMBOL, levels=levels):
            return None
    if float(Decimal(page["spread"])) != metric(found, "binance_spread", symbol=SYMBOL):
        return None
    return page


def test_a_book_page_shows_the_true_book_sorted_with_proportional_bars_and_the_latest_trades(market, exporter, browser):
    port, _ = exporter
    browser.get(f"http://127.0.0.1:{port}/book/{SYMBOL}")
    with frozen(market):
        page = wait_for(lambda: book_equals_truth(browser, market, port), timeout=30)
        _, _, history = http_get(f"{market.url}/api/v3/aggTrades?symbol={SYMBOL}&limit=5")
    prices = [Decimal(row["price"]) for row in page["ladder"]]
    assert prices == sorted(prices, reverse=True) and len(set(prices)) == 2 * LADDER_LEVELS  # asks over bids
    notionals = [Decimal(row["notional"]) for row in page["ladder"]]
    widest = max(notionals)
    for row, notional in zip(page["ladder"], notionals):
        assert Decimal(row["notional"]) == Decimal(row["price"]) * Decimal(row["qty"])
        assert abs(row["bar"] - row["cell"] * float(notional / widest)) <= 1.0  # a pixel at most
    assert page["chart"] == ["bids", "asks"]
    newest = [(Decimal(t["p"]), Decimal(t["q"]), "sell" if t["m"] else "buy") for t in json.loads(history)[::-1]]
    assert [(Decimal(price), Decimal(qty), side) for _, side, price, qty in page["trades"][:5]] == newest
    no_errors_logged(browser)


def test_the_book_page_moves_with_the_market(market, exporter, browser):
    port, _ = exporter
    browser.get(f"http://127.0.0.1:{port}/book/{SYMBOL}")
    with frozen(market):
        before = wait_for(lambda: book_equals_truth(browser, market, port), timeout=30)
    wait_for(lambda: browser.execute_script(READ_BOOK)["ladder"] != before["ladder"], timeout=30)


def test_a_book_that_loses_sync_shows_it_and_no_value_until_it_is_back(market, exporter, browser):
    port, _ = exporter
    browser.get(f"http://127.0.0.1:{port}/book/{SYMBOL}")
    wait_for(lambda: browser.execute_script(READ_BOOK)["inSync"] == "true")
    post(market, "/sim/faults", {"path": "/api/v3/depth", "symbol": SYMBOL, "status": 500})  # no snapshot to resync
    try:
        post(market, "/sim/faults", {"path": "stream", "action": "gap", "symbol": SYMBOL, "times": 1})
        page = wait_for(lambda: (p := browser.execute_script(READ_BOOK))["inSync"] == "false" and p, timeout=30)
        assert "out of sync" in page["banner"] and page["ladder"] == [] and page["chart"] == []
        assert (page["mid"], page["micro"], page["spread"]) == ("n/a", "n/a", "n/a")
    finally:
        assert http_get(market.url + "/sim/faults", method="DELETE")[0] == 204
    wait_for(lambda: browser.execute_script(READ_BOOK)["inSync"] == "true", timeout=60)


def test_the_answers_page_comes_back_by_itself_after_the_exporter_restarts(market, exporter, browser):
    port, process = exporter
    browser.get(f"http://127.0.0.1:{port}/")
    wait_for(lambda: browser.execute_script(READ_OVERVIEW)["state"] == "live")
    assert stop_process(process["process"])[0] == 0
    page = wait_for(lambda: (p := browser.execute_script(READ_OVERVIEW))["state"] == "down" and p)
    assert page["stale"]  # values kept on screen are marked as not live
    process["process"] = start_exporter(market, port)
    wait_for(lambda: all_in_sync(port), timeout=60)
    with frozen(market):
        page = wait_for(lambda: overview_equals_metrics(browser, port), timeout=30)
    assert not page["stale"]


HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'


def test_everything_binance_sends_is_shown_as_text_never_run(browser):
    ticker = Ticker24h(HOSTILE, Decimal("1.5"), Decimal("2.25"), 7)
    snapshot = Snapshot(
        up=True,
        last_success=time.time(),
        rankings=(Ranking("quote_volume", "BTC", (ticker,)), Ranking("trade_count", "USDT", ())),
        books=(BookState(HOSTILE, True, 1, 1, None, ()),),
    )
    events = LiveEvents()
    health = Health(lambda: snapshot, max_age=30)
    server = ExporterHTTPServer(
        ("127.0.0.1", 0),
        MetricsPage(lambda: snapshot),
        health,
        live=(LiveSite(lambda: frozenset({HOSTILE})), events),
    ).start()
    publisher = LivePublisher(events, lambda: snapshot, health.ready, None, "stream").start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        page = wait_for(lambda: (p := browser.execute_script(READ_OVERVIEW))["rows"] and p)
        assert list(page["rows"]) == [f"quote_volume:BTC {HOSTILE}"]
        assert page["rows"][f"quote_volume:BTC {HOSTILE}"]["symbol"] == HOSTILE
        assert browser.execute_script("return document.querySelectorAll('img').length") == 0
        assert browser.title == "Binance exporter"
        link = browser.execute_script("return document.querySelector('#books a').href")
        browser.get(link)  # its book page: the name in the title and data attribute, escaped
        assert browser.title == f"{HOSTILE} live book"
        assert browser.execute_script("return document.querySelectorAll('img').length") == 0
        assert browser.execute_script("return document.body.dataset.symbol") == HOSTILE
    finally:
        publisher.stop()
        server.stop()


def test_both_pages_read_well_in_dark_mode_and_on_a_phone(exporter, browser):
    port, _ = exporter
    for path in ("/", f"/book/{SYMBOL}"):
        browser.get(f"http://127.0.0.1:{port}{path}")
        wait_for(lambda: browser.execute_script("return document.getElementById('status').dataset.state") == "live")
        colours = {}
        for scheme in ("light", "dark"):
            browser.execute_cdp_cmd(
                "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
            )
            colours[scheme] = browser.execute_script(
                "const s = getComputedStyle(document.body); return [s.backgroundColor, s.color];"
            )
        assert colours == {
            "light": ["rgb(255, 255, 255)", "rgb(27, 31, 36)"],
            "dark": ["rgb(15, 19, 24)", "rgb(228, 232, 238)"],
        }
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}
        )
        try:
            # Nothing wider than the phone's screen: the page never scrolls sideways.
            assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        finally:
            browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    no_errors_logged(browser)


def test_without_the_live_view_the_exporter_serves_metrics_only(market):
    port = free_port()
    process = start_module(
        "binance_exporter",
        *("--port", str(port), "--address", "127.0.0.1", "--base-url", market.url, "--stream-url", market.stream_url),
        *("--source", "stream", "--web.disable-ui"),
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200)
        status, _, body = http_get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"<script" not in body and b"metrics" in body
        for path in ("/events/overview", f"/book/{SYMBOL}", "/static/live.js"):
            assert http_get(f"http://127.0.0.1:{port}{path}")[0] == 404
    finally:
        assert stop_process(process)[0] == 0
