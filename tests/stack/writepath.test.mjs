// The write path (lib/store_doc.c): a commit stores the operation and the document's length, not
// its text; the text is put together ("folded") when someone reads it. These tests check
// what a user sees (statuses, revisions, text) across folds, size limits, documents stored
// in the old shape and many writers and readers at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE, call, newUser, redis } from '../lib/api.mjs';
import { ROOT, start, waitFor } from '../lib/procs.mjs';
import { holdRoomSaves } from '../lib/pg.mjs';

async function roomWith(owner) {
  const r = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'writepath', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  return r.json.room;
}

const post = (token, room, body) => call('POST', `/api/rooms/${room.id}/operations`, { token, body });
async function doc(token, room) {
  const r = await call('GET', `/api/rooms/${room.id}/document`, { token });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

test('a commit leaves the stored text alone; reading the document puts it together', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  assert.equal((await post(a.token, room, { revision: 0, ops: ['hello'] })).status, 200);
  assert.equal((await doc(a.token, room)).content, 'hello');
  const r = await post(a.token, room, { revision: 1, ops: [5, ' world'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revision, 2);
  // the commit did not write the text: Redis still holds it at revision 1
  assert.equal(redis('HGET', `cc:room:{${room.id}}:doc`, 'content'), 'hello');
  assert.equal(redis('HGET', `cc:room:{${room.id}}:doc`, 'length'), '11');
  assert.deepEqual(await doc(a.token, room), { revision: 2, content: 'hello world', language: 'python' });
  // the read stored what it folded
  assert.equal(redis('HGET', `cc:room:{${room.id}}:doc`, 'content'), 'hello world');
  // a retain past the end is refused by the stored length, without the text
  const bad = await post(a.token, room, { revision: 2, ops: [12, 'x'] });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json.error, 'invalid_operation');
  // a client behind transforms as before
  const late = await post(a.token, room, { revision: 1, ops: ['>'] });
  assert.equal(late.status, 200, late.text);
  assert.deepEqual(late.json, { revision: 3, ops: ['>', 11] });
  assert.equal((await doc(a.token, room)).content, '>hello world');
});

test('the size limit counts bytes exactly, also when multi-byte text is deleted', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  // 300,000 three-byte characters: 900,000 bytes (the limit is 1 MiB)
  let r = await post(a.token, room, { revision: 0, ops: ['€'.repeat(300000)] });
  assert.equal(r.status, 200, r.text);
  // replaced by 1,000,000 one-byte characters: fits (1,000,000 <= 1,048,576), though a
  // bound counting one byte per deleted character would say 1,600,000
  r = await post(a.token, room, { revision: 1, ops: [-300000, 'x'.repeat(1000000)] });
  assert.equal(r.status, 200, r.text);
  r = await post(a.token, room, { revision: 2, ops: [1000000, 'y'.repeat(50000)] });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error, 'document_too_large');
  r = await post(a.token, room, { revision: 2, ops: [1000000, 'y'.repeat(40000)] });
  assert.equal(r.status, 200, r.text);
  const d = await doc(a.token, room);
  assert.equal(d.revision, 3);
  assert.equal(d.content, 'x'.repeat(1000000) + 'y'.repeat(40000));
});

test('a document stored in the old shape (text only) is read and edited', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  assert.equal((await post(a.token, room, { revision: 0, ops: ['abc'] })).status, 200);
  // what the API before this change left in Redis: revision and text, no length
  redis('DEL', `cc:room:{${room.id}}:doc`);
  redis('HSET', `cc:room:{${room.id}}:doc`, 'revision', '1', 'content', 'abc');
  const r = await post(a.token, room, { revision: 1, ops: [3, 'd'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revision, 2);
  assert.deepEqual(await doc(a.token, room), { revision: 2, content: 'abcd', language: 'python' });

  const b = await roomWith(a);
  redis('HSET', `cc:room:{${b.id}}:doc`, 'revision', '4', 'content', 'zz🙂');
  assert.deepEqual(await doc(a.token, b), { revision: 4, content: 'zz🙂', language: 'python' });
  const s = await post(a.token, b, { revision: 4, ops: [3, '!'] });
  assert.equal(s.status, 200, s.text);
  assert.equal((await doc(a.token, b)).content, 'zz🙂!');
});

test('many writers and readers at once: every read is a whole revision, nothing is lost', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const WRITERS = 8, EACH = 80; // 640 commits: past a committer's fold (every 500)
  let done = false;
  const seen = [];
  const readers = Array.from({ length: 2 }, async () => {
    while (!done) {
      const d = await doc(a.token, room);
      // only one-character inserts are committed: the text has one per revision
      seen.push([d.revision, [...d.content].length]);
    }
  });
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    let rev = 0;
    for (let i = 0; i < EACH; i++) {
      const r = await post(a.token, room, { revision: rev, ops: [String.fromCharCode(97 + w)] });
      assert.equal(r.status, 200, r.text);
      rev = r.json.revision;
    }
  }));
  done = true;
  await Promise.all(readers);
  assert.ok(seen.length > 0);
  for (const [rev, len] of seen) assert.equal(len, rev, `a read at revision ${rev}`);
  const d = await doc(a.token, room);
  assert.equal(d.revision, WRITERS * EACH);
  for (let w = 0; w < WRITERS; w++) {
    const ch = String.fromCharCode(97 + w);
    assert.equal([...d.content].filter((c) => c === ch).length, EACH, `writer ${ch}`);
  }
});

// bench-opsgen (bench/c/opsgen.c), the writers of bench/ops.mjs, through lighttpd with a
// real token: every commit it counts ok is in the document, one "x" each.
test('bench-opsgen at a low fixed rate: the document holds exactly the commits it counted', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const url = new URL(BASE);
  const gen = start(join(ROOT, 'build/asan/bin/bench-opsgen'), ['--host', url.hostname, '--port', url.port,
    '--token', a.token, '--rooms', room.id, '--writers', '4', '--rate', '100', '--seconds', '1']);
  let out = '';
  gen.stdout.on('data', (d) => { out += d; });
  const { code } = await gen.exited;
  assert.equal(code, 0, gen.output);
  assert.equal(gen.output.trim(), out.trim(), 'nothing on stderr');
  const j = JSON.parse(out);
  assert.equal(j.failed, 0, j.first_failure);
  assert.ok(j.ok >= 50 && j.ok <= 100, `${j.ok} commits at 100/s for 1 s`);
  assert.deepEqual(await doc(a.token, room), { revision: j.ok, content: 'x'.repeat(j.ok), language: 'python' });
});

test('the right to edit is asked with the commit: cached viewers refused, a cold cache asks PostgreSQL', async () => {
  const owner = await newUser();
  const m = await newUser();
  const room = await roomWith(owner);
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: m.token, body: { invite: room.invite } });
  assert.equal(j.status, 200, j.text);
  let r = await post(m.token, room, { revision: 0, ops: ['a'] });
  assert.equal(r.status, 200, r.text);
  // the member cache lost the entry: PostgreSQL still says editor
  redis('HDEL', `cc:room:{${room.id}}:members`, String(m.user.id));
  r = await post(m.token, room, { revision: 1, ops: [1, 'b'] });
  assert.equal(r.status, 200, r.text);
  const d = await call('PUT', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal(d.status, 200, d.text);
  r = await post(m.token, room, { revision: 2, ops: [2, 'c'] });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.json.error, 'forbidden');
  // a stranger, and a room that does not exist, as before
  const s = await newUser();
  r = await post(s.token, room, { revision: 2, ops: ['x'] });
  assert.equal(r.status, 403, r.text);
  r = await post(s.token, { id: 'nosuchroom' }, { revision: 0, ops: ['x'] });
  assert.equal(r.status, 404, r.text);
  assert.equal(redis('EXISTS', 'cc:room:{nosuchroom}:doc'), '0');
  assert.equal((await doc(owner.token, room)).content, 'ab');
});

test('the commit script writes the final retain: short ops, a retain before the end, control characters', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  assert.equal((await post(a.token, room, { revision: 0, ops: ['hello world'] })).status, 200);
  // an op naming less than the document: the rest is kept, and the answer, the event and
  // the stored op name the whole length
  let r = await post(a.token, room, { revision: 1, ops: [2, 'x', 3] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { revision: 2, ops: [2, 'x', 9] });
  const entry = JSON.parse(redis('LINDEX', `cc:room:{${room.id}}:ops`, '-1'));
  assert.deepEqual(entry.ops, [2, 'x', 9]);
  // text with escaped control characters (U+0001 is what marks the retain's place inside
  // the API) and an op that already ends at the end of the document
  r = await post(a.token, room, { revision: 2, ops: [12, '\u0001;\u0001'] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { revision: 3, ops: [12, '\u0001;\u0001'] });
  // a delete to the end, no retain after it
  r = await post(a.token, room, { revision: 3, ops: [11, -4] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { revision: 4, ops: [11, -4] });
  assert.deepEqual(await doc(a.token, room), { revision: 4, content: 'hexllo worl', language: 'python' });
  assert.equal(redis('HGET', `cc:room:{${room.id}}:doc`, 'length'), '11');
});

// DOCUMENT_PENDING_OPS_MAX: scripts/test.sh gives the stack a bound just above the fold
// interval (500), so that the fold at the 500th pending operation fails first and the bound
// comes soon after; the default (5,000) would take ten times the commits.
const PENDING_MAX = Number(process.env.DOCUMENT_PENDING_OPS_MAX || 5000);
// How long a failed fold is remembered (DOC_FOLD_FAILED_MS, lib/store_doc.h).
const FOLD_FAILED_MS = 5000;

// codecollab_api_document_damaged_total by answer ({read, commit}), or null without the
// API's metrics (API_METRICS_URL, scripts/stack.sh).
async function damagedCount() {
  if (!process.env.API_METRICS_URL) return null;
  const r = await fetch(process.env.API_METRICS_URL);
  assert.equal(r.status, 200);
  const text = await r.text();
  const at = (answer) => Number(new RegExp(`^codecollab_api_document_damaged_total\\{answer="${answer}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  const out = { read: at('read'), commit: at('commit') };
  assert.ok(Number.isFinite(out.read) && Number.isFinite(out.commit), 'codecollab_api_document_damaged_total is exported');
  return out;
}

test('a damaged stored operation: commits stop at DOCUMENT_PENDING_OPS_MAX with 503, nothing committed is lost', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const dk = `cc:room:{${room.id}}:doc`, lk = `cc:room:{${room.id}}:ops`;
  let rev = 0;
  for (const t of ['a', 'b', 'c']) {
    const r = await post(a.token, room, { revision: rev, ops: rev ? [rev, t] : [t] });
    assert.equal(r.status, 200, r.text);
    rev = r.json.revision;
  }
  // a read folds them: the stored text is at revision 3
  assert.equal((await doc(a.token, room)).content, 'abc');
  assert.equal(redis('HGET', dk, 'crev'), '3');
  // the snapshotter saves revision 3 within SNAPSHOT_INTERVAL_MS (2 s) of the first commit
  const saved = async () => (await call('GET', `/api/rooms/${room.id}/history`, { token: a.token })).json?.snapshots?.[0]?.revision === 3;
  await waitFor(saved, { what: 'revision 3 saved' });
  // the next commit's save is due 2 s after it: the entry is damaged long before that
  let r = await post(a.token, room, { revision: 3, ops: [3, 'd'] });
  assert.equal(r.status, 200, r.text);
  rev = 4;
  // someone writes a bad entry over revision 4's, the one operation not folded yet
  const good = redis('LINDEX', lk, '-1');
  redis('LSET', lk, '-1', 'not an operation');
  // the text cannot be put together without it: reads answer 500, bound or not, and say
  // what is wrong: the stored operation of revision 4 is damaged, an operator must act
  const damagedBefore = await damagedCount();
  const broken = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
  assert.equal(broken.status, 500, broken.text);
  assert.equal(broken.json.error, 'document_damaged', broken.text);
  assert.match(broken.json.message, /stored operation of revision 4 is damaged/);
  assert.match(broken.json.message, /an operator must repair it/);
  assert.deepEqual(Object.keys(broken.json).sort(), ['error', 'message']);
  if (damagedBefore) {
    const after = await damagedCount();
    assert.ok(after.read >= damagedBefore.read + 1, `damaged reads counted: ${JSON.stringify(after)}`);
  }
  // commits at the current revision do not read the log, so they go on; the fold at every
  // 500th fails; the last one taken leaves PENDING_MAX operations after the stored text
  while (rev - 3 < PENDING_MAX) {
    r = await post(a.token, room, { revision: rev, ops: ['x'], client_id: `t.${rev}` });
    assert.equal(r.status, 200, r.text);
    rev = r.json.revision;
  }
  assert.equal(redis('HGET', dk, 'crev'), '3', 'no fold got past the damaged entry');
  // one more: refused, at the current revision and from behind alike, and nothing stored
  for (const base of [rev, rev - 10]) {
    r = await post(a.token, room, { revision: base, ops: ['y'], client_id: `t.late.${base}` });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error, 'document_unfoldable', r.text);
    assert.match(r.json.message, /history cannot be folded/);
    assert.match(r.json.message, /an operator must repair it/);
    assert.match(r.json.message, new RegExp(`${PENDING_MAX} operations`));
    assert.deepEqual(Object.keys(r.json).sort(), ['error', 'message']);
  }
  assert.equal(redis('HGET', dk, 'revision'), String(rev));
  // the failed fold is remembered for a few seconds, naming revision 4 and its entry. A
  // refusal that finds the mark does not set it again, so the mark is taken away first:
  // the next refusal folds, fails and marks afresh, whatever time has passed
  const fk = `cc:room:{${room.id}}:foldfail`;
  const refuseAndMark = async (clientId) => {
    redis('DEL', fk);
    const res = await post(a.token, room, { revision: rev, ops: ['y'], client_id: clientId });
    assert.equal(res.status, 503, res.text);
    assert.equal(res.json.error, 'document_unfoldable', res.text);
  };
  await refuseAndMark('t.mark');
  assert.match(redis('GET', fk), /^4:[0-9a-f]{40}$/);
  const ttl = Number(redis('PTTL', fk));
  assert.ok(ttl > 0 && ttl <= FOLD_FAILED_MS, `the mark lasts ${ttl} ms`);
  // the same through PUT …/document: it reads first, and that read fails already
  r = await call('PUT', `/api/rooms/${room.id}/document`, { token: a.token, body: { content: 'z', base_revision: rev } });
  assert.equal(r.status, 500, r.text);
  assert.equal(r.json.error, 'document_damaged', r.text);
  // what was saved before the damage reads as ever
  r = await call('GET', `/api/rooms/${room.id}/history/3`, { token: a.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.content, 'abc');
  assert.ok(await saved(), 'the history list answers, newest save 3');
  // a log line names the room (the API processes log to lighttpd's error log; under
  // WEB=apache to api.log); the make cluster layout keeps its logs elsewhere
  if (process.env.CC_VAR && !process.env.REDIS_CLUSTER) {
    const log = `${process.env.CC_VAR}/log/${process.env.WEB === 'apache' ? 'api.log' : 'lighttpd.log'}`;
    const logged = (line) => waitFor(() => readFileSync(log, 'utf8').includes(`room ${room.id}: ${line}`), { what: line });
    await logged('stored operation 4 does not parse');
    await logged('500 operations could not be folded');
    await logged(`commit refused: ${PENDING_MAX} operations wait to be folded`);
    // refusals are cheap: while the mark lasts a refused commit does not fold (read the
    // whole list and parse it) again, so the failed fold's line comes once per mark
    // lifetime, not once per commit (each fold logs it before its answer is written)
    const folds = () => readFileSync(log, 'utf8').split('\n').filter((l) => l.includes(`room ${room.id}: stored operation 4 does not parse`)).length;
    const before = folds(), t0 = Date.now(), N = 20;
    for (let i = 0; i < N; i++) {
      r = await post(a.token, room, { revision: rev, ops: ['y'], client_id: `t.burst.${i}` });
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.error, 'document_unfoldable', r.text);
    }
    const lifetimes = Math.ceil((Date.now() - t0) / FOLD_FAILED_MS) + 1;
    const tried = folds() - before;
    assert.ok(tried <= lifetimes, `${N} refused commits folded ${tried} times (at most ${lifetimes} expected)`);
  }
  if (damagedBefore) {
    const after = await damagedCount();
    assert.ok(after.commit >= damagedBefore.commit + 2, `refused commits counted: ${JSON.stringify(after)}`);
  }
  // every committed operation is still stored: the log holds revisions 4..rev
  const first = rev - Number(redis('LLEN', lk)) + 1;
  assert.ok(first <= 4, `the log starts at ${first}`);
  for (const i of [5, rev]) {
    assert.deepEqual(JSON.parse(redis('LINDEX', lk, String(i - first))).ops, ['x', i - 1]);
  }
  // one more refusal, without the mark, leaves the room freshly marked
  await refuseAndMark('t.last');
  assert.match(redis('GET', fk), /^4:/);
  // an operator puts the entry right: the next commit folds everything and is taken,
  // without a read first and without waiting for the mark to lapse (it names the entry as
  // it was)
  redis('LSET', lk, String(4 - first), good);
  r = await post(a.token, room, { revision: rev, ops: ['!'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revision, rev + 1);
  // the commit's fold got past the entry: the stored text is at rev at least (at rev + 1
  // when the snapshotter, which retries the room's save and folds before it writes, came
  // in right after the commit: fresh run s46d saw 524 for 523)
  const crev = Number(redis('HGET', dk, 'crev'));
  assert.ok(crev === rev || crev === rev + 1, `the stored text is at ${crev}, expected ${rev} or ${rev + 1}`);
  const d = await doc(a.token, room);
  assert.equal(d.revision, rev + 1);
  assert.equal(d.content, '!' + 'x'.repeat(rev - 4) + 'abcd');
});

test('a damaged document near DOCUMENT_MAX_BYTES: the commit that folds to measure it answers 500 document_damaged', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const dk = `cc:room:{${room.id}}:doc`, lk = `cc:room:{${room.id}}:ops`;
  // the room's saves held: a save folds the document too, and one that came between the
  // steps below would fold what they take apart (a fresh run of 2026-12-06 saved the room
  // right after its op was mended, before its text was cut short: the short text was then
  // the text at revision 2, which reads fine)
  const hold = await holdRoomSaves(process.env.DATABASE_URL, room.id);
  try {
    // 1,000,000 bytes, folded into the stored text (crev 1), then one small op not folded
    let r = await post(a.token, room, { revision: 0, ops: ['x'.repeat(1000000)] });
    assert.equal(r.status, 200, r.text);
    assert.equal((await doc(a.token, room)).revision, 1);
    assert.equal(redis('HGET', dk, 'crev'), '1');
    r = await post(a.token, room, { revision: 1, ops: [1000000, 'a'] });
    assert.equal(r.status, 200, r.text);
    // a commit past the size bound folds the text to measure it exactly (lib/store_doc.c,
    // exact_size_after); 50,000 more bytes would pass the limit (1 MiB)
    const big = { revision: 2, ops: [1000001, 'y'.repeat(50000)] };
    // the unfolded op of revision 2 damaged: the commit names it, as a read does
    const good = redis('LINDEX', lk, '-1');
    redis('LSET', lk, '-1', 'not an operation');
    r = await post(a.token, room, big);
    assert.equal(r.status, 500, r.text);
    assert.equal(r.json.error, 'document_damaged', r.text);
    assert.match(r.json.message, /stored operation of revision 2 is damaged/);
    assert.deepEqual(Object.keys(r.json).sort(), ['error', 'message']);
    // the stored text (at revision 1) cut short, then the op repaired: the op of revision 2
    // no longer fits the text, and either may be at fault; reads and the measuring commit
    // say both (in this order no fold can succeed in between: one of the two is damaged)
    redis('HSET', dk, 'content', 'short');
    redis('LSET', lk, '-1', good);
    const both = /stored text at revision 1 and its stored operation of revision 2 do not fit together/;
    const broken = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
    assert.equal(broken.status, 500, broken.text);
    assert.equal(broken.json.error, 'document_damaged', broken.text);
    assert.match(broken.json.message, both);
    r = await post(a.token, room, big);
    assert.equal(r.status, 500, r.text);
    assert.equal(r.json.error, 'document_damaged', r.text);
    assert.match(r.json.message, both);
    assert.equal(redis('HGET', dk, 'revision'), '2', 'nothing was committed');
    await hold.release();
  } finally {
    hold.kill();
  }
});
