// A run submitted again is the same run (docs/API.md, "Sending a run again is safe"): the
// same user's same request_id in the same room within 10 minutes answers the first job with
// `repeated: true`, makes no second job, is not counted against EXECUTION_RATE_LIMIT, and
// of copies racing through several API processes exactly one makes a job (the mark is
// written in the job's own creation script, lib/lua/job_create.lua).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { call, newUser, createRoom, roomEvents, redis, redisCliTarget, clusterMasters } from '../lib/api.mjs';
import { run, waitJob } from '../lib/jobs.mjs';

const runs = async (token, room) => {
  const r = await call('GET', `/api/rooms/${room.id}/executions?limit=20`, { token });
  assert.equal(r.status, 200, r.text);
  return r.json.executions;
};
const queuedEvents = (room, id) => roomEvents(room.id)
  .filter((e) => e.type === 'execution' && e.data.job_id === id && e.data.status === 'queued');
const counted = (user) => Number(redis('ZCARD', `cc:rl:exec:${user.user.id}`));

// Writes held for ms on the stack's Redis; on a Redis Cluster on every master, the queue's
// among them (the node REDIS_URL names need not be the one holding `{jobs}`).
function pauseWrites(ms) {
  for (const t of process.env.REDIS_CLUSTER ? clusterMasters() : [redisCliTarget()])
    execFileSync('redis-cli', [...t, 'CLIENT', 'PAUSE', String(ms), 'WRITE']);
}

async function invite(room, guest) {
  const r = await call('POST', `/api/rooms/${room.id}/join`, { token: guest.token, body: { invite: room.invite } });
  assert.equal(r.status, 200, r.text);
}

test('the same request_id twice: the first job again, marked repeated; one job, one queued event, counted once', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const body = { language: 'python', code: 'print(6 * 7)\n', request_id: 'run-1.a_B' };
  const first = await run(a.token, room, body);
  assert.equal(first.status, 202, first.text);
  assert.equal(first.json.repeated, undefined, 'a first answer is no repeat');
  const id = first.json.job.id;
  // the same body with other spacing and member order is the same request
  const again = await call('POST', `/api/rooms/${room.id}/executions`, { token: a.token,
    body: `{ "request_id" : "run-1.a_B", "code": "print(6 * 7)\\n",  "language":"python" }` });
  assert.equal(again.status, 202, again.text);
  assert.equal(again.json.repeated, true);
  assert.equal(again.json.job.id, id);
  assert.equal(again.json.job.language, 'python');
  assert.equal(again.json.job.version, first.json.job.version);
  assert.equal(again.headers.get('location'), `/api/jobs/${id}`);
  const job = await waitJob(a.token, id);
  assert.equal(job.result.stdout, '42\n');
  // once it is over, a repeat says so
  const late = await run(a.token, room, body);
  assert.equal(late.status, 202, late.text);
  assert.deepEqual([late.json.job.id, late.json.job.status, late.json.repeated], [id, 'finished', true]);
  assert.deepEqual((await runs(a.token, room)).map((x) => x.id), [id]);
  assert.equal(queuedEvents(room, id).length, 1);
  assert.equal(roomEvents(room.id).filter((e) => e.type === 'execution' && e.data.status === 'queued').length, 1);
  assert.equal(counted(a), 1, 'only the first counts against EXECUTION_RATE_LIMIT');
});

test('a different run under a used request_id: 409 request_id_reused, nothing made', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const first = await run(a.token, room, { code: 'print(1)\n', request_id: 'same' });
  assert.equal(first.status, 202, first.text);
  for (const other of [{ code: 'print(2)\n' }, { code: 'print(1)\n', stdin: 'x' }, {}]) {
    const r = await run(a.token, room, { ...other, request_id: 'same' });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error, 'request_id_reused');
    assert.match(r.json.message, new RegExp(`request_id same .*job ${first.json.job.id}`));
  }
  assert.equal((await runs(a.token, room)).length, 1);
  // without a request_id nothing is recognised: the same body is a new run
  const plain = await run(a.token, room, { code: 'print(1)\n' });
  assert.equal(plain.status, 202, plain.text);
  assert.notEqual(plain.json.job.id, first.json.job.id);
  await waitJob(a.token, plain.json.job.id);
  await waitJob(a.token, first.json.job.id);
});

test('ten copies at once through the API processes: exactly one job, counted once', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const made = [];
  // Redis holds every write (scripts included) for a moment while the copies come in: the
  // ones the API processes take at once all read that the request id is new, then reach
  // their writes together, as copies racing on a busy server would. A check apart from
  // the creation lets several through here; the claim in the creation's script does not.
  for (let round = 0; round < 3; round++) {
    const body = { language: 'bash', code: `echo ${round}`, request_id: `burst-${round}` };
    pauseWrites(500);
    const answers = await Promise.all(Array.from({ length: 10 }, () => run(a.token, room, body)));
    for (const r of answers) assert.equal(r.status, 202, r.text);
    const ids = new Set(answers.map((r) => r.json.job.id));
    assert.equal(ids.size, 1, `round ${round}: one job for all: ${[...ids].join(', ')}`);
    assert.equal(answers.filter((r) => !r.json.repeated).length, 1, 'one answer made it, nine repeat it');
    made.unshift(...ids);
  }
  assert.deepEqual((await runs(a.token, room)).map((x) => x.id), made);
  for (const id of made) assert.equal(queuedEvents(room, id).length, 1);
  assert.equal(counted(a), 3, 'copies that raced past the first look took their count back');
  for (const id of made) await waitJob(a.token, id);
});

test('another user, or another room, with the same request_id: separate jobs', async () => {
  const a = await newUser();
  const b = await newUser();
  const room = await createRoom(a.token);
  const room2 = await createRoom(a.token);
  await invite(room, b);
  const body = { code: 'print(3)\n', request_id: 'shared-id' };
  const ra = await run(a.token, room, body);
  const rb = await run(b.token, room, body);
  const r2 = await run(a.token, room2, body);
  for (const r of [ra, rb, r2]) {
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.repeated, undefined);
  }
  assert.equal(new Set([ra, rb, r2].map((r) => r.json.job.id)).size, 3);
  assert.equal((await runs(a.token, room)).length, 2);
  assert.equal((await runs(a.token, room2)).length, 1);
  for (const r of [ra, rb, r2]) await waitJob(a.token, r.json.job.id);
});

test('a repeat is answered even when the user has used up the runs of the minute', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const ids = [];
  for (let i = 0; i < 10; i++) {
    const r = await run(a.token, room, { language: 'bash', code: ':', request_id: `n${i}` });
    assert.equal(r.status, 202, r.text);
    ids.push(r.json.job.id);
  }
  const repeat = await run(a.token, room, { language: 'bash', code: ':', request_id: 'n9' });
  assert.equal(repeat.status, 202, repeat.text);
  assert.deepEqual([repeat.json.job.id, repeat.json.repeated], [ids[9], true]);
  const fresh = await run(a.token, room, { language: 'bash', code: ':', request_id: 'n10' });
  assert.equal(fresh.status, 429, fresh.text);
  assert.equal(fresh.json.error, 'rate_limited');
  for (const id of ids) await waitJob(a.token, id);
});

test('a repeat is answered as the first request was, even when the document has since grown past the code limit', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const body = { language: 'bash', request_id: 'doc-run' }; // no code: the room's document
  const put = async (revision, ops) => {
    const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision, ops } });
    assert.equal(r.status, 200, r.text);
    return r.json.revision;
  };
  const rev = await put(0, ['echo small\n']);
  const first = await run(a.token, room, body);
  assert.equal(first.status, 202, first.text);
  const id = first.json.job.id;
  // the document is now over the 64 KiB a run's code may have: a new run of it is refused
  await put(rev, [11, `# ${'x'.repeat(64 * 1024)}\n`]);
  const fresh = await run(a.token, room, { ...body, request_id: 'doc-run-2' });
  assert.equal(fresh.status, 413, fresh.text);
  assert.equal(fresh.json.error, 'code_too_large');
  // the repeat is the run that was made, not a new one that would no longer be
  const repeat = await run(a.token, room, body);
  assert.equal(repeat.status, 202, repeat.text);
  assert.deepEqual([repeat.json.job.id, repeat.json.repeated], [id, true]);
  assert.equal(repeat.headers.get('location'), `/api/jobs/${id}`);
  // and a different request under the id is still refused as one
  const other = await run(a.token, room, { ...body, stdin: 'x' });
  assert.equal(other.status, 409, other.text);
  assert.equal(other.json.error, 'request_id_reused');
  assert.equal((await waitJob(a.token, id)).result.stdout, 'small\n');
  assert.deepEqual((await runs(a.token, room)).map((x) => x.id), [id]);
});

test('malformed, oversized or hostile request ids: 400 invalid_request naming the field', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const cases = [
    ['', /request_id must not be empty/],
    ['x'.repeat(65), /request_id is too long/],
    [5, /request_id must be a string/],
    [['a'], /request_id must be a string/],
    ['a b', /request_id may only contain letters, digits/],
    ['a:b', /request_id may only contain/],
    ['{room}', /request_id may only contain/],
    ['*', /request_id may only contain/],
    ['ré', /request_id may only contain/],
    ['a\nb', /request_id must not contain control characters/],
    // strict JSON refuses \u0000 before the field is looked at
    ['a\u0000b', /\\u0000/, 'invalid_json'],
  ];
  for (const [rid, why, code = 'invalid_request'] of cases) {
    const r = await run(a.token, room, { code: 'print(1)\n', request_id: rid });
    assert.equal(r.status, 400, `${JSON.stringify(rid)}: ${r.text}`);
    assert.equal(r.json.error, code, r.text);
    assert.match(r.json.message, why, JSON.stringify(rid));
  }
  // the longest allowed one is fine
  const ok = await run(a.token, room, { code: 'print(1)\n', request_id: 'x'.repeat(64) });
  assert.equal(ok.status, 202, ok.text);
  assert.deepEqual((await runs(a.token, room)).map((x) => x.id), [ok.json.job.id]);
  await waitJob(a.token, ok.json.job.id);
});
