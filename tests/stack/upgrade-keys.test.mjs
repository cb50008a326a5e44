// Upgrading from the key layout before lib/rkeys.def (scripts/redis-upgrade-keys.sh): a
// room whose live document, operations, event history and member cache sit under the old
// names (cc:room:ID:…) keeps all of them after the script runs, and readers see the text
// typed before the upgrade, not only what the last snapshot saved. A run that did every step
// marks the Redis (cc:layout = the layout's version), and later runs stop at the mark unless
// UPGRADE_KEYS_FORCE=1; a run that fails leaves no mark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { call, newUser, redis, redisJson, roomEvents, saved } from '../lib/api.mjs';
import { run, waitJob } from '../lib/jobs.mjs';

const SCRIPT = fileURLToPath(new URL('../../scripts/redis-upgrade-keys.sh', import.meta.url));
const upgrade = (env = {}) => execFileSync(SCRIPT, { env: { ...process.env, ...env }, encoding: 'utf8' });
// the mark and the version the script writes into it, as lib/rkeys.def defines them
const DEF = readFileSync(fileURLToPath(new URL('../../lib/rkeys.def', import.meta.url)), 'utf8');
const MARK = /^RK\(LAYOUT, "([^"]+)"\)$/m.exec(DEF)[1];
const LAYOUT = /^#define RKEYS_LAYOUT (\d+)$/m.exec(DEF)[1];
const SKIPPED = `redis: the key layout is current (${MARK} is ${LAYOUT}): no upgrade (UPGRADE_KEYS_FORCE=1 runs it anyway)\n`;
const MARKED = new RegExp(`^redis: the key layout is current: ${MARK} set to ${LAYOUT}$`, 'm');

test('keys of the old layout are renamed and the room carries on where it was', async () => {
  // the stack's own start (scripts/run.sh) ran the script and marked its Redis, for good
  assert.equal(redis('GET', MARK), LAYOUT);
  assert.equal(redis('TTL', MARK), '-1', 'the mark does not expire');
  // a Redis an older version wrote holds no mark
  redis('DEL', MARK);
  const a = await newUser();
  const r = await call('POST', '/api/rooms', { token: a.token, body: { name: 'upgrade', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  const room = r.json.room;
  for (let rev = 0; rev < 3; rev++) {
    const op = await call('POST', `/api/rooms/${room.id}/operations`,
      { token: a.token, body: { revision: rev, ops: rev ? [rev, `${rev}`] : ['x'] } });
    assert.equal(op.status, 200, op.text);
  }
  // the snapshotter's save writes a `snapshot` event when it is done: once that event of the
  // last revision is there nothing writes to the room any more (a save ending after the
  // renames below would make a new history under the new name, which the upgrade then
  // keeps, as it keeps every new key that exists already; CI of 2026-12-06)
  await saved(room, 3);
  // put the room back into the old layout, as a Redis written by an older version holds it
  for (const suffix of ['doc', 'ops', 'events', 'members']) {
    assert.equal(redis('RENAME', `cc:room:{${room.id}}:${suffix}`, `cc:room:${room.id}:${suffix}`), 'OK');
  }
  redis('SET', `cc:ai:asked:${room.id}:${'ab'.repeat(32)}`, '1', 'EX', '600');
  const out = upgrade();
  assert.match(out, /redis: \d+ keys renamed/);
  assert.match(out, MARKED);
  assert.equal(redis('GET', MARK), LAYOUT);
  for (const suffix of ['doc', 'ops', 'events', 'members']) {
    assert.equal(redis('EXISTS', `cc:room:${room.id}:${suffix}`), '0', suffix);
    assert.equal(redis('EXISTS', `cc:room:{${room.id}}:${suffix}`), '1', suffix);
  }
  assert.equal(redis('EXISTS', `cc:room:{${room.id}}:ai:asked:${'ab'.repeat(32)}`), '1');
  const ttl = Number(redis('TTL', `cc:room:{${room.id}}:ai:asked:${'ab'.repeat(32)}`));
  assert.ok(ttl > 0 && ttl <= 600, `the mark keeps its expiry (${ttl})`);
  // the document and its revision are the ones typed before the upgrade
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
  assert.equal(d.status, 200, d.text);
  assert.equal(d.json.revision, 3);
  assert.equal(d.json.content, 'x12');
  // and typing goes on from there
  const next = await call('POST', `/api/rooms/${room.id}/operations`,
    { token: a.token, body: { revision: 3, ops: [3, '!'] } });
  assert.equal(next.status, 200, next.text);
  assert.equal(next.json.revision, 4);
  // a second run stops at the mark
  assert.equal(upgrade(), SKIPPED);
});

// The job queue before its keys carried the hash tag {jobs}: a job waiting in its room's old
// line and one dispatched into the old stream (with its old in-flight slot) are moved, merged
// with the queue the current programs run meanwhile, and both run to the end once.
test('jobs queued under the old names are kept and run after the upgrade', async () => {
  redis('DEL', MARK);
  const a = await newUser();
  const r = await call('POST', '/api/rooms', { token: a.token, body: { name: 'upgrade jobs', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  const room = r.json.room;
  // a real job first, to copy what a job's hash holds
  const first = await run(a.token, room, { code: 'print(1)' });
  assert.equal(first.status, 202, first.text);
  await waitJob(a.token, first.json.job.id);
  const got = redisJson('HGETALL', `cc:{jobs}:job:${first.json.job.id}`);
  const flat = Array.isArray(got) ? Object.fromEntries(got.flatMap((v, i) => (i % 2 ? [] : [[v, got[i + 1]]]))) : got;
  const fields = Object.entries(flat).filter(([k]) => !['result', 'worker', 'started_at', 'finished_at',
    'error'].includes(k)).flatMap(([k, v]) => [k, k === 'status' ? 'queued' : k === 'attempts' ? '0' : v]);
  const waiting = `${first.json.job.id}w`, sent = `${first.json.job.id}s`;
  // as an older version held them: the hashes, the room's line and backlog, the ring, and
  // a dispatched job in the stream and in flight
  redis('HSET', `cc:job:${waiting}`, ...fields);
  redis('HSET', `cc:job:${sent}`, ...fields);
  redis('RPUSH', `cc:fair:room:${room.id}`, waiting);
  redis('INCR', 'cc:fair:depth');
  redis('HINCRBY', 'cc:fair:users', String(a.user.id), '1');
  redis('ZADD', 'cc:fair:rooms', '0', room.id);
  redis('HSET', 'cc:fair:inflight', sent, room.id);
  redis('HINCRBY', 'cc:fair:running', room.id, '1');
  redis('XADD', 'cc:jobs', '*', 'job', sent);
  assert.match(upgrade(), /redis: \d+ keys renamed/);
  for (const k of ['cc:jobs', 'cc:fair:depth', 'cc:fair:users', 'cc:fair:rooms', 'cc:fair:inflight',
    'cc:fair:running', `cc:fair:room:${room.id}`, `cc:job:${waiting}`, `cc:job:${sent}`]) {
    assert.equal(redis('EXISTS', k), '0', `${k} is gone`);
  }
  for (const id of [waiting, sent]) {
    const j = await waitJob(a.token, id);
    assert.equal(j.status, 'finished', JSON.stringify(j));
    assert.equal(j.result.stdout, '1\n');
    assert.equal(redis('HGET', `cc:{jobs}:job:${id}`, 'attempts'), '1', 'run once');
  }
  assert.equal(redis('HEXISTS', 'cc:{jobs}:fair:inflight', sent), '0', 'its slot is free again');
  const statuses = roomEvents(room.id).filter((e) => [waiting, sent].includes(e.data?.job_id))
    .map((e) => `${e.data.job_id === waiting ? 'w' : 's'}:${e.data.status}`);
  for (const x of ['w:running', 'w:finished', 's:running', 's:finished']) {
    assert.equal(statuses.filter((s) => s === x).length, 1, `${x} once in ${statuses}`);
  }
  assert.equal(upgrade(), SKIPPED);
});

// Keys of the old layout, as an older version writes them, of a room that is no real one.
let fakes = 0;
function plantOld() {
  const room = `upgr${process.pid}x${++fakes}`, ai = 'cd'.repeat(32);
  redis('HSET', `cc:room:${room}:members`, '1', 'owner');
  redis('SET', `cc:ai:pending:${room}:${ai}`, 'job1', 'EX', '600');
  const pairs = [[`cc:room:${room}:members`, `cc:room:{${room}}:members`],
    [`cc:ai:pending:${room}:${ai}`, `cc:room:{${room}}:ai:pending:${ai}`]];
  return {
    renamed: (yes) => {
      for (const [old, now] of pairs) {
        assert.equal(redis('EXISTS', old), yes ? '0' : '1', old);
        assert.equal(redis('EXISTS', now), yes ? '1' : '0', now);
      }
    },
    drop: () => redis('DEL', ...pairs.flat()),
  };
}

test('a run that did every step marks the layout, and later runs skip the upgrade unless UPGRADE_KEYS_FORCE=1', () => {
  // marked by the runs above
  assert.equal(redis('GET', MARK), LAYOUT);
  // keys an older binary wrote after the mark: a run stops at the mark and leaves them
  const old = plantOld();
  assert.equal(upgrade(), SKIPPED);
  old.renamed(false);
  assert.equal(upgrade({ UPGRADE_KEYS_FORCE: '0' }), SKIPPED);
  old.renamed(false);
  // the override runs the whole upgrade, and marks the layout again
  const out = upgrade({ UPGRADE_KEYS_FORCE: '1' });
  assert.match(out, /redis: \d+ keys renamed/);
  assert.match(out, MARKED);
  old.renamed(true);
  assert.equal(redis('GET', MARK), LAYOUT);
  assert.equal(upgrade(), SKIPPED);
  old.drop();
  // a mark of another layout (a newer version's, or one of the layout before it) is no mark
  // of this one: the upgrade runs and writes this layout's
  redis('SET', MARK, String(Number(LAYOUT) + 1));
  const other = plantOld();
  assert.match(upgrade(), MARKED);
  other.renamed(true);
  assert.equal(redis('GET', MARK), LAYOUT);
  other.drop();
  // a value the override does not know is refused before anything is done
  const bad = spawnSync(SCRIPT, { env: { ...process.env, UPGRADE_KEYS_FORCE: 'yes' }, encoding: 'utf8' });
  assert.equal(bad.status, 1, bad.stdout);
  assert.equal(bad.stderr, 'redis: UPGRADE_KEYS_FORCE must be 0 or 1, not yes\n');
  assert.equal(redis('GET', MARK), LAYOUT);
});

test('a run that fails midway leaves no mark, and the next run does the whole upgrade', () => {
  assert.equal(redis('GET', MARK), LAYOUT);
  // the last step fails (PostgreSQL cannot be reached for the access state), after the
  // renames and the job queue's move succeeded
  const old = plantOld();
  const failed = spawnSync(SCRIPT, {
    env: { ...process.env, UPGRADE_KEYS_FORCE: '1', DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none' },
    encoding: 'utf8',
  });
  assert.equal(failed.status, 1, failed.stdout);
  assert.match(failed.stderr, /redis: reading the rooms' access from PostgreSQL failed/);
  assert.doesNotMatch(failed.stdout, MARKED);
  old.renamed(true);
  assert.equal(redis('EXISTS', MARK), '0', 'a failed run leaves no mark');
  // so the next start does all of it, without the override
  const again = plantOld();
  const { DATABASE_URL, ...noDatabase } = process.env;
  assert.ok(DATABASE_URL);
  // without DATABASE_URL the access state is not written: the keys are renamed, no mark
  const out = execFileSync(SCRIPT, { env: noDatabase, encoding: 'utf8' });
  assert.match(out, /redis: \d+ keys renamed/);
  assert.match(out, new RegExp(`without DATABASE_URL the access state was not written from PostgreSQL, so ${MARK} is not set`));
  again.renamed(true);
  assert.equal(redis('EXISTS', MARK), '0');
  // with it, every step succeeds and the mark is back
  const third = plantOld();
  const done = upgrade();
  assert.match(done, /redis: \d+ keys renamed/);
  assert.match(done, MARKED);
  third.renamed(true);
  assert.equal(redis('GET', MARK), LAYOUT);
  assert.equal(upgrade(), SKIPPED);
  for (const k of [old, again, third]) k.drop();
});
