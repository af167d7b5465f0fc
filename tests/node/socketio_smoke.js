#!/usr/bin/env node
// Transport smoke test for jmessage-mock using the real third-party client
// socket.io-client 2.x (engine.io protocol 3 + socket.io protocol 4).
//
// Usage:
//   JMM_ADDRESS=http://127.0.0.1:PORT JMM_APPKEY=... JMM_SECRET=... node socketio_smoke.js
// Optional:
//   JMM_VERBOSE=1                     log every emitted/received event to stderr
//   DEBUG=engine*,socket.io*          socket.io-client wire debug logs (stderr)
//
// Prints one line per case ("ok <name>" / "FAIL <name>: reason"), then
// "N passed, M failed". Exit code 0 only if every case passed.

'use strict';

const crypto = require('crypto');
const io = require('socket.io-client');

const ADDRESS = process.env.JMM_ADDRESS;
const APPKEY = process.env.JMM_APPKEY;
const SECRET = process.env.JMM_SECRET;
const VERBOSE = !!process.env.JMM_VERBOSE;

const WAIT_MS = 5000; // every single wait
const GLOBAL_MS = 55000; // whole script (hard stop before 60 s)

if (!ADDRESS || !APPKEY || !SECRET) {
  console.error('JMM_ADDRESS, JMM_APPKEY and JMM_SECRET must be set');
  process.exit(2);
}

const NON_ASCII_TEXT = 'héllo 你好世界 😀👍🏽 ñ';

// ---------------------------------------------------------------- helpers

function md5hex(s) {
  return crypto.createHash('md5').update(s, 'utf8').digest('hex');
}

function randomRid() {
  return crypto.randomInt(1, 2147483648); // [1, 2147483647]
}

function randomStr(n) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[crypto.randomInt(alphabet.length)];
  return s;
}

let userCounter = 0;
function uniqueUsername(tag) {
  userCounter += 1;
  return `smk_${tag}_${Date.now().toString(36)}_${userCounter}_${crypto.randomBytes(3).toString('hex')}`;
}

function vlog(...args) {
  if (VERBOSE) console.error('[smoke]', ...args);
}

function short(v) {
  let s;
  try {
    s = JSON.stringify(v);
  } catch (e) {
    s = String(v);
  }
  if (s === undefined) s = String(v);
  return s.length > 400 ? s.slice(0, 400) + '…' : s;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

class TestError extends Error {}

function assert(cond, msg) {
  if (!cond) throw new TestError(msg);
}

// ---------------------------------------------------------------- client wrapper

// Wraps one socket.io-client socket: records every incoming EVENT packet in
// arrival order (with a sequence number) so that ordering (ack before
// response) can be asserted, and lets callers wait for a matching event.
class Client {
  constructor(label, opts) {
    this.label = label;
    this.inbox = []; // {seq, name, data, consumed}
    this.seq = 0;
    this.waiters = new Set();
    this.disconnectReason = null;
    this.lastError = null;

    this.socket = io(ADDRESS, Object.assign({
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
    }, opts));

    const self = this;
    const origOnevent = this.socket.onevent;
    this.socket.onevent = function (packet) {
      const args = packet.data || [];
      self._record(args[0], args[1], args.length);
      return origOnevent.call(this, packet);
    };
    this.socket.on('disconnect', (reason) => {
      this.disconnectReason = reason || 'unknown';
      vlog(`${this.label} disconnect: ${reason}`);
      for (const w of Array.from(this.waiters)) {
        w.reject(new TestError(`${this.label}: socket disconnected (${reason}) while waiting for ${w.desc}`));
      }
    });
    this.socket.on('error', (err) => {
      this.lastError = err;
      vlog(`${this.label} error: ${err && err.message ? err.message : short(err)}`);
    });
  }

  transportName() {
    const eng = this.socket.io && this.socket.io.engine;
    return eng && eng.transport ? eng.transport.name : undefined;
  }

  _record(name, data, argc) {
    const entry = { seq: ++this.seq, name, data, argc, consumed: false };
    vlog(`${this.label} <= ${short(name)} ${short(data)}`);
    this.inbox.push(entry);
    for (const w of Array.from(this.waiters)) {
      if (!entry.consumed && w.pred(entry)) {
        entry.consumed = true;
        w.resolve(entry);
      }
    }
  }

  // Resolve with the first unconsumed recorded event matching pred (already
  // received or arriving within timeoutMs).
  waitEvent(pred, desc, timeoutMs = WAIT_MS) {
    for (const e of this.inbox) {
      if (!e.consumed && pred(e)) {
        e.consumed = true;
        return Promise.resolve(e);
      }
    }
    if (this.disconnectReason) {
      return Promise.reject(new TestError(`${this.label}: socket disconnected (${this.disconnectReason}) before ${desc}`));
    }
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        desc,
        resolve: (e) => { cleanup(); resolve(e); },
        reject: (err) => { cleanup(); reject(err); },
      };
      const timer = setTimeout(() => {
        w.reject(new TestError(`${this.label}: timeout after ${timeoutMs} ms waiting for ${desc}; received so far: ${this.summary()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(w);
      };
      this.waiters.add(w);
    });
  }

  summary() {
    if (!this.inbox.length) return '(nothing)';
    return this.inbox.slice(-8).map((e) => `${short(e.name)} ${short(e.data)}`).join(' | ');
  }

  connect() {
    const s = this.socket;
    if (s.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new TestError(`${this.label}: no 'connect' within ${WAIT_MS} ms (transport ${this.transportName()})`)), WAIT_MS);
      const onConnect = () => done(null);
      const onConnectError = (err) => done(new TestError(`${this.label}: connect_error: ${err && err.message ? err.message : short(err)}${err && err.description ? ' (' + short(err.description && err.description.message || err.description) + ')' : ''}`));
      const onConnectTimeout = () => done(new TestError(`${this.label}: connect_timeout`));
      const onError = (err) => done(new TestError(`${this.label}: error before connect: ${err && err.message ? err.message : short(err)}`));
      const done = (err) => {
        clearTimeout(timer);
        s.off('connect', onConnect);
        s.off('connect_error', onConnectError);
        s.off('connect_timeout', onConnectTimeout);
        s.off('error', onError);
        if (err) reject(err); else resolve();
      };
      s.on('connect', onConnect);
      s.on('connect_error', onConnectError);
      s.on('connect_timeout', onConnectTimeout);
      s.on('error', onError);
    });
  }

  // Emit a request with a fresh rid (added as the last key, like the SDK) and
  // assert: `ack {rid}` arrives first, then `<event> {rid, code}`. Returns the
  // response payload. If expectCode is 'nonzero', requires a numeric non-zero
  // code; otherwise requires code === expectCode (default 0).
  async request(event, payload, expectCode = 0) {
    const rid = randomRid();
    const body = Object.assign({}, payload, { rid });
    vlog(`${this.label} => ${event} ${short(body)}`);
    this.socket.emit(event, body);

    const ridMatches = (d) => d && typeof d === 'object' && d.rid !== undefined && String(d.rid) === String(rid);
    const ack = await this.waitEvent((e) => e.name === 'ack' && ridMatches(e.data), `ack for ${event} rid=${rid}`);
    const resp = await this.waitEvent((e) => e.name === event && ridMatches(e.data), `${event} response rid=${rid}`);

    assert(ack.seq < resp.seq, `${event} rid=${rid}: response (seq ${resp.seq}) arrived before ack (seq ${ack.seq})`);
    assert(resp.argc === 2, `${event} rid=${rid}: response EVENT frame has ${resp.argc} elements, expected 2`);
    const d = resp.data;
    assert(typeof d.rid === 'number', `${event} rid=${rid}: response rid is ${typeof d.rid}, expected number: ${short(d)}`);
    if (expectCode === 'nonzero') {
      assert(typeof d.code === 'number' && d.code !== 0, `${event} rid=${rid}: expected non-zero numeric code, got ${short(d)}`);
    } else {
      assert(d.code === expectCode, `${event} rid=${rid}: expected code ${short(expectCode)}, got ${short(d)}`);
    }
    return d;
  }

  close() {
    try {
      this.socket.close();
    } catch (e) {
      /* ignore */
    }
  }
}

// ---------------------------------------------------------------- flows

async function cInit(c) {
  const timestamp = String(Date.now());
  const random_str = randomStr(24);
  const signature = md5hex(`appkey=${APPKEY}&timestamp=${timestamp}&random_str=${random_str}&key=${SECRET}`);
  return c.request('c_init', {
    appkey: APPKEY,
    random_str,
    timestamp,
    signature,
    flag: 0,
    fromPlatForm: 'j',
  });
}

async function registerUser(c, username, password) {
  return c.request('register', { username, password: md5hex(password) });
}

async function login(c, username, password) {
  return c.request('login', { username, password: md5hex(password), version: '2.5.0' });
}

async function syncCheck(c) {
  return c.request('sync_check', { sync_key: 0, sync_type: 0, sync_event_key: 0, msg_receipt_key: 0 });
}

// connect + c_init + register + login on a fresh user; returns the user.
async function session(c, tag) {
  await c.connect();
  await cInit(c);
  const user = { username: uniqueUsername(tag), password: 'pw-' + randomStr(12) };
  await registerUser(c, user.username, user.password);
  await login(c, user.username, user.password);
  return user;
}

async function waitTransport(c, name, timeoutMs = WAIT_MS) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (c.transportName() === name) return;
    if (c.disconnectReason) throw new TestError(`${c.label}: disconnected (${c.disconnectReason}) while waiting for transport ${name}`);
    await sleep(25);
  }
  const eng = c.socket.io.engine;
  throw new TestError(`${c.label}: transport is ${c.transportName()} after ${timeoutMs} ms, expected ${name} (server advertised upgrades=${short(eng && eng.upgrades)})`);
}

const WS = { transports: ['websocket'] };
const POLL = { transports: ['polling'], upgrade: false };

async function nonAsciiCase(ctx, senderOpts, senderTag, receiverOpts, receiverTag) {
  const receiver = ctx.client(`receiver(${receiverTag})`, receiverOpts);
  const sender = ctx.client(`sender(${senderTag})`, senderOpts);

  const rUser = await session(receiver, 'r');
  await syncCheck(receiver);
  const sUser = await session(sender, 's');

  const create_time = Date.now();
  const content = {
    version: 1,
    target_type: 'single',
    from_platform: 'web',
    target_id: rUser.username,
    from_id: sUser.username,
    create_time,
    msg_type: 'text',
    msg_body: { text: NON_ASCII_TEXT },
  };
  const resp = await sender.request('s_across_single_text', {
    content,
    no_offline: false,
    no_notification: false,
    target_id: rUser.username,
    appkey: APPKEY,
  });
  assert(resp.msg_id !== undefined && resp.msg_id !== null, `s_across_single_text response has no msg_id: ${short(resp)}`);

  const isOurs = (m) => m && m.content && m.content.from_id === sUser.username && m.content.create_time === create_time;
  const push = await receiver.waitEvent(
    (e) => e.name === 'msg_sync' && e.data && Array.isArray(e.data.messages) && e.data.messages.some(isOurs),
    `msg_sync from ${sUser.username}`,
  );
  assert(push.data.rid === undefined, `msg_sync push carries a rid: ${short(push.data)}`);
  const msg = push.data.messages.find(isOurs);
  const text = msg.content.msg_body && msg.content.msg_body.text;
  assert(text === NON_ASCII_TEXT,
    `msg_sync text mismatch: got ${short(text)} (utf8 hex ${Buffer.from(String(text), 'utf8').toString('hex')}), expected ${short(NON_ASCII_TEXT)} (utf8 hex ${Buffer.from(NON_ASCII_TEXT, 'utf8').toString('hex')})`);
  assert(msg.content.from_appkey === APPKEY, `msg_sync content.from_appkey is ${short(msg.content.from_appkey)}, expected ${short(APPKEY)}`);
  assert(msg.content.target_id === rUser.username, `msg_sync content.target_id is ${short(msg.content.target_id)}`);
  assert(senderOpts === POLL ? sender.transportName() === 'polling' : true, `sender transport changed to ${sender.transportName()}`);
  assert(receiverOpts === POLL ? receiver.transportName() === 'polling' : true, `receiver transport changed to ${receiver.transportName()}`);
}

// ---------------------------------------------------------------- cases

const cases = [
  ['websocket only', async (ctx) => {
    const c = ctx.client('ws', WS);
    await session(c, 'ws');
    assert(c.transportName() === 'websocket', `transport is ${c.transportName()}`);
  }],

  ['polling only', async (ctx) => {
    const c = ctx.client('poll', POLL);
    await session(c, 'poll');
    assert(c.transportName() === 'polling', `transport is ${c.transportName()}`);
  }],

  ['polling upgrade to websocket', async (ctx) => {
    const c = ctx.client('upg', { transports: ['polling', 'websocket'] });
    await c.connect();
    await cInit(c); // may race with the upgrade probe on purpose
    await waitTransport(c, 'websocket');
    const user = { username: uniqueUsername('upg'), password: 'pw-' + randomStr(12) };
    await registerUser(c, user.username, user.password);
    await login(c, user.username, user.password);
    assert(c.transportName() === 'websocket', `transport is ${c.transportName()} after login`);
  }],

  ['non-ascii text polling -> polling', (ctx) => nonAsciiCase(ctx, POLL, 'polling', POLL, 'polling')],
  ['non-ascii text websocket -> polling', (ctx) => nonAsciiCase(ctx, WS, 'websocket', POLL, 'polling')],
  ['non-ascii text polling -> websocket', (ctx) => nonAsciiCase(ctx, POLL, 'polling', WS, 'websocket')],

  ['unknown event gets ack + error response', async (ctx) => {
    const c = ctx.client('unk', WS);
    await c.connect();
    await cInit(c);
    await c.request('no_such_event', { foo: 'bar' }, 'nonzero');
  }],
];

// ---------------------------------------------------------------- runner

async function main() {
  let passed = 0;
  let failed = 0;
  const allClients = [];

  const watchdog = setTimeout(() => {
    console.log(`FAIL global timeout: script exceeded ${GLOBAL_MS} ms`);
    console.log(`${passed} passed, ${failed + 1} failed`);
    for (const c of allClients) c.close();
    process.exit(1);
  }, GLOBAL_MS);

  for (const [name, fn] of cases) {
    const clients = [];
    const ctx = {
      client(label, opts) {
        const c = new Client(label, opts);
        clients.push(c);
        allClients.push(c);
        return c;
      },
    };
    try {
      await fn(ctx);
      passed += 1;
      console.log(`ok ${name}`);
    } catch (err) {
      failed += 1;
      const reason = err instanceof TestError ? err.message : (err && err.stack) || String(err);
      console.log(`FAIL ${name}: ${reason}`);
    } finally {
      for (const c of clients) c.close();
    }
  }

  clearTimeout(watchdog);
  console.log(`${passed} passed, ${failed} failed`);
  // Give close packets a moment to flush, then exit regardless of lingering
  // polling requests / timers.
  await sleep(100);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`FAIL runner: ${(err && err.stack) || err}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
