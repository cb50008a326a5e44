// An id in an API path that cannot be one (a dot, over 64 bytes, an escape) names no room
// or job (fcgi/route.c, route_match_malformed): it is answered as an unknown room, job,
// member or revision is, not as an unknown path; paths of no route's shape stay not_found.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, newUser, createRoom, rawHttp } from '../lib/api.mjs';

const LONG = 'a'.repeat(65);
const MALFORMED = ['not.an.id', LONG, '%zz', 'k3v9x0q2%61b', 'a~b', '%2e%2e%2e'];

// every route with a room id in its path, the method, and a body that makes sense for it
const ROOM_ROUTES = [
  ['GET', ''], ['PATCH', '', { name: 'x' }], ['DELETE', ''],
  ['POST', '/join', {}], ['GET', '/members'], ['PUT', '/members/2', { role: 'viewer' }],
  ['DELETE', '/members/2'], ['POST', '/invite'], ['DELETE', '/invite'],
  ['GET', '/document'], ['PUT', '/document', { content: 'x', base_revision: 0 }],
  ['POST', '/operations', { revision: 0, ops: ['x'] }],
  ['PUT', '/presence', { cursor: 0 }], ['GET', '/presence'], ['POST', '/stream-ticket'],
  ['GET', '/history'], ['GET', '/history/1'],
  ['POST', '/executions', { language: 'python', code: 'print(1)' }], ['GET', '/executions'],
  ['POST', '/ai/hint', {}], ['POST', '/ai/review', {}],
];

test('a malformed room id answers 404 room_not_found on every room path; unknown paths stay not_found', async () => {
  const a = await newUser('badroom');
  for (const id of MALFORMED) {
    for (const [method, rest, body] of ROOM_ROUTES) {
      const path = `/api/rooms/${id}${rest}`;
      const r = await call(method, path, { token: a.token, body });
      assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
      assert.equal(r.json?.error, 'room_not_found', `${method} ${path}: ${r.text}`);
    }
  }
  // the exact target, as sent (no client library in between)
  const raw = await rawHttp(`GET /api/rooms/${LONG}/document HTTP/1.1\r\nHost: x\r\n` +
    `Authorization: Bearer ${a.token}\r\nConnection: close\r\n\r\n`);
  assert.equal(raw.status, 404, raw.head);
  assert.equal(JSON.parse(raw.body).error, 'room_not_found');
  // paths that no route has stay 404 not_found
  const room = await createRoom(a.token);
  for (const path of ['/api/rooms/a.b/nothing', `/api/rooms/${room.id}/nothing`, '/api/rooms//document',
    '/api/nothing', '/api/jobs/a.b/x', '/api/room/a.b', '/api/rooms/a.b/document/x']) {
    const r = await call('GET', path, { token: a.token });
    assert.equal(r.status, 404, `${path}: ${r.text}`);
    assert.equal(r.json.error, 'not_found', `${path}: ${r.text}`);
  }
});

test('a malformed job id answers 404 job_not_found', async () => {
  const a = await newUser('badjob');
  for (const id of MALFORMED) {
    for (const method of ['GET', 'DELETE']) {
      const r = await call(method, `/api/jobs/${id}`, { token: a.token });
      assert.equal(r.status, 404, `${method} ${id}: ${r.text}`);
      assert.equal(r.json.error, 'job_not_found', `${method} ${id}: ${r.text}`);
    }
  }
});

test('a malformed id is answered as an unknown one: 401 without a session, 405 for another method', async () => {
  const a = await newUser('badsame');
  for (const [path, known] of [['/api/rooms/not.an.id/document', '/api/rooms/zzzzzzzzzz/document'],
    ['/api/rooms/a.b', '/api/rooms/zzzzzzzzzz'], ['/api/jobs/a.b', '/api/jobs/zzzzzzzzzzzzzzzz']]) {
    const anon = await call('GET', path);
    assert.equal(anon.status, 401, anon.text);
    assert.equal(anon.json.error, 'unauthorized');
    const r = await call('POST', path, { token: a.token, body: {} });
    const k = await call('POST', known, { token: a.token, body: {} });
    assert.equal(r.status, 405, r.text);
    assert.equal(r.json.error, 'method_not_allowed');
    assert.equal(r.headers.get('allow'), k.headers.get('allow'), path);
  }
});

test('a malformed member id or revision in a real room: member_not_found, snapshot_not_found', async () => {
  const a = await newUser('badsub');
  const room = await createRoom(a.token);
  const m = await call('DELETE', `/api/rooms/${room.id}/members/a.b`, { token: a.token });
  assert.equal(m.status, 404, m.text);
  assert.equal(m.json.error, 'member_not_found');
  const h = await call('GET', `/api/rooms/${room.id}/history/1.5`, { token: a.token });
  assert.equal(h.status, 404, h.text);
  assert.equal(h.json.error, 'snapshot_not_found');
});
