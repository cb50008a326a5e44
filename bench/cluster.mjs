// `make bench-cluster` (bench/cluster.sh): the `make cluster` layout (scripts/cluster.sh, a
// Redis Cluster of 3 masters and 3 replicas, PostgreSQL with a hot standby, two brokers,
// HAProxy in front) started from the release build on free ports (tests/lib/cluster.mjs),
// first with one web node and then with two (CLUSTER_WEB_NODES). On each: committed
// operations per second through HAProxy (bench/ops.mjs: closed loop, then open loop at 70 %
// of what the closed loop reached), with the CPU seconds of every role. On the last layout,
// the fan-out through HAProxy to subscribers spread over both brokers (bench/cluster_fanout.mjs).
// Ends with the figures as a Markdown table.
//   BENCH_CLUSTER_WEB_NODES (default "1 2"): the layouts, by web nodes
//   BENCH_CLUSTER_OPS_RATES (default auto): BENCH_OPS_RATES of bench/ops.mjs
//   BENCH_CLUSTER_ONLY (default "ops fanout")
//   BENCH_CLUSTER_BROKER_MAX_STREAMS (default 25000, the broker's own default): each broker's
//   BROKER_MAX_STREAMS. The layout's default keeps the brokers under what one HAProxy process
//   holds (scripts/cluster.sh); the fan-out runs more HAProxy processes (cluster_fanout.mjs).
//   "layout": leave the layout's default
//   API_PROCESSES (default 2 per web node), BENCH_SECONDS (5 per part), BENCH_CONCURRENCY (32)
//   and bench/cluster_fanout.mjs's settings
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg as osLoad, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { startCluster } from '../tests/lib/cluster.mjs';

process.env.CLUSTER_BUILD ||= 'release';
const layouts = (process.env.BENCH_CLUSTER_WEB_NODES || '1 2').trim().split(/\s+/).map(Number);
const only = (process.env.BENCH_CLUSTER_ONLY || 'ops fanout').split(/\s+/);
const apiProcs = process.env.API_PROCESSES || '2';
const maxStreams = process.env.BENCH_CLUSTER_BROKER_MAX_STREAMS || '25000';
const tmp = mkdtempSync(join(tmpdir(), 'cc-bench-cluster-'));
const load = () => osLoad().map((v) => v.toFixed(2)).join(' ');
const f = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');

// A bench script of this directory as a child, its output passed through; resolves its status.
function run(script, env) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [new URL(script, import.meta.url).pathname], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'],
    });
    p.on('exit', (code) => resolve(code ?? 1));
  });
}
const readJson = (file) => { try { return JSON.parse(readFileSync(file, 'utf8')); } catch { return null; } };

// "api 0.62, lighttpd 0.40, …, the rest 0.50": the roles that used the most CPU, in cores
// (CPU seconds over the run's wall time); the rest is every other process on the machine
// (other people's work too) and the kernel's time not charged to a process
function topCpu(cpu, secs, k = 4) {
  const roles = Object.entries(cpu || {}).filter(([r]) => r !== 'whole machine');
  const known = roles.reduce((a, [, v]) => a + v, 0);
  const top = roles.sort((a, b) => b[1] - a[1]).slice(0, k).map(([r, v]) => `${r} ${f(v / secs)}`);
  if (Number.isFinite(cpu?.['whole machine'])) top.push(`the rest ${f(Math.max(0, cpu['whole machine'] - known) / secs)}`);
  return top.join(', ');
}

console.log(`bench-cluster: layouts with ${layouts.join(', ')} web node(s), ${apiProcs} API processes each; ` +
  `${availableParallelism()} cores shared by the layout and the load generators; load average ${load()}`);
let status = 0;
const ops = {}, fan = {};
for (const nodes of layouts) {
  const t0 = Date.now();
  const c = await startCluster({
    redis: 'cluster',
    timeout: 300000,
    env: {
      CLUSTER_WEB_NODES: String(nodes), API_PROCESSES: apiProcs, REGISTER_RATE_LIMIT: '100000',
      ...(maxStreams === 'layout' ? {} : { BROKER_MAX_STREAMS: maxStreams }),
    },
  });
  console.log(`\n== ${nodes} web node(s): the layout answered in ${((Date.now() - t0) / 1000).toFixed(0)} s ` +
    `on ${c.base} (${c.byRole('broker').length} brokers, ${c.byRole('redis').length} Redis nodes); load average ${load()}`);
  const env = { BASE_URL: c.base, BENCH_TOPOLOGY: join(c.dir, 'topology.json') };
  try {
    if (only.includes('ops')) {
      const out = join(tmp, `ops-${nodes}.json`);
      status |= await run('./ops.mjs', { ...env, BENCH_OPS_RATES: process.env.BENCH_CLUSTER_OPS_RATES || 'auto', BENCH_OPS_JSON: out });
      ops[nodes] = readJson(out);
    }
    if (only.includes('fanout') && nodes === layouts.at(-1)) {
      const out = join(tmp, 'fanout.json');
      console.log('');
      status |= await run('./cluster_fanout.mjs', { ...env, BENCH_CLUSTER_JSON: out });
      fan[nodes] = readJson(out);
    }
  } finally {
    const left = await c.stop();
    if (left.length) {
      console.log(`  left running after the layout stopped (killed): ${left.map((p) => p.cmd).join('; ')}`);
      status = 1;
    }
  }
}

console.log('\n| web nodes | part | commits/s | p50 ms | p99 ms | failed | CPU (cores busy, the busiest roles) |');
console.log('|---|---|---|---|---|---|---|');
for (const nodes of layouts) {
  for (const r of ops[nodes] || []) {
    console.log(`| ${nodes} | ${r.label.replace(/^operations, /, '')}${r.rate ? '' : ' (closed loop)'} | ${r.perS.toFixed(0)} | ` +
      `${f(r.p50)} | ${f(r.p99)} | ${r.failed} | ${f(r.cpu['whole machine'] / r.secs)} of ${availableParallelism()}: ${topCpu(r.cpu, r.secs)} |`);
  }
}
for (const [nodes, r] of Object.entries(fan)) {
  if (!r) continue;
  console.log(`\nfan-out, ${nodes} web nodes: N = ${r.n}, ${r.m} commits; ${r.error ? `FAILED: ${r.error}` :
    `received ${r.received}/${r.want}; p50 ${f(r.p50, 1)} ms, p99 ${f(r.p99, 1)} ms, max ${f(r.max, 0)} ms; ` +
    `spread ${Object.entries(r.spread).map(([k, v]) => `${k} ${v}`).join(', ')}; ` +
    `HAProxy ${r.haproxyProcesses} process(es) of maxconn ${r.maxconn}; CPU over ${f(r.sendS, 1)} s: ` +
    `${f(r.cpu['whole machine'] / r.sendS)} cores busy, ${topCpu(r.cpu, r.sendS, 6)}`}`);
}
console.log(`(CPU: seconds per second of wall time, i.e. cores; load average now ${load()})`);
rmSync(tmp, { recursive: true, force: true });
process.exit(status ? 1 : 0);
