// bench-ssesub (bench/c/ssesub.c, make bench-compare's C subscriber harness) against the real
// broker: streams opened with a real stream ticket where GET /api/streams says (the broker's
// own port, or the front door when it names none) and through the front door's /events/
// (lighttpd's chunked proxy hop) report exactly the operations posted, on every stream.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BASE, call, newUser, createRoom } from '../lib/api.mjs';
import { ROOT, waitFor } from '../lib/procs.mjs';
import { ssesub } from '../lib/ssesub.mjs';

const BIN = process.env.SSESUB_BIN || join(ROOT, 'build/asan/bin/bench-ssesub');

// a failed test leaves no bench-ssesub running
const kids = new Set();
afterEach(() => { for (const k of kids) k.kill('SIGKILL'); kids.clear(); });

const sub = (url, path) => ssesub(BIN, ['--host', url.hostname, '--port', String(url.port || 80), '--path', path,
  '--filter', 'event: operation'], kids);

test('bench-ssesub receives exactly the posted operations on every stream, direct and through the front door', async () => {
  const u = await newUser('bss');
  const room = await createRoom(u.token);
  const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: u.token, body: {} });
  assert.equal(t.status, 200, t.text);
  const s = await call('GET', '/api/streams');
  assert.equal(s.status, 200, s.text);
  // no start id: a stream is ready at ": connected", which the broker writes once the stream
  // is live, so the operations posted right after it all arrive (docs/API.md, "Streams")
  const path = `/events/rooms/${room.id}?ticket={ticket}`;
  const subs = [[sub(new URL(s.json.origin || BASE), path), 4], [sub(new URL(BASE), path), 3]];
  for (const [x, n] of subs) {
    x.tell(`ticket ${t.json.ticket}`);
    assert.equal(await x.ask(`open ${n} 2`), `open ${n} 0 -`);
  }
  const K = 5;
  let revision = 0;
  for (let k = 0; k < K; k++) {
    const r = await call('POST', `/api/rooms/${room.id}/operations`,
      { token: u.token, body: { revision, ops: ['x'], client_id: `m${k}` } });
    assert.equal(r.status, 200, r.text);
    revision = r.json.revision;
  }
  for (const [x, n] of subs) {
    let last = '';
    await waitFor(async () => Number((last = await x.ask('count')).split(' ')[1]) >= n * K, { what: `${n * K} receipts` })
      .catch((e) => { throw new Error(`${e.message} (last: "${last}")`); });
    const want = Array.from({ length: K }, (_, k) => Array(n).fill(k)).flat();
    assert.deepEqual((await x.collect()).map((r) => r.marker).sort((a, b) => a - b), want);
    assert.equal(await x.ask('count'), `count ${n * K} ${n} 0`);
    await x.finish();
  }
});
