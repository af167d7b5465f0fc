'use strict';
// Loads an (unmodified, externally supplied) JMessage Web SDK build into an
// isolated `vm` context that looks enough like a browser page for the SDK to
// run: window/self, WebSocket (backed by `ws`), XMLHttpRequest (over Node
// http/https), localStorage, FormData, Blob, File, navigator, location, a
// minimal document, timers and console.
//
// Nothing here contains or fetches SDK code: the SDK file path is an argument.

const fs = require('fs');
const vm = require('vm');
const http = require('http');
const https = require('https');
const util = require('util');
const NodeWS = require('ws');
const { INSTALL_DATE } = require('./clock');

const DEFAULT_PAGE_URL = 'http://localhost/';
const DEFAULT_USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/120.0.0.0 Safari/537.36 jmessage-mock-sandbox/0.1';

const sandboxes = new WeakMap(); // JMessage instance -> sandbox

// ---------------------------------------------------------------------------
// Small event-target helper shared by the WebSocket and XHR shims.

class MiniEventTarget {
  constructor(sb) {
    Object.defineProperty(this, '_sb', { value: sb, enumerable: false });
    Object.defineProperty(this, '_listeners', { value: new Map(), enumerable: false });
  }
  addEventListener(type, fn) {
    if (typeof fn !== 'function' && !(fn && typeof fn.handleEvent === 'function')) return;
    if (!this._listeners.has(type)) this._listeners.set(type, []);
    const list = this._listeners.get(type);
    if (!list.includes(fn)) list.push(fn);
  }
  removeEventListener(type, fn) {
    const list = this._listeners.get(type);
    if (!list) return;
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }
  dispatchEvent(ev) {
    ev.target = this;
    ev.currentTarget = this;
    const handler = this['on' + ev.type];
    if (typeof handler === 'function') this._sb.guard('on' + ev.type, () => handler.call(this, ev));
    const list = (this._listeners.get(ev.type) || []).slice();
    for (const fn of list) {
      this._sb.guard(ev.type + ' listener', () =>
        typeof fn === 'function' ? fn.call(this, ev) : fn.handleEvent(ev));
    }
    return true;
  }
}

// ---------------------------------------------------------------------------
// In-memory Storage (localStorage) with browser-like property access.

function createStorage(initial) {
  const map = new Map();
  if (initial) for (const k of Object.keys(initial)) map.set(String(k), String(initial[k]));
  const api = {
    get length() { return map.size; },
    key(i) { const keys = [...map.keys()]; return i >= 0 && i < keys.length ? keys[i] : null; },
    getItem(k) { k = String(k); return map.has(k) ? map.get(k) : null; },
    setItem(k, v) { map.set(String(k), String(v)); },
    removeItem(k) { map.delete(String(k)); },
    clear() { map.clear(); },
  };
  return new Proxy(api, {
    get(t, p) {
      if (typeof p === 'symbol' || p in t) return t[p];
      return map.has(p) ? map.get(p) : undefined;
    },
    set(t, p, v) {
      if (typeof p === 'symbol' || p in t) return true;
      map.set(p, String(v));
      return true;
    },
    has(t, p) { return p in t || map.has(p); },
    deleteProperty(t, p) { map.delete(p); return true; },
    ownKeys() { return [...map.keys()]; },
    getOwnPropertyDescriptor(t, p) {
      if (map.has(p)) return { value: map.get(p), writable: true, enumerable: true, configurable: true };
      return undefined;
    },
  });
}

// ---------------------------------------------------------------------------
// Minimal DOM: enough for feature detection in bundled libraries (debug's
// useColors, engine.io JSONP, which is never selected because XHR exists).

function createElementStub(tag) {
  const el = {
    tagName: String(tag).toUpperCase(),
    nodeName: String(tag).toUpperCase(),
    style: {},
    attributes: {},
    childNodes: [],
    parentNode: null,
    setAttribute(k, v) { this.attributes[k] = String(v); },
    getAttribute(k) { return k in this.attributes ? this.attributes[k] : null; },
    removeAttribute(k) { delete this.attributes[k]; },
    appendChild(c) { this.childNodes.push(c); c.parentNode = this; return c; },
    insertBefore(c) { this.childNodes.unshift(c); c.parentNode = this; return c; },
    removeChild(c) { const i = this.childNodes.indexOf(c); if (i >= 0) this.childNodes.splice(i, 1); c.parentNode = null; return c; },
    addEventListener() {},
    removeEventListener() {},
    attachEvent() {},
    submit() {},
  };
  return el;
}

function createDocument(location) {
  const documentElement = createElementStub('html');
  const head = createElementStub('head');
  const body = createElementStub('body');
  documentElement.appendChild(head);
  documentElement.appendChild(body);
  return {
    nodeType: 9,
    readyState: 'complete',
    documentElement,
    head,
    body,
    title: '',
    cookie: '',
    get location() { return location; },
    get URL() { return location.href; },
    get domain() { return location.hostname; },
    createElement: (tag) => createElementStub(tag),
    createTextNode: (text) => ({ nodeType: 3, textContent: String(text) }),
    getElementsByTagName: (tag) => {
      const t = String(tag).toLowerCase();
      if (t === 'head') return [head];
      if (t === 'body') return [body];
      if (t === 'html') return [documentElement];
      if (t === 'script') return [createElementStub('script')];
      return [];
    },
    getElementById: () => null,
    querySelector: () => null,
    querySelectorAll: () => [],
    addEventListener() {},
    removeEventListener() {},
  };
}

function createLocation(pageUrl) {
  const u = new URL(pageUrl);
  return {
    href: u.href,
    protocol: u.protocol,
    host: u.host,
    hostname: u.hostname,
    port: u.port,
    pathname: u.pathname,
    search: u.search,
    hash: u.hash,
    origin: u.origin,
    assign() {},
    replace() {},
    reload() {},
    toString() { return u.href; },
  };
}

// ---------------------------------------------------------------------------
// Body serialisation for XHR: FormData / Blob / URLSearchParams via a fetch
// Request (gives the multipart boundary), strings as UTF-8, buffers as-is.

async function serializeBody(body) {
  if (body === undefined || body === null) return { bytes: null, contentType: null };
  if (typeof body === 'string') return { bytes: Buffer.from(body, 'utf8'), contentType: 'text/plain;charset=UTF-8' };
  if (util.types.isAnyArrayBuffer(body)) return { bytes: Buffer.from(new Uint8Array(body)), contentType: null };
  if (ArrayBuffer.isView(body)) {
    return { bytes: Buffer.from(new Uint8Array(body.buffer, body.byteOffset, body.byteLength)), contentType: null };
  }
  if (body instanceof FormData || body instanceof Blob || body instanceof URLSearchParams) {
    const req = new Request('http://serialize.invalid/', { method: 'POST', body });
    const bytes = Buffer.from(await req.arrayBuffer());
    let contentType = req.headers.get('content-type');
    if (body instanceof Blob && !body.type) contentType = null;
    return { bytes, contentType };
  }
  return { bytes: Buffer.from(String(body), 'utf8'), contentType: 'text/plain;charset=UTF-8' };
}

// ---------------------------------------------------------------------------

class Sandbox {
  constructor(sdkPath, options) {
    this.options = options || {};
    this.name = this.options.name || 'sdk';
    this.sdkPath = sdkPath;
    this.disposed = false;
    this.timers = new Set();
    this.intervals = new Set();
    this.sockets = new Set();
    this.requests = new Set();
    this.mutantState = {};     // lib/mutants.js per-page state
    this.frames = [];          // {t, conn, dir: '>'|'<'|'open'|'close'|'error', data}
    this.errors = [];          // exceptions thrown by SDK code inside event handlers / timers
    this.connSeq = 0;
    this.t0 = Date.now();
    this.pageUrl = this.options.pageUrl || DEFAULT_PAGE_URL;
    this.userAgent = this.options.userAgent || DEFAULT_USER_AGENT;
    this.console = this.options.console || console;
    this._build();
  }

  // Runs SDK code (a callback, a handler) the way a browser would: an
  // exception is reported, not propagated into Node's event loop.
  guard(where, fn) {
    if (this.disposed) return undefined;
    try {
      return fn();
    } catch (err) {
      const rec = { where, message: err && err.message, stack: err && err.stack };
      this.errors.push(rec);
      if (typeof this.options.onError === 'function') this.options.onError(rec);
      else this.console.error(`[${this.name}] uncaught in ${where}:`, err && err.stack ? err.stack : err);
      return undefined;
    }
  }

  // The delay a timer mutant turns `ms` into (unchanged without one).
  mutantDelay(ms) {
    const m = this.options.mutant;
    return m && m.delay ? m.delay(Number(ms)) : ms;
  }

  recordFrame(conn, dir, data) {
    const rec = { t: Date.now() - this.t0, conn, dir, data };
    this.frames.push(rec);
    if (this.options.clock) this.options.clock.touch(this, conn, dir);
    if (typeof this.options.onFrame === 'function') this.options.onFrame(rec, this);
  }

  _build() {
    const sb = this;
    const location = createLocation(this.pageUrl);
    const navigator = {
      userAgent: this.userAgent,
      appName: 'Netscape',
      appVersion: this.userAgent.replace(/^Mozilla\//, ''),
      platform: 'Linux x86_64',
      language: 'zh-CN',
      languages: ['zh-CN', 'en'],
      onLine: true,
      cookieEnabled: false,
      product: 'Gecko',
      vendor: 'Google Inc.',
    };
    const localStorage = createStorage(this.options.localStorage);
    const sessionStorage = createStorage();
    const document = createDocument(location);

    // --- timers (tracked so dispose() can stop everything) ---
    const setTimeoutShim = (fn, ms, ...args) => {
      if (typeof fn !== 'function') return undefined; // string timers not supported
      const h = setTimeout(() => {
        sb.timers.delete(h);
        sb.guard('setTimeout callback', () => fn(...args));
      }, sb.mutantDelay(ms));
      sb.timers.add(h);
      return h;
    };
    const clearTimeoutShim = (h) => { if (h) { clearTimeout(h); sb.timers.delete(h); } };
    const setIntervalShim = (fn, ms, ...args) => {
      if (typeof fn !== 'function') return undefined;
      const h = setInterval(() => sb.guard('setInterval callback', () => fn(...args)), sb.mutantDelay(ms));
      sb.intervals.add(h);
      return h;
    };
    const clearIntervalShim = (h) => { if (h) { clearInterval(h); sb.intervals.delete(h); } };
    // With a shared virtual clock (options.clock, see clock.js) the page's
    // timers and Date run on it instead; dispose() drops them from its queue.
    const clocked = this.options.clock ? this.options.clock.attach(this) : null;
    // A timer mutant changes the delays the SDK asks for.
    const virtual = clocked && this.options.mutant && this.options.mutant.delay ? {
      ...clocked,
      setTimeout: (fn, ms, ...args) => clocked.setTimeout(fn, sb.mutantDelay(ms), ...args),
      setInterval: (fn, ms, ...args) => clocked.setInterval(fn, sb.mutantDelay(ms), ...args),
    } : clocked;

    const globals = {
      console: this.console,
      navigator,
      location,
      document,
      localStorage,
      sessionStorage,
      setTimeout: virtual ? virtual.setTimeout : setTimeoutShim,
      clearTimeout: virtual ? virtual.clearTimeout : clearTimeoutShim,
      setInterval: virtual ? virtual.setInterval : setIntervalShim,
      clearInterval: virtual ? virtual.clearInterval : clearIntervalShim,
      queueMicrotask: (fn) => queueMicrotask(() => sb.guard('microtask', fn)),
      WebSocket: this._makeWebSocketClass(location),
      XMLHttpRequest: this._makeXHRClass(location),
      FormData,
      Blob,
      File,
      URL,
      URLSearchParams,
      TextEncoder,
      TextDecoder,
      atob,
      btoa,
      addEventListener() {},
      removeEventListener() {},
      alert() {},
    };
    this.context = vm.createContext(globals, { name: `jmessage-sdk:${this.name}` });
    // window === self === globalThis inside the page; no `global` (bundled
    // libraries treat `global.global === global` as "running in Node").
    vm.runInContext('globalThis.window = globalThis; globalThis.self = globalThis; globalThis.top = globalThis; globalThis.parent = globalThis;', this.context);
    this.window = vm.runInContext('window', this.context);
    if (virtual) {
      this.window.__jmmNow = virtual.now;
      vm.runInContext(INSTALL_DATE, this.context);
    }
    // context-realm constructors, for values handed to SDK code
    this.ctxArrayBuffer = vm.runInContext('ArrayBuffer', this.context);
    this.ctxUint8Array = vm.runInContext('Uint8Array', this.context);
  }

  toCtxArrayBuffer(buf) {
    const ab = new this.ctxArrayBuffer(buf.length);
    new this.ctxUint8Array(ab).set(buf);
    return ab;
  }

  _makeWebSocketClass(location) {
    const sb = this;
    class WebSocket extends MiniEventTarget {
      constructor(url, protocols) {
        super(sb);
        if (sb.disposed) throw new Error('sandbox disposed');
        this.url = String(url);
        this.readyState = WebSocket.CONNECTING;
        this.binaryType = 'blob';
        this.bufferedAmount = 0;
        this.extensions = '';
        this.protocol = '';
        this.onopen = null;
        this.onmessage = null;
        this.onerror = null;
        this.onclose = null;
        const conn = ++sb.connSeq;
        Object.defineProperty(this, '_conn', { value: conn });
        sb.recordFrame(conn, 'connect', this.url);
        const ws = new NodeWS(this.url, protocols, {
          headers: { Origin: location.origin, 'User-Agent': sb.userAgent },
        });
        Object.defineProperty(this, '_ws', { value: ws });
        sb.sockets.add(this);
        ws.on('open', () => {
          this.readyState = WebSocket.OPEN;
          this.protocol = ws.protocol || '';
          this.extensions = ws.extensions || '';
          sb.recordFrame(conn, 'open', null);
          this.dispatchEvent({ type: 'open' });
        });
        ws.on('message', (data, isBinary) => {
          let payload;
          if (!isBinary) {
            payload = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat([].concat(data)).toString('utf8');
            sb.recordFrame(conn, '<', payload);
            const m = sb.options.mutant;
            if (m && m.incoming) payload = m.incoming(payload, sb.mutantState);
          } else {
            const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
            sb.recordFrame(conn, '<', `<binary ${buf.length} bytes>`);
            payload = this.binaryType === 'arraybuffer' ? sb.toCtxArrayBuffer(buf) : new Blob([buf]);
          }
          this.dispatchEvent({ type: 'message', data: payload, origin: new URL(this.url).origin });
        });
        ws.on('error', (err) => {
          sb.recordFrame(conn, 'error', err && err.message);
          this.dispatchEvent({ type: 'error', message: err && err.message });
        });
        ws.on('close', (code, reason) => {
          this.readyState = WebSocket.CLOSED;
          sb.sockets.delete(this);
          sb.recordFrame(conn, 'close', `${code} ${reason ? reason.toString() : ''}`.trim());
          this.dispatchEvent({ type: 'close', code, reason: reason ? reason.toString() : '', wasClean: code === 1000 });
        });
      }
      send(data) {
        if (this.readyState === WebSocket.CONNECTING) {
          const e = new Error("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.");
          e.name = 'InvalidStateError';
          throw e;
        }
        if (this.readyState !== WebSocket.OPEN) return; // browsers silently drop
        // A mutant (lib/mutants.js) may rewrite or drop what the SDK sends.
        const m = sb.options.mutant;
        if (m && m.outgoing && typeof data === 'string') {
          data = m.outgoing(data, sb.mutantState);
          if (data === null) return;
        }
        let out = data;
        if (typeof data === 'string') {
          sb.recordFrame(this._conn, '>', data);
        } else {
          if (util.types.isAnyArrayBuffer(data)) out = Buffer.from(new Uint8Array(data));
          else if (ArrayBuffer.isView(data)) out = Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          sb.recordFrame(this._conn, '>', `<binary ${out.length} bytes>`);
        }
        this._ws.send(out);
      }
      close(code, reason) {
        if (this.readyState === WebSocket.CLOSING || this.readyState === WebSocket.CLOSED) return;
        this.readyState = WebSocket.CLOSING;
        sb.recordFrame(this._conn, 'closing', code === undefined ? '' : String(code));
        try { this._ws.close(code, reason); } catch (_) { this._ws.terminate(); }
      }
    }
    WebSocket.CONNECTING = 0;
    WebSocket.OPEN = 1;
    WebSocket.CLOSING = 2;
    WebSocket.CLOSED = 3;
    return WebSocket;
  }

  _makeXHRClass(location) {
    const sb = this;
    class XMLHttpRequestUpload extends MiniEventTarget {
      constructor() {
        super(sb);
        this.onloadstart = this.onprogress = this.onload = this.onloadend = this.onerror = this.onabort = this.ontimeout = null;
      }
    }
    class XMLHttpRequest extends MiniEventTarget {
      constructor() {
        super(sb);
        this.readyState = 0;
        this.status = 0;
        this.statusText = '';
        this.responseText = '';
        this.response = '';
        this.responseType = '';
        this.responseURL = '';
        this.responseXML = null;
        this.withCredentials = false;
        this.timeout = 0;
        this.upload = new XMLHttpRequestUpload();
        this.onreadystatechange = this.onloadstart = this.onprogress = this.onload =
          this.onloadend = this.onerror = this.onabort = this.ontimeout = null;
        Object.defineProperty(this, '_s', { value: { headers: {}, resHeaders: {}, aborted: false, sent: false } });
      }
      open(method, url, async) {
        if (async === false) throw new Error('synchronous XMLHttpRequest is not supported by the sandbox');
        const s = this._s;
        s.method = String(method).toUpperCase();
        s.url = new URL(String(url), location.href).href;
        s.headers = {};
        s.resHeaders = {};
        s.aborted = false;
        s.sent = false;
        this.status = 0;
        this.statusText = '';
        this.responseText = '';
        this.response = '';
        this._setState(1);
      }
      setRequestHeader(name, value) {
        if (this.readyState !== 1 || this._s.sent) throw new Error('InvalidStateError: setRequestHeader before open/after send');
        const key = String(name).toLowerCase();
        const prev = this._s.headers[key];
        this._s.headers[key] = { name: String(name), value: prev ? `${prev.value}, ${value}` : String(value) };
      }
      overrideMimeType() {}
      getResponseHeader(name) {
        if (this.readyState < 2) return null;
        const v = this._s.resHeaders[String(name).toLowerCase()];
        if (v === undefined) return null;
        return Array.isArray(v) ? v.join(', ') : String(v);
      }
      getAllResponseHeaders() {
        if (this.readyState < 2) return '';
        return Object.entries(this._s.resHeaders)
          .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`).join('\r\n') + (Object.keys(this._s.resHeaders).length ? '\r\n' : '');
      }
      abort() {
        const s = this._s;
        if (s.aborted) return;
        s.aborted = true;
        if (s.req) { s.req.destroy(); sb.requests.delete(s.req); }
        if (s.sent && this.readyState !== 4) {
          this.readyState = 4;
          this.status = 0;
          this.dispatchEvent({ type: 'readystatechange' });
          this.dispatchEvent({ type: 'abort' });
          this.dispatchEvent({ type: 'loadend' });
        }
        this.readyState = 0;
      }
      _setState(n) {
        this.readyState = n;
        this.dispatchEvent({ type: 'readystatechange' });
      }
      _fail(type) {
        if (this._s.aborted || this.readyState === 4) return;
        this.status = 0;
        this.readyState = 4;
        this.dispatchEvent({ type: 'readystatechange' });
        this.dispatchEvent({ type });
        this.dispatchEvent({ type: 'loadend', loaded: 0, total: 0 });
      }
      send(body) {
        if (this.readyState !== 1 || this._s.sent) throw new Error('InvalidStateError: send() before open() or twice');
        const s = this._s;
        s.sent = true;
        if (s.method === 'GET' || s.method === 'HEAD') body = null;
        serializeBody(body).then(({ bytes, contentType }) => {
          if (s.aborted || sb.disposed) return;
          const headers = {};
          for (const { name, value } of Object.values(s.headers)) headers[name] = value;
          if (contentType && !s.headers['content-type']) headers['Content-Type'] = contentType;
          headers['User-Agent'] = sb.userAgent;
          if (!s.headers['accept']) headers['Accept'] = '*/*';
          const target = new URL(s.url);
          if (target.origin !== location.origin) headers['Origin'] = location.origin;
          headers['Referer'] = location.href;
          if (bytes) headers['Content-Length'] = String(bytes.length);
          const lib = target.protocol === 'https:' ? https : http;
          this.dispatchEvent({ type: 'loadstart', loaded: 0, total: 0 });
          if (bytes) this.upload.dispatchEvent({ type: 'loadstart', loaded: 0, total: bytes.length, lengthComputable: true });
          const req = lib.request(target, { method: s.method, headers });
          s.req = req;
          sb.requests.add(req);
          if (this.timeout > 0) {
            req.setTimeout(this.timeout, () => { req.destroy(); this._fail('timeout'); });
          }
          req.on('error', () => { sb.requests.delete(req); if (!s.aborted) this._fail('error'); });
          req.on('response', (res) => {
            if (s.aborted || sb.disposed) { res.resume(); return; }
            this.status = res.statusCode;
            this.statusText = res.statusMessage || '';
            this.responseURL = s.url;
            s.resHeaders = res.headers;
            this._setState(2);
            const chunks = [];
            let loaded = 0;
            const total = Number(res.headers['content-length']) || 0;
            res.on('data', (c) => {
              if (s.aborted) return;
              chunks.push(c);
              loaded += c.length;
              if (this.readyState !== 3) this._setState(3);
              if (this.responseType === '' || this.responseType === 'text') {
                this.responseText = Buffer.concat(chunks).toString('utf8');
                this.response = this.responseText;
              }
              this.dispatchEvent({ type: 'progress', loaded, total, lengthComputable: total > 0 });
            });
            res.on('end', () => {
              sb.requests.delete(req);
              if (s.aborted || sb.disposed) return;
              const buf = Buffer.concat(chunks);
              const text = buf.toString('utf8');
              switch (this.responseType) {
                case 'arraybuffer': this.response = sb.toCtxArrayBuffer(buf); break;
                case 'blob': this.response = new Blob([buf], { type: res.headers['content-type'] || '' }); break;
                case 'json': try { this.response = JSON.parse(text); } catch (_) { this.response = null; } break;
                default: this.responseText = text; this.response = text;
              }
              this._setState(4);
              this.dispatchEvent({ type: 'load', loaded, total: loaded, lengthComputable: true });
              this.dispatchEvent({ type: 'loadend', loaded, total: loaded, lengthComputable: true });
            });
            res.on('error', () => this._fail('error'));
          });
          if (bytes) {
            req.end(bytes, () => {
              if (s.aborted) return;
              const ev = { loaded: bytes.length, total: bytes.length, lengthComputable: true };
              this.upload.dispatchEvent({ type: 'progress', ...ev });
              this.upload.dispatchEvent({ type: 'load', ...ev });
              this.upload.dispatchEvent({ type: 'loadend', ...ev });
            });
          } else {
            req.end();
          }
        }).catch((err) => {
          sb.guard('XMLHttpRequest.send', () => { throw err; });
          this._fail('error');
        });
      }
    }
    XMLHttpRequest.UNSENT = 0;
    XMLHttpRequest.OPENED = 1;
    XMLHttpRequest.HEADERS_RECEIVED = 2;
    XMLHttpRequest.LOADING = 3;
    XMLHttpRequest.DONE = 4;
    return XMLHttpRequest;
  }

  load() {
    const code = fs.readFileSync(this.sdkPath, 'utf8');
    vm.runInContext(code, this.context, { filename: this.sdkPath });
    const JMessage = this.window.JMessage;
    if (typeof JMessage !== 'function') throw new Error(`${this.sdkPath}: window.JMessage was not defined by the SDK`);
    this.JMessage = JMessage;
    return JMessage;
  }

  // Stops everything the page started: timers, intervals, sockets, requests.
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    if (this.options.clock) this.options.clock.detach(this);
    for (const h of this.timers) clearTimeout(h);
    for (const h of this.intervals) clearInterval(h);
    this.timers.clear();
    this.intervals.clear();
    for (const s of this.sockets) { try { s._ws.terminate(); } catch (_) { /* ignore */ } }
    this.sockets.clear();
    for (const r of this.requests) { try { r.destroy(); } catch (_) { /* ignore */ } }
    this.requests.clear();
  }
}

// Creates one isolated page with one JMessage instance.
// options: { address, upload_file, debug, name, onFrame(rec, sandbox), onError(rec),
//            console, pageUrl, userAgent, localStorage (initial items),
//            clock (a VirtualClock from clock.js: timers and Date on virtual time) }
// Returns the JMessage instance; getSandbox(jim) gives the sandbox (frames,
// errors, window, dispose()).
function createInstance(sdkPath, options) {
  const opts = options || {};
  const sb = new Sandbox(sdkPath, opts);
  const JMessage = sb.load();
  const ctorOpts = {};
  if (opts.address !== undefined) ctorOpts.address = opts.address;
  if (opts.upload_file !== undefined) ctorOpts.upload_file = opts.upload_file;
  if (opts.debug !== undefined) ctorOpts.debug = !!opts.debug;
  // Build the option object inside the page realm, as page code would.
  const ctxOpts = vm.runInContext('(function (o) { return JSON.parse(o); })', sb.context)(JSON.stringify(ctorOpts));
  const jim = new JMessage(ctxOpts);
  sandboxes.set(jim, sb);
  sb.instance = jim;
  return jim;
}

function getSandbox(jim) {
  return sandboxes.get(jim);
}

function disposeInstance(jim) {
  const sb = sandboxes.get(jim);
  if (sb) sb.dispose();
}

module.exports = { createInstance, getSandbox, disposeInstance, Sandbox };
