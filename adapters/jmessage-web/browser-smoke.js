#!/usr/bin/env node
'use strict';
// The real browser against jmessage-mock, without the official SDK: loads
// socket.io-client@2's browser bundle into headless Chromium pages (served by
// a static server on another 127.0.0.1 port, so every request is cross-origin)
// and checks what tests/node/socketio_smoke.js checks in Node: websocket-only,
// polling-only (XHR with CORS) and polling->websocket upgrade sessions, c_init
// with a signed payload, ack before response, a CJK/emoji message between two
// pages (two BrowserContexts) in both transport directions, an unknown event,
// and the server's CORS answer to a credentialed fetch from the page's origin.
//
// Usage: JMM_ADDRESS=http://127.0.0.1:PORT JMM_APPKEY=... JMM_SECRET=... \
//        [JMM_SOCKETIO_BUNDLE=path/to/socket.io.js] [JMM_CHROMIUM=/usr/bin/chromium] node browser-smoke.js
// Prints "ok <name>" / "FAIL <name>: reason" per case, then "N passed, M failed".

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { launchChromium, startStaticServer, withLimit } = require('./lib/browser');

const ADDRESS = process.env.JMM_ADDRESS;
const APPKEY = process.env.JMM_APPKEY;
const SECRET = process.env.JMM_SECRET;
const CHROMIUM = process.env.JMM_CHROMIUM || '/usr/bin/chromium';
const BUNDLE = process.env.JMM_SOCKETIO_BUNDLE ||
  path.join(__dirname, '../../tests/node/node_modules/socket.io-client/dist/socket.io.js');

const WAIT_MS = 5000; // every wait inside a page
const STEP_MS = 15000; // every page.evaluate from here
const GLOBAL_MS = 80000; // the whole script

if (!ADDRESS || !APPKEY || !SECRET) {
  console.error('JMM_ADDRESS, JMM_APPKEY and JMM_SECRET must be set');
  process.exit(2);
}
if (!fs.existsSync(BUNDLE)) {
  console.error(`socket.io-client browser bundle not found at ${BUNDLE} (npm ci --prefix tests/node, or set JMM_SOCKETIO_BUNDLE)`);
  process.exit(2);
}

const NON_ASCII_TEXT = 'héllo 你好世界 😀👍🏽 ñ';

const md5hex = (s) => crypto.createHash('md5').update(s, 'utf8').digest('hex');
const randomStr = (n) => crypto.randomBytes(n).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, n);
let userCounter = 0;
const uniqueUsername = (tag) => `brw_${tag}_${Date.now().toString(36)}_${++userCounter}_${crypto.randomBytes(3).toString('hex')}`;

class TestError extends Error {}
function assert(cond, msg) {
  if (!cond) throw new TestError(msg);
}

// ---------------------------------------------------------------- page side
// Runs in the page (injected by source text). `io` is the bundle's global.

/* global window, io, fetch */
function pageHelpers(WAIT_MS) {
  const clients = {};
  const short = (v) => {
    let s;
    try { s = JSON.stringify(v); } catch (_) { s = String(v); }
    return s === undefined ? String(v) : (s.length > 300 ? `${s.slice(0, 300)}…` : s);
  };
  class Client {
    constructor(label, address, opts) {
      this.label = label;
      this.inbox = [];
      this.seq = 0;
      this.waiters = new Set();
      this.disconnectReason = null;
      this.socket = io(address, Object.assign({ forceNew: true, reconnection: false, timeout: WAIT_MS }, opts));
      const self = this;
      const orig = this.socket.onevent;
      this.socket.onevent = function (packet) {
        const args = packet.data || [];
        self.record(args[0], args[1], args.length);
        return orig.call(this, packet);
      };
      this.socket.on('disconnect', (reason) => {
        this.disconnectReason = reason || 'unknown';
        for (const w of [...this.waiters]) w.reject(new Error(`${label}: disconnected (${reason}) while waiting for ${w.desc}`));
      });
    }
    transport() {
      const e = this.socket.io && this.socket.io.engine;
      return e && e.transport ? e.transport.name : undefined;
    }
    record(name, data, argc) {
      const entry = { seq: ++this.seq, name, data, argc, consumed: false };
      this.inbox.push(entry);
      for (const w of [...this.waiters]) {
        if (!entry.consumed && w.pred(entry)) {
          entry.consumed = true;
          w.resolve(entry);
        }
      }
    }
    waitEvent(pred, desc) {
      for (const e of this.inbox) {
        if (!e.consumed && pred(e)) {
          e.consumed = true;
          return Promise.resolve(e);
        }
      }
      if (this.disconnectReason) return Promise.reject(new Error(`${this.label}: disconnected (${this.disconnectReason}) before ${desc}`));
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          desc,
          resolve: (e) => { clearTimeout(timer); this.waiters.delete(w); resolve(e); },
          reject: (err) => { clearTimeout(timer); this.waiters.delete(w); reject(err); },
        };
        const timer = setTimeout(() => w.reject(new Error(`${this.label}: no ${desc} within ${WAIT_MS} ms; last events: ${this.inbox.slice(-6).map((e) => `${e.name} ${short(e.data)}`).join(' | ') || '(none)'}`)), WAIT_MS);
        this.waiters.add(w);
      });
    }
    connect() {
      const s = this.socket;
      if (s.connected) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`${this.label}: no 'connect' within ${WAIT_MS} ms (transport ${this.transport()})`)), WAIT_MS);
        const onConnect = () => done(null);
        const onError = (err) => done(new Error(`${this.label}: connect_error: ${err && err.message ? err.message : short(err)}`));
        const done = (err) => {
          clearTimeout(timer);
          s.off('connect', onConnect);
          s.off('connect_error', onError);
          s.off('error', onError);
          if (err) reject(err); else resolve();
        };
        s.on('connect', onConnect);
        s.on('connect_error', onError);
        s.on('error', onError);
      });
    }
    // Emits with a fresh rid (the last key, like the SDK); `ack {rid}` must come
    // first, then `<event> {rid, code}`.
    async request(event, payload, expectCode) {
      const rid = 1 + Math.floor(Math.random() * 2147483646);
      this.socket.emit(event, Object.assign({}, payload, { rid }));
      const mine = (d) => d && typeof d === 'object' && d.rid !== undefined && String(d.rid) === String(rid);
      const ack = await this.waitEvent((e) => e.name === 'ack' && mine(e.data), `ack for ${event} rid=${rid}`);
      const resp = await this.waitEvent((e) => e.name === event && mine(e.data), `${event} response rid=${rid}`);
      if (!(ack.seq < resp.seq)) throw new Error(`${event}: response arrived before its ack`);
      if (resp.argc !== 2) throw new Error(`${event}: response EVENT frame has ${resp.argc} elements, expected 2`);
      const d = resp.data;
      if (typeof d.rid !== 'number') throw new Error(`${event}: response rid is ${typeof d.rid}: ${short(d)}`);
      if (expectCode === 'nonzero') {
        if (!(typeof d.code === 'number' && d.code !== 0)) throw new Error(`${event}: expected a non-zero code, got ${short(d)}`);
      } else if (d.code !== expectCode) {
        throw new Error(`${event}: expected code ${expectCode}, got ${short(d)}`);
      }
      return d;
    }
  }
  window.T = {
    open(id, address, opts) { clients[id] = new Client(id, address, opts); },
    connect: (id) => clients[id].connect(),
    request: (id, event, payload, code) => clients[id].request(event, payload, code === undefined ? 0 : code),
    transport: (id) => clients[id].transport(),
    async waitTransport(id, name) {
      const t0 = Date.now();
      while (Date.now() - t0 < WAIT_MS) {
        if (clients[id].transport() === name) return name;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`${id}: transport is ${clients[id].transport()} after ${WAIT_MS} ms, expected ${name}`);
    },
    async waitMessage(id, fromId, createTime) {
      const ours = (m) => m && m.content && m.content.from_id === fromId && m.content.create_time === createTime;
      const e = await clients[id].waitEvent(
        (ev) => ev.name === 'msg_sync' && ev.data && Array.isArray(ev.data.messages) && ev.data.messages.some(ours),
        `msg_sync from ${fromId}`,
      );
      return { rid: e.data.rid === undefined ? null : e.data.rid, message: e.data.messages.find(ours) };
    },
    close(id) {
      try { clients[id].socket.close(); } catch (_) { /* ignore */ }
    },
    origin: () => window.location.origin,
    // A credentialed cross-origin fetch: readable only if the server's CORS
    // answer names this origin and allows credentials.
    async corsFetch(url) {
      const r = await fetch(url, { credentials: 'include', mode: 'cors' });
      return { status: r.status, body: (await r.text()).slice(0, 200) };
    },
  };
}

const PAGE_HTML = '<!doctype html><html><head><meta charset="utf-8"><title>socket.io-client@2 in chromium</title>' +
  '<script src="/socket.io.js"></script><script src="/helpers.js"></script></head><body></body></html>';

// ---------------------------------------------------------------- node side

function signedInit() {
  const timestamp = String(Date.now());
  const random_str = randomStr(24);
  const signature = md5hex(`appkey=${APPKEY}&timestamp=${timestamp}&random_str=${random_str}&key=${SECRET}`);
  return { appkey: APPKEY, random_str, timestamp, signature, flag: 0, fromPlatForm: 'j' };
}

const WS = { transports: ['websocket'] };
const POLL = { transports: ['polling'], upgrade: false };

// One page (own BrowserContext) with one socket.io client in it.
async function openClient(ctx, label, opts) {
  const context = await ctx.browser.newContext();
  ctx.contexts.push(context);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (process.env.JMM_VERBOSE) console.error(`[${label} console] ${m.text()}`); });
  await withLimit(page.goto(`${ctx.origin}/`), STEP_MS, `${label}: page load`);
  const ev = (fn, arg) => withLimit(page.evaluate(fn, arg), STEP_MS, label).catch((e) => {
    throw new TestError(String(e && e.message).split('\n')[0] + (errors.length ? ` (page errors: ${errors.join('; ')})` : ''));
  });
  await ev(([id, a, o]) => window.T.open(id, a, o), [label, ADDRESS, opts]);
  const c = {
    label,
    page,
    connect: () => ev((id) => window.T.connect(id), label),
    request: (event, payload, code) => ev(([id, e, p, k]) => window.T.request(id, e, p, k), [label, event, payload, code]),
    transport: () => ev((id) => window.T.transport(id), label),
    waitTransport: (name) => ev(([id, n]) => window.T.waitTransport(id, n), [label, name]),
    waitMessage: (fromId, t) => ev(([id, f, ct]) => window.T.waitMessage(id, f, ct), [label, fromId, t]),
    origin: () => ev(() => window.T.origin()),
    corsFetch: (url) => ev((u) => window.T.corsFetch(u), url),
  };
  return c;
}

async function session(c, tag) {
  await c.connect();
  await c.request('c_init', signedInit());
  const user = { username: uniqueUsername(tag), password: `pw-${randomStr(12)}` };
  await c.request('register', { username: user.username, password: md5hex(user.password) });
  await c.request('login', { username: user.username, password: md5hex(user.password), version: '2.5.0' });
  return user;
}

async function nonAscii(ctx, senderOpts, receiverOpts) {
  const receiver = await openClient(ctx, 'receiver', receiverOpts);
  const sender = await openClient(ctx, 'sender', senderOpts);
  const rUser = await session(receiver, 'r');
  await receiver.request('sync_check', { sync_key: 0, sync_type: 0, sync_event_key: 0, msg_receipt_key: 0 });
  const sUser = await session(sender, 's');
  const createTime = Date.now();
  const resp = await sender.request('s_across_single_text', {
    content: {
      version: 1,
      target_type: 'single',
      from_platform: 'web',
      target_id: rUser.username,
      from_id: sUser.username,
      create_time: createTime,
      msg_type: 'text',
      msg_body: { text: NON_ASCII_TEXT },
    },
    no_offline: false,
    no_notification: false,
    target_id: rUser.username,
    appkey: APPKEY,
  });
  assert(resp.msg_id !== undefined && resp.msg_id !== null, `no msg_id in ${JSON.stringify(resp)}`);
  const { rid, message } = await receiver.waitMessage(sUser.username, createTime);
  assert(rid === null, `msg_sync push carries a rid: ${rid}`);
  const text = message.content.msg_body && message.content.msg_body.text;
  assert(text === NON_ASCII_TEXT, `text mismatch: got ${JSON.stringify(text)} (utf8 ${Buffer.from(String(text)).toString('hex')}), expected ${JSON.stringify(NON_ASCII_TEXT)}`);
  assert(message.content.from_appkey === APPKEY, `from_appkey is ${message.content.from_appkey}`);
  assert(message.content.target_id === rUser.username, `target_id is ${message.content.target_id}`);
  const want = (o) => (o === POLL ? 'polling' : 'websocket');
  assert(await sender.transport() === want(senderOpts), `sender transport is ${await sender.transport()}`);
  assert(await receiver.transport() === want(receiverOpts), `receiver transport is ${await receiver.transport()}`);
}

const cases = [
  ['page origin differs from the server (cross-origin)', async (ctx) => {
    const c = await openClient(ctx, 'origin', WS);
    const origin = await c.origin();
    assert(origin !== new URL(ADDRESS).origin, `page origin ${origin} equals the server's`);
  }],
  ['websocket only', async (ctx) => {
    const c = await openClient(ctx, 'ws', WS);
    await session(c, 'ws');
    assert(await c.transport() === 'websocket', `transport is ${await c.transport()}`);
  }],
  ['polling only (XHR, CORS with credentials)', async (ctx) => {
    const c = await openClient(ctx, 'poll', POLL);
    await session(c, 'poll');
    assert(await c.transport() === 'polling', `transport is ${await c.transport()}`);
  }],
  ['polling upgrade to websocket', async (ctx) => {
    const c = await openClient(ctx, 'upg', { transports: ['polling', 'websocket'] });
    await c.connect();
    await c.request('c_init', signedInit());
    await c.waitTransport('websocket');
    const user = { username: uniqueUsername('upg'), password: `pw-${randomStr(12)}` };
    await c.request('register', { username: user.username, password: md5hex(user.password) });
    await c.request('login', { username: user.username, password: md5hex(user.password), version: '2.5.0' });
    assert(await c.transport() === 'websocket', `transport is ${await c.transport()} after login`);
  }],
  ['CJK/emoji text websocket -> polling (two pages)', (ctx) => nonAscii(ctx, WS, POLL)],
  ['CJK/emoji text polling -> websocket (two pages)', (ctx) => nonAscii(ctx, POLL, WS)],
  ['unknown event gets ack + error response', async (ctx) => {
    const c = await openClient(ctx, 'unk', WS);
    await c.connect();
    await c.request('c_init', signedInit());
    await c.request('no_such_event', { foo: 'bar' }, 'nonzero');
  }],
  ['credentialed cross-origin fetch is allowed by CORS', async (ctx) => {
    const c = await openClient(ctx, 'cors', WS);
    const r = await c.corsFetch(`${new URL(ADDRESS).origin}/socket.io/?EIO=3&transport=polling&t=cors`);
    assert(r.status === 200, `status ${r.status}: ${r.body}`);
    assert(/"sid"/.test(r.body), `no engine.io handshake in ${JSON.stringify(r.body)}`);
  }],
];

async function main() {
  let passed = 0;
  let failed = 0;
  const ctx = { browser: null, origin: null, contexts: [] };
  let server = null;
  const watchdog = setTimeout(() => {
    console.log(`FAIL global timeout: the script exceeded ${GLOBAL_MS} ms`);
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exit(1);
  }, GLOBAL_MS);
  try {
    server = await startStaticServer({
      '/': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
      '/socket.io.js': { type: 'application/javascript; charset=utf-8', body: fs.readFileSync(BUNDLE) },
      '/helpers.js': { type: 'application/javascript; charset=utf-8', body: `(${pageHelpers})(${WAIT_MS});\n` },
      '/favicon.ico': { type: 'image/x-icon', body: '' },
    });
    ctx.origin = server.origin;
    ctx.browser = await launchChromium(CHROMIUM);
    console.log(`chromium ${ctx.browser.version()}; pages at ${server.origin}, server at ${ADDRESS}`);
    for (const [name, fn] of cases) {
      try {
        await fn(ctx);
        passed += 1;
        console.log(`ok ${name}`);
      } catch (err) {
        failed += 1;
        console.log(`FAIL ${name}: ${err instanceof TestError ? err.message : (err && err.stack) || err}`);
      } finally {
        const open = ctx.contexts.splice(0);
        await Promise.all(open.map((c) => c.close().catch(() => {})));
      }
    }
  } catch (err) {
    failed += 1;
    console.log(`FAIL setup: ${err && err.message}`);
  } finally {
    if (ctx.browser) await withLimit(ctx.browser.close(), 5000, 'closing chromium').catch(() => {});
    if (server) await server.close();
  }
  clearTimeout(watchdog);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main();
