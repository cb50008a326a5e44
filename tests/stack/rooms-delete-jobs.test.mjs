// Deleting a room takes its jobs with it (fcgi/h_rooms.c h_room_delete, lib/lua/job_room_drop.lua,
// the deleted mark that lib/lua/outbox_apply.lua, ai_finish.lua and the worker respect): runs
// and AI jobs of the room that are queued or running when it goes end `cancelled` (queued ones
// never start, running ones are stopped), GET /api/jobs/{id} answers 404 job_not_found as for
// every job of a room that is gone, and nothing of the room is written back to Redis
// afterwards: no event after `deleted`, and once the jobs have settled, no key of the room
// without an expiry. The history's 60 s after the `deleted` event are cut short by the test
// (PEXPIRE) so that a late job event recreating it, without an expiry, shows at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, createRoom, newUser, redis, redisScan, roomEvents } from '../lib/api.mjs';
import { capacity, jobHash, run, waitJob } from '../lib/jobs.mjs';
import { useStackAiDouble, aiMarker } from '../lib/openai-double.mjs';
import { scripts } from '../lib/rscripts.mjs';

const ai = useStackAiDouble();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const OVER = new Set(['finished', 'failed', 'cancelled']);
const jobKey = (id) => `cc:{jobs}:job:${id}`;
const roomKey = (room, what) => `cc:room:{${room.id}}:${what}`;



// Polls cond() until it holds, every 100 ms, for at most ms; throws naming what it waited for.
async function until(cond, what, ms = 60000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// The jobs are over and none of their room events still waits in the jobs' outbox (the drain
// takes them to the room, or drops them there): nothing of them can come later.
function settled(room, ids) {
  return ids.every((id) => OVER.has(jobHash(id).status)) &&
    !redis('XRANGE', 'cc:{jobs}:outbox', '-', '+').includes(room.id);
}

// No worker holds an entry of these jobs any more (none pending in the consumer group): a
// worker that was running one has ended its attempt, whatever it then wrote.
function workersDone(ids) {
  const flat = redis('--raw', 'XPENDING', 'cc:{jobs}:stream', 'workers', '-', '+', '1000').split('\n');
  for (let i = 0; i + 3 < flat.length; i += 4) {
    const entry = redis('--raw', 'XRANGE', 'cc:{jobs}:stream', flat[i], flat[i]);
    if (ids.some((id) => entry.includes(id))) return false;
  }
  return true;
}

// The room right after its DELETE: its history ends with `deleted`; then the history's 60 s
// are cut short, as if they had passed.
function afterDelete(room) {
  const evs = roomEvents(room.id);
  assert.equal(evs.at(-1)?.type, 'room', JSON.stringify(evs.at(-1)));
  assert.equal(evs.at(-1).data.reason, 'deleted');
  redis('PEXPIRE', roomKey(room, 'events'), '1');
}

// What is left of a deleted room in Redis: every key has an expiry, and none but its deleted
// mark exists (the history was cut short above: nothing may have written it back).
function assertNothingLeft(room) {
  const keys = redisScan(`cc:room:{${room.id}}*`);
  const noTtl = keys.filter((k) => Number(redis('PTTL', k)) < 0 && redis('EXISTS', k) === '1');
  assert.deepEqual(noTtl, [], 'keys of the deleted room without an expiry');
  assert.deepEqual(keys.filter((k) => k !== roomKey(room, 'deleted')), [],
    'keys of the deleted room written back after its delete');
}

test('a deleted room\'s runs end: queued ones never start, running ones are stopped, nothing of the room is written back', async () => {
  const owner = await newUser('rdj');
  const room = await createRoom(owner.token, { language: 'python' });
  // every job thread busy with a run of this room (the room alone gets every thread), and
  // three more waiting behind them; each running one lasts 4 s (the test stack's RUN_TIMEOUT_MS is 10 s)
  const cap = capacity();
  assert.ok(cap >= 1, 'no live worker');
  const n = Math.min(cap + 3, 10); // EXECUTION_RATE_LIMIT: 10 a minute
  const ids = [];
  for (let i = 0; i < n; i++) {
    const r = await run(owner.token, room, { code: `import time\ntime.sleep(4)\nprint("ran ${i}")` });
    assert.equal(r.status, 202, r.text);
    ids.push(r.json.job.id);
  }
  await waitJob(owner.token, ids[0], { until: (j) => j.status === 'running' });
  const del = await call('DELETE', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(del.status, 204, del.text);
  afterDelete(room);
  // a job of a room that is gone is no one's to read
  for (const id of ids) {
    const g = await call('GET', `/api/jobs/${id}`, { token: owner.token });
    assert.equal(g.status, 404, g.text);
    assert.equal(g.json.error, 'job_not_found');
  }
  await until(() => settled(room, ids) && workersDone(ids), 'the jobs to settle');
  const jobs = ids.map(jobHash);
  for (const [i, j] of jobs.entries()) {
    assert.equal(j.status, 'cancelled', `job ${i}: ${JSON.stringify(j)}`);
    assert.equal(j.error, 'the room was deleted');
    assert.ok(!j.result, `job ${i} has a result: ${j.result}`);
  }
  // the last three waited behind every thread: they never started
  for (const j of jobs.slice(-3)) assert.equal(j.started_at, undefined, JSON.stringify(j));
  assert.equal(jobs[0].worker !== undefined, true, 'the first run was running when the room went');
  assertNothingLeft(room);
});

test('a run queued after the delete began (it raced the delete) is cancelled unrun by the worker', async () => {
  const owner = await newUser('rdj');
  const room = await createRoom(owner.token, { language: 'python' });
  const del = await call('DELETE', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(del.status, 204, del.text);
  afterDelete(room);
  // a run created in the room by a request that passed its checks before the row went and
  // reached the queue after the delete had cancelled the room's jobs: job_create, the
  // script the API runs for it, with the API's arguments (lib/jobstate.c jobstate_create)
  const id = `race${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const request = JSON.stringify({ language: 'python', version: '', code: 'print(1)', stdin: '' });
  const extra = '"user":{"id":1,"username":"racer"}';
  const out = redis('EVAL', scripts().get('job_create').text, '1', jobKey(id),
    String(7 * 86400), 'execution', JSON.stringify({ job_id: id, status: 'queued' }), '20', '100000', id,
    room.id, '1', '30', '20', '2000', '10', '', '', '0', '',
    'kind', 'execution', 'room', room.id, 'user', '1', 'username', 'racer', 'request', request,
    'attempts', '0', 'created_at', String(Math.floor(Date.now() / 1000)), 'event_extra', extra);
  assert.match(out, /^1\b/, out);
  await until(() => OVER.has(jobHash(id).status), 'the raced run to end', 30000);
  const j = jobHash(id);
  assert.equal(j.status, 'cancelled', JSON.stringify(j));
  assert.equal(j.error, 'the room was deleted');
  assert.equal(j.started_at, undefined, 'it never started');
  await until(() => settled(room, [id]) && workersDone([id]), 'its events to settle');
  assertNothingLeft(room);
});

test('a deleted room\'s AI job ends cancelled and writes nothing of the room back (no asked mark, no event)', async () => {
  const owner = await newUser('rdj');
  const room = await createRoom(owner.token, { language: 'c' });
  const m = aiMarker();
  // at the provider for 1.5 s (the test stack's AI_TIMEOUT_MS is 4 s)
  ai.double.script(m, [{ text: 'an answer for a room that is gone', delayMs: 1500 }]);
  const r = await call('POST', `/api/rooms/${room.id}/ai/hint`, { token: owner.token, body: { code: `int ${m};\n` } });
  assert.equal(r.status, 202, r.text);
  const id = r.json.job.id;
  await waitJob(owner.token, id, { until: (j) => j.status === 'running' });
  // at the provider (its answer held there 1.5 s) before the room goes
  await until(() => ai.double.requestsFor(m).length === 1, 'the job to reach the provider');
  const del = await call('DELETE', `/api/rooms/${room.id}`, { token: owner.token });
  assert.equal(del.status, 204, del.text);
  afterDelete(room);
  const g = await call('GET', `/api/jobs/${id}`, { token: owner.token });
  assert.equal(g.status, 404, g.text);
  // over, and its worker done with it: whatever the provider answered, it acted on it
  await until(() => settled(room, [id]) && workersDone([id]), 'the AI job to settle');
  assert.equal(ai.double.requestsFor(m).length, 1, 'the job was at the provider when the room went');
  const j = jobHash(id);
  assert.equal(j.status, 'cancelled', JSON.stringify(j));
  assert.equal(j.error, 'the room was deleted');
  assertNothingLeft(room);
});
