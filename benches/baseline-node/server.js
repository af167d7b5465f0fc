// The Node baseline of benches/load.rs: the JMessage exchange the load workload needs,
// written the way a team would write its own mock on socket.io@2 (the stack the Web SDK
// was made for). Not part of CI; see docs/performance.md.
//
//   node server.js CONFIG.json [PORT]     (PORT 0 or absent: an ephemeral port)
//
// CONFIG.json: {"appkey", "secret", "password", "users": [names], "groups": [{"gid",
// "members": [names]}], "rooms": [ids]}. Prints "listening on http://127.0.0.1:PORT".
//
// What it implements, with the same envelope as jmessage-mock (docs/protocol.md 2):
// every request gets `ack {rid}` then a response `{code, message, ..., rid}`.
// c_init (MD5 signature check), login (MD5 password check), sync_check,
// s_across_single_text (stores the message, pushes msg_sync to the target's sessions),
// send_group_msg (msg_sync to every other online member), join_room / send_room_msg
// (room_msg_sync), msg_recv_v2. Messages are kept in a bounded history (200,000, oldest
// first out), as jmessage-mock keeps its own.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const port = Number(process.argv[3] || 0);
const HISTORY_MAX = 200000;

const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');
const passwordMd5 = md5(config.password);
const users = new Map(); // username -> {uid, sockets:Set}
let nextUid = 1000;
for (const name of config.users) users.set(name, { uid: nextUid++, sockets: new Set() });
const groups = new Map();
for (const g of config.groups || []) groups.set(String(g.gid), new Set(g.members));
const rooms = new Map();
for (const id of config.rooms || []) rooms.set(String(id), new Set());
const history = [];
let historyHead = 0;
let nextMsgId = 1;

function store(message) {
  if (history.length < HISTORY_MAX) history.push(message);
  else {
    history[historyHead] = message;
    historyHead = (historyHead + 1) % HISTORY_MAX;
  }
}

function answer(socket, event, rid, fields) {
  socket.emit(event, Object.assign({ code: 0, message: 'success' }, fields, { rid }));
}

function fail(socket, event, rid, code, message) {
  socket.emit(event, { code, message, rid });
}

function pushTo(name, except, event, payload) {
  const u = users.get(name);
  if (!u) return;
  for (const s of u.sockets) if (s !== except) s.emit(event, payload);
}

function stamp(socket, content, targetType) {
  const c = Object.assign({}, content);
  c.from_appkey = config.appkey;
  c.sui_mtime = Date.now();
  if (targetType === 'single') c.target_appkey = config.appkey;
  return c;
}

const handlers = {
  c_init(socket, d) {
    const expect = md5(`appkey=${d.appkey}&timestamp=${d.timestamp}&random_str=${d.random_str}&key=${config.secret}`);
    if (d.appkey !== config.appkey) return [880101, 'unknown appkey'];
    if (String(d.signature).toLowerCase() !== expect) return [880102, 'bad signature'];
    socket.jm.init = true;
    return {};
  },
  login(socket, d) {
    if (!socket.jm.init) return [882004, 'not initialised'];
    const u = users.get(d.username);
    if (!u) return [880103, 'no such user'];
    if (d.password !== passwordMd5) return [880104, 'wrong password'];
    socket.jm.user = d.username;
    u.sockets.add(socket);
    return { online_list: [] };
  },
  sync_check(socket, d) {
    return { sync_key: d.sync_key || 0, sync_type: 0, sync_event_key: d.sync_event_key || 0, msg_receipt_key: 0 };
  },
  s_across_single_text(socket, d) {
    const me = socket.jm.user;
    const target = d.target_id || (d.content && d.content.target_id);
    if (!users.has(target)) return [880203, `user ${target} does not exist`];
    const msgId = nextMsgId++;
    const now = Date.now();
    const message = {
      msg_id: msgId, msg_type: 3, from_uid: users.get(me).uid, from_gid: 0, ctime_ms: now,
      msg_level: 0, need_receipt: false, content: stamp(socket, d.content, 'single'),
    };
    store({ from: me, to: target, message });
    pushTo(target, socket, 'msg_sync', { messages: [message] });
    pushTo(me, socket, 'msg_sync', { messages: [message] });
    return { msg_id: msgId, ctime_ms: now, target_username: target, appkey: config.appkey };
  },
  send_group_msg(socket, d) {
    const me = socket.jm.user;
    const gid = String(d.target_gid);
    const members = groups.get(gid);
    if (!members) return [880204, `group ${gid} does not exist`];
    if (!members.has(me)) return [880205, 'not a member'];
    const msgId = nextMsgId++;
    const now = Date.now();
    const message = {
      msg_id: msgId, msg_type: 4, from_uid: users.get(me).uid, from_gid: Number(gid), ctime_ms: now,
      msg_level: 0, need_receipt: false, content: stamp(socket, d.content, 'group'),
    };
    store({ from: me, gid, message });
    for (const m of members) pushTo(m, socket, 'msg_sync', { messages: [message] });
    return { msg_id: msgId, ctime_ms: now };
  },
  join_room(socket, d) {
    const room = rooms.get(String(d.id));
    if (!room) return [881500, 'no such room'];
    room.add(socket.jm.user);
    return {};
  },
  send_room_msg(socket, d) {
    const id = String(d.target_gid);
    const room = rooms.get(id);
    if (!room || !room.has(socket.jm.user)) return [881501, `not in chat room ${id}`];
    const msgId = nextMsgId++;
    const now = Date.now();
    const push = { room_id: Number(id), msg_id: msgId, ctime_ms: now, content: stamp(socket, d.content, 'chatroom') };
    for (const m of room) pushTo(m, socket, 'room_msg_sync', push);
    return { room_id: Number(id), msg_id: msgId, ctime_ms: now };
  },
  msg_recv_v2() {
    return {};
  },
};

const server = http.createServer();
const io = require('socket.io')(server, { pingInterval: 25000, pingTimeout: 60000, serveClient: false });

io.on('connection', (socket) => {
  socket.jm = { init: false, user: null };
  socket.use((packet, next) => {
    const [event, d] = packet;
    if (!d || typeof d !== 'object' || typeof d.rid !== 'number') return next();
    socket.emit('ack', { rid: d.rid });
    const h = handlers[event];
    if (!h) return fail(socket, event, d.rid, 880002, `unknown event ${event}`);
    if (!socket.jm.user && event !== 'c_init' && event !== 'login') {
      return fail(socket, event, d.rid, 882004, 'not logged in');
    }
    const r = h(socket, d);
    if (Array.isArray(r)) fail(socket, event, d.rid, r[0], r[1]);
    else answer(socket, event, d.rid, r);
    next();
  });
  socket.on('disconnect', () => {
    const u = socket.jm.user && users.get(socket.jm.user);
    if (u) u.sockets.delete(socket);
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
