// `make cluster` killed outright: SIGKILL of scripts/cluster.sh runs none of its traps, yet
// within a few seconds nothing of the layout runs and none of its ports is open
// (scripts/watchdog.sh). Before that a service is killed and started again by the
// supervisor: that is no reason for the watchdog to act, and the restarted process (a new
// pid, a new session) is stopped with the rest.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startCluster, processesIn } from '../lib/cluster.mjs';
import { waitFor } from '../lib/procs.mjs';
import { isAlive as alive } from '../lib/proctree.mjs';

const listening = (port) => new Promise((resolve) => {
  const s = connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(true); });
  s.once('error', () => resolve(false));
});

let running = [];
// a failed assertion leaves nothing behind: c.stop() kills what is left of a layout
after(async () => { for (const c of running) await c.stop(); });

// how long the layout may take to go once the script is gone: the watchdog's 0.2 s poll,
// SIGTERM, and SIGKILL after WATCHDOG_GRACE_S for whatever has not ended by then
const GONE_WITHIN_MS = 10000;

test('make cluster: SIGKILL of cluster.sh leaves no process and no open port of the layout, a restarted service included', async () => {
  const c = await startCluster({ redis: 'single', env: { WATCHDOG_GRACE_S: '3' } });
  running.push(c);

  // the supervisor restarts a killed broker; the layout lives on
  const victim = c.proc('broker-1');
  process.kill(victim.pid, 'SIGKILL');
  const back = await waitFor(() => {
    const b = c.proc('broker-1');
    return b.pid && b.pid !== victim.pid && alive(b.pid) && b;
  }, { timeout: 30000, what: 'broker-1 started again' });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${back.ports[0]}/events/health`)).status === 200,
    { timeout: 20000, what: 'broker-1 answering again' });
  assert.equal((await fetch(`${c.base}/api/health`)).status, 200, 'the layout still serves');
  assert.equal(c.script.exitCode, null, 'cluster.sh still runs');

  const topo = c.topology();
  const pids = topo.processes.flatMap((p) => [p.pid, ...(p.api_pids || [])]);
  const ports = topo.processes.flatMap((p) => p.ports);
  assert.ok(pids.length >= 15 && pids.every(alive), JSON.stringify(topo.processes));
  // PostgreSQL listens on its Unix socket only; workers and snapshotters have no port
  for (const port of topo.processes.filter((p) => p.role !== 'postgres' && p.ports.length).map((p) => p.ports[0])) {
    assert.ok(await listening(port), `port ${port} is open before the kill`);
  }

  const t0 = Date.now();
  process.kill(c.script.pid, 'SIGKILL');
  await c.script.exited;
  let left = [];
  let open = [];
  try {
    await waitFor(async () => {
      left = processesIn(c.dir);
      open = [];
      for (const port of ports) if (await listening(port)) open.push(port);
      return left.length === 0 && open.length === 0 && !pids.some(alive);
    }, { timeout: GONE_WITHIN_MS, interval: 100, what: 'the layout gone' });
  } catch {
    assert.fail(`${GONE_WITHIN_MS} ms after the SIGKILL: still running ${JSON.stringify(left)}; ` +
      `pids alive ${JSON.stringify(pids.filter(alive))}; ports open ${JSON.stringify(open)}`);
  }
  console.log(`# the layout was gone ${Date.now() - t0} ms after the SIGKILL of cluster.sh`);
  assert.match(readFileSync(join(c.dir, 'log/watchdog.log'), 'utf8'), /is gone without stopping its services/);
  running = running.filter((x) => x !== c);
  assert.deepEqual(await c.stop(), []);
});
