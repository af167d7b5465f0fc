'use strict';
// Unit tests of the virtual clock behind the driver's `fake_timers` (lib/clock.js),
// with a page built by lib/sandbox.js (no SDK needed).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const vm = require('node:vm');
const { VirtualClock } = require('../lib/clock');
const { Sandbox } = require('../lib/sandbox');

function owner(log) {
  return { requests: new Set(), guard: (where, fn) => { try { return fn(); } catch (e) { log.push(`threw in ${where}: ${e.message}`); return undefined; } } };
}

test('advance fires timers in due order, repeats intervals, honours clear', async () => {
  const clock = new VirtualClock();
  const log = [];
  const t = clock.attach(owner(log));
  const start = clock.now();
  t.setTimeout(() => log.push(`b@${clock.now() - start}`), 20000);
  t.setTimeout(() => log.push(`a@${clock.now() - start}`), 5000);
  const cleared = t.setTimeout(() => log.push('cleared'), 10000);
  t.clearTimeout(cleared);
  const iv = t.setInterval(() => {
    log.push(`i@${clock.now() - start}`);
    if (clock.now() - start >= 16000) t.clearInterval(iv);
  }, 8000);
  // A timer set by a timer runs at its own due time within the same advance.
  t.setTimeout(() => t.setTimeout(() => log.push(`nested@${clock.now() - start}`), 1000), 6000);
  const realStart = Date.now();
  await clock.advance(30000);
  assert.ok(Date.now() - realStart < 2000, 'virtual seconds take real milliseconds');
  // Real time passes during the test; compare at a 100 ms resolution.
  const rounded = log.map((e) => e.replace(/@(\d+)/, (_, n) => `@${Math.round(Number(n) / 1000)}s`));
  assert.deepEqual(rounded, ['a@5s', 'nested@7s', 'i@8s', 'i@16s', 'b@20s']);
  assert.equal(clock.pending(), 0);
  assert.ok(clock.now() - start >= 30000);
  clock.stop();
});

test('timers also fire as real time passes; 0 ms timers need no advance', async () => {
  const clock = new VirtualClock();
  const log = [];
  const t = clock.attach(owner(log));
  t.setTimeout(() => log.push('zero'), 0);
  t.setTimeout(() => log.push('short'), 30);
  t.setTimeout(() => log.push('long'), 60000);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(log, ['zero', 'short']);
  assert.equal(clock.pending(), 1);
  clock.stop();
});

test('advance waits for the reply to a frame a timer sent before running the next timer', async () => {
  const clock = new VirtualClock();
  const log = [];
  const page = owner(log);
  const t = clock.attach(page);
  // A "ping" at 500 ms whose "pong" arrives 80 ms later in real time, and a "ping timeout"
  // at 1700 ms that the pong cancels: however slow the reply, the timeout must not win.
  let timeout = t.setTimeout(() => log.push('ping timeout'), 1700);
  t.setTimeout(() => {
    log.push('ping');
    clock.touch(page, 1, '>');
    setTimeout(() => {
      clock.touch(page, 1, '<');
      log.push('pong');
      t.clearTimeout(timeout);
      timeout = t.setTimeout(() => log.push('ping timeout'), 1700);
    }, 80);
  }, 500);
  await clock.advance(2000);
  assert.deepEqual(log, ['ping', 'pong']);
  t.clearTimeout(timeout);
  // A frame that never gets a reply holds the clock back only for a bounded real time.
  t.setTimeout(() => clock.touch(page, 2, '>'), 100);
  t.setTimeout(() => log.push('later'), 200);
  const started = Date.now();
  await clock.advance(300);
  assert.deepEqual(log, ['ping', 'pong', 'later']);
  assert.ok(Date.now() - started < 2000, 'the wait for a reply is bounded');
  clock.stop();
});

test('detach drops a page\'s timers; another page cannot clear them', async () => {
  const clock = new VirtualClock();
  const log = [];
  const p1 = owner(log);
  const t1 = clock.attach(p1);
  const t2 = clock.attach(owner(log));
  const id = t1.setTimeout(() => log.push('one'), 1000);
  t2.clearTimeout(id);
  t2.setTimeout(() => log.push('two'), 1000);
  t1.setTimeout(() => log.push('dropped'), 2000);
  await clock.advance(1500);
  assert.deepEqual(log, ['one', 'two']);
  clock.detach(p1);
  await clock.advance(5000);
  assert.deepEqual(log, ['one', 'two']);
  clock.stop();
});

test('a throwing timer is reported through the page and does not stop the others', async () => {
  const clock = new VirtualClock();
  const log = [];
  const t = clock.attach(owner(log));
  t.setTimeout(() => { throw new Error('boom'); }, 100);
  t.setTimeout(() => log.push('after'), 200);
  await clock.advance(1000);
  assert.deepEqual(log, ['threw in setTimeout callback: boom', 'after']);
  clock.stop();
});

test('a page on the clock sees virtual Date and timers', async () => {
  const clock = new VirtualClock();
  const sb = new Sandbox(__filename, { name: 'clock-test', clock, console: { log() {}, info() {}, warn() {}, error() {}, debug() {} } });
  try {
    const run = (src) => vm.runInContext(src, sb.context);
    const before = run('Date.now()');
    assert.ok(Math.abs(before - Date.now()) < 1000, 'virtual time starts at real time');
    run('globalThis.fired = []; setTimeout(function () { fired.push(Date.now()); }, 60000);');
    await clock.advance(3600000);
    const after = run('Date.now()');
    assert.ok(after - before >= 3600000, `Date.now moved by ${after - before}`);
    assert.ok(run('new Date().getTime()') >= after);
    assert.equal(run('typeof Date()'), 'string');
    assert.equal(run('new Date(0).toISOString()'), '1970-01-01T00:00:00.000Z');
    assert.equal(run('new Date(2020, 0, 2).getFullYear()'), 2020);
    assert.equal(run('new Date() instanceof Date'), true);
    const fired = run('fired.slice()');
    assert.equal(fired.length, 1);
    assert.ok(fired[0] - before >= 60000 && fired[0] - before < 61000, `timer saw Date.now() at +${fired[0] - before}`);
    sb.dispose();
    assert.equal(clock.pending(), 0, 'dispose drops the page\'s timers');
  } finally {
    sb.dispose();
    clock.stop();
  }
});
