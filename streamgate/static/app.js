// streamgate live page: one ES module, no build step, no external assets.
//
// - Market data from /ws/public (PROTOCOL.md section 2): orderbook/<m> (snapshot, then
//   deltas checked for seq continuity; a gap re-subscribes for a fresh snapshot),
//   trade/<m> and ticker/<m>. Reconnects with backoff and resumes with the last
//   offset/epoch of each topic (section 3). The trade tape starts from the recent trades
//   of GET /api/v1/history and resumes the trade topic from the last of them.
// - A demo sub-user's push stream from /ws (section 1), with a ticket from POST /demo/ticket
//   (or one pasted in, when the gateway runs without the demo venue).
// - The gateway's figures from GET /api/v1/stats, every second.

const WS_BASE = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
const BOOK_ROW_PX = 20; // must match .level height in style.css
const MAX_TRADES = 30;
const MAX_PUSH_ENTRIES = 200;
const STATS_EVERY_MS = 1000;
const SPARK_POINTS = 60;

const $ = (selector, root = document) => root.querySelector(selector);

// ---------------------------------------------------------------------------------------
// Formatting

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** An integer scaled by 10^decimals, exactly ("6500050", 2 -> "65,000.50"). */
function fmtScaled(value, decimals) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  if (!Number.isInteger(value)) return value.toLocaleString("en-US", { maximumFractionDigits: decimals });
  const negative = value < 0;
  let digits = Math.abs(value).toString();
  let frac = "";
  if (decimals > 0) {
    digits = digits.padStart(decimals + 1, "0");
    frac = "." + digits.slice(-decimals);
    digits = digits.slice(0, -decimals);
  }
  return (negative ? "-" : "") + groupThousands(digits) + frac;
}

/** A decimal string of base units with `decimals` decimals, cut to `keep` decimals. */
function fmtUnits(raw, decimals, keep) {
  if (typeof raw !== "string" || !/^\d+$/.test(raw)) return String(raw ?? "–");
  const digits = raw.padStart(decimals + 1, "0");
  const whole = digits.slice(0, -decimals) || "0";
  const frac = digits.slice(-decimals).slice(0, keep).replace(/0+$/, "");
  return groupThousands(whole.replace(/^0+(?=\d)/, "")) + (frac ? "." + frac : "");
}

function fmtClock(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

function fmtCountdown(ms) {
  if (!Number.isFinite(ms)) return "–";
  const s = Math.max(0, Math.floor(ms / 1000));
  const parts = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return parts.map((n) => String(n).padStart(2, "0")).join(":");
}

function fmtRate(n) {
  if (typeof n !== "number") return "–";
  return n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function fetchJson(url, options = {}, timeoutMs = 5000) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetch(url, { ...options, signal: abort.signal, cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body?.error?.message ?? body?.error?.code ?? response.statusText;
      throw new Error(`${response.status} ${message}`);
    }
    return body;
  } finally {
    clearTimeout(timer);
  }
}

/** Reconnect delay: about min(30 s, attempt x 1 s), with some jitter. */
function backoffMs(attempt) {
  return Math.min(30, Math.max(1, attempt)) * 1000 * (0.8 + Math.random() * 0.4);
}

// ---------------------------------------------------------------------------------------
// State

const app = {
  demo: null, // the /demo/info document, or null without the demo venue
  markets: [],
  market: null, // {market_addr, symbol, price_decimals, size_decimals, ...}
};

const book = {
  asks: new Map(), // price -> size
  bids: new Map(),
  seq: null,
  ready: false, // a snapshot was applied
  awaiting: true, // deltas are ignored until a snapshot
  resyncs: 0,
  updatedMs: null,
  shown: { ask: new Map(), bid: new Map() }, // price -> size as last rendered (flashes)
  dirty: false,
};

const tape = { trades: [], ids: new Set(), fresh: new Set(), dirty: false };
const ticker = { data: null, previousLast: null };

// ---------------------------------------------------------------------------------------
// Public market data: /ws/public

const pub = {
  ws: null,
  attempt: 0,
  timer: null,
  reqSeq: 0,
  positions: new Map(), // topic -> {offset, epoch} of the last event applied
  topics: [],
  lastAck: null, // the last "subscribed" frame (its "recovered" says whether a resume worked)
};

function topicsOf(market) {
  return ["orderbook", "trade", "ticker"].map((kind) => `${kind}/${market.market_addr}`);
}

function setConn(state, label) {
  const node = $("#ws-status");
  node.dataset.state = state;
  $(".label", node).textContent = label;
}

function pubSend(msg) {
  if (pub.ws && pub.ws.readyState === WebSocket.OPEN) {
    pub.ws.send(JSON.stringify(msg));
    return true;
  }
  return false;
}

function subscribe(topics, resume) {
  const msg = { op: "subscribe", args: topics, req_id: `s${++pub.reqSeq}` };
  if (resume && Object.keys(resume).length > 0) msg.resume = resume;
  return pubSend(msg);
}

function openPublic() {
  clearTimeout(pub.timer);
  pub.timer = null;
  setConn("connecting", pub.attempt ? `reconnecting (try ${pub.attempt + 1})` : "connecting");
  let ws;
  try {
    ws = new WebSocket(WS_BASE + "/ws/public");
  } catch (err) {
    console.error("cannot open /ws/public", err);
    schedulePublic(null);
    return;
  }
  pub.ws = ws;
  ws.onopen = () => {
    if (ws !== pub.ws) return;
    pub.attempt = 0;
    setConn("open", "live");
    subscribeMarket(true);
  };
  ws.onmessage = (event) => {
    if (ws === pub.ws) onPublicMessage(event.data);
  };
  ws.onclose = (event) => {
    if (ws !== pub.ws) return;
    pub.ws = null;
    schedulePublic(event);
  };
}

function schedulePublic(event) {
  pub.attempt += 1;
  const delay = backoffMs(pub.attempt);
  const why = event ? ` (${event.code}${event.reason ? " " + event.reason : ""})` : "";
  const until = Date.now() + delay;
  const tick = () => {
    if (pub.ws) return;
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    setConn("down", `offline${why}, retry in ${left}s`);
  };
  tick();
  const countdown = setInterval(tick, 1000);
  pub.timer = setTimeout(() => {
    clearInterval(countdown);
    openPublic();
  }, delay);
}

/**
 * Subscribe the selected market's topics; after a reconnect, resume where we were.
 * The trade tape starts from the recent trades history holds (GET /api/v1/history), and
 * the subscribe resumes the trade topic from the last of them: no gap, no repeat.
 */
async function subscribeMarket(resuming) {
  const market = app.market;
  if (!market) return;
  const topics = topicsOf(market);
  pub.topics = topics;
  const tradeTopic = topics[1];
  const loadTape = !pub.positions.has(tradeTopic);
  if (loadTape) await loadRecentTrades(tradeTopic);
  if (app.market !== market) return; // another market was chosen meanwhile
  const resume = {};
  for (const topic of topics) {
    const position = pub.positions.get(topic);
    if (position && (resuming || (loadTape && topic === tradeTopic))) resume[topic] = position;
  }
  if (!resume[topics[0]]) book.awaiting = true; // a fresh snapshot will come
  subscribe(topics, resume);
}

/** Fill the tape with the topic's recent trades, oldest first, as the stream sent them. */
async function loadRecentTrades(topic) {
  let doc;
  try {
    doc = await fetchJson(`/api/v1/history?topic=${encodeURIComponent(topic)}&limit=${MAX_TRADES}`);
  } catch (err) {
    console.warn("no recent trades:", err);
    return;
  }
  if (!pub.topics.includes(topic)) return;
  for (const frame of doc.events) onMarketEvent(frame);
  if (!doc.events.length) pub.positions.set(topic, { offset: doc.offset, epoch: doc.epoch });
  tape.fresh.clear(); // history, not news: no flash
}

function onPublicMessage(raw) {
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch {
    return;
  }
  if (msg.op === "event") {
    onMarketEvent(msg);
  } else if (msg.op === "subscribed") {
    pub.lastAck = msg;
    for (const [topic, ok] of Object.entries(msg.recovered ?? {})) {
      if (!ok) pub.positions.delete(topic);
    }
  } else if (msg.op === "error") {
    console.warn("/ws/public refused:", msg.message, msg.detail ?? "");
  }
}

function onMarketEvent(msg) {
  const topic = msg.topic;
  if (!app.market || !pub.topics.includes(topic)) return; // a market we left
  const kind = topic.slice(0, topic.indexOf("/"));
  const data = msg.data;
  let applied = true;
  if (kind === "orderbook") applied = onBook(topic, data);
  else if (kind === "trade") onTrades(data);
  else if (kind === "ticker") onTicker(data);
  if (applied && Number.isInteger(msg.offset) && typeof msg.epoch === "string") {
    pub.positions.set(topic, { offset: msg.offset, epoch: msg.epoch });
  }
}

function setLevels(side, levels) {
  for (const [price, size] of levels ?? []) {
    if (size === 0) side.delete(price);
    else side.set(price, size);
  }
}

/** Apply one orderbook event; false when it was not applied (so not a resume point). */
function onBook(topic, data) {
  if (data.type === "orderbook_snapshot") {
    book.asks = new Map();
    book.bids = new Map();
    setLevels(book.asks, data.asks);
    setLevels(book.bids, data.bids);
    book.seq = data.seq;
    book.ready = true;
    book.awaiting = false;
  } else if (data.type === "orderbook_delta") {
    if (book.awaiting || !book.ready) return false;
    if (data.seq <= book.seq) return false; // already applied (an overlapping replay)
    if (data.seq !== book.seq + 1) {
      // A gap: this book is wrong from here on. Re-subscribing answers a fresh snapshot.
      console.warn(`orderbook seq gap: have ${book.seq}, got ${data.seq}; resubscribing`);
      book.awaiting = true;
      book.resyncs += 1;
      pub.positions.delete(topic);
      subscribe([topic]);
      return false;
    }
    setLevels(book.asks, data.asks);
    setLevels(book.bids, data.bids);
    book.seq = data.seq;
  } else {
    return false;
  }
  book.updatedMs = data.timestamp_ms ?? Date.now();
  book.dirty = true;
  scheduleRender();
  return true;
}

function onTrades(data) {
  const trades = Array.isArray(data.trades) ? data.trades : [];
  for (const trade of trades) {
    if (tape.ids.has(trade.id)) continue; // a replayed trade (ids are stable)
    tape.ids.add(trade.id);
    tape.fresh.add(trade.id);
    tape.trades.unshift(trade);
  }
  if (tape.trades.length > MAX_TRADES) {
    tape.trades.length = MAX_TRADES;
    if (tape.ids.size > 4 * MAX_TRADES) tape.ids = new Set(tape.trades.map((t) => t.id));
  }
  tape.dirty = true;
  scheduleRender();
}

function onTicker(data) {
  if (ticker.data) ticker.previousLast = ticker.data.last_price;
  ticker.data = data;
  renderTicker();
}

// ---------------------------------------------------------------------------------------
// Rendering: order book, trade tape, ticker

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    if (book.dirty) renderBook();
    if (tape.dirty) renderTape();
  });
}

function ensureRows(container, count) {
  while (container.children.length < count) {
    const row = el("div", "level");
    row.append(el("span", "price"), el("span", "size"), el("span", "total"));
    container.append(row);
  }
  while (container.children.length > count) container.lastChild.remove();
  return Array.from(container.children);
}

function renderSide(container, levels, kind, maxTotal, totals, shown, flash) {
  const rows = ensureRows(container, Math.max(levels.length, rowsFitting(container)));
  const next = new Map();
  // Asks are drawn best-last (nearest the spread, at the bottom); bids best-first.
  const order = kind === "ask" ? levels.map((_, i) => levels.length - 1 - i) : levels.map((_, i) => i);
  const pad = rows.length - levels.length;
  rows.forEach((row, r) => {
    const i = kind === "ask" ? (r < pad ? -1 : order[r - pad]) : r < levels.length ? order[r] : -1;
    if (i < 0) {
      row.className = "level empty";
      row.removeAttribute("data-price");
      row.style.removeProperty("--depth");
      row.style.removeProperty("--size");
      for (const cell of row.children) cell.textContent = "";
      return;
    }
    const [price, size] = levels[i];
    const total = totals[i];
    next.set(price, size);
    row.className = `level ${kind}`;
    row.dataset.price = String(price);
    row.style.setProperty("--depth", (total / maxTotal).toFixed(4));
    row.style.setProperty("--size", (size / maxTotal).toFixed(4));
    row.children[0].textContent = fmtScaled(price, app.market.price_decimals ?? 0);
    row.children[1].textContent = fmtScaled(size, app.market.size_decimals ?? 0);
    row.children[2].textContent = fmtScaled(total, app.market.size_decimals ?? 0);
    if (flash && shown.get(price) !== size) {
      // A changed level: its size briefly lights up (rows keep their place; no stacking).
      const cell = row.children[1];
      if (cell.getAnimations().length === 0) {
        cell.animate(
          [{ color: kind === "ask" ? "#ff8595" : "#5cf0b4" }, { color: "#dce3ec" }],
          { duration: 500, easing: "ease-out" },
        );
      }
    }
  });
  return next;
}

function rowsFitting(container) {
  return Math.max(3, Math.floor(container.clientHeight / BOOK_ROW_PX));
}

function renderBook() {
  book.dirty = false;
  const root = $("#book");
  if (!app.market || !book.ready) {
    root.dataset.state = "empty";
    $("#asks").replaceChildren();
    $("#bids").replaceChildren();
    $('[data-field="spread"]').textContent = "";
    $("#book-meta").textContent = "";
    return;
  }
  root.dataset.state = book.awaiting ? "resync" : "live";
  const asksEl = $("#asks");
  const bidsEl = $("#bids");
  const asks = [...book.asks].sort((a, b) => a[0] - b[0]).slice(0, rowsFitting(asksEl));
  const bids = [...book.bids].sort((a, b) => b[0] - a[0]).slice(0, rowsFitting(bidsEl));
  const cumulative = (levels) => {
    let sum = 0;
    return levels.map(([, size]) => (sum += size));
  };
  const askTotals = cumulative(asks);
  const bidTotals = cumulative(bids);
  const maxTotal = Math.max(1, askTotals.at(-1) ?? 0, bidTotals.at(-1) ?? 0);
  const flash = book.shown.ask.size + book.shown.bid.size > 0;
  book.shown.ask = renderSide(asksEl, asks, "ask", maxTotal, askTotals, book.shown.ask, flash);
  book.shown.bid = renderSide(bidsEl, bids, "bid", maxTotal, bidTotals, book.shown.bid, flash);

  const pd = app.market.price_decimals ?? 0;
  const bestAsk = asks[0]?.[0];
  const bestBid = bids[0]?.[0];
  const spreadEl = $('[data-field="spread"]');
  if (bestAsk !== undefined && bestBid !== undefined) {
    const spread = bestAsk - bestBid;
    const mid = (bestAsk + bestBid) / 2;
    const bps = mid > 0 ? (spread / mid) * 10_000 : 0;
    spreadEl.textContent = `spread ${fmtScaled(spread, pd)} · ${bps.toFixed(1)} bps`;
  } else {
    spreadEl.textContent = "one-sided book";
  }
  $("#book-meta").textContent =
    `seq ${book.seq}` + (book.resyncs ? ` · ${book.resyncs} resync${book.resyncs > 1 ? "s" : ""}` : "");
  renderLastTrade();
}

function renderLastTrade() {
  const node = $('[data-field="last_trade"]');
  const last = tape.trades[0];
  const price = last?.price ?? ticker.data?.last_price;
  if (!app.market || price === undefined) {
    node.textContent = "–";
    return;
  }
  node.textContent = fmtScaled(price, app.market.price_decimals ?? 0);
  node.dataset.side = last?.side ?? "";
}

function renderTape() {
  tape.dirty = false;
  const body = $("#trades");
  const pd = app.market?.price_decimals ?? 0;
  const sd = app.market?.size_decimals ?? 0;
  const rows = tape.trades.map((trade) => {
    const row = el("tr", `trade ${trade.side === "sell" ? "sell" : "buy"}`);
    row.dataset.id = String(trade.id);
    const when = trade.timestamp_ms ?? (trade.timestamp ? trade.timestamp * 1000 : Date.now());
    row.append(
      el("td", "time", fmtClock(when)),
      el("td", "side", trade.side === "sell" ? "Sell" : "Buy"),
      el("td", "num price", fmtScaled(trade.price, pd)),
      el("td", "num", fmtScaled(trade.size, sd)),
    );
    if (tape.fresh.has(trade.id)) row.classList.add("fresh");
    return row;
  });
  tape.fresh.clear();
  body.replaceChildren(...rows);
  $(".trades-panel").dataset.state = rows.length ? "live" : "empty";
  $("#trades-meta").textContent = rows.length ? `latest ${rows.length}` : "";
  renderLastTrade();
}

function setField(root, field, text, extraClass) {
  const node = $(`[data-field="${field}"]`, root);
  if (!node) return;
  node.textContent = text;
  if (extraClass !== undefined) node.dataset.dir = extraClass;
}

function renderTicker() {
  const root = $("#ticker");
  const t = ticker.data;
  const m = app.market;
  if (!m) return;
  setField(root, "symbol", t?.symbol || marketLabel(m));
  if (!t) {
    root.dataset.state = "empty";
    for (const node of root.querySelectorAll("dd[data-field], .big[data-field]")) node.textContent = "–";
    setField(root, "ts", "");
    return;
  }
  root.dataset.state = "live";
  const pd = m.price_decimals ?? 0;
  const sd = m.size_decimals ?? 0;
  const base = (m.symbol ?? "").split(/[-/]/)[0];
  const prev = ticker.previousLast;
  const dir = prev === null || prev === t.last_price ? "" : t.last_price > prev ? "up" : "down";
  setField(root, "last_price", fmtScaled(t.last_price, pd), dir);
  setField(root, "mark_price", fmtScaled(t.mark_price, pd));
  setField(root, "index_price", fmtScaled(t.index_price, pd));
  setField(root, "volume_24h", `${fmtScaled(t.volume_24h, sd)} ${base}`.trim());
  setField(root, "turnover_24h", fmtScaled(t.turnover_24h, pd));
  setField(root, "open_interest", `${fmtScaled(t.open_interest, sd)} ${base}`.trim());
  setField(root, "open_interest_value", fmtScaled(t.open_interest_value, pd));
  const pct = typeof t.funding_rate_percentage === "number" ? t.funding_rate_percentage : t.funding_rate * 100;
  setField(root, "funding_rate", `${pct >= 0 ? "+" : ""}${pct.toFixed(4)}%`, pct >= 0 ? "up" : "down");
  setField(root, "ts", t.ts ? `updated ${fmtClock(t.ts)}` : "");
  renderCountdown();
  if (!tape.trades.length) renderLastTrade();
}

function renderCountdown() {
  const t = ticker.data;
  if (!t) return;
  setField($("#ticker"), "next_funding", fmtCountdown(t.next_funding_time - Date.now()));
}

// ---------------------------------------------------------------------------------------
// Market selection

function marketKey(m) {
  return m.symbol || m.market_addr;
}

/** A market's name to show: its symbol, or a shortened address when it has none. */
function marketLabel(m) {
  const name = m.symbol && m.symbol !== m.market_addr ? m.symbol : m.market_addr;
  return name.length > 24 ? `${name.slice(0, 8)}…${name.slice(-6)}` : name;
}

function selectMarket(addr) {
  const market = app.markets.find((m) => m.market_addr === addr);
  if (!market || market === app.market) return;
  if (pub.topics.length) pubSend({ op: "unsubscribe", args: pub.topics, req_id: `u${++pub.reqSeq}` });
  for (const topic of pub.topics) pub.positions.delete(topic);
  app.market = market;
  Object.assign(book, { asks: new Map(), bids: new Map(), seq: null, ready: false, awaiting: true, resyncs: 0 });
  book.shown = { ask: new Map(), bid: new Map() };
  tape.trades = [];
  tape.ids = new Set();
  ticker.data = null;
  ticker.previousLast = null;
  history.replaceState(null, "", `#${encodeURIComponent(marketKey(market))}`);
  document.title = `${marketLabel(market)} · streamgate live`;
  renderBook();
  renderTape();
  renderTicker();
  subscribeMarket(false);
}

async function loadMarkets() {
  try {
    app.demo = await fetchJson("/demo/info");
    app.markets = app.demo.markets ?? [];
  } catch {
    app.demo = null;
    try {
      app.markets = await fetchJson("/api/v1/markets");
    } catch (err) {
      console.warn("no markets:", err);
      app.markets = [];
    }
  }
  const select = $("#market-select");
  select.replaceChildren();
  $("#book-empty").textContent = app.markets.length
    ? "waiting for the first snapshot…"
    : "no markets yet: the list fills once a producer publishes to one";
  if (!app.markets.length) {
    select.append(el("option", "", "no markets yet"));
    select.disabled = true;
    return false;
  }
  for (const m of app.markets) {
    const option = el("option", "", marketLabel(m));
    option.title = m.market_addr;
    option.value = m.market_addr;
    select.append(option);
  }
  select.disabled = false;
  const wanted = decodeURIComponent(location.hash.slice(1));
  const initial = app.markets.find((m) => marketKey(m) === wanted || m.market_addr === wanted) ?? app.markets[0];
  select.value = initial.market_addr;
  select.addEventListener("change", () => selectMarket(select.value));
  selectMarket(initial.market_addr);
  return true;
}

// ---------------------------------------------------------------------------------------
// Push stream: /ws with a ticket

const push = {
  ws: null,
  user: null,
  token: null,
  wanted: false,
  attempt: 0,
  timer: null,
  position: null, // {offset, epoch} of the last push, for ?offset=&epoch=
};

function setPushStatus(state, label) {
  const node = $("#push-status");
  node.dataset.state = state;
  node.textContent = label;
  $("#push-connect").disabled = state === "open" || state === "connecting";
  $("#push-disconnect").disabled = !push.wanted;
}

const CENTS = (raw) => (typeof raw === "string" && /^\d+$/.test(raw) ? fmtUnits(raw, 2, 2) : String(raw));

function summarize(name, d) {
  if (!d || typeof d !== "object") return "";
  if (name === "connected") {
    return `userId ${d.userId}` + (d.recovered === undefined ? "" : ` · recovered ${d.recovered}`);
  }
  if (name === "system.notice") return d.message ?? "";
  if (name === "deposit.transfer") {
    const t = d.transfer ?? {};
    return `${d.fundingId} · ${t.amount ?? "?"} transferred${t.chain ? " on " + t.chain : ""}`;
  }
  if (name === "deposit.pending") {
    return `${d.depositId} · ${fmtUnits(d.amountWei, 18, 4)} ${d.token ?? ""} on ${d.chain ?? "?"}`;
  }
  if (name === "deposit.completed") {
    if ("fundingId" in d) return `${d.fundingId} · paid ${d.payAmountToken} → $${d.receiveAmountUsd}`;
    return `${d.depositId} · ${fmtUnits(d.amountWei, 18, 4)} ${d.token ?? ""} → $${CENTS(d.amountUsdCents)} · ${d.confirmations} conf.`;
  }
  if (name === "deposit.failed") {
    return `${d.fundingId ?? d.depositId} · ${d.status ? d.status + ": " : ""}${d.reason}`;
  }
  if (name === "deposit.refunded") return `${d.fundingId} · refunded`;
  if (name.startsWith("trade.")) {
    const items = Array.isArray(d.items) ? d.items.length : 0;
    const first = items ? d.items[0].name : "";
    const more = items > 1 ? ` +${items - 1}` : "";
    const err = d.error?.code ? ` · ${d.error.code}` : "";
    return `${d.type} ${first}${more} · ${d.totalPrice} ${d.currency}${err}`;
  }
  return JSON.stringify(d).slice(0, 140);
}

function kindOf(name) {
  if (name === "connected") return "connected";
  if (name === "system.notice") return "notice";
  return name.split(".")[0];
}

function addPushEntry(frame) {
  const name = typeof frame.event === "string" ? frame.event : "?";
  const item = el("li", `push-item kind-${kindOf(name)}`);
  item.dataset.event = name;
  if (Number.isInteger(frame.offset)) item.dataset.offset = String(frame.offset);
  const details = el("details");
  const head = el("summary");
  const badge = el("span", "badge", name);
  if (name === "system.notice" && frame.data?.severity) badge.dataset.severity = frame.data.severity;
  if (name.startsWith("trade.") || name.startsWith("deposit.")) badge.dataset.status = name.split(".")[1];
  head.append(
    badge,
    el("span", "when", fmtClock(frame.ts ?? Date.now())),
    el("span", "offset", Number.isInteger(frame.offset) ? `#${frame.offset}` : ""),
    el("span", "summary-text", summarize(name, frame.data)),
  );
  details.append(head, el("pre", "raw", JSON.stringify(frame, null, 2)));
  item.append(details);
  prependPush(item);
}

function addPushNote(text, state) {
  const item = el("li", `push-item note ${state ?? ""}`, text);
  item.dataset.event = "_note";
  prependPush(item);
}

function prependPush(item) {
  const log = $("#push-log");
  log.prepend(item);
  while (log.children.length > MAX_PUSH_ENTRIES) log.lastChild.remove();
  $("#push").dataset.state = "live";
}

async function mintTicket(subUser) {
  const doc = await fetchJson("/demo/ticket", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub_user: subUser }),
  });
  return doc.token;
}

async function pushConnect() {
  const user = app.demo ? $("#push-user").value : "(ticket)";
  if (user !== push.user) {
    $("#push-log").replaceChildren();
    push.position = null;
    push.token = null;
  }
  if (!app.demo) push.token = $("#push-token").value.trim() || null;
  push.user = user;
  push.wanted = true;
  push.attempt = 0;
  await openPush();
}

function pushDisconnect() {
  push.wanted = false;
  clearTimeout(push.timer);
  push.timer = null;
  const ws = push.ws;
  push.ws = null;
  if (ws) ws.close(1000, "bye");
  setPushStatus("idle", "disconnected");
  addPushNote("disconnected");
}

async function openPush() {
  clearTimeout(push.timer);
  push.timer = null;
  setPushStatus("connecting", push.attempt ? "reconnecting…" : "connecting…");
  if (!push.token) {
    if (!app.demo) {
      push.wanted = false;
      setPushStatus("error", "no ticket");
      addPushNote("paste a ticket from POST /auth/ws-token first", "error");
      return;
    }
    try {
      push.token = await mintTicket(push.user);
    } catch (err) {
      addPushNote(`ticket refused: ${err.message}`, "error");
      schedulePush();
      return;
    }
    if (!push.wanted) return; // disconnected meanwhile
  }
  let url = WS_BASE + "/ws";
  if (push.position) {
    url += `?offset=${push.position.offset}&epoch=${encodeURIComponent(push.position.epoch)}`;
  }
  let ws;
  try {
    ws = new WebSocket(url, ["bearer." + push.token]);
  } catch (err) {
    addPushNote(`cannot open /ws: ${err.message}`, "error");
    push.wanted = false;
    setPushStatus("error", "error");
    return;
  }
  push.ws = ws;
  ws.onmessage = (event) => {
    if (ws !== push.ws) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.event === "connected") {
      push.attempt = 0;
      setPushStatus("open", `live · ${frame.data?.userId ?? push.user}`);
    }
    if (Number.isInteger(frame.offset) && typeof frame.epoch === "string") {
      push.position = { offset: frame.offset, epoch: frame.epoch };
    }
    addPushEntry(frame);
  };
  ws.onclose = (event) => {
    if (ws !== push.ws) return;
    push.ws = null;
    addPushNote(`closed ${event.code}${event.reason ? " " + event.reason : ""}`, "closed");
    if (!push.wanted) {
      setPushStatus("idle", "disconnected");
      return;
    }
    if (event.code === 4002) {
      push.wanted = false;
      setPushStatus("error", "closed: read-only");
      return;
    }
    if (event.code === 4001) {
      push.token = null; // expired or refused: mint a new one
      if (!app.demo) {
        push.wanted = false;
        setPushStatus("error", event.reason || "invalid token");
        return;
      }
    }
    schedulePush();
  };
}

function schedulePush() {
  if (!push.wanted) return;
  push.attempt += 1;
  const delay = backoffMs(push.attempt);
  setPushStatus("down", `retry in ${Math.ceil(delay / 1000)}s`);
  push.timer = setTimeout(() => {
    if (push.wanted) openPush();
  }, delay);
}

function setupPush() {
  const select = $("#push-user");
  select.replaceChildren();
  if (app.demo && app.demo.sub_users?.length) {
    for (const user of app.demo.sub_users) {
      const option = el("option", "", user);
      option.value = user;
      select.append(option);
    }
    $("#push-hint").replaceChildren(
      "Mints a ticket for tenant ",
      el("code", "", app.demo.tenant),
      " (",
      el("code", "", "POST /demo/ticket"),
      "), then opens ",
      el("code", "", "/ws"),
      " with the subprotocol ",
      el("code", "", "bearer.<ticket>"),
      ".",
    );
    // Another sub-user while connected: switch the socket over to them.
    select.addEventListener("change", () => {
      if (!push.wanted) return;
      pushDisconnect();
      pushConnect();
    });
  } else {
    select.hidden = true;
    $("#push-token").hidden = false;
    $(".push-empty").textContent = "Paste a ticket and connect to see that sub-user's push events.";
    $("#push-hint").innerHTML =
      "No demo venue here: mint a ticket with <code>POST /auth/ws-token</code> " +
      "(<code>api-key</code>, <code>On-Behalf-Of</code>) and paste it.";
  }
  $("#push-connect").addEventListener("click", () => pushConnect());
  $("#push-disconnect").addEventListener("click", () => pushDisconnect());
  setPushStatus("idle", "disconnected");
}

// ---------------------------------------------------------------------------------------
// Gateway figures: GET /api/v1/stats

const spark = { delivered: [], published: [] };

async function pollStats() {
  const root = $("#stats");
  try {
    const s = await fetchJson("/api/v1/stats", {}, 2500);
    const conns = s.connections ?? {};
    for (const key of ["public", "private", "push"]) {
      $(`[data-stat="${key}"]`, root).textContent = String(conns[key] ?? 0);
    }
    $('[data-stat="published_per_s"]', root).textContent = fmtRate(s.published_per_s);
    $('[data-stat="delivered_per_s"]', root).textContent = fmtRate(s.delivered_per_s);
    root.dataset.state = "live";
    spark.delivered.push(s.delivered_per_s ?? 0);
    spark.published.push(s.published_per_s ?? 0);
    for (const series of [spark.delivered, spark.published]) {
      if (series.length > SPARK_POINTS) series.shift();
    }
    drawSpark();
  } catch {
    root.dataset.state = "down";
  } finally {
    setTimeout(pollStats, STATS_EVERY_MS);
  }
}

function drawSpark() {
  const canvas = $("#stats-spark");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 120;
  const h = canvas.clientHeight || 30;
  if (canvas.width !== Math.round(w * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "rgba(255,255,255,.03)";
  ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = "rgba(255,255,255,.08)";
  ctx.fillRect(0, h - 1, w, 1);
  const top = Math.max(1, ...spark.delivered, ...spark.published);
  const line = (series, color, fill) => {
    if (series.length < 2) return;
    const step = w / (SPARK_POINTS - 1);
    const x0 = w - (series.length - 1) * step;
    ctx.beginPath();
    series.forEach((v, i) => {
      const x = x0 + i * step;
      const y = h - 2 - (v / top) * (h - 4);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    if (fill) {
      ctx.lineTo(w, h);
      ctx.lineTo(x0, h);
      ctx.closePath();
      ctx.fillStyle = fill;
      ctx.fill();
    }
  };
  line(spark.published, "rgba(139,148,158,.9)", null);
  line(spark.delivered, "#4c9aff", "rgba(76,154,255,.15)");
}

// ---------------------------------------------------------------------------------------
// Start

async function main() {
  // For a person's console and for the browser tests; nothing on the page depends on it.
  window.streamgateLive = { app, book, tape, ticker, pub, push };
  setInterval(renderCountdown, 1000);
  new ResizeObserver(() => {
    book.dirty = true;
    scheduleRender();
  }).observe($("#book"));
  pollStats();
  await loadMarkets();
  setupPush();
  openPublic();
  // Markets appear once a producer publishes to them: look again while there are none.
  if (!app.markets.length) {
    const retry = setInterval(async () => {
      if (await loadMarkets()) clearInterval(retry);
    }, 5000);
  }
}

main();
