// A commit whose answer was lost and that the client sends again (the same client_id) is
// answered as the first one was and applied once (lib/store_doc.c, cc:room:{id}:commits).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, cgi, newUser, createRoom, redis, roomEvents, saved, sql } from '../lib/api.mjs';

const post = (token, room, body) => call('POST', `/api/rooms/${room.id}/operations`, { token, body });
const doc = async (token, room) => (await call('GET', `/api/rooms/${room.id}/document`, { token })).json;

test('the same operation sent twice is committed once, and both answers are the same', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const body = { revision: 0, ops: ['hello'], client_id: 'site1.1' };
  const first = await post(a.token, room, body);
  assert.equal(first.status, 200, first.text);
  const again = await post(a.token, room, body);
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(again.json, first.json);
  assert.deepEqual(first.json, { revision: 1, ops: ['hello'] });
  const d = await doc(a.token, room);
  assert.equal(d.revision, 1);
  assert.equal(d.content, 'hello');
  assert.equal(roomEvents(room.id).filter((e) => e.type === 'operation').length, 1, 'one event');
});

test('a repeat after other commits answers the first commit, as it was applied', async () => {
  const a = await newUser();
  const b = await newUser();
  const room = await createRoom(a.token);
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: b.token, body: { invite: room.invite } })).status, 200);
  assert.equal((await post(a.token, room, { revision: 0, ops: ['abc'] })).status, 200);
  // b inserts at the start, made against revision 1
  const mine = { revision: 1, ops: ['X'], client_id: 'bsite.7' };
  const first = await post(b.token, room, mine);
  assert.deepEqual(first.json, { revision: 2, ops: ['X', 3] });
  // a types on; b's answer was lost and b sends the same edit again
  assert.equal((await post(a.token, room, { revision: 2, ops: [4, '!'] })).status, 200);
  const again = await post(b.token, room, mine);
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(again.json, first.json);
  assert.equal((await doc(a.token, room)).content, 'Xabc!');
  // another user's equal client_id is a different edit
  const other = await post(a.token, room, { revision: 3, ops: [5, '?'], client_id: 'bsite.7' });
  assert.deepEqual(other.json, { revision: 4, ops: [5, '?'] });
  // the next operation of b's client (a new sequence number) is new too
  const next = await post(b.token, room, { revision: 4, ops: [6, '.'], client_id: 'bsite.8' });
  assert.deepEqual(next.json, { revision: 5, ops: [6, '.'] });
  assert.equal((await doc(a.token, room)).content, 'Xabc!?.');
});

test('repeats racing each other are applied once', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const body = { revision: 0, ops: ['once'], client_id: 'race.1' };
  const answers = await Promise.all(Array.from({ length: 8 }, () => post(a.token, room, body)));
  for (const r of answers) assert.equal(r.status, 200, r.text);
  for (const r of answers) assert.deepEqual(r.json, { revision: 1, ops: ['once'] });
  assert.equal((await doc(a.token, room)).content, 'once');
});

// The commits set outlives the log (DOCUMENT_COMMITS_KEEP, 10,000 revisions by default,
// against the log's 1,000): a repeat whose entry the log has dropped is too old to be
// answered with its operation, but the 409 says which revision it became, so a client does
// not take it for an edit never sent and send it as a new one. An edit of the same age that
// was never committed gets the plain 409.
test('a repeat older than the kept log is answered too old with the revision it became; an unsent edit that old without it', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const key = `cc:room:{${room.id}}:commits`;
  let rev = 0;
  for (let i = 0; i < 1010; i++) {
    const r = await post(a.token, room, { revision: rev, ops: rev ? [rev, 'x'] : ['x'], client_id: `bulk.${i}` });
    assert.equal(r.status, 200, r.text);
    rev = r.json.revision;
  }
  const kept = Number(redis('LLEN', `cc:room:{${room.id}}:ops`));
  assert.ok(1010 - kept + 1 > 1, `the log (${kept} entries) no longer holds revision 1`);
  assert.equal(Number(redis('ZCARD', key)), 1010, 'every request is remembered');
  assert.match(redis('ZRANGEBYSCORE', key, '1', '1'), new RegExp(`^${a.user.id}\\|0\\|[0-9a-f]{32}\\|bulk\\.0$`));
  // a repeat of the newest is still answered as before
  const again = await post(a.token, room, { revision: 1009, ops: [1009, 'x'], client_id: 'bulk.1009' });
  assert.deepEqual(again.json, { revision: 1010, ops: [1009, 'x'] });
  // a repeat from before the kept log: too old, as any operation that old, and committed
  // as revision 1
  const old = await post(a.token, room, { revision: 0, ops: ['x'], client_id: 'bulk.0' });
  assert.equal(old.status, 409, old.text);
  assert.deepEqual(old.json, { error: 'revision_too_old', message: old.json.message, revision: 1010, applied_revision: 1 });
  assert.equal(old.headers.get('x-revision'), '1010');
  const fifth = await post(a.token, room, { revision: 4, ops: [4, 'x'], client_id: 'bulk.4' });
  assert.equal(fifth.status, 409, fifth.text);
  assert.equal(fifth.json.applied_revision, 5);
  // the same age, never committed (another client_id, or the same one with other ops)
  for (const body of [{ revision: 0, ops: ['x'], client_id: 'never.1' }, { revision: 0, ops: ['y'], client_id: 'bulk.0' }]) {
    const unsent = await post(a.token, room, body);
    assert.equal(unsent.status, 409, unsent.text);
    assert.deepEqual(unsent.json, { error: 'revision_too_old', message: unsent.json.message, revision: 1010 });
    assert.equal(unsent.headers.get('x-revision'), '1010');
  }
  const d = await doc(a.token, room);
  assert.equal(d.revision, 1010, 'nothing was committed again');
  assert.equal(d.content, 'x'.repeat(1010));
  // the set's bound: a commit by an API that keeps DOCUMENT_COMMITS_KEEP=1000 revisions (the
  // least) trims it to them, and the oldest requests are forgotten
  const c = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: a.token, env: { DOCUMENT_COMMITS_KEEP: '1000' },
    body: { revision: 1010, ops: [1010, 'x'], client_id: 'bulk.1010' } });
  assert.equal(c.code, 0, c.stderr.slice(0, 2000));
  assert.deepEqual(c.json, { revision: 1011, ops: [1010, 'x'] });
  assert.equal(Number(redis('ZCARD', key)), 1000);
  assert.equal(redis('ZRANGEBYSCORE', key, '-inf', '11'), '', 'the oldest are gone');
  const forgotten = await post(a.token, room, { revision: 0, ops: ['x'], client_id: 'bulk.0' });
  assert.equal(forgotten.status, 409, forgotten.text);
  assert.deepEqual(forgotten.json, { error: 'revision_too_old', message: forgotten.json.message, revision: 1011 });
  assert.equal((await doc(a.token, room)).revision, 1011);
});

test('one client_id for every operation (a stable site) is not taken for a repeat: only the same request is', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  let r = await post(a.token, room, { revision: 0, ops: ['a'], client_id: 'site' });
  assert.deepEqual(r.json, { revision: 1, ops: ['a'] });
  // the same client_id, another operation: new
  r = await post(a.token, room, { revision: 1, ops: [1, 'b'], client_id: 'site' });
  assert.deepEqual(r.json, { revision: 2, ops: [1, 'b'] });
  // the same operation made against another revision: new (typed again)
  r = await post(a.token, room, { revision: 2, ops: [1, 'b'], client_id: 'site' });
  assert.deepEqual(r.json, { revision: 3, ops: [1, 'b', 1] });
  // a stale view sending the same insert again: that exact request was answered already
  r = await post(a.token, room, { revision: 1, ops: [1, 'b'], client_id: 'site' });
  assert.deepEqual(r.json, { revision: 2, ops: [1, 'b'] });
  // and the very first request again
  r = await post(a.token, room, { revision: 0, ops: ['a'], client_id: 'site' });
  assert.deepEqual(r.json, { revision: 1, ops: ['a'] });
  assert.equal((await doc(a.token, room)).content, 'abb');
});

test('without a client_id nothing is deduplicated; bad client_ids are refused', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const body = { revision: 0, ops: ['a'] };
  assert.equal((await post(a.token, room, body)).json.revision, 1);
  assert.equal((await post(a.token, room, body)).json.revision, 2);
  assert.equal((await doc(a.token, room)).content, 'aa');
  // the longest client_ids (64 characters of 4 bytes each) are told apart by their last one
  const long = '😀'.repeat(63);
  assert.deepEqual((await post(a.token, room, { revision: 2, ops: [2, 'b'], client_id: `${long}a` })).json, { revision: 3, ops: [2, 'b'] });
  assert.deepEqual((await post(a.token, room, { revision: 3, ops: [3, 'c'], client_id: `${long}b` })).json, { revision: 4, ops: [3, 'c'] });
  assert.deepEqual((await post(a.token, room, { revision: 3, ops: [3, 'c'], client_id: `${long}b` })).json, { revision: 4, ops: [3, 'c'] });
  assert.equal((await doc(a.token, room)).content, 'aabc');
  for (const client_id of ['', 'x'.repeat(65), 'a\nb', 7]) {
    const r = await post(a.token, room, { revision: 4, ops: ['z'], client_id });
    assert.equal(r.status, 400, `${JSON.stringify(client_id)}: ${r.text}`);
  }
  assert.equal((await doc(a.token, room)).content, 'aabc');
});

test('a room restored at an older revision forgets the requests it had committed: a resend is applied, not answered with another operation', async () => {
  const a = await newUser();
  const b = await newUser();
  const room = await createRoom(a.token);
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: b.token, body: { invite: room.invite } })).status, 200);
  assert.equal((await post(a.token, room, { revision: 0, ops: ['abc'] })).status, 200);
  await saved(room, 1);
  const mine = { revision: 1, ops: ['X', 3], client_id: 'bsite.1' };
  const first = await post(b.token, room, mine);
  assert.deepEqual(first.json, { revision: 2, ops: ['X', 3] });
  await saved(room, 2);
  // the save of revision 2 is lost, and so is the document hash in Redis: the room comes
  // back from its save of revision 1
  sql(`DELETE FROM history_ops WHERE room_id = '${room.id}' AND revision > 1`);
  sql(`DELETE FROM snapshots WHERE room_id = '${room.id}' AND revision > 1`);
  redis('DEL', `cc:room:{${room.id}}:doc`);
  assert.deepEqual(await doc(a.token, room), { revision: 1, content: 'abc', language: room.language });
  // a types, making another revision 2; b's answer was lost and b sends its edit again
  const theirs = await post(a.token, room, { revision: 1, ops: [3, 'Z'] });
  assert.deepEqual(theirs.json, { revision: 2, ops: [3, 'Z'] });
  const again = await post(b.token, room, mine);
  assert.equal(again.status, 200, again.text);
  assert.notDeepEqual(again.json, theirs.json, 'answered with the operation of another user');
  assert.deepEqual(again.json, { revision: 3, ops: ['X', 4] });
  assert.equal((await doc(a.token, room)).content, 'XabcZ');
});
