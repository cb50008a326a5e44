// SSE subscribers spread over child processes (bench/compare-sub.mjs), for more streams than
// one process's descriptors hold: bench/compare.mjs above BENCH_COMPARE_PER_PROCESS, and the
// cluster's fan-out (bench/cluster.mjs). Each child times its receipts on the clock every
// process shares (performance.timeOrigin + now).
import { fork } from 'node:child_process';
import { cpuSeconds } from './lib.mjs';

// Opens n SSE streams over ceil(n / perProcess) processes. sse: { host, port, path, ticket }
// where path holds "{ticket}" and ticket() resolves to a fresh stream ticket (sent to the
// children every 5 s while they connect). conc: connections being opened at once, over all
// children; timeoutMs: one stream's connect timeout. Answers the shape of compare-lib's
// openPool ({ socks: { length }, failed, firstError }) plus count() (receipts so far),
// latencies(sent) (every receipt less the send of its marker, sent[] on this process's
// clock), pids, cpuS() and close().
export async function splitPool(n, sse, { perProcess = 15000, conc = 200, timeoutMs = 10000 } = {}) {
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
      const lat = [];
      let unexpected = 0;
      for (const { rec } of await Promise.all(kids.map((kid) => ask(kid, { cmd: 'collect' })))) {
        for (let i = 0; i < rec.length; i += 2) {
          const t = sent[rec[i]];
          if (!(rec[i] < sent.length) || Number.isNaN(t)) { unexpected++; continue; }
          lat.push(rec[i + 1] - (t + performance.timeOrigin));
        }
      }
      return { lat, unexpected };
    },
    cpuS: () => kids.reduce((a, kid) => a + cpuSeconds(kid.pid), 0),
    async close() {
      await Promise.all(kids.map((kid) => ask(kid, { cmd: 'close' })));
      for (const kid of kids) kid.disconnect();
    },
  };
}
