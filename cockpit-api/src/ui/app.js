// Ordo cockpit web UI: plain JavaScript over the cockpit API (/api/v1), live through its
// event stream (/api/v1/events/ws) and the order log stream (/api/v1/orders/{id}/log/ws).
"use strict";

const STATES = ["fresh", "ready", "processing", "waiting", "prompting", "suspended",
  "failed", "cancelled", "finished"];
const RANKS = { viewer: 0, operator: 1, admin: 2 };
const PAGE = 200;

const ui = {
  token: localStorage.getItem("ordo.token") || "",
  role: null,
  eventId: 0,
  events: null,
  eventsRetry: 500,
  filter: { state: "", workflow: "", agent: "" },
  next: null,
  orderId: null,
  order: null,
  log: null,
  workflows: [],
  refreshTimer: null,
  page: "orders",
  activeController: undefined,
  nodeIds: {},
  rows: [],
  sort: { key: "addedMs", desc: true },
  search: "",
  selected: new Set(),
};

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k ?? "")));
  return e;
};

function toast(text, error) {
  const t = $("#toast");
  t.textContent = text;
  t.className = "toast" + (error ? " error" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), error ? 6000 : 2500);
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + ui.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch("/api/v1" + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    let msg = (data && data.error) || String(data) || r.statusText;
    if (data && data.details) msg += ": " + data.details.join("; ");
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return data;
}

const enc = encodeURIComponent;
const fmtTime = (ms) => ms == null ? "" : new Date(ms).toLocaleString();
const TERMINAL = ["finished", "cancelled", "failed"];

// A short local time for lists: the time of day today, else the day and the time.
function fmtShort(ms) {
  if (ms == null) return "";
  const d = new Date(ms);
  if (d.toDateString() === new Date().toDateString()) {
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }
  return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
}

// A list cell of a time: short, the full time in its title.
const timeCell = (ms) => el("td", { class: "num", title: fmtTime(ms) }, fmtShort(ms));

// A duration in words: "850 ms", "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h".
function fmtDuration(ms) {
  if (ms == null || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min` + (s % 60 ? ` ${s % 60} s` : "");
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h` + (m % 60 ? ` ${m % 60} min` : "");
  const d = Math.floor(h / 24);
  return `${d} d` + (h % 24 ? ` ${h % 24} h` : "");
}

// How long an order ran: from its start (or addition) to its end, or until now while it runs.
function duration(o) {
  const from = o.startedMs ?? o.addedMs;
  if (from == null) return null;
  return (o.endedMs ?? Date.now()) - from;
}
const can = (role) => ui.role !== null && RANKS[ui.role] >= RANKS[role];

// ---- token and role ----

async function whoami() {
  if (!ui.token) {
    ui.role = null;
    $("#who").textContent = "no token";
    $("#token-panel").classList.remove("hidden");
    applyRole();
    return false;
  }
  try {
    const me = await api("GET", "/whoami");
    ui.role = me.role;
    $("#who").textContent = me.name + " · " + me.role;
    applyRole();
    return true;
  } catch (e) {
    ui.role = null;
    $("#who").textContent = "token refused";
    $("#token-panel").classList.remove("hidden");
    toast(e.message, true);
    applyRole();
    return false;
  }
}

function applyRole() {
  for (const e of document.querySelectorAll(".role-operator")) {
    e.classList.toggle("hidden", !can("operator"));
  }
}

// ---- live events ----

function connectEvents() {
  if (ui.events) ui.events.close();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${proto}//${location.host}/api/v1/events/ws?after=${ui.eventId}&access_token=${enc(ui.token)}`;
  const ws = new WebSocket(url);
  ui.events = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    ui.eventsRetry = 500;
    setLive(true);
  };
  ws.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (ev.error) { toast(ev.error, true); return; }
    if (ev.eventId > ui.eventId) ui.eventId = ev.eventId;
    if (ev.type === "Stdout" || ev.type === "Stderr") return;
    scheduleRefresh(ev.key === ui.orderId || (ui.orderId && ev.key.startsWith(ui.orderId + "|")));
  };
  ws.onclose = () => {
    if (ui.events !== ws) return;
    setLive(false);
    // Never opened: the id may be gone (410); start again from the current view.
    const restart = !opened;
    setTimeout(async () => {
      if (ui.events !== ws) return;
      if (restart) await loadOverview();
      connectEvents();
    }, ui.eventsRetry);
    ui.eventsRetry = Math.min(ui.eventsRetry * 2, 10000);
  };
}

// ---- the controllers (a pair: which one is active) ----

// The cockpit's /health (no token) names the active controller and each one's role; a badge
// per controller shows it, and a change of the active one is announced.
async function pollCluster() {
  let h;
  try {
    const r = await fetch("/health");
    h = await r.json();
  } catch {
    return;
  }
  const box = $("#cluster");
  const list = h.controllers || [];
  box.textContent = "";
  box.classList.toggle("hidden", list.length === 0);
  const pair = list.some((c) => c.nodeId != null) || Object.keys(ui.nodeIds).length > 0;
  const active = h.activeController || null;
  const changed = ui.activeController !== undefined && active !== ui.activeController;
  for (const c of list) {
    const host = c.url.replace(/^https?:\/\//, "");
    const role = c.role || "unreachable";
    // A controller that is gone is still named by the node id it had.
    if (c.nodeId != null) ui.nodeIds[c.url] = c.nodeId;
    const label = pair ? `node ${ui.nodeIds[c.url] ?? "?"} · ${role}` : role;
    const cls = "node" + (c.url === active ? " active" : "") + (c.role ? "" : " down")
      + (changed && c.url === active ? " changed" : "");
    box.append(el("span", { class: cls, title: host + (c.error ? " — " + c.error : ""),
      "data-url": c.url, "data-role": role }, label));
  }
  if (changed) {
    toast(active ? `Active controller: ${active.replace(/^https?:\/\//, "")}`
      : "No controller is active (an election is under way)", !active);
  }
  ui.activeController = active;
}

function setLive(on) {
  $("#live").className = "live " + (on ? "on" : "off");
  $("#live-text").textContent = on ? "live" : "offline";
}

function scheduleRefresh(detail) {
  if (detail) scheduleRefresh.detail = true;
  if (ui.refreshTimer) return;
  ui.refreshTimer = setTimeout(async () => {
    ui.refreshTimer = null;
    const withDetail = scheduleRefresh.detail;
    scheduleRefresh.detail = false;
    if (ui.page === "orders") {
      await Promise.all([loadOverview(), loadOrders(false), withDetail ? loadDetail() : null]);
    } else if (ui.page === "agents") {
      await loadAgents();
    } else if (ui.page === "queues") {
      await loadQueues();
    } else if (ui.page === "locks") {
      await loadLocks();
    } else if (ui.page === "boards") {
      await loadBoards();
    }
  }, 250);
}

// ---- orders page ----

async function loadOverview() {
  try {
    const o = await api("GET", "/overview");
    if (!ui.events || ui.eventId === 0) ui.eventId = o.eventId;
    const box = $("#counts");
    box.textContent = "";
    for (const s of STATES) {
      const c = el("div", { class: "count st-" + s + (ui.filter.state === s ? " selected" : ""), "data-state": s },
        el("div", { class: "n" }, o.counts[s] ?? 0), el("div", { class: "l" }, s));
      c.addEventListener("click", () => {
        ui.filter.state = ui.filter.state === s ? "" : s;
        $("#filter-state").value = ui.filter.state;
        loadOverview();
        loadOrders(false);
      });
      box.append(c);
    }
  } catch (e) {
    if (e.status !== 401) toast(e.message, true);
  }
}

function ordersQuery(after) {
  const p = new URLSearchParams({ limit: String(PAGE) });
  for (const k of ["state", "workflow", "agent"]) if (ui.filter[k]) p.set(k, ui.filter[k]);
  if (after) p.set("after", after);
  return "/orders?" + p.toString();
}

// `{"type": "controller"}` or `{"type": "agent", "agent": "a1"}` (also attaching, detaching).
function holderText(h) {
  if (!h || !h.type) return "";
  return h.type === "controller" ? "controller" : `${h.type} ${h[h.type]}`;
}

// A cell with its whole text as its title (the list cuts long text with an ellipsis).
const cell = (text, cls) => el("td", { class: cls || "", title: text }, text);

function orderRow(o) {
  const box = el("input", { type: "checkbox", class: "sel", checked: ui.selected.has(o.id) });
  box.setAttribute("aria-label", "select " + o.id);
  box.addEventListener("click", (ev) => {
    ev.stopPropagation();
    if (box.checked) ui.selected.add(o.id); else ui.selected.delete(o.id);
    updateBulk();
  });
  const where = holderText(o.holder);
  const tr = el("tr", { "data-id": o.id },
    el("td", {}, box), cell(o.id), cell(o.workflow + " v" + o.version),
    el("td", { title: o.stateDetail + (where ? " · " + where : "") },
      el("span", { class: "badge st-" + o.state }, o.state)),
    timeCell(o.addedMs), timeCell(o.startedMs), timeCell(o.endedMs),
    cell(fmtDuration(duration(o)), "num"));
  if (o.id === ui.orderId) tr.classList.add("selected");
  tr.addEventListener("click", () => { location.hash = "#/orders/" + enc(o.id); });
  return tr;
}

// Orders compare by the sort column; unknown times sort after known ones.
function compareOrders(a, b) {
  const { key, desc } = ui.sort;
  const v = (o) => key === "duration" ? duration(o) : o[key];
  const x = v(a), y = v(b);
  if (x == null || y == null) {
    if (x == null && y == null) return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    return x == null ? 1 : -1;
  }
  const c = typeof x === "number" ? x - y : (String(x) < String(y) ? -1 : String(x) > String(y) ? 1 : 0);
  return (desc ? -c : c) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function shownOrders() {
  const q = ui.search.trim().toLowerCase();
  const rows = q ? ui.rows.filter((o) => o.id.toLowerCase().includes(q) || o.workflow.toLowerCase().includes(q))
    : ui.rows.slice();
  return rows.sort(compareOrders);
}

function renderOrders() {
  const body = $("#orders-table tbody");
  body.textContent = "";
  const rows = shownOrders();
  for (const o of rows) body.append(orderRow(o));
  for (const th of document.querySelectorAll("#orders-table th[data-sort]")) {
    th.classList.toggle("sorted-asc", th.dataset.sort === ui.sort.key && !ui.sort.desc);
    th.classList.toggle("sorted-desc", th.dataset.sort === ui.sort.key && ui.sort.desc);
  }
  $("#orders-empty").classList.toggle("hidden", rows.length > 0);
  $("#select-all").checked = rows.length > 0 && rows.every((o) => ui.selected.has(o.id));
  updateBulk();
}

function updateBulk() {
  const known = new Set(ui.rows.map((o) => o.id));
  for (const id of [...ui.selected]) if (!known.has(id)) ui.selected.delete(id);
  const n = ui.selected.size;
  $("#bulk-count").textContent = n ? `${n} selected` : "none selected";
  for (const b of ["#bulk-resume", "#bulk-suspend", "#bulk-cancel", "#bulk-clear"]) $(b).disabled = n === 0;
}

// One command for every selected order (the cockpit's per-order routes); a summary after.
async function bulk(verb) {
  const ids = [...ui.selected];
  if (!ids.length) return;
  if (verb === "cancel" && !confirm(`Cancel ${ids.length} orders?`)) return;
  let done = 0;
  const failed = [];
  for (const id of ids) {
    try {
      await api("POST", `/orders/${enc(id)}/${verb}`, {});
      done += 1;
    } catch (e) {
      failed.push(`${id}: ${e.message}`);
    }
  }
  toast(`${verb}: ${done} done` + (failed.length ? `, ${failed.length} refused (${failed.join("; ")})` : ""), failed.length > 0);
  ui.selected.clear();
  scheduleRefresh(true);
}

async function loadOrders(append) {
  try {
    const page = await api("GET", ordersQuery(append ? ui.next : null));
    ui.rows = append ? ui.rows.concat(page.orders) : page.orders;
    ui.next = page.next;
    $("#orders-more").classList.toggle("hidden", !page.next);
    renderOrders();
  } catch (e) {
    if (e.status !== 401) toast(e.message, true);
  }
}

async function loadWorkflowNames() {
  try {
    const w = await api("GET", "/workflows");
    ui.workflows = w.workflows;
    const f = $("#filter-workflow");
    const keep = f.value;
    f.textContent = "";
    f.append(el("option", { value: "" }, "all workflows"));
    const a = $("#add-workflow");
    const keepAdd = a.value;
    a.textContent = "";
    for (const wf of w.workflows) {
      f.append(el("option", { value: wf.name }, wf.name));
      a.append(el("option", { value: wf.name }, wf.name));
    }
    f.value = keep;
    if (keepAdd) a.value = keepAdd;
  } catch (e) {
    if (e.status !== 401) toast(e.message, true);
  }
}

// ---- order detail ----

async function openOrder(id) {
  if (ui.orderId !== id) {
    ui.orderId = id;
    ui.order = null;
    $("#answer-form").classList.add("hidden");
    clearDetail(id);
    startLog(id);
  }
  $("#detail").classList.remove("hidden");
  for (const tr of document.querySelectorAll("#orders-table tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.id === id);
  }
  await loadDetail();
}

function closeOrder() {
  ui.orderId = null;
  ui.order = null;
  if (ui.log) { ui.log.close(); ui.log = null; }
  $("#detail").classList.add("hidden");
}

// Empties the order pane: nothing of an order shown before stays (graph, buttons, history).
function clearDetail(id) {
  $("#detail-id").textContent = id;
  $("#detail-id").title = id;
  const badge = $("#detail-state");
  badge.textContent = "";
  badge.className = "badge hidden";
  $("#detail-sub").textContent = "";
  $("#detail-times").textContent = "";
  $("#detail-prompt").classList.add("hidden");
  for (const b of ["#btn-answer", "#btn-resume", "#btn-resend", "#btn-suspend", "#btn-cancel", "#btn-remove"]) {
    $(b).classList.add("hidden");
  }
  $("#answer-form").classList.add("hidden");
  $("#graph").textContent = "";
  $("#history").textContent = "";
  $("#history-note").textContent = "";
  $("#retries").textContent = "";
  $("#retries-box").classList.add("hidden");
  $("#children").textContent = "";
  $("#children-box").classList.add("hidden");
  $("#detail-vars").textContent = "";
  $("#log").textContent = "";
  $("#log-state").textContent = "";
  ui.orderWorkflow = null;
}

async function loadDetail() {
  const id = ui.orderId;
  if (!id) return;
  let o;
  try {
    o = await api("GET", "/orders/" + enc(id));
  } catch (e) {
    if (ui.orderId !== id) return;
    if (e.status === 404 || e.status === 400) {
      ui.order = null;
      clearDetail(id);
      const badge = $("#detail-state");
      badge.textContent = "unknown";
      badge.className = "badge";
      $("#detail-sub").textContent = `No such order: ${id}.`;
      return;
    }
    toast(e.message, true);
    return;
  }
  if (ui.orderId !== id) return;
  const wfChanged = !ui.order || ui.order.workflow !== o.workflow || ui.order.version !== o.version;
  ui.order = o;
  $("#detail-id").textContent = o.id;
  $("#detail-id").title = o.id;
  const badge = $("#detail-state");
  badge.textContent = o.state;
  badge.className = "badge st-" + o.state;
  $("#detail-sub").textContent = `${o.workflow} v${o.version} · position ${o.position} · ` +
    `${holderText(o.holder)}` + (o.addedMs ? ` · added ${fmtTime(o.addedMs)}` : "") +
    (o.mark ? ` · pending ${o.mark}` : "") + (o.attempt > 1 ? ` · attempt ${o.attempt}` : "") +
    ` · priority ${o.priority || 0}` + (o.deleteWhenTerminated ? " · removed when ended" : "") +
    (o.parent ? ` · branch of ${o.parent}` : "") + (o.joined ? " · joined (kept while its parent is there)" : "");
  $("#detail-times").textContent = [
    o.startedMs != null ? `started ${fmtTime(o.startedMs)}` : "",
    o.endedMs != null ? `ended ${fmtTime(o.endedMs)}` : "",
    duration(o) != null ? `${o.endedMs != null ? "took" : "running for"} ${fmtDuration(duration(o))}` : "",
    o.waitingFor ? `waiting for ${o.waitingFor}` +
      (o.waitingUntilMs != null ? ` at ${fmtTime(o.waitingUntilMs)}` : "") : "",
  ].filter(Boolean).join(" · ");
  const prompt = $("#detail-prompt");
  const m = /^prompting "(.*)"$/.exec(o.stateDetail);
  prompt.classList.toggle("hidden", o.state !== "prompting");
  prompt.textContent = "Question: " + (m ? m[1] : o.stateDetail);
  // A joined fork child is gone from the controller: no command reaches it.
  const show = (btn, on) => $(btn).classList.toggle("hidden", !on || !!o.joined);
  const terminal = o.state === "finished" || o.state === "cancelled";
  show("#btn-answer", o.state === "prompting");
  show("#btn-resume", o.state === "suspended");
  show("#btn-resend", o.state === "failed");
  show("#btn-suspend", !terminal && o.state !== "suspended");
  show("#btn-cancel", !terminal);
  show("#btn-remove", terminal);
  if (o.state !== "prompting") $("#answer-form").classList.add("hidden");
  const hist = $("#history");
  hist.textContent = "";
  for (const h of o.history) {
    hist.append(el("li", {}, el("span", { class: "t" }, new Date(h.ts).toLocaleTimeString()),
      el("span", { class: "k" }, h.type), h.text));
  }
  hist.scrollTop = hist.scrollHeight;
  $("#history-note").textContent = o.historyComplete ? "" : "(earlier events not kept)";
  // Each retry of a block or restart of a job, from the history.
  const retries = $("#retries");
  retries.textContent = "";
  for (const h of o.history.filter((h) => ["Retrying", "TryAgain", "Restarted"].includes(h.type))) {
    retries.append(el("li", {}, el("span", { class: "t" }, new Date(h.ts).toLocaleTimeString()),
      el("span", { class: "k" }, h.type), h.text));
  }
  $("#retries-box").classList.toggle("hidden", retries.children.length === 0);
  showChildren(o);
  $("#detail-vars").textContent = JSON.stringify(o.vars, null, 2);
  if (wfChanged) {
    try {
      const wf = await api("GET", `/workflows/${enc(o.workflow)}?version=${o.version}`);
      ui.orderWorkflow = wf;
    } catch (e) {
      ui.orderWorkflow = null;
    }
  }
  drawGraph($("#graph"), ui.orderWorkflow, o);
  // A log stream that could not open (the order did not exist yet) or broke starts again.
  if (!ui.logEnded && (!ui.log || ui.log.readyState === WebSocket.CLOSED)) startLog(id);
  else if (!ui.logEnded && ui.log.readyState === WebSocket.OPEN) $("#log-state").textContent = logLabel();
}

// The order's fork children (those a join ended stay while the order is in the view).
function showChildren(o) {
  const kids = o.children || [];
  const list = $("#children");
  list.textContent = "";
  for (const c of kids) {
    list.append(el("li", { "data-id": c.id }, el("a", { href: "#/orders/" + enc(c.id) }, c.id), " ",
      el("span", { class: "badge st-" + c.state }, c.state)));
  }
  $("#children-box").classList.toggle("hidden", kids.length === 0);
}

// "(live)" only while the order may still write output.
function logLabel() {
  const s = ui.order && ui.order.state;
  return s && TERMINAL.includes(s) ? `(${s})` : "(live)";
}

function startLog(id) {
  if (ui.log) ui.log.close();
  const pre = $("#log");
  pre.textContent = "";
  $("#log-state").textContent = "";
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/v1/orders/${enc(id)}/log/ws?access_token=${enc(ui.token)}`);
  ui.log = ws;
  ui.logEnded = false;
  ws.onopen = () => { $("#log-state").textContent = logLabel(); };
  ws.onmessage = (m) => {
    let f;
    try { f = JSON.parse(m.data); } catch { return; }
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (f.error) {
      pre.append(el("span", { class: "note" }, `\n[${f.error}]\n`));
    } else if (f.type === "End") {
      ui.logEnded = true;
      $("#log-state").textContent = `(${f.state})`;
    } else if (f.type === "Gap" || f.type === "OutputTruncated") {
      pre.append(el("span", { class: "note" }, `\n[${f.text}]\n`));
    } else if (f.type === "Stderr") {
      pre.append(el("span", { class: "err" }, f.text));
    } else {
      pre.append(document.createTextNode(f.text));
    }
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  };
  ws.onclose = () => {
    if (ui.log === ws && !ui.logEnded) $("#log-state").textContent = ui.order && TERMINAL.includes(ui.order.state) ? `(${ui.order.state})` : "(closed)";
  };
}

function parseVars(text) {
  const vars = {};
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const i = t.indexOf("=");
    if (i <= 0) throw new Error(`"${t}" is not name=value`);
    const k = t.slice(0, i).trim();
    const v = t.slice(i + 1).trim();
    vars[k] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === "true" ? true : v === "false" ? false : v;
  }
  return vars;
}

async function command(verb, body) {
  const id = ui.orderId;
  try {
    const r = verb === "remove"
      ? await api("DELETE", "/orders/" + enc(id))
      : await api("POST", `/orders/${enc(id)}/${verb}`, body || {});
    toast(`${verb}: ${r.duplicate ? "already done" : "done"}`);
    scheduleRefresh(true);
  } catch (e) {
    toast(`${verb} failed: ${e.message}`, true);
  }
}

// ---- workflow graph (SVG) ----

const SVGNS = "http://www.w3.org/2000/svg";
const svg = (tag, attrs, text) => {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const NODE_H = 34, GAP = 14, PAD = 10, LABEL_H = 16;
const textW = (s) => Math.min(260, Math.max(110, 7 * s.length + 24));

// Sizes of a block (a vertical list of steps) and of a step (a box plus its blocks side by side).
function measureBlock(steps) {
  let w = 60, h = 0;
  for (const s of steps) {
    const m = measureStep(s);
    s._m = m;
    w = Math.max(w, m.w);
    h += m.h + GAP;
  }
  return { w, h: h + 12 };
}

function measureStep(s) {
  const boxW = textW(s.label + (s.agent ? "  @" + s.agent : ""));
  if (!s.blocks.length) return { w: boxW, h: NODE_H };
  let bw = 0, bh = 0;
  for (const b of s.blocks) {
    b._m = measureBlock(b.steps);
    b._m.w = Math.max(b._m.w, textW(b.label) - 20);
    bw += b._m.w + PAD;
    bh = Math.max(bh, b._m.h);
  }
  return { w: Math.max(boxW, bw + PAD), h: NODE_H + 8 + LABEL_H + bh + PAD };
}

function marks(o) {
  const out = {};
  for (const h of (o && o.outcomes) || []) {
    out[h.position] = h.outcome.startsWith("succeeded") ? "ok" : "bad";
  }
  return out;
}

function drawBlock(g, steps, x, y, w, ctx) {
  let cy = y;
  let prev = null;
  for (const s of steps) {
    const m = s._m;
    const sx = x + (w - m.w) / 2;
    if (prev) g.append(svg("line", { class: "edge", x1: x + w / 2, y1: prev, x2: x + w / 2, y2: cy }));
    drawStep(g, s, sx, cy, m, ctx);
    prev = cy + m.h;
    cy += m.h + GAP;
  }
  // The end of the block: an order there has finished it.
  const endPos = ctx.endOf(steps);
  const end = svg("g", { class: "end" + (ctx.pos === endPos ? " current" : ""), "data-position": endPos });
  if (prev) g.append(svg("line", { class: "edge", x1: x + w / 2, y1: prev, x2: x + w / 2, y2: cy - 2 }));
  end.append(svg("circle", { cx: x + w / 2, cy: cy + 2, r: 4 }));
  g.append(end);
}

function drawStep(g, s, x, y, m, ctx) {
  const cls = ["node"];
  if (ctx.marks[s.position]) cls.push(ctx.marks[s.position]);
  if (ctx.pos === s.position) cls.push("current");
  if (ctx.pos === s.position && ctx.failed) cls.push("failed");
  else if (ctx.pos && ctx.pos.startsWith(s.position + "/")) cls.push("enclosing");
  const node = svg("g", { class: cls.join(" "), "data-position": s.position });
  if (s.blocks.length) {
    g.append(svg("rect", { class: "group", x, y, width: m.w, height: m.h, rx: 6 }));
  }
  const boxW = s.blocks.length ? m.w : m.w;
  node.append(svg("rect", { x, y, width: boxW, height: NODE_H }));
  node.append(svg("text", { class: "kind", x: x + 8, y: y + 12 }, s.kind));
  node.append(svg("text", { x: x + 8, y: y + 27 }, (s.label.length > 34 ? s.label.slice(0, 33) + "…" : s.label) +
    (s.agent ? "  @" + s.agent : "")));
  node.append(svg("title", {}, `${s.position}: ${s.kind} ${s.label}`));
  g.append(node);
  let bx = x + PAD / 2 + (m.w - PAD - s.blocks.reduce((a, b) => a + b._m.w + PAD, 0) + PAD) / 2;
  const by = y + NODE_H + 8;
  for (const b of s.blocks) {
    g.append(svg("text", { class: "blabel", x: bx + 4, y: by + 11 }, b.label));
    drawBlock(g, b.steps, bx, by + LABEL_H, b._m.w, ctx);
    bx += b._m.w + PAD;
  }
}

function drawGraph(box, wf, o) {
  box.textContent = "";
  if (!wf) { box.append(el("span", { class: "hint" }, "workflow not available")); return; }
  const top = measureBlock(wf.steps);
  const width = Math.max(top.w + 2 * PAD, 200), height = top.h + 2 * PAD;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `workflow ${wf.name}` });
  const ctx = {
    pos: o ? o.position : null,
    failed: !!o && o.state === "failed",
    marks: marks(o),
    endOf: (steps) => {
      if (!steps.length) return "";
      const p = steps[steps.length - 1].position;
      const i = p.lastIndexOf("/");
      return p.slice(0, i + 1) + (Number(p.slice(i + 1)) + 1);
    },
  };
  drawBlock(root, wf.steps, PAD, PAD, top.w, ctx);
  box.append(root);
}

// ---- agents and workflows pages ----

async function loadAgents() {
  try {
    const a = await api("GET", "/agents");
    const body = $("#agents-table tbody");
    body.textContent = "";
    for (const ag of a.agents) {
      const meta = ag.meta || {};
      const link = ag.connected == null ? "unknown" : ag.connected ? "connected" : "down";
      const load = Array.isArray(meta.load) ? meta.load.map((x) => Number(x).toFixed(2)).join(" ") : "";
      const mem = meta.memoryAvailableBytes ? (meta.memoryAvailableBytes / 2 ** 30).toFixed(1) + " GiB" : "";
      body.append(el("tr", { "data-id": ag.id },
        el("td", {}, el("b", {}, ag.id), el("div", { class: "hint" }, ag.url),
          ag.backupDirector ? el("div", { class: "hint" }, "backup director " + ag.backupDirector) : ""),
        el("td", {}, el("span", { class: "dot " + (ag.connected ? "up" : ag.connected === false ? "down" : "") }),
          link, ag.coupledUrl && ag.coupledUrl !== ag.url ? el("div", { class: "hint" }, "to " + ag.coupledUrl) : "",
          ag.lastError ? el("div", { class: "hint" }, ag.lastError) : ""),
        el("td", {}, meta.hostname || "", meta.cores ? el("div", { class: "hint" }, `${meta.cores} cores · ${meta.os || ""} · ordo ${meta.version || ""}`) : ""),
        el("td", {}, load), el("td", {}, mem), el("td", {}, ag.orders),
        el("td", {}, ag.processing.map((p) => `${p.order} (${p.position})`).join(", "))));
    }
    showSubagents(a.agents);
    $("#agents-note").textContent = a.linkStatusAgeMs == null
      ? "The controller's link status is not available."
      : a.linkStatusAgeMs > 0 ? `Link status as of ${Math.round(a.linkStatusAgeMs / 1000)} s ago (the controller cannot be reached).` : "";
  } catch (e) {
    if (e.status !== 401) toast(e.message, true);
  }
}

const gib = (bytes) => bytes == null ? "" : (bytes / 2 ** 30).toFixed(1) + " GiB";

// A director's subagents with their figures (`subagentHealth`): live or lost, ring place
// (`2*`: holds the token), jobs, average job duration, load, memory, connected since.
function showSubagents(agents) {
  const body = $("#subagents-table tbody");
  body.textContent = "";
  let any = false;
  for (const ag of agents) {
    for (const s of ag.subagentHealth || []) {
      any = true;
      const live = s.state !== "lost";
      const ring = s.ringPosition == null ? "" : s.ringPosition + (s.token ? "*" : "");
      body.append(el("tr", { "data-id": s.id, "data-agent": ag.id },
        el("td", {}, el("b", {}, s.id), el("div", { class: "hint" }, s.url)),
        el("td", {}, ag.id),
        el("td", {}, el("span", { class: "dot " + (live ? "up" : "down") }), s.state,
          s.lastError ? el("div", { class: "hint" }, s.lastError) : ""),
        el("td", { title: s.token ? "holds the ring's token" : "" }, ring),
        el("td", {}, s.runningProcesses), el("td", {}, s.processed),
        el("td", {}, s.processed ? fmtDuration(s.averageJobDurationMs) : ""),
        el("td", {}, Array.isArray(s.load) ? s.load.map((x) => Number(x).toFixed(2)).join(" ") : "",
          s.cores ? el("div", { class: "hint" }, `${s.cores} cores`) : ""),
        el("td", {}, gib(s.memoryAvailableBytes),
          s.memoryTotalBytes ? el("div", { class: "hint" }, "of " + gib(s.memoryTotalBytes)) : ""),
        el("td", {}, s.connectedSinceMs ? fmtTime(s.connectedSinceMs) : "")));
    }
  }
  $("#subagents-title").classList.toggle("hidden", !any);
  $("#subagents-table").classList.toggle("hidden", !any);
}

// ---- queues: waiting for a process, running, finished, failed ----

const QUEUE_ORDERS = 50;

async function loadQueues() {
  const sel = $("#queues-workflow");
  const chosen = sel.value;
  sel.textContent = "";
  sel.append(el("option", { value: "" }, "any"));
  for (const w of ui.workflows) sel.append(el("option", { value: w.name }, w.name));
  sel.value = chosen;
  const p = new URLSearchParams({ limit: String(QUEUE_ORDERS) });
  if (sel.value) p.set("workflow", sel.value);
  const agent = $("#queues-agent").value.trim();
  if (agent) p.set("agent", agent);
  try {
    const q = await api("GET", "/queues?" + p);
    const box = $("#queues");
    box.textContent = "";
    for (const queue of q.queues) {
      const list = el("ul", { class: "queue-orders" });
      for (const o of queue.orders) {
        const since = queue.queue === "running" ? o.startedMs
          : queue.queue === "waiting" ? o.addedMs : o.endedMs;
        list.append(el("li", {}, orderLink(o.id), " ",
          el("span", { class: "hint" }, `${o.workflow} @ ${o.position} · ${holderText(o.holder)}${since ? " · " + fmtShort(since) : ""}`)));
      }
      const more = queue.count > queue.orders.length ? el("div", { class: "hint" }, `and ${queue.count - queue.orders.length} more`) : "";
      box.append(el("div", { class: "queue", "data-queue": queue.queue },
        el("h3", {}, queue.queue, " ", el("span", { class: "qcount" }, queue.count + (queue.countComplete ? "" : "+"))),
        list, more));
    }
  } catch (e) {
    if (e.status !== 401) toast(e.message, true);
  }
}

// ---- locks and notice boards ----

const orderLink = (id, extra) => el("a", { href: "#/orders/" + enc(id), "data-id": id }, id + (extra || ""));

function links(uses) {
  const span = el("span", {});
  uses.forEach((u, i) => {
    if (i) span.append(", ");
    span.append(orderLink(u.order, u.count > 1 ? ` ×${u.count}` : ""));
  });
  return span;
}

async function loadLocks() {
  try {
    const l = await api("GET", "/locks");
    const body = $("#locks-table tbody");
    body.textContent = "";
    for (const k of l.locks) {
      const used = k.holders.reduce((a, u) => a + u.count, 0);
      body.append(el("tr", { "data-id": k.name }, el("td", {}, el("b", {}, k.name)), el("td", {}, k.limit),
        el("td", {}, `${used} of ${k.limit}`), el("td", {}, links(k.holders)), el("td", {}, links(k.queue))));
    }
    $("#locks-empty").classList.toggle("hidden", l.locks.length > 0);
  } catch (e) {
    if (e.status !== 401) toast(e.message, true);
  }
}

async function loadBoards() {
  try {
    const b = await api("GET", "/boards");
    const body = $("#boards-table tbody");
    body.textContent = "";
    for (const board of b.boards) {
      const notices = el("span", {});
      board.notices.forEach((n, i) => {
        if (i) notices.append(", ");
        notices.append(el("code", { title: "until " + fmtTime(n.until) }, n.key));
      });
      body.append(el("tr", { "data-id": board.name }, el("td", {}, el("b", {}, board.name)),
        el("td", {}, fmtDuration(board.lifetimeMs)), el("td", {}, board.notices.length ? notices : "none")));
    }
    $("#boards-empty").classList.toggle("hidden", b.boards.length > 0);
  } catch (e) {
    if (e.status !== 401) toast(e.message, true);
  }
}

// ---- a workflow's recent orders on a time line (one bar per order, start to end) ----

const TIMELINE_ORDERS_MAX = 30;

async function loadTimeline(name) {
  const box = $("#wf-timeline");
  let page;
  try {
    page = await api("GET", `/orders?workflow=${enc(name)}&limit=${PAGE}`);
  } catch (e) {
    box.textContent = e.message;
    return;
  }
  drawTimeline(box, page.orders);
}

function drawTimeline(box, orders) {
  box.textContent = "";
  const now = Date.now();
  const rows = orders.filter((o) => o.addedMs != null)
    .sort((a, b) => b.addedMs - a.addedMs).slice(0, TIMELINE_ORDERS_MAX);
  if (!rows.length) { box.append(el("span", { class: "hint" }, "no orders with known times")); return; }
  const t0 = Math.min(...rows.map((o) => o.startedMs ?? o.addedMs));
  const t1 = Math.max(now, ...rows.map((o) => o.endedMs ?? now));
  const LABEL = 170, ROW = 20, TOP = 18;
  const W = Math.max(300, (box.clientWidth || 730) - LABEL - 40);
  const x = (t) => LABEL + (t1 > t0 ? (t - t0) / (t1 - t0) * W : 0);
  const root = svg("svg", { width: LABEL + W + 10, height: TOP + rows.length * ROW + 4, role: "img",
    "aria-label": "timeline of recent orders" });
  const axis = svg("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (t1 - t0) * i / 4;
    axis.append(svg("line", { x1: x(t), x2: x(t), y1: TOP - 4, y2: TOP + rows.length * ROW }));
    axis.append(svg("text", { x: x(t), y: 10, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
      new Date(t).toLocaleTimeString()));
  }
  root.append(axis);
  rows.forEach((o, i) => {
    const y = TOP + i * ROW;
    const from = o.startedMs ?? o.addedMs, to = o.endedMs ?? now;
    const lane = svg("g", { class: "lane", "data-id": o.id });
    lane.append(svg("text", { x: 0, y: y + 13 }, o.id.length > 26 ? o.id.slice(0, 25) + "…" : o.id));
    const bar = svg("rect", { class: "bar st-" + o.state + (o.endedMs == null ? " running" : ""),
      x: x(from), y: y + 3, width: Math.max(2, x(to) - x(from)), height: ROW - 6, rx: 2 });
    bar.append(svg("title", {}, `${o.id} · ${o.state} · ${fmtTime(from)} – ${o.endedMs != null ? fmtTime(to) : "now"} · ${fmtDuration(to - from)}`));
    lane.append(bar);
    lane.addEventListener("click", () => { location.hash = "#/orders/" + enc(o.id); });
    root.append(lane);
  });
  box.append(root);
}

// ---- the daily plan: one day's instants, planned against what ran ----

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

async function loadPlan() {
  const input = $("#plan-date");
  if (!input.value) input.value = today();
  try {
    const p = await api("GET", "/plan?date=" + enc(input.value));
    const body = $("#plan-table tbody");
    body.textContent = "";
    const counts = {};
    const timeline = $("#plan-timeline");
    timeline.textContent = "";
    const now = Date.now();
    for (const e of p.entries) {
      const missed = e.status === "skipped" && e.why === "missed";
      // Late: its instant passed (by more than a minute) and its order has not started.
      const late = !missed && e.at + 60000 < now &&
        (e.status === "planned" || (e.status === "ordered" && e.orderState === "fresh"));
      const plan = e.status + (e.why ? ` (${e.why})` : "") + (late ? " · late" : "");
      counts[plan] = (counts[plan] || 0) + 1;
      const badge = missed || late ? "failed" : e.status === "skipped" ? "cancelled"
        : e.orderState === "finished" ? "finished" : e.status === "ordered" ? "ready" : "fresh";
      const clock = /T(\d\d):(\d\d):(\d\d)/.exec(e.instant);
      if (clock) {
        const frac = (Number(clock[1]) * 3600 + Number(clock[2]) * 60 + Number(clock[3])) / 86400;
        const mark = el("span", {
          class: `mark st-${badge}` + (missed ? " missed" : late ? " late" : ""),
          title: `${e.instant} ${e.schedule}: ${plan}` + (e.orderState ? `, order ${e.orderState}` : ""),
        });
        mark.style.left = `${(frac * 100).toFixed(3)}%`;
        timeline.append(mark);
      }
      const tr = el("tr", { "data-id": e.orderId, class: missed ? "missed" : late ? "late" : "" },
        el("td", {}, e.instant),
        el("td", {}, e.schedule),
        el("td", {}, el("span", { class: "badge st-" + badge }, plan)),
        el("td", {}, e.orderState ? el("span", { class: "badge st-" + e.orderState }, e.orderState) : ""),
        el("td", {}, e.orderId));
      if (e.orderState) tr.addEventListener("click", () => { location.hash = "#/orders/" + enc(e.orderId); });
      body.append(tr);
    }
    const paused = p.schedules.filter((s) => s.paused).map((s) => s.name);
    $("#plan-summary").textContent = `${p.entries.length} instants: ` +
      Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ") +
      (paused.length ? ` · paused: ${paused.join(", ")}` : "") +
      (p.truncated ? " · more than one answer holds" : "");
  } catch (e) {
    if (e.status !== 401) toast(e.message, true);
  }
}

async function loadWorkflows() {
  await loadWorkflowNames();
  const body = $("#workflows-table tbody");
  body.textContent = "";
  for (const wf of ui.workflows) {
    const tr = el("tr", { "data-id": wf.name }, el("td", {}, wf.name),
      el("td", {}, wf.versions.map((v) => "v" + v).join(" ")), el("td", {}, wf.orders));
    tr.addEventListener("click", () => showWorkflow(wf.name));
    body.append(tr);
  }
}

// How a job is placed and restarted: its restart budget (restartable jobs) and its own
// subagents with how one is picked; empty when it has neither.
function jobPlacement(j) {
  const parts = [];
  if (j.restartable) parts.push(`restartable, ${j.restartBudget ?? 0} restarts`);
  if (j.subagents?.length || j.subagentSelection) {
    const on = j.subagents?.length ? `on ${j.subagents.join(", ")}` : "on any subagent";
    parts.push(on + (j.subagentSelection ? ` by ${j.subagentSelection}` : ""));
  }
  return parts.join(" · ");
}

async function showWorkflow(name) {
  try {
    const wf = await api("GET", "/workflows/" + enc(name));
    $("#wf-detail").classList.remove("hidden");
    $("#wf-name").textContent = wf.name;
    const params = Object.entries(wf.parameters).map(([k, p]) => p.required ? k : `${k}=${p.default}`);
    $("#wf-sub").textContent = `version ${wf.version}` + (params.length ? ` · parameters: ${params.join(", ")}` : "");
    drawGraph($("#wf-graph"), wf, null);
    loadTimeline(wf.name);
    const jobs = $("#wf-jobs tbody");
    jobs.textContent = "";
    for (const [k, j] of Object.entries(wf.jobs)) {
      jobs.append(el("tr", { "data-id": k }, el("td", {}, el("b", {}, k)), el("td", {}, "@" + j.agent),
        el("td", {}, el("code", {}, j.text)), el("td", { class: "placement" }, jobPlacement(j))));
    }
  } catch (e) {
    toast(e.message, true);
  }
}

// ---- add order ----

function newOrderId(workflow) {
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  return `${workflow}-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

async function showParams() {
  const name = $("#add-workflow").value;
  $("#add-id").value = name ? newOrderId(name) : "";
  $("#add-params").textContent = "";
  if (!name) return;
  try {
    const wf = await api("GET", "/workflows/" + enc(name));
    const ps = Object.entries(wf.parameters).map(([k, p]) => p.required ? `${k} (required)` : `${k} (default ${p.default})`);
    $("#add-params").textContent = ps.length ? "Parameters: " + ps.join(", ") : "No parameters.";
  } catch { /* shown when submitting */ }
}

async function addOrder(ev) {
  ev.preventDefault();
  let args;
  try { args = parseVars($("#add-args").value); } catch (e) { toast(e.message, true); return; }
  const body = { id: $("#add-id").value.trim(), workflow: $("#add-workflow").value, args };
  const at = $("#add-at").value;
  if (at) body.scheduledFor = new Date(at).getTime();
  try {
    const r = await api("POST", "/orders", body);
    const res = r.results[0];
    toast(res.duplicate ? `order ${res.id} exists already` : `order ${res.id} added`);
    scheduleRefresh(true);
    $("#add-panel").classList.add("hidden");
    location.hash = "#/orders/" + enc(res.id);
  } catch (e) {
    toast(e.message, true);
  }
}

// ---- navigation ----

async function route() {
  const h = location.hash || "#/orders";
  const [, page, ...rest] = h.split("/");
  ui.page = page || "orders";
  for (const p of ["orders", "queues", "agents", "workflows", "plan", "locks", "boards"]) {
    $("#page-" + p).classList.toggle("hidden", p !== ui.page);
    $("#nav-" + p).classList.toggle("active", p === ui.page);
  }
  if (!ui.role) return;
  if (ui.page === "orders") {
    const id = rest.length ? decodeURIComponent(rest.join("/")) : null;
    if (id) await openOrder(id); else closeOrder();
  } else if (ui.page === "agents") {
    await loadAgents();
  } else if (ui.page === "queues") {
    await loadQueues();
  } else if (ui.page === "workflows") {
    await loadWorkflows();
  } else if (ui.page === "plan") {
    await loadPlan();
  } else if (ui.page === "locks") {
    await loadLocks();
  } else if (ui.page === "boards") {
    await loadBoards();
  }
}

async function start() {
  if (!(await whoami())) return;
  $("#token-panel").classList.add("hidden");
  await Promise.all([loadOverview(), loadWorkflowNames()]);
  await loadOrders(false);
  connectEvents();
  await route();
}

function init() {
  const fs = $("#filter-state");
  for (const s of STATES) fs.append(el("option", { value: s }, s));
  $("#token-input").value = ui.token;
  $("#token-open").addEventListener("click", () => $("#token-panel").classList.toggle("hidden"));
  $("#token-save").addEventListener("click", () => {
    ui.token = $("#token-input").value.trim();
    localStorage.setItem("ordo.token", ui.token);
    start();
  });
  $("#token-forget").addEventListener("click", () => {
    ui.token = "";
    localStorage.removeItem("ordo.token");
    $("#token-input").value = "";
    if (ui.events) { const e = ui.events; ui.events = null; e.close(); }
    setLive(false);
    whoami();
  });
  $("#filter-apply").addEventListener("click", () => {
    ui.filter = { state: fs.value, workflow: $("#filter-workflow").value, agent: $("#filter-agent").value.trim() };
    loadOverview();
    loadOrders(false);
  });
  $("#orders-more").addEventListener("click", () => loadOrders(true));
  $("#queues-workflow").addEventListener("change", () => loadQueues());
  $("#queues-agent").addEventListener("change", () => loadQueues());
  $("#search").addEventListener("input", () => { ui.search = $("#search").value; renderOrders(); });
  for (const th of document.querySelectorAll("#orders-table th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      // Times sort newest first on the first click, names from A.
      ui.sort = ui.sort.key === key ? { key, desc: !ui.sort.desc }
        : { key, desc: key.endsWith("Ms") || key === "duration" };
      renderOrders();
    });
  }
  $("#select-all").addEventListener("change", () => {
    const on = $("#select-all").checked;
    for (const o of shownOrders()) if (on) ui.selected.add(o.id); else ui.selected.delete(o.id);
    renderOrders();
  });
  $("#bulk-resume").addEventListener("click", () => bulk("resume"));
  $("#bulk-suspend").addEventListener("click", () => bulk("suspend"));
  $("#bulk-cancel").addEventListener("click", () => bulk("cancel"));
  $("#bulk-clear").addEventListener("click", () => { ui.selected.clear(); renderOrders(); });
  $("#detail-close").addEventListener("click", () => { location.hash = "#/orders"; });
  $("#add-open").addEventListener("click", () => {
    $("#add-panel").classList.toggle("hidden");
    showParams();
  });
  $("#add-cancel").addEventListener("click", () => $("#add-panel").classList.add("hidden"));
  $("#add-workflow").addEventListener("change", showParams);
  $("#add-form").addEventListener("submit", addOrder);
  $("#btn-answer").addEventListener("click", () => $("#answer-form").classList.toggle("hidden"));
  $("#answer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    let vars;
    try { vars = parseVars($("#answer-vars").value); } catch (e) { toast(e.message, true); return; }
    $("#answer-form").classList.add("hidden");
    command("answer", { vars });
  });
  $("#btn-resume").addEventListener("click", () => command("resume"));
  $("#btn-resend").addEventListener("click", () => command("resume"));
  $("#btn-suspend").addEventListener("click", () => command("suspend"));
  $("#btn-cancel").addEventListener("click", () => {
    if (confirm(`Cancel order ${ui.orderId}?`)) command("cancel");
  });
  $("#btn-remove").addEventListener("click", () => command("remove"));
  $("#plan-date").addEventListener("change", loadPlan);
  window.addEventListener("hashchange", route);
  route();
  start();
  pollCluster();
  setInterval(pollCluster, 2000);
  // Links, metadata and subagent figures are not events: the agents page reads them again.
  setInterval(() => {
    if (ui.page === "agents" && !document.hidden) loadAgents();
  }, 2000);
}

document.addEventListener("DOMContentLoaded", init);
