// The People view: users, friends, groups, rooms, conversations and stored messages
// (GET /__admin/state, /__admin/messages), and acting as a user (POST /__admin/act)
// through forms built from GET /__admin/api.
import { api, el, fillTable, pretty, guarded, status } from "./util.js";

const FILE_ARGS = new Set(["image", "file", "avatar"]);
// The guide's everyday actions, one click away.
const QUICK = [
  ["text", "sendSingleMsg"], ["image", "sendSinglePic"], ["file", "sendSingleFile"],
  ["location", "sendSingleLocation"], ["custom", "sendSingleCustom"], ["group text", "sendGroupMsg"],
  ["invite", "addGroupMembers"], ["remove", "delGroupMembers"], ["accept invite", "addGroupMemberResp"],
  ["add friend", "addFriend"], ["accept friend", "acceptFriend"], ["silence", "addGroupMemSilence"],
  ["retract", "msgRetract"], ["transparent", "transSingleMsg"], ["profile", "updateSelfInfo"],
];
// Placeholders for arguments whose shape is not obvious.
const HINTS = {
  member_usernames: '[{"username": "alice"}]', custom: '{"key": "value"}', msg_ids: "[100000001]",
  latitude: "31.2", longitude: "121.4", scale: "1", label: "Shanghai", result: "0", cmd: "typing",
  gid: "10001", msg_id: "100000001", extras: '{"k": "v"}',
};

let methods = [];

// A typed value: JSON when it reads as JSON (numbers, lists, objects, true/false), else text.
function valueOf(text) {
  const t = text.trim();
  if (/^(-?\d+(\.\d+)?|true|false|null|\[.*\]|\{.*\}|".*")$/s.test(t)) {
    try {
      return JSON.parse(t);
    } catch (_) {
      /* plain text */
    }
  }
  return text;
}

function readFile(input) {
  const f = input.files[0];
  if (!f) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve({ $file: { name: f.name, type: f.type || "application/octet-stream", base64: String(r.result).split(",")[1] || "" } });
    r.onerror = () => reject(r.error);
    r.readAsDataURL(f);
  });
}

function argField(name) {
  const input = FILE_ARGS.has(name)
    ? el("input", { type: "file", "data-arg": name, "data-file": "1" })
    : el("input", { "data-arg": name, placeholder: HINTS[name] || "", size: "40" });
  return el("label", {}, el("span", {}, name), input);
}

function buildArgs() {
  const m = methods.find((x) => x.name === document.getElementById("act-method").value);
  document.getElementById("act-args").replaceChildren(...(m ? m.args.map(argField) : []));
}

async function collectArgs() {
  const args = {};
  for (const input of document.querySelectorAll("#act-args [data-arg]")) {
    const v = input.dataset.file ? await readFile(input) : input.value === "" ? undefined : valueOf(input.value);
    if (v !== undefined) args[input.dataset.arg] = v;
  }
  return args;
}

async function act(ev) {
  ev.preventDefault();
  const out = document.getElementById("act-result");
  out.textContent = "…";
  const body = { as: document.getElementById("act-as").value, method: document.getElementById("act-method").value, args: await collectArgs() };
  const r = await guarded(() => api("/__admin/act", { method: "POST", json: body }), out);
  if (r === undefined) return;
  out.textContent = pretty(r);
  status(body.as + " " + body.method + ": " + r.callback);
  refresh();
}

function groupsTable(groups) {
  const role = (f) => (f === 1 ? "owner" : f === 2 ? "keeper" : "member");
  const rows = groups.map((g) => [
    g.gid, g.name || "",
    g.members.map((m) => m.username + " (" + role(m.flag) + (m.keep_silence ? ", silenced" : "") + ")").join(", "),
  ]);
  fillTable(document.getElementById("people-groups"), ["gid", "name", "members"], rows);
}

// Messages grouped by conversation: a pair of users, or a group.
function conversations(messages) {
  const convs = new Map();
  for (const m of messages) {
    const c = m.content || {};
    const key = c.target_type === "single" ? [c.from_id, c.target_id].sort().join(" ↔ ") : (c.target_type || "?") + " " + (c.target_name || c.target_id);
    if (!convs.has(key)) convs.set(key, []);
    convs.get(key).push(m);
  }
  const box = document.getElementById("people-convs");
  box.replaceChildren(...[...convs].map(([key, list]) => el("details", {},
    el("summary", {}, key + " (" + list.length + ")"),
    el("ul", {}, list.slice(-50).map((m) => el("li", {}, "#" + m.msg_id + " " + (m.content && m.content.from_id) + ": " + describe(m.content || {})))),
  )));
}

function describe(c) {
  const b = c.msg_body || {};
  if (c.msg_type === "text") return b.text;
  return "[" + c.msg_type + "] " + JSON.stringify(b).slice(0, 120);
}

async function refresh() {
  const s = await guarded(() => api("/__admin/state"));
  const messages = await guarded(() => api("/__admin/messages"));
  if (!s) return;
  fillTable(document.getElementById("people-users"), ["user", "nickname", "appkey", "online"],
    s.users.map((u) => [u.username, u.nickname || "", u.appkey || "", u.online]));
  fillTable(document.getElementById("people-friends"), ["friends"], (s.friends || []).map((f) => [f.users.join(" ↔ ")]));
  groupsTable(s.groups || []);
  fillTable(document.getElementById("people-rooms"), ["id", "name", "members"],
    (s.rooms || []).map((r) => [r.id, r.name || "", r.total_member_count ?? ""]));
  conversations(messages || []);
  fillUsers(s.users.map((u) => u.username));
}

function fillUsers(names) {
  for (const sel of [document.getElementById("act-as"), document.getElementById("fault-user")]) {
    const keep = sel.value;
    const first = sel.id === "fault-user" ? [el("option", { value: "" }, "everyone")] : [];
    sel.replaceChildren(...first, ...names.map((n) => el("option", { value: n }, n)));
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  }
}

export function startPeople(table) {
  methods = table.methods;
  const sel = document.getElementById("act-method");
  sel.replaceChildren(...methods.map((m) => el("option", { value: m.name }, m.name)));
  sel.value = "sendSingleMsg";
  sel.addEventListener("change", buildArgs);
  document.getElementById("act-quick").replaceChildren(...QUICK.map(([label, name]) =>
    el("button", { type: "button", "data-method": name, onclick: () => { sel.value = name; buildArgs(); } }, label)));
  buildArgs();
  document.getElementById("act-form").addEventListener("submit", act);
  document.getElementById("people-refresh").addEventListener("click", refresh);
  document.addEventListener("view", (e) => e.detail === "people" && refresh());
  refresh();
}
