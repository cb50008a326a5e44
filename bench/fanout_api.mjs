// Fan-out through the whole product: one room, one writer, N SSE subscribers. The writer
// POSTs M operations to /api/rooms/{id}/operations 50 ms apart (lighttpd, FastCGI API, OT
// commit in Redis, SPUBLISH), each carrying a marker in its client_id; every subscriber
// parses the `operation` event and the latency is taken from the start of the POST to that
// moment, on this process's one clock. All N x M receipts are counted. Subscribers connect
// through lighttpd (/events/rooms/{id}?ticket=T) up to BENCH_FANOUT_DIRECT_FROM - 1; from
// there on straight to the broker's port (lighttpd holds two descriptors per stream and
// allows 8,000 connections), the writer still going through the API. Broker RSS from /proc
// before connecting, with N idle streams, and after the sends; CPU seconds of every process
// of the stack during the sends. The load generator (this process) shares the machine's
// cores with everything it measures.
//   node bench/fanout_api.mjs [N ...]        (default: BENCH_FANOUT_SIZES, else 100 1000 5000 10000)
//   BENCH_FANOUT_MAX         drop sizes above this (bench/run.sh sets it)
//   BENCH_FANOUT_DIRECT_FROM subscribers connect to BROKER_PORT from this N on (default 8000)
//   BENCH_FANOUT_EVENTS      M for every N (default 50, and 20 at N >= 5,000)
// Needs BASE_URL, BROKER_PORT and CC_VAR of the stack (bench/run.sh exports them), and
// `ulimit -n` above N + a few hundred.
import {
  now, sleep, must, newUser, newRoom, ticketSource, sseConnect, stackProcs, rssKiB,
  cpuByRole, cpuDelta, formatCpu, pct, ms, loadavg, postMarkers, BASE,
} from './lib.mjs';

const args = process.argv.slice(2).map(Number).filter((n) => n > 0);
const fromEnv = (process.env.BENCH_FANOUT_SIZES || '').split(/[\s,]+/).map(Number).filter((n) => n > 0);
const max = Number(process.env.BENCH_FANOUT_MAX || Infinity);
const sizes = (args.length ? args : fromEnv.length ? fromEnv : [100, 1000, 5000, 10000]).filter((n) => n <= max);
const DIRECT_FROM = Number(process.env.BENCH_FANOUT_DIRECT_FROM || 8000);
const BATCH = 250; // connections opened at once
const base = new URL(BASE);

// The broker's and lighttpd's RSS (all their processes) before the first stream of this bench: per-stream memory
// is the growth from there to N idle streams, divided by N. The sizes run in ascending
// order and a freed heap is reused, so growth since each run's own start would understate
// every size after the first.
let start = null;

async function runOne(n, writer, reader) {
  const direct = n >= DIRECT_FROM;
  if (direct && !process.env.BROKER_PORT) throw new Error(`N=${n} connects to the broker directly: set BROKER_PORT`);
  const host = base.hostname;
  const port = direct ? Number(process.env.BROKER_PORT) : Number(base.port || 80);
  const M = Number(process.env.BENCH_FANOUT_EVENTS || (n >= 5000 ? 20 : 50));

  const room = await newRoom(writer.token);
  const joined = await must('POST', `/api/rooms/${room.id}/join`, reader.token, { invite: room.invite });
  if (joined.role !== 'editor') throw new Error('the reader did not join');
  const ticket = ticketSource(room.id, reader.token);

  const procs = stackProcs();
  // every process of each (make run may start several: BROKER_PROCESSES, LIGHTTPD_WORKERS),
  // summed: the streams live in the children, not in the first process found
  const broker = procs.broker, lighttpd = procs.lighttpd;
  const ids = (pids) => [...pids].sort((a, b) => a - b).join(',');
  const rssOf = (pids) => pids.reduce((a, p) => a + (rssKiB(p) || 0), 0);
  const rss0 = rssOf(broker);
  const lrss0 = rssOf(lighttpd);
  start ??= { broker: ids(broker), lighttpd: ids(lighttpd), rss: rss0, lrss: lrss0 };
  if (start.broker !== ids(broker) || start.lighttpd !== ids(lighttpd)) throw new Error('the broker or lighttpd was restarted');

  const sent = new Float64Array(M).fill(NaN); // when the POST of marker k started
  const got = new Uint32Array(M);             // receipts per marker
  const first = new Float64Array(M).fill(Infinity), last = new Float64Array(M); // per marker
  const lat = [];
  let late = 0; // receipts of a marker whose POST start was not recorded (never expected)
  const re = /"client_id":"m(\d+)"/;
  const onEvent = (block, at) => {
    if (!block.includes('event: operation')) return;
    const m = re.exec(block);
    if (!m) return;
    const k = Number(m[1]);
    if (!(k < M) || Number.isNaN(sent[k])) { late++; return; }
    got[k]++;
    const l = at - sent[k];
    lat.push(l);
    if (l < first[k]) first[k] = l;
    if (l > last[k]) last[k] = l;
  };

  const socks = [];
  const tc0 = now();
  for (let i = 0; i < n; i += BATCH) {
    const t = await ticket();
    const path = `/events/rooms/${room.id}?ticket=${encodeURIComponent(t)}`;
    const batch = [];
    for (let j = i; j < Math.min(n, i + BATCH); j++) batch.push(sseConnect({ host, port, path, onEvent }));
    socks.push(...await Promise.all(batch));
  }
  const connectS = (now() - tc0) / 1000;
  await sleep(1000); // let joins, presence and replays settle
  const rss1 = rssOf(broker);
  const lrss1 = rssOf(lighttpd);

  const cpu0 = cpuByRole(procs);
  const ts0 = now();
  const { postLat, postFailed } = await postMarkers(room.id, writer.token, sent);
  const slowestMs = Math.max(...postLat), slowest = postLat.indexOf(slowestMs);
  const want = n * M;
  const deadline = now() + 30000 + n; // generous: a slow delivery is a result, not a hang
  while (lat.length < want && now() < deadline) await sleep(20);
  const sendS = (now() - ts0) / 1000;
  const cpu = cpuDelta(cpu0, cpuByRole(procs));
  const rss2 = rssOf(broker);
  const lrss2 = rssOf(lighttpd);

  for (const s of socks) s.destroy();
  lat.sort((a, b) => a - b);
  postLat.sort((a, b) => a - b);
  const firstS = [...first].filter(Number.isFinite).sort((a, b) => a - b);
  const lastS = [...last].filter((v) => v > 0).sort((a, b) => a - b);
  const missingMarkers = got.filter((c) => c < n).length;
  return {
    n, M, via: direct ? 'broker port' : 'lighttpd', connectS, sendS,
    delivered: lat.length, want, late, postFailed, missingMarkers,
    p50: pct(lat, 50), p99: pct(lat, 99), max: lat.at(-1),
    slowest, slowestMs,
    postP50: pct(postLat, 50), postP99: pct(postLat, 99),
    firstP50: pct(firstS, 50), lastP50: pct(lastS, 50),
    rss0, rss1, rss2, perConn: ((rss1 - start.rss) * 1024) / n,
    lrss0, lrss1, lrss2, lPerConn: direct ? NaN : ((lrss1 - start.lrss) * 1024) / n,
    cpu,
  };
}

const mib = (k) => (Number.isFinite(k) ? (k / 1024).toFixed(1) : 'n/a');

console.log(`fan-out through the API: one writer POSTs to /api/rooms/{id}/operations 50 ms apart, ` +
  `N SSE subscribers (load generator on the same cores; load average ${loadavg()})`);
const writer = await newUser('fanw');
const reader = await newUser('fanr');
const results = [];
for (const n of sizes) {
  const r = await runOne(n, writer, reader);
  results.push(r);
  console.log(`  N=${n} via ${r.via}: connected in ${r.connectS.toFixed(1)} s; ${r.M} POSTs ` +
    `(POST answered p50 ${ms(r.postP50)} ms, p99 ${ms(r.postP99)} ms, slowest #${r.slowest} ${ms(r.slowestMs)} ms` +
    `${r.postFailed ? `, ${r.postFailed} failed` : ''}); ` +
    `received ${r.delivered}/${r.want}${r.late ? `, ${r.late} unexpected` : ''}; ` +
    `per marker, first receipt p50 ${ms(r.firstP50)} ms, last receipt p50 ${ms(r.lastP50)} ms`);
  console.log(`    CPU during the ${r.sendS.toFixed(1)} s of sends: ${formatCpu(r.cpu, r.sendS)}`);
  await sleep(1500); // let the broker drop the closed streams before the next size
}

console.log('');
console.log('| N | path | M | received | p50 ms | p99 ms | max ms | broker RSS idle → N streams → after | broker per stream | lighttpd per stream |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.n.toLocaleString('en-US')} | ${r.via} | ${r.M} | ${r.delivered}/${r.want} | ${ms(r.p50)} | ${ms(r.p99)} | ` +
    `${ms(r.max)} | ${mib(r.rss0)} → ${mib(r.rss1)} → ${mib(r.rss2)} MiB | ` +
    `${Number.isFinite(r.perConn) ? (r.perConn / 1024).toFixed(1) + ' KiB' : 'n/a'} | ` +
    `${Number.isFinite(r.lPerConn) ? (r.lPerConn / 1024).toFixed(1) + ' KiB' : '—'} |`);
}
console.log(`(latency: start of the POST to the subscriber parsing the marker, over all N x M receipts; ` +
  `per stream: RSS with N idle streams less RSS before this bench's first stream, over N; ` +
  `load average now ${loadavg()})`);
const short = results.filter((r) => r.delivered < r.want);
process.exit(short.length ? 1 : 0);
