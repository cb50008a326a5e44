// bench-ssesub (bench/c/ssesub.c, make bench-compare's C subscriber harness) against the real
// broker: streams opened with a real stream ticket where GET /api/streams says (the broker's
// own port, or the front door when it names none) and through the front door's /events/
// (lighttpd's chunked proxy hop) report exactly the operations posted, on every stream.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BASE, call, newUser, createRoom } from '../lib/api.mjs';
import { ROOT, waitFor } from '../lib/procs.mjs';

const BIN = process.env.SSESUB_BIN || join(ROOT, 'build/asan/bin/bench-ssesub');

// a failed test leaves no bench-ssesub running
const kids = new Set();
afterEach(() => { for (const k of kids) k.kill('SIGKILL'); kids.clear(); });

function sub(url, path) {
  const kid = spawn(BIN, ['--host', url.hostname, '--port', String(url.port || 80), '--path', path,
    '--filter', 'event: operation'], {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
  });
  kids.add(kid);
  let stderr = '', buf = '';
  const lines = [], waiters = [];
  kid.stderr.on('data', (d) => { stderr += d; });
  kid.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      while (waiters.length && lines.length) waiters.shift()(lines.shift());
    }
  });
  const exited = new Promise((resolve) => kid.on('exit', (code, signal) => {
    kids.delete(kid);
    resolve({ code, signal });
  }));
  const line = () => new Promise((resolve, reject) => {
    if (lines.length) { resolve(lines.shift()); return; }
    waiters.push(resolve);
    exited.then(() => reject(new Error(`bench-ssesub exited; stderr: ${stderr}`)));
  });
  const tell = (cmd) => kid.stdin.write(`${cmd}\n`);
  return {
    tell,
    ask: async (cmd) => { tell(cmd); return line(); },
    async collect() {
      tell('collect');
      const out = [];
      for (let l = await line(); l !== 'end'; l = await line()) out.push(Number(l.split(' ')[0]));
      return out;
    },
    async finish() {
      kid.stdin.end();
      assert.deepEqual(await exited, { code: 0, signal: null }, `exit; stderr: ${stderr}`);
      assert.equal(stderr, '');
    },
  };
}

test('bench-ssesub receives exactly the posted operations on every stream, direct and through the front door', async () => {
  const u = await newUser('bss');
  const room = await createRoom(u.token);
  const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: u.token, body: {} });
  assert.equal(t.status, 200, t.text);
  const s = await call('GET', '/api/streams');
  assert.equal(s.status, 200, s.text);
  // from the room's first event: ": connected" may come before the broker's subscription to
  // the room has landed, and a resumed stream misses nothing (docs/API.md, Events)
  const path = `/events/rooms/${room.id}?ticket={ticket}&last_event_id=0`;
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
    assert.deepEqual((await x.collect()).sort((a, b) => a - b), want);
    assert.equal(await x.ask('count'), `count ${n * K} ${n} 0`);
    await x.finish();
  }
});
