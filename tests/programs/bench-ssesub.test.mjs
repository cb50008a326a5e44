// bench-ssesub (bench/c/ssesub.c), the C subscriber harness of make bench-compare, against
// SSE servers written here on loopback: plain and chunked streams with the markers cut across
// reads and chunks, a filter, --ready headers, and hostile servers (garbage, 404, an endless
// head, bad chunk sizes, an endless event, silence, a close mid-chunk, a refused port). Each
// must end in the exact receipts or a clear error, never a crash; stdin's end exits 0 and the
// sanitizers (the ASan build) say nothing on stderr.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, freePort, waitFor } from '../lib/procs.mjs';
import { ssesub } from '../lib/ssesub.mjs';
import { procStat } from '../lib/proctree.mjs';

const BIN = process.env.SSESUB_BIN || join(ROOT, 'build/asan/bin/bench-ssesub');
const HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n';
const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n';
const chunk = (s, ext = '') => `${Buffer.byteLength(s, 'latin1').toString(16).toUpperCase()}${ext}\r\n${s}\r\n`;
const op = (marker) => `id: 7\nevent: operation\ndata: {"type":"operation","client_id":"m${marker}","ops":["x"]}\n\n`;

// What a test started; a failed test leaves none of it running (afterEach).
const running = { kids: new Set(), servers: new Set() };
afterEach(async () => {
  for (const k of running.kids) k.kill('SIGKILL');
  running.kids.clear();
  for (const close of running.servers) await close();
  running.servers.clear();
});

// A loopback server: onRequest(socket, request text, index) once a request head is in.
async function server(onRequest) {
  const conns = [];
  const srv = createServer((c) => {
    const i = conns.push(c) - 1;
    c.setNoDelay(true);
    c.on('error', () => {}); // the tool closes hostile streams while we write
    let req = '';
    const onData = (d) => {
      req += d.toString('latin1');
      if (!req.includes('\r\n\r\n')) return;
      c.off('data', onData);
      onRequest(c, req, i);
    };
    c.on('data', onData);
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  let closed = null;
  const close = () => {
    closed ??= new Promise((resolve) => { for (const c of conns) c.destroy(); srv.close(resolve); });
    return closed;
  };
  running.servers.add(close);
  return { port: srv.address().port, conns, close };
}

// bench-ssesub with its answers as promises (tests/lib/ssesub.mjs); sanitizer reports go to
// its stderr.
const sub = (port, args = []) => ssesub(BIN,
  ['--host', '127.0.0.1', '--port', String(port), '--path', '/events/rooms/1?ticket={ticket}', ...args], running.kids);

// Writes the pieces one after the other, each on its own turn of the event loop (the reads
// on the other side often, not always, end between them: the result must not depend on it).
async function writePieces(c, pieces) {
  for (const p of pieces) {
    await new Promise((resolve) => c.write(p, 'latin1', resolve));
    await new Promise((resolve) => setImmediate(resolve));
  }
}
const sorted = (a) => [...a].sort((x, y) => x - y);

test('plain SSE: the exact markers of every stream, each timed after it was written, with the filter', async () => {
  const written = new Map(); // marker -> hrtime before its last byte was written
  const srv = await server(async (c, req) => {
    assert.match(req, /^GET \/events\/rooms\/1\?ticket=t%2Bk%2F1%20x HTTP\/1\.1\r\n/);
    assert.match(req, /\r\nHost: 127\.0\.0\.1:\d+\r\n/);
    assert.match(req, /\r\nAccept: text\/event-stream\r\n/);
    c.write(HEAD + ': connected\n\n');
  });
  const s = sub(srv.port, ['--filter', 'event: operation']);
  s.tell('ticket t+k/1 x');
  assert.deepEqual(await s.open(3, 2), { ready: 3, failed: 0, error: '-' });
  assert.deepEqual(await s.count(), { rec: 0, live: 3, lost: 0 });
  for (const [j, c] of srv.conns.entries()) {
    for (let k = 0; k < 4; k++) {
      const marker = j * 100 + k;
      const text = op(marker);
      const at = text.indexOf('"m') + 3; // inside the digits
      await writePieces(c, [text.slice(0, at), text.slice(at, -1)]);
      written.set(marker, process.hrtime.bigint());
      await writePieces(c, [text.slice(-1)]);
    }
    // not receipts: another event type, a comment, a marker without digits, a marker in a
    // block that is never ended
    await writePieces(c, [`event: presence\ndata: {"client_id":"m9${j}"}\n\n`, ': ping\n\n',
      'event: operation\ndata: {"client_id":"mx"}\n\n', 'event: operation\ndata: {"client_id":"m77"}\n']);
  }
  await waitFor(async () => (await s.count()).rec === 12, { what: '12 receipts' });
  const got = await s.collect();
  const after = process.hrtime.bigint();
  assert.deepEqual(sorted(got.map((r) => r.marker)), [0, 1, 2, 3, 100, 101, 102, 103, 200, 201, 202, 203]);
  for (const r of got) {
    assert.ok(r.ns >= written.get(r.marker), `m${r.marker} timed before its last byte was written`);
    assert.ok(r.ns <= after, `m${r.marker} timed in the future`);
  }
  assert.equal(await s.ask('close'), 'close');
  assert.deepEqual(await s.count(), { rec: 0, live: 0, lost: 0 });
  assert.match(await s.ask('what'), /^error unknown command "what"$/);
  assert.match(await s.ask('open 0 1'), /^error usage/);
  // hostile counts: negative (strtoull would wrap it), past the bound, junk
  for (const bad of ['open 2 -1', 'open -1 1', 'open 2 18446744073709551615',
    'open 99999999999 1', 'open 2 1x', 'open 2']) {
    assert.match(await s.ask(bad), /^error usage/, bad);
  }
  assert.match(await s.ask('cpu'), /^cpu \d+$/);
  await s.finish();
  await srv.close();
});

// --ack delayed (BENCH_SSESUB_ACK=delayed): the kernel acknowledges by its timer, not in the
// read. Every receipt must still come, on streams that keep getting events after the
// timer has fired (70 ms apart), and for events cut over two writes.
// --sched fifo: the process runs at real-time priority 1 (the tests run as root, as make test
// does), seen in /proc as the kernel's policy 1 (SCHED_FIFO).
test('--ack delayed, --sched fifo: every marker of every stream, events on both sides of the delayed-ACK timer', async () => {
  const srv = await server((c) => c.write(HEAD + ': connected\n\n'));
  const s = sub(srv.port, ['--ack', 'delayed', '--sched', 'fifo', '--filter', 'event: operation']);
  assert.deepEqual(await s.open(4, 4), { ready: 4, failed: 0, error: '-' });
  // /proc/PID/stat: rt_priority (its 40th field) and policy (the 41st)
  const stat = procStat(s.kid.pid);
  assert.deepEqual([stat.rtPriority, stat.policy], [1, 1], 'rt_priority 1, policy SCHED_FIFO');
  const want = [];
  for (let k = 0; k < 5; k++) {
    for (const [j, c] of srv.conns.entries()) {
      const text = op(j * 10 + k);
      want.push(j * 10 + k);
      await writePieces(c, k % 2 ? [text.slice(0, 20), text.slice(20)] : [text]);
    }
    await new Promise((resolve) => setTimeout(resolve, 70));
  }
  await waitFor(async () => (await s.count()).rec === want.length, { what: `${want.length} receipts` });
  assert.deepEqual(sorted((await s.collect()).map((r) => r.marker)), sorted(want));
  assert.deepEqual(await s.count(), { rec: want.length, live: 4, lost: 0 });
  await s.finish();
  await srv.close();
});

test('bad option values: the usage on stderr and exit 2, nothing opened', async () => {
  for (const bad of [['--ack', 'sometimes'], ['--ack', ''], ['--sched', 'batch'], ['--ready', 'soon'],
    ['--timeout-ms', '-5'], ['--ack']]) {
    const s = sub(1, bad);
    const { code } = await new Promise((resolve) => s.kid.on('exit', (c) => resolve({ code: c })));
    assert.equal(code, 2, bad.join(' '));
    assert.match(s.stderr(), /^usage: bench-ssesub /, bad.join(' '));
  }
});

test('chunked SSE: markers and block ends cut across chunks and reads, extensions ignored', async () => {
  const srv2 = await server(async (c) => {
    // the head and the first chunk in one write, ": connected" cut over two chunks
    await writePieces(c, [CHUNKED_HEAD + chunk(': conn'), chunk('ected\n') + chunk('\n', ';x=1')]);
  });
  const s = sub(srv2.port); // no filter: every block with a marker counts
  assert.deepEqual(await s.open(2, 2), { ready: 2, failed: 0, error: '-' });
  for (const [j, c] of srv2.conns.entries()) {
    const text = op(10 + j) + op(20 + j) + `data: {"client_id":"m${30 + j}"}\n\n`;
    // chunks of 1, 3, 7 … bytes, each chunk's size line, data and CRLF written in pieces
    const pieces = [];
    for (let p = 0, size = 1; p < text.length; p += size, size = size * 2 + 1) {
      const c1 = chunk(text.slice(p, p + size));
      const cut = Math.max(1, Math.floor(c1.length / 3));
      pieces.push(c1.slice(0, cut), c1.slice(cut, cut * 2), c1.slice(cut * 2));
    }
    await writePieces(c, pieces);
  }
  await waitFor(async () => (await s.count()).rec === 6, { what: '6 receipts' });
  assert.deepEqual(sorted((await s.collect()).map((r) => r.marker)), [10, 11, 20, 21, 30, 31]);
  assert.deepEqual(await s.count(), { rec: 6, live: 2, lost: 0 });
  // a close in the middle of a chunk after the streams were ready: they are lost, counted
  for (const c of srv2.conns) c.end('40\r\nevent: operation\n');
  await waitFor(async () => (await s.count()).lost === 2, { what: 'two lost streams' });
  assert.deepEqual(await s.count(), { rec: 6, live: 0, lost: 2 });
  await s.finish();
  await srv2.close();
});

test('--ready headers: ready at a 2xx head (Nchan sends nothing before its first event); without it, a timeout', async () => {
  const srv = await server((c) => c.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n'));
  const s = sub(srv.port, ['--ready', 'headers']);
  assert.deepEqual(await s.open(3, 3), { ready: 3, failed: 0, error: '-' });
  for (const c of srv.conns) c.write(`data: ${JSON.stringify({ client_id: 'm5' })}\n\n`);
  await waitFor(async () => (await s.count()).rec === 3, { what: '3 receipts' });
  assert.deepEqual((await s.collect()).map((r) => r.marker), [5, 5, 5]);
  await s.finish();

  const t = sub(srv.port, ['--timeout-ms', '300']);
  assert.deepEqual(await t.open(2, 2), { ready: 0, failed: 2, error: 'not ready within 300 ms' });
  await t.finish();
  await srv.close();
});

// [what, the server's answer (a string, or a function of the socket), the error expected]
const HOSTILE = [
  ['a garbage status line', 'SSH-2.0-OpenSSH_9.6\r\n\r\n', /^stream answered "SSH-2\.0-OpenSSH_9\.6"$/],
  ['a 404', 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', /^stream answered "HTTP\/1\.1 404 Not Found"$/],
  ['a head with no end', 'HTTP/1.1 200 OK\r\n' + 'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(600), /^response head over 16384 bytes$/],
  ['a chunk size that is no number', CHUNKED_HEAD + 'zz\r\nhello\r\n', /^bad chunk size line "zz"$/],
  ['a chunk size that overflows', CHUNKED_HEAD + 'FFFFFFFFFFFFFFFFFFFFFFFF\r\n', /^chunk size too large$/],
  ['a chunk size line without end', CHUNKED_HEAD + '1'.repeat(100), /^chunk size line too long$/],
  ['no CRLF after a chunk', CHUNKED_HEAD + '3\r\nabcXY', /^no CRLF after a chunk$/],
  ['a 2 MiB event without an end', HEAD + 'data: ' + 'x'.repeat(2 * 1024 * 1024), /^event over 1048576 bytes without an end$/],
  ['a close in the middle of a chunk', (c) => c.end(CHUNKED_HEAD + '100\r\n: conn'), /^stream closed by the server$/],
  ['a close before any answer', (c) => c.end(), /^closed before the response head$/],
  ['the last chunk before ": connected"', CHUNKED_HEAD + '0\r\n\r\n', /^stream ended \(last chunk\)$/],
  ['silence', () => {}, /^not ready within 400 ms$/],
];

for (const [what, answer, error] of HOSTILE) {
  test(`hostile server: ${what} fails the stream, reported, no crash`, async () => {
    const srv = await server((c) => (typeof answer === 'function' ? answer(c) : c.write(answer)));
    const s = sub(srv.port, ['--timeout-ms', '400']);
    const r = await s.open(3, 5);
    assert.equal(r.ready, 0);
    assert.equal(r.failed, 3);
    assert.match(r.error, error);
    assert.deepEqual(await s.count(), { rec: 0, live: 0, lost: 0 });
    await s.finish();
    await srv.close();
  });
}

test('a refused port: CONC failures stop the opening', async () => {
  const port = await freePort();
  const s = sub(port);
  assert.deepEqual(await s.open(50, 4), { ready: 0, failed: 4, error: 'connect: Connection refused' });
  await s.finish();
});

test('bench/subpool.mjs with harness c: receipts on the writer\'s now(), none before its send, all within it', async () => {
  process.env.BASE_URL ??= 'http://127.0.0.1:9'; // bench/lib.mjs wants one; nothing here uses it
  process.env.BENCH_SSESUB_BIN ??= BIN;
  const { splitPool } = await import('../../bench/subpool.mjs');
  const srv = await server((c) => c.write(HEAD + ': connected\n\n'));
  let tickets = 0;
  const pool = await splitPool(5, {
    host: '127.0.0.1', port: srv.port, path: '/events/rooms/1?ticket={ticket}', filter: 'event: operation',
    ticket: async () => `t${++tickets}`,
  }, { harness: 'c', processes: 2, conc: 4, timeoutMs: 2000 });
  try {
    assert.equal(pool.socks.length, 5);
    assert.equal(pool.failed, 0);
    assert.equal(pool.pids.length, 2);
    const sent = new Float64Array(3).fill(NaN);
    for (let k = 0; k < 3; k++) {
      sent[k] = performance.now();
      for (const c of srv.conns) c.write(op(k));
    }
    await waitFor(async () => (await pool.count()) === 15, { what: '15 receipts' });
    const { lat, msg, unexpected } = await pool.latencies(sent);
    const span = performance.now() - sent[0];
    assert.equal(unexpected, 0);
    assert.equal(lat.length, 15);
    // each receipt's message, for the per-message figures: every marker once per stream
    assert.deepEqual([...msg].sort(), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    for (const v of lat) assert.ok(v >= 0 && v <= span, `latency ${v} ms outside [0, ${span}]`);
    assert.ok(pool.cpuS() >= 0);
  } finally {
    await pool.close();
  }
});
