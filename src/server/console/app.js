// The console's entry point: token, tabs, and the four views. Which views and controls
// apply comes from GET /__admin/api ("views", "controls", "mode"): a proxy has no People
// view and no clock, reset or scenario load.
import { takeTokenFromHash, setToken, whenUnauthorized, api, status } from "./util.js";
import { startWire } from "./wire.js";
import { startPeople } from "./people.js";
import { startNetwork } from "./network.js";
import { startRecord } from "./record.js";

function showView(name) {
  for (const b of document.querySelectorAll("#tabs button")) {
    b.classList.toggle("on", b.dataset.view === name);
  }
  for (const v of document.querySelectorAll(".view")) {
    v.hidden = v.id !== "view-" + name;
  }
  document.dispatchEvent(new CustomEvent("view", { detail: name }));
}

function askToken() {
  const form = document.getElementById("token-form");
  form.hidden = false;
  status("the admin API needs its token", true);
}

const ALL_VIEWS = ["wire", "people", "network", "record"];
const ALL_CONTROLS = ["presets", "faults", "clock", "reset", "scenario"];

function applySite(table) {
  const views = table.views || ALL_VIEWS;
  const controls = table.controls || ALL_CONTROLS;
  for (const b of document.querySelectorAll("#tabs button")) b.hidden = !views.includes(b.dataset.view);
  for (const c of document.querySelectorAll("[data-control]")) c.hidden = !controls.includes(c.dataset.control);
  for (const n of document.querySelectorAll("[data-only]")) n.hidden = n.dataset.only !== (table.mode || "serve");
  for (const u of document.querySelectorAll("code.upstream")) u.textContent = table.upstream || "";
  document.body.dataset.mode = table.mode || "serve";
  return { views, controls };
}

async function main() {
  takeTokenFromHash();
  whenUnauthorized(askToken);
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setToken(document.getElementById("token-input").value);
    location.reload();
  });
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => showView(b.dataset.view));
  }
  let table;
  try {
    table = await api("/__admin/api");
    const h = await api("/__admin/health");
    const where = table.mode === "proxy" ? "proxy → " + table.upstream + " · " : "";
    status(where + "connected · " + h.sessions + " sessions");
  } catch (e) {
    status(String(e.message || e), true);
    return;
  }
  const site = applySite(table);
  startWire();
  if (site.views.includes("people")) startPeople(table);
  startNetwork(table, site.controls);
  startRecord();
  document.body.dataset.ready = "1";
}

main();
