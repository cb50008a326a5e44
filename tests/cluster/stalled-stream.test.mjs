// A stream's client that stops reading, through HAProxy (make cluster). To HAProxy an SSE
// answer (its body ends with the connection) is a tunnel, as an upgraded WebSocket is, so
// `timeout tunnel` is what bounds both; it counts from the last byte HAProxy moved, so once
// the events have filled every buffer on the way HAProxy lets the client go that long after
// its last write, and with it its connection to the broker, which then ends the stream.
// With the hour it had, HAProxy kept such a stream an hour, with about 4 MB queued towards
// the client and as much unread from the broker, whether or not the broker had dropped it.
// The bound is scripts/stream-idle.sh's, as for lighttpd: here STREAM_IDLE_S 6 with the
// broker's heartbeat and long-poll wait at 1 s (so 6 s: twice 1 s and 2 s is less), and a
// quiet stream, which only the heartbeat keeps busy, stays open well past it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startCluster } from '../lib/cluster.mjs';
import { ROOT, sleep, waitFor } from '../lib/procs.mjs';

const IDLE_S = 6;
let c;

before(async () => {
  c = await startCluster({
    redis: 'single',
    env: { STREAM_IDLE_S: String(IDLE_S), BROKER_HEARTBEAT_MS: '1000', BROKER_POLL_TIMEOUT_MS: '1000',
      REGISTER_RATE_LIMIT: '100000' },
  });
});

after(async () => {
  if (c) {
    const left = await c.stop();
    assert.deepEqual(left, [], 'nothing of the layout is left running');
  }
});

async function api(method, path, token, body) {
  const r = await fetch(c.base + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20000),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, text, json };
}

// a user, a room of theirs and a stream ticket for it
async function roomAndTicket() {
  const reg = await api('POST', '/api/auth/register', undefined,
    { username: `st${randomBytes(5).toString('hex')}`, password: `pw-${randomBytes(6).toString('hex')}` });
  assert.equal(reg.status, 201, reg.text);
  const token = reg.json.token;
  const room = await api('POST', '/api/rooms', token, { name: 'stalled', language: 'python' });
  assert.equal(room.status, 201, room.text);
  const tk = await api('POST', `/api/rooms/${room.json.room.id}/stream-ticket`, token);
  assert.equal(tk.status, 200, tk.text);
  return { token, room: room.json.room.id, ticket: encodeURIComponent(tk.json.ticket), rev: 0 };
}

// about 20 MB of events: more than the kernel's buffers between HAProxy and the client and
// between the broker and HAProxy, HAProxy's own buffer and the broker's bound for one
// stream hold together
async function flood(r) {
  const big = 'x'.repeat(500000);
  for (let i = 0; i < 20; i++) {
    const ins = await api('POST', `/api/rooms/${r.room}/operations`, r.token, { revision: r.rev++, ops: [big] });
    assert.equal(ins.status, 200, ins.text);
    const del = await api('POST', `/api/rooms/${r.room}/operations`, r.token, { revision: r.rev++, ops: [-big.length] });
    assert.equal(del.status, 200, del.text);
  }
}

// HAProxy's end of the connection from our port `local`, if established
const established = (local) => execFileSync('ss',
  ['-tnH', 'state', 'established', `( sport = :${c.port} and dport = :${local} )`], { encoding: 'utf8' }).trim();

// the streams a broker holds now (its /events/health, asked directly)
async function brokerClients(name) {
  const r = await fetch(`http://127.0.0.1:${c.proc(name).ports[0]}/events/health`, { signal: AbortSignal.timeout(5000) });
  return (await r.json()).clients;
}

// A raw connection through HAProxy that sends `request`, reads the answer's head and then
// nothing more; resolves to the socket and the head.
function stalled(request) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(c.port, '127.0.0.1');
    let head = '';
    sock.on('error', reject);
    sock.on('data', (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      sock.removeAllListeners('data');
      sock.pause(); // and never reads again
      sock.removeAllListeners('error');
      sock.on('error', () => {});
      resolve({ sock, head: head.slice(0, head.indexOf('\r\n\r\n')) });
    });
    sock.write(request);
  });
}

async function letGo(t, r, request, status) {
  const { sock, head } = await stalled(request);
  t.after(() => sock.destroy());
  assert.match(head, status, head);
  const broker = /\r\nX-Served-By: (broker-\d+)/i.exec(head)?.[1];
  assert.ok(broker, `the broker that took the stream is named: ${head}`);
  assert.ok(established(sock.localPort), 'the stream is open at HAProxy');
  assert.equal(await brokerClients(broker), 1, `${broker} holds the stream`);
  await flood(r);
  const t0 = Date.now();
  // HAProxy's writes to us stopped once the buffers were full; IDLE_S on it closes its end
  // and its connection to the broker
  await waitFor(() => !established(sock.localPort),
    { what: 'HAProxy to close the stalled stream', timeout: (IDLE_S + 24) * 1000, interval: 250 });
  console.log(`# HAProxy let the stalled client go ${Date.now() - t0} ms after the last event was sent`);
  await waitFor(async () => (await brokerClients(broker)) === 0,
    { what: `${broker} to end the stream`, timeout: 10000, interval: 250 });
}

test('HAProxy lets an SSE client that takes no bytes go after the stream bound, and the broker ends its stream', async (t) => {
  const r = await roomAndTicket();
  await letGo(t, r, `GET /events/rooms/${r.room}?ticket=${r.ticket} HTTP/1.1\r\nHost: 127.0.0.1:${c.port}\r\n\r\n`,
    /^HTTP\/1\.1 200 /);
});

test('HAProxy lets a WebSocket client that takes no bytes go after the stream bound, and the broker ends its stream', async (t) => {
  const r = await roomAndTicket();
  await letGo(t, r, `GET /events/rooms/${r.room}/ws?ticket=${r.ticket} HTTP/1.1\r\nHost: 127.0.0.1:${c.port}\r\n`
    + 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
    + 'Sec-WebSocket-Version: 13\r\n\r\n', /^HTTP\/1\.1 101 /);
});

// Quiet but healthy: an SSE stream and a WebSocket that read everything, in a room where
// nothing happens for three times the bound, stay open on the heartbeat alone and then get
// the next event.
test('quiet streams through HAProxy outlast the stream bound on the broker\'s heartbeat', async (t) => {
  const r = await roomAndTicket();
  let sse = '';
  let sseClosed = false;
  const sock = net.connect(c.port, '127.0.0.1');
  t.after(() => sock.destroy());
  sock.on('data', (d) => { sse += d.toString('latin1'); });
  sock.on('close', () => { sseClosed = true; });
  sock.on('error', () => {});
  sock.write(`GET /events/rooms/${r.room}?ticket=${r.ticket} HTTP/1.1\r\nHost: 127.0.0.1:${c.port}\r\n\r\n`);
  const ws = new WebSocket(`ws://127.0.0.1:${c.port}/events/rooms/${r.room}/ws?ticket=${r.ticket}`);
  t.after(() => ws.terminate());
  let wsText = '';
  let wsClosed = false;
  ws.on('message', (m) => { wsText += m.toString(); });
  ws.on('close', () => { wsClosed = true; });
  ws.on('error', () => {});
  await waitFor(() => sse.includes(': connected') && ws.readyState === WebSocket.OPEN,
    { what: 'both streams open', timeout: 10000 });
  assert.match(sse, /^HTTP\/1\.1 200 /);
  const pingsBefore = sse.split(': ping').length;
  await sleep(3 * IDLE_S * 1000);
  assert.ok(!sseClosed && !wsClosed, `the quiet streams are open after ${3 * IDLE_S} s (SSE closed: ${sseClosed}, WebSocket closed: ${wsClosed})`);
  assert.ok(sse.split(': ping').length - pingsBefore >= 3, 'the SSE stream got the broker\'s heartbeat meanwhile');
  const op = await api('POST', `/api/rooms/${r.room}/operations`, r.token, { revision: r.rev++, ops: ['still here'] });
  assert.equal(op.status, 200, op.text);
  await waitFor(() => sse.includes('still here') && wsText.includes('still here'),
    { what: 'the event on both quiet streams', timeout: 10000 });
});

// The bound itself: STREAM_IDLE_S, raised to twice the broker's longest silence and 2 s
test('STREAM_IDLE_S sets the stream bound, which still outlasts the broker\'s heartbeat and long-poll wait', () => {
  const idle = (env) => spawnSync('bash', ['-c', '. "$1"; stream_idle_s', 'bash', join(ROOT, 'scripts', 'stream-idle.sh')],
    { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  const value = (env) => {
    const res = idle(env);
    assert.equal(res.status, 0, res.stderr);
    return Number(res.stdout.trim());
  };
  assert.equal(value({}), 120);
  assert.equal(value({ STREAM_IDLE_S: '6', BROKER_HEARTBEAT_MS: '1000', BROKER_POLL_TIMEOUT_MS: '1000' }), 6);
  assert.equal(value({ STREAM_IDLE_S: '6' }), 52); // the long-poll's 25 s
  assert.equal(value({ STREAM_IDLE_S: '600' }), 600);
  assert.equal(value({ STREAM_IDLE_S: '010', BROKER_HEARTBEAT_MS: '2000', BROKER_POLL_TIMEOUT_MS: '4500' }), 12);
  for (const bad of ['0', '86401', 'soon', '-5', '1.5']) {
    const res = idle({ STREAM_IDLE_S: bad });
    assert.notEqual(res.status, 0, `STREAM_IDLE_S=${bad} is refused`);
    assert.match(res.stderr, /STREAM_IDLE_S .*: give a whole number of seconds from 1 to 86400/);
  }
  // make cluster writes the bound into HAProxy's configuration
  const cfg = readFileSync(join(c.dir, 'run', 'haproxy.cfg'), 'utf8');
  assert.match(cfg, new RegExp(`^  timeout tunnel ${IDLE_S}s$`, 'm'));
});
