// Deleting a room while other requests race it (fcgi/h_rooms.c h_room_delete, h_room_join,
// h_room_get; lib/store_doc.c restore): the DELETE deletes the row and, before its COMMIT,
// clears the room's member cache and visibility key; once the row is gone it clears every
// key of the room; whatever a request wrote back between the two steps must not outlive the
// room. The race is held open by hand: the DELETE runs as CGI with a search_path that puts a
// schema of this test before public, where a view stands in for rooms whose DELETE deletes
// the real row and then writes a row whose deferred trigger waits, at the COMMIT, for an
// advisory lock the test holds. Meanwhile GETs and commits go through (they read the row as
// it was), and a join waits for the row's lock. Also: the event history expires after the
// `deleted` event, and refused commits leave the snapshot schedule alone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomInt } from 'node:crypto';
import { call, cgi, cgiAsync, createRoom, roomStreamStatus, newUser, redis, roomEvents, sql, uniqueName } from '../lib/api.mjs';
import { waitFor } from '../lib/procs.mjs';

const key = (room, what) => `cc:room:{${room.id}}:${what}`;
const opsOf = (room, token, body) => call('POST', `/api/rooms/${room.id}/operations`, { token, body });

const schemas = [];
after(() => {
  for (const s of schemas) sql(`SET client_min_messages = warning; DROP SCHEMA IF EXISTS ${s} CASCADE`);
});

// The CGI environment of a DELETE whose COMMIT waits while the test holds the advisory
// lock `lockKey`: its statement has deleted the row (and holds its lock) by then.
function deleteWaitingAtCommit(lockKey) {
  const s = uniqueName('cc_delwait_');
  schemas.push(s);
  sql(`CREATE SCHEMA ${s};
    CREATE VIEW ${s}.rooms AS SELECT * FROM public.rooms;
    CREATE TABLE ${s}.at_commit (x int);
    CREATE FUNCTION ${s}.wait() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_lock_shared(${lockKey});
      PERFORM pg_advisory_unlock_shared(${lockKey});
      RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER wait AFTER INSERT ON ${s}.at_commit
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${s}.wait();
    CREATE FUNCTION ${s}.del() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM public.rooms WHERE id = OLD.id;
      INSERT INTO ${s}.at_commit VALUES (1);
      RETURN OLD;
    END $$;
    CREATE TRIGGER del INSTEAD OF DELETE ON ${s}.rooms FOR EACH ROW EXECUTE FUNCTION ${s}.del();`);
  const url = new URL(process.env.DATABASE_URL);
  url.searchParams.append('options', `-csearch_path=${s},public`);
  return { DATABASE_URL: url.toString() };
}

// A psql session holding the advisory lock key until release(); never held for long, even
// when a request of the test hangs behind it.
async function holdLock(lockKey) {
  const p = spawn('psql', [process.env.DATABASE_URL, '-XAtq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  const closed = once(p, 'close');
  p.stdin.write(`SELECT pg_advisory_lock(${lockKey}), 'held';\n`);
  await waitFor(() => out.includes('held'), { timeout: 30000, what: 'the advisory lock' });
  let released = false;
  const release = async () => {
    if (!released) p.stdin.end(`SELECT pg_advisory_unlock(${lockKey});\n`);
    released = true;
    await closed;
  };
  setTimeout(release, 30000).unref();
  return { release };
}

// Every way a member reaches the live room, as [method, path, body].
const liveEndpoints = (room) => [
  ['GET', `/api/rooms/${room.id}`],
  ['POST', `/api/rooms/${room.id}/join`, {}],
  ['GET', `/api/rooms/${room.id}/document`],
  ['POST', `/api/rooms/${room.id}/operations`, { revision: 0, ops: ['x'] }],
  ['PUT', `/api/rooms/${room.id}/presence`, { cursor: 0 }],
  ['GET', `/api/rooms/${room.id}/presence`],
  ['POST', `/api/rooms/${room.id}/stream-ticket`],
  ['GET', `/api/rooms/${room.id}/history`],
];

async function assertGoneFor(room, users) {
  for (const u of users) {
    for (const [method, path, body] of liveEndpoints(room)) {
      const r = await call(method, path, { token: u.token, body });
      assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
      assert.equal(r.json?.error, 'room_not_found', `${method} ${path}: ${r.text}`);
    }
    assert.equal(await roomStreamStatus(room, u.token), 404, 'the broker opens no stream of a deleted room');
  }
  for (const k of ['members', 'visibility', 'doc', 'ops', 'commits']) {
    assert.equal(redis('EXISTS', key(room, k)), '0', `${k} outlived the room`);
  }
}

test('a join, a GET and a commit between the two steps of a DELETE leave nothing behind', async () => {
  const owner = await newUser();
  const joiner = await newUser();
  const editor = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: editor.token })).status, 200);
  assert.equal((await opsOf(room, editor.token, { revision: 0, ops: ['hello'] })).status, 200);

  const lockKey = randomInt(1, 2 ** 30);
  const env = deleteWaitingAtCommit(lockKey);
  const lock = await holdLock(lockKey);
  let del, join;
  try {
    del = cgiAsync({ method: 'DELETE', uri: `/api/rooms/${room.id}`, token: owner.token, env });
    // the first clear is done once the owner's entry is gone; the DELETE now waits at its COMMIT
    await waitFor(() => redis('EXISTS', key(room, 'members')) === '0', { what: 'the first clear' });
    await waitFor(() => sql(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ${lockKey} AND NOT granted`) === '1',
      { timeout: 30000, what: 'the DELETE to wait at its COMMIT' });
    // the row is still there for everyone else: a join waits for its lock, a GET writes the
    // caller's entry, a commit commits to the document. Run as CGI: the waiting join may
    // hold the stack's API process the others would be queued for.
    join = cgiAsync({ method: 'POST', uri: `/api/rooms/${room.id}/join`, token: joiner.token, body: {} });
    const g = cgi({ method: 'GET', uri: `/api/rooms/${room.id}`, token: editor.token });
    assert.equal(g.status, 200, g.body);
    const c = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: editor.token, body: { revision: 1, ops: [5, '!'] } });
    assert.equal(c.status, 200, c.body);
    assert.equal(redis('HGET', key(room, 'members'), String(editor.user.id)), 'editor');
    assert.equal(redis('EXISTS', key(room, 'doc')), '1');
  } finally {
    await lock.release();
  }
  const d = await del;
  assert.equal(d.status, 204, `${d.body} ${d.stderr}`);
  assert.equal(d.code, 0, d.stderr);
  // the join read the room once the row was gone
  const j = await join;
  assert.equal(j.status, 404, `${j.body} ${j.stderr}`);
  assert.equal(j.json.error, 'room_not_found');
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE id = '${room.id}'`), '0');
  await assertGoneFor(room, [joiner, editor, owner]);
});

test('a member entry written after the DELETE: a commit is 404 and restores no document', async () => {
  const owner = await newUser();
  const editor = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: editor.token })).status, 200);
  assert.equal((await call('DELETE', `/api/rooms/${room.id}`, { token: owner.token })).status, 204);
  // as a racing join's write landing after both clears would leave it (the join itself takes
  // it back once it reads the room again; the commit must not trust it meanwhile)
  redis('HSET', key(room, 'members'), String(editor.user.id), 'editor');
  const r = await opsOf(room, editor.token, { revision: 0, ops: ['x'] });
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error, 'room_not_found');
  for (const k of ['doc', 'ops', 'commits']) assert.equal(redis('EXISTS', key(room, k)), '0', `${k} was recreated`);
  redis('DEL', key(room, 'members'));
});

test('GET or join reading a room deleted after its cache write takes the entry back', async () => {
  // racing joins and GETs against the DELETE, many rounds: no member entry survives any
  const owner = await newUser();
  const users = await Promise.all(Array.from({ length: 8 }, () => newUser()));
  for (let round = 0; round < 10; round++) {
    const room = await createRoom(owner.token, { visibility: 'public' });
    await Promise.all(users.slice(0, 4).map((u) => call('POST', `/api/rooms/${room.id}/join`, { token: u.token })));
    const racing = users.map((u, i) => new Promise((ok) => setTimeout(ok, i % 4))
      .then(() => call(i < 4 ? 'GET' : 'POST', `/api/rooms/${room.id}${i < 4 ? '' : '/join'}`, { token: u.token })));
    const [d, ...rs] = await Promise.all([call('DELETE', `/api/rooms/${room.id}`, { token: owner.token }), ...racing]);
    assert.equal(d.status, 204, d.text);
    for (const r of rs) assert.ok(r.status === 200 || r.status === 404, `${r.status} ${r.text}`);
    assert.equal(redis('EXISTS', key(room, 'members')), '0', `round ${round}: a member entry outlived the room`);
  }
});

test('DELETE: the `deleted` event stays readable for a while, then the history expires', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token);
  assert.equal((await opsOf(room, owner.token, { revision: 0, ops: ['a'] })).status, 200);
  assert.equal(redis('TTL', key(room, 'events')), '-1', 'a live room keeps its history');
  assert.equal((await call('DELETE', `/api/rooms/${room.id}`, { token: owner.token })).status, 204);
  const last = roomEvents(room.id).at(-1);
  assert.equal(last.type, 'room');
  assert.deepEqual(last.data, { reason: 'deleted', id: room.id });
  const ttl = Number(redis('TTL', key(room, 'events')));
  assert.ok(ttl > 0 && ttl <= 60, `the history's TTL: ${ttl}`);
});

test('a refused commit does not put the room on the snapshot schedule', async () => {
  const owner = await newUser();
  const viewer = await newUser();
  const stranger = await newUser();
  const priv = await createRoom(owner.token);
  const pub = await createRoom(owner.token, { visibility: 'public' });
  assert.equal((await call('POST', `/api/rooms/${pub.id}/join`, { token: viewer.token })).status, 200);
  assert.equal((await call('PUT', `/api/rooms/${pub.id}/members/${viewer.user.id}`, { token: owner.token, body: { role: 'viewer' } })).status, 200);
  const missing = { id: `nosuch${Date.now()}` };
  const cases = [[priv, stranger, 403], [pub, stranger, 403], [pub, viewer, 403], [missing, stranger, 404]];
  for (const [room, u, status] of cases) {
    const r = await opsOf(room, u.token, { revision: 0, ops: ['x'] });
    assert.equal(r.status, status, r.text);
    assert.equal(redis('ZSCORE', 'cc:snap:due', room.id), '', `${room.id} was marked due by a ${status}`);
  }
  // an applied commit is marked (and saved by the snapshotter)
  assert.equal((await opsOf(pub, owner.token, { revision: 0, ops: ['y'] })).status, 200);
  await waitFor(() => roomEvents(pub.id).some((e) => e.type === 'snapshot' && e.data.revision === 1),
    { what: 'the save of revision 1', timeout: 15000 });
});
