'use strict';
// A virtual clock shared by several sandboxes (driver protocol capability
// `fake_timers`).
//
// Virtual time = real time + an offset that only `advance(ms)` grows. Timers
// the pages set (setTimeout/setInterval) live in one queue ordered by virtual
// due time; a single real Node timer fires whatever falls due as real time
// passes, so code that just waits a little (the SDK sends `init`/`login` after
// a 500 ms timer, Socket.IO defers writes with 0 ms timers) keeps working
// without the runner having to advance. `advance(ms)` jumps the clock forward
// timer by timer, in due order, and after each firing lets real I/O settle
// (a request the timer sent usually gets its ack/response over localhost
// within a few ms), so a 5 s ack timeout, a 30 s response timeout or a 150 s
// sync-check interval run in milliseconds and in the order they would have in
// real time. The page's `Date` (constructor and `Date.now()`) reads the same
// virtual time.

const MAX_NODE_DELAY = 2 ** 31 - 1;
// How long `advance` waits for the reply to a frame a timer sent (real ms).
const REPLY_WAIT_MS = 300;

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

class VirtualClock {
  constructor(options) {
    const o = options || {};
    this.offset = 0;
    this.timers = new Map(); // id -> {id, owner, due, interval, fn, args, seq}
    this.nextId = 1;
    this.seq = 0;
    this.realTimer = null;
    this.advancing = false;
    this.activity = 0; // bumped on every wire event of any attached page
    this.owners = new Set();
    this.pageIds = new Map(); // page -> small id (for `awaiting` keys)
    this.awaiting = new Map(); // 'page:conn' -> real time a frame was sent without reply yet
    // Real-time budget of one advance() (the runner's limit for a command is 10 s).
    this.advanceBudgetMs = o.advanceBudgetMs || 7000;
    this.onLog = o.onLog || (() => {});
  }

  now() {
    return Date.now() + this.offset;
  }

  // Called by pages whenever a frame is sent/received or a socket/request changes state.
  // With `(page, conn, dir)`, a sent frame (`>`) leaves the connection awaiting a reply
  // until a frame comes back (`<`) or it closes: `advance` does not run the next timer
  // while a reply is on its way (at most REPLY_WAIT_MS of real time), so a ping sent by
  // one timer gets its pong before the ping-timeout timer is due, however slow the
  // machine is.
  touch(page, conn, dir) {
    this.activity++;
    if (page === undefined) return;
    const key = `${this.pageIds.get(page) || this._pageId(page)}:${conn}`;
    if (dir === '>') this.awaiting.set(key, Date.now());
    else this.awaiting.delete(key);
  }

  _pageId(page) {
    const id = this.pageIds.size + 1;
    this.pageIds.set(page, id);
    return id;
  }

  // Timer functions for one page. `owner.guard(where, fn)` runs page code.
  attach(owner) {
    this.owners.add(owner);
    const add = (fn, ms, args, repeat) => {
      if (typeof fn !== 'function') return undefined; // string timers are not supported
      let delay = Number(ms);
      if (!Number.isFinite(delay) || delay < 0) delay = 0;
      const id = this.nextId++;
      this.timers.set(id, {
        id, owner, due: this.now() + delay, interval: repeat ? Math.max(1, delay) : null, fn, args, seq: this.seq++,
      });
      if (!this.advancing) this._arm();
      return id;
    };
    const clear = (id) => {
      const t = this.timers.get(id);
      if (t && t.owner === owner) {
        this.timers.delete(id);
        if (!this.advancing) this._arm();
      }
    };
    return {
      setTimeout: (fn, ms, ...args) => add(fn, ms, args, false),
      setInterval: (fn, ms, ...args) => add(fn, ms, args, true),
      clearTimeout: clear,
      clearInterval: clear,
      now: () => this.now(),
    };
  }

  // Drops every timer of a page (its sandbox was disposed).
  detach(owner) {
    this.owners.delete(owner);
    for (const [id, t] of this.timers) if (t.owner === owner) this.timers.delete(id);
    if (!this.advancing) this._arm();
  }

  pending() {
    return this.timers.size;
  }

  _earliest() {
    let best = null;
    for (const t of this.timers.values()) {
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }

  // One pass over the timers due now (a snapshot: timers they set run on a
  // later pass, as in a browser's event loop).
  _fireDue() {
    const now = this.now();
    const due = [...this.timers.values()].filter((t) => t.due <= now)
      .sort((a, b) => a.due - b.due || a.seq - b.seq);
    for (const t of due) {
      if (this.timers.get(t.id) !== t) continue; // cleared by an earlier one
      if (t.interval === null) {
        this.timers.delete(t.id);
      } else {
        t.due += t.interval;
        // Real time lagged far behind (a blocked event loop): no burst of catch-up runs.
        if (!this.advancing && t.due <= now) t.due = now + t.interval;
        t.seq = this.seq++;
      }
      const where = t.interval === null ? 'setTimeout callback' : 'setInterval callback';
      t.owner.guard(where, () => t.fn(...t.args));
    }
    return due.length;
  }

  _arm() {
    if (this.realTimer) {
      clearTimeout(this.realTimer);
      this.realTimer = null;
    }
    if (this.advancing) return;
    const next = this._earliest();
    if (!next) return;
    const delay = Math.min(MAX_NODE_DELAY, Math.max(0, next.due - this.now()));
    this.realTimer = setTimeout(() => {
      this.realTimer = null;
      if (this.advancing) return;
      this._fireDue();
      this._arm();
    }, delay);
  }

  // Waits until the pages' network traffic goes quiet after a timer fired.
  async _settle(activityBefore, deadline) {
    await new Promise((r) => setImmediate(r));
    if (this.activity === activityBefore && !this._busy()) return;
    for (let i = 0; i < 100 && Date.now() < deadline; i++) {
      const a = this.activity;
      await sleep(10);
      if (this.activity === a && !this._busy()) return;
    }
  }

  _busy() {
    for (const o of this.owners) if (o.requests && o.requests.size > 0) return true;
    const now = Date.now();
    for (const [key, sent] of this.awaiting) {
      if (now - sent < REPLY_WAIT_MS) return true;
      this.awaiting.delete(key); // no reply is coming (a dropped frame, a fault)
    }
    return false;
  }

  // Moves virtual time forward by `ms`, running every timer that falls due,
  // in order. Resolves when done.
  async advance(ms) {
    if (this.advancing) throw new Error('advance is already running');
    this.advancing = true;
    if (this.realTimer) {
      clearTimeout(this.realTimer);
      this.realTimer = null;
    }
    const deadline = Date.now() + this.advanceBudgetMs;
    let remaining = ms;
    let fired = 0;
    try {
      // Whatever is already due runs first, at the current virtual time.
      const before = this.activity;
      if (this._fireDue()) await this._settle(before, deadline);
      for (;;) {
        const next = this._earliest();
        const gap = next ? Math.max(0, next.due - this.now()) : Infinity;
        if (gap > remaining) break;
        if (Date.now() > deadline) {
          this.onLog(`advance: real-time budget exhausted after ${fired} timers; jumping the remaining ${remaining} ms at once`);
          break;
        }
        this.offset += gap;
        remaining -= gap;
        const a = this.activity;
        fired += this._fireDue();
        await this._settle(a, deadline);
      }
      this.offset += remaining;
      const a = this.activity;
      if (this._fireDue()) await this._settle(a, deadline);
    } finally {
      this.advancing = false;
      this._arm();
    }
    return fired;
  }

  stop() {
    if (this.realTimer) clearTimeout(this.realTimer);
    this.realTimer = null;
    this.timers.clear();
  }
}

// Source run inside a page to make its `Date` read the virtual clock.
// `__jmmNow` is removed from the global object after installation.
const INSTALL_DATE = `(function () {
  var now = globalThis.__jmmNow;
  delete globalThis.__jmmNow;
  var RealDate = Date;
  function FakeDate(a, b, c, d, e, f, g) {
    if (!new.target) return new RealDate(now()).toString();
    var args = Array.prototype.slice.call(arguments);
    if (args.length === 0) args = [now()];
    return Reflect.construct(RealDate, args, new.target);
  }
  FakeDate.prototype = RealDate.prototype;
  FakeDate.now = function () { return now(); };
  FakeDate.parse = RealDate.parse;
  FakeDate.UTC = RealDate.UTC;
  Object.defineProperty(FakeDate, 'length', { value: 7 });
  globalThis.Date = FakeDate;
})();`;

module.exports = { VirtualClock, INSTALL_DATE };
