// The broker's catch-up from a room's history (sse-broker/hub.c, lib/lua/broker_catchup.lua)
// against a redis-server of this file's own (its counters and its ACL are changed here): a
// catch-up reads about its byte budget per call, whatever the events' sizes; one answered with
// an error ends the stream instead of going live over the gap; a deleted room ends a stream
// that is still replaying; a position past an empty history is told to start over; a history
// trimmed between two pages of a paused catch-up is announced before the gap.
// Run: node --test tests/programs/broker-catchup.test.mjs (after make build-asan).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { randomBytes } from 'node:crypto';

import { stop, waitFor, start, freePort } from '../lib/procs.mjs';
import { roomKey } from '../lib/resp.mjs';
import { ticket } from '../lib/tokens.mjs';
import { startBrokerOnRedis, stopBrokerOnRedis } from '../lib/broker-redis.mjs';
import { sseEvents as parseSse } from '../lib/sse.mjs';

const SECRET = randomBytes(24).toString('hex');
const CLIENT_BUFFER = 256 * 1024;
const BROKER_ENV = {
  BROKER_HEARTBEAT_MS: '500',
  BROKER_POLL_TIMEOUT_MS: '1500',
  BROKER_WS_TIMEOUT_MS: '2500',
  BROKER_CLIENT_BUFFER: String(CLIENT_BUFFER),
  BROKER_REDIS_BACKOFF_MAX_MS: '1000',
};
const LONGPOLL_MAX_BYTES = 512 * 1024; // sse-broker/longpoll.h

let redis, broker, rc, metricsPort;
let roomSeq = 0;
async function newRoom() {
  const room = `c${process.pid}x${++roomSeq}`;
  await rc.cmd('SET', `cc:room:{${room}}:visibility`, 'public');
  return room;
}
const tk = (room, user = 1, name = `user${user}`) => ticket(SECRET, { room, user, name });

before(async () => {
  metricsPort = await freePort();
  ({ redis, rc, broker } = await startBrokerOnRedis({ secret: SECRET,
    env: { ...BROKER_ENV, BROKER_METRICS_PORT: String(metricsPort) } }));
});

after(() => stopBrokerOnRedis({ redis, rc, broker }));


function curlSse(url) {
  const child = start('curl', ['-sN', '--no-buffer', url]);
  let text = '';
  child.stdout.on('data', (d) => { text += d; });
  return {
    child,
    get text() { return text; },
    events: () => parseSse(text.slice(0, text.lastIndexOf('\n\n') + 2)),
    close: () => stop(child, 'SIGKILL'),
  };
}
const exited = (curl) => curl.child.exitCode !== null || curl.child.signalCode !== null;
const ops = (events) => events.filter((e) => e.type === 'operation');

async function poll(room, since, t = tk(room)) {
  const q = new URLSearchParams({ ticket: t });
  if (since !== undefined) q.set('since', since);
  const r = await fetch(`${broker.base}/events/rooms/${room}/poll?${q}`);
  assert.equal(r.status, 200);
  return r.json();
}

// What Redis has written to its clients so far, and how many scripts it has run.
async function redisCounters() {
  const stats = await rc.cmd('INFO', 'stats');
  const cmds = await rc.cmd('INFO', 'commandstats');
  const calls = (name) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(cmds)?.[1] ?? 0);
  return { out: Number(/total_net_output_bytes:(\d+)/.exec(stats)[1]), scripts: calls('evalsha') + calls('eval') };
}

// promise, or a failure after ms (the guard timer is cleared either way)
async function within(promise, ms, what) {
  let timer;
  const late = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms); });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function metric(name, labels = '') {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  assert.ok(line, `${name}${labels} in\n${text}`);
  return Number(line.split(' ').at(-1));
}

// A history of N events of about BIG bytes each, ~14 MiB (within the 16 MiB a room's history
// keeps, lib/events.h): a page of 500 entries would be all of it.
const BIG = 48 * 1024;
const N = 300;
async function bigHistory(room) {
  const pad = 'x'.repeat(BIG);
  const ids = [];
  for (let i = 0; i < N; i++) ids.push(await rc.emit(room, 'operation', { revision: i + 1, ops: [pad], n: i }));
  return ids;
}

test('a catch-up reads about its byte budget per call from Redis; long-poll and SSE from the start get every event once, in order', async () => {
  const room = await newRoom();
  const ids = await bigHistory(room);

  // long-poll from the start: each answer is full at LONGPOLL_MAX_BYTES, each call of the
  // catch-up script reads about that much (at least one entry), never the whole page
  const got = [];
  let since = '0';
  let polls = 0;
  while (got.length < N && polls++ < 2 * N) {
    const b = await redisCounters();
    const r = await fetch(`${broker.base}/events/rooms/${room}/poll?${new URLSearchParams({ ticket: tk(room), since })}`);
    const body = await r.text();
    const a = await redisCounters();
    const bytes = a.out - b.out;
    const calls = a.scripts - b.scripts;
    assert.ok(bytes < 4 * LONGPOLL_MAX_BYTES, `Redis wrote ${bytes} bytes for one poll (${r.status})`);
    assert.ok(calls > 0 && bytes / calls < LONGPOLL_MAX_BYTES + BIG + 16 * 1024,
      `Redis wrote ${bytes} bytes in ${calls} script calls for one poll`);
    assert.equal(r.status, 200, body.slice(0, 300));
    const j = JSON.parse(body);
    got.push(...ops(j.events).map((e) => e.id));
    since = j.last_event_id;
  }
  assert.deepEqual(got, ids, 'long-poll: every event once, in order');

  // SSE from the start: half the client buffer per call
  const b = await redisCounters();
  const s = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 2)}&last_event_id=0`);
  try {
    await waitFor(() => s.text.includes(': connected'), { timeout: 60000, what: 'the SSE catch-up' });
    const a = await redisCounters();
    const bytes = a.out - b.out;
    const calls = a.scripts - b.scripts;
    assert.ok(bytes / calls < CLIENT_BUFFER / 2 + BIG + 16 * 1024,
      `Redis wrote ${bytes} bytes in ${calls} script calls for one SSE catch-up`);
    assert.deepEqual(ops(s.events()).map((e) => e.id), ids, 'SSE: every event once, in order');
  } finally {
    await s.close();
  }
});

test('a catch-up answered with an error ends the stream: it never goes live over the gap, and resuming later loses nothing', async () => {
  const room = await newRoom();
  const ids = await emitOps(room, 3);
  // the catch-up script reads XINFO STREAM; the rights check does not: this user may not
  // run it for a while, so the catch-up (and only it) is answered with an error
  await rc.cmd('ACL', 'SETUSER', 'default', '-xinfo');
  let s;
  try {
    s = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room)}&last_event_id=${ids[0]}`);
    await waitFor(() => exited(s) || s.text.includes(': connected'), { what: 'the stream ends or goes live' });
    if (!exited(s)) {
      // it went live: what it now gets shows the gap
      ids.push(...await emitOps(room, 1, 3));
      await waitFor(() => ops(s.events()).length > 0, { what: 'a live event' });
    }
    assert.deepEqual(ops(s.events()).map((e) => e.id), [], 'nothing after the gap');
    assert.ok(exited(s), 'the stream ended');
  } finally {
    await rc.cmd('ACL', 'SETUSER', 'default', '+xinfo');
    await s?.close();
  }
  const j = await poll(room, ids[0]);
  assert.deepEqual(ops(j.events).map((e) => e.id), ids.slice(1), 'the resumed stream gets what it missed');
});

async function emitOps(room, n, from = 0) {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await rc.emit(room, 'operation', { revision: from + i + 1, ops: [`x${i}`] }));
  return ids;
}

// A stream whose client stopped reading while it replays a long history waits (HUB_BUSY) with
// its output full. When the room is deleted it ends too, not only the live ones that carried
// the `deleted` event: before, it held the event and stayed open for as long as the client
// kept its connection.
test('a deleted room ends a stream that is still replaying, its client not reading', async () => {
  const room = await newRoom();
  await bigHistory(room);
  const open = () => metric('codecollab_broker_streams_open', '{transport="sse"}');
  await waitFor(async () => (await open()) === 0, { what: 'no SSE stream left open by the tests before' });
  const s = createConnection(broker.port, '127.0.0.1', () => {
    s.write(`GET /events/rooms/${room}?ticket=${tk(room, 3)}&last_event_id=0 HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
  s.on('error', () => {});
  s.pause(); // reads nothing: ~14 MiB of history cannot all fit the socket's buffers
  let text = '';
  const closed = new Promise((resolve) => s.on('close', resolve));
  try {
    await waitFor(async () => (await open()) === 1, { what: 'the stream open' });
    // its join is in the history after the 300 events: the stream has joined the room
    await waitFor(async () => (await rc.cmd('XREVRANGE', roomKey(room, 'events'), '+', '-', 'COUNT', 1))[0]?.[1]?.[1] === 'join',
      { what: 'the join of the stream' });
    // the API deletes the room's rights caches before it emits the event; they stay here,
    // so that the event alone must end the stream (any rights re-check, after a Redis
    // reconnect say, would end it too, and then this would show nothing)
    await rc.emit(room, 'room', { reason: 'deleted', id: room });
    await waitFor(async () => (await open()) === 0, { timeout: 5000, what: 'the replaying stream ended by the delete' });
    s.on('data', (d) => { text += d.toString('latin1'); });
    s.resume();
    await within(closed, 15000, 'the connection closed');
    const got = ops(parseSse(text.slice(text.indexOf('\r\n\r\n') + 4, text.lastIndexOf('\n\n') + 2)));
    assert.ok(got.length < N, `${got.length} events: the replay stopped where the client stood`);
    assert.deepEqual(got.map((e) => e.data.n), [...got.keys()], 'what it got came in order, once');
  } finally {
    s.destroy();
  }
});

// A room without events has no newest entry to name: a position past it (an id the room
// never gave) is told to start over from 0-0. Before, the stream went live at that position
// and dropped every later event as already seen.
test('a position past an empty history gets resync unknown_position at 0-0, then every new event', async () => {
  const BOGUS = '99999999999999-0';
  const room = await newRoom();
  // long-poll: no presence, so nothing is written to the room by the poll itself
  const j = await poll(room, BOGUS);
  assert.deepEqual(j.events.map((e) => [e.type, e.id, e.data.reason]), [['resync', '0-0', 'unknown_position']]);
  assert.equal(j.last_event_id, '0-0');
  const s = curlSse(`${broker.base}/events/rooms/${room}?ticket=${tk(room, 4)}&last_event_id=${BOGUS}`);
  try {
    await waitFor(() => s.text.includes(': connected'), { what: 'the SSE stream live' });
    const [id] = await emitOps(room, 1);
    const k = await poll(room, j.last_event_id);
    assert.deepEqual(ops(k.events).map((e) => e.id), [id], 'the poll resumed from 0-0 gets the event');
    await waitFor(() => ops(s.events()).length === 1, { what: 'the event on the SSE stream' });
    const seen = s.events().filter((e) => e.type === 'resync' || e.type === 'operation');
    assert.deepEqual(seen.map((e) => [e.type, e.data.reason]), [['resync', 'unknown_position'], ['operation', undefined]]);
    assert.equal(seen[1].id, id);
  } finally {
    await s.close();
  }
});

// A catch-up reads the history a page at a time (about half the client buffer each), and a
// client that does not read pauses it between two pages. A busy room can turn its history over
// meanwhile: what the next page would have started with is trimmed away. Before, that page
// went on from the oldest entry still kept, as if nothing were missing, and the client's
// document diverged; it must be told (resync history_trimmed) before the entries after the gap.
test('a catch-up paused between pages while the history turns over tells the client before the gap', async () => {
  const room = await newRoom();
  // ~14 MiB of history (within the 16 MiB it keeps): far more than the broker's buffer and
  // the sockets' can take at once (about 4.5 MiB here), so the replay must wait for the
  // client somewhere in it
  const pad = 'y'.repeat(16 * 1024);
  const all = [];
  for (let i = 0; i < 900; i++) all.push(await rc.emit(room, 'operation', { revision: i + 1, ops: [pad], n: i }));
  const delivered = () => metric('codecollab_broker_events_delivered_total', '{transport="sse"}');
  const before = await delivered();
  const s = createConnection(broker.port, '127.0.0.1', () => {
    s.write(`GET /events/rooms/${room}?ticket=${tk(room, 5)}&last_event_id=${all[0]} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
  s.on('error', () => {});
  s.pause(); // reads nothing for now
  let text = '';
  try {
    // the catch-up has begun (its first page checked and partly delivered) and cannot end
    // while the client reads nothing
    await waitFor(async () => (await delivered()) > before, { timeout: 30000, what: 'the catch-up under way' });
    // a busy room: more than the history's 1000 entries, so that every entry the client has
    // not got yet is trimmed away (held meanwhile for the stream as live events)
    for (let i = 0; i < 1100; i++) all.push(await rc.emit(room, 'operation', { revision: 901 + i, ops: ['z'], n: 900 + i }));
    assert.ok((await rc.cmd('XRANGE', roomKey(room, 'events'), '-', all[899])).length === 0,
      'the history no longer holds the first events');
    s.on('data', (d) => { text += d.toString('latin1'); });
    s.resume();
    await waitFor(() => text.includes(`id: ${all.at(-1)}\n`), { timeout: 60000, what: 'the newest event on the stream' });
  } finally {
    s.destroy();
  }
  const events = parseSse(text.slice(text.indexOf('\r\n\r\n') + 4, text.lastIndexOf('\n\n') + 2));
  // walking the stream: each operation follows the one before in the room's order, unless a
  // history_trimmed resync came between them; none comes twice or out of order
  let at = 0; // the client's position in `all`: it resumed from all[0]
  let told = false;
  let resyncs = 0;
  for (const e of events) {
    if (e.type === 'resync') {
      assert.equal(e.data.reason, 'history_trimmed', JSON.stringify(e));
      told = true;
      resyncs++;
      continue;
    }
    if (e.type !== 'operation') continue;
    const i = all.indexOf(e.id);
    assert.ok(i > at, `${e.id} (event ${i}) after event ${at}: in order, once`);
    assert.ok(i === at + 1 || told, `events ${at + 1}..${i - 1} skipped without a resync`);
    at = i;
    told = false;
  }
  assert.equal(at, all.length - 1, 'the stream reached the newest event');
  assert.ok(resyncs >= 1, 'the client, behind the trimmed history, was told so');
});
