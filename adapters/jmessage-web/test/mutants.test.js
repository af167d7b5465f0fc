'use strict';
// Unit tests of the SDK mutants (lib/mutants.js): each hook changes what it says it
// changes, and the page's timers see a timer mutant's delay (no SDK needed).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const mutants = require('../lib/mutants');
const { Sandbox } = require('../lib/sandbox');
const { VirtualClock } = require('../lib/clock');

const frame = (ev, p) => '42' + JSON.stringify([ev, p]);
const payload = (f) => JSON.parse(f.slice(2))[1];

test('every mutant has a name, an area and a description; unknown names throw', () => {
  const names = new Set(mutants.MUTANTS.map((m) => m.name));
  assert.equal(names.size, mutants.MUTANTS.length);
  for (const m of mutants.MUTANTS) assert.ok(m.area && m.description, m.name);
  assert.equal(mutants.list().trim().split('\n').length, mutants.MUTANTS.length);
  assert.throws(() => mutants.find('no-such'), /unknown mutant/);
  assert.equal(mutants.find(''), null);
});

test('dropping and rewriting outgoing events', () => {
  const recv = frame('msg_recv_v2', { msg_id: 7, msg_type: 3, from_uid: 9, rid: 1 });
  assert.equal(mutants.find('no-msg-recv').outgoing(recv, {}), null);
  assert.deepEqual(payload(mutants.find('msg-recv-fromuid').outgoing(recv, {})), { msg_id: 7, msg_type: 3, fromUid: 9, rid: 1 });
  assert.equal(payload(mutants.find('msg-recv-wrong-ids').outgoing(recv, {})).msg_id, 8);
  const other = frame('login', { username: 'a', rid: 2 });
  assert.equal(mutants.find('no-msg-recv').outgoing(other, {}), other);
  const msg = frame('s_across_single_text', { target_name: 'B', content: { from_id: 'a', target_name: 'B', msg_body: { text: 'hi' } }, rid: 3 });
  const camel = payload(mutants.find('target-name-camel').outgoing(msg, {}));
  assert.equal(camel.targetName, 'B');
  assert.equal(camel.content.targetName, 'B');
  assert.deepEqual(payload(mutants.find('msg-body-text-dropped').outgoing(msg, {})).content.msg_body, {});
  assert.equal(payload(mutants.find('gid-as-string').outgoing(frame('exit_group', { gid: 5, rid: 4 }), {})).gid, '5');
  assert.equal(mutants.find('no-pings').outgoing('2', {}), null);
});

test('rid mutants rewrite the wire and map answers back', () => {
  const m = mutants.find('renewed-rid');
  const st = {};
  const f = frame('get_groups_list', { rid: 11 });
  assert.equal(m.outgoing(f, st), f, 'the first transmission keeps its rid');
  const resend = payload(m.outgoing(f, st)).rid;
  assert.notEqual(resend, 11);
  assert.equal(payload(m.incoming(frame('ack', { rid: resend }), st)).rid, 11);
  const r = mutants.find('reused-rid');
  const s2 = {};
  assert.equal(payload(r.outgoing(frame('a', { rid: 1 }), s2)).rid, 1);
  const second = frame('b', { rid: 2 });
  assert.equal(payload(r.outgoing(second, s2)).rid, 1, 'a new request reuses rid 1');
  assert.equal(payload(r.outgoing(second, s2)).rid, 1, 'its resend too');
  assert.equal(payload(r.incoming(frame('b', { rid: 1, code: 0 }), s2)).rid, 2);
  const n = mutants.find('three-sends');
  const s3 = {};
  const sent = [1, 2, 3, 4, 5].map(() => n.outgoing(f, s3));
  assert.deepEqual(sent.map((x) => x !== null), [true, true, true, false, false]);
});

test('timer mutants change the delays the page asks for', () => {
  const clock = new VirtualClock();
  const sb = new Sandbox(__filename, { name: 't', clock, mutant: mutants.find('ack-timer-1s'), console });
  const before = clock.now();
  sb.window.setTimeout(() => {}, 5000);
  sb.window.setTimeout(() => {}, 30000);
  const after = clock.now();
  // The due times the page's timers got (read from the clock's queue, no waiting).
  const dues = [...clock.timers.values()].map((t) => t.due).sort((a, b) => a - b);
  assert.equal(dues.length, 2);
  assert.ok(dues[0] >= before + 1000 && dues[0] <= after + 1000, `5000 became 1000: ${dues[0] - before}`);
  assert.ok(dues[1] >= before + 30000 && dues[1] <= after + 30000, 'other delays unchanged');
  sb.dispose();
  clock.stop();
});

test('listener and callback mutants', () => {
  assert.equal(mutants.find('swapped-callbacks').callback('onSuccess'), 'onFail');
  assert.equal(mutants.find('swapped-callbacks').callback('onAck'), 'onAck');
  const d = mutants.find('drops-first-message');
  const st = {};
  assert.deepEqual([d.listener('onMsgReceive', st), d.listener('onMsgReceive', st), d.listener('onEventNotification', st)], [0, 1, 1]);
  assert.equal(mutants.find('duplicate-deliveries').listener('onMsgReceive', {}), 2);
});
