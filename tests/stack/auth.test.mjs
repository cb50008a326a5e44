// Accounts against the real stack: health, register, login, me; tokens that must be refused;
// duplicate names; field validation; login rate limits; concurrent registrations.
import { test } from 'node:test';
import { newSid } from '../lib/tokens.mjs';
import assert from 'node:assert/strict';
import { call, newUser, uniqueName, signJwt, clearLoginLimits, sql } from '../lib/api.mjs';

const now = () => Math.floor(Date.now() / 1000);

// An error answer as docs/API.md has it: the status and {"error": snake_case, "message"}.
function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
  assert.equal(typeof r.json?.error, 'string', r.text);
  assert.match(r.json.error, /^[a-z][a-z0-9_]*$/);
  assert.equal(typeof r.json.message, 'string');
  assert.ok(r.json.message.length > 0);
  if (code) assert.equal(r.json.error, code, r.text);
  // every 401 says how to authenticate (RFC 9110), with a scheme no browser prompts for
  if (status === 401) assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="codecollab"', r.text);
}

// 400 whose message names the field at fault.
function assertInvalid(r, field) {
  assertError(r, 400);
  assert.match(r.json.message, new RegExp(`\\b${field}\\b`), `message should name ${field}: ${r.text}`);
}

test('health answers ok for PostgreSQL and Redis', async () => {
  const r = await call('GET', '/api/health');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(r.json, { status: 'ok', postgres: 'ok', redis: 'ok' });
});

test('register answers 201 {token, user:{id, username}}; login 200; me names the user', async () => {
  const username = uniqueName('Reg');
  const password = 'correct horse battery';
  const reg = await call('POST', '/api/auth/register', { body: { username, password } });
  assert.equal(reg.status, 201, reg.text);
  assert.equal(typeof reg.json.token, 'string');
  assert.equal(reg.json.token.split('.').length, 3, 'a JWT');
  assert.ok(Number.isInteger(reg.json.user.id) && reg.json.user.id > 0);
  assert.equal(reg.json.user.username, username);

  const login = await call('POST', '/api/auth/login', { body: { username, password } });
  assert.equal(login.status, 200, login.text);
  assert.equal(typeof login.json.token, 'string');
  assert.deepEqual(login.json.user, reg.json.user);

  for (const token of [reg.json.token, login.json.token]) {
    const me = await call('GET', '/api/auth/me', { token });
    assert.equal(me.status, 200, me.text);
    assert.deepEqual(me.json, { user: reg.json.user });
  }
  // the scheme is case-insensitive (RFC 9110, section 11.1), and one or more spaces part it
  // from the token (RFC 6750, section 2.1): the broker reads the header by the same rule
  for (const authorization of [`bearer ${reg.json.token}`, `BEARER ${reg.json.token}`, `bEaReR ${reg.json.token}`,
    `Bearer  ${reg.json.token}`, `bearer     ${reg.json.token}`]) {
    const me = await call('GET', '/api/auth/me', { headers: { authorization } });
    assert.equal(me.status, 200, `${JSON.stringify(authorization.slice(0, 12))}: ${me.text}`);
    assert.deepEqual(me.json, { user: reg.json.user });
  }
  // usernames are case-insensitive at sign-in; the answer names the account as registered
  const upper = await call('POST', '/api/auth/login', { body: { username: username.toUpperCase(), password } });
  assert.equal(upper.status, 200, upper.text);
  assert.deepEqual(upper.json.user, reg.json.user);
  // the password is stored hashed, never as sent
  const stored = sql(`SELECT password_hash FROM users WHERE id = ${reg.json.user.id}`);
  assert.ok(!stored.includes(password));
  assert.match(stored, /^\$argon2id\$/);
});

test('login refuses a wrong password and an unknown user alike with 401', async () => {
  const u = await newUser();
  const wrong = await call('POST', '/api/auth/login', { body: { username: u.username, password: u.password + 'x' } });
  assertError(wrong, 401);
  assert.equal(wrong.json.token, undefined);
  const unknown = await call('POST', '/api/auth/login', { body: { username: uniqueName('ghost'), password: u.password } });
  assertError(unknown, 401);
  // the same answer: nothing tells which usernames exist
  assert.deepEqual(unknown.json, wrong.json);
  // SQL-shaped credentials are just wrong credentials
  const inj = await call('POST', '/api/auth/login', { body: { username: "' OR '1'='1", password: "' OR '1'='1" } });
  assertError(inj, 401);
  const missing = await call('POST', '/api/auth/login', { body: { username: u.username } });
  assertInvalid(missing, 'password');
  clearLoginLimits();
});

test('a username is taken whatever its case: 409', async () => {
  const u = await newUser('Dup');
  for (const username of [u.username, u.username.toUpperCase(), u.username.toLowerCase()]) {
    const r = await call('POST', '/api/auth/register', { body: { username, password: 'another-password' } });
    assertError(r, 409);
    assert.match(r.json.message, /taken/);
  }
  assert.equal(sql(`SELECT count(*) FROM users WHERE lower(username) = lower('${u.username}')`), '1');
});

test('register validates every field and names it in a 400', async () => {
  const ok = { username: uniqueName('val'), password: 'long enough' };
  const cases = [
    [{ ...ok, username: 'ab' }, 'username'],
    [{ ...ok, username: 'a'.repeat(33) }, 'username'],
    [{ ...ok, username: 'bad name' }, 'username'],
    [{ ...ok, username: 'bad/name' }, 'username'],
    [{ ...ok, username: "o'brien" }, 'username'],
    [{ ...ok, username: 'ünïcødé' }, 'username'],
    [{ ...ok, username: 'line\nbreak' }, 'username'],
    [{ ...ok, username: '' }, 'username'],
    [{ ...ok, password: 'short' }, 'password'],
    [{ ...ok, password: '1234567' }, 'password'],
    [{ ...ok, password: 'x'.repeat(1025) }, 'password'],
    [{ password: ok.password }, 'username'],
    [{ username: ok.username }, 'password'],
    [{}, 'username'],
    [{ ...ok, username: null }, 'username'],
    [{ ...ok, username: 12345 }, 'username'],
    [{ ...ok, username: ['abc'] }, 'username'],
    [{ ...ok, username: { name: 'abc' } }, 'username'],
    [{ ...ok, password: 12345678 }, 'password'],
    [{ ...ok, password: true }, 'password'],
  ];
  for (const [body, field] of cases) {
    const r = await call('POST', '/api/auth/register', { body });
    assertInvalid(r, field);
  }
  assert.equal(sql(`SELECT count(*) FROM users WHERE username = '${ok.username}'`), '0');
  // the limits themselves are accepted: 3 and 32 characters, an 8-character password
  for (const username of [uniqueName('').slice(0, 3), 'a.b_c-' + uniqueName('x').padEnd(26, '9')]) {
    const r = await call('POST', '/api/auth/register', { body: { username, password: '12345678' } });
    assert.equal(r.status, 201, `${username}: ${r.text}`);
  }
});

// Claims as the server signs them, for user u, valid for an hour.
function claims(u, extra = {}) {
  return { iss: 'codecollab', sub: String(u.user.id), name: u.username, typ: 'session', iat: now(), exp: now() + 3600, sid: newSid(), gen: 0, ...extra };
}

test('a token forged with the right key and claims is accepted (the forger is sound)', async () => {
  const u = await newUser();
  const r = await call('GET', '/api/auth/me', { token: signJwt(claims(u)) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.user.id, u.user.id);
});

test('bad tokens are refused with 401 {error, message}', async () => {
  const u = await newUser();
  const [h, p] = u.token.split('.');
  const tampered = JSON.parse(Buffer.from(p, 'base64url'));
  tampered.sub = '1';
  const tamperedTok = `${h}.${Buffer.from(JSON.stringify(tampered)).toString('base64url')}.${u.token.split('.')[2]}`;
  const { exp, ...noExp } = claims(u);
  // [token, what the message says]: the reason shows the check that refused it was reached
  const cases = {
    'garbled': ['not-a-token'],
    'three garbled parts': ['aaa.bbb.ccc'],
    'empty parts': ['..'],
    'expired': [signJwt(claims(u, { iat: now() - 7200, exp: now() - 60 })), /expired/],
    'expiring now': [signJwt(claims(u, { exp: now() - 1 })), /expired/],
    'no expiry': [signJwt(noExp), /expiry/],
    'string expiry': [signJwt(claims(u, { exp: String(now() + 3600) })), /expiry/],
    'alg none': [signJwt(claims(u), { alg: 'none' })],
    'alg none with a signature': [signJwt(claims(u), { alg: 'none' }) + u.token.split('.')[2]],
    'HS512 with the right key': [signJwt(claims(u), { alg: 'HS512' }), /algorithm/],
    'HS384 with the right key': [signJwt(claims(u), { alg: 'HS384' }), /algorithm/],
    'wrong key': [signJwt(claims(u), { key: 'k'.repeat(48) }), /signature/],
    'wrong issuer': [signJwt(claims(u, { iss: 'evil' })), /issuer/],
    'no issuer': [signJwt(claims(u, { iss: undefined })), /issuer/],
    'stream ticket': [signJwt(claims(u, { typ: 'ticket', room: 'abcdefghij', exp: now() + 60 })), /ticket/],
    'unknown type': [signJwt(claims(u, { typ: 'admin' }))],
    'numeric subject': [signJwt(claims(u, { sub: u.user.id }))],
    'subject 0': [signJwt(claims(u, { sub: '0' }))],
    'subject not a number': [signJwt(claims(u, { sub: '1 OR 1=1' }))],
    'tampered payload': [tamperedTok, /signature/],
    'oversized': [signJwt(claims(u, { pad: 'x'.repeat(5000) }))],
  };
  for (const [what, [token, reason]] of Object.entries(cases)) {
    const r = await call('GET', '/api/auth/me', { token });
    assert.equal(r.status, 401, `${what}: ${r.text}`);
    assertError(r, 401);
    if (reason) assert.match(r.json.message, reason, what);
  }
  const none = await call('GET', '/api/auth/me');
  assertError(none, 401);
  for (const authorization of ['Basic dXNlcjpwYXNz', `Token ${u.token}`, u.token, `Bearer${u.token}`,
    `Bearer\t${u.token}`]) {
    const r = await call('GET', '/api/auth/me', { headers: { authorization } });
    assertError(r, 401, 'unauthorized');
    assert.match(r.json.message, /Bearer <token>/, authorization.slice(0, 12));
  }
  // the scheme with no token after it, however many spaces follow, is a missing token
  for (const authorization of ['Bearer', 'Bearer ', 'Bearer    ', 'bearer  ']) {
    const r = await call('GET', '/api/auth/me', { headers: { authorization } });
    assertError(r, 401, 'unauthorized');
    assert.match(r.json.message, /no token/, JSON.stringify(authorization));
  }
  // the spaces are skipped, not the token judged the more leniently: a bad one after two
  // spaces is refused as a bad token
  const twoBad = await call('GET', '/api/auth/me', { headers: { authorization: 'Bearer  aaa.bbb.ccc' } });
  assertError(twoBad, 401, 'invalid_token');
  // every room endpoint refuses the same way
  const r = await call('GET', '/api/rooms', { token: cases.expired[0] });
  assertError(r, 401);
  const t = await call('POST', '/api/rooms', { token: cases['stream ticket'][0], body: { name: 'x', language: 'c' } });
  assertError(t, 401);
});

test('a real stream ticket is no API token: 401 on every endpoint', async () => {
  const u = await newUser();
  const room = await call('POST', '/api/rooms', { token: u.token, body: { name: 'ticketed', language: 'c' } });
  assert.equal(room.status, 201, room.text);
  const t = await call('POST', `/api/rooms/${room.json.room.id}/stream-ticket`, { token: u.token });
  assert.equal(t.status, 200, t.text);
  assert.equal(typeof t.json.ticket, 'string');
  for (const [method, path] of [['GET', '/api/auth/me'], ['GET', '/api/rooms'], ['GET', `/api/rooms/${room.json.room.id}`], ['DELETE', `/api/rooms/${room.json.room.id}`]]) {
    const r = await call(method, path, { token: t.json.ticket });
    assertError(r, 401);
    assert.match(r.json.message, /ticket/);
  }
  assert.equal((await call('GET', `/api/rooms/${room.json.room.id}`, { token: u.token })).status, 200, 'the room was not deleted');
});

test('login is rate limited per username: 10 failures, then 429 with Retry-After, right password too', async () => {
  clearLoginLimits();
  try {
    const victim = await newUser('Victim');
    const bystander = await newUser();
    for (let i = 0; i < 10; i++) {
      const r = await call('POST', '/api/auth/login', { body: { username: victim.username, password: `wrong-${i}-pass` } });
      assertError(r, 401);
    }
    const limited = await call('POST', '/api/auth/login', { body: { username: victim.username, password: 'wrong-again' } });
    assertError(limited, 429);
    const ra = limited.headers.get('retry-after');
    assert.match(ra || '', /^[1-9][0-9]*$/, `Retry-After: ${ra}`);
    assert.ok(Number(ra) <= 60, `Retry-After ${ra} exceeds the one-minute window`);
    const right = await call('POST', '/api/auth/login', { body: { username: victim.username, password: victim.password } });
    assertError(right, 429);
    assert.equal(right.json.token, undefined);
    assert.match(right.headers.get('retry-after') || '', /^[1-9][0-9]*$/);
    // the limit follows the account, not the spelling
    const cased = await call('POST', '/api/auth/login', { body: { username: victim.username.toUpperCase(), password: victim.password } });
    assertError(cased, 429);
    // others are not locked out
    const other = await call('POST', '/api/auth/login', { body: { username: bystander.username, password: bystander.password } });
    assert.equal(other.status, 200, other.text);
    // a token issued before still works: the limit is on signing in
    assert.equal((await call('GET', '/api/auth/me', { token: victim.token })).status, 200);
  } finally {
    clearLoginLimits();
  }
});

test('the login limit holds under parallel guessing, and counts only failures', async () => {
  clearLoginLimits();
  try {
    const u = await newUser('Par');
    // successful sign-ins do not use up the limit
    for (let i = 0; i < 12; i++) {
      const ok = await call('POST', '/api/auth/login', { body: { username: u.username, password: u.password } });
      assert.equal(ok.status, 200, `sign-in ${i + 1}: ${ok.text}`);
    }
    // 30 guesses at once: 10 are checked, 20 refused, whatever the interleaving
    const rs = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      call('POST', '/api/auth/login', { body: { username: u.username, password: `guess-${i}-pw` } })));
    const count = (st) => rs.filter((r) => r.status === st).length;
    assert.equal(count(401), 10, `wrong-password answers: ${rs.map((r) => r.status).join(' ')}`);
    assert.equal(count(429), 20);
    assertError(await call('POST', '/api/auth/login', { body: { username: u.username, password: u.password } }), 429);
  } finally {
    clearLoginLimits();
  }
});

test('login is rate limited per address: failures over many usernames end in 429 "from this address"', async () => {
  clearLoginLimits();
  try {
    const u = await newUser();
    const limit = 40; // LOGIN_ADDRESS_RATE_LIMIT of the test stack (scripts/test.sh)
    const names = Array.from({ length: limit }, () => uniqueName('spray'));
    for (let i = 0; i < names.length; i += 4) {
      // a forwarded-for header of the client's choosing changes nothing: the address is the peer's
      const batch = await Promise.all(names.slice(i, i + 4).map((username, k) =>
        call('POST', '/api/auth/login', { body: { username, password: 'password1' }, headers: { 'x-forwarded-for': `198.51.100.${i + k}`, 'x-real-ip': `198.51.100.${i + k}` } })));
      for (const r of batch) assertError(r, 401);
    }
    const r = await call('POST', '/api/auth/login', { body: { username: uniqueName('spray'), password: 'password1' }, headers: { 'x-forwarded-for': '203.0.113.7' } });
    assertError(r, 429);
    assert.match(r.json.message, /from this address/);
    assert.match(r.headers.get('retry-after') || '', /^[1-9][0-9]*$/);
    // the whole address waits, right password or not
    const right = await call('POST', '/api/auth/login', { body: { username: u.username, password: u.password } });
    assertError(right, 429);
  } finally {
    clearLoginLimits();
  }
  // with the attempts forgotten, signing in works again
  const u2 = await newUser();
  const again = await call('POST', '/api/auth/login', { body: { username: u2.username, password: u2.password } });
  assert.equal(again.status, 200, again.text);
});

test('20 parallel registrations of distinct users all succeed', async () => {
  const names = Array.from({ length: 20 }, () => uniqueName('par'));
  const rs = await Promise.all(names.map((username) =>
    call('POST', '/api/auth/register', { body: { username, password: 'parallel-pw' } })));
  for (const r of rs) assert.equal(r.status, 201, r.text);
  const ids = new Set(rs.map((r) => r.json.user.id));
  assert.equal(ids.size, 20);
  assert.deepEqual(rs.map((r) => r.json.user.username), names);
  const list = names.map((n) => `'${n}'`).join(',');
  assert.equal(sql(`SELECT count(*) FROM users WHERE username IN (${list})`), '20');
});

test('10 parallel registrations of the same username: exactly one 201, nine 409', async () => {
  const username = uniqueName('race');
  const rs = await Promise.all(Array.from({ length: 10 }, (_, i) =>
    call('POST', '/api/auth/register', { body: { username: i % 2 ? username : username.toUpperCase(), password: `race-pw-${i}` } })));
  const statuses = rs.map((r) => r.status).sort();
  assert.deepEqual(statuses, [201, ...Array(9).fill(409)], rs.map((r) => r.text).join('\n'));
  for (const r of rs.filter((x) => x.status === 409)) assertError(r, 409);
  assert.equal(sql(`SELECT count(*) FROM users WHERE lower(username) = '${username}'`), '1');
});

test('look-alike names get no fresh guesses: the Kelvin sign and dotted/dotless i never sign in as kirkadmin', async () => {
  clearLoginLimits();
  try {
    const tail = randomTail();
    const username = `kirkadmin${tail}`;
    const password = 'kirk-password';
    const reg = await call('POST', '/api/auth/register', { body: { username, password } });
    assert.equal(reg.status, 201, reg.text);
    // lock the account: LOGIN_RATE_LIMIT (10) failures
    for (let i = 0; i < 10; i++) {
      assertError(await call('POST', '/api/auth/login', { body: { username, password: `wrong-${i}-pw` } }), 401);
    }
    assertError(await call('POST', '/api/auth/login', { body: { username, password } }), 429);
    // PostgreSQL's lower() folds these into "kirkadmin…" in some locales; the canonical key
    // does not, so they match no account, whatever the password
    const lookAlikes = [
      `\u212Airkadmin${tail}`, // KELVIN SIGN
      `k\u0130rkadmin${tail}`, // LATIN CAPITAL LETTER I WITH DOT ABOVE
      `k\u0131rkadmin${tail}`, // LATIN SMALL LETTER DOTLESS I
      `\u212A\u0130RKADM\u0131N${tail}`,
    ];
    for (const name of lookAlikes) {
      for (let i = 0; i < 3; i++) {
        const r = await call('POST', '/api/auth/login', { body: { username: name, password } });
        assert.notEqual(r.status, 200, `${JSON.stringify(name)} signed in: ${r.text}`);
        assertError(r, 401, 'invalid_credentials');
      }
      // nor can they be registered
      assertError(await call('POST', '/api/auth/register', { body: { username: name, password } }), 400);
    }
    // the real account is still locked, in any ASCII case
    assertError(await call('POST', '/api/auth/login', { body: { username: username.toUpperCase(), password } }), 429);
    // a differently-cased registration of the same name is taken
    assertError(await call('POST', '/api/auth/register', { body: { username: `KirkAdmin${tail}`, password } }), 409);
    assert.equal(sql(`SELECT count(*) FROM users WHERE username_key = '${username}'`), '1');
  } finally {
    clearLoginLimits();
  }
});

// lower-case hex, so "kirkadmin" + it is its own canonical form
function randomTail() {
  return uniqueName('').toLowerCase();
}
