'use strict';
// Self-test of driver.js (driver protocol v1, docs/driver-protocol.md) against a
// running jmessage-mock. Run with `node --test adapters/jmessage-web/test/`.
//
// Env:
//   JMESSAGE_SDK   SDK build(s) to test, ':'-separated (outside the repo). Unset: skipped.
//   JMM_ADDRESS, JMM_APPKEY, JMM_SECRET [, JMM_UPLOAD]
//                  use this running server (tests/node_clients.rs passes its in-process one);
//   otherwise      JMM_BIN (a jmessage-mock binary; default target/debug/jmessage-mock,
//                  built with `cargo build` when missing) is started with `serve --port 0`
//                  and its printed address/upload_file/appkey/secret are used.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

const ADAPTER = path.resolve(__dirname, '..');
const REPO = path.resolve(ADAPTER, '..', '..');
const DRIVER = path.join(ADAPTER, 'driver.js');
const SDKS = (process.env.JMESSAGE_SDK || '').split(':').filter(Boolean);
const WAIT_MS = 8000;

// A valid 1x1 RGBA PNG.
const PNG_1X1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

function md5(s) {
  return crypto.createHash('md5').update(s, 'utf8').digest('hex');
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------
// The server under test

async function startServer() {
  const env = process.env;
  if (env.JMM_ADDRESS && env.JMM_APPKEY && env.JMM_SECRET) {
    const u = new URL(env.JMM_ADDRESS);
    const upload = env.JMM_UPLOAD || `http://${u.host}/resource`;
    return { address: env.JMM_ADDRESS, upload, appkey: env.JMM_APPKEY, secret: env.JMM_SECRET, stop: async () => {} };
  }
  let bin = env.JMM_BIN;
  if (!bin) {
    bin = path.join(REPO, 'target', 'debug', 'jmessage-mock');
    if (!fs.existsSync(bin)) {
      const r = spawnSync('cargo', ['build', '--quiet'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'], timeout: 900000 });
      if (r.status !== 0) throw new Error(`cargo build failed (status ${r.status})`);
    }
  }
  const child = spawn(bin, ['serve', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.resume();
  const info = await new Promise((resolve, reject) => {
    const found = {};
    const timer = setTimeout(() => reject(new Error(`${bin} printed no address/appkey/secret within 20 s`)), 20000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${bin} exited with ${code}`)); });
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      const m = /^\s*(address|upload_file|appkey|secret):\s+(\S+)/.exec(line);
      if (m && found[m[1]] === undefined) found[m[1]] = m[2];
      if (found.address && found.upload_file && found.appkey && found.secret) {
        clearTimeout(timer);
        resolve(found);
      }
    });
  });
  child.removeAllListeners('exit');
  return {
    address: info.address,
    upload: info.upload_file,
    appkey: info.appkey,
    secret: info.secret,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

// ---------------------------------------------------------------------------
// The driver under test: JSON lines in, JSON lines out.

class Driver {
  constructor(sdk) {
    this.proc = spawn(process.execPath, [DRIVER, '--sdk', sdk], {
      cwd: ADAPTER,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, JMESSAGE_SDK: '' },
    });
    this.seq = 0;
    this.pending = new Map(); // seq -> {resolve, reject, timer}
    this.sent = new Set();
    this.events = [];
    this.waiters = [];
    this.violations = []; // protocol problems seen on stdout
    this.stderr = '';
    this.exit = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.proc.stderr.on('data', (c) => { this.stderr = (this.stderr + c).slice(-20000); });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => this.onLine(line));
  }

  onLine(line) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (_) {
      this.violations.push(`not JSON: ${line}`);
      return;
    }
    if (msg && typeof msg === 'object' && 'seq' in msg) {
      const p = this.pending.get(msg.seq);
      if (!p) {
        this.violations.push(`reply to ${this.sent.has(msg.seq) ? 'an already answered' : 'an unknown'} seq: ${line}`);
        return;
      }
      if (typeof msg.ok !== 'boolean') this.violations.push(`reply without ok: ${line}`);
      this.pending.delete(msg.seq);
      clearTimeout(p.timer);
      p.resolve(msg);
    } else if (msg && typeof msg.event === 'string') {
      this.events.push(msg);
      for (const w of [...this.waiters]) {
        if (w.pred(msg)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          clearTimeout(w.timer);
          w.resolve(msg);
        }
      }
    } else {
      this.violations.push(`neither reply nor event: ${line}`);
    }
  }

  send(cmd, limitMs = 10000) {
    const seq = ++this.seq;
    this.sent.add(seq);
    return this.sendRaw(JSON.stringify({ seq, ...cmd }), seq, limitMs);
  }

  sendRaw(line, seq, limitMs = 10000) {
    return new Promise((resolve, reject) => {
      if (seq !== undefined) {
        const timer = setTimeout(() => {
          this.pending.delete(seq);
          reject(new Error(`driver hung on ${line}\n--- driver stderr\n${this.stderr}`));
        }, limitMs);
        this.pending.set(seq, { resolve, reject, timer });
      }
      this.proc.stdin.write(line + '\n');
      if (seq === undefined) resolve();
    });
  }

  async ok(cmd, limitMs) {
    const r = await this.send(cmd, limitMs);
    assert.equal(r.ok, true, `${JSON.stringify(cmd)} -> ${JSON.stringify(r)}\n--- driver stderr\n${this.stderr}`);
    return r;
  }

  // First event (already seen or future) matching pred.
  waitEvent(pred, what, ms = WAIT_MS) {
    const hit = this.events.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${ms} ms; events: ${JSON.stringify(this.events.slice(-10))}\n--- driver stderr\n${this.stderr.slice(-4000)}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  callback(call, name, ms) {
    return this.waitEvent((e) => e.event === 'callback' && e.call === call && e.name === name, `${name} for call ${call}`, ms);
  }

  // Runs a request method and waits for its onSuccess (failing on onFail/onTimeout).
  async request(instance, method, args, ms = WAIT_MS) {
    const r = await this.ok({ cmd: 'call', instance, method, args, callbacks: ['onSuccess', 'onFail', 'onTimeout'] });
    assert.equal(r.returned, null);
    const ev = await this.waitEvent((e) => e.event === 'callback' && e.call === r.seq, `a callback for ${instance}.${method}`, ms);
    assert.equal(ev.name, 'onSuccess', `${instance}.${method}: ${JSON.stringify(ev)}`);
    return ev.args;
  }

  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

function initArgs(srv) {
  const timestamp = String(Date.now());
  const random_str = crypto.randomBytes(12).toString('hex');
  const signature = md5(`appkey=${srv.appkey}&timestamp=${timestamp}&random_str=${random_str}&key=${srv.secret}`);
  return { appkey: srv.appkey, random_str, signature, timestamp, flag: 0 };
}

// A 127.0.0.1 port nothing listens on.
function closedPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------

if (SDKS.length === 0) {
  test('jmessage-web driver protocol', { skip: 'JMESSAGE_SDK is not set (point it at official Web SDK builds, ":"-separated)' }, () => {});
}

for (const sdk of SDKS) {
  test(`driver protocol v1 with ${path.basename(sdk)}`, { timeout: 120000 }, async (t) => {
    const srv = await startServer();
    const d = new Driver(sdk);
    t.after(async () => {
      d.kill();
      await srv.stop();
    });
    const suffix = crypto.randomBytes(5).toString('hex');
    const users = { a: `drv_a_${suffix}`, b: `drv_b_${suffix}` };
    const password = 'pw123456';
    const opts = { address: srv.address, upload_file: srv.upload };

    await t.test('hello', async () => {
      const r = await d.ok({ cmd: 'hello', protocol: 1 });
      assert.equal(r.driver, 'jmessage-web');
      assert.equal(r.protocol, 1);
      const m = /(\d+\.\d+\.\d+)/.exec(path.basename(sdk));
      if (m) assert.equal(r.version, m[1], 'version detected from the build');
      else assert.match(r.version, /^2\.[456]\.0$/);
      for (const c of ['multi_instance', 'upload', 'fake_timers']) assert.ok(r.capabilities.includes(c), `capability ${c}: ${JSON.stringify(r)}`);
    });

    await t.test('bad commands get ok:false and the driver keeps going', async () => {
      let r = await d.send({ cmd: 'frobnicate' });
      assert.equal(r.ok, false);
      assert.match(r.error, /unknown cmd/);
      r = await d.send({ cmd: 'call', instance: 'nobody', method: 'isLogin', args: [], callbacks: [] });
      assert.equal(r.ok, false);
      assert.match(r.error, /unknown instance/);
      r = await d.send({ cmd: 'create', instance: 'x', options: {} });
      assert.equal(r.ok, false, 'create without address');
      r = await d.send({ cmd: 'create', instance: 'x', options: { address: 'not a url', upload_file: opts.upload_file } });
      assert.equal(r.ok, false, 'create with a bad address');
      r = await d.send({ cmd: 'advance', ms: -5 });
      assert.equal(r.ok, false);
      r = await d.send({ cmd: 'hello', protocol: 99 });
      assert.equal(r.ok, false);
      // Lines the driver cannot answer: an error event each, then business as usual.
      await d.sendRaw('this is not json');
      await d.sendRaw('{"cmd":"hello"}');
      await d.waitEvent((e) => e.event === 'error' && /not JSON/.test(e.message), 'error event for a non-JSON line');
      await d.waitEvent((e) => e.event === 'error' && /seq/.test(e.message), 'error event for a command without seq');
      await d.ok({ cmd: 'hello', protocol: 1 });
    });

    await t.test('create two instances', async () => {
      await d.ok({ cmd: 'create', instance: 'a', options: opts });
      await d.ok({ cmd: 'create', instance: 'b', options: { ...opts, debug: false } });
      const r = await d.send({ cmd: 'create', instance: 'a', options: opts });
      assert.equal(r.ok, false, 'duplicate instance name');
      assert.match(r.error, /already exists/);
    });

    await t.test('plain return values and synchronous exceptions', async () => {
      let r = await d.ok({ cmd: 'call', instance: 'a', method: 'isInit', args: [], callbacks: [] });
      assert.equal(r.returned, false);
      r = await d.send({ cmd: 'call', instance: 'a', method: 'login', args: [{ username: users.a, password }], callbacks: ['onSuccess'] });
      assert.equal(r.ok, false);
      assert.match(r.thrown, /init/, 'login before init throws in the SDK');
      r = await d.send({ cmd: 'call', instance: 'a', method: 'noSuchMethod', args: [], callbacks: [] });
      assert.equal(r.ok, false);
      assert.match(r.error, /unknown method/);
      r = await d.send({ cmd: 'call', instance: 'a', method: '__checkInit', args: [], callbacks: [] });
      assert.equal(r.ok, false, 'private SDK methods are not callable');
      r = await d.send({ cmd: 'call', instance: 'a', method: 'isInit', args: 'nope', callbacks: [] });
      assert.equal(r.ok, false, 'args must be an array');
      r = await d.send({ cmd: 'listen', instance: 'a', listener: 'onNothing' });
      assert.equal(r.ok, false, 'unknown listener');
    });

    await t.test('init, register, login (signature computed here)', async () => {
      const [ia, ib] = await Promise.all([d.request('a', 'init', [initArgs(srv)]), d.request('b', 'init', [initArgs(srv)])]);
      assert.equal(ia[0].code, 0);
      assert.equal(ib[0].code, 0);
      await Promise.all([
        d.request('a', 'register', [{ username: users.a, password }]),
        d.request('b', 'register', [{ username: users.b, password }]),
      ]);
      await Promise.all([
        d.request('a', 'login', [{ username: users.a, password }]),
        d.request('b', 'login', [{ username: users.b, password }]),
      ]);
      const r = await d.ok({ cmd: 'call', instance: 'a', method: 'isLogin', args: [], callbacks: [] });
      assert.equal(r.returned, true);
    });

    await t.test('sendSingleMsg: onSuccess on A, onMsgReceive on B', async () => {
      await d.ok({ cmd: 'listen', instance: 'b', listener: 'onMsgReceive' });
      const text = `hello 你好 😀 ${suffix}`;
      const r = await d.ok({
        cmd: 'call', instance: 'a', method: 'sendSingleMsg',
        args: [{ target_username: users.b, content: text }],
        callbacks: ['onSuccess', 'onFail', 'onTimeout', 'onAck'],
      });
      assert.equal(r.returned, null);
      const ok = await d.callback(r.seq, 'onSuccess');
      assert.ok(ok.args[0].msg_id, `onSuccess has msg_id: ${JSON.stringify(ok)}`);
      const got = await d.waitEvent((e) => e.event === 'listener' && e.instance === 'b' && e.listener === 'onMsgReceive' &&
        (e.args[0].messages || []).some((m) => m.content.msg_body.text === text), 'B onMsgReceive with the text');
      const m = got.args[0].messages.find((x) => x.content.msg_body.text === text);
      assert.equal(m.from_username, users.a);
      assert.equal(String(m.msg_id), String(ok.args[0].msg_id));
      assert.ok(!d.events.some((e) => e.event === 'callback' && e.call === r.seq && e.name !== 'onSuccess' && e.name !== 'onAck'),
        'no onFail/onTimeout for the send');
    });

    await t.test('upload: a $file placeholder becomes a FormData image', async () => {
      const r = await d.ok({
        cmd: 'call', instance: 'a', method: 'sendSinglePic',
        args: [{ target_username: users.b, image: { $file: { name: 'dot.png', type: 'image/png', base64: PNG_1X1 } } }],
        callbacks: ['onSuccess', 'onFail', 'onTimeout'],
      });
      const ev = await d.waitEvent((e) => e.event === 'callback' && e.call === r.seq, 'a callback for sendSinglePic', 10000);
      assert.equal(ev.name, 'onSuccess', JSON.stringify(ev));
      const got = await d.waitEvent((e) => e.event === 'listener' && e.instance === 'b' &&
        (e.args[0].messages || []).some((m) => m.content.msg_type === 'image'), 'B receives the image');
      const body = got.args[0].messages.find((m) => m.content.msg_type === 'image').content.msg_body;
      assert.ok(body.media_id, JSON.stringify(body));
      assert.equal(body.width, 1);
      assert.equal(body.height, 1);
      assert.equal(Number(body.fsize), Buffer.from(PNG_1X1, 'base64').length);
      const bad = await d.send({ cmd: 'call', instance: 'a', method: 'sendSinglePic', args: [{ target_username: users.b, image: { $file: { base64: 42 } } }], callbacks: [] });
      assert.equal(bad.ok, false, 'a malformed $file is a bad argument');
    });

    await t.test('fake timers: advance runs a 30 s timeout in real milliseconds', async () => {
      // An instance whose server does not exist: init can only end in onTimeout,
      // after the SDK's ack retries (5 x 5 s) / its 30 s response timeout.
      const port = await closedPort();
      await d.ok({ cmd: 'create', instance: 'z', options: { address: `ws://127.0.0.1:${port}`, upload_file: `http://127.0.0.1:${port}/resource` } });
      const r = await d.ok({ cmd: 'call', instance: 'z', method: 'init', args: [initArgs(srv)], callbacks: ['onSuccess', 'onFail', 'onTimeout'] });
      await sleep(700);
      assert.ok(!d.events.some((e) => e.event === 'callback' && e.call === r.seq), 'nothing fires before advance');
      const started = Date.now();
      await d.ok({ cmd: 'advance', ms: 40000 });
      const ev = await d.callback(r.seq, 'onTimeout', 3000);
      assert.ok(Date.now() - started < 9000, `advance took ${Date.now() - started} ms`);
      assert.equal(typeof ev.args[0].rid === 'number' || typeof ev.args[0].rid === 'string', true, JSON.stringify(ev));
      // The logged-in instances survived 40 virtual seconds (pings, sync checks) and still talk.
      const text = `after advance ${suffix}`;
      await d.request('a', 'sendSingleMsg', [{ target_username: users.b, content: text }]);
      await d.waitEvent((e) => e.event === 'listener' && e.instance === 'b' &&
        (e.args[0].messages || []).some((m) => m.content.msg_body.text === text), 'B receives the message sent after advance');
      await d.ok({ cmd: 'destroy', instance: 'z' });
    });

    await t.test('destroy and shutdown', async () => {
      await d.ok({ cmd: 'destroy', instance: 'a' });
      const r = await d.send({ cmd: 'call', instance: 'a', method: 'isLogin', args: [], callbacks: [] });
      assert.equal(r.ok, false, 'a destroyed instance is gone');
      const again = await d.send({ cmd: 'destroy', instance: 'a' });
      assert.equal(again.ok, false);
      await d.ok({ cmd: 'shutdown' }, 5000);
      let guard;
      const exit = await Promise.race([d.exit, new Promise((r) => { guard = setTimeout(() => r(null), 5000); })]);
      clearTimeout(guard);
      assert.deepEqual(exit, { code: 0, signal: null }, 'the driver exits with status 0 after shutdown');
      const errors = d.events.filter((e) => e.event === 'error' && e.instance !== undefined && e.instance !== 'z');
      assert.deepEqual(errors, [], 'no exception escaped SDK code of the instances talking to the server');
      assert.deepEqual(d.violations, [], 'stdout carried only well-formed protocol lines');
    });
  });
}
