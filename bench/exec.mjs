// Code execution end to end: POST /api/rooms/{id}/executions until the room's SSE stream
// (through lighttpd) carries that job's `execution` event with status finished. Hello world
// in C (compile + run) and Python, one job at a time, p50/p99 over BENCH_EXEC_RUNS each
// (after two warm-up runs), with the part spent inside the sandbox steps (the result's
// time_ms, bubblewrap and cgroup set-up included) and the rest (API, queue, worker pick-up,
// events). Then throughput: BENCH_EXEC_BURST jobs POSTed at once, time from the first POST
// to the last finished event, with the workers the stack runs (WORKERS, 2 by default).
// The load generator shares the machine's cores with the stack.
//   node bench/exec.mjs
//   BENCH_EXEC_RUNS (default 30), BENCH_EXEC_BURST (default 40)
// The stack must allow that many runs a minute: export EXECUTION_RATE_LIMIT before it
// starts (bench/run.sh does). Needs BASE_URL (and CC_VAR for the CPU figures).
import {
  now, sleep, api, must, newUser, newRoom, ticketSource, sseConnect, stackProcs,
  cpuByRole, cpuDelta, formatCpu, pct, ms, loadavg, BASE,
} from './lib.mjs';

const RUNS = Number(process.env.BENCH_EXEC_RUNS || 30);
const BURST = Number(process.env.BENCH_EXEC_BURST || 40);
const PROGRAMS = {
  c: '#include <stdio.h>\nint main(void) { puts("hello, world"); return 0; }\n',
  python: 'print("hello, world")\n',
};

const user = await newUser('exec');
const room = await newRoom(user.token, 'python');
const ticket = ticketSource(room.id, user.token);

// Everything the stream says about a job: when each status arrived, and the final event.
const jobs = new Map();
const job = (id) => {
  let j = jobs.get(id);
  if (!j) {
    let resolve;
    const done = new Promise((r) => { resolve = r; });
    j = { id, done, resolve, at: {} };
    jobs.set(id, j);
  }
  return j;
};
const base = new URL(BASE);
await sseConnect({
  host: base.hostname, port: Number(base.port || 80),
  path: `/events/rooms/${room.id}?ticket=${encodeURIComponent(await ticket())}`,
  onEvent: (block, at) => {
    if (!block.includes('event: execution')) return;
    const line = block.split('\n').find((l) => l.startsWith('data: '));
    if (!line) return;
    const d = JSON.parse(line.slice(6));
    const j = job(d.job_id);
    j.at[d.status] ??= at;
    if (d.status === 'finished' || d.status === 'failed') {
      j.final = d;
      j.resolve();
    }
  },
});

const limitSeen = { n: 0 };
async function submit(language) {
  const t0 = now();
  for (;;) {
    const r = await api('POST', `/api/rooms/${room.id}/executions`, user.token, { language, code: PROGRAMS[language] });
    if (r.status === 202) {
      const j = job(r.json.job.id);
      j.language = language;
      j.posted = t0;
      j.accepted = now();
      return j;
    }
    if (r.status === 429) { // the stack's EXECUTION_RATE_LIMIT is too low for this bench
      limitSeen.n++;
      await sleep(1000);
      continue;
    }
    throw new Error(`POST executions: ${r.status} ${r.text.slice(0, 200)}`);
  }
}

const stepMs = (j) => (j.final?.result?.time_ms ?? 0) + (j.final?.result?.compile?.time_ms ?? 0);
function checkOk(j) {
  const r = j.final?.result;
  if (j.final?.status !== 'finished' || !r || r.exit_code !== 0 || r.stdout !== 'hello, world\n') {
    throw new Error(`job ${j.id} (${j.language}) did not print hello world: ${JSON.stringify(j.final).slice(0, 300)}`);
  }
}

async function sequential(language) {
  for (let i = 0; i < 2; i++) { const j = await submit(language); await j.done; checkOk(j); }
  const e2e = [], inSteps = [], outside = [], untilRunning = [], accepted = [], compile = [];
  for (let i = 0; i < RUNS; i++) {
    const j = await submit(language);
    await j.done;
    checkOk(j);
    const total = j.at.finished - j.posted;
    e2e.push(total);
    inSteps.push(stepMs(j));
    outside.push(total - stepMs(j));
    untilRunning.push(j.at.running - j.posted);
    accepted.push(j.accepted - j.posted);
    if (j.final.result.compile) compile.push(j.final.result.compile.time_ms);
  }
  const s = (a) => a.sort((x, y) => x - y);
  [e2e, inSteps, outside, untilRunning, accepted, compile].forEach(s);
  return { language, e2e, inSteps, outside, untilRunning, accepted, compile };
}

async function burst(language) {
  const procs = stackProcs();
  const cpu0 = cpuByRole(procs);
  const t0 = now();
  const all = await Promise.all(Array.from({ length: BURST }, () => submit(language)));
  await Promise.all(all.map((j) => j.done));
  const secs = (now() - t0) / 1000;
  all.forEach(checkOk);
  const lat = all.map((j) => j.at.finished - j.posted).sort((a, b) => a - b);
  return { language, secs, rate: BURST / secs, p50: pct(lat, 50), max: lat.at(-1), cpu: cpuDelta(cpu0, cpuByRole(procs)) };
}

console.log(`code execution end to end (POST executions → finished event on the room's SSE stream, ` +
  `through lighttpd; load generator on the same cores; load average ${loadavg()})`);
const seq = [];
for (const lang of ['c', 'python']) seq.push(await sequential(lang));
const bursts = [];
for (const lang of ['python', 'c']) bursts.push(await burst(lang));

console.log('');
console.log(`| hello world, one at a time (${RUNS} runs) | end to end p50 / p99 ms | in the sandbox steps p50 / p99 ms | of which compiling p50 ms | outside them p50 / p99 ms | POST answered p50 ms | POST → running p50 ms |`);
console.log('|---|---|---|---|---|---|---|');
for (const r of seq) {
  console.log(`| ${r.language === 'c' ? 'C (gcc -O2, then run)' : 'Python'} | ${ms(pct(r.e2e, 50))} / ${ms(pct(r.e2e, 99))} | ` +
    `${ms(pct(r.inSteps, 50))} / ${ms(pct(r.inSteps, 99))} | ${r.compile.length ? ms(pct(r.compile, 50)) : '—'} | ` +
    `${ms(pct(r.outside, 50))} / ${ms(pct(r.outside, 99))} | ` +
    `${ms(pct(r.accepted, 50))} | ${ms(pct(r.untilRunning, 50))} |`);
}
console.log('');
console.log(`| ${BURST} jobs POSTed at once | jobs/s | all finished after | each job's end to end p50 / max ms |`);
console.log('|---|---|---|---|');
for (const b of bursts) {
  console.log(`| ${b.language === 'c' ? 'C' : 'Python'} hello world | ${b.rate.toFixed(1)} | ${b.secs.toFixed(2)} s | ${ms(b.p50)} / ${ms(b.max)} |`);
}
for (const b of bursts) console.log(`CPU during the ${b.language} burst (${b.secs.toFixed(1)} s): ${formatCpu(b.cpu, b.secs)}`);
if (limitSeen.n) console.log(`note: ${limitSeen.n} POSTs were rate limited (429) and retried after 1 s: raise EXECUTION_RATE_LIMIT`);
console.log(`(load average now ${loadavg()})`);
process.exit(0);
