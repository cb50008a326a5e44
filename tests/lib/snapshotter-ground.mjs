// What the snapshotter's program suites stand on: a redis-server and a PostgreSQL primary of
// their own (stopped once the suite is over), a JWT secret in a file, and the API binary run
// as CGI (cgi() of tests/lib/api.mjs, which starts it itself) to commit as a client does.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startRedis, stop, tempDir } from './procs.mjs';
import { startPrimary, stopPg, pgUrl, psql } from './pg.mjs';

export const SNAP_BIN = process.env.CC_SNAP_BIN || join(ROOT, 'build/asan/bin/codecollab-snapshotter');

// {cgi, redisSrv, pg, base}: base is the environment a snapshotter or the API needs to reach
// them (the suite adds its own settings).
export async function snapshotterGround(secret) {
  process.env.CC_API_BIN ||= join(ROOT, 'build/asan/bin/codecollab-api');
  // tests/lib/api.mjs serves the stack suites and wants the stack's address; only its cgi()
  // is used here
  process.env.CC_BASE_URL ||= 'http://127.0.0.1:9/';
  const { cgi } = await import('./api.mjs');
  const redisSrv = await startRedis();
  const pg = await startPrimary({ schema: join(ROOT, 'schema.sql') });
  const secretFile = join(tempDir('cc-jwt-'), 'secret');
  writeFileSync(secretFile, secret);
  after(async () => {
    await stopPg(pg);
    await stop(redisSrv);
  });
  const base = {
    REDIS_URL: `redis://127.0.0.1:${redisSrv.port}`, DATABASE_URL: pgUrl(pg), REDIS_CLUSTER: undefined,
    JWT_SECRET_FILE: secretFile,
  };
  return { cgi, redisSrv, pg, base };
}

// What a suite on that ground does as a client, named after the suite (prefix: its users'
// names): api(env, req) runs one request (env over base; the API must not crash), roomOf(env)
// registers a user and makes a room ({id, token, user}), commit(env, room, revision, ops,
// extra) commits (extra: more fields of the body, a client_id; 200 expected: the new
// revision), savedRevision(room) is the newest revision PostgreSQL holds of it (a
// checkpoint or a batch; 0 when none).
export function clientOf({ cgi, pg, base }, prefix) {
  const api = (env, req) => {
    const r = cgi({ ...req, env: { ...base, ...env } });
    assert.equal(r.code, 0, r.stderr.slice(0, 2000));
    return r;
  };
  let users = 0;
  const roomOf = (env) => {
    const reg = api(env, { method: 'POST', uri: '/api/auth/register', body: { username: `${prefix}${++users}`, password: `${prefix}-pass-123` } });
    assert.equal(reg.status, 201, reg.body);
    const room = api(env, { method: 'POST', uri: '/api/rooms', token: reg.json.token, body: { name: prefix } });
    assert.equal(room.status, 201, room.body);
    return { id: room.json.room.id, token: reg.json.token, user: reg.json.user };
  };
  const commit = (env, room, revision, ops, extra = {}) => {
    const r = api(env, { method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, body: { revision, ops, ...extra } });
    assert.equal(r.status, 200, r.body);
    return r.json.revision;
  };
  const savedRevision = (room) => Number(psql(pg, `SELECT coalesce(max(revision), 0) FROM (SELECT revision FROM snapshots WHERE room_id = '${room}' UNION ALL SELECT revision FROM history_ops WHERE room_id = '${room}') s`));
  return { api, roomOf, commit, savedRevision };
}
