// The parts of `make bench-compare` that need no server (bench/compare-lib.mjs): the
// WebSocket frames its Socket.IO client reads and writes, percentiles, the bounded
// connection pool and the summary table. A wrong frame decoder would lose or invent
// receipts; a wrong table would misreport a competitor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { wsFrame, wsParse, pct, openPool, table, roundsTable, perMessage } from '../../bench/compare-lib.mjs';

// A server's (unmasked) frame.
function serverFrame(opcode, text, fin = true) {
  const body = Buffer.from(text, 'utf8');
  const len = body.length;
  let head;
  if (len < 126) head = Buffer.from([(fin ? 0x80 : 0) | opcode, len]);
  else if (len < 65536) { head = Buffer.alloc(4); head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 126; head.writeUInt16BE(len, 2); }
  else { head = Buffer.alloc(10); head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 127; head.writeBigUInt64BE(BigInt(len), 2); }
  return Buffer.concat([head, body]);
}

test('frames of every length form come back whole, split anywhere', () => {
  const texts = ['42["msg",{"client_id":"m7"}]', 'x'.repeat(300), 'y'.repeat(70000), '2'];
  const all = Buffer.concat(texts.map((t) => serverFrame(1, t)));
  for (const cut of [1, 2, 3, 9, 31, 400, 70010, all.length - 1]) {
    const a = wsParse(all.subarray(0, cut));
    const b = wsParse(Buffer.concat([a.rest, all.subarray(cut)]));
    const got = [...a.frames, ...b.frames].map((f) => f.payload.toString('utf8'));
    assert.deepEqual(got, texts, `cut at ${cut}`);
    assert.equal(b.rest.length, 0);
  }
});

test('a fragment keeps its FIN bit and opcode', () => {
  const { frames } = wsParse(Buffer.concat([serverFrame(1, '42["m', false), serverFrame(0, 'sg"]')]));
  assert.deepEqual(frames.map((f) => [f.fin, f.opcode]), [[false, 1], [true, 0]]);
});

test('a client frame is masked and decodes to what was sent', () => {
  for (const text of ['40', '3', 'é'.repeat(200), 'z'.repeat(66000)]) {
    const f = wsFrame(1, text);
    assert.equal(f[1] & 0x80, 0x80, 'mask bit');
    const { frames, rest } = wsParse(f);
    assert.equal(frames.length, 1);
    assert.equal(frames[0].payload.toString('utf8'), text);
    assert.equal(rest.length, 0);
  }
});

test('a frame that claims to be huge is refused, not waited for', () => {
  const head = Buffer.alloc(10);
  head[0] = 0x81; head[1] = 127; head.writeBigUInt64BE(1n << 40n, 2);
  assert.throws(() => wsParse(head), /frame of/);
  const mid = Buffer.from([0x81, 126, 0xff, 0xff]);
  assert.throws(() => wsParse(mid, 1000), /frame of 65535 bytes/);
});

test('percentiles pick from the sorted samples', () => {
  const s = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(pct(s, 50), 51);
  assert.equal(pct(s, 99), 100);
  assert.equal(pct([5], 99), 5);
  assert.ok(Number.isNaN(pct([], 50)));
});

test('the pool never has more than `concurrency` opens in flight and gives up after failures', async () => {
  let inFlight = 0, most = 0;
  const ok = await openPool(50, 4, async (i) => {
    inFlight++; most = Math.max(most, inFlight);
    await new Promise((r) => setTimeout(r, 1));
    inFlight--;
    return i;
  });
  assert.equal(ok.socks.length, 50);
  assert.equal(most, 4);
  let tried = 0;
  const bad = await openPool(1000, 5, async (i) => {
    tried++;
    if (i >= 20) throw new Error('connection limit');
    return i;
  });
  assert.equal(bad.socks.length, 20);
  // the lanes already waiting on an attempt finish it: at most concurrency - 1 more failures
  assert.ok(bad.failed >= 5 && bad.failed <= 9, `${bad.failed} failed`);
  assert.equal(bad.firstError, 'connection limit');
  assert.ok(tried < 30, `stopped opening (${tried} tried)`);
});

test('the table has one row per N with each system, the ratio and failures spelled out', () => {
  const rows = table([
    { system: 'ours', n: 1000, p50: 20, p99: 40, received: 50000, expected: 50000, perStreamBytes: 4096 },
    { system: 'nchan', n: 1000, p50: 10, p99: 20, received: 50000, expected: 50000, perStreamBytes: 2048 },
    { system: 'socketio', n: 1000, p50: 12.5, p99: 30, received: 49999, expected: 50000, perStreamBytes: 10240 },
    { system: 'ours', n: 10000, error: '8,000 of 10,000 streams opened', received: 0, expected: 200000 },
    { system: 'nchan', n: 10000, p50: 80, p99: 200, received: 200000, expected: 200000, perStreamBytes: 1024 },
  ]).split('\n');
  assert.equal(rows.length, 4);
  assert.match(rows[2], /^\| 1,000 \| 20\.0 \/ 40\.0 \| 10\.0 \/ 20\.0 \| 12\.5 \/ 30\.0 \| 50000\/50000; 50000\/50000; 49999\/50000 \| 2\.00×; 2\.00× \| 4\.0 KiB; 2\.0 KiB; 10\.0 KiB \|$/);
  assert.match(rows[3], /^\| 10,000 \| \*\*failed\*\*: 8,000 of 10,000 streams opened \| 80\.0 \/ 200 \| not run \| 0\/200000; 200000\/200000; — \| n\/a \|/);
  assert.ok(!rows[0].includes('via lighttpd'), 'no column for a route that was not run');
});

test('ours through lighttpd gets a column of its own when it was run', () => {
  const rows = table([
    { system: 'ours', n: 1000, p50: 5, p99: 10, received: 50000, expected: 50000, perStreamBytes: 2048 },
    { system: 'nchan', n: 1000, p50: 10, p99: 20, received: 50000, expected: 50000, perStreamBytes: 10240 },
    { system: 'front', n: 1000, p50: 15, p99: 33, received: 50000, expected: 50000, perStreamBytes: 12288 },
    { system: 'ours', n: 5000, p50: 40, p99: 90, received: 250000, expected: 250000, perStreamBytes: 2048 },
  ]).split('\n');
  assert.match(rows[0], /\| ours via lighttpd: p50 \/ p99 ms; received; memory per stream \|$/);
  assert.equal(rows[1].split('|').length, rows[0].split('|').length);
  assert.match(rows[2], /^\| 1,000 \| 5\.00 \/ 10\.0 \| 10\.0 \/ 20\.0 \| not run \| .* \| 0\.50×; 0\.50× \| .* \| 15\.0 \/ 33\.0; 50000\/50000; 12\.0 KiB \|$/);
  assert.match(rows[3], /\| not run \|$/);
});

test('the header says which harness measured each system when the results say', () => {
  const rows = table([
    { system: 'ours', n: 1000, p50: 5, p99: 10, received: 50000, expected: 50000, perStreamBytes: 2048, harness: 'C (bench-ssesub)' },
    { system: 'socketio', n: 1000, p50: 10, p99: 20, received: 50000, expected: 50000, perStreamBytes: 10240, harness: 'node' },
    { system: 'front', n: 1000, p50: 15, p99: 33, received: 50000, expected: 50000, perStreamBytes: 12288, harness: 'C (bench-ssesub)' },
  ]).split('\n');
  assert.match(rows[0], /^\| N \| ours p50 \/ p99 ms \(harness: C \(bench-ssesub\)\) \| Nchan p50 \/ p99 ms \| Socket\.IO p50 \/ p99 ms \(harness: node\) \|/);
  assert.match(rows[0], /\| ours via lighttpd \(harness: C \(bench-ssesub\)\): p50/);
  assert.equal(rows[1].split('|').length, rows[0].split('|').length);
});

test('perMessage: the median first receipt and first-to-last spread over the messages, and each message\'s first and last, in any order of receipts', () => {
  // message 0: 2 … 9 ms, message 1: 3 … 5, message 2: 1 … 4; message 3 never arrived
  const rec = [[0, 9], [1, 3], [2, 4], [0, 2], [1, 5], [2, 1], [0, 5], [1, 4], [2, 2]];
  for (const order of [rec, [...rec].reverse()]) {
    const got = perMessage(order.map((r) => r[1]), order.map((r) => r[0]), 4);
    // firsts 2, 3, 1 → sorted 1, 2, 3: median 2; spreads 7, 2, 3 → 2, 3, 7: median 3, most 7
    assert.deepEqual(got, { firstP50: 2, spreadP50: 3, spreadMax: 7,
      byMessage: [[2, 9], [3, 5], [1, 4], null] });
  }
  // one receipt per message: no spread
  assert.deepEqual(perMessage([4, 6], [0, 1], 2),
    { firstP50: 6, spreadP50: 0, spreadMax: 0, byMessage: [[4, 4], [6, 6]] });
  // nothing received
  const none = perMessage([], [], 3);
  assert.ok(Number.isNaN(none.firstP50) && Number.isNaN(none.spreadP50) && none.spreadMax === undefined);
});

test('roundsTable: each round\'s ratios to Nchan, their median, and how many rounds met 0.8× at p99', () => {
  const r = (system, n, round, p50, p99, extra = {}) => ({ system, n, round, p50, p99, received: 1, expected: 1, ...extra });
  const rows = roundsTable([
    r('ours', 1000, 1, 8, 12), r('nchan', 1000, 1, 10, 16), // 0.80, 0.75
    r('ours', 1000, 2, 9, 14), r('nchan', 1000, 2, 10, 14), // 0.90, 1.00
    r('ours', 1000, 3, 7, 10), r('nchan', 1000, 3, 10, 10), // 0.70, 1.00
    r('ours', 1000, 4, 7, 10), r('nchan', 1000, 4, 10, 10, { error: 'lost' }), // n/a
    r('ours', 5000, 1, 5, 8), r('nchan', 5000, 1, 10, 20), // 0.50, 0.40
    r('ours', 5000, 2, 6, 6), r('nchan', 5000, 2, 10, 10), // 0.60, 0.60
  ]).split('\n');
  assert.equal(rows.length, 4);
  assert.equal(rows[2], '| 1,000 | 4 | 0.80 0.90 0.70 n/a | 0.75 1.00 1.00 n/a | 0.80×; 1.00× | 1 of 3 |');
  // an even count: the mean of the middle two
  assert.equal(rows[3], '| 5,000 | 2 | 0.50 0.60 | 0.40 0.60 | 0.55×; 0.50× | 2 of 2 |');
});
