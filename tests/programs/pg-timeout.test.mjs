// PG_QUERY_TIMEOUT_MS (lib/store.h, store_cfg_load): a statement that waits too long is ended
// by the server (statement_timeout) and the request answered 503 in about that time; a server
// that does not answer at all (every PostgreSQL process stopped: the kernel still takes what
// is sent) is given up a second later, the connection dropped, instead of holding the process
// for as long as the server is silent. Real parts: a PostgreSQL with the schema, a
// redis-server, the API run as CGI, and codecollab-snapshotter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, stop, waitFor, tempDir, pauseProcess } from '../lib/procs.mjs';
import { psql, pgUrl, holdRoomRow } from '../lib/pg.mjs';
import { snapshotterGround, SNAP_BIN } from '../lib/snapshotter-ground.mjs';

const { cgi, pg, base } = await snapshotterGround('pg-timeout-test-secret-0123456789abcdef');
const savedRevision = (room) => Number(psql(pg, `SELECT coalesce(max(revision), 0) FROM (SELECT revision FROM snapshots WHERE room_id = '${room}' UNION ALL SELECT revision FROM history_ops WHERE room_id = '${room}') s`));

const api = (env, req) => {
  const r = cgi({ ...req, env: { ...base, ...env } });
  assert.equal(r.code, 0, r.stderr.slice(0, 2000));
  return r;
};

let users = 0;
function roomOf(env) {
  const name = `pgwait${++users}`;
  const reg = api(env, { method: 'POST', uri: '/api/auth/register', body: { username: name, password: 'pgwait-pass-123' } });
  assert.equal(reg.status, 201, reg.body);
  const room = api(env, { method: 'POST', uri: '/api/rooms', token: reg.json.token, body: { name: 'waiting' } });
  assert.equal(room.status, 201, room.body);
  return { id: room.json.room.id, token: reg.json.token };
}

function commit(env, room, revision, ops) {
  const r = api(env, { method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, body: { revision, ops } });
  assert.equal(r.status, 200, r.body);
  return r.json.revision;
}

// The postmaster and every process it started (its backends, the background workers).
function pgProcesses() {
  const kids = readFileSync(`/proc/${pg.pid}/task/${pg.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return [pg.pid, ...kids];
}

test('the API: a change waiting on a row lock past PG_QUERY_TIMEOUT_MS is answered 503 in about that time, and works once the lock is gone', async () => {
  const env = { PG_QUERY_TIMEOUT_MS: '1000' };
  const room = roomOf(env);
  const lock = await holdRoomRow(pgUrl(pg), room.id);
  try {
    const t0 = Date.now();
    const r = api(env, { method: 'PATCH', uri: `/api/rooms/${room.id}`, token: room.token, body: { name: 'renamed' } });
    const took = Date.now() - t0;
    assert.equal(r.status, 503, r.body);
    assert.equal(r.json.error, 'database_unavailable', r.body);
    assert.ok(took >= 900, `answered ${took} ms after the request: not before the bound`);
    assert.ok(took < 15000, `answered ${took} ms after the request`);
    assert.match(r.stderr, /a statement ran past PG_QUERY_TIMEOUT_MS \(1000 ms\) and was ended/);
  } finally {
    await lock.release();
  }
  const ok = api(env, { method: 'PATCH', uri: `/api/rooms/${room.id}`, token: room.token, body: { name: 'renamed' } });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(psql(pg, `SELECT name FROM rooms WHERE id = '${room.id}'`), 'renamed');
  // a setting that is no number stops the program, naming it
  const bad = cgi({ method: 'GET', uri: '/api/health', env: { ...base, PG_QUERY_TIMEOUT_MS: 'soon' } });
  assert.notEqual(bad.status, 200, bad.body);
  assert.match(bad.stderr, /PG_QUERY_TIMEOUT_MS must be an integer from 100 to 86400000 \(got "soon"\)/);
});

test('the snapshotter: with every PostgreSQL process stopped, a save gives up after the bound and the program keeps showing life; once the server answers, the save is made', async () => {
  const env = { SNAPSHOT_INTERVAL_MS: '3000', PG_QUERY_TIMEOUT_MS: '1000' };
  const room = roomOf({});
  const file = join(tempDir('cc-alive-'), 'snapshotter');
  const count = () => { const t = readFileSync(file, 'utf8').trim(); return t ? Number(t) : NaN; };
  const e = { ...process.env, ...base, ...env, ALIVE_FILE: file };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  const snap = start(SNAP_BIN, [], { env: e });
  let paused = [];
  try {
    commit({}, room, 0, ['first\n']);
    await waitFor(() => savedRevision(room.id) === 1, { what: 'revision 1 saved', timeout: 30000 });
    // the next save comes SNAPSHOT_INTERVAL_MS after this commit: PostgreSQL is stopped by then
    commit({}, room, 1, [6, 'second\n']);
    paused = pgProcesses();
    for (const p of paused) await pauseProcess(p);
    await waitFor(() => /postgres: no answer in 2000 ms; dropping the connection/.test(snap.output),
      { what: 'the snapshotter giving up on the silent server', timeout: 30000 });
    // still turning its loop: its count goes up while the server is silent
    const c0 = count();
    await waitFor(() => count() > c0, { what: 'signs of life with PostgreSQL stopped', timeout: 15000 });
    assert.equal(snap.exitCode, null, snap.output);
  } finally {
    for (const p of paused) { try { process.kill(p, 'SIGCONT'); } catch { /* gone */ } }
  }
  try {
    await waitFor(() => savedRevision(room.id) === 2, { what: 'revision 2 saved once the server answers', timeout: 30000 });
  } finally {
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
});
