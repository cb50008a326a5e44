// Invites against the real stack: a removal sticks until the owner issues a new code, the
// owner rotates and switches the invite link, and the visibility key the broker judges
// strangers by (cc:room:{<room>}:visibility) follows the room.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEAD_REDIS, call, cgi, newUser, createRoom, roomEvents, redis, sql } from '../lib/api.mjs';

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json?.error, 'string', r.text);
  assert.equal(typeof r.json.message, 'string');
  if (code) assert.equal(r.json.error, code, r.text);
}

const join = (u, room, invite) =>
  call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: invite === undefined ? {} : { invite } });
const rotate = (u, room) => call('POST', `/api/rooms/${room.id}/invite`, { token: u.token });
const disable = (u, room) => call('DELETE', `/api/rooms/${room.id}/invite`, { token: u.token });
const remove = (owner, room, u) => call('DELETE', `/api/rooms/${room.id}/members/${u.user.id}`, { token: owner.token });
const ticket = (u, room) => call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: u.token, body: {} });
const edit = (u, room) => call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision: 0, ops: ['x'] } });
const visibilityKey = (room) => redis('GET', `cc:room:{${room.id}}:visibility`);

async function memberIds(owner, room) {
  const r = await call('GET', `/api/rooms/${room.id}/members`, { token: owner.token });
  assert.equal(r.status, 200, r.text);
  return r.json.members.map((m) => m.user.id);
}

test('the issue\'s repro: a removed member cannot come back with the old invite and stays out', async () => {
  const owner = await newUser();
  const m = await newUser();
  const room = await createRoom(owner.token);
  let r = await join(m, room, room.invite);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.role, 'editor');
  assert.equal((await remove(owner, room, m)).status, 204);

  r = await join(m, room, room.invite);
  assertError(r, 403, 'removed');
  assert.match(r.json.message, /removed you/);
  assertError(await join(m, room), 403, 'removed');
  // still out everywhere a member gets in
  assertError(await call('GET', `/api/rooms/${room.id}`, { token: m.token }), 403, 'not_a_member');
  assertError(await ticket(m, room), 403, 'not_a_member');
  assertError(await edit(m, room), 403, 'not_a_member');
  assert.ok(!(await memberIds(owner, room)).includes(m.user.id));
  assert.ok(!(await call('GET', '/api/rooms', { token: m.token })).json.rooms.some((x) => x.id === room.id));
  assert.equal(redis('HEXISTS', `cc:room:{${room.id}}:members`, String(m.user.id)), '0');
  // the code itself still works for people who were never removed
  const other = await newUser();
  assert.equal((await join(other, room, room.invite)).status, 200);
});

test('rotation: the old code is refused for everyone, the new one admits newcomers and the removed', async () => {
  const owner = await newUser();
  const m = await newUser();
  const fresh = await newUser();
  const room = await createRoom(owner.token);
  assert.equal(room.invite_enabled, true);
  assert.equal((await join(m, room, room.invite)).status, 200);
  assert.equal((await remove(owner, room, m)).status, 204);

  const r = await rotate(owner, room);
  assert.equal(r.status, 200, r.text);
  const code = r.json.room.invite;
  assert.equal(typeof code, 'string');
  assert.match(code, /^[a-z0-9]{16}$/);
  assert.notEqual(code, room.invite);
  assert.equal(r.json.room.invite_enabled, true);
  assert.equal(r.json.room.id, room.id);
  // the owner's GET shows the new code
  const got = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(got.json.room.invite, code);

  // the old code: invalid for a newcomer and for the removed member alike
  assertError(await join(fresh, room, room.invite), 403, 'invalid_invite');
  assertError(await join(m, room, room.invite), 403, 'invalid_invite');
  // the new one admits both, as editors
  let j = await join(fresh, room, code);
  assert.equal(j.status, 200, j.text);
  assert.equal(j.json.role, 'editor');
  j = await join(m, room, code);
  assert.equal(j.status, 200, j.text);
  assert.equal(j.json.role, 'editor');
  assert.equal((await edit(m, room)).status, 200);
  assert.equal(sql(`SELECT count(*) FROM room_removals WHERE room_id = '${room.id}'`), '0');

  // removed a second time: the code they came back with no longer works for them
  assert.equal((await remove(owner, room, m)).status, 204);
  assertError(await join(m, room, code), 403, 'removed');
  const again = await rotate(owner, room);
  assert.notEqual(again.json.room.invite, code);
  assert.equal((await join(m, room, again.json.room.invite)).status, 200);

  // members hear that the invite changed, never the code
  const events = roomEvents(room.id).filter((e) => e.type === 'room' && e.data.reason === 'invite');
  assert.equal(events.length, 2, JSON.stringify(events));
  for (const e of roomEvents(room.id)) {
    for (const c of [room.invite, code, again.json.room.invite]) assert.ok(!e.raw.includes(c), `event ${e.type} carries a code: ${e.raw}`);
  }
  // a non-owner's view shows neither the code nor the switch
  const seen = await call('GET', `/api/rooms/${room.id}`, { token: fresh.token });
  assert.ok(!('invite' in seen.json.room) && !('invite_enabled' in seen.json.room), seen.text);
});

test('switching the invite off refuses every code; switching it on issues a new one', async () => {
  const owner = await newUser();
  const ed = await newUser();
  const late = await newUser();
  const room = await createRoom(owner.token);
  assert.equal((await join(ed, room, room.invite)).status, 200);

  const off = await disable(owner, room);
  assert.equal(off.status, 200, off.text);
  assert.equal(off.json.room.invite, null);
  assert.equal(off.json.room.invite_enabled, false);
  assert.ok(!off.text.includes(room.invite), 'the switched-off code is not shown');
  const got = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(got.json.room.invite, null);
  assert.equal(got.json.room.invite_enabled, false);
  assert.equal(roomEvents(room.id).filter((e) => e.type === 'room' && e.data.reason === 'invite').length, 1);

  for (const code of [room.invite, 'a'.repeat(16), 'x']) {
    const r = await join(late, room, code);
    assertError(r, 403, 'invite_disabled');
    assert.match(r.json.message, /switched this room's invite link off/);
  }
  assertError(await join(late, room), 403, 'invite_required');
  assertError(await call('GET', `/api/rooms/${room.id}`, { token: late.token }), 403, 'not_a_member');
  // members stay members; switching off twice is the same
  assert.equal((await call('GET', `/api/rooms/${room.id}`, { token: ed.token })).json.role, 'editor');
  assert.equal((await disable(owner, room)).status, 200);

  const on = await rotate(owner, room);
  assert.equal(on.status, 200, on.text);
  assert.equal(on.json.room.invite_enabled, true);
  assert.notEqual(on.json.room.invite, room.invite);
  assertError(await join(late, room, room.invite), 403, 'invalid_invite');
  const j = await join(late, room, on.json.room.invite);
  assert.equal(j.status, 200, j.text);
  assert.equal(j.json.role, 'editor');
});

test('public room: a removed member cannot rejoin through the public path until invited again', async () => {
  const owner = await newUser();
  const m = await newUser();
  const passer = await newUser();
  const leaver = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  assert.equal((await join(m, room)).status, 200);
  assert.equal((await join(leaver, room)).status, 200);
  assert.equal((await remove(owner, room, m)).status, 204);

  assertError(await join(m, room), 403, 'removed');
  assertError(await join(m, room, room.invite), 403, 'removed');
  // reading a public room is not being a member: no editing
  assertError(await edit(m, room), 403);
  // anyone else still joins without a code
  assert.equal((await join(passer, room)).status, 200);
  // leaving by oneself records nothing: the public path is open again
  assert.equal((await remove(leaver, room, leaver)).status, 204);
  assert.equal((await join(leaver, room)).status, 200);

  // a new code lets the removed member back, and only the code: not the public path alone
  const code = (await rotate(owner, room)).json.room.invite;
  assertError(await join(m, room), 403, 'removed');
  const j = await join(m, room, code);
  assert.equal(j.status, 200, j.text);
  assert.equal(j.json.role, 'editor');
  assert.ok((await memberIds(owner, room)).includes(m.user.id));
  // with the invite switched off a public room still admits newcomers without a code
  assert.equal((await disable(owner, room)).status, 200);
  assert.equal((await join(await newUser(), room)).status, 200);
});

test('only the owner rotates or switches the invite: editors, viewers and strangers get 403', async () => {
  const owner = await newUser();
  const ed = await newUser();
  const vw = await newUser();
  const stranger = await newUser();
  for (const visibility of ['private', 'public']) {
    const room = await createRoom(owner.token, { visibility });
    for (const u of [ed, vw]) assert.equal((await join(u, room, room.invite)).status, 200);
    assert.equal((await call('PUT', `/api/rooms/${room.id}/members/${vw.user.id}`, { token: owner.token, body: { role: 'viewer' } })).status, 200);
    for (const [who, u] of [['editor', ed], ['viewer', vw], ['stranger', stranger]]) {
      for (const fn of [rotate, disable]) {
        const r = await fn(u, room);
        assertError(r, 403, who === 'stranger' ? 'not_a_member' : 'forbidden');
        assert.ok(!r.text.includes(room.invite));
      }
    }
    const got = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
    assert.equal(got.json.room.invite, room.invite, 'nothing changed');
    assert.equal(got.json.room.invite_enabled, true);
  }
  assertError(await call('POST', '/api/rooms/nosuchroom/invite', { token: owner.token }), 404, 'room_not_found');
  assertError(await call('DELETE', '/api/rooms/nosuchroom/invite', { token: owner.token }), 404, 'room_not_found');
  const room = await createRoom(owner.token);
  assertError(await call('POST', `/api/rooms/${room.id}/invite`), 401);
  assertError(await call('DELETE', `/api/rooms/${room.id}/invite`), 401);
});

test('the invite endpoints: other methods 405 with Allow, bodies checked like everywhere', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token);
  for (const method of ['GET', 'PUT', 'PATCH']) {
    const r = await call(method, `/api/rooms/${room.id}/invite`, { token: owner.token, body: method === 'GET' ? undefined : {} });
    assertError(r, 405, 'method_not_allowed');
    assert.equal(r.headers.get('allow'), 'POST, DELETE');
  }
  assertError(await call('POST', `/api/rooms/${room.id}/invite`, { token: owner.token, body: '{"x":' }), 400, 'invalid_json');
  assertError(await call('POST', `/api/rooms/${room.id}/invite`, { token: owner.token, body: '[]' }), 400, 'invalid_json');
  assertError(await call('POST', `/api/rooms/${room.id}/invite`, { token: owner.token, body: 'x', headers: { 'content-type': 'text/plain' } }), 415);
  assertError(await call('DELETE', `/api/rooms/${room.id}/invite`, { token: owner.token, body: 'null' }), 400, 'invalid_json');
  const got = await call('GET', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(got.json.room.invite, room.invite, 'refused requests changed nothing');
  // an empty object is fine (nothing to say)
  const ok = await call('POST', `/api/rooms/${room.id}/invite`, { token: owner.token, body: {} });
  assert.equal(ok.status, 200, ok.text);
});

test('a join racing the owner\'s removal never leaves the removed user a member or in the cache', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token);
  const bad = [];
  for (let round = 0; round < 10; round++) {
    const u = await newUser();
    // a newcomer's join and the owner's removal of them, as close together as they come;
    // the removal is sent until it finds the member (it answers 404 before the join)
    const joined = join(u, room, room.invite);
    let removed;
    for (let tries = 0; tries < 200; tries++) {
      removed = await remove(owner, room, u);
      if (removed.status !== 404) break;
    }
    const j = await joined;
    assert.equal(removed.status, 204, removed.text);
    assert.ok(j.status === 200 || j.status === 403, j.text);
    // and joins with the same code after the removal, in a burst
    const again = await Promise.all(Array.from({ length: 4 }, () => join(u, room, room.invite)));
    for (const a of again) if (a.status !== 403) bad.push(`rejoin ${a.status} ${a.text}`);
    const cached = redis('HGET', `cc:room:{${room.id}}:members`, String(u.user.id));
    const op = await edit(u, room);
    if (cached !== '' || op.status !== 403) bad.push(`round ${round}: cache "${cached}", edit ${op.status}`);
    if (sql(`SELECT count(*) FROM room_members WHERE room_id = '${room.id}' AND user_id = ${u.user.id}`) !== '0') bad.push(`round ${round}: member again`);
  }
  assert.deepEqual(bad, []);
});

test('the visibility key follows the room: create, PATCH, stream tickets, delete', async () => {
  const owner = await newUser();
  const priv = await createRoom(owner.token);
  const pub = await createRoom(owner.token, { visibility: 'public' });
  assert.equal(visibilityKey(priv), 'private');
  assert.equal(visibilityKey(pub), 'public');

  let r = await call('PATCH', `/api/rooms/${priv.id}`, { token: owner.token, body: { visibility: 'public' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(visibilityKey(priv), 'public');
  r = await call('PATCH', `/api/rooms/${priv.id}`, { token: owner.token, body: { visibility: 'private' } });
  assert.equal(visibilityKey(priv), 'private');
  // the key is written before the room event goes out (the broker re-checks on it)
  const last = roomEvents(priv.id).filter((e) => e.type === 'room').at(-1);
  assert.equal(last.data.reason, 'updated');
  assert.equal(last.data.room.visibility, 'private');

  // a room from before the key existed: the first stream ticket fills it in
  redis('DEL', `cc:room:{${pub.id}}:visibility`);
  const stranger = await newUser();
  r = await ticket(stranger, pub);
  assert.equal(r.status, 200, r.text);
  assert.equal(visibilityKey(pub), 'public');
  // a key that disagrees with PostgreSQL is repaired by the next ticket
  redis('SET', `cc:room:{${priv.id}}:visibility`, 'public');
  assert.equal((await ticket(owner, priv)).status, 200);
  assert.equal(visibilityKey(priv), 'private');

  // deleting the room deletes the key
  assert.equal((await call('DELETE', `/api/rooms/${pub.id}`, { token: owner.token })).status, 204);
  assert.equal(redis('EXISTS', `cc:room:{${pub.id}}:visibility`), '0');
});

test('making a room private while Redis is unreachable answers 503; the retry closes it', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  assert.equal(visibilityKey(room), 'public');
  let r = cgi({ method: 'PATCH', uri: `/api/rooms/${room.id}`, token: owner.token, body: { visibility: 'private' }, env: DEAD_REDIS });
  assert.equal(r.status, 503, r.body);
  assert.equal(r.json?.error, 'redis_unavailable', r.body);
  assert.equal(visibilityKey(room), 'public', 'Redis was not reached');
  r = cgi({ method: 'PATCH', uri: `/api/rooms/${room.id}`, token: owner.token, body: { visibility: 'private' } });
  assert.equal(r.status, 200, r.body);
  assert.equal(visibilityKey(room), 'private');
  assertError(await call('GET', `/api/rooms/${room.id}`, { token: (await newUser()).token }), 403, 'not_a_member');
});

test('wrong invite codes are limited per user (JOIN_RATE_LIMIT a minute): then 429 with Retry-After, the right code too; right codes and public joins do not count', async () => {
  const env = { JOIN_RATE_LIMIT: '3' };
  const joinAs = (u, room, invite) => cgi({ method: 'POST', uri: `/api/rooms/${room.id}/join`, token: u.token,
    body: invite === undefined ? {} : { invite }, env });
  const owner = await newUser('jlo');
  const rooms = await Promise.all([1, 2, 3, 4, 5].map(() => createRoom(owner.token, { visibility: 'private' })));
  const pub = await createRoom(owner.token, { visibility: 'public' });
  // right codes, public joins and codes of a switched-off link are no guesses
  const fine = await newUser('jlf');
  for (const room of rooms) assert.equal(joinAs(fine, room, room.invite).status, 200);
  for (const room of rooms) assert.equal(joinAs(fine, room, room.invite).status, 200); // already a member
  assert.equal(joinAs(fine, pub).status, 200);
  // a public room reads no code: a wrong one neither refuses a newcomer nor counts
  const newcomer = await newUser('jln');
  const joined = joinAs(newcomer, pub, 'not-the-code');
  assert.deepEqual([joined.status, joined.json.role], [200, 'editor']);
  const off = await createRoom(owner.token, { visibility: 'private' });
  assert.equal((await disable(owner, off)).status, 200);
  for (let i = 0; i < 4; i++) assertError(joinAs(fine, off, 'x'.repeat(16)), 403, 'invite_disabled');
  // a guesser: three wrong codes, then 429 for the fourth and for the right one
  const g = await newUser('jlg');
  for (let i = 0; i < 3; i++) assertError(joinAs(g, rooms[0], `wrong-code-${i}`), 403, 'invalid_invite');
  const over = joinAs(g, rooms[0], 'wrong-code-3');
  assertError(over, 429, 'rate_limited');
  assert.match(over.json.message, /wrong invite codes/);
  assert.match(over.headers['retry-after'] || '', /^[1-9][0-9]*$/);
  assert.ok(Number(over.headers['retry-after']) <= 60);
  assertError(joinAs(g, rooms[1], rooms[1].invite), 429, 'rate_limited');
  assert.equal(sql(`SELECT count(*) FROM room_members WHERE user_id = ${g.user.id}`), '0');
  // another user is not held back by the guesser
  const other = await newUser('jlx');
  assert.equal(joinAs(other, rooms[1], rooms[1].invite).status, 200);
  // parallel guesses cannot pass a window that has one place left
  const p = await newUser('jlp');
  assertError(joinAs(p, rooms[2], 'wrong-a'), 403, 'invalid_invite');
  assertError(joinAs(p, rooms[2], 'wrong-b'), 403, 'invalid_invite');
  const { cgiAsync } = await import('../lib/api.mjs');
  const answers = await Promise.all([0, 1, 2, 3].map((i) => cgiAsync({ method: 'POST', uri: `/api/rooms/${rooms[2].id}/join`,
    token: p.token, body: { invite: `wrong-parallel-${i}` }, env })));
  assert.deepEqual(answers.map((r) => r.status).sort(), [403, 429, 429, 429]);
});
