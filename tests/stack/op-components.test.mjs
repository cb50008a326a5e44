// What the server stores it can read back (docs/INTERNALS.md, "What is stored can be read"):
// an operation is stored with at most 10,000 components, counting the final retain the
// commit script writes and whatever a transform split it into; one that would have more is
// refused with 413 operation_too_large and nothing is stored. Readers of stored operations
// (folds, transforms, the snapshotter, history, restore) take more than that, so a room
// holding a longer entry written before the rule (10,001: an operation of 10,000 given its
// final retain) is read as it is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, commitAll, newUser, redis, replicaCaughtUp, roomEvents, sql } from '../lib/api.mjs';
import { applyOp } from '../lib/ot.mjs';
import { waitFor } from '../lib/procs.mjs';

const MAX = 10000;

async function roomWith(owner, text) {
  const r = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'components', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  const room = r.json.room;
  assert.equal(await commitAll(owner.token, room, 0, [[text]]), 1);
  return room;
}

const post = (who, room, body) => call('POST', `/api/rooms/${room.id}/operations`, { token: who.token, body });

async function doc(who, room) {
  const r = await call('GET', `/api/rooms/${room.id}/document`, { token: who.token });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// [every, ch] n times: an insert after every `every` characters; no two components merge
function scattered(every, ch, n) {
  const ops = [];
  for (let i = 0; i < n; i++) ops.push(every, ch);
  return ops;
}

// The snapshotter's save of revision rev (its `snapshot` event), with a deadline generous
// for a busy machine: saves come within SNAPSHOT_INTERVAL_MS (2 s) of a change
async function savedAt(room, rev) {
  await waitFor(() => roomEvents(room.id).some((e) => e.type === 'snapshot' && e.data.revision === rev),
    { what: `the save of revision ${rev}`, timeout: 30000, interval: 100 });
  replicaCaughtUp();
}

test('an operation that would be stored with more than 10,000 components is refused, 413, and nothing is stored', async () => {
  const a = await newUser();
  const base = 'x'.repeat(6000);
  const room = await roomWith(a, base);
  // 10,000 components covering 5,000 of the 6,000 characters: the entry would need its
  // final retain, the 10,001st
  const ops = scattered(1, 'a', MAX / 2);
  assert.equal(ops.length, MAX);
  let r = await post(a, room, { revision: 1, ops, client_id: 'site.1' });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error, 'operation_too_large', r.text);
  assert.match(r.json.message, /10001 components/);
  assert.match(r.json.message, /at most 10000/);
  // nothing stored: the revision and the text are as they were, for everyone
  assert.deepEqual(await doc(a, room), { revision: 1, content: base, language: 'python' });
  assert.equal(redis('HGET', `cc:room:{${room.id}}:doc`, 'revision'), '1');
  assert.equal(redis('LLEN', `cc:room:{${room.id}}:ops`), '1');
  // the same operation with its final retain written by the client is over the limit as
  // sent: the parse refuses it (400), as before
  r = await post(a, room, { revision: 1, ops: [...ops, 1000] });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error, 'invalid_operation');
  // one component fewer fits: stored with 10,000, its final retain included, and read back
  const fits = ['a'].concat(scattered(1, 'a', MAX / 2 - 1));
  assert.equal(fits.length, MAX - 1);
  r = await post(a, room, { revision: 1, ops: fits });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revision, 2);
  assert.equal(r.json.ops.length, MAX);
  const want = applyOp(base, fits);
  assert.deepEqual(await doc(a, room), { revision: 2, content: want, language: 'python' });
  // the room goes on: a client behind is transformed over the entry of 10,000
  r = await post(a, room, { revision: 1, ops: [6000, '!'] });
  assert.equal(r.status, 200, r.text);
  assert.ok((await doc(a, room)).content === want + '!', 'the text after revision 3');
  await savedAt(room, 3);
});

test('an operation of 10,000 components that spans the whole document needs no final retain: stored', async () => {
  const a = await newUser();
  const base = 'y'.repeat(MAX / 2);
  const room = await roomWith(a, base);
  const ops = scattered(1, 'b', MAX / 2);
  const r = await post(a, room, { revision: 1, ops });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.ops, ops);
  assert.deepEqual(await doc(a, room), { revision: 2, content: applyOp(base, ops), language: 'python' });
});

test('a transform that splits an operation past 10,000 components: 413, the room stays readable', async () => {
  const x = await newUser();
  const y = await newUser();
  const base = 'z'.repeat(6000);
  const room = await roomWith(x, base);
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: y.token, body: { invite: room.invite } });
  assert.equal(j.status, 200, j.text);
  // x: 9,999 components, the last a delete of everything after the first 4,999 characters
  const mine = scattered(1, 'a', 4999).concat([-(6000 - 4999)]);
  assert.equal(mine.length, MAX - 1);
  // y, at the same revision, inserts twice inside the range x deletes, and commits first
  const theirs = [5500, 'Y', 100, 'Y'];
  let r = await post(y, room, { revision: 1, ops: theirs });
  assert.equal(r.status, 200, r.text);
  const after = applyOp(base, theirs);
  // transformed over y's, x's delete is split in three around y's inserts: 10,003
  r = await post(x, room, { revision: 1, ops: mine, client_id: 'xsite.1' });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error, 'operation_too_large', r.text);
  assert.match(r.json.message, /10003 components/);
  assert.deepEqual(await doc(x, room), { revision: 2, content: after, language: 'python' });
  // sent again it is refused again, and a smaller edit by x at that old revision is taken
  r = await post(x, room, { revision: 1, ops: mine, client_id: 'xsite.1' });
  assert.equal(r.status, 413, r.text);
  r = await post(x, room, { revision: 1, ops: ['# '] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await doc(y, room), { revision: 3, content: '# ' + after, language: 'python' });
  await savedAt(room, 3);
});

test('a room holding an entry of 10,001 components (stored before the limit was kept) reads, commits, saves and restores', async () => {
  const a = await newUser();
  // long enough that the save of the entry is a batch of operations, not the text
  const base = 'x'.repeat(40000);
  const room = await roomWith(a, base);
  await savedAt(room, 1); // the first save: a checkpoint of the text
  // what the commit of [1,"a",1,"a",…] (10,000 items) at revision 1 stored before: its entry
  // with the final retain the script appended, the 10,001st component
  const ops = scattered(1, 'a', MAX / 2).concat([40000 - MAX / 2]);
  const entry = JSON.stringify({ u: a.user.id, s: 'site', ops });
  const dk = `cc:room:{${room.id}}:doc`;
  redis('RPUSH', `cc:room:{${room.id}}:ops`, entry);
  redis('HINCRBY', dk, 'length', String(MAX / 2));
  redis('HINCRBY', dk, 'bytes', String(MAX / 2));
  redis('HINCRBY', dk, 'revision', '1');
  redis('ZADD', 'cc:snap:due', String(Date.now()), room.id);
  const at2 = applyOp(base, ops);

  // everyone reads it
  assert.deepEqual(await doc(a, room), { revision: 2, content: at2, language: 'python' });
  // the snapshotter saves it
  await savedAt(room, 2);
  // a client behind it commits: transformed over the entry
  let r = await post(a, room, { revision: 1, ops: ['# '] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { revision: 3, ops: ['# ', MAX / 2 + 40000] });
  const at3 = '# ' + at2;
  assert.deepEqual(await doc(a, room), { revision: 3, content: at3, language: 'python' });
  await savedAt(room, 3);
  // the entry of 10,001 was saved in a batch of operations (not as text)
  assert.equal(sql(`SELECT count(*) FROM history_ops WHERE room_id = '${room.id}' AND first_revision <= 2 AND revision >= 2`), '1');
  // the history rebuilds the revisions from the saved checkpoint and batch
  r = await call('GET', `/api/rooms/${room.id}/history/2`, { token: a.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.content, at2);
  r = await call('GET', `/api/rooms/${room.id}/history/3`, { token: a.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.content, at3);
  // and so does the restore of a room Redis lost
  redis('DEL', dk, `cc:room:{${room.id}}:ops`);
  assert.deepEqual(await doc(a, room), { revision: 3, content: at3, language: 'python' });
});

test('many scattered edits: the history composes more than 10,000 components and still shows and restores them', async () => {
  const a = await newUser();
  // long enough that the scattered edits are saved as operations, not as text
  const base = 'x'.repeat(100000);
  const room = await roomWith(a, base);
  await savedAt(room, 1);
  // three operations of 6,000 components each, at places that do not meet: composed they
  // have over 13,000 (lib/store_doc.c composes them in memory, and stores only the text)
  const edits = [scattered(5, 'b', 3000), scattered(7, 'c', 3000), scattered(3, 'd', 3000)];
  const texts = [base];
  for (const e of edits) texts.push(applyOp(texts[texts.length - 1], e));
  assert.equal(await commitAll(a.token, room, 1, edits), 4);
  await savedAt(room, 4);
  // saved as operations (one batch or more), no checkpoint after the first
  assert.equal(sql(`SELECT count(*) FROM snapshots WHERE room_id = '${room.id}'`), '1');
  assert.equal(sql(`SELECT max(revision) FROM history_ops WHERE room_id = '${room.id}'`), '4');
  for (let rev = 2; rev <= 4; rev++) {
    const r = await call('GET', `/api/rooms/${room.id}/history/${rev}`, { token: a.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.content, texts[rev - 1], `revision ${rev}`);
  }
  redis('DEL', `cc:room:{${room.id}}:doc`, `cc:room:{${room.id}}:ops`);
  assert.deepEqual(await doc(a, room), { revision: 4, content: texts[3], language: 'python' });
});
