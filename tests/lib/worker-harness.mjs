// Processes for the worker's tests (tests/programs): a private redis-server, the ASan worker
// binary, and helpers (over resp.mjs's client) that enqueue jobs exactly as the API does
// (HSET cc:{jobs}:job:{id} …, the room's queued event, then XADD cc:{jobs}:stream * job {id}, as one
// transaction like lib/jobstate.c's script). Every child started here is killed
// when the test process exits, also when a test fails.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, freePort, sleep, waitFor as procsWaitFor } from './procs.mjs';
import { EMIT_SCRIPT, HISTORY_BOUNDS, connectRedis } from './resp.mjs';

export { ROOT, freePort, sleep };
export const WORKER_BIN = process.env.WORKER_BIN || join(ROOT, 'build/asan/bin/codecollab-worker');

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});

// A worker may take a while to come up under the sanitizers: wait longer by default.
export const waitFor = (check, opts = {}) => procsWaitFor(check, { timeout: 15000, ...opts });

function track(child) {
  children.add(child);
  child.output = '';
  const keep = (d) => { child.output = (child.output + d).slice(-200000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  // after the exit and the end of its output
  child.closed = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return child;
}

// ---- processes ----

// args: more of redis-server's options (a --unixsocket for a worker in a network namespace
// of its own)
export async function startRedis(args = []) {
  const port = await freePort();
  const child = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  child.port = port;
  child.client = await waitFor(() => connectRedis(port).catch(() => null), { what: 'redis' });
  return child;
}

// Kills every worker still running (a test that failed half-way leaves some behind, and a
// live child would keep the test process from ever exiting).
export async function killWorkers() {
  const live = [...children].filter((c) => c.isWorker);
  for (const c of live) c.kill('SIGKILL');
  await Promise.all(live.map((c) => c.exited));
}

export async function stopRedis(redis) {
  redis.client?.close();
  redis.kill('SIGKILL');
  await redis.exited;
}

// Runs fn(client, redis) against a Redis of its own; afterwards every worker still running
// is killed and the Redis stopped, whatever fn did.
export async function withRedis(fn) {
  const redis = await startRedis();
  try {
    await fn(redis.client, redis);
  } finally {
    await killWorkers();
    await stopRedis(redis);
  }
}

// Starts the worker and waits until its job threads run. env adds to / overrides the
// defaults chosen for tests (short claim times, sanitizer reports on stderr); wrap is a
// command that executes the worker in place of itself (['unshare', '-n']).
export async function startWorker(redisPort, env = {}, { wrap = [] } = {}) {
  const argv = [...wrap, WORKER_BIN];
  const child = track(spawn(argv[0], argv.slice(1), {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0',
      UBSAN_OPTIONS: 'print_stacktrace=1',
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      WORKERS: '2',
      CLAIM_IDLE_MS: '1500',
      RUNTIMES_REFRESH_S: '60',
      ...env,
    },
  }));
  child.isWorker = true;
  // a worker that ends before it says it started fails the start at once (waitFor takes a
  // failed check as "not yet" and would wait out its whole bound)
  let starting = true;
  const ended = child.closed.then(({ code, signal }) => {
    // (one that said so and ended within one poll did start: waitFor's next look sees it)
    if (starting && !/job threads on/.test(child.output)) throw new Error(`worker exited ${code ?? signal} before it started: ${child.output}`);
  });
  ended.catch(() => {});
  try {
    await Promise.race([
      waitFor(() => /job threads on/.test(child.output), { what: 'the worker to start' }),
      ended,
    ]);
  } finally {
    starting = false;
  }
  return child;
}

export async function stopWorker(w, signal = 'SIGTERM', waitMs = 20000) {
  if (w.exitCode !== null || w.signalCode !== null) return w.exited;
  w.kill(signal);
  const t = setTimeout(() => w.kill('SIGKILL'), waitMs);
  const r = await w.exited;
  clearTimeout(t);
  return r;
}

let seq = 0;
export function jobId(prefix = 'job') {
  seq += 1;
  return `${prefix}${process.pid}x${seq}x${Math.random().toString(36).slice(2, 8)}`;
}

// What the API does for POST /api/rooms/{id}/executions (fcgi/h_jobs.c jobs_enqueue): the
// hash, the room's queued event, then the stream entry, atomically (MULTI here).
export async function enqueue(r, { id = jobId(), room = 'room1', kind = 'execution', request }) {
  const now = Math.floor(Date.now() / 1000);
  await r.cmd('MULTI');
  await r.cmd('HSET', `cc:{jobs}:job:${id}`, 'kind', kind, 'room', room, 'user', '1', 'username', 'tester',
    'request', JSON.stringify(request), 'status', 'queued', 'attempts', '0', 'created_at', now);
  await r.cmd('EXPIRE', `cc:{jobs}:job:${id}`, 7 * 86400);
  await r.cmd('EVAL', EMIT_SCRIPT, 1, `cc:room:{${room}}:events`, kind,
    JSON.stringify({ job_id: id, status: 'queued' }), HISTORY_BOUNDS);
  await r.cmd('XADD', 'cc:{jobs}:stream', 'MAXLEN', '~', '100000', '*', 'job', id);
  await r.cmd('EXEC');
  return id;
}

// A pub/sub subscriber of a room's channel: .messages collects every event published to it
// ({type, id, data}), in the order Redis delivered them.
export async function subscribe(port, room) {
  const s = await connectRedis(port);
  await s.cmd('SSUBSCRIBE', `cc:room:{${room}}`);
  s.messages = [];
  // resp.mjs hands replies to pending callers in order: a collector that puts itself back
  // receives every pushed message
  const collector = {
    resolve: (m) => { s.messages.push(JSON.parse(m[2])); s.pending.push(collector); },
    reject: () => {},
  };
  s.pending.push(collector);
  return s;
}

export async function job(r, id) {
  const flat = await r.cmd('HGETALL', `cc:{jobs}:job:${id}`);
  const o = {};
  for (let i = 0; i < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  if (o.result) o.result = JSON.parse(o.result);
  if (o.attempts) o.attempts = Number(o.attempts);
  return o;
}

export async function waitStatus(r, id, statuses, timeout = 20000) {
  const want = [].concat(statuses);
  return waitFor(async () => {
    const j = await job(r, id);
    return want.includes(j.status) ? j : null;
  }, { timeout, what: `job ${id} to be ${want.join(' or ')}` });
}

// The room's history as lib/events.c writes it: [{id, type, data}].
export async function events(r, room) {
  const entries = await r.cmd('XRANGE', `cc:room:{${room}}:events`, '-', '+');
  return entries.map(([id, fields]) => {
    const o = { id };
    for (let i = 0; i < fields.length; i += 2) o[fields[i]] = fields[i + 1];
    o.data = JSON.parse(o.data);
    return o;
  });
}

// Job id's events in its room, once the room has the event of its current status: the worker's
// drain (lib/jobstate.c) carries an event from the outbox into the room just after the status.
export async function jobEvents(r, room, id, timeout = 20000) {
  return waitFor(async () => {
    const { status } = await job(r, id);
    const ev = (await events(r, room)).filter((e) => e.data.job_id === id);
    return ev.at(-1)?.data.status === status && ev;
  }, { timeout, what: `the room's event of job ${id}'s status` });
}
