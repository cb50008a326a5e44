// Durability with a replicated Redis (REDIS_WAIT_REPLICAS, lib/rds.h rds_wait; docs/API.md):
// an operation or a new job is answered only once a replica holds it. The stack's API runs
// without WAIT, so the API binary runs here as CGI against the stack's Redis and database
// with REDIS_WAIT_REPLICAS=1: with no replica the commit is answered 503 redis_unavailable
// (applied, not confirmed); once a real replica (redis-server --replicaof) is in sync, the
// same request sent again is answered as the first commit, and new operations and jobs are
// answered as usual. A run submitted again with its request_id is likewise the first job.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, cgi, newUser, createRoom, redis } from '../lib/api.mjs';
import { freePort, waitFor } from '../lib/procs.mjs';
import { connectRedis } from '../lib/resp.mjs';

// With no replica every WAIT runs to its timeout: keep it short. With one in sync it returns
// at the replica's acknowledgement, which on a loaded 2-core machine under ASan can take
// longer than 100 ms: then the long timeout, which costs nothing when the replica answers.
const WAIT = { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_MS: '100' };
const WAIT_SYNCED = { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_MS: '5000' };
let replica;
let dir;

async function stopReplica() {
  if (replica && replica.exitCode === null) {
    replica.kill('SIGKILL');
    await new Promise((r) => replica.once('exit', r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  replica = dir = undefined;
}
after(stopReplica);

const commit = (token, room, body, env = WAIT) => cgi({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token, body, env });
const doc = async (token, room) => (await call('GET', `/api/rooms/${room.id}/document`, { token })).json;

async function startReplica() {
  const masterPort = Number(redis('CONFIG', 'GET', 'port').split('\n')[1]);
  assert.ok(masterPort > 0, 'the stack\'s Redis has a TCP port');
  const port = await freePort();
  dir = mkdtempSync(join(tmpdir(), 'cc-replica-'));
  replica = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--replicaof', '127.0.0.1', String(masterPort),
    '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  await waitFor(async () => {
    try {
      const r = await connectRedis(port);
      try { return /master_link_status:up/.test(await r.cmd('INFO', 'replication')); } finally { r.close(); }
    } catch { return false; }
  }, { timeout: 30000, what: 'the replica in sync' });
}

test('no replica to confirm: 503 redis_unavailable; with one in sync, the repeat is answered as the first commit', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const body = { revision: 0, ops: ['kept'], client_id: 'wait.1' };
  const first = commit(a.token, room, body);
  assert.equal(first.status, 503, first.body);
  assert.equal(first.json.error, 'redis_unavailable');
  // applied on the master all the same
  assert.equal((await doc(a.token, room)).content, 'kept');
  // the same request again is recognised, but still not confirmed: no 200 for it yet
  const repeat = commit(a.token, room, body);
  assert.equal(repeat.status, 503, repeat.body);
  assert.equal(repeat.json.error, 'redis_unavailable');
  assert.equal((await doc(a.token, room)).revision, 1, 'applied once');

  // a job is not confirmed either
  const job = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/executions`, token: a.token, env: WAIT,
    body: { language: 'python', code: 'print(1)' } });
  assert.equal(job.status, 503, job.body);
  assert.equal(job.json.error, 'redis_unavailable');

  await startReplica();
  const again = commit(a.token, room, body, WAIT_SYNCED);
  assert.equal(again.status, 200, again.body);
  assert.deepEqual(again.json, { revision: 1, ops: ['kept'] });
  const next = commit(a.token, room, { revision: 1, ops: [4, '!'], client_id: 'wait.2' }, WAIT_SYNCED);
  assert.equal(next.status, 200, next.body);
  assert.deepEqual(next.json, { revision: 2, ops: [4, '!'] });
  const d = await doc(a.token, room);
  assert.equal(d.content, 'kept!');
  assert.equal(d.revision, 2);
  const job2 = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/executions`, token: a.token, env: WAIT_SYNCED,
    body: { language: 'python', code: 'print(2)' } });
  assert.equal(job2.status, 202, job2.body);
});

test('a run answered 503 and submitted again with its request_id is the same run, once a replica confirms it', async () => {
  await stopReplica(); // the test before left one in sync: none confirms from here on
  const a = await newUser();
  const room = await createRoom(a.token);
  const runs = async () => (await call('GET', `/api/rooms/${room.id}/executions`, { token: a.token })).json.executions;
  const submit = (env = WAIT) => cgi({ method: 'POST', uri: `/api/rooms/${room.id}/executions`, token: a.token, env,
    body: { language: 'python', code: 'print(3)', request_id: 'durable-1' } });
  const first = submit();
  assert.equal(first.status, 503, first.body);
  assert.equal(first.json.error, 'redis_unavailable');
  const made = await runs();
  assert.equal(made.length, 1, 'the job exists on the master');
  // the retry is recognised, but its answer waits for a replica too
  const retry = submit();
  assert.equal(retry.status, 503, retry.body);
  assert.equal((await runs()).length, 1, 'no second job');
  await startReplica();
  const again = submit(WAIT_SYNCED);
  assert.equal(again.status, 202, again.body);
  assert.equal(again.json.repeated, true);
  assert.equal(again.json.job.id, made[0].id);
  assert.equal(again.headers.location, `/api/jobs/${made[0].id}`);
  assert.deepEqual((await runs()).map((j) => j.id), [made[0].id]);
});

// A repeat whose first commit has left the kept log is answered 409 with applied_revision,
// which the client takes as its edit committed for good, as it takes a repeat's 200: so it
// waits for a replica as the 200 does. Without one, 503 (the first commit may be on the
// master alone), and the client asks again; once a replica holds it, the 409.
test('a repeat past the kept log is told applied_revision only once a replica holds the first commit', async () => {
  await stopReplica(); // none confirms from here on, until the replica below
  const a = await newUser();
  const room = await createRoom(a.token);
  const body = { revision: 0, ops: ['first'], client_id: 'wait.past' };
  const first = commit(a.token, room, body);
  assert.equal(first.status, 503, first.body);
  // the room moves on past the kept log (1,000 operations) through the stack's API
  let revision = 1;
  for (let i = 0; i < 1010; i++) {
    const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision, ops: [] } });
    assert.equal(r.status, 200, r.text);
    revision = r.json.revision;
  }
  const unconfirmed = commit(a.token, room, body);
  assert.equal(unconfirmed.status, 503, unconfirmed.body);
  assert.equal(unconfirmed.json.error, 'redis_unavailable');
  await startReplica();
  const told = commit(a.token, room, body, WAIT_SYNCED);
  assert.equal(told.status, 409, told.body);
  assert.deepEqual(told.json, { error: 'revision_too_old', message: told.json.message, revision, applied_revision: 1 });
  const d = await doc(a.token, room);
  assert.equal(d.content, 'first');
  assert.equal(d.revision, revision, 'applied once');
});
