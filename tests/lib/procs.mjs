// Start and stop the processes a test needs (redis-server, the broker), on
// random free ports. Every child is registered and killed at exit, also when a test fails.
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
// ports below the ephemeral range, claimed across test processes
import { freePort } from './ports.mjs';
import { procStat } from './proctree.mjs';

export { freePort };

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const children = new Set();
const tmpdirs = new Set();

// The temporary directories (a layout's logs and data among them) go too, unless the file
// failed (a non-zero exit code) or KEEP_TEST_VAR is set: then they stay, named on stderr, for
// whoever looks into the failure (as scripts/test.sh keeps a failed stack's directory).
function killAll(code = 0) {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
  children.clear();
  if (tmpdirs.size && (code !== 0 || process.env.KEEP_TEST_VAR)) {
    process.stderr.write(`kept for inspection: ${[...tmpdirs].join(' ')}\n`);
  } else {
    for (const d of tmpdirs) rmSync(d, { recursive: true, force: true });
  }
  tmpdirs.clear();
}
process.on('exit', (code) => killAll(code));
// Stopped by a signal (the test runner's timeout sends SIGTERM to a file that hangs): the
// exit handler above cleans up, keeping the directories, which a hang needs most.
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tempDir(prefix = 'cc-test-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tmpdirs.add(d);
  return d;
}

// A managed child: output kept (last 64 KiB) for failure messages.
export function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.output = '';
  const keep = (d) => { child.output = (child.output + d).slice(-65536); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    // a program that cannot be started (not installed): said in its output, not thrown at
    // the whole file as an unhandled 'error'
    child.on('error', (e) => {
      child.failed = e.message;
      keep(`\n${cmd}: ${e.message}\n`);
      children.delete(child);
      resolve({ code: null, signal: null, error: e.message });
    });
  });
  // 'close': exited, and its output read to the end
  child.closed = new Promise((resolve) => child.on('close', () => resolve()));
  return child;
}

export async function stop(child, signal = 'SIGTERM', waitMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exited;
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), waitMs);
  const r = await child.exited;
  clearTimeout(t);
  return r;
}

// SIGSTOP to pid, resolved once every one of its threads is in state T (stopped). kill()
// only queues the signal: each thread stops when it next runs. A signal sent to the process
// meanwhile is not held back by the stop: SIGTERM (15) is taken before SIGSTOP (19), and
// where its disposition is still the default (HAProxy never catches SIGTERM: for it that
// means exit), the process ends instead of staying stopped. Once it has stopped, a SIGTERM
// only waits, pending, until SIGCONT or SIGKILL.
export async function pauseProcess(pid, { timeout = 5000 } = {}) {
  process.kill(pid, 'SIGSTOP');
  const state = (task) => procStat(pid, { task })?.state;
  await waitFor(() => readdirSync(`/proc/${pid}/task`).every((task) => state(task) === 'T'),
    { timeout, interval: 10, what: `every thread of pid ${pid} stopped (state T)` });
}

export async function waitFor(check, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
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

// The pid of the redis-server answering on port (INFO server's process_id), or 0 when none
// answers in full within 2 s (not up yet, still loading, closed, or not Redis). Only a
// redis-server that is up answers it. (A probe that bound the port itself, as this once did,
// could take the port from a redis-server still starting, which then exited with "Address
// already in use".)
function redisPid(port) {
  return new Promise((resolve) => {
    const s = createConnection(port, '127.0.0.1');
    let got = '';
    let settled = false;
    const done = (v) => { if (!settled) { settled = true; s.destroy(); resolve(v); } };
    const timer = setTimeout(() => done(0), 2000);
    s.once('close', () => { clearTimeout(timer); done(0); });
    s.once('error', () => done(0));
    s.once('connect', () => s.write('INFO server\r\n'));
    s.on('data', (d) => {
      got += d;
      const m = /^\$(\d+)\r\n/.exec(got);
      if (!m && (got.includes('\r\n') || got.length > 64)) return done(0); // an error, or not Redis
      if (m && got.length >= m[0].length + Number(m[1])) {
        const pid = /\r\nprocess_id:(\d+)\r\n/.exec(got);
        done(pid ? Number(pid[1]) : 0);
      }
    });
  });
}

// A redis-server on port (a free one when none is given), ready when the one answering there
// is the child started here. Should the free port be taken by someone else between the pick
// and redis-server's bind, the child exits at once, and another port is tried (twice more);
// with a port given, that is an error.
export async function startRedis({ port, dir } = {}) {
  const chosen = port !== undefined;
  dir ??= tempDir('cc-redis-');
  for (let attempt = 1; ; attempt++) {
    const p = chosen ? port : await freePort();
    const child = start('redis-server', ['--port', String(p), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', 'dump.rdb']);
    child.port = p;
    child.dir = dir;
    // a loaded machine (load average 8–9) once took more than the default 10 s
    let up;
    try {
      up = await waitFor(async () => {
        if (child.exitCode !== null || child.signalCode !== null || child.failed) return 'exited';
        return (await redisPid(p)) === child.pid && 'up';
      }, { what: `redis-server (pid ${child.pid}) on ${p}`, timeout: 30000 });
    } catch (e) {
      await stop(child, 'SIGKILL');
      throw e;
    }
    if (up === 'up') return child;
    await child.closed; // all of its output read
    const inUse = /already in use/i.test(child.output);
    if (!inUse || chosen || attempt >= 3) {
      throw new Error(`redis-server on ${p} exited: ${child.output.slice(-2000)}`);
    }
  }
}

export const BROKER_BIN = process.env.BROKER_BIN || join(ROOT, 'build/asan/bin/codecollab-broker');

export async function startBroker({ redisPort, secret, env = {}, port } = {}) {
  port ??= await freePort();
  const child = start(BROKER_BIN, [], {
    env: {
      ...process.env,
      // a small quarantine keeps RSS meaningful for the memory checks
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:quarantine_size_mb=4',
      BROKER_HOST: '127.0.0.1',
      BROKER_PORT: String(port),
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      JWT_SECRET: secret,
      ...env,
    },
  });
  child.port = port;
  child.base = `http://127.0.0.1:${port}`;
  // With BROKER_PROCESSES > 1 the health answer comes from whichever process accepted it:
  // every process has said "redis: connected" (once each) before a stream may land on any
  // of them, or one still connecting answers it 503 redis_unavailable (seen with two test
  // files running at once).
  const processes = Number(env.BROKER_PROCESSES || 1);
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`broker exited: ${child.output}`);
    const r = await fetch(`${child.base}/events/health`);
    const j = await r.json();
    return j.redis === 'ok' && (processes <= 1 ||
      (child.output.match(/redis: connected/g) || []).length >= processes);
  }, { what: 'broker health' });
  return child;
}

// Resident set size of a process, in KiB.
export function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

// The run/env file a stack's scripts/run.sh writes under its CC_VAR dir (NAME=value lines,
// each value quoted by printf %q: backslash escapes, '' for empty) as an object.
export function runEnv(dir) {
  const out = {};
  for (const line of readFileSync(join(dir, 'run/env'), 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2] === "''" ? '' : m[2].replace(/\\(.)/g, '$1');
  }
  return out;
}
