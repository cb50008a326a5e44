// PostgreSQL servers for tests that need more than the stack's one: a primary and hot
// standbys made from it (pg_basebackup -R), each on a Unix socket in a throwaway directory,
// run as the postgres user when the tests run as root (initdb and postgres refuse root).
// Every server is a managed child of tests/lib/procs.mjs: killed at exit, also on failure.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { start, stop, tempDir, freePort, waitFor } from './procs.mjs';

export const PG_BIN = process.env.PG_BIN
  || join('/usr/lib/postgresql', readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b)).at(-1), 'bin');

let pgUid = null;
let pgGid = null;
if (process.getuid() === 0) {
  pgUid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  pgGid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
}
const asPg = pgUid === null ? {} : { uid: pgUid, gid: pgGid };

// A directory the postgres user owns (mode 700: PostgreSQL insists).
function pgDir(prefix) {
  const d = tempDir(prefix);
  mkdirSync(join(d, 'data'), { mode: 0o700 });
  mkdirSync(join(d, 'run'));
  if (pgUid !== null) {
    chownSync(d, pgUid, pgGid);
    chownSync(join(d, 'data'), pgUid, pgGid);
    chownSync(join(d, 'run'), pgUid, pgGid);
  }
  return d;
}

// URL of database `db` on a server of this module (libpq's Unix-socket form).
export const pgUrl = (srv, db = 'codecollab') =>
  `postgresql:///${db}?host=${srv.sockDir}&port=${srv.port}&user=postgres`;

// psql -At on srv; returns the output without its last newline.
export function psql(srv, query, db = 'codecollab') {
  return execFileSync('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', pgUrl(srv, db), '-c', query],
    { stdio: ['ignore', 'pipe', 'pipe'] }).toString().replace(/\n$/, '');
}

function launch(dir, port) {
  const srv = start(join(PG_BIN, 'postgres'), ['-D', join(dir, 'data'), '-p', String(port),
    '-k', join(dir, 'run'), '-c', 'listen_addresses=', '-c', 'fsync=off'], { ...asPg, cwd: dir });
  srv.dir = dir;
  srv.port = port;
  srv.sockDir = join(dir, 'run');
  return srv;
}

async function ready(srv) {
  await waitFor(() => {
    if (srv.exitCode !== null) throw new Error(`postgres exited: ${srv.output}`);
    execFileSync(join(PG_BIN, 'pg_isready'), ['-q', '-h', srv.sockDir, '-p', String(srv.port)]);
    return true;
  }, { timeout: 30000, what: `postgres on ${srv.port}` });
}

// A new primary with database codecollab and the schema of schema.sql when `schema` names it.
export async function startPrimary({ schema } = {}) {
  const dir = pgDir('cc-pg-primary-');
  execFileSync(join(PG_BIN, 'initdb'), ['-D', join(dir, 'data'), '-U', 'postgres', '-A', 'trust',
    '-E', 'UTF8', '--locale=C.UTF-8'], { ...asPg, stdio: 'ignore' });
  const srv = launch(dir, await freePort());
  await ready(srv);
  psql(srv, 'CREATE DATABASE codecollab', 'postgres');
  if (schema) {
    execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-1', '-f', schema, pgUrl(srv)],
      { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return srv;
}

// A hot standby streaming from primary (pg_basebackup -R writes its primary_conninfo).
export async function startReplica(primary) {
  const dir = pgDir('cc-pg-replica-');
  execFileSync(join(PG_BIN, 'pg_basebackup'), ['-h', primary.sockDir, '-p', String(primary.port),
    '-U', 'postgres', '-D', join(dir, 'data'), '-R', '-X', 'stream', '-c', 'fast'],
  { ...asPg, stdio: 'ignore' });
  const srv = launch(dir, await freePort());
  await ready(srv);
  return srv;
}

// PostgreSQL's fast shutdown (SIGINT), waited for.
export const stopPg = (srv) => stop(srv, 'SIGINT', 30000);

// A psql session on url that holds a room's row locked (FOR UPDATE) until release(): an
// insert that refers to the room (a save into snapshots or history_ops: its foreign key
// check) waits there, while reads of the row go on. release() commits and expects psql to
// end cleanly (it throws with psql's output otherwise); kill() ends it in any case.
export async function holdRoomRow(url, roomId) {
  const p = spawn('psql', [url, '-XAtq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => p.on('exit', resolve));
  p.stdin.write(`BEGIN;\nSELECT 'locked' FROM rooms WHERE id = '${roomId}' FOR UPDATE;\n`);
  await waitFor(() => out.includes('locked'), { what: 'the room\'s row locked', timeout: 20000 });
  return {
    async release() {
      p.stdin.end('COMMIT;\n');
      const code = await exited;
      if (code !== 0) throw new Error(`psql holding room ${roomId} ended with ${code}: ${out}`);
    },
    kill() { if (p.exitCode === null) p.kill('SIGKILL'); },
  };
}

// A psql session on url that holds the lock the snapshotter takes for each save of a room
// (lib/store_doc.c, SNAP_LOCK_CLASS and hashtext(room id), taken here for the session) until
// release(): a save of the room waits there, before it reads anything under the lock, while
// commits and reads go on. release() unlocks and expects psql to end cleanly; kill() ends it
// in any case.
export async function holdRoomSaves(url, roomId) {
  const p = spawn('psql', [url, '-XAtq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => p.on('exit', resolve));
  p.stdin.write(`SELECT 'locked' FROM pg_advisory_lock(1128464385, hashtext('${roomId}'));\n`);
  await waitFor(() => out.includes('locked'), { what: 'the room\'s saves held', timeout: 20000 });
  return {
    async release() {
      p.stdin.end(`SELECT pg_advisory_unlock(1128464385, hashtext('${roomId}'));\n`);
      const code = await exited;
      if (code !== 0) throw new Error(`psql holding room ${roomId}'s saves ended with ${code}: ${out}`);
    },
    kill() { if (p.exitCode === null) p.kill('SIGKILL'); },
  };
}
