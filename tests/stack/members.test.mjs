// A room's member list is bounded (ROOM_MEMBERS_MAX, the owner counted): anyone with the
// invite link may join, so without a bound the list, and every answer that lists it, grows
// without limit. A join past the bound is 409 room_full; a member joining again is never
// refused; two joins at once never both take the last place. GET /api/rooms/{id}/members
// pages with ?limit= and ?after= (docs/API.md, "Rooms").
//
// The bound is tried on a second front door (tests/lib/door.mjs: lighttpd and four API
// processes of its own on the stack's PostgreSQL and Redis) started with ROOM_MEMBERS_MAX=4;
// the paging runs through the stack's own front door.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { call, createRoom, newUser } from '../lib/api.mjs';
import { startFrontDoor } from '../lib/door.mjs';

const MAX = 4;
let door;

before(async () => {
  door = await startFrontDoor({ env: { ROOM_MEMBERS_MAX: String(MAX), API_PROCESSES: '4' } });
});
after(async () => {
  if (door) await door.stop();
});

// call() against the second front door
async function atDoor(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(door.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, text, json };
}

async function privateRoom() {
  const owner = await newUser('mem');
  const room = await createRoom(owner.token, { visibility: 'private' });
  return { owner, room, invite: room.invite };
}

const joinAtDoor = (u, room, invite) => atDoor('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite } });

async function memberIds(owner, room) {
  const r = await call('GET', `/api/rooms/${room.id}/members`, { token: owner.token });
  assert.equal(r.status, 200, r.text);
  return r.json.members.map((m) => m.user.id);
}

test('a join past ROOM_MEMBERS_MAX is 409 room_full; a member joining again is not refused, and a place freed is taken', async () => {
  const { owner, room, invite } = await privateRoom();
  const users = [];
  for (let i = 0; i < MAX; i++) users.push(await newUser('mem'));
  for (const u of users.slice(0, MAX - 1)) {
    const r = await joinAtDoor(u, room, invite);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.role, 'editor');
  }
  // owner + MAX - 1: full
  const late = users[MAX - 1];
  const full = await joinAtDoor(late, room, invite);
  assert.equal(full.status, 409, full.text);
  assert.equal(full.json.error, 'room_full');
  assert.match(full.json.message, new RegExp(`${MAX} members`));
  assert.equal((await memberIds(owner, room)).length, MAX);
  assert.ok(!(await memberIds(owner, room)).includes(late.user.id));
  // a stranger cannot read the room after the refusal
  assert.equal((await call('GET', `/api/rooms/${room.id}/document`, { token: late.token })).status, 403);
  // members at the bound join again (with or without a code): nothing changes
  const again = await joinAtDoor(users[0], room, invite);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.role, 'editor');
  const ownerAgain = await atDoor('POST', `/api/rooms/${room.id}/join`, { token: owner.token, body: {} });
  assert.equal(ownerAgain.status, 200, ownerAgain.text);
  assert.equal(ownerAgain.json.role, 'owner');
  // someone leaves: the place is free again
  assert.equal((await call('DELETE', `/api/rooms/${room.id}/members/${users[1].user.id}`, { token: users[1].token })).status, 204);
  const now = await joinAtDoor(late, room, invite);
  assert.equal(now.status, 200, now.text);
  assert.equal((await memberIds(owner, room)).length, MAX);
});

test('a public room is bounded as well (the join without a code)', async () => {
  const owner = await newUser('mem');
  const room = await createRoom(owner.token, { visibility: 'public' });
  const rs = [];
  for (let i = 0; i < MAX; i++) {
    const u = await newUser('mem');
    rs.push((await atDoor('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: {} })).status);
  }
  assert.deepEqual(rs, [...Array(MAX - 1).fill(200), 409]);
  assert.equal((await memberIds(owner, room)).length, MAX);
});

test('joins at once for the last place: exactly one gets it, the others 409 room_full', async () => {
  for (let round = 0; round < 8; round++) {
    const { owner, room, invite } = await privateRoom();
    for (let i = 0; i < MAX - 2; i++) assert.equal((await joinAtDoor(await newUser('mem'), room, invite)).status, 200);
    const racers = await Promise.all(Array.from({ length: 8 }, () => newUser('mem')));
    const rs = await Promise.all(racers.map((u) => joinAtDoor(u, room, invite)));
    const got = rs.map((r) => `${r.status} ${r.json?.error ?? r.json?.role}`);
    assert.equal(rs.filter((r) => r.status === 200).length, 1, `round ${round}: ${got}`);
    for (const r of rs) if (r.status !== 200) assert.equal(r.json.error, 'room_full', `round ${round}: ${got}`);
    assert.equal((await memberIds(owner, room)).length, MAX, `round ${round}`);
  }
});

test('members page by page: ?limit= and ?after=, owner first, every member once, next null on the last page', async () => {
  const { owner, room, invite } = await privateRoom();
  const joined = [];
  for (let i = 0; i < 6; i++) {
    const u = await newUser('mem');
    assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite } })).status, 200);
    joined.push(u.user.id);
  }
  // without parameters: as before, every member and no next
  const all = await call('GET', `/api/rooms/${room.id}/members`, { token: owner.token });
  assert.equal(all.status, 200, all.text);
  assert.deepEqual(Object.keys(all.json), ['members']);
  assert.deepEqual(all.json.members.map((m) => m.user.id), [owner.user.id, ...joined]);
  for (const limit of [1, 2, 3, 7, 500]) {
    const seen = [];
    let after = null;
    for (let pages = 0; pages < 20; pages++) {
      const q = `limit=${limit}${after === null ? '' : `&after=${after}`}`;
      const r = await call('GET', `/api/rooms/${room.id}/members?${q}`, { token: owner.token });
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.members.length <= limit);
      seen.push(...r.json.members);
      assert.ok('next' in r.json);
      if (r.json.next === null) break;
      assert.equal(r.json.next, r.json.members.at(-1).user.id);
      after = r.json.next;
    }
    assert.deepEqual(seen, all.json.members, `limit ${limit}`);
  }
  // after alone: the rest in one page
  const rest = await call('GET', `/api/rooms/${room.id}/members?after=${joined[3]}`, { token: owner.token });
  assert.equal(rest.status, 200, rest.text);
  assert.deepEqual(rest.json.members.map((m) => m.user.id), joined.slice(4));
  assert.equal(rest.json.next, null);
  // exactly one full page: no next
  const exact = await call('GET', `/api/rooms/${room.id}/members?limit=7`, { token: owner.token });
  assert.equal(exact.json.members.length, 7);
  assert.equal(exact.json.next, null);
  // a member reads the pages too
  const u = await call('GET', `/api/rooms/${room.id}/members?limit=2`, { token: (await memberToken(room, invite)).token });
  assert.equal(u.status, 200, u.text);
  assert.equal(u.json.members[0].role, 'owner');
});

async function memberToken(room, invite) {
  const u = await newUser('mem');
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite } })).status, 200);
  return u;
}

test('members paging: malformed and hostile parameters are 400 invalid_request', async () => {
  const { owner, room, invite } = await privateRoom();
  const m = await memberToken(room, invite);
  const gone = await memberToken(room, invite);
  assert.equal((await call('DELETE', `/api/rooms/${room.id}/members/${gone.user.id}`, { token: gone.token })).status, 204);
  const stranger = await newUser('mem');
  const bad = [
    'limit=0', 'limit=-1', 'limit=501', 'limit=99999999999999999999999', 'limit=abc', 'limit=1.5', 'limit=', 'limit', 'after',
    'limit=%31', 'limit=1e2', 'limit=+5', 'limit=0x10', 'limit=1&limit=2', 'limit=2&limit=2',
    'after=0', 'after=-5', 'after=abc', 'after=', 'after=99999999999999999999', 'after=1.0',
    `after=${m.user.id}&after=${m.user.id}`, `after=${owner.user.id}&limit=1&after=${m.user.id}`,
    `after=${stranger.user.id}`, `after=${gone.user.id}`, 'after=9223372036854775807',
    `limit=${'9'.repeat(5000)}`, `after=%00`, `limit=1;DROP TABLE rooms`,
  ];
  for (const q of bad) {
    const r = await call('GET', `/api/rooms/${room.id}/members?${q}`, { token: owner.token });
    assert.equal(r.status, 400, `${q}: ${r.status} ${r.text}`);
    assert.equal(r.json?.error, 'invalid_request', `${q}: ${r.text}`);
    assert.equal(typeof r.json.message, 'string');
  }
  // other parameters are no concern of this endpoint; a stranger still gets 403 first
  const other = await call('GET', `/api/rooms/${room.id}/members?x=1&limit=1`, { token: owner.token });
  assert.equal(other.status, 200, other.text);
  assert.equal(other.json.members.length, 1);
  assert.equal(other.json.next, owner.user.id);
  const s = await call('GET', `/api/rooms/${room.id}/members?limit=1`, { token: stranger.token });
  assert.equal(s.status, 403);
  assert.equal(s.json.error, 'not_a_member');
});
