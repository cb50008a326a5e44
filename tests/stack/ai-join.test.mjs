// Joining an AI job under way (fcgi/h_ai.c, ask): a request that finds the room's pending mark
// joins the job it names only once that job exists. The first of two identical requests
// claims the mark with the id it picked and creates the job after its rate limit and
// admission checks; a claim whose job never comes (429, queue full, a Redis error, a claimer
// that died) must not hand its id to anyone, or their GET /api/jobs/{id} answers 404 for
// ever. The claimer's moment between claim and job is made long here by planting the mark
// by hand, as a failing claimer leaves it; an OpenAI-compatible double is the provider.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { call, createRoom, newUser, redis } from '../lib/api.mjs';
import { waitJob } from '../lib/jobs.mjs';
import { useStackAiDouble, aiMarker } from '../lib/openai-double.mjs';


const ai = useStackAiDouble();
const marker = aiMarker;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ask = (token, room, kind, body = {}) => call('POST', `/api/rooms/${room.id}/ai/${kind}`, { token, body });
const ghostId = () => randomBytes(8).toString('hex'); // a job id no job has
const LIMIT = 10; // AI_RATE_LIMIT of the test stack (the default)

async function owner() {
  const u = await newUser('aij');
  const room = await createRoom(u.token, { language: 'c' });
  return { u, room };
}

// The request's cache key, as the API computes it: asked once in a room of its own.
async function cacheKey(u, kind, body) {
  const room = await createRoom(u.token, { language: 'c' });
  const r = await ask(u.token, room, kind, body);
  assert.equal(r.status, 202, r.text);
  assert.equal((await waitJob(u.token, r.json.job.id)).status, 'finished');
  return JSON.parse(redis('HGET', `cc:{jobs}:job:${r.json.job.id}`, 'request')).cache_key;
}

// GET /api/jobs/{id} answers 200 within ms (a joined job exists by the time it is told).
async function jobExists(token, id, ms = 3000) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await call('GET', `/api/jobs/${id}`, { token });
    if (r.status === 200) return r.json.job;
    if (Date.now() > end) throw new Error(`job ${id}: ${r.status} ${r.text}`);
    await sleep(100);
  }
}

// A room whose pending mark for a request of this kind holds a claim no job will ever have,
// as a claimer between SET NX and its job leaves it (or leaves it behind when it dies).
async function plantClaim(kind) {
  const { u, room } = await owner();
  const body = { code: `int ${marker()};\n` };
  const key = await cacheKey(u, kind, body);
  const pending = `cc:room:{${room.id}}:ai:pending:${key}`;
  const ghost = ghostId();
  assert.equal(redis('SET', pending, ghost, 'PX', '10000'), 'OK');
  return { u, room, body, pending, ghost };
}

// The user's AI rate limit with n requests counted in this minute (lib/ratelimit.c's set).
// One redis-cli call (each is a process the test waits for, its double's answers with it:
// three per user and round kept a loaded machine's double a second late).
const PLANT = `redis.call('DEL', KEYS[1])
if #ARGV == 0 then return 0 end
redis.call('ZADD', KEYS[1], unpack(ARGV))
return redis.call('PEXPIRE', KEYS[1], 60000)`;
function spent(u, n) {
  const now = Date.now();
  const args = [];
  for (let i = 0; i < n; i++) args.push(String(now), `planted-${i}-${randomBytes(4).toString('hex')}`);
  redis('EVAL', PLANT, '1', `cc:rl:ai:${u.user.id}`, ...args);
}

test('a pending mark whose job does not exist yet is not joined: when its claimer drops it (429), the request makes a job of its own', async () => {
  // the first request's claim, between SET NX and its rate-limit check
  const { u, room, body, pending, ghost } = await plantClaim('hint');
  const asking = ask(u.token, room, 'hint', body);
  await sleep(300);
  // its rate limit said 429: it gives the claim back, and no job ever has that id
  assert.equal(redis('EVAL', "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", '1', pending, ghost), '1');
  const r = await asking;
  assert.equal(r.status, 202, r.text);
  assert.notEqual(r.json.job.id, ghost, 'joined a job that will never exist');
  assert.equal(r.json.joined, undefined);
  assert.equal((await call('GET', `/api/jobs/${ghost}`, { token: u.token })).status, 404);
  const job = await waitJob(u.token, r.json.job.id);
  assert.equal(job.status, 'finished');
  assert.equal(job.result.kind, 'hint');
});

test('a pending mark whose job appears meanwhile is joined with that job id', async () => {
  const { u, room } = await owner();
  const m = marker();
  // at the provider until the test lets it answer (held by the double; the test stack's
  // AI_TIMEOUT_MS is 4 s): the job's record is set aside for 300 ms of that, right after it
  // is seen running, and put back before the answer may come, so the worker never ends the
  // job while its record is aside (the record put back would be the old `running` one)
  ai.double.script(m, [{ text: 'the first asker\'s answer', hold: true }]);
  const body = { code: `int ${m};\n` };
  const first = await ask(u.token, room, 'hint', body);
  assert.equal(first.status, 202, first.text);
  const key = JSON.parse(redis('HGET', `cc:{jobs}:job:${first.json.job.id}`, 'request')).cache_key;
  const pending = `cc:room:{${room.id}}:ai:pending:${key}`;
  // the same job's mark, back to a claim of a job not created yet: the request waits for it
  const hash = `cc:{jobs}:job:${first.json.job.id}`;
  await waitJob(u.token, first.json.job.id, { until: (j) => j.status === 'running' }); // held at the provider
  redis('RENAME', hash, `${hash}:aside`);
  const asking = ask(u.token, room, 'hint', body);
  await sleep(300);
  redis('RENAME', `${hash}:aside`, hash); // the job is created
  // the provider answers only once the request was answered and the mark read: had the job
  // ended first, the request would find the answer in the cache instead of the job to join,
  // and the worker deletes the mark as the job ends
  try {
    const r = await asking;
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.job.id, first.json.job.id);
    assert.equal(r.json.joined, true);
    assert.equal(redis('GET', pending), first.json.job.id);
  } finally {
    ai.double.release(m);
  }
  assert.equal((await waitJob(u.token, first.json.job.id)).result.text, 'the first asker\'s answer');
});

test('a claim whose job never comes (its claimer died): 503 ai_busy with Retry-After after a bounded wait, never its id', async () => {
  const { u, room, body, pending, ghost } = await plantClaim('review');
  const t0 = Date.now();
  const r = await ask(u.token, room, 'review', body);
  const took = Date.now() - t0;
  assert.equal(r.status, 503, r.text);
  assert.equal(r.json.error, 'ai_busy');
  assert.equal(r.headers.get('retry-after'), '1');
  assert.ok(took >= 800 && took < 5000, `answered after ${took} ms`); // AI_JOIN_WAIT_MS is 1 s
  // once the dead claim expires, the request is queued as a new one
  redis('DEL', pending);
  const again = await ask(u.token, room, 'review', body);
  assert.equal(again.status, 202, again.text);
  assert.notEqual(again.json.job.id, ghost);
  assert.equal((await waitJob(u.token, again.json.job.id)).status, 'finished');
});

test('identical requests at once from two users at the edge of their rate limit: every 202 names a job that exists', async () => {
  const { u: a, room } = await owner();
  const b = await newUser('aij');
  const inv = await call('GET', `/api/rooms/${room.id}`, { token: a.token });
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: b.token, body: { invite: inv.json.room.invite } })).status, 200);
  const ids = [];
  try {
    for (let round = 0; round < 6; round++) {
      const m = marker();
      // held long enough for the round's requests to find the job running (a later one is
      // answered 200 from the cache, which the round allows), and well inside the worker's
      // AI_TIMEOUT_MS (4 s) on a loaded machine, where the double's answer came 2.4 s late
      ai.double.script(m, [{ text: `answer ${round}`, delayMs: 1000 }]);
      const body = { code: `int ${m};\n` };
      spent(a, LIMIT); // a may not start a job: each of its claims ends in 429
      spent(b, LIMIT - 1); // b may start exactly one
      const rs = await Promise.all(Array.from({ length: 24 }, (_, i) => ask(i % 2 ? b.token : a.token, room, 'hint', body)));
      const got = rs.map((r) => `${r.status} ${r.json?.error ?? r.json?.job?.id ?? ''}`);
      // 200: a request that came once the job had answered (a slow machine) gets the answer
      for (const r of rs) assert.ok([200, 202, 429].includes(r.status), `round ${round}: ${got}`);
      const round202 = new Set(rs.filter((r) => r.status === 202).map((r) => r.json.job.id));
      for (const id of round202) await jobExists(a.token, id);
      assert.equal(round202.size, 1, `round ${round}: one job, b's: ${got}`);
      ids.push(...round202);
    }
  } finally {
    spent(a, 0);
    spent(b, 0);
  }
  for (const id of ids) assert.equal((await waitJob(a.token, id)).status, 'finished');
});

test('a full queue: identical requests at once are all refused, none is told the id of a job never created', async () => {
  const { u: a, room } = await owner();
  const b = await newUser('aij');
  const inv = await call('GET', `/api/rooms/${room.id}`, { token: a.token });
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: b.token, body: { invite: inv.json.room.invite } })).status, 200);
  const body = { code: `int ${marker()};\n` };
  const FULL = 100000000; // past any JOB_QUEUE_MAX: every claimer's job is refused admission
  redis('INCRBY', 'cc:{jobs}:fair:depth', String(FULL));
  let rs;
  try {
    rs = await Promise.all(Array.from({ length: 16 }, (_, i) => ask(i % 2 ? b.token : a.token, room, 'hint', body)));
  } finally {
    redis('DECRBY', 'cc:{jobs}:fair:depth', String(FULL));
  }
  const got = rs.map((r) => `${r.status} ${r.json?.error ?? r.json?.job?.id ?? ''}`);
  for (const r of rs) assert.equal(r.json?.error, 'queue_full', `${got}`);
  // nothing is left claimed: the next one is queued
  const r = await ask(b.token, room, 'hint', body);
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.joined, undefined);
  assert.equal((await waitJob(b.token, r.json.job.id)).status, 'finished');
});
