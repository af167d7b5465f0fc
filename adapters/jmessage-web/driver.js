#!/usr/bin/env node
'use strict';
// Driver protocol v1 (docs/driver-protocol.md) for the official JMessage Web
// SDK: JSON lines on stdin (commands) and stdout (replies and events). Each
// `create`d instance is its own page (lib/sandbox.js: one vm context per
// JMessage object). stdout carries protocol lines only: the SDK's console,
// debug output and the driver's own diagnostics go to stderr.
//
// Usage: node driver.js [--sdk PATH] [--real-timers] [--browser [--chromium PATH]]
//   --sdk PATH      the SDK build (default: $JMESSAGE_SDK)
//   --real-timers   no virtual clock (then `fake_timers` is not advertised
//                   and `advance` fails)
//   --browser       browser mode (lib/browser.js): every instance is a page of
//                   its own BrowserContext in headless Chromium, driven with
//                   playwright-core; hello says driver "jmessage-web-browser"
//   --chromium PATH the Chromium binary (default: $JMM_CHROMIUM or /usr/bin/chromium)
//   --mutant NAME   break the SDK in memory as mutant NAME (lib/mutants.js; default:
//                   $JMM_MUTANT); vm mode only. hello then carries `mutant`.
//   --list-mutants  print the mutants (name, area, description; tab-separated), exit
// Env: JMM_DRIVER_TRACE=1 prints every wire frame of every instance to stderr.

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const util = require('util');
const { Console } = require('console');
const { Sandbox } = require('./lib/sandbox');
const { VirtualClock } = require('./lib/clock');
const { jsonSafe, argsSafe } = require('./lib/json-safe');
const mutants = require('./lib/mutants');

const PROTOCOL = 1;
const DRIVER_NAME = 'jmessage-web';
const BROWSER_DRIVER_NAME = 'jmessage-web-browser';

// Nothing but protocol lines may reach stdout: route the process console to stderr.
const errConsole = new Console({ stdout: process.stderr, stderr: process.stderr });
for (const k of ['log', 'info', 'warn', 'error', 'debug', 'trace', 'dir', 'table']) {
  globalThis.console[k] = errConsole[k].bind(errConsole);
}

function parseArgs(argv) {
  const out = {
    sdk: process.env.JMESSAGE_SDK || '',
    realTimers: false,
    browser: false,
    chromium: process.env.JMM_CHROMIUM || '/usr/bin/chromium',
    mutant: process.env.JMM_MUTANT || '',
    listMutants: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--sdk' && i + 1 < argv.length) out.sdk = argv[++i];
    else if (a.startsWith('--sdk=')) out.sdk = a.slice('--sdk='.length);
    else if (a === '--real-timers') out.realTimers = true;
    else if (a === '--browser') out.browser = true;
    else if (a === '--chromium' && i + 1 < argv.length) out.chromium = argv[++i];
    else if (a.startsWith('--chromium=')) out.chromium = a.slice('--chromium='.length);
    else if (a === '--mutant' && i + 1 < argv.length) out.mutant = argv[++i];
    else if (a.startsWith('--mutant=')) out.mutant = a.slice('--mutant='.length);
    else if (a === '--list-mutants') out.listMutants = true;
    else process.stderr.write(`driver: ignoring unknown argument ${a}\n`);
  }
  // JMESSAGE_SDK may list several builds (':'-separated) for the test suites; a
  // driver runs one, the first.
  out.sdk = out.sdk.split(':').find((p) => p) || '';
  return out;
}

const ARGS = parseArgs(process.argv.slice(2));
if (ARGS.listMutants) {
  process.stdout.write(mutants.list(), () => process.exit(0));
  return;
}
let MUTANT = null;
try {
  MUTANT = mutants.find(ARGS.mutant);
  if (MUTANT && ARGS.browser) throw new Error('--mutant works in vm mode only, not with --browser');
} catch (e) {
  process.stderr.write(`driver: ${e.message}\n`);
  process.exit(2);
}
const TRACE = process.env.JMM_DRIVER_TRACE === '1';

// ---------------------------------------------------------------------------
// Output

function writeLine(obj) {
  let line;
  try {
    line = JSON.stringify(obj);
  } catch (e) {
    line = JSON.stringify({ event: 'error', message: `driver could not encode a line: ${e.message}` });
  }
  process.stdout.write(line + '\n');
}

function log(message) {
  process.stderr.write(`driver: ${message}\n`);
}

function reportError(instance, message) {
  const ev = { event: 'error', message: String(message) };
  if (instance !== undefined) ev.instance = instance;
  log(`error${instance !== undefined ? ` [${instance}]` : ''}: ${message}`);
  writeLine(ev);
}

// ---------------------------------------------------------------------------
// SDK build detection.
//
// The version cannot be read from the build at run time: the constants module
// (with SDK_VERSION) is internal to the webpack bundle, and the 2.6.0 build
// still says SDK_VERSION "2.5.0" (it is what its `login` sends). The public
// API, however, differs between the three builds, so the driver probes the
// prototype of `window.JMessage` in a throw-away page:
//   2.6.0: dissolveGroup, addGroupKeeper, changeGroupAdmin, transPlatMsg (new in 2.6.0)
//   2.5.0: chat rooms (enterChatroom, getAppkeyChatrooms) and addGroupMemSilence
//   2.4.0: none of these
// A build matching none of the known shapes reports "unknown(<SDK_VERSION>)"
// with the literal found in its source, if any.

const VERSION_MARKERS = [
  { version: '2.6.0', methods: ['dissolveGroup', 'addGroupKeeper', 'changeGroupAdmin', 'transPlatMsg'] },
  { version: '2.5.0', methods: ['enterChatroom', 'getAppkeyChatrooms', 'addGroupMemSilence'] },
];

let detected = null; // {version, methods}

function detectVersion() {
  if (detected) return detected;
  if (!ARGS.sdk) throw new Error('no SDK build: set JMESSAGE_SDK or pass --sdk PATH');
  if (!fs.existsSync(ARGS.sdk)) throw new Error(`SDK build not found: ${ARGS.sdk}`);
  const sb = new Sandbox(ARGS.sdk, { name: 'probe', console: pageConsole('probe') });
  try {
    const JMessage = sb.load();
    const proto = JMessage.prototype;
    const has = (m) => typeof proto[m] === 'function';
    let version = null;
    for (const marker of VERSION_MARKERS) {
      if (marker.methods.every(has)) {
        version = marker.version;
        break;
      }
    }
    if (!version) {
      const chatRoomish = ['enterChatroom', 'dissolveGroup', 'addGroupKeeper'].some(has);
      if (!chatRoomish && has('sendSingleMsg') && has('onMsgReceive')) version = '2.4.0';
    }
    if (!version) {
      const src = fs.readFileSync(ARGS.sdk, 'utf8');
      const m = /SDK_VERSION\s*:\s*["']([^"']+)["']/.exec(src);
      version = `unknown(${m ? m[1] : '?'})`;
    }
    // Every function name the SDK object has (own and inherited), for hello's `unsupported`.
    const present = new Set();
    for (let o = proto; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
      for (const k of Object.getOwnPropertyNames(o)) {
        try {
          if (has(k)) present.add(k);
        } catch (_) {
          // An accessor that throws on the prototype itself is no method.
        }
      }
    }
    detected = { version, present };
    return detected;
  } finally {
    sb.dispose();
  }
}

// ---------------------------------------------------------------------------
// Instances

// (The browser mode uses Playwright's page.clock instead, lib/browser.js.)
const clock = ARGS.realTimers || ARGS.browser ? null : new VirtualClock({ onLog: log });
const instances = new Map(); // name -> {name, sb, jim, listeners:Set}

function pageConsole(label) {
  const w = (lvl) => (...args) => process.stderr.write(`[${label} console.${lvl}] ${util.format(...args)}\n`);
  const c = {};
  for (const k of ['log', 'info', 'warn', 'error', 'debug', 'trace', 'table', 'dir', 'group', 'groupEnd', 'time', 'timeEnd', 'assert']) c[k] = w(k);
  c.assert = (cond, ...args) => { if (!cond) w('assert')(...args); };
  c.group = () => {};
  c.groupEnd = () => {};
  c.time = () => {};
  c.timeEnd = () => {};
  return c;
}

// The SDK dials `address` with Socket.IO; given an http(s) URL (what the
// server prints first) the driver turns it into ws(s)://host:port. A path
// would become the Socket.IO namespace, so it is dropped for http(s) URLs.
function toWsAddress(addr) {
  const u = new URL(addr);
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    return `${u.protocol === 'https:' ? 'wss:' : 'ws:'}//${u.host}`;
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`address must be a ws(s):// or http(s):// URL, got ${addr}`);
  return addr;
}

function getInstance(cmd) {
  if (typeof cmd.instance !== 'string' || !cmd.instance) throw new Error('missing `instance`');
  const inst = instances.get(cmd.instance);
  if (!inst) throw new Error(`unknown instance ${JSON.stringify(cmd.instance)}`);
  return inst;
}

// Checks a `create` command (both modes): {name, address, upload_file, debug}.
function createParams(cmd, existing) {
  const name = cmd.instance;
  if (typeof name !== 'string' || !name) throw new Error('missing `instance` (a non-empty string)');
  if (existing.has(name)) throw new Error(`instance ${JSON.stringify(name)} already exists`);
  const o = cmd.options;
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error('missing `options` object');
  // Both URLs are required: the SDK's defaults point at the production service.
  if (typeof o.address !== 'string' || !o.address) throw new Error('options.address is required');
  if (typeof o.upload_file !== 'string' || !o.upload_file) throw new Error('options.upload_file is required');
  const address = toWsAddress(o.address);
  new URL(o.upload_file); // throws on a malformed URL
  detectVersion(); // fails early and clearly when the SDK is missing
  return { name, address, upload_file: o.upload_file, debug: !!o.debug };
}

function createInstance(cmd) {
  const { name, address, upload_file: uploadFile, debug } = createParams(cmd, instances);
  const sb = new Sandbox(ARGS.sdk, {
    name,
    console: pageConsole(name),
    clock: clock || undefined,
    mutant: MUTANT || undefined,
    onFrame: TRACE ? (f) => process.stderr.write(`[${name} +${f.t}ms conn${f.conn}] ${f.dir} ${f.data === null ? '' : f.data}\n`) : undefined,
    onError: (e) => reportError(name, `exception in ${e.where}: ${e.message}${e.stack ? `\n${e.stack}` : ''}`),
  });
  let jim;
  try {
    const JMessage = sb.load();
    const ctorOpts = toPage(sb, { address, upload_file: uploadFile, debug });
    jim = new JMessage(ctorOpts);
  } catch (e) {
    sb.dispose();
    throw e;
  }
  sb.instance = jim;
  instances.set(name, { name, sb, jim, listeners: new Set() });
}

// Deep-copies runner JSON into the page's realm (the SDK tests `x instanceof
// Array`; a Node-realm array fails that inside the vm context) and resolves
// `{"$file": {name, type, base64}}` placeholders into a page FormData holding
// a File, appended under the key the placeholder sits at (`image`, `file`...).
function toPage(sb, value) {
  const win = sb.window;
  const conv = (x, key) => {
    if (Array.isArray(x)) {
      const a = new win.Array();
      for (const e of x) a.push(conv(e, key));
      return a;
    }
    if (x && typeof x === 'object') {
      if (Object.prototype.hasOwnProperty.call(x, '$file')) return fileFormData(win, x.$file, key);
      const obj = new win.Object();
      for (const [k, e] of Object.entries(x)) obj[k] = conv(e, k);
      return obj;
    }
    return x;
  };
  return conv(value, 'file');
}

function fileFormData(win, spec, key) {
  if (!spec || typeof spec !== 'object') throw new Error('$file must be an object {name, type, base64}');
  if (typeof spec.base64 !== 'string') throw new Error('$file.base64 must be a string');
  if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(spec.base64)) throw new Error('$file.base64 is not valid base64');
  const bytes = Buffer.from(spec.base64, 'base64');
  const name = typeof spec.name === 'string' && spec.name ? spec.name : 'file';
  const type = typeof spec.type === 'string' ? spec.type : 'application/octet-stream';
  const fd = new win.FormData();
  const file = new win.File([bytes], name, { type });
  fd.append(typeof key === 'string' && key ? key : 'file', file, name);
  return fd;
}

const CALLBACK_NAME = /^on[A-Z][A-Za-z]*$/;

function isPublicMethod(jim, method) {
  return typeof method === 'string' && /^[A-Za-z][A-Za-z0-9]*$/.test(method) && method !== 'constructor' &&
    typeof jim[method] === 'function';
}

// Checks a `call` command's `args` and `callbacks` (both modes).
function callParams(cmd) {
  const args = cmd.args === undefined ? [] : cmd.args;
  if (!Array.isArray(args)) throw new Error('`args` must be an array');
  const callbacks = cmd.callbacks === undefined ? [] : cmd.callbacks;
  if (!Array.isArray(callbacks) || !callbacks.every((c) => typeof c === 'string' && CALLBACK_NAME.test(c))) {
    throw new Error('`callbacks` must be an array of callback names like "onSuccess"');
  }
  return { args, callbacks };
}

function callMethod(cmd) {
  const inst = getInstance(cmd);
  const { method } = cmd;
  if (!isPublicMethod(inst.jim, method)) throw new Error(`unknown method ${JSON.stringify(method)}`);
  const { args, callbacks } = callParams(cmd);
  const pageArgs = args.map((a) => toPage(inst.sb, a));
  let ret;
  try {
    ret = inst.jim[method](...pageArgs);
  } catch (e) {
    return { thrown: e && e.message !== undefined ? String(e.message) : String(e) };
  }
  // Request methods return the SDK's request builder: register the callbacks on it.
  const isRequest = ret !== null && typeof ret === 'object' && typeof ret.onSuccess === 'function';
  if (isRequest) {
    let target = ret;
    for (const name of callbacks) {
      if (typeof target[name] !== 'function') {
        log(`[${inst.name}] ${method}: the returned request has no ${name}; not registered`);
        writeLine({ event: 'log', message: `${inst.name}.${method}: no callback ${name} on the returned request (not registered)` });
        continue;
      }
      const shown = MUTANT && MUTANT.callback ? MUTANT.callback(name) : name;
      const fn = function callbackForwarder() {
        if (inst.sb.disposed) return;
        writeLine({ event: 'callback', call: cmd.seq, name: shown, args: argsSafe(arguments) });
      };
      const next = target[name](fn);
      // The builder chains (returns itself); keep registering on it either way.
      if (next && typeof next === 'object' && typeof next[name] === 'function') target = next;
    }
    return { returned: null };
  }
  if (callbacks.length) {
    writeLine({ event: 'log', message: `${inst.name}.${method} returned no request object; callbacks ${callbacks.join(',')} not registered` });
  }
  return { returned: jsonSafe(ret) };
}

function listen(cmd) {
  const inst = getInstance(cmd);
  const { listener } = cmd;
  if (typeof listener !== 'string' || !CALLBACK_NAME.test(listener) || typeof inst.jim[listener] !== 'function') {
    throw new Error(`unknown listener ${JSON.stringify(listener)}`);
  }
  // The SDK keeps one handler per listener; registering again replaces it,
  // so a second `listen` does not double the events.
  inst.jim[listener](function listenerForwarder() {
    if (inst.sb.disposed) return;
    const times = MUTANT && MUTANT.listener ? MUTANT.listener(listener, inst.sb.mutantState) : 1;
    for (let i = 0; i < times; i++) {
      writeLine({ event: 'listener', instance: inst.name, listener, args: argsSafe(arguments) });
    }
  });
  inst.listeners.add(listener);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function destroyInstance(inst, graceMs) {
  instances.delete(inst.name);
  let loggedIn = false;
  try {
    loggedIn = !!(inst.jim.isLogin && inst.jim.isLogin());
  } catch (_) { /* treat as logged out */ }
  if (loggedIn) {
    try {
      inst.jim.loginOut();
    } catch (e) {
      log(`[${inst.name}] loginOut threw: ${e && e.message}`);
    }
    // Let the logout frame leave before the sockets are terminated.
    await sleep(graceMs);
  }
  inst.sb.dispose();
}

// ---------------------------------------------------------------------------
// Command dispatch (one at a time, in arrival order)

// hello's `unsupported`: the names of the runner's `api` list (the guide's methods and
// listeners) that this SDK build has no function for (2.4.0 and 2.5.0 lack some).
function unsupported(cmd, present) {
  if (!Array.isArray(cmd.api)) return [];
  return cmd.api.filter((n) => typeof n === 'string' && !present.has(n)).slice(0, 200);
}

async function handle(cmd) {
  if (browser) return handleBrowser(cmd);
  switch (cmd.cmd) {
    case 'hello': {
      if (cmd.protocol !== undefined && cmd.protocol !== PROTOCOL) {
        throw new Error(`unsupported protocol ${JSON.stringify(cmd.protocol)} (this driver speaks ${PROTOCOL})`);
      }
      const { version, present } = detectVersion();
      const capabilities = ['multi_instance', 'upload'];
      if (clock) capabilities.splice(1, 0, 'fake_timers');
      const out = { driver: DRIVER_NAME, version, protocol: PROTOCOL, capabilities, unsupported: unsupported(cmd, present) };
      if (MUTANT) out.mutant = MUTANT.name;
      return out;
    }
    case 'create':
      createInstance(cmd);
      return {};
    case 'call':
      return callMethod(cmd);
    case 'listen':
      listen(cmd);
      return {};
    case 'advance': {
      if (!clock) throw new Error('fake_timers is not enabled (driver started with --real-timers)');
      const ms = cmd.ms;
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new Error('`ms` must be a non-negative number');
      await clock.advance(ms);
      return {};
    }
    case 'destroy': {
      const inst = getInstance(cmd);
      await destroyInstance(inst, 200);
      return {};
    }
    case 'shutdown':
      return {};
    default:
      throw new Error(`unknown cmd ${JSON.stringify(cmd.cmd)}`);
  }
}

// Browser mode: the same commands, carried out by lib/browser.js.
let browser = null;
if (ARGS.browser) {
  const { BrowserMode } = require('./lib/browser');
  browser = new BrowserMode({
    sdkPath: ARGS.sdk,
    chromiumPath: ARGS.chromium,
    fakeTimers: !ARGS.realTimers,
    trace: TRACE,
    writeLine,
    reportError,
    log,
  });
}

async function handleBrowser(cmd) {
  switch (cmd.cmd) {
    case 'hello': {
      if (cmd.protocol !== undefined && cmd.protocol !== PROTOCOL) {
        throw new Error(`unsupported protocol ${JSON.stringify(cmd.protocol)} (this driver speaks ${PROTOCOL})`);
      }
      const { version, present } = detectVersion();
      await browser.start(); // a missing or broken Chromium fails hello, clearly
      const capabilities = ['multi_instance', 'upload'];
      if (browser.fakeTimers) capabilities.splice(1, 0, 'fake_timers');
      return { driver: BROWSER_DRIVER_NAME, version, protocol: PROTOCOL, capabilities, browser: browser.version(), unsupported: unsupported(cmd, present) };
    }
    case 'create':
      await browser.create(createParams(cmd, browser.instances));
      return {};
    case 'call': {
      const { method } = cmd;
      if (typeof method !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(method) || method === 'constructor') {
        throw new Error(`unknown method ${JSON.stringify(method)}`);
      }
      const { args, callbacks } = callParams(cmd);
      return browser.call(cmd.instance, cmd.seq, method, args, callbacks);
    }
    case 'listen': {
      const { listener } = cmd;
      if (typeof listener !== 'string' || !CALLBACK_NAME.test(listener)) throw new Error(`unknown listener ${JSON.stringify(listener)}`);
      await browser.listen(cmd.instance, listener);
      return {};
    }
    case 'advance': {
      if (!browser.fakeTimers) throw new Error('fake_timers is not enabled (driver started with --real-timers)');
      const ms = cmd.ms;
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new Error('`ms` must be a non-negative number');
      await browser.advance(ms);
      return {};
    }
    case 'destroy':
      await browser.destroy(cmd.instance, 200);
      return {};
    case 'shutdown':
      return {};
    default:
      throw new Error(`unknown cmd ${JSON.stringify(cmd.cmd)}`);
  }
}

let shuttingDown = false;

async function processLine(line) {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    reportError(undefined, `bad command line (not JSON): ${line.slice(0, 200)}`);
    return;
  }
  if (!cmd || typeof cmd !== 'object' || Array.isArray(cmd)) {
    reportError(undefined, `bad command line (not an object): ${line.slice(0, 200)}`);
    return;
  }
  const { seq } = cmd;
  if (!Number.isSafeInteger(seq) || seq <= 0) {
    reportError(undefined, `command without a valid seq: ${line.slice(0, 200)}`);
    return;
  }
  if (typeof cmd.cmd !== 'string') {
    writeLine({ seq, ok: false, error: 'missing `cmd`' });
    return;
  }
  try {
    const out = await handle(cmd);
    if ('thrown' in out) writeLine({ seq, ok: false, thrown: out.thrown });
    else writeLine({ seq, ok: true, ...out });
  } catch (e) {
    writeLine({ seq, ok: false, error: e && e.message !== undefined ? String(e.message) : String(e) });
  }
  if (cmd.cmd === 'shutdown') await shutdown(0);
}

async function shutdown(code) {
  if (shuttingDown) return;
  shuttingDown = true;
  const all = [...instances.values()];
  await Promise.all(all.map((inst) => destroyInstance(inst, 100).catch(() => {})));
  if (clock) clock.stop();
  if (browser) await browser.close(100);
  // Exit once stdout is flushed.
  process.stdout.write('', () => process.exit(code));
}

process.on('uncaughtException', (e) => {
  try {
    reportError(undefined, `uncaught exception: ${e && e.stack ? e.stack : e}`);
  } catch (_) { /* nothing left to do */ }
});
process.on('unhandledRejection', (e) => {
  try {
    reportError(undefined, `unhandled rejection: ${e && e.stack ? e.stack : e}`);
  } catch (_) { /* nothing left to do */ }
});
process.stdout.on('error', (e) => {
  // The runner went away (EPIPE): nothing to talk to.
  if (e && e.code === 'EPIPE') process.exit(0);
});

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
let queue = Promise.resolve();
rl.on('line', (line) => {
  queue = queue.then(() => (shuttingDown ? undefined : processLine(line))).catch((e) => reportError(undefined, `driver bug: ${e && e.stack}`));
});
rl.on('close', () => {
  queue = queue.then(() => shutdown(0));
});

// The runner ends a run by closing stdin or by a signal: either way Chromium
// must not outlive the driver.
// (vm mode keeps Node's default: the process dies, and its sockets with it.)
if (browser) {
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => {
      log(`${sig}: closing chromium`);
      // Not queued behind a command that may hang; a hard exit if closing hangs.
      setTimeout(() => process.exit(sig === 'SIGINT' ? 130 : 143), 5000).unref();
      shutdown(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

if (browser) {
  log(`started in browser mode (sdk ${ARGS.sdk ? path.resolve(ARGS.sdk) : 'unset'}, chromium ${ARGS.chromium}, ${browser.fakeTimers ? 'page.clock virtual time' : 'real timers'})`);
} else {
  log(`started (sdk ${ARGS.sdk ? path.resolve(ARGS.sdk) : 'unset'}, ${clock ? 'virtual clock' : 'real timers'}${MUTANT ? `, mutant ${MUTANT.name}` : ''})`);
}
