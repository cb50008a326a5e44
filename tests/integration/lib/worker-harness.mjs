// Processes for the worker's integration tests: a private redis-server, the ASan worker
// binary, and a minimal RESP client to enqueue jobs exactly as the API does
// (HSET cc:job:{id} …, then XADD cc:jobs * job {id}). Every child started here is killed
// when the test process exits, also when a test fails.
import { spawn } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WORKER_BIN = process.env.WORKER_BIN || join(ROOT, 'build/asan/bin/codecollab-worker');

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(check, { timeout = 15000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) { last = e; }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

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
  return child;
}

// ---- RESP2, just enough for tests ----

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// One reply at buf[pos]: [value, next], or null when more bytes are needed.
function parse(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  let next = eol + 2;
  switch (type) {
    case '+': return [line, next];
    case '-': return [new RedisError(line), next];
    case ':': return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const arr = [];
      for (let i = 0; i < n; i++) {
        const r = parse(buf, next);
        if (!r) return null;
        arr.push(r[0]);
        next = r[1];
      }
      return [arr, next];
    }
    default: throw new Error(`bad RESP type ${type}`);
  }
}

export class RedisError extends Error {}

export class Redis {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const sock = createConnection({ port, host: '127.0.0.1' }, () => resolve(new Redis(sock)));
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        const r = parse(this.buf, 0);
        if (!r) break;
        this.buf = this.buf.subarray(r[1]);
        const w = this.waiting.shift();
        if (r[0] instanceof RedisError) w.reject(r[0]); else w.resolve(r[0]);
      }
    });
    sock.on('error', (e) => { for (const w of this.waiting.splice(0)) w.reject(e); });
  }

  cmd(...args) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(encode(args));
    });
  }

  close() { this.sock.destroy(); }
}

// ---- processes ----

export async function startRedis() {
  const port = await freePort();
  const child = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  child.port = port;
  child.client = await waitFor(() => Redis.connect(port).catch(() => null), { what: 'redis' });
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

// Starts the worker and waits until its job threads run. env adds to / overrides the
// defaults chosen for tests (short claim times, sanitizer reports on stderr).
export async function startWorker(redisPort, env = {}) {
  const child = track(spawn(WORKER_BIN, [], {
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
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`worker exited ${child.exitCode}: ${child.output}`);
    return /job threads on/.test(child.output);
  }, { what: 'the worker to start' });
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

// What the API does for POST /api/rooms/{id}/executions (fcgi/h_jobs.c jobs_enqueue).
export async function enqueue(r, { id = jobId(), room = 'room1', kind = 'execution', request }) {
  const now = Math.floor(Date.now() / 1000);
  await r.cmd('MULTI');
  await r.cmd('HSET', `cc:job:${id}`, 'kind', kind, 'room', room, 'user', '1', 'username', 'tester',
    'request', JSON.stringify(request), 'status', 'queued', 'attempts', '0', 'created_at', now);
  await r.cmd('EXPIRE', `cc:job:${id}`, 7 * 86400);
  await r.cmd('XADD', 'cc:jobs', 'MAXLEN', '~', '100000', '*', 'job', id);
  await r.cmd('EXEC');
  return id;
}

export async function job(r, id) {
  const flat = await r.cmd('HGETALL', `cc:job:${id}`);
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
  const entries = await r.cmd('XRANGE', `cc:room:${room}:events`, '-', '+');
  return entries.map(([id, fields]) => {
    const o = { id };
    for (let i = 0; i < fields.length; i += 2) o[fields[i]] = fields[i + 1];
    o.data = JSON.parse(o.data);
    return o;
  });
}
