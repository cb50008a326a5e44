// tests/lib/ports.mjs: the ports test servers are started on come from below the kernel's
// ephemeral range (where outgoing connections take their source ports), and a port one test
// process chose is not handed to another while the first may still be about to bind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../lib/procs.mjs';
import { HIGH, freePort, freeBlock, portFree } from '../lib/ports.mjs';

const run = promisify(execFile);
const CLI = join(ROOT, 'tests/lib/ports.mjs');

test('a free port lies below the ephemeral range, can be bound, and is not handed out twice', async () => {
  assert.ok(HIGH > 12000 && HIGH <= 32768, `the range ends at ${HIGH}`);
  const seen = new Set();
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    assert.ok(Number.isInteger(p) && p >= 10000 && p < HIGH, `port ${p}`);
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
  assert.ok(base >= 10000 && base + 15 + 10000 < HIGH, `block at ${base}`);
  for (let p = base; p < base + 16; p++) {
    assert.ok(await portFree(p), `port ${p}`);
    assert.ok(await portFree(p + 10000), `twin ${p + 10000}`);
  }
});

test('two processes choosing at once never get the same port; "taken" is honoured; the command keeps its ports', async () => {
  // a registry of the test's own, so that the machine's is neither read nor filled
  const dir = mkdtempSync(join(tmpdir(), 'cc-ports-'));
  try {
    const env = { ...process.env, CC_TEST_PORTS_DIR: join(dir, 'registry') };
    // 1,000 ports no process reserved: 300 random choices would hit them almost surely
    const taken = Array.from({ length: 1000 }, (_, i) => String(15000 + i));
    // 2 × 300 random ports out of some 22,000 would share one almost surely (about 98 %)
    // without the shared record
    const [a, b] = await Promise.all([run('node', [CLI, '300', ...taken], { env }), run('node', [CLI, '300'], { env })]);
    const pa = a.stdout.trim().split(' ').map(Number);
    const pb = b.stdout.trim().split(' ').map(Number);
    assert.equal(pa.length, 300);
    assert.equal(pb.length, 300);
    assert.equal(new Set([...pa, ...pb]).size, 600, 'a port was handed to both processes');
    assert.ok(!pa.some((p) => p >= 15000 && p < 16000), 'a port given as taken was handed out');
    assert.ok([...pa, ...pb].every((p) => p >= 10000 && p < HIGH));
    // the command's reservations outlive it (a stack runs on them); a port found in use
    // stays reserved too
    const kept = readdirSync(join(dir, 'registry')).length;
    assert.ok(kept >= 600, `${kept} reservations`);
    // a test process gives its own back when it exits
    const c = await run('node', ['--input-type=module', '-e',
      `const m = await import(${JSON.stringify(CLI)}); console.log(await m.freePort(), await m.freeBlock(4, { twin: 10000 }));`], { env });
    assert.match(c.stdout, /^\d+ \d+\n$/);
    assert.equal(readdirSync(join(dir, 'registry')).length, kept, 'its nine reservations are gone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
