#!/usr/bin/env node
'use strict';
// Smoke test: two official-SDK instances (A, B) against jmessage-mock.
//   init -> register -> login (both), B.onMsgReceive, A.sendSingleMsg(B),
//   check A got msg_id and B received the text from A, check every request
//   was acked before its response, loginOut both.
// One JSON line per step on stdout; exit 0 on success, 1 on any failure or
// after an overall timeout (JMM_TIMEOUT_MS, default 30000).
//
// Env: JMESSAGE_SDK (path to SDK build, kept outside the repo), JMM_ADDRESS,
//      JMM_UPLOAD, JMM_APPKEY, JMM_SECRET; optional JMM_DEBUG=1 (SDK debug
//      logging to stderr), JMM_TRACE=1 (print every wire frame to stderr).

const crypto = require('crypto');
const path = require('path');
const util = require('util');
const { createInstance, getSandbox } = require('./lib/sandbox');

const env = process.env;
const OVERALL_MS = Number(env.JMM_TIMEOUT_MS) || 30000;
const TRACE = env.JMM_TRACE === '1';
const DEBUG = env.JMM_DEBUG === '1';

const t0 = Date.now();
let finished = false;
const instances = {};

function emit(obj) {
  process.stdout.write(JSON.stringify({ t_ms: Date.now() - t0, ...obj }) + '\n');
}

function stderrConsole(label) {
  const w = (lvl) => (...args) => process.stderr.write(`[${label} console.${lvl}] ${util.format(...args)}\n`);
  return { log: w('log'), info: w('info'), warn: w('warn'), error: w('error'), debug: w('debug'), trace: w('trace'), table: w('table') };
}

function dumpFrames(label, max) {
  const sb = instances[label] && getSandbox(instances[label]);
  if (!sb) return;
  const frames = sb.frames.slice(-max);
  process.stderr.write(`---- ${label}: last ${frames.length} of ${sb.frames.length} wire events ----\n`);
  for (const f of frames) {
    process.stderr.write(`[${label} +${f.t}ms conn${f.conn}] ${f.dir} ${f.data === null ? '' : f.data}\n`);
  }
}

function finish(ok, reason) {
  if (finished) return;
  finished = true;
  const errors = {};
  for (const [label, jim] of Object.entries(instances)) {
    const sb = getSandbox(jim);
    if (sb && sb.errors.length) errors[label] = sb.errors.map((e) => `${e.where}: ${e.message}`);
  }
  if (!ok) for (const label of Object.keys(instances)) dumpFrames(label, 60);
  // Close both sessions, then stop everything each page started.
  for (const [label, jim] of Object.entries(instances)) {
    try { if (jim.isLogin && jim.isLogin()) jim.loginOut(); } catch (e) { process.stderr.write(`[${label}] loginOut threw: ${e.message}\n`); }
  }
  setTimeout(() => {
    for (const jim of Object.values(instances)) { const sb = getSandbox(jim); if (sb) sb.dispose(); }
    emit({ step: 'done', ok, reason: reason || undefined, sdk_errors: Object.keys(errors).length ? errors : undefined });
    process.exit(ok ? 0 : 1);
  }, 300);
}

function fail(step, detail) {
  emit({ step, ok: false, ...detail });
  finish(false, step);
}

const overall = setTimeout(() => {
  emit({ step: 'timeout', ok: false, after_ms: OVERALL_MS, pending: [...pending] });
  finish(false, 'timeout');
}, OVERALL_MS);
overall.unref();

const pending = new Set();

// Wraps an SDK request (the object returned by jim.xxx()) into a promise.
function call(label, method, build) {
  const step = `${label}.${method}`;
  pending.add(step);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = build();
    } catch (e) {
      pending.delete(step);
      reject({ step, error: `threw: ${e.message}` });
      return;
    }
    req.onSuccess((data, msg) => {
      pending.delete(step);
      emit({ step, ok: true, ms: Date.now() - started, data: plain(data) });
      resolve({ data, msg });
    }).onFail((data) => {
      pending.delete(step);
      reject({ step, ms: Date.now() - started, error: 'onFail', data: plain(data) });
    }).onTimeout((data) => {
      pending.delete(step);
      reject({ step, ms: Date.now() - started, error: 'onTimeout', data: plain(data) });
    });
  });
}

function plain(v) {
  try { return JSON.parse(JSON.stringify(v)); } catch (_) { return String(v); }
}

function md5(s) {
  return crypto.createHash('md5').update(s, 'utf8').digest('hex');
}

function randomId(n) {
  return crypto.randomBytes(n).toString('hex').slice(0, n);
}

function toWsAddress(addr) {
  const u = new URL(addr);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  // the path would become the Socket.IO namespace; the SDK wants the root one
  return `${u.protocol}//${u.host}`;
}

// Checks that every C->S request (42[...] with rid) got an `ack` before its
// response, and that no request was re-sent (a re-send means a late/missing ack).
function checkAcks(label) {
  const sb = getSandbox(instances[label]);
  const sent = new Map(); // rid -> {event, count, conn}
  const acked = new Map(); // rid -> index
  const responded = new Map(); // rid -> index
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

async function main() {
  const sdk = env.JMESSAGE_SDK;
  const missing = ['JMESSAGE_SDK', 'JMM_ADDRESS', 'JMM_UPLOAD', 'JMM_APPKEY', 'JMM_SECRET'].filter((k) => !env[k]);
  if (missing.length) { fail('config', { error: `missing env: ${missing.join(', ')}` }); return; }
  const address = toWsAddress(env.JMM_ADDRESS);
  const appkey = env.JMM_APPKEY;
  const secret = env.JMM_SECRET;
  emit({ step: 'config', ok: true, sdk: path.resolve(sdk), address, upload_file: env.JMM_UPLOAD, appkey });

  for (const label of ['A', 'B']) {
    instances[label] = createInstance(sdk, {
      name: label,
      address,
      upload_file: env.JMM_UPLOAD,
      debug: DEBUG,
      console: stderrConsole(label),
      onFrame: TRACE ? (f) => process.stderr.write(`[${label} +${f.t}ms conn${f.conn}] ${f.dir} ${f.data === null ? '' : f.data}\n`) : undefined,
      onError: (e) => process.stderr.write(`[${label}] SDK exception in ${e.where}: ${e.stack || e.message}\n`),
    });
  }
  const A = instances.A;
  const B = instances.B;
  emit({ step: 'load', ok: true });

  const initArgs = () => {
    const timestamp = String(Date.now());
    const random_str = randomId(24);
    const signature = md5(`appkey=${appkey}&timestamp=${timestamp}&random_str=${random_str}&key=${secret}`);
    return { appkey, random_str, signature, timestamp, flag: 0 };
  };
  await Promise.all([
    call('A', 'init', () => A.init(initArgs())),
    call('B', 'init', () => B.init(initArgs())),
  ]);

  const suffix = randomId(10);
  const userA = `sdk_a_${suffix}`;
  const userB = `sdk_b_${suffix}`;
  const password = 'pw123456';
  await Promise.all([
    call('A', 'register', () => A.register({ username: userA, password })),
    call('B', 'register', () => B.register({ username: userB, password })),
  ]);
  await Promise.all([
    call('A', 'login', () => A.login({ username: userA, password })),
    call('B', 'login', () => B.login({ username: userB, password })),
  ]);
  if (!A.isLogin() || !B.isLogin()) throw { step: 'isLogin', error: `A=${A.isLogin()} B=${B.isLogin()}` };

  const text = 'hello 你好 😀';
  const received = new Promise((resolve) => {
    pending.add('B.onMsgReceive');
    B.onMsgReceive((data) => {
      const msgs = (data && data.messages) || [];
      emit({ step: 'B.onMsgReceive', ok: true, data: plain(data) });
      const hit = msgs.find((m) => m && m.content && m.content.msg_body && m.content.msg_body.text === text);
      if (hit) { pending.delete('B.onMsgReceive'); resolve(hit); }
    });
  });

  const sent = await call('A', 'sendSingleMsg', () => A.sendSingleMsg({ target_username: userB, content: text }));
  const msgId = sent.data && sent.data.msg_id;
  if (msgId === undefined || msgId === null || msgId === '') {
    throw { step: 'check.sender_msg_id', error: 'A.sendSingleMsg onSuccess has no msg_id', data: plain(sent.data) };
  }
  emit({ step: 'check.sender_msg_id', ok: true, msg_id: msgId });

  const msg = await received;
  const problems = [];
  if (msg.from_username !== userA) problems.push(`from_username=${JSON.stringify(msg.from_username)} expected ${userA}`);
  if (msg.content.msg_body.text !== text) problems.push('text mismatch');
  if (problems.length) throw { step: 'check.received', error: problems.join('; '), data: plain(msg) };
  emit({
    step: 'check.received', ok: true, from_username: msg.from_username, from_appkey: msg.from_appkey,
    msg_id: msg.msg_id, msg_id_matches_sender: String(msg.msg_id) === String(msgId),
  });

  // Let the receipt (msg_recv_v2, 2.5.0+) and its ack travel, then audit acks.
  await new Promise((r) => setTimeout(r, 1000));
  for (const label of ['A', 'B']) {
    const { requests, problems: p } = checkAcks(label);
    if (p.length) throw { step: `check.acks.${label}`, error: p.join('; ') };
    emit({ step: `check.acks.${label}`, ok: true, requests });
  }
  for (const label of ['A', 'B']) {
    const sb = getSandbox(instances[label]);
    if (sb.errors.length) throw { step: `check.sdk_errors.${label}`, error: sb.errors.map((e) => `${e.where}: ${e.message}`).join('; ') };
  }
  finish(true);
}

process.on('unhandledRejection', (e) => fail('unhandledRejection', { error: String(e && e.stack || e) }));
process.on('uncaughtException', (e) => fail('uncaughtException', { error: String(e && e.stack || e) }));

main().catch((e) => {
  if (e && e.step) { const { step, ...rest } = e; fail(step, rest); } else fail('exception', { error: String(e && e.stack || e) });
});
