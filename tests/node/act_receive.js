#!/usr/bin/env node
// socket.io-client 2.x logged in as alice receives what `POST /__admin/act` makes bobby do
// (docs/admin-api.md, "Act as a user").
//
// Usage: JMM_ADDRESS=http://127.0.0.1:PORT JMM_APPKEY=... JMM_SECRET=... node act_receive.js
// Prints "ok" and exits 0 when alice got bobby's msg_sync; exits 1 with a reason otherwise.

'use strict';

const crypto = require('crypto');
const http = require('http');
const io = require('socket.io-client');

const ADDRESS = process.env.JMM_ADDRESS;
const APPKEY = process.env.JMM_APPKEY;
const SECRET = process.env.JMM_SECRET;
const WAIT_MS = 10000;

if (!ADDRESS || !APPKEY || !SECRET) {
  console.error('JMM_ADDRESS, JMM_APPKEY and JMM_SECRET must be set');
  process.exit(2);
}

setTimeout(() => fail('the whole script took too long'), 50000).unref();

function fail(why) {
  console.error('FAIL: ' + why);
  process.exit(1);
}

const md5 = (s) => crypto.createHash('md5').update(s, 'utf8').digest('hex');
const events = [];
const waiters = [];

function waitFor(pred, what) {
  const found = events.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out waiting for ' + what)), WAIT_MS);
    waiters.push({ pred, resolve: (e) => { clearTimeout(timer); resolve(e); } });
  });
}

function request(socket, event, payload) {
  const rid = crypto.randomInt(1, 2147483647);
  socket.emit(event, Object.assign({ rid }, payload));
  return waitFor((e) => e.name === event && e.data && e.data.rid === rid, event + ' response');
}

function act(body) {
  const url = new URL('/__admin/act', ADDRESS);
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function main() {
  const socket = io(ADDRESS, { transports: ['websocket'], reconnection: false, forceNew: true });
  socket.onevent = (packet) => {
    const [name, data] = packet.data;
    const e = { name, data };
    events.push(e);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].pred(e)) waiters.splice(i, 1)[0].resolve(e);
    }
  };
  await new Promise((resolve, reject) => {
    socket.on('connect', resolve);
    socket.on('connect_error', (e) => reject(new Error('connect: ' + e)));
  });
  const timestamp = String(Date.now());
  const random_str = crypto.randomBytes(10).toString('hex');
  const signature = md5(`appkey=${APPKEY}&timestamp=${timestamp}&random_str=${random_str}&key=${SECRET}`);
  const init = await request(socket, 'c_init', { appkey: APPKEY, random_str, timestamp, signature, flag: 0 });
  if (init.data.code) fail('c_init: ' + JSON.stringify(init.data));
  const login = await request(socket, 'login', { username: 'alice', password: md5('pw'), version: '2.5.0' });
  if (login.data.code) fail('login: ' + JSON.stringify(login.data));
  const text = 'from act ' + random_str;
  const answer = await act({ as: 'bobby', appkey: APPKEY, method: 'sendSingleMsg',
    args: { target_username: 'alice', content: text } });
  const parsed = JSON.parse(answer.body);
  if (answer.status !== 200 || parsed.callback !== 'success') fail('act: ' + answer.body);
  const sync = await waitFor((e) => e.name === 'msg_sync' && JSON.stringify(e.data).includes(text), 'msg_sync');
  const msg = sync.data.messages[0];
  if (msg.content.from_id !== 'bobby' || msg.msg_id !== parsed.data.msg_id) {
    fail('unexpected msg_sync ' + JSON.stringify(sync.data));
  }
  socket.close();
  console.log('ok');
  process.exit(0);
}

main().catch((e) => fail(e.message));
