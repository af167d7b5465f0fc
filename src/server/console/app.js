// The console's entry point: token, tabs, and the four views.
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
    status("connected · " + h.sessions + " sessions");
  } catch (e) {
    status(String(e.message || e), true);
    return;
  }
  startWire();
  startPeople(table);
  startNetwork(table);
  startRecord();
  document.body.dataset.ready = "1";
}

main();
