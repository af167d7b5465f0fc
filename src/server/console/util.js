// Shared helpers of the console: the admin token, calls to the admin API, a server-sent
// events reader that can send the token, and DOM building that only ever sets text.

const TOKEN_KEY = "jmm-admin-token";

// A token given as /__console/#token=... is kept in sessionStorage (this tab, this origin
// only) and removed from the address bar at once, so it never reaches the history.
export function takeTokenFromHash() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

export function setToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = sessionStorage.getItem(TOKEN_KEY);
  if (t) h.Authorization = "Bearer " + t;
  return h;
}

// Called when the API answers 401 (a token is needed or wrong).
let onUnauthorized = () => {};
export function whenUnauthorized(f) {
  onUnauthorized = f;
}

export class ApiError extends Error {}

// Calls the admin API; JSON in and out (text for YAML answers).
export async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: headers(), credentials: "omit" };
  if (opts.json !== undefined) {
    init.body = JSON.stringify(opts.json);
    init.headers["Content-Type"] = "application/json";
  } else if (opts.yaml !== undefined) {
    init.body = opts.yaml;
    init.headers["Content-Type"] = "application/yaml";
  }
  const r = await fetch(path, init);
  if (r.status === 401) onUnauthorized();
  const type = r.headers.get("content-type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const reason = body && body.error ? body.error : JSON.stringify(body);
    throw new ApiError(r.status + ": " + reason + (body && body.errors ? "\n" + body.errors.join("\n") : ""));
  }
  return body;
}

// Reads a server-sent events stream with fetch (EventSource cannot send a token), calling
// onEvent(name, data, id) for each event. Ends when `signal` aborts or the server ends it.
export async function stream(path, onEvent, signal) {
  const r = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal, credentials: "omit" });
  if (r.status === 401) onUnauthorized();
  if (!r.ok || !r.body) throw new ApiError("stream " + path + ": " + r.status);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      dispatch(buf.slice(0, cut), onEvent);
      buf = buf.slice(cut + 2);
    }
  }
}

function dispatch(block, onEvent) {
  let name = "message", id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (data.length) onEvent(name, data.join("\n"), id);
}

// Builds an element; strings become text nodes (never parsed as HTML).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Replaces a table's rows: `head` is a list of titles, `rows` a list of cell lists.
export function fillTable(table, head, rows) {
  table.replaceChildren(
    el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))),
  );
}

export function pretty(v) {
  return JSON.stringify(v, null, 2);
}

export function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.classList.toggle("bad", !!bad);
}

// Runs an async action, showing its error in the status line (and in `out`, when given).
export async function guarded(f, out) {
  try {
    return await f();
  } catch (e) {
    status(String(e.message || e), true);
    if (out) out.textContent = String(e.message || e);
    return undefined;
  }
}
