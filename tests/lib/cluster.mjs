// The `make cluster` layout (scripts/cluster.sh) for tests: started on free ports with its
// data in a throwaway directory, read through its topology.json, stopped with SIGTERM and
// checked for leftovers. The hook for every suite that needs the layout:
//
//   const c = await startCluster({ redis: 'single' });   // waits for "ready"
//   c.base                  HAProxy's URL (the only public port)
//   c.topology()            var/topology.json, read now ({state, processes: [{name, role,
//                           pid, ports, ...}]})
//   c.proc('web-1')         one process's entry; c.byRole('redis') all of a role
//   c.env                   var/run/env as an object (DATABASE_URL, DATABASE_READ_URL,
//                           REDIS_URL, REDIS_CLUSTER, JWT_SECRET_FILE, BASE_URL)
//   await c.stop()          SIGTERM; resolves to the processes of the layout still running
//                           afterwards (none, when all is well; they are killed).
//                           { waitMs } (180 s: above the stop's worst case, 150 s,
//                           scripts/cluster.sh): the SIGKILL of cluster.sh after that long;
//                           c.exit then says how it ended ({ code, signal }). { keep: true }
//                           leaves the directory (its logs) for the test: c.remove() then
//
// { ready: false } returns as soon as topology.json first appears (state "starting": the
// data stores are up), for tests of the data layer alone; { wait: false } at once, for tests
// of the start itself (c.script, c.dir and c.stop() then; the rest once the layout is up).
import { existsSync, readFileSync, readdirSync, readlinkSync, chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, runEnv, start, stop, tempDir, waitFor } from './procs.mjs';
import { freeBlock } from './ports.mjs';
import { procStat } from './proctree.mjs';

// Live processes whose environment or working directory lies in dir (lighttpd under its
// web-N directories, PostgreSQL and Redis in their data directories).
export function processesIn(dir) {
  const found = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const stat = procStat(e);
      if (!stat || stat.state === 'Z') continue;
      let mine = false;
      try { mine = readlinkSync(`/proc/${e}/cwd`).startsWith(dir + '/'); } catch { /* gone, or not ours */ }
      if (!mine) {
        const env = readFileSync(`/proc/${e}/environ`, 'utf8').split('\0');
        mine = env.some((v) => v === `CC_VAR=${dir}` || v.startsWith(`CC_VAR=${dir}/`));
      }
      if (mine) found.push({ pid: Number(e), cmd: readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ').trim() });
    } catch { /* the process ended meanwhile */ }
  }
  return found;
}

// The host part of a URL that reaches a front door listening on `bind` from this machine.
const frontHost = (bind) => (bind === '0.0.0.0' ? '127.0.0.1' : bind === '::' ? '[::1]' : bind.includes(':') ? `[${bind}]` : bind);

export async function startCluster({ redis = 'single', ready = true, wait = true, env = {}, timeout = 180000 } = {}) {
  const dir = tempDir('cc-cluster-');
  chmodSync(dir, 0o755); // the postgres user works in it
  const port = await freeBlock(1);
  // 16 ports and, for Redis Cluster nodes, their bus ports (port + 10000)
  const base = await freeBlock(16, { twin: 10000 });
  const readyFile = join(dir, 'ready');
  // what a stack started before in the same run (scripts/test.sh) exported is not for this
  // layout: it makes its own key and servers
  const inherited = { ...process.env };
  for (const k of ['JWT_SECRET', 'JWT_SECRET_FILE', 'DATABASE_URL', 'DATABASE_READ_URL', 'REDIS_URL',
    'REDIS_CLUSTER', 'BASE_URL', 'TLS_URL', 'CC_TLS_CA', 'STACK_VAR']) delete inherited[k];
  const script = start(join(ROOT, 'scripts/cluster.sh'), [], {
    env: {
      ...inherited,
      BUILD: process.env.CLUSTER_BUILD || 'asan',
      CC_VAR: dir,
      PORT: String(port),
      CLUSTER_PORT_BASE: String(base),
      CC_BIND: '127.0.0.1',
      CLUSTER_REDIS: redis,
      CC_READY_FILE: readyFile,
      // small by default (the layout, not the load, is under test); a suite may ask for more
      API_PROCESSES: '2',
      WORKERS: '1',
      RUNTIMES_EXTRA: '',
      ...env,
    },
  });
  const topoFile = join(dir, 'topology.json');
  const c = {
    dir,
    port,
    portBase: base,
    script,
    // where the layout's front door listens (CC_BIND), as scripts/services.sh local_host puts it
    base: `http://${frontHost(env.CC_BIND || '127.0.0.1')}:${port}`,
    topology: () => JSON.parse(readFileSync(topoFile, 'utf8')),
    proc: (name) => c.topology().processes.find((p) => p.name === name),
    byRole: (role) => c.topology().processes.filter((p) => p.role === role),
    get env() {
      return runEnv(dir);
    },
    async stop({ waitMs = 180000, keep = false } = {}) {
      c.exit = await stop(script, 'SIGTERM', waitMs);
      let left = processesIn(dir);
      if (left.length) {
        await new Promise((r) => setTimeout(r, 1000));
        left = processesIn(dir);
      }
      for (const p of left) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
      // a stop that did not end by itself keeps its logs (removed with the file's other
      // temporary directories when the file passes)
      if (!left.length && !keep && c.exit?.code === 0) c.remove();
      return left;
    },
    remove() {
      if (!process.env.KEEP_TEST_VAR) rmSync(dir, { recursive: true, force: true });
    },
  };
  if (!wait) return c;
  // a script that ended ends the wait at once (waitFor would take a throw for "not yet")
  await waitFor(() => script.exitCode !== null || (ready ? existsSync(readyFile) : existsSync(topoFile)),
    { timeout, interval: 100, what: `make cluster ${ready ? 'ready' : 'data stores'}` });
  if (script.exitCode !== null) {
    await script.closed; // its output read to the end (its last line: why)
    throw new Error(`cluster.sh exited (${script.exitCode}):\n${script.output}`);
  }
  return c;
}
