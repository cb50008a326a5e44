// The stack suites that make sense on the cluster layout, run against it:
//   node tests/cluster/stack-suites.mjs tests/stack/X.test.mjs ...
// starts `make cluster` on free ports (tests/lib/cluster.mjs: a Redis Cluster of three
// masters and three replicas, a PostgreSQL primary and hot standby, HAProxy in front of two
// web nodes and two brokers), runs the given files with node's test runner against HAProxy's
// URL, as scripts/test.sh runs them against one stack (CC_BASE_URL and the data stores'
// addresses; redis-cli follows the cluster's redirections, tests/lib/api.mjs; a test that
// is bound to one stack is skipped where REDIS_CLUSTER is set, with its reason), stops the
// layout and fails when anything of it is left running. The settings the suites expect of a
// stack (rate limits, the AI double) come from scripts/test.sh's environment.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../lib/procs.mjs';
import { startCluster } from '../lib/cluster.mjs';

const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: node tests/cluster/stack-suites.mjs FILE...');
  process.exit(2);
}
const passOn = ['WORKERS', 'LOGIN_RATE_LIMIT', 'LOGIN_ADDRESS_RATE_LIMIT', 'REGISTER_RATE_LIMIT',
  'AI_PROVIDER', 'AI_BASE_URL', 'AI_API_KEY', 'AI_MODEL', 'AI_TIMEOUT_MS', 'AI_RATE_LIMIT', 'RUN_TIMEOUT_MS'];
const env = {};
for (const k of passOn) if (process.env[k] !== undefined) env[k] = process.env[k];
// WORKERS is what the suites count on in all (fairness.test.mjs: "two long runs take both
// workers"); the layout runs two worker processes with WORKERS threads each
const WORKER_NODES = 2;
if (env.WORKERS) env.WORKERS = String(Math.max(1, Math.round(Number(env.WORKERS) / WORKER_NODES)));
// How long a write waits for a replica (WAIT; the product's default is 200 ms). Here the
// layout's 20-odd ASan processes share the machine with make test's other lanes, and a
// replica once took longer than 200 ms to take in one 1 MiB operation (its text, its
// operation and its event: about 3 MiB through replication; the CI run of 2026-12-06):
// the commit was applied but answered 503. What these suites check is not that timing
// (durability.test.mjs and revoke-failover.test.mjs check WAIT's answers with their own
// settings), so they give a replica 2 s, as an operator of a busy machine would
// (docs/OPERATIONS.md, "Durability short").
env.REDIS_WAIT_MS = process.env.REDIS_WAIT_MS || '2000';
const c = await startCluster({ redis: 'cluster', env: { CLUSTER_WORKERS: String(WORKER_NODES), ...env } });
const e = c.env;
const child = spawn(process.execPath, ['--test', '--test-concurrency=1',
  `--test-timeout=${process.env.NODE_TEST_TIMEOUT_MS || 240000}`, ...files], {
  stdio: 'inherit',
  env: {
    ...process.env,
    CC_BASE_URL: c.base,
    DATABASE_URL: e.DATABASE_URL,
    // the standby the API reads history from (tests/lib/api.mjs: replicaCaughtUp)
    DATABASE_READ_URL: e.DATABASE_READ_URL,
    REDIS_URL: e.REDIS_URL,
    REDIS_CLUSTER: e.REDIS_CLUSTER,
    REDIS_WAIT_MS: env.REDIS_WAIT_MS, // the suites' own runs of the API as CGI wait as long
    JWT_SECRET_FILE: e.JWT_SECRET_FILE,
    CC_API_BIN: join(ROOT, 'build/asan/bin/codecollab-api'),
    // a suite that must see a stream end at the broker at once goes to one broker straight,
    // as to the one stack's BROKER_PORT: HAProxy, like any front door, notices a client that
    // went away only at the broker's next heartbeat
    BROKER_PORT: String(c.proc('broker-1').ports[0]),
    // ten typists at one spot (interleave.test.mjs): 5,000 operations on the one stack,
    // 4,000 here, where what is new is the layout, not the load
    INTERLEAVE_OPERATIONS: process.env.INTERLEAVE_OPERATIONS || '4000',
  },
});
const code = await new Promise((resolve) => child.on('exit', (rc, sig) => resolve(rc ?? (sig ? 1 : 0))));
const left = await c.stop();
if (left.length) {
  console.error(`left running after the layout stopped: ${left.map((p) => `${p.pid} ${p.cmd}`).join('; ')}`);
  process.exit(1);
}
process.exit(code);
