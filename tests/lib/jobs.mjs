// Code runs through the stack's API, for the suites that fill the job queue and empty it
// again (tests/stack/fairness.test.mjs, tests/browser/queue.test.mjs).
import assert from 'node:assert/strict';
import { call, redis } from './api.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const OVER = new Set(['finished', 'failed', 'cancelled']);

// Polls GET /api/jobs/{id} until `until` holds for the job (by default: it is over);
// returns the job, or throws after ms milliseconds naming the status it is stuck in.
export async function waitJob(token, id, { ms = 30000, until = (j) => OVER.has(j.status) } = {}) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await call('GET', `/api/jobs/${id}`, { token });
    assert.equal(r.status, 200, r.text);
    if (until(r.json.job)) return r.json.job;
    if (Date.now() > end) throw new Error(`job ${id} still ${r.json.job.status}`);
    await sleep(50);
  }
}

// POST /api/rooms/{id}/executions; the answer as lib/api.mjs call gives it.
export const run = (token, room, body) => call('POST', `/api/rooms/${room.id}/executions`, { token, body });

// DELETE /api/jobs/{id}.
export const cancel = (token, id) => call('DELETE', `/api/jobs/${id}`, { token });

// Cancels whatever of these jobs is not over yet, so the next test finds idle workers; the
// last submitted first, so they are gone before their turn could come.
export async function drain(token, ids) {
  for (const id of [...ids].reverse()) {
    const r = await cancel(token, id);
    assert.ok([200, 409].includes(r.status), r.text);
  }
}

// A job's hash, read straight from Redis (GET /api/jobs/{id} answers 404 once its room is gone).
export function jobHash(id) {
  const flat = redis('--raw', 'HGETALL', `cc:{jobs}:job:${id}`).split('\n');
  const h = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]] = flat[i + 1];
  return h;
}

// The job threads of the live workers (the fair scheduler's capacity).
export function capacity() {
  const flat = redis('--raw', 'HGETALL', 'cc:{jobs}:fair:workers').split('\n').filter(Boolean);
  let n = 0;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const [exp, threads] = flat[i + 1].split(' ').map(Number);
    if (exp > Date.now()) n += threads;
  }
  return n;
}
