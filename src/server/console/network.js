// The Network view: presets, fault rules switched live, the virtual clock, reset, and
// loading a scenario (the admin API's /__admin/network, /faults, /clock, /reset, /scenario).
// Only the controls the site lists are used (a proxy has presets and faults only).
import { api, el, fillTable, pretty, guarded, status } from "./util.js";

const out = () => document.getElementById("net-result");
let serial = 0;
let controls = [];
const has = (c) => controls.includes(c);

async function presets() {
  const n = await guarded(() => api("/__admin/network"));
  if (!n) return;
  const box = document.getElementById("net-presets");
  box.replaceChildren(...Object.keys(n.presets).map((p) => el("button", {
    type: "button", "data-preset": p, class: n.current === p ? "on" : "",
    onclick: () => guarded(async () => { await api("/__admin/network", { method: "POST", json: { preset: p } }); status("network: " + p); await reload(); }, out()),
  }, (n.current === p ? "● " : "") + p)));
}

async function rules() {
  const list = await guarded(() => api("/__admin/faults"));
  if (!list) return;
  const button = (label, f) => el("button", { type: "button", onclick: () => guarded(async () => { await f(); await reload(); }, out()) }, label);
  const id = (r) => encodeURIComponent(r.id);
  fillTable(document.getElementById("fault-rules"), ["id", "when", "action", "matched/fired", ""], list.map((r) => [
    r.id, JSON.stringify(r.when || {}), JSON.stringify(r.action), (r.matched ?? 0) + "/" + (r.fired ?? 0),
    el("span", {},
      r.enabled ? button("disable", () => api("/__admin/faults/" + id(r) + "/disable", { method: "POST" }))
        : button("enable", () => api("/__admin/faults/" + id(r) + "/enable", { method: "POST" })),
      button("delete", () => api("/__admin/faults/" + id(r), { method: "DELETE" }))),
  ]));
}

async function clock() {
  const c = await guarded(() => api("/__admin/clock"));
  if (c) document.getElementById("clock-now").textContent = new Date(c.now_ms).toISOString() + " (offset " + c.offset_ms + " ms)";
}

async function reload() {
  await Promise.all([has("presets") && presets(), rules(), has("clock") && clock()]);
}

function ruleFromForm() {
  const v = (id) => document.getElementById(id).value.trim();
  const action = v("fault-action");
  let value = v("fault-value");
  const when = {};
  if (v("fault-user")) when.user = v("fault-user");
  if (v("fault-dir")) when.direction = v("fault-dir");
  if (v("fault-kind")) when.kind = v("fault-kind");
  const events = v("fault-events").split(/[\s,]+/).filter(Boolean);
  if (events.length) when.event = events;
  const rule = { id: "console-" + action + "-" + Date.now().toString(36) + (serial++), when, action: value ? JSON.parse(value) : action };
  if (v("fault-times")) rule.times = Number(v("fault-times"));
  return rule;
}

async function addRule(ev) {
  ev.preventDefault();
  const rule = ruleFromForm();
  await api("/__admin/faults", { method: "POST", json: rule });
  out().textContent = "added " + pretty(rule);
  status("fault " + rule.id + " on");
  await reload();
}

async function loadScenario(ev) {
  ev.preventDefault();
  const file = document.getElementById("scenario-file").files[0];
  const text = file ? await file.text() : document.getElementById("scenario-text").value;
  const r = await api("/__admin/scenario", { method: "POST", yaml: text });
  out().textContent = pretty(r);
  status("scenario loaded: " + r.loaded);
  await reload();
}

export function startNetwork(table, allowed) {
  controls = allowed;
  const actionSel = document.getElementById("fault-action");
  actionSel.replaceChildren(...table.fault_actions.map((a) => el("option", { value: a.name }, a.name)));
  const examples = Object.fromEntries(table.fault_actions.map((a) => [a.name, a.example]));
  const setExample = () => { document.getElementById("fault-value").value = JSON.stringify(examples[actionSel.value]); };
  actionSel.addEventListener("change", setExample);
  setExample();
  document.getElementById("fault-kind").append(...table.kinds.map((k) => el("option", { value: k }, k)));
  document.getElementById("fault-form").addEventListener("submit", (ev) => guarded(() => addRule(ev), out()));
  document.getElementById("clock-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const ms = Number(document.getElementById("clock-ms").value);
    guarded(async () => { await api("/__admin/clock", { method: "POST", json: { advance_ms: ms } }); await clock(); }, out());
  });
  document.getElementById("reset").addEventListener("click", () => guarded(async () => {
    await api("/__admin/reset", { method: "POST" });
    status("reset");
    await reload();
  }, out()));
  document.getElementById("scenario-form").addEventListener("submit", (ev) => guarded(() => loadScenario(ev), out()));
  document.addEventListener("view", (e) => e.detail === "network" && reload());
  // The rules' counters move with the traffic: refreshed while the view is shown.
  setInterval(() => { if (!document.getElementById("view-network").hidden) rules(); }, 2000);
  reload();
}
