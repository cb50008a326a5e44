// Who ran a run, with what input, and the room's last runs (lib/jobstate.c, fcgi/h_jobs.c):
// every execution event carries the user who started it and the stdin (bounded), and
// GET /api/rooms/{id}/executions gives the room's newest runs with their results, so a
// reloaded page or a late joiner shows the last output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, connectStackRedis, newUser, createRoom, roomEvents, redis } from '../lib/api.mjs';
import { run, waitJob } from '../lib/jobs.mjs';

const runs = (token, roomId, query = '') => call('GET', `/api/rooms/${roomId}/executions${query}`, { token });

async function invite(owner, room, guest) {
  const r = await call('POST', `/api/rooms/${room.id}/join`, { token: guest.token, body: { invite: room.invite } });
  assert.equal(r.status, 200, r.text);
}

test('every execution event says who ran it and with what input', async () => {
  const a = await newUser('runner');
  const room = await createRoom(a.token);
  const r = await run(a.token, room, { language: 'python', code: 'print(input().upper())\n', stdin: 'héllo 😀\n' });
  assert.equal(r.status, 202, r.text);
  const job = await waitJob(a.token, r.json.job.id);
  assert.equal(job.result.stdout, 'HÉLLO 😀\n');
  const events = roomEvents(room.id).filter((e) => e.type === 'execution' && e.data.job_id === job.id);
  assert.deepEqual(events.map((e) => e.data.status), ['queued', 'running', 'finished']);
  for (const e of events) {
    assert.deepEqual(e.data.user, { id: a.user.id, username: a.user.username }, e.raw);
    assert.equal(e.data.stdin_given, true);
    assert.equal(e.data.stdin, 'héllo 😀\n');
    assert.equal(e.data.stdin_truncated, false);
  }
  assert.equal(events[2].data.result.stdout, 'HÉLLO 😀\n', 'the result is still in the finished event');
  // the job itself says so too
  assert.deepEqual(job.user, { id: a.user.id, username: a.user.username });
  assert.equal(job.stdin, 'héllo 😀\n');
});

test('without stdin: stdin_given false; a long stdin is cut at a character boundary', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  let r = await run(a.token, room, { language: 'python', code: 'print(1)\n' });
  assert.equal(r.status, 202, r.text);
  const plain = await waitJob(a.token, r.json.job.id);
  const ev = roomEvents(room.id).find((e) => e.type === 'execution' && e.data.job_id === plain.id && e.data.status === 'finished');
  assert.equal(ev.data.stdin_given, false);
  assert.equal(ev.data.stdin, '');
  // 1,023 ASCII bytes then a 4-byte emoji: the emoji does not fit in 1,024 bytes
  const long = 'a'.repeat(1023) + '😀'.repeat(100);
  r = await run(a.token, room, { language: 'python', code: 'import sys\nprint(len(sys.stdin.read()))\n', stdin: long });
  assert.equal(r.status, 202, r.text);
  const cut = await waitJob(a.token, r.json.job.id);
  assert.equal(cut.result.stdout, `${1023 + 100}\n`, 'the program got the whole input');
  assert.equal(cut.stdin, 'a'.repeat(1023));
  assert.equal(cut.stdin_truncated, true);
  assert.equal(cut.stdin_given, true);
});

test('a cancelled run and a queued position update carry who started it too', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const r = await run(a.token, room, { language: 'python', code: 'import time\ntime.sleep(30)\n', stdin: 'x' });
  assert.equal(r.status, 202, r.text);
  await waitJob(a.token, r.json.job.id, { until: (j) => j.status === 'running' });
  const c = await call('DELETE', `/api/jobs/${r.json.job.id}`, { token: a.token });
  assert.equal(c.status, 200, c.text);
  const ev = roomEvents(room.id).find((e) => e.type === 'execution' && e.data.job_id === r.json.job.id && e.data.status === 'cancelled');
  assert.equal(ev.data.user.username, a.user.username);
  assert.equal(ev.data.stdin, 'x');
});

test('GET /api/rooms/{id}/executions: the newest runs first, with their results, to everyone in the room', async () => {
  const a = await newUser('owner');
  const b = await newUser('late');
  const room = await createRoom(a.token);
  assert.deepEqual((await runs(a.token, room.id)).json, { executions: [] });
  const ids = [];
  for (const n of [1, 2, 3]) {
    const r = await run(a.token, room, { language: 'python', code: `print(${n} * 7)\n`, stdin: n === 3 ? 'input three' : '' });
    assert.equal(r.status, 202, r.text);
    ids.push(r.json.job.id);
    await waitJob(a.token, r.json.job.id);
  }
  // a late joiner sees the last run and its output
  await invite(a, room, b);
  const last = await runs(b.token, room.id, '?limit=1');
  assert.equal(last.status, 200, last.text);
  assert.equal(last.json.executions.length, 1);
  const x = last.json.executions[0];
  assert.equal(x.id, ids[2]);
  assert.equal(x.status, 'finished');
  assert.equal(x.kind, 'execution');
  assert.equal(x.room, room.id);
  assert.equal(x.language, 'python');
  assert.match(x.version, /^\d/);
  assert.equal(x.result.stdout, '21\n');
  assert.deepEqual(x.user, { id: a.user.id, username: a.user.username });
  assert.equal(x.stdin, 'input three');
  assert.equal(x.stdin_given, true);
  for (const t of ['created_at', 'started_at', 'finished_at']) assert.ok(Number.isInteger(x[t]) && x[t] > 1.7e9, t);
  assert.ok(x.finished_at >= x.started_at && x.started_at >= x.created_at);
  const all = await runs(a.token, room.id);
  assert.deepEqual(all.json.executions.map((e) => e.id), [...ids].reverse());
  assert.deepEqual(all.json.executions.map((e) => e.result.stdout), ['21\n', '14\n', '7\n']);
  assert.equal(all.json.executions[1].stdin_given, false);
  // the other parameters of a query are ignored; limit bounds the list
  assert.deepEqual((await runs(a.token, room.id, '?x=1&limit=2&y')).json.executions.map((e) => e.id), [ids[2], ids[1]]);
  // an expired job drops out of the list instead of failing it
  redis('DEL', `cc:{jobs}:job:${ids[1]}`);
  assert.deepEqual((await runs(a.token, room.id)).json.executions.map((e) => e.id), [ids[2], ids[0]]);
  // AI jobs are not runs
  const ai = await call('POST', `/api/rooms/${room.id}/ai/hint`, { token: a.token, body: { code: 'print(1)\n' } });
  assert.ok([200, 202, 503].includes(ai.status), ai.text);
  assert.equal((await runs(a.token, room.id)).json.executions.length, 2);
});

test('a list of big results stays within 4 MiB: the runs past it come without result, result_omitted; never a 500', async () => {
  // each run prints 64 KiB of \x01 on stdout and on stderr: escaped as \u0001, about 790 KB
  // of JSON a result, so eleven of them were over the API's 8 MiB answer (500 out of memory)
  const owner = await newUser();
  const editor = await newUser();
  const room = await createRoom(owner.token, { language: 'python' });
  await invite(owner, room, editor);
  const code = "import sys\nsys.stdout.write('\\x01' * 65536)\nsys.stdout.flush()\nsys.stderr.write('\\x01' * 65536)\n";
  // twelve runs, six per user (EXECUTION_RATE_LIMIT is 10 a minute per user), one by one so
  // that their order is known
  const ids = [];
  for (let i = 0; i < 12; i++) {
    const r = await run((i % 2 ? editor : owner).token, room, { code });
    assert.equal(r.status, 202, r.text);
    ids.push(r.json.job.id);
  }
  for (const id of ids) {
    const job = await waitJob(owner.token, id, { ms: 60000 });
    assert.equal(job.status, 'finished', JSON.stringify(job).slice(0, 300));
    assert.equal(job.result.stdout, '\x01'.repeat(65536));
    assert.equal(job.result.stderr, '\x01'.repeat(65536));
  }
  const newest = [...ids].reverse();
  for (const limit of [20, 12, 11]) {
    const r = await runs(editor.token, room.id, `?limit=${limit}`);
    assert.equal(r.status, 200, `limit=${limit}: ${r.text.slice(0, 200)}`);
    assert.ok(Buffer.byteLength(r.text) <= 4 * 1024 * 1024, `limit=${limit}: ${Buffer.byteLength(r.text)} bytes`);
    const list = r.json.executions;
    assert.deepEqual(list.map((e) => e.id), newest.slice(0, limit), 'every run, newest first');
    const full = list.filter((e) => e.result);
    // five results fit in 4 MiB, the newest five
    assert.deepEqual(full.map((e) => e.id), newest.slice(0, 5));
    for (const e of full) {
      assert.equal(e.result.stdout.length, 65536);
      assert.equal(e.result_omitted, undefined);
    }
    for (const e of list.slice(5)) {
      assert.equal(e.result, undefined, e.id);
      assert.equal(e.result_omitted, true, e.id);
      // the rest of the run is there
      assert.equal(e.status, 'finished');
      assert.equal(e.language, 'python');
      assert.ok(Number.isInteger(e.finished_at));
    }
  }
  // a short list that fits is not cut
  const five = await runs(owner.token, room.id, '?limit=5');
  assert.equal(five.status, 200);
  assert.equal(five.json.executions.filter((e) => e.result).length, 5);
  // a run listed without its result: GET /api/jobs/{id} has it
  const omitted = (await runs(owner.token, room.id, '?limit=20')).json.executions.at(-1);
  assert.equal(omitted.result_omitted, true);
  const job = await call('GET', `/api/jobs/${omitted.id}`, { token: editor.token });
  assert.equal(job.status, 200);
  assert.equal(job.json.job.result.stderr, '\x01'.repeat(65536));
});

test('a run whose stored result is past the 6 MiB a worker stores (one from an older worker): GET /api/jobs/{id} answers 200 without it, result_omitted; never a 500', async () => {
  const a = await newUser();
  const room = await createRoom(a.token, { language: 'python' });
  const r = await run(a.token, room, { code: 'print(1)\n' });
  assert.equal(r.status, 202, r.text);
  const id = r.json.job.id;
  assert.equal((await waitJob(a.token, id)).status, 'finished');
  // 9 MiB of output, as a worker without the bound stored it with OUTPUT_LIMIT_KB raised:
  // more than the API's 8 MiB answer holds (it answered 500 out of memory)
  const big = JSON.stringify({ stdout: 'x'.repeat(9 * 1024 * 1024), stderr: '', exit_code: 0, signal: null,
    time_ms: 5, truncated: false, status: null, message: null, language: 'python', version: '3' });
  const rc = await connectStackRedis();
  try {
    await rc.cmd('HSET', `cc:{jobs}:job:${id}`, 'result', big);
  } finally {
    rc.close();
  }
  const job = await call('GET', `/api/jobs/${id}`, { token: a.token });
  assert.equal(job.status, 200, job.text.slice(0, 300));
  assert.equal(job.json.job.status, 'finished');
  assert.equal(job.json.job.result, undefined);
  assert.equal(job.json.job.result_omitted, true);
  assert.deepEqual(job.json.job.user, { id: a.user.id, username: a.user.username });
  // the room's list says the same of it
  const list = await runs(a.token, room.id);
  assert.equal(list.status, 200);
  assert.equal(list.json.executions[0].id, id);
  assert.equal(list.json.executions[0].result_omitted, true);
});

test('the room keeps its last 20 runs; deleting the room drops the list', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const key = `cc:room:{${room.id}}:runs`;
  // fill the list directly: 25 runs through the API would hit the rate limit
  for (let i = 0; i < 25; i++) redis('LPUSH', key, `j${i}`);
  const r = await run(a.token, room, { language: 'python', code: 'print(0)\n' });
  assert.equal(r.status, 202, r.text);
  assert.equal(Number(redis('LLEN', key)), 20);
  assert.equal(redis('LINDEX', key, '0'), r.json.job.id);
  assert.ok(Number(redis('TTL', key)) > 6 * 86400, 'it lives as long as a job');
  const list = await runs(a.token, room.id, '?limit=20');
  assert.deepEqual(list.json.executions.map((e) => e.id), [r.json.job.id], 'ids without a job are left out');
  await waitJob(a.token, r.json.job.id);
  assert.equal((await call('DELETE', `/api/rooms/${room.id}`, { token: a.token })).status, 204);
  assert.equal(redis('EXISTS', key), '0');
});

test('executions list: bad limits, strangers, unknown rooms, no token', async () => {
  const a = await newUser();
  const stranger = await newUser();
  const room = await createRoom(a.token);
  for (const q of ['?limit=0', '?limit=21', '?limit=-1', '?limit=+3', '?limit=', '?limit', '?limit=abc',
    '?limit=3.5', '?limit=1e1', '?limit=%31', '?limit= 2', '?limit=99999999999999999999999', '?limit=2&limit=3']) {
    const r = await runs(a.token, room.id, q);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
    assert.equal(r.json.error, 'invalid_request');
    assert.match(r.json.message, /limit/);
  }
  assert.equal((await runs(a.token, room.id, '?limit=20')).status, 200);
  let r = await runs(stranger.token, room.id);
  assert.equal(r.status, 403, r.text);
  assert.equal(r.json.error, 'not_a_member');
  r = await runs(a.token, 'nosuchroom0');
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error, 'room_not_found');
  r = await runs(undefined, room.id);
  assert.equal(r.status, 401, r.text);
  // a public room is readable by anyone signed in, its runs too
  const pub = await createRoom(a.token, { visibility: 'public' });
  r = await runs(stranger.token, pub.id);
  assert.equal(r.status, 200, r.text);
  r = await call('DELETE', `/api/rooms/${room.id}/executions`, { token: a.token });
  assert.equal(r.status, 405);
});
