// Code execution through the real stack: the API validates, limits and queues; the worker
// runs the code in the local sandbox; the result reaches GET /api/jobs and the room's
// `execution` events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import EventSource from 'eventsource';
import { BASE, call, newUser, createRoom, roomEvents } from '../lib/api.mjs';
import { waitJob } from '../lib/jobs.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const run = (token, room, body = {}) => call('POST', `/api/rooms/${room.id}/executions`, { token, body });

test('GET /api/runtimes lists the installed runtimes with Piston names and aliases', async () => {
  const r = await call('GET', '/api/runtimes');
  assert.equal(r.status, 200, r.text);
  const byName = Object.fromEntries(r.json.runtimes.map((x) => [x.language, x]));
  for (const lang of ['c', 'c++', 'python', 'javascript', 'bash']) {
    assert.ok(byName[lang], `${lang} is offered`);
    assert.match(byName[lang].version, /^\d+(\.\d+)*$/);
  }
  assert.ok(byName['c++'].aliases.includes('cpp'));
  assert.ok(byName.python.aliases.includes('py'));
  assert.ok(byName.javascript.aliases.includes('js'));
});

test('a run answers 202 {job}; the room sees queued, running, finished with the result', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const r = await run(a.token, room, { language: 'py', code: 'import sys\nprint(input()[::-1])\nprint("err", file=sys.stderr)\n', stdin: 'olleh\n' });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.job.status, 'queued');
  assert.equal(r.json.job.language, 'python');
  assert.equal(r.headers.get('location'), `/api/jobs/${r.json.job.id}`);
  const job = await waitJob(a.token, r.json.job.id);
  assert.equal(job.status, 'finished');
  assert.equal(job.result.stdout, 'hello\n');
  assert.equal(job.result.stderr, 'err\n');
  assert.equal(job.result.exit_code, 0);
  assert.equal(job.result.truncated, false);
  assert.ok(job.result.time_ms >= 0);
  const statuses = roomEvents(room.id).filter((e) => e.type === 'execution' && e.data.job_id === job.id).map((e) => e.data.status);
  assert.deepEqual(statuses, ['queued', 'running', 'finished']);
  const fin = roomEvents(room.id).find((e) => e.type === 'execution' && e.data.status === 'finished');
  assert.equal(fin.data.result.stdout, 'hello\n');
});

test('code and stdin may hold control characters (a form feed in the source, bytes the program reads): the program gets them as sent', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const code = 'import sys\n\f\n# after a form feed\nsys.stdout.write(repr(sys.stdin.buffer.read()))\n';
  const r = await run(a.token, room, { language: 'python', code, stdin: 'a\u0001b\u001bc\u007f\td\r\n' });
  assert.equal(r.status, 202, r.text);
  const job = await waitJob(a.token, r.json.job.id);
  assert.equal(job.status, 'finished', JSON.stringify(job));
  assert.equal(job.result.exit_code, 0, JSON.stringify(job.result));
  assert.equal(job.result.stdout, "b'a\\x01b\\x1bc\\x7f\\td\\r\\n'");
});

test('code and language default to the room document; C compiles; a compile error is reported', async () => {
  const a = await newUser();
  const room = await createRoom(a.token, { language: 'c' });
  const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision: 0, ops: ['#include <stdio.h>\nint main(void){printf("from the doc %d\\n", 6*7);return 3;}\n'] } });
  assert.equal(op.status, 200, op.text);
  let r = await run(a.token, room);
  assert.equal(r.status, 202, r.text);
  let job = await waitJob(a.token, r.json.job.id);
  assert.equal(job.result.stdout, 'from the doc 42\n');
  assert.equal(job.result.exit_code, 3);
  r = await run(a.token, room, { code: 'int main(void) { return missing; }\n' });
  job = await waitJob(a.token, r.json.job.id);
  assert.equal(job.status, 'finished');
  assert.ok(job.result.compile, 'a compile step is reported');
  assert.match(job.result.compile.stderr, /missing/);
  assert.notEqual(job.result.compile.exit_code, 0);
});

test('bad requests: unknown language, oversized code and stdin, bad args, malformed JSON', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const cases = [
    [{ language: 'cobol', code: 'x' }, 400, 'unknown_runtime'],
    [{ language: 'python', version: '1.0', code: 'x' }, 400, 'unknown_runtime'],
    [{ code: 'x'.repeat(64 * 1024 + 1) }, 413, 'code_too_large'],
    [{ code: 'print(1)', stdin: 'y'.repeat(64 * 1024 + 1) }, 400, 'invalid_request'],
    [{ code: 'print(1)', args: 'notarray' }, 400, 'invalid_request'],
    [{ code: 'print(1)', args: Array(33).fill('a') }, 400, 'invalid_request'],
    [{ code: 'print(1)', args: [1, 2] }, 400, 'invalid_request'],
    [{ code: 'print(1)', args: ['a\nb'] }, 400, 'invalid_request'],
    [{ code: 5 }, 400, 'invalid_request'],
    [{ language: '' }, 400, 'invalid_request'],
  ];
  for (const [body, status, error] of cases) {
    const r = await run(a.token, room, body);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 60)}: ${r.text}`);
    assert.equal(r.json.error, error);
  }
  for (const raw of ['{"code":', '[1,2]', '{"code":"\\ud800"}']) {
    const r = await call('POST', `/api/rooms/${room.id}/executions`, { token: a.token, body: raw });
    assert.equal(r.status, 400, raw);
  }
  const r = await call('POST', `/api/rooms/${room.id}/executions`, { token: a.token, body: 'code=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(r.status, 415);
});

test('viewers and strangers cannot run; jobs are visible to the room only', async () => {
  const owner = await newUser();
  const viewer = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token);
  await call('POST', `/api/rooms/${room.id}/join`, { token: viewer.token, body: { invite: room.invite } });
  await call('PUT', `/api/rooms/${room.id}/members/${viewer.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal((await run(viewer.token, room, { code: 'print(1)' })).status, 403);
  assert.equal((await run(stranger.token, room, { code: 'print(1)' })).status, 403);
  assert.equal((await run(undefined, room, { code: 'print(1)' })).status, 401);
  const r = await run(owner.token, room, { code: 'print(1)' });
  assert.equal(r.status, 202);
  assert.equal((await call('GET', `/api/jobs/${r.json.job.id}`, { token: viewer.token })).status, 200);
  assert.equal((await call('GET', '/api/jobs/doesnotexist0000', { token: owner.token })).status, 404);
  await waitJob(owner.token, r.json.job.id);
});

test('a stranger to a private room gets 404 job_not_found for its jobs, as for no job at all (GET and DELETE)', async () => {
  const owner = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token);
  const r = await run(owner.token, room, { language: 'python', code: 'import time\ntime.sleep(30)\n' });
  assert.equal(r.status, 202, r.text);
  const id = r.json.job.id;
  const unknown = 'doesnotexist0000';
  for (const method of ['GET', 'DELETE']) {
    const theirs = await call(method, `/api/jobs/${id}`, { token: stranger.token });
    const none = await call(method, `/api/jobs/${unknown}`, { token: stranger.token });
    assert.equal(theirs.status, 404, `${method}: ${theirs.text}`);
    assert.equal(theirs.json.error, 'job_not_found');
    // the same answer but for the id it names: nothing says the job exists
    assert.equal(theirs.json.message.replace(id, '{id}'), none.json.message.replace(unknown, '{id}'));
    assert.equal(none.status, 404);
  }
  // the job was not cancelled by the stranger's DELETE; its owner can
  assert.notEqual((await call('GET', `/api/jobs/${id}`, { token: owner.token })).json.job.status, 'cancelled');
  const c = await call('DELETE', `/api/jobs/${id}`, { token: owner.token });
  assert.equal(c.status, 200, c.text);
});

test('code and stdin are bounded in bytes, 64 KiB each; code over it is 413 code_too_large from the body and from the document alike', async () => {
  const a = await newUser();
  const room = await createRoom(a.token, { language: 'bash' });
  // 2-byte characters: 32,769 of them are 65,538 bytes, well under 65,536 characters
  const over = 'é'.repeat(32 * 1024 + 1);
  assert.equal(Buffer.byteLength(over), 64 * 1024 + 2);
  let r = await run(a.token, room, { code: `#${over}` });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error, 'code_too_large');
  assert.match(r.json.message, /64 KiB/);
  r = await run(a.token, room, { code: 'cat >/dev/null', stdin: over });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error, 'invalid_request');
  assert.match(r.json.message, /stdin/);
  // exactly 64 KiB of bytes is taken, code and stdin alike
  const exact = `#${'é'.repeat(32 * 1024 - 1)}\n`;
  assert.equal(Buffer.byteLength(exact), 64 * 1024);
  r = await run(a.token, room, { code: exact, stdin: 'é'.repeat(32 * 1024) });
  assert.equal(r.status, 202, r.text);
  await waitJob(a.token, r.json.job.id);
  // the room's document over 64 KiB of bytes: the same answer
  const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision: 0, ops: [`#${over}`] } });
  assert.equal(op.status, 200, op.text);
  r = await run(a.token, room, {});
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error, 'code_too_large');
});

test('EXECUTION_RATE_LIMIT per user: then 429 with Retry-After, other users unaffected', async () => {
  const a = await newUser();
  const b = await newUser();
  const room = await createRoom(a.token);
  const ids = [];
  for (let i = 0; i < 10; i++) {
    const r = await run(a.token, room, { language: 'bash', code: `echo ${i}` });
    assert.equal(r.status, 202, `run ${i + 1}: ${r.text}`);
    ids.push(r.json.job.id);
  }
  const limited = await run(a.token, room, { language: 'bash', code: 'echo no' });
  assert.equal(limited.status, 429);
  assert.equal(limited.json.error, 'rate_limited');
  const retry = Number(limited.headers.get('retry-after'));
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  const roomB = await createRoom(b.token);
  assert.equal((await run(b.token, roomB, { language: 'bash', code: 'echo yes' })).status, 202);
  // every accepted job ran
  for (const [i, id] of ids.entries()) assert.equal((await waitJob(a.token, id)).result.stdout, `${i}\n`);
});

test('hostile code ends contained and the service keeps working', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const bomb = await run(a.token, room, { language: 'bash', code: ':(){ :|:& };:' });
  const loop = await run(a.token, room, { language: 'python', code: 'while True: pass' });
  const net = await run(a.token, room, { language: 'python', code: 'import socket\ns=socket.socket()\ns.settimeout(2)\ntry:\n  s.connect(("127.0.0.1", 6379)); print("CONNECTED")\nexcept Exception as e:\n  print("refused", type(e).__name__)\n' });
  for (const r of [bomb, loop, net]) assert.equal(r.status, 202, r.text);
  const loopJob = await waitJob(a.token, loop.json.job.id);
  assert.equal(loopJob.status, 'finished');
  assert.match(loopJob.result.message || loopJob.result.status || '', /time/i);
  const netJob = await waitJob(a.token, net.json.job.id);
  assert.doesNotMatch(netJob.result.stdout, /CONNECTED/);
  await waitJob(a.token, bomb.json.job.id);
  const after = await run(a.token, room, { language: 'python', code: 'print("still here")' });
  assert.equal((await waitJob(a.token, after.json.job.id)).result.stdout, 'still here\n');
});

// Per job, its statuses in the order given ([{data: {job_id, status, position?}}]). A queued
// job is told its new place in line as the line moves: those repeated `queued` events count
// once. (fairness.test.mjs checks how the positions move.)
function statusesByJob(evs) {
  const m = new Map();
  for (const e of evs) {
    const id = e.data.job_id;
    if (!m.has(id)) m.set(id, []);
    const s = m.get(id);
    if (e.data.status === 'queued' && e.data.position !== undefined) {
      assert.ok(Number.isInteger(e.data.position) && e.data.position >= 0, `job ${id}: position ${e.data.position}`);
    }
    if (e.data.status === 'queued' && s.at(-1) === 'queued') continue;
    s.push(e.data.status);
  }
  return m;
}

async function subscribeExecutions(user, room) {
  const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: user.token, body: {} });
  assert.equal(t.status, 200, t.text);
  const es = new EventSource(`${BASE}/events/rooms/${room.id}?ticket=${t.json.ticket}`);
  es.got = [];
  es.addEventListener('execution', (e) => es.got.push({ data: JSON.parse(e.data) }));
  await new Promise((res, rej) => { es.onopen = res; es.onerror = rej; });
  return es;
}

test('30 runs at once: every subscriber sees queued, running, finished once each and in order; GET says finished only once the event is in the history', async () => {
  const owner = await newUser();
  const room = await createRoom(owner.token, { language: 'bash' });
  // three users: EXECUTION_RATE_LIMIT is 10 runs a minute per user
  const users = [owner, await newUser(), await newUser()];
  for (const u of users.slice(1)) {
    const j = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite: room.invite } });
    assert.equal(j.status, 200, j.text);
  }
  const subs = [await subscribeExecutions(owner, room), await subscribeExecutions(users[1], room)];
  try {
    const posted = await Promise.all(users.flatMap((u) => Array.from({ length: 10 }, (_, i) =>
      run(u.token, room, { language: 'bash', code: `echo ${i}` }))));
    for (const r of posted) assert.equal(r.status, 202, r.text);
    const ids = posted.map((r) => r.json.job.id);
    // each job read until it is over; the moment GET says so, its event must be in the history
    await Promise.all(ids.map(async (id) => {
      const job = await waitJob(owner.token, id, { ms: 60000 });
      assert.equal(job.status, 'finished', JSON.stringify(job));
      const hist = statusesByJob(roomEvents(room.id).filter((e) => e.type === 'execution')).get(id) || [];
      assert.ok(hist.includes('finished'), `GET /api/jobs/${id} said finished; the history had ${hist}`);
    }));
    const end = Date.now() + 20000;
    while (!subs.every((s) => s.got.filter((e) => e.data.status === 'finished').length === 30)) {
      if (Date.now() > end) throw new Error('not every subscriber got 30 finished events');
      await sleep(50);
    }
    const expected = ['queued', 'running', 'finished'];
    for (const [n, s] of subs.entries()) {
      const got = statusesByJob(s.got);
      for (const id of ids) assert.deepEqual(got.get(id), expected, `subscriber ${n + 1}, job ${id}`);
    }
    const hist = statusesByJob(roomEvents(room.id).filter((e) => e.type === 'execution'));
    for (const id of ids) assert.deepEqual(hist.get(id), expected, `history of job ${id}`);
  } finally {
    for (const s of subs) s.close();
  }
});
