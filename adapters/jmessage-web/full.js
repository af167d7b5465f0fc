#!/usr/bin/env node
'use strict';
// Full end-to-end scenario: three official-SDK instances (A, B, C) against
// jmessage-mock, through the SDK's public API only (the guide's method names
// and callbacks). Covers session/user, friends, single messages, receipts,
// retract, transparent messages, media upload + getResource, groups (with
// silence, keepers, owner transfer, dissolve where the build has them), chat
// rooms (2.5.0+), blacklist and offline sync on a fresh instance.
//
// A step whose SDK method the build lacks is reported as skipped.
// One JSON line per step on stdout: {"step", "status": "ok"|"fail"|"skipped", ...},
// ending with {"step":"done","ok":…,"passed":n,"failed":n,"skipped":n}.
// Exit 0 only if every non-skipped step passed; overall timeout JMM_TIMEOUT_MS
// (default 60000).
//
// Env: JMESSAGE_SDK, JMM_ADDRESS, JMM_UPLOAD, JMM_APPKEY, JMM_SECRET (as smoke.js);
//      JMM_ROOM_ID (optional: id of a chat room the server has; otherwise the
//      first room of getAppkeyChatrooms), JMM_DEBUG=1, JMM_TRACE=1.

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const util = require('util');
const zlib = require('zlib');
const { createInstance, getSandbox } = require('./lib/sandbox');

const env = process.env;
const OVERALL_MS = Number(env.JMM_TIMEOUT_MS) || 60000;
const WAIT_MS = 5000; // per listener delivery
const TRACE = env.JMM_TRACE === '1';
const DEBUG = env.JMM_DEBUG === '1';

const t0 = Date.now();
let finished = false;
const instances = {}; // label -> jim (every instance ever created, for cleanup)
const counts = { ok: 0, fail: 0, skipped: 0 };
const failures = [];

function emit(obj) {
  process.stdout.write(JSON.stringify({ t_ms: Date.now() - t0, ...obj }) + '\n');
}

function plain(v) {
  try { return JSON.parse(JSON.stringify(v)); } catch (_) { return String(v); }
}

function md5(s) { return crypto.createHash('md5').update(s, 'utf8').digest('hex'); }
function randomId(n) { return crypto.randomBytes(n).toString('hex').slice(0, n); }
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function stderrConsole(label) {
  const w = (lvl) => (...args) => process.stderr.write(`[${label} console.${lvl}] ${util.format(...args)}\n`);
  return { log: w('log'), info: w('info'), warn: w('warn'), error: w('error'), debug: w('debug'), trace: w('trace'), table: w('table') };
}

function toWsAddress(addr) {
  const u = new URL(addr);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return `${u.protocol}//${u.host}`;
}

function dumpFrames(label, max) {
  const sb = instances[label] && getSandbox(instances[label]);
  if (!sb) return;
  const frames = sb.frames.slice(-max);
  process.stderr.write(`---- ${label}: last ${frames.length} of ${sb.frames.length} wire events ----\n`);
  for (const f of frames) process.stderr.write(`[${label} +${f.t}ms conn${f.conn}] ${f.dir} ${f.data === null ? '' : f.data}\n`);
}

// ---------------------------------------------------------------------------
// Small generated media: a valid 2x3 RGB PNG and a text file.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function pngChunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function makePng(width, height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const raw = [];
  for (let y = 0; y < height; y++) {
    raw.push(0); // filter: none
    for (let x = 0; x < width; x++) raw.push((x * 120) & 255, (y * 80) & 255, 200);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(Buffer.from(raw))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function httpGet(url) {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    const req = lib.get(url, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('GET timed out')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------
// SDK calls and listener deliveries as promises.

class StepError extends Error {
  constructor(message, detail) { super(message); this.detail = detail; }
}

// Copies plain objects and arrays into the page's realm, as page code would
// have built them (the SDK tests `x instanceof Array`, which is false for a
// Node-realm array). Other objects (FormData, Blob) are passed as they are.
function toPage(label, v) {
  const win = getSandbox(instances[label]).window;
  const conv = (x) => {
    if (Array.isArray(x)) { const a = new win.Array(); for (const e of x) a.push(conv(e)); return a; }
    if (x && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) {
      const o = new win.Object();
      for (const [k, e] of Object.entries(x)) o[k] = conv(e);
      return o;
    }
    return x;
  };
  return conv(v);
}

// Runs an SDK request; resolves with {data, extra} on onSuccess, rejects on
// onFail / onTimeout / a synchronous throw.
function call(label, method, args) {
  const jim = instances[label];
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = args === undefined ? jim[method]() : jim[method](toPage(label, args));
    } catch (e) {
      reject(new StepError(`${label}.${method} threw: ${e.message}`));
      return;
    }
    if (!req || typeof req.onSuccess !== 'function') {
      reject(new StepError(`${label}.${method} returned no request object`));
      return;
    }
    req.onSuccess((data, extra) => resolve({ data, extra }))
      .onFail((data) => reject(new StepError(`${label}.${method} onFail`, { code: data && data.code, data: plain(data) })))
      .onTimeout((data) => reject(new StepError(`${label}.${method} onTimeout`, { data: plain(data) })));
  });
}

// Expects the call to fail with `code` (onFail); success is an error.
async function callFails(label, method, args, code) {
  try {
    const r = await call(label, method, args);
    throw new StepError(`${label}.${method} succeeded, expected onFail ${code}`, { data: plain(r.data) });
  } catch (e) {
    if (!(e instanceof StepError) || !e.detail || e.detail.code === undefined) throw e;
    if (e.detail.code !== code) throw new StepError(`${label}.${method} failed with ${e.detail.code}, expected ${code}`, e.detail);
    return e.detail.data;
  }
}

const LISTENERS = ['onMsgReceive', 'onEventNotification', 'onSyncConversation', 'onRoomMsg',
  'onMsgReceiptChange', 'onTransMsgRec', 'onSyncEvent', 'onSyncMsgReceipt'];
const inbox = {}; // label -> listener -> [payload]
const waiters = []; // {label, kind, pred, resolve}

function attachListeners(label) {
  const jim = instances[label];
  inbox[label] = {};
  for (const kind of LISTENERS) {
    inbox[label][kind] = [];
    if (typeof jim[kind] !== 'function') continue;
    jim[kind]((payload) => {
      const p = plain(payload);
      inbox[label][kind].push(p);
      if (TRACE) process.stderr.write(`[${label}] ${kind} ${JSON.stringify(p)}\n`);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i];
        if (w.label === label && w.kind === kind && safePred(w.pred, p)) { waiters.splice(i, 1); w.resolve(p); }
      }
    });
  }
}

function safePred(pred, p) { try { return !!pred(p); } catch (_) { return false; } }

// Resolves with the first delivery (past or future) on `label`'s `kind` listener
// matching `pred`; rejects after `ms`.
function waitFor(label, kind, pred, what, ms = WAIT_MS) {
  const past = (inbox[label] && inbox[label][kind]) || [];
  const hit = past.find((p) => safePred(pred, p));
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve, reject) => {
    const w = { label, kind, pred, resolve: null };
    const timer = setTimeout(() => {
      const i = waiters.indexOf(w);
      if (i >= 0) waiters.splice(i, 1);
      reject(new StepError(`${label}.${kind}: no ${what} within ${ms} ms`, { received: (inbox[label][kind] || []).slice(-5) }));
    }, ms);
    w.resolve = (p) => { clearTimeout(timer); resolve(p); };
    waiters.push(w);
  });
}

// Messages delivered by onMsgReceive come as {messages:[msg]}.
function msgIn(pred) {
  return (payload) => (payload.messages || []).some((m) => safePred(pred, m));
}
function findMsg(payload, pred) { return (payload.messages || []).find((m) => safePred(pred, m)); }
function eventFrom(type, from) { return (e) => e.event_type === type && (!from || e.from_username === from); }

function check(cond, message, detail) { if (!cond) throw new StepError(message, detail); }

// 2.5.0+ copy `flag` into `group_type` (and delete `flag`); 2.4.0 passes the
// server's `flag` through unchanged.
let sdkConvertsFlag = true;
// 2.4.0's getConversation throws in its hook (typo `self.elf`) for a listed
// conversation missing from its local cache, and the callback is lost.
let sdkElfTypo = false;
function checkGroupType(g, what) {
  if (sdkConvertsFlag) check(g.group_type !== undefined && !('flag' in g), `${what}: group_type not present`, g);
  else check(g.flag !== undefined, `${what}: flag not present (this build does not convert it to group_type)`, g);
}

function has(label, ...methods) {
  const jim = instances[label];
  return methods.filter((m) => typeof jim[m] !== 'function');
}

// Runs one step: skipped when the build lacks one of `needs` (methods of A),
// otherwise ok/fail. A failing step does not stop the scenario unless
// `critical` (later steps depend on it).
async function step(name, needs, fn, critical) {
  if (finished) throw new Error('finished');
  const missing = needs.length ? has('A', ...needs) : [];
  if (missing.length) {
    counts.skipped += 1;
    emit({ step: name, status: 'skipped', reason: `build lacks ${missing.join(', ')}` });
    return undefined;
  }
  const started = Date.now();
  try {
    const info = await fn();
    counts.ok += 1;
    emit({ step: name, status: 'ok', ms: Date.now() - started, ...(info && typeof info === 'object' ? { info: plain(info) } : {}) });
    return info === undefined ? true : info;
  } catch (e) {
    counts.fail += 1;
    failures.push(name);
    emit({ step: name, status: 'fail', ms: Date.now() - started, error: e && e.message, detail: e && e.detail, stack: e instanceof StepError ? undefined : e && e.stack });
    if (critical) throw new StepError(`critical step ${name} failed`);
    return undefined;
  }
}

// Every C->S request (42[...] with rid) must get an `ack` before its response
// and must not be re-sent (a re-send means a late or missing ack/response),
// protocol §2.5.
function checkAcks(label) {
  const sb = getSandbox(instances[label]);
  const sent = new Map();
  const acked = new Map();
  const responded = new Map();
  sb.frames.forEach((f, i) => {
    if (typeof f.data !== 'string' || !f.data.startsWith('42')) return;
    let arr;
    try { arr = JSON.parse(f.data.slice(2)); } catch (_) { return; }
    if (!Array.isArray(arr)) return;
    const [event, payload] = arr;
    if (!payload || typeof payload !== 'object' || payload.rid === undefined) return;
    const rid = String(payload.rid);
    if (f.dir === '>') {
      const e = sent.get(rid) || { event, count: 0 };
      e.count += 1;
      sent.set(rid, e);
    } else if (f.dir === '<') {
      if (event === 'ack') { if (!acked.has(rid)) acked.set(rid, i); } else if (!responded.has(rid)) responded.set(rid, i);
    }
  });
  const problems = [];
  for (const [rid, e] of sent) {
    if (!acked.has(rid)) problems.push(`${e.event} rid=${rid}: no ack`);
    else if (responded.has(rid) && responded.get(rid) < acked.get(rid)) problems.push(`${e.event} rid=${rid}: response before ack`);
    if (e.count > 1) problems.push(`${e.event} rid=${rid}: sent ${e.count} times (retry)`);
  }
  return { requests: sent.size, problems };
}

// ---------------------------------------------------------------------------

let cfg;

function newInstance(label) {
  const jim = createInstance(cfg.sdk, {
    name: label,
    address: cfg.address,
    upload_file: cfg.upload,
    debug: DEBUG,
    console: stderrConsole(label),
    onFrame: TRACE ? (f) => process.stderr.write(`[${label} +${f.t}ms conn${f.conn}] ${f.dir} ${f.data === null ? '' : f.data}\n`) : undefined,
    onError: (e) => process.stderr.write(`[${label}] SDK exception in ${e.where}: ${e.stack || e.message}\n`),
  });
  instances[label] = jim;
  return jim;
}

function initArgs() {
  const timestamp = String(Date.now());
  const random_str = randomId(24);
  const signature = md5(`appkey=${cfg.appkey}&timestamp=${timestamp}&random_str=${random_str}&key=${cfg.secret}`);
  return { appkey: cfg.appkey, random_str, signature, timestamp, flag: 0 };
}

function finish(reason) {
  if (finished) return;
  finished = true;
  const ok = !reason && counts.fail === 0;
  const errors = {};
  for (const [label, jim] of Object.entries(instances)) {
    const sb = getSandbox(jim);
    if (sb && sb.errors.length) errors[label] = sb.errors.map((e) => `${e.where}: ${e.message}`);
  }
  if (!ok) for (const label of Object.keys(instances)) dumpFrames(label, 40);
  for (const [label, jim] of Object.entries(instances)) {
    try { if (jim.isLogin && jim.isLogin()) jim.loginOut(); } catch (e) { process.stderr.write(`[${label}] loginOut threw: ${e.message}\n`); }
  }
  setTimeout(() => {
    for (const jim of Object.values(instances)) { const sb = getSandbox(jim); if (sb) sb.dispose(); }
    emit({
      step: 'done', ok, reason: reason || undefined, passed: counts.ok, failed: counts.fail, skipped: counts.skipped,
      failures: failures.length ? failures : undefined, sdk_errors: Object.keys(errors).length ? errors : undefined,
    });
    process.exit(ok ? 0 : 1);
  }, 300);
}

async function main() {
  const missingEnv = ['JMESSAGE_SDK', 'JMM_ADDRESS', 'JMM_UPLOAD', 'JMM_APPKEY', 'JMM_SECRET'].filter((k) => !env[k]);
  if (missingEnv.length) {
    counts.fail += 1;
    emit({ step: 'config', status: 'fail', error: `missing env: ${missingEnv.join(', ')}` });
    finish('config');
    return;
  }
  cfg = {
    sdk: path.resolve(env.JMESSAGE_SDK), address: toWsAddress(env.JMM_ADDRESS), upload: env.JMM_UPLOAD,
    appkey: env.JMM_APPKEY, secret: env.JMM_SECRET,
  };
  const sdkSource = fs.readFileSync(cfg.sdk, 'utf8');
  sdkConvertsFlag = sdkSource.includes('group_type');
  sdkElfTypo = sdkSource.includes('self.elf.');
  emit({ step: 'config', status: 'ok', converts_flag_to_group_type: sdkConvertsFlag, get_conversation_cache_bug: sdkElfTypo, sdk: cfg.sdk, address: cfg.address, upload_file: cfg.upload });

  const suffix = randomId(8);
  const U = { A: `full_a_${suffix}`, B: `full_b_${suffix}`, C: `full_c_${suffix}` };
  const password = 'pw123456';

  // --- session ------------------------------------------------------------
  await step('session.init_register_login', [], async () => {
    for (const l of ['A', 'B', 'C']) newInstance(l);
    await Promise.all(['A', 'B', 'C'].map((l) => call(l, 'init', initArgs())));
    await Promise.all(['A', 'B', 'C'].map((l) => call(l, 'register', { username: U[l], password })));
    await Promise.all(['A', 'B', 'C'].map((l) => call(l, 'login', { username: U[l], password })));
    for (const l of ['A', 'B', 'C']) {
      check(instances[l].isInit() && instances[l].isLogin(), `${l}: isInit/isLogin false after login`);
      attachListeners(l);
    }
    return { users: U };
  }, true);

  await step('user.getUserInfo', ['getUserInfo'], async () => {
    const { data } = await call('A', 'getUserInfo', { username: U.B });
    check(data.user_info && data.user_info.username === U.B, 'user_info.username mismatch', plain(data));
    check(data.user_info.appkey === cfg.appkey, 'user_info.appkey mismatch', plain(data));
  });

  await step('user.updateSelfInfo', ['updateSelfInfo', 'getUserInfo'], async () => {
    await call('A', 'updateSelfInfo', { nickname: 'Alice 爱丽丝', signature: 'full scenario', gender: 2 });
    const { data } = await call('B', 'getUserInfo', { username: U.A });
    check(data.user_info.nickname === 'Alice 爱丽丝', 'nickname not updated', plain(data));
    check(data.user_info.signature === 'full scenario', 'signature not updated', plain(data));
  });

  // --- friends --------------------------------------------------------------
  await step('friend.addFriend', ['addFriend'], async () => {
    const ev = waitFor('B', 'onEventNotification', eventFrom(5, U.A), 'event 5 (invitation)');
    await call('A', 'addFriend', { target_name: U.B, why: 'be my friend' });
    const e = await ev;
    check(e.extra === 1, `invitation event extra=${e.extra}, expected 1`, e);
    return { event: e };
  });

  await step('friend.acceptFriend', ['acceptFriend'], async () => {
    const ev = waitFor('A', 'onEventNotification', eventFrom(5, U.B), 'event 5 (answer)');
    await call('B', 'acceptFriend', { target_name: U.A });
    const e = await ev;
    check(e.extra === 2 && e.return_code === 0, `answer event extra=${e.extra} return_code=${e.return_code}`, e);
    return { event: e };
  });

  await step('friend.getFriendList', ['getFriendList'], async () => {
    const { data: a } = await call('A', 'getFriendList');
    const { data: b } = await call('B', 'getFriendList');
    check((a.friend_list || []).some((f) => f.username === U.B), 'B missing from A friend_list', plain(a));
    check((b.friend_list || []).some((f) => f.username === U.A), 'A missing from B friend_list', plain(b));
  });

  await step('friend.updateFriendMemo', ['updateFriendMemo'], async () => {
    await call('A', 'updateFriendMemo', { target_name: U.B, memo_name: 'bee', memo_others: 'from full.js' });
    const { data } = await call('A', 'getFriendList');
    const f = (data.friend_list || []).find((x) => x.username === U.B);
    check(f && f.memo_name === 'bee', 'memo_name not updated', plain(data));
  });

  // --- single messages ------------------------------------------------------
  let textMsgId;
  await step('single.sendSingleMsg', ['sendSingleMsg'], async () => {
    const text = `hello B ${suffix} 你好 😀`;
    const got = waitFor('B', 'onMsgReceive', msgIn((m) => m.content.msg_body.text === text), 'text from A');
    const { data } = await call('A', 'sendSingleMsg', { target_username: U.B, content: text });
    check(data.msg_id, 'no msg_id in onSuccess', plain(data));
    textMsgId = data.msg_id;
    const m = findMsg(await got, (x) => x.content.msg_body.text === text);
    check(m.from_username === U.A, `from_username=${m.from_username}`, m);
    check(String(m.msg_id) === String(data.msg_id), 'receiver msg_id differs from sender msg_id', m);
  }, true);

  await step('single.getConversation', ['getConversation'], async () => {
    // 2.4.0 loses the callback when a listed conversation is not in its local
    // cache (typo `self.elf`); resetUnreadCount creates the cache entry.
    if (sdkElfTypo) {
      instances.A.resetUnreadCount(toPage('A', { username: U.B }));
      instances.B.resetUnreadCount(toPage('B', { username: U.A }));
    }
    const { data: a } = await call('A', 'getConversation');
    check((a.conversations || []).some((c) => c.type === 3 && c.username === U.B), 'A has no conversation with B', plain(a));
    const { data: b } = await call('B', 'getConversation');
    check((b.conversations || []).some((c) => c.type === 3 && c.username === U.A), 'B has no conversation with A', plain(b));
  });

  await step('receipt.report_and_change', ['sendSingleMsg', 'addSingleReceiptReport', 'onMsgReceiptChange'], async () => {
    const text = `please ack ${suffix}`;
    const got = waitFor('B', 'onMsgReceive', msgIn((m) => m.content.msg_body.text === text), 'receipt message');
    const { data } = await call('A', 'sendSingleMsg', { target_username: U.B, content: text, need_receipt: true, nead_receipt: true /* 2.4.0 spelling */ });
    const msgId = data.msg_id;
    const m = findMsg(await got, (x) => x.content.msg_body.text === text);
    check(m.need_receipt === true, `need_receipt=${m.need_receipt} on the received message`, m);
    const change = waitFor('A', 'onMsgReceiptChange',
      (p) => (p.receipt_msgs || []).some((r) => String(r.msg_id) === String(msgId)), 'receipt change', 8000);
    // 2.5.0+ return a report object with callbacks (its setters do not all
    // chain); 2.4.0 returns nothing and only the receipt_change tells.
    const rep = instances.B.addSingleReceiptReport(toPage('B', { username: U.A, msg_ids: [msgId] }));
    let r;
    if (rep && typeof rep.onSuccess === 'function') {
      r = await new Promise((resolve, reject) => {
        rep.onSuccess((d, ids) => resolve({ d, ids }));
        rep.onFail((d) => reject(new StepError('addSingleReceiptReport onFail', { data: plain(d) })));
        if (typeof rep.onTimeout === 'function') rep.onTimeout((d) => reject(new StepError('addSingleReceiptReport onTimeout', { data: plain(d) })));
      });
      check(Array.isArray(r.ids) && r.ids.map(String).includes(String(msgId)), 'report callback msg_ids', plain(r));
    }
    const c = await change;
    const rm = c.receipt_msgs.find((x) => String(x.msg_id) === String(msgId));
    check(rm.unread_count === 0, `unread_count=${rm.unread_count}`, c);
    if (typeof instances.A.msgUnreadList === 'function') {
      const { data: ul } = await call('A', 'msgUnreadList', { msg_id: msgId });
      const lists = ul.msg_unread_list || {};
      check((lists.read_list || []).some((u) => u.username === U.B), 'B not in read_list', plain(ul));
      check(!(lists.unread_list || []).some((u) => u.username === U.B), 'B still in unread_list', plain(ul));
    }
    return { msg_id: msgId, change: c };
  });

  await step('retract.msgRetract', ['sendSingleMsg', 'msgRetract'], async () => {
    const text = `oops ${suffix}`;
    const got = waitFor('B', 'onMsgReceive', msgIn((m) => m.content.msg_body.text === text), 'message to retract');
    const { data } = await call('A', 'sendSingleMsg', { target_username: U.B, content: text });
    await got;
    const ev = waitFor('B', 'onEventNotification',
      (e) => e.event_type === 55 && (e.msgid_list || e.msg_ids || []).map(String).includes(String(data.msg_id)), 'event 55');
    await call('A', 'msgRetract', { msg_id: data.msg_id });
    const e = await ev;
    check(e.from_username === U.A, `event 55 from_username=${e.from_username}`, e);
    check(e.type === 0, `event 55 type=${e.type} (expected 0 = single)`, e);
  });

  await step('trans.transSingleMsg', ['transSingleMsg', 'onTransMsgRec'], async () => {
    const cmd = `typing ${suffix}`;
    const got = waitFor('B', 'onTransMsgRec', (p) => p.cmd === cmd, 'transparent message');
    await call('A', 'transSingleMsg', { target_username: U.B, cmd });
    const p = await got;
    check(p.from_username === U.A && p.type === 3, 'trans_msg_rec fields', p);
  });

  // --- media ------------------------------------------------------------------
  const png = makePng(2, 3);
  const textFile = Buffer.from(`jmessage-mock full scenario ${suffix}\nzweite Zeile – 第二行\n`, 'utf8');

  async function mediaRoundTrip(method, argName, bytes, filename, mime, checkBody) {
    const fd = new FormData();
    fd.append(argName, new Blob([bytes], { type: mime }), filename);
    const got = waitFor('B', 'onMsgReceive', msgIn((m) => m.from_username === U.A && m.content.msg_type === (argName === 'image' ? 'image' : 'file')
      && !seenMedia.has(m.content.msg_body.media_id)), `${argName} message`, 8000);
    const { data } = await call('A', method, { target_username: U.B, [argName]: fd });
    check(data.msg_id, 'no msg_id', plain(data));
    const payload = await got;
    const m = findMsg(payload, (x) => x.content.msg_type === (argName === 'image' ? 'image' : 'file') && !seenMedia.has(x.content.msg_body.media_id));
    const body = m.content.msg_body;
    seenMedia.add(body.media_id);
    check(body.media_id, 'msg_body.media_id missing', m);
    checkBody(body, m);
    const { data: res } = await call('B', 'getResource', { media_id: body.media_id });
    check(typeof res.url === 'string' && res.url, 'getResource: no url', plain(res));
    const r = await httpGet(res.url);
    check(r.status === 200, `GET ${res.url} -> ${r.status}`);
    check(Buffer.compare(r.body, bytes) === 0, `downloaded ${r.body.length} bytes differ from the ${bytes.length} uploaded`);
    return { media_id: body.media_id, url: res.url, fsize: body.fsize };
  }
  const seenMedia = new Set();

  await step('media.sendSinglePic', ['sendSinglePic', 'getResource'], () =>
    mediaRoundTrip('sendSinglePic', 'image', png, 'tiny.png', 'image/png', (body, m) => {
      check(body.width === 2 && body.height === 3, `width/height ${body.width}x${body.height}, expected 2x3`, m);
      check(body.media_crc32, 'media_crc32 missing', m);
    }));

  await step('media.sendSingleFile', ['sendSingleFile', 'getResource'], () =>
    mediaRoundTrip('sendSingleFile', 'file', textFile, 'notes.txt', 'text/plain', (body, m) => {
      check(Number(body.fsize) === textFile.length, `fsize=${body.fsize}, expected ${textFile.length}`, m);
      check(body.fname, 'fname missing', m);
    }));

  // --- groups -----------------------------------------------------------------
  let gid;
  await step('group.createGroup', ['createGroup'], async () => {
    const { data } = await call('A', 'createGroup', { group_name: `g_${suffix}`, group_description: 'full scenario group' });
    check(data.gid, 'no gid', plain(data));
    gid = data.gid;
    return { gid };
  });
  const needGroup = (fn) => async () => { check(gid, 'no group (createGroup failed)'); return fn(); };

  await step('group.addGroupMembers', ['addGroupMembers'], needGroup(async () => {
    const isAdd = (e) => e.event_type === 10 && String(e.gid) === String(gid);
    const evB = waitFor('B', 'onEventNotification', isAdd, 'event 10');
    const evC = waitFor('C', 'onEventNotification', isAdd, 'event 10');
    await call('A', 'addGroupMembers', { gid, member_usernames: [{ username: U.B }, { username: U.C }] });
    const [eb, ec] = await Promise.all([evB, evC]);
    const names = (eb.to_usernames || []).map((u) => u.username);
    check(names.includes(U.B) && names.includes(U.C), 'event 10 to_usernames', eb);
    check(eb.from_username === U.A, 'event 10 from_username', eb);
    return { event_B: eb, event_C_type: ec.event_type };
  }));

  await step('group.getGroups', ['getGroups'], needGroup(async () => {
    for (const l of ['A', 'B']) {
      const { data } = await call(l, 'getGroups');
      const g = (data.group_list || []).find((x) => String(x.gid) === String(gid));
      check(g, `${l}: group missing from group_list`, plain(data));
      checkGroupType(g, `${l}: group_list entry`);
    }
  }));

  await step('group.getGroupInfo', ['getGroupInfo'], needGroup(async () => {
    const { data } = await call('B', 'getGroupInfo', { gid });
    const g = data.group_info;
    check(g && String(g.gid) === String(gid) && g.name === `g_${suffix}`, 'group_info', plain(data));
    checkGroupType(g, 'group_info');
  }));

  async function members(label) {
    const { data } = await call(label, 'getGroupMembers', { gid });
    const list = data.member_list || [];
    const by = {};
    for (const m of list) by[m.username] = m;
    return { list, by };
  }

  await step('group.getGroupMembers', ['getGroupMembers'], needGroup(async () => {
    const { list, by } = await members('C');
    check(list.length === 3, `member count ${list.length}`, list);
    check(by[U.A] && by[U.A].flag === 1, 'A is not flagged owner', list);
    check(by[U.B] && by[U.B].flag === 0 && by[U.C] && by[U.C].flag === 0, 'B/C flags', list);
  }));

  await step('group.updateGroupInfo', ['updateGroupInfo', 'getGroupInfo'], needGroup(async () => {
    const ev = waitFor('B', 'onEventNotification', (e) => e.event_type === 12 && String(e.gid) === String(gid), 'event 12');
    await call('A', 'updateGroupInfo', { gid, group_name: `g2_${suffix}`, group_description: 'renamed' });
    await ev;
    const { data } = await call('C', 'getGroupInfo', { gid });
    check(data.group_info.name === `g2_${suffix}` && data.group_info.desc === 'renamed', 'group_info after update', plain(data));
  }));

  await step('group.sendGroupMsg', ['sendGroupMsg'], needGroup(async () => {
    const text = `hi group ${suffix}`;
    const isIt = msgIn((m) => m.msg_type === 4 && m.content.msg_body.text === text);
    const gb = waitFor('B', 'onMsgReceive', isIt, 'group message');
    const gc = waitFor('C', 'onMsgReceive', isIt, 'group message');
    const { data } = await call('A', 'sendGroupMsg', { target_gid: gid, content: text });
    check(data.msg_id, 'no msg_id', plain(data));
    const [pb] = await Promise.all([gb, gc]);
    const m = findMsg(pb, (x) => x.content.msg_body.text === text);
    check(String(m.from_gid) === String(gid) && m.content.from_id === U.A, 'group message fields', m);
    if (sdkElfTypo) instances.B.resetUnreadCount(toPage('B', { gid }));
    const { data: conv } = await call('B', 'getConversation');
    check((conv.conversations || []).some((c) => c.type === 4 && String(c.gid) === String(gid)), 'B has no group conversation', plain(conv));
  }));

  await step('trans.transGroupMsg', ['transGroupMsg', 'onTransMsgRec'], needGroup(async () => {
    const cmd = `group cmd ${suffix}`;
    const isIt = (p) => p.cmd === cmd;
    const tb = waitFor('B', 'onTransMsgRec', isIt, 'group transparent message');
    const tc = waitFor('C', 'onTransMsgRec', isIt, 'group transparent message');
    await call('A', 'transGroupMsg', { gid, cmd });
    const [p] = await Promise.all([tb, tc]);
    check(p.type === 4 && String(p.gid) === String(gid), 'trans_msg_rec type/gid', p);
  }));

  await step('group.addGroupMemSilence', ['addGroupMemSilence', 'delGroupMemSilence'], needGroup(async () => {
    const ev = waitFor('B', 'onEventNotification', (e) => e.event_type === 65 && String(e.from_gid) === String(gid), 'event 65');
    await call('A', 'addGroupMemSilence', { gid, target_username: U.C });
    const e = await ev;
    check(e.extra === 1, `event 65 extra=${e.extra}`, e);
    const { by } = await members('A');
    check(by[U.C].keep_silence === true, 'C keep_silence not true', by[U.C]);
    await callFails('C', 'sendGroupMsg', { target_gid: gid, content: 'am I muted?' }, 880212);
    await call('A', 'delGroupMemSilence', { gid, target_username: U.C });
    await call('C', 'sendGroupMsg', { target_gid: gid, content: `unmuted ${suffix}` });
  }));

  await step('group.addGroupKeeper', ['addGroupKeeper'], needGroup(async () => {
    const ev = waitFor('C', 'onEventNotification', (e) => e.event_type === 80 && String(e.from_gid) === String(gid), 'event 80');
    await call('A', 'addGroupKeeper', { gid, member_usernames: [{ username: U.B }] });
    const e = await ev;
    check(e.extra === 1, `event 80 extra=${e.extra}`, e);
    const { by } = await members('C');
    check(by[U.B].flag === 2, `B flag=${by[U.B].flag}, expected 2 (admin)`, by[U.B]);
  }));

  let ownerNow = 'A';
  await step('group.changeGroupAdmin', ['changeGroupAdmin'], needGroup(async () => {
    const ev = waitFor('C', 'onEventNotification', (e) => e.event_type === 82 && String(e.from_gid) === String(gid), 'event 82');
    await call('A', 'changeGroupAdmin', { gid, target_username: U.B });
    const e = await ev;
    check((e.to_usernames || []).some((u) => u.username === U.B), 'event 82 to_usernames', e);
    ownerNow = 'B';
    const { by } = await members('A');
    check(by[U.B].flag === 1 && by[U.A].flag !== 1, `flags after transfer B=${by[U.B].flag} A=${by[U.A].flag}`, by);
  }));

  await step('group.exitGroup', ['exitGroup'], needGroup(async () => {
    const ev = waitFor(ownerNow, 'onEventNotification', (e) => e.event_type === 9 && String(e.gid) === String(gid) && e.from_username === U.C, 'event 9');
    await call('C', 'exitGroup', { gid });
    await ev;
    const { list, by } = await members(ownerNow);
    check(list.length === 2 && !by[U.C], 'C still a member', list);
    const { data } = await call('C', 'getGroups');
    check(!(data.group_list || []).some((g) => String(g.gid) === String(gid)), 'group still in C group_list', plain(data));
  }));

  await step('group.dissolveGroup', ['dissolveGroup'], needGroup(async () => {
    const other = ownerNow === 'A' ? 'B' : 'A';
    const ev = waitFor(other, 'onEventNotification', (e) => e.event_type === 9 && String(e.gid) === String(gid) && e.extra === 69, 'event 9 extra 69');
    await call(ownerNow, 'dissolveGroup', { gid });
    await ev;
    const { data } = await call(other, 'getGroups');
    check(!(data.group_list || []).some((g) => String(g.gid) === String(gid)), 'dissolved group still listed', plain(data));
  }));

  // --- chat rooms -------------------------------------------------------------
  await step('room.enter_send_exit', ['getAppkeyChatrooms', 'enterChatroom', 'sendChatroomMsg', 'exitChatroom'], async () => {
    const { data } = await call('A', 'getAppkeyChatrooms');
    const rooms = (data.result && data.result.rooms) || [];
    check(rooms.length > 0, 'getAppkeyChatrooms returned no rooms (the server needs a seeded room)', plain(data));
    const room = env.JMM_ROOM_ID ? rooms.find((r) => String(r.id) === env.JMM_ROOM_ID) : rooms[0];
    check(room, `room ${env.JMM_ROOM_ID} not listed`, plain(data));
    const id = room.id;
    await call('A', 'enterChatroom', { id });
    await call('B', 'enterChatroom', { id });
    const text = `room hello ${suffix}`;
    const got = waitFor('B', 'onRoomMsg', (p) => p.content && p.content.msg_body && p.content.msg_body.text === text, 'room message');
    await call('A', 'sendChatroomMsg', { target_rid: id, content: text });
    const p = await got;
    check(String(p.room_id) === String(id) && p.content.from_id === U.A, 'room message fields', p);
    await call('A', 'exitChatroom', { id });
    await call('B', 'exitChatroom', { id });
    await callFails('A', 'sendChatroomMsg', { target_rid: id, content: 'after exit' }, 881501);
    return { room_id: id, name: room.name };
  });

  // --- blacklist ----------------------------------------------------------------
  await step('black.addSingleBlacks', ['addSingleBlacks', 'getBlacks', 'delSingleBlacks'], async () => {
    await call('B', 'addSingleBlacks', { member_usernames: [{ username: U.A }] });
    await callFails('A', 'sendSingleMsg', { target_username: U.B, content: 'blocked?' }, 880207);
    const { data } = await call('B', 'getBlacks');
    check((data.black_list || []).some((u) => u.username === U.A), 'A not in black_list', plain(data));
    await call('B', 'delSingleBlacks', { member_usernames: [{ username: U.A }] });
    const { data: after } = await call('B', 'getBlacks');
    check(!(after.black_list || []).some((u) => u.username === U.A), 'A still in black_list', plain(after));
    await call('A', 'sendSingleMsg', { target_username: U.B, content: `unblocked ${suffix}` });
  });

  await step('friend.delFriend', ['delFriend'], async () => {
    const ev = waitFor('B', 'onEventNotification', eventFrom(6, U.A), 'event 6');
    await call('A', 'delFriend', { target_name: U.B });
    await ev;
    const { data } = await call('A', 'getFriendList');
    check(!(data.friend_list || []).some((f) => f.username === U.B), 'B still a friend', plain(data));
  });

  // --- offline + sync on a new instance ------------------------------------------
  await step('offline.sync_conversation_and_events', ['sendSingleMsg', 'onSyncConversation'], async () => {
    instances.B.loginOut();
    await sleep(300);
    const texts = [`offline 1 ${suffix}`, `offline 2 ${suffix}`];
    for (const t of texts) await call('A', 'sendSingleMsg', { target_username: U.B, content: t });
    // An event while B is offline (they are no longer friends): comes back by onSyncEvent.
    const inviteWhy = `offline invite ${suffix}`;
    const offlineEvent = has('A', 'addFriend', 'onSyncEvent').length === 0;
    if (offlineEvent) await call('A', 'addFriend', { target_name: U.B, why: inviteWhy });
    newInstance('B2');
    await call('B2', 'init', initArgs());
    // Listeners before login: sync_conversation arrives right after the login response.
    attachListeners('B2');
    await call('B2', 'login', { username: U.B, password });
    const conv = await waitFor('B2', 'onSyncConversation', (list) => (list || []).some((c) => c.from_username === U.A
      && texts.every((t) => (c.msgs || []).some((m) => m.content.msg_body.text === t))), 'sync with both offline messages', 8000);
    const c = conv.find((x) => x.from_username === U.A);
    const order = texts.map((t) => c.msgs.findIndex((m) => m.content.msg_body.text === t));
    check(order[0] < order[1], 'offline messages out of order', order);
    let syncEvent;
    if (offlineEvent) {
      const evs = await waitFor('B2', 'onSyncEvent', (list) => (list || []).some((e) => e.event_type === 5 && e.from_username === U.A
        && e.description === inviteWhy), 'offline friend invitation', 6000);
      syncEvent = evs.find((e) => e.event_type === 5 && e.description === inviteWhy);
      check(syncEvent.extra === 1, `offline invitation extra=${syncEvent.extra}`, syncEvent);
    }
    return { unread_msg_count: c.unread_msg_count, msgs: c.msgs.length, sync_event: syncEvent };
  });

  // --- final audits ---------------------------------------------------------------
  await step('audit.acks', [], async () => {
    // Let in-flight receipts (msg_recv_v2) and their acks land first.
    await sleep(300);
    const problems = [];
    let requests = 0;
    for (const l of Object.keys(instances)) {
      const r = checkAcks(l);
      requests += r.requests;
      for (const p of r.problems) problems.push(`${l}: ${p}`);
    }
    check(problems.length === 0, `request/ack problems: ${problems.join('; ')}`);
    return { requests };
  });

  await step('audit.sdk_errors', [], async () => {
    const errs = [];
    for (const [l, jim] of Object.entries(instances)) {
      for (const e of getSandbox(jim).errors) errs.push(`${l} ${e.where}: ${e.message}`);
    }
    check(errs.length === 0, `exceptions inside SDK code: ${errs.join('; ')}`);
  });

  finish();
}

const overall = setTimeout(() => {
  counts.fail += 1;
  emit({ step: 'timeout', status: 'fail', after_ms: OVERALL_MS });
  finish('timeout');
}, OVERALL_MS);
overall.unref();

process.on('unhandledRejection', (e) => { emit({ step: 'unhandledRejection', status: 'fail', error: String(e && e.stack || e) }); finish('unhandledRejection'); });
process.on('uncaughtException', (e) => { emit({ step: 'uncaughtException', status: 'fail', error: String(e && e.stack || e) }); finish('uncaughtException'); });

main().catch((e) => {
  if (!finished) finish(e && e.message ? e.message : String(e));
});
