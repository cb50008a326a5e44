// The broker against a real redis-server: SSE (curl and the eventsource package), long-poll
// and WebSocket get the same events in order; resume loses and repeats nothing; auth; two
// brokers; Redis restarts; many idle clients; hostile WebSocket frames; slow consumers.
// Run: node --test tests/programs/broker.test.mjs (after make build-asan), or make test-programs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import EventSource from 'eventsource';
import WebSocket from 'ws';

import { startRedis, startBroker, stop, waitFor, sleep, rssKiB, start, freePort, BROKER_BIN } from '../lib/procs.mjs';
import { connectRedis, roomKey, EMIT_SCRIPT, HISTORY_BOUNDS } from '../lib/resp.mjs';
import { childPids } from '../lib/proctree.mjs';
import { ticket, session, sign, newSid } from '../lib/tokens.mjs';
import { startBrokerOnRedis, stopBrokerOnRedis } from '../lib/broker-redis.mjs';
import { sseEvents as parseSse } from '../lib/sse.mjs';

const SECRET = randomBytes(24).toString('hex');
const BROKER_ENV = {
  BROKER_HEARTBEAT_MS: '500',
  BROKER_POLL_TIMEOUT_MS: '1500',
  BROKER_WS_TIMEOUT_MS: '2500',
  BROKER_CLIENT_BUFFER: String(256 * 1024),
  BROKER_REDIS_BACKOFF_MAX_MS: '1000',
  // a thousand idle connections and the 400 streams spread over two processes are each one
  // user's: past the default of 64 streams a user (the tests of that bound set their own)
  BROKER_MAX_STREAMS_PER_USER: '2000',
};

let redis, broker, rc;
let roomSeq = 0;
// A room as the API leaves it in Redis: public unless said otherwise, so the tickets below
// (users with no entry in the members hash) are strangers the room admits. The broker asks
// every stream's rights (lib/access.h) before it starts.
async function newRoom({ visibility = 'public' } = {}) {
  const room = `r${process.pid}x${++roomSeq}`;
  await rc.cmd('SET', `cc:room:{${room}}:visibility`, visibility);
  return room;
}
const tk = (room, user = 1, name = `user${user}`) => ticket(SECRET, { room, user, name });

before(async () => { ({ redis, rc, broker } = await startBrokerOnRedis({ secret: SECRET, env: BROKER_ENV })); });

after(() => stopBrokerOnRedis({ redis, rc, broker }));

// ---- clients ----


// SSE through curl -N, as a child process; events parsed as they come.
function curlSse(url, headers = {}) {
  const args = ['-sN', '--no-buffer', url];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  const child = start('curl', args);
  let text = '';
  child.stdout.on('data', (d) => { text += d; });
  return {
    child,
    get text() { return text; },
    events: () => parseSse(text.slice(0, text.lastIndexOf('\n\n') + 2)),
    close: () => stop(child, 'SIGKILL'),
  };
}

const TYPES = ['operation', 'presence', 'join', 'leave', 'execution', 'ai', 'room', 'snapshot', 'resync'];

function eventSource(url, headers) {
  const es = new EventSource(url, headers ? { headers } : undefined);
  const events = [];
  for (const t of TYPES) {
    es.addEventListener(t, (m) => events.push({ id: m.lastEventId, type: t, data: JSON.parse(m.data) }));
  }
  return { es, events, close: () => es.close() };
}

function wsClient(url) {
  const ws = new WebSocket(url);
  const events = [];
  ws.on('message', (m) => events.push(JSON.parse(m.toString())));
  const opened = new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return { ws, events, opened, close: () => ws.terminate() };
}

async function poll(room, since, t = tk(room)) {
  const q = new URLSearchParams({ ticket: t });
  if (since !== undefined) q.set('since', since);
  const r = await fetch(`${broker.base}/events/rooms/${room}/poll?${q}`);
  assert.equal(r.status, 200);
  return r.json();
}

const ops = (events) => events.filter((e) => e.type === 'operation');
const strip = (events) => events.map(({ id, type, data }) => ({ id, type, data }));

// One series' value on a broker's metrics listener, by its exact text (name and labels):
// missing asserts, unless absent gives the value to use then (a counter not yet started).
async function metricValue(port, series, { absent } = {}) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm').exec(text);
  if (!m && absent !== undefined) return absent;
  assert.ok(m, `${series} in ${text}`);
  return Number(m[1]);
}

// The arguments of one emit (tests/lib/resp.mjs), for a MULTI block
const emitArgs = (room, type, data) => [EMIT_SCRIPT, 1, roomKey(room, 'events'), type, JSON.stringify(data), HISTORY_BOUNDS];

async function emitOps(room, n, start = 0) {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await rc.emit(room, 'operation', { revision: start + i + 1, ops: [`x${i}`], text: 'a\nb' }));
  return ids;
}

// A raw HTTP request; resolves with status line and the raw response text at close.
function rawRequest(port, head, { waitClose = true } = {}) {
  return new Promise((resolve, reject) => {
    const s = createConnection(port, '127.0.0.1', () => s.write(head));
    let buf = '';
    s.on('data', (d) => { buf += d.toString('latin1'); if (!waitClose) { s.destroy(); resolve(buf); } });
    s.on('error', reject);
    s.on('close', () => resolve(buf));
  });
}

// What the broker sends to a raw request until it closes the connection (every error
// closes), or within 3 s: a stream that opened instead stays open.
function answerOrOpen(head) {
  return new Promise((resolve, reject) => {
    const s = createConnection(broker.port, '127.0.0.1', () => s.write(head));
    let buf = '';
    const timer = setTimeout(() => s.destroy(), 3000);
    s.on('data', (d) => { buf += d.toString('latin1'); });
    s.on('error', reject);
    s.on('close', () => { clearTimeout(timer); resolve(buf); });
  });
}

// ---- WebSocket by hand, for frames the ws package would never send ----

function wsRaw(port, path) {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const s = createConnection(port, '127.0.0.1', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`);
    });
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const frames = [];
    s.done = new Promise((r) => s.on('close', r));
    s.frames = frames;
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = buf.subarray(0, i).toString();
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        if (!head.startsWith('HTTP/1.1 101') || !head.includes(`Sec-WebSocket-Accept: ${accept}`)) {
          reject(new Error(`bad handshake: ${head}`));
          return;
        }
        upgraded = true;
        buf = buf.subarray(i + 4);
        resolve(s);
      }
      while (buf.length >= 2) {
        let n = buf[1] & 0x7f, h = 2;
        if (n === 126) { if (buf.length < 4) return; n = buf.readUInt16BE(2); h = 4; }
        if (buf.length < h + n) return;
        frames.push({ opcode: buf[0] & 0x0f, payload: buf.subarray(h, h + n) });
        buf = buf.subarray(h + n);
      }
    });
  });
}

function clientFrame(opcode, payload, { mask = true, fin = true } = {}) {
  const p = Buffer.from(payload);
  const len = p.length;
  const head = [(fin ? 0x80 : 0) | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff);
  else { head.push(m | 127, 0, 0, 0, 0, (len >>> 24) & 0xff, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff); }
  if (!mask) return Buffer.concat([Buffer.from(head), p]);
  const key = randomBytes(4);
  const body = Buffer.from(p.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([Buffer.from(head), key, body]);
}

// The payloads of the pong frames the server sent after its answer's head, in order (frames
// of up to 125 bytes, unmasked: what the broker sends; reading stops at anything else).
function pongsAfterHead(buf) {
  const at = buf.indexOf('\r\n\r\n');
  const out = [];
  if (at < 0) return out;
  let b = buf.subarray(at + 4);
  while (b.length >= 2) {
    const n = b[1] & 0x7f;
    if (n > 125 || b.length < 2 + n) break;
    if ((b[0] & 0x0f) === 0xa) out.push(b.subarray(2, 2 + n).toString());
    b = b.subarray(2 + n);
  }
  return out;
}

const closeCode = (s) => {
  const f = s.frames.find((x) => x.opcode === 8);
  return f && f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
};

// ---- tests ----

test('health, unknown paths, methods, auth errors', async () => {
  const h = await (await fetch(`${broker.base}/events/health`)).json();
  assert.equal(h.status, 'ok');
  assert.equal(h.redis, 'ok');
  assert.equal(typeof h.clients, 'number');

  const room = await newRoom();
  const get = (path, init) => fetch(`${broker.base}${path}`, init);
  let r = await get('/events/nowhere');
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error, 'not_found');
  assert.equal((await get(`/events/rooms/${room}/other?ticket=x`)).status, 404);
  assert.equal((await get('/events/rooms/bad%20id')).status, 404);
  r = await get(`/events/rooms/${room}`, { method: 'POST' });
  assert.equal(r.status, 405);

  r = await get(`/events/rooms/${room}`);
  assert.equal(r.status, 401);
  const body = await r.json();
  assert.equal(body.error, 'unauthorized');
  assert.ok(body.message);

  const forged = ticket('another-secret-another-secret-1234', { room, user: 1 });
  assert.equal((await get(`/events/rooms/${room}?ticket=${forged}`)).status, 401);
  const expired = ticket(SECRET, { room, user: 1, now: Math.floor(Date.now() / 1000) - 600 });
  assert.equal((await get(`/events/rooms/${room}/poll?ticket=${expired}`)).status, 401);
  const noneAlg = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.` +
    `${Buffer.from(JSON.stringify({ iss: 'codecollab', sub: '1', name: 'x', typ: 'ticket', room, exp: 9e9 })).toString('base64url')}.`;
  assert.equal((await get(`/events/rooms/${room}?ticket=${noneAlg}`)).status, 401);
  r = await get(`/events/rooms/${room}?ticket=${tk('some-other-room')}`);
  assert.equal(r.status, 403);
  assert.equal((await get(`/events/rooms/${room}/ws?ticket=${tk('some-other-room')}`, {
    headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
  }).catch(() => ({ status: 403 }))).status, 403);
  // a session token is no ticket
  assert.equal((await get(`/events/rooms/${room}?ticket=${session(SECRET, { user: 1 })}`)).status, 401);
  // malformed resume position
  assert.equal((await get(`/events/rooms/${room}/poll?ticket=${tk(room)}&since=abc`)).status, 400);
  // oversized and malformed heads
  let raw = await rawRequest(broker.port, `GET /events/health HTTP/1.1\r\nX: ${'a'.repeat(9000)}\r\n\r\n`);
  assert.match(raw, /^HTTP\/1.1 431 /);
  raw = await rawRequest(broker.port, 'GET /events/health HTTP/1.1\r\nBad Header\r\n\r\n');
  assert.match(raw, /^HTTP\/1.1 400 /);
  raw = await rawRequest(broker.port, 'GET /events/health HTTP/1.1\r\nA: b\0c\r\n\r\n');
  assert.match(raw, /^HTTP\/1.1 400 /);
  // the broker is still fine
  assert.equal((await get('/events/health')).status, 200);
});

// A parameter the broker reads, given twice, is 400 invalid_request (docs/API.md "Paging":
// every endpoint refuses it rather than pick one of the values), as `subscribed` and `rooms`
// are: `ticket`, and `last_event_id` (SSE, WebSocket) or `since` (long-poll), each also with
// the second value the malformed one, or its name percent-encoded.
test('ticket, last_event_id and since given twice are 400 invalid_request on every transport', async () => {
  const room = await newRoom();
  const t = tk(room);
  const ws = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const cases = [
    ['', `ticket=${t}&ticket=${t}`, 'ticket'],
    ['', `ticket=${t}&ticket=x`, 'ticket'],
    ['', `ticket=${t}&last_event_id=1-1&last_event_id=abc`, 'last_event_id'],
    ['', `ticket=${t}&last_event_id=1-1&last_%65vent_id=1-2`, 'last_event_id'],
    ['', `ticket=${t}&last_event_id&last_event_id=1-1`, 'last_event_id'],
    ['/poll', `ticket=${t}&since=1-1&since=abc`, 'since'],
    ['/poll', `ticket=${t}&since=0&since=0`, 'since'],
    ['/poll', `ticket=${t}&ticket=${t}&since=0`, 'ticket'],
    ['/ws', `ticket=${t}&last_event_id=0&last_event_id=0`, 'last_event_id'],
    ['/ws', `ticket=${t}&ticket=${t}`, 'ticket'],
  ];
  for (const [sub, query, name] of cases) {
    const raw = await answerOrOpen(
      `GET /events/rooms/${room}${sub}?${query} HTTP/1.1\r\nHost: x\r\n${sub === '/ws' ? ws : ''}\r\n`);
    assert.match(raw, /^HTTP\/1.1 400 /, `${sub}?${query}: ${raw.slice(0, 200)}`);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error, 'invalid_request', query);
    assert.equal(body.message, `the ${name} parameter is given more than once`, query);
  }
  // given once, each is taken as before; a parameter the path does not read is not counted
  for (const [sub, query] of [['', `ticket=${t}&last_event_id=0`], ['/poll', `ticket=${t}&since=0&last_event_id=x&last_event_id=y`]]) {
    const r = await fetch(`${broker.base}/events/rooms/${room}${sub}?${query}`, { signal: AbortSignal.timeout(4000) });
    assert.equal(r.status, 200, `${sub}?${query}`);
    await r.body.cancel();
  }
});

test('a bearer session token works for members only (private room)', async () => {
  const room = await newRoom({ visibility: 'private' });
  await rc.cmd('HSET', `cc:room:{${room}}:members`, '41', 'editor');
  const auth = (user) => ({ Authorization: `Bearer ${session(SECRET, { user, name: `u${user}` })}` });
  let r = await fetch(`${broker.base}/events/rooms/${room}/poll?since=0`, { headers: auth(42) });
  assert.equal(r.status, 403);
  const id = (await emitOps(room, 1))[0];
  r = await fetch(`${broker.base}/events/rooms/${room}/poll?since=0`, { headers: auth(41) });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.deepEqual(j.events.map((e) => e.id), [id]);
  assert.equal(j.last_event_id, id);

  // the header is read as the API reads it (lib/token.h, token_bearer): the scheme in any
  // case, one or more spaces; the scheme alone is a missing credential
  const tok = session(SECRET, { user: 41, name: 'u41' });
  for (const Authorization of [`bearer ${tok}`, `BEARER ${tok}`, `Bearer  ${tok}`, `bearer     ${tok}`]) {
    r = await fetch(`${broker.base}/events/rooms/${room}/poll?since=0`, { headers: { Authorization } });
    assert.equal(r.status, 200, JSON.stringify(Authorization.slice(0, 12)));
    assert.deepEqual((await r.json()).events.map((e) => e.id), [id]);
  }
  for (const Authorization of ['Bearer', 'Bearer    ', `Bearer${tok}`, `Bearer\t${tok}`, `Token ${tok}`]) {
    r = await fetch(`${broker.base}/events/rooms/${room}/poll?since=0`, { headers: { Authorization } });
    assert.equal(r.status, 401, JSON.stringify(Authorization.slice(0, 12)));
    assert.equal((await r.json()).error, 'unauthorized', JSON.stringify(Authorization.slice(0, 12)));
  }
});

// Two Authorization field lines: the front door joins them into one value that no token
// matches (401 invalid_token at the API and through lighttpd); the broker took the first and
// opened the stream as that user, so a direct stream answered otherwise than the front door.
test('two Authorization headers are 401 invalid_token on every stream, in either order; a ticket still opens its stream', async () => {
  const room = await newRoom({ visibility: 'private' });
  await rc.cmd('HSET', `cc:room:{${room}}:members`, '51', 'editor');
  const member = `Bearer ${session(SECRET, { user: 51, name: 'u51' })}`;
  const stranger = `Bearer ${session(SECRET, { user: 52, name: 'u52' })}`;
  const ws = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const paths = [`/events/rooms/${room}`, `/events/rooms/${room}/ws`, `/events/rooms/${room}/poll?since=0`,
    `/events/multi?rooms=${room}`, `/events/multi/ws?rooms=${room}`];
  for (const path of paths) {
    for (const [a, b] of [[member, stranger], [stranger, member], [member, member]]) {
      const raw = await answerOrOpen(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
        `${path.includes('/ws') ? ws : ''}Authorization: ${a}\r\nauthorization: ${b}\r\n\r\n`);
      const what = `${path}, ${a === member ? 'member' : 'stranger'} first: ${raw.slice(0, 200)}`;
      assert.match(raw, /^HTTP\/1.1 401 /, what);
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
      assert.deepEqual([body.error, body.message], ['invalid_token', 'send one Authorization header'], what);
    }
  }
  // a ticket is what such a stream is opened with; the headers beside it are not read
  const raw = await answerOrOpen(`GET /events/rooms/${room}/poll?since=0&ticket=${tk(room, 51)} HTTP/1.1\r\nHost: x\r\n` +
    `Connection: close\r\nAuthorization: ${member}\r\nAuthorization: ${stranger}\r\n\r\n`);
  assert.match(raw, /^HTTP\/1.1 200 /, raw.slice(0, 200));
});

test('SSE (curl, eventsource), long-poll and WebSocket get the same events in order', async () => {
  const room = await newRoom();
  const t = tk(room, 2, 'watcher');
  const curl = curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}`);
  const es = eventSource(`${broker.base}/events/rooms/${room}?ticket=${t}`);
  const ws = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${t}`);
  await ws.opened;
  const first = await poll(room, undefined, t).catch((e) => e); // empty: nothing new yet
  assert.deepEqual(first.events, []);
  const since = first.last_event_id ?? '0';
  await waitFor(() => curl.text.includes(': connected'), { what: 'curl connected' });
  await waitFor(() => es.es.readyState === 1, { what: 'eventsource open' });
  await sleep(200); // every stream subscribed

  const ids = await emitOps(room, 20);
  const want = (evs) => ops(evs).map((e) => e.id);
  await waitFor(() => want(curl.events()).length === 20, { what: 'curl events' });
  await waitFor(() => want(es.events).length === 20, { what: 'eventsource events' });
  await waitFor(() => want(ws.events).length === 20, { what: 'ws events' });
  assert.deepEqual(want(curl.events()), ids);
  assert.deepEqual(want(es.events), ids);
  assert.deepEqual(want(ws.events), ids);
  assert.deepEqual(strip(ops(curl.events())), strip(ops(ws.events)));
  assert.deepEqual(ops(ws.events)[3].data, { revision: 4, ops: ['x3'], text: 'a\nb' });

  // long-poll from where it stood, following last_event_id until caught up
  const got = [];
  let pos = since;
  while (got.filter((e) => e.type === 'operation').length < 20) {
    const j = await poll(room, pos, t);
    assert.ok(j.events.length > 0);
    got.push(...j.events);
    pos = j.last_event_id;
  }
  assert.deepEqual(want(got), ids);
  assert.deepEqual(strip(ops(got)), strip(ops(ws.events)));
  curl.close();
  es.close();
  ws.close();
});

// Two Last-Event-ID field lines are refused as a parameter given twice is: whichever the
// broker took, a proxy in front may have read the other one. One header and last_event_id
// in the query are no conflict: the header is where the stream resumes (an EventSource
// reconnects to its first URL, query and all, with the id it got last in the header). The
// long-poll reads no header, so two of them change nothing there.
test('two Last-Event-ID headers are 400 invalid_request (SSE, WebSocket); with last_event_id in the query the header wins', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 6);
  const t = tk(room);
  const ws = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const twice = [
    [ids[1], ids[1]],
    [ids[1], ids[4]],
    [ids[1], ''],
    ['', ids[4]],
    [ids[1], 'abc'],
  ];
  for (const sub of ['', '/ws']) {
    for (const [a, b] of twice) {
      const raw = await answerOrOpen(`GET /events/rooms/${room}${sub}?ticket=${t} HTTP/1.1\r\nHost: x\r\n` +
        `${sub === '/ws' ? ws : ''}Last-Event-ID: ${a}\r\nlast-event-id: ${b}\r\n\r\n`);
      assert.match(raw, /^HTTP\/1.1 400 /, `${sub} ${a} / ${b}: ${raw.slice(0, 200)}`);
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
      assert.equal(body.error, 'invalid_request');
      assert.equal(body.message, 'the Last-Event-ID header is given more than once');
    }
  }
  // one header, and the query naming another id: the stream resumes after the header's
  const curl = curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}&last_event_id=${ids[0]}`, { 'Last-Event-ID': ids[3] });
  await waitFor(() => ops(curl.events()).length === 2, { what: 'replay after the header\'s id' });
  await sleep(200);
  assert.deepEqual(ops(curl.events()).map((e) => e.id), ids.slice(4));
  curl.close();
  // the long-poll does not read the header: two of them are no refusal
  const raw = await answerOrOpen(`GET /events/rooms/${room}/poll?ticket=${t}&since=${ids[4]} HTTP/1.1\r\nHost: x\r\n` +
    `Connection: close\r\nLast-Event-ID: ${ids[0]}\r\nLast-Event-ID: ${ids[1]}\r\n\r\n`);
  assert.match(raw, /^HTTP\/1.1 200 /, raw.slice(0, 200));
  const j = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  assert.deepEqual(ops(j.events).map((e) => e.id), ids.slice(5));
});

test('resume after Last-Event-ID / last_event_id / since loses and repeats nothing', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 10);
  const t = tk(room);
  const curl = curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}`, { 'Last-Event-ID': ids[3] });
  const es = eventSource(`${broker.base}/events/rooms/${room}?ticket=${t}&last_event_id=${ids[6]}`);
  const ws = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${t}&last_event_id=${ids[0]}`);
  await waitFor(() => ops(curl.events()).length === 6, { what: 'curl replay' });
  await waitFor(() => ops(es.events).length === 3, { what: 'es replay' });
  await waitFor(() => ops(ws.events).length === 9, { what: 'ws replay' });
  // live events continue right after the replay, none twice
  const more = await emitOps(room, 5, 10);
  const all = [...ids, ...more];
  await waitFor(() => ops(curl.events()).length === 11, { what: 'curl live' });
  await waitFor(() => ops(es.events).length === 8, { what: 'es live' });
  await waitFor(() => ops(ws.events).length === 14, { what: 'ws live' });
  await sleep(200);
  assert.deepEqual(ops(curl.events()).map((e) => e.id), all.slice(4));
  assert.deepEqual(ops(es.events).map((e) => e.id), all.slice(7));
  assert.deepEqual(ops(ws.events).map((e) => e.id), all.slice(1));
  const j = await poll(room, ids[8], t);
  assert.deepEqual(ops(j.events).map((e) => e.id), all.slice(9));
  assert.equal(j.last_event_id, j.events.at(-1).id);
  curl.close();
  es.close();
  ws.close();
});

test('events emitted while clients connect are neither lost nor doubled', async () => {
  const room = await newRoom();
  const t = tk(room);
  const pre = await emitOps(room, 3);
  const emitting = emitOps(room, 60, 3); // runs while the clients join
  const clients = [];
  for (let i = 0; i < 5; i++) {
    clients.push(curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}`, { 'Last-Event-ID': pre[2] }));
    await sleep(15);
  }
  const ids = await emitting;
  for (const c of clients) {
    await waitFor(() => ops(c.events()).length >= 60, { what: 'all events' });
  }
  await sleep(200);
  for (const c of clients) assert.deepEqual(ops(c.events()).map((e) => e.id), ids);
  for (const c of clients) c.close();
});

test('a client behind the trimmed history gets resync', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 5);
  await emitOps(room, 5, 5);
  await rc.cmd('XTRIM', `cc:room:{${room}}:events`, 'MAXLEN', '3');
  const j = await poll(room, ids[1]);
  assert.equal(j.events[0].type, 'resync');
  assert.deepEqual(j.events[0].data, { reason: 'history_trimmed' });
  assert.equal(ops(j.events).length, 3);
  const ws = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room)}&last_event_id=${ids[0]}`);
  await waitFor(() => ws.events.length >= 4, { what: 'ws resync' });
  assert.equal(ws.events[0].type, 'resync');
  ws.close();
});

// The history's byte bound trims exactly (XTRIM MINID): with four entries' worth of bytes it
// keeps the newest four. A client whose own last event is the one trimmed has missed nothing
// (the oldest kept entry came right after it) and resumes without a resync; one whose next
// event is gone is told. Ids leave gaps (a millisecond apart here), so the entry after the
// client's cannot be named from its id: only the oldest entry's record of the one before it
// tells the two apart.
test('a client whose own last event is the one trimmed resumes without resync; one that lost an event gets it', async () => {
  const room = await newRoom();
  const t = tk(room);
  const data = (i) => ({ revision: i, ops: ['x'], text: 'a' }); // i < 10: every entry one size
  const size = 'operation'.length + JSON.stringify(data(1)).length;
  const bounds = `1000 ${4 * size}`;
  const ids = [];
  for (let i = 1; i <= 6; i++) {
    ids.push(await rc.emit(room, 'operation', data(i), bounds));
    await sleep(3); // the next id a later millisecond, not this one's seq + 1
  }
  const kept = (await rc.cmd('XRANGE', roomKey(room, 'events'), '-', '+')).map((e) => e[0]);
  assert.deepEqual(kept, ids.slice(2), 'the byte bound kept the newest four');
  // ids[1], the one entry before the oldest kept, is the client's own last event
  const resyncs = (events) => events.filter((e) => e.type === 'resync');
  let j = await poll(room, ids[1], t);
  assert.deepEqual(resyncs(j.events), [], JSON.stringify(j.events));
  assert.deepEqual(ops(j.events).map((e) => e.id), ids.slice(2));
  // ids[0]: ids[1], which that client never got, is gone
  j = await poll(room, ids[0], t);
  assert.equal(j.events[0].type, 'resync', JSON.stringify(j.events));
  assert.deepEqual(j.events[0].data, { reason: 'history_trimmed' });
  assert.deepEqual(ops(j.events).map((e) => e.id), ids.slice(2));
  // a stream resuming with Last-Event-ID ids[1]: the replay, then live events, in order
  const curl = curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}`, { 'Last-Event-ID': ids[1] });
  await waitFor(() => ops(curl.events()).length >= 4 && curl.text.includes(': connected'), { what: 'the replay' });
  const more = await emitOps(room, 2, 6);
  await waitFor(() => ops(curl.events()).length >= 6, { what: 'the live events' });
  await sleep(200);
  const seen = curl.events().filter((e) => e.type === 'operation' || e.type === 'resync');
  assert.deepEqual(seen.map((e) => `${e.type} ${e.id}`), [...ids.slice(2), ...more].map((id) => `operation ${id}`));
  curl.close();
});

// A position past everything the history holds: the largest id (whose "next" once wrapped to
// 0-0, so a full page of replayed entries was asked for again for ever), or an id the room
// never gave. Every transport says resync at once, from the newest event, and goes live.
test('a position past the history gets resync unknown_position at once, then live events; Redis is not asked again and again', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 501); // more than one catch-up page (HUB_PAGE)
  const newest = ids.at(-1);
  const MAX = '18446744073709551615-18446744073709551615';
  const t = tk(room);
  // the newest event when the stream starts: the last operation, or a later join of these streams
  const isTold = (e) => e.type === 'resync' && e.data.reason === 'unknown_position' && compareIds(e.id, newest) >= 0;
  const curl = curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}`, { 'Last-Event-ID': MAX });
  const ws = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${t}&last_event_id=${MAX}`);
  const future = curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}&last_event_id=99999999999999-7`);
  const j = await poll(room, MAX, t); // told at once; one not told waits out BROKER_POLL_TIMEOUT_MS with nothing
  assert.equal(j.events.length, 1, JSON.stringify(j.events));
  assert.ok(isTold(j.events[0]), JSON.stringify(j.events));
  assert.equal(j.last_event_id, j.events[0].id);
  await waitFor(() => curl.text.includes(': connected') && future.text.includes(': connected') &&
    subscribedFrames(ws.events).length === 1, { what: 'every stream live' });
  const calls = async () => Number(/total_commands_processed:(\d+)/.exec(await rc.cmd('INFO', 'stats'))[1]);
  // the users of the tests before this one stay present 2 s after their last stream closed
  // (HUB_PRESENCE_LINGER_MS), and their presence is kept in Redis meanwhile: counted after it
  await sleep(3000);
  const c0 = await calls();
  await sleep(1000);
  const idle = (await calls()) - c0;
  assert.ok(idle < 200, `${idle} Redis commands in a second with three streams live`);
  const more = await emitOps(room, 3, 501);
  await waitFor(() => ops(curl.events()).length === 3 && ops(future.events()).length === 3 &&
    ops(ws.events).length === 3, { what: 'live events' });
  await sleep(200);
  for (const events of [curl.events(), future.events(), ws.events]) {
    const seen = events.filter((e) => e.type === 'resync' || e.type === 'operation');
    assert.equal(seen.length, 4, JSON.stringify(seen));
    assert.ok(isTold(seen[0]), JSON.stringify(seen[0]));
    assert.deepEqual(seen.slice(1).map((e) => e.id), more);
  }
  // resuming from the resync's id is an ordinary resume
  const again = await poll(room, newest, t);
  assert.deepEqual(ops(again.events).map((e) => e.id), more);
  curl.close();
  future.close();
  ws.close();
});

test('long-poll: empty at the timeout, answered as soon as an event comes', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 1);
  let t0 = Date.now();
  let j = await poll(room, ids[0]);
  assert.deepEqual(j.events, []);
  assert.equal(j.last_event_id, ids[0]);
  assert.ok(Date.now() - t0 >= 1300, 'waited for the timeout');
  // without since: only new events, and last_event_id pins where the client stands
  j = await poll(room);
  assert.deepEqual(j.events, []);
  assert.equal(j.last_event_id, ids[0]);

  // answered as soon as an event comes: a broker whose polls wait 60 s, so that an answer
  // within 20 s (generous on a loaded machine) can only be the event's, not the timeout's
  const slow = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_POLL_TIMEOUT_MS: '60000' } });
  try {
    const open0 = (await (await fetch(`${slow.base}/events/health`)).json()).clients;
    const pending = fetch(`${slow.base}/events/rooms/${room}/poll?${new URLSearchParams({ ticket: tk(room), since: ids[0] })}`)
      .then(async (r) => ({ status: r.status, body: await r.json(), at: Date.now() }));
    await waitFor(async () => (await (await fetch(`${slow.base}/events/health`)).json()).clients > open0, { what: 'the poll waiting' });
    // likely past its catch-up read, so the event comes live (either way it must answer now)
    await sleep(300);
    const [id2] = await emitOps(room, 1, 1);
    const emitted = Date.now();
    const a = await pending;
    assert.equal(a.status, 200);
    assert.deepEqual(a.body.events.map((e) => e.id), [id2]);
    assert.equal(a.body.last_event_id, id2);
    assert.ok(a.at - emitted < 20000, `answered ${a.at - emitted} ms after the event (the poll timeout is 60 s)`);
  } finally {
    const r = await stop(slow);
    assert.equal(r.code, 0, slow.output);
  }
});

test('join and leave, and WebSocket presence upward', async () => {
  const room = await newRoom();
  const observer = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room, 10, 'obs')}`);
  // live, so alice's join cannot come before it (the 101 is earlier than that)
  await waitFor(() => subscribedFrames(observer.events).length === 1, { what: 'the observer live' });

  const sender = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room, 11, 'alice')}`);
  await sender.opened;
  // a second stream of the same user: no second join
  const sse = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 11, 'alice')}`);
  await waitFor(() => observer.events.some((e) => e.type === 'join' && e.data.user.id === 11), { what: 'join' });
  // alice's second stream has surely joined the room once it is live
  await waitFor(() => sse.text.includes(': connected'), { what: 'the SSE stream live' });
  const join = observer.events.find((e) => e.type === 'join' && e.data.user.id === 11);
  assert.deepEqual(join.data, { user: { id: 11, username: 'alice' } });

  sender.ws.send(JSON.stringify({ type: 'presence', cursor: 7, selection: { anchor: 2, head: 7 } }));
  sender.ws.send('not json');
  sender.ws.send(JSON.stringify({ type: 'presence', cursor: -1 }));
  await waitFor(() => observer.events.some((e) => e.type === 'presence'), { what: 'presence' });
  await sleep(200);
  const pres = observer.events.filter((e) => e.type === 'presence');
  assert.equal(pres.length, 1);
  assert.deepEqual(pres[0].data.user, { id: 11, username: 'alice' });
  assert.equal(pres[0].data.cursor, 7);
  assert.deepEqual(pres[0].data.selection, { anchor: 2, head: 7 });
  assert.match(pres[0].data.color, /^#[0-9a-f]{6}$/);

  sender.close();
  await sleep(300);
  assert.ok(!observer.events.some((e) => e.type === 'leave'), 'still here through SSE');
  await sse.close();
  await waitFor(() => observer.events.some((e) => e.type === 'leave' && e.data.user.id === 11), { what: 'leave' });
  assert.equal(observer.events.filter((e) => e.type === 'join' && e.data.user.id === 11).length, 1);
  observer.close();
});

test('WebSocket: unmasked, oversized and truncated frames are refused with the right code', async () => {
  const room = await newRoom();
  const path = `/events/rooms/${room}/ws?ticket=${tk(room)}`;
  let s = await wsRaw(broker.port, path);
  s.write(clientFrame(1, '{"type":"presence","cursor":1}', { mask: false }));
  await s.done;
  assert.equal(closeCode(s), 1002);

  s = await wsRaw(broker.port, path);
  s.write(clientFrame(1, 'x'.repeat(70000)));
  await s.done;
  assert.equal(closeCode(s), 1009);

  s = await wsRaw(broker.port, path);
  const f = clientFrame(1, 'hello there');
  s.write(f.subarray(0, f.length - 5));
  await sleep(100);
  s.end(); // our side is done in the middle of a frame
  await s.done;
  assert.equal(closeCode(s), 1002);

  // ping is answered, close is echoed
  s = await wsRaw(broker.port, path);
  s.write(clientFrame(9, 'hi'));
  await waitFor(() => s.frames.some((x) => x.opcode === 10), { what: 'pong' });
  s.write(clientFrame(8, Buffer.from([0x03, 0xe8])));
  await s.done;
  assert.equal(closeCode(s), 1000);
});

// Frames wslay's frame layer cannot read at all end the connection inside wslay without the
// close frame it queues: the broker writes one of 1002 itself (RFC 6455 §7.1.7), so the
// client learns why instead of seeing the connection drop (1006).
test('WebSocket: frames that cannot be read (a long or fragmented control frame, a length not in its shortest form or past 2^63) get a close of 1002, then the end', async () => {
  const room = await newRoom();
  const path = `/events/rooms/${room}/ws?ticket=${tk(room)}`;
  const masked = (head, payload) => Buffer.concat([Buffer.from(head), Buffer.alloc(4), Buffer.from(payload)]);
  const cases = [
    ['a ping of 126 bytes', clientFrame(9, 'p'.repeat(126))],
    ['a ping in fragments', clientFrame(9, 'p', { fin: false })],
    ['a length of 5 in 16 bits', masked([0x81, 0x80 | 126, 0, 5], 'hello')],
    ['a 64-bit length with its top bit set', masked([0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5], 'hello')],
  ];
  for (const [what, frame] of cases) {
    const s = await wsRaw(broker.port, path);
    await waitFor(() => s.frames.some((x) => x.opcode === 1), { what: `subscribed (${what})` });
    const t0 = Date.now();
    s.write(frame);
    await Promise.race([s.done, sleep(5000).then(() => { throw new Error(`not closed (${what})`); })]);
    assert.ok(Date.now() - t0 < 3000, `closed promptly (${what})`);
    const last = s.frames[s.frames.length - 1];
    assert.ok(last && last.opcode === 8, `the last frame is a close (${what}): ${JSON.stringify(s.frames)}`);
    assert.deepEqual([...last.payload], [0x03, 0xea], `1002 and no reason (${what})`);
  }
  assert.equal((await fetch(`${broker.base}/events/health`)).status, 200, 'the broker is still fine');
});

// wslay keeps every fragment of a message as a chunk of its own (three allocations, about
// 100 bytes, however small the fragment): 64 KiB sent a byte at a time held over 6 MiB of the
// broker's memory per connection, for a message within BROKER_WS_MAX_MESSAGE. A message
// comes in at most WS_MAX_FRAGMENTS (1,024) frames; past that it is refused with 1009.
test('WebSocket: a message in more than 1,024 fragments is closed with 1009, and fragments cannot grow the broker', async () => {
  const room = await newRoom();
  const path = `/events/rooms/${room}/ws?ticket=${tk(room, 41, 'frag')}`;
  const fragments = (n, text = 'x'.repeat(n)) => Buffer.concat([...text].map((ch, i) =>
    clientFrame(i === 0 ? 1 : 0, ch, { fin: i === n - 1 })));
  // 1,024 fragments are one message: a presence message that reaches the room
  const watch = await wsRaw(broker.port, `/events/rooms/${room}/ws?ticket=${tk(room, 42, 'watch')}`);
  let s = await wsRaw(broker.port, path);
  await waitFor(() => s.frames.some((x) => x.opcode === 1), { what: 'subscribed' });
  s.write(fragments(1024, '{"type":"presence","cursor":7}'.padEnd(1024, ' ')));
  await waitFor(() => watch.frames.some((x) => x.opcode === 1 && /"type":"presence".*"cursor":7/.test(x.payload)),
    { what: 'the presence sent in 1,024 fragments' });
  s.write(clientFrame(9, 'after'));
  await waitFor(() => s.frames.some((x) => x.opcode === 10 && x.payload.toString() === 'after'), { what: 'pong' });
  s.destroy();
  watch.destroy();
  // one more, and it is refused at once
  s = await wsRaw(broker.port, path);
  await waitFor(() => s.frames.some((x) => x.opcode === 1), { what: 'subscribed' });
  s.write(fragments(1025));
  await Promise.race([s.done, sleep(10000).then(() => { throw new Error('not closed'); })]);
  assert.equal(closeCode(s), 1009);
  // connections that each send a byte per fragment for as long as they may hold the broker's
  // memory to what their messages are, not a hundred times more
  const rss0 = rssKiB(broker.pid);
  const conns = [];
  for (let i = 0; i < 20; i++) conns.push(await wsRaw(broker.port, `/events/rooms/${room}/ws?ticket=${tk(room, 100 + i)}`));
  const first = clientFrame(1, 'x', { fin: false });
  const more = Buffer.concat(Array(4096).fill(clientFrame(0, 'x', { fin: false })));
  for (const c of conns) c.write(first);
  for (let k = 0; k < 15; k++) {
    for (const c of conns) if (!c.destroyed) c.write(more);
    await sleep(50);
  }
  await Promise.all(conns.map((c) => Promise.race([c.done, sleep(10000)])));
  const grown = rssKiB(broker.pid) - rss0;
  for (const c of conns) c.destroy();
  assert.ok(conns.every((c) => closeCode(c) === 1009), `every one closed with 1009: ${conns.map(closeCode)}`);
  assert.ok(grown < 40 * 1024, `the broker grew by ${grown} KiB for 20 connections`);
  assert.equal((await fetch(`${broker.base}/events/health`)).status, 200, 'the broker is still fine');
});

test('WebSocket frames sent with the upgrade request, or split byte by byte, are read whole', async () => {
  const room = await newRoom();
  const key = randomBytes(16).toString('base64');
  const s = createConnection(broker.port, '127.0.0.1');
  await new Promise((resolve) => s.once('connect', resolve));
  let buf = Buffer.alloc(0);
  s.on('data', (d) => { buf = Buffer.concat([buf, d]); });
  s.on('error', () => {});
  // the request and a ping in one write: the ping waits through the rights check
  s.write(Buffer.concat([
    Buffer.from(`GET /events/rooms/${room}/ws?ticket=${tk(room)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`),
    clientFrame(0x9, 'first'),
  ]));
  const pongs = () => pongsAfterHead(buf);
  await waitFor(() => pongs().includes('first'), { what: 'the pong of the ping sent with the request' });
  assert.match(buf.toString('latin1'), /^HTTP\/1.1 101 /);
  for (const byte of clientFrame(0x9, 'second')) {
    s.write(Buffer.from([byte]));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await waitFor(() => pongs().includes('second'), { what: 'the pong of the split ping' });
  s.destroy();
});

test('a silent WebSocket peer times out', async () => {
  const room = await newRoom();
  const s = await wsRaw(broker.port, `/events/rooms/${room}/ws?ticket=${tk(room)}`);
  const t0 = Date.now();
  await s.done; // we never answer the pings
  assert.ok(Date.now() - t0 >= 2000);
  assert.ok(s.frames.some((x) => x.opcode === 9), 'was pinged');
  assert.equal(closeCode(s), 1001);
});

test('the heartbeat comment goes only to idle SSE streams: one that carries events gets none, an idle one still one per BROKER_HEARTBEAT_MS', async () => {
  // a ping to the busy stream would need the test to stall for 1.5 s between two events
  const HB = 2000;
  const b = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_HEARTBEAT_MS: String(HB), BROKER_WS_TIMEOUT_MS: String(2 * HB) } });
  const busyRoom = await newRoom();
  const idleRoom = await newRoom();
  const busy = curlSse(`${b.base}/events/rooms/${busyRoom}?ticket=${tk(busyRoom, 41, 'busy')}`);
  const idle = curlSse(`${b.base}/events/rooms/${idleRoom}?ticket=${tk(idleRoom, 42, 'idle')}`);
  const pings = (text) => text.split('\n').filter((l) => l === ': ping').length;
  try {
    await waitFor(() => busy.text.includes(': connected') && idle.text.includes(': connected'), { what: 'both connected' });
    const idleFrom = idle.text.length;
    // an event every 50 ms for three heartbeat periods: a ping needs the stream to have had
    // nothing for at least three quarters of one
    let n = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < 3 * HB) {
      n++;
      await rc.emit(busyRoom, 'operation', { revision: n, ops: [`x${n}`] });
      await sleep(50);
    }
    await waitFor(() => ops(busy.events()).length === n, { what: `the busy stream's ${n} events` });
    const fromFirst = busy.text.slice(busy.text.indexOf('event: operation'));
    assert.equal(pings(fromFirst), 0, `a stream that carried ${n} events was pinged:\n${fromFirst.slice(0, 2000)}`);
    // the idle stream heard from the broker about once a period all along (three)
    assert.ok(pings(idle.text.slice(idleFrom)) >= 2, `the idle stream: ${JSON.stringify(idle.text.slice(idleFrom))}`);
  } finally {
    await busy.close();
    await idle.close();
    const r = await stop(b);
    assert.equal(r.code, 0, b.output);
  }
});

// A user's join and leave are events of the room, in its history and sent to every stream of
// it: one client opening and closing a stream as fast as it could wrote hundreds of them a
// second, pushing the room's kept history (1,000 events) past everyone who reconnects within
// seconds (the presence budget bounds moves, which once made this take 50 s). The last stream's
// leave now waits HUB_PRESENCE_LINGER_MS (2 s), and a stream opened meanwhile makes no join.
test('a user opening and closing streams over and over makes one join, and one leave once they are gone', async () => {
  const room = await newRoom();
  const observer = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room, 30, 'obs')}`);
  await waitFor(() => subscribedFrames(observer.events).length === 1, { what: 'the observer live' });
  const of = (type) => observer.events.filter((e) => e.type === type && e.data.user.id === 31);
  const t0 = Date.now();
  for (let i = 0; i < 40; i++) {
    if (i % 2) {
      const w = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room, 31, 'flap')}`);
      await waitFor(() => subscribedFrames(w.events).length === 1, { what: `WebSocket ${i} live` });
      w.close();
    } else {
      const c = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 31, 'flap')}`);
      await waitFor(() => c.text.includes(': connected'), { what: `SSE ${i} live` });
      await c.close();
    }
  }
  const took = Date.now() - t0;
  await waitFor(() => of('leave').length >= 1, { what: 'the leave after the last stream', timeout: 15000 });
  await sleep(300);
  // one join and one leave per linger at most, however many streams came and went
  const most = 1 + Math.ceil(took / 2000);
  assert.ok(of('join').length >= 1 && of('join').length <= most, `joins: ${of('join').length} in ${took} ms`);
  assert.ok(of('leave').length <= of('join').length, `leaves: ${of('leave').length}`);
  assert.ok(Number(await rc.cmd('XLEN', `cc:room:{${room}}:events`)) <= 2 * most, 'the history holds few of them');
  // once gone, coming back is a join again
  const joins = of('join').length;
  const again = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 31, 'flap')}`);
  await waitFor(() => of('join').length === joins + 1, { what: 'a join after the leave' });
  await again.close();
  observer.close();
});

test('two brokers share a room', async () => {
  const b2 = await startBroker({ redisPort: redis.port, secret: SECRET, env: BROKER_ENV });
  try {
    const room = await newRoom();
    const a = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 21, 'a')}`);
    await waitFor(() => a.text.includes(': connected'), { what: 'a connected' });
    await sleep(200);
    const b = wsClient(`ws://127.0.0.1:${b2.port}/events/rooms/${room}/ws?ticket=${tk(room, 22, 'b')}`);
    await b.opened;
    await waitFor(() => a.events().some((e) => e.type === 'join' && e.data.user.id === 22), { what: 'join across brokers' });
    const ids = await emitOps(room, 5);
    await waitFor(() => ops(a.events()).length === 5 && ops(b.events).length === 5, { what: 'both brokers' });
    assert.deepEqual(ops(a.events()).map((e) => e.id), ids);
    assert.deepEqual(ops(b.events).map((e) => e.id), ids);
    // the same user on both brokers: one join, and leave only when both are gone
    const a2 = curlSse(`${b2.base}/events/rooms/${room}?ticket=${tk(room, 21, 'a')}`);
    // a2 live before a goes (a fixed pause alone was too short on a busy machine: a closed
    // while a2 was still being checked, and 21 left)
    await waitFor(() => a2.text.includes(': connected'), { what: 'a2 connected' });
    await sleep(300);
    // (b joined after a: it saw no join of 21 before, and must see none now)
    assert.ok(!b.events.some((e) => e.type === 'join' && e.data.user.id === 21), 'no second join');
    await a.close();
    await sleep(300);
    assert.ok(!b.events.some((e) => e.type === 'leave' && e.data.user.id === 21));
    await a2.close();
    await waitFor(() => b.events.some((e) => e.type === 'leave' && e.data.user.id === 21), { what: 'leave across brokers' });
    // a broker that dies without a word: its users leave after the expiry
    const watch = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 24, 'w')}`);
    await waitFor(() => watch.text.includes(': connected'), { what: 'watch connected' });
    await sleep(200);
    const c = curlSse(`${b2.base}/events/rooms/${room}?ticket=${tk(room, 23, 'c')}`);
    await waitFor(() => watch.events().some((e) => e.type === 'join' && e.data.user.id === 23), { what: 'join c' });
    b.close();
    await stop(b2, 'SIGKILL');
    await c.close();
    await waitFor(() => watch.events().some((e) => e.type === 'leave' && e.data.user.id === 23),
      { what: 'leave after expiry', timeout: 8000 });
    await watch.close();
  } finally {
    await stop(b2, 'SIGKILL');
  }
});

test('Redis restarts mid-stream: clients resume without loss', async () => {
  const room = await newRoom();
  const t = tk(room, 31, 'r');
  const curl = curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}`);
  const ws = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${t}`);
  await waitFor(() => curl.text.includes(': connected') && subscribedFrames(ws.events).length, { what: 'both live' });
  const ids = await emitOps(room, 3);
  await waitFor(() => ops(curl.events()).length === 3, { what: 'before restart' });

  // the broker's connections die; events go on being emitted meanwhile
  await rc.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
  ids.push(...await emitOps(room, 3, 3));

  // a full restart, data kept on disk; events emitted before the broker is back
  await rc.cmd('SHUTDOWN', 'SAVE').catch(() => {});
  rc.close();
  await redis.exited;
  redis = await startRedis({ port: redis.port, dir: redis.dir });
  rc = await connectRedis(redis.port);
  ids.push(...await emitOps(room, 4, 6));
  await waitFor(async () => (await (await fetch(`${broker.base}/events/health`)).json()).redis === 'ok',
    { what: 'broker reconnected' });
  ids.push(...await emitOps(room, 2, 10));
  await waitFor(() => ops(curl.events()).length >= 12 && ops(ws.events).length >= 12, { what: 'all events after restart', timeout: 15000 });
  await sleep(300);
  assert.deepEqual(ops(curl.events()).map((e) => e.id), ids);
  assert.deepEqual(ops(ws.events).map((e) => e.id), ids);
  // live was said once, first: the catch-ups after the reconnections say nothing more
  assert.equal(curl.text.split(': connected').length, 2, 'SSE said live once');
  assert.equal(subscribedFrames(ws.events).length, 1, 'WebSocket said live once');
  curl.close();
  ws.close();
});

test('a frozen Redis is noticed and clients catch up once it answers again', async () => {
  const room = await newRoom();
  const ws = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room, 35, 'f')}`);
  await ws.opened;
  await sleep(200);
  const ids = await emitOps(room, 2);
  redis.kill('SIGSTOP');
  try {
    await waitFor(async () => (await (await fetch(`${broker.base}/events/health`)).json()).redis === 'down',
      { what: 'broker notices', timeout: 8000 });
  } finally {
    redis.kill('SIGCONT');
  }
  ids.push(...await emitOps(room, 3, 2)); // before the broker is back
  await waitFor(() => ops(ws.events).length >= 5, { what: 'caught up', timeout: 15000 });
  await sleep(200);
  assert.deepEqual(ops(ws.events).map((e) => e.id), ids);
  ws.close();
});

test('a thousand idle connections are held', async () => {
  const room = await newRoom();
  const t = tk(room, 41, 'idle');
  const N = 1000;
  const socks = [];
  const got = new Array(N).fill('');
  // the test before froze Redis: every stream's rights check needs it back
  await waitFor(async () => (await (await fetch(`${broker.base}/events/health`)).json()).redis === 'ok', { what: 'Redis back' });
  await Promise.all(Array.from({ length: N }, (_, i) => new Promise((resolve, reject) => {
    const open = (tries) => {
      got[i] = '';
      let live = false;
      const s = createConnection(broker.port, '127.0.0.1', () => {
        s.write(`GET /events/rooms/${room}?ticket=${t} HTTP/1.1\r\nHost: x\r\n\r\n`);
      });
      s.on('data', (d) => { got[i] += d; if (!live && got[i].includes(': connected')) { live = true; resolve(); } });
      s.on('error', () => {});
      s.on('close', () => {
        if (live) return;
        // a 503 redis_unavailable with Retry-After is what a client is told to retry (a
        // busy machine can hold the broker's Redis past its check while 1,000 rights checks
        // are asked at once); any other answer instead of a stream fails the test with it
        if (/^HTTP\/1\.1 503 /.test(got[i]) && got[i].includes('redis_unavailable') && tries < 5) {
          setTimeout(() => open(tries + 1), 1000);
          return;
        }
        reject(new Error(`connection ${i} closed: ${got[i].slice(0, 300)}`));
      });
      socks[i] = s;
    };
    open(0);
  })));
  const h = await (await fetch(`${broker.base}/events/health`)).json();
  assert.ok(h.clients >= N, `clients ${h.clients}`);
  await sleep(300);
  const [id] = await emitOps(room, 1);
  await waitFor(() => got.every((g) => g.includes(`id: ${id}`)), { what: 'event on every connection' });
  for (const s of socks) s.destroy();
  await waitFor(async () => (await (await fetch(`${broker.base}/events/health`)).json()).clients < N, { what: 'clients gone' });
});

test('a slow consumer is dropped without the broker growing', async () => {
  const room = await newRoom();
  const t = tk(room, 51, 'slow');
  const fast = curlSse(`${broker.base}/events/rooms/${room}?ticket=${t}`);
  // a client that never reads
  const slow = createConnection(broker.port, '127.0.0.1', () => {
    slow.write(`GET /events/rooms/${room}?ticket=${t} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
  slow.on('error', () => {});
  const closed = new Promise((r) => slow.on('close', r));
  slow.pause();
  await sleep(300);
  const before = rssKiB(broker.pid);
  const big = { revision: 1, ops: ['y'.repeat(16 * 1024)] };
  // The events go out 20 at a time, each batch once the fast consumer has had the one
  // before: on a busy machine curl, left 16 MiB behind, fell past its own 256 KiB bound and
  // was dropped as well. The slow one, not reading at all, still passes its bound in the
  // first batches. Counted as they come (parsing 16 MiB of text at every look cost seconds).
  let received = 0, scanned = 0;
  const fastCount = () => {
    for (let k; (k = fast.text.indexOf('event: operation\n', scanned)) >= 0; scanned = k + 1) received++;
    return received;
  };
  for (let i = 0; i < 1000; i++) {
    await rc.emit(room, 'operation', big);
    if (i % 20 === 19) await waitFor(() => fastCount() >= i + 1, { what: `fast consumer at ${i + 1}`, timeout: 30000 });
  }
  assert.equal(ops(fast.events()).length, 1000);
  slow.resume(); // now read: the broker must have closed it
  await Promise.race([closed, sleep(5000).then(() => { throw new Error('slow client not dropped'); })]);
  const grown = rssKiB(broker.pid) - before;
  // 1000 x 16 KiB = 16 MiB went out; a slow client may hold at most its 256 KiB bound
  assert.ok(grown < 12 * 1024, `broker grew ${grown} KiB`);
  assert.match(broker.output, /dropping a slow client/);
  fast.close();
});

// A WebSocket stream's frames are made in a buffer of their own (sse-broker/ws.c) that grows
// to hold the whole frame: one event of 1 MiB made it 2 MiB on every stream of the room,
// and an emptied buffer kept its memory until the stream closed (SSE keeps nothing). Now it
// is given back once the frame is handed on. The sizes are far above the allocator's
// mmap threshold, so what is freed leaves the process (the sanitizer build's quarantine is
// 4 MiB, tests/lib/procs.mjs).
test('an event of 1 MiB leaves no large buffer with the WebSocket streams that carried it', async () => {
  const N = 50;
  const big = await startBroker({
    redisPort: redis.port, secret: SECRET,
    env: { ...BROKER_ENV, BROKER_CLIENT_BUFFER: String(4 * 1024 * 1024) },
  });
  const clients = [];
  try {
    const room = await newRoom();
    const url = `ws://127.0.0.1:${big.port}/events/rooms/${room}/ws?ticket=${tk(room, 63, 'bigws')}`;
    for (let i = 0; i < N; i++) clients.push(wsClient(url));
    await Promise.all(clients.map((c) => c.opened));
    await waitFor(() => clients.every((c) => c.events.some((e) => e.type === 'subscribed')), { what: 'every stream live' });
    // a small event first, so that what any delivery makes once is made before the count
    const [small] = await emitOps(room, 1);
    await waitFor(() => clients.every((c) => c.events.some((e) => e.id === small)), { what: 'the small event' });
    await sleep(300);
    const before = rssKiB(big.pid);
    const id = await rc.emit(room, 'operation', { revision: 2, ops: ['w'.repeat(1024 * 1024)] });
    await waitFor(() => clients.every((c) => c.events.some((e) => e.id === id && e.type === 'operation')),
      { what: 'the large event on every stream', timeout: 30000 });
    await sleep(300);
    const grown = rssKiB(big.pid) - before;
    // kept, the buffers held N x 2 MiB, half of it touched (58 MiB more was measured);
    // given back, what is left is the event itself and the allocator's quarantine, whatever
    // N is (5 MiB)
    assert.ok(grown < N * 1024 / 3, `the broker grew ${grown} KiB after one event of 1 MiB to ${N} WebSocket streams`);
  } finally {
    for (const c of clients) c.close();
    const r = await stop(big);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${big.output}`);
  }
});

// ---- membership changes and deletion (docs/INTERNALS.md "Broker", Rights) ----

// A WebSocket client that also records how the broker closed it.
function wsClosable(url, headers) {
  const ws = new WebSocket(url, headers ? { headers } : undefined);
  const events = [];
  ws.on('message', (m) => events.push(JSON.parse(m.toString())));
  const opened = new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  ws.closeCode = null;
  closed.then((code) => { ws.closeCode = code; });
  return { ws, events, opened, closed, close: () => ws.terminate() };
}

const exited = (curl) => curl.child.exitCode !== null || curl.child.signalCode !== null;
const roomEvents = (events, reason) => events.filter((e) => e.type === 'room' && e.data.reason === reason);

test('a member removed from a private room loses its open streams; other members and viewers keep theirs', async () => {
  const room = await newRoom({ visibility: 'private' });
  const key = `cc:room:{${room}}:members`;
  await rc.cmd('HSET', key, '61', 'editor', '62', 'editor', '63', 'viewer');
  const bearer = (user) => ({ Authorization: `Bearer ${session(SECRET, { user, name: `u${user}` })}` });
  const wsUrl = (t) => `ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws${t ? `?ticket=${t}` : ''}`;
  const goneSse = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 61, 'gone')}`);
  const goneWs = wsClosable(wsUrl(), bearer(61));
  const keptSse = curlSse(`${broker.base}/events/rooms/${room}`, bearer(62));
  const viewerWs = wsClosable(wsUrl(tk(room, 63, 'viewer')));
  // a stranger is refused by a private room, ticket or not
  const refused = await fetch(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 64, 'stranger')}`);
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).message, 'not a member of this room');
  await Promise.all([goneWs.opened, viewerWs.opened]);
  for (const c of [goneSse, keptSse]) {
    await waitFor(() => c.text.includes(': connected'), { what: 'SSE connected' });
  }
  await sleep(300); // every stream subscribed and its membership known

  await rc.cmd('HDEL', key, '61');
  const changed = await rc.emit(room, 'room', { reason: 'members' });
  await waitFor(() => exited(goneSse) && goneWs.ws.readyState === WebSocket.CLOSED,
    { what: 'the removed member closed', timeout: 10000, interval: 20 });
  // the event itself was delivered first
  assert.deepEqual(roomEvents(goneSse.events(), 'members').map((e) => e.id), [changed]);
  assert.deepEqual(roomEvents(goneWs.events, 'members').map((e) => e.id), [changed]);
  assert.equal(await goneWs.closed, 1008);

  const ids = await emitOps(room, 2);
  for (const [what, evs] of [['member', () => keptSse.events()], ['viewer', () => viewerWs.events]]) {
    await waitFor(() => ops(evs()).length === 2, { what: `${what} keeps receiving` });
    assert.deepEqual(ops(evs()).map((e) => e.id), ids, what);
    assert.deepEqual(roomEvents(evs(), 'members').map((e) => e.id), [changed], what);
  }
  assert.ok(!exited(keptSse));
  assert.equal(viewerWs.ws.readyState, WebSocket.OPEN);
  assert.equal(ops(goneSse.events()).length + ops(goneWs.events).length, 0, 'nothing after the cut');

  // a viewer whose role changes stays; once removed, goes too
  await rc.cmd('HSET', key, '63', 'editor');
  await rc.emit(room, 'room', { reason: 'members' });
  await sleep(300);
  assert.equal(viewerWs.ws.readyState, WebSocket.OPEN);
  await rc.cmd('HDEL', key, '63');
  await rc.emit(room, 'room', { reason: 'members' });
  assert.equal(await Promise.race([viewerWs.closed, sleep(10000).then(() => 'open')]), 1008);
  assert.ok(!exited(keptSse));
  // removed before it streams: a bearer token is refused from now on
  const r = await fetch(`${broker.base}/events/rooms/${room}/poll?since=0`, { headers: bearer(61) });
  assert.equal(r.status, 403);
  keptSse.close();
});

test('a re-check answering what the script never gives ends the stream (fails closed), as an erring one does', async () => {
  // the rights script answers the member cache's value as the role: a value that is none of
  // owner/editor/viewer is an answer the broker cannot read (RIGHTS_UNKNOWN), which used to
  // keep the stream open; the stream opened fine, so only the re-check sees it
  const room = await newRoom({ visibility: 'private' });
  const key = `cc:room:{${room}}:members`;
  await rc.cmd('HSET', key, '91', 'editor', '92', 'editor');
  const odd = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 91, 'odd')}`);
  const removed = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 92, 'removed')}`);
  for (const c of [odd, removed]) {
    await waitFor(() => c.text.includes(': connected'), { what: 'SSE connected' });
  }
  await rc.cmd('HSET', key, '91', 'not-a-role');
  await rc.cmd('HDEL', key, '92');
  await rc.emit(room, 'room', { reason: 'members' });
  // one answer covers both subjects: once the removed member's stream ends, the other's
  // verdict has been read too
  await waitFor(() => exited(removed), { what: 'the removed member closed', timeout: 5000, interval: 20 });
  await waitFor(() => exited(odd), { what: 'the stream with an unreadable answer closed', timeout: 2000, interval: 20 });
  // reconnecting is refused at the opening check, as before (503)
  const again = await fetch(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 91, 'again')}`);
  assert.equal(again.status, 503);
  await again.body?.cancel();
});

test('a deleted room closes every stream after delivering the event', async () => {
  const room = await newRoom();
  await rc.cmd('HSET', `cc:room:{${room}}:members`, '71', 'owner', '72', 'viewer');
  const sse = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 71, 'owner')}`);
  const es = eventSource(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 72, 'viewer')}`);
  const ws = wsClosable(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room, 73, 'stranger')}`);
  await ws.opened;
  await waitFor(() => sse.text.includes(': connected'), { what: 'SSE connected' });
  await waitFor(() => es.es.readyState === 1, { what: 'eventsource open' });
  const first = await poll(room, undefined, tk(room, 71));
  const pending = poll(room, first.last_event_id ?? '0', tk(room, 71));
  await sleep(300);

  // as fcgi/h_rooms.c does: the members and visibility caches go first, then the event
  await rc.cmd('DEL', `cc:room:{${room}}:members`, `cc:room:{${room}}:visibility`);
  const gone = await rc.emit(room, 'room', { reason: 'deleted', id: room });
  const j = await pending;
  assert.deepEqual(j.events.map((e) => [e.id, e.type, e.data.reason]), [[gone, 'room', 'deleted']]);
  await waitFor(() => exited(sse) && ws.ws.readyState === WebSocket.CLOSED,
    { what: 'streams closed', timeout: 10000, interval: 20 });
  assert.equal(await ws.closed, 1008);
  assert.deepEqual(roomEvents(sse.events(), 'deleted').map((e) => e.id), [gone]);
  assert.deepEqual(roomEvents(ws.events, 'deleted').map((e) => e.id), [gone]);
  await waitFor(() => roomEvents(es.events, 'deleted').length === 1, { what: 'eventsource got it' });
  es.close();
  // the room's bearer check fails now that its members and visibility are gone: no such room
  const r = await fetch(`${broker.base}/events/rooms/${room}/poll?since=0`,
    { headers: { Authorization: `Bearer ${session(SECRET, { user: 71 })}` } });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error, 'room_not_found');
  const h = await (await fetch(`${broker.base}/events/health`)).json();
  assert.equal(h.redis, 'ok');
});

// ": connected" means live: subscribed and caught up. A stream that resumes gets its replay
// first, then the comment; a stream that gives no id and acts on the comment at once (a
// script that posts right after it) gets what it caused, in a room no stream of this broker
// followed before (its subscription is new), again and again.
test('SSE ": connected" comes once the stream is live: after the replay, and nothing published after it is missed', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 3);
  const resumed = await rawSse(broker.port, `/events/rooms/${room}?ticket=${tk(room)}&last_event_id=0`);
  try {
    const at = resumed.text.indexOf(': connected');
    assert.ok(at > 0, resumed.text);
    const before = parseSse(resumed.text.slice(0, at));
    assert.deepEqual(before.filter((e) => e.type === 'operation').map((e) => e.id), ids, 'the replay comes before ": connected"');
    assert.equal(resumed.text.split(': connected').length, 2, 'said once');
  } finally {
    resumed.destroy();
  }
  for (let i = 0; i < 20; i++) {
    const fresh = await newRoom();
    const s = await rawSse(broker.port, `/events/rooms/${fresh}?ticket=${tk(fresh)}`);
    try {
      assert.ok(s.text.includes(': connected'), s.text);
      const id = await rc.emit(fresh, 'operation', { revision: 1, ops: ['now'] });
      await waitFor(() => parseSse(s.text).some((e) => e.id === id), { timeout: 5000, what: `the event sent right after ": connected" (round ${i})` });
    } finally {
      s.destroy();
    }
  }
});

// The one-room WebSocket stream's counterpart of ": connected": a `subscribed` frame once
// live, whose id is where the room stood then (the last replayed event of a stream that gave
// an id). Resolves once it has come, with every frame so far in `events`; rejects if the
// stream closes first or it does not come within 5 s.
function wsLive(room, query = '') {
  const c = wsClient(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room)}${query}`);
  c.live = new Promise((resolve, reject) => {
    const late = setTimeout(() => reject(new Error(`no "subscribed" within 5 s: ${JSON.stringify(c.events)}`)), 5000);
    c.ws.on('message', () => { if (c.events.at(-1).type === 'subscribed') { clearTimeout(late); resolve(c); } });
    c.ws.once('error', reject);
    c.ws.once('close', (code) => reject(new Error(`closed (${code}) before "subscribed": ${JSON.stringify(c.events)}`)));
  }).catch((e) => { c.close(); throw e; });
  return c;
}
const subscribedFrames = (events) => events.filter((e) => e.type === 'subscribed');

// Redis stream ids "ms-seq", in order.
const compareIds = (a, b) => {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
};
const historyIds = async (room) => (await rc.cmd('XRANGE', `cc:room:{${room}}:events`, '-', '+')).map((e) => e[0]);

// Opening a stream also writes its user's `join` to the history, before or after the stream
// is live: ids are compared with the history as it is, not with the operations alone.
test('WebSocket "subscribed" comes once the stream is live: after the replay with its last id, and nothing published after it is missed', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 3);
  for (const [start, replayed] of [['0', ids], [ids[0], ids.slice(1)], [ids[2], []]]) {
    const resumed = await wsLive(room, `&last_event_id=${start}`).live;
    try {
      const at = resumed.events.findIndex((e) => e.type === 'subscribed');
      const before = resumed.events.slice(0, at);
      assert.deepEqual(ops(before).map((e) => e.id), replayed, `from ${start}: the replay comes first`);
      assert.deepEqual(resumed.events[at], { type: 'subscribed', id: before.length ? before.at(-1).id : start, data: {} },
        `from ${start}: the id of the last event replayed`);
    } finally {
      resumed.close();
    }
  }
  // no id: where the room stands (0-0 before its first event); every event after that id
  // reaches the stream, on a subscription the broker makes for it, however soon it is sent
  const quiet = await newRoom();
  const q = await wsLive(quiet).live;
  const qid = q.events.find((e) => e.type === 'subscribed').id;
  assert.ok(qid === '0-0' || (await historyIds(quiet))[0] === qid, `${qid}: 0-0 or this stream's join`);
  q.close();
  for (let i = 0; i < 20; i++) {
    const r = i === 0 ? room : await newRoom();
    const s = await wsLive(r).live;
    try {
      const live = s.events.find((e) => e.type === 'subscribed').id;
      const id = await rc.emit(r, 'operation', { revision: 1, ops: ['now'] });
      const all = await historyIds(r);
      assert.ok(all.includes(live), `round ${i}: ${live} is an event of the room`);
      const after = all.filter((x) => compareIds(x, live) > 0);
      assert.ok(after.includes(id));
      await waitFor(() => after.every((x) => s.events.some((e) => e.id === x)), { timeout: 5000, what: `every event after "subscribed" (round ${i})` });
      // events the subscription brought during the catch-up come before it, within its id
      const at = s.events.findIndex((e) => e.type === 'subscribed');
      assert.ok(s.events.every((e, k) => k === at || (compareIds(e.id, live) > 0) === (k > at)), `round ${i}: split at ${live}`);
      assert.equal(subscribedFrames(s.events).length, 1);
    } finally {
      s.close();
    }
  }
});

// A one-room SSE stream that asks for it (`subscribed=1`) says "live" with an event, as the
// WebSocket does with its frame: `event: subscribed`, `data: {}`, and an `id:` that is where
// the room stood (the last replayed event of a stream that gave an id), in place of the
// comment, which a page's EventSource never shows. Without the parameter (or with 0) the
// stream is as it always was; any other value is refused.
const SSE_LIVE_EVENT = /event: subscribed\ndata: \{\}\n\n/;

test('SSE with subscribed=1 says "subscribed" with the room\'s position once live; without it, ": connected" as before', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 3);
  const live = (r, query) => rawSse(broker.port, `/events/rooms/${r}?ticket=${tk(r)}&subscribed=1${query}`, SSE_LIVE_EVENT);
  for (const [start, replayed] of [['0', ids], [ids[0], ids.slice(1)], [ids[2], []]]) {
    const s = await live(room, `&last_event_id=${start}`);
    s.destroy();
    const events = parseSse(s.text);
    const at = events.findIndex((e) => e.type === 'subscribed');
    assert.ok(at >= 0, `from ${start}: ${s.text}`);
    const before = events.slice(0, at);
    assert.deepEqual(ops(before).map((e) => e.id), replayed, `from ${start}: the replay comes first`);
    assert.deepEqual(events[at], { type: 'subscribed', id: before.length ? before.at(-1).id : start, data: {} },
      `from ${start}: the id of the last event replayed`);
    assert.ok(!s.text.includes(': connected'), `from ${start}: the event instead of the comment: ${s.text}`);
  }
  // no id: where the room stands (0-0 before its first event, or this stream's join), and
  // every event after that id reaches the stream however soon it is sent
  const quiet = await newRoom();
  const q = await live(quiet, '');
  q.destroy();
  const qid = parseSse(q.text).find((e) => e.type === 'subscribed').id;
  assert.ok(qid === '0-0' || (await historyIds(quiet))[0] === qid, `${qid}: 0-0 or this stream's join`);
  for (let i = 0; i < 10; i++) {
    const r = await newRoom();
    const s = await live(r, '');
    try {
      const at = parseSse(s.text).find((e) => e.type === 'subscribed').id;
      const id = await rc.emit(r, 'operation', { revision: 1, ops: ['now'] });
      const after = (await historyIds(r)).filter((x) => compareIds(x, at) > 0);
      assert.ok(after.includes(id));
      await waitFor(() => after.every((x) => parseSse(s.text).some((e) => e.id === x)), { timeout: 5000, what: `every event after "subscribed" (round ${i})` });
      const events = parseSse(s.text);
      const k = events.findIndex((e) => e.type === 'subscribed');
      assert.ok(events.every((e, j) => j === k || (compareIds(e.id, at) > 0) === (j > k)), `round ${i}: split at ${at}`);
      assert.equal(events.filter((e) => e.type === 'subscribed').length, 1, 'said once');
    } finally {
      s.destroy();
    }
  }
  // not asked for (or 0): the comment, and no event that is not the room's
  for (const query of ['', '&subscribed=0', '&last_event_id=0', '&last_event_id=0&subscribed=0']) {
    const s = await rawSse(broker.port, `/events/rooms/${room}?ticket=${tk(room)}${query}`);
    s.destroy();
    assert.ok(s.text.includes(': connected'), `${query}: ${s.text}`);
    assert.ok(!s.text.includes('subscribed'), `${query}: ${s.text}`);
  }
  // any other value, or the parameter twice: 400 before anything else
  for (const v of ['', 'yes', 'true', '2', '10', '01', '1%00', '%0a1', 'x'.repeat(5000)]) {
    const raw = await rawRequest(broker.port, `GET /events/rooms/${room}?ticket=${tk(room)}&subscribed=${v} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(raw, /^HTTP\/1.1 400 /, `subscribed=${v.slice(0, 20)}`);
    assert.match(raw, /"error":"invalid_request"/);
    assert.match(raw, /subscribed takes 0 or 1/);
  }
  for (const query of ['subscribed=1&subscribed=1', 'subscribed=1&subscribed=0', 'subscribed&x=1']) {
    const raw = await rawRequest(broker.port, `GET /events/rooms/${room}?ticket=${tk(room)}&${query} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(raw, /^HTTP\/1.1 400 /, query);
  }
  // a percent-encoded name or value is the same parameter
  const enc = await rawSse(broker.port, `/events/rooms/${room}?ticket=${tk(room)}&sub%73cribed=%31`, SSE_LIVE_EVENT);
  enc.destroy();
  assert.match(enc.text, SSE_LIVE_EVENT);
  assert.equal((await fetch(`${broker.base}/events/health`)).status, 200);
});

// The live marker goes out even when the client's output is at its bound
// (BROKER_CLIENT_BUFFER): a replay may leave it full to the brim, and the few bytes of the
// marker must not drop the client just as it caught up. The bound is reached exactly here:
// the one event replayed is as large as the bound lets an event be, so it is written only into
// an empty output and leaves less room than the marker takes (the output goes to the socket
// on a later turn of the broker's loop, after the marker), as for a client that has not read.
const LOW_BOUND = 4096;
const WS_HEAD_ALLOWANCE = 14; // what the broker counts for a frame's head (server.c)

// An operation's data padded so that render(data) is `size` bytes long.
function paddedData(render, size) {
  const data = (pad) => `{"revision":1,"ops":["${pad}"]}`;
  const pad = size - render(data(''));
  assert.ok(pad > 0);
  return data('x'.repeat(pad));
}

// A room with a quiet first stream of `user` (so the stream under test writes no `join`
// after the event) and one event of the size `render` gives; resolves with the id to resume
// from (just before that event) and the event's id.
async function brimRoom(port, render, user) {
  const room = await newRoom();
  const keeper = await rawSse(port, `/events/rooms/${room}?ticket=${tk(room, user)}`);
  assert.ok(keeper.text.includes(': connected'), keeper.text);
  await waitFor(async () => (await historyIds(room)).length > 0, { what: 'the keeper\'s join' });
  const from = (await historyIds(room)).at(-1);
  const guess = `${Date.now()}-0`; // ids are as long as this one for centuries
  const id = await rc.emit(room, 'operation', paddedData((d) => render(room, guess, d), LOW_BOUND));
  assert.equal(id.length, guess.length, `event id ${id}`);
  return { room, from, id, keeper };
}

// Pub/sub keeps nothing: a message the broker's subscription never got (it was at a node
// that was not yet told of a failover, say) would be a silent hole in every live stream.
// Each message names the history entry before it, so the next one that does come shows the
// hole, and the streams catch up from the history, in order, before that one goes out.
test('a message lost on the channel: the next one shows it, and live streams catch up from the history in order', async () => {
  const metricsPort = await freePort();
  const own = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_METRICS_PORT: String(metricsPort) } });
  const repairs = () => metricValue(metricsPort, 'codecollab_broker_gap_repairs_total');
  const room = await newRoom();
  const curl = curlSse(`${own.base}/events/rooms/${room}?ticket=${tk(room)}`);
  const ws = wsClient(`ws://127.0.0.1:${own.port}/events/rooms/${room}/ws?ticket=${tk(room)}`);
  try {
    await waitFor(() => curl.text.includes(': connected') && subscribedFrames(ws.events).length === 1, { what: 'both streams live' });
    const want = await emitOps(room, 3);
    const got = (c) => ops(c === ws ? ws.events : c.events()).map((e) => e.id);
    await waitFor(() => got(curl).length === 3 && got(ws).length === 3, { what: 'the first three' });
    assert.equal(await repairs(), 0, 'no repair while nothing was lost');
    // an event written to the history but never published: lost on the way
    want.push(await rc.cmd('XADD', roomKey(room, 'events'), '*', 'type', 'operation',
      'data', JSON.stringify({ revision: 4, ops: ['lost'], text: 'a\nb' })));
    want.push(...await emitOps(room, 2, 4));
    for (const c of [curl, ws]) {
      await waitFor(() => got(c).length >= 6, { timeout: 5000, what: `the lost event and the two after it (${c === ws ? 'WebSocket' : 'SSE'})` });
      assert.deepEqual(got(c), want, 'every event once, in order');
    }
    assert.equal(ops(ws.events)[3].data.ops[0], 'lost');
    assert.equal(await repairs(), 2, 'one repair per live stream');
    assert.match(own.output, /messages were lost on the channel; catching up from the history/);
    assert.equal(subscribedFrames(ws.events).length, 1, 'the WebSocket still said live once');
    assert.equal(curl.text.split(': connected').length, 2, 'SSE still said live once');
  } finally {
    ws.close();
    await curl.close();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

// Events of one room that reach the broker in one read of its subscription (a busy room, or a
// broker that fell behind) go to each SSE stream in one write: one system call instead of one
// per event, the kernel's TCP path being most of what a delivery costs. MULTI/EXEC makes the
// burst: Redis runs the queued scripts in one go and writes their messages out together.
// Every transport still gets every event once and in order, and a message lost inside such a
// burst is still caught up from the history before the ones after it.
test('a burst of events from Redis goes to each SSE and WebSocket stream in one write; every transport gets it whole and in order, with a loss inside it repaired', async () => {
  const metricsPort = await freePort();
  const own = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_METRICS_PORT: String(metricsPort) } });
  const metric = (series) => metricValue(metricsPort, series);
  const room = await newRoom();
  const url = `/events/rooms/${room}?ticket=${tk(room)}`;
  const curl = curlSse(`${own.base}${url}`);
  const raw = await rawSse(own.port, url);
  const ws = wsClient(`ws://127.0.0.1:${own.port}/events/rooms/${room}/ws?ticket=${tk(room)}`);
  const q = new URLSearchParams({ ticket: tk(room) });
  try {
    await waitFor(() => curl.text.includes(': connected') && subscribedFrames(ws.events).length === 1, { what: 'the streams live' });
    assert.match(raw.text, /: connected/);
    // a long-poll waiting at the room's tail (no since) is answered with the burst's start
    const waiting = fetch(`${own.base}/events/rooms/${room}/poll?${q}`).then((r) => r.json());
    await sleep(200);
    const batchedOf = (t) => metric(`codecollab_broker_events_batched_total{transport="${t}"}`);
    assert.equal(await batchedOf('sse') + await batchedOf('ws'), 0, 'nothing batched before the burst');
    const burst = async (lost) => {
      await rc.cmd('MULTI');
      for (let i = 0; i < 12; i++) {
        if (i === lost) {
          // written to the history, never published
          await rc.cmd('XADD', roomKey(room, 'events'), '*', 'type', 'operation', 'data', JSON.stringify({ ops: [`lost${i}`] }));
        } else {
          await rc.cmd('EVAL', ...emitArgs(room, 'operation', { ops: [`b${i}`], text: 'a\nb' }));
        }
      }
      return (await rc.cmd('EXEC')).map((r) => (Array.isArray(r) ? r[0] : r));
    };
    const rawOps = () => parseSse(raw.text.slice(0, raw.text.lastIndexOf('\n\n') + 2)).filter((e) => e.type === 'operation').map((e) => e.id);
    const got = { sse: () => ops(curl.events()).map((e) => e.id), raw: rawOps, ws: () => ops(ws.events).map((e) => e.id) };
    const first = await burst(-1);
    assert.equal(first.length, 12);
    for (const [k, f] of Object.entries(got)) {
      await waitFor(() => f().length >= 12, { timeout: 5000, what: `the burst (${k})` });
      assert.deepEqual(f(), first, `${k}: every event of the burst once, in order`);
    }
    const answer = await waiting;
    assert.deepEqual(answer.events.filter((e) => e.type === 'operation').map((e) => e.id), first.slice(0, answer.events.length), 'the long-poll answer: the burst from its start, in order');
    assert.ok(answer.events.length >= 1);
    // two SSE streams and a WebSocket, each taking the burst in one write or a few
    const sseBatched = await batchedOf('sse'), wsBatched = await batchedOf('ws');
    assert.ok(sseBatched >= 2 && sseBatched <= 2 * 11, `each SSE stream took events of the burst in one write with the one before (batched ${sseBatched})`);
    assert.ok(wsBatched >= 1 && wsBatched <= 11, `so did the WebSocket (batched ${wsBatched})`);
    assert.equal(await metric('codecollab_broker_gap_repairs_total'), 0);

    // the fourth message of the next burst is lost on the channel
    const second = await burst(3);
    for (const [k, f] of Object.entries(got)) {
      await waitFor(() => f().length >= 24, { timeout: 5000, what: `the second burst (${k})` });
      assert.deepEqual(f(), [...first, ...second], `${k}: the lost event in its place, nothing twice`);
    }
    assert.equal(ops(ws.events)[12 + 3].data.ops[0], 'lost3');
    assert.equal(await metric('codecollab_broker_gap_repairs_total'), 3, 'one repair per live stream');
    const polled = await poll(room, first[11]);
    assert.deepEqual(polled.events.filter((e) => e.type === 'operation').map((e) => e.id), second, 'a poll from the first burst\'s end');
  } finally {
    ws.close();
    raw.destroy();
    await curl.close();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

// A one-room SSE stream for many megabytes: its bytes kept as they come, the events counted
// in each new piece (with the end of the one before, so a marker split between two reads
// counts once) instead of searching all of the text at every read.
function bulkSse(port, path) {
  return new Promise((resolve, reject) => {
    const s = createConnection(port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    const chunks = [];
    const marker = '\nevent: operation\n';
    let tail = '', live = false;
    s.count = 0;
    s.bytes = 0;
    s.text = () => { const t = Buffer.concat(chunks).toString(); return t.slice(t.indexOf('\r\n\r\n') + 4, t.lastIndexOf('\n\n') + 2); };
    s.on('data', (d) => {
      chunks.push(d);
      s.bytes += d.length;
      const t = tail + d.toString('latin1');
      for (let k = t.indexOf(marker); k >= 0; k = t.indexOf(marker, k + 1)) s.count++;
      tail = t.slice(-(marker.length - 1));
      if (!live && t.includes(': connected')) { live = true; resolve(s); }
    });
    s.on('error', reject);
    s.on('close', () => { if (!live) reject(new Error(`stream closed: ${Buffer.concat(chunks)}`)); });
  });
}

// Stream writes are gathered into io_uring submissions (sse-broker/server.c, "Sends in one
// submission"): a room's event to a hundred streams leaves in a few system calls, and a
// socket that takes only part of a write (its client not reading) gets the rest, in order,
// once it reads. BROKER_IO_URING=0 writes one call per stream, with the same result.
test('stream writes go out in io_uring submissions, the rest of a short one in order once the client reads; BROKER_IO_URING=0 writes one by one', async () => {
  for (const uring of ['1', '0']) {
    const metricsPort = await freePort();
    const own = await startBroker({
      redisPort: redis.port, secret: SECRET,
      // room for the 12 MiB the paused clients below are sent, so they are not dropped; no
      // heartbeat comment in the way (a queued ": ping" would take a stream's write out of
      // the batch)
      env: {
        ...BROKER_ENV, BROKER_METRICS_PORT: String(metricsPort), BROKER_IO_URING: uring, BROKER_CLIENT_BUFFER: String(64 << 20),
        BROKER_HEARTBEAT_MS: '60000', BROKER_WS_TIMEOUT_MS: '120000',
      },
    });
    const metric = (series) => metricValue(metricsPort, series);
    const submissions = () => metric('codecollab_broker_send_submissions_total');
    const submitted = () => metric('codecollab_broker_sends_submitted_total');
    const streams = [];
    let ws, paused, reader, paused2, reader2;
    try {
      if (uring === '1') assert.match(own.output, /stream writes: io_uring/);
      else assert.doesNotMatch(own.output, /io_uring/);
      // a hundred SSE streams and a WebSocket in one room
      const room = await newRoom();
      const url = `/events/rooms/${room}?ticket=${tk(room)}`;
      for (let i = 0; i < 100; i++) streams.push(await rawSse(own.port, url));
      ws = wsClient(`ws://127.0.0.1:${own.port}/events/rooms/${room}/ws?ticket=${tk(room)}`);
      await waitFor(() => streams.every((s) => s.text.includes(': connected')) && subscribedFrames(ws.events).length === 1, { what: 'the streams live' });
      const s0 = await submissions(), n0 = await submitted();
      const ids = await emitOps(room, 3);
      const opIds = (text) => parseSse(text.slice(0, text.lastIndexOf('\n\n') + 2)).filter((e) => e.type === 'operation').map((e) => e.id);
      await waitFor(() => streams.every((s) => opIds(s.text).length >= 3) && ops(ws.events).length >= 3, { what: 'three events on every stream' });
      for (const s of streams) assert.deepEqual(opIds(s.text), ids);
      assert.deepEqual(ops(ws.events).map((e) => e.id), ids);
      const calls = await submissions() - s0, sends = await submitted() - n0;
      if (uring === '1') {
        // at least one send per stream (events that come from Redis together share one)
        assert.ok(sends >= 101, `every stream's writes went through the ring (${sends} sends)`);
        assert.ok(calls >= 3 && calls <= sends / 10, `many sends per submission (${sends} in ${calls})`);
      } else {
        assert.equal(calls, 0);
        assert.equal(sends, 0);
      }

      // a client that does not read, and one that does, in a room of events of 6 KiB
      const big = await newRoom();
      const bigUrl = `/events/rooms/${big}?ticket=${tk(big)}`;
      paused = await bulkSse(own.port, bigUrl);
      reader = await bulkSse(own.port, bigUrl);
      paused.pause();
      const want = [];
      const data = (i) => `${i}:${'z'.repeat(6 * 1024)}`;
      for (let i = 0; i < 2000; i++) want.push(await rc.emit(big, 'operation', { revision: i + 1, ops: [data(i)] }));
      await waitFor(() => reader.count >= 2000, { timeout: 30000, what: 'the reader has all 2,000' });
      // the paused client's socket is full (12 MiB is more than the kernel holds for it): the
      // broker holds the rest, and reading brings it all
      assert.ok(paused.count < 2000, `the paused client is behind (${paused.count})`);
      paused.resume();
      await waitFor(() => paused.count >= 2000, { timeout: 30000, what: 'the paused client catches up' });
      for (const s of [reader, paused]) {
        const evs = ops(parseSse(s.text()));
        assert.deepEqual(evs.map((e) => e.id), want, 'every event once, in order');
        evs.forEach((e, i) => assert.equal(e.data.ops[0], data(i), `event ${i} whole`));
      }

      // Events that come from Redis 40 at a time, so that each stream gets several in one
      // write (a room's burst) and writes of the batch and of the output queue alternate,
      // while one client's socket fills and the other's keeps up.
      const burst = await newRoom();
      const burstUrl = `/events/rooms/${burst}?ticket=${tk(burst)}`;
      paused2 = await bulkSse(own.port, burstUrl);
      reader2 = await bulkSse(own.port, burstUrl);
      paused2.pause();
      const small = (i) => `${i}:${'q'.repeat(280 + (i % 61))}`;
      const want2 = [];
      for (let b = 0; b < 300; b++) {
        const queued = [rc.cmd('MULTI')];
        for (let i = 0; i < 40; i++) queued.push(rc.cmd('EVAL', ...emitArgs(burst, 'operation', { ops: [small(b * 40 + i)] })));
        queued.push(rc.cmd('EXEC'));
        const replies = await Promise.all(queued);
        want2.push(...replies.at(-1).map((r) => (Array.isArray(r) ? r[0] : r)));
      }
      await waitFor(() => reader2.count >= want2.length, { timeout: 30000, what: 'the reader has all 12,000' });
      assert.ok(paused2.count < want2.length, `the second paused client is behind (${paused2.count})`);
      paused2.resume();
      await waitFor(() => paused2.count >= want2.length, { timeout: 30000, what: 'the second paused client catches up' });
      for (const s of [reader2, paused2]) {
        const evs = ops(parseSse(s.text()));
        assert.deepEqual(evs.map((e) => e.id), want2, 'every event of the bursts once, in order');
        evs.forEach((e, i) => assert.equal(e.data.ops[0], small(i), `event ${i} whole`));
      }
      if (uring === '1') {
        const batched = await metric('codecollab_broker_events_batched_total{transport="sse"}');
        assert.ok(batched > 0, `events of a burst went out together (${batched})`);
      }
      assert.equal(await metric('codecollab_broker_clients_dropped_total{reason="slow_reader"}'), 0);
    } finally {
      ws?.close();
      for (const s of [...streams, paused, reader, paused2, reader2]) s?.destroy();
      const r = await stop(own);
      assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
    }
  }
});

// A replay through an output bound smaller than two of its events, with no heartbeat due to
// wake anything: it goes on as each part leaves (conn_drained), the send batch's bytes
// counting against the bound while they wait (sse-broker/server.c, usend_len).
test('a replay through a small output bound goes on as each part leaves, with no heartbeat to wake it (SSE and WebSocket)', async () => {
  const own = await startBroker({
    redisPort: redis.port, secret: SECRET,
    env: { ...BROKER_ENV, BROKER_CLIENT_BUFFER: '8192', BROKER_HEARTBEAT_MS: '60000', BROKER_WS_TIMEOUT_MS: '120000' },
  });
  let curl, ws;
  try {
    const room = await newRoom();
    // twenty events of about 3.6 and 4.7 KiB in turn: a page of the replay (half the bound)
    // holds two of them, which do not fit the bound together
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push(await rc.emit(room, 'operation', { revision: i + 1, ops: [`${i}:${'p'.repeat(i % 2 ? 4700 : 3600)}`] }));
    const t = tk(room);
    curl = curlSse(`${own.base}/events/rooms/${room}?ticket=${t}`, { 'Last-Event-ID': ids[0] });
    ws = wsClient(`ws://127.0.0.1:${own.port}/events/rooms/${room}/ws?ticket=${t}&last_event_id=${ids[0]}`);
    await waitFor(() => ops(curl.events()).length === 19 && ops(ws.events).length === 19, { timeout: 5000, what: 'both replays whole' });
    assert.deepEqual(ops(curl.events()).map((e) => e.id), ids.slice(1));
    assert.deepEqual(ops(ws.events).map((e) => e.id), ids.slice(1));
  } finally {
    ws?.close();
    await curl?.close();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

// The event lost on the channel may be a rights event: replayed by the repair, it must be
// followed by the same re-check as a live one, or a member removed meanwhile keeps streaming.
test('a rights event lost on the channel and replayed by the repair re-checks the stream: a removed member\'s stream ends', async () => {
  const room = await newRoom({ visibility: 'private' });
  await rc.cmd('HSET', `cc:room:{${room}}:members`, '94', 'owner', '95', 'editor');
  const stay = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 94, 'owner')}`);
  const gone = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 95, 'editor')}`);
  try {
    await waitFor(() => stay.text.includes(': connected') && gone.text.includes(': connected'), { what: 'both streams live' });
    const want = await emitOps(room, 1);
    await waitFor(() => ops(stay.events()).length === 1 && ops(gone.events()).length === 1, { what: 'the first event' });
    // B is removed and the `room` event that says so is written but never published
    await rc.cmd('HDEL', `cc:room:{${room}}:members`, '95');
    const members = await rc.cmd('XADD', roomKey(room, 'events'), '*', 'type', 'room',
      'data', JSON.stringify({ reason: 'members' }));
    // the next event names it as its prev: both streams repair from the history
    want.push(...await emitOps(room, 1, 1));
    const seen = (c) => c.events().filter((e) => e.type === 'operation' || e.type === 'room').map((e) => e.id);
    await waitFor(() => seen(stay).length === 3, { timeout: 5000, what: 'the member\'s repair' });
    assert.deepEqual(seen(stay), [want[0], members, want[1]], 'the member gets every event once, in order');
    await waitFor(() => exited(gone), { timeout: 5000, what: 'the removed member\'s stream to end' });
    assert.deepEqual(seen(gone).slice(0, 2), [want[0], members], 'it got what came before its removal');
    assert.ok(!exited(stay), 'the member still streams');
  } finally {
    await stay.close();
    await gone.close();
  }
});

test('the live marker goes out past the output bound: SSE ": connected" or "subscribed", WebSocket "subscribed"', async () => {
  const low = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_CLIENT_BUFFER: String(LOW_BOUND) } });
  const sseSize = (room, id, data) => `id: ${id}\nevent: operation\ndata: ${data}\n\n`.length;
  const wsSize = (room, id, data) => `{"type":"operation","id":"${id}","data":${data}}`.length + WS_HEAD_ALLOWANCE;
  try {
    {
      const user = 81;
      const { room, from, id, keeper } = await brimRoom(low.port, sseSize, user);
      const s = await rawSse(low.port, `/events/rooms/${room}?ticket=${tk(room, user)}&last_event_id=${from}`);
      s.destroy();
      keeper.destroy();
      assert.deepEqual(parseSse(s.text).map((e) => e.id), [id], s.text.slice(0, 400));
      assert.ok(s.text.endsWith(`\n\n: connected\n\n`), `SSE ": connected" after the event at the bound: ${s.text.slice(-200)}`);
    }
    {
      const user = 83;
      const { room, from, id, keeper } = await brimRoom(low.port, sseSize, user);
      const s = await rawSse(low.port, `/events/rooms/${room}?ticket=${tk(room, user)}&last_event_id=${from}&subscribed=1`, SSE_LIVE_EVENT);
      s.destroy();
      keeper.destroy();
      assert.deepEqual(parseSse(s.text).map((e) => [e.type, e.id]), [['operation', id], ['subscribed', id]], s.text.slice(0, 400));
      assert.ok(s.text.endsWith(`\n\nid: ${id}\nevent: subscribed\ndata: {}\n\n`), `SSE "subscribed" after the event at the bound: ${s.text.slice(-200)}`);
    }
    {
      const user = 82;
      const { room, from, id, keeper } = await brimRoom(low.port, wsSize, user);
      const c = wsClient(`ws://127.0.0.1:${low.port}/events/rooms/${room}/ws?ticket=${tk(room, user)}&last_event_id=${from}`);
      const end = await new Promise((resolve) => {
        c.ws.on('message', () => { if (c.events.at(-1).type === 'subscribed') resolve('subscribed'); });
        c.ws.once('close', (code) => resolve(`closed (${code})`));
        c.ws.once('error', (e) => resolve(`error: ${e.message}`));
      });
      c.close();
      keeper.destroy();
      assert.equal(end, 'subscribed', `WebSocket "subscribed" after the event at the bound: ${JSON.stringify(c.events.map((e) => e.type))}`);
      assert.deepEqual(c.events.map((e) => [e.type, e.id]), [['operation', id], ['subscribed', id]]);
    }
  } finally {
    const r = await stop(low);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${low.output}`);
  }
});

// ---- capacity (docs/OPERATIONS.md, "Capacity") ----

// A raw SSE stream: resolves once the broker says ": connected" (or `live`, a string or a
// pattern), or with the whole answer when the broker answers and closes instead (a refusal),
// or with what came so far (the socket still open) when neither happened within 10 s.
function rawSse(port, path, live = ': connected') {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = createConnection(port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    const late = setTimeout(() => resolve(s), 10000);
    const done = () => { clearTimeout(late); resolve(s); };
    s.text = '';
    s.on('data', (d) => { s.text += d; if (typeof live === 'string' ? s.text.includes(live) : live.test(s.text)) done(); });
    s.on('error', (e) => { clearTimeout(late); reject(e); });
    s.on('close', () => { s.ms = performance.now() - t0; done(); });
  });
}

test('BROKER_MAX_STREAMS over two processes: a stream past it gets 503 at once, a freed place is taken again, events reach both processes', async () => {
  const MAX = 4;
  const capped = await startBroker({
    redisPort: redis.port, secret: SECRET,
    env: { ...BROKER_ENV, BROKER_MAX_STREAMS: String(MAX), BROKER_PROCESSES: '2' },
  });
  const health = async () => (await fetch(`${capped.base}/events/health`)).json();
  try {
    const room = await newRoom();
    const t = tk(room, 61, 'cap');
    const path = `/events/rooms/${room}?ticket=${t}`;
    // each stream lands on whichever process accepts it: the bound counts them all
    const open = [];
    for (let i = 0; i < MAX; i++) open.push(await rawSse(capped.port, path));
    for (const s of open) assert.match(s.text, /^HTTP\/1\.1 200/);
    assert.equal((await health()).clients, MAX, 'health counts the streams of both processes');

    // every kind of stream is refused past the bound, with JSON and at once (no rights
    // check, no waiting)
    const refused = await rawSse(capped.port, path);
    assert.match(refused.text, /^HTTP\/1\.1 503 /);
    assert.match(refused.text, /\r\nRetry-After: 1\r\n/);
    const body = JSON.parse(refused.text.slice(refused.text.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error, 'too_many_clients');
    assert.ok(refused.ms < 2000, `the 503 took ${refused.ms} ms`);
    const ws = await fetch(`${capped.base}/events/rooms/${room}/ws?ticket=${t}`, {
      headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') },
    }).catch((e) => e);
    if (!(ws instanceof Error)) assert.equal(ws.status, 503);
    const lp = await fetch(`${capped.base}/events/rooms/${room}/poll?ticket=${t}`);
    assert.equal(lp.status, 503);
    assert.equal((await lp.json()).error, 'too_many_clients');

    // an event reaches every open stream, whichever process holds it
    const [id] = await emitOps(room, 1);
    await waitFor(() => open.every((s) => s.text.includes(`id: ${id}`)), { what: 'the event on every stream' });

    // a stream that ends gives its place back
    open.pop().destroy();
    await waitFor(async () => (await health()).clients === MAX - 1, { what: 'the place given back' });
    const again = await rawSse(capped.port, path);
    assert.match(again.text, /^HTTP\/1\.1 200/);
    open.push(again);
    for (const s of open) s.destroy();
    await waitFor(async () => (await health()).clients === 0, { what: 'streams gone' });
  } finally {
    const r = await stop(capped);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${capped.output}`);
  }
  assert.match(capped.output, /2 processes/);
});

const socketCount = (pid) => readdirSync(`/proc/${pid}/fd`)
  .filter((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:'); } catch { return false; } }).length;

test('BROKER_PROCESSES=2: each process takes about half of the new streams, and a second broker on the port is refused', async () => {
  const two = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_PROCESSES: '2' } });
  const open = [];
  try {
    const kids = childPids(two.pid);
    assert.equal(kids.length, 2, `the broker's processes: ${kids}`);
    const before = kids.map(socketCount);
    const room = await newRoom();
    const path = `/events/rooms/${room}?ticket=${tk(room, 62, 'share')}`;
    // 400 streams, 40 at a time; with one shared queue of connections the process that
    // woke first took most of them (a third and two thirds were measured)
    const N = 400;
    for (let i = 0; i < N; i += 40) {
      const batch = await Promise.all(Array.from({ length: 40 }, () => rawSse(two.port, path)));
      for (const s of batch) assert.match(s.text, /^HTTP\/1\.1 200/);
      open.push(...batch);
    }
    const held = kids.map((k, i) => socketCount(k) - before[i]);
    assert.equal(held[0] + held[1], N, `streams per process: ${held}`);
    // even odds per stream: 200 ± 10 (one standard deviation); 140 … 260 is six of them
    for (const h of held) assert.ok(h >= 140 && h <= 260, `streams per process: ${held}`);
    // and every one of them gets the room's events
    const [id] = await emitOps(room, 1);
    await waitFor(() => open.every((s) => s.text.includes(`id: ${id}`)), { what: 'the event on all 400 streams' });

    // a second broker on the same port would join the port's group and take half of the
    // new streams: it is refused, and the first one is left as it was
    const second = start(BROKER_BIN, [], {
      env: {
        ...process.env, ...BROKER_ENV, BROKER_HOST: '127.0.0.1', BROKER_PORT: String(two.port),
        BROKER_PROCESSES: '2', REDIS_URL: `redis://127.0.0.1:${redis.port}`, JWT_SECRET: SECRET,
      },
    });
    await waitFor(() => second.exitCode !== null, { what: 'the second broker to give up' });
    assert.equal(second.exitCode, 1, second.output);
    assert.match(second.output, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${two.port}: Address already in use`));
    const more = await rawSse(two.port, path);
    assert.match(more.text, /^HTTP\/1\.1 200/);
    open.push(more);
    assert.equal(kids.reduce((a, k, i) => a + socketCount(k) - before[i], 0), N + 1);
  } finally {
    for (const s of open) s.destroy();
    const r = await stop(two);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${two.output}`);
  }
  assert.match(two.output, /2 sockets, one per process/);
});

// ---- BROKER_MAX_STREAMS_PER_USER ----

// A request on a raw socket of its own, not awaited: s.settled resolves with the socket once
// live(text) holds (a stream that opened), or once the broker answered and closed (a refusal,
// an answered long-poll), or after 15 s with whatever came; s.status is then the answer's
// status code (null before a status line).
function rawStream(port, head, live = () => false) {
  const s = createConnection(port, '127.0.0.1', () => s.write(head));
  s.text = '';
  s.on('error', () => {});
  s.ended = new Promise((resolve) => s.on('close', resolve));
  s.settled = new Promise((resolve) => {
    const done = () => {
      clearTimeout(late);
      s.status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(s.text)?.[1]) || null;
      resolve(s);
    };
    const late = setTimeout(done, 15000);
    s.on('data', (d) => { s.text += d.toString('latin1'); if (live(s.text)) done(); });
    s.on('close', done);
  });
  return s;
}

const upgradeHeaders = () => 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
  `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n`;
const sseOpened = (t) => t.includes(': connected');
const wsOpened = (t) => t.startsWith('HTTP/1.1 101') && t.includes('"subscribed"');

// One stream of a kind in room: a one-room SSE, WebSocket or long-poll with the ticket t (a
// fresh one of user when not given), or a stream of several rooms (SSE, WebSocket) with the
// session token bearer.
function openKind(port, kind, room, { user, t = tk(room, user, `u${user}`), bearer }) {
  const get = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
  const auth = `Authorization: Bearer ${bearer}\r\n`;
  switch (kind) {
    case 'sse': return rawStream(port, get(`/events/rooms/${room}?ticket=${t}`), sseOpened);
    case 'ws': return rawStream(port, get(`/events/rooms/${room}/ws?ticket=${t}`, upgradeHeaders()), wsOpened);
    case 'poll': return rawStream(port, get(`/events/rooms/${room}/poll?ticket=${t}`));
    case 'multi': return rawStream(port, get(`/events/multi?rooms=${room}`, auth), sseOpened);
    case 'multi-ws': return rawStream(port, get(`/events/multi/ws?rooms=${room}`, auth + upgradeHeaders()), wsOpened);
    default: throw new Error(kind);
  }
}
const OPENED = { sse: 200, ws: 101, multi: 200, 'multi-ws': 101 };

// A refusal for the user's bound: 429 with Retry-After, the broker's JSON error naming the
// setting.
function assertTooManyStreams(s, what, cap) {
  assert.equal(s.status, 429, `${what}: ${s.text.slice(0, 400)}`);
  const a = parseAnswer(s.text);
  assert.match(a.headers['retry-after'] ?? '', /^[1-9]\d*$/, what);
  assert.equal(a.headers['content-type'], 'application/json', what);
  // readable by a page of another origin, as every answer of the broker is
  assert.equal(a.headers['access-control-allow-origin'], '*', what);
  const body = JSON.parse(a.body);
  assert.equal(body.error, 'too_many_streams', what);
  assert.match(body.message, new RegExp(`BROKER_MAX_STREAMS_PER_USER, ${cap}\\b`), what);
}

test('BROKER_MAX_STREAMS_PER_USER=3 over two processes: a user\'s fourth stream of any kind gets 429 too_many_streams, other users stream on, and a place comes back however a stream ends', async () => {
  const CAP = 3;
  const metricsPort = await freePort();
  const capped = await startBroker({
    redisPort: redis.port, secret: SECRET,
    env: {
      ...BROKER_ENV, BROKER_MAX_STREAMS_PER_USER: String(CAP), BROKER_PROCESSES: '2',
      // a waiting long-poll holds its place for the whole test unless an event answers it
      BROKER_POLL_TIMEOUT_MS: '120000', BROKER_WS_TIMEOUT_MS: '120000',
      BROKER_METRICS_PORT: String(metricsPort),
    },
  });
  const clients = async () => (await (await fetch(`${capped.base}/events/health`)).json()).clients;
  const dropped = (reason) => metricValue(metricsPort, `codecollab_broker_clients_dropped_total{reason="${reason}"}`);
  const A = 81, B = 82;
  const room = await newRoom();
  // long-polls wait in a room of their own: the presence events (join, leave) of the other
  // streams coming and going would answer them
  const pollRoom = await newRoom();
  const roomOf = (kind) => (kind === 'poll' ? pollRoom : room);
  const asA = { user: A, bearer: session(SECRET, { user: A, name: 'capA' }) };
  const asB = { user: B, bearer: session(SECRET, { user: B, name: 'capB' }) };
  const held = new Set();
  let refusals = 0;
  // opens a stream that must open: SSE and WebSocket ones once live, a long-poll once the
  // broker counts it (it says nothing while it waits)
  const admit = async (kind, as, streamsAfter) => {
    const s = openKind(capped.port, kind, roomOf(kind), as);
    held.add(s);
    if (kind === 'poll') {
      await waitFor(async () => (await clients()) === streamsAfter, { what: `the ${kind} counted`, timeout: 20000 });
      assert.equal(s.text, '', 'a waiting long-poll has no answer yet');
    } else {
      await s.settled;
      assert.equal(s.status, OPENED[kind], `${kind}: ${s.text.slice(0, 400)}`);
      assert.equal(await clients(), streamsAfter);
    }
    return s;
  };
  const refuse = async (kind, as) => {
    const s = await openKind(capped.port, kind, roomOf(kind), as).settled;
    assertTooManyStreams(s, kind, CAP);
    refusals++;
  };
  // Answers waiting long-polls with events in their room: one, then another every 200 ms
  // until every poll has its answer. The broker counts a poll before its room's channel is
  // surely subscribed, and an event before that is not one the poll waits for (it asked for
  // none before it; a client that had seen events would give its position and catch up).
  const answerPolls = async (polls) => {
    const ids = [];
    await waitFor(async () => {
      if (polls.every((p) => /^HTTP\/1\.1 200 /.test(p.text))) return true;
      ids.push(...await emitOps(pollRoom, 1));
      return false;
    }, { what: 'the waiting long-polls answered', timeout: 20000, interval: 200 });
    return ids;
  };
  const gone = async (s, streamsAfter, what) => {
    held.delete(s);
    await waitFor(async () => (await clients()) === streamsAfter, { what, timeout: 20000 });
  };
  try {
    // three of A's streams, one of each one-room kind, on whichever process takes each
    const sse1 = await admit('sse', asA, 1);
    const wsSid = newSid();
    const ws1 = await admit('ws', { ...asA, t: ticket(SECRET, { room, user: A, name: 'capA', sid: wsSid }) }, 2);
    const lp1 = await admit('poll', asA, 3);

    // the fourth of every kind is refused, at the HTTP level (a WebSocket before its 101)
    for (const kind of ['sse', 'ws', 'poll', 'multi', 'multi-ws']) await refuse(kind, asA);
    const r = await fetch(`${capped.base}/events/rooms/${pollRoom}/poll?ticket=${tk(pollRoom, A, 'capA')}`);
    assert.equal(r.status, 429);
    assert.equal((await r.json()).error, 'too_many_streams');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    refusals++;
    assert.equal(await clients(), 3, 'no refused stream was counted');

    // another user is not held back
    await admit('sse', asB, 4);
    await admit('multi-ws', asB, 5);

    // a stream whose client went away gives its place back: the next one of A opens
    sse1.destroy();
    await gone(sse1, 4, 'the closed SSE stream gone');
    const m1 = await admit('multi', asA, 5);
    await refuse('sse', asA);

    // a stream the broker drops gives it back too: A signs out the WebSocket's session
    await rc.cmd('SET', `cc:sess:${wsSid}:revoked`, '1');
    await rc.cmd('SPUBLISH', 'cc:access', JSON.stringify({ user: A }));
    await Promise.race([ws1.ended, sleep(15000).then(() => { throw new Error('the signed-out WebSocket stayed open'); })]);
    // closed by the broker with 1008 (policy), after the 101 and its `subscribed` frame
    assert.ok(ws1.text.includes('\x88'), 'a close frame');
    await gone(ws1, 4, 'the signed-out WebSocket gone');
    const sse2 = await admit('sse', asA, 5);
    await refuse('ws', asA);

    // and a long-poll answered by an event, as a poll ends
    const ids = await answerPolls([lp1]);
    await lp1.settled;
    assert.equal(lp1.status, 200, lp1.text);
    assert.ok(ids.some((id) => lp1.text.includes(id)), lp1.text);
    await gone(lp1, 4, 'the answered long-poll gone');
    const ws2 = await admit('ws', asA, 5);
    await refuse('multi', asA);

    // A's streams all end; then 17 rounds of three (51 streams, at the bound each round), ended
    // by the client going away, a WebSocket close, or an event answering a poll
    for (const s of [m1, sse2, ws2]) { s.destroy(); held.delete(s); }
    await waitFor(async () => (await clients()) === 2, { what: 'A\'s streams gone', timeout: 20000 });
    const kinds = ['sse', 'ws', 'poll', 'multi', 'multi-ws'];
    for (let round = 0; round < 17; round++) {
      const mine = [];
      for (let i = 0; i < CAP; i++) {
        const kind = kinds[(round * CAP + i) % kinds.length];
        mine.push([kind, await admit(kind, asA, 3 + i)]);
      }
      if (round % 2) {
        for (const [kind, s] of mine) {
          if (kind === 'ws' || kind === 'multi-ws') s.write(clientFrame(8, Buffer.from([0x03, 0xe8])));
          else if (kind !== 'poll') s.destroy();
        }
        await answerPolls(mine.filter(([kind]) => kind === 'poll').map(([, s]) => s));
      } else {
        for (const [, s] of mine) s.destroy();
      }
      for (const [, s] of mine) held.delete(s);
      await waitFor(async () => (await clients()) === 2, { what: `round ${round}: A's streams gone`, timeout: 20000 });
    }
    // nothing of those 51 is still counted: exactly three fit again, and the fourth does not
    await admit('poll', asA, 3);
    await admit('multi-ws', asA, 4);
    await admit('sse', asA, 5);
    await refuse('sse', asA);
    await refuse('poll', asA);
    await admit('ws', asB, 6);

    assert.equal(await dropped('user_full'), refusals);
    assert.equal(await dropped('server_full'), 0);
  } finally {
    for (const s of held) s.destroy();
    const r = await stop(capped);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${capped.output}`);
  }
});

test('BROKER_MAX_STREAMS_PER_USER is 64 unless set: a user\'s 65th stream is refused, another user\'s first is not; 0 is no setting', async () => {
  // '' is unset (lib/cfg.h): the default, whatever the environment the tests run in says
  const plain = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_MAX_STREAMS_PER_USER: '' } });
  const open = [];
  try {
    const room = await newRoom();
    const path = `/events/rooms/${room}?ticket=${tk(room, 83, 'many')}`;
    for (let i = 0; i < 64; i += 16) {
      const batch = await Promise.all(Array.from({ length: 16 }, () => rawSse(plain.port, path)));
      open.push(...batch);
      for (const s of batch) assert.match(s.text, /^HTTP\/1\.1 200/, s.text);
    }
    const s = await openKind(plain.port, 'sse', room, { user: 83 }).settled;
    assertTooManyStreams(s, 'the 65th', 64);
    const other = await rawSse(plain.port, `/events/rooms/${room}?ticket=${tk(room, 84, 'other')}`);
    open.push(other);
    assert.match(other.text, /^HTTP\/1\.1 200/, other.text);
  } finally {
    for (const s of open) s.destroy();
    const r = await stop(plain);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${plain.output}`);
  }
  // no value switches the bound off: 0 stops the broker at start, naming the setting
  for (const bad of ['0', '-1', 'many']) {
    const b = start(BROKER_BIN, [], {
      env: { ...process.env, ...BROKER_ENV, BROKER_PORT: String(await freePort()), BROKER_HOST: '127.0.0.1',
        REDIS_URL: `redis://127.0.0.1:${redis.port}`, JWT_SECRET: SECRET, BROKER_MAX_STREAMS_PER_USER: bad },
    });
    try {
      await waitFor(() => b.exitCode !== null, { what: `the broker to refuse ${bad}` });
      assert.equal(b.exitCode, 2, b.output);
      assert.match(b.output, new RegExp(`BROKER_MAX_STREAMS_PER_USER must be an integer from 1 to \\d+ \\(got "${bad}"\\)`));
    } finally {
      await stop(b);
    }
  }
});

// ---- HEAD /events/health, text that is not UTF-8, frames during the rights check, clients
// that stop reading ----

// The head of an answer read over a raw socket: {status, headers (lower-case names), body
// (whatever followed the head, as bytes)}.
function parseAnswer(raw) {
  const at = raw.indexOf('\r\n\r\n');
  assert.ok(at > 0, `no head in ${JSON.stringify(raw)}`);
  const lines = raw.slice(0, at).split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(lines[0].split(' ')[1]), headers, body: raw.slice(at + 4) };
}

test('HEAD /events/health answers the head alone, with the Content-Length a GET has', async () => {
  // the connection is closed after the answer: whatever came is all there is
  const get = parseAnswer(await rawRequest(broker.port, 'GET /events/health HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(get.status, 200);
  assert.equal(Number(get.headers['content-length']), Buffer.byteLength(get.body, 'latin1'));
  const body = JSON.parse(get.body);
  assert.equal(body.status, 'ok');
  assert.ok(Number.isInteger(body.clients) && body.clients >= 0, get.body);

  const head = parseAnswer(await rawRequest(broker.port, 'HEAD /events/health HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(head.status, 200);
  assert.equal(head.body, '', 'no body after the head of a HEAD answer');
  assert.equal(head.headers['content-type'], 'application/json');
  // the same length as the GET's, but the count of clients may have changed in between
  assert.ok(Math.abs(Number(head.headers['content-length']) - Number(get.headers['content-length'])) <= 2,
    `HEAD Content-Length ${head.headers['content-length']}, GET ${get.headers['content-length']}`);
  const r = await fetch(`${broker.base}/events/health`, { method: 'HEAD' });
  assert.equal(r.status, 200);
  assert.equal(await r.text(), '');

  // another method is refused with the methods that are served there: HEAD among them
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const no = parseAnswer(await rawRequest(broker.port, `${method} /events/health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`));
    assert.equal(no.status, 405, method);
    assert.equal(no.headers.allow, 'GET, HEAD, OPTIONS', method);
    assert.equal(JSON.parse(no.body).error, 'method_not_allowed');
  }
  // the stream endpoints take GET alone
  const room = await newRoom();
  const no = parseAnswer(await rawRequest(broker.port, `POST /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`));
  assert.equal(no.status, 405);
  assert.equal(no.headers.allow, 'GET, OPTIONS');
});

test('HEAD to a stream or an unknown path: the error head alone, its Content-Length that of the body another method gets', async () => {
  // The broker closes after each of these answers, so what came before the close is the
  // whole answer: no byte may follow the head. The same request with another method gets
  // the body, whose length the HEAD answer's Content-Length must give.
  const room = await newRoom();
  const cases = [
    { what: 'a room stream', path: `/events/rooms/${room}?ticket=${tk(room)}`, other: 'POST', status: 405, error: 'method_not_allowed', allow: 'GET, OPTIONS' },
    { what: 'a long-poll', path: `/events/rooms/${room}/poll?ticket=${tk(room)}`, other: 'PUT', status: 405, error: 'method_not_allowed', allow: 'GET, OPTIONS' },
    { what: 'a WebSocket path', path: `/events/rooms/${room}/ws`, other: 'DELETE', status: 405, error: 'method_not_allowed', allow: 'GET, OPTIONS' },
    { what: 'several rooms', path: `/events/multi?rooms=${room}`, other: 'POST', status: 405, error: 'method_not_allowed', allow: 'GET, OPTIONS' },
    { what: 'an unknown path', path: '/events/nope', other: 'GET', status: 404, error: 'not_found' },
    { what: 'outside /events/', path: '/', other: 'GET', status: 404, error: 'not_found' },
    { what: 'an unknown room endpoint', path: `/events/rooms/${room}/nope`, other: 'GET', status: 404, error: 'not_found' },
    { what: 'a malformed room id', path: '/events/rooms/no%20such', other: 'GET', status: 404, error: 'room_not_found' },
  ];
  for (const c of cases) {
    const req = (method) => `${method} ${c.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`;
    const full = parseAnswer(await rawRequest(broker.port, req(c.other)));
    assert.equal(full.status, c.status, `${c.other} ${c.what}`);
    assert.equal(JSON.parse(full.body).error, c.error, `${c.other} ${c.what}`);

    const raw = await rawRequest(broker.port, req('HEAD'));
    const head = parseAnswer(raw);
    assert.equal(head.status, c.status, `HEAD ${c.what}: ${raw}`);
    assert.equal(head.body, '', `HEAD ${c.what}: no byte after the head, got ${JSON.stringify(head.body)}`);
    assert.equal(head.headers['content-type'], 'application/json', c.what);
    assert.equal(Number(head.headers['content-length']), Buffer.byteLength(full.body, 'latin1'),
      `HEAD ${c.what}: the Content-Length of the body a ${c.other} gets`);
    if (c.allow) assert.equal(head.headers.allow, c.allow, c.what);
  }

  // on a connection a preflight kept, the HEAD answer after it is the last thing sent: a
  // client reading its next answer there would otherwise take the body for it
  const raw = await rawRequest(broker.port,
    'OPTIONS /events/nope HTTP/1.1\r\nHost: x\r\n\r\nHEAD /events/nope HTTP/1.1\r\nHost: x\r\n\r\n');
  const heads = raw.split('\r\n\r\n');
  assert.equal(heads.length, 3, `two heads and nothing after them: ${JSON.stringify(raw)}`);
  assert.match(heads[0], /^HTTP\/1\.1 204 /);
  assert.doesNotMatch(heads[0], /\r\nConnection: close/i, 'the preflight kept the connection');
  assert.match(heads[1], /^HTTP\/1\.1 404 /);
  assert.equal(heads[2], '', 'no body after the HEAD answer');
});

// A head the broker refuses before routing it (431 over its bound, 400 malformed) names its
// method in its request line when that line came whole: a HEAD's refusal is then the head
// alone, as any other answer to a HEAD. Only a request line that does not parse leaves the
// method unknown, and the answer carries its body.
// RFC 9110 §15.5.15: a request line that alone is longer than the head's bound (8 KiB) is a
// target too long, 414, not a head too large: 431 is left to fields that go past the bound.
test('a request line over the head bound is 414 uri_too_long; fields past the bound stay 431', async () => {
  const check414 = (raw, what) => {
    const r = parseAnswer(raw);
    assert.equal(r.status, 414, `${what}: ${raw.slice(0, 200)}`);
    assert.match(raw, /^HTTP\/1\.1 414 URI Too Long\r\n/, what);
    assert.equal(r.headers.connection, 'close', what);
    assert.equal(r.headers['content-type'], 'application/json', what);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body, 'latin1'), what);
    const j = JSON.parse(r.body);
    assert.equal(j.error, 'uri_too_long', what);
    assert.equal(typeof j.message, 'string', what);
  };
  // a long query, whole with its fields
  check414(await rawRequest(broker.port, `GET /events/health?x=${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`), 'long query');
  // a long path
  check414(await rawRequest(broker.port, `GET /events/${'b'.repeat(8200)} HTTP/1.1\r\n\r\n`), 'long path');
  // a request line that never ends: answered once it is past the bound, and closed
  const t0 = Date.now();
  check414(await rawRequest(broker.port, `GET /events/health?x=${'c'.repeat(8300)}`), 'unended line');
  assert.ok(Date.now() - t0 < 2000, 'answered at once, not after the head timeout');
  // the longest request line taken (with its CRLF, exactly the bound) and no field is fine
  // (HTTP/1.0: an HTTP/1.1 request needs a Host field, and it would not fit)...
  const line = (n) => { const pre = 'GET /events/health?x=', post = ' HTTP/1.0'; return pre + 'd'.repeat(n - pre.length - post.length) + post; };
  let r = parseAnswer(await rawRequest(broker.port, `${line(8190)}\r\n\r\n`));
  assert.equal(r.status, 200, 'a request line of 8190 bytes and its CRLF');
  // ... one byte more is 414, and with that line a field past the bound is 431
  check414(await rawRequest(broker.port, `${line(8191)}\r\n\r\n`), 'a line of 8191 bytes');
  r = parseAnswer(await rawRequest(broker.port, `${line(8190)}\r\nHost: x\r\n\r\n`));
  assert.equal(r.status, 431);
  assert.equal(JSON.parse(r.body).error, 'header_too_large');
  assert.equal((await fetch(`${broker.base}/events/health`)).status, 200, 'the broker is still fine');
});

test('HEAD with a refused head (431, 400): the error head alone once its request line was read', async () => {
  const cases = [
    { what: 'a header over the head bound', status: 431, error: 'header_too_large', rest: `X: ${'a'.repeat(9000)}\r\n\r\n` },
    { what: 'a field without a colon', status: 400, error: 'invalid_request', rest: 'Bad Header\r\n\r\n' },
    { what: 'a NUL in a field', status: 400, error: 'invalid_request', rest: 'A: b\0c\r\n\r\n' },
  ];
  for (const c of cases) {
    const full = parseAnswer(await rawRequest(broker.port, `GET /events/health HTTP/1.1\r\nHost: x\r\n${c.rest}`));
    assert.equal(full.status, c.status, `GET, ${c.what}`);
    assert.equal(JSON.parse(full.body).error, c.error, `GET, ${c.what}`);
    const raw = await rawRequest(broker.port, `HEAD /events/health HTTP/1.1\r\nHost: x\r\n${c.rest}`);
    const head = parseAnswer(raw);
    assert.equal(head.status, c.status, `HEAD, ${c.what}: ${raw}`);
    assert.equal(head.body, '', `HEAD, ${c.what}: no byte after the head, got ${JSON.stringify(head.body)}`);
    assert.equal(Number(head.headers['content-length']), Buffer.byteLength(full.body, 'latin1'),
      `HEAD, ${c.what}: the Content-Length of the body a GET gets`);
  }
  // a request line that does not parse, or never ends within the bound, names no method
  for (const [line, status] of [['HEAD /events/health HTTP/2.0', 400], [`HEAD /${'a'.repeat(9000)} HTTP/1.1`, 414]]) {
    const r = parseAnswer(await rawRequest(broker.port, `${line}\r\nHost: x\r\n\r\n`));
    assert.equal(r.status, status, line.slice(0, 40));
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body, 'latin1'), line.slice(0, 40));
    assert.ok(JSON.parse(r.body).error, line.slice(0, 40));
  }
  assert.equal((await fetch(`${broker.base}/events/health`)).status, 200, 'the broker is still fine');
});

test('WebSocket: a text message that is not UTF-8 is closed with 1007, whole or in fragments', async () => {
  const room = await newRoom();
  const path = `/events/rooms/${room}/ws?ticket=${tk(room)}`;
  const closed = async (s, what) => {
    await waitFor(() => closeCode(s) !== null, { what: `a close frame (${what})` });
    await Promise.race([s.done, sleep(5000).then(() => { throw new Error(`not closed (${what})`); })]);
  };
  let s = await wsRaw(broker.port, path);
  s.write(clientFrame(1, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])));
  await closed(s, 'one frame');
  assert.equal(closeCode(s), 1007);

  // each fragment alone could be the start of good text; together they end in half a character
  s = await wsRaw(broker.port, path);
  s.write(clientFrame(1, '{"type":"presence",', { fin: false }));
  s.write(clientFrame(0, Buffer.from([0x22, 0xe2, 0x82]), { fin: true }));
  await closed(s, 'fragments');
  assert.equal(closeCode(s), 1007);

  // a character split over two fragments is fine: the stream stays open and answers a ping
  s = await wsRaw(broker.port, path);
  s.write(clientFrame(1, Buffer.from([0x22, 0xc3]), { fin: false }));
  s.write(clientFrame(0, Buffer.from([0xa9, 0x22]), { fin: true }));
  s.write(clientFrame(9, 'still'));
  await waitFor(() => s.frames.some((x) => x.opcode === 10 && x.payload.toString() === 'still'), { what: 'pong' });
  assert.equal(closeCode(s), null);
  s.destroy();
});

test('WebSocket: a client close of 1012, 1013 or 1014 is echoed; codes not valid in a close frame and a payload of one byte get 1002', async () => {
  const room = await newRoom();
  const path = `/events/rooms/${room}/ws?ticket=${tk(room)}`;
  const closed = async (s, what) => {
    await waitFor(() => s.frames.some((x) => x.opcode === 8), { what: `a close frame (${what})` });
    await Promise.race([s.done, sleep(5000).then(() => { throw new Error(`not closed (${what})`); })]);
  };
  const payload = (code, reason = '') => Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);
  // Service Restart, Try Again Later, Bad Gateway (IANA registry), and 1000 and 4000 as before
  for (const code of [1012, 1013, 1014, 1000, 4000]) {
    const s = await wsRaw(broker.port, path);
    s.write(clientFrame(8, payload(code, 'brb')));
    await closed(s, String(code));
    const f = s.frames.find((x) => x.opcode === 8);
    assert.equal(f.payload.toString('hex'), payload(code, 'brb').toString('hex'), `${code}: code and reason echoed`);
  }
  for (const code of [999, 1004, 1005, 1006, 1015, 2999]) {
    const s = await wsRaw(broker.port, path);
    s.write(clientFrame(8, payload(code)));
    await closed(s, String(code));
    assert.equal(closeCode(s), 1002, String(code));
  }
  let s = await wsRaw(broker.port, path);
  s.write(clientFrame(8, Buffer.from([0x03])));
  await closed(s, 'one byte');
  assert.equal(closeCode(s), 1002, 'a payload of one byte');
  s = await wsRaw(broker.port, path);
  s.write(clientFrame(8, Buffer.concat([payload(1013), Buffer.from([0xff])])));
  await closed(s, 'not UTF-8');
  assert.equal(closeCode(s), 1007, 'a reason that is not UTF-8');
});

test('WebSocket frames that arrive while the rights are being checked are kept for the stream', async () => {
  // Redis is stopped for a moment below: a heartbeat long enough that the broker does not
  // take it for gone meanwhile (two heartbeats without an answer)
  const own = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_HEARTBEAT_MS: '10000', BROKER_WS_TIMEOUT_MS: '20000' } });
  const room = await newRoom();
  const observer = wsClient(`ws://127.0.0.1:${own.port}/events/rooms/${room}/ws?ticket=${tk(room, 61, 'obs')}`);
  await waitFor(() => subscribedFrames(observer.events).length === 1, { what: 'the observer live' });

  const key = randomBytes(16).toString('base64');
  const s = createConnection(own.port, '127.0.0.1');
  await new Promise((resolve) => s.once('connect', resolve));
  s.setNoDelay(true);
  let buf = Buffer.alloc(0);
  s.on('data', (d) => { buf = Buffer.concat([buf, d]); });
  s.on('error', () => {});
  const PINGS = 200; // about 21 KiB of frames: more than the broker keeps before it stops reading
  // Redis answers nothing while stopped: the rights check waits, with the request read
  redis.kill('SIGSTOP');
  try {
    s.write(`GET /events/rooms/${room}/ws?ticket=${tk(room, 62, 'early')} HTTP/1.1\r\nHost: x\r\n` +
      `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`);
    await sleep(300);
    assert.equal(buf.length, 0, 'no answer before the rights check');
    s.write(clientFrame(1, JSON.stringify({ type: 'presence', cursor: 3 })));
    await sleep(100);
    for (let i = 0; i < PINGS; i++) s.write(clientFrame(9, `p${i}`.padEnd(100, '.')));
    await sleep(300);
  } finally {
    redis.kill('SIGCONT');
  }
  const pongs = () => pongsAfterHead(buf);
  await waitFor(() => pongs().length === PINGS, { what: 'a pong for every ping sent during the check', timeout: 15000 });
  assert.match(buf.toString('latin1'), /^HTTP\/1.1 101 /);
  assert.deepEqual(pongs(), Array.from({ length: PINGS }, (_, i) => `p${i}`.padEnd(100, '.')));
  await waitFor(() => observer.events.some((e) => e.type === 'presence' && e.data.user.id === 62),
    { what: 'the presence sent during the check' });
  assert.equal(observer.events.find((e) => e.type === 'presence' && e.data.user.id === 62).data.cursor, 3);
  s.destroy();
  observer.close();
  const r = await stop(own);
  assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
});

// A broker of its own: a short write timeout, an output bound far above what the test sends
// (so only the timeout can drop a client), metrics.
async function stallBroker() {
  const metricsPort = await freePort();
  const own = await startBroker({
    redisPort: redis.port, secret: SECRET,
    env: {
      ...BROKER_ENV,
      BROKER_WRITE_TIMEOUT_MS: '1500',
      BROKER_CLIENT_BUFFER: String(64 * 1024 * 1024),
      BROKER_WS_TIMEOUT_MS: '600000', // the idle timeout must not be what ends a WebSocket
      BROKER_METRICS_PORT: String(metricsPort),
    },
  });
  own.drops = () => metricValue(metricsPort, 'codecollab_broker_clients_dropped_total{reason="write_timeout"}', { absent: 0 });
  own.clients = async () => (await (await fetch(`${own.base}/events/health`)).json()).clients;
  return own;
}

// A client that sends its request and never reads what comes; ws: a WebSocket upgrade.
async function nonReader(port, path, ws = false) {
  const s = createConnection(port, '127.0.0.1');
  await new Promise((resolve) => s.once('connect', resolve));
  s.on('error', () => {});
  s.ended = new Promise((r) => s.on('close', r));
  let got = 0;
  s.on('data', (d) => { got += d.length; });
  s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n` + (ws ? 'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` : '') + '\r\n');
  await waitFor(() => got > 0, { what: 'the answer\'s head' });
  s.pause();
  return s;
}

test('clients that stop reading are dropped after BROKER_WRITE_TIMEOUT_MS once the room goes quiet; one that reads is kept', async () => {
  const own = await stallBroker();
  const room = await newRoom();
  const sse = await nonReader(own.port, `/events/rooms/${room}?ticket=${tk(room, 71, 'sse')}`);
  const ws = await nonReader(own.port, `/events/rooms/${room}/ws?ticket=${tk(room, 72, 'ws')}`, true);
  const reader = curlSse(`${own.base}/events/rooms/${room}?ticket=${tk(room, 73, 'reader')}`);
  try {
    await waitFor(() => reader.text.includes(': connected'), { what: 'the reader live' });
    await waitFor(async () => (await own.clients()) === 3, { what: 'three streams' });
    // 12 MiB: more than the sockets' buffers take, so output waits in the broker; then nothing
    const N = 48;
    const big = { revision: 1, ops: ['z'.repeat(256 * 1024)] };
    for (let i = 0; i < N; i++) await rc.emit(room, 'operation', big);
    await waitFor(() => ops(reader.events()).length === N, { what: 'the reader got everything', timeout: 30000 });
    // the heartbeat goes on queueing ": ping" and WebSocket pings: no progress, they are
    await waitFor(async () => (await own.drops()) === 2, { what: 'both non-readers dropped', timeout: 30000 });
    assert.equal(await own.clients(), 1, 'the reader is still there');
    assert.match(own.output, /that stopped reading/);
    // a client that reads again gets what was sent and then the end
    sse.resume();
    ws.resume();
    await Promise.race([Promise.all([sse.ended, ws.ended]),
      sleep(10000).then(() => { throw new Error('the dropped connections did not end'); })]);
    await sleep(500);
    assert.equal(ops(reader.events()).length, N);
    assert.equal(await own.clients(), 1);
  } finally {
    sse.destroy();
    ws.destroy();
    await reader.close();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

test('a client that reads slowly, with pauses shorter than BROKER_WRITE_TIMEOUT_MS, is not dropped', async () => {
  const own = await stallBroker();
  const room = await newRoom();
  const s = createConnection(own.port, '127.0.0.1');
  await new Promise((resolve) => s.once('connect', resolve));
  s.on('error', () => {});
  let text = '';
  let chunk = 0;
  // about 128 KiB, then a pause of 250 ms: some 0.5 MiB/s, slower than the broker can write
  s.on('data', (d) => {
    text += d.toString('latin1');
    chunk += d.length;
    if (chunk >= 128 * 1024) {
      chunk = 0;
      s.pause();
      setTimeout(() => s.resume(), 250);
    }
  });
  s.write(`GET /events/rooms/${room}?ticket=${tk(room, 74, 'slow')} HTTP/1.1\r\nHost: x\r\n\r\n`);
  try {
    await waitFor(() => text.includes(': connected'), { what: 'the slow reader live' });
    const N = 16; // 4 MiB
    const big = { revision: 1, ops: ['s'.repeat(256 * 1024)] };
    for (let i = 0; i < N; i++) await rc.emit(room, 'operation', big);
    const got = () => parseSse(text.slice(text.indexOf('\r\n\r\n') + 4, text.lastIndexOf('\n\n') + 2))
      .filter((e) => e.type === 'operation').length;
    await waitFor(() => got() === N, { what: 'every event, slowly', timeout: 60000 });
    assert.equal(await own.drops(), 0);
    assert.equal(await own.clients(), 1);
  } finally {
    s.destroy();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

// ---- settings that are fine alone and wrong together; the shutdown's answers ----

// A quiet WebSocket client answers one ping per heartbeat, and presence records are refreshed
// once per heartbeat: an idle timeout or a presence TTL under two heartbeats would close every
// quiet WebSocket, or make every user leave and join again at each heartbeat. The broker
// refuses such settings at start, naming them.
test('an idle timeout or a presence TTL under two heartbeats stops the broker at start, naming the settings', async () => {
  const cases = [
    [{ BROKER_HEARTBEAT_MS: '2000', BROKER_WS_TIMEOUT_MS: '1500' }, /BROKER_WS_TIMEOUT_MS \(1500\) must be at least twice BROKER_HEARTBEAT_MS \(2000\)/],
    [{ BROKER_HEARTBEAT_MS: '60000', BROKER_WS_TIMEOUT_MS: null }, /BROKER_WS_TIMEOUT_MS \(45000\) must be at least twice BROKER_HEARTBEAT_MS \(60000\)/],
    [{ BROKER_HEARTBEAT_MS: '500', BROKER_WS_TIMEOUT_MS: '2500', BROKER_PRESENCE_TTL_MS: '500' }, /BROKER_PRESENCE_TTL_MS \(500\) must be at least twice BROKER_HEARTBEAT_MS \(500\)/],
  ];
  for (const [env, why] of cases) {
    const all = { ...process.env, ...BROKER_ENV, ...env, BROKER_PORT: String(await freePort()), BROKER_HOST: '127.0.0.1',
      REDIS_URL: `redis://127.0.0.1:${redis.port}`, JWT_SECRET: SECRET };
    for (const k of Object.keys(all)) if (all[k] === null) delete all[k]; // null: the default
    const b = start(BROKER_BIN, [], { env: all });
    try {
      await waitFor(() => b.exitCode !== null, { what: `the broker to refuse ${JSON.stringify(env)}` });
      assert.equal(b.exitCode, 2, b.output);
      assert.match(b.output, why);
    } finally {
      await stop(b);
    }
  }
  // exactly twice is accepted
  const ok = await startBroker({ redisPort: redis.port, secret: SECRET,
    env: { ...BROKER_ENV, BROKER_HEARTBEAT_MS: '500', BROKER_WS_TIMEOUT_MS: '1000', BROKER_PRESENCE_TTL_MS: '1000' } });
  const r = await stop(ok);
  assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${ok.output}`);
});

// A long-poll waiting when the broker stops is answered as at its timeout (what it holds and
// where it stands), not cut without a status line, which a proxy in front would turn into a
// 502 and the client into an error and a back-off.
test('a waiting long-poll is answered 200 with where it stands when the broker stops', async () => {
  const own = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, BROKER_POLL_TIMEOUT_MS: '120000' } });
  const room = await newRoom();
  const [since] = await emitOps(room, 1);
  const q = new URLSearchParams({ ticket: tk(room), since });
  const head = `GET /events/rooms/${room}/poll?${q} HTTP/1.1\r\nHost: x\r\n\r\n`;
  const answer = rawRequest(own.port, head);
  // the poll is waiting once the broker counts it among its streams
  await waitFor(async () => (await (await fetch(`${own.base}/events/health`)).json()).clients === 1,
    { what: 'the poll to wait' });
  const r = await stop(own);
  assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  const text = await answer;
  assert.match(text, /^HTTP\/1\.1 200 /, `an answer, not a cut connection: ${JSON.stringify(text.slice(0, 300))}`);
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
  assert.deepEqual(body.events, []);
  assert.equal(body.last_event_id, since);
});

// Every line of a field counts (RFC 9110 §5.3): the token that makes an upgrade may come in a
// second Connection or Upgrade line. The refusals say what a client needs: a 426 what to
// upgrade to (RFC 9110 §15.5.22), a 401 how to authenticate (§15.5.2).
const fieldLines = (raw, name) => raw.slice(0, raw.indexOf('\r\n\r\n')).split('\r\n').slice(1)
  .filter((l) => l.slice(0, l.indexOf(':')).toLowerCase() === name).map((l) => l.slice(l.indexOf(':') + 1).trim());

test('WebSocket upgrade fields over several lines are one list; 426 names the upgrade, every 401 a challenge', async () => {
  const room = await newRoom();
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const upgrade = (fields) => `GET /events/rooms/${room}/ws?ticket=${tk(room)} HTTP/1.1\r\nHost: x\r\n${fields}` +
    `Sec-WebSocket-Key: ${key}\r\n\r\n`;
  for (const fields of [
    'Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n',
    'Upgrade: foo\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n',
  ]) {
    const raw = await rawRequest(broker.port, upgrade(fields), { waitClose: false });
    assert.match(raw, /^HTTP\/1\.1 101 /, `${JSON.stringify(fields)}: ${JSON.stringify(raw.slice(0, 200))}`);
  }
  // no line with the token is still no upgrade
  let raw = await rawRequest(broker.port, upgrade('Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: close\r\nSec-WebSocket-Version: 13\r\n'));
  assert.match(raw, /^HTTP\/1\.1 400 /);

  // a version other than 13
  raw = await rawRequest(broker.port, upgrade('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n'));
  assert.match(raw, /^HTTP\/1\.1 426 /);
  assert.deepEqual(fieldLines(raw, 'upgrade'), ['websocket'], raw);
  assert.ok(fieldLines(raw, 'connection').some((v) => v.toLowerCase().split(/\s*,\s*/).includes('upgrade')), raw);
  assert.deepEqual(fieldLines(raw, 'sec-websocket-version'), ['13'], raw);
  assert.equal(JSON.parse(parseAnswer(raw).body).error, 'upgrade_required');

  // every 401: no credential, a bad ticket, a bad bearer token, a signed-out session
  const sid = newSid();
  await rc.cmd('SET', `cc:sess:${sid}:revoked`, '1');
  for (const [what, path, headers, code] of [
    ['no credential', `/events/rooms/${room}`, {}, 'unauthorized'],
    ['a forged ticket', `/events/rooms/${room}/poll?ticket=x.y.z`, {}, 'invalid_token'],
    ['a ticket as a bearer token', `/events/multi?rooms=${room}`, { Authorization: `Bearer ${tk(room)}` }, 'invalid_token'],
    ['a signed-out session', `/events/rooms/${room}?ticket=${ticket(SECRET, { room, user: 1, sid })}`, {}, 'session_revoked'],
  ]) {
    const r = await fetch(`${broker.base}${path}`, { headers });
    assert.equal(r.status, 401, what);
    assert.equal((await r.json()).error, code, what);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="codecollab"', what);
  }
  // and no other status has one
  const r = await fetch(`${broker.base}/events/rooms/${room}?ticket=${tk('another-room')}`);
  assert.equal(r.status, 403);
  assert.equal(r.headers.get('www-authenticate'), null);
});

// A head of lines ending in LF alone never shows the CRLF CRLF that ends a head: refused at
// once, with a message saying so, not left to the head timeout (10 s here) and closed mute.
test('a request head with lines ending in LF alone is answered 400 at once', async () => {
  for (const head of ['GET /events/health HTTP/1.1\nHost: x\n\n', 'GET /events/health HTTP/1.1\n',
    'GET /events/health HTTP/1.1\r\nHost: x\n\n']) {
    const t0 = Date.now();
    const raw = await rawRequest(broker.port, head);
    assert.ok(Date.now() - t0 < 2000, `answered in ${Date.now() - t0} ms: ${JSON.stringify(head)}`);
    assert.match(raw, /^HTTP\/1\.1 400 /, JSON.stringify(head));
    const body = JSON.parse(parseAnswer(raw).body);
    assert.equal(body.error, 'invalid_request');
    assert.match(body.message, /CRLF/);
  }
});

// ---- the Host field, the request target's forms, empty lines before the request line
// (RFC 9112 §2.2, §3.2) ----

// An answer read whole over a raw socket that must be 400 invalid_request with a message
// matching why, closed after it, and its JSON body of the length it says.
function assertInvalid(raw, why, what) {
  const r = parseAnswer(raw);
  assert.equal(r.status, 400, `${what}: ${raw.slice(0, 300)}`);
  assert.equal(r.headers.connection, 'close', what);
  assert.equal(r.headers['content-type'], 'application/json', what);
  assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body, 'latin1'), what);
  const j = JSON.parse(r.body);
  assert.equal(j.error, 'invalid_request', what);
  assert.match(j.message, why, what);
  return r;
}

test('an HTTP/1.1 request without Host, or with a Host that is no host[:port], is 400 invalid_request; HTTP/1.0 may leave it out', async () => {
  const noHost = 'GET /events/health HTTP/1.1\r\n\r\n';
  const get = assertInvalid(await rawRequest(broker.port, noHost), /an HTTP\/1\.1 request must carry a Host field/, 'no Host');
  // a stream is refused the same way, before its ticket is looked at
  const room = await newRoom();
  assertInvalid(await rawRequest(broker.port, `GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n`),
    /Host/, 'a stream without Host');
  // a HEAD's refusal is its head alone, with the Content-Length of the GET's body
  const head = parseAnswer(await rawRequest(broker.port, 'HEAD /events/health HTTP/1.1\r\n\r\n'));
  assert.equal(head.status, 400);
  assert.equal(head.body, '', 'no body after the HEAD answer');
  assert.equal(Number(head.headers['content-length']), Buffer.byteLength(get.body, 'latin1'));
  // values that are not a host with an optional port, over 1.1 and 1.0; two Host lines
  for (const host of ['a b', 'a/b', 'u@a', 'a?b', 'a#b', 'a:8o', 'a:80:80', ':80', '[::1', 'http://a', '[1]', '[1:2]:80', '[fe80::1%25lo]']) {
    for (const v of ['1.1', '1.0']) {
      assertInvalid(await rawRequest(broker.port, `GET /events/health HTTP/${v}\r\nHost: ${host}\r\n\r\n`), /Host/, `HTTP/${v}, Host: ${host}`);
    }
  }
  assertInvalid(await rawRequest(broker.port, 'GET /events/health HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n'), /more than one Host/, 'two Hosts');
  // taken: HTTP/1.0 without one, an empty one, host names, addresses and ports
  for (const req of ['GET /events/health HTTP/1.0\r\n\r\n', 'GET /events/health HTTP/1.1\r\nHost:\r\n\r\n',
    `GET /events/health HTTP/1.1\r\nHost: 127.0.0.1:${broker.port}\r\n\r\n`, 'GET /events/health HTTP/1.1\r\nHost: [::1]:8081\r\n\r\n',
    'GET /events/health HTTP/1.1\r\nhost: Broker.Example\r\n\r\n']) {
    const r = parseAnswer(await rawRequest(broker.port, req));
    assert.equal(r.status, 200, JSON.stringify(req));
    assert.equal(JSON.parse(r.body).status, 'ok', JSON.stringify(req));
  }
});

test('an absolute-form target (RFC 9112 §3.2.2) is answered as its path would be; its authority stands for Host', async () => {
  const origin = parseAnswer(await rawRequest(broker.port, 'GET /events/health HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(origin.status, 200);
  for (const target of ['http://x/events/health', `http://127.0.0.1:${broker.port}/events/health?x=1`, 'HTTPS://Example.COM/events/health']) {
    // with a Host that names another host (the target's counts), and over HTTP/1.0 with none
    for (const [version, host] of [['1.1', 'Host: other.example:1\r\n'], ['1.0', '']]) {
      const what = `${target} HTTP/${version} ${JSON.stringify(host)}`;
      const r = parseAnswer(await rawRequest(broker.port, `GET ${target} HTTP/${version}\r\n${host}\r\n`));
      assert.equal(r.status, 200, what);
      assert.equal(r.headers['content-type'], origin.headers['content-type'], what);
      assert.equal(JSON.parse(r.body).status, 'ok', what);
    }
    // HTTP/1.1 must still send a Host, though its value is not the one used
    assertInvalid(await rawRequest(broker.port, `GET ${target} HTTP/1.1\r\n\r\n`),
      /an HTTP\/1\.1 request must carry a Host field/, `${target} without Host`);
  }
  // HEAD: the head alone, as with origin-form
  const head = parseAnswer(await rawRequest(broker.port, 'HEAD http://x/events/health HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(head.status, 200);
  assert.equal(head.body, '', 'no body after the HEAD answer');
  assert.ok(Math.abs(Number(head.headers['content-length']) - Number(origin.headers['content-length'])) <= 2);
  // the path and query reach the route: a long-poll with its ticket and position
  const room = await newRoom();
  const ids = await emitOps(room, 2);
  const r = parseAnswer(await rawRequest(broker.port,
    `GET http://broker.example:8081/events/rooms/${room}/poll?ticket=${tk(room)}&since=${ids[0]} HTTP/1.1\r\nHost: broker.example:8081\r\n\r\n`));
  assert.equal(r.status, 200);
  assert.deepEqual(ops(JSON.parse(r.body).events).map((e) => e.id), [ids[1]]);
  // no path is "/", which the broker does not serve
  const root = parseAnswer(await rawRequest(broker.port, 'GET http://x HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(root.status, 404);
  assert.equal(JSON.parse(root.body).error, 'not_found');
  // other schemes, user information, no host, a bad port; the asterisk-form
  for (const [line, why] of [
    ['GET ftp://x/events/health HTTP/1.1', /neither a path nor an http or https URI/],
    ['GET x/events/health HTTP/1.1', /neither a path nor an http or https URI/],
    ['GET http://u:p@x/events/health HTTP/1.1', /user information/],
    ['GET http:///events/health HTTP/1.1', /no host/],
    ['GET http://x:8o/events/health HTTP/1.1', /malformed host or port/],
    ['GET http://[1]/events/health HTTP/1.1', /malformed host or port/],
    ['GET http://x/events/health#top HTTP/1.1', /fragment/],
    ['GET /events/health#top HTTP/1.1', /fragment/],
    ['OPTIONS * HTTP/1.1', /asterisk/],
  ]) {
    for (const host of ['', 'Host: x\r\n']) {
      assertInvalid(await rawRequest(broker.port, `${line}\r\n${host}\r\n`), why, `${line} ${JSON.stringify(host)}`);
    }
  }
  // a HEAD whose target is refused: its request line does not parse, so its method is not
  // known, and the refusal carries its body (as for any malformed request line)
  const bad = parseAnswer(await rawRequest(broker.port, 'HEAD http://u@x/events/health HTTP/1.1\r\n\r\n'));
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.body).message, /user information/);
  // and the whole line still counts towards the bound: one byte too many is 414
  // (HTTP/1.0: at the longest line, a Host field would pass the bound)
  const pre = 'GET http://x/events/health?x=', post = ' HTTP/1.0';
  const at = (n) => `${pre}${'d'.repeat(n - pre.length - post.length)}${post}\r\n\r\n`;
  assert.equal(parseAnswer(await rawRequest(broker.port, at(8190))).status, 200);
  assert.equal(parseAnswer(await rawRequest(broker.port, at(8191))).status, 414);
});

test('up to four empty lines before the request line are skipped, even before the longest line taken; a fifth is 400 at once', async () => {
  // a request line of n bytes: pre, then as many d as it takes, then post
  const line = (n, pre = 'GET /events/health?x=', post = ' HTTP/1.0') => `${pre}${'d'.repeat(n - pre.length - post.length)}${post}`;
  const empty = '\r\n'.repeat(4);
  // the longest line taken (with its CRLF, the 8 KiB bound) behind four empty lines: the
  // empty lines are not the head's, and the broker reads far enough to see it whole
  let r = parseAnswer(await rawRequest(broker.port, `${empty}${line(8190)}\r\n\r\n`));
  assert.equal(r.status, 200, 'four empty lines, then a line of 8190 bytes');
  assert.equal(JSON.parse(r.body).status, 'ok');
  // ... split over reads: right past the bound with the empty lines counted (the broker
  // must not count them), and with only the head's last byte missing (a head may end one
  // byte past the bound: its last line's CRLF counts, the empty line's does not)
  const whole = `${empty}${line(8190)}\r\n\r\n`;
  for (const cut of [8193, whole.length - 1]) {
    const s = createConnection(broker.port, '127.0.0.1');
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d) => { got += d; });
    s.on('error', () => {});
    const closed = new Promise((resolve) => s.on('close', resolve));
    await new Promise((resolve) => s.once('connect', resolve));
    s.write(whole.slice(0, cut));
    await sleep(300);
    assert.equal(got, '', `no answer before the head is whole (cut at ${cut})`);
    s.write(whole.slice(cut));
    await closed;
    assert.equal(parseAnswer(got).status, 200, `cut at ${cut}: ${got.slice(0, 200)}`);
  }
  // one byte more is 414
  r = parseAnswer(await rawRequest(broker.port, `${empty}${line(8191)}\r\n\r\n`));
  assert.equal(r.status, 414);
  assert.equal(JSON.parse(r.body).error, 'uri_too_long');
  // an absolute-form target, too
  r = parseAnswer(await rawRequest(broker.port, `${empty}${line(8190, 'GET http://x/events/health?x=')}\r\n\r\n`));
  assert.equal(r.status, 200);
  // a fifth empty line: refused at once, whole head or not, with a message
  for (const req of [`${empty}\r\nGET /events/health HTTP/1.1\r\nHost: x\r\n\r\n`, `${empty}\r\nGET /events/health HTTP/1.1\r\n`]) {
    const t0 = Date.now();
    assertInvalid(await rawRequest(broker.port, req), /empty lines/, JSON.stringify(req.slice(0, 20)));
    assert.ok(Date.now() - t0 < 2000, 'answered at once, not after the head timeout');
  }
  assert.equal((await fetch(`${broker.base}/events/health`)).status, 200, 'the broker is still fine');
});

// BROKER_MAX_HEADS_PER_ADDRESS: connections of one client address still sending their request
// head (a slowloris client trickling bytes into many of them) are bounded per address; the
// next is answered 503 at once, not after a head timeout. The front doors' addresses
// (BROKER_TRUSTED_PROXIES, loopback unless set) are not counted: every proxied client comes
// from them. Here 127.0.0.2 is the only trusted address, so 127.0.0.1 and 127.0.0.3 are
// clients of their own. A connection stops counting once its head is whole (it became a
// stream, or was answered) or it closes.
test('BROKER_MAX_HEADS_PER_ADDRESS=3: a fourth connection of one address still sending its head gets 503 at once; a trusted proxy address and other addresses are not held back; places come back', async () => {
  const metricsPort = await freePort();
  const own = await startBroker({ redisPort: redis.port, secret: SECRET,
    env: { ...BROKER_ENV, BROKER_MAX_HEADS_PER_ADDRESS: '3', BROKER_TRUSTED_PROXIES: '127.0.0.2',
      BROKER_HEAD_TIMEOUT_MS: '30000', BROKER_METRICS_PORT: String(metricsPort) } });
  const open = [];
  // a connection from `from` that has sent `head` so far; .answer resolves with all it got
  // once the broker closes it, .at the ms it took from connect to that close
  const conn = (from, head) => new Promise((resolve, reject) => {
    const s = createConnection({ port: own.port, host: '127.0.0.1', localAddress: from }, () => {
      const t0 = Date.now();
      s.buf = '';
      s.on('data', (d) => { s.buf += d.toString('latin1'); });
      s.answer = new Promise((r) => s.on('close', () => { s.at = Date.now() - t0; r(s.buf); }));
      s.write(head);
      open.push(s);
      resolve(s);
    });
    s.on('error', reject);
  });
  const partial = 'GET /events/health HTTP/1.1\r\n';
  const health = 'GET /events/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  const refused = async (from) => {
    const s = await conn(from, partial);
    const raw = await s.answer;
    assert.match(raw, /^HTTP\/1.1 503 /, raw.slice(0, 200));
    assert.match(raw, /\r\nRetry-After: 1\r\n/);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error, 'too_many_clients');
    assert.match(body.message, /BROKER_MAX_HEADS_PER_ADDRESS/);
    assert.ok(s.at < 3000, `answered after ${s.at} ms`);
  };
  const answered = async (from) => {
    const raw = await (await conn(from, health)).answer;
    assert.match(raw, /^HTTP\/1.1 200 /, `${from}: ${raw.slice(0, 200)}`);
  };
  try {
    const room = await newRoom();
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await conn('127.0.0.1', i === 0 ? `GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\n` : partial));
    await sleep(200);
    await refused('127.0.0.1');
    await refused('127.0.0.1');
    // the trusted front door's address, and another client's, are answered
    await answered('127.0.0.2');
    await answered('127.0.0.3');
    for (let i = 0; i < 5; i++) held.push(await conn('127.0.0.2', partial)); // trusted: any number
    await answered('127.0.0.2');
    // one head completed into a stream: it stays open and no longer counts
    const sse = held[0];
    sse.write('Host: x\r\n\r\n');
    await waitFor(() => sse.buf.includes(': connected'), { what: 'the stream to open' });
    await answered('127.0.0.1');
    // one place free now: the next partial head takes it, and one more is refused
    held.push(await conn('127.0.0.1', partial));
    await sleep(200);
    await refused('127.0.0.1');
    // a held connection that closes gives its place back
    held[1].destroy();
    await sleep(300);
    held.push(await conn('127.0.0.1', partial));
    await sleep(200);
    await refused('127.0.0.1');
    // one that completes its head and is answered gives it back too
    held[2].write('Host: x\r\nConnection: close\r\n\r\n');
    assert.match(await held[2].answer, /^HTTP\/1.1 200 /);
    await answered('127.0.0.1');
    assert.ok(!sse.destroyed && sse.buf.startsWith('HTTP/1.1 200 '), 'the stream is still open');
    const m = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(m, /^codecollab_broker_clients_dropped_total\{reason="address_full"\} 4$/m);
  } finally {
    for (const s of open) s.destroy();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

// A connection refused for its address takes no place under BROKER_MAX_CLIENTS: it is
// answered and closed at once, not left to linger as other answers are. Otherwise one
// address opening connections faster than they linger out would keep the broker full.
test('connections refused for their address hold no place: another client still gets in while one address keeps trying', async () => {
  const own = await startBroker({ redisPort: redis.port, secret: SECRET,
    env: { ...BROKER_ENV, BROKER_MAX_CLIENTS: '8', BROKER_MAX_HEADS_PER_ADDRESS: '2',
      BROKER_TRUSTED_PROXIES: 'none', BROKER_HEAD_TIMEOUT_MS: '30000' } });
  const socks = [];
  // a connection from `from` that reads nothing until told (a paused stream), so that it
  // does not close when the broker does
  const connect = (from) => new Promise((resolve, reject) => {
    const s = createConnection({ port: own.port, host: '127.0.0.1', localAddress: from }, () => resolve(s));
    s.on('error', reject);
    socks.push(s);
  });
  const readAll = (s) => new Promise((resolve) => {
    let buf = '';
    s.removeAllListeners('error');
    s.on('error', () => {});
    s.on('data', (d) => { buf += d.toString('latin1'); });
    s.on('close', () => resolve(buf));
    s.resume();
  });
  try {
    // two heads held by 127.0.0.5 (its bound), then 20 more that it neither reads nor closes
    for (let i = 0; i < 2; i++) (await connect('127.0.0.5')).write('GET /events/health HTTP/1.1\r\n');
    await sleep(200);
    const tries = [];
    for (let i = 0; i < 20; i++) tries.push(await connect('127.0.0.5'));
    await sleep(200);
    // the broker's 8 places are not taken by those: another address is served
    const other = await connect('127.0.0.6');
    other.write('GET /events/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const raw = await readAll(other);
    assert.match(raw, /^HTTP\/1.1 200 /, raw.slice(0, 200));
    // and each of the 20 was answered 503 too_many_clients
    for (const s of tries) {
      const got = await readAll(s);
      assert.match(got, /^HTTP\/1.1 503 [^]*"too_many_clients"/, got.slice(0, 200));
    }
  } finally {
    for (const s of socks) s.destroy();
    await stop(own);
  }
});

test('BROKER_TRUSTED_PROXIES that is not a list of addresses stops the broker at start; by default loopback is trusted, and 0 turns the bound off', async () => {
  for (const [value, why] of [['localhost', /BROKER_TRUSTED_PROXIES localhost is not an IPv4 or IPv6 address/],
    ['10.0.0.0/33', /BROKER_TRUSTED_PROXIES 10.0.0.0\/33: an IPv4 prefix is 0 to 32 bits/]]) {
    const b = start(BROKER_BIN, [], { env: { ...process.env, ...BROKER_ENV, BROKER_PORT: String(await freePort()),
      BROKER_HOST: '127.0.0.1', REDIS_URL: `redis://127.0.0.1:${redis.port}`, JWT_SECRET: SECRET,
      BROKER_TRUSTED_PROXIES: value } });
    try {
      await waitFor(() => b.exitCode !== null, { what: `the broker to refuse ${value}` });
      assert.equal(b.exitCode, 2, b.output);
      assert.match(b.output, why);
    } finally {
      await stop(b);
    }
  }
  // loopback trusted by default: past a bound of 1, 127.0.0.1 still opens heads at will;
  // with none trusted and the bound at 0, nothing is counted either
  for (const env of [{ BROKER_MAX_HEADS_PER_ADDRESS: '1' }, { BROKER_MAX_HEADS_PER_ADDRESS: '0', BROKER_TRUSTED_PROXIES: 'none' }]) {
    const own = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...BROKER_ENV, ...env } });
    const socks = [];
    try {
      for (let i = 0; i < 4; i++) {
        const s = createConnection(own.port, '127.0.0.1');
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        s.write('GET /events/health HTTP/1.1\r\n');
        socks.push(s);
      }
      await sleep(200);
      const r = await fetch(`${own.base}/events/health`);
      assert.equal(r.status, 200, JSON.stringify(env));
    } finally {
      for (const s of socks) s.destroy();
      const r = await stop(own);
      assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
    }
  }
});
