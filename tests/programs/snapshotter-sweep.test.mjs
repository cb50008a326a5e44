// An acknowledged edit reaches PostgreSQL even when its room's snapshot mark was lost. The
// API marks a room due (ZADD LT on cc:snap:due, lib/store_doc.c mark_due) after the commit
// script applied an edit; when that one command fails the client still got 200 and nothing
// but the snapshotter's walk over the rooms (store_doc_sweep, SNAPSHOT_SWEEP_MS) puts the
// room back on the schedule: a room's last edit has no next commit to mark it again.
//
// Real parts: a redis-server, a PostgreSQL with the schema, the API run as CGI for commits
// and a codecollab-snapshotter started here. Only the mark is made to fail: a Redis ACL on
// the default user (the one every program connects as) lets it read cc:snap:* but write
// only the other keys of the contract (lib/rkeys.def), so the commit script runs and its
// ZADD on the schedule is refused (NOPERM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, start, stop, waitFor } from '../lib/procs.mjs';
import { psql } from '../lib/pg.mjs';
import { snapshotterGround, SNAP_BIN } from '../lib/snapshotter-ground.mjs';

const { cgi, redisSrv, pg, base } = await snapshotterGround('snapshotter-sweep-test-secret-0123456789ab');
const rcli = (...args) => execFileSync('redis-cli', ['-p', String(redisSrv.port), ...args]).toString().trim();
const dueScore = (room) => rcli('ZSCORE', 'cc:snap:due', room);
const redisRevision = (room) => Number(rcli('HGET', `cc:room:{${room}}:doc`, 'revision'));
const savedRevision = (room) => Number(psql(pg, `SELECT coalesce(max(revision), -1) FROM (SELECT revision FROM snapshots WHERE room_id = '${room}' UNION ALL SELECT revision FROM history_ops WHERE room_id = '${room}') s`));

// A walk every second, saves due 100 ms after a mark.
const ENV = { SNAPSHOT_INTERVAL_MS: '100', SNAPSHOT_SWEEP_MS: '1000' };

// Every key pattern of the contract but the schedule's, for the ACL: written as the rules
// see them (placeholders are any text), read-only for cc:snap:*.
const writable = readFileSync(join(ROOT, 'lib/rkeys.def'), 'utf8').split('\n')
  .map((l) => /^RK\((\w+), "([^"]+)"\)/.exec(l))
  .filter((m) => m && !m[2].startsWith('cc:snap:'))
  .map((m) => `~${m[2].replace(/<[^>]+>/g, '*')}`);
assert.ok(writable.includes('~cc:room:{*}:doc'), writable.join(' '));
const denyMarks = () => rcli('ACL', 'SETUSER', 'default', 'resetkeys', ...writable, '%R~cc:snap:*');
const allowAll = () => rcli('ACL', 'SETUSER', 'default', 'resetkeys', 'allkeys');

const api = (req) => {
  const r = cgi({ ...req, env: { ...base, ...ENV } });
  assert.equal(r.code, 0, r.stderr.slice(0, 2000));
  return r;
};

let users = 0;
function roomOf() {
  const name = `sweep${++users}`;
  const reg = api({ method: 'POST', uri: '/api/auth/register', body: { username: name, password: 'sweep-pass-123' } });
  assert.equal(reg.status, 201, reg.body);
  const room = api({ method: 'POST', uri: '/api/rooms', token: reg.json.token, body: { name: 'swept' } });
  assert.equal(room.status, 201, room.body);
  return { id: room.json.room.id, token: reg.json.token };
}

function commit(room, revision, ops) {
  const r = api({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, body: { revision, ops } });
  assert.equal(r.status, 200, r.body);
  return r;
}

function snapshotter() {
  const e = { ...process.env, ...base, ...ENV };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return start(SNAP_BIN, [], { env: e });
}

// Saved up to rev, and off the schedule (the save's release took it off).
async function savedAndIdle(room, rev) {
  await waitFor(() => savedRevision(room.id) === rev, { what: `revision ${rev} saved`, timeout: 20000 });
  await waitFor(() => dueScore(room.id) === '', { what: 'the room off the schedule', timeout: 20000 });
}

test('a room whose last commit lost its snapshot mark is saved once Redis takes writes again', async () => {
  const room = roomOf();
  const snap = snapshotter();
  try {
    commit(room, 0, ['print("first")\n']);
    await savedAndIdle(room, 1);
    let last;
    denyMarks();
    try {
      // the room's last edit: applied and acknowledged, its mark refused
      last = commit(room, 1, [15, 'print("last")\n']);
      assert.equal(last.json.revision, 2);
      assert.match(last.stderr, new RegExp(`room ${room.id}: its snapshot mark failed`));
      assert.equal(dueScore(room.id), '', 'the mark failed');
      assert.equal(redisRevision(room.id), 2);
    } finally {
      allowAll();
    }
    // no commit follows: only the snapshotter's walk can find the room
    await waitFor(() => savedRevision(room.id) === 2, { what: 'the last revision saved to PostgreSQL', timeout: 30000 });
    const h = api({ method: 'GET', uri: `/api/rooms/${room.id}/history/2`, token: room.token });
    assert.equal(h.status, 200, h.body);
    assert.equal(h.json.content, 'print("first")\nprint("last")\n');
    await waitFor(() => new RegExp(`room ${room.id}: revision 2 in Redis, 1 saved, and not due for a snapshot \\(its mark was lost\\): marking it due`).test(snap.output),
      { what: 'the snapshotter\'s warning', timeout: 10000 });
    await waitFor(() => dueScore(room.id) === '', { what: 'the room off the schedule again', timeout: 20000 });
    assert.equal(snap.exitCode, null, snap.output);
  } finally {
    allowAll();
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
});

test('a room whose Redis lost writes it had saved is put back without a commit', async () => {
  const room = roomOf();
  const snap = snapshotter();
  const keys = ['doc', 'ops', 'commits'].map((k) => `cc:room:{${room.id}}:${k}`);
  try {
    commit(room, 0, ['a = 1\n']);
    await savedAndIdle(room, 1);
    // Redis as it was at revision 1 (COPY into keys of the room's slot)...
    for (const k of keys) rcli('COPY', k, `${k}:aside`, 'REPLACE');
    commit(room, 1, [6, 'b = 2\n']);
    await savedAndIdle(room, 2);
    // ...put back: Redis lost revision 2, which PostgreSQL holds, and nothing marks the room.
    // All three keys in one MULTI, as a Redis that lost writes holds them: a walk between
    // two separate copies would find the document of revision 1 with the ops list of
    // revision 2, which is no state Redis can be left in. The walk may put the room right at
    // once, so what was copied is checked in the copy.
    assert.equal(rcli('HGET', `${keys[0]}:aside`, 'revision'), '1');
    const put = execFileSync('redis-cli', ['-p', String(redisSrv.port)], {
      input: ['MULTI', ...keys.map((k) => `COPY ${k}:aside ${k} REPLACE`), 'EXEC', ''].join('\n'),
    }).toString();
    assert.match(put, /^OK\nQUEUED\nQUEUED\nQUEUED\n1\n/, put);
    await waitFor(() => redisRevision(room.id) === 2, { what: 'Redis back at the saved revision 2', timeout: 30000 });
    await waitFor(() => new RegExp(`room ${room.id}: Redis lost its last writes: its document was back at revision 1, below the saved revision 2, with nothing committed since`).test(snap.output),
      { what: 'the snapshotter putting it back', timeout: 30000 });
    const d = api({ method: 'GET', uri: `/api/rooms/${room.id}/document`, token: room.token });
    assert.equal(d.status, 200, d.body);
    assert.deepEqual([d.json.revision, d.json.content], [2, 'a = 1\nb = 2\n']);
  } finally {
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
});

test('walks over rooms that are saved write nothing to Redis', async () => {
  const rooms = [roomOf(), roomOf()];
  const snap = snapshotter();
  try {
    commit(rooms[0], 0, ['saved\n']);
    await savedAndIdle(rooms[0], 1);
    rcli('CONFIG', 'RESETSTAT');
    const calls = (cmd) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(rcli('INFO', 'commandstats'))?.[1] ?? 0);
    const all = Number(psql(pg, 'SELECT count(*) FROM rooms'));
    // two whole walks at least: every room's revision (with when it was loaded) asked twice
    await waitFor(() => calls('hmget') >= 2 * all, { what: 'two walks over the rooms', timeout: 20000 });
    assert.equal(calls('zadd'), 0, 'no mark');
    assert.equal(calls('zmscore'), 0, 'not even a look at the schedule: no room differs');
    assert.equal(snap.exitCode, null, snap.output);
  } finally {
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
});
