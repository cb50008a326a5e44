// End-to-end: the broker dies and comes back while two people type. Both editors say
// "reconnecting", keep every keystroke (operations still reach the API), resume their
// streams after the last event they saw, and converge with the server, losing nothing.
//
// The stack's own broker belongs to scripts/run.sh, which stops everything when a child
// dies, so this test opens a second front door of its own on the same PostgreSQL and
// Redis: a lighttpd started from the project's lighttpd.conf (with its own API processes)
// and a broker behind it, both children of this test. Killing and restarting that broker
// is a real restart of a real broker, and the rest of the suite is not disturbed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, launch, person, screenshot } from '../lib/browser.mjs';
import { freePort } from '../lib/ports.mjs';
import { PASSWORD, converged, createRoom, uniqueName, waitForEditor } from '../lib/app.mjs';

const BIN = process.env.CC_BIN_DIR || join(ROOT, 'build', process.env.BUILD || 'asan', 'bin');
let dir;
let env;
let lighttpd;
let broker;
let base;
let browser;

// The stack's DATABASE_URL, REDIS_URL and JWT key: exported by scripts/test.sh, or read
// from the run/env file of the stack in CC_VAR (written with bash quoting).
function stackEnv() {
  if (process.env.DATABASE_URL && process.env.REDIS_URL) return {};
  const file = join(process.env.CC_VAR || join(ROOT, 'var'), 'run', 'env');
  const out = execFileSync('bash', ['-c', `. "$1"; printf '%s\\0%s\\0%s' "$DATABASE_URL" "$REDIS_URL" "$JWT_SECRET_FILE"`, 'env', file]).toString().split('\0');
  return { DATABASE_URL: out[0], REDIS_URL: out[1], JWT_SECRET_FILE: out[2] };
}

function startChild(cmd, args) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  child.log = '';
  child.stderr.on('data', (d) => { child.log = (child.log + d).slice(-8192); });
  child.done = new Promise((r) => child.on('exit', r));
  return child;
}

async function until(what, check, timeout = 20000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const brokerUp = async () => (await fetch(`${base}/events/health`)).status === 200;

async function startBroker() {
  broker = startChild(join(BIN, 'codecollab-broker'), []);
  await until('the broker', brokerUp);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cc-e2e-door-'));
  for (const d of ['log', 'run']) mkdirSync(join(dir, d));
  // lighttpd.conf includes run/tls.conf, which scripts/run.sh writes: empty for plain HTTP,
  // what this front door serves
  writeFileSync(join(dir, 'run', 'tls.conf'), '');
  const port = await freePort();
  env = {
    ...process.env,
    ...stackEnv(),
    CC_ROOT: ROOT, CC_VAR: dir, CC_BIN: BIN, CC_BIND: '127.0.0.1',
    PORT: String(port), BROKER_PORT: String(await freePort()), API_PROCESSES: '2',
  };
  base = `http://127.0.0.1:${port}`;
  lighttpd = startChild('lighttpd', ['-D', '-f', join(ROOT, 'lighttpd.conf')]);
  await until('lighttpd and the API', async () => (await fetch(`${base}/api/health`)).status === 200);
  await startBroker();
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  for (const c of [broker, lighttpd]) {
    if (c && c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await c.done;
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Requests to /events/ fail while the broker is away; the browser logs them. Only those.
const outageNoise = (m) => /EventSource|\/events\/rooms\/|ERR_CONNECTION|status of 50[234]/.test(m);

test('the broker restarts while two people type: nothing is lost, nothing doubled', async () => {
  const A = await person(browser, base);
  const B = await person(browser, base);
  await A.page.goto('/');
  await A.page.fill('[name="username"]', uniqueName('rita'));
  await A.page.fill('[name="password"]', PASSWORD);
  await A.page.click('[data-action="register"]');
  const roomId = await createRoom(A.page, 'Restart drill', 'javascript');
  const invite = await A.page.getAttribute('[data-role="invite-link"]', 'href');
  await B.page.goto(invite);
  await B.page.fill('[name="username"]', uniqueName('sam'));
  await B.page.fill('[name="password"]', PASSWORD);
  await B.page.click('[data-action="register"]');
  await waitForEditor(B.page);
  // A types on the first line, B on the second, so their words do not interleave
  await A.page.click('[data-role="editor"] .cm-content');
  await A.page.keyboard.type('// top\n// bottom');
  await converged(base, [A.page, B.page], roomId);
  await A.page.keyboard.press('Control+Home');
  await A.page.keyboard.press('End');
  await B.page.click('[data-role="editor"] .cm-content');
  await B.page.keyboard.press('Control+End');

  const typed = { A: [], B: [] };
  async function type(who, p, marker) {
    typed[who].push(marker);
    await p.keyboard.type(`${marker} `, { delay: 5 });
  }
  for (let i = 0; i < 3; i++) await Promise.all([type('A', A.page, `a${i}😀`), type('B', B.page, `b${i}日`)]);

  broker.kill('SIGKILL');
  await broker.done;
  for (const p of [A.page, B.page]) await p.waitForSelector('[data-role="connection"][data-state="reconnecting"]', { timeout: 10000 });
  // typing goes on while the broker is away
  for (let i = 3; i < 6; i++) await Promise.all([type('A', A.page, `a${i}😀`), type('B', B.page, `b${i}日`)]);
  await screenshot(A.page, 'reconnecting');

  await startBroker();
  for (const p of [A.page, B.page]) await p.waitForSelector('[data-role="connection"][data-state="connected"]', { timeout: 20000 });
  for (let i = 6; i < 9; i++) await Promise.all([type('A', A.page, `a${i}😀`), type('B', B.page, `b${i}日`)]);

  const doc = await converged(base, [A.page, B.page], roomId);
  for (const m of [...typed.A, ...typed.B]) {
    assert.equal(doc.content.split(`${m} `).length - 1, 1, `"${m}" once in ${JSON.stringify(doc.content)}`);
  }
  for (const who of [A, B]) {
    assert.deepEqual(who.problems.filter((m) => !outageNoise(m)), [], 'no console errors but the outage\'s');
  }
  await A.context.close();
  await B.context.close();
});
