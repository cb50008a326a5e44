// scripts/run.sh itself (what `make run` runs): a second start reuses the data, a start on a
// var/ a running stack holds is refused, the DATABASE_URL / REDIS_URL mode uses existing
// servers, a taken port is a clear error, and an idle stack starts nothing but its tick.
// Stopping it is tests/stack/run-stop.test.mjs. Start-up times are printed, not asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, statSync, readdirSync, readFileSync, readlinkSync, realpathSync, chmodSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { freePort, sleep, waitFor } from '../lib/procs.mjs';
import { portFree } from '../lib/ports.mjs';
import { assertSecurityHeaders } from '../lib/policy.mjs';
import { procStat } from '../lib/proctree.mjs';
import { BASE, psql } from '../lib/api.mjs';
import { running, tmpVar, stackPids, startStack, stop, ports, json, cmdline, describe, escapeRe } from '../lib/runstack.mjs';

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

// The broker listens on BROKER_HOST (CC_BIND with direct streams) and the metrics listeners on
// METRICS_HOST: their ports are looked at there, not on 127.0.0.1, where nothing holds them.
// (Before, both were probed on 127.0.0.1: these starts went on until the broker or the
// metrics listener could not listen, and a port taken on 127.0.0.1 alone refused a start that
// would have worked.)
test('a broker or metrics port taken on the address it is to listen on stops the start, naming the variable', async () => {
  const host = '127.0.0.2';
  const holder = createServer();
  await new Promise((resolve, reject) => { holder.once('error', reject); holder.listen(0, host, resolve); });
  const taken = String(holder.address().port);
  try {
    assert.equal(await portFree(Number(taken)), true, `${taken} is free on 127.0.0.1`);
    for (const [env, name, what] of [
      [{ CC_BIND: host, BROKER_PORT: taken }, 'BROKER_PORT', 'broker'],
      [{ METRICS_HOST: host, BROKER_METRICS_PORT: taken }, 'BROKER_METRICS_PORT', 'metrics'],
    ]) {
      const dir = tmpVar();
      const r = await startStack({ ...(await ports()), ...env, CC_VAR: dir, DATABASE_URL: '', REDIS_URL: '' });
      assert.equal(r.ready, false, r.output());
      assert.notEqual(r.code, 0);
      assert.match(r.output(), new RegExp(`port ${taken} \\(${what}\\) is already in use.*${name}`), r.output());
      await sleep(200);
      assert.deepEqual(stackPids(dir), [], `${name}: nothing was started`);
    }
  } finally {
    holder.close();
  }
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

// Two settings no other stack of the tests uses, each of which stopped lighttpd at start:
// an IPv6 CC_BIND (lighttpd takes an IPv6 address only in brackets: run/bind.conf) and a
// STREAM_ORIGIN of one's own (run/csp.conf set the HTTPS headers a second time). Plus the
// start's own checks and run/env, which reached the front door at 127.0.0.1 only.
test('CC_BIND=::1 with a STREAM_ORIGIN of one\'s own and HTTPS: the stack starts, listens on ::1 alone, and its pages may connect to that origin', async () => {
  const dir = tmpVar();
  const p = await ports();
  const tlsPort = String(await freePort());
  const named = 'https://streams.example.com:8443';
  const r = await startStack({ ...p, CC_VAR: dir, CC_BIND: '::1', STREAM_ORIGIN: named, TLS: 'self-signed', TLS_PORT: tlsPort,
    DATABASE_URL: process.env.DATABASE_URL, REDIS_URL: process.env.REDIS_URL, JWT_SECRET_FILE: process.env.JWT_SECRET_FILE });
  let code;
  try {
    assert.ok(r.ready, r.output());
    const base = `http://[::1]:${p.PORT}`;
    // what tools on this machine read to reach it (a shell's view of run/env)
    const envUrl = execFileSync('bash', ['-c', '. "$1"; printf %s "$BASE_URL"', 'bash', join(dir, 'run', 'env')]).toString();
    assert.equal(envUrl, base);
    assert.deepEqual((await json(`${base}/api/health`)).body, { status: 'ok', postgres: 'ok', redis: 'ok' });
    await assert.rejects(fetch(`http://127.0.0.1:${p.PORT}/api/health`), 'nothing listens on 127.0.0.1');
    assert.deepEqual((await json(`${base}/api/streams`)).body, { origin: named });
    const widened = /connect-src 'self' https:\/\/streams\.example\.com:8443 wss:\/\/streams\.example\.com:8443;/;
    const page = await fetch(`${base}/`);
    await page.arrayBuffer();
    assert.match(page.headers.get('content-security-policy'), widened);
    assertSecurityHeaders(page.headers, 'GET / over HTTP', { connect: 'https://streams.example.com:8443 wss://streams.example.com:8443' });
    // over HTTPS, on ::1 too: the same policy, and HSTS
    const head = await new Promise((resolve, reject) => {
      const req = httpsGet({ host: '::1', port: Number(tlsPort), path: '/', rejectUnauthorized: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      });
      req.on('error', reject);
    });
    assert.match(head['content-security-policy'], widened);
    assertSecurityHeaders(head, 'GET / over HTTPS', { https: true, connect: 'https://streams.example.com:8443 wss://streams.example.com:8443' });
  } finally {
    code = await stop(r.child);
  }
  assert.equal(code, 0);
  await sleep(200);
  assert.deepEqual(stackPids(dir), []);
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
