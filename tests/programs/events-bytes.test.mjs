// A room's event history is bounded in bytes as well as in entries (lib/lua/_emit.lua,
// lib/events.h EVENTS_HISTORY_MAX_BYTES): the programs' own event script against a Redis of
// its own, with small bounds so that each case is a few entries. Each entry carries `n`, the
// running total of the bytes appended, and `b`, a lower bound of the bytes appended before the
// oldest entry; entries without them (written before these fields existed, or by a program
// still running the version before) are counted as they are met.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, stopRedis } from '../lib/worker-harness.mjs';
import { roomKey } from '../lib/resp.mjs';
import { rng } from '../lib/rng.mjs';

let redis;
let rc;
before(async () => {
  redis = await startRedis();
  rc = redis.client;
});
after(async () => { await stopRedis(redis); });

let seq = 0;
const newRoom = () => `evb${process.pid}x${++seq}`;
const key = (room) => roomKey(room, 'events');

// The history as [{id, type, data, n (a number, or undefined), size}], oldest first.
async function history(room) {
  return (await rc.cmd('XRANGE', key(room), '-', '+')).map(([id, f]) => {
    const o = { id };
    for (let i = 0; i + 1 < f.length; i += 2) o[f[i]] = f[i + 1];
    o.size = Buffer.byteLength(o.type) + Buffer.byteLength(o.data);
    if (o.n !== undefined) o.n = Number(o.n);
    if (o.b !== undefined) o.b = Number(o.b);
    return o;
  });
}
const bytes = (h) => h.reduce((s, e) => s + e.size, 0);
// data of exactly `size` bytes with type `t`: {"p":"xxx…"}
const dataOf = (t, size) => JSON.stringify({ p: 'x'.repeat(size - t.length - 8) });
// An entry as a program of the version before wrote it: type and data, no n.
const legacy = (room, t, data) => rc.cmd('XADD', key(room), '*', 'type', t, 'data', data);

test('the first event of a history counts its own bytes; each next one adds its own', async () => {
  const room = newRoom();
  await rc.emit(room, 'room', '{"a":1}');
  await rc.emit(room, 'operation', dataOf('operation', 500));
  const h = await history(room);
  assert.deepEqual(h.map((e) => e.n), [4 + 7, 4 + 7 + 500]);
  // the fields clients read are where they were: type, then data
  const [[, f]] = await rc.cmd('XRANGE', key(room), '-', '+', 'COUNT', 1);
  assert.deepEqual(f.slice(0, 4), ['type', 'room', 'data', '{"a":1}']);
});

test('past the byte bound the oldest entries go, exactly as many as needed, the newest always stays', async () => {
  const room = newRoom();
  const max = 10000;
  const sent = [];
  for (let i = 0; i < 12; i++) {
    const size = [3000, 1200, 4500, 800][i % 4];
    sent.push({ id: await rc.emit(room, 'operation', dataOf('operation', size), `1000 ${max}`), size });
    const h = await history(room);
    assert.ok(bytes(h) <= max, `${bytes(h)} bytes kept after event ${i}`);
    // the kept entries are the longest run of the newest that fits
    const kept = sent.slice(sent.length - h.length);
    assert.deepEqual(h.map((e) => e.id), kept.map((e) => e.id));
    const older = sent[sent.length - h.length - 1];
    if (older) assert.ok(bytes(h) + older.size > max, `event ${i}: ${older.id} would have fit`);
  }
  // one event larger than the bound: it alone stays
  const big = await rc.emit(room, 'operation', dataOf('operation', 25000), `1000 ${max}`);
  let h = await history(room);
  assert.deepEqual(h.map((e) => e.id), [big]);
  // and the next small one keeps it only if both fit: here they do not
  const small = await rc.emit(room, 'room', '{}', `1000 ${max}`);
  h = await history(room);
  assert.deepEqual(h.map((e) => e.id), [small]);
  assert.equal(h[0].n - sent.reduce((s, e) => s + e.size, 0), 25000 + 6, 'the running total goes on');
});

test('the count bound still applies to small events; the byte bound does not touch them', async () => {
  const room = newRoom();
  const data = dataOf('presence', 120);
  for (let i = 0; i < 1300; i++) await rc.emit(room, 'presence', data);
  const len = await rc.cmd('XLEN', key(room));
  assert.ok(len >= 1000 && len <= 1100, `${len} entries`);
  const info = await rc.cmd('XINFO', 'STREAM', key(room));
  assert.equal(info[info.indexOf('entries-added') + 1], 1300);
  const h = await history(room);
  assert.equal(h.at(-1).n, 1300 * 120);
  assert.equal(bytes(h), h.at(-1).n - h[0].n + h[0].size);
});

test('a history written without n: under the bound it is kept and counted; over it, trimmed at the first emit', async () => {
  // under the bound: nothing goes, and the new entry's total counts the old entries
  const a = newRoom();
  for (let i = 0; i < 5; i++) await legacy(a, 'operation', dataOf('operation', 1000));
  await rc.emit(a, 'room', '{}', '1000 10000');
  let h = await history(a);
  assert.equal(h.length, 6);
  assert.equal(h.at(-1).n, 5 * 1000 + 6);
  // the next ones trim the old entries as the total passes the bound
  for (let i = 0; i < 4; i++) await rc.emit(a, 'operation', dataOf('operation', 1500), '1000 10000');
  h = await history(a);
  assert.ok(bytes(h) <= 10000, `${bytes(h)} bytes`);
  assert.ok(h.length >= 6, `${h.length} entries: no more went than needed`);

  // a history far over the bound (as one that grew before this version): the first emit
  // leaves only what fits with it, reading no further back than that
  const b = newRoom();
  const old = [];
  for (let i = 0; i < 40; i++) old.push(await legacy(b, 'operation', dataOf('operation', 2000)));
  const id = await rc.emit(b, 'room', '{}', '1000 10000');
  h = await history(b);
  assert.deepEqual(h.map((e) => e.id), [...old.slice(-4), id]);
  assert.equal(h.at(-1).n, 4 * 2000 + 6);
  // from then on it is bounded like any other
  for (let i = 0; i < 10; i++) {
    await rc.emit(b, 'operation', dataOf('operation', 2500), '1000 10000');
    h = await history(b);
    assert.ok(bytes(h) <= 10000, `${bytes(h)} bytes`);
  }
  assert.ok(h.every((e) => e.n !== undefined));
});

test('entries without n in the middle (a program of the version before, during an upgrade) are counted', async () => {
  const room = newRoom();
  await rc.emit(room, 'room', '{}', '1000 10000');
  await legacy(room, 'operation', dataOf('operation', 700));
  await legacy(room, 'operation', dataOf('operation', 900));
  await rc.emit(room, 'room', '{}', '1000 10000');
  const h = await history(room);
  assert.deepEqual(h.map((e) => e.n), [6, undefined, undefined, 6 + 700 + 900 + 6]);
});

test('any mix of sizes, old entries and both bounds: the bytes stay bounded and the totals agree', async () => {
  const r = rng(0x5eed);
  for (let round = 0; round < 6; round++) {
    const room = newRoom();
    const max = 4000 + Math.floor(r() * 8000);
    const count = 5 + Math.floor(r() * 30);
    for (let i = 0; i < 120; i++) {
      const size = r() < 0.2 ? 100 + Math.floor(r() * 6000) : 20 + Math.floor(r() * 400);
      if (r() < 0.15) {
        await legacy(room, 'operation', dataOf('operation', size));
        continue;
      }
      const id = await rc.emit(room, 'operation', dataOf('operation', size), `${count} ${max}`);
      const h = await history(room);
      assert.equal(h.at(-1).id, id, 'the newest entry stays');
      assert.ok(h.length === 1 || bytes(h) <= max, `round ${round} event ${i}: ${bytes(h)} bytes > ${max}`);
      // b, where the oldest entry has n, is at most the bytes appended before it
      if (h[0].n !== undefined) {
        for (const e of h) if (e.b !== undefined) assert.ok(e.b <= h[0].n - h[0].size, `round ${round} event ${i}: b ${e.b}`);
      }
      // between two entries with n, the difference is the bytes of the entries after the
      // first up to the second
      let p = -1;
      for (let k = 0; k < h.length; k++) {
        if (h[k].n === undefined) continue;
        if (p >= 0) assert.equal(h[k].n - h[p].n, bytes(h.slice(p + 1, k + 1)), `round ${round} event ${i}`);
        p = k;
      }
    }
  }
});

// How many times Redis ran cmd since the last CONFIG RESETSTAT (INFO commandstats).
async function calls(cmd) {
  const info = await rc.cmd('INFO', 'commandstats');
  const m = info.match(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`));
  return m ? Number(m[1]) : 0;
}

test('within its bounds an emit reads only the newest entry, however large the oldest', async () => {
  const room = newRoom();
  const bounds = '1000 20000';
  await rc.emit(room, 'operation', dataOf('operation', 12000), bounds);
  await rc.emit(room, 'operation', dataOf('operation', 3000), bounds);
  await rc.cmd('CONFIG', 'RESETSTAT');
  for (let i = 0; i < 20; i++) await rc.emit(room, 'presence', dataOf('presence', 100), bounds);
  assert.equal(await calls('xrange'), 0, 'no read from the oldest end');
  assert.equal(await calls('xrevrange'), 20, 'the newest entry, once per event');
  assert.equal(await calls('xtrim'), 0);
  // past the bound: the oldest entry is read and goes, and the next events read nothing more
  await rc.emit(room, 'operation', dataOf('operation', 4000), bounds);
  let h = await history(room);
  assert.equal(h.length, 22);
  assert.equal(h[0].size, 3000);
  assert.equal(h.at(-1).b, 12000, 'b is exact after a trim: the bytes of the entry that went');
  await rc.cmd('CONFIG', 'RESETSTAT');
  for (let i = 0; i < 5; i++) await rc.emit(room, 'presence', dataOf('presence', 100), bounds);
  assert.equal(await calls('xrange'), 0);
  h = await history(room);
  assert.ok(bytes(h) <= 20000);
});

test('bounds that are not "<entries> <bytes>" are refused', async () => {
  await assert.rejects(rc.emit(newRoom(), 'room', '{}', '1000'), /history bounds/);
});
