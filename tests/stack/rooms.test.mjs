// Rooms and members against the real stack: every endpoint's success path, who may do what,
// the invite code staying with the owner, verbatim storage of hostile names, validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEAD_REDIS, call, cgi, cgiAsync, newUser, createRoom, roomEvents, redis, sql, uniqueName } from '../lib/api.mjs';

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
  assert.equal(typeof r.json?.error, 'string', r.text);
  assert.equal(typeof r.json.message, 'string');
  if (code) assert.equal(r.json.error, code, r.text);
}

function assertInvalid(r, field) {
  assertError(r, 400);
  assert.match(r.json.message, new RegExp(`\\b${field}\\b`), `message should name ${field}: ${r.text}`);
}

// docs/API.md's {room}: {id, name, language, visibility, owner:{id, username}, revision,
// created_at}, plus invite exactly when the caller owns it.
function assertRoom(room, { owner, name, language, visibility, invite }) {
  assert.equal(typeof room.id, 'string');
  assert.match(room.id, /^[A-Za-z0-9_-]{1,64}$/);
  assert.equal(typeof room.name, 'string');
  if (name !== undefined) assert.equal(room.name, name);
  if (language !== undefined) assert.equal(room.language, language);
  if (visibility !== undefined) assert.equal(room.visibility, visibility);
  assert.ok(['private', 'public'].includes(room.visibility));
  assert.deepEqual(room.owner, { id: owner.user.id, username: owner.username });
  assert.ok(Number.isInteger(room.revision) && room.revision >= 0, `revision ${room.revision}`);
  assert.match(room.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$/);
  assert.ok(Math.abs(Date.parse(room.created_at) - Date.now()) < 10 * 60 * 1000, room.created_at);
  if (invite) {
    assert.equal(typeof room.invite, 'string');
    assert.ok(room.invite.length >= 8, 'an invite code long enough not to be guessed');
  } else {
    assert.ok(!('invite' in room), `no invite for a non-owner: ${JSON.stringify(room)}`);
  }
}

const member = (u, role) => ({ user: { id: u.user.id, username: u.username }, role });

// Every endpoint of one room, as [method, path, body], the member ones about `who`.
const endpointsOf = (room, who) => [
  ['GET', `/api/rooms/${room.id}`],
  ['PATCH', `/api/rooms/${room.id}`, { name: 'x' }],
  ['DELETE', `/api/rooms/${room.id}`],
  ['POST', `/api/rooms/${room.id}/join`, {}],
  ['GET', `/api/rooms/${room.id}/members`],
  ['PUT', `/api/rooms/${room.id}/members/${who.user.id}`, { role: 'viewer' }],
  ['DELETE', `/api/rooms/${room.id}/members/${who.user.id}`],
];

test('POST /api/rooms creates a room (201 {room}, Location) whose caller is its owner', async () => {
  const owner = await newUser();
  const name = uniqueName('Room ');
  const r = await call('POST', '/api/rooms', { token: owner.token, body: { name, language: 'c' } });
  assert.equal(r.status, 201, r.text);
  assertRoom(r.json.room, { owner, name, language: 'c', visibility: 'private', invite: true });
  assert.equal(r.json.room.revision, 0);
  assert.equal(r.headers.get('location'), `/api/rooms/${r.json.room.id}`);
  assert.equal(sql(`SELECT role FROM room_members WHERE room_id = '${r.json.room.id}' AND user_id = ${owner.user.id}`), 'owner');
  // public on request; two rooms never share an id or an invite code
  const pub = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'open', language: 'python', visibility: 'public' } });
  assert.equal(pub.status, 201, pub.text);
  assertRoom(pub.json.room, { owner, visibility: 'public', invite: true });
  assert.notEqual(pub.json.room.id, r.json.room.id);
  assert.notEqual(pub.json.room.invite, r.json.room.invite);
});

test('ROOMS_PER_USER_MAX: the create past it is 409 user_rooms_full, rooms joined do not count, a deleted room frees a place', async () => {
  const max = 3;
  const env = { ROOMS_PER_USER_MAX: String(max) };
  const create = (u, name) => cgi({ method: 'POST', uri: '/api/rooms', token: u.token, body: { name }, env });
  const a = await newUser();
  // a room of someone else that a joined: membership is not ownership
  const other = await newUser();
  const theirs = await createRoom(other.token, { visibility: 'public' });
  assert.equal((await call('POST', `/api/rooms/${theirs.id}/join`, { token: a.token, body: {} })).status, 200);
  const made = [];
  for (let i = 0; i < max; i++) {
    const r = create(a, `mine ${i}`);
    assert.equal(r.status, 201, r.body);
    made.push(r.json.room.id);
  }
  const over = create(a, 'one too many');
  assert.equal(over.status, 409, over.body);
  assert.equal(over.json.error, 'user_rooms_full');
  assert.match(over.json.message, new RegExp(`\\b${max}\\b`), 'the message names the limit');
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE owner_id = ${a.user.id}`), String(max));
  // someone else is not held back by a's rooms
  assert.equal(create(other, 'theirs too').status, 201);
  // a deleted room frees its place
  assert.equal((await call('DELETE', `/api/rooms/${made[0]}`, { token: a.token })).status, 204);
  const again = create(a, 'in its place');
  assert.equal(again.status, 201, again.body);
  assert.equal(create(a, 'still too many').status, 409);
});

test('creates at the same moment never pass ROOMS_PER_USER_MAX', async () => {
  const max = 2;
  const a = await newUser();
  const answers = await Promise.all(Array.from({ length: 6 }, (_, i) =>
    cgiAsync({ method: 'POST', uri: '/api/rooms', token: a.token, body: { name: `race ${i}` }, env: { ROOMS_PER_USER_MAX: String(max) } })));
  const codes = answers.map((r) => r.status).sort();
  assert.deepEqual(codes, [201, 201, 409, 409, 409, 409], answers.map((r) => r.body).join('\n'));
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE owner_id = ${a.user.id}`), String(max));
});

test('GET /api/rooms lists the caller\'s rooms, and only theirs', async () => {
  const a = await newUser();
  const b = await newUser();
  const r1 = await createRoom(a.token, { name: 'first' });
  const r2 = await createRoom(a.token, { name: 'second', visibility: 'public' });
  const rb = await createRoom(b.token, { name: 'theirs' });
  const la = await call('GET', '/api/rooms', { token: a.token });
  assert.equal(la.status, 200, la.text);
  assert.ok(Array.isArray(la.json.rooms));
  assert.deepEqual(la.json.rooms.map((x) => x.id).sort(), [r1.id, r2.id].sort());
  for (const room of la.json.rooms) assertRoom(room, { owner: a, invite: true });
  assert.equal(la.json.rooms.find((x) => x.id === r1.id).invite, r1.invite);
  const lb = await call('GET', '/api/rooms', { token: b.token });
  assert.deepEqual(lb.json.rooms.map((x) => x.id), [rb.id]);
  const c = await newUser();
  const lc = await call('GET', '/api/rooms', { token: c.token });
  assert.equal(lc.status, 200);
  assert.deepEqual(lc.json, { rooms: [], next: null });
});

test('every list refuses a query parameter given twice with 400, rather than taking one of them', async () => {
  const a = await newUser();
  const room = await createRoom(a.token, { name: 'paged' });
  await createRoom(a.token, { name: 'paged too' });
  const lists = ['/api/rooms', `/api/rooms/${room.id}/history`, `/api/rooms/${room.id}/members`,
    `/api/rooms/${room.id}/executions`];
  for (const path of lists) {
    const once = await call('GET', `${path}?limit=1`, { token: a.token });
    assert.equal(once.status, 200, `${path}?limit=1: ${once.text}`);
    for (const q of ['limit=1&limit=2', 'limit=2&limit=2', 'limit=1&x=y&limit=1', 'limit&limit=1']) {
      assertError(await call('GET', `${path}?${q}`, { token: a.token }), 400, 'invalid_request');
    }
  }
  // the cursors too: a first page's next given twice is refused like limit
  const first = await call('GET', '/api/rooms?limit=1', { token: a.token });
  assert.equal(typeof first.json.next, 'string', first.text);
  const twice = await call('GET', `/api/rooms?before=${first.json.next}&before=${first.json.next}`, { token: a.token });
  assertError(twice, 400, 'invalid_request');
  assert.match(twice.json.message, /\bbefore\b/);
  const next = await call('GET', `/api/rooms?limit=1&before=${first.json.next}`, { token: a.token });
  assert.equal(next.status, 200, next.text);
  assert.equal(next.json.rooms.length, 1);
  assertError(await call('GET', `/api/rooms/${room.id}/history?before=5&before=5`, { token: a.token }), 400, 'invalid_request');
});

test('GET /api/rooms/{id} answers {room, members:[{user, role}], role}', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token, { name: 'get me', language: 'javascript' });
  const r = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(r.status, 200, r.text);
  assertRoom(r.json.room, { owner, name: 'get me', language: 'javascript', invite: true });
  assert.equal(r.json.room.invite, room.invite);
  assert.equal(r.json.role, 'owner');
  assert.deepEqual(r.json.members, [member(owner, 'owner')]);
  const missing = await call('GET', '/api/rooms/nosuchroom', { token: owner.token });
  assertError(missing, 404);
});

test('PATCH /api/rooms/{id} lets the owner change name, language and visibility', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token, { name: 'before', language: 'python' });
  let r = await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { name: 'after' } });
  assert.equal(r.status, 200, r.text);
  assertRoom(r.json.room, { owner, name: 'after', language: 'python', visibility: 'private', invite: true });
  r = await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { language: 'rust', visibility: 'public' } });
  assert.equal(r.status, 200, r.text);
  assertRoom(r.json.room, { owner, name: 'after', language: 'rust', visibility: 'public', invite: true });
  assert.equal(r.json.room.id, room.id);
  assert.equal(r.json.room.created_at, room.created_at);
  assert.equal(r.json.room.invite, room.invite);
  // nothing to change is no change
  r = await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: {} });
  assert.equal(r.status, 200, r.text);
  assertRoom(r.json.room, { owner, name: 'after', language: 'rust', visibility: 'public', invite: true });
  const got = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
  assertRoom(got.json.room, { owner, name: 'after', language: 'rust', visibility: 'public', invite: true });
  assert.equal(sql(`SELECT name || '|' || language || '|' || visibility FROM rooms WHERE id = '${room.id}'`), 'after|rust|public');
  const missing = await call('PATCH', '/api/rooms/nosuchroom', { token: owner.token, body: { name: 'x' } });
  assertError(missing, 404);
});

test('DELETE /api/rooms/{id}: 204, then the room is gone everywhere (404)', async () => {
  const owner = await newUser();
  const guest = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: guest.token })).status, 200);
  const r = await call('DELETE', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(r.status, 204, r.text);
  assert.equal(r.text, '');
  for (const [method, path, body] of endpointsOf(room, guest)) {
    const x = await call(method, path, { token: owner.token, body });
    assertError(x, 404);
  }
  const list = await call('GET', '/api/rooms', { token: guest.token });
  assert.ok(!list.json.rooms.some((x) => x.id === room.id));
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE id = '${room.id}'`), '0');
  assert.equal(sql(`SELECT count(*) FROM room_members WHERE room_id = '${room.id}'`), '0');
});

test('join: a public room without invite, a private one with the right invite, idempotently', async () => {
  const owner = await newUser();
  const guest = await newUser();
  const pub = await createRoom(owner.token, { visibility: 'public' });
  let r = await call('POST', `/api/rooms/${pub.id}/join`, { token: guest.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.role, 'editor');
  assertRoom(r.json.room, { owner, invite: false });
  assert.equal(r.json.room.id, pub.id);
  r = await call('POST', `/api/rooms/${pub.id}/join`, { token: guest.token, body: {} });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.role, 'editor');

  const priv = await createRoom(owner.token);
  const wrong = await call('POST', `/api/rooms/${priv.id}/join`, { token: guest.token, body: { invite: priv.invite.slice(0, -1) + (priv.invite.endsWith('A') ? 'B' : 'A') } });
  assertError(wrong, 403);
  for (const body of [undefined, {}, { invite: '' }, { invite: priv.invite.toLowerCase() === priv.invite ? priv.invite.toUpperCase() : priv.invite.toLowerCase() }, { invite: priv.invite + 'x' }, { invite: pub.invite }]) {
    const x = await call('POST', `/api/rooms/${priv.id}/join`, { token: guest.token, body });
    assertError(x, 403);
  }
  assertError(await call('GET', `/api/rooms/${priv.id}`, { token: guest.token }), 403);
  r = await call('POST', `/api/rooms/${priv.id}/join`, { token: guest.token, body: { invite: priv.invite } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.role, 'editor');
  assertRoom(r.json.room, { owner, invite: false });
  // twice: the same answer, one membership
  const again = await call('POST', `/api/rooms/${priv.id}/join`, { token: guest.token, body: { invite: priv.invite } });
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(again.json, r.json);
  const got = await call('GET', `/api/rooms/${priv.id}`, { token: guest.token });
  assert.equal(got.status, 200, got.text);
  assert.equal(got.json.role, 'editor');
  assert.deepEqual(got.json.members, [member(owner, 'owner'), member(guest, 'editor')]);
  // a member whose role the owner lowered keeps it when joining again
  await call('PUT', `/api/rooms/${priv.id}/members/${guest.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  const rejoin = await call('POST', `/api/rooms/${priv.id}/join`, { token: guest.token, body: { invite: priv.invite } });
  assert.equal(rejoin.json.role, 'viewer');
  // the owner joining their own room stays owner
  const own = await call('POST', `/api/rooms/${priv.id}/join`, { token: owner.token });
  assert.equal(own.status, 200, own.text);
  assert.equal(own.json.role, 'owner');
  assertError(await call('POST', '/api/rooms/nosuchroom/join', { token: guest.token }), 404);
});

test('a member the owner made viewer stays viewer after leaving and joining again', async () => {
  const owner = await newUser();
  const edit = (u, room) => call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision: 0, ops: ['x'] } });
  const pub = await createRoom(owner.token, { visibility: 'public' });
  const priv = await createRoom(owner.token);
  for (const [room, body] of [[pub, undefined], [priv, { invite: priv.invite }]]) {
    const u = await newUser();
    let r = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.role, 'editor');
    r = await call('PUT', `/api/rooms/${room.id}/members/${u.user.id}`, { token: owner.token, body: { role: 'viewer' } });
    assert.equal(r.status, 200, r.text);
    assertError(await edit(u, room), 403);
    r = await call('DELETE', `/api/rooms/${room.id}/members/${u.user.id}`, { token: u.token });
    assert.equal(r.status, 204, r.text);
    r = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.role, 'viewer', `${room.visibility} room`);
    assertError(await edit(u, room), 403);
    assert.equal(redis('HGET', `cc:room:{${room.id}}:members`, String(u.user.id)), 'viewer');
    const got = await call('GET', `/api/rooms/${room.id}`, { token: u.token });
    assert.equal(got.json.role, 'viewer');
    assert.deepEqual(got.json.members, [member(owner, 'owner'), member(u, 'viewer')]);
    // raised back to editor before leaving: joining again makes them editor, as before
    r = await call('PUT', `/api/rooms/${room.id}/members/${u.user.id}`, { token: owner.token, body: { role: 'editor' } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await call('DELETE', `/api/rooms/${room.id}/members/${u.user.id}`, { token: u.token })).status, 204);
    r = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.role, 'editor');
    assert.equal((await edit(u, room)).status, 200);
  }
  // the owner's removal of a viewer, then a new code: the rules of a removal (editor again)
  const v = await newUser();
  assert.equal((await call('POST', `/api/rooms/${priv.id}/join`, { token: v.token, body: { invite: priv.invite } })).status, 200);
  await call('PUT', `/api/rooms/${priv.id}/members/${v.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal((await call('DELETE', `/api/rooms/${priv.id}/members/${v.user.id}`, { token: owner.token })).status, 204);
  const code = await call('POST', `/api/rooms/${priv.id}/invite`, { token: owner.token });
  assert.equal(code.status, 200, code.text);
  const back = await call('POST', `/api/rooms/${priv.id}/join`, { token: v.token, body: { invite: code.json.room.invite } });
  assert.equal(back.status, 200, back.text);
  assert.equal(back.json.role, 'editor');
  assert.equal(sql(`SELECT count(*) FROM room_departures WHERE room_id IN ('${pub.id}', '${priv.id}')`), '0');
});

test('joins racing the room\'s deletion answer 200 or 404, never 500', async () => {
  const owner = await newUser();
  const users = await Promise.all(Array.from({ length: 12 }, () => newUser()));
  const seen = {};
  for (let round = 0; round < 15; round++) {
    const room = await createRoom(owner.token, { visibility: 'public' });
    const joins = users.map((u, i) => new Promise((ok) => setTimeout(ok, i))
      .then(() => call('POST', `/api/rooms/${room.id}/join`, { token: u.token })));
    const del = call('DELETE', `/api/rooms/${room.id}`, { token: owner.token });
    const [d, ...rs] = await Promise.all([del, ...joins]);
    assert.equal(d.status, 204, d.text);
    for (const r of rs) {
      seen[r.status] = (seen[r.status] || 0) + 1;
      assert.ok(r.status === 200 || r.status === 404, `join during delete: ${r.status} ${r.text}`);
    }
    assert.equal(sql(`SELECT count(*) FROM room_members WHERE room_id = '${room.id}'`), '0');
  }
  assert.ok(seen[404] > 0, JSON.stringify(seen));
});

test('members: list, owner sets editor/viewer, owner removes, member leaves, owner cannot leave', async () => {
  const owner = await newUser();
  const ed = await newUser();
  const vw = await newUser();
  const room = await createRoom(owner.token);
  for (const u of [ed, vw]) {
    const j = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite: room.invite } });
    assert.equal(j.status, 200, j.text);
  }
  let r = await call('GET', `/api/rooms/${room.id}/members`, { token: ed.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { members: [member(owner, 'owner'), member(ed, 'editor'), member(vw, 'editor')] });

  r = await call('PUT', `/api/rooms/${room.id}/members/${vw.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.members, [member(owner, 'owner'), member(ed, 'editor'), member(vw, 'viewer')]);
  assert.equal((await call('GET', `/api/rooms/${room.id}`, { token: vw.token })).json.role, 'viewer');
  r = await call('PUT', `/api/rooms/${room.id}/members/${vw.user.id}`, { token: owner.token, body: { role: 'editor' } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await call('GET', `/api/rooms/${room.id}`, { token: vw.token })).json.role, 'editor');
  r = await call('PUT', `/api/rooms/${room.id}/members/${vw.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal(sql(`SELECT role FROM room_members WHERE room_id = '${room.id}' AND user_id = ${vw.user.id}`), 'viewer');

  // no one becomes owner, the owner's role does not change, strangers have no role to set
  assertInvalid(await call('PUT', `/api/rooms/${room.id}/members/${ed.user.id}`, { token: owner.token, body: { role: 'owner' } }), 'role');
  assertInvalid(await call('PUT', `/api/rooms/${room.id}/members/${ed.user.id}`, { token: owner.token, body: { role: 'admin' } }), 'role');
  assertInvalid(await call('PUT', `/api/rooms/${room.id}/members/${ed.user.id}`, { token: owner.token, body: {} }), 'role');
  assertError(await call('PUT', `/api/rooms/${room.id}/members/${owner.user.id}`, { token: owner.token, body: { role: 'viewer' } }), 400);
  const stranger = await newUser();
  for (const id of [stranger.user.id, 0, -1, 'abc', '99999999999999999999', '9223372036854775808']) {
    const x = await call('PUT', `/api/rooms/${room.id}/members/${id}`, { token: owner.token, body: { role: 'viewer' } });
    assertError(x, 404);
    const y = await call('DELETE', `/api/rooms/${room.id}/members/${id}`, { token: owner.token });
    assertError(y, 404);
  }

  // the owner removes the viewer: they lose the private room
  r = await call('DELETE', `/api/rooms/${room.id}/members/${vw.user.id}`, { token: owner.token });
  assert.equal(r.status, 204, r.text);
  assertError(await call('GET', `/api/rooms/${room.id}`, { token: vw.token }), 403);
  assert.ok(!(await call('GET', `/api/rooms`, { token: vw.token })).json.rooms.some((x) => x.id === room.id));
  // the editor leaves by themself
  r = await call('DELETE', `/api/rooms/${room.id}/members/${ed.user.id}`, { token: ed.token });
  assert.equal(r.status, 204, r.text);
  assertError(await call('GET', `/api/rooms/${room.id}`, { token: ed.token }), 403);
  // the owner cannot leave: the room would have no owner
  r = await call('DELETE', `/api/rooms/${room.id}/members/${owner.user.id}`, { token: owner.token });
  assertError(r, 400);
  const left = await call('GET', `/api/rooms/${room.id}/members`, { token: owner.token });
  assert.deepEqual(left.json.members, [member(owner, 'owner')]);
});

test('a member removed or made viewer while reading the room cannot edit afterwards', async () => {
  // the document endpoints trust the member cache in Redis, which GET refreshes: a GET in
  // flight while the owner acts must not put back the old role
  const owner = await newUser();
  const room = await createRoom(owner.token);
  const stale = [];
  for (let round = 0; round < 12; round++) {
    const m = await newUser();
    const j = await call('POST', `/api/rooms/${room.id}/join`, { token: m.token, body: { invite: room.invite } });
    assert.equal(j.status, 200, j.text);
    const remove = round % 2 === 0;
    const gets = Array.from({ length: 8 }, (_, i) => new Promise((ok) => setTimeout(ok, i))
      .then(() => call('GET', `/api/rooms/${room.id}`, { token: m.token })));
    const act = remove
      ? call('DELETE', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token })
      : call('PUT', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token, body: { role: 'viewer' } });
    const [a] = await Promise.all([act, ...gets]);
    assert.equal(a.status, remove ? 204 : 200, a.text);
    const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: m.token, body: { revision: 0, ops: ['x'] } });
    const cached = redis('HGET', `cc:room:{${room.id}}:members`, String(m.user.id));
    if (op.status !== 403 || cached !== (remove ? '' : 'viewer')) stale.push(`${remove ? 'removed' : 'viewer'}: edit ${op.status}, cache "${cached}"`);
  }
  assert.deepEqual(stale, []);
});

test('removing a member again clears a member cache entry the first removal left behind', async () => {
  // the removal could not reach Redis (down at the time): the cache still names the member,
  // and the document endpoints trust it; the owner's retry (404) must clear it
  const owner = await newUser();
  const m = await newUser();
  const room = await createRoom(owner.token);
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: m.token, body: { invite: room.invite } });
  assert.equal(j.status, 200, j.text);
  let r = await call('DELETE', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token });
  assert.equal(r.status, 204, r.text);
  redis('HSET', `cc:room:{${room.id}}:members`, String(m.user.id), 'editor'); // the lost HDEL
  r = await call('DELETE', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token });
  assertError(r, 404, 'member_not_found');
  assert.equal(redis('HGET', `cc:room:{${room.id}}:members`, String(m.user.id)), '');
  const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: m.token, body: { revision: 0, ops: ['x'] } });
  assertError(op, 403, 'not_a_member');
});

test('strangers, viewers and editors are refused owner actions with 403', async () => {
  const owner = await newUser();
  const ed = await newUser();
  const vw = await newUser();
  const stranger = await newUser();
  for (const visibility of ['private', 'public']) {
    const room = await createRoom(owner.token, { name: 'guarded', visibility });
    for (const u of [ed, vw]) await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite: room.invite } });
    await call('PUT', `/api/rooms/${room.id}/members/${vw.user.id}`, { token: owner.token, body: { role: 'viewer' } });
    for (const [who, u] of [['stranger', stranger], ['viewer', vw], ['editor', ed]]) {
      const what = `${who} in a ${visibility} room`;
      let x = await call('PATCH', `/api/rooms/${room.id}`, { token: u.token, body: { name: 'taken over', visibility: 'public' } });
      assert.equal(x.status, 403, `${what} PATCH: ${x.text}`);
      assertError(x, 403);
      x = await call('DELETE', `/api/rooms/${room.id}`, { token: u.token });
      assert.equal(x.status, 403, `${what} DELETE: ${x.text}`);
      const target = u === ed ? vw : ed;
      x = await call('PUT', `/api/rooms/${room.id}/members/${target.user.id}`, { token: u.token, body: { role: 'editor' } });
      assert.equal(x.status, 403, `${what} PUT member: ${x.text}`);
      x = await call('PUT', `/api/rooms/${room.id}/members/${u.user.id}`, { token: u.token, body: { role: 'editor' } });
      assert.equal(x.status, 403, `${what} PUT self: ${x.text}`);
      x = await call('DELETE', `/api/rooms/${room.id}/members/${target.user.id}`, { token: u.token });
      assert.equal(x.status, 403, `${what} DELETE member: ${x.text}`);
      x = await call('DELETE', `/api/rooms/${room.id}/members/${owner.user.id}`, { token: u.token });
      assert.equal(x.status, 403, `${what} DELETE owner: ${x.text}`);
    }
    // nothing changed
    const got = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
    assertRoom(got.json.room, { owner, name: 'guarded', visibility, invite: true });
    assert.deepEqual(got.json.members, [member(owner, 'owner'), member(ed, 'editor'), member(vw, 'viewer')]);
  }
});

test('a private room is closed to strangers; a public one readable with role null and no invite', async () => {
  const owner = await newUser();
  const stranger = await newUser();
  const priv = await createRoom(owner.token);
  assertError(await call('GET', `/api/rooms/${priv.id}`, { token: stranger.token }), 403);
  assertError(await call('GET', `/api/rooms/${priv.id}/members`, { token: stranger.token }), 403);
  const r403 = await call('GET', `/api/rooms/${priv.id}`, { token: stranger.token });
  assert.ok(!r403.text.includes(priv.invite));
  const pub = await createRoom(owner.token, { name: 'show me', visibility: 'public' });
  const r = await call('GET', `/api/rooms/${pub.id}`, { token: stranger.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.role, null);
  assertRoom(r.json.room, { owner, name: 'show me', visibility: 'public', invite: false });
  assert.ok(!r.text.includes(pub.invite));
  assert.deepEqual(r.json.members, [member(owner, 'owner')]);
  const m = await call('GET', `/api/rooms/${pub.id}/members`, { token: stranger.token });
  assert.equal(m.status, 200, m.text);
  assert.deepEqual(m.json.members, [member(owner, 'owner')]);
  // reading is not joining
  assert.ok(!(await call('GET', '/api/rooms', { token: stranger.token })).json.rooms.some((x) => x.id === pub.id));
  // a room made private again closes
  await call('PATCH', `/api/rooms/${pub.id}`, { token: owner.token, body: { visibility: 'private' } });
  assertError(await call('GET', `/api/rooms/${pub.id}`, { token: stranger.token }), 403);
});

test('the invite code never reaches a non-owner: GET, list, join, and the room event after PATCH', async () => {
  const owner = await newUser();
  const ed = await newUser();
  const vw = await newUser();
  const room = await createRoom(owner.token, { name: 'secret keeper' });
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: ed.token, body: { invite: room.invite } });
  assert.ok(!j.text.includes(room.invite), j.text);
  await call('POST', `/api/rooms/${room.id}/join`, { token: vw.token, body: { invite: room.invite } });
  const put = await call('PUT', `/api/rooms/${room.id}/members/${vw.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.ok(!put.text.includes(room.invite));
  for (const u of [ed, vw]) {
    const g = await call('GET', `/api/rooms/${room.id}`, { token: u.token });
    assert.equal(g.status, 200, g.text);
    assertRoom(g.json.room, { owner, invite: false });
    assert.ok(!g.text.includes(room.invite));
    const l = await call('GET', '/api/rooms', { token: u.token });
    const mine = l.json.rooms.find((x) => x.id === room.id);
    assertRoom(mine, { owner, invite: false });
    assert.equal(mine.role, u === ed ? 'editor' : 'viewer');
    assert.ok(!l.text.includes(room.invite));
    const m = await call('GET', `/api/rooms/${room.id}/members`, { token: u.token });
    assert.ok(!m.text.includes(room.invite));
  }
  const p = await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { name: 'renamed keeper', language: 'go' } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.room.invite, room.invite);
  const events = roomEvents(room.id);
  const ev = events.filter((e) => e.type === 'room' && e.data.room).at(-1);
  assert.ok(ev, `a room event after PATCH: ${JSON.stringify(events)}`);
  assert.equal(ev.data.room.name, 'renamed keeper');
  assert.equal(ev.data.room.language, 'go');
  assert.equal(ev.data.room.id, room.id);
  assert.ok(!('invite' in ev.data.room));
  for (const e of events) assert.ok(!e.raw.includes(room.invite), `event ${e.type} carries the invite: ${e.raw}`);
});

test('SQL-shaped and unicode names are stored and read back verbatim', async () => {
  const owner = await newUser();
  const names = [
    "'); DROP TABLE users; --",
    '" OR 1=1 --',
    "Robert'); DROP TABLE rooms;--",
    "\\'; SELECT pg_sleep(10); --",
    '$1 $2 %s %n %x %%',
    '<script>alert("x")</script>',
    '🚀 rocket 👩‍💻 team',
    'مرحبا بالعالم',
    'שלום \u202eevil\u202c',
    '漢字 かな カナ 한국어',
    'e\u0301 café ñ',
    '\\u0000 not a nul',
    '  spaces around  ',
    '🎉'.repeat(100),
  ];
  assert.equal(sql('SELECT count(*) > 0 FROM users'), 't');
  for (const name of names) {
    const c = await call('POST', '/api/rooms', { token: owner.token, body: { name, language: 'python' } });
    assert.equal(c.status, 201, `${name}: ${c.text}`);
    assert.equal(c.json.room.name, name);
    const id = c.json.room.id;
    const g = await call('GET', `/api/rooms/${id}`, { token: owner.token });
    assert.equal(g.json.room.name, name);
    const hex = sql(`SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM rooms WHERE id = '${id}'`);
    assert.equal(hex, Buffer.from(name, 'utf8').toString('hex'), `stored bytes of ${name}`);
    // and through PATCH
    const renamed = `${name}!`;
    const p = await call('PATCH', `/api/rooms/${id}`, { token: owner.token, body: { name: renamed } });
    if (name.length < 100) {
      assert.equal(p.status, 200, p.text);
      assert.equal(p.json.room.name, renamed);
      assert.equal(sql(`SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM rooms WHERE id = '${id}'`), Buffer.from(renamed).toString('hex'));
    } else {
      assertInvalid(p, 'name'); // 101 code points
    }
  }
  const list = await call('GET', '/api/rooms', { token: owner.token });
  assert.equal(list.json.rooms.length, names.length);
  // the tables are all still there
  assert.equal(sql("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('users', 'rooms', 'room_members')"), '3');
  assert.equal(sql('SELECT count(*) > 0 FROM users'), 't');
});

// docs/API.md "Bodies": a field given as null is a field left out, on every endpoint: an
// optional one takes its default (PATCH leaves it as it is), a required one is missing.
test('a null field is a field left out: the default, the value kept, or "is required"', async () => {
  const owner = await newUser();
  const made = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'nulls', language: null, visibility: null } });
  assert.equal(made.status, 201, made.text);
  assert.equal(made.json.room.language, 'python');
  assert.equal(made.json.room.visibility, 'private');
  const id = made.json.room.id;
  const patched = await call('PATCH', `/api/rooms/${id}`, { token: owner.token, body: { name: null, language: null, visibility: 'public' } });
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.json.room.name, 'nulls');
  assert.equal(patched.json.room.language, 'python');
  assert.equal(patched.json.room.visibility, 'public');
  const noName = await call('POST', '/api/rooms', { token: owner.token, body: { name: null } });
  assertInvalid(noName, 'name');
  assert.match(noName.json.message, /name is required/);
  const noUser = await call('POST', '/api/auth/register', { body: { username: null, password: 'null-field-pw' } });
  assertInvalid(noUser, 'username');
  assert.match(noUser.json.message, /username is required/);
  const presence = await call('PUT', `/api/rooms/${id}/presence`, { token: owner.token, body: { cursor: 0, selection: null } });
  assert.equal(presence.status, 204, presence.text);
});

test('room fields are validated: 400 naming the field', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token);
  const cases = [
    [{ language: 'python' }, 'name'],
    [{ name: '', language: 'python' }, 'name'],
    [{ name: null, language: 'python' }, 'name'],
    [{ name: 'two\nlines', language: 'python' }, 'name'],
    [{ name: 'carriage\rreturn', language: 'python' }, 'name'],
    [{ name: 'tab\there', language: 'python' }, 'name'],
    [{ name: 'bell\u0007', language: 'python' }, 'name'],
    [{ name: 'x'.repeat(101), language: 'python' }, 'name'],
    [{ name: '🎉'.repeat(101), language: 'python' }, 'name'],
    [{ name: 42, language: 'python' }, 'name'],
    [{ name: ['a'], language: 'python' }, 'name'],
    [{ name: 'ok', language: 'cobol' }, 'language'],
    [{ name: 'ok', language: '' }, 'language'],
    [{ name: 'ok', language: 3 }, 'language'],
    [{ name: 'ok', language: 'python\n' }, 'language'],
    [{ name: 'ok', language: 'python', visibility: 'secret' }, 'visibility'],
    [{ name: 'ok', language: 'python', visibility: 'PUBLIC' }, 'visibility'],
    [{ name: 'ok', language: 'python', visibility: true }, 'visibility'],
  ];
  const before = sql(`SELECT count(*) FROM rooms WHERE owner_id = ${owner.user.id}`);
  for (const [body, field] of cases) {
    assertInvalid(await call('POST', '/api/rooms', { token: owner.token, body }), field);
    // PATCH checks the same field the same way (null there means "leave as is")
    if (body[field] !== undefined && body[field] !== null) {
      assertInvalid(await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { [field]: body[field] } }), field);
    }
  }
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE owner_id = ${owner.user.id}`), before);
  // the limit itself passes: 100 characters
  const hundred = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'x'.repeat(100), language: 'c' } });
  assert.equal(hundred.status, 201, hundred.text);
  const got = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(got.json.room.name, room.name, 'refused PATCHes changed nothing');
});

test('a room name is one line: C1 controls and the Unicode line separators are refused like \\n', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token);
  const newline = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'two\nlines', language: 'python' } });
  assertInvalid(newline, 'name');
  const before = sql(`SELECT count(*) FROM rooms WHERE owner_id = ${owner.user.id}`);
  for (const name of ['next\u0085line', '\u0080', 'end\u009f', 'line\u2028separator', 'paragraph\u2029']) {
    for (const r of [
      await call('POST', '/api/rooms', { token: owner.token, body: { name, language: 'python' } }),
      await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { name } }),
    ]) {
      assertInvalid(r, 'name');
      assert.equal(r.json.error, newline.json.error, `${JSON.stringify(name)}: ${r.text}`);
      assert.equal(r.json.message, newline.json.message);
    }
  }
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE owner_id = ${owner.user.id}`), before);
  const got = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(got.json.room.name, room.name, 'the refused PATCHes changed nothing');
  // what is next to them is text: a no-break space, ©, and bidi controls left open
  for (const name of ['no\u00a0break', '\u00a9 2024', 'a\u202e', '\u2067x\u2069 \u202aopen']) {
    const c = await call('POST', '/api/rooms', { token: owner.token, body: { name, language: 'python' } });
    assert.equal(c.status, 201, `${JSON.stringify(name)}: ${c.text}`);
    assert.equal(c.json.room.name, name);
  }
});

test('language aliases are stored under their canonical name', async () => {
  const owner = await newUser();
  const expect = { cpp: 'c++', py: 'python', js: 'javascript', node: 'javascript', sh: 'bash', 'C++': 'c++', Python: 'python', c: 'c' };
  for (const [alias, canonical] of Object.entries(expect)) {
    const r = await call('POST', '/api/rooms', { token: owner.token, body: { name: `in ${alias}`, language: alias } });
    assert.equal(r.status, 201, `${alias}: ${r.text}`);
    assert.equal(r.json.room.language, canonical, alias);
    assert.equal(sql(`SELECT language FROM rooms WHERE id = '${r.json.room.id}'`), canonical);
  }
  const room = await createRoom(owner.token, { language: 'c' });
  const p = await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { language: 'py' } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.room.language, 'python');
  const q = await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { language: 'cpp' } });
  assert.equal(q.json.room.language, 'c++');
});

test('room endpoints need a valid session token', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  for (const [method, path, body] of [
    ['GET', '/api/rooms'],
    ['POST', '/api/rooms', { name: 'x', language: 'c' }],
    ...endpointsOf(room, owner),
  ]) {
    const r = await call(method, path, { body });
    assertError(r, 401);
  }
  assert.equal((await call('GET', `/api/rooms/${room.id}`, { token: owner.token })).status, 200);
});

// The API run as CGI against a Redis that does not answer: the rights it takes away must
// not be taken away in PostgreSQL only, where the broker and the document endpoints do
// not look.
const deadRedis = DEAD_REDIS;

test('taking rights away while Redis is unreachable answers 503 and a retry puts it in force', async () => {
  const owner = await newUser();
  const member = await newUser();
  const room = await createRoom(owner.token);
  await call('POST', `/api/rooms/${room.id}/join`, { token: member.token, body: { invite: room.invite } });
  assert.equal(redis('HGET', `cc:room:{${room.id}}:members`, String(member.user.id)), 'editor');

  // demote to viewer: saved, but 503 until the cache agrees
  let r = cgi({ method: 'PUT', uri: `/api/rooms/${room.id}/members/${member.user.id}`, token: owner.token, body: { role: 'viewer' }, env: deadRedis });
  assert.equal(r.status, 503, r.body);
  r = cgi({ method: 'PUT', uri: `/api/rooms/${room.id}/members/${member.user.id}`, token: owner.token, body: { role: 'viewer' } });
  assert.equal(r.status, 200, r.body);
  assert.equal(redis('HGET', `cc:room:{${room.id}}:members`, String(member.user.id)), 'viewer');
  const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: member.token, body: { revision: 0, ops: ['x'] } });
  assert.equal(op.status, 403);

  // remove: 503 with Redis down. A signed-in call cannot get past the session check without
  // Redis (a signed-out session would look alive), so nothing was removed yet; the retry
  // removes the member and clears the cache. (Clearing the cache of a member whose row is
  // already gone is the test "removing a member again clears …" above.)
  r = cgi({ method: 'DELETE', uri: `/api/rooms/${room.id}/members/${member.user.id}`, token: owner.token, env: deadRedis });
  assert.equal(r.status, 503, r.body);
  assert.equal(sql(`SELECT count(*) FROM room_members WHERE room_id = '${room.id}' AND user_id = ${member.user.id}`), '1');
  r = cgi({ method: 'DELETE', uri: `/api/rooms/${room.id}/members/${member.user.id}`, token: owner.token });
  assert.equal(r.status, 204, r.body);
  assert.equal(redis('HEXISTS', `cc:room:{${room.id}}:members`, String(member.user.id)), '0');

  // delete the room: nothing is deleted while Redis is unreachable
  r = cgi({ method: 'DELETE', uri: `/api/rooms/${room.id}`, token: owner.token, env: deadRedis });
  assert.equal(r.status, 503, r.body);
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE id = '${room.id}'`), '1');
  assert.equal((await call('DELETE', `/api/rooms/${room.id}`, { token: owner.token })).status, 204);
  assert.equal(redis('EXISTS', `cc:room:{${room.id}}:members`), '0');
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE id = '${room.id}'`), '0');
});
