// Who started a job, in every event the worker sends (lib/lua/_jobev.lua): the job's
// `event_extra` (written by the API at creation) goes in front of the worker's event data,
// and an event that would pass the events' 2 MiB bound with it is sent without its result.
// The worker against its own redis-server and the real sandbox (root, ASan build).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import {
  WORKER_BIN, jobEvents, jobId, killWorkers, startRedis, startWorker, stopRedis, waitStatus,
} from '../lib/worker-harness.mjs';

if (!existsSync(WORKER_BIN)) throw new Error(`${WORKER_BIN} is missing: run make build-asan`);
if (process.getuid() !== 0) throw new Error('the worker tests need root (cgroups for the sandbox)');

const EVENTS_DATA_MAX = 2 * 1024 * 1024; // lib/events.h
const EXTRA = `"user":{"id":7,"username":"ann"},"stdin_given":true,"stdin":"${'x'.repeat(1024)}","stdin_truncated":true`;

// A job as the API makes it, with who started it; straight into the jobs stream.
async function enqueue(r, room, code, extra = EXTRA) {
  const id = jobId();
  const request = { language: 'python', version: '3.11.2', code, stdin: '', args: [] };
  await r.cmd('HSET', `cc:{jobs}:job:${id}`, 'kind', 'execution', 'room', room, 'user', '7', 'username', 'ann',
    'request', JSON.stringify(request), 'status', 'queued', 'attempts', '0', 'event_extra', extra);
  await r.cmd('XADD', 'cc:{jobs}:stream', '*', 'job', id);
  return id;
}

async function withWorker(fn) {
  const redis = await startRedis();
  try {
    const port = (await redis.client.cmd('CONFIG', 'GET', 'port'))[1];
    await startWorker(port, { OUTPUT_LIMIT_KB: '4096' });
    await fn(redis.client);
  } finally {
    await killWorkers();
    await stopRedis(redis);
  }
}

test('running and finished events carry who started the job; one too large with it loses its result, not the bound', () => withWorker(async (r) => {
  const room = jobId('room');
  const small = await enqueue(r, room, 'print("a" * 10)');
  await waitStatus(r, small, 'finished');
  let ev = await jobEvents(r, room, small);
  assert.deepEqual(ev.map((e) => e.data.status), ['running', 'finished']);
  for (const e of ev) {
    assert.deepEqual(e.data.user, { id: 7, username: 'ann' });
    assert.equal(e.data.stdin, 'x'.repeat(1024));
    assert.equal(e.data.stdin_truncated, true);
  }
  assert.equal(ev[1].data.result.stdout, 'a'.repeat(10) + '\n');
  // the finished event's size apart from the output and the extra members: what a program
  // printing n bytes makes the worker's own data (time_ms may differ by a digit or two)
  const overhead = Buffer.byteLength(JSON.stringify(ev[1].data)) - 11 - (EXTRA.length + 1);
  assert.ok(overhead > 50 && overhead < 1000, `overhead ${overhead}`);
  // output such that the worker's data fits (500 bytes to spare) but not with the extra
  const n = EVENTS_DATA_MAX - overhead - 500;
  const big = await enqueue(r, room, `import sys\nsys.stdout.write("a" * ${n})`);
  const done = await waitStatus(r, big, 'finished', 60000);
  assert.equal(done.result.stdout.length, n, 'the hash keeps the whole result');
  ev = await jobEvents(r, room, big);
  const fin = ev.find((e) => e.data.status === 'finished');
  assert.ok(fin, 'the finished event went out');
  assert.equal(fin.data.result, undefined, 'without its result');
  assert.deepEqual(fin.data.user, { id: 7, username: 'ann' });
  assert.ok(Buffer.byteLength(JSON.stringify(fin.data)) <= EVENTS_DATA_MAX);
  // a job from before event_extra existed: the events as they were
  const old = await enqueue(r, room, 'print(1)', '');
  await waitStatus(r, old, 'finished');
  ev = await jobEvents(r, room, old);
  assert.equal(ev[1].data.user, undefined);
  assert.equal(ev[1].data.result.stdout, '1\n');
}));
