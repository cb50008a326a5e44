// `make bench-compare`: our fan-out side by side with nginx + Nchan and Socket.IO 4, in one
// run, one harness. bench/compare.sh starts the three systems (each on its own Redis) and
// runs this; it can also be run against systems started by hand (the variables below).
//
// For every N and every system, the same shape: one channel (ours: a new room; Nchan: a new
// channel id; Socket.IO: the room every client joins), N subscribers opened at most
// BENCH_COMPARE_CONCURRENCY at a time, 1 s of quiet, RSS of the system's processes with the
// N idle streams, then one writer POSTs M messages on a 50 ms grid, each
// carrying a marker, and every subscriber notes when the socket read that carried the
// marker returned (one clock, this process's). Latency: start of the POST to that moment,
// over all N x M receipts. The writer keeps to the grid whatever the answers take (open
// loop: a POST is not awaited before the next; ours carries the newest revision answered so
// far, and the server transforms it over any operation committed since, as with several
// writers); a send more than 10 ms behind the grid (this process too busy) is counted. The
// systems run one after the other; the others sit idle. Each system's line also gives the
// shape of a message's fan-out (the median over the messages of its first receipt, and of
// the time from its first to its last receipt): the fixed path and the fan-out apart.
//   ours:      POST /api/rooms/{id}/operations through the URL `make run` prints (lighttpd,
//              FastCGI API, OT commit and SPUBLISH in Redis, broker); the subscribers ask
//              that URL where to stream (GET /api/streams: the broker's own port, "direct
//              streams") and GET /events/rooms/{id}?ticket=T there, as the browser client does
//   front:     ours with the subscribers on the front door's /events/ (lighttpd's proxy hop),
//              the route of clients that are told no origin; a column of its own
//   Nchan:     POST /pub?c=CH to nginx, subscribers GET /sub?c=CH as EventSource, Redis-backed
//   Socket.IO: POST /publish to the node server (bench/compare-socketio.mjs), which emits to
//              the room through the Redis adapter; subscribers are engine.io WebSockets
// The subscribers (the harness, BENCH_COMPARE_HARNESS):
//   c (default): the SSE systems (ours, front, Nchan) alike through bench-ssesub
//              (bench/c/ssesub.c, build/release/bin/bench-ssesub), one epoll loop in C a
//              process, BENCH_COMPARE_SUB_PROCESSES of them (bench/subpool.mjs), which times
//              each receipt on CLOCK_MONOTONIC right after its read(); Nchan with
//              --ready headers and no filter, ours on "event: operation". Node's harness costs
//              11-14 µs of CPU per receipt, which at N = 1,000 hides the servers' differences;
//              this one 4-6 µs, most of it the kernel's ACK inside read().
//              Socket.IO (engine.io over WebSocket) stays on node's harness below.
//   node:      every subscriber a raw socket of this process (bench/lib.mjs sseConnect,
//              bench/compare-lib.mjs sioConnect), ours split over node children above
//              BENCH_COMPARE_PER_PROCESS.
// Which harness measured which system is in the table and its labels. The harness's CPU
// during the sends (this process plus its subscriber processes) is printed per receipt.
// A subscriber that does not connect within BENCH_COMPARE_CONNECT_TIMEOUT_MS (10 s) counts
// as failed; after BENCH_COMPARE_CONCURRENCY failures no more are opened and the run is
// reported as failed (with the reason) without sending, and the next one starts.
//
//   BENCH_COMPARE_N            sizes (default "1000 5000 10000")
//   BENCH_COMPARE_EVENTS       M (default 50, and 20 above N = 5,000)
//   BENCH_COMPARE_SYSTEMS      which of "ours nchan socketio front" (default all four)
//   BENCH_COMPARE_ROUNDS       runs of every system at each N, alternating (default 1); above 1
//                              the table is the first round's, and a second table gives each
//                              round's ratios to Nchan and their median: one p99 of M
//                              messages is set by its worst few messages and scatters
//   BENCH_COMPARE_CONCURRENCY  connections being opened at once (default 200)
//   BENCH_COMPARE_OUT          where the raw results go as JSON (default /tmp/...)
//   BENCH_COMPARE_HARNESS      c (default) or node: see above
//   BENCH_COMPARE_SUB_PROCESSES  c: bench-ssesub processes the N streams are split over (default 1)
//   BENCH_SSESUB_ACK           c: quick (default; an ACK inside every read, as any TCP client) or
//                              delayed (the kernel's delayed-ACK timer: the harness's CPU per
//                              receipt falls by about 40 %, part of it now counted to the servers)
//   BENCH_SSESUB_SCHED         c: other (default) or fifo (real-time priority 1: the harness reads
//                              a stream when its bytes arrive, not after the server process that
//                              holds the core ends its time slice; more switches per receipt)
//   BENCH_COMPARE_PER_PROCESS  node, ours only: above this N (default 15000, under a process's
//                              descriptors) the subscribers are split over child processes
//                              (bench/compare-sub.mjs, bench/subpool.mjs), each timing its receipts on the
//                              clock all processes share (performance.timeOrigin + now)
//   BASE_URL, CC_VAR           our stack (scripts/stack.sh exports them)
//   NCHAN_URL, NGINX_PID       nginx with Nchan, and its master's pid
//   SIO_URL, SIO_PID           the Socket.IO server and its pid
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import {
  now, sleep, must, newUser, newRoom, ticketSource, sseConnect, stackProcs, rssKiB,
  cpuSeconds, loadavg, send,
} from './lib.mjs';
import { pct, fmtMs, sioConnect, openPool, table, roundsTable, perMessage, SYSTEMS } from './compare-lib.mjs';
import { splitPool, SSESUB_BIN, SSESUB_ACK, SSESUB_SCHED } from './subpool.mjs';
import { childPids } from '../tests/lib/proctree.mjs';

const words = (s) => (s || '').trim().split(/[\s,]+/).filter(Boolean);
const sizes = words(process.env.BENCH_COMPARE_N || '1000 5000 10000').map(Number).filter((n) => n > 0);
const rounds = Math.max(1, Math.floor(Number(process.env.BENCH_COMPARE_ROUNDS || 1)) || 1);
const systems = words(process.env.BENCH_COMPARE_SYSTEMS || 'ours nchan socketio front');
const CONC = Number(process.env.BENCH_COMPARE_CONCURRENCY || 200);
const CONNECT_TIMEOUT = Number(process.env.BENCH_COMPARE_CONNECT_TIMEOUT_MS || 10000);
const PER_PROCESS = Number(process.env.BENCH_COMPARE_PER_PROCESS || 15000);
const HARNESS = process.env.BENCH_COMPARE_HARNESS || 'c';
const SUB_PROCESSES = Math.max(1, Number(process.env.BENCH_COMPARE_SUB_PROCESSES || 1));
const WARMUP = process.env.BENCH_COMPARE_WARMUP !== '0'; // 0: no untimed warm-up message (runOne)
if (!['c', 'node'].includes(HARNESS)) { console.error(`BENCH_COMPARE_HARNESS is c or node, not ${HARNESS}`); process.exit(2); }
if (HARNESS === 'c' && !existsSync(SSESUB_BIN)) { console.error(`${SSESUB_BIN} is not built: make build`); process.exit(2); }
// the harness of a system's subscribers, for the labels and the table
const harnessOf = (key) => (HARNESS === 'c' && key !== 'socketio'
  ? `C (bench-ssesub${SUB_PROCESSES > 1 ? ` × ${SUB_PROCESSES}` : ''}${SSESUB_ACK === 'delayed' ? ', delayed ACKs' : ''}${SSESUB_SCHED === 'fifo' ? ', SCHED_FIFO' : ''})` : 'node');
const out = process.env.BENCH_COMPARE_OUT ||
  `/tmp/codecollab-bench-compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
for (const s of systems) {
  if (!SYSTEMS.some(([k]) => k === s)) { console.error(`unknown system ${s} (ours nchan socketio front)`); process.exit(2); }
}

const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) =>
  setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms))]);

async function post(url, body) {
  const res = await send('POST', url, { body });
  if (res.status >= 300) throw new Error(`POST ${url}: ${res.status}`);
}

// A competitor's message: the marker in a body about the size of our operation event's data.
// Marker prefix 'm' for a timed message; the untimed warm-up message (runOne) uses 'w', which
// neither harness counts.
const pad = 'x'.repeat(120);
const body = (k, p = 'm') => `{"type":"operation","client_id":"${p}${k}","ops":["x"],"pad":"${pad}"}`;
const markerRe = /"client_id":"m(\d+)"/;

// ---- the three systems: how to subscribe, how to send, which processes are on the path ----

// route 'direct': the subscribers open their streams where the API tells clients to
// (GET /api/streams: the broker's own port under make run, docs/API.md "Direct streams"), as
// the browser client does; 'front': on the front door's /events/, through lighttpd's proxy.
async function oursVia(route) {
  const base = new URL(process.env.BASE_URL);
  const writer = await newUser('cmpw');
  const reader = await newUser('cmpr');
  let streams = base;
  if (route === 'direct') {
    const { origin } = await must('GET', '/api/streams');
    if (!origin) throw new Error('the stack names no stream origin (STREAM_ORIGIN is off): run BENCH_COMPARE_SYSTEMS with front instead of ours');
    streams = new URL(origin);
  }
  const host = streams.hostname, port = Number(streams.port || 80);
  return {
    label: route === 'direct' ? `ours (direct to the broker at ${streams.host}, told by the front door)` : 'ours (lighttpd → broker)',
    streamHolders: route === 'direct' ? ['broker'] : undefined,
    procs: () => { const p = stackProcs(); return { lighttpd: p.lighttpd, broker: p.broker }; },
    async channel() {
      const room = await newRoom(writer.token);
      const joined = await must('POST', `/api/rooms/${room.id}/join`, reader.token, { invite: room.invite });
      if (joined.role !== 'editor') throw new Error('the reader did not join');
      // the writer opens the document before its first edit, as the browser client does (a
      // new room's document is put in Redis by its first read or write)
      await must('GET', `/api/rooms/${room.id}/document`, writer.token);
      const ticket = ticketSource(room.id, reader.token);
      let revision = 0;
      return {
        warm: () => send('GET', `${base.origin}/`),
        // for subscribers in child processes (splitPool)
        sse: { host, port, ticket, filter: 'event: operation',
          path: `/events/rooms/${room.id}?ticket={ticket}` },
        open: (onEvent) => withTimeout((async () => {
          const t = await ticket();
          return sseConnect({
            host, port,
            path: `/events/rooms/${room.id}?ticket=${encodeURIComponent(t)}`,
            onEvent: (block, at) => { if (block.includes('event: operation')) onEvent(block, at); },
            timeoutMs: CONNECT_TIMEOUT,
          });
        })(), CONNECT_TIMEOUT + 2000, 'subscribe'),
        async send(k, p = 'm') {
          const path = `/api/rooms/${room.id}/operations`;
          const res = await send('POST', base.origin + path, {
            headers: { authorization: `Bearer ${writer.token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ revision, ops: ['x'], client_id: `${p}${k}` }),
          });
          if (res.status < 200 || res.status > 202) throw new Error(`POST ${path}: ${res.status} ${res.text.slice(0, 200)}`);
          revision = Math.max(revision, JSON.parse(res.text).revision);
        },
      };
    },
  };
}

async function nchan() {
  const base = new URL(process.env.NCHAN_URL);
  const master = Number(process.env.NGINX_PID);
  return {
    label: 'Nchan (nginx, Redis)',
    procs: () => ({ 'nginx workers': childPids(master) }),
    async channel(n) {
      const ch = `b${n}t${Date.now()}`;
      return {
        // for bench-ssesub (BENCH_COMPARE_HARNESS=c): no ticket, ready at the head, no filter
        sse: { host: base.hostname, port: Number(base.port), path: `/sub?c=${ch}`, ready: 'headers', cSplitOnly: true },
        open: (onEvent) => sseConnect({
          host: base.hostname, port: Number(base.port), path: `/sub?c=${ch}`, ready: 'headers',
          onEvent, timeoutMs: CONNECT_TIMEOUT,
        }),
        warm: () => send('GET', `${base.origin}/`),
        send: (k, p) => post(`${base.origin}/pub?c=${ch}`, body(k, p)),
      };
    },
  };
}

async function socketio() {
  const base = new URL(process.env.SIO_URL);
  const pid = Number(process.env.SIO_PID);
  return {
    label: 'Socket.IO 4 (Redis adapter)',
    procs: () => ({ 'node server': [pid] }),
    beforeRss: () => post(`${base.origin}/gc`, '').catch(() => {}),
    async channel() {
      return {
        open: (onEvent) => sioConnect({
          host: base.hostname, port: Number(base.port), onEvent, now, timeoutMs: CONNECT_TIMEOUT,
        }),
        warm: () => send('GET', `${base.origin}/`),
        send: (k, p) => post(`${base.origin}/publish`, body(k, p)),
      };
    },
  };
}

const makers = { ours: () => oursVia('direct'), front: () => oursVia('front'), nchan, socketio };

// ---- one run ------------------------------------------------------------------------------

const cpuOf = (procs) => Object.values(procs).flat().reduce((a, p) => a + cpuSeconds(p), 0);
const baseline = {}; // RSS (KiB) of each system's processes before its first stream
const baselineByRole = {};
const rssByRole = (procs) => Object.fromEntries(Object.entries(procs).map(([k, ps]) => [k, ps.reduce((a, p) => a + (rssKiB(p) || 0), 0)]));

// What lighttpd's error log says about connection limits since `from` (its byte length then).
function lighttpdLimits(from) {
  if (!process.env.CC_VAR) return '';
  try {
    const log = readFileSync(`${process.env.CC_VAR}/log/lighttpd.log`, 'latin1').slice(from);
    const hits = log.split('\n').filter((l) => /connection limit|sockets disabled|fd|too many open/i.test(l));
    return hits.length ? `; lighttpd's log: "${hits[0].trim()}"${hits.length > 1 ? ` (and ${hits.length - 1} more lines)` : ''}` : '';
  } catch { return ''; }
}
const logLength = () => { try { return readFileSync(`${process.env.CC_VAR}/log/lighttpd.log`, 'latin1').length; } catch { return 0; } };

async function runOne(key, sys, n) {
  const M = Number(process.env.BENCH_COMPARE_EVENTS || (n > 5000 ? 20 : 50));
  const r = { system: key, n, M, expected: n * M, received: 0, load: loadavg(), harness: harnessOf(key) };
  const ch = await sys.channel(n);
  const procs = sys.procs();
  if (!Object.values(procs).flat().length) throw new Error('no process of it found');
  // both of our routes are one stack: the RSS before its first stream of either
  const bkey = key === 'front' ? 'ours' : key;
  if (!baseline[bkey] && sys.beforeRss) await sys.beforeRss();
  baselineByRole[bkey] ??= rssByRole(procs);
  baseline[bkey] ??= Object.values(baselineByRole[bkey]).reduce((a, b) => a + b, 0);
  const log0 = key === 'ours' || key === 'front' ? logLength() : 0;

  const sent = new Float64Array(M).fill(NaN);
  const lat = [], latMsg = []; // every receipt's latency, and its message
  let unexpected = 0;
  const onEvent = (text, at) => {
    const m = markerRe.exec(text);
    if (!m) return;
    const k = Number(m[1]);
    if (!(k < M) || Number.isNaN(sent[k])) { unexpected++; return; }
    lat.push(at - sent[k]);
    latMsg.push(k);
  };

  const cpuC0 = process.cpuUsage();
  const tc0 = now();
  // c: every SSE system through bench-ssesub; node: ours over node children above PER_PROCESS
  const cSplit = HARNESS === 'c' && Boolean(ch.sse);
  const split = cSplit || (n > PER_PROCESS && ch.sse && !ch.sse.cSplitOnly);
  if (split) r.subscriberProcesses = cSplit ? Math.min(SUB_PROCESSES, n) : Math.ceil(n / PER_PROCESS);
  const pool = split
    ? await splitPool(n, ch.sse, cSplit
      ? { harness: 'c', processes: SUB_PROCESSES, conc: CONC, timeoutMs: CONNECT_TIMEOUT }
      : { perProcess: PER_PROCESS, conc: CONC, timeoutMs: CONNECT_TIMEOUT })
    : await openPool(n, CONC, () => ch.open(onEvent));
  r.connectS = (now() - tc0) / 1000;
  r.connected = pool.socks.length;
  r.harnessConnectCpuS = cpuDiff(cpuC0);
  const close = async () => { if (split) await pool.close(); else for (const s of pool.socks) s.destroy(); };
  if (pool.socks.length < n) {
    await close();
    r.error = `${pool.socks.length.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} streams opened ` +
      `(${pool.failed} attempts failed, giving up after ${CONC}; first: ${pool.firstError})` +
      (key === 'ours' || key === 'front' ? lighttpdLimits(log0) : '');
    return r;
  }
  await sleep(1000);
  if (sys.beforeRss) await sys.beforeRss();
  const procs1 = sys.procs();
  r.rssByRoleKiB = rssByRole(procs1);
  r.rssIdleKiB = Object.values(r.rssByRoleKiB).reduce((a, b) => a + b, 0);
  r.rssBaseKiB = baseline[bkey];
  r.perStreamByRoleBytes = Object.fromEntries(Object.entries(r.rssByRoleKiB).map(([k, v]) =>
    [k, ((v - (baselineByRole[bkey][k] ?? v)) * 1024) / n]));
  // the processes that hold the streams (a direct stream is the broker's alone: lighttpd
  // only answered its ticket); the others' growth is shown beside it, not counted
  const holders = sys.streamHolders || Object.keys(r.perStreamByRoleBytes);
  r.perStreamBytes = holders.reduce((a, k) => a + (r.perStreamByRoleBytes[k] ?? 0), 0);
  r.holders = holders;

  // One untimed request to the writer's server first. Node's HTTP client compiles its code on
  // first use (about 9 ms, measured 2026-12-01), and a system's first message would also
  // open the writer's connection: both fell on the first message of whichever system ran
  // first (ours), which alone is 2 % of the receipts at N = 1,000 and so set that p99.
  await ch.warm().catch(() => {});
  // Then one untimed message through the whole path to the N subscribers, for every system
  // alike. A channel's first message can cost a system work its later ones do not (measured
  // 2026-12-02: Nchan's first message on a new channel reached its 1,000 subscribers in
  // 55-74 ms against 10-20 for the next ones, which alone set its p99 at N = 1,000); ours
  // had the same kind of cost until its writer opened the document first. The timed messages
  // measure a room in use.
  if (WARMUP) {
    await ch.send(0, 'w').catch(() => {});
    await sleep(500);
  }
  const sysCpu0 = cpuOf(procs1), cpu0 = process.cpuUsage();
  const kidsCpu1 = split ? pool.cpuS() : 0;
  const ts0 = now();
  let sendFailed = 0, firstSendError = null, lateSends = 0;
  const failed = (e) => { sendFailed++; firstSendError ??= e.message; };
  const pending = [];
  for (let k = 0; k < M; k++) {
    const due = ts0 + k * 50;
    if (now() < due) await sleep(due - now());
    sent[k] = now();
    if (sent[k] - due > 10) lateSends++;
    // not awaited: a server slower than the grid gets the next message anyway (open loop),
    // as it would from a real writer, instead of slowing the writer to its pace
    pending.push(ch.send(k).catch(failed));
  }
  r.sendSpanS = (now() - ts0) / 1000;
  r.lateSends = lateSends;
  await Promise.all(pending);
  const deadline = now() + 15000 + n; // a slow delivery is a result; only a lost one is a failure
  const got = split ? pool.count : async () => lat.length;
  while ((await got()) < r.expected && now() < deadline) await sleep(split ? 200 : 20);
  r.sendS = (now() - ts0) / 1000;
  r.systemCpuS = cpuOf(procs1) - sysCpu0;
  r.subscriberCpuS = split ? pool.cpuS() - kidsCpu1 : 0;
  r.harnessCpuS = cpuDiff(cpu0) + r.subscriberCpuS;
  if (split) {
    const got2 = await pool.latencies(sent);
    for (const v of got2.lat) lat.push(v);
    for (const k of got2.msg) latMsg.push(k);
    unexpected += got2.unexpected;
  }
  await close();
  Object.assign(r, perMessage(lat, latMsg, M));
  lat.sort((a, b) => a - b);
  Object.assign(r, {
    received: lat.length, unexpected, sendFailed,
    p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), max: lat.at(-1),
  });
  if (sendFailed) r.error = `${sendFailed} of ${M} sends failed (first: ${firstSendError})`;
  return r;
}

const splitRun = (r) => r.subscriberProcesses > 0;

function cpuDiff(c0) {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1e6;
}

// ---- main -----------------------------------------------------------------------------------

const started = new Date();
const cores = availableParallelism();
let commit = '?';
try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { /* not a checkout */ }
console.log(`bench-compare: N = ${sizes.join(', ')}; ${systems.join(', ')}; ${cores} cores (${cpus()[0]?.model || '?'}), ` +
  `load average ${loadavg()}; commit ${commit}; ${started.toISOString()}`);
const sys = {};
for (const k of systems) sys[k] = await makers[k]();
const results = [];
for (const n of sizes) {
  for (let round = 1; round <= rounds; round++) for (const k of systems) {
    let r;
    try {
      r = await runOne(k, sys[k], n);
    } catch (e) {
      r = { system: k, n, error: e.message, received: 0 };
    }
    r.round = round;
    results.push(r);
    const name = `${sys[k].label} [harness: ${harnessOf(k)}]`;
    if (r.p50 !== undefined) {
      console.log(`  N=${n}${rounds > 1 ? ` round ${round}` : ''} ${name}: connected in ${r.connectS.toFixed(1)} s; received ${r.received}/${r.expected}` +
        `${r.unexpected ? ` (+${r.unexpected} unexpected)` : ''}; p50 ${fmtMs(r.p50)} ms, p99 ${fmtMs(r.p99)} ms, max ${fmtMs(r.max)} ms; ` +
        `per message (median of ${r.M}): first receipt ${fmtMs(r.firstP50)} ms, first to last ${fmtMs(r.spreadP50)} ms (at most ${fmtMs(r.spreadMax)}); ` +
        `RSS ${(r.rssIdleKiB / 1024).toFixed(1)} MiB with ${n} idle streams (${(r.perStreamBytes / 1024).toFixed(1)} KiB each: ` +
        `${Object.entries(r.perStreamByRoleBytes).filter(([role]) => r.holders.includes(role)).map(([k, v]) => `${k} ${(v / 1024).toFixed(1)}`).join(', ')}` +
        `${Object.entries(r.perStreamByRoleBytes).filter(([role]) => !r.holders.includes(role)).map(([k, v]) => `; not counted, holding none of the streams: ${k} ${v >= 0 ? '+' : ''}${(v / 1024).toFixed(1)}`).join('')}); ` +
        `CPU during the ${r.sendS.toFixed(1)} s of sends: system ${r.systemCpuS.toFixed(2)} s, harness ${r.harnessCpuS.toFixed(2)} s ` +
        `(${((r.harnessCpuS * 1e6) / Math.max(1, r.received)).toFixed(1)} µs per receipt` +
        `${splitRun(r) ? `, of which the ${r.subscriberProcesses} subscriber process${r.subscriberProcesses > 1 ? 'es' : ''} ${((r.subscriberCpuS * 1e6) / Math.max(1, r.received)).toFixed(1)} µs` : ''}); ` +
        `${r.lateSends ? `${r.lateSends} of ${r.M} sends more than 10 ms behind the 50 ms grid; ` : ''}load ${r.load}` +
        `${r.error ? `; ${r.error}` : ''}`);
    } else {
      console.log(`  N=${n}${rounds > 1 ? ` round ${round}` : ''} ${name}: FAILED: ${r.error}`);
    }
    await sleep(2000); // let the server drop the closed streams before the next run
  }
}
const finished = new Date();
console.log('');
console.log(table(results.filter((r) => r.round === 1)));
if (rounds > 1) console.log(`\n${roundsTable(results)}`);
console.log(`Harness (the subscribers): ${systems.map((k) => `${k} ${harnessOf(k)}`).join('; ')}.`);
const hc = results.filter((r) => r.harnessCpuS > 0);
if (hc.length) {
  const per = hc.map((r) => (r.harnessCpuS * 1e6) / Math.max(1, r.received));
  console.log(`(p50 / p99: start of the writer's POST to the subscriber's read, over all N × M receipts; ` +
    `memory per stream: RSS with N idle streams less RSS before the system's first stream, over N; ` +
    `ours = the broker (a direct stream is held by it alone; lighttpd, which answered the tickets, is shown beside it), ` +
    `ours via lighttpd = lighttpd + broker, Nchan = nginx workers, Socket.IO = its node process. ` +
    `Harness CPU: ${Math.min(...per).toFixed(1)}–${Math.max(...per).toFixed(1)} µs per receipt during the sends. ` +
    `Load average now ${loadavg()}.)`);
}
writeFileSync(out, JSON.stringify({ started, finished, commit, cores, sizes, systems, results }, null, 1));
console.log(`raw results: ${out}`);
process.exit(results.some((r) => r.error || r.received < r.expected) ? 1 : 0);
