// The live view: fills / and /book/<SYMBOL> from the exporter's
// server-sent events. Every value is set as text (never as HTML), and every
// number is shown exactly as the exporter sent it: a decimal string.
"use strict";

(function () {
  const NONE = "n/a";
  const MAX_RETRY_MS = 10000;

  function $(id) {
    return document.getElementById(id);
  }

  function make(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function cell(text, field, className) {
    const td = make("td", text === null || text === undefined ? NONE : text, className);
    if (field) td.dataset.field = field;
    return td;
  }

  function setText(id, text) {
    $(id).textContent = text === null || text === undefined ? NONE : String(text);
  }

  // A duration: in milliseconds below a second, else in seconds.
  function seconds(value) {
    if (value === null || value === undefined) return NONE;
    return value < 1 ? Math.round(value * 1000) + " ms" : value.toFixed(1) + " s";
  }

  // Follows one event stream. EventSource reconnects by itself after a lost
  // connection; after an answer that is not an event stream (a restart
  // under way, too many live clients, a book no longer tracked) it gives
  // up, and this opens a new one, waiting longer each time.
  function follow(url, onData) {
    const status = $("status");
    const main = document.querySelector("main");
    let wait = 1000;
    function setState(state, text) {
      status.dataset.state = state;
      status.textContent = text;
      main.classList.toggle("stale", state !== "live");
    }
    function open() {
      const source = new EventSource(url);
      source.onmessage = function (message) {
        wait = 1000;
        onData(JSON.parse(message.data));
        setState("live", "live");
      };
      source.onerror = function () {
        setState("down", "disconnected: reconnecting… (values shown are not live)");
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(open, wait);
          wait = Math.min(wait * 2, MAX_RETRY_MS);
        }
      };
    }
    setState("connecting", "connecting…");
    open();
  }

  // A symbol's name, linked to its book's page if it has a live book.
  function bookLink(symbol, inSync) {
    if (inSync === null || inSync === undefined) return make("span", symbol);
    const link = make("a", symbol);
    link.href = "book/" + encodeURIComponent(symbol);
    return link;
  }

  // The overview: /.

  const LIST_COLUMNS = {
    quote_volume: [
      ["quote_volume", "24 h quote volume"],
      ["trades", "24 h trades"],
      ["bid_notional", "Bid notional"],
      ["ask_notional", "Ask notional"],
    ],
    trade_count: [
      ["trades", "24 h trades"],
      ["quote_volume", "24 h quote volume"],
      ["spread", "Spread"],
      ["spread_change", "Last change"],
    ],
  };
  const LIST_TITLES = {
    quote_volume: function (asset) {
      return "Q1 and Q3: top " + asset + "-quoted symbols by 24 h quote volume, with their books' notional (" + asset + ")";
    },
    trade_count: function (asset) {
      return "Q2, Q4 and Q5: top " + asset + "-quoted symbols by 24 h trade count, with their spreads (" + asset + ")";
    },
  };

  function renderList(list) {
    const section = make("section");
    section.dataset.list = list.ranking + ":" + list.quote_asset;
    section.appendChild(make("h2", LIST_TITLES[list.ranking](list.quote_asset)));
    if (!list.known) {
      section.appendChild(make("p", "Not known yet."));
      return section;
    }
    if (list.rows.length === 0) {
      section.appendChild(make("p", "No TRADING symbol is quoted in " + list.quote_asset + "."));
      return section;
    }
    const columns = LIST_COLUMNS[list.ranking];
    const table = make("table");
    const head = make("tr");
    head.appendChild(make("th", "#", "num"));
    head.appendChild(make("th", "Symbol"));
    for (const [, title] of columns) head.appendChild(make("th", title, "num"));
    table.appendChild(make("thead")).appendChild(head);
    const body = table.appendChild(make("tbody"));
    for (const row of list.rows) {
      const tr = make("tr");
      tr.dataset.symbol = row.symbol;
      tr.appendChild(cell(row.rank, "rank", "num"));
      const name = make("td");
      name.dataset.field = "symbol";
      name.appendChild(bookLink(row.symbol, row.in_sync));
      tr.appendChild(name);
      for (const [field] of columns) tr.appendChild(cell(row[field], field, "num"));
      body.appendChild(tr);
    }
    const wrap = make("div", null, "scroll");
    wrap.appendChild(table);
    section.appendChild(wrap);
    return section;
  }

  function renderOverview(data) {
    const health = data.health;
    setText("up", health.up ? "yes" : "no");
    setText("ready", health.ready_text);
    $("ready").className = health.ready ? "in-sync" : "out-of-sync";
    setText("last-update", health.last_update === null ? NONE : health.last_update + " (" + seconds(health.last_update_age) + " ago)");
    setText("cycle", health.cycle_duration === null ? NONE : seconds(health.cycle_duration) + " of " + seconds(health.update_interval));
    setText("books-in-sync", data.source === "stream" ? health.books_in_sync + " of " + health.books : "none: --source rest");
    setText("weight", (health.weight_used === null ? NONE : health.weight_used) + " of " + (health.weight_budget === null ? NONE : health.weight_budget) + " a minute");
    setText("paused", health.paused_until === null ? "no" : "until " + health.paused_until);
    setText("version", data.version + ", " + data.source + " mode, " + data.time);
    $("lists").replaceChildren(...data.lists.map(renderList));
    const books = $("books");
    books.replaceChildren(
      ...data.books.map(function (book) {
        const item = make("li");
        item.dataset.symbol = book.symbol;
        item.appendChild(bookLink(book.symbol, book.in_sync));
        item.appendChild(make("span", book.in_sync ? " in sync" : " resyncing", book.in_sync ? "in-sync" : "out-of-sync"));
        return item;
      })
    );
    $("no-books").textContent = data.books.length ? "" : data.source === "stream" ? "No live book yet." : "No live books: the exporter reads books over REST (--source rest).";
  }

  // One book: /book/<SYMBOL>.

  let eventAge = null; // [age when received, performance.now() then]

  function showAge() {
    if (eventAge === null) {
      setText("age", NONE);
      return;
    }
    setText("age", seconds(eventAge[0] + (performance.now() - eventAge[1]) / 1000));
  }

  function ladderRow(side, level, widest) {
    const [price, qty, notional] = level;
    const tr = make("tr", null, side);
    tr.dataset.price = price;
    tr.appendChild(cell(price, "price", "num price"));
    tr.appendChild(cell(qty, "qty", "num"));
    const td = make("td", null, "num");
    td.dataset.field = "notional";
    const bar = make("span", null, "bar");
    bar.style.width = (widest > 0 ? (100 * parseFloat(notional)) / widest : 0) + "%";
    td.appendChild(bar);
    td.appendChild(make("span", notional, "value"));
    tr.appendChild(td);
    return tr;
  }

  function renderLadder(data) {
    const body = $("ladder-rows");
    if (!data.in_sync) {
      body.replaceChildren();
      return;
    }
    const notionals = data.bids.concat(data.asks).map(function (level) {
      return parseFloat(level[2]);
    });
    const widest = Math.max(0, ...notionals);
    const rows = data.asks.slice().reverse().map(function (level) {
      return ladderRow("ask", level, widest);
    });
    const spreadRow = make("tr", null, "spread-row");
    const spreadCell = make("td", "spread " + (data.spread === null ? NONE : data.spread));
    spreadCell.colSpan = 3;
    spreadRow.appendChild(spreadCell);
    rows.push(spreadRow);
    for (const level of data.bids) rows.push(ladderRow("bid", level, widest));
    body.replaceChildren(...rows);
  }

  const SVG = "http://www.w3.org/2000/svg";
  const CHART = { width: 600, height: 260, top: 16, bottom: 228, left: 8, right: 592 };

  function svgText(x, y, text, anchor) {
    const node = document.createElementNS(SVG, "text");
    node.setAttribute("x", x);
    node.setAttribute("y", y);
    node.setAttribute("text-anchor", anchor);
    node.textContent = text;
    return node;
  }

  // Cumulative notional against price: bids step down to the left of the
  // spread, asks up to its right. The exporter sends positions from 0 to
  // CHART_SCALE along each axis, and the labels' exact values.
  const CHART_SCALE = 10000;

  function renderChart(data) {
    const chart = $("chart");
    if (!data.in_sync || !data.chart) {
      chart.replaceChildren();
      return;
    }
    const x = (position) => CHART.left + (position / CHART_SCALE) * (CHART.right - CHART.left);
    const y = (position) => CHART.bottom - (position / CHART_SCALE) * (CHART.bottom - CHART.top);
    function area(points, className) {
      if (!points.length) return null;
      let d = "M" + x(points[0][0]) + "," + CHART.bottom;
      let level = CHART.bottom;
      for (const [price, total] of points) {
        d += " L" + x(price) + "," + level + " L" + x(price) + "," + y(total);
        level = y(total);
      }
      d += " L" + x(points[points.length - 1][0]) + "," + CHART.bottom + " Z";
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      path.setAttribute("class", className);
      return path;
    }
    const parts = [area(data.chart.bids, "bids"), area(data.chart.asks, "asks")].filter(Boolean);
    parts.push(svgText(CHART.left, CHART.height - 8, data.chart.low, "start"));
    parts.push(svgText(CHART.right, CHART.height - 8, data.chart.high, "end"));
    parts.push(svgText(CHART.left + 4, CHART.top - 2, "max " + data.chart.total, "start"));
    chart.replaceChildren(...parts);
  }

  function renderTrades(trades) {
    $("trade-rows").replaceChildren(
      ...trades.map(function ([time, side, price, qty]) {
        const tr = make("tr");
        tr.appendChild(cell(new Date(time).toISOString().slice(11, 23), "time"));
        tr.appendChild(cell(side, "side", side === "buy" ? "bid" : "ask"));
        tr.appendChild(cell(price, "price", "num"));
        tr.appendChild(cell(qty, "qty", "num"));
        return tr;
      })
    );
  }

  function renderBook(data) {
    const sync = $("sync");
    if (!data.tracked) {
      sync.dataset.inSync = "false";
      setText("sync", "not tracked");
      sync.className = "out-of-sync";
      $("banner").textContent = data.symbol + " has no live book any more: it left the top lists. Values are not shown.";
      eventAge = null;
      for (const id of ["spread", "mid", "micro", "imbalance-1", "imbalance-5", "imbalance-20"]) setText(id, NONE);
      $("ladder-rows").replaceChildren();
      $("chart").replaceChildren();
      renderTrades([]);
      return;
    }
    const resyncs = Object.entries(data.resyncs).map(([reason, count]) => reason + " " + count).join(", ");
    sync.dataset.inSync = String(data.in_sync);
    sync.className = data.in_sync ? "in-sync" : "out-of-sync";
    setText("sync", (data.in_sync ? "in sync" : "resyncing") + (resyncs ? " (resyncs: " + resyncs + ")" : ""));
    $("banner").textContent = data.in_sync ? "" : "The book is out of sync and being taken again: no book value is shown until it is in sync.";
    eventAge = data.last_event_age === null ? null : [data.last_event_age, performance.now()];
    showAge();
    setText("levels", data.levels.bid + " bids, " + data.levels.ask + " asks");
    setText("spread", data.spread);
    setText("mid", data.mid);
    setText("micro", data.micro);
    for (const levels of ["1", "5", "20"]) setText("imbalance-" + levels, data.imbalance ? data.imbalance[levels] : null);
    renderLadder(data);
    renderChart(data);
    renderTrades(data.trades);
  }

  const page = document.body.dataset.page;
  if (page === "overview") {
    follow("events/overview", renderOverview);
  } else if (page === "book") {
    const symbol = document.body.dataset.symbol;
    follow("../events/book/" + encodeURIComponent(symbol), renderBook);
    setInterval(showAge, 250);
  }
})();
