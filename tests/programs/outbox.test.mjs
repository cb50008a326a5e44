// The job queue's two steps (lib/jobstate.h): a job script changes the queue and appends
// the room's event to the jobs' outbox in one atomic step (slot {jobs}); a drain then emits
// each entry in its room's slot (outbox_apply) and deletes it. A process that dies between
// the steps, or in the middle of a drain, must only delay the event: the next drain (any
// worker's, every second) delivers it exactly once and in order, and the job still runs once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withRedis, startWorker, stopWorker, jobId, job, waitStatus, events, waitFor, subscribe,
} from '../lib/worker-harness.mjs';
import { scripts } from '../lib/rscripts.mjs';
import { HISTORY_BOUNDS } from '../lib/resp.mjs';

const S = scripts();
const OUTBOX = 'cc:{jobs}:outbox';
const room = (id, what) => `cc:room:{${id}}${what ? `:${what}` : ''}`;

function assertCleanExit(w, { code, signal }) {
  assert.equal(signal, null, `worker ended by ${signal}\n${w.output.slice(-2000)}`);
  assert.equal(code, 0, `worker exited ${code}\n${w.output.slice(-2000)}`);
  assert.doesNotMatch(w.output, /ERROR: AddressSanitizer|runtime error:/);
}

// Step one of POST /api/rooms/{id}/executions alone, with the arguments lib/jobstate.c
// gives it: the API process "dies" before its drain.
async function createOnly(r, id, rm) {
  const now = String(Math.floor(Date.now() / 1000));
  const extra = '"user":{"id":1,"username":"tester"},"stdin_given":false,"stdin":"","stdin_truncated":false';
  const request = JSON.stringify({ language: 'sh', code: 'echo hi' });
  return r.cmd('EVAL', S.get('job_create').text, 1, `cc:{jobs}:job:${id}`,
    String(7 * 86400), 'execution', JSON.stringify({ job_id: id, status: 'queued' }), '20', '100000', id, rm, '1',
    '100', '100', '10000', '10', '', '', '0', '',
    'kind', 'execution', 'room', rm, 'user', '1', 'username', 'tester', 'request', request,
    'attempts', '0', 'created_at', now, 'event_extra', extra);
}

// outbox_apply for one outbox entry, as jobstate_drain calls it.
function apply(r, [eid, f]) {
  const o = {};
  for (let i = 0; i < f.length; i += 2) o[f[i]] = f[i + 1];
  return r.cmd('EVAL', S.get('outbox_apply').text, 4, room(o.room, 'events'),
    room(o.room, 'outbox'), room(o.room, 'runs'), room(o.room, 'deleted'), eid, o.type, o.data, HISTORY_BOUNDS, o.run || '',
    o.run ? o.keep : '', o.run ? o.ttl : '', String(7 * 86400));
}

test('a writer that dies between its change and its drain: a later drain delivers the event once; a drain that dies before deleting is not repeated', () => withRedis(async (r, redis) => {
  const rm = jobId('room');
  const id = jobId();
  assert.deepEqual(await createOnly(r, id, rm), [1, 0]);
  // step one done: the job is queued and its event waits in the outbox; the room has nothing
  assert.equal((await job(r, id)).status, 'queued');
  const box = await r.cmd('XRANGE', OUTBOX, '-', '+');
  assert.equal(box.length, 1);
  assert.equal(box[0][1][box[0][1].indexOf('room') + 1], rm);
  assert.deepEqual(await events(r, rm), []);
  assert.deepEqual(await r.cmd('LRANGE', room(rm, 'runs'), 0, -1), []);

  // a drainer applies the entry and dies before it deletes it (XDEL never sent) ...
  assert.equal(await apply(r, box[0]), 1);
  // ... a second drainer, reading the same entry, applies nothing again
  assert.equal(await apply(r, box[0]), 0);
  let hist = await events(r, rm);
  assert.deepEqual(hist.map((e) => [e.type, e.data.status, e.data.position]), [['execution', 'queued', 0]]);
  assert.deepEqual(hist[0].data.user, { id: 1, username: 'tester' }, 'who started it travels with the event');
  assert.deepEqual(await r.cmd('LRANGE', room(rm, 'runs'), 0, -1), [id]);

  // a worker: its registration dispatches the job (no capacity was registered when it was
  // created) and drains; the job runs once, every event reaches the room once, in order
  const sub = await subscribe(redis.port, rm);
  const w = await startWorker(redis.port, { WORKERS: '1' });
  const done = await waitStatus(r, id, 'finished', 30000);
  assert.equal(done.attempts, 1, 'run once');
  await waitFor(async () => (await r.cmd('XLEN', OUTBOX)) === 0, { what: 'the outbox to be drained' });
  hist = await events(r, rm);
  assert.deepEqual(hist.map((e) => e.data.status), ['queued', 'running', 'finished']);
  assert.deepEqual(sub.messages.map((m) => m.data.status), ['running', 'finished'], 'published once each');
  assert.deepEqual(await r.cmd('LRANGE', room(rm, 'runs'), 0, -1), [id], 'in the recent runs once');
  sub.close();
  assertCleanExit(w, await stopWorker(w));
}));

test('entries left by dead writers of several rooms: one drain delivers each in its room, in order, exactly once', () => withRedis(async (r, redis) => {
  const rooms = [jobId('room'), jobId('room'), jobId('room')];
  const ids = [];
  for (let i = 0; i < 9; i++) {
    const id = jobId();
    ids.push([id, rooms[i % 3]]);
    assert.equal((await createOnly(r, id, rooms[i % 3]))[0], 1);
  }
  const box = await r.cmd('XRANGE', OUTBOX, '-', '+');
  assert.equal(box.length, 9);
  // half of them applied by a drainer that then died
  for (const e of box.slice(0, 4)) assert.equal(await apply(r, e), 1);
  const w = await startWorker(redis.port, { WORKERS: '2' });
  for (const [id] of ids) await waitStatus(r, id, 'finished', 60000);
  await waitFor(async () => (await r.cmd('XLEN', OUTBOX)) === 0, { what: 'the outbox to be drained' });
  for (const rm of rooms) {
    const mine = ids.filter(([, x]) => x === rm).map(([id]) => id);
    const hist = await events(r, rm);
    for (const id of mine) {
      const st = hist.filter((e) => e.data.job_id === id).map((e) => e.data.status);
      // queued (its place may be told again as the line moves), then running, finished once
      assert.equal(st.filter((s) => s === 'running').length, 1, `${id}: ${st}`);
      assert.equal(st.filter((s) => s === 'finished').length, 1, `${id}: ${st}`);
      assert.equal(st[0], 'queued', `${id}: ${st}`);
      assert.ok(st.indexOf('running') < st.indexOf('finished'), `${id}: ${st}`);
      assert.ok(st.lastIndexOf('queued') < st.indexOf('running'), `${id}: ${st}`);
    }
    // the four entries applied before the worker came are in the history once each
    for (const [eid, f] of box.slice(0, 4)) {
      if (f[f.indexOf('room') + 1] !== rm) continue;
      const data = f[f.indexOf('data') + 1];
      assert.equal(hist.filter((e) => JSON.stringify(e.data) === data).length, 1, `entry ${eid} once`);
    }
    assert.deepEqual((await r.cmd('LRANGE', room(rm, 'runs'), 0, -1)).sort(), [...mine].sort());
  }
  assertCleanExit(w, await stopWorker(w));
}));
