// Fan-out on the `make cluster` layout (scripts/cluster.sh), everything through HAProxy: N SSE
// subscribers of one room (GET /events/rooms/{id}?ticket=T on HAProxy's port, which spreads
// them over the brokers, least connections first), and one writer committing M operations
// 50 ms apart (POST /api/rooms/{id}/operations on the same port: a web node, the OT commit in
// the Redis Cluster, SPUBLISH to every broker that follows the room). Latency: from the start
// of a commit's POST to a subscriber's read of its event, over all N x M receipts, which must
// all arrive. The spread over the brokers is read from each broker's own /events/health.
// Prints the CPU seconds of every role of the layout during the sends.
//
// Descriptors: HAProxy holds two per stream (the client's and the broker's) and the layout
// gives it a maxconn of half the hard open-files limit (less a margin). Above what one process
// holds, this starts more HAProxy processes with the layout's own configuration: they bind the
// same port (HAProxy sets SO_REUSEPORT), the kernel spreads new connections over them, and
// they are stopped at the end. The subscribers live in child processes of at most
// BENCH_CLUSTER_PER_PROCESS streams each (bench/subpool.mjs).
//   BENCH_CLUSTER_FANOUT_N (default 20000), BENCH_CLUSTER_FANOUT_EVENTS (M, default 20)
//   BENCH_CLUSTER_PER_PROCESS (default 10000), BENCH_CLUSTER_HAPROXY_PROCESSES (default: as
//   many as N takes at 75 % of each one's maxconn)
//   BENCH_CLUSTER_JSON: write the figures there as JSON
// Needs BASE_URL (HAProxy) and BENCH_TOPOLOGY (the layout's topology.json); bench/cluster.mjs
// sets both. `ulimit -n` must allow BENCH_CLUSTER_PER_PROCESS + a few hundred.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, openSync } from 'node:fs';
import {
  now, sleep, must, newUser, newRoom, ticketSource, clusterProcs, cpuByRole, cpuDelta,
  formatCpu, pct, ms, loadavg, postMarkers, BASE,
} from './lib.mjs';
import { splitPool } from './subpool.mjs';

const N = Number(process.env.BENCH_CLUSTER_FANOUT_N || 20000);
const M = Number(process.env.BENCH_CLUSTER_FANOUT_EVENTS || 20);
const PER_PROCESS = Number(process.env.BENCH_CLUSTER_PER_PROCESS || 10000);
const TOPOLOGY = process.env.BENCH_TOPOLOGY;
if (!TOPOLOGY) { console.error('BENCH_TOPOLOGY is not set: the layout\'s topology.json'); process.exit(2); }
const topo = JSON.parse(readFileSync(TOPOLOGY, 'utf8'));
const base = new URL(BASE);
const fmtN = (v) => v.toLocaleString('en-US');

// HAProxy's maxconn, as the layout's configuration has it
const cfgFile = `${topo.var}/run/haproxy.cfg`;
const maxconn = Number(/^\s*maxconn (\d+)/m.exec(readFileSync(cfgFile, 'utf8'))?.[1] || 0);
if (!maxconn) throw new Error(`no global maxconn in ${cfgFile}`);
const haproxies = Number(process.env.BENCH_CLUSTER_HAPROXY_PROCESSES || Math.ceil(N / (0.75 * maxconn)));

// The pids of the processes listening on HAProxy's port.
function listeners() {
  const out = execFileSync('ss', ['-Hltnp', `sport = :${topo.port}`], { encoding: 'utf8' });
  return new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}

const extra = [];
async function startHaproxies(k) {
  const log = openSync(`${topo.var}/log/haproxy-bench.log`, 'a');
  for (let i = 1; i < k; i++) {
    const p = spawn('haproxy', ['-db', '-f', cfgFile], { stdio: ['ignore', log, log] });
    extra.push(p);
    const t0 = now();
    while (!listeners().has(p.pid)) {
      if (p.exitCode !== null || now() - t0 > 10000) throw new Error(`an extra HAProxy did not listen on ${topo.port} (see ${topo.var}/log/haproxy-bench.log)`);
      await sleep(100);
    }
  }
}
async function stopHaproxies() {
  for (const p of extra) {
    if (p.exitCode !== null) continue;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([gone, sleep(5000)]);
    if (p.exitCode === null) p.kill('SIGKILL');
  }
}

async function brokerClients() {
  const out = {};
  for (const b of topo.processes.filter((p) => p.role === 'broker')) {
    try {
      const r = await fetch(`http://127.0.0.1:${b.ports[0]}/events/health`);
      out[b.name] = (await r.json()).clients;
    } catch (e) { out[b.name] = `error: ${e.message}`; }
  }
  return out;
}

console.log(`fan-out through HAProxy: N = ${fmtN(N)} subscribers of one room, one writer committing ` +
  `${M} operations 50 ms apart; HAProxy maxconn ${fmtN(maxconn)} per process, ${haproxies} process(es); ` +
  `subscribers in ${Math.ceil(N / PER_PROCESS)} child process(es); load average ${loadavg()}`);
let status = 0;
let pool = null;
const result = { n: N, m: M, haproxyProcesses: haproxies, maxconn };
try {
  await startHaproxies(haproxies);
  const writer = await newUser('clw');
  const reader = await newUser('clr');
  const room = await newRoom(writer.token);
  const joined = await must('POST', `/api/rooms/${room.id}/join`, reader.token, { invite: room.invite });
  if (joined.role !== 'editor') throw new Error('the reader did not join');
  const idle = await brokerClients();

  const tc0 = now();
  pool = await splitPool(N, {
    host: base.hostname, port: Number(base.port), ticket: ticketSource(room.id, reader.token),
    path: `/events/rooms/${room.id}?ticket={ticket}`,
  }, { perProcess: PER_PROCESS, conc: 200, timeoutMs: 15000 });
  result.connectS = (now() - tc0) / 1000;
  result.connected = pool.socks.length;
  const spread = await brokerClients();
  result.spread = Object.fromEntries(Object.entries(spread).map(([k, v]) => [k, typeof v === 'number' ? v - (idle[k] || 0) : v]));
  console.log(`  connected ${fmtN(pool.socks.length)}/${fmtN(N)} in ${result.connectS.toFixed(1)} s` +
    `${pool.failed ? ` (${pool.failed} failed, first: ${pool.firstError})` : ''}; ` +
    `the brokers' /events/health clients: ${Object.entries(spread).map(([k, v]) => `${k} ${v}`).join(', ')}` +
    ` (before: ${Object.entries(idle).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  if (pool.socks.length < N) throw new Error(`only ${pool.socks.length} of ${N} streams opened`);
  await sleep(1000); // let joins and presence settle

  const procs = { ...clusterProcs(TOPOLOGY, extra.map((p) => p.pid)), 'node (subscribers)': pool.pids };
  const cpu0 = cpuByRole(procs);
  const ts0 = now();
  const sent = new Float64Array(M).fill(NaN);
  const { postLat, postFailed } = await postMarkers(room.id, writer.token, sent);
  const want = N * M;
  const deadline = now() + 30000 + N;
  let got = 0;
  while ((got = await pool.count()) < want && now() < deadline) await sleep(200);
  const sendS = (now() - ts0) / 1000;
  const cpu = cpuDelta(cpu0, cpuByRole(procs));
  const { lat, unexpected } = await pool.latencies(sent);
  lat.sort((a, b) => a - b);
  postLat.sort((a, b) => a - b);
  Object.assign(result, {
    received: lat.length, want, unexpected, postFailed, sendS,
    p50: pct(lat, 50), p99: pct(lat, 99), max: lat.at(-1),
    postP50: pct(postLat, 50), postP99: pct(postLat, 99), cpu,
  });
  console.log(`  ${M} commits (POST answered p50 ${ms(result.postP50)} ms, p99 ${ms(result.postP99)} ms` +
    `${postFailed ? `, ${postFailed} failed` : ''}); received ${fmtN(lat.length)}/${fmtN(want)}` +
    `${unexpected ? ` (+${unexpected} unexpected)` : ''}; latency p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms, max ${ms(result.max)} ms`);
  console.log(`    CPU during the ${sendS.toFixed(1)} s of sends: ${formatCpu(cpu, sendS)}`);
  if (lat.length < want || postFailed) status = 1;
} catch (e) {
  console.log(`  FAILED: ${e.message}`);
  result.error = e.message;
  status = 1;
} finally {
  if (pool) await pool.close();
  await stopHaproxies();
}
result.load = loadavg();
if (process.env.BENCH_CLUSTER_JSON) writeFileSync(process.env.BENCH_CLUSTER_JSON, JSON.stringify(result));
process.exit(status);
