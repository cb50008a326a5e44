// Idle rooms leave Redis: the snapshotter's walk over the rooms (store_doc_sweep) takes out
// the document, the ops list and the commits set of a room whose revision in Redis is its
// newest saved one, saved at least ROOM_UNLOAD_IDLE_S ago, while no stream of the room is
// open and only when the saved history gives back the very text Redis holds. The next read
// or commit restores it from PostgreSQL (lib/store_doc.c restore).
//
// Real parts: a redis-server, a PostgreSQL with the schema, the API run as CGI as a client
// would call it, a codecollab-snapshotter and, for the open stream, a codecollab-broker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { freePort, start, startBroker, stop, waitFor } from '../lib/procs.mjs';
import { psql } from '../lib/pg.mjs';
import { ticket } from '../lib/tokens.mjs';
import { snapshotterGround, clientOf, SNAP_BIN } from '../lib/snapshotter-ground.mjs';

const SECRET = 'snapshotter-unload-test-secret-0123456789';
const ground = await snapshotterGround(SECRET);
const { redisSrv, pg, base } = ground;
const rcli = (...args) => execFileSync('redis-cli', ['-p', String(redisSrv.port), ...args]).toString().trim();
const key = (room, what) => `cc:room:{${room}}:${what}`;
const inRedis = (room) => ['doc', 'ops', 'commits'].filter((k) => rcli('EXISTS', key(room, k)) === '1');

// Saves due 100 ms after a mark, a walk every second, rooms idle for 1 s unloaded.
const ENV = { SNAPSHOT_INTERVAL_MS: '100', SNAPSHOT_SWEEP_MS: '1000', ROOM_UNLOAD_IDLE_S: '1' };

const client = clientOf(ground, 'unload');
const { savedRevision } = client;
const api = (req, env = {}) => client.api({ ...ENV, ...env }, req);
const roomOf = () => client.roomOf(ENV);
// The walks over the rooms a snapshotter has ended, from its metrics port.
const walksDone = async (port) => Number(/^codecollab_snapshotter_sweeps_total\{outcome="done"\} (\d+)$/m
  .exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1] ?? 0);
// one client_id for all: the commits set records each commit (what a resent request is
// recognised by)
const commit = (room, revision, ops) => client.commit(ENV, room, revision, ops, { client_id: 'c1' });

function document(room) {
  const d = api({ method: 'GET', uri: `/api/rooms/${room.id}/document`, token: room.token });
  assert.equal(d.status, 200, d.body);
  return [d.json.revision, d.json.content];
}

function snapshotter(env = {}) {
  const e = { ...process.env, ...base, ...ENV, ...env };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return start(SNAP_BIN, [], { env: e });
}

async function stopped(snap) {
  const ex = await stop(snap);
  assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  assert.doesNotMatch(snap.output, /AddressSanitizer|LeakSanitizer|runtime error/);
}

test('an idle room that is saved leaves Redis and comes back whole on its next read and commit', async () => {
  const room = roomOf();
  commit(room, 0, ['def f():\n    return 1\n']);
  commit(room, 1, [22, '# é ✓\n']);
  const emptied = roomOf(); // an empty text at revision 2
  commit(emptied, 0, ['gone']);
  commit(emptied, 1, [-4]);
  const metricsPort = await freePort();
  const snap = snapshotter({ SNAPSHOTTER_METRICS_PORT: String(metricsPort) });
  try {
    await waitFor(() => savedRevision(room.id) === 2, { what: 'revision 2 saved', timeout: 60000 });
    await waitFor(() => inRedis(room.id).length === 0, { what: 'the room out of Redis', timeout: 60000 });
    // its history of events cut to the newest entry (the second operation)
    const kept = rcli('XRANGE', key(room.id, 'events'), '-', '+');
    assert.equal(rcli('XLEN', key(room.id, 'events')), '1', kept);
    assert.match(kept, /"revision":2/);
    // the log line and the count follow the delete (the count once the walk's page ends)
    await waitFor(() => new RegExp(`room ${room.id}: idle, unloaded from Redis at revision 2`).test(snap.output),
      { what: 'the log line', timeout: 30000 });
    await waitFor(async () => /^codecollab_snapshotter_rooms_unloaded_total [1-9]\d*$/m
      .test(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()), { what: 'the count', timeout: 30000 });

    // while it is out, the room still tells its revision
    const info = api({ method: 'GET', uri: `/api/rooms/${room.id}`, token: room.token });
    assert.equal(info.status, 200, info.body);
    assert.equal(info.json.room.revision, 2);
    const list = api({ method: 'GET', uri: '/api/rooms', token: room.token });
    assert.equal(list.status, 200, list.body);
    assert.equal(list.json.rooms.find((r) => r.id === room.id)?.revision, 2, list.body);
    assert.deepEqual(inRedis(room.id), [], 'telling the revision does not load the room');

    // the next read restores it: the same revision, the same text
    const back = api({ method: 'GET', uri: `/api/rooms/${room.id}/document`, token: room.token });
    assert.equal(back.status, 200, back.body);
    assert.deepEqual([back.json.revision, back.json.content], [2, 'def f():\n    return 1\n# é ✓\n']);
    assert.match(back.stderr, new RegExp(`room ${room.id}: document restored from its history at revision 2`));
    // an edit made on that revision goes on from it
    assert.equal(commit(room, 2, [28, 'f()\n']), 3);
    assert.deepEqual(document(room), [3, 'def f():\n    return 1\n# é ✓\nf()\n']);
    // unloaded again once saved and idle, and again restored by a commit (not a read)
    await waitFor(() => savedRevision(room.id) === 3 && inRedis(room.id).length === 0,
      { what: 'revision 3 saved and the room out of Redis again', timeout: 60000 });
    assert.equal(commit(room, 3, [32, 'f()\n']), 4);
    assert.deepEqual(document(room), [4, 'def f():\n    return 1\n# é ✓\nf()\nf()\n']);
    await waitFor(() => inRedis(emptied.id).length === 0, { what: 'the emptied room out of Redis', timeout: 60000 });
    assert.deepEqual(document(emptied), [2, '']);
    assert.equal(snap.exitCode, null, snap.output);
  } finally {
    await stopped(snap);
  }
});

test('a request sent again after its room was taken out is told it was committed, not applied twice', async () => {
  const room = roomOf();
  commit(room, 0, ['one\n']);
  const again = { revision: 1, ops: [4, 'two\n'], client_id: 'c1' };
  const first = api({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, body: again });
  assert.equal(first.status, 200, first.body);
  // rooms idle for 6 s go, and their commits sets 6 s after them
  const snap = snapshotter({ ROOM_UNLOAD_IDLE_S: '6' });
  try {
    await waitFor(() => rcli('EXISTS', key(room.id, 'doc')) === '0', { what: 'the room out of Redis', timeout: 60000 });
    const ttl = Number(rcli('PTTL', key(room.id, 'commits')));
    assert.ok(ttl > 0 && ttl <= 6000, `the commits set expires after the document: ${ttl}`);
    // the answer to that edit was lost; the client sends it again as it was
    const r = api({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, body: again });
    assert.equal(r.status, 409, r.body);
    assert.equal(r.json.error, 'revision_too_old');
    assert.equal(r.json.applied_revision, 2, r.body);
    assert.deepEqual(document(room), [2, 'one\ntwo\n']);
    assert.equal(rcli('PTTL', key(room.id, 'commits')), '-1', 'restored: the set lives on with the room');
  } finally {
    await stopped(snap);
  }
});

test('a room with a stream open, or idle for less than ROOM_UNLOAD_IDLE_S, stays in Redis', async () => {
  const watched = roomOf();
  const recent = roomOf();
  commit(watched, 0, ['watched\n']);
  commit(recent, 0, ['recent\n']);
  const firstEvent = rcli('XRANGE', key(watched.id, 'events'), '-', '+', 'COUNT', '1').split('\n')[0];
  assert.match(firstEvent, /^\d+-\d+$/);
  const broker = await startBroker({ redisPort: redisSrv.port, secret: SECRET });
  const t = ticket(SECRET, { room: watched.id, user: watched.user.id, name: watched.user.username });
  const curl = start('curl', ['-sN', '--no-buffer', `${broker.base}/events/rooms/${watched.id}?ticket=${t}`]);
  // the recent room is looked at by a snapshotter that unloads after an hour only
  const patient = snapshotter({ ROOM_UNLOAD_IDLE_S: '3600' });
  let snap;
  try {
    await waitFor(() => rcli('ZCARD', key(watched.id, 'conns')) === '1', { what: 'the stream open', timeout: 30000 });
    await waitFor(() => savedRevision(watched.id) === 1 && savedRevision(recent.id) === 1,
      { what: 'both rooms saved', timeout: 60000 });
    await stopped(patient);
    // at least two walks of a snapshotter that unloads after one second: the watched room
    // stays; the other is taken out (so the walks did run)
    const metricsPort = await freePort();
    snap = snapshotter({ SNAPSHOTTER_METRICS_PORT: String(metricsPort) });
    const walks = () => walksDone(metricsPort);
    await waitFor(() => inRedis(recent.id).length === 0, { what: 'the room without a stream out of Redis', timeout: 60000 });
    const walked = await walks();
    await waitFor(async () => await walks() >= walked + 2, { what: 'two more walks', timeout: 60000 });
    assert.doesNotMatch(snap.output, new RegExp(`room ${watched.id}: idle, unloaded`));
    assert.deepEqual(inRedis(watched.id), ['doc', 'ops', 'commits'], 'the watched room stays');
    assert.equal(rcli('HGET', key(watched.id, 'doc'), 'revision'), '1');
    // the stream ends: its member leaves conns, and the room goes at the next walk
    await stop(curl, 'SIGKILL');
    await waitFor(() => rcli('ZCARD', key(watched.id, 'conns')) === '0', { what: 'the stream gone from conns', timeout: 60000 });
    await waitFor(() => inRedis(watched.id).length === 0, { what: 'the watched room out once its stream closed', timeout: 60000 });
    // a client that comes back from the room's first event is told to start over, then
    // reads the document back at the revision it had
    const poll = await fetch(`${broker.base}/events/rooms/${watched.id}/poll?ticket=${ticket(SECRET, { room: watched.id, user: watched.user.id, name: watched.user.username })}&since=${firstEvent}`);
    assert.equal(poll.status, 200);
    const body = await poll.json();
    assert.equal(body.events[0]?.type, 'resync', JSON.stringify(body));
    assert.deepEqual(document(watched), [1, 'watched\n']);
  } finally {
    if (curl.exitCode === null && curl.signalCode === null) await stop(curl, 'SIGKILL');
    if (patient.exitCode === null) await stop(patient);
    if (snap) await stopped(snap);
    await stop(broker);
  }
});

test('a room opened again stays in Redis one idle period, and the walks do not read it meanwhile', async () => {
  const room = roomOf();
  commit(room, 0, ['opened again\n']);
  const IDLE_S = 15;
  const metricsPort = await freePort();
  const snap = snapshotter({ ROOM_UNLOAD_IDLE_S: String(IDLE_S), SNAPSHOTTER_METRICS_PORT: String(metricsPort) });
  const walks = () => walksDone(metricsPort);
  const warning = new RegExp(`room ${room.id}: idle, but kept in Redis: its saved history does not give back the text Redis holds`);
  try {
    await waitFor(() => savedRevision(room.id) === 1, { what: 'revision 1 saved', timeout: 60000 });
    // saved an hour ago, as far as the walk can tell: out at its next look
    psql(pg, `UPDATE snapshots SET saved_at = now() - interval '1 hour' WHERE room_id = '${room.id}'`);
    await waitFor(() => rcli('EXISTS', key(room.id, 'doc')) === '0', { what: 'the room out of Redis', timeout: 60000 });
    assert.deepEqual(document(room), [1, 'opened again\n']);
    // back with its commits set (restored within the set's expiry), no operations pending
    const back = ['doc', 'commits'];
    assert.deepEqual(inRedis(room.id), back);
    const loaded = Number(rcli('HGET', key(room.id, 'doc'), 'loaded'));
    assert.ok(loaded > 0, 'the restore wrote when it loaded the room');
    // a text in Redis that its saved history does not give back: a walk that compared the
    // two would say so (the next test); within the period none does
    rcli('HSET', key(room.id, 'doc'), 'content', 'not what was saved\n');
    const walked = await walks();
    await waitFor(async () => await walks() >= walked + 2, { what: 'two more walks', timeout: 60000 });
    const seen = Date.now();
    assert.doesNotMatch(snap.output, warning, 'a walk within the period read the room');
    assert.deepEqual(inRedis(room.id), back);
    // those walks ran within the period (else this test showed nothing: too slow a machine)
    assert.ok(seen - loaded < IDLE_S * 1000, `two walks took ${seen - loaded} ms after the restore`);
    // once the period is over, the walk looks again (and keeps the room, with the warning)
    await waitFor(() => warning.test(snap.output), { what: 'the warning after the period', timeout: 60000 });
    assert.ok(Date.now() >= loaded + IDLE_S * 1000);
    assert.deepEqual(inRedis(room.id), back);
  } finally {
    await stopped(snap);
  }
});

test('a room whose saved history does not give back its text stays in Redis, with a warning', async () => {
  const room = roomOf();
  commit(room, 0, ['the text Redis holds\n']);
  const keep = snapshotter({ ROOM_UNLOAD_IDLE_S: '0' });
  try {
    await waitFor(() => savedRevision(room.id) === 1, { what: 'revision 1 saved', timeout: 60000 });
  } finally {
    await stopped(keep);
  }
  // the first save of a room is a checkpoint: made different here, as a damaged or
  // hand-edited history would be
  psql(pg, `UPDATE snapshots SET content = 'another text\n' WHERE room_id = '${room.id}' AND revision = 1`);
  const snap = snapshotter();
  try {
    await waitFor(() => new RegExp(`room ${room.id}: idle, but kept in Redis: its saved history does not give back the text Redis holds`).test(snap.output),
      { what: 'the warning', timeout: 60000 });
    assert.deepEqual(inRedis(room.id), ['doc', 'ops', 'commits']);
    assert.deepEqual(document(room), [1, 'the text Redis holds\n']);
  } finally {
    await stopped(snap);
  }
});

test('ROOM_UNLOAD_IDLE_S out of range stops the snapshotter with a clear error', async () => {
  for (const v of ['-1', 'soon', '99999999999999']) {
    const snap = snapshotter({ ROOM_UNLOAD_IDLE_S: v });
    await waitFor(() => snap.exitCode !== null, { what: `the snapshotter to exit on ${v}`, timeout: 30000 });
    assert.equal(snap.exitCode, 1, snap.output);
    assert.match(snap.output, /configuration: .*ROOM_UNLOAD_IDLE_S/);
  }
});
