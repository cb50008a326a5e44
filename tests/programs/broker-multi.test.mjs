// The broker's stream of several rooms (docs/API.md, "Several rooms on one stream") against a
// real redis-server: every room's events arrive on one connection in the envelope
// {room, type, id, data}, each room resumes from its own id and gets its own resync, rooms
// the user may not read are dropped with a `dropped` event and never leak, one room's
// revocation ends only that room, and malformed or hostile room lists are refused with a
// JSON 400. Run: node --test tests/programs/broker-multi.test.mjs (after make build-asan).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import WebSocket from 'ws';

import { startBroker, stop, waitFor, sleep, freePort } from '../lib/procs.mjs';
import { roomKey, EMIT_SCRIPT, HISTORY_BOUNDS } from '../lib/resp.mjs';
import { ticket, session, newSid } from '../lib/tokens.mjs';
import { sseBlockStream, sseFields } from '../lib/sse.mjs';
import { startBrokerOnRedis, stopBrokerOnRedis } from '../lib/broker-redis.mjs';

const SECRET = randomBytes(24).toString('hex');
let redis, broker, rc;
let roomSeq = 0;

async function newRoom({ visibility = 'public', members = {} } = {}) {
  const room = `m${process.pid}x${++roomSeq}`;
  await rc.cmd('SET', `cc:room:{${room}}:visibility`, visibility);
  for (const [uid, role] of Object.entries(members)) await rc.cmd('HSET', `cc:room:{${room}}:members`, uid, role);
  return room;
}
const bearer = (user = 1, sid = newSid()) => `Bearer ${session(SECRET, { user, name: `u${user}`, sid })}`;

before(async () => {
  ({ redis, rc, broker } = await startBrokerOnRedis({ secret: SECRET, env: { BROKER_HEARTBEAT_MS: '500' } }));
});

after(() => stopBrokerOnRedis({ redis, rc, broker }));

// The stream read with fetch, as the browser's shared worker reads it: SSE blocks parsed as
// they come; every event's data is the envelope.
function multiSse(query, auth = bearer(), at = broker) {
  const ctl = new AbortController();
  const s = { events: [], blocks: [], status: null, ended: false, body: '' };
  s.opened = (async () => {
    const res = await fetch(`${at.base}/events/multi?${query}`, { headers: { Authorization: auth }, signal: ctl.signal });
    s.status = res.status;
    s.contentType = res.headers.get('content-type');
    if (res.status !== 200) {
      s.json = await res.json();
      s.ended = true;
      return s;
    }
    (async () => {
      try {
        for await (const block of sseBlockStream(res.body)) {
          s.blocks.push(block);
          const { event, data } = sseFields(block);
          if (data) s.events.push({ sseType: event, ...JSON.parse(data) });
        }
      } catch { /* aborted */ }
      s.ended = true;
    })();
    return s;
  })();
  s.close = () => ctl.abort();
  s.of = (room, type) => s.events.filter((e) => e.room === room && (!type || e.type === type));
  return s;
}

function multiWs(query, auth = bearer(), at = broker) {
  const ws = new WebSocket(`ws://127.0.0.1:${at.port}/events/multi/ws?${query}`, { headers: { Authorization: auth } });
  const events = [];
  ws.on('message', (m) => events.push(JSON.parse(m.toString())));
  const opened = new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const c = { ws, events, opened, ended: false, of: (room, type) => events.filter((e) => e.room === room && (!type || e.type === type)), close: () => ws.terminate() };
  c.closed = new Promise((resolve) => ws.once('close', (code) => { c.ended = true; resolve(code); }));
  return c;
}

const emitOps = async (room, n, from = 0) => {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await rc.emit(room, 'operation', { revision: from + i + 1, ops: [`${room} ${from + i}`] }));
  return ids;
};
const opIds = (evs) => evs.filter((e) => e.type === 'operation').map((e) => e.id);
// streams are subscribed (their rooms' channels confirmed) a moment after they open
const settle = () => sleep(300);

// Events of a room that reach the broker in one read go to a multi-room SSE stream (the
// browser's shared stream) in one write, room by room; the WebSocket takes them one by one.
// MULTI/EXEC makes the burst: six events of one room, six of another, then six of the first.
test('a burst of events in two rooms reaches a multi-room stream in order, each room\'s run in one write', async () => {
  const metricsPort = await freePort();
  const own = await startBroker({ redisPort: redis.port, secret: SECRET, env: { BROKER_HEARTBEAT_MS: '500', BROKER_METRICS_PORT: String(metricsPort) } });
  const batched = async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const m = /^codecollab_broker_events_batched_total\{transport="sse"\} (\d+)$/m.exec(text);
    assert.ok(m, text);
    return Number(m[1]);
  };
  const [a, b] = [await newRoom(), await newRoom()];
  const sse = multiSse(`rooms=${a},${b}`, bearer(), own);
  const ws = multiWs(`rooms=${a},${b}`, bearer(), own);
  try {
    await sse.opened;
    await ws.opened;
    await settle();
    assert.equal(await batched(), 0);
    await rc.cmd('MULTI');
    const order = [];
    for (const [room, n] of [[a, 6], [b, 6], [a, 6]]) {
      for (let i = 0; i < n; i++) {
        await rc.cmd('EVAL', EMIT_SCRIPT, 1, roomKey(room, 'events'), 'operation', JSON.stringify({ ops: [`${room} ${i}`] }), HISTORY_BOUNDS);
        order.push(room);
      }
    }
    const ids = await rc.cmd('EXEC');
    const want = { [a]: ids.filter((_, i) => order[i] === a), [b]: ids.filter((_, i) => order[i] === b) };
    for (const c of [sse, ws]) {
      await waitFor(() => opIds(c.of(a)).length === 12 && opIds(c.of(b)).length === 6, { what: 'the burst' });
      assert.deepEqual(opIds(c.of(a)), want[a]);
      assert.deepEqual(opIds(c.of(b)), want[b]);
      // across rooms too: the stream's order is the order Redis sent them in
      assert.deepEqual(c.events.filter((e) => e.type === 'operation').map((e) => e.room), order);
    }
    const n = await batched();
    // each run of six in one write counts five (the multi-room WebSocket takes them one by one)
    assert.ok(n >= 5 && n <= 15, `runs of one room went out in one write (batched ${n})`);
  } finally {
    sse.close();
    ws.close();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

test('every room\'s events arrive on one stream with their room, in order, over SSE and WebSocket', async () => {
  const rooms = [await newRoom(), await newRoom(), await newRoom()];
  const sse = multiSse(`rooms=${rooms.join(',')}`);
  const ws = multiWs(`rooms=${rooms.join(',')}`);
  await sse.opened;
  await ws.opened;
  assert.equal(sse.status, 200);
  assert.match(sse.contentType, /^text\/event-stream/);
  await settle();
  const want = {};
  for (const r of rooms) want[r] = [];
  for (let i = 0; i < 4; i++) for (const r of rooms) want[r].push(...await emitOps(r, 1, i));
  for (const c of [sse, ws]) {
    await waitFor(() => rooms.every((r) => opIds(c.of(r)).length === 4), { what: 'all rooms\' events' });
    for (const r of rooms) {
      assert.deepEqual(opIds(c.of(r)), want[r]);
      const e = c.of(r, 'operation')[0];
      assert.deepEqual(Object.keys(e).filter((k) => k !== 'sseType').sort(), ['data', 'id', 'room', 'type']);
      assert.deepEqual(e.data.ops, [`${r} 0`]);
    }
  }
  // the SSE `event:` line is the type; no `id:` line (each room's id is in its envelope)
  assert.ok(sse.events.every((e) => e.sseType === e.type));
  assert.ok(sse.blocks.every((b) => !b.split('\n').some((l) => l.startsWith('id:'))));
  sse.close();
  ws.close();
});

test('each room resumes from its own last event id; a trimmed room gets its own resync', async () => {
  const [a, b, c, d] = [await newRoom(), await newRoom(), await newRoom(), await newRoom()];
  const ia = await emitOps(a, 5);
  const ib = await emitOps(b, 3);
  await emitOps(c, 2); // c is opened without a position: only what comes from now on
  const id = await emitOps(d, 6);
  await rc.cmd('XTRIM', `cc:room:{${d}}:events`, 'MAXLEN', '2');
  const q = new URLSearchParams({ rooms: `${a}:${ia[1]},${b}:${ib[2]},${c},${d}:${id[0]}` });
  for (const open of [multiSse, multiWs]) {
    const s = open(q.toString());
    await s.opened;
    await waitFor(() => opIds(s.of(a)).length === 3 && opIds(s.of(d)).length === 2, { what: 'replay' });
    await settle();
    assert.deepEqual(opIds(s.of(a)), ia.slice(2));
    assert.deepEqual(opIds(s.of(b)), []);
    assert.deepEqual(opIds(s.of(c)), []);
    assert.deepEqual(s.of(d, 'resync').map((e) => e.data), [{ reason: 'history_trimmed' }]);
    assert.deepEqual(opIds(s.of(d)), id.slice(4));
    // each room says where it stands once caught up: the last event it delivered (after the
    // replay), or the room's tail when it delivered none
    for (const r of [a, b, c, d]) {
      const evs = s.of(r);
      const at = evs.findIndex((e) => e.type === 'subscribed');
      assert.ok(at >= 0, `subscribed in ${r}`);
      const before = evs.slice(0, at).filter((e) => e.type !== 'resync');
      const tail = (await rc.cmd('XREVRANGE', `cc:room:{${r}}:events`, '+', '-', 'COUNT', '1'))[0][0];
      assert.equal(evs[at].id, before.length ? before.at(-1).id : tail, r);
    }
    for (const r of [a, b, c]) assert.equal(s.of(r, 'resync').length, 0, `no resync for ${r}`);
    const more = await emitOps(c, 1, 10);
    await waitFor(() => opIds(s.of(c)).length === 1, { what: 'live event in c' });
    assert.deepEqual(opIds(s.of(c)), more);
    s.close();
  }
});

test('rooms the user may not read are dropped at once and never leak; a stream of none is refused', async () => {
  const mine = await newRoom({ visibility: 'private', members: { 5: 'editor' } });
  const theirs = await newRoom({ visibility: 'private', members: { 6: 'owner' } });
  const unknown = `nosuchroom${process.pid}`;
  const pub = await newRoom();
  await emitOps(theirs, 1); // a position of its own, which a stranger must not learn
  const s = multiSse(`rooms=${mine},${theirs},${unknown}:1700000000000-5,${pub}`, bearer(5));
  await s.opened;
  assert.equal(s.status, 200);
  await waitFor(() => s.events.filter((e) => e.type === 'dropped').length === 2, { what: 'dropped events' });
  assert.deepEqual(s.of(theirs, 'dropped')[0].data, { reason: 'not_a_member', message: 'not a member of this room' });
  assert.deepEqual(s.of(unknown, 'dropped')[0].data, { reason: 'room_not_found', message: 'no such room' });
  // a room refused at the opening has no position to tell: its id is the one the client
  // named, or 0-0 (it was the broker's uninitialised memory, and no read of the room is told)
  assert.equal(s.of(theirs, 'dropped')[0].id, '0-0');
  assert.equal(s.of(unknown, 'dropped')[0].id, '1700000000000-5');
  const ws = multiWs(`rooms=${mine},${theirs},${unknown}:1700000000000-5`, bearer(5));
  await ws.opened;
  await waitFor(() => ws.events.filter((e) => e.type === 'dropped').length === 2, { what: 'dropped events (WebSocket)' });
  assert.deepEqual([ws.of(theirs, 'dropped')[0].id, ws.of(unknown, 'dropped')[0].id], ['0-0', '1700000000000-5']);
  ws.close();
  await settle();
  await emitOps(theirs, 2);
  await emitOps(unknown, 2);
  const ok = [...await emitOps(mine, 1), ...await emitOps(pub, 1)];
  await waitFor(() => opIds(s.events).length === 2, { what: 'readable rooms live' });
  await sleep(200);
  assert.deepEqual(opIds(s.events).sort(), ok.sort());
  assert.deepEqual(s.events.filter((e) => e.room === theirs || e.room === unknown).map((e) => e.type), ['dropped', 'dropped']);
  s.close();

  const none = multiSse(`rooms=${theirs},${unknown}`, bearer(5));
  await none.opened;
  assert.equal(none.status, 403);
  assert.equal(none.json.error, 'not_a_member');
});

test('revoking one room drops only that room; signing out ends the stream', async () => {
  const priv = await newRoom({ visibility: 'private', members: { 7: 'editor' } });
  const other = await newRoom({ visibility: 'private', members: { 7: 'viewer' } });
  const gone = await newRoom({ members: { 7: 'owner' } });
  const sid = newSid();
  const auth = bearer(7, sid);
  const sse = multiSse(`rooms=${priv},${other},${gone}`, auth);
  const ws = multiWs(`rooms=${priv},${other},${gone}`, auth);
  await sse.opened;
  await ws.opened;
  await settle();

  await rc.cmd('HDEL', `cc:room:{${priv}}:members`, '7');
  const changed = await rc.emit(priv, 'room', { reason: 'members' });
  for (const c of [sse, ws]) {
    await waitFor(() => c.of(priv, 'dropped').length === 1, { what: 'the room dropped' });
    // the change itself first, then the drop
    assert.deepEqual(c.of(priv).filter((e) => !['join', 'leave', 'subscribed'].includes(e.type)).map((e) => [e.type, e.id === changed || e.type === 'dropped']),
      [['room', true], ['dropped', true]]);
    assert.equal(c.of(priv, 'dropped')[0].data.reason, 'not_a_member');
  }
  await emitOps(priv, 1);
  const kept = await emitOps(other, 1);
  for (const c of [sse, ws]) {
    await waitFor(() => opIds(c.of(other)).length === 1, { what: 'the other room goes on' });
    assert.deepEqual(opIds(c.of(other)), kept);
  }
  assert.ok(!sse.ended);
  assert.equal(ws.ws.readyState, WebSocket.OPEN);

  // a deleted room: its event, then the drop; the rest goes on
  const del = await rc.emit(gone, 'room', { reason: 'deleted', id: gone });
  for (const c of [sse, ws]) {
    await waitFor(() => c.of(gone, 'dropped').length === 1, { what: 'deleted room dropped' });
    assert.equal(c.of(gone, 'room').at(-1).id, del);
    assert.equal(c.of(gone, 'dropped')[0].data.reason, 'deleted');
  }
  assert.ok(!sse.ended);

  // sign-out: the last room goes, with the stream
  await rc.cmd('SET', `cc:sess:${sid}:revoked`, '1');
  await rc.cmd('SPUBLISH', 'cc:access', JSON.stringify({ user: 7 }));
  await waitFor(() => sse.ended, { what: 'SSE ended' });
  assert.equal(await ws.closed, 1008);
  for (const c of [sse, ws]) assert.equal(c.of(other, 'dropped')[0].data.reason, 'session_revoked');
  assert.equal(opIds(sse.of(priv)).length + opIds(ws.of(priv)).length, 0, 'nothing of the revoked room');
  // and the session opens nothing any more
  const again = multiSse(`rooms=${other}`, auth);
  await again.opened;
  assert.equal(again.status, 401);
});

test('too many, repeated, duplicate and malformed room lists are refused with a JSON 400', async () => {
  const room = await newRoom();
  const get = (query, headers = { Authorization: bearer() }) => fetch(`${broker.base}/events/multi?${query}`, { headers });
  const list = (n) => Array.from({ length: n }, (_, i) => `${room}n${i}`).join(',');
  let r = await get(`rooms=${list(17)}`);
  assert.equal(r.status, 400);
  let j = await r.json();
  assert.equal(j.error, 'too_many_rooms');
  assert.match(j.message, /at most 16/);
  // sixteen is fine (they are public: none set up is private... unknown rooms are dropped)
  const s = multiSse(`rooms=${room},${list(15)}`);
  await s.opened;
  assert.equal(s.status, 200);
  await waitFor(() => s.events.filter((e) => e.type === 'dropped').length === 15, { what: '15 unknown rooms dropped' });
  s.close();

  const cases = [
    ['', /rooms=/], ['rooms=', /rooms=/], [`rooms=${room}&rooms=${room}x`, /once/], [`rooms=${room},${room}`, /named twice/],
    [`rooms=${room}:abc`, /event id/], [`rooms=${room}:1-2-3`, /event id/], [`rooms=${room}:`, /event id/],
    [`rooms=${room},,x`, /empty entry/], [`rooms=${room},`, /empty entry/], ['rooms=bad%20id', /not a room id/],
    ['rooms=%zz', /not a valid/], ['rooms=a%00b', /not a valid/], [`rooms=${'x'.repeat(65)}`, /not a room id/],
    [`rooms=${','.repeat(5000)}`, /too many/],
  ];
  for (const [q, msg] of cases) {
    r = await get(q);
    assert.equal(r.status, 400, q);
    j = await r.json();
    assert.ok(j.error === 'invalid_request' || j.error === 'too_many_rooms', q);
    assert.match(j.message, msg, q);
  }
  // one room id of 2,000 characters is a malformed id, not more than 16 rooms
  r = await get(`rooms=${'x'.repeat(2000)}`);
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error, 'invalid_request');
  // a list longer than any request head the broker reads
  // (over a socket of its own: the broker answers once the line passes the bound and
  // closes, which a client still sending may see as a reset instead of the answer)
  const answer = await new Promise((resolve, reject) => {
    const sock = connect(broker.port, '127.0.0.1');
    let got = '';
    sock.on('data', (d) => { got += d.toString('latin1'); });
    sock.on('error', (e) => (got ? resolve(got) : reject(e)));
    sock.on('close', () => resolve(got));
    sock.end(`GET /events/multi?rooms=${'a,'.repeat(6000)}a HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer()}\r\n\r\n`);
  });
  assert.match(answer, /^HTTP\/1\.1 414 URI Too Long\r\n/);
  assert.match(answer, /"error":"uri_too_long"/);

  // credentials: bearer only, never a ticket; a wrong method or path
  r = await get(`rooms=${room}`, {});
  assert.equal(r.status, 401);
  r = await get(`rooms=${room}&ticket=${ticket(SECRET, { room, user: 1 })}`);
  assert.equal(r.status, 401);
  assert.match((await r.json()).message, /bearer/);
  r = await get(`rooms=${room}`, { Authorization: `Bearer ${ticket(SECRET, { room, user: 1 })}` });
  assert.equal(r.status, 401);
  assert.equal((await fetch(`${broker.base}/events/multi?rooms=${room}`, { method: 'POST', headers: { Authorization: bearer() } })).status, 405);
  assert.equal((await get(`x=1`, { Authorization: bearer() }).then((x) => x.status)), 400);
  assert.equal((await fetch(`${broker.base}/events/multi/other?rooms=${room}`)).status, 404);
  assert.equal((await fetch(`${broker.base}/events/multiple?rooms=${room}`)).status, 404);
  // the broker is fine
  assert.equal((await (await fetch(`${broker.base}/events/health`)).json()).redis, 'ok');
});

test('a stream of several rooms joins each of them; WebSocket presence up it names its room', async () => {
  const a = await newRoom();
  const b = await newRoom();
  const watch = multiSse(`rooms=${a},${b}`, bearer(10));
  await watch.opened;
  await settle();
  const ws = multiWs(`rooms=${a},${b}`, bearer(9));
  await ws.opened;
  // the user is in both rooms, as with a stream per room
  await waitFor(() => [a, b].every((r) => watch.of(r, 'join').some((e) => e.data.user.id === 9)), { what: 'joins' });
  ws.ws.send(JSON.stringify({ type: 'presence', room: b, cursor: 3, selection: null }));
  ws.ws.send(JSON.stringify({ type: 'presence', cursor: 4 })); // no room: ignored
  ws.ws.send(JSON.stringify({ type: 'presence', room: 'elsewhere', cursor: 5 })); // not on the stream
  await waitFor(() => watch.of(b, 'presence').length === 1, { what: 'presence in b' });
  await sleep(300);
  assert.equal(watch.of(a, 'presence').length, 0);
  assert.equal(watch.of(b, 'presence')[0].data.cursor, 3);
  assert.equal(watch.of(b, 'presence')[0].data.user.id, 9);
  ws.close();
  // and leaves both when it closes
  await waitFor(() => [a, b].every((r) => watch.of(r, 'leave').some((e) => e.data.user.id === 9)), { what: 'leaves' });
  watch.close();
});

// A room's `subscribed` goes out even when the client's output is at its bound
// (BROKER_CLIENT_BUFFER), as a one-room stream's marker does: the replay of this room (or of
// another room of the stream) may have filled it. The bound is reached exactly: the one event
// replayed is as large as the bound lets an event be, so it is written only into an empty
// output and leaves less room than the marker takes (the output goes to the socket on a later
// turn of the broker's loop), as for a client that has not read.
test('a room\'s "subscribed" goes out past the output bound, over SSE and WebSocket', async () => {
  const BOUND = 4096;
  const WS_HEAD_ALLOWANCE = 14; // what the broker counts for a frame's head (server.c)
  const envelope = (room, id, data) => `{"room":"${room}","type":"operation","id":"${id}","data":${data}}`;
  const sseSize = (room, id, data) => `event: operation\ndata: ${envelope(room, id, data)}\n\n`.length;
  const wsSize = (room, id, data) => envelope(room, id, data).length + WS_HEAD_ALLOWANCE;
  const low = await startBroker({ redisPort: redis.port, secret: SECRET, env: { BROKER_HEARTBEAT_MS: '500', BROKER_CLIENT_BUFFER: String(BOUND) } });
  const history = async (room) => (await rc.cmd('XRANGE', `cc:room:{${room}}:events`, '-', '+')).map((e) => e[0]);
  try {
    let user = 70;
    for (const [name, open, size] of [['SSE', multiSse, sseSize], ['WebSocket', multiWs, wsSize]]) {
      const auth = bearer(++user);
      const room = await newRoom();
      // a first stream of the user, so the one tested writes no `join` after the event
      const keeper = multiSse(`rooms=${room}`, auth, low);
      await keeper.opened;
      await waitFor(() => keeper.of(room, 'subscribed').length === 1, { what: 'keeper live' });
      await waitFor(async () => (await history(room)).length > 0, { what: 'the keeper\'s join' });
      const from = (await history(room)).at(-1);
      const guess = `${Date.now()}-0`; // ids are as long as this one for centuries
      const pad = size(room, guess, '{"revision":1,"ops":[""]}');
      const id = await rc.emit(room, 'operation', `{"revision":1,"ops":["${'x'.repeat(BOUND - pad)}"]}`);
      assert.equal(id.length, guess.length, `event id ${id}`);
      const s = open(`rooms=${room}:${from}`, auth, low);
      await s.opened;
      await waitFor(() => s.of(room, 'subscribed').length === 1 || s.ended, { what: `${name}: subscribed or the end` });
      s.close();
      keeper.close();
      assert.deepEqual(s.of(room).map((e) => [e.type, e.id]), [['operation', id], ['subscribed', id]],
        `${name}: the event at the bound, then "subscribed"`);
    }
  } finally {
    const r = await stop(low);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${low.output}`);
  }
});
