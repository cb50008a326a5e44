// The snapshotter's claim of a due room is a lease on cc:snap:due (lib/lua/snap_claim.lua,
// lib/store_doc.c store_doc_claim / store_doc_release): a snapshotter killed in the middle of
// a save leaves the room due again when its lease ends, a commit during a save leaves the
// room due after it (the API's mark is ZADD LT), and a stopping snapshotter still saves a
// room that is not due yet. Real parts: a redis-server, a PostgreSQL with the schema, the
// API run as CGI for commits, and codecollab-snapshotter processes started here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { start, stop, waitFor } from '../lib/procs.mjs';
import { psql, pgUrl, holdRoomRow } from '../lib/pg.mjs';
import { snapshotterGround, clientOf, SNAP_BIN } from '../lib/snapshotter-ground.mjs';

const ground = await snapshotterGround('snapshotter-lease-test-secret-0123456789ab');
const { redisSrv, pg, base } = ground;
const rcli = (...args) => execFileSync('redis-cli', ['-p', String(redisSrv.port), ...args]).toString().trim();
const dueScore = (room) => rcli('ZSCORE', 'cc:snap:due', room);
const { roomOf, commit, savedRevision } = clientOf(ground, 'lease');

function snapshotter(env) {
  const e = { ...process.env, ...base, ...env };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return start(SNAP_BIN, [], { env: e });
}

const savesHeld = () => Number(psql(pg, `SELECT count(*) FROM pg_stat_activity
  WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND (query ILIKE 'INSERT INTO snapshots%' OR query ILIKE 'INSERT INTO history_ops%')`));

test('a snapshotter killed during a save: the room is saved by another once the lease ends', async () => {
  const env = { SNAPSHOT_INTERVAL_MS: '100', SNAPSHOT_LEASE_MS: '1500' };
  const room = roomOf(env);
  const lock = await holdRoomRow(pgUrl(pg), room.id);
  let a;
  let b;
  try {
    commit(env, room, 0, ['print("last words")\n']);
    a = snapshotter(env);
    await waitFor(() => savesHeld() >= 1, { what: 'the save held at its insert', timeout: 20000 });
    // killed between its claim and the end of its save
    a.kill('SIGKILL');
    assert.deepEqual(await a.exited, { code: null, signal: 'SIGKILL' });
    await lock.release();
    assert.equal(savedRevision(room.id), 0);
    assert.notEqual(dueScore(room.id), '', 'the room stays on the schedule (its lease)');
    b = snapshotter(env);
    await waitFor(() => savedRevision(room.id) === 1,
      { what: 'revision 1 saved by the second snapshotter after the lease', timeout: 20000 });
    // and the save ended the lease: the room left the schedule
    await waitFor(() => dueScore(room.id) === '', { what: 'the room off the schedule', timeout: 10000 });
  } finally {
    lock.kill();
    if (a && a.exitCode === null) a.kill('SIGKILL');
    if (b) {
      const ex = await stop(b);
      assert.deepEqual(ex, { code: 0, signal: null }, b.output);
    }
  }
});

test('a commit during a save leaves the room due after it, and its revision is saved', async () => {
  // a lease far longer than the test: only the commit's own mark can bring the room back
  const env = { SNAPSHOT_INTERVAL_MS: '100', SNAPSHOT_LEASE_MS: '600000' };
  const room = roomOf(env);
  const lock = await holdRoomRow(pgUrl(pg), room.id);
  let snap;
  try {
    let rev = commit(env, room, 0, ['a']);
    snap = snapshotter(env);
    await waitFor(() => savesHeld() >= 1, { what: 'the save of revision 1 held', timeout: 20000 });
    const leased = Number(dueScore(room.id));
    assert.ok(leased > Date.now() + 300000, `the claim's lease: ${leased}`);
    rev = commit(env, room, rev, [1, 'b']);
    assert.equal(rev, 2);
    // ZADD LT: the commit moved the leased room down to its own due time
    const marked = Number(dueScore(room.id));
    assert.ok(marked < leased && marked <= Date.now() + 100, `the commit's mark: ${marked} (lease ${leased})`);
    await lock.release();
    await waitFor(() => savedRevision(room.id) === 2, { what: 'revision 2 saved', timeout: 20000 });
    await waitFor(() => dueScore(room.id) === '', { what: 'the room off the schedule', timeout: 10000 });
    assert.equal(snap.exitCode, null, snap.output);
  } finally {
    lock.kill();
    if (snap) {
      const ex = await stop(snap);
      assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
    }
  }
});

test('a stopping snapshotter still saves a room that is not due yet', async () => {
  const env = { SNAPSHOT_INTERVAL_MS: '600000', SNAPSHOT_LEASE_MS: '1800000' };
  const room = roomOf(env);
  commit(env, room, 0, ['x = 1\n']);
  assert.ok(Number(dueScore(room.id)) > Date.now() + 500000, 'due in ten minutes');
  const snap = snapshotter(env);
  try {
    await waitFor(() => snap.output.includes('writing room snapshots'), { what: 'the snapshotter started', timeout: 20000 });
    assert.equal(savedRevision(room.id), 0);
  } finally {
    const ex = await stop(snap, 'SIGTERM', 20000);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
  assert.equal(savedRevision(room.id), 1);
  assert.equal(dueScore(room.id), '');
});

test('a lease shorter than three snapshot intervals is refused at start', async () => {
  const snap = snapshotter({ SNAPSHOT_INTERVAL_MS: '1000', SNAPSHOT_LEASE_MS: '2000' });
  try {
    await waitFor(() => snap.exitCode !== null, { what: 'the snapshotter to refuse the setting', timeout: 20000 });
    await snap.closed;
    assert.equal(snap.exitCode, 1, snap.output);
    assert.match(snap.output, /SNAPSHOT_LEASE_MS/);
  } finally {
    await stop(snap);
  }
});
