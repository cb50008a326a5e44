// Redis loses its last writes (an fsync window lost in a crash, a failover to a replica
// that was behind) after the snapshotter saved them: the room's document in Redis goes back
// to an earlier revision R while its history in PostgreSQL holds up to S > R
// (docs/INTERNALS.md, "When Redis loses its last writes"). The snapshotter must never append
// a batch made on Redis's text to the saved text (a chain no rebuild gets past), and must not
// leave the acknowledged edits R+1..S lost without a word: a Redis that is only behind is put
// back to the saved revision; one that took other commits since keeps what people type now,
// starts the chain again at a revision past both, and the saved revisions stay in the
// history. Either way the room's clients get `resync` {reason: document_restored}.
//
// The loss is made with the real Redis: the room's three keys of the write path (doc, ops,
// commits: docs/INTERNALS.md, "Redis keys") are copied aside at R (COPY, as DUMP and RESTORE
// would, into keys of the room's own slot) and copied back over the live ones (REPLACE)
// once the snapshotter has saved S.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { BASE, call, commitAll, newUser, redis, saved, sql, sseBlocks } from '../lib/api.mjs';
import { sseFields } from '../lib/sse.mjs';
import { waitFor } from '../lib/procs.mjs';
import { holdRoomSaves } from '../lib/pg.mjs';

const BASE_TEXT = '-'.repeat(2000); // long enough that a few characters typed save as a batch

async function roomWith(owner) {
  const r = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'lost writes', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  return r.json.room;
}


const WRITE_KEYS = ['doc', 'ops', 'commits'];
const liveKey = (room, k) => `cc:room:{${room.id}}:${k}`;
const asideKey = (room, k) => `cc:room:{${room.id}}:${k}:aside`;
// Redis as it stands now, kept aside (a key that does not exist is kept as missing)
function keepAside(room) {
  for (const k of WRITE_KEYS) {
    redis('DEL', asideKey(room, k));
    redis('COPY', liveKey(room, k), asideKey(room, k));
  }
}
// ...and put back over the live keys: Redis has lost what was written since
function loseWritesSince(room) {
  for (const k of WRITE_KEYS) {
    if (redis('EXISTS', asideKey(room, k)) === '1') redis('COPY', asideKey(room, k), liveKey(room, k), 'REPLACE');
    else redis('DEL', liveKey(room, k));
    redis('DEL', asideKey(room, k));
  }
}

const getDoc = async (a, room) => {
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
  assert.equal(d.status, 200, d.text);
  return d.json;
};

// The room's stream through the front door and the broker (SSE), collecting its events.
async function openStream(user, room) {
  const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: user.token, body: {} });
  assert.equal(t.status, 200, t.text);
  const ac = new AbortController();
  const res = await fetch(`${BASE}/events/rooms/${room.id}?ticket=${t.json.ticket}&subscribed=1`, { signal: ac.signal });
  assert.equal(res.status, 200);
  const events = [];
  const done = sseBlocks(res.body, (b) => {
    const f = sseFields(b);
    if (f.event) events.push({ type: f.event, id: f.id, data: f.data ? JSON.parse(f.data) : null });
  });
  await waitFor(() => events.some((e) => e.type === 'subscribed'), { what: 'the stream live' });
  return { events, async close() { ac.abort(); await done; } };
}

// The room reloaded from its saved history alone (Redis lost the room entirely): the text
// and revision a rebuild of the newest saved revision gives.
async function reloadFromHistory(a, room) {
  redis('DEL', ...WRITE_KEYS.map((k) => liveKey(room, k)));
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
  assert.equal(d.status, 200, `the saved history does not rebuild: ${d.text}`);
  return [d.json.revision, d.json.content];
}

// The snapshotter's count of rooms found with lost writes, by how they were handled (its
// metrics: docs/OPERATIONS.md, "Metrics"); null when the stack serves no metrics.
async function lossesCounted(handled) {
  const url = process.env.SNAPSHOTTER_METRICS_URL;
  if (!url) return null;
  const text = await (await fetch(url)).text();
  const m = text.match(new RegExp(`^codecollab_snapshotter_redis_losses_total\\{handled="${handled}"\\} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}

const snapshotterLog = () => {
  const f = `${process.env.CC_VAR}/log/snapshotter.log`;
  return process.env.CC_VAR && existsSync(f) ? readFileSync(f, 'utf8') : null;
};

// Revisions 1..3 typed and saved, Redis's keys kept aside there (R = 3), then 4..6 typed and
// saved (S = 6), and Redis loses 4..6: its document is back at revision 3.
async function savedThenLost() {
  const a = await newUser();
  const room = await roomWith(a);
  let rev = await commitAll(a.token, room, 0, [[BASE_TEXT], [2000, 'a'], [2001, 'b']]);
  await saved(room, 3);
  keepAside(room);
  rev = await commitAll(a.token, room, rev, [[2002, 'c'], [2003, 'd'], [2004, 'e']]);
  assert.equal(rev, 6);
  await saved(room, 6);
  return { a, room };
}

test('Redis behind its saved history, nothing typed since: the document comes back at the saved revision', async () => {
  const { a, room } = await savedThenLost();
  const s = await openStream(a, room);
  const counted = await lossesCounted('restored');
  try {
    loseWritesSince(room);
    assert.equal((await getDoc(a, room)).revision, 3);
    // the room is due (its mark kept through the loss, or made by an operator after a crash:
    // docs/OPERATIONS.md, "After Redis lost writes")
    redis('ZADD', 'cc:snap:due', '0', room.id);
    const d = await waitFor(async () => {
      const doc = await getDoc(a, room);
      return doc.revision === 6 && doc;
    }, { what: 'the document back at the saved revision 6', timeout: 20000 });
    assert.equal(d.content, BASE_TEXT + 'abcde');
    // every client of the room is told to fetch it again
    const told = await waitFor(() => s.events.find((e) => e.type === 'resync'), { what: 'a resync on the stream' });
    assert.deepEqual(told.data, { reason: 'document_restored', revision: 6, saved_revision: 6, text: 'saved' });
  } finally {
    await s.close();
  }
  // the operator's view: a warning naming the room and both revisions, and the count
  const line = new RegExp(`room ${room.id}: Redis lost its last writes: its document was back at revision 3, below the saved revision 6`);
  if (snapshotterLog() !== null) await waitFor(() => line.test(snapshotterLog()), { what: 'the warning in the snapshotter\'s log' });
  if (counted !== null) await waitFor(async () => await lossesCounted('restored') === counted + 1, { what: 'the loss counted' });
  // nothing new was saved, and the history rebuilds to the same text
  const h = await call('GET', `/api/rooms/${room.id}/history`, { token: a.token });
  assert.equal(h.status, 200, h.text);
  assert.equal(h.json.snapshots[0].revision, 6);
  assert.deepEqual(await reloadFromHistory(a, room), [6, BASE_TEXT + 'abcde']);
  // a client still at the lost state's revision must fetch the document; one at the saved
  // revision (it saw revision 6 before the loss) goes on
  const stale = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision: 3, ops: [2002, 'x'] } });
  assert.equal(stale.status, 409, stale.text);
  assert.equal(stale.json.error, 'revision_too_old');
  assert.equal(await commitAll(a.token, room, 6, [[2005, 'f']]), 7);
  assert.equal((await getDoc(a, room)).content, BASE_TEXT + 'abcdef');
});

// Redis lost 4..6, then took new commits from 3 on (under a hold of the room's saves, so they
// are all in before the snapshotter looks): `typed` of them. The live text is kept, at a
// revision past both Redis's and the saved one.
async function divergedCase(typed, liveText) {
  const { a, room } = await savedThenLost();
  const s = await openStream(a, room);
  const counted = await lossesCounted('restarted');
  let rev;
  const hold = await holdRoomSaves(process.env.DATABASE_URL, room.id);
  try {
    loseWritesSince(room);
    rev = await commitAll(a.token, room, 3, typed);
    await hold.release();
  } finally {
    hold.kill();
  }
  const expected = Math.max(6, rev) + 1;
  try {
    await saved(room, expected);
    const d = await getDoc(a, room);
    assert.deepEqual([d.revision, d.content], [expected, liveText]);
    const told = await waitFor(() => s.events.find((e) => e.type === 'resync'), { what: 'a resync on the stream' });
    assert.deepEqual(told.data, { reason: 'document_restored', revision: expected, saved_revision: 6, text: 'live' });
  } finally {
    await s.close();
  }
  const line = new RegExp(`room ${room.id}: Redis lost writes that the room's saved history holds and took other commits since \\(its revision was ${rev}, the newest saved 6\\): the live text goes on as revision ${expected}`);
  if (snapshotterLog() !== null) await waitFor(() => line.test(snapshotterLog()), { what: 'the warning in the snapshotter\'s log' });
  if (counted !== null) await waitFor(async () => await lossesCounted('restarted') === counted + 1, { what: 'the loss counted' });
  // the history: a checkpoint at the new revision, and the saved revisions of the lost
  // edits still there, with their text
  const h = await call('GET', `/api/rooms/${room.id}/history`, { token: a.token });
  assert.equal(h.status, 200, h.text);
  const revs = h.json.snapshots.map((x) => x.revision);
  assert.equal(revs[0], expected, `history: ${revs}`);
  assert.ok(revs.includes(6), `history: ${revs}`);
  assert.ok(!revs.some((r) => r > 6 && r < expected), `nothing saved from the diverged Redis on the old chain: ${revs}`);
  const six = await call('GET', `/api/rooms/${room.id}/history/6`, { token: a.token });
  assert.equal(six.status, 200, six.text);
  assert.equal(six.json.content, BASE_TEXT + 'abcde');
  const now = await call('GET', `/api/rooms/${room.id}/history/${expected}`, { token: a.token });
  assert.equal(now.status, 200, now.text);
  assert.equal(now.json.content, liveText);
  // a client at the revision the live document had before the restart must fetch it again
  const stale = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision: rev, ops: [1, 'q'] } });
  assert.equal(stale.status, 409, stale.text);
  assert.equal(stale.json.error, 'revision_too_old');
  // typing goes on from the new revision, saved as a batch on the new checkpoint, and the
  // history rebuilds to the live text
  assert.equal(await commitAll(a.token, room, expected, [[liveText.length, '!']]), expected + 1);
  await saved(room, expected + 1);
  assert.deepEqual(await reloadFromHistory(a, room), [expected + 1, liveText + '!']);
}

test('Redis lost writes and took more commits than it lost: the live text is kept and the chain starts again', async () => {
  await divergedCase([[2002, 'w'], [2003, 'x'], [2004, 'y'], [2005, 'z']], BASE_TEXT + 'abwxyz');
});

test('Redis lost writes and took fewer commits than it lost: the live text is kept and the chain starts again', async () => {
  await divergedCase([['v', 2002], [2003, 'u']], 'v' + BASE_TEXT + 'abu');
});

// The saved revision S = 6 is a checkpoint that kept no op log entry: a save made while the
// operations since the one before could not be gathered (more than the log holds piled up,
// say through a PostgreSQL outage). Made here from the batch the snapshotter saved: the
// batch goes, a checkpoint of the same text at 6 takes its place. Redis then loses 4..6 and
// takes new commits past 6, so it holds an entry of its own at 6 that nothing saved can be
// compared with. Whether or not it followed the history, no batch may be cut from it onto
// the saved text: the next save is a checkpoint of the live text, and the history rebuilds.
test('Redis past a saved checkpoint that kept no entry: the next save is a checkpoint of the live text, not a batch on the saved one', async () => {
  const { a, room } = await savedThenLost();
  const id = room.id.replace(/'/g, "''");
  sql(`BEGIN; DELETE FROM history_ops WHERE room_id = '${id}' AND revision = 6; ` +
    `INSERT INTO snapshots (room_id, revision, content) VALUES ('${id}', 6, '${BASE_TEXT}abcde'); COMMIT`);
  assert.equal(sql(`SELECT count(*) FROM snapshots WHERE room_id = '${id}' AND revision = 6 AND entry IS NULL`), '1');
  let rev;
  const hold = await holdRoomSaves(process.env.DATABASE_URL, room.id);
  try {
    loseWritesSince(room);
    rev = await commitAll(a.token, room, 3, [[2002, 'w'], [2003, 'x'], [2004, 'y'], [2005, 'z']]);
    await hold.release();
  } finally {
    hold.kill();
  }
  assert.equal(rev, 7);
  const live = BASE_TEXT + 'abwxyz';
  await saved(room, 7);
  assert.equal(sql(`SELECT count(*) FROM history_ops WHERE room_id = '${id}' AND revision > 6`), '0',
    'a batch was cut from Redis onto the saved checkpoint');
  const seven = await call('GET', `/api/rooms/${room.id}/history/7`, { token: a.token });
  assert.equal(seven.status, 200, seven.text);
  assert.equal(seven.json.content, live);
  const six = await call('GET', `/api/rooms/${room.id}/history/6`, { token: a.token });
  assert.equal(six.status, 200, six.text);
  assert.equal(six.json.content, BASE_TEXT + 'abcde');
  // typing goes on, saved as a batch on the new checkpoint, and the history rebuilds
  assert.equal(await commitAll(a.token, room, 7, [[live.length, '!']]), 8);
  await saved(room, 8);
  assert.deepEqual(await reloadFromHistory(a, room), [8, live + '!']);
});
