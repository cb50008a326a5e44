// The API binary as a plain CGI program (RFC 3875): one request per process, the answer on
// stdout with a "Status:" line. Every run is a fresh process, which also shows what a
// FastCGI process does on its first request, before it has any connection open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { securityHeaders } from '../lib/policy.mjs';
import { DEAD_REDIS, call, cgi, newUser, createRoom, roomEvents, redis, uniqueName } from '../lib/api.mjs';

// A CGI answer: exit 0, a Status line first, JSON with the status's shape.
function assertCgi(r, status, { errorShape = status >= 400 } = {}) {
  assert.equal(r.code, 0, `exit code; stderr: ${r.stderr.slice(0, 500)}`);
  assert.equal(r.signal, null);
  assert.match(r.statusLine, new RegExp(`^Status: ${status} [A-Z][A-Za-z ]+$`), r.statusLine);
  assert.equal(r.status, status, r.body);
  if (status !== 204) {
    assert.match(r.headers['content-type'] || '', /^application\/json/);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body), 'Content-Length matches the body');
    assert.ok(r.json, `JSON body: ${r.body}`);
  }
  if (errorShape) {
    assert.equal(typeof r.json.error, 'string');
    assert.equal(typeof r.json.message, 'string');
  }
}

test('CGI: health, register, then me with the token; a token from CGI works over FastCGI', async () => {
  assertCgi(cgi({ uri: '/api/health' }), 200);
  const username = uniqueName('Cgi');
  const reg = cgi({ method: 'POST', uri: '/api/auth/register', body: { username, password: 'cgi-password' } });
  assertCgi(reg, 201);
  assert.match(reg.statusLine, /^Status: 201 Created$/);
  assert.equal(typeof reg.json.token, 'string');
  assert.equal(reg.json.user.username, username);
  assert.ok(Number.isInteger(reg.json.user.id));
  const me = cgi({ uri: '/api/auth/me', token: reg.json.token });
  assertCgi(me, 200);
  assert.deepEqual(me.json, { user: reg.json.user });
  const viaFcgi = await call('GET', '/api/auth/me', { token: reg.json.token });
  assert.equal(viaFcgi.status, 200, viaFcgi.text);
  assert.deepEqual(viaFcgi.json, me.json);
  const login = cgi({ method: 'POST', uri: '/api/auth/login', body: { username, password: 'cgi-password' } });
  assertCgi(login, 200);
  assert.deepEqual(login.json.user, reg.json.user);
  assertCgi(cgi({ method: 'POST', uri: '/api/auth/register', body: { username, password: 'cgi-password' } }), 409);
  assertCgi(cgi({ uri: '/api/auth/me' }), 401);
});

test('CGI: unknown path 404, wrong method 405 with Allow, query strings ignored', () => {
  const r = cgi({ uri: '/api/nope' });
  assertCgi(r, 404);
  assert.match(r.statusLine, /^Status: 404 Not Found$/);
  assert.equal(r.json.error, 'not_found');
  const m = cgi({ method: 'DELETE', uri: '/api/health' });
  assertCgi(m, 405);
  assert.equal(m.headers.allow, 'GET, HEAD');
  assertCgi(cgi({ uri: '/api/health?verbose=1&x=%00' }), 200);
});

test('CGI: without REQUEST_URI the path is SCRIPT_NAME + PATH_INFO (RFC 3875)', async () => {
  const h = cgi({ uri: null, env: { SCRIPT_NAME: '/api', PATH_INFO: '/health', QUERY_STRING: 'x=1' } });
  assertCgi(h, 200);
  assert.equal(h.json.status, 'ok');
  const u = await newUser();
  const me = cgi({ uri: null, token: u.token, env: { SCRIPT_NAME: '/api/auth', PATH_INFO: '/me' } });
  assertCgi(me, 200);
  assert.equal(me.json.user.id, u.user.id);
  // the script itself, with no path after it, is no endpoint
  assertCgi(cgi({ uri: null, env: { SCRIPT_NAME: '/cgi-bin/codecollab-api' } }), 404);
});

test('CGI: security headers always; HSTS only when HTTPS=on', () => {
  const plain = cgi({ uri: '/api/health' });
  const tls = cgi({ uri: '/api/health', https: true });
  const tlsErr = cgi({ uri: '/api/nope', https: true });
  // the same headers lighttpd sets (fcgi/http.c repeats them for servers that set none)
  const policy = securityHeaders();
  for (const r of [plain, tls, tlsErr]) {
    for (const [name, value] of Object.entries(policy.headers)) assert.equal(r.headers[name], value, name);
    assert.match(r.headers['content-security-policy'], /frame-ancestors 'none'/);
    assert.match(r.headers['content-security-policy'], /(^|; )require-trusted-types-for 'script'(;|$)/);
    assert.match(r.headers['content-security-policy'], /(^|; )trusted-types codecollab(;|$)/);
    assert.ok(!r.headers['content-security-policy'].includes('unsafe-inline'));
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.ok(r.headers['referrer-policy']);
  }
  assert.equal(plain.headers['strict-transport-security'], undefined);
  for (const r of [tls, tlsErr]) {
    const hsts = r.headers['strict-transport-security'];
    assert.equal(hsts, policy.hsts['strict-transport-security'], 'HSTS over HTTPS');
    const age = /max-age=(\d+)/.exec(hsts);
    assert.ok(age && Number(age[1]) >= 15552000, `max-age of at least 180 days: ${hsts}`);
  }
  assert.equal(cgi({ uri: '/api/health', https: false, env: { HTTPS: 'off' } }).headers['strict-transport-security'], undefined);
});

test('CGI: bad request environments answer JSON 400/413, never crash', () => {
  const body = JSON.stringify({ username: uniqueName('cl'), password: 'cgi-password' });
  for (const cl of ['abc', '-1', '1e3', ' 5', '1 5']) {
    const r = cgi({ method: 'POST', uri: '/api/auth/register', body, contentLength: cl });
    assertCgi(r, 400);
  }
  // a number past what any length holds is too large, as any past the bound
  for (const cl of ['99999999999999999999999', '18446744073709551616']) {
    const r = cgi({ method: 'POST', uri: '/api/auth/register', body, contentLength: cl });
    assertCgi(r, 413);
  }
  const big = cgi({ method: 'POST', uri: '/api/auth/register', body, contentLength: String(1024 * 1024 + 1) });
  assertCgi(big, 413);
  // a body shorter than its Content-Length
  const short = cgi({ method: 'POST', uri: '/api/auth/register', body, contentLength: String(body.length + 100) });
  assertCgi(short, 400);
  assertCgi(cgi({ method: null, uri: '/api/health' }), 400);
  assertCgi(cgi({ method: 'A-VERY-LONG-METHOD-NAME', uri: '/api/health' }), 400);
  assertCgi(cgi({ uri: null }), 400);
  assertCgi(cgi({ uri: 'api/health' }), 400);
  assertCgi(cgi({ method: 'POST', uri: '/api/auth/register', body, contentType: 'text/plain' }), 415);
  assertCgi(cgi({ method: 'POST', uri: '/api/auth/register', body: '{"username":"ab\\ud800"}' }), 400);
});

test('CGI: rooms from a fresh process — PATCH emits its room event, DELETE clears the cache, lists show the revision', async () => {
  const owner = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token, { name: 'fresh', visibility: 'public' });
  // the document moves on (over FastCGI), so the room's revision is 1
  const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: owner.token, body: { revision: 0, ops: ['hello'] } });
  assert.equal(op.status, 200, op.text);
  assert.equal(op.json.revision, 1);

  const list = cgi({ uri: '/api/rooms', token: owner.token });
  assertCgi(list, 200);
  assert.equal(list.json.rooms.find((x) => x.id === room.id).revision, 1, 'revision in GET /api/rooms');
  const seen = cgi({ uri: `/api/rooms/${room.id}`, token: stranger.token });
  assertCgi(seen, 200);
  assert.equal(seen.json.role, null);
  assert.equal(seen.json.room.revision, 1, 'revision in GET /api/rooms/{id} for a stranger');
  assert.ok(!('invite' in seen.json.room));

  const before = roomEvents(room.id).length;
  const p = cgi({ method: 'PATCH', uri: `/api/rooms/${room.id}`, token: owner.token, body: { name: 'patched by cgi' } });
  assertCgi(p, 200);
  assert.equal(p.json.room.name, 'patched by cgi');
  assert.equal(p.json.room.revision, 1);
  const events = roomEvents(room.id).slice(before);
  const ev = events.find((e) => e.type === 'room');
  assert.ok(ev, `a room event after PATCH: ${JSON.stringify(events)}`);
  assert.equal(ev.data.room.name, 'patched by cgi');
  assert.ok(!ev.raw.includes(room.invite));

  // the broker authorises bearer tokens from the members hash: a deleted room must leave none
  const j = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/join`, token: stranger.token });
  assertCgi(j, 200);
  assert.equal(redis('HGET', `cc:room:{${room.id}}:members`, String(stranger.user.id)), 'editor');
  const d = cgi({ method: 'DELETE', uri: `/api/rooms/${room.id}`, token: owner.token });
  assertCgi(d, 204);
  assert.equal(d.body, '');
  assert.equal(redis('EXISTS', `cc:room:{${room.id}}:members`), '0', 'member cache of a deleted room');
  assert.equal(redis('EXISTS', `cc:room:{${room.id}}:doc`), '0', 'document of a deleted room');
  const gone = roomEvents(room.id).at(-1);
  assert.equal(gone?.type, 'room');
  assert.equal(gone.data.reason, 'deleted');
  assertCgi(cgi({ uri: `/api/rooms/${room.id}`, token: owner.token }), 404);
});

test('CGI: with a store down, health answers 503 naming it and the API answers 503 JSON', async () => {
  const noRedis = DEAD_REDIS;
  const noPg = { DATABASE_URL: 'postgresql:///codecollab?host=/nonexistent&port=1&user=postgres&connect_timeout=2' };
  const h1 = cgi({ uri: '/api/health', env: noRedis });
  assertCgi(h1, 503, { errorShape: false });
  assert.deepEqual(h1.json, { status: 'degraded', postgres: 'ok', redis: 'down' });
  const h2 = cgi({ uri: '/api/health', env: noPg });
  assertCgi(h2, 503, { errorShape: false });
  assert.equal(h2.json.postgres, 'down');
  assert.equal(h2.json.redis, 'ok');
  assert.notEqual(h2.json.status, 'ok');
  const reg = cgi({ method: 'POST', uri: '/api/auth/register', body: { username: uniqueName('down'), password: 'down-password' }, env: noPg });
  assertCgi(reg, 503);
  // sign-in needs the rate limiter: no Redis, no guessing
  const u = await newUser();
  const login = cgi({ method: 'POST', uri: '/api/auth/login', body: { username: u.username, password: u.password }, env: noRedis });
  assertCgi(login, 503);
  // every signed-in call asks Redis whether the session was signed out: without it, 503
  // rather than letting a revoked token through
  const room = cgi({ method: 'POST', uri: '/api/rooms', token: u.token, body: { name: 'no redis', language: 'c' }, env: noRedis });
  assertCgi(room, 503);
  assert.equal(room.json.error, 'redis_unavailable');
  assertCgi(cgi({ uri: '/api/rooms', token: u.token, env: noRedis }), 503);
  assertCgi(cgi({ uri: '/api/rooms', token: u.token, env: noPg }), 503);
});
