'use strict';
// Browser mode of the driver (driver.js --browser): the official SDK runs in
// headless Chromium (Debian's `chromium`, driven by playwright-core), not in a
// Node vm sandbox. Every `create`d instance gets its own BrowserContext (own
// localStorage, cookies and clock) with one page loaded from a tiny static
// HTTP server the driver starts on 127.0.0.1: the page's origin
// (http://127.0.0.1:<static port>) differs from the mock's, so the SDK's
// WebSocket and XHR (uploads, Socket.IO polling) go through Chromium's real
// networking and CORS checks.
//
//   runner -> driver.js -> page.evaluate(window.__jmm.call(...))   (commands)
//   page callbacks/listeners -> window.__jmmEmit(line) -> exposeBinding -> stdout
//
// The page-side harness (pageHarness below) is injected by source text,
// together with the vm mode's JSON helpers (lib/json-safe.js), so both modes
// hand the runner the same shapes.
//
// Fake timers: Playwright's clock (context.clock.install before the SDK loads)
// replaces the page's Date/setTimeout/setInterval; it keeps following real
// time between `advance`s (like lib/clock.js). `advance(ms)` moves every
// page's clock with page.clock.runFor, the way lib/clock.js moves its shared
// clock: up to the earliest timer due on any page, then lets the pages'
// network traffic settle (an ack or a response over loopback), then on to the
// next, so a re-send a timer makes gets its answer before the next timeout is
// due. Finding the earliest timer reads the page clock's internals
// (window.__pwClock.controller, playwright-core pinned at 1.65.1); without
// them `advance` is one runFor per page.

const fs = require('fs');
const http = require('http');
const { tagOf, jsonSafe, argsSafe } = require('./json-safe');

// Without the background-networking flags Chromium keeps dialling Google
// services (component updates, sync, variations), which a closed network
// answers with nothing but noise and delay.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

// Every page.evaluate the driver issues is bounded (the runner's command limit is 10 s).
const EVALUATE_LIMIT_MS = 8000;
const CREATE_LIMIT_MS = 9000;
// Real-time budget of one `advance` (then the rest is one jump).
const ADVANCE_BUDGET_MS = 6000;
const LAUNCH_LIMIT_MS = 8000;

function withLimit(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from chromium within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Launches headless Chromium; a missing binary is a clear error, not a hang.
async function launchChromium(executablePath, options) {
  const o = options || {};
  if (!fs.existsSync(executablePath)) {
    throw new Error(`chromium not found at ${executablePath}: apt-get install chromium (or pass --chromium PATH / set JMM_CHROMIUM)`);
  }
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    throw new Error(`playwright-core is not installed (npm ci --prefix adapters/jmessage-web): ${e.message}`);
  }
  try {
    return await chromium.launch({
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: o.timeout || LAUNCH_LIMIT_MS,
      // The driver closes Chromium itself on signals (driver.js).
      handleSIGINT: o.handleSignals !== false,
      handleSIGTERM: o.handleSignals !== false,
      handleSIGHUP: o.handleSignals !== false,
    });
  } catch (e) {
    const first = String(e && e.message).split('\n').slice(0, 6).join('\n');
    throw new Error(`chromium at ${executablePath} did not start: ${first}`);
  }
}

// A static HTTP server on 127.0.0.1 (ephemeral port): `files` maps a path
// ('/', '/sdk.js') to {type, body} or to a function returning one.
function startStaticServer(files) {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    let f = Object.prototype.hasOwnProperty.call(files, path) ? files[path] : null;
    if (typeof f === 'function') {
      try {
        f = f();
      } catch (e) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(String(e && e.message));
        return;
      }
    }
    if (!f) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': f.type, 'Cache-Control': 'no-store' });
    res.end(f.body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        origin: `http://127.0.0.1:${port}`,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

// ---------------------------------------------------------------------------
// Page side. Runs in the page (by its source text): only browser globals and
// the injected jsonSafe/argsSafe/tagOf.

/* global window, atob, FormData, File */
function pageHarness() {
  const CALLBACK_NAME = /^on[A-Z][A-Za-z]*$/;
  const emit = (line) => {
    // The binding returns a promise; a closed context rejects it: ignore.
    try {
      const p = window.__jmmEmit(line);
      if (p && typeof p.catch === 'function') p.catch(() => {});
    } catch (_) { /* context closing */ }
  };
  let jim = null;

  function fileFormData(spec, key) {
    if (!spec || typeof spec !== 'object') throw new Error('$file must be an object {name, type, base64}');
    if (typeof spec.base64 !== 'string') throw new Error('$file.base64 must be a string');
    if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(spec.base64)) throw new Error('$file.base64 is not valid base64');
    const bin = atob(spec.base64.replace(/\s+/g, ''));
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const name = typeof spec.name === 'string' && spec.name ? spec.name : 'file';
    const type = typeof spec.type === 'string' ? spec.type : 'application/octet-stream';
    const fd = new FormData();
    fd.append(typeof key === 'string' && key ? key : 'file', new File([bytes], name, { type }), name);
    return fd;
  }

  // `{"$file": ...}` placeholders become a FormData holding a real File,
  // under the key the placeholder sits at (as in the vm mode).
  function toPage(value) {
    const conv = (x, key) => {
      if (Array.isArray(x)) return x.map((e) => conv(e, key));
      if (x && typeof x === 'object') {
        if (Object.prototype.hasOwnProperty.call(x, '$file')) return fileFormData(x.$file, key);
        const obj = {};
        for (const [k, e] of Object.entries(x)) obj[k] = conv(e, k);
        return obj;
      }
      return x;
    };
    return conv(value, 'file');
  }

  const message = (e) => (e && e.message !== undefined ? String(e.message) : String(e));

  window.__jmm = {
    create(opts) {
      if (typeof window.JMessage !== 'function') throw new Error('window.JMessage was not defined by the SDK');
      jim = new window.JMessage(opts);
    },
    call(seq, method, args, callbacks) {
      if (!jim) return { error: 'no JMessage instance in this page' };
      if (method === 'constructor' || typeof jim[method] !== 'function') return { error: `unknown method ${JSON.stringify(method)}` };
      let pageArgs;
      try {
        pageArgs = args.map((a) => toPage(a));
      } catch (e) {
        return { error: message(e) };
      }
      let ret;
      try {
        ret = jim[method](...pageArgs);
      } catch (e) {
        return { thrown: message(e) };
      }
      const isRequest = ret !== null && typeof ret === 'object' && typeof ret.onSuccess === 'function';
      if (isRequest) {
        let target = ret;
        for (const name of callbacks) {
          if (typeof target[name] !== 'function') {
            emit({ event: 'log', message: `${method}: no callback ${name} on the returned request (not registered)` });
            continue;
          }
          const fn = function callbackForwarder() {
            emit({ event: 'callback', call: seq, name, args: argsSafe(arguments) });
          };
          const next = target[name](fn);
          if (next && typeof next === 'object' && typeof next[name] === 'function') target = next;
        }
        return { returned: null };
      }
      if (callbacks.length) {
        emit({ event: 'log', message: `${method} returned no request object; callbacks ${callbacks.join(',')} not registered` });
      }
      return { returned: jsonSafe(ret) };
    },
    listen(listener) {
      if (!jim || !CALLBACK_NAME.test(listener) || typeof jim[listener] !== 'function') {
        return { error: `unknown listener ${JSON.stringify(listener)}` };
      }
      jim[listener](function listenerForwarder() {
        emit({ event: 'listener', listener, args: argsSafe(arguments) });
      });
      return {};
    },
    // Logs out if logged in; says whether it did (the driver then waits a little
    // for the logout frame before closing the context).
    logout() {
      let loggedIn = false;
      try {
        loggedIn = !!(jim && jim.isLogin && jim.isLogin());
      } catch (_) { /* treat as logged out */ }
      if (loggedIn) {
        try {
          jim.loginOut();
        } catch (e) {
          return { loggedIn, error: message(e) };
        }
      }
      return { loggedIn };
    },
  };
}

// With page.clock installed, an exception thrown by a timer callback does not
// reach the page's error handling (Playwright's clock catches it and logs it
// to the console), so no `pageerror` fires. This init script (added after
// clock.install, so it wraps the clock's timers) reports such an exception
// the way a browser does for a real timer: as an uncaught error, and the
// other timers go on.
/* eslint-disable prefer-rest-params */
function timerErrorReporter() {
  const report = (where, e) => {
    try {
      const p = window.__jmmEmit({
        event: 'error',
        message: `exception in ${where}: ${e && e.message !== undefined ? e.message : String(e)}${e && e.stack ? `\n${e.stack}` : ''}`,
      });
      if (p && typeof p.catch === 'function') p.catch(() => {});
    } catch (_) { /* context closing */ }
  };
  for (const name of ['setTimeout', 'setInterval']) {
    const orig = window[name];
    window[name] = function (fn, ...rest) {
      if (typeof fn !== 'function') return orig.call(this, fn, ...rest);
      return orig.call(this, function timerCallback() {
        try {
          return fn.apply(this, arguments);
        } catch (e) {
          report(`${name} callback`, e);
          return undefined;
        }
      }, ...rest);
    };
  }
}

// Counts the page's WebSocket frames and open XHRs (window.__jmmNet), for
// `advance` to know when the traffic a timer caused has been answered.
function netCounter() {
  const net = { sent: 0, recv: 0, xhr: 0 };
  Object.defineProperty(window, '__jmmNet', { value: net });
  const NativeWS = window.WebSocket;
  const origSend = NativeWS.prototype.send;
  NativeWS.prototype.send = function send(data) {
    net.sent++;
    return origSend.call(this, data);
  };
  const origAdd = NativeWS.prototype.addEventListener;
  window.WebSocket = new Proxy(NativeWS, {
    construct(target, args) {
      const ws = Reflect.construct(target, args);
      origAdd.call(ws, 'message', () => { net.recv++; });
      return ws;
    },
  });
  const xsend = window.XMLHttpRequest.prototype.send;
  window.XMLHttpRequest.prototype.send = function send(body) {
    net.xhr++;
    this.addEventListener('loadend', () => { net.xhr--; net.recv++; });
    return xsend.call(this, body);
  };
}

// `advance` inside one page: steps Playwright's clock (window.__pwClock, the
// internals of playwright-core 1.65.1) from timer to timer, like lib/clock.js,
// and after each step waits with the clock's real timers until the traffic
// settles: a page that sent frames waits for an answer (at most 150 ms: an
// ack may be dropped on purpose), no XHR may be open, and nothing may have
// arrived for 5 ms (at most 1 s per step). Runs by its source text.
async function pageAdvance({ ms, budgetMs }) {
  const pw = window.__pwClock;
  const c = pw && pw.controller;
  if (!c || typeof c._firstTimer !== 'function' || !c._now || typeof c._now.ticks !== 'number' ||
      !pw.builtins || typeof pw.builtins.setTimeout !== 'function') {
    return { internals: false };
  }
  const realNow = () => pw.builtins.performance.now();
  const realSleep = (t) => new Promise((r) => pw.builtins.setTimeout(r, t));
  const net = window.__jmmNet || { sent: 0, recv: 0, xhr: 0 };
  const errors = [];
  const run = async (t) => {
    try {
      await c.runFor(t);
    } catch (e) {
      errors.push(String(e && e.message));
    }
  };
  const settle = async (sentBefore, recvBefore) => {
    const t0 = realNow();
    let last = { sent: net.sent, recv: net.recv };
    for (let i = 0; ; i++) {
      await realSleep(i === 0 ? 1 : 5);
      const waitingReply = net.sent > sentBefore && net.recv === recvBefore && realNow() - t0 < 150;
      const arriving = net.sent !== last.sent || net.recv !== last.recv;
      last = { sent: net.sent, recv: net.recv };
      if ((!waitingReply && net.xhr === 0 && !arriving) || realNow() - t0 > 1000) return;
    }
  };
  const deadline = realNow() + budgetMs;
  let remaining = ms;
  let budgetExhausted = false;
  for (;;) {
    const t = c._firstTimer();
    const gap = t ? Math.max(0, Math.ceil(t.callAt - c._now.ticks)) : Infinity;
    if (gap > remaining) break;
    if (realNow() > deadline) {
      budgetExhausted = true;
      break;
    }
    const sent = net.sent;
    const recv = net.recv;
    await run(gap);
    remaining -= gap;
    await settle(sent, recv);
  }
  const sent = net.sent;
  const recv = net.recv;
  await run(remaining);
  await settle(sent, recv);
  return { internals: true, errors, budgetExhausted };
}

function harnessScript() {
  return `(function () {\n'use strict';\n${tagOf}\n${jsonSafe}\n${argsSafe}\n(${pageHarness})();\n})();\n`;
}

const PAGE_HTML = '<!doctype html><html><head><meta charset="utf-8"><title>jmessage-mock browser driver</title>' +
  '<script src="/sdk.js"></script><script src="/harness.js"></script></head><body></body></html>';

// ---------------------------------------------------------------------------

class BrowserMode {
  // deps: {sdkPath, chromiumPath, fakeTimers, trace, writeLine, reportError, log}
  constructor(deps) {
    this.deps = deps;
    this.fakeTimers = !!deps.fakeTimers;
    this.instances = new Map(); // name -> {name, context, page, closed}
    this.browser = null;
    this.server = null;
    this.closing = false;
    this.starting = null;
  }

  version() {
    return this.browser ? `chromium ${this.browser.version()}` : null;
  }

  async start() {
    if (this.browser) return;
    if (!this.starting) this.starting = this._start().finally(() => { this.starting = null; });
    await this.starting;
  }

  async _start() {
    const { sdkPath, chromiumPath, log, reportError } = this.deps;
    if (!this.server) {
      this.server = await startStaticServer({
        '/': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
        '/sdk.js': () => ({ type: 'application/javascript; charset=utf-8', body: fs.readFileSync(sdkPath) }),
        '/harness.js': { type: 'application/javascript; charset=utf-8', body: harnessScript() },
        '/favicon.ico': { type: 'image/x-icon', body: '' },
      });
    }
    const browser = await launchChromium(chromiumPath, { handleSignals: false });
    browser.on('disconnected', () => {
      if (this.browser === browser) this.browser = null;
      if (!this.closing) {
        reportError(undefined, 'chromium exited unexpectedly (crash or killed); instances are gone');
        this.instances.clear();
      }
    });
    this.browser = browser;
    log(`chromium ${browser.version()} started; pages at ${this.server.origin}/`);
  }

  _get(name) {
    if (typeof name !== 'string' || !name) throw new Error('missing `instance`');
    const inst = this.instances.get(name);
    if (!inst) throw new Error(`unknown instance ${JSON.stringify(name)}`);
    if (!this.browser) throw new Error('chromium is not running (it crashed or was closed)');
    return inst;
  }

  async _eval(inst, what, fn, arg) {
    return withLimit(inst.page.evaluate(fn, arg), EVALUATE_LIMIT_MS, `${inst.name}: ${what}`);
  }

  // A new BrowserContext with one page holding `new JMessage(...)`; bounded
  // as a whole (the runner gives a command 10 s).
  async create(params) {
    await this.start();
    let timedOut = false;
    const work = this._create(params, () => timedOut);
    try {
      await withLimit(work, CREATE_LIMIT_MS, `${params.name}: create`);
    } catch (e) {
      timedOut = true;
      throw e;
    }
  }

  async _create({ name, address, upload_file: uploadFile, debug }, abandoned) {
    const { writeLine, reportError, log, trace } = this.deps;
    const context = await this.browser.newContext();
    const inst = { name, context, page: null, closed: false };
    try {
      // Before any page script runs: the SDK's timers and Date are the clock's.
      if (this.fakeTimers) await context.clock.install();
      await context.exposeBinding('__jmmEmit', (_source, line) => {
        if (inst.closed || !line || typeof line !== 'object') return;
        if (line.event === 'listener') line = { event: 'listener', instance: name, listener: line.listener, args: line.args };
        if (line.event === 'error') {
          reportError(name, line.message);
          return;
        }
        writeLine(line);
      });
      if (this.fakeTimers) await context.addInitScript({ content: `(${timerErrorReporter})();\n(${netCounter})();` });
      const page = await context.newPage();
      inst.page = page;
      page.on('pageerror', (e) => {
        if (!inst.closed) reportError(name, `exception in page: ${e && e.message}${e && e.stack ? `\n${e.stack}` : ''}`);
      });
      page.on('crash', () => {
        if (!inst.closed) reportError(name, 'the page crashed');
      });
      page.on('console', (m) => {
        process.stderr.write(`[${name} console.${m.type()}] ${m.text()}\n`);
      });
      if (trace) {
        page.on('websocket', (ws) => {
          log(`[${name}] websocket ${ws.url()}`);
          ws.on('framesent', (f) => process.stderr.write(`[${name}] > ${f.payload}\n`));
          ws.on('framereceived', (f) => process.stderr.write(`[${name}] < ${f.payload}\n`));
          ws.on('close', () => log(`[${name}] websocket closed`));
        });
      }
      const resp = await withLimit(page.goto(`${this.server.origin}/`, { waitUntil: 'load' }), EVALUATE_LIMIT_MS, `${name}: page load`);
      if (!resp || !resp.ok()) throw new Error(`${name}: the driver's page did not load (${resp ? resp.status() : 'no response'})`);
      await this._eval(inst, 'new JMessage', (o) => window.__jmm.create(o), { address, upload_file: uploadFile, debug });
      if (abandoned()) throw new Error(`${name}: create took too long`);
    } catch (e) {
      inst.closed = true;
      await context.close().catch(() => {});
      throw e;
    }
    this.instances.set(name, inst);
  }

  async call(name, seq, method, args, callbacks) {
    const inst = this._get(name);
    const out = await this._eval(inst, method, (a) => window.__jmm.call(a.seq, a.method, a.args, a.callbacks), {
      seq, method, args, callbacks,
    });
    if (out && out.error !== undefined) throw new Error(out.error);
    if (out && out.thrown !== undefined) return { thrown: out.thrown };
    return { returned: out ? out.returned : null };
  }

  async listen(name, listener) {
    const inst = this._get(name);
    const out = await this._eval(inst, `listen ${listener}`, (l) => window.__jmm.listen(l), listener);
    if (out && out.error !== undefined) throw new Error(out.error);
  }

  // Moves every page's clock forward by `ms` (see the top of the file). Each
  // page steps its own clock in the page (pageAdvance: no round trip per
  // timer), all pages at once; their clocks stay within one step of each other.
  async advance(ms) {
    const all = [...this.instances.values()].filter((i) => !i.closed);
    const step = Math.max(0, Math.round(ms));
    await Promise.all(all.map(async (inst) => {
      let out;
      try {
        out = await withLimit(inst.page.evaluate(pageAdvance, { ms: step, budgetMs: ADVANCE_BUDGET_MS }),
          ADVANCE_BUDGET_MS + 2000, `${inst.name}: advance`);
      } catch (e) {
        if (inst.closed) return;
        throw e;
      }
      if (out.internals === false) {
        // The clock's internals are not there: one jump, timers due fire in order.
        await withLimit(inst.page.clock.runFor(step), EVALUATE_LIMIT_MS, `${inst.name}: advance`)
          .catch((e) => this.deps.reportError(inst.name, `exception in a timer: ${e && e.message}`));
        return;
      }
      if (out.budgetExhausted) this.deps.log(`[${inst.name}] advance: real-time budget exhausted; jumped the rest at once`);
      for (const err of out.errors) this.deps.reportError(inst.name, `exception in a timer: ${err}`);
    }));
  }

  async destroy(name, graceMs) {
    const inst = this._get(name);
    this.instances.delete(name);
    await this._destroy(inst, graceMs);
  }

  async _destroy(inst, graceMs) {
    try {
      const out = await this._eval(inst, 'loginOut', () => window.__jmm.logout());
      if (out && out.error) this.deps.log(`[${inst.name}] loginOut threw: ${out.error}`);
      // Let the logout frame leave before the page goes.
      if (out && out.loggedIn) await sleep(graceMs);
    } catch (e) {
      this.deps.log(`[${inst.name}] logout before close failed: ${e && e.message}`);
    }
    inst.closed = true;
    await withLimit(inst.context.close(), EVALUATE_LIMIT_MS, `${inst.name}: close`).catch(() => {});
  }

  // Logs every instance out, closes Chromium and the static server.
  async close(graceMs) {
    if (this.closing) return;
    this.closing = true;
    if (this.starting) await this.starting.catch(() => {});
    const all = [...this.instances.values()];
    this.instances.clear();
    if (this.browser) await Promise.all(all.map((inst) => this._destroy(inst, graceMs)));
    if (this.browser) {
      await withLimit(this.browser.close(), 5000, 'closing chromium').catch((e) => this.deps.log(e.message));
    }
    if (this.server) await this.server.close();
  }
}

module.exports = { BrowserMode, launchChromium, startStaticServer, CHROMIUM_ARGS, withLimit };
