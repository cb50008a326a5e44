// History that grows with the typing (lib/store_doc.c, schema migration 4): the snapshotter
// stores a room's first save as a checkpoint (full text) and later saves as the operations
// typed since; any revision from a checkpoint on can be shown; restore after Redis lost a
// room uses the checkpoint plus the operations; old history is thinned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { call, commitAll, newUser, redis, replicaCaughtUp, saved, sql } from '../lib/api.mjs';
import { ROOT, start, stop, waitFor } from '../lib/procs.mjs';

const SNAP_BIN = process.env.CC_SNAP_BIN || join(ROOT, 'build/asan/bin/codecollab-snapshotter');

async function roomWith(owner) {
  const r = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'history', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  return r.json.room;
}

test('later saves store the typed operations, not the text; every revision can be shown', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const big = 'x'.repeat(20000) + '\n';
  let rev = await commitAll(a.token, room, 0, [[big]]);
  await saved(room, 1);
  // typing: one character at a time at the end
  rev = await commitAll(a.token, room, rev, ['p', 'r', 'i', 'n', 't'].map((ch, i) => [big.length + i, ch]));
  assert.equal(rev, 6);
  await saved(room, 6);
  // one checkpoint (the first save), then a batch of the five operations
  assert.equal(sql(`SELECT count(*) FROM snapshots WHERE room_id = '${room.id}'`), '1');
  assert.equal(sql(`SELECT first_revision || '-' || revision FROM history_ops WHERE room_id = '${room.id}'`), '2-6');
  assert.ok(Number(sql(`SELECT sum(octet_length(ops)) FROM history_ops WHERE room_id = '${room.id}'`)) < 200);

  const hist = await call('GET', `/api/rooms/${room.id}/history`, { token: a.token });
  assert.equal(hist.status, 200, hist.text);
  assert.deepEqual(hist.json.snapshots.map((s) => [s.revision, s.length]), [[6, big.length + 5], [1, big.length]]);
  for (const s of hist.json.snapshots) assert.match(s.saved_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  // a listed revision, and one in the middle of a batch
  let one = await call('GET', `/api/rooms/${room.id}/history/6`, { token: a.token });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.content, big + 'print');
  assert.equal(one.json.saved_at, hist.json.snapshots[0].saved_at);
  one = await call('GET', `/api/rooms/${room.id}/history/3`, { token: a.token });
  assert.equal(one.status, 200, one.text);
  assert.deepEqual([one.json.revision, one.json.content], [3, big + 'pr']);
  one = await call('GET', `/api/rooms/${room.id}/history/1`, { token: a.token });
  assert.equal(one.json.content, big);
  assert.equal((await call('GET', `/api/rooms/${room.id}/history/7`, { token: a.token })).status, 404);
  assert.equal((await call('GET', `/api/rooms/${room.id}/history/0`, { token: a.token })).status, 404);

  // Redis loses the room: the document comes back from the checkpoint and the operations
  redis('DEL', `cc:room:{${room.id}}:doc`, `cc:room:{${room.id}}:ops`);
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
  assert.deepEqual(d.json, { revision: 6, content: big + 'print', language: 'python' });
  // editing and saving carry on from there (the next save is a batch again)
  rev = await commitAll(a.token, room, 6, [[big.length + 5, '()']]);
  await saved(room, 7);
  one = await call('GET', `/api/rooms/${room.id}/history/7`, { token: a.token });
  assert.equal(one.json.content, big + 'print()');
  assert.equal(sql(`SELECT count(*) FROM snapshots WHERE room_id = '${room.id}'`), '1');
});

test('old history is thinned: operations go once a later checkpoint holds them, checkpoints to one an hour', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  // text long enough that a save of a few characters typed is a batch, not a checkpoint
  const base = '-'.repeat(1000);
  let rev = await commitAll(a.token, room, 0, [[base + 'a']]);
  await saved(room, 1);
  rev = await commitAll(a.token, room, rev, [[1001, 'b']]);
  await saved(room, 2);
  rev = await commitAll(a.token, room, rev, [[1002, 'c']]);
  await saved(room, 3);
  assert.equal(sql(`SELECT string_agg(revision::text, ',' ORDER BY revision) FROM history_ops WHERE room_id = '${room.id}'`), '2,3');
  // a checkpoint at 3 as the snapshotter writes every HISTORY_CHECKPOINT_OPS operations (with
  // the op log entry of its revision, which the next save compares with Redis's: the batch's
  // one entry), then all of it ten days old and in one hour
  sql(`INSERT INTO snapshots (room_id, revision, content, entry) SELECT '${room.id}', 3, '${base}abc', ` +
    `(ops::jsonb -> 0)::text FROM history_ops WHERE room_id = '${room.id}' AND revision = 3`);
  assert.equal(sql(`SELECT count(*) FROM snapshots WHERE room_id = '${room.id}' AND revision = 3 AND entry IS NOT NULL`), '1');
  sql(`DELETE FROM history_ops WHERE room_id = '${room.id}' AND revision = 3`);
  sql(`UPDATE snapshots SET saved_at = date_trunc('hour', now() - interval '10 days') + (revision || ' seconds')::interval WHERE room_id = '${room.id}'`);
  sql(`UPDATE history_ops SET saved_at = date_trunc('hour', now() - interval '10 days') + (revision || ' seconds')::interval WHERE room_id = '${room.id}'`);
  // and a recent batch after the checkpoint, which stays
  rev = await commitAll(a.token, room, rev, [[1003, 'd']]);
  await saved(room, 4);
  assert.equal((await call('GET', `/api/rooms/${room.id}/history/2`, { token: a.token })).status, 200);

  // a snapshotter thins when it starts (then every HISTORY_THIN_INTERVAL_S)
  const snap = start(SNAP_BIN, [], { env: { ...process.env, HISTORY_KEEP_OPS_DAYS: '7' } });
  try {
    await waitFor(() => sql(`SELECT count(*) FROM snapshots WHERE room_id = '${room.id}'`) === '1',
      { what: 'the old checkpoint thinned', timeout: 15000 });
  } finally {
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
  replicaCaughtUp(); // what the snapshotter thinned, as the API reads it
  assert.equal(sql(`SELECT string_agg(revision::text, ',' ORDER BY revision) FROM history_ops WHERE room_id = '${room.id}'`), '4');
  const hist = await call('GET', `/api/rooms/${room.id}/history`, { token: a.token });
  assert.deepEqual(hist.json.snapshots.map((s) => s.revision), [4, 3]);
  for (const gone of [1, 2]) {
    const r = await call('GET', `/api/rooms/${room.id}/history/${gone}`, { token: a.token });
    assert.equal(r.status, 404, `revision ${gone}: ${r.text}`);
  }
  assert.equal((await call('GET', `/api/rooms/${room.id}/history/3`, { token: a.token })).json.content, base + 'abc');
  assert.equal((await call('GET', `/api/rooms/${room.id}/history/4`, { token: a.token })).json.content, base + 'abcd');
});

test('a room left alone gets a checkpoint, so its old operations are thinned too', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const base = '-'.repeat(1000);
  let rev = await commitAll(a.token, room, 0, [[base]]);
  await saved(room, 1);
  rev = await commitAll(a.token, room, rev, [[1000, 'x'], [1001, 'y']]);
  await saved(room, 3);
  assert.equal(sql(`SELECT count(*) FROM snapshots WHERE room_id = '${room.id}'`), '1');
  assert.equal(sql(`SELECT count(*) FROM history_ops WHERE room_id = '${room.id}'`), '1');
  // nobody typed since: ten days later, the batch is past HISTORY_KEEP_OPS_DAYS and no
  // later checkpoint holds it
  sql(`UPDATE snapshots SET saved_at = now() - interval '10 days' WHERE room_id = '${room.id}'`);
  sql(`UPDATE history_ops SET saved_at = now() - interval '10 days' WHERE room_id = '${room.id}'`);

  const snap = start(SNAP_BIN, [], { env: { ...process.env, HISTORY_KEEP_OPS_DAYS: '7' } });
  try {
    await waitFor(() => sql(`SELECT count(*) FROM history_ops WHERE room_id = '${room.id}'`) === '0',
      { what: 'the idle room\'s old operations thinned', timeout: 15000 });
  } finally {
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
  replicaCaughtUp(); // what the snapshotter thinned, as the API reads it
  // the newest revision is a checkpoint now, and still shows and restores what was typed
  assert.equal(sql(`SELECT revision FROM snapshots WHERE room_id = '${room.id}' ORDER BY revision DESC LIMIT 1`), '3');
  const one = await call('GET', `/api/rooms/${room.id}/history/3`, { token: a.token });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.content, base + 'xy');
  const gone = await call('GET', `/api/rooms/${room.id}/history/2`, { token: a.token });
  assert.equal(gone.status, 404, gone.text);
});

// Thinning deletes in statements of at most 5,000 rows (lib/store_doc.c, delete_in_batches),
// showing life between them (lib/alive.h): a backlog larger than that still goes whole.
test('a thinning backlog larger than one statement (12,345 old batches, 7,000 old checkpoints in one hour) goes whole', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const old = "date_trunc('hour', now() - interval '10 days')";
  sql(`INSERT INTO history_ops (room_id, revision, first_revision, ops, length, saved_at) ` +
    `SELECT '${room.id}', r, r, '[]', 0, ${old} + (r || ' milliseconds')::interval FROM generate_series(2, 12346) r`);
  sql(`INSERT INTO snapshots (room_id, revision, content, saved_at) ` +
    `SELECT '${room.id}', r, 'x', ${old} + ((r - 12000) || ' milliseconds')::interval FROM generate_series(12346, 19346) r`);
  const snap = start(SNAP_BIN, [], { env: { ...process.env, HISTORY_KEEP_OPS_DAYS: '7' } });
  try {
    await waitFor(() => /history thinned: \d+ operation batches/.test(snap.output), { what: 'the thinning', timeout: 60000 });
  } finally {
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
  // every old batch (a later checkpoint holds each) and every old checkpoint but the hour's
  // newest; from other tests' rooms only what they left old
  const m = snap.output.match(/history thinned: (\d+) operation batches, (\d+) checkpoints removed/);
  assert.ok(m && Number(m[1]) >= 12345 && Number(m[2]) >= 7000, snap.output);
  assert.equal(sql(`SELECT count(*) FROM history_ops WHERE room_id = '${room.id}' AND saved_at < now() - interval '7 days'`), '0');
  assert.equal(sql(`SELECT string_agg(revision::text, ',') FROM snapshots WHERE room_id = '${room.id}' AND saved_at < now() - interval '7 days'`), '19346');
});

test('a history page that ends at revision 0 has next null; ?before=0, a before no page gives, is 400, and so is one past the largest revision', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  // a checkpoint of the empty document, as a save of revision 0 is stored
  sql(`INSERT INTO snapshots (room_id, revision, content) VALUES ('${room.id}', 0, '')`);
  let r = await call('GET', `/api/rooms/${room.id}/history?limit=1`, { token: a.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.snapshots.map((s) => s.revision), [0]);
  assert.equal(r.json.next, null, 'nothing is saved before revision 0');
  for (const bad of ['0', '-1', '-0', 'x', '4503599627370496', '9223372036854775807', '9223372036854775808']) {
    r = await call('GET', `/api/rooms/${room.id}/history?before=${bad}`, { token: a.token });
    assert.equal(r.status, 400, `before=${bad}: ${r.text}`);
    assert.equal(r.json.error, 'invalid_request', `before=${bad}`);
  }
  // revisions go up to 2^52 - 1 (an operation's `revision`): every revision a save can have
  // may be named, and the page below the largest holds every save
  for (const far of ['1125899906843000', '4503599627370495']) {
    r = await call('GET', `/api/rooms/${room.id}/history?before=${far}`, { token: a.token });
    assert.equal(r.status, 200, `before=${far}: ${r.text}`);
    assert.deepEqual(r.json.snapshots.map((s) => s.revision), [0], `before=${far}`);
  }
});

test('a room with an old batch and a recent one: the idle checkpoint covers the old batch, and no revision is listed twice', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const base = '-'.repeat(1000);
  let rev = await commitAll(a.token, room, 0, [[base]]);
  await saved(room, 1);
  rev = await commitAll(a.token, room, rev, [[1000, 'a'], [1001, 'b']]);
  await saved(room, 3);
  // the checkpoint and the first batch ten days old; then someone types again today
  sql(`UPDATE snapshots SET saved_at = now() - interval '10 days' WHERE room_id = '${room.id}'`);
  sql(`UPDATE history_ops SET saved_at = now() - interval '10 days' WHERE room_id = '${room.id}'`);
  rev = await commitAll(a.token, room, rev, [[1002, 'c'], [1003, 'd']]);
  await saved(room, 5);
  assert.equal(sql(`SELECT string_agg(first_revision || '-' || revision, ',' ORDER BY revision) FROM history_ops WHERE room_id = '${room.id}'`), '2-3,4-5');

  const snap = start(SNAP_BIN, [], { env: { ...process.env, HISTORY_KEEP_OPS_DAYS: '7' } });
  try {
    await waitFor(() => sql(`SELECT count(*) FROM history_ops WHERE room_id = '${room.id}' AND revision = 3`) === '0',
      { what: 'the old batch thinned', timeout: 15000 });
  } finally {
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
  replicaCaughtUp();
  // the checkpoint went where the old batch ended, not on the recent batch's revision
  // (which would have listed revision 5 twice: once as the batch, once as the checkpoint)
  let hist = await call('GET', `/api/rooms/${room.id}/history`, { token: a.token });
  assert.equal(hist.status, 200, hist.text);
  assert.deepEqual(hist.json.snapshots.map((s) => s.revision), [5, 3, 1]);
  assert.deepEqual(hist.json.snapshots[0].authors, [{ id: a.user.id, username: a.user.username }]);
  for (const [r, text] of [[3, base + 'ab'], [5, base + 'abcd']]) {
    const one = await call('GET', `/api/rooms/${room.id}/history/${r}`, { token: a.token });
    assert.equal(one.status, 200, one.text);
    assert.equal(one.json.content, text);
  }
  assert.equal((await call('GET', `/api/rooms/${room.id}/history/2`, { token: a.token })).status, 404);

  // a checkpoint and a batch that end at one revision (as an operator's repair may leave)
  // are one entry of the list, the one that says who typed
  sql(`INSERT INTO snapshots (room_id, revision, content) VALUES ('${room.id}', 5, '${base}abcd')`);
  replicaCaughtUp();
  hist = await call('GET', `/api/rooms/${room.id}/history`, { token: a.token });
  assert.deepEqual(hist.json.snapshots.map((s) => s.revision), [5, 3, 1]);
  assert.deepEqual(hist.json.snapshots[0].authors, [{ id: a.user.id, username: a.user.username }]);
  hist = await call('GET', `/api/rooms/${room.id}/history?limit=1&before=6`, { token: a.token });
  assert.deepEqual(hist.json.snapshots.map((s) => s.revision), [5]);
});
