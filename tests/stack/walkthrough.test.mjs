// What a scripter with curl sees, line by line of docs/API.md: streams with a bearer token
// and with a ticket agree, one error vocabulary for the API and the broker (JSON, with the
// security headers, also for the web server's own refusals), a POST without a body, a
// history whose beginning was trimmed, and who may change a room.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BASE, call, cgi, newUser, createRoom, redis, rawHttp } from '../lib/api.mjs';
import { assertSecurityHeaders } from '../lib/policy.mjs';

const LIGHTTPD = process.env.WEB !== 'apache';
const UPGRADE = fileURLToPath(new URL('../../scripts/redis-upgrade-keys.sh', import.meta.url));

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') || '', /^application\/json/, r.text);
  assert.equal(r.json?.error, code, r.text);
  assert.equal(typeof r.json.message, 'string', r.text);
  assertSecurityHeaders(r.headers);
}

// The head of a raw answer as a header map (lower-case names).
function headMap(head) {
  const m = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) m[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return m;
}

// Opens a stream and gives its status and, for an error, its JSON; a 200 stream is closed.
async function streamStatus(path, token) {
  const ac = new AbortController();
  const r = await fetch(BASE + path, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: ac.signal });
  let json = null;
  if (r.status !== 200) json = await r.json();
  ac.abort();
  return { status: r.status, json, headers: r.headers };
}

async function ticket(user, room) {
  const r = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: user.token, body: '' });
  assert.equal(r.status, 200, r.text);
  return r.json.ticket;
}

test('a public room streams to a signed-in stranger alike with a bearer token and a ticket', async () => {
  const owner = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  const bearer = () => streamStatus(`/events/rooms/${room.id}`, stranger.token);
  const byTicket = async () => streamStatus(`/events/rooms/${room.id}?ticket=${await ticket(stranger, room)}`);
  assert.equal((await bearer()).status, 200);
  assert.equal((await byTicket()).status, 200);
  assert.equal((await streamStatus(`/events/rooms/${room.id}/poll?since=0`, stranger.token)).status, 200);
  // the broker's copy of the visibility is lost (a Redis of an older version, or a lost
  // write): reading the room puts it back, and so does the upgrade step of every start
  const key = `cc:room:{${room.id}}:visibility`;
  redis('DEL', key);
  const get = await call('GET', `/api/rooms/${room.id}`, { token: stranger.token });
  assert.equal(get.status, 200, get.text);
  assert.equal(redis('GET', key), 'public');
  assert.equal((await bearer()).status, 200);
  // a private room: a stranger is refused the same way with either credential
  const priv = await createRoom(owner.token);
  const a = await streamStatus(`/events/rooms/${priv.id}`, stranger.token);
  assert.equal(a.status, 403);
  assert.deepEqual(a.json, { error: 'not_a_member', message: 'not a member of this room' });
  const t = await call('POST', `/api/rooms/${priv.id}/stream-ticket`, { token: stranger.token, body: '' });
  assertError(t, 403, 'not_a_member');
});

// scripts/redis-upgrade-keys.sh upgrades the one Redis of make run (it scans one server);
// a Redis Cluster starts with the key layout of lib/rkeys.def
test('the key upgrade of a start on an older data set fills in a room\'s lost visibility', { skip: process.env.REDIS_CLUSTER && 'the key upgrade is for one Redis server, not a Redis Cluster' }, async () => {
  const owner = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  const key = `cc:room:{${room.id}}:visibility`;
  redis('DEL', key);
  // a data set of an older version: without the layout mark the upgrade runs in full
  redis('DEL', 'cc:layout');
  const out = execFileSync(UPGRADE, { env: { ...process.env }, encoding: 'utf8' });
  assert.match(out, /^redis: the access state written from PostgreSQL: [1-9]\d* rooms' visibility or members/m);
  assert.equal(redis('GET', key), 'public');
  assert.equal((await streamStatus(`/events/rooms/${room.id}`, stranger.token)).status, 200);
});

// A start on a data set whose layout is marked current skips the scan, but not the fill: the
// broker cannot fill in a lost visibility key itself (a Redis put back from a backup older
// than the database, writes lost in a crash), and a stranger's bearer-token stream of the
// public room is refused until something writes it.
test('a start whose key layout is marked current still fills in a room\'s lost visibility', { skip: process.env.REDIS_CLUSTER && 'the key upgrade is for one Redis server, not a Redis Cluster' }, async () => {
  const owner = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  const key = `cc:room:{${room.id}}:visibility`;
  // a full run marks the layout (it may be marked already: then this is a start like any)
  execFileSync(UPGRADE, { env: { ...process.env }, encoding: 'utf8' });
  redis('DEL', key);
  assert.equal((await streamStatus(`/events/rooms/${room.id}`, stranger.token)).status, 403);
  const out = execFileSync(UPGRADE, { env: { ...process.env }, encoding: 'utf8' });
  assert.match(out, /^redis: the key layout is current \(cc:layout is \d+\): no upgrade/m);
  assert.match(out, /^redis: the access state written from PostgreSQL: [1-9]\d* rooms' visibility or members/m);
  assert.equal(redis('GET', key), 'public');
  assert.equal((await streamStatus(`/events/rooms/${room.id}`, stranger.token)).status, 200);
});

test('the broker answers in the API\'s vocabulary, as JSON', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  const cases = [
    [`/events/rooms/${room.id}`, null, 401, 'unauthorized'],
    [`/events/rooms/${room.id}`, 'not.a.token', 401, 'invalid_token'],
    [`/events/rooms/${room.id}?last_event_id=nonsense`, u.token, 400, 'invalid_request'],
    // an unknown room is 404 on streams as on the API
    ['/events/rooms/zz00000000', u.token, 404, 'room_not_found'],
    ['/events/rooms/not%20an%20id', u.token, 404, 'room_not_found'],
    ['/events/elsewhere', u.token, 404, 'not_found'],
  ];
  for (const [path, token, status, code] of cases) {
    const r = await streamStatus(path, token);
    assert.equal(r.status, status, `${path}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error, code, path);
    assert.equal(typeof r.json.message, 'string');
    assertSecurityHeaders(r.headers);
  }
  const api = await call('GET', '/api/rooms/zz00000000', { token: u.token });
  assertError(api, 404, 'room_not_found');
  // a ticket of another room names the room it is for
  const other = await createRoom(u.token);
  const r = await streamStatus(`/events/rooms/${other.id}?ticket=${await ticket(u, room)}`);
  assert.equal(r.status, 403);
  assert.equal(r.json.error, 'forbidden');
  // a deleted room is unknown to its streams too
  assert.equal((await call('DELETE', `/api/rooms/${room.id}`, { token: u.token })).status, 204);
  const gone = await streamStatus(`/events/rooms/${room.id}`, u.token);
  assert.equal(gone.status, 404);
  assert.equal(gone.json.error, 'room_not_found');
});

test('who may change a room: strangers are not_a_member, members without the right forbidden', async () => {
  const owner = await newUser();
  const member = await newUser();
  const stranger = await newUser();
  for (const visibility of ['public', 'private']) {
    const room = await createRoom(owner.token, { visibility });
    const j = await call('POST', `/api/rooms/${room.id}/join`, { token: member.token, body: { invite: room.invite } });
    assert.equal(j.status, 200, j.text);
    const patch = (u) => call('PATCH', `/api/rooms/${room.id}`, { token: u.token, body: { name: 'renamed' } });
    assertError(await patch(stranger), 403, 'not_a_member');
    assertError(await patch(member), 403, 'forbidden');
    assertError(await call('DELETE', `/api/rooms/${room.id}`, { token: stranger.token }), 403, 'not_a_member');
    // editing a public room one has not joined
    if (visibility === 'public') {
      const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: stranger.token, body: { revision: 0, ops: ['x'] } });
      assertError(op, 403, 'not_a_member');
    }
  }
});

test('NUL, lone surrogates and invalid UTF-8 inside ops are invalid_json, like anywhere in a body', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  const path = `/api/rooms/${room.id}/operations`;
  for (const text of ['{"revision":0,"ops":["a\\u0000b"]}', '{"revision":0,"ops":["\\ud800"]}', '{"revision":0,"ops":["\\udc00x"]}']) {
    assertError(await call('POST', path, { token: u.token, body: text }), 400, 'invalid_json');
  }
  const raw = Buffer.concat([Buffer.from('{"revision":0,"ops":["a'), Buffer.from([0xc3, 0x28]), Buffer.from('"]}')]);
  assertError(await call('POST', path, { token: u.token, body: new Uint8Array(raw) }), 400, 'invalid_json');
  const nul = Buffer.concat([Buffer.from('{"revision":0,"ops":["a'), Buffer.from([0]), Buffer.from('"]}')]);
  assertError(await call('POST', path, { token: u.token, body: new Uint8Array(nul) }), 400, 'invalid_json');
  // what the ops themselves get wrong is invalid_operation
  for (const ops of [[0], [''], [1.5], [{}], 'x', [5]]) {
    assertError(await call('POST', path, { token: u.token, body: { revision: 0, ops } }), 400, 'invalid_operation');
  }
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: u.token });
  assert.equal(d.json.content, '');
});

test('a POST without a body needs no Content-Length', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  const r = await rawHttp(`POST /api/rooms/${room.id}/stream-ticket HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${u.token}\r\nConnection: close\r\n\r\n`);
  assert.equal(r.status, 200, r.head + r.body);
  // (and, where streams may skip the front door, the broker's origin: docs/API.md)
  assert.match(r.body, /^\{"ticket":"[^"]+","expires_in":\d+(,"stream_origin":"http:\/\/t:\d+")?\}$/);
  assertSecurityHeaders(headMap(r.head));
  // one that needs a body says so, as JSON
  const c = await rawHttp(`POST /api/rooms HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${u.token}\r\nConnection: close\r\n\r\n`);
  assert.equal(c.status, 400, c.head);
  assert.equal(JSON.parse(c.body).error, 'invalid_json');
  const out = await rawHttp(`POST /api/auth/logout HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${u.token}\r\nConnection: close\r\n\r\n`);
  assert.equal(out.status, 204, out.head);
  assertError(await call('GET', '/api/auth/me', { token: u.token }), 401, 'session_revoked');
});

// on the make cluster layout HAProxy is the front door, and answers an oversized head itself
test('the web server\'s own refusals are JSON with the security headers', { skip: (!LIGHTTPD && 'lighttpd only') || (process.env.REDIS_CLUSTER && 'lighttpd\'s own refusals; on the cluster layout HAProxy is in front') }, async () => {
  // over the front door's 2 MiB bound: refused before the API reads it
  const big = await rawHttp(`POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${8 * 1024 * 1024}\r\nConnection: close\r\n\r\n{"a":`);
  assert.equal(big.status, 413, big.head);
  assert.match(headMap(big.head)['content-type'], /^application\/json/);
  assert.equal(JSON.parse(big.body).error, 'payload_too_large');
  assertSecurityHeaders(headMap(big.head));
  // a head over lighttpd's bound
  const huge = await rawHttp(`GET /api/health HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(70000)}\r\nConnection: close\r\n\r\n`);
  assert.equal(huge.status, 431, huge.head);
  assert.equal(JSON.parse(huge.body).error, 'header_too_large');
  assertSecurityHeaders(headMap(huge.head));
  // a static path that is not there
  const missing = await call('GET', '/no-such-file.txt');
  assertError(missing, 404, 'not_found');
  // the API's own answers are left as they are
  const own = await call('GET', '/api/no/such/endpoint');
  assertError(own, 404, 'not_found');
  const health = await call('GET', '/api/health');
  assert.equal(health.status, 200);
  assert.equal(health.json.status, 'ok');
});

test('from the very beginning of a trimmed history: a resync first', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  for (let rev = 0; rev < 6; rev++) {
    const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision: rev, ops: rev ? [rev, 'x'] : ['x'] } });
    assert.equal(r.status, 200, r.text);
  }
  const poll = () => call('GET', `/events/rooms/${room.id}/poll?since=0`, { token: u.token });
  let p = await poll();
  assert.equal(p.status, 200, p.text);
  assert.ok(p.json.events.every((e) => e.type !== 'resync'), 'nothing lost yet');
  assert.equal(p.json.events.filter((e) => e.type === 'operation').length, 6);
  redis('XTRIM', `cc:room:{${room.id}}:events`, 'MAXLEN', '2');
  p = await poll();
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.events[0].type, 'resync');
  assert.deepEqual(p.json.events[0].data, { reason: 'history_trimmed' });
  assert.equal(p.json.events.length, 3, 'the resync, then what is left');
});

test('the web server\'s refusal handed to the API (REDIRECT_STATUS) is worded as JSON; a client cannot fake one', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  // as lighttpd's error handler hands them over: a GET of the original URI
  for (const [st, code] of [[400, 'invalid_request'], [404, 'not_found'], [413, 'payload_too_large'], [431, 'header_too_large'], [414, 'uri_too_long'], [503, 'api_unavailable'], [504, 'gateway_timeout'], [418, 'invalid_request'], [599, 'internal']]) {
    const r = cgi({ uri: '/api/auth/me', token: u.token, env: { REDIRECT_STATUS: String(st) } });
    assert.equal(r.status, st, r.body);
    assert.equal(r.json.error, code, r.body);
    assert.match(r.headers['x-frame-options'] || '', /DENY/);
  }
  assert.equal(cgi({ uri: `/events/rooms/${room.id}`, env: { REDIRECT_STATUS: '502' } }).json.error, 'broker_unavailable');
  // lighttpd's 500 for an API process that died with the request in flight: 502, try again
  const died = cgi({ uri: '/api/auth/me', token: u.token, env: { REDIRECT_STATUS: '500' } });
  assert.equal(died.status, 502, died.body);
  assert.equal(died.json.error, 'bad_gateway');
  assert.equal(died.headers['retry-after'], '1');
  // 411 is the POST without a length that lighttpd refused: served as the empty POST
  const t = cgi({ uri: `/api/rooms/${room.id}/stream-ticket`, token: u.token, env: { REDIRECT_STATUS: '411' } });
  assert.equal(t.status, 200, t.body);
  assert.equal(typeof t.json.ticket, 'string');
  // 2xx/3xx (an internal rewrite) and nonsense change nothing
  for (const v of ['200', '302', 'abc', '', '4000']) {
    const r = cgi({ uri: '/api/auth/me', token: u.token, env: { REDIRECT_STATUS: v } });
    assert.equal(r.status, 200, `${v}: ${r.body}`);
  }
  // a client's Redirect-Status header is only a header
  const me = await call('GET', '/api/auth/me', { token: u.token, headers: { 'Redirect-Status': '404' } });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.json.user.id, u.user.id);
});
