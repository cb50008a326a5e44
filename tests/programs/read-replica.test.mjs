// DATABASE_READ_URL (lib/store.h, "Reads from a replica"; docs/SCALING.md): with a real
// PostgreSQL primary and a hot standby streaming from it, the API (run as CGI, one process
// per request) answers the reads that may lag (a room's history and its revisions) from the
// replica, and everything else (sign-in, the membership check in front of every read) from
// the primary; when the replica is gone those reads are answered by the primary.
// The replica's WAL replay is paused (pg_wal_replay_pause) so that it is stale on purpose.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startRedis, stop, tempDir, waitFor } from '../lib/procs.mjs';
import { startPrimary, startReplica, stopPg, psql, pgUrl } from '../lib/pg.mjs';

process.env.CC_API_BIN ||= join(ROOT, 'build/asan/bin/codecollab-api');
// tests/lib/api.mjs serves the stack suites and wants the stack's address; only its cgi()
// is used here, which starts the API binary itself and needs no web server
process.env.CC_BASE_URL ||= 'http://127.0.0.1:9/';
const { cgi } = await import('../lib/api.mjs');

const redisSrv = await startRedis();
const primary = await startPrimary({ schema: join(ROOT, 'schema.sql') });
const replica = await startReplica(primary);
const secretFile = join(tempDir('cc-jwt-'), 'secret');
writeFileSync(secretFile, 'read-replica-test-secret-0123456789abcdef');
after(async () => {
  await stopPg(replica);
  await stopPg(primary);
  await stop(redisSrv);
});

const base = { REDIS_URL: `redis://127.0.0.1:${redisSrv.port}`, DATABASE_URL: pgUrl(primary), JWT_SECRET_FILE: secretFile };
const withReplica = { ...base, DATABASE_READ_URL: pgUrl(replica) };
const api = (env, req) => {
  const r = cgi({ ...req, env });
  assert.equal(r.code, 0, r.stderr.slice(0, 2000));
  return r;
};
const revisions = (r) => r.json.snapshots.map((s) => s.revision);

test('reads that may lag come from the replica, access checks from the primary; the primary answers when the replica is gone', async () => {
  const reg = api(base, { method: 'POST', uri: '/api/auth/register', body: { username: 'replicant', password: 'replica-pass-1' } });
  assert.equal(reg.status, 201, reg.body);
  const token = reg.json.token;
  const room = api(base, { method: 'POST', uri: '/api/rooms', token, body: { name: 'lagging' } });
  assert.equal(room.status, 201, room.body);
  const id = room.json.room.id;
  psql(primary, `INSERT INTO snapshots (room_id, revision, content) VALUES ('${id}', 1, 'one')`);
  await waitFor(() => psql(replica, `SELECT count(*) FROM snapshots WHERE room_id = '${id}'`) === '1',
    { timeout: 15000, what: 'the replica to stream the first snapshot' });

  // the replica stops applying what the primary sends: what comes now, only the primary has
  psql(replica, 'SELECT pg_wal_replay_pause()');
  await waitFor(() => psql(replica, 'SELECT pg_get_wal_replay_pause_state()') === 'paused', { what: 'replay paused' });
  psql(primary, `INSERT INTO snapshots (room_id, revision, content) VALUES ('${id}', 2, 'two')`);
  // a sign-in right after registering elsewhere: the primary (the replica is paused, yet
  // this account, made after the pause, can sign in)
  const reg2 = api(base, { method: 'POST', uri: '/api/auth/register', body: { username: 'newcomer', password: 'replica-pass-2' } });
  assert.equal(reg2.status, 201, reg2.body);
  const login = api(withReplica, { method: 'POST', uri: '/api/auth/login', body: { username: 'newcomer', password: 'replica-pass-2' } });
  assert.equal(login.status, 200, 'sign-in reads the primary: ' + login.body);

  // the history through the replica is stale, through the primary fresh
  const stale = api(withReplica, { uri: `/api/rooms/${id}/history`, token });
  assert.equal(stale.status, 200, stale.body);
  assert.deepEqual(revisions(stale), [1], 'the replica answers the history list (paused: revision 2 not there)');
  const fresh = api(base, { uri: `/api/rooms/${id}/history`, token });
  assert.deepEqual(revisions(fresh), [2, 1], 'the primary has both');
  assert.equal(api(withReplica, { uri: `/api/rooms/${id}/history/2`, token }).status, 404, 'a revision of history: the replica');
  assert.equal(api(base, { uri: `/api/rooms/${id}/history/2`, token }).json.content, 'two');
  assert.equal(api(withReplica, { uri: `/api/rooms/${id}/history/1`, token }).json.content, 'one');

  // the membership check before the read goes to the primary: a room made after the pause
  // (unknown to the replica) is found, and its history (replica: none yet) is empty
  const room2 = api(base, { method: 'POST', uri: '/api/rooms', token, body: { name: 'after the pause' } });
  assert.equal(room2.status, 201, room2.body);
  const h2 = api(withReplica, { uri: `/api/rooms/${room2.json.room.id}/history`, token });
  assert.equal(h2.status, 200, 'access decided by the primary: ' + h2.body);
  assert.deepEqual(h2.json.snapshots, []);
  // a stranger is refused whatever the replica holds
  const stranger = api(withReplica, { uri: `/api/rooms/${id}/history`, token: login.json.token });
  assert.equal(stranger.status, 403, stranger.body);

  // replay again: the replica catches up and answers the same as the primary
  psql(replica, 'SELECT pg_wal_replay_resume()');
  await waitFor(() => revisions(api(withReplica, { uri: `/api/rooms/${id}/history`, token })).length === 2,
    { timeout: 15000, what: 'the replica to catch up' });

  // the replica gone: the same reads are answered by the primary, fresh
  await stopPg(replica);
  psql(primary, `INSERT INTO snapshots (room_id, revision, content) VALUES ('${id}', 3, 'three')`);
  const t0 = Date.now();
  const fallback = api(withReplica, { uri: `/api/rooms/${id}/history`, token });
  assert.equal(fallback.status, 200, fallback.body);
  assert.deepEqual(revisions(fallback), [3, 2, 1], 'the primary answers when the replica is down');
  assert.ok(Date.now() - t0 < 10000, 'no long wait for the dead replica');
  assert.match(fallback.stderr, /replica/, 'the failed replica connect is logged');
  const one = api(withReplica, { uri: `/api/rooms/${id}/history/3`, token });
  assert.equal(one.status, 200, one.body);
  assert.equal(one.json.content, 'three');

  // a DATABASE_READ_URL that names nothing at all: still answered
  const nowhere = api({ ...base, DATABASE_READ_URL: 'postgresql://127.0.0.1:1/none?connect_timeout=2' },
    { uri: `/api/rooms/${id}/history`, token });
  assert.deepEqual(revisions(nowhere), [3, 2, 1]);
});
