// What tests/stack/run.test.mjs and run-stop.test.mjs share: stacks of scripts/run.sh of
// their own (a var/ each, free ports), started and stopped as an operator does, and whatever
// a failed assertion left running stopped when the file ends.
import { after } from 'node:test';
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, freePort, tempDir } from './procs.mjs';

export const dirs = [];
export const running = new Set();
// A failed assertion must not leave a stack behind: stop what is still running first.
after(async () => {
  for (const c of running) await stop(c);
  // what a failed stop left behind must not hold ports for the rest of the run
  for (const d of dirs) for (const pid of stackPids(d)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  // the directories themselves (logs, data) go at exit, or stay when the file failed
  // (tests/lib/procs.mjs: tempDir)
});

export function tmpVar() {
  const d = tempDir('codecollab-runtest.');
  chmodSync(d, 0o755); // the postgres user must be able to enter it
  dirs.push(d);
  return d;
}

// Live pids whose environment holds CC_VAR=dir (everything the stack started), or whose
// working directory is in dir: redis-server overwrites its environment with its process
// title, but it works in var/redis.
export function stackPids(dir) {
  const pids = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const env = readFileSync(`/proc/${p}/environ`, 'latin1').split('\0');
      if (env.includes(`CC_VAR=${dir}`)) { pids.push(Number(p)); continue; }
      if (readlinkSync(`/proc/${p}/cwd`).startsWith(`${dir}/`)) pids.push(Number(p));
    } catch { /* gone or not ours to read */ }
  }
  return pids;
}

// Starts scripts/run.sh (or script); resolves {child, output(), ms} once it prints "ready",
// or once it exits (then ready is false). The promise's own child and output() are there at
// once.
export function startStack(env, script = 'scripts/run.sh') {
  const t0 = Date.now();
  const child = spawn(join(ROOT, script), [], {
    env: { ...process.env, BUILD: 'asan', CC_BIND: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const started = new Promise((resolve) => {
    const timer = setInterval(() => {
      if (out.includes('ready: http')) {
        clearInterval(timer);
        resolve({ child, ready: true, output: () => out, ms: Date.now() - t0 });
      }
    }, 50);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ child, ready: false, code, output: () => out, ms: Date.now() - t0 });
    });
  });
  return Object.assign(started, { child, output: () => out });
}

export function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.on('exit', (code, sig) => resolve(code ?? sig));
    child.kill('SIGTERM');
  });
}

export async function ports() {
  return { PORT: String(await freePort()), BROKER_PORT: String(await freePort()),
    PG_PORT: String(await freePort()), REDIS_PORT: String(await freePort()) };
}

export const json = async (url, opts) => {
  const r = await fetch(url, opts);
  return { status: r.status, body: await r.json().catch(() => null) };
};

// A process's command line, for messages; "" once it is gone.
export const cmdline = (pid) => {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' '); } catch { return ''; }
};
export const describe = (pids) => pids.map((p) => `${p} ${cmdline(p)}`).join('\n');

export const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
