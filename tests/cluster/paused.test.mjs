// `make cluster` stopped while it waits on something that does not end: a Redis node it asks
// (below), every node of a Redis Cluster, or the first start's pg_basebackup (at the end).
// The first case: a Redis node that does not answer. The node is paused
// (SIGSTOP: the kernel still accepts a connection to it, no answer ever comes) just before
// the script asks it its role for topology.json, as it does after every restart. bash runs
// the SIGTERM trap only once the foreground command has ended, so that redis-cli call must
// end by itself (scripts/services.sh: rcli, a few seconds) for the stop to begin; the stop
// then kills the paused node after its bound and ends like any other.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, processesIn } from '../lib/cluster.mjs';
import { pauseProcess, tempDir, waitFor } from '../lib/procs.mjs';
import { PG_BIN } from '../lib/pg.mjs';
import { parentPid } from '../lib/proctree.mjs';

let running = [];
// a failed assertion: the script is killed at once, its watchdog stops the rest, c.stop()
// kills whatever is left
after(async () => { for (const c of running) await c.stop({ waitMs: 1000 }); });

// from the SIGTERM to the stop's first line: the redis-cli call's bound (5 s, and 2 s more
// for its SIGKILL) and the rest of a supervisor tick, with room for a loaded machine
const STOP_BEGUN_WITHIN_MS = 20000;
const REDIS_BOUND_S = 3;
// The tiers between the SIGTERM and the Redis nodes, which these tests only sit through:
// with Redis paused, the workers, the snapshotters and the web nodes' API processes stay in
// their Redis calls (each bounded, and retried for REDIS_RETRY_MS in a cluster) and ended by
// themselves only after about 36 s, the API processes' keepers after STOP_LEFTOVERS_S. Here
// the stop kills whatever has not ended after STOP_PROGRAMS_S (5 s instead of 40; the
// workers' SHUTDOWN_GRACE_MS, 2 s, below it as the start requires) and STOP_LEFTOVERS_S (3 s
// instead of 10), as it does at the default bounds. What is asserted (when the stop begins,
// that it ends by itself, the paused nodes killed after their bound, nothing left) is the
// same.
const STOP_ENV = { STOP_REDIS_S: String(REDIS_BOUND_S), STOP_PROGRAMS_S: '5', STOP_LEFTOVERS_S: '3',
  SHUTDOWN_GRACE_MS: '2000' };

test('make cluster: a SIGTERM while the script waits on a paused Redis node starts the stop within the call\'s bound, and the stop ends by itself', async () => {
  // the paused node is killed after STOP_REDIS_S: 3 s here instead of 20
  const c = await startCluster({ redis: 'single', env: STOP_ENV });
  running.push(c);
  const redis = c.proc('redis');
  await pauseProcess(redis.pid);

  // a restarted broker: the script writes topology.json again, asking the paused node its role
  process.kill(c.proc('broker-1').pid, 'SIGKILL');
  const asking = new RegExp(`^redis-cli -p ${redis.ports[0]} info replication$`);
  await waitFor(() => processesIn(c.dir).some((p) => asking.test(p.cmd)),
    { timeout: 30000, interval: 20, what: 'the script asking the paused Redis node its role' });

  const t0 = Date.now();
  process.kill(c.script.pid, 'SIGTERM');
  await waitFor(() => /stopping everything/.test(c.script.output),
    { timeout: STOP_BEGUN_WITHIN_MS, interval: 50, what: 'the stop begun' });
  const begun = Date.now() - t0;

  // the paused node gets SIGKILL after the Redis nodes' bound; the rest stop as usual
  const left = await c.stop({ waitMs: 180000 });
  running = running.filter((x) => x !== c);
  console.log(`# the stop began ${begun} ms after the SIGTERM and ended after ${Date.now() - t0} ms`);
  assert.deepEqual(left, [], 'nothing of the layout is left running');
  assert.deepEqual(c.exit, { code: 0, signal: null }, `cluster.sh ended by itself:\n${c.script.output}`);
  assert.match(c.script.output, new RegExp(`redis \\(pid \\d+\\) had not ended ${REDIS_BOUND_S} s after its stop signal: killed`));
});

// The same with a Redis Cluster of six nodes, all paused. topology.json names each node's
// role, asked one node at a time in the script's own shell (scripts/cluster.sh:
// write_topology): the trap runs once the call under way has ended, so the stop begins within
// one call's bound however many nodes do not answer. Asked inside topology_json's command
// substitution, as before, the calls held the trap for the bound of each paused node in turn:
// six of 5 s, 30 s.
const ONE_CALL_WITHIN_MS = 15000;

test('make cluster with a Redis Cluster: a SIGTERM while every node is paused starts the stop within one call\'s bound, not one per node', async () => {
  const c = await startCluster({ redis: 'cluster', env: STOP_ENV });
  running.push(c);
  const nodes = c.byRole('redis');
  assert.equal(nodes.length, 6);
  for (const n of nodes) await pauseProcess(n.pid);

  process.kill(c.proc('broker-1').pid, 'SIGKILL');
  // the first node asked: five more paused ones follow it
  const asking = new RegExp(`^redis-cli -p ${c.proc('redis-1').ports[0]} info replication$`);
  await waitFor(() => processesIn(c.dir).some((p) => asking.test(p.cmd)),
    { timeout: 30000, interval: 20, what: 'the script asking redis-1 its role' });

  const t0 = Date.now();
  process.kill(c.script.pid, 'SIGTERM');
  await waitFor(() => /stopping everything/.test(c.script.output),
    { timeout: 60000, interval: 50, what: 'the stop begun' });
  const begun = Date.now() - t0;
  console.log(`# the stop began ${begun} ms after the SIGTERM`);
  assert.ok(begun < ONE_CALL_WITHIN_MS, `the stop began within one call's bound (${begun} ms)`);

  const left = await c.stop({ waitMs: 180000 });
  running = running.filter((x) => x !== c);
  assert.deepEqual(left, [], 'nothing of the layout is left running');
  assert.deepEqual(c.exit, { code: 0, signal: null }, `cluster.sh ended by itself:\n${c.script.output}`);
  for (const n of nodes) {
    assert.match(c.script.output, new RegExp(`${n.name} \\(pid ${n.pid}\\) had not ended ${REDIS_BOUND_S} s after its stop signal: killed`));
  }
});

// The first start's pg_basebackup (the replica's copy) runs in the background under `wait`
// (scripts/services.sh: oneshot): a SIGTERM's trap runs at once and ends it. The copy it had
// not finished stays marked unfinished (scripts/services.sh: unfinished_begin), so that the
// next start stops and says what to remove instead of starting a half copy (what that start
// says: tests/programs/services.test.mjs).
// The pg_basebackup here
// (PG_BIN: the real binaries, this one wrapped) makes a real copy and then never ends, as a
// copy that stalls; in the foreground, as before, it held the trap, and the stop, for good.
test('make cluster: a SIGTERM while pg_basebackup makes the replica stops at once, and the copy stays marked unfinished', async () => {
  const bin = tempDir('cc-pgbin-');
  chmodSync(bin, 0o755); // run as the postgres user
  for (const f of readdirSync(PG_BIN)) if (f !== 'pg_basebackup') symlinkSync(join(PG_BIN, f), join(bin, f));
  writeFileSync(join(bin, 'pg_basebackup'),
    `#!/bin/sh\n${join(PG_BIN, 'pg_basebackup')} "$@" || exit\nexec sleep 3600\n`, { mode: 0o755 });
  const c = await startCluster({ redis: 'single', wait: false, env: { PG_BIN: bin } });
  running.push(c);
  // the copy made (cluster.sh's own child, set to the postgres user, now the sleep)
  const stalled = () => readdirSync('/proc').find((p) => /^\d+$/.test(p) && parentPid(p) === c.script.pid &&
    readFileSync(`/proc/${p}/cmdline`, 'latin1').startsWith('sleep\x003600'));
  let sleeper;
  try {
    await waitFor(() => (sleeper = stalled()), { timeout: 120000, interval: 100, what: 'pg_basebackup\'s copy made' });
    assert.ok(existsSync(join(c.dir, 'pg-replica/PG_VERSION')), 'the copy is in the replica\'s directory');

    const t0 = Date.now();
    process.kill(c.script.pid, 'SIGTERM');
    await waitFor(() => /stopping everything/.test(c.script.output),
      { timeout: 20000, interval: 50, what: 'the stop begun (it waited for pg_basebackup instead)' });
    console.log(`# the stop began ${Date.now() - t0} ms after the SIGTERM`);
    const left = await c.stop({ waitMs: 180000, keep: true });
    running = running.filter((x) => x !== c);
    assert.deepEqual(left, [], 'nothing of the layout is left running');
    assert.deepEqual(c.exit, { code: 0, signal: null }, `cluster.sh ended by itself:\n${c.script.output}`);
    assert.ok(!existsSync(`/proc/${sleeper}`), 'pg_basebackup is gone');
    assert.equal(readFileSync(join(c.dir, '.unfinished-pg_basebackup'), 'utf8'), `rm -rf '${join(c.dir, 'pg-replica')}'/*\n`,
      'the copy is marked unfinished: the next start stops and says what to remove');
    assert.ok(existsSync(join(c.dir, 'pg-replica/PG_VERSION')), 'nothing is removed');
    c.remove();
  } finally {
    try { if (sleeper) process.kill(Number(sleeper), 'SIGKILL'); } catch { /* gone */ }
  }
});
