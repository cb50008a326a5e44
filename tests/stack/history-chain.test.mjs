// A room's saved history is one chain (lib/store_doc.c, store_doc_snapshot and
// store_doc_history_text): each batch of typed operations starts right after the revision
// saved before it. Two saves of one room at once (two snapshotters, or one that claimed the
// room twice) must not both write a batch after the same saved revision; and history rows
// that exist but do not rebuild the newest revision are damage, never a room restored empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { call, commitAll, newUser, redis, saved, sql } from '../lib/api.mjs';
import { ROOT, start, stop, waitFor } from '../lib/procs.mjs';
import { holdRoomRow } from '../lib/pg.mjs';

const SNAP_BIN = process.env.CC_SNAP_BIN || join(ROOT, 'build/asan/bin/codecollab-snapshotter');
const BASE_TEXT = '-'.repeat(2000); // long enough that a few characters typed save as a batch

async function roomWith(owner) {
  const r = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'chain', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  return r.json.room;
}


// first_revision-revision of each batch, in order
const batches = (room) => sql(`SELECT string_agg(first_revision || '-' || revision, ',' ORDER BY revision) FROM history_ops WHERE room_id = '${room.id}'`);

test('history rows that do not chain are an error on restore, never an empty room at revision 0', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  let rev = await commitAll(a.token, room, 0, [[BASE_TEXT]]);
  await saved(room, 1);
  rev = await commitAll(a.token, room, rev, [[2000, 'a'], [2001, 'b']]);
  await saved(room, 3);
  rev = await commitAll(a.token, room, rev, [[2002, 'c']]);
  await saved(room, 4);
  assert.equal(batches(room), '2-3,4-4');
  // what a second snapshotter that read the same saved revision (1) wrote: 2..4, over 2..3
  sql(`UPDATE history_ops n SET first_revision = 2, ops = left(o.ops, -1) || ',' || substr(n.ops, 2)
       FROM history_ops o WHERE n.room_id = '${room.id}' AND o.room_id = n.room_id
       AND n.revision = 4 AND o.revision = 3`);
  assert.equal(batches(room), '2-3,2-4');
  // Redis loses the room's document: it is restored from that history
  redis('DEL', `cc:room:{${room.id}}:doc`, `cc:room:{${room.id}}:ops`);
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
  assert.notDeepEqual(d.json && [d.json.revision, d.json.content], [0, ''], `restored empty: ${d.text}`);
  assert.equal(d.status, 500, d.text);
  assert.equal(d.json.error, 'internal');
  assert.match(d.json.message, /saved history .*damaged.*revision 4/);
  // and no empty document was made in Redis meanwhile
  assert.equal(redis('EXISTS', `cc:room:{${room.id}}:doc`), '0');
});

// Two saves of one room are held by a psql session that locks the room's row
// (holdRoomRow): an insert into history_ops waits for it (its foreign key check), while
// commits (which only read the row) and the snapshotter's thinning go on.
// saves of this database waiting for a lock: at their insert into history_ops, or (with
// saves of a room one at a time) at the lock that lets one save of the room go on
const savesHeld = () => Number(sql(`SELECT count(*) FROM pg_stat_activity
  WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND (query ILIKE 'INSERT INTO history_ops%' OR query ILIKE '%pg_advisory_xact_lock%')`));

test('two saves of one room at once write batches that chain, no overlap and no gap', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  let rev = await commitAll(a.token, room, 0, [[BASE_TEXT]]);
  await saved(room, 1); // the first save: a checkpoint
  assert.equal(savesHeld(), 0);
  const lock = await holdRoomRow(process.env.DATABASE_URL, room.id);
  let snap;
  try {
    // the stack's snapshotter claims the room and is held saving revision 2
    rev = await commitAll(a.token, room, rev, [[2000, 'a']]);
    await waitFor(() => savesHeld() >= 1, { what: 'the first save held', timeout: 20000 });
    // more typing marks the room due again; a second snapshotter claims it and saves too
    rev = await commitAll(a.token, room, rev, [[2001, 'b'], [2002, 'c']]);
    snap = start(SNAP_BIN, [], { env: process.env });
    await waitFor(() => savesHeld() >= 2, { what: 'the second save held as well', timeout: 20000 });
    await lock.release();
    await saved(room, 4);
  } finally {
    lock.kill();
    if (snap) {
      const ex = await stop(snap);
      assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
    }
  }
  assert.equal(sql(`SELECT count(*) FROM snapshots WHERE room_id = '${room.id}'`), '1');
  // each batch starts right after the one before (the checkpoint at 1 before the first)
  const rows = sql(`SELECT first_revision, revision FROM history_ops WHERE room_id = '${room.id}' ORDER BY revision`)
    .split('\n').map((l) => l.split('|').map(Number));
  let next = 2;
  for (const [first, last] of rows) {
    assert.equal(first, next, `batches ${batches(room)} do not chain`);
    next = last + 1;
  }
  assert.equal(next, 5, `batches ${batches(room)} end at revision 4`);
  // and the room comes back from them as typed
  redis('DEL', `cc:room:{${room.id}}:doc`, `cc:room:{${room.id}}:ops`);
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
  assert.equal(d.status, 200, d.text);
  assert.deepEqual([d.json.revision, d.json.content], [4, BASE_TEXT + 'abc']);
});
