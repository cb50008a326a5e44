// scripts/run.sh itself (what `make run` runs): a second start reuses the data, a start on a
// var/ a running stack holds is refused, the
// DATABASE_URL / REDIS_URL mode uses existing servers, a taken port is a clear error, and
// SIGTERM leaves nothing running — also when a supervisor signals make run's whole process
// group several times, or when make itself dies first. Start-up times are printed, not asserted.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, statSync, chownSync, readdirSync, readFileSync, readlinkSync, realpathSync, chmodSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ROOT, freePort, sleep, waitFor, pauseProcess, tempDir, stop as stopProcess } from '../lib/procs.mjs';
import { startPrimary, pgUrl } from '../lib/pg.mjs';
import { portFree } from '../lib/ports.mjs';
import { parentPid, procStat } from '../lib/proctree.mjs';
import { BASE, call, newUser, createRoom, psql } from '../lib/api.mjs';

const dirs = [];
const running = new Set();
// A failed assertion must not leave a stack behind: stop what is still running first.
after(async () => {
  for (const c of running) await stop(c);
  // what a failed stop left behind must not hold ports for the rest of the run
  for (const d of dirs) for (const pid of stackPids(d)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  // the directories themselves (logs, data) go at exit, or stay when the file failed
  // (tests/lib/procs.mjs: tempDir)
});

function tmpVar() {
  const d = tempDir('codecollab-runtest.');
  chmodSync(d, 0o755); // the postgres user must be able to enter it
  dirs.push(d);
  return d;
}

// Live pids whose environment holds CC_VAR=dir (everything the stack started), or whose
// working directory is in dir: redis-server overwrites its environment with its process
// title, but it works in var/redis.
function stackPids(dir) {
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
function startStack(env, script = 'scripts/run.sh') {
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

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.on('exit', (code, sig) => resolve(code ?? sig));
    child.kill('SIGTERM');
  });
}

async function ports() {
  return { PORT: String(await freePort()), BROKER_PORT: String(await freePort()),
    PG_PORT: String(await freePort()), REDIS_PORT: String(await freePort()) };
}

const json = async (url, opts) => {
  const r = await fetch(url, opts);
  return { status: r.status, body: await r.json().catch(() => null) };
};

test('a fresh start, then a second start on the same var/ reuses the data (Redis loading a sizeable data set first); SIGTERM leaves nothing', async () => {
  const dir = tmpVar();
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '' };
  const first = await startStack(env);
  assert.ok(first.ready, first.output());
  // the key upgrade ran in full on the new Redis and marked its layout current
  assert.match(first.output(), /^redis: the key layout is current: cc:layout set to \d+$/m);
  // postgres can enter var/ here: its data and socket directories are var/'s own
  assert.ok(lstatSync(join(dir, 'pg')).isDirectory() && lstatSync(join(dir, 'run/pg')).isDirectory(), 'no links');
  assert.doesNotMatch(first.output(), /PostgreSQL's (data|socket directory) is in/);
  const base = `http://127.0.0.1:${p.PORT}`;
  const reg = await json(`${base}/api/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'persistent', password: 'a-password' }),
  });
  assert.equal(reg.status, 201);
  const secret = readFileSync(join(dir, 'jwt_secret'), 'utf8');
  assert.ok(secret.trim().length >= 32, 'a JWT secret was generated into var/');
  // Enough data in Redis that the next start finds it still loading its append-only file for
  // a while (a second or more here): Redis listens, and answers -LOADING to everything,
  // before it has read its data. The start must wait for it rather than go on and fail.
  const FILL = 300000;
  let resp = '';
  for (let i = 0; i < FILL; i++) {
    const k = `filler:${i}`;
    resp += `*3\r\n$3\r\nSET\r\n$${k.length}\r\n${k}\r\n$${String(i).length}\r\n${i}\r\n`;
  }
  const piped = execFileSync('redis-cli', ['-p', p.REDIS_PORT, '--pipe'], { input: resp, encoding: 'utf8' });
  assert.match(piped, new RegExp(`errors: 0, replies: ${FILL}`));
  const rcli = (...args) => execFileSync('redis-cli', ['-p', p.REDIS_PORT, ...args], { encoding: 'utf8' }).trim();
  assert.equal(await stop(first.child), 0);
  await sleep(200);
  assert.deepEqual(stackPids(dir), [], 'nothing of the stack survives SIGTERM');

  const second = await startStack(env);
  assert.ok(second.ready, second.output());
  console.log(`# run.sh ready: first start ${first.ms} ms (initdb included), second start ${second.ms} ms (${FILL} keys in Redis)`);
  assert.ok(Number(rcli('DBSIZE')) >= FILL, 'the keys written before the stop are all there');
  assert.equal(rcli('GET', `filler:${FILL - 1}`), String(FILL - 1));
  // the mark came back with the data, so this start skipped the scan of those keys
  assert.match(second.output(), /^redis: the key layout is current \(cc:layout is \d+\): no upgrade/m);
  assert.doesNotMatch(second.output(), /cc:layout set to/);
  const login = await json(`${base}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'persistent', password: 'a-password' }),
  });
  assert.equal(login.status, 200, 'the account made in the first run is still there');
  // the old token is still valid: the secret in var/ was reused, not regenerated
  const me = await json(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${reg.body.token}` } });
  assert.equal(me.status, 200);
  assert.equal(readFileSync(join(dir, 'jwt_secret'), 'utf8'), secret);
  assert.equal(await stop(second.child), 0);
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
});

// An installation from before the programs had a role of their own: the database and its
// tables belong to postgres (and here the role was even given superuser, more attributes and
// a membership). The next start hands them to the role codecollab, strips it back to a plain
// login, and the programs, connecting as it, keep the accounts and can write. And what the
// role itself could lay in its own database for the superuser the start connects as there
// (a setting that puts public first in search_path, an operator <> and a format() that match
// better than pg_catalog's) never runs as that superuser.
test('a start hands the database of an older installation to the ordinary role the programs use, and runs none of its objects as postgres', async () => {
  const dir = tmpVar();
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '' };
  const base = `http://127.0.0.1:${p.PORT}`;
  const body = JSON.stringify({ username: 'oldinstall', password: 'a-password' });
  const marker = join(tmpdir(), `codecollab-trap-${process.pid}-${Date.now()}`);
  try {
    const first = await startStack(env);
    assert.ok(first.ready, first.output());
    assert.equal((await json(`${base}/api/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status, 201);
    const app = `postgresql:///codecollab?host=${dir}/run/pg&port=${p.PG_PORT}&user=codecollab`;
    assert.match(readFileSync(join(dir, 'run/env'), 'utf8'), /^DATABASE_URL=.*user=codecollab$/m);
    // the superuser, in the database postgres (nothing of codecollab's there) or in codecollab
    const adminDb = `postgresql:///postgres?host=${dir}/run/pg&port=${p.PG_PORT}&user=postgres`;
    const admin = app.replace('user=codecollab', 'user=postgres');
    // (no <> and no format() in these queries: the traps below would catch this file's own)
    const owners = "SELECT string_agg(DISTINCT tableowner::text, ',') FROM pg_catalog.pg_tables WHERE schemaname = 'public'";
    assert.equal(psql(admin, owners), 'codecollab');

    // what the role can do in its own database, as an injection would
    const trap = `EXECUTE 'COPY (SELECT 1) TO PROGRAM ' || pg_catalog.quote_literal('touch ${marker}')`;
    execFileSync('psql', [app, '-Xq', '-v', 'ON_ERROR_STOP=1'], { encoding: 'utf8', timeout: 20000, input: `
      ALTER DATABASE codecollab SET search_path = public, pg_catalog;
      CREATE FUNCTION public.trap_ne(name, name) RETURNS boolean LANGUAGE plpgsql AS $f$
        BEGIN ${trap}; RETURN $1::text OPERATOR(pg_catalog.<>) $2::text; END $f$;
      CREATE OPERATOR public.<> (LEFTARG = name, RIGHTARG = name, FUNCTION = public.trap_ne);
      CREATE FUNCTION public.format(text, name) RETURNS text LANGUAGE plpgsql AS $f$
        BEGIN ${trap}; RETURN pg_catalog.format($1, $2::text); END $f$;
    ` });
    // as an older start left it, or someone since
    const tables = psql(admin, "SELECT string_agg(pg_catalog.quote_ident(tablename::text), ',') FROM pg_catalog.pg_tables WHERE schemaname = 'public'");
    for (const t of tables.split(',')) psql(admin, `ALTER TABLE ${t} OWNER TO postgres`);
    psql(adminDb, 'ALTER DATABASE codecollab OWNER TO postgres');
    psql(adminDb, 'ALTER ROLE codecollab SUPERUSER CREATEDB CREATEROLE');
    psql(adminDb, 'GRANT pg_execute_server_program, pg_read_server_files TO codecollab');
    psql(adminDb, "ALTER ROLE codecollab SET statement_timeout = '1ms'");
    assert.equal(psql(admin, owners), 'postgres');
    assert.equal(existsSync(marker), false, 'the setup itself sprang no trap');
    assert.equal(await stop(first.child), 0);
    await sleep(200);

    const second = await startStack(env);
    assert.ok(second.ready, second.output());
    assert.equal(existsSync(marker), false, 'nothing of the role ran as the superuser at the start');
    assert.equal(psql(adminDb, "SELECT count(*) FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'codecollab'"), '0',
      'the database\'s settings are gone');
    assert.equal(psql(adminDb, "SELECT count(*) FROM pg_catalog.pg_db_role_setting WHERE setrole = 'codecollab'::regrole"), '0', 'and the role\'s');
    assert.equal(psql(adminDb, "SELECT count(*) FROM pg_catalog.pg_auth_members WHERE member = 'codecollab'::regrole"), '0', 'no memberships are left');
    assert.equal(psql(adminDb, "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = 'codecollab'"), 'f|f|f');
    assert.equal(psql(adminDb, "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = 'codecollab'"), 'codecollab');
    assert.equal(psql(admin, owners), 'codecollab');
    assert.equal(psql(admin, "SELECT count(*) FROM pg_catalog.pg_sequences WHERE NOT sequenceowner = 'codecollab'"), '0', 'the sequences went with their tables');
    const login = await json(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(login.status, 200, 'the account is still there');
    const reg = await json(`${base}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'afterupgrade', password: 'a-password' }),
    });
    assert.equal(reg.status, 201, 'a new account takes the next id from the sequence');
    const room = await json(`${base}/api/rooms`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${reg.body.token}` },
      body: JSON.stringify({ name: 'after', language: 'python' }),
    });
    assert.equal(room.status, 201, JSON.stringify(room.body));
    assert.equal(await stop(second.child), 0);
    await sleep(200);
    assert.deepEqual(stackPids(dir), []);
  } finally {
    rmSync(marker, { force: true });
  }
});

// A checkout where the postgres user cannot enter var/, as one under /root (closed to other
// users): PostgreSQL's data and socket directories are private directories under /var/tmp,
// linked from var/pg and var/run/pg, and the programs run as postgres are given the paths
// the links lead to (scripts/services.sh: pg_data_dir). The next start reuses both.
test('a var/ the postgres user cannot enter: the data and the socket live under /var/tmp, linked from var/; a second start reuses them', async () => {
  const closed = tmpVar();
  chmodSync(closed, 0o700); // as /root
  const dir = join(closed, 'var');
  const alt = `/var/tmp/codecollab-pg-${createHash('sha1').update(dir).digest('hex').slice(0, 12)}`;
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '' };
  const base = `http://127.0.0.1:${p.PORT}`;
  const body = JSON.stringify({ username: 'closedvar', password: 'a-password' });
  // postgres, working in /var/tmp with its environment reset, is not among stackPids(dir)
  const postgresGone = () => !existsSync(join(alt, 'postmaster.pid'));
  try {
    const first = await startStack(env);
    assert.ok(first.ready, first.output());
    assert.match(first.output(), new RegExp(`PostgreSQL's data is in ${alt} \\(linked from ${dir}/pg\\)`));
    assert.equal(readlinkSync(join(dir, 'pg')), alt);
    assert.equal(readlinkSync(join(dir, 'run/pg')), `${alt}-socket`);
    const reg = await json(`${base}/api/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    assert.equal(await stop(first.child), 0);
    await waitFor(postgresGone, { timeout: 20000, what: 'PostgreSQL stopped' });
    assert.deepEqual(stackPids(dir), []);

    const second = await startStack(env);
    assert.ok(second.ready, second.output());
    assert.doesNotMatch(second.output(), /PostgreSQL's data is in/, 'the links are reused');
    const login = await json(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(login.status, 200, 'the account made in the first run is still there');
    assert.equal(await stop(second.child), 0);
    await waitFor(postgresGone, { timeout: 20000, what: 'PostgreSQL stopped' });
    assert.deepEqual(stackPids(dir), []);
  } finally {
    // a failed assertion: the stack stopped (postgres, working in /var/tmp with its
    // environment reset, is not among stackPids) before its directories go
    for (const c of [...running]) await stop(c);
    await waitFor(postgresGone, { timeout: 30000, what: 'PostgreSQL stopped' }).catch(() => {});
    for (const d of [alt, `${alt}-socket`]) rmSync(d, { recursive: true, force: true });
  }
});

// ---- one stack per var/ (scripts/services.sh: svc_lock) -----------------------------------

// s as a regular expression matching itself
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// The pids that have path open, on any descriptor (/proc names the file by its real path).
function openers(path) {
  const real = realpathSync(path);
  const pids = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let fds;
    try { fds = readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${p}/fd/${fd}`) === real) { pids.push(Number(p)); break; }
      } catch { /* closed meanwhile */ }
    }
  }
  return pids;
}

// Every regular file under dir, by its path in it, with its bytes.
function filesUnder(dir, into = new Map(), prefix = '') {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = join(prefix, e.name);
    if (e.isDirectory()) filesUnder(join(dir, e.name), into, rel);
    else if (e.isFile()) into.set(rel, readFileSync(join(dir, e.name)));
  }
  return into;
}

// A second start on a var/ that a running stack uses would rewrite the files in var/run/ (the
// .conf files lighttpd includes, env, sessions) before failing on a port, and its stop would
// act on the running stack's processes: the start takes a lock on var/stack.lock first and
// is refused at once. Every port of the second start is free, so only the lock can stop it.
test('a second make run (or make cluster) on the var/ of a running stack stops at once, naming it, and changes nothing; the lock is not in the services; after the stop the var/ starts again', async () => {
  const dir = tmpVar();
  const p = await ports();
  const env = { ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '', JWT_SECRET_FILE: '' };
  const lock = join(dir, 'stack.lock');
  const first = await startStack(env);
  assert.ok(first.ready, first.output());
  const base = `http://127.0.0.1:${p.PORT}`;
  try {
    // the lock's descriptor is the script's and its watchdog's (which keeps the directory
    // taken until it has stopped the services of a script killed outright), no service's.
    // Looked at twice: a child the script has just forked holds it until its exec.
    const watchdog = stackPids(dir).filter((pid) => cmdline(pid).includes('scripts/watchdog.sh'));
    assert.equal(watchdog.length, 1, describe(stackPids(dir)));
    const once = openers(lock);
    await sleep(300);
    const holders = openers(lock).filter((pid) => once.includes(pid)).sort((a, b) => a - b);
    assert.deepEqual(holders, [first.child.pid, watchdog[0]].sort((a, b) => a - b),
      `the processes with ${lock} open:\n${describe(holders)}`);
    const services = stackPids(dir).filter((pid) => !holders.includes(pid));
    assert.ok(services.length >= 5, `the services run:\n${describe(services)}`);
    assert.equal(readFileSync(lock, 'utf8'), `${first.child.pid} make run\n`);
    assert.equal(statSync(lock).mode & 0o777, 0o600, 'the lock file is the starting user\'s alone');

    const before = filesUnder(join(dir, 'run'));
    assert.ok(['env', 'tls.conf', 'csp.conf', 'sessions'].every((f) => before.has(f)), [...before.keys()].join(' '));
    const other = await ports();
    const refused = `error: ${escapeRe(dir)} is in use by another stack \\(make run, pid ${first.child.pid}\\): stop it first, or set CC_VAR to another directory`;
    for (const script of ['scripts/run.sh', 'scripts/cluster.sh']) {
      const second = await startStack({ ...env, ...other }, script);
      assert.equal(second.ready, false, second.output());
      assert.equal(second.code, 1, second.output());
      assert.ok(second.ms < 5000, `${script} was refused at once (${second.ms} ms)`);
      // 'exit' may come before the last of the output has been read
      await waitFor(() => second.output().includes('error:'), { timeout: 5000, what: `${script}'s error line` });
      assert.match(second.output(), new RegExp(`^codecollab(-cluster)?: ${refused}\n$`));
      console.log(`# ${script} refused in ${second.ms} ms`);
    }
    const after = filesUnder(join(dir, 'run'));
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'no file in run/ made or removed');
    // run/alive/: the running stack's programs rewrite their signs of life all the time
    // (scripts/services.sh, svc_hang_check); the refused start touches none of them
    for (const [f, bytes] of before) {
      if (!f.startsWith('alive/')) assert.ok(after.get(f).equals(bytes), `run/${f} is unchanged`);
    }
    assert.ok(['alive/broker', 'alive/worker', 'alive/snapshotter'].every((f) => before.has(f)), [...before.keys()].join(' '));
    assert.equal(readFileSync(lock, 'utf8'), `${first.child.pid} make run\n`);
    assert.deepEqual((await json(`${base}/api/health`)).body, { status: 'ok', postgres: 'ok', redis: 'ok' });
    for (const name of ['PORT', 'BROKER_PORT', 'REDIS_PORT']) assert.ok(await portFree(Number(other[name])), name);
  } finally {
    assert.equal(await stop(first.child), 0);
  }
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
  assert.deepEqual(openers(lock), [], 'the lock went with the stack');

  const again = await startStack(env);
  assert.ok(again.ready, again.output());
  assert.equal((await json(`${base}/api/health`)).status, 200);
  assert.equal(await stop(again.child), 0);
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
});

test('a port already taken stops the start with a message naming the variable', async () => {
  const dir = tmpVar();
  const p = await ports();
  const taken = new URL(BASE).port; // the test stack's lighttpd holds it
  const r = await startStack({ ...p, PORT: taken, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '' });
  assert.equal(r.ready, false);
  assert.notEqual(r.code, 0);
  assert.match(r.output(), new RegExp(`port ${taken} \\(HTTP\\) is already in use.*PORT`));
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
});

test('DATABASE_URL and REDIS_URL point a second stack at existing servers', async () => {
  const dir = tmpVar();
  const p = await ports();
  // the test stack's own PostgreSQL and Redis, shared by a second lighttpd/API/broker/worker
  const r = await startStack({ ...p, CC_VAR: dir, DATABASE_URL: process.env.DATABASE_URL,
    REDIS_URL: process.env.REDIS_URL, JWT_SECRET_FILE: process.env.JWT_SECRET_FILE });
  assert.ok(r.ready, r.output());
  const base = `http://127.0.0.1:${p.PORT}`;
  assert.deepEqual((await json(`${base}/api/health`)).body, { status: 'ok', postgres: 'ok', redis: 'ok' });
  // an account made through the first stack signs in through the second one
  const name = 'shared' + Date.now();
  const reg = await json(`${BASE}/api/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: name, password: 'a-password' }),
  });
  assert.equal(reg.status, 201);
  const me = await json(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${reg.body.token}` } });
  assert.equal(me.status, 200);
  assert.equal(me.body.user.username, name);
  assert.ok(!readdirSync(dir).includes('pg'), 'no PostgreSQL of its own');
  assert.ok(!readdirSync(dir).includes('redis') || readdirSync(join(dir, 'redis')).length === 0, 'no Redis data of its own');
  assert.equal(await stop(r.child), 0);
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
  // the shared servers are still up
  assert.equal((await json(`${BASE}/api/health`)).status, 200);
});

// ---- an idle stack is idle ---------------------------------------------------------------

// The machine's count of processes created since boot (/proc/stat), for the record only:
// other sessions share the machine.
const processesCreated = () => Number(/^processes (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'))[1]);

test('an idle stack starts no process but the supervisor\'s tick, about one a second', async () => {
  const dir = tmpVar();
  const p = await ports();
  // LOG_CHECK_S: no log check (scripts/cap-logs.sh) falls in the window
  const s = await startStack({ ...p, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '', JWT_SECRET: '',
    JWT_SECRET_FILE: '', LOG_CHECK_S: '3600' });
  assert.ok(s.ready, s.output());
  try {
    const supervisor = s.child.pid; // run.sh
    // every process seen with CC_VAR=dir in its environment (a fork has its parent's):
    // pid -> { comm, ppid }; the pids of others are remembered so each is read once. A new
    // one is looked at again while it lives: caught between its fork and its exec, the
    // supervisor's `sleep` is still called bash.
    const ours = new Map();
    const others = new Set();
    let old = new Set();
    const stat = (d) => {
      const st = procStat(d);
      if (!st) throw new Error(`pid ${d} is gone`);
      return { comm: st.comm, ppid: st.ppid };
    };
    const look = () => {
      for (const d of readdirSync('/proc')) {
        if (!/^\d+$/.test(d) || others.has(d)) continue;
        try {
          if (ours.has(d)) {
            if (!old.has(d)) ours.set(d, stat(d));
            continue;
          }
          if (!readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(`CC_VAR=${dir}`)) {
            others.add(d);
            continue;
          }
          ours.set(d, stat(d));
        } catch { /* gone already */ }
      }
    };
    look();
    old = new Set(ours.keys());
    const machine0 = processesCreated();
    const t0 = Date.now();
    while (Date.now() - t0 < 3000) {
      look();
      await sleep(5);
    }
    const machine = processesCreated() - machine0;
    // a process forked in the window's last moments may not have run its program yet (the
    // supervisor's `sleep` is then still called bash): look at the new ones once more, after
    // their exec (a tick's `sleep` lives about a second)
    await sleep(100);
    for (const pid of ours.keys()) {
      if (old.has(pid)) continue;
      try { ours.set(pid, stat(pid)); } catch { /* gone: as it was last seen */ }
    }
    const fresh = [...ours].filter(([pid]) => !old.has(pid));
    // the `sleep` that the supervisor's `wait -n` waits for beside the services, once a tick
    const ticks = fresh.filter(([, d]) => d.ppid === supervisor && d.comm === 'sleep');
    const rest = fresh.filter(([, d]) => !(d.ppid === supervisor && d.comm === 'sleep'));
    console.log(`# idle stack over ${Date.now() - t0} ms: ${ticks.length} supervisor ticks, ` +
      `${rest.length} other new processes of the stack; the machine created ${machine} in all`);
    assert.deepEqual(rest.map(([pid, d]) => `${pid} ${d.comm} (parent ${d.ppid} ${ours.get(String(d.ppid))?.comm ?? ''})`),
      [], 'no process of the stack but the supervisor\'s tick starts one');
    assert.ok(ticks.length >= 1 && ticks.length <= 6, `${ticks.length} ticks in 3 s`);
  } finally {
    assert.equal(await stop(s.child), 0);
  }
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
});

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

const cmdline = (pid) => {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' '); } catch { return ''; }
};
const describe = (pids) => pids.map((p) => `${p} ${cmdline(p)}`).join('\n');

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
