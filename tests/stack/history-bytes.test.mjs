// Rebuilding a revision reads the checkpoint before it and every batch after that checkpoint
// (lib/store_doc.c, store_doc_history_text). A save therefore writes a checkpoint as soon as
// the batches since the last one would hold more than twice the text (64 KiB at least), not
// only every HISTORY_CHECKPOINT_OPS (5,000) operations: an editor who replaces most of a
// large text every save would otherwise pile up thousands of batches nearly the text's size,
// all read by one request for a revision.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, commitAll, newUser, saved, sql } from '../lib/api.mjs';

const LEN = 40000; // 2 x 40,000 bytes is over the 64 KiB floor: the text sets the bound
const KEEP = 10000; // each save keeps the first 10,000 characters and replaces the rest
const textAt = (rev) => 'a'.repeat(KEEP) + String.fromCharCode(97 + rev).repeat(LEN - KEEP);

test('a checkpoint is written once the batches since the last one pass twice the text; every revision still reads back exactly', async () => {
  const a = await newUser();
  const r = await call('POST', '/api/rooms', { token: a.token, body: { name: 'bytes', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  const room = r.json.room;
  const listSnaps = () => sql(`SELECT string_agg(revision::text, ',' ORDER BY revision) FROM snapshots WHERE room_id = '${room.id}'`);
  const listBatches = () => sql(`SELECT string_agg(first_revision || '-' || revision, ',' ORDER BY revision) FROM history_ops WHERE room_id = '${room.id}'`);

  let rev = await commitAll(a.token, room, 0, [[textAt(1)]]);
  assert.equal(rev, 1);
  await saved(room, 1); // the first save: a checkpoint
  // one commit a save, each replacing three quarters of the text: batches of about 30,000
  // bytes (less than the text, so each is a batch by the older rules), and the third since a
  // checkpoint takes the batches past 80,000 bytes
  const replace = async (to) => {
    rev = await commitAll(a.token, room, rev, [[KEEP, -(LEN - KEEP), textAt(to).slice(KEEP)]]);
    assert.equal(rev, to);
    await saved(room, to);
  };
  await replace(2);
  await replace(3);
  assert.equal(listSnaps(), '1');
  assert.equal(listBatches(), '2-2,3-3');
  await replace(4);
  assert.equal(listSnaps(), '1,4', `batches ${listBatches()}`);
  assert.equal(listBatches(), '2-2,3-3');
  await replace(5);
  await replace(6);
  assert.equal(listBatches(), '2-2,3-3,5-5,6-6');
  // batches saved before the sum was kept with them (an upgraded database) count as well
  sql(`UPDATE history_ops SET chain_bytes = NULL WHERE room_id = '${room.id}'`);
  await replace(7);
  assert.equal(listSnaps(), '1,4,7', `batches ${listBatches()}`);
  assert.equal(listBatches(), '2-2,3-3,5-5,6-6');
  // what any rebuild reads after a checkpoint stays within twice the text
  const most = Number(sql(`SELECT max(b) FROM (SELECT sum(octet_length(h.ops)) AS b FROM history_ops h
    WHERE h.room_id = '${room.id}' GROUP BY (SELECT max(s.revision) FROM snapshots s
    WHERE s.room_id = h.room_id AND s.revision < h.revision)) t`));
  assert.ok(most > LEN && most <= 2 * LEN, `${most} bytes of batches after one checkpoint`);

  // what a reader of the room sees: every save listed, every revision's exact text
  const hist = await call('GET', `/api/rooms/${room.id}/history`, { token: a.token });
  assert.equal(hist.status, 200, hist.text);
  assert.deepEqual(hist.json.snapshots.map((s) => [s.revision, s.length]),
    [7, 6, 5, 4, 3, 2, 1].map((v) => [v, LEN]));
  for (let v = 1; v <= 7; v++) {
    const one = await call('GET', `/api/rooms/${room.id}/history/${v}`, { token: a.token });
    assert.equal(one.status, 200, one.text);
    assert.equal(one.json.revision, v);
    assert.ok(one.json.content === textAt(v), `revision ${v} reads back as it was typed`);
  }
});

// A chain saved before that rule can still be far longer: GET /history/{rev} refuses to read
// more than 16 MiB of batches (4 x DOCUMENT_MAX_BYTES when that is more) for one revision,
// with 413 history_too_large, instead of loading them into the API process. The long batch
// here is a real one padded with 17 MiB of JSON white space (the same operations).
test('a revision whose rebuild would read more than the budget is refused with 413, the checkpoint stays readable', async () => {
  const a = await newUser();
  const r = await call('POST', '/api/rooms', { token: a.token, body: { name: 'budget', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  const room = r.json.room;
  const base = '-'.repeat(2000); // long enough that a few characters typed save as a batch
  let rev = await commitAll(a.token, room, 0, [[base]]);
  await saved(room, 1);
  rev = await commitAll(a.token, room, rev, [[2000, ' world']]);
  await saved(room, 2);
  rev = await commitAll(a.token, room, rev, [[2006, '!']]);
  await saved(room, 3);
  assert.equal(sql(`SELECT string_agg(first_revision || '-' || revision, ',' ORDER BY revision) FROM history_ops WHERE room_id = '${room.id}'`), '2-2,3-3');
  const get = (v) => call('GET', `/api/rooms/${room.id}/history/${v}`, { token: a.token });
  assert.equal((await get(2)).json.content, base + ' world');
  sql(`UPDATE history_ops SET ops = ops || repeat(' ', 17 * 1024 * 1024) WHERE room_id = '${room.id}' AND revision = 2`);
  for (const v of [2, 3]) {
    const one = await get(v);
    assert.equal(one.status, 413, one.text);
    assert.equal(one.json.error, 'history_too_large');
    assert.match(one.json.message, new RegExp(`revision ${v} would take \\d+ bytes`));
  }
  const cp = await get(1);
  assert.equal(cp.status, 200, cp.text);
  assert.equal(cp.json.content, base);
  // the same batch within the budget reads back as before
  sql(`UPDATE history_ops SET ops = rtrim(ops) WHERE room_id = '${room.id}' AND revision = 2`);
  const back = await get(3);
  assert.equal(back.status, 200, back.text);
  assert.equal(back.json.content, base + ' world!');
});
