// Redis put back from a backup older than the database: the access state Redis caches (a
// room's visibility key and member cache, a user's token generation) is as it was before a
// room was made private, a member removed, another made viewer and a password changed.
// PostgreSQL owns all of it, and the start (scripts/redis-upgrade-keys.sh, which runs
// scripts/redis-resync-access.sh) or the operator's command on a running stack
// (scripts/redis-resync-access.sh) writes it back: the stranger's stream, the removed
// member's reads and stream, the viewer's edit and the old token are refused as they were
// before the restore. The "backup" is a copy of those keys taken before the changes and
// written back after them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bearerStream, call, createRoom, newUser, redis, roomStreamStatus } from '../lib/api.mjs';
import { waitFor } from '../lib/procs.mjs';

const script = (name) => fileURLToPath(new URL(`../../scripts/${name}`, import.meta.url));
const UPGRADE = script('redis-upgrade-keys.sh');
const RESYNC = script('redis-resync-access.sh');
const runScript = (path) => execFileSync(path, { env: { ...process.env }, encoding: 'utf8' });

// A copy of a key's value (string or hash), and its writing back as it was.
function copyKey(key) {
  const type = redis('TYPE', key);
  if (type === 'hash') return { key, type, value: redis('HGETALL', key).split('\n') };
  if (type === 'string') return { key, type, value: redis('GET', key) };
  return { key, type: 'none' };
}
function putBack(c) {
  redis('DEL', c.key);
  if (c.type === 'hash') redis('HSET', c.key, ...c.value);
  else if (c.type === 'string') redis('SET', c.key, c.value);
}

// A public room with an editor who will be removed, an editor who will be made viewer, a
// member who will change their password, and a stranger; the backup of their access keys
// taken; then the changes.
async function scene() {
  const owner = await newUser();
  const removed = await newUser();
  const demoted = await newUser();
  const changer = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  for (const u of [removed, demoted, changer]) {
    const j = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: {} });
    assert.equal(j.status, 200, j.text);
  }
  // every one of them reads the room (the API fills the member cache and the generation)
  for (const u of [removed, demoted, changer, stranger]) {
    const d = await call('GET', `/api/rooms/${room.id}/document`, { token: u.token });
    assert.equal(d.status, 200, d.text);
  }
  assert.equal(await roomStreamStatus(room, stranger.token), 200, 'a stranger streams the public room');
  const keys = [`cc:room:{${room.id}}:members`, `cc:room:{${room.id}}:visibility`, `cc:user:${changer.user.id}:tokgen`];
  const backup = keys.map(copyKey);
  assert.deepEqual(backup.map((c) => c.type), ['hash', 'string', 'string'], 'the backup holds the access keys');

  const p = await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { visibility: 'private' } });
  assert.equal(p.status, 200, p.text);
  const rm = await call('DELETE', `/api/rooms/${room.id}/members/${removed.user.id}`, { token: owner.token });
  assert.equal(rm.status, 204, rm.text);
  const dm = await call('PUT', `/api/rooms/${room.id}/members/${demoted.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal(dm.status, 200, dm.text);
  const pw = await call('POST', '/api/auth/password', { token: changer.token, body: { password: changer.password, new_password: `${changer.password}-new` } });
  assert.equal(pw.status, 200, pw.text);
  return { owner, removed, demoted, changer, stranger, room, backup };
}

// What was taken away is refused, through the API and the broker alike.
async function refused({ removed, demoted, changer, stranger, room }) {
  assert.equal(await roomStreamStatus(room, stranger.token), 403, 'a stranger\'s stream of the room made private');
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: removed.token });
  assert.equal(d.status, 403, `the removed member reads the document: ${d.text}`);
  assert.equal(await roomStreamStatus(room, removed.token), 403, 'the removed member\'s stream');
  const doc = await call('GET', `/api/rooms/${room.id}/document`, { token: demoted.token });
  assert.equal(doc.status, 200, doc.text);
  const op = await call('POST', `/api/rooms/${room.id}/operations`,
    { token: demoted.token, body: { revision: doc.json.revision, ops: [doc.json.content.length, 'x'].filter((o) => o !== 0) } });
  assert.equal(op.status, 403, `the member made viewer edits: ${op.text}`);
  const me = await call('GET', '/api/auth/me', { token: changer.token });
  assert.equal(me.status, 401, `the token of before the password change: ${me.text}`);
  assert.equal(await roomStreamStatus(room, changer.token), 401, 'the old token\'s stream');
}

// Each start of make run runs scripts/redis-upgrade-keys.sh before the programs: it writes
// the access state back whatever the layout mark says.
test('a start after Redis was put back from an older backup refuses what was taken away since', { skip: process.env.REDIS_CLUSTER && 'the key upgrade is for one Redis server, not a Redis Cluster' }, async () => {
  const s = await scene();
  await refused(s); // as the changes left it
  s.backup.forEach(putBack);
  // the old state is in force again until the start writes it (what the review found)
  assert.equal(await roomStreamStatus(s.room, s.stranger.token), 200, 'the restored key lets the stranger stream');
  const out = runScript(UPGRADE);
  await refused(s);
  assert.match(out, /^redis: the access state written from PostgreSQL: [1-9]\d* rooms' visibility or members and [1-9]\d* users' token generations differed/m);
  // the owner and the members left keep their rights
  assert.equal(await roomStreamStatus(s.room, s.owner.token), 200);
  assert.equal(await roomStreamStatus(s.room, s.demoted.token), 200, 'a viewer streams');
  // a second start finds nothing to write and says nothing of it
  assert.doesNotMatch(runScript(UPGRADE), /access state/);
});

// A restore under a running stack: the operator runs scripts/redis-resync-access.sh, and the
// streams the restored keys let in are ended by their broker: the removed member's (the
// script announces the user on cc:access) and a stranger's, opened while the restored
// visibility key said public (the script announces the room it made private again).
test('the resync on a running stack ends the streams the restored keys let in', async () => {
  const s = await scene();
  s.backup.forEach(putBack);
  const stream = bearerStream(s.room.id, s.removed.token);
  const strangers = bearerStream(s.room.id, s.stranger.token);
  const owners = bearerStream(s.room.id, s.owner.token);
  try {
    await stream.open(); // let in by the restored member cache
    await strangers.open(); // let in by the restored visibility key
    await owners.open();
    const out = runScript(RESYNC);
    await waitFor(() => stream.ended, { what: 'the removed member\'s stream ended', timeout: 20000 });
    await waitFor(() => strangers.ended, { what: 'the stranger\'s stream of the room made private ended', timeout: 20000 });
    await refused(s);
    assert.match(out, /the streams of [1-9]\d* users and of 1 rooms made private looked at again/);
    assert.equal(owners.ended, false, 'the owner\'s stream stays open');
  } finally {
    stream.close();
    strangers.close();
    owners.close();
  }
});
