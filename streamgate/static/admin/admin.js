// streamgate admin page: GET /admin/api with the admin key, every two seconds.
//
// The key is asked for once and kept in this tab's sessionStorage only: never in a URL,
// never in localStorage, never sent anywhere but the Authorization header of /admin/api.

const KEY_SLOT = "streamgate.admin_key";
const EVERY_MS = 2000;

const $ = (selector, root = document) => root.querySelector(selector);

function setStatus(state, label) {
  const el = $("#admin-status");
  el.dataset.state = state;
  $(".label", el).textContent = label;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  return td;
}

function fillRows(tbody, rows, columns, emptyText) {
  const out = rows.map((row) => {
    const tr = document.createElement("tr");
    for (const [value, cls] of columns(row)) tr.append(cell(value, cls));
    return tr;
  });
  if (!out.length) {
    const tr = document.createElement("tr");
    const td = cell(emptyText, "empty");
    td.colSpan = 4;
    tr.append(td);
    out.push(tr);
  }
  tbody.replaceChildren(...out);
}

function time(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function render(doc) {
  const figures = $("#figures");
  for (const kind of ["public", "private", "push"]) {
    $(`[data-figure="${kind}"]`, figures).textContent = String(doc.connections[kind] ?? 0);
  }
  $('[data-figure="channels"]', figures).textContent = String(doc.channels.total);
  $('[data-figure="published_per_s"]', figures).textContent = String(doc.published_per_s);
  $('[data-figure="webhooks_due"]', figures).textContent =
    doc.webhooks.due === null ? "?" : String(doc.webhooks.due);
  $('[data-figure="slow_total"]', figures).textContent = String(doc.slow_consumers.total);
  figures.dataset.state = "live";
  $("#node-name").textContent = doc.node;
  const ready = $("#readiness");
  ready.dataset.ready = String(doc.ready);
  ready.textContent = doc.ready ? "ready" : `not ready: ${doc.reasons.join(", ")}`;
  fillRows($("#by-subscribers"), doc.channels.by_subscribers,
    (c) => [[c.channel], [c.subscribers, "num"], [c.events_per_s, "num"]], "no channel");
  fillRows($("#by-rate"), doc.channels.by_event_rate,
    (c) => [[c.channel], [c.events_per_s, "num"], [c.subscribers, "num"]], "no events");
  $("#hooks-meta").textContent = `${doc.webhooks.in_flight} in flight`;
  fillRows($("#failing"), doc.webhooks.failing,
    (f) => [[`${f.endpoint_id} ${f.target}`], [f.tenant], [f.failures, "num"], [f.last_error]],
    "none failing");
  fillRows($("#cuts"), doc.slow_consumers.recent,
    (c) => [[time(c.at), "nowrap"], [c.endpoint], [c.queued_bytes, "num"], [c.client, "nowrap"]], "none");
}

let timer = null;

async function poll() {
  timer = null;
  const key = sessionStorage.getItem(KEY_SLOT);
  if (!key) {
    setStatus("idle", "no key");
    return;
  }
  try {
    const response = await fetch("/admin/api", {
      headers: { authorization: `Bearer ${key}` },
      cache: "no-store",
    });
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(KEY_SLOT);
      $("#key-error").textContent = "that is not the admin key";
      setStatus("down", "refused");
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    $("#key-error").textContent = "";
    setStatus("open", "live");
  } catch {
    setStatus("down", "unreachable");
  }
  timer = setTimeout(poll, EVERY_MS);
}

function restart() {
  if (timer !== null) clearTimeout(timer);
  poll();
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#admin-key");
  const key = input.value.trim();
  input.value = "";
  if (key) sessionStorage.setItem(KEY_SLOT, key);
  restart();
});

$("#forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_SLOT);
  restart();
});

restart();
