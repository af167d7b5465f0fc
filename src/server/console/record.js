// The Record view: the session as a scenario file (GET /__admin/record).
import { api, guarded, status } from "./util.js";

let url = null;

async function exportScenario() {
  const text = await api("/__admin/record");
  document.getElementById("record-text").textContent = text;
  const a = document.getElementById("record-download");
  if (url) URL.revokeObjectURL(url);
  url = URL.createObjectURL(new Blob([text], { type: "application/yaml" }));
  a.href = url;
  a.hidden = false;
  status("recorded " + text.split("\n").filter((l) => /^ {2}- \{"(request|init|connect)"/.test(l)).length + " steps");
}

export function startRecord() {
  const out = document.getElementById("record-text");
  document.getElementById("record-export").addEventListener("click", () => guarded(exportScenario, out));
}
