// Stopping scripts/run.sh (what `make run` runs) the way supervisors and people do: SIGTERM
// leaves nothing running, also when a supervisor signals make run's whole process group
// several times, when make itself or the script dies first, during initdb or the schema's
// load, and when services ignore their stop signal; and past its stream capacity a stream
// through lighttpd gets a 503 at once. Split from run.test.mjs, which starts stacks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { ROOT, sleep, waitFor, pauseProcess, stop as stopProcess } from '../lib/procs.mjs';
import { startPrimary, pgUrl } from '../lib/pg.mjs';
import { portFree } from '../lib/ports.mjs';
import { parentPid } from '../lib/proctree.mjs';
import { call, newUser, createRoom, psql } from '../lib/api.mjs';
import { running, tmpVar, stackPids, startStack, stop, ports, json, cmdline, describe, escapeRe } from '../lib/runstack.mjs';

// ---- stopping `make run` the way supervisors do ----------------------------------------

// `make run` without its build step: a makefile whose run recipe is scripts/run.sh, so make
// (GNU make forwards SIGTERM to its recipe and waits for it) sits between the signals and
// the script exactly as in `make run`. detached: make leads a process group of its own.
function startMake(dir, env) {
  const mk = join(dir, 'Makefile.run');
  writeFileSync(mk, `run:\n\t@${join(ROOT, 'scripts/run.sh')}\n`);
  const t0 = Date.now();
  const child = spawn('make', ['--no-print-directory', '-f', mk, 'run'], {
    env: { ...process.env, BUILD: 'asan', CC_BIND: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  running.add(child);
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  child.exited = new Promise((resolve) => child.on('exit', (code, sig) => {
    running.delete(child);
    resolve(code ?? sig);
  }));
  return (async () => {
    while (!out.includes('ready: http')) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`make run exited: ${out}`);
      if (Date.now() - t0 > 120000) throw new Error(`make run not ready after 120 s: ${out}`);
      await sleep(50);
    }
    return { child, output: () => out, ms: Date.now() - t0 };
  })();
}

// run.sh is the process that stops the stack: once it is gone, nothing of the stack may be.
async function scriptGone(dir) {
  await waitFor(() => !stackPids(dir).some((p) => cmdline(p).includes('scripts/run.sh')),
    { timeout: 90000, what: 'scripts/run.sh to exit' });
}

async function assertStopped(dir, p, what) {
  const left = stackPids(dir);
  assert.deepEqual(left, [], `${what}: processes of the stack are still running:\n${describe(left)}`);
  for (const name of ['PORT', 'BROKER_PORT', 'REDIS_PORT']) {
    assert.ok(await portFree(Number(p[name])), `${what}: ${name} ${p[name]} is still taken`);
  }
  assert.ok(!existsSync(join(dir, 'run/pg', `.s.PGSQL.${p.PG_PORT}`)), `${what}: PostgreSQL's socket is still there`);
}

test('SIGTERM to make run\'s process group, several at once or in quick succession: everything stops, the next start works', async () => {
  const dir = tmpVar();
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '' };
  // gaps (ms) between the signals of each stop; 0 = sent together. The bug hit 2 stops in 10.
  const volleys = [[0, 10, 40], [0, 0], [0, 25, 25], [0, 0, 0], [0, 50, 10], [0, 15]];
  for (const [i, gaps] of volleys.entries()) {
    const s = await startMake(dir, env); // on the same ports and data each time
    for (const gap of gaps) {
      if (gap) await sleep(gap);
      try { process.kill(-s.child.pid, 'SIGTERM'); } catch { /* the group is gone already */ }
    }
    await s.child.exited;
    await scriptGone(dir);
    await assertStopped(dir, p, `stop ${i + 1} (signals ${gaps.join('/')} ms apart)`);
    console.log(`# make run ${i + 1}: ready in ${s.ms} ms, ${gaps.length} SIGTERMs to its group`);
  }
});

test('make killed outright (SIGKILL, no signal reaches the script): run.sh still stops everything', async () => {
  const dir = tmpVar();
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '' };
  const s = await startMake(dir, env);
  process.kill(s.child.pid, 'SIGKILL'); // make only, not its group
  await s.child.exited;
  await scriptGone(dir);
  await assertStopped(dir, p, 'after make died');
  const again = await startMake(dir, env);
  process.kill(-again.child.pid, 'SIGTERM');
  await again.child.exited;
  await scriptGone(dir);
  await assertStopped(dir, p, 'the start after');
});

// Anybody who can open the lock file can hold the lock (flock needs no more than a read
// descriptor) and block every start: one that another user owns is refused, saying so, and
// nothing else happens.
test('a lock file of another user is refused with a line saying to remove it', async () => {
  const dir = tmpVar();
  const lock = join(dir, 'stack.lock');
  writeFileSync(lock, '');
  chownSync(lock, 65534, 65534); // nobody
  const r = await startStack({ ...(await ports()), CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '' });
  assert.equal(r.ready, false);
  assert.equal(r.code, 1);
  await waitFor(() => r.output().includes('error:'), { timeout: 5000, what: 'the error line' });
  assert.match(r.output(), new RegExp(`error: ${escapeRe(lock)} belongs to another user: remove it`));
  assert.deepEqual(readdirSync(dir), ['stack.lock'], 'nothing else was made');
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
});

test('run.sh itself killed outright (SIGKILL, no trap runs): its watchdog stops everything within seconds', async () => {
  const dir = tmpVar();
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '',
    WATCHDOG_GRACE_S: '3' };
  const s = await startStack(env);
  assert.ok(s.ready, s.output());
  const t0 = Date.now();
  const exited = new Promise((resolve) => s.child.once('exit', resolve));
  s.child.kill('SIGKILL');
  await exited;
  // the watchdog's poll, SIGTERM, and SIGKILL after WATCHDOG_GRACE_S for what is left
  await waitFor(() => stackPids(dir).length === 0, { timeout: 10000, interval: 100, what: 'the stack gone' })
    .catch(() => assert.fail(`10 s after the SIGKILL of run.sh still running:\n${describe(stackPids(dir))}`));
  console.log(`# the stack was gone ${Date.now() - t0} ms after the SIGKILL of run.sh`);
  await assertStopped(dir, p, 'after run.sh was killed');
  assert.match(readFileSync(join(dir, 'log/watchdog.log'), 'utf8'), /is gone without stopping its services/);
  // the lock on var/ went with the script and its watchdog: the next start works
  const again = await startStack(env);
  assert.ok(again.ready, again.output());
  assert.equal(await stop(again.child), 0);
  await scriptGone(dir);
  await assertStopped(dir, p, 'the start after');
});

// The start's one-time PostgreSQL work (here schema.sql, into a server of DATABASE_URL) runs
// in the background under `wait` (scripts/services.sh: oneshot): a stop signal's trap runs at
// once, and ends the psql. The server is paused (SIGSTOP: the kernel still takes the
// connection, no answer ever comes), so the psql never ends by itself; in the foreground, as
// before, it held the trap, and the stop, for as long as that lasted.
test('a SIGTERM while schema.sql is loaded into a server that does not answer stops at once, ending the psql', async () => {
  const srv = await startPrimary();
  const dir = tmpVar();
  const p = await ports();
  await pauseProcess(srv.pid);
  try {
    const s = startStack({ ...p, CC_VAR: dir, DATABASE_URL: pgUrl(srv), REDIS_URL: process.env.REDIS_URL,
      JWT_SECRET: '', JWT_SECRET_FILE: process.env.JWT_SECRET_FILE });
    const loading = () => stackPids(dir).find((pid) => /(^|\/)psql .*schema\.sql/.test(cmdline(pid)));
    await waitFor(loading, { timeout: 30000, what: 'run.sh loading schema.sql' });
    const psql = loading();
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    await waitFor(() => s.output().includes('stopping everything'),
      { timeout: 10000, what: 'the stop begun (it waited for the psql instead)' });
    const r = await s;
    console.log(`# the stop began and ended ${Date.now() - t0} ms after the SIGTERM`);
    assert.equal(r.ready, false);
    assert.equal(r.code, 0, r.output());
    assert.ok(!cmdline(psql).includes('schema.sql'), 'the psql is gone');
    assert.deepEqual(stackPids(dir), [], describe(stackPids(dir)));
    assert.doesNotMatch(readFileSync(join(dir, 'log/schema.log'), 'utf8'), /stopping/, 'the stop\'s lines are not in the log');
  } finally {
    process.kill(srv.pid, 'SIGCONT');
    await stopProcess(srv);
  }
});

// initdb cut short by a stop leaves a data directory that may already hold PG_VERSION; a
// start that took it for done would run PostgreSQL on half a cluster. While initdb runs, a
// mark in var/ says so (scripts/services.sh: unfinished_begin); the next start stops with a
// line naming what to remove, and removes nothing itself.
test('a SIGTERM during initdb: the stop is at once, and the next start refuses the unfinished cluster, saying what to remove', async () => {
  const dir = tmpVar();
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '' };
  const first = startStack(env);
  // initdb runs as postgres with a clean environment (setpriv): found by its arguments
  const initdb = () => readdirSync('/proc').find((pid) => /^\d+$/.test(pid) && cmdline(pid).includes(`initdb -D ${join(dir, 'pg')} `));
  await waitFor(initdb, { timeout: 30000, interval: 20, what: 'run.sh running initdb' });
  first.child.kill('SIGTERM');
  const r = await first;
  assert.equal(r.ready, false);
  assert.match(r.output(), /stopping everything/);
  assert.deepEqual(stackPids(dir), [], describe(stackPids(dir)));
  assert.ok(existsSync(join(dir, '.unfinished-initdb')), `the unfinished initdb is marked:\n${r.output()}`);
  const before = readdirSync(join(dir, 'pg'));

  const again = await startStack(env);
  assert.equal(again.ready, false);
  assert.notEqual(again.code, 0);
  assert.match(again.output(), new RegExp(`initdb did not finish.*remove it \\(rm -rf '${dir}/pg'/\\*\\)`));
  assert.deepEqual(readdirSync(join(dir, 'pg')), before, 'the start removed nothing');
  assert.deepEqual(stackPids(dir), [], describe(stackPids(dir)));
});

// The stop's bounds hold for services that never act on their signal: lighttpd, the worker,
// the snapshotter and an API process, stopped with SIGSTOP. With small bounds (STOP_*_S;
// the defaults, 20 s, 40 s and 10 s, made this test take 75 s), lighttpd gets SIGKILL after
// STOP_FRONT_S, the two programs after the STOP_PROGRAMS_S they share (not each in turn:
// twice as long), each named in a line, the API process's keeper after STOP_LEFTOVERS_S and
// the API process after it, and the stop goes on to the end. (A `wait` on the stopped child,
// which returns only when the child ends, held such a stop for good.) The stop starts once
// all of them have stopped (tests/lib/procs.mjs: pauseProcess). The worker's
// SHUTDOWN_GRACE_MS (30 s by default) is not below STOP_PROGRAMS_S here: the start warns.
const BOUND = { front: 3, programs: 15, leftovers: 3 };
test('services that ignore their stop signal (lighttpd, worker, snapshotter, an API process stopped) are killed after their bounds; SIGTERM still stops everything', async (t) => {
  const dir = tmpVar();
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '',
    STOP_FRONT_S: String(BOUND.front), STOP_PROGRAMS_S: String(BOUND.programs),
    STOP_LEFTOVERS_S: String(BOUND.leftovers), SHUTDOWN_GRACE_MS: '30000' };
  const s = await startStack(env);
  assert.ok(s.ready, s.output());
  assert.match(s.output(), new RegExp(`warning: SHUTDOWN_GRACE_MS \\(30000\\) is not below STOP_PROGRAMS_S \\(${BOUND.programs} s\\)`));
  const ppid = parentPid;
  const child = (re) => stackPids(dir).find((pid) => re.test(cmdline(pid).trim()) && ppid(pid) === s.child.pid);
  const paused = { lighttpd: child(/^lighttpd /), worker: child(/codecollab-worker$/), snapshotter: child(/codecollab-snapshotter$/),
    // an API process: its keeper cannot stop it either, and is killed after STOP_LEFTOVERS_S
    api: stackPids(dir).find((pid) => /codecollab-api$/.test(cmdline(pid).trim())) };
  for (const [name, pid] of Object.entries(paused)) {
    assert.ok(pid, `${name} under run.sh:\n${describe(stackPids(dir))}`);
    await pauseProcess(pid);
  }
  const t0 = Date.now();
  let timer;
  const code = await Promise.race([stop(s.child),
    new Promise((resolve) => { timer = setTimeout(() => resolve('still running after 150 s'), 150000); })]);
  clearTimeout(timer); // a pending timer would hold the file open (and into the runner's timeout)
  const took = Date.now() - t0;
  t.diagnostic(`the stop took ${took} ms with lighttpd, the worker, the snapshotter and an API process stopped`);
  if (code !== 0) s.child.kill('SIGKILL');
  assert.equal(code, 0, `run.sh ended by itself after SIGTERM:\n${s.output().slice(-2000)}`);
  assert.match(s.output(), new RegExp(`lighttpd \\(pid ${paused.lighttpd}\\) had not ended ${BOUND.front} s after its stop signal: killed`));
  for (const name of ['worker', 'snapshotter']) {
    assert.match(s.output(), new RegExp(`${name} \\(pid ${paused[name]}\\) had not ended ${BOUND.programs} s after its stop signal: killed`));
  }
  const sum = (BOUND.front + BOUND.programs + BOUND.leftovers) * 1000;
  const inTurn = (BOUND.front + 2 * BOUND.programs + BOUND.leftovers) * 1000;
  assert.ok(took >= sum - 500, `lighttpd had its ${BOUND.front} s, the programs their ${BOUND.programs} s, the API's keeper its ${BOUND.leftovers} s (${took} ms)`);
  assert.ok(took < inTurn, `the programs shared their ${BOUND.programs} s (${took} ms; each in turn would be ${inTurn} ms and more)`);
  await assertStopped(dir, p, 'after the stop with four processes stopped');
});

// The bounds are checked before anything starts: a value that is not a whole number of
// seconds from 1 to 86400 ends the start at once with a line naming the variable, not a stop
// that falls back to a default (or fails half-way through) when it comes.
test('a stop bound (STOP_*_S) that is not a positive whole number is refused at start, naming the variable', async () => {
  const dir = tmpVar();
  const p = await ports();
  for (const [name, value] of [['STOP_PROGRAMS_S', 'abc'], ['STOP_FRONT_S', '0'], ['STOP_POSTGRES_S', '-5'],
    ['STOP_LEFTOVERS_S', '1.5'], ['STOP_REDIS_S', '999999'], ['STOP_STARTING_S', '10s']]) {
    const r = await startStack({ ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', [name]: value });
    assert.equal(r.ready, false, `${name}=${value} started a stack:\n${r.output()}`);
    assert.notEqual(r.code, 0);
    // 'exit' may come before the last of the output has been read
    await waitFor(() => r.output().includes('error:'), { timeout: 5000, what: `the error line for ${name}` });
    assert.match(r.output(), new RegExp(`error: ${name} must be a whole number of seconds from 1 to 86400 \\(got '${value.replace('.', '\\.')}'\\)`));
    assert.deepEqual(stackPids(dir), [], `${name}=${value}: nothing of the stack runs`);
  }
});

// ---- capacity (docs/OPERATIONS.md, "Capacity") -----------------------------------------

// One SSE request through a front door: resolves once the stream is open (": connected"),
// or once a whole answer with a Content-Length has arrived (lighttpd keeps the connection
// for the next request), with the text and how long it took.
function sseThrough(port, path) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = createConnection({ host: '127.0.0.1', port }, () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    let text = '';
    const done = () => resolve({ sock: s, text, ms: performance.now() - t0 });
    s.on('data', (d) => {
      text += d.toString('latin1');
      const cut = text.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, cut));
      if (text.includes(': connected') || (cut >= 0 && len && text.length - cut - 4 >= Number(len[1]))) done();
    });
    s.on('end', done);
    s.on('error', reject);
  });
}

test('past BROKER_MAX_STREAMS a stream through lighttpd gets a 503 at once, and lighttpd is sized to hold more', async () => {
  const MAX = 3;
  const dir = tmpVar();
  const p = await ports();
  // a second front door and broker on the test stack's PostgreSQL, Redis and key
  const r = await startStack({ ...p, CC_VAR: dir, DATABASE_URL: process.env.DATABASE_URL,
    REDIS_URL: process.env.REDIS_URL, JWT_SECRET_FILE: process.env.JWT_SECRET_FILE,
    BROKER_MAX_STREAMS: String(MAX),
    // lighttpd notices a client gone from a stream when it next writes to it: a heartbeat
    BROKER_HEARTBEAT_MS: '300' });
  assert.ok(r.ready, r.output());
  try {
    // what run.sh gave lighttpd holds every stream the broker lets through, with room to spare
    const cap = /capacity: (\d+) streams \(the broker: (\d+) process\(es\) of (\d+) clients; lighttpd: (\d+) process\(es\) of (\d+) descriptors\)/.exec(r.output());
    assert.ok(cap, r.output());
    const [, streams, , , workers, fds] = cap.map(Number);
    assert.equal(streams, MAX);
    assert.ok(workers * (fds * 0.9) > 2 * streams + 1000, `lighttpd: ${workers} × ${fds} descriptors`);

    const user = await newUser('cap');
    const room = await createRoom(user.token);
    const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: user.token, body: {} });
    assert.equal(t.status, 200, t.text);
    const path = `/events/rooms/${room.id}?ticket=${encodeURIComponent(t.json.ticket)}`;
    const port = Number(p.PORT);
    const open = [];
    for (let i = 0; i < MAX; i++) open.push(await sseThrough(port, path));
    for (const o of open) assert.match(o.text, /^HTTP\/1\.1 200/, o.text);

    // the next one is refused by the broker, through lighttpd, with JSON, at once
    const no = await sseThrough(port, path);
    assert.match(no.text, /^HTTP\/1\.1 503/, no.text);
    const body = JSON.parse(no.text.slice(no.text.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error, 'too_many_clients');
    assert.ok(no.ms < 3000, `the 503 took ${no.ms} ms`);
    no.sock.destroy();

    // a stream that ends gives its place back
    open.pop().sock.destroy();
    await waitFor(async () => (await json(`http://127.0.0.1:${p.PORT}/events/health`)).body?.clients === MAX - 1,
      { what: 'the place given back', timeout: 20000 });
    const again = await sseThrough(port, path);
    assert.match(again.text, /^HTTP\/1\.1 200/, again.text);
    open.push(again);
    for (const o of open) o.sock.destroy();
  } finally {
    assert.equal(await stop(r.child), 0);
  }
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
});
