// Deleting an account (DELETE /api/auth/me, fcgi/h_auth.c auth_account_delete; the operator's
// `codecollab-api delete-account`): every token of the account stops working at once, its open
// streams end, the rooms it owned are deleted as DELETE /api/rooms/{id} deletes them (their
// members get 404 and their streams the `deleted` room event), it leaves the rooms it was a
// member of (their owners carry on, their member lists no longer name it), its name is free
// again and the new account of that name has no way into the old rooms. A wrong password
// changes nothing; bad bodies get the 400s of POST /api/auth/password. And the races: a room
// creation or a join that waits for the deletion's lock on the account's row answers 401 and
// leaves nothing behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { BASE, bearerStream, call, createRoom, newUser, redis, replicaCaughtUp, roomEvents, saved, sql } from '../lib/api.mjs';
import { capacity, jobHash, run, waitJob } from '../lib/jobs.mjs';
import { waitFor } from '../lib/procs.mjs';

// every stream this file opens, closed at the end (docs/CONVENTIONS.md §9.6)
const opened = new Set();
after(() => { for (const s of opened) s.close(); });

// a bearer-token SSE stream of a room, closed at the end
function sse(roomId, token) {
  const s = bearerStream(roomId, token);
  opened.add(s);
  return s;
}

const del = (token, body) => call('DELETE', '/api/auth/me', { token, body });
const login = (u) => call('POST', '/api/auth/login', { body: { username: u.username, password: u.password } });
const join = (u, room) => call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite: room.invite } });
const memberIds = async (owner, room) => {
  const r = await call('GET', `/api/rooms/${room.id}/members`, { token: owner.token });
  assert.equal(r.status, 200, r.text);
  return r.json.members.map((m) => m.user.id);
};
const postOps = (u, room, revision, ops) =>
  call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision, ops } });

test('DELETE /api/auth/me: tokens, streams, owned rooms, memberships and the name all go at once', async () => {
  const gone = await newUser('gone');
  const bob = await newUser('bob');
  // a room the account owns, with bob in it; a room of bob's the account is a member of
  const owned = await createRoom(gone.token, { visibility: 'private' });
  assert.equal((await join(bob, owned)).status, 200);
  const bobs = await createRoom(bob.token, { visibility: 'private' });
  assert.equal((await join(gone, bobs)).status, 200);
  // the account typed in bob's room; the save is its history
  assert.equal((await postOps(gone, bobs, 0, ['by gone\n'])).status, 200);
  await saved(bobs, 1);
  // a second session of the account, and its streams and bob's
  const second = await login(gone);
  assert.equal(second.status, 200, second.text);
  // bob's first, so that his stream hears the account's `join`
  const bobInOwned = sse(owned.id, bob.token);
  const bobInBobs = sse(bobs.id, bob.token);
  await Promise.all([bobInOwned.open(), bobInBobs.open()]);
  const goneInBobs = sse(bobs.id, gone.token);
  const secondInBobs = sse(bobs.id, second.json.token);
  await Promise.all([goneInBobs.open(), secondInBobs.open()]);
  await waitFor(() => bobInBobs.events.some((e) => e.type === 'join' && e.data.user.id === gone.user.id),
    { what: 'the account\'s join in bob\'s room' });

  const r = await del(gone.token, { password: gone.password });
  assert.equal(r.status, 204, r.text);
  assert.equal(r.text, '');

  // every token of the account: 401 on /api/auth/me and on the rooms
  for (const token of [gone.token, second.json.token]) {
    const me = await call('GET', '/api/auth/me', { token });
    assert.equal(me.status, 401, me.text);
    assert.deepEqual(me.json, { error: 'session_revoked', message: 'the account no longer exists' });
    for (const [method, path] of [['GET', `/api/rooms/${bobs.id}`], ['GET', `/api/rooms/${owned.id}`], ['GET', '/api/rooms'],
      ['POST', `/api/rooms/${bobs.id}/stream-ticket`]]) {
      const x = await call(method, path, { token });
      assert.equal(x.status, 401, `${method} ${path}: ${x.text}`);
      assert.equal(x.json.error, 'session_revoked');
    }
  }
  const again = await login(gone);
  assert.equal(again.status, 401, again.text);
  assert.equal(again.json.error, 'invalid_credentials');
  // its streams end
  await waitFor(() => goneInBobs.ended && secondInBobs.ended, { what: 'the account\'s streams ended' });
  const refused = await fetch(`${BASE}/events/rooms/${bobs.id}`, { headers: { authorization: `Bearer ${gone.token}` } });
  await refused.arrayBuffer();
  assert.equal(refused.status, 401);

  // the room it owned: gone for bob, whose stream heard `deleted` and ended
  await waitFor(() => bobInOwned.ended, { what: 'bob\'s stream of the deleted room ended' });
  assert.deepEqual(bobInOwned.events.filter((e) => e.type === 'room').at(-1)?.data, { reason: 'deleted', id: owned.id });
  const o = await call('GET', `/api/rooms/${owned.id}`, { token: bob.token });
  assert.equal(o.status, 404, o.text);
  assert.equal(o.json.error, 'room_not_found');
  assert.equal((await call('GET', `/api/rooms/${owned.id}/document`, { token: bob.token })).status, 404);
  assert.equal(redis('EXISTS', `cc:room:{${owned.id}}:members`), '0');
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE id = '${owned.id}'`), '0');

  // the room it was in: it left (the member list, a `members` event, its `leave`), and bob's
  // room works on, with the account's past edits still in its history
  assert.deepEqual(await memberIds(bob, bobs), [bob.user.id]);
  await waitFor(() => bobInBobs.events.some((e) => e.type === 'leave' && e.data.user.id === gone.user.id),
    { what: 'the account\'s leave in bob\'s room' });
  assert.ok(bobInBobs.events.some((e) => e.type === 'room' && e.data.reason === 'members'), 'a members event');
  assert.equal(redis('HEXISTS', `cc:room:{${bobs.id}}:members`, String(gone.user.id)), '0');
  const w = await postOps(bob, bobs, 1, [8, 'by bob\n']);
  assert.equal(w.status, 200, w.text);
  await waitFor(() => bobInBobs.events.some((e) => e.type === 'operation' && e.data.revision === 2), { what: 'bob\'s edit streamed' });
  assert.equal(bobInBobs.ended, false, 'bob\'s own stream stays');
  const doc = await call('GET', `/api/rooms/${bobs.id}/document`, { token: bob.token });
  assert.equal(doc.json.content, 'by gone\nby bob\n');
  replicaCaughtUp(); // the history is read where reads may lag (the cluster layout's standby)
  const hist = await call('GET', `/api/rooms/${bobs.id}/history`, { token: bob.token });
  assert.equal(hist.status, 200, hist.text);
  const first = hist.json.snapshots.find((s) => s.revision === 1);
  assert.ok(first, hist.text);
  assert.ok(!(first.authors || []).some((a) => a.id === gone.user.id), 'a deleted author is not listed');
  assert.equal(sql(`SELECT count(*) FROM users WHERE id = ${gone.user.id}`), '0');

  // the name is free again; the new account is a stranger to the old rooms
  const reborn = await call('POST', '/api/auth/register', { body: { username: gone.username, password: 'another password' } });
  assert.equal(reborn.status, 201, reborn.text);
  assert.notEqual(reborn.json.user.id, gone.user.id);
  const t = reborn.json.token;
  assert.deepEqual((await call('GET', '/api/rooms', { token: t })).json.rooms, []);
  const b = await call('GET', `/api/rooms/${bobs.id}`, { token: t });
  assert.equal(b.status, 403, b.text);
  assert.equal(b.json.error, 'not_a_member');
  assert.equal((await call('GET', `/api/rooms/${bobs.id}/document`, { token: t })).status, 403);
  assert.equal((await call('GET', `/api/rooms/${owned.id}`, { token: t })).status, 404);
  const s = await fetch(`${BASE}/events/rooms/${bobs.id}`, { headers: { authorization: `Bearer ${t}` } });
  await s.arrayBuffer();
  assert.equal(s.status, 403, 'the new account streams nothing of the old rooms');

  // the request sent again with the old token: it is gone, and says so
  const repeat = await del(gone.token, { password: gone.password });
  assert.equal(repeat.status, 401, repeat.text);
  assert.deepEqual(repeat.json, { error: 'session_revoked', message: 'the account no longer exists' });
});



test('the runs of a room the account owned end cancelled with it: running ones stopped, queued ones never started', async () => {
  const gone = await newUser('jobs');
  const room = await createRoom(gone.token, { language: 'python' });
  // every job thread busy with a run of this room, and one more waiting behind them
  const cap = capacity();
  assert.ok(cap >= 1, 'no live worker');
  const ids = [];
  for (let i = 0; i < Math.min(cap + 1, 10); i++) { // EXECUTION_RATE_LIMIT: 10 a minute
    const r = await run(gone.token, room, { code: `import time\ntime.sleep(4)\nprint("ran ${i}")` });
    assert.equal(r.status, 202, r.text);
    ids.push(r.json.job.id);
  }
  await waitJob(gone.token, ids[0], { until: (j) => j.status === 'running' });
  const r = await del(gone.token, { password: gone.password });
  assert.equal(r.status, 204, r.text);
  await waitFor(() => ids.every((id) => ['finished', 'failed', 'cancelled'].includes(jobHash(id).status)),
    { what: 'the runs to end', timeout: 30000 });
  for (const id of ids) {
    const j = jobHash(id);
    assert.equal(j.status, 'cancelled', JSON.stringify(j));
    assert.equal(j.error, 'the room was deleted');
    assert.ok(!j.result, `a result: ${j.result}`);
  }
  assert.equal(jobHash(ids.at(-1)).started_at, undefined, 'the queued run never started');
});

test('a wrong password is 403 wrong_password and changes nothing; bad bodies get the 400s of POST /api/auth/password', async () => {
  const u = await newUser('keep');
  const room = await createRoom(u.token);
  const wrong = await del(u.token, { password: `${u.password}x` });
  assert.equal(wrong.status, 403, wrong.text);
  assert.equal(wrong.json.error, 'wrong_password');
  // and what POST /api/auth/password answers for the same body
  const pw = await call('POST', '/api/auth/password', { token: u.token, body: { password: 'not it', new_password: 'whatever-new' } });
  assert.equal(pw.status, 403);
  assert.equal(pw.json.error, wrong.json.error);

  const bodies = [
    ['no body', undefined],
    ['no password', {}],
    ['an empty password', { password: '' }],
    ['a password that is not a string', { password: 12345678 }],
    ['a password over 4096 characters', { password: 'x'.repeat(4097) }],
    ['malformed JSON', '{"password":'],
    ['an array', '["password"]'],
    ['a string', '"password"'],
  ];
  for (const [what, body] of bodies) {
    const d = await del(u.token, body);
    assert.equal(d.status, 400, `${what}: ${d.text}`);
    // POST /api/auth/password's answer to the same current password (its new one is fine)
    const same = typeof body === 'object' && body !== null ? { ...body, new_password: 'a new password' } : body;
    const p = await call('POST', '/api/auth/password', { token: u.token, body: same });
    assert.equal(p.status, 400, `${what} (password change): ${p.text}`);
    assert.equal(d.json.error, p.json.error, `${what}: ${d.text} vs ${p.text}`);
  }
  const noToken = await del(undefined, { password: u.password });
  assert.equal(noToken.status, 401, noToken.text);
  assert.equal(noToken.json.error, 'unauthorized');
  // the other methods of /api/auth/me: GET as before, the rest 405 naming DELETE too
  const put = await call('PUT', '/api/auth/me', { token: u.token, body: {} });
  assert.equal(put.status, 405, put.text);
  assert.equal(put.headers.get('allow'), 'GET, HEAD, DELETE');
  // nothing changed
  const me = await call('GET', '/api/auth/me', { token: u.token });
  assert.equal(me.status, 200, me.text);
  assert.deepEqual(me.json, { user: u.user });
  assert.equal((await call('GET', `/api/rooms/${room.id}`, { token: u.token })).status, 200);
  assert.equal((await login(u)).status, 200);
});

// The API binary run by hand with the stack's settings, as an operator runs it.
function apiCommand(...args) {
  const env = {
    PATH: process.env.PATH,
    DATABASE_URL: process.env.DATABASE_URL,
    REDIS_URL: process.env.REDIS_URL,
    JWT_SECRET_FILE: process.env.JWT_SECRET_FILE,
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1',
  };
  if (process.env.REDIS_CLUSTER) env.REDIS_CLUSTER = process.env.REDIS_CLUSTER;
  const r = spawnSync(process.env.CC_API_BIN, args, { env, encoding: 'utf8', timeout: 30000 });
  if (r.error) throw r.error;
  return r;
}

test('codecollab-api delete-account <name>: the operator\'s deletion, without the password, does what DELETE /api/auth/me does', async () => {
  const gone = await newUser('opdel');
  const bob = await newUser('bob');
  const owned = await createRoom(gone.token, { visibility: 'private' });
  assert.equal((await join(bob, owned)).status, 200);
  const bobs = await createRoom(bob.token, { visibility: 'private' });
  assert.equal((await join(gone, bobs)).status, 200);
  const mine = sse(bobs.id, gone.token);
  const bobInOwned = sse(owned.id, bob.token);
  await Promise.all([mine.open(), bobInOwned.open()]);

  const r = apiCommand('delete-account', gone.username.toUpperCase());
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`account ${gone.user.id} \\(${gone.username}\\) deleted: 1 room\\(s\\) it owned deleted, 1 room\\(s\\) left`));
  const me = await call('GET', '/api/auth/me', { token: gone.token });
  assert.equal(me.status, 401, me.text);
  await waitFor(() => mine.ended && bobInOwned.ended, { what: 'the streams ended' });
  assert.equal(bobInOwned.events.filter((e) => e.type === 'room').at(-1)?.data.reason, 'deleted');
  assert.equal((await call('GET', `/api/rooms/${owned.id}`, { token: bob.token })).status, 404);
  assert.deepEqual(await memberIds(bob, bobs), [bob.user.id]);
  assert.equal((await login(gone)).status, 401);

  // run again: nothing to delete, and it says so
  const twice = apiCommand('delete-account', gone.username);
  assert.equal(twice.status, 1);
  assert.match(twice.stderr, /no account is named/);
  const usage = apiCommand('delete-account');
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /usage: codecollab-api delete-account <username>/);
});

test('a row deleted in SQL alone leaves the tokens working; delete-account --id ends them', async () => {
  const u = await newUser('sqldel');
  const room = await createRoom(u.token);
  sql(`DELETE FROM users WHERE id = ${u.user.id}`);
  // Redis still holds the account's generation: the token passes (why SQL alone is not enough)
  assert.equal((await call('GET', '/api/auth/me', { token: u.token })).status, 200);
  const r = apiCommand('delete-account', '--id', String(u.user.id));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /does not exist \(any more\); every token it had no longer works/);
  const me = await call('GET', '/api/auth/me', { token: u.token });
  assert.equal(me.status, 401, me.text);
  assert.equal(me.json.message, 'the account no longer exists');
  assert.equal((await call('GET', `/api/rooms/${room.id}/document`, { token: u.token })).status, 401);
  assert.equal(apiCommand('delete-account', '--id', 'x').status, 1);
});

test('a row deleted in SQL alone whose generation Redis lost: the API\'s next check closes the brokers too', async () => {
  const owner = await newUser('own');
  const u = await newUser('sqlgen');
  const room = await createRoom(owner.token, { visibility: 'public' });
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: {} })).status, 200);
  const open = sse(room.id, u.token);
  await open.open();
  sql(`DELETE FROM users WHERE id = ${u.user.id}`);
  redis('DEL', `cc:user:${u.user.id}:tokgen`);
  const me = await call('GET', '/api/auth/me', { token: u.token });
  assert.equal(me.status, 401, me.text);
  assert.equal(me.json.message, 'the account no longer exists');
  // the brokers, which count a missing generation as 0, refuse the token from then on and
  // end its open stream
  await waitFor(() => open.ended, { what: 'the open stream ended' });
  const s = await fetch(`${BASE}/events/rooms/${room.id}`, { headers: { authorization: `Bearer ${u.token}` } });
  await s.arrayBuffer();
  assert.equal(s.status, 401);
});

// A psql session holding the account's row as the deletion's transaction does (FOR UPDATE)
// until it deletes the row and commits: what a room creation or a join of the account that
// comes meanwhile meets.
async function holdAccount(userId) {
  const p = spawn('psql', [process.env.DATABASE_URL, '-XAtq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => p.on('exit', resolve));
  p.stdin.write(`BEGIN;\nSELECT 'locked' FROM users WHERE id = ${userId} FOR UPDATE;\n`);
  await waitFor(() => out.includes('locked'), { what: 'the account\'s row locked' });
  const timer = setTimeout(() => p.kill('SIGKILL'), 30000);
  timer.unref();
  return {
    async deleteAndCommit() {
      p.stdin.end(`DELETE FROM users WHERE id = ${userId};\nCOMMIT;\n`);
      const code = await exited;
      clearTimeout(timer);
      assert.equal(code, 0, out);
    },
  };
}

// Whether a statement of the API waits for a lock (the held row), by a piece of its text.
const waiting = (piece) =>
  sql(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%${piece}%' AND pid <> pg_backend_pid()`) !== '0';

// One request at a time waits for the row: lighttpd may queue a second request behind the
// API process that serves the first.
test('a room creation that waits for the deletion\'s lock answers 401 and leaves no room', async () => {
  const u = await newUser('race');
  const hold = await holdAccount(u.user.id);
  const create = call('POST', '/api/rooms', { token: u.token, body: { name: 'raced' } });
  // the creation locks the owner's row before it counts and inserts (ROOMS_PER_USER_MAX)
  await waitFor(() => waiting('FROM users WHERE id = $1 FOR NO KEY UPDATE'), { what: 'the creation waiting for the row' });
  await hold.deleteAndCommit();
  const c = await create;
  assert.equal(c.status, 401, c.text);
  assert.deepEqual(c.json, { error: 'invalid_token', message: 'this account no longer exists' });
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE owner_id = ${u.user.id}`), '0');
});

test('a join that waits for the deletion\'s lock answers 401 and leaves no member', async () => {
  const u = await newUser('race');
  const bob = await newUser('bob');
  const bobs = await createRoom(bob.token, { visibility: 'public' });
  const hold = await holdAccount(u.user.id);
  const joining = call('POST', `/api/rooms/${bobs.id}/join`, { token: u.token, body: {} });
  await waitFor(() => waiting('FROM room_departures d WHERE'), { what: 'the join waiting for the row' });
  await hold.deleteAndCommit();
  const j = await joining;
  assert.equal(j.status, 401, j.text);
  assert.deepEqual(j.json, { error: 'session_revoked', message: 'the account no longer exists' });
  assert.deepEqual(await memberIds(bob, bobs), [bob.user.id]);
  assert.equal(redis('HEXISTS', `cc:room:{${bobs.id}}:members`, String(u.user.id)), '0');
  assert.ok(!roomEvents(bobs.id).some((e) => e.type === 'room' && e.data.reason === 'members'), 'no join was announced');
});
