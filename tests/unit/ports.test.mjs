// tests/lib/ports.mjs: the ports test servers are started on come from below the kernel's
// ephemeral range (where outgoing connections take their source ports), and a port one test
// process chose is not handed to another while the first may still be about to bind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../lib/procs.mjs';
import { freePort, freeBlock, portFree } from '../lib/ports.mjs';

const run = promisify(execFile);
const CLI = join(ROOT, 'tests/lib/ports.mjs');
const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);

test('a free port lies below the ephemeral range, can be bound, and is not handed out twice', async () => {
  const seen = new Set();
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    assert.ok(Number.isInteger(p) && p >= 10000 && p < ephemeralLow, `port ${p}`);
    assert.ok(!seen.has(p), `port ${p} handed out twice`);
    seen.add(p);
  }
  const p = [...seen][0];
  const s = createServer();
  await new Promise((resolve, reject) => { s.once('error', reject); s.listen(p, '127.0.0.1', resolve); });
  assert.equal(await portFree(p), false, 'a bound port is not free');
  await new Promise((r) => s.close(r));
  assert.equal(await portFree(p), true);
});

test('a block and its twins are free and in range', async () => {
  const base = await freeBlock(16, { twin: 10000 });
  assert.ok(base >= 10000 && base + 15 + 10000 < ephemeralLow, `block at ${base}`);
  for (let p = base; p < base + 16; p++) {
    assert.ok(await portFree(p), `port ${p}`);
    assert.ok(await portFree(p + 10000), `twin ${p + 10000}`);
  }
});

test('two processes choosing at once never get the same port, and "taken" is honoured', async () => {
  // 2 × 300 random ports out of some 22,000 would share one almost surely (about 98 %)
  // without the shared record
  const taken = await freePort();
  const [a, b] = await Promise.all([run('node', [CLI, '300', String(taken)]), run('node', [CLI, '300'])]);
  const pa = a.stdout.trim().split(' ').map(Number);
  const pb = b.stdout.trim().split(' ').map(Number);
  assert.equal(pa.length, 300);
  assert.equal(pb.length, 300);
  assert.equal(new Set([...pa, ...pb]).size, 600, 'a port was handed to both processes');
  assert.ok(!pa.includes(taken) && !pb.includes(taken));
  assert.ok([...pa, ...pb].every((p) => p >= 10000 && p < ephemeralLow));
});
