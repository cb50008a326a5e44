// The history list names who typed each saved change and how much (lib/store_doc.c,
// schema migration 5): authors from the operation log's entries, characters inserted and
// deleted summed over the change's operations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, newUser, createRoom, saved, sql } from '../lib/api.mjs';

const post = (token, room, body) => call('POST', `/api/rooms/${room.id}/operations`, { token, body });
const history = async (token, room) => {
  const r = await call('GET', `/api/rooms/${room.id}/history`, { token });
  assert.equal(r.status, 200, r.text);
  return r.json.snapshots;
};

test('each save names its authors and the characters inserted and deleted since the one before', async () => {
  const a = await newUser('ann');
  const b = await newUser('bob');
  const room = await createRoom(a.token);
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: b.token, body: { invite: room.invite } })).status, 200);
  // the first save (a checkpoint): ann typed 11 characters, an emoji among them
  assert.equal((await post(a.token, room, { revision: 0, ops: ['hello 😀 wor'] })).status, 200);
  await saved(room, 1);
  // then both: bob deletes 5 and inserts 3, ann inserts 2
  assert.equal((await post(b.token, room, { revision: 1, ops: [-5, 'hey'] })).status, 200);
  assert.equal((await post(a.token, room, { revision: 2, ops: [9, 'ld'] })).status, 200);
  await saved(room, 3);
  const list = await history(a.token, room);
  assert.deepEqual(list.map((s) => s.revision), [3, 1]);
  assert.deepEqual(list[0].authors, [{ id: a.user.id, username: a.user.username }, { id: b.user.id, username: b.user.username }].sort((x, y) => x.id - y.id));
  assert.equal(list[0].inserted, 5);
  assert.equal(list[0].deleted, 5);
  assert.deepEqual(list[1].authors, [{ id: a.user.id, username: a.user.username }]);
  assert.equal(list[1].inserted, 11);
  assert.equal(list[1].deleted, 0);
  assert.equal(list[0].length, 11); // 'hey 😀 world'
  // viewers and public readers get the same list (who may read the room)
  assert.deepEqual(await history(b.token, room), list);
});

test('saves from before authors were kept, and unknown authors, leave the fields out', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  assert.equal((await post(a.token, room, { revision: 0, ops: ['abc'] })).status, 200);
  await saved(room, 1);
  // as a row written by an older version
  sql(`UPDATE snapshots SET authors = NULL, inserted = NULL, deleted = NULL WHERE room_id = '${room.id}'`);
  const [s] = await history(a.token, room);
  assert.equal(s.revision, 1);
  assert.equal(s.length, 3);
  assert.ok(!('authors' in s) && !('inserted' in s) && !('deleted' in s), JSON.stringify(s));
  // an author whose account is gone is not named
  sql(`UPDATE snapshots SET authors = '{${a.user.id},999999999}', inserted = 3, deleted = 0 WHERE room_id = '${room.id}'`);
  const [t] = await history(a.token, room);
  assert.deepEqual(t.authors, [{ id: a.user.id, username: a.user.username }]);
});

test('history of a room one cannot read: 403, unknown room 404', async () => {
  const a = await newUser();
  const stranger = await newUser();
  const room = await createRoom(a.token);
  let r = await call('GET', `/api/rooms/${room.id}/history`, { token: stranger.token });
  assert.equal(r.status, 403);
  r = await call('GET', '/api/rooms/nosuchroom0/history', { token: a.token });
  assert.equal(r.status, 404);
});
