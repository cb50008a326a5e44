// The member cache (cc:room:{R}:members) that the document endpoints and the broker trust is
// written by GET /api/rooms/{id} and by a join before the read that confirms the role. When
// that read fails, the entry must not stay: it may put back a role a removal committed
// meanwhile had just taken away, and nothing else would correct it.
//
// The failures are made, deterministically, in PostgreSQL itself: the API runs once as CGI
// (tests/lib/api.mjs) with a search_path that puts a schema of this test before public, where
// a view named room_members stands in for the table. Its columns call functions of the test
// that wait on an advisory lock the test holds (to let a removal commit in the middle of a
// request) or raise an error (to fail one read). The stack's own API, behind lighttpd, sees
// the real tables and is what the test checks with.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomInt } from 'node:crypto';

import { call, cgiAsync, createRoom, newUser, redis, sql, uniqueName } from '../lib/api.mjs';
import { waitFor } from '../lib/procs.mjs';

const schemas = [];
after(() => {
  for (const s of schemas) sql(`SET client_min_messages = warning; DROP SCHEMA IF EXISTS ${s} CASCADE`);
});

// A schema of this test's own; the CGI environment whose database connection looks there first.
function shadowSchema(ddl) {
  const s = uniqueName('cc_mcache_');
  schemas.push(s);
  sql(`CREATE SCHEMA ${s}; ${ddl(s)}`);
  const url = new URL(process.env.DATABASE_URL);
  url.searchParams.append('options', `-csearch_path=${s},public`);
  // DATABASE_READ_URL is not passed on: every read of the run goes through the view
  return { DATABASE_URL: url.toString() };
}

// A psql session holding the advisory lock key until release().
async function holdLock(key) {
  const p = spawn('psql', [process.env.DATABASE_URL, '-XAtq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stdin.write(`SELECT pg_advisory_lock(${key}), 'held';\n`);
  await waitFor(() => out.includes('held'), { timeout: 30000, what: 'the advisory lock' });
  return {
    async release() {
      const closed = once(p, 'close');
      p.stdin.end(`SELECT pg_advisory_unlock(${key});\n`);
      await closed;
    },
  };
}

const members = (room) => `cc:room:{${room.id}}:members`;
const edit = (u, room) => call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision: 0, ops: ['x'] } });

test('a member removed while their GET of the room runs, whose member list then fails, keeps no access', async () => {
  const owner = await newUser('mc');
  const e = await newUser('mc');
  const room = await createRoom(owner.token, { visibility: 'private' });
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: e.token, body: { invite: room.invite } });
  assert.equal(j.status, 200, j.text);
  assert.equal(j.json.role, 'editor');

  // role: read by the GET's first read (the caller's role), which then waits for the lock;
  // joined_at: read by the member list alone, which fails
  const key = randomInt(1, 2 ** 30);
  const env = shadowSchema((s) => `
    CREATE FUNCTION ${s}.pause(role text) RETURNS text LANGUAGE plpgsql STABLE AS $$
    BEGIN
      PERFORM pg_advisory_lock_shared(${key});
      PERFORM pg_advisory_unlock_shared(${key});
      RETURN role;
    END $$;
    CREATE FUNCTION ${s}.fail(t timestamptz) RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
    BEGIN
      RAISE EXCEPTION 'the member list is made to fail by the test';
    END $$;
    CREATE VIEW ${s}.room_members AS SELECT room_id, user_id, ${s}.pause(role) AS role,
      ${s}.fail(joined_at) AS joined_at FROM public.room_members;`);

  const lock = await holdLock(key);
  let get;
  try {
    get = cgiAsync({ method: 'GET', uri: `/api/rooms/${room.id}`, token: e.token, env });
    // the GET has read E's row (role editor, in its statement's snapshot) and waits
    await waitFor(() => sql(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ${key} AND NOT granted`) === '1',
      { timeout: 30000, what: 'the GET to wait on the lock' });
    const del = await call('DELETE', `/api/rooms/${room.id}/members/${e.user.id}`, { token: owner.token });
    assert.equal(del.status, 204, del.text);
    assert.equal(redis('HGET', members(room), String(e.user.id)), '', 'the removal cleared the entry');
  } finally {
    await lock.release();
  }
  // the GET goes on: writes the role it read, then its member list fails
  // (an error PostgreSQL raises is the API's 500; a lost connection would be 503)
  const r = await get;
  assert.equal(r.status, 500, `${r.body} ${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(redis('HGET', members(room), String(e.user.id)), '', 'no entry for the removed member');
  const op = await edit(e, room);
  assert.equal(op.status, 403, op.text);
  assert.equal(op.json.error, 'not_a_member');
  const again = await call('GET', `/api/rooms/${room.id}`, { token: e.token });
  assert.equal(again.status, 403, again.text);
});

test('a join whose confirming read fails leaves no entry; the member\'s next GET writes it again', async () => {
  const owner = await newUser('mc');
  const e = await newUser('mc');
  const room = await createRoom(owner.token, { visibility: 'private' });
  // every read that comes to E's row fails: none before the join's insert, the read after it
  const env = shadowSchema((s) => `
    CREATE FUNCTION ${s}.visible(u bigint) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
    BEGIN
      IF u = ${e.user.id} THEN
        RAISE EXCEPTION 'the read after the join is made to fail by the test';
      END IF;
      RETURN true;
    END $$;
    CREATE VIEW ${s}.room_members AS SELECT * FROM public.room_members WHERE ${s}.visible(user_id);`);

  const r = await cgiAsync({ method: 'POST', uri: `/api/rooms/${room.id}/join`, token: e.token, body: { invite: room.invite }, env });
  assert.equal(r.status, 500, `${r.body} ${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  // the insert was committed: E is a member, but the cache holds nothing unconfirmed
  assert.equal(sql(`SELECT role FROM room_members WHERE room_id = '${room.id}' AND user_id = ${e.user.id}`), 'editor');
  assert.equal(redis('HEXISTS', members(room), String(e.user.id)), '0');
  // a missing entry only sends the check to PostgreSQL: E edits, and GET fills the entry
  const op = await edit(e, room);
  assert.equal(op.status, 200, op.text);
  const get = await call('GET', `/api/rooms/${room.id}`, { token: e.token });
  assert.equal(get.status, 200, get.text);
  assert.equal(get.json.role, 'editor');
  assert.equal(redis('HGET', members(room), String(e.user.id)), 'editor');
});

test('an owner\'s role change whose confirming read fails leaves no entry for the member', async () => {
  const owner = await newUser('mc');
  const e = await newUser('mc');
  const room = await createRoom(owner.token, { visibility: 'private' });
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: e.token, body: { invite: room.invite } });
  assert.equal(j.status, 200, j.text);
  let r = await call('PUT', `/api/rooms/${room.id}/members/${e.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(redis('HGET', members(room), String(e.user.id)), 'viewer');
  // the UPDATE goes through; the read of E's role after the cache write fails
  const env = shadowSchema((s) => `
    CREATE FUNCTION ${s}.visible(u bigint) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
    BEGIN
      IF u = ${e.user.id} AND current_query() LIKE 'SELECT role FROM room_members %' THEN
        RAISE EXCEPTION 'the read after the role change is made to fail by the test';
      END IF;
      RETURN true;
    END $$;
    CREATE VIEW ${s}.room_members AS SELECT * FROM public.room_members WHERE ${s}.visible(user_id);`);

  r = await cgiAsync({ method: 'PUT', uri: `/api/rooms/${room.id}/members/${e.user.id}`, token: owner.token, body: { role: 'editor' }, env });
  assert.equal(r.status, 500, `${r.body} ${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(sql(`SELECT role FROM room_members WHERE room_id = '${room.id}' AND user_id = ${e.user.id}`), 'editor');
  assert.equal(redis('HEXISTS', members(room), String(e.user.id)), '0');
  // PostgreSQL decides meanwhile: E, editor now, may edit
  const op = await edit(e, room);
  assert.equal(op.status, 200, op.text);
});
