// Sessions that can be taken away: POST /api/auth/logout (that token stops working everywhere
// and its streams close), POST /api/auth/password (every older token of the user stops
// working), and the registration limit per address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { BASE, DEAD_REDIS, call, cgi, newUser, createRoom, clearLoginLimits, redis, sql, uniqueName } from '../lib/api.mjs';
import { slotOf } from '../lib/redis-cluster.mjs';

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
  assert.equal(typeof r.json?.message, 'string', r.text);
  if (code) assert.equal(r.json.error, code, r.text);
}

const login = (username, password) => call('POST', '/api/auth/login', { body: { username, password } });
const logout = (token) => call('POST', '/api/auth/logout', { token });
const changePassword = (token, body) => call('POST', '/api/auth/password', { token, body });

// Every room endpoint a signed-in user calls, as [method, path, body].
function roomCalls(roomId) {
  return [
    ['GET', '/api/rooms'],
    ['POST', '/api/rooms', { name: 'after logout', language: 'c' }],
    ['GET', `/api/rooms/${roomId}`],
    ['PATCH', `/api/rooms/${roomId}`, { name: 'renamed by a dead token' }],
    ['GET', `/api/rooms/${roomId}/members`],
    ['GET', `/api/rooms/${roomId}/document`],
    ['POST', `/api/rooms/${roomId}/operations`, { revision: 0, ops: ['dead'] }],
    ['PUT', `/api/rooms/${roomId}/presence`, { cursor: 0 }],
    ['POST', `/api/rooms/${roomId}/stream-ticket`],
    ['GET', `/api/rooms/${roomId}/history`],
    ['POST', `/api/rooms/${roomId}/executions`, { code: 'print(1)' }],
    ['POST', `/api/rooms/${roomId}/ai/hint`, { question: 'why?' }],
    ['DELETE', `/api/rooms/${roomId}`],
  ];
}

test('logout: 204, then that token is 401 everywhere while another session of the user works', async () => {
  const u = await newUser('Out');
  const room = await createRoom(u.token, { name: 'kept' });
  const other = await login(u.username, u.password);
  assert.equal(other.status, 200, other.text);

  const r = await logout(u.token);
  assert.equal(r.status, 204, r.text);
  assert.equal(r.text, '');

  const me = await call('GET', '/api/auth/me', { token: u.token });
  assertError(me, 401, 'session_revoked');
  assert.match(me.json.message, /signed out/);
  for (const [method, path, body] of roomCalls(room.id)) {
    const x = await call(method, path, { token: u.token, body });
    assertError(x, 401, 'session_revoked');
  }
  // nothing the dead token asked for happened
  const still = await call('GET', `/api/rooms/${room.id}`, { token: other.json.token });
  assert.equal(still.status, 200, still.text);
  assert.equal(still.json.room.name, 'kept');
  assert.equal((await call('GET', '/api/auth/me', { token: other.json.token })).status, 200);
  // logging out twice: the token is already revoked
  assertError(await logout(u.token), 401, 'session_revoked');
  // the user can sign in again, and the new session works
  const again = await login(u.username, u.password);
  assert.equal(again.status, 200, again.text);
  assert.equal((await call('GET', '/api/auth/me', { token: again.json.token })).status, 200);
  // logout without a token is an ordinary 401
  assertError(await logout(undefined), 401);
});

test('logout revokes only its own session: every sign-in is a session of its own', async () => {
  const u = await newUser();
  const tokens = [u.token];
  for (let i = 0; i < 3; i++) tokens.push((await login(u.username, u.password)).json.token);
  assert.equal(new Set(tokens).size, 4);
  assert.equal((await logout(tokens[2])).status, 204);
  const statuses = await Promise.all(tokens.map(async (token) => (await call('GET', '/api/auth/me', { token })).status));
  assert.deepEqual(statuses, [200, 200, 401, 200]);
});

test('a ticket taken before logout opens no stream; streams opened with the session close', async () => {
  // The broker's side (refusing revoked sessions at open, closing streams on cc:access) is
  // the broker's change in this issue; this test runs against the merged stack.
  const u = await newUser('Str');
  const room = await createRoom(u.token);
  const t1 = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: u.token });
  const t2 = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: u.token });
  assert.equal(t1.status, 200, t1.text);
  assert.equal(t2.status, 200, t2.text);

  // an SSE stream open before the logout
  const ac = new AbortController();
  const open = await fetch(`${BASE}/events/rooms/${room.id}?ticket=${t1.json.ticket}`, { signal: ac.signal });
  assert.equal(open.status, 200);
  const reader = open.body.getReader();
  const ended = (async () => {
    for (;;) {
      const { done } = await reader.read();
      if (done) return 'closed';
    }
  })().catch((e) => (ac.signal.aborted ? 'aborted' : Promise.reject(e)));

  assert.equal((await logout(u.token)).status, 204);
  // a guard against a hang, not a timing assertion: the broker closes it on the cc:access message
  const guard = new Promise((resolve) => { const t = setTimeout(() => { ac.abort(); resolve('still open'); }, 20000); t.unref(); });
  assert.equal(await Promise.race([ended, guard]), 'closed', 'the stream of the signed-out session ends');
  ac.abort();

  for (const path of [`/events/rooms/${room.id}?ticket=${t2.json.ticket}`, `/events/rooms/${room.id}/poll?ticket=${t2.json.ticket}`]) {
    const r = await fetch(BASE + path);
    await r.body?.cancel();
    assert.ok(r.status === 401 || r.status === 403, `${path}: ${r.status}`);
  }
  // bearer tokens too
  const b = await fetch(`${BASE}/events/rooms/${room.id}/poll`, { headers: { authorization: `Bearer ${u.token}` } });
  await b.body?.cancel();
  assert.ok(b.status === 401 || b.status === 403, `bearer: ${b.status}`);
});

test('password change: 200 {token}; every older token is 401, the new one works; new password signs in', async () => {
  clearLoginLimits();
  const u = await newUser('Pw');
  const second = (await login(u.username, u.password)).json.token;
  const newPassword = 'new-' + randomBytes(6).toString('hex');
  const r = await changePassword(u.token, { password: u.password, new_password: newPassword });
  assert.equal(r.status, 200, r.text);
  assert.equal(typeof r.json.token, 'string');
  assert.deepEqual(r.json.user, u.user);
  assert.equal(r.json.expires_in > 0, true);

  for (const token of [u.token, second]) {
    const me = await call('GET', '/api/auth/me', { token });
    assertError(me, 401, 'session_revoked');
    assert.match(me.json.message, /password was changed/);
    assertError(await call('GET', '/api/rooms', { token }), 401);
  }
  assert.equal((await call('GET', '/api/auth/me', { token: r.json.token })).status, 200);
  assertError(await login(u.username, u.password), 401, 'invalid_credentials');
  const fresh = await login(u.username, newPassword);
  assert.equal(fresh.status, 200, fresh.text);
  assert.equal((await call('GET', '/api/auth/me', { token: fresh.json.token })).status, 200);

  // Redis forgetting the generation (restart, eviction) brings no old token back: the API
  // reads it from PostgreSQL again
  redis('DEL', `cc:user:${u.user.id}:tokgen`);
  assertError(await call('GET', '/api/auth/me', { token: second }), 401, 'session_revoked');
  assert.equal((await call('GET', '/api/auth/me', { token: r.json.token })).status, 200);
  assert.equal(redis('GET', `cc:user:${u.user.id}:tokgen`), '1');
  // a ticket taken with an older token is refused as well (the API refuses to issue one)
  const room = await createRoom(r.json.token);
  assertError(await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: second }), 401);
  clearLoginLimits();
});

test('PASSWORD_CHECK_RATE_LIMIT counts right passwords too: the (budget+1)th sign-in of one account in a minute is 429, another account still signs in', async () => {
  const budget = 4;
  const env = { PASSWORD_CHECK_RATE_LIMIT: String(budget) };
  const signIn = (u) => cgi({ method: 'POST', uri: '/api/auth/login', body: { username: u.username, password: u.password }, env });
  try {
    const u = await newUser('Checks');
    const other = await newUser('Checks');
    for (let i = 0; i < budget; i++) {
      const r = signIn(u);
      assert.equal(r.status, 200, r.body);
    }
    const over = signIn(u);
    assert.equal(over.status, 429, over.body);
    assert.equal(over.json.error, 'too_many_attempts');
    assert.match(over.json.message, new RegExp(`\\b${budget}\\b`), 'the message names the budget');
    const retry = Number(over.headers['retry-after']);
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${over.headers['retry-after']}`);
    // the name as typed in another case is the same account's budget
    assert.equal(cgi({ method: 'POST', uri: '/api/auth/login', body: { username: u.username.toLowerCase(), password: u.password }, env }).status, 429);
    // a password change checks the same password: refused too, and the password unchanged
    const change = cgi({ method: 'POST', uri: '/api/auth/password', token: u.token, body: { password: u.password, new_password: 'another-password-1' }, env });
    assert.equal(change.status, 429, change.body);
    assert.equal(change.json.error, 'too_many_attempts');
    // another account is not held back
    const fine = signIn(other);
    assert.equal(fine.status, 200, fine.body);
    // the session of the limited account still works; only checking its password waits
    assert.equal((await call('GET', '/api/auth/me', { token: u.token })).status, 200);
  } finally {
    clearLoginLimits();
  }
});

test('password change with a wrong current password: 403 wrong_password, counted by the sign-in limit', async () => {
  clearLoginLimits();
  try {
    const u = await newUser('Guess');
    const limit = 10; // LOGIN_RATE_LIMIT of the test stack (scripts/test.sh)
    for (let i = 0; i < limit; i++) {
      const r = await changePassword(u.token, { password: `wrong-${i}-pw`, new_password: 'whatever-new' });
      assertError(r, 403, 'wrong_password');
    }
    const limited = await changePassword(u.token, { password: u.password, new_password: 'whatever-new' });
    assertError(limited, 429, 'too_many_attempts');
    assert.match(limited.headers.get('retry-after') || '', /^[1-9][0-9]*$/);
    // the same limit as signing in: the account's sign-ins are locked too
    assertError(await login(u.username, u.password), 429);
    // the session itself is fine, and the password unchanged
    assert.equal((await call('GET', '/api/auth/me', { token: u.token })).status, 200);
    clearLoginLimits();
    assert.equal((await login(u.username, u.password)).status, 200);
  } finally {
    clearLoginLimits();
  }
});

test('password change validates its body: 400 naming the field', async () => {
  const u = await newUser();
  const cases = [
    [{}, 'password'],
    [{ password: u.password }, 'new_password'],
    [{ new_password: 'long enough' }, 'password'],
    [{ password: u.password, new_password: 'short' }, 'new_password'],
    [{ password: u.password, new_password: 'x'.repeat(1025) }, 'new_password'],
    [{ password: u.password, new_password: 12345678 }, 'new_password'],
    [{ password: 12345678, new_password: 'long enough' }, 'password'],
    [{ password: u.password, new_password: null }, 'new_password'],
    [{ password: [u.password], new_password: 'long enough' }, 'password'],
    [{ password: 'x'.repeat(4097), new_password: 'long enough' }, 'password'],
  ];
  for (const [body, field] of cases) {
    const r = await changePassword(u.token, body);
    assertError(r, 400);
    assert.match(r.json.message, new RegExp(`\\b${field}\\b`), `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
  }
  assertError(await call('POST', '/api/auth/password', { token: u.token, body: '[1]' }), 400);
  assertError(await call('POST', '/api/auth/password', { token: u.token }), 400);
  // no token: 401 before anything else
  assertError(await changePassword(undefined, { password: u.password, new_password: 'long enough' }), 401);
  // nothing changed
  assert.equal((await login(u.username, u.password)).status, 200);
  assert.equal((await call('GET', '/api/auth/me', { token: u.token })).status, 200);
  clearLoginLimits();
});

test('a deleted account\'s token is 401', async () => {
  const u = await newUser('Gone');
  redis('DEL', `cc:user:${u.user.id}:tokgen`);
  sql(`DELETE FROM users WHERE id = ${u.user.id}`);
  assertError(await call('GET', '/api/auth/me', { token: u.token }), 401, 'session_revoked');
});

test('without Redis no session can be told live or signed out: authenticated calls answer 503', async () => {
  const u = await newUser();
  const noRedis = DEAD_REDIS;
  const me = cgi({ uri: '/api/auth/me', token: u.token, env: noRedis });
  assert.equal(me.status, 503, me.body);
  assert.equal(me.json.error, 'redis_unavailable');
  const lo = cgi({ method: 'POST', uri: '/api/auth/logout', token: u.token, env: noRedis });
  assert.equal(lo.status, 503, lo.body);
  // nothing half-done: the session still works
  assert.equal((await call('GET', '/api/auth/me', { token: u.token })).status, 200);
});

// The slots the node REDIS_URL names serves as a master, from its CLUSTER NODES line.
function ownSlots() {
  const mine = redis('CLUSTER', 'NODES').split('\n').find((l) => l.split(' ')[2]?.split(',').includes('myself'));
  return mine.trim().split(' ').slice(8).filter((r) => /^\d+(-\d+)?$/.test(r)).map((r) => r.split('-').map(Number));
}

test('an API given one node of a Redis Cluster as its one server answers 503 and logs that REDIS_CLUSTER is missing', { skip: !process.env.REDIS_CLUSTER && 'needs a Redis Cluster (the make cluster layout)' }, async () => {
  const ranges = ownSlots();
  const served = (key) => ranges.some(([a, b = a]) => slotOf(key) >= a && slotOf(key) <= b);
  // a user whose token generation lives on another master (two in three do)
  let u;
  for (let i = 0; i < 30 && !u; i++) {
    const c = await newUser();
    if (!served(`cc:user:${c.user.id}:tokgen`)) u = c;
  }
  assert.ok(u, 'a user whose keys live on another master');
  const oneNode = { REDIS_CLUSTER: undefined }; // REDIS_URL alone: one node of the cluster
  const me = cgi({ uri: '/api/auth/me', token: u.token, env: oneNode });
  assert.equal(me.status, 503, me.body);
  assert.equal(me.json.error, 'redis_unavailable');
  assert.match(me.stderr, /is a node of a Redis Cluster .*set REDIS_CLUSTER/);
  // with the cluster's nodes the same call works
  const ok = cgi({ uri: '/api/auth/me', token: u.token });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.json.user.id, u.user.id);
});

test('limits per address count an IPv6 client by its /64: registrations and failed sign-ins from new addresses of one /64 share one window', async () => {
  // a documentation /48 and a random /64 in it of this run's own, so no other test shares it
  const r16 = () => randomBytes(2).toString('hex');
  const net = `2001:db8:${r16()}:${r16()}`;
  // the neighbouring /64: the same first 63 bits
  const other = net.replace(/:[0-9a-f]+$/, (m) => `:${(parseInt(m.slice(1), 16) ^ 1).toString(16)}`);
  let n = 0;
  const fresh = (prefix = net) => `${prefix}:${r16()}:${r16()}:${r16()}:${(++n).toString(16)}`;
  // registrations: each from a new address of the /64, then one more is 429
  const limit = 3;
  const env = { REGISTER_RATE_LIMIT: String(limit) };
  const reg = (remoteAddr) =>
    cgi({ method: 'POST', uri: '/api/auth/register', body: { username: uniqueName('v6'), password: 'register-pw' }, env, remoteAddr });
  for (let i = 0; i < limit; i++) {
    const r = reg(fresh());
    assert.equal(r.status, 201, r.body);
  }
  const over = reg(fresh());
  assert.equal(over.status, 429, over.body);
  assert.equal(over.json.error, 'too_many_registrations');
  // the same /64 written another way is the same client; an IPv4-mapped address is its IPv4
  assert.equal(reg(`${net.toUpperCase().replace('2001:DB8', '2001:0db8')}::1`).status, 429);
  // the neighbouring /64 is another client
  const elsewhere = reg(fresh(other));
  assert.equal(elsewhere.status, 201, elsewhere.body);
  // failed sign-ins per address (LOGIN_ADDRESS_RATE_LIMIT): each from a new address of one /64
  const loginNet = `2001:db8:${r16()}:${r16()}`;
  const addrLimit = 4;
  const lenv = { LOGIN_ADDRESS_RATE_LIMIT: String(addrLimit), LOGIN_RATE_LIMIT: '100' };
  const login = (remoteAddr) =>
    cgi({ method: 'POST', uri: '/api/auth/login', body: { username: uniqueName('nobody'), password: 'wrong-password' }, env: lenv, remoteAddr });
  for (let i = 0; i < addrLimit; i++) {
    const r = login(fresh(loginNet));
    assert.equal(r.status, 401, r.body);
  }
  const limited = login(fresh(loginNet));
  assert.equal(limited.status, 429, limited.body);
  assert.match(limited.json.message, /from this address/);
  assert.equal(login(fresh(`2001:db8:${r16()}:${r16()}`)).status, 401);
  // IPv4 addresses stay one client each: a mapped one counts as its IPv4 address
  const v4 = `198.51.100.${1 + (randomBytes(1)[0] % 250)}`;
  for (let i = 0; i < addrLimit; i++) assert.equal(login(i % 2 ? v4 : `::ffff:${v4}`).status, 401);
  assert.equal(login(v4).status, 429);
});

test('an IPv6 client moving to a new /64 for every attempt meets its /48\'s window: registrations and failed sign-ins', async () => {
  const r16 = () => randomBytes(2).toString('hex');
  // a documentation /48 of this run's own; every address in a /64 of its own
  const site = () => `2001:db8:${r16()}`;
  const net = site();
  const used = new Set();
  const fresh = (prefix = net) => {
    let a;
    do a = `${prefix}:${r16()}::${r16()}`; while (used.has(a.split('::')[0]));
    used.add(a.split('::')[0]);
    return a;
  };
  // registrations: two per address, five per /48
  const env = { REGISTER_RATE_LIMIT: '2', REGISTER_NETWORK_RATE_LIMIT: '5' };
  const reg = (remoteAddr) =>
    cgi({ method: 'POST', uri: '/api/auth/register', body: { username: uniqueName('v48'), password: 'register-pw' }, env, remoteAddr });
  for (let i = 0; i < 5; i++) {
    const r = reg(fresh());
    assert.equal(r.status, 201, r.body);
  }
  const over = reg(fresh());
  assert.equal(over.status, 429, over.body);
  assert.equal(over.json.error, 'too_many_registrations');
  assert.match(over.json.message, /at most 5 registrations per hour from one network \(an IPv6 \/48\)/);
  assert.ok(Number(over.headers['retry-after']) >= 1, JSON.stringify(over.headers));
  // another /48 and an IPv4 address are not concerned
  assert.equal(reg(fresh(site())).status, 201);
  assert.equal(reg(`198.51.100.${1 + (randomBytes(1)[0] % 250)}`).status, 201);
  // failed sign-ins: a /64's window of 10, the /48's of 3; a right password gives its places back
  const signNet = site();
  const lenv = { LOGIN_ADDRESS_RATE_LIMIT: '10', LOGIN_NETWORK_RATE_LIMIT: '3', LOGIN_RATE_LIMIT: '100' };
  const u = await newUser('v48');
  const login = (remoteAddr, password = 'wrong-password', username = uniqueName('nobody')) =>
    cgi({ method: 'POST', uri: '/api/auth/login', body: { username, password }, env: lenv, remoteAddr });
  for (let i = 0; i < 2; i++) assert.equal(login(fresh(signNet)).status, 401);
  for (let i = 0; i < 4; i++) {
    const ok = login(fresh(signNet), u.password, u.user.username);
    assert.equal(ok.status, 200, ok.body);
  }
  assert.equal(login(fresh(signNet)).status, 401, 'the third failure is still inside the /48\'s window');
  const limited = login(fresh(signNet));
  assert.equal(limited.status, 429, limited.body);
  assert.equal(limited.json.error, 'too_many_attempts');
  assert.match(limited.json.message, /from this network \(an IPv6 \/48\)/);
  // the network's window holds that /48 alone: the user signs in from another one
  assert.equal(login(fresh(site()), u.password, u.user.username).status, 200);
});

test('registration is limited per address: the (limit+1)th from one address is 429, another address still registers', async () => {
  const limit = 3;
  const env = { REGISTER_RATE_LIMIT: String(limit) };
  // documentation addresses of their own, so no other test shares these windows
  const addr = `198.51.100.${1 + (randomBytes(1)[0] % 250)}`;
  const other = `203.0.113.${1 + (randomBytes(1)[0] % 250)}`;
  const reg = (remoteAddr, username) =>
    cgi({ method: 'POST', uri: '/api/auth/register', body: { username, password: 'register-pw' }, env, remoteAddr });
  for (let i = 0; i < limit; i++) {
    const r = reg(addr, uniqueName('lim'));
    assert.equal(r.status, 201, r.body);
  }
  const name = uniqueName('lim');
  const over = reg(addr, name);
  assert.equal(over.status, 429, over.body);
  assert.equal(over.json.error, 'too_many_registrations');
  assert.match(over.headers['retry-after'] || '', /^[1-9][0-9]*$/);
  assert.ok(Number(over.headers['retry-after']) <= 3600);
  assert.equal(sql(`SELECT count(*) FROM users WHERE username = '${name}'`), '0');
  // a taken name is refused by the limit too: each attempt costs a password hash
  assert.equal(reg(addr, name).status, 429);
  const elsewhere = reg(other, name);
  assert.equal(elsewhere.status, 201, elsewhere.body);
  // an invalid body is answered 400 and does not count
  const bad = cgi({ method: 'POST', uri: '/api/auth/register', body: { username: 'x' }, env, remoteAddr: other });
  assert.equal(bad.status, 400, bad.body);
  for (let i = 1; i < limit; i++) assert.equal(reg(other, uniqueName('lim')).status, 201);
  assert.equal(reg(other, uniqueName('lim')).status, 429);
});
