// A second front door on the test stack: lighttpd from the project's lighttpd.conf, with
// API processes of its own, on the stack's PostgreSQL, Redis, JWT key and broker (its
// /events/ goes to the stack's broker, BROKER_PORT), started with settings a test chooses,
// STREAM_ORIGIN above all (docs/OPERATIONS.md, "Direct streams"). The stack's own front door
// is make run's (STREAM_ORIGIN=auto); this one lets a suite try another value without a
// stack of its own.
//
//   const door = await startFrontDoor({ env: { STREAM_ORIGIN: 'http://127.0.0.1:1' }, csp: 'stream-origin' });
//   ... door.base ...
//   await door.stop();
//
// broker: 'stack' (the default) sends /events/ to the stack's broker; 'own' starts a broker
// for this front door alone (on a port of its own, BROKER_PORT for its API too), which
// door.killBroker() and door.startBroker() stop (SIGKILL) and start again on that port.
//
// streamIdleS: lighttpd's hold on a stream whose client takes no bytes
// (run/stream-idle.conf); by default what scripts/stream-idle.sh makes of the environment,
// as scripts/run.sh writes it.
//
// csp: 'stream-origin' writes run/csp.conf as scripts/run.sh does (scripts/csp-conf.sh) (the
// page may connect to the origin: a refusal there is the network's); 'self' writes none,
// so the page's policy is lighttpd.conf's own, which allows only the page's origin (as a
// site whose policy was not told of the stream origin, e.g. Apache's).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './browser.mjs';
import { freePort } from './procs.mjs';

const BIN = process.env.CC_BIN_DIR || join(ROOT, 'build', process.env.BUILD || 'asan', 'bin');

// The stack's DATABASE_URL, REDIS_URL, JWT key and broker port: exported by scripts/test.sh,
// or read from the run/env file of the stack in CC_VAR.
function stackEnv() {
  if (process.env.DATABASE_URL && process.env.REDIS_URL && process.env.BROKER_PORT) return {};
  const file = join(process.env.CC_VAR || join(ROOT, 'var'), 'run', 'env');
  const out = execFileSync('bash', ['-c', `. "$1"; printf '%s\\0%s\\0%s\\0%s' "$DATABASE_URL" "$REDIS_URL" "$JWT_SECRET_FILE" "$BROKER_PORT"`,
    'env', file]).toString().split('\0');
  const env = { DATABASE_URL: out[0], REDIS_URL: out[1], JWT_SECRET_FILE: out[2] };
  if (out[3]) env.BROKER_PORT = out[3];
  return env;
}

async function until(what, check, child, timeout = 20000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`${what}: it exited (${child.exitCode}): ${child.log}`);
    try {
      if (await check()) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}: ${child.log}`);
}

function startChild(cmd, args, env) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  child.log = '';
  child.stderr.on('data', (d) => { child.log = (child.log + d).slice(-8192); });
  child.done = new Promise((r) => child.on('exit', r));
  return child;
}

async function stopChild(child, signal = 'SIGTERM') {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill(signal);
    await child.done;
  }
}

export async function startFrontDoor({ env: extra = {}, csp = 'self', broker = 'stack', streamIdleS } = {}) {
  if (broker !== 'stack' && broker !== 'own') throw new Error(`broker: 'stack' or 'own', not ${broker}`);
  if (csp !== 'stream-origin' && csp !== 'self') throw new Error(`csp: 'stream-origin' or 'self', not ${csp}`);
  if (csp === 'stream-origin' && (!extra.STREAM_ORIGIN || extra.STREAM_ORIGIN === 'off')) {
    throw new Error('csp: stream-origin needs STREAM_ORIGIN');
  }
  const dir = mkdtempSync(join(tmpdir(), 'cc-door-'));
  for (const d of ['log', 'run']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'run', 'tls.conf'), ''); // plain HTTP
  const port = await freePort();
  const env = {
    ...process.env,
    ...stackEnv(),
    CC_ROOT: ROOT, CC_VAR: dir, CC_BIN: BIN, CC_BIND: '127.0.0.1', PORT: String(port), API_PROCESSES: '2',
    ...extra,
  };
  if (broker === 'own') {
    env.BROKER_PORT = String(await freePort());
    env.BROKER_HOST = '127.0.0.1';
  }
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  if (!env.BROKER_PORT) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error('the stack\'s BROKER_PORT is unknown');
  }
  const idleConf = join(dir, 'run', 'stream-idle.conf');
  try {
    if (streamIdleS !== undefined) writeFileSync(idleConf, `server.max-write-idle := ${Number(streamIdleS)}\n`);
    else {
      execFileSync('bash', ['-c', '. "$1"; stream_idle_conf "$2"', 'bash',
        join(ROOT, 'scripts', 'stream-idle.sh'), idleConf], { env });
    }
    if (csp === 'stream-origin') {
      execFileSync('bash', ['-c', '. "$1"; csp_conf "$2"', 'bash',
        join(ROOT, 'scripts', 'csp-conf.sh'), join(dir, 'run', 'csp.conf')], { env });
    }
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const child = startChild('lighttpd', ['-D', '-f', join(ROOT, 'lighttpd.conf')], env);
  const base = `http://127.0.0.1:${port}`;
  let brokerChild = null;
  const door = {
    base,
    dir,
    env,
    brokerPort: Number(env.BROKER_PORT),
    async startBroker() {
      if (broker !== 'own') throw new Error('the stack\'s broker is not this door\'s to start');
      brokerChild = startChild(join(BIN, 'codecollab-broker'), [], env);
      await until('the broker', async () => (await fetch(`http://127.0.0.1:${env.BROKER_PORT}/events/health`)).status === 200, brokerChild);
    },
    async killBroker() {
      await stopChild(brokerChild, 'SIGKILL');
    },
    async stop() {
      await stopChild(brokerChild);
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await until('lighttpd and the API', async () => (await fetch(`${base}/api/health`)).status === 200, child);
    if (broker === 'own') await door.startBroker();
  } catch (e) {
    await door.stop();
    throw e;
  }
  return door;
}
