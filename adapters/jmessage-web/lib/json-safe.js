'use strict';
// JSON-safe copies of library values for the driver protocol (shared by the vm
// mode, driver.js, and the browser mode, lib/browser.js, which injects these
// very functions into each Chromium page by their source text: keep them
// self-contained, no references to anything outside these three functions).
// Values crossing to the runner: JSON-safe copies. Works on values from any
// realm (the SDK's objects come from its page's vm context, so `instanceof`
// against this realm's constructors is useless: use the [[Class]] tag).

function tagOf(v) {
  return Object.prototype.toString.call(v).slice(8, -1);
}

function jsonSafe(value) {
  const stack = [];
  const conv = (v) => {
    if (v === null) return null;
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return v;
      case 'number':
        return Number.isFinite(v) ? v : null;
      case 'bigint':
        return v.toString();
      case 'undefined':
      case 'function':
      case 'symbol':
        return undefined;
      default:
        break;
    }
    if (stack.includes(v)) return '[Circular]';
    const tag = tagOf(v);
    switch (tag) {
      case 'Blob':
      case 'File':
        return `[${tag} ${v.size} bytes${v.type ? ` ${v.type}` : ''}]`;
      case 'FormData':
        return '[FormData]';
      case 'ArrayBuffer':
      case 'SharedArrayBuffer':
        return `[ArrayBuffer ${v.byteLength} bytes]`;
      case 'Date':
        return Number.isFinite(v.getTime()) ? v.toISOString() : null;
      case 'Error':
        return { name: String(v.name), message: String(v.message) };
      case 'RegExp':
        return String(v);
      default:
        break;
    }
    if (ArrayBuffer.isView(v)) return `[${tag} ${v.byteLength} bytes]`;
    stack.push(v);
    try {
      if (typeof v.toJSON === 'function' && !Array.isArray(v)) {
        try {
          const j = v.toJSON();
          if (j !== v) return conv(j);
        } catch (_) { /* fall through to the plain walk */ }
      }
      if (Array.isArray(v)) {
        return Array.from(v, (e) => {
          const c = conv(e);
          return c === undefined ? null : c;
        });
      }
      if (tag === 'Map') return Object.fromEntries([...v].map(([k, e]) => [String(k), conv(e) ?? null]));
      if (tag === 'Set') return [...v].map((e) => conv(e) ?? null);
      const out = {};
      for (const k of Object.keys(v)) {
        let e;
        try {
          e = v[k];
        } catch (err) {
          e = `[getter threw: ${err && err.message}]`;
        }
        const c = conv(e);
        if (c !== undefined) out[k] = c;
      }
      return out;
    } finally {
      stack.pop();
    }
  };
  const c = conv(value);
  return c === undefined ? null : c;
}

function argsSafe(args) {
  return Array.from(args, (a) => jsonSafe(a));
}

module.exports = { tagOf, jsonSafe, argsSafe };
