'use strict';
// Mutants of the official SDK (docs/driver-protocol.md, "Mutants"): deliberate bugs
// made in memory, for `jmessage-mock mutants --client 'node driver.js'`. The SDK file is
// never changed: the driver breaks the SDK at its socket layer (the page's WebSocket,
// which carries the SDK's Socket.IO frames: an outgoing event is dropped, renamed or
// rewritten, a rid reused or renewed, a resend suppressed), at its timers (the delay the
// SDK passes to setTimeout), or where the driver hands its callbacks and listener calls
// to the runner (swapped, duplicated, dropped).
//
// A mutant is { name, area, description } plus hooks used by sandbox.js / driver.js:
//   outgoing(frame, state) -> frame | null (null: not sent)
//   incoming(frame, state) -> frame        (rids mapped back for reused/renewed rids)
//   delay(ms) -> ms                        (the page's setTimeout/setInterval)
//   callback(name) -> name | null, listener(name, state) -> count

function eventFrame(frame) {
  if (typeof frame !== 'string' || !frame.startsWith('42')) return null;
  try {
    const v = JSON.parse(frame.slice(2));
    if (Array.isArray(v) && typeof v[0] === 'string') return v;
  } catch (_) { /* not an event */ }
  return null;
}

const encode = (v) => '42' + JSON.stringify(v);

// Rewrites the payload of outgoing `events` with fn(payload, event) (return false: drop).
function rewrite(events, fn) {
  return (frame) => {
    const v = eventFrame(frame);
    if (!v || !events.includes(v[0]) || !v[1] || typeof v[1] !== 'object') return frame;
    if (fn(v[1], v[0]) === false) return null;
    return encode(v);
  };
}

const drop = (events) => rewrite(events, () => false);

function rename(o, from, to) {
  if (!o || typeof o !== 'object' || !(from in o)) return;
  const entries = Object.entries(o).map(([k, v]) => [k === from ? to : k, v]);
  for (const k of Object.keys(o)) delete o[k];
  for (const [k, v] of entries) o[k] = v;
}

function bump(v) {
  if (typeof v === 'number') return v + 1;
  if (typeof v === 'string' && /^\d+$/.test(v)) return String(Number(v) + 1);
  return v;
}

const MESSAGES = ['s_across_single_text', 'send_group_msg', 'send_room_msg'];

// Counts transmissions of identical frames (a resend repeats its frame exactly).
function transmissions(state, frame) {
  state.sent = state.sent || new Map();
  const n = (state.sent.get(frame) || 0) + 1;
  state.sent.set(frame, n);
  return n;
}

function withRid(frame, fn) {
  const v = eventFrame(frame);
  if (!v || !v[1] || typeof v[1] !== 'object' || v[1].rid === undefined) return null;
  return fn(v);
}

// Incoming acks and responses carrying a rewritten rid get the SDK's own rid back.
function mapBack(frame, state) {
  if (!state.ridMap) return frame;
  return withRid(frame, (v) => {
    const orig = state.ridMap.get(String(v[1].rid));
    if (orig === undefined) return frame;
    v[1].rid = orig;
    return encode(v);
  }) || frame;
}

const MUTANTS = [
  {
    name: 'reused-rid', area: 'envelope', description: 'a new request goes out with the rid of the previous request',
    outgoing: (frame, state) => {
      state.byFrame = state.byFrame || new Map();
      if (state.byFrame.has(frame)) return state.byFrame.get(frame); // a resend: same wire rid
      const out = withRid(frame, (v) => {
        const rid = v[1].rid;
        state.ridMap = state.ridMap || new Map();
        const wire = state.lastRid === undefined ? rid : state.lastRid;
        state.lastRid = wire;
        state.ridMap.set(String(wire), rid);
        v[1].rid = wire;
        return encode(v);
      }) || frame;
      if (out !== frame) state.byFrame.set(frame, out);
      return out;
    },
    incoming: mapBack,
  },
  {
    name: 'renewed-rid', area: 'envelope', description: 'a resend carries a new rid',
    outgoing: (frame, state) => withRid(frame, (v) => {
      if (transmissions(state, frame) === 1) return frame;
      state.ridMap = state.ridMap || new Map();
      state.next = (state.next || 1900000000) + 1;
      state.ridMap.set(String(state.next), v[1].rid);
      v[1].rid = state.next;
      return encode(v);
    }) || frame,
    incoming: mapBack,
  },
  {
    name: 'no-resend', area: 'envelope', description: 'a request is never re-sent (resends are dropped)',
    outgoing: (frame, state) => (eventFrame(frame) && transmissions(state, frame) > 1 ? null : frame),
  },
  {
    name: 'three-sends', area: 'envelope', description: 'at most 3 transmissions of a request instead of 5',
    outgoing: (frame, state) => (eventFrame(frame) && transmissions(state, frame) > 3 ? null : frame),
  },
  { name: 'ack-timer-1s', area: 'timers', description: 'the 5 s ack timer is 1 s', delay: (ms) => (ms === 5000 ? 1000 : ms) },
  { name: 'response-timer-10s', area: 'timers', description: 'the 30 s response timer is 10 s', delay: (ms) => (ms === 30000 ? 10000 : ms) },
  {
    name: 'target-name-camel', area: 'messages', description: 'messages send `targetName` instead of `target_name`',
    outgoing: rewrite(MESSAGES, (p) => { rename(p, 'target_name', 'targetName'); rename(p.content, 'target_name', 'targetName'); }),
  },
  {
    name: 'msg-body-text-dropped', area: 'messages', description: 'text messages lose `msg_body.text`',
    outgoing: rewrite(MESSAGES, (p) => { if (p.content && p.content.msg_body) delete p.content.msg_body.text; }),
  },
  {
    name: 'from-id-wrong', area: 'messages', description: 'messages carry a wrong `from_id`',
    outgoing: rewrite(MESSAGES, (p) => { if (p.content && typeof p.content.from_id === 'string') p.content.from_id += 'x'; }),
  },
  { name: 'no-msg-recv', area: 'sync', description: 'msg_sync is never answered with msg_recv_v2', outgoing: drop(['msg_recv_v2']) },
  {
    name: 'msg-recv-fromuid', area: 'sync', description: 'msg_recv_v2 sends `fromUid` instead of `from_uid`',
    outgoing: rewrite(['msg_recv_v2'], (p) => rename(p, 'from_uid', 'fromUid')),
  },
  {
    name: 'msg-recv-wrong-ids', area: 'sync', description: 'msg_recv_v2 names msg_id + 1',
    outgoing: rewrite(['msg_recv_v2'], (p) => { p.msg_id = bump(p.msg_id); }),
  },
  { name: 'no-sync-conversation-ack', area: 'sync', description: 'sync_conversation_ack is never sent', outgoing: drop(['sync_conversation_ack']) },
  { name: 'no-sync-event-ack', area: 'sync', description: 'sync_event_ack is never sent', outgoing: drop(['sync_event_ack']) },
  { name: 'no-sync-receipt-ack', area: 'sync', description: 'sync_receipt_ack is never sent', outgoing: drop(['sync_receipt_ack']) },
  {
    name: 'made-up-sync-key', area: 'sync', description: 'sync_check sends a made-up `sync_key`',
    outgoing: rewrite(['sync_check'], (p) => { p.sync_key = Number(p.sync_key || 0) + 7777; }),
  },
  {
    name: 'receipt-wrong-msg', area: 'receipts', description: 'receipt_report names msg_id + 1',
    outgoing: rewrite(['receipt_report'], (p) => {
      for (const s of p.sessions || []) if (Array.isArray(s.msg_ids)) s.msg_ids = s.msg_ids.map(bump);
    }),
  },
  {
    name: 'gid-as-string', area: 'groups', description: 'a numeric `gid` is sent as a string',
    outgoing: (frame) => {
      const v = eventFrame(frame);
      if (!v || !v[1] || typeof v[1].gid !== 'number') return frame;
      v[1].gid = String(v[1].gid);
      return encode(v);
    },
  },
  { name: 'no-event-echo', area: 'events', description: 'event_notification is never echoed', outgoing: drop(['event_notification']) },
  { name: 'no-pings', area: 'timers', description: 'Engine.IO pings are never sent', outgoing: (frame) => (frame === '2' ? null : frame) },
  {
    name: 'swapped-callbacks', area: 'listeners', description: 'onSuccess and onFail are swapped',
    callback: (name) => ({ onSuccess: 'onFail', onFail: 'onSuccess' }[name] || name),
  },
  {
    name: 'duplicate-deliveries', area: 'listeners', description: 'every listener call is delivered twice',
    listener: () => 2,
  },
  {
    name: 'drops-first-message', area: 'listeners', description: 'the first onMsgReceive call is lost',
    listener: (name, state) => {
      if (name !== 'onMsgReceive' || state.droppedFirst) return 1;
      state.droppedFirst = true;
      return 0;
    },
  },
];

function find(name) {
  if (!name) return null;
  const m = MUTANTS.find((x) => x.name === name);
  if (!m) throw new Error(`unknown mutant ${JSON.stringify(name)} (see --list-mutants)`);
  return m;
}

function list() {
  return MUTANTS.map((m) => `${m.name}\t${m.area}\t${m.description}`).join('\n') + '\n';
}

module.exports = { MUTANTS, find, list, eventFrame };
