"""The live view's pages: ``/`` (the answers), ``/book/<SYMBOL>`` (one
live book), their stylesheet and script under ``/static/``, and the
event streams they follow under ``/events/``.

The pages are fixed HTML: the script fills them from the events, setting
every value as text. The only values written into the HTML itself are
symbol names (a book page's title, the list of tracked books on a 404),
and they are escaped. Every URL is relative, so the pages work behind a
reverse proxy that serves the exporter under a path. Nothing is loaded
from anywhere but the exporter (see ``SECURITY_HEADERS``).
"""

from __future__ import annotations

import hashlib
import html
from importlib import resources
from typing import Callable, Optional, Union
from urllib.parse import unquote

from binance_exporter.exposition.http_server import Response
from binance_exporter.exposition.live_view import BOOK_TOPIC_PREFIX, OVERVIEW, book_topic

HTML = "text/html; charset=utf-8"
ASSETS = {"live.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}
# Scripts, styles and connections from the exporter only; no frames, no forms.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
BOOK_PREFIX = "/book/"
EVENTS_PREFIX = "/events/"
STATIC_PREFIX = "/static/"


def _load_assets() -> dict[str, tuple[bytes, str]]:
    """Each asset's bytes and a short hash of them, for URLs a browser may cache for good."""
    folder = resources.files("binance_exporter.exposition") / "static"
    assets = {}
    for name in ASSETS:
        content = (folder / name).read_bytes()
        assets[name] = (content, hashlib.sha256(content).hexdigest()[:12])
    return assets


_ASSETS = _load_assets()


def _head(title: str, root: str) -> str:
    css, js = (f"{root}static/{name}?v={_ASSETS[name][1]}" for name in ("live.css", "live.js"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
<script src="{js}" defer></script>
</head>
"""


def _fact(label: str, element_id: str) -> str:
    return f'<div><dt>{label}</dt><dd id="{element_id}">…</dd></div>'


_LINKS = """<nav class="links">
<a href="{root}metrics">/metrics</a>
<a href="{root}-/healthy">/-/healthy</a>
<a href="{root}-/ready">/-/ready</a>
</nav>
<noscript><p>This page fills itself with JavaScript; <a href="{root}metrics">/metrics</a> has every value.</p></noscript>
"""

OVERVIEW_PAGE = (
    _head("Binance exporter", "")
    + f"""<body data-page="overview">
<header><h1>Binance exporter</h1><span id="status" class="status">…</span></header>
<main>
<dl class="facts">
{_fact("Binance reachable", "up")}
{_fact("Ready", "ready")}
{_fact("Last update", "last-update")}
{_fact("Last cycle took", "cycle")}
{_fact("Live books in sync", "books-in-sync")}
{_fact("Request weight used", "weight")}
{_fact("Requests paused", "paused")}
{_fact("Exporter", "version")}
</dl>
<div id="lists"></div>
<h2>Live books</h2>
<ul id="books" class="books"></ul>
<p id="no-books"></p>
{_LINKS.format(root="")}</main>
</body>
</html>
"""
).encode()


def book_page(symbol: str) -> bytes:
    """The page of ``symbol``'s live book."""
    name = html.escape(symbol)
    return (
        _head(f"{symbol} live book", "../")
        + f"""<body data-page="book" data-symbol="{name}">
<header><a href="../">← the answers</a><h1>{name}</h1><span id="status" class="status">…</span></header>
<main>
<p id="banner" class="banner"></p>
<dl class="facts">
{_fact("Book", "sync")}
{_fact("Last event", "age")}
{_fact("Levels held", "levels")}
{_fact("Spread", "spread")}
{_fact("Mid price", "mid")}
{_fact("Micro price", "micro")}
{_fact("Imbalance, best level", "imbalance-1")}
{_fact("Imbalance, best 5", "imbalance-5")}
{_fact("Imbalance, best 20", "imbalance-20")}
</dl>
<div class="book-grid">
<section>
<h2>Best 20 levels a side</h2>
<table class="ladder">
<thead><tr><th class="num">Price</th><th class="num">Quantity</th><th class="num">Notional</th></tr></thead>
<tbody id="ladder-rows"></tbody>
</table>
</section>
<section>
<h2>Depth: cumulative notional against price</h2>
<svg id="chart" class="chart" viewBox="0 0 600 260" role="img" aria-label="depth chart"></svg>
<h2>Latest trades</h2>
<table>
<thead><tr><th>Time (UTC)</th><th>Taker</th><th class="num">Price</th><th class="num">Quantity</th></tr></thead>
<tbody id="trade-rows"></tbody>
</table>
</section>
</div>
{_LINKS.format(root="../")}</main>
</body>
</html>
"""
    ).encode()


def unknown_book_page(symbol: str, tracked: frozenset[str], stream_mode: bool = True) -> bytes:
    """The 404 page for a symbol with no live book: which symbols have one."""
    items = "\n".join(f'<li><a href="{html.escape(s)}">{html.escape(s)}</a></li>' for s in sorted(tracked))
    if tracked:
        listing = f'<ul class="books">\n{items}\n</ul>'
    elif stream_mode:
        listing = "<p>None yet: the books are being taken.</p>"
    else:
        listing = "<p>None: this exporter reads its books over REST (--source rest), every update.</p>"
    return (
        _head("No live book", "../")
        + f"""<body data-page="unknown-book">
<header><a href="../">← the answers</a><h1>No live book of {html.escape(symbol)}</h1></header>
<main>
<p>The exporter keeps a live book of the symbols in its top lists and of those named by --symbols.
These have one:</p>
{listing}
</main>
</body>
</html>
"""
    ).encode()


class LiveSite:
    """Answers the live view's paths; ``tracked`` says which symbols have a live book now."""

    def __init__(self, tracked: Callable[[], frozenset[str]], stream_mode: bool = True):
        self._tracked = tracked
        self.stream_mode = stream_mode

    def page(self, path: str) -> Optional[Response]:
        """The answer to a page or asset path, None for any other path."""
        if path == "/":
            return Response(200, HTML, OVERVIEW_PAGE, (*SECURITY_HEADERS, ("Cache-Control", "no-cache")))
        if path.startswith(STATIC_PREFIX) and path[len(STATIC_PREFIX) :] in ASSETS:
            name = path[len(STATIC_PREFIX) :]
            # Pages name an asset with a hash of its content: a URL's content never changes.
            cache = ("Cache-Control", "public, max-age=31536000, immutable")
            return Response(200, ASSETS[name], _ASSETS[name][0], (*SECURITY_HEADERS, cache))
        if path.startswith(BOOK_PREFIX):
            symbol = unquote(path[len(BOOK_PREFIX) :])
            tracked = self._tracked()
            if symbol in tracked:
                return Response(200, HTML, book_page(symbol), (*SECURITY_HEADERS, ("Cache-Control", "no-cache")))
            return Response(404, HTML, unknown_book_page(symbol, tracked, self.stream_mode), SECURITY_HEADERS)
        return None

    def topic(self, path: str) -> Union[str, Response, None]:
        """The topic an event stream path follows, a 404 for a book with no
        live book, None for any other path."""
        if not path.startswith(EVENTS_PREFIX):
            return None
        name = path[len(EVENTS_PREFIX) :]
        if name == OVERVIEW:
            return OVERVIEW
        if name.startswith(BOOK_TOPIC_PREFIX):
            symbol = unquote(name[len(BOOK_TOPIC_PREFIX) :])
            if symbol in self._tracked():
                return book_topic(symbol)
            return Response(404, "text/plain; charset=utf-8", f"no live book of {symbol[:100]!r}\n".encode())
        return None
