// The programs reach PostgreSQL as an ordinary role, not as the superuser postgres
// (scripts/services.sh: pg_create_db): what an SQL injection could do, were one ever found,
// stops at the database's own tables. Checked on the stack the suites run against (make run's
// layout, or make cluster's with its hot standby in DATABASE_READ_URL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { call, newUser, createRoom, replicaCaughtUp } from '../lib/api.mjs';

const urls = [['DATABASE_URL', process.env.DATABASE_URL]];
if (process.env.DATABASE_READ_URL) urls.push(['DATABASE_READ_URL', process.env.DATABASE_READ_URL]);

// psql at url; {ok, out} with stdout, or stderr when it failed
function psql(url, query) {
  try {
    return { ok: true, out: execFileSync('psql', [url, '-XAtqc', query], { encoding: 'utf8', timeout: 20000, stdio: ['ignore', 'pipe', 'pipe'] }).trim() };
  } catch (e) {
    return { ok: false, out: String(e.stderr) };
  }
}

for (const [name, url] of urls) {
  test(`${name}: an ordinary role that cannot run programs, read the server's files or make roles and databases`, () => {
    assert.equal(psql(url, 'SELECT current_user').out, 'codecollab');
    const role = psql(url, 'SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user');
    assert.equal(role.out, 'f|f|f|f|f');
    const prog = psql(url, "COPY (SELECT 1) TO PROGRAM 'true'");
    assert.equal(prog.ok, false);
    assert.match(prog.out, /must be superuser or have privileges of the pg_execute_server_program role/);
    const file = psql(url, "SELECT pg_read_file('/etc/passwd')");
    assert.equal(file.ok, false);
    assert.match(file.out, /permission denied for function pg_read_file/);
    // (a hot standby refuses any write before it looks at the role: the primary is the test)
    if (name === 'DATABASE_URL') {
      const mkrole = psql(url, 'CREATE ROLE intruder');
      assert.equal(mkrole.ok, false);
      assert.match(mkrole.out, /permission denied to create role/);
    }
  });
}

test('the programs connect as that role, which owns every table of the schema', async () => {
  const url = process.env.DATABASE_URL;
  // a request that writes to PostgreSQL: the API holds a connection now
  const u = await newUser('dbrole');
  const room = await createRoom(u.token);
  assert.ok(room.id);
  assert.equal((await call('GET', `/api/rooms/${room.id}`, { token: u.token })).status, 200);
  const owners = psql(url, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'");
  assert.equal(owners.out, 'codecollab', 'no table of the schema is owned by another role');
  // every client connection to the database (the API's, the worker's, the snapshotter's,
  // the suites' own) uses it
  const users = psql(url, "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'codecollab' AND backend_type = 'client backend'");
  assert.equal(users.out, 'codecollab');
  if (process.env.DATABASE_READ_URL) {
    replicaCaughtUp();
    assert.equal(psql(process.env.DATABASE_READ_URL, `SELECT count(*) FROM rooms WHERE id = '${room.id}'`).out, '1');
  }
});
