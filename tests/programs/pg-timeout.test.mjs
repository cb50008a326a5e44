// PG_QUERY_TIMEOUT_MS (lib/store.h, store_cfg_load): a statement that waits too long is ended
// by the server (statement_timeout) and the request answered 503 in about that time; a server
// that does not answer at all (every PostgreSQL process stopped: the kernel still takes what
// is sent) is given up a second later, the connection dropped, instead of holding the process
// for as long as the server is silent. Real parts: a PostgreSQL with the schema, a
// redis-server, the API run as CGI, and codecollab-snapshotter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, stop, waitFor, tempDir, pauseProcess, sleep } from '../lib/procs.mjs';
import { psql, pgUrl, holdRoomRow } from '../lib/pg.mjs';
import { snapshotterGround, clientOf, SNAP_BIN } from '../lib/snapshotter-ground.mjs';
import { procStat } from '../lib/proctree.mjs';

const ground = await snapshotterGround('pg-timeout-test-secret-0123456789abcdef');
const { cgi, pg, base } = ground;
const { cgiAsync } = await import('../lib/api.mjs');
const { api, roomOf, commit, savedRevision } = clientOf(ground, 'pgwait');

// Stops the postmaster, then every process it started (its backends, the background
// workers); the pids stopped. A backend ending by itself meanwhile (the last request's) is
// gone or a zombie, not stopped, and is passed over. paused gets each as it stops.
async function pausePg(paused) {
  await pauseProcess(pg.pid);
  paused.push(pg.pid);
  const kids = readFileSync(`/proc/${pg.pid}/task/${pg.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  for (const p of kids) {
    try {
      await pauseProcess(p);
      paused.push(p);
    } catch (e) {
      const state = procStat(p)?.state;
      if (state && state !== 'Z') throw e;
    }
  }
}

test('the API: a change waiting on a row lock past PG_QUERY_TIMEOUT_MS is answered 503 in about that time, and works once the lock is gone', async () => {
  const env = { PG_QUERY_TIMEOUT_MS: '1000' };
  const room = roomOf(env);
  const lock = await holdRoomRow(pgUrl(pg), room.id);
  try {
    const t0 = Date.now();
    const r = api(env, { method: 'PATCH', uri: `/api/rooms/${room.id}`, token: room.token, body: { name: 'renamed' } });
    const took = Date.now() - t0;
    assert.equal(r.status, 503, r.body);
    assert.equal(r.json.error, 'database_unavailable', r.body);
    assert.ok(took >= 900, `answered ${took} ms after the request: not before the bound`);
    assert.ok(took < 15000, `answered ${took} ms after the request`);
    // the server ended it (statement_timeout), or, on a slow machine, the client gave up a
    // second later
    assert.match(r.stderr, /a statement ran past its statement_timeout and was ended \(PG_QUERY_TIMEOUT_MS, 1000 ms, unless DATABASE_URL's options or PGOPTIONS set another\)|postgres: no answer in 2000 ms/);
  } finally {
    await lock.release();
  }
  const ok = api(env, { method: 'PATCH', uri: `/api/rooms/${room.id}`, token: room.token, body: { name: 'renamed' } });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(psql(pg, `SELECT name FROM rooms WHERE id = '${room.id}'`), 'renamed');
  // a setting that is no number stops the program, naming it
  const bad = cgi({ method: 'GET', uri: '/api/health', env: { ...base, PG_QUERY_TIMEOUT_MS: 'soon' } });
  assert.notEqual(bad.status, 200, bad.body);
  assert.match(bad.stderr, /PG_QUERY_TIMEOUT_MS must be an integer from 100 to 86400000 \(got "soon"\)/);
});

// An operator's own connection options (DATABASE_URL's options=, or PGOPTIONS) are added to
// the bound and the check (lib/store.c, pg_options), not put in their place: seen on the
// server (the backend's application_name) while the bound still ends the wait; a
// statement_timeout the operator names is theirs.
test('the API: options of the operator\'s own (options= in DATABASE_URL, PGOPTIONS) reach the server beside the bound, and a statement_timeout they name wins', async () => {
  const waitingAs = (name) => Number(psql(pg, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = '${name}'`));
  const withUrl = `${pgUrl(pg)}&options=${encodeURIComponent('-c application_name=cc_url_opts')}`;
  const cases = [
    { name: 'cc_url_opts', env: { PG_QUERY_TIMEOUT_MS: '2000', DATABASE_URL: withUrl }, min: 1900 },
    { name: 'cc_env_opts', env: { PG_QUERY_TIMEOUT_MS: '2000', PGOPTIONS: '-c application_name=cc_env_opts' }, min: 1900 },
    // their statement_timeout (300 ms) comes after ours (5000) and wins
    { name: 'cc_own_bound', env: { PG_QUERY_TIMEOUT_MS: '5000', PGOPTIONS: '-c application_name=cc_own_bound -c statement_timeout=300' }, min: 250, max: 4000 },
  ];
  for (const c of cases) {
    const room = roomOf({});
    const lock = await holdRoomRow(pgUrl(pg), room.id);
    let r;
    const t0 = Date.now();
    try {
      let done = false, seen = false;
      const pending = cgiAsync({ method: 'PATCH', uri: `/api/rooms/${room.id}`, token: room.token, body: { name: 'never' }, env: { ...base, ...c.env } }, { timeoutMs: 15000 })
        .finally(() => { done = true; });
      // the rename's statement seen waiting on the lock under the operator's name, while
      // the request lasts (it ends at the bound)
      while (!done && !seen && !c.max) {
        if (waitingAs(c.name) === 1) seen = true;
        else await sleep(20);
      }
      r = await pending;
      if (!c.max) assert.ok(seen, `${c.name}: the rename never seen waiting under that application_name`);
    } finally {
      await lock.release();
    }
    const took = Date.now() - t0;
    assert.equal(r.status, 503, `${c.name}: ${r.body}`);
    assert.match(r.stderr, /a statement ran past its statement_timeout and was ended/, c.name);
    assert.ok(took >= c.min && took < (c.max ?? 15000), `${c.name}: answered ${took} ms after the request`);
    assert.equal(psql(pg, `SELECT name FROM rooms WHERE id = '${room.id}'`), 'pgwait', c.name);
  }
});

// API_HANG_TIMEOUT_S (fcgi/main.c): a request that runs past it ends its process, after a
// line naming it; behind lighttpd the request in flight is then answered 502 and
// scripts/keep-fcgi.sh starts the program again (tests/stack/supervise.test.mjs, a process
// killed with a request in flight). Here a statement's own bound is set longer than the
// request's, so that a row lock holds the request past the latter.
test('the API: a request still running after API_HANG_TIMEOUT_S ends its process (SIGALRM), with a line naming the request; a setting shorter than a statement\'s bound is warned about', async () => {
  const env = { PG_QUERY_TIMEOUT_MS: '20000', API_HANG_TIMEOUT_S: '3' };
  const room = roomOf({});
  const lock = await holdRoomRow(pgUrl(pg), room.id);
  let r;
  const t0 = Date.now();
  const waiting = () => Number(psql(pg, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%UPDATE rooms SET name%'`));
  try {
    const pending = cgiAsync({ method: 'PATCH', uri: `/api/rooms/${room.id}`, token: room.token, body: { name: 'never' }, env: { ...base, ...env } }, { timeoutMs: 15000 });
    // the rename's statement waits on the lock (seen before the bound ends its process)
    await waitFor(() => waiting() === 1, { what: 'the rename waiting on the row lock', timeout: 2800, interval: 20 });
    r = await pending;
    // the server sees that the statement's client is gone (client_connection_check_interval)
    // and ends it, instead of making the change once the lock goes
    await waitFor(() => waiting() === 0, { what: 'the ended process\'s statement no longer waiting on the lock', timeout: 10000 });
  } finally {
    await lock.release();
  }
  const took = Date.now() - t0;
  assert.equal(r.signal, 'SIGALRM', `ended by ${r.signal} (code ${r.code}): ${r.stderr.slice(0, 2000)}`);
  assert.ok(took >= 2900 && took < 12000, `ended ${took} ms after the request`);
  assert.equal(r.status, 0, 'no answer written');
  assert.match(r.stderr, /API_HANG_TIMEOUT_S \(3 s\) is shorter than one PostgreSQL statement may take \(PG_QUERY_TIMEOUT_MS, 20000 ms/);
  assert.match(r.stderr, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z codecollab-api\\[\\d+\\] error: a request ran past API_HANG_TIMEOUT_S \\(3 s\\): ending this process, which is started again \\(PATCH /api/rooms/${room.id}\\)$`, 'm'));
  assert.equal(psql(pg, `SELECT name FROM rooms WHERE id = '${room.id}'`), 'pgwait', 'the change ended with its process was not made');
  // a request within the bound is answered as ever
  const ok = api(env, { method: 'PATCH', uri: `/api/rooms/${room.id}`, token: room.token, body: { name: 'renamed twice' } });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.signal, null);
  // 0 turns the bound off; a value that is no number of seconds stops the program
  const off = api({ ...env, API_HANG_TIMEOUT_S: '0' }, { method: 'GET', uri: '/api/health' });
  assert.doesNotMatch(off.stderr, /API_HANG_TIMEOUT_S/);
  const bad = cgi({ method: 'GET', uri: '/api/health', env: { ...base, API_HANG_TIMEOUT_S: '-1' } });
  assert.notEqual(bad.status, 200, bad.body);
  assert.match(bad.stderr, /API_HANG_TIMEOUT_S must be an integer from 0 to 86400 \(got "-1"\)/);
});

// The change to save is a 600 KB text, more than a socket holds in flight: once the server
// answers again it is sent in parts (the connection is non-blocking) and saved whole.
test('the snapshotter: with every PostgreSQL process stopped, a save gives up after the bound and the program keeps showing life; once the server answers, the 600 KB change is saved', async () => {
  const env = { SNAPSHOT_INTERVAL_MS: '3000', PG_QUERY_TIMEOUT_MS: '1000' };
  const room = roomOf({});
  const file = join(tempDir('cc-alive-'), 'snapshotter');
  const count = () => { const t = readFileSync(file, 'utf8').trim(); return t ? Number(t) : NaN; };
  const e = { ...process.env, ...base, ...env, ALIVE_FILE: file };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  const snap = start(SNAP_BIN, [], { env: e });
  const paused = [];
  try {
    commit({}, room, 0, ['first\n']);
    await waitFor(() => savedRevision(room.id) === 1, { what: 'revision 1 saved', timeout: 30000 });
    // the next save comes SNAPSHOT_INTERVAL_MS after this commit: PostgreSQL is stopped by then
    commit({}, room, 1, [6, `${'y'.repeat(63)}\n`.repeat(600 * 16)]);
    await pausePg(paused);
    await waitFor(() => /postgres: no answer in 2000 ms; dropping the connection/.test(snap.output),
      { what: 'the snapshotter giving up on the silent server', timeout: 30000 });
    // still turning its loop: its count goes up while the server is silent
    const c0 = count();
    await waitFor(() => count() > c0, { what: 'signs of life with PostgreSQL stopped', timeout: 15000 });
    assert.equal(snap.exitCode, null, snap.output);
  } finally {
    for (const p of paused) { try { process.kill(p, 'SIGCONT'); } catch { /* gone */ } }
  }
  try {
    await waitFor(() => savedRevision(room.id) === 2, { what: 'revision 2 saved once the server answers', timeout: 30000 });
    // as a checkpoint (the text) or a batch (the operation): either way the whole 600 KB
    assert.equal(psql(pg, `SELECT max(n) > 600000 FROM (SELECT octet_length(content) n FROM snapshots WHERE room_id = '${room.id}' AND revision = 2 UNION ALL SELECT octet_length(ops) FROM history_ops WHERE room_id = '${room.id}' AND revision = 2) s`), 't');
  } finally {
    const ex = await stop(snap);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
});
