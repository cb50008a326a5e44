// Fair scheduling under a noisy room (issue 17's measurement): one room submits BENCH_NOISY
// runs of `import time; time.sleep(1)` at once; two seconds later another user in another
// room runs print(1). Prints how long that quiet run took from its POST to finished, and how
// many noisy runs were still waiting then; then the same with the noisy runs spread over ten
// users in ten rooms. The noisy runs left are cancelled (DELETE /api/jobs/{id}) after each.
// The stack must admit them: bench/run.sh exports EXECUTION_RATE_LIMIT, JOB_ROOM_BACKLOG_MAX
// and JOB_USER_BACKLOG_MAX high enough. The load generator shares the cores with the stack.
//   node bench/fairness.mjs        BENCH_NOISY (default 100)
import { api, must, newUser, newRoom, now, sleep, loadavg } from './lib.mjs';

const NOISY = Number(process.env.BENCH_NOISY || 100);
const OVER = new Set(['finished', 'failed', 'cancelled']);

async function scenario(label, rooms) {
  const owners = [];
  for (let i = 0; i < rooms; i++) {
    const u = await newUser('noisy');
    owners.push({ u, room: await newRoom(u.token, 'python') });
  }
  const t0 = now();
  const ids = await Promise.all(Array.from({ length: NOISY }, async (_, i) => {
    const { u, room } = owners[i % rooms];
    const r = await must('POST', `/api/rooms/${room.id}/executions`, u.token,
      { language: 'python', code: 'import time; time.sleep(1)' });
    return { token: u.token, id: r.job.id };
  }));
  const submitted = now() - t0;
  await sleep(2000);
  const q = await newUser('quiet');
  const qroom = await newRoom(q.token, 'python');
  const s = now();
  const r = await must('POST', `/api/rooms/${qroom.id}/executions`, q.token, { language: 'python', code: 'print(1)' });
  let job;
  for (;;) {
    job = (await must('GET', `/api/jobs/${r.job.id}`, q.token)).job;
    if (OVER.has(job.status)) break;
    await sleep(20);
  }
  const waited = now() - s;
  let queued = 0;
  for (const n of ids) {
    const j = await api('GET', `/api/jobs/${n.id}`, n.token);
    if (j.json?.job?.status === 'queued') queued++;
  }
  console.log(`${label.padEnd(44)} quiet print(1): ${waited.toFixed(0)} ms (${job.status}); ` +
    `${NOISY} noisy runs POSTed in ${submitted.toFixed(0)} ms, ${queued} still queued then`);
  for (const n of ids.reverse()) await api('DELETE', `/api/jobs/${n.id}`, n.token);
}

console.log(`fairness: ${NOISY} runs of time.sleep(1), then print(1) from another room (load ${loadavg()})`);
await scenario(`one noisy room, one user`, 1);
await sleep(2000);
await scenario(`ten noisy rooms, ten users`, 10);
