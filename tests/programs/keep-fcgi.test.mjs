// scripts/keep-fcgi.sh on its own, under a parent of the test's (a bash standing in for
// lighttpd or spawn-fcgi) and with a stand-in program that records its pid and sleeps.
// KEEP_FCGI_WATCH_PARENT=1: the keeper keeps its pid across its one re-run under
// `setpriv --pdeathsig TERM`, starts no process while the program runs, restarts the program
// after a crash, and goes with the program as soon as its parent is killed outright. A parent
// gone before the death signal was armed: the keeper does not start the program. Without the
// setting it stays when the parent goes (spawn-fcgi's keepers outlive spawn-fcgi).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, sleep, waitFor } from '../lib/procs.mjs';
import { childPids, isAlive as alive, parentPid } from '../lib/proctree.mjs';

const KEEP = join(ROOT, 'scripts/keep-fcgi.sh');
const dirs = [];
const started = [];
after(() => {
  for (const p of started) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// A directory with prog.sh, the program to keep: it appends its pid to pids and sleeps.
function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'cc-keep-fcgi-'));
  dirs.push(dir);
  const prog = join(dir, 'prog.sh');
  writeFileSync(prog, `#!/bin/sh\necho $$ >>"${dir}/pids"\nexec sleep 600\n`);
  chmodSync(prog, 0o755);
  const pids = () => (existsSync(join(dir, 'pids'))
    ? readFileSync(join(dir, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number) : []);
  return { dir, prog, pids, log: () => readFileSync(join(dir, 'keep.log'), 'utf8') };
}

// A process counts as gone once it is a zombie (its new parent may not have reaped it yet).

// bash starts the keeper in the background and waits: the keeper's parent, killed by the test.
async function startUnderParent(t, env) {
  const parent = spawn('bash', ['-c', '"$0" "$1" & echo $! >"$2"; wait', KEEP, t.prog, join(t.dir, 'keeper')], {
    env: { ...process.env, KEEP_FCGI_LOG: join(t.dir, 'keep.log'), RESTART_BACKOFF_FIRST_MS: '50', ...env },
    stdio: 'ignore',
  });
  started.push(parent.pid);
  await waitFor(() => t.pids().length === 1, { what: 'the program to start' });
  const keeper = Number(readFileSync(join(t.dir, 'keeper'), 'utf8'));
  started.push(keeper, t.pids()[0]);
  return { parent, keeper };
}

test('KEEP_FCGI_WATCH_PARENT=1: same pid, no process while idle, restarts, and ends with its parent', async () => {
  const t = setup();
  // a value inherited from elsewhere names another pid: the death signal is armed all the same
  const { parent, keeper } = await startUnderParent(t, { KEEP_FCGI_WATCH_PARENT: '1', KEEP_FCGI_REEXEC: '1:1' });
  const [prog] = t.pids();
  assert.equal(parentPid(keeper), parent.pid, 'the keeper is still the process its parent started');
  assert.equal(parentPid(prog), keeper);
  // while the program runs the keeper only waits: it has no other child at any look
  const seen = new Set();
  const t0 = Date.now();
  while (Date.now() - t0 < 2500) {
    for (const c of childPids(keeper)) seen.add(c);
    await sleep(10);
  }
  assert.deepEqual([...seen], [prog], 'the children the keeper had over 2.5 s');
  const env = readFileSync(`/proc/${prog}/environ`, 'latin1').split('\0');
  assert.ok(!env.some((v) => v.startsWith('KEEP_FCGI_REEXEC=')), 'the program does not inherit the marker');
  // a crash: started again after the back-off, with its line
  process.kill(prog, 'SIGKILL');
  await waitFor(() => t.pids().length === 2, { what: 'the program started again' });
  const prog2 = t.pids()[1];
  started.push(prog2);
  assert.match(t.log(), new RegExp(`prog\\.sh \\(pid ${prog}\\) was killed by signal KILL after [0-9.]+ s; starting it again in [0-9.]+ s \\(restart 1\\)`));
  assert.equal(parentPid(prog2), keeper);
  // the parent killed outright: the keeper and its program go at once
  const gone = new Promise((r) => parent.once('exit', r));
  parent.kill('SIGKILL');
  await gone;
  await waitFor(() => !alive(keeper) && !alive(prog2), { timeout: 5000, what: 'the keeper and its program to end' });
});

test('KEEP_FCGI_WATCH_PARENT=1 with the parent gone before the signal was armed: the program is not started', () => {
  const t = setup();
  // exec keeps the pid, so the keeper takes itself for the re-run whose parent (pid 1 here,
  // not the test) has gone
  const r = spawnSync('bash', ['-c', 'KEEP_FCGI_REEXEC=$$:1 exec "$0" "$1"', KEEP, t.prog], {
    env: { ...process.env, KEEP_FCGI_WATCH_PARENT: '1', KEEP_FCGI_LOG: join(t.dir, 'keep.log') },
    stdio: 'ignore', timeout: 10000,
  });
  assert.equal(r.status, 0);
  assert.match(t.log(), /the parent \(pid 1\) is gone; not starting prog\.sh/);
  assert.deepEqual(t.pids(), []);
});

test('without KEEP_FCGI_WATCH_PARENT the keeper outlives its parent; SIGTERM ends it and the program', async () => {
  const t = setup();
  const { parent, keeper } = await startUnderParent(t, { KEEP_FCGI_WATCH_PARENT: '' });
  const [prog] = t.pids();
  const gone = new Promise((r) => parent.once('exit', r));
  parent.kill('SIGKILL');
  await gone;
  await waitFor(() => parentPid(keeper) !== parent.pid, { what: 'the keeper handed to a new parent' });
  await sleep(500); // a death signal, had one been armed, would have ended both by now
  assert.ok(alive(keeper) && alive(prog), 'the keeper and its program still run');
  process.kill(keeper, 'SIGTERM');
  await waitFor(() => !alive(keeper) && !alive(prog), { timeout: 5000, what: 'the keeper and its program to end' });
});
