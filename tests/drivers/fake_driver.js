#!/usr/bin/env node
// A fake driver for tests of the runner's driver-protocol handling (docs/driver-protocol.md).
// FAKE_MODE selects a behaviour: good | badjson | unknownseq | crash | hang | nohello | protocol2 | refuse
// | clock (fake_timers: a call's onTimeout fires once `advance` has moved 30 s of virtual time)
'use strict';
const readline = require('readline');
const mode = process.env.FAKE_MODE || 'good';
if (mode === 'nohello') {
  process.stderr.write('fake driver: giving up at once\n');
  process.exit(3);
}
let virtual = 0;
const waiting = [];
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  switch (m.cmd) {
    case 'hello':
      return out({
        seq: m.seq, ok: true, driver: 'fake', version: '0.0.1', build: 'fake-build-1', protocol: mode === 'protocol2' ? 2 : 1,
        capabilities: mode === 'clock' ? ['multi_instance', 'fake_timers'] : ['multi_instance'],
        // Declares two guide names of the runner's `api` list missing, as a 2.4.0 driver would.
        unsupported: (m.api || []).filter((n) => n === 'transPlatMsg' || n === 'onRoomMsg'),
      });
    case 'create':
      if (mode === 'badjson') return process.stdout.write('{this is not json\n');
      if (mode === 'unknownseq') return out({ seq: m.seq + 100, ok: true });
      return out({ seq: m.seq, ok: true });
    case 'call':
      if (mode === 'crash') { process.stderr.write('fake driver: crashing on purpose\n'); process.exit(7); }
      if (mode === 'hang') return;
      if (mode === 'refuse') return out({ seq: m.seq, ok: false, error: `no method ${m.method}` });
      if (m.method === 'explode' || m.method === 'getUserInfo') return out({ seq: m.seq, ok: false, thrown: 'TypeError: boom' });
      out({ seq: m.seq, ok: true, returned: null });
      if (mode === 'clock') { waiting.push({ call: m.seq, due: virtual + 30000 }); return; }
      setTimeout(() => out({ event: 'callback', call: m.seq, name: 'onSuccess', args: [{ code: 0, echo: m.args }] }), 5);
      return;
    case 'listen':
      out({ seq: m.seq, ok: true });
      setTimeout(() => out({ event: 'listener', instance: m.instance, listener: m.listener, args: [{ hello: 'world' }] }), 5);
      return;
    case 'advance':
      if (mode !== 'clock') return out({ seq: m.seq, ok: false, error: `unknown cmd ${m.cmd}` });
      virtual += m.ms;
      while (waiting.length && waiting[0].due <= virtual) {
        const w = waiting.shift();
        out({ event: 'callback', call: w.call, name: 'onTimeout', args: [{ response_timeout: true, virtual }] });
      }
      return out({ seq: m.seq, ok: true });
    case 'shutdown':
      out({ seq: m.seq, ok: true });
      return process.exit(0);
    default:
      return out({ seq: m.seq, ok: false, error: `unknown cmd ${m.cmd}` });
  }
});
