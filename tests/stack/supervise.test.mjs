// Supervision on one box (scripts/run.sh, scripts/keep-fcgi.sh, docs/OPERATIONS.md
// "Supervision"): a stack of its own, started as `make run` starts it, then one fault at a
// time with real processes and sockets. kill -9 of the broker under a subscriber and a
// writer: it is back and the subscriber, resuming, has every revision exactly once. kill -9
// of the worker mid-job: the job is taken over and finishes once, well before CLAIM_IDLE_MS.
// PostgreSQL restarted: /api/health says ok again soon after. An API process killed with a
// request in flight: that request gets 502 with a JSON body. A process that keeps dying:
// its restarts wait longer each time. SIGTERM: nothing survives. The recovery times are
// printed (docs/BENCHMARKS.md); the bounds asserted are generous.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, freePort, runEnv, sleep, waitFor } from '../lib/procs.mjs';
import { parentPid, procStat } from '../lib/proctree.mjs';
import { connectRedis } from '../lib/resp.mjs';
import { holdRoomRow } from '../lib/pg.mjs';
import { sseBlockStream, sseFields } from '../lib/sse.mjs';

// Under WEB=apache (./scripts/test.sh apache) the stack is fronted by Apache: a request
// whose API process died gets mod_proxy_fcgi's 503 there (lighttpd: 502), and the keeper's
// lines go to api.log (lighttpd: its error log, where its FastCGI programs write).
const APACHE = process.env.WEB === 'apache';
let dir;
let child;
let base;
let redisPort;
let out = '';
const times = {};

// Live pids whose environment holds CC_VAR=dir, or that work in dir (redis-server).
function stackPids() {
  const pids = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = procStat(p);
      if (!stat || stat.state === 'Z') continue;
      const env = readFileSync(`/proc/${p}/environ`, 'latin1').split('\0');
      if (env.includes(`CC_VAR=${dir}`)) { pids.push(Number(p)); continue; }
      if (readlinkSync(`/proc/${p}/cwd`).startsWith(`${dir}/`)) pids.push(Number(p));
    } catch { /* gone */ }
  }
  return pids;
}

// The pids of the stack whose command line runs `program` (a path's last part).
function pidsOf(program) {
  return stackPids().filter((p) => {
    try {
      const argv0 = readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0')[0];
      return argv0.endsWith(`/${program}`) || argv0 === program;
    } catch { return false; }
  });
}

// The one process of `program` the supervisor started: not a child of another of its kind
// (the broker's own processes, a worker's child between its fork and the exec of bwrap). The
// lowest pid is not it once pids have wrapped around (pid_max is 32768 here).
function mainPid(program) {
  const pids = pidsOf(program);
  return pids.find((p) => !pids.includes(procStat(p)?.ppid));
}

const procState = (pid) => procStat(pid)?.state ?? '';

// HANG_TIMEOUT_S of this stack: seconds without a sign of life before a program is killed
const HANG_S = 10;
const hungLine = (name, pid) => new RegExp(`${name} \\(pid ${pid}\\) showed no sign of life for (\\d+) s \\(HANG_TIMEOUT_S\\): killing it`);

const supervisorLog = () => readFileSync(join(dir, 'log/supervisor.log'), 'utf8');

async function req(method, path, { token, body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body: json, text, headers: r.headers };
}

async function healthy(what) {
  try {
    const r = await fetch(`${base}${what}`, { signal: AbortSignal.timeout(2000) });
    return r.ok;
  } catch { return false; }
}

async function newUserRoom(name) {
  const reg = await req('POST', '/api/auth/register', { body: { username: `${name}${process.pid}`, password: 'a-password-1' } });
  assert.equal(reg.status, 201, reg.text);
  const room = await req('POST', '/api/rooms', { token: reg.body.token, body: { name, language: 'python' } });
  assert.equal(room.status, 201, room.text);
  return { token: reg.body.token, room: room.body.room.id };
}

// An SSE subscriber that resumes after every disconnect with the last id it saw, as
// clients are told to; events[] holds every event it was given.
function subscribe(room, token) {
  const s = { events: [], lastId: '', closed: false, connects: 0, req: null };
  const connect = () => {
    if (s.closed) return;
    const headers = { authorization: `Bearer ${token}`, accept: 'text/event-stream' };
    if (s.lastId) headers['last-event-id'] = s.lastId;
    s.connects++;
    const again = () => { s.req = null; if (!s.closed) setTimeout(connect, 100); };
    const r = http.get(`${base}/events/rooms/${room}`, { headers }, (res) => {
      if (res.statusCode !== 200) { res.resume(); res.on('end', again); return; }
      s.open = true;
      (async () => {
        for await (const block of sseBlockStream(res)) {
          const f = sseFields(block);
          const ev = { id: f.id ?? '', type: f.event ?? 'message', data: f.data ?? '' };
          if (ev.id) s.lastId = ev.id;
          if (ev.data) { try { ev.data = JSON.parse(ev.data); } catch { /* keep text */ } }
          s.events.push(ev);
        }
        again();
      })().catch(() => {});
    });
    r.on('error', again);
    s.req = r;
  };
  connect();
  s.close = () => { s.closed = true; if (s.req) s.req.destroy(); };
  return s;
}

before(async () => {
  dir = mkdtempSync('/tmp/codecollab-supervise.');
  chmodSync(dir, 0o755);
  const port = await freePort();
  redisPort = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env, BUILD: 'asan', CC_BIND: '127.0.0.1', CC_VAR: dir,
    PORT: String(port), BROKER_PORT: String(await freePort()), PG_PORT: String(await freePort()),
    REDIS_PORT: String(redisPort), DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '',
    API_PROCESSES: '2', WORKERS: '1', CLAIM_IDLE_MS: '30000',
    RESTART_BACKOFF_FIRST_MS: '200', RESTART_BACKOFF_MAX_MS: '3000', RESTART_RESET_S: '30',
    // a hung program is killed after this (30 s by default)
    HANG_TIMEOUT_S: String(HANG_S),
    // an API request still running after this ends its process (120 s by default)
    API_HANG_TIMEOUT_S: String(HANG_S),
  };
  for (const v of ['TLS', 'TLS_PORT', 'TLS_CERT', 'TLS_KEY', 'METRICS_PORT', 'BROKER_METRICS_PORT',
    'WORKER_METRICS_PORT', 'SNAPSHOTTER_METRICS_PORT', 'CC_READY_FILE']) delete env[v];
  child = spawn(join(ROOT, 'scripts/run.sh'), [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`run.sh exited ${child.exitCode}: ${out}`);
    return out.includes('ready: http');
  }, { timeout: 180000, what: 'the stack to start' });
});

after(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => { child.on('exit', r); setTimeout(r, 60000); });
  }
  for (const p of stackPids()) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  const lines = Object.entries(times).map(([k, v]) => `  ${k}: ${v}`);
  if (lines.length) console.log(`# recovery times measured (ms):\n${lines.join('\n')}`);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('kill -9 of the broker: restarted at once, a resuming subscriber has every revision exactly once', async () => {
  const { token, room } = await newUserRoom('brokerroom');
  const sub = subscribe(room, token);
  await waitFor(() => sub.open, { what: 'the subscription' });
  const total = 60;
  let rev = 0;
  let killedAt = 0;
  const broker = mainPid('codecollab-broker');
  assert.ok(broker, 'the broker runs');
  for (let i = 0; i < total; i++) {
    if (i === 20) {
      process.kill(broker, 'SIGKILL');
      killedAt = Date.now();
    }
    const r = await req('POST', `/api/rooms/${room}/operations`, { token, body: { revision: rev, ops: [`${i % 10}`] } });
    assert.equal(r.status, 200, r.text);
    rev = r.body.revision;
    await sleep(20);
  }
  await waitFor(() => healthy('/events/health'), { timeout: 30000, what: 'the broker to answer again' });
  times['broker: kill -9 to /events/health ok'] = Date.now() - killedAt;
  await waitFor(() => sub.events.filter((e) => e.type === 'operation').length >= total,
    { timeout: 30000, what: 'every operation at the subscriber' });
  times['broker: kill -9 to the subscriber having every revision'] = Date.now() - killedAt;
  sub.close();
  const revs = sub.events.filter((e) => e.type === 'operation').map((e) => e.data.revision);
  assert.deepEqual(revs, Array.from({ length: total }, (_, i) => i + 1), 'each revision once, in order');
  assert.ok(sub.connects >= 2, 'the subscriber was cut off and came back');
  assert.match(supervisorLog(), new RegExp(`broker \\(pid ${broker}\\) was killed by signal KILL after [0-9.]+ s; restarting it in [0-9.]+ s \\(restart 1\\)`));
  assert.match(supervisorLog(), /broker restarted \(pid \d+\)/);
  assert.ok(times['broker: kill -9 to /events/health ok'] < 20000);
});

test('kill -9 of the worker mid-job: restarted, the job is taken over and finishes once, well before CLAIM_IDLE_MS (30 s)', async () => {
  const { token, room } = await newUserRoom('workerroom');
  const code = 'import time\ntime.sleep(2)\nprint("survived")\n';
  const r = await req('POST', `/api/rooms/${room}/executions`, { token, body: { language: 'python', code } });
  assert.equal(r.status, 202, r.text);
  const id = r.body.job.id;
  await waitFor(async () => (await req('GET', `/api/jobs/${id}`, { token })).body.job.status === 'running',
    { timeout: 30000, what: 'the job to run' });
  const worker = mainPid('codecollab-worker');
  process.kill(worker, 'SIGKILL');
  const t0 = Date.now();
  let j;
  await waitFor(async () => {
    j = (await req('GET', `/api/jobs/${id}`, { token })).body.job;
    return j.status === 'finished' || j.status === 'failed';
  }, { timeout: 60000, interval: 100, what: 'the job to end' });
  const took = Date.now() - t0;
  times['worker: kill -9 mid-job (2 s job) to finished'] = took;
  assert.equal(j.status, 'finished', JSON.stringify(j));
  assert.equal(j.result.stdout, 'survived\n');
  assert.ok(took < 25000, `finished ${took} ms after the kill`);
  const r2 = await connectRedis(redisPort);
  const entries = await r2.cmd('XRANGE', `cc:room:{${room}}:events`, '-', '+');
  r2.close();
  const mine = entries.map(([, f]) => JSON.parse(f[f.indexOf('data') + 1])).filter((d) => d.job_id === id);
  assert.deepEqual(mine.map((d) => d.status), ['queued', 'running', 'running', 'finished']);
  assert.equal(mine[2].restarted, true, 'the second running says the job starts again');
  assert.match(supervisorLog(), new RegExp(`worker \\(pid ${worker}\\) was killed by signal KILL`));
  assert.match(readFileSync(join(dir, 'log/worker.log'), 'utf8'), /is gone \(no liveness key\): taken over/);
});

test('PostgreSQL restarted: the supervisor starts it again and /api/health is ok again within seconds', async () => {
  assert.ok(await healthy('/api/health'));
  // every API process has a connection to lose
  for (let i = 0; i < 6; i++) await req('GET', '/api/health');
  const pidFile = join(dir, 'pg/postmaster.pid');
  const pg = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  process.kill(pg, 'SIGINT'); // a fast shutdown, as a restart does
  const t0 = Date.now();
  await waitFor(() => { try { process.kill(pg, 0); return false; } catch { return true; } }, { timeout: 30000, what: 'postgres to stop' });
  await waitFor(() => {
    try {
      execFileSync('pg_isready', ['-q', '-h', join(dir, 'run/pg'), '-p', String(readFileSync(pidFile, 'utf8').split('\n')[3])]);
      return Number(readFileSync(pidFile, 'utf8').split('\n')[0]) !== pg;
    } catch { return false; }
  }, { timeout: 30000, interval: 20, what: 'postgres to be back' });
  const back = Date.now();
  let answers = 0;
  await waitFor(async () => {
    const h = await req('GET', '/api/health');
    answers++;
    return h.status === 200 && h.body.postgres === 'ok';
  }, { timeout: 30000, interval: 100, what: 'health to say postgres ok' });
  times['postgres: back to /api/health ok'] = Date.now() - back;
  times['postgres: stop to /api/health ok'] = Date.now() - t0;
  // and every API process answers ok now, not only the first one asked
  for (let i = 0; i < 6; i++) {
    const h = await req('GET', '/api/health');
    assert.equal(h.body.postgres, 'ok', `answer ${i} after recovery: ${h.text}`);
  }
  assert.ok(times['postgres: back to /api/health ok'] < 5000, `health ok ${times['postgres: back to /api/health ok']} ms after postgres was back (${answers} asks)`);
  assert.match(supervisorLog(), new RegExp(`postgres \\(pid ${pg}\\) exited with code 0`));
});

test('an API process killed with a request in flight: 502 (Apache: 503) with a JSON body, and the process is back', async () => {
  const { token } = await newUserRoom('apiroom');
  const name = `slow${process.pid}`;
  const r0 = await req('POST', '/api/auth/register', { body: { username: name, password: 'a-password-1' } });
  assert.equal(r0.status, 201);
  let got;
  let killed;
  // a sign-in hashes the password (some 100 ms): the process running it is the one on the CPU
  for (let attempt = 0; attempt < 20 && !got; attempt++) {
    const apis = pidsOf('codecollab-api');
    const pending = req('POST', '/api/auth/login', { body: { username: name, password: 'a-password-1' } });
    let settled = false;
    pending.finally(() => { settled = true; });
    killed = 0;
    while (!settled && !killed) {
      for (const p of apis) {
        if (procState(p) === 'R') {
          process.kill(p, 'SIGSTOP'); // it holds the request: freeze it there, then kill it
          process.kill(p, 'SIGKILL');
          killed = p;
          break;
        }
      }
      await new Promise((r) => setImmediate(r));
    }
    const res = await pending;
    if (killed && res.status !== 200) got = res;
    else if (killed) await sleep(500); // it had answered already
  }
  assert.ok(got, 'a sign-in was caught in flight');
  const t0 = Date.now();
  assert.equal(got.status, APACHE ? 503 : 502, got.text);
  assert.match(got.headers.get('content-type'), /application\/json/);
  assert.equal(got.body.error, APACHE ? 'api_unavailable' : 'bad_gateway');
  assert.ok(got.body.message.length > 10);
  assert.equal(got.headers.get('retry-after'), '1');
  // the API's own errors stay what they were
  const own = await req('GET', '/api/auth/me', { token: 'not-a-token' });
  assert.equal(own.status, 401);
  await waitFor(() => pidsOf('codecollab-api').length === 2, { timeout: 20000, what: 'the API process to come back' });
  times['api: kill -9 mid-request to the process back'] = Date.now() - t0;
  const log = readFileSync(join(dir, APACHE ? 'log/api.log' : 'log/lighttpd.log'), 'utf8');
  assert.match(log, new RegExp(`codecollab-api \\(pid ${killed}\\) was killed by signal KILL after [0-9.]+ s; starting it again in [0-9.]+ s \\(restart 1\\)`));
  // every API process answers
  for (let i = 0; i < 6; i++) assert.equal((await req('POST', '/api/auth/login', { body: { username: name, password: 'a-password-1' } })).status, 200);
  assert.equal((await req('GET', `/api/auth/me`, { token })).status, 200);
});

// API_HANG_TIMEOUT_S (docs/OPERATIONS.md, "A request that never ends"): a rename held by a
// row lock (PostgreSQL's own bound, 30 s, is the longer) stands for a request with no bound.
test('an API request past API_HANG_TIMEOUT_S: its process ends itself with a line naming the request, the request gets 502 (Apache: 503) with a JSON body, the change is never made, and the process is back', async () => {
  const { token, room } = await newUserRoom('hangroom');
  const db = runEnv(dir).DATABASE_URL;
  const waiting = () => Number(execFileSync('psql', [db, '-XAtqc',
    `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%UPDATE rooms SET name%'`], { encoding: 'utf8' }).trim());
  const lock = await holdRoomRow(db, room);
  const apis = pidsOf('codecollab-api');
  let got;
  const t0 = Date.now();
  try {
    const pending = req('PATCH', `/api/rooms/${room}`, { token, body: { name: 'never' } });
    // the rename's statement waits on the lock
    await waitFor(() => waiting() === 1, { what: 'the rename waiting on the row lock', timeout: 8000 });
    got = await pending;
    times['api: a request held until API_HANG_TIMEOUT_S to its answer'] = Date.now() - t0;
    // PostgreSQL sees that the statement's client is gone and ends it
    await waitFor(() => waiting() === 0, { what: 'the statement of the ended process no longer waiting', timeout: 15000 });
  } finally {
    await lock.release();
  }
  const took = Date.now() - t0;
  assert.ok(took >= (HANG_S - 1) * 1000, `answered after ${took} ms: not before API_HANG_TIMEOUT_S`);
  assert.equal(got.status, APACHE ? 503 : 502, got.text);
  assert.match(got.headers.get('content-type'), /application\/json/);
  assert.equal(got.body.error, APACHE ? 'api_unavailable' : 'bad_gateway');
  const log = readFileSync(join(dir, APACHE ? 'log/api.log' : 'log/lighttpd.log'), 'utf8');
  const m = new RegExp(`codecollab-api\\[(\\d+)\\] error: a request ran past API_HANG_TIMEOUT_S \\(${HANG_S} s\\): ending this process, which is started again \\(PATCH /api/rooms/${room}\\)`).exec(log);
  assert.ok(m, `the API's line in the log:\n${log.slice(-3000)}`);
  assert.ok(apis.includes(Number(m[1])), `pid ${m[1]} was one of the API processes ${apis}`);
  await waitFor(() => new RegExp(`codecollab-api \\(pid ${m[1]}\\) was killed by signal ALRM after [0-9.]+ s; starting it again`).test(readFileSync(join(dir, APACHE ? 'log/api.log' : 'log/lighttpd.log'), 'utf8')),
    { what: "the keeper's line", timeout: 10000 });
  await waitFor(() => pidsOf('codecollab-api').length === 2, { timeout: 20000, what: 'the API process to come back' });
  // the change was not made when the lock went; a new one is, by either process
  const after = await req('GET', `/api/rooms/${room}`, { token });
  assert.equal(after.status, 200, after.text);
  assert.equal(after.body.room.name, 'hangroom');
  for (let i = 0; i < 4; i++) {
    const r = await req('PATCH', `/api/rooms/${room}`, { token, body: { name: `renamed ${i}` } });
    assert.equal(r.status, 200, r.text);
  }
});

test('a process that keeps dying: each restart waits longer (capped), visible in the log', async () => {
  const restarts = [];
  for (let i = 1; i <= 5; i++) {
    let pid;
    await waitFor(() => ([pid] = pidsOf('codecollab-snapshotter'), pid), { timeout: 30000, what: `snapshotter start ${i}` });
    process.kill(pid, 'SIGKILL');
    await waitFor(() => new RegExp(`snapshotter \\(pid ${pid}\\) was killed`).test(supervisorLog()), { what: 'the log line' });
    const m = supervisorLog().match(new RegExp(`snapshotter \\(pid ${pid}\\) was killed by signal KILL after [0-9.]+ s; restarting it in ([0-9.]+) s \\(restart (\\d+)\\)`));
    assert.ok(m, supervisorLog());
    restarts.push({ delay: Number(m[1]) * 1000, n: Number(m[2]) });
  }
  console.log(`  snapshotter killed 5 times: restart delays ${restarts.map((r) => `${r.delay} ms`).join(', ')}`);
  assert.deepEqual(restarts.map((r) => r.n), [1, 2, 3, 4, 5]);
  // restart n waits in [d/2, d], d = 200 ms * 2^(n-1) up to 3 s (RESTART_BACKOFF_*)
  restarts.forEach((r, i) => {
    const d = Math.min(200 * 2 ** i, 3000);
    assert.ok(r.delay >= d / 2 - 10 && r.delay <= d + 10, `restart ${r.n}: ${r.delay} ms outside [${d / 2}, ${d}]`);
  });
  await waitFor(() => pidsOf('codecollab-snapshotter').length === 1, { timeout: 30000, what: 'the snapshotter back' });
});

// A program that is there but no longer turns its loop (stopped here with SIGSTOP: the same to
// the supervisor as a deadlock or a call that never returns) is found by its missing signs of
// life (ALIVE_FILE, HANG_TIMEOUT_S), killed and restarted like one that died.
test('a broker that hangs (SIGSTOP): killed after HANG_TIMEOUT_S with its stream processes, restarted, and a resuming subscriber has every revision once', async () => {
  const { token, room } = await newUserRoom('hungbroker');
  const sub = subscribe(room, token);
  await waitFor(() => sub.open, { what: 'the subscription' });
  const [broker] = pidsOf('codecollab-broker').filter((p) => parentPid(p) === child.pid);
  assert.ok(broker, 'the broker runs under run.sh');
  const streams = pidsOf('codecollab-broker').filter((p) => parentPid(p) === broker);
  let rev = 0;
  const send = async (i) => {
    const r = await req('POST', `/api/rooms/${room}/operations`, { token, body: { revision: rev, ops: [`${i % 10}`] } });
    assert.equal(r.status, 200, r.text);
    rev = r.body.revision;
  };
  for (let i = 0; i < 5; i++) await send(i);
  process.kill(broker, 'SIGSTOP');
  const t0 = Date.now();
  // written while the broker hangs: the subscriber gets them once it is back
  for (let i = 5; i < 10; i++) await send(i);
  await waitFor(() => hungLine('broker', broker).test(supervisorLog()),
    { timeout: (HANG_S + 15) * 1000, what: 'the supervisor to find the broker hung' });
  const took = Date.now() - t0;
  times['broker: SIGSTOP to killed as hung'] = took;
  assert.ok(took >= (HANG_S - 1) * 1000, `killed ${took} ms after it stopped: not before HANG_TIMEOUT_S`);
  assert.ok(Number(supervisorLog().match(hungLine('broker', broker))[1]) >= HANG_S);
  await waitFor(() => new RegExp(`broker \\(pid ${broker}\\) was killed by signal KILL`).test(supervisorLog()), { what: 'its death noted' });
  // its stream processes went with it (its process group), not left holding the port
  await waitFor(() => [broker, ...streams].every((p) => !procState(p) || procState(p) === 'Z'),
    { timeout: 10000, what: 'the hung broker\'s processes gone' });
  await waitFor(() => healthy('/events/health'), { timeout: 30000, what: 'the broker to answer again' });
  for (let i = 10; i < 15; i++) await send(i);
  await waitFor(() => sub.events.filter((e) => e.type === 'operation').length >= 15,
    { timeout: 30000, what: 'every operation at the subscriber' });
  sub.close();
  const revs = sub.events.filter((e) => e.type === 'operation').map((e) => e.data.revision);
  assert.deepEqual(revs, Array.from({ length: 15 }, (_, i) => i + 1), 'each revision once, in order');
});

test('one stream process of the broker hangs: the broker kills it after HANG_TIMEOUT_S and ends, and the supervisor starts it again', async () => {
  await waitFor(() => healthy('/events/health'), { timeout: 30000, what: 'the broker up' });
  const [broker] = pidsOf('codecollab-broker').filter((p) => parentPid(p) === child.pid);
  const streams = pidsOf('codecollab-broker').filter((p) => parentPid(p) === broker);
  assert.ok(streams.length >= 2, `the broker runs stream processes (BROKER_PROCESSES): ${streams}`);
  process.kill(streams[0], 'SIGSTOP');
  const brokerLog = () => readFileSync(join(dir, 'log/broker.log'), 'utf8');
  const line = new RegExp(`process ${streams[0]} showed no sign of life for (\\d+) ms \\(HANG_TIMEOUT_S\\): killing it`);
  await waitFor(() => line.test(brokerLog()), { timeout: (HANG_S + 15) * 1000, what: 'the broker to find its process hung' });
  assert.ok(Number(brokerLog().match(line)[1]) >= HANG_S * 1000);
  // the parent ends with the others (as when one ends by itself), and is started again
  await waitFor(() => new RegExp(`broker \\(pid ${broker}\\) exited with code 1`).test(supervisorLog()),
    { timeout: 30000, what: 'the broker to end' });
  assert.doesNotMatch(supervisorLog(), hungLine('broker', broker), 'the parent itself kept showing life');
  await waitFor(() => healthy('/events/health'), { timeout: 30000, what: 'the broker to answer again' });
  assert.ok(streams.every((p) => !procState(p) || procState(p) === 'Z'), 'none of its old processes is left');
});

test('a worker that hangs (SIGSTOP): killed after HANG_TIMEOUT_S and restarted; a run asked for meanwhile finishes', async () => {
  const { token, room } = await newUserRoom('hungworker');
  const worker = mainPid('codecollab-worker');
  assert.ok(worker, 'the worker runs');
  process.kill(worker, 'SIGSTOP');
  const r = await req('POST', `/api/rooms/${room}/executions`, { token, body: { language: 'python', code: 'print("after the hang")\n' } });
  assert.equal(r.status, 202, r.text);
  await waitFor(() => hungLine('worker', worker).test(supervisorLog()),
    { timeout: (HANG_S + 15) * 1000, what: 'the supervisor to find the worker hung' });
  await waitFor(() => new RegExp(`worker \\(pid ${worker}\\) was killed by signal KILL`).test(supervisorLog()), { what: 'its death noted' });
  let j;
  await waitFor(async () => {
    j = (await req('GET', `/api/jobs/${r.body.job.id}`, { token })).body.job;
    return j.status === 'finished' || j.status === 'failed';
  }, { timeout: 60000, interval: 200, what: 'the run to end' });
  assert.equal(j.status, 'finished', JSON.stringify(j));
  assert.equal(j.result.stdout, 'after the hang\n');
  const again = mainPid('codecollab-worker');
  assert.ok(again && again !== worker, 'a new worker');
});

test('a snapshotter that hangs (SIGSTOP): killed after HANG_TIMEOUT_S and restarted', async () => {
  let snap;
  await waitFor(() => ([snap] = pidsOf('codecollab-snapshotter'), snap), { timeout: 30000, what: 'the snapshotter' });
  // NaN while the file is being rewritten (empty between a new start's truncation and its
  // first write)
  const count = () => { const t = readFileSync(join(dir, 'run/alive/snapshotter'), 'utf8').trim(); return t ? Number(t) : NaN; };
  process.kill(snap, 'SIGSTOP');
  await waitFor(() => procState(snap) === 'T', { what: 'the snapshotter stopped' });
  const hung = count(); // its last: a new one starts again from 1
  await waitFor(() => hungLine('snapshotter', snap).test(supervisorLog()),
    { timeout: (HANG_S + 15) * 1000, what: 'the supervisor to find the snapshotter hung' });
  await waitFor(() => pidsOf('codecollab-snapshotter').some((p) => p !== snap && procState(p) !== 'T'),
    { timeout: 30000, what: 'a new snapshotter' });
  // the new one shows life: its count starts again (the file still held the hung one's) and
  // goes up while it runs
  await waitFor(() => count() < hung, { timeout: 30000, what: 'the new snapshotter\'s first signs of life' });
  const c0 = count();
  await sleep(1500);
  assert.ok(count() > c0, `its count goes up while it runs (${c0}, then ${count()})`);
});

test('kill -9 of the web server: restarted, with API processes of its own, and every one answers', async () => {
  const web = APACHE ? 'apache2' : 'lighttpd';
  const before = pidsOf(web).filter((p) => !pidsOf(web).includes(parentPid(p)));
  assert.ok(before.length >= 1, `${web} runs`);
  const oldApis = pidsOf('codecollab-api');
  const oldWeb = pidsOf(web); // with Apache, its children too: they must not outlive it
  const t0 = Date.now();
  for (const p of before) process.kill(p, 'SIGKILL');
  await waitFor(() => healthy('/api/health'), { timeout: 30000, interval: 50, what: 'the API through a new web server' });
  times[`${web}: kill -9 to /api/health ok`] = Date.now() - t0;
  // (Apache's children of the killed one may answer until they are stopped: wait for the line)
  await waitFor(() => new RegExp(`${APACHE ? 'apache' : 'lighttpd'} \\(pid ${before[0]}\\) was killed by signal KILL`).test(supervisorLog()),
    { timeout: 20000, what: 'the supervisor\'s line' });
  if (!APACHE) {
    // the old keepers and their API processes went with the old lighttpd; new ones serve
    await waitFor(() => pidsOf('codecollab-api').filter((p) => !oldApis.includes(p)).length === 2 &&
      pidsOf('codecollab-api').length === 2, { timeout: 20000, what: 'two new API processes, no old one' });
  }
  await waitFor(() => !pidsOf(web).some((p) => oldWeb.includes(p)) && pidsOf(web).length >= 1,
    { timeout: 20000, what: `a new ${web} and no process of the old one` });
  await waitFor(() => healthy('/api/health'), { timeout: 30000, interval: 50, what: `the new ${web} to serve` });
  times[`${web}: kill -9 to a new one serving /api/health`] = Date.now() - t0;
  for (let i = 0; i < 8; i++) assert.equal((await req('GET', '/api/health')).status, 200);
});

test('lighttpd killed outright while the supervisor is held: its keepers and API processes end at once on their own', { skip: APACHE }, async () => {
  const [lighttpd] = pidsOf('lighttpd').filter((p) => !pidsOf('lighttpd').includes(parentPid(p)));
  assert.ok(lighttpd, 'lighttpd runs');
  const keepers = stackPids().filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'latin1').includes('keep-fcgi.sh'); } catch { return false; }
  });
  const apis = pidsOf('codecollab-api');
  assert.equal(keepers.length, 2, 'one keeper per API process');
  assert.equal(apis.length, 2);
  // held, the supervisor cannot stop what the old lighttpd left before starting a new one
  // (stop_leftovers): whatever ends now ends by the keepers' own doing
  process.kill(child.pid, 'SIGSTOP');
  try {
    const t0 = Date.now();
    process.kill(lighttpd, 'SIGKILL');
    await waitFor(() => [...keepers, ...apis].every((p) => ['', 'Z'].includes(procState(p))),
      { timeout: 5000, interval: 20, what: 'the keepers and API processes of the killed lighttpd to end' });
    times['lighttpd: kill -9 to its keepers and API processes gone'] = Date.now() - t0;
  } finally {
    process.kill(child.pid, 'SIGCONT');
  }
  await waitFor(() => healthy('/api/health'), { timeout: 30000, interval: 50, what: 'the API through a new lighttpd' });
});

test('SIGTERM stops the supervised stack: exit 0, nothing survives', async () => {
  assert.ok(await healthy('/api/health'));
  child.kill('SIGTERM');
  const code = await new Promise((r) => child.on('exit', (c, s) => r(c ?? s)));
  assert.equal(code, 0, out);
  await sleep(300);
  assert.deepEqual(stackPids(), [], 'no process of the stack is left');
  assert.ok(!existsSync(join(dir, 'pg/postmaster.pid')), 'postgres shut down cleanly');
});
