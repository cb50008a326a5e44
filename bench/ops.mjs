// Committed operations per second through lighttpd, the API processes and the Redis
// commit: one room with every writer in it (all commits contend for one revision), and
// 100 rooms side by side. Prints its figures. Needs BASE_URL (bench/run.sh sets it).
//   BENCH_SECONDS (default 5), BENCH_CONCURRENCY (default 32)
//   BENCH_OPS_RATES (default "2500 4000"): the offered rates of the second part, one room
//   and 100 rooms; "auto": 70 % of what the first part reached with as many rooms
//   BENCH_OPS_JSON: write every part's figures there as JSON
//   BENCH_TOPOLOGY: a `make cluster` layout's topology.json, whose processes' CPU is shown
//   (else the stack's of CC_VAR, bench/lib.mjs stackProcs)
//   BENCH_OPS_GEN (default "c"): the writers. "c": build/release/bin/bench-opsgen
//   (bench/c/opsgen.c, one epoll loop; this script registers, creates the rooms, reads the
//   processes' CPU and runs it once per part); "node": the writers in this script
// Two parts. "As fast as they can": every writer sends its next commit as soon as the last
// is answered (closed loop), which finds the most commits per second; its latency is set
// by the queue the writers themselves keep full (Little's law: mean = writers / rate, so
// 32 writers at 2,500/s wait 12.8 ms on average however fast each commit is). "At a
// fixed rate": the same 32 writers offer a set number of commits per second between them
// (open loop, each writer on its own schedule), and each commit's latency is counted from
// the moment it was due, not from when it was sent, so a slow answer also counts against
// the commits queued behind it (no coordinated omission). The latency goal is judged there.
// The load generator shares the machine with the stack, so it is kept lean: each writer
// holds one kept-alive TCP connection and writes its requests by hand (fetch costs several
// times more CPU per request); it prints the CPU it used itself. The Node writers cost
// 40-65 µs of CPU per request and node's event loop sends some commits late (its timers run
// once per loop turn), which shows in the latency from due; bench-opsgen waits with a
// nanosecond timeout and says how many of its sends were more than 1 ms late, and why.
import net from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { stackProcs, clusterProcs, cpuByRole, cpuDelta, formatCpu } from './lib.mjs';

const BASE = process.env.BASE_URL;
const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 32);
const RATES_SET = (process.env.BENCH_OPS_RATES || '2500 4000').trim();
const RATES = RATES_SET === 'auto' ? [] : RATES_SET.split(/\s+/).map(Number);
const TOPOLOGY = process.env.BENCH_TOPOLOGY;
const GEN = process.env.BENCH_OPS_GEN || 'c';
const GEN_BIN = new URL('../build/release/bin/bench-opsgen', import.meta.url).pathname;
if (GEN !== 'c' && GEN !== 'node') throw new Error(`BENCH_OPS_GEN is "c" or "node", not "${GEN}"`);
if (GEN === 'c' && !existsSync(GEN_BIN)) throw new Error(`${GEN_BIN} is not built: make build`);
// the processes measured, looked up again for every part (a web node's API processes may
// have been restarted meanwhile)
const procs = () => (TOPOLOGY ? clusterProcs(TOPOLOGY) : stackProcs());

async function call(method, path, token, body) {
  const res = await fetch(BASE + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  return { status: res.status, json };
}

async function register() {
  const name = 'ops' + Math.random().toString(36).slice(2, 10);
  const res = await fetch(BASE + '/api/auth/register', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: name, password: 'bench-password' }),
  });
  return (await res.json()).token;
}

// One writer's connection: a request at a time, the answer's status and body. lighttpd
// closes a kept-alive connection after server.max-keep-alive-requests (1,000) answers:
// the next request then opens a new one (a request in flight when it closes fails).
function connection() {
  const url = new URL(BASE);
  let sock = null, buf = Buffer.alloc(0), waiting = null, ready = null;
  function open() {
    buf = Buffer.alloc(0);
    const s = sock = net.connect(Number(url.port), url.hostname);
    s.setNoDelay(true);
    s.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (!waiting) return;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      const m = /\r\ncontent-length: *(\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      if (buf.length < end + 4 + len) return;
      const body = buf.toString('utf8', end + 4, end + 4 + len);
      buf = buf.subarray(end + 4 + len);
      const w = waiting;
      waiting = null;
      // the server's last answer on this connection: the next request opens a new one
      if (/\r\nconnection: *close/i.test(head)) { sock = null; s.destroy(); }
      w.resolve({ status: Number(head.slice(9, 12)), body });
    });
    s.on('error', () => {});
    s.on('close', () => {
      if (sock === s) sock = null;
      if (waiting) { const w = waiting; waiting = null; w.reject(new Error('the connection closed')); }
    });
    ready = new Promise((res, rej) => { s.once('connect', res); s.once('error', rej); });
    return ready;
  }
  open();
  return {
    get ready() { return ready; },
    async request(path, token, body) {
      if (!sock) await open();
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
        sock.write(`POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      });
    },
    close() { const s = sock; sock = null; s?.destroy(); },
  };
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

// Writers loop until the deadline; each posts a one-character insert against the last
// revision it saw, so most commits are transformed over others' (the realistic case).
// rate: commits per second offered by all writers together (open loop), or 0 for as fast
// as they can (closed loop).
async function runNode(label, rooms, token, rate = 0) {
  const known = new Map(rooms.map((r) => [r, 0]));
  let ok = 0, failed = 0, firstFailure = '';
  const lat = [];
  const deadline = Date.now() + SECONDS * 1000;
  const conns = Array.from({ length: CONCURRENCY }, connection);
  await Promise.all(conns.map((c) => c.ready));
  const t0 = Date.now();
  const roles = procs();
  const roleCpu0 = cpuByRole(roles);
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const gap = rate > 0 ? (1e9 * CONCURRENCY) / rate : 0; // ns between one writer's commits
  let late = 0;
  const latSent = []; // open loop: from when it was really sent
  await Promise.all(conns.map(async (conn, w) => {
    // writers start spread over one gap, so the offered load is even
    let due = start + BigInt(Math.round((gap * w) / CONCURRENCY));
    for (let n = 0; Date.now() < deadline; n++) {
      const room = rooms[(w + ok + failed) % rooms.length];
      let s = process.hrtime.bigint();
      if (rate > 0 && due > s) {
        await new Promise((r) => setTimeout(r, Number(due - s) / 1e6));
        s = process.hrtime.bigint();
      }
      if (rate > 0 && s - due > 1000000n) late++;
      const r = await conn.request(`/api/rooms/${room}/operations`, token, `{"revision":${known.get(room)},"ops":["x"]}`)
        .catch((e) => ({ status: 0, body: e.message }));
      const end = process.hrtime.bigint();
      if (rate > 0) {
        latSent.push(Number(end - s) / 1e6);
        // counted from when it was due, or from the send if that came first: node's timers
        // run on a clock cached once per loop turn, so a wait can end up to a millisecond
        // before the moment it waited for
        if (due < s) s = due;
        due += BigInt(Math.round(gap));
      }
      lat.push(Number(end - s) / 1e6);
      if (r.status === 200) {
        ok++;
        const rev = Number(/"revision":(\d+)/.exec(r.body)[1]);
        if (rev > known.get(room)) known.set(room, rev);
      } else {
        if (!failed) firstFailure = `${r.status} ${r.body}`;
        failed++;
      }
    }
  }));
  const secs = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const roleCpu = cpuDelta(roleCpu0, cpuByRole(roles));
  for (const c of conns) c.close();
  lat.sort((a, b) => a - b);
  latSent.sort((a, b) => a - b);
  if (failed) console.log(`  first failure: ${firstFailure.slice(0, 200)}`);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const offered = rate > 0 ? `offered ${rate}/s, ` : '';
  const behind = rate > 0 ? `, ${late} sent more than 1 ms after due; from the send: p50 ${pct(latSent, 50).toFixed(2)} ms, p99 ${pct(latSent, 99).toFixed(2)} ms` : '';
  console.log(`${label.padEnd(34)} ${(ok / secs).toFixed(0).padStart(7)} commits/s   p50 ${pct(lat, 50).toFixed(2)} ms   p99 ${pct(lat, 99).toFixed(2)} ms   (${offered}${ok} ok, ${failed} failed, ${CONCURRENCY} writers${behind}; load generator ${(cpuMs / secs / 10).toFixed(0)}% of a core, ${(cpuMs * 1000 / (ok + failed)).toFixed(0)} µs CPU per request)`);
  console.log(`    CPU: ${formatCpu(roleCpu, secs)}`);
  results.push({ label, rooms: rooms.length, rate, perS: ok / secs, p50: pct(lat, 50), p99: pct(lat, 99), ok, failed, secs, cpu: roleCpu });
  return ok / secs;
}

// The same part with bench-opsgen as the writers: its one line of JSON (bench/c/opsgen.c's
// header) gives the counts, the latencies and its own CPU; the stack's CPU is read around it
// (its connection set-up, a few milliseconds, included).
async function runC(label, rooms, token, rate = 0) {
  const url = new URL(BASE);
  if (url.protocol !== 'http:') throw new Error(`bench-opsgen speaks plain HTTP, not ${BASE}`);
  const args = ['--host', url.hostname.replace(/^\[(.*)\]$/, '$1'), '--port', url.port || '80', '--token', token,
    '--rooms', rooms.join(','), '--writers', String(CONCURRENCY), '--seconds', String(SECONDS), '--rate', String(rate)];
  const roles = procs();
  const roleCpu0 = cpuByRole(roles);
  const child = spawn(GEN_BIN, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const code = await new Promise((resolve) => child.on('close', (c, sig) => resolve(sig || c)));
  const roleCpu = cpuDelta(roleCpu0, cpuByRole(roles));
  let g;
  try { g = JSON.parse(out.trim().split('\n').at(-1)); } catch { g = null; }
  if (code !== 0 || !g) throw new Error(`bench-opsgen ended with ${code}: ${out.slice(0, 500)}`);
  roleCpu['bench-opsgen'] = g.cpu_us / 1e6;
  const secs = g.secs, lat = g.latency_ms, sent = g.from_send_ms;
  if (g.failed) console.log(`  first failure: ${g.first_failure.slice(0, 200)}`);
  const kinds = Object.entries(g.failures).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ');
  const offered = rate > 0 ? `offered ${rate}/s, ` : '';
  const behind = rate > 0 ? `, ${g.late + g.late_queued} sent more than 1 ms after due (${g.late} by the load generator, ${g.late_queued} waiting for the answer before); from the send: p50 ${sent.p50.toFixed(2)} ms, p99 ${sent.p99.toFixed(2)} ms` : '';
  console.log(`${label.padEnd(34)} ${g.per_s.toFixed(0).padStart(7)} commits/s   p50 ${lat.p50.toFixed(2)} ms   p99 ${lat.p99.toFixed(2)} ms   (${offered}${g.ok} ok, ${g.failed} failed${kinds ? ` (${kinds})` : ''}, ${CONCURRENCY} writers${behind}; load generator bench-opsgen ${(g.cpu_us / 1e4 / secs).toFixed(0)}% of a core, ${g.cpu_us_per_request.toFixed(1)} µs CPU per request, ${(100 * g.cpu_sys_us / Math.max(1, g.cpu_us)).toFixed(0)}% of it in the kernel)`);
  console.log(`    p90 ${lat.p90.toFixed(2)} ms, p99.9 ${lat.p999.toFixed(2)} ms, max ${lat.max.toFixed(2)} ms; ${g.reconnects} reconnects`);
  console.log(`    CPU: ${formatCpu(roleCpu, secs)}`);
  results.push({ label, rooms: rooms.length, rate, perS: g.per_s, p50: lat.p50, p99: lat.p99, ok: g.ok, failed: g.failed, secs, cpu: roleCpu });
  return g.per_s;
}

const run = GEN === 'c' ? runC : runNode;
const results = [];
const token = await register();
const mk = async () => (await call('POST', '/api/rooms', token, { name: 'bench', language: 'plaintext' })).json.room.id;
// new rooms for every part, so each starts from revision 0 and small documents
const rooms = async (n) => { const r = []; for (let i = 0; i < n; i++) r.push(await mk()); return r; };
console.log(`load generator: ${GEN === 'c' ? 'bench-opsgen (bench/c/opsgen.c)' : 'node (this script)'}, BENCH_OPS_GEN=${GEN}`);
console.log('as fast as they can (closed loop):');
const closed1 = await run('operations, 1 room', await rooms(1), token);
const closed100 = await run('operations, 100 rooms', await rooms(100), token);
// "auto": below what the closed loop reached, so the open loop measures latency at a load
// the layout carries rather than a queue that only grows
const auto = (v) => Math.max(10, Math.round((v * 0.7) / 10) * 10);
const rate1 = RATES[0] ?? auto(closed1), rate100 = RATES[1] ?? RATES[0] ?? auto(closed100);
console.log('at a fixed rate (open loop, latency from when each commit was due):');
await run(`operations, 1 room @ ${rate1}/s`, await rooms(1), token, rate1);
await run(`operations, 100 rooms @ ${rate100}/s`, await rooms(100), token, rate100);
if (process.env.BENCH_OPS_JSON) writeFileSync(process.env.BENCH_OPS_JSON, JSON.stringify(results));
