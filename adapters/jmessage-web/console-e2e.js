#!/usr/bin/env node
'use strict';
// The browser console (/__console/) end to end, in headless Chromium:
//  1. open the console (with the admin token in the URL fragment when one is set);
//  2. log alice in with socket.io-client@2 (Node) and see her login in the Wire view;
//  3. act as bobby from the People view (sendSingleMsg to alice): alice receives it;
//  4. switch a fault from the Network view (alice's sends answered with 880209): alice's
//     next send fails with that code, the Wire view marks the frame; delete the rule from
//     the view: the next send passes;
//     advance the virtual clock from the Network view;
//  5. export the session from the Record view and write it to JMM_RECORD_OUT.
// No console error (a CSP violation included) may appear on the page.
//
// With JMM_MODE=proxy, JMM_ADDRESS is a `jmessage-mock proxy` (alice and bobby exist on its
// upstream): the People tab and the clock, reset and scenario controls must be hidden,
// steps 3 and the clock are left out, and alice is offered in the Network view's user list
// because the Wire view saw her.
//
// Usage: JMM_ADDRESS=http://127.0.0.1:PORT JMM_APPKEY=... JMM_SECRET=... \
//        [JMM_PASSWORD=alice's password, default pw] [JMM_ADMIN_TOKEN=...] [JMM_RECORD_OUT=file.yaml] [JMM_SHOTS=dir] \
//        [JMM_CHROMIUM=/usr/bin/chromium] [JMM_MODE=serve|proxy] node console-e2e.js
// Prints "ok <step>" per step; exits 0 when all pass, 1 with "FAIL: reason" otherwise.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { launchChromium, withLimit } = require('./lib/browser');

const ADDRESS = process.env.JMM_ADDRESS;
const APPKEY = process.env.JMM_APPKEY;
const SECRET = process.env.JMM_SECRET;
const PASSWORD = process.env.JMM_PASSWORD || 'pw'; // alice's
const TOKEN = process.env.JMM_ADMIN_TOKEN || '';
const CHROMIUM = process.env.JMM_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.JMM_SHOTS || '';
const RECORD_OUT = process.env.JMM_RECORD_OUT || '';
const PROXY = process.env.JMM_MODE === 'proxy';
const SOCKETIO = process.env.JMM_SOCKETIO_CLIENT ||
  path.join(__dirname, '../../tests/node/node_modules/socket.io-client');
const WAIT_MS = 10000; // every wait for the page or the client
const GLOBAL_MS = 90000; // the whole script

if (!ADDRESS || !APPKEY || !SECRET) {
  console.error('JMM_ADDRESS, JMM_APPKEY and JMM_SECRET must be set');
  process.exit(2);
}
setTimeout(() => fail('the whole script took longer than ' + GLOBAL_MS + ' ms'), GLOBAL_MS).unref();

let browser = null;
function fail(why) {
  console.error('FAIL: ' + why);
  if (browser) browser.close().catch(() => {});
  process.exit(1);
}

const md5 = (s) => crypto.createHash('md5').update(s, 'utf8').digest('hex');

// ------------------------------------------------------------ alice, a socket.io client

function client() {
  const io = require(SOCKETIO);
  const socket = io(ADDRESS, { transports: ['websocket'], reconnection: false, forceNew: true });
  const events = [];
  const waiters = [];
  socket.onevent = (packet) => {
    const [name, data] = packet.data;
    const e = { name, data };
    events.push(e);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].pred(e)) waiters.splice(i, 1)[0].resolve(e);
    }
  };
  const waitFor = (pred, what) => {
    const found = events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('alice: timed out waiting for ' + what)), WAIT_MS);
      waiters.push({ pred, resolve: (e) => { clearTimeout(timer); resolve(e); } });
    });
  };
  const request = (event, payload) => {
    const rid = crypto.randomInt(1, 2147483647);
    socket.emit(event, Object.assign({ rid }, payload));
    return waitFor((e) => e.name === event && e.data && e.data.rid === rid, event + ' response');
  };
  const connected = new Promise((resolve, reject) => {
    socket.on('connect', resolve);
    socket.on('connect_error', (e) => reject(new Error('connect: ' + e)));
  });
  return { socket, waitFor, request, connected };
}

async function logIn(alice) {
  await alice.connected;
  const timestamp = String(Date.now());
  const random_str = crypto.randomBytes(10).toString('hex');
  const signature = md5(`appkey=${APPKEY}&timestamp=${timestamp}&random_str=${random_str}&key=${SECRET}`);
  const init = await alice.request('c_init', { appkey: APPKEY, random_str, timestamp, signature, flag: 0 });
  if (init.data.code) throw new Error('c_init: ' + JSON.stringify(init.data));
  const login = await alice.request('login', { username: 'alice', password: md5(PASSWORD), is_md5: true, version: '2.5.0' });
  if (login.data.code) throw new Error('login: ' + JSON.stringify(login.data));
}

function sendText(alice, text) {
  return alice.request('s_across_single_text', {
    target_id: 'bobby', appkey: APPKEY, no_offline: false, no_notification: false,
    content: { version: 1, target_type: 'single', from_platform: 'web', target_id: 'bobby', from_id: 'alice',
      create_time: Date.now(), msg_type: 'text', msg_body: { text } },
  });
}

// ------------------------------------------------------------------------- the page

async function shot(page, name) {
  if (!SHOTS) return;
  await page.screenshot({ path: path.join(SHOTS, 'console-' + name + '.png') });
}

async function tab(page, view) {
  await page.click(`#tabs button[data-view="${view}"]`);
  await page.waitForSelector('#view-' + view + ':not([hidden])', { timeout: WAIT_MS });
}

async function openConsole() {
  browser = await launchChromium(CHROMIUM);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  const url = ADDRESS + '/__console/' + (TOKEN ? '#token=' + encodeURIComponent(TOKEN) : '');
  await withLimit(page.goto(url), WAIT_MS, 'open the console');
  await page.waitForSelector('body[data-ready="1"]', { timeout: WAIT_MS });
  if (page.url().includes('token=')) throw new Error('the token stayed in the address bar: ' + page.url());
  return { page, problems };
}

async function actFromConsole(page, text) {
  await tab(page, 'people');
  await page.waitForSelector('#act-as option[value="bobby"]', { state: 'attached', timeout: WAIT_MS });
  await page.selectOption('#act-as', 'bobby');
  await page.click('#act-quick button[data-method="sendSingleMsg"]');
  await page.fill('#act-args input[data-arg="target_username"]', 'alice');
  await page.fill('#act-args input[data-arg="content"]', text);
  await page.click('#act-send');
  await page.waitForFunction(() => /"callback"/.test(document.getElementById('act-result').textContent), null, { timeout: WAIT_MS });
  const result = JSON.parse(await page.textContent('#act-result'));
  if (result.callback !== 'success') throw new Error('act: ' + JSON.stringify(result));
  return result;
}

async function addFault(page) {
  await tab(page, 'network');
  await page.waitForSelector('#fault-user option[value="alice"]', { state: 'attached', timeout: WAIT_MS });
  await page.selectOption('#fault-action', 'error');
  await page.fill('#fault-value', '{"error": 880209}');
  await page.selectOption('#fault-user', 'alice');
  await page.fill('#fault-events', 's_across_single_text');
  await page.click('#fault-add');
  await page.waitForFunction(() => /console-error/.test(document.getElementById('fault-rules').textContent), null, { timeout: WAIT_MS });
}

async function advanceClock(page) {
  await tab(page, 'network');
  await page.fill('#clock-ms', '60000');
  await page.click('#clock-form button');
  await page.waitForFunction(() => /offset 60000 ms/.test(document.getElementById('clock-now').textContent), null, { timeout: WAIT_MS });
}

async function deleteFault(page) {
  await tab(page, 'network');
  await page.click('#fault-rules button:has-text("delete")');
  await page.waitForFunction(() => !/console-error/.test(document.getElementById('fault-rules').textContent), null, { timeout: WAIT_MS });
}

async function exportRecord(page) {
  await tab(page, 'record');
  await page.click('#record-export');
  await page.waitForFunction(() => /^steps:/m.test(document.getElementById('record-text').textContent), null, { timeout: WAIT_MS });
  return page.textContent('#record-text');
}

// On a proxy: only Wire, Network and Record, and only the presets and fault controls.
async function checkProxySite(page) {
  const shown = await page.$$eval('#tabs button', (bs) => bs.filter((b) => !b.hidden).map((b) => b.dataset.view));
  if (shown.join(',') !== 'wire,network,record') throw new Error('proxy tabs: ' + shown.join(','));
  if (!(await page.isHidden('#view-people'))) throw new Error('the People view shows on a proxy');
  await tab(page, 'network');
  for (const id of ['#clock-form', '#reset', '#scenario-form']) {
    if (!(await page.isHidden(id))) throw new Error(id + ' shows on a proxy');
  }
  if (await page.isHidden('#net-presets')) throw new Error('the presets are hidden on a proxy');
  if (await page.isHidden('#fault-form')) throw new Error('the fault form is hidden on a proxy');
  await tab(page, 'wire');
  const mode = await page.getAttribute('body', 'data-mode');
  if (mode !== 'proxy') throw new Error('body data-mode ' + mode);
}

async function actAsBobby(page, alice) {
  const text = 'from the console ' + crypto.randomBytes(4).toString('hex');
  const acted = await actFromConsole(page, text);
  const sync = await alice.waitFor((e) => e.name === 'msg_sync' && JSON.stringify(e.data).includes(text), 'bobby\'s msg_sync');
  if (sync.data.messages[0].content.from_id !== 'bobby' || sync.data.messages[0].msg_id !== acted.data.msg_id) {
    throw new Error('unexpected msg_sync ' + JSON.stringify(sync.data));
  }
  await shot(page, 'people');
  console.log('ok acting as bobby from the console reached alice');
}

// ------------------------------------------------------------------------- the steps

async function main() {
  const { page, problems } = await openConsole();
  if (PROXY) await checkProxySite(page);
  console.log('ok console opened' + (PROXY ? ' (proxy: people, clock, reset, scenario hidden)' : ''));
  const alice = client();
  await logIn(alice);
  await page.waitForSelector('#wire-rows tr[data-event="login"]', { timeout: WAIT_MS });
  console.log('ok wire view shows alice logging in');

  if (!PROXY) await actAsBobby(page, alice);

  await addFault(page);
  const refused = await sendText(alice, 'refused by the fault');
  if (refused.data.code !== 880209) throw new Error('with the fault on: ' + JSON.stringify(refused.data));
  await shot(page, 'network');
  await tab(page, 'wire');
  await page.waitForSelector('#wire-rows tr.faulted[data-event="s_across_single_text"]', { timeout: WAIT_MS });
  await page.click('#wire-rows tr.faulted[data-event="s_across_single_text"]');
  const detail = await page.textContent('#wire-rows tr.detail pre');
  if (!detail.includes('"text": "refused by the fault"')) throw new Error('the expanded frame is not pretty JSON: ' + detail);
  await shot(page, 'wire');
  await deleteFault(page);
  const passed = await sendText(alice, 'after the fault');
  if (passed.data.code !== 0) throw new Error('with the fault off: ' + JSON.stringify(passed.data));
  console.log('ok a fault switched in the console reached alice and the wire view');
  if (!PROXY) {
    await advanceClock(page);
    console.log('ok the virtual clock moved from the console');
  }

  const yaml = await exportRecord(page);
  if (!yaml.includes('"login"') || !yaml.includes('after the fault')) throw new Error('recording misses alice:\n' + yaml);
  if (yaml.includes('refused by the fault')) throw new Error('the faulted request was recorded:\n' + yaml);
  if (RECORD_OUT) fs.writeFileSync(RECORD_OUT, yaml);
  await shot(page, 'record');
  console.log('ok record view exported the session');

  alice.socket.close();
  if (problems.length) throw new Error('page errors: ' + problems.join(' | '));
  await browser.close();
  console.log('all passed');
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
