// SSE subscribers spread over child processes, for more streams than one process's
// descriptors hold, or for a harness cheaper per receipt than node:
//   harness 'node': bench/compare-sub.mjs children (bench/compare.mjs with
//     BENCH_COMPARE_HARNESS=node above BENCH_COMPARE_PER_PROCESS, and the cluster's fan-out,
//     bench/cluster.mjs), each timing its receipts on the clock every process shares
//     (performance.timeOrigin + now);
//   harness 'c': build/release/bin/bench-ssesub (bench/c/ssesub.c) children, `processes` of
//     them (bench/compare.mjs by default), each timing its receipts in CLOCK_MONOTONIC ns,
//     the clock of process.hrtime.bigint(), converted here to this process's now().
import { fork, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cpuSeconds } from './lib.mjs';

export const SSESUB_BIN = process.env.BENCH_SSESUB_BIN ||
  fileURLToPath(new URL('../build/release/bin/bench-ssesub', import.meta.url));

// How bench-ssesub reads (bench/c/ssesub.c): BENCH_SSESUB_ACK 'quick' (an ACK inside every
// read(), the kernel's way) or 'delayed' (by the kernel's delayed-ACK timer, about 40 ms
// later); BENCH_SSESUB_SCHED 'other' or 'fifo' (real-time priority 1).
export const SSESUB_ACK = process.env.BENCH_SSESUB_ACK || 'quick';
if (!['quick', 'delayed'].includes(SSESUB_ACK)) throw new Error(`BENCH_SSESUB_ACK is quick or delayed, not ${SSESUB_ACK}`);
export const SSESUB_SCHED = process.env.BENCH_SSESUB_SCHED || 'other';
if (!['other', 'fifo'].includes(SSESUB_SCHED)) throw new Error(`BENCH_SSESUB_SCHED is other or fifo, not ${SSESUB_SCHED}`);

// process.hrtime.bigint() (ns, CLOCK_MONOTONIC) less performance.now() (ms) in ns: from the
// tightest of many pairs of hrtime readings around one now() reading.
export function hrtimeOffset(samples = 2000) {
  let best = null, offset = 0n;
  for (let i = 0; i < samples; i++) {
    const a = process.hrtime.bigint();
    const p = performance.now();
    const b = process.hrtime.bigint();
    if (best === null || b - a < best) {
      best = b - a;
      // the now() reading sits between a and b; the µs of now() as an exact ns count
      offset = (a + b) / 2n - BigInt(Math.round(p * 1e6));
    }
  }
  return { offset, spreadNs: Number(best) };
}

// One bench-ssesub child: its commands as promises (answers come in order, by first word).
function sseSub(sse, timeoutMs) {
  const args = ['--host', sse.host, '--port', String(sse.port), '--path', sse.path,
    '--timeout-ms', String(timeoutMs)];
  if (sse.ready === 'headers') args.push('--ready', 'headers');
  if (sse.filter) args.push('--filter', sse.filter);
  args.push('--ack', SSESUB_ACK, '--sched', SSESUB_SCHED);
  const kid = spawn(SSESUB_BIN, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting = []; // [word, resolve, reject, lines]
  let exited = null;
  kid.on('exit', (code, sig) => {
    exited = `bench-ssesub exited (${sig || code})`;
    for (const w of waiting.splice(0)) w[2](new Error(exited));
  });
  kid.on('error', (e) => { exited = e.message; for (const w of waiting.splice(0)) w[2](e); });
  const rl = createInterface({ input: kid.stdout });
  rl.on('line', (line) => {
    const w = waiting[0];
    if (!w) return;
    if (w[0] === 'collect') {
      if (line === 'end') { waiting.shift(); w[1](w[3]); } else w[3].push(line);
      return;
    }
    waiting.shift();
    if (line.startsWith('error ')) w[2](new Error(`bench-ssesub: ${line.slice(6)}`));
    else w[1](line.slice(line.indexOf(' ') + 1));
  });
  const ask = (cmd) => new Promise((resolve, reject) => {
    if (exited) { reject(new Error(exited)); return; }
    waiting.push([cmd.split(' ')[0], resolve, reject, []]);
    kid.stdin.write(`${cmd}\n`);
  });
  const tell = (cmd) => { if (!exited) kid.stdin.write(`${cmd}\n`); };
  return { kid, ask, tell };
}

async function splitPoolC(n, sse, { processes = 1, conc = 200, timeoutMs = 10000 }) {
  const k = Math.max(1, Math.min(processes, n));
  const kids = Array.from({ length: k }, () => sseSub(sse, timeoutMs));
  const fresh = async () => {
    if (!sse.ticket) return;
    const t = await sse.ticket();
    if (/[\r\n]/.test(t)) throw new Error('a ticket with a line break');
    for (const c of kids) c.tell(`ticket ${t}`);
  };
  let refresh = null;
  let answers;
  try {
    await fresh();
    refresh = setInterval(() => { fresh().catch(() => {}); }, 5000);
    answers = await Promise.all(kids.map((c, i) => c.ask(
      `open ${Math.floor(n / k) + (i < n % k ? 1 : 0)} ${Math.max(1, Math.min(Math.floor(conc / k), Math.floor(n / k) || 1))}`)));
  } catch (e) {
    // no subscriber process outlives a failed start: its streams would skew the next runs
    for (const c of kids) c.kid.kill('SIGKILL');
    throw e;
  } finally {
    clearInterval(refresh);
  }
  const opened = answers.map((a) => {
    const m = /^(\d+) (\d+) (.*)$/.exec(a);
    return { connected: Number(m[1]), failed: Number(m[2]), firstError: m[3] === '-' ? null : m[3] };
  });
  const { offset } = hrtimeOffset();
  return {
    socks: { length: opened.reduce((a, r) => a + r.connected, 0) },
    failed: opened.reduce((a, r) => a + r.failed, 0),
    firstError: opened.find((r) => r.firstError)?.firstError ?? null,
    pids: kids.map((c) => c.kid.pid),
    harness: 'c',
    count: async () => (await Promise.all(kids.map((c) => c.ask('count')))).reduce((a, r) => a + Number(r.split(' ')[0]), 0),
    // every receipt less the send of its marker (sent[] on now()); a negative one would be
    // a wrong clock conversion, and throws
    async latencies(sent) {
      const lat = [], msg = [];
      let unexpected = 0, negative = 0, worst = 0;
      for (const lines of await Promise.all(kids.map((c) => c.ask('collect')))) {
        for (const line of lines) {
          const sp = line.indexOf(' ');
          const m = Number(line.slice(0, sp));
          const t = sent[m];
          if (!(m < sent.length) || Number.isNaN(t)) { unexpected++; continue; }
          const at = Number(BigInt(line.slice(sp + 1)) - offset) / 1e6; // on now()
          const v = at - t;
          if (v < 0) { negative++; worst = Math.min(worst, v); }
          lat.push(v);
          msg.push(m);
        }
      }
      if (negative) throw new Error(`${negative} receipts before their send (down to ${worst.toFixed(3)} ms): the clocks do not match`);
      return { lat, msg, unexpected };
    },
    cpuS: () => kids.reduce((a, c) => a + cpuSeconds(c.kid.pid), 0),
    async close() {
      await Promise.all(kids.map((c) => c.ask('close').catch(() => {})));
      for (const c of kids) c.kid.stdin.end(); // end of stdin: it exits
      await Promise.all(kids.map((c) => (c.kid.exitCode !== null || c.kid.signalCode !== null ? null
        : new Promise((resolve) => c.kid.once('exit', resolve)))));
    },
  };
}

// Opens n SSE streams over ceil(n / perProcess) node processes, or with harness 'c' over
// `processes` bench-ssesub processes. sse: { host, port, path, ticket, ready, filter } where
// path holds "{ticket}" and ticket() resolves to a fresh stream ticket (sent to the children
// every 5 s while they connect); ready 'headers' (bench-ssesub only): a stream is ready with
// a 2xx head instead of at ": connected"; filter: text a receipt's block must hold (node's
// children: always "event: operation"). conc: connections being opened at once, over all
// children; timeoutMs: one stream's connect timeout. Answers the shape of compare-lib's
// openPool ({ socks: { length }, failed, firstError }) plus count() (receipts so far),
// latencies(sent) (every receipt less the send of its marker, sent[] on this process's
// clock), pids, cpuS() and close().
export async function splitPool(n, sse, { perProcess = 15000, conc = 200, timeoutMs = 10000, harness = 'node', processes = 1 } = {}) {
  if (harness === 'c') return splitPoolC(n, sse, { processes, conc, timeoutMs });
  const k = Math.max(1, Math.ceil(n / perProcess));
  const kids = Array.from({ length: k }, () => fork(new URL('./compare-sub.mjs', import.meta.url)));
  const ask = (kid, msg) => new Promise((resolve) => { kid.once('message', resolve); kid.send(msg); });
  const fresh = async () => { const t = await sse.ticket(); for (const kid of kids) kid.send({ ticket: t }); };
  await fresh();
  const refresh = setInterval(() => { fresh().catch(() => {}); }, 5000);
  const answers = await Promise.all(kids.map((kid, i) => ask(kid, {
    cmd: 'open', n: Math.floor(n / k) + (i < n % k ? 1 : 0), conc: Math.max(1, Math.floor(conc / k)),
    host: sse.host, port: sse.port, path: sse.path, timeoutMs,
  })));
  clearInterval(refresh);
  const connected = answers.reduce((a, r) => a + r.connected, 0);
  return {
    socks: { length: connected },
    failed: answers.reduce((a, r) => a + r.failed, 0),
    firstError: answers.find((r) => r.firstError)?.firstError ?? null,
    pids: kids.map((kid) => kid.pid),
    count: async () => (await Promise.all(kids.map((kid) => ask(kid, { cmd: 'count' })))).reduce((a, r) => a + r.count, 0),
    async latencies(sent) {
      const lat = [], msg = [];
      let unexpected = 0;
      for (const { rec } of await Promise.all(kids.map((kid) => ask(kid, { cmd: 'collect' })))) {
        for (let i = 0; i < rec.length; i += 2) {
          const t = sent[rec[i]];
          if (!(rec[i] < sent.length) || Number.isNaN(t)) { unexpected++; continue; }
          lat.push(rec[i + 1] - (t + performance.timeOrigin));
          msg.push(rec[i]);
        }
      }
      return { lat, msg, unexpected };
    },
    cpuS: () => kids.reduce((a, kid) => a + cpuSeconds(kid.pid), 0),
    async close() {
      await Promise.all(kids.map((kid) => ask(kid, { cmd: 'close' })));
      for (const kid of kids) kid.disconnect();
    },
  };
}
