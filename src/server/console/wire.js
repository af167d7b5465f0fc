// The Wire view: every frame of the journal as it happens, from GET /__admin/events.
import { stream, el, pretty, status } from "./util.js";

const MAX_ROWS = 2000; // rows kept on the page (older ones are removed)
const MAX_PAUSED = 5000; // frames held while paused (older ones are dropped)
const MAX_OPEN = 5000; // requests waiting for their ack/response timing
const MAX_CONNS = 500; // connections offered in the filter (the oldest are dropped)

const rows = document.getElementById("wire-rows");
const filter = document.getElementById("wire-filter");
const dirSel = document.getElementById("wire-dir");
const connSel = document.getElementById("wire-conn");
const pings = document.getElementById("wire-pings");
const pause = document.getElementById("wire-pause");
const count = document.getElementById("wire-count");

const opened = new Map(); // "conn/rid" -> t_ms of the request
const conns = new Set();
let held = [];
let lastSeq = 0;
let shown = 0;

// The frame's JSON payload (Engine.IO and Socket.IO prefixes removed), or its text.
export function payloadOf(frame) {
  const m = /^[0-6](?:[0-6]\d*)?(?=[[{])/.exec(frame);
  const rest = m ? frame.slice(m[0].length) : frame.replace(/^\d+/, "");
  try {
    return JSON.parse(rest);
  } catch (_) {
    return frame;
  }
}

function timing(e) {
  if (!e.rid) return "";
  const key = e.conn + "/" + e.rid;
  if (e.kind === "request" && e.dir === "in") {
    if (opened.size >= MAX_OPEN) opened.delete(opened.keys().next().value);
    opened.set(key, e.t_ms);
    return "";
  }
  const t0 = opened.get(key);
  if (t0 === undefined) return "";
  if (e.kind === "response") opened.delete(key);
  return e.kind + " +" + (e.t_ms - t0) + " ms";
}

function matches(e) {
  if (!pings.checked && /^(ping|pong|noop)$/.test(e.kind)) return false;
  if (dirSel.value && e.dir !== dirSel.value) return false;
  if (connSel.value && String(e.conn) !== connSel.value) return false;
  const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const hay = [e.user, e.event, e.kind, "conn" + e.conn, e.conn, e.rid, e.fault].join(" ").toLowerCase();
  return words.every((w) => hay.includes(w));
}

// The filter offers the MAX_CONNS connections with the latest frames (and always the
// selected one).
function noteConn(conn) {
  if (conns.has(conn)) {
    conns.delete(conn); // to the newest end
    conns.add(conn);
    return;
  }
  conns.add(conn);
  connSel.append(el("option", { value: String(conn) }, "conn " + conn));
  if (conns.size <= MAX_CONNS) return;
  for (const old of conns) {
    if (String(old) === connSel.value) continue;
    conns.delete(old);
    const option = [...connSel.options].find((o) => o.value === String(old));
    if (option) option.remove();
    break;
  }
}

function toggleDetail(tr, e) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains("detail")) {
    next.remove();
    return;
  }
  const body = payloadOf(e.frame);
  const text = typeof body === "string" ? body : pretty(body);
  tr.after(el("tr", { class: "detail" }, el("td", { colspan: "11" }, el("pre", { class: "json" }, text))));
}

function row(e, time) {
  const fault = e.fault ? e.fault + " (" + e.action + (e.delay_ms ? " " + e.delay_ms + " ms" : "") + ")" : "";
  const tr = el(
    "tr",
    { class: e.dir + (e.fault ? " faulted" : ""), "data-seq": e.seq, "data-kind": e.kind, "data-event": e.event || "" },
    el("td", {}, e.seq), el("td", {}, e.t_ms), el("td", {}, e.conn), el("td", {}, e.user || ""),
    el("td", { class: "dir" }, e.dir === "in" ? "→ in" : "← out"), el("td", {}, e.kind),
    el("td", {}, e.event || ""), el("td", {}, e.rid || ""), el("td", {}, e.frame.length),
    el("td", {}, time), el("td", { class: "fault" }, fault),
  );
  tr.addEventListener("click", () => toggleDetail(tr, e));
  return tr;
}

function show(e) {
  const time = timing(e);
  noteConn(e.conn);
  if (!matches(e)) return;
  rows.prepend(row(e, time));
  shown++;
  while (rows.children.length > MAX_ROWS) rows.lastElementChild.remove();
  count.textContent = shown + " frames";
}

function onEntry(e) {
  lastSeq = Math.max(lastSeq, e.seq);
  offerUser(e.user);
  if (pause.checked) {
    held.push(e);
    if (held.length > MAX_PAUSED) held.shift();
    count.textContent = held.length + " held while paused";
    return;
  }
  show(e);
}

async function follow() {
  for (;;) {
    try {
      await stream("/__admin/events?since=" + lastSeq, (name, data) => {
        if (name === "frame") onEntry(JSON.parse(data));
      });
    } catch (e) {
      status("wire: " + (e.message || e), true);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// Users seen on the wire are offered in the Network view's user list (on a proxy there
// is no People view to fill it).
function offerUser(user) {
  const sel = document.getElementById("fault-user");
  if (!user || [...sel.options].some((o) => o.value === user)) return;
  sel.append(el("option", { value: user }, user));
}

export function startWire() {
  pause.addEventListener("change", () => {
    if (pause.checked) return;
    const h = held;
    held = [];
    h.forEach(show);
  });
  document.getElementById("wire-clear").addEventListener("click", () => {
    rows.replaceChildren();
    shown = 0;
    count.textContent = "";
  });
  follow();
}
