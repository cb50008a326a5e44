// Fair job scheduling through the real stack (API, Redis, the stack's WORKERS=2 worker): a
// busy room cannot starve the others, people in one room take turns, full lines answer 429 at once, people are told their
// place in line, and DELETE /api/jobs/{id} cancels a queued or running job.
// Submissions over the stack's EXECUTION_RATE_LIMIT and with small backlog bounds go through
// the API binary run as CGI (lib/api.mjs cgi) with its own environment, against the same
// PostgreSQL and Redis; the stack's workers run the jobs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, cgi, cgiAsync, createRoom, newUser, redis, roomEvents } from '../lib/api.mjs';
import { cancel, drain, run, waitJob } from '../lib/jobs.mjs';
import { waitFor } from '../lib/procs.mjs';

// A run through the CGI API with its own bounds (EXECUTION_RATE_LIMIT lifted).
function cgiRun(token, room, body, env = {}) {
  return cgi({
    method: 'POST', uri: `/api/rooms/${room.id}/executions`, token, body,
    env: { EXECUTION_RATE_LIMIT: '100000', ...env },
  });
}

// n runs of one body through the CGI API, `at` at a time, with the same bounds; the job ids
// in the order they were answered, which is the order of the line give or take `at`. Each is
// a process of the ASan build: one after the other, 100 took 15 s on a quiet machine and over
// 100 s on a busy one, while the line they were to fill drained.
async function cgiRuns(token, room, body, env, n, at = 4) {
  const ids = [];
  let left = n;
  let failed = false;
  const one = async () => {
    while (left > 0 && !failed) {
      left--;
      const r = await cgiAsync({
        method: 'POST', uri: `/api/rooms/${room.id}/executions`, token, body,
        env: { EXECUTION_RATE_LIMIT: '100000', ...env },
      });
      if (r.status === 202) {
        ids.push(r.json.job.id);
      } else {
        failed = true;
        assert.equal(r.status, 202, r.body);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: at }, one));
  } catch (e) {
    await drain(token, ids);
    throw e;
  }
  return ids;
}

// The status of each job, read in one script on the node of the jobs' slot: the script names
// one job hash as its key, so that a Redis Cluster (redis-cli -c) runs it where they all live.
function jobStatuses(ids) {
  return redis('--raw', 'EVAL',
    "local o = {} for i, id in ipairs(ARGV) do o[i] = redis.call('HGET', 'cc:{jobs}:job:' .. id, 'status') end return o",
    '1', `cc:{jobs}:job:${ids[0]}`, ...ids).split('\n').filter(Boolean);
}

function jobEvents(roomId, id) {
  return roomEvents(roomId).filter((e) => e.type === 'execution' && e.data.job_id === id);
}

test('a busy room cannot starve another: the quiet room\'s print(1) runs while 100 noisy runs wait', async () => {
  const noisy = await newUser();
  const quiet = await newUser();
  const noisyRoom = await createRoom(noisy.token);
  const quietRoom = await createRoom(quiet.token);
  const env = { JOB_ROOM_BACKLOG_MAX: '200', JOB_USER_BACKLOG_MAX: '200' };
  // Each noisy run takes 4 s: the line must outlast the time it takes to queue it (100 CGI
  // runs of the ASan build, when 1 s runs had drained 62 of the 100 by the time the quiet
  // run was queued); cancelled at the end, they cost no wait.
  const ids = await cgiRuns(noisy.token, noisyRoom, { code: 'import time; time.sleep(4)' }, env, 100);
  try {
    const t0 = Date.now();
    const q = await run(quiet.token, quietRoom, { code: 'print(1)' });
    assert.equal(q.status, 202, q.text);
    const job = await waitJob(quiet.token, q.json.job.id);
    const waited = Date.now() - t0;
    assert.equal(job.status, 'finished');
    assert.equal(job.result.stdout, '1\n');
    // when it was done, most of the noisy room's runs were still waiting
    const statuses = jobStatuses(ids);
    const queued = statuses.filter((s) => s === 'queued').length;
    assert.ok(queued >= 50, `only ${queued} of the noisy room's 100 runs still queued`);
    console.log(`  quiet room's print(1) under 100 noisy runs: ${waited} ms (noisy still queued: ${queued})`);
    // its queued event: nothing ahead of it under the policy
    const qe = jobEvents(quietRoom.id, q.json.job.id);
    assert.equal(qe[0].data.status, 'queued');
    assert.equal(qe[0].data.position, 0);
    // the noisy room's waiting runs were told their place, and it went down. A waiting job
    // is told at each dispatch from its room's line while it is among the first
    // JOBSTATE_POSITION_UPDATES (10) waiting; which jobs those were depends on how the four
    // submitters interleaved (ids are in answer order, the line give or take 4), and the
    // dispatch that moves the line may come just after the quiet run ended (a slot freed by
    // a noisy run at about the same time): so any waiting run, and waited for, as the line
    // moves every few seconds while noisy runs end
    const told = await waitFor(() => {
      const byJob = new Map();
      for (const e of roomEvents(noisyRoom.id)) {
        if (e.type !== 'execution' || e.data.status !== 'queued') continue;
        byJob.set(e.data.job_id, [...(byJob.get(e.data.job_id) || []), e]);
      }
      return [...byJob.values()].find((l) => l.length >= 2);
    }, { what: 'a queued noisy run told its new place as the line moves', timeout: 15000, interval: 200 });
    assert.ok(told[0].data.position > told.at(-1).data.position, JSON.stringify(told.map((e) => e.data.position)));
    // GET /api/jobs/{id} says where a waiting job stands
    const far = await call('GET', `/api/jobs/${ids[99]}`, { token: noisy.token });
    assert.equal(far.json.job.status, 'queued');
    assert.ok(far.json.job.position >= 40, JSON.stringify(far.json.job));
  } finally {
    await drain(noisy.token, ids);
  }
  // the cancelled runs never ran: cancelled, and no running event
  const cancelled = ids.slice(60);
  for (const id of cancelled) {
    const j = await call('GET', `/api/jobs/${id}`, { token: noisy.token });
    assert.equal(j.json.job.status, 'cancelled');
    assert.match(j.json.job.error, /cancelled by/);
    assert.deepEqual(jobEvents(noisyRoom.id, id).map((e) => e.data.status).filter((s) => s !== 'queued'), ['cancelled']);
  }
});

test('ten noisy rooms of ten users cannot starve an eleventh: a room with one run goes before longer lines', async () => {
  const noisy = [];
  for (let i = 0; i < 10; i++) {
    const u = await newUser();
    noisy.push({ u, room: await createRoom(u.token), ids: [] });
  }
  const quiet = await newUser();
  const quietRoom = await createRoom(quiet.token);
  // ten runs each, all at once through the front door: within every default bound (the
  // user's runs of the minute, the room's and the user's line); 4 s each, see above
  const answers = await Promise.all(noisy.flatMap((n) => Array.from({ length: 10 }, async () => {
    const r = await run(n.u.token, n.room, { code: 'import time; time.sleep(4)' });
    if (r.status === 202) n.ids.push(r.json.job.id);
    return r;
  })));
  try {
    for (const r of answers) assert.equal(r.status, 202, r.text);
    const q = await run(quiet.token, quietRoom, { code: 'print(1)' });
    assert.equal(q.status, 202, q.text);
    const job = await waitJob(quiet.token, q.json.job.id);
    // most of the ten rooms had not had a turn yet either; the shorter line went first
    const qe = jobEvents(quietRoom.id, q.json.job.id);
    assert.equal(qe[0].data.status, 'queued');
    assert.equal(qe[0].data.position, 0, JSON.stringify(qe[0].data));
    assert.equal(job.status, 'finished');
    assert.equal(job.result.stdout, '1\n');
    const all = noisy.flatMap((n) => n.ids);
    const statuses = jobStatuses(all);
    const queued = statuses.filter((s) => s === 'queued').length;
    assert.ok(queued >= 50, `only ${queued} of the 100 noisy runs still queued`);
  } finally {
    for (const n of noisy) await drain(n.u.token, n.ids);
  }
});

test('the noisy room gets every worker when nobody else needs them', async () => {
  const u = await newUser();
  const room = await createRoom(u.token, { language: 'bash' });
  const ids = [];
  for (let i = 0; i < 4; i++) {
    const r = cgiRun(u.token, room, { code: `sleep 1; echo ${i}` });
    assert.equal(r.status, 202, r.body);
    ids.push(r.json.job.id);
  }
  // both of the stack's workers run this room's jobs at once
  await waitJob(u.token, ids[1], { until: (j) => j.status !== 'queued' });
  const both = await waitJob(u.token, ids[0], { until: (j) => j.status !== 'queued' });
  assert.ok(['running', 'finished'].includes(both.status));
  for (const [i, id] of ids.entries()) assert.equal((await waitJob(u.token, id)).result.stdout, `${i}\n`);
  const starts = ids.map((id) => roomEvents(room.id).findIndex((e) => e.data.job_id === id && e.data.status === 'running'));
  const firstEnd = roomEvents(room.id).findIndex((e) => e.data.status === 'finished');
  // the second job started before the first one ended: two at a time
  assert.ok(starts[1] < firstEnd, `events: ${roomEvents(room.id).map((e) => `${e.data.job_id}:${e.data.status}`)}`);
});

test('within a room, people take turns: a run queued behind another person\'s five goes before their third', async () => {
  const a = await newUser(), b = await newUser();
  // a's first two runs hold both workers for 8 s (the test stack's RUN_TIMEOUT_MS is 10 s,
  // scripts/test.sh), and the check of the places below must come before either ends. On a
  // busy machine the CGI runs that queue the others once took longer than 4 s, the hold of
  // an earlier version of this test: a's third run had a worker already. So an
  // attempt counts only when a's third run was still waiting at the check; otherwise it is
  // drained and made again in a new room, three times at most.
  for (let attempt = 1; ; attempt++) {
    const room = await createRoom(a.token, { language: 'bash', visibility: 'public' });
    const joined = await call('POST', `/api/rooms/${room.id}/join`, { token: b.token, body: {} });
    assert.equal(joined.status, 200, joined.text);
    const ids = [];
    let mine;
    try {
      for (let i = 0; i < 5; i++) {
        const r = cgiRun(a.token, room, { code: i < 2 ? `sleep 8; echo a${i}` : `echo a${i}` });
        assert.equal(r.status, 202, r.body);
        ids.push(r.json.job.id);
      }
      const r = cgiRun(b.token, room, { code: 'echo b' });
      assert.equal(r.status, 202, r.body);
      mine = r.json.job.id;
      // b's place: ahead of a's third run, which is still waiting behind two workers
      const bs = await call('GET', `/api/jobs/${mine}`, { token: b.token });
      const third = await call('GET', `/api/jobs/${ids[2]}`, { token: a.token });
      if (third.json.job.status !== 'queued' && attempt < 3) continue; // too slow: again
      assert.equal(third.json.job.status, 'queued', 'a\'s third run already started: the test was too slow, 3 times');
      if (bs.json.job.status === 'queued') {
        assert.ok(bs.json.job.position < third.json.job.position,
          `b's run at ${bs.json.job.position}, a's third at ${third.json.job.position}`);
      }
      assert.equal((await waitJob(b.token, mine)).result.stdout, 'b\n');
      for (const [i, id] of ids.entries()) assert.equal((await waitJob(a.token, id)).result.stdout, `a${i}\n`);
      // nothing waits or runs in the room any more: its rounds are forgotten
      await waitFor(() => redis('HEXISTS', 'cc:{jobs}:fair:round', room.id) === '0' &&
        redis('EXISTS', `cc:{jobs}:fair:uround:${room.id}`) === '0', { what: 'the room\'s rounds forgotten', timeout: 5000 });
      const evs = roomEvents(room.id).filter((e) => e.type === 'execution');
      const at = (id, status) => evs.findIndex((e) => e.data.job_id === id && e.data.status === status);
      // b's run was handed to a worker before a's third, and a's runs in the order they were
      // queued: the order of the job stream, which the dispatch appends to (the `running`
      // events of two jobs handed out a moment apart come from two workers, in either order)
      const handed = redis('XRANGE', 'cc:{jobs}:stream', '-', '+').split('\n');
      const out = (id) => handed.lastIndexOf(id);
      const order = [...ids, mine].sort((x, y) => out(x) - out(y))
        .map((id) => (id === mine ? 'b' : `a${ids.indexOf(id)}`)).join(' ');
      assert.ok([...ids, mine].every((id) => out(id) >= 0), `handed out: ${order}`);
      assert.ok(out(mine) < out(ids[2]), `handed out: ${order}`);
      for (let i = 1; i < ids.length; i++) assert.ok(out(ids[i - 1]) < out(ids[i]), `handed out: ${order}`);
      for (const id of [...ids, mine]) assert.ok(at(id, 'running') >= 0, `no running event of ${id}`);
      // a's third run was told its place again, one further back, right after b's queued event
      const bQueued = at(mine, 'queued');
      const moved = evs.slice(bQueued + 1).find((e) => e.data.job_id === ids[2] && e.data.status === 'queued');
      assert.ok(moved, 'a\'s third run was not told it moved back');
      assert.ok(moved.data.position > evs[bQueued].data.position,
        `a's third told ${moved.data.position}, b's queued at ${evs[bQueued].data.position}`);
      return;
    } finally {
      await drain(a.token, ids);
      if (mine) await drain(b.token, [mine]);
    }
  }
});

test('admission: a full room line, a user\'s backlog and the whole queue answer 429 with Retry-After', async () => {
  const a = await newUser();
  const b = await newUser();
  const roomB = await createRoom(b.token, { language: 'bash' });
  // The bounds are reached only while a's two long runs hold both workers, and the sandbox
  // stops a run after RUN_TIMEOUT_MS (10 s in the test stack; at 5 s, on a busy machine, the
  // CGI runs below took longer than that: a's waiting runs got a worker and the user's
  // backlog was gone, 202, not 429). So the answers count only when both long runs were still running after the last
  // of them (a run that ends is never running again); otherwise the attempt is cancelled
  // and made again in new rooms.
  let got;
  for (let attempt = 1; !got; attempt++) {
    const room = await createRoom(a.token, { language: 'bash' });
    const other = await createRoom(a.token, { language: 'bash' });
    const ids = [];
    const bIds = [];
    const keep = (r, into) => { if (r.status === 202) into.push(r.json.job.id); return r; };
    try {
      // two long runs take both workers, then the room's line fills
      for (let i = 0; i < 2; i++) {
        const r = keep(cgiRun(a.token, room, { code: 'sleep 60' }), ids);
        assert.equal(r.status, 202, r.body);
      }
      for (const id of ids) await waitJob(a.token, id, { until: (j) => j.status === 'running' });
      const env = { JOB_ROOM_BACKLOG_MAX: '2', JOB_USER_BACKLOG_MAX: '100', JOB_QUEUE_MAX: '100000' };
      const waiting = [0, 1].map((i) => keep(cgiRun(a.token, room, { code: `echo ${i}` }, env), ids));
      const full = keep(cgiRun(a.token, room, { code: 'echo no' }, env), ids);
      // the same user in another room: its own backlog bound
      const mine = keep(cgiRun(a.token, other, { code: 'echo mine' }, { JOB_USER_BACKLOG_MAX: '2' }), ids);
      // another user: the bound of the whole queue
      const all = keep(cgiRun(b.token, roomB, { code: 'echo all' }, { JOB_QUEUE_MAX: '1' }), bIds);
      const held = jobStatuses(ids.slice(0, 2)).every((s) => s === 'running');
      if (held || attempt === 3) {
        assert.ok(held, `a's long runs ended before the bounds were checked, ${attempt} times`);
        got = { waiting, full, mine, all };
        // within the bounds, b's run is admitted (and waits its turn)
        const ok = await run(b.token, roomB, { code: 'echo all' });
        assert.equal(ok.status, 202, ok.text);
        got.bJob = ok.json.job.id;
      }
    } finally {
      await drain(a.token, ids);
      if (!got) await drain(b.token, bIds);
    }
  }
  for (const r of got.waiting) assert.equal(r.status, 202, r.body);
  assert.equal(got.full.status, 429, got.full.body);
  assert.equal(got.full.json.error, 'room_queue_full');
  assert.match(got.full.json.message, /2 jobs waiting/);
  const retry = Number(got.full.headers['retry-after']);
  assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After ${got.full.headers['retry-after']}`);
  assert.equal(got.mine.status, 429, got.mine.body);
  assert.equal(got.mine.json.error, 'user_queue_full');
  assert.ok(Number(got.mine.headers['retry-after']) >= 1);
  assert.equal(got.all.status, 429, got.all.body);
  assert.equal(got.all.json.error, 'queue_full');
  assert.ok(Number(got.all.headers['retry-after']) >= 1);
  // a's long runs cancelled: b's run gets a worker and runs
  assert.equal((await waitJob(b.token, got.bJob)).result.stdout, 'all\n');
});

test('a run or AI request the queue refuses is not counted against the per-minute limit', async () => {
  const a = await newUser();
  const c = await newUser();
  const b = await newUser();
  const room = await createRoom(a.token, { language: 'bash' });
  for (const u of [c, b]) {
    const j = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite: room.invite } });
    assert.equal(j.status, 200, j.text);
  }
  const ids = { [a.token]: [], [c.token]: [] };
  const bIds = [];
  const askAi = (body, env) => cgi({
    method: 'POST', uri: `/api/rooms/${room.id}/ai/hint`, token: b.token, body,
    env: { AI_PROVIDER: 'local', AI_RATE_LIMIT: '3', ...env },
  });
  try {
    // ten runs each of a and c (their limit of the minute) that each take a worker for the
    // sandbox's 5 s of wall time: two at a time, the room's line holds some of them for 45 s
    // and more, however slowly what follows goes
    for (const u of [a, c]) {
      for (let i = 0; i < 10; i++) {
        const r = await run(u.token, room, { code: 'sleep 60' });
        assert.equal(r.status, 202, r.text);
        ids[u.token].push(r.json.job.id);
      }
    }
    // b is told three times over to come back in a few seconds, for runs and AI alike: as
    // many times as b's limits allow in a minute (3)
    const line = { JOB_ROOM_BACKLOG_MAX: '1' };
    const runEnv = { ...line, EXECUTION_RATE_LIMIT: '3' };
    for (let i = 0; i < 3; i++) {
      const r = cgiRun(b.token, room, { code: `echo b${i}` }, runEnv);
      assert.equal(r.status, 429, r.body);
      assert.equal(r.json.error, 'room_queue_full');
      assert.equal(r.headers['retry-after'], '5');
      const q = askAi({ code: `echo b${i}\n` }, line);
      assert.equal(q.status, 429, q.body);
      assert.equal(q.json.error, 'room_queue_full');
      assert.equal(q.headers['retry-after'], '5');
    }

    // the line has room again: b's next run and AI request are admitted (the AI request with
    // room for two, b's run may be waiting in line)
    for (const [token, list] of Object.entries(ids)) await drain(token, list);
    const r = cgiRun(b.token, room, { code: 'echo b' }, runEnv);
    if (r.status === 202) bIds.push(r.json.job.id);
    const q = askAi({ code: 'echo b\n' }, { JOB_ROOM_BACKLOG_MAX: '2' });
    if (q.status === 202) bIds.push(q.json.job.id);
    assert.deepEqual([r.status, r.json.error, q.status, q.json.error], [202, undefined, 202, undefined],
      `run: ${r.body} AI: ${q.body}`);

    // what b was admitted for still counts: two more runs, then the limit
    const roomy = { ...runEnv, JOB_ROOM_BACKLOG_MAX: '10' };
    for (let i = 0; i < 2; i++) {
      const more = cgiRun(b.token, room, { code: `echo more${i}` }, roomy);
      assert.equal(more.status, 202, more.body);
      bIds.push(more.json.job.id);
    }
    const limited = cgiRun(b.token, room, { code: 'echo over' }, roomy);
    assert.equal(limited.status, 429, limited.body);
    assert.equal(limited.json.error, 'rate_limited');
  } finally {
    await drain(b.token, bIds);
    for (const [token, list] of Object.entries(ids)) await drain(token, list);
  }
});

test('DELETE /api/jobs/{id}: submitter or room owner; a running job\'s sandbox is killed, a queued one never runs', async () => {
  const owner = await newUser();
  const editor = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token, { language: 'bash' });
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: editor.token, body: { invite: room.invite } });
  assert.equal(j.status, 200, j.text);

  // two long runs of the editor take both workers; a third waits
  const long = [];
  for (let i = 0; i < 2; i++) {
    const r = await run(editor.token, room, { code: 'sleep 120; echo never' });
    assert.equal(r.status, 202, r.text);
    long.push(r.json.job.id);
  }
  for (const id of long) await waitJob(editor.token, id, { until: (x) => x.status === 'running' });
  const waiting = await run(owner.token, room, { code: 'echo waited' });
  assert.equal(waiting.status, 202, waiting.text);
  const wid = waiting.json.job.id;

  // who may not: 404 unknown, 403 another member for the owner's job, a stranger learns nothing
  assert.equal((await cancel(editor.token, 'nosuchjob0000000')).status, 404);
  const no = await cancel(editor.token, wid);
  assert.equal(no.status, 403, no.text);
  const strange = await cancel(stranger.token, long[0]);
  assert.equal(strange.status, 404, strange.text);
  assert.equal(strange.json.error, 'job_not_found');

  // the queued one, by its submitter: it never runs
  const c1 = await cancel(owner.token, wid);
  assert.equal(c1.status, 200, c1.text);
  assert.equal(c1.json.job.status, 'cancelled');
  // a running one, by the room's owner; the other by its submitter
  const c2 = await cancel(owner.token, long[0]);
  assert.equal(c2.status, 200, c2.text);
  const c3 = await cancel(editor.token, long[1]);
  assert.equal(c3.status, 200, c3.text);
  // again: 409, it is over
  const again = await cancel(owner.token, long[0]);
  assert.equal(again.status, 409, again.text);
  assert.equal(again.json.error, 'job_over');

  // the sandboxes were killed: the workers are free for a new run long before 120 s
  const after = await run(owner.token, room, { code: 'echo after' });
  assert.equal(after.status, 202, after.text);
  const done = await waitJob(owner.token, after.json.job.id, { ms: 40000 });
  assert.equal(done.status, 'finished');
  assert.equal(done.result.stdout, 'after\n');
  for (const id of long) {
    const x = await call('GET', `/api/jobs/${id}`, { token: owner.token });
    assert.equal(x.json.job.status, 'cancelled');
    const st = jobEvents(room.id, id).map((e) => e.data.status);
    assert.deepEqual(st.filter((s) => s !== 'queued'), ['running', 'cancelled'], `job ${id}: ${st}`);
  }
  assert.deepEqual(jobEvents(room.id, wid).map((e) => e.data.status).filter((s) => s !== 'queued'), ['cancelled']);
  const finishedAfter = await call('DELETE', `/api/jobs/${after.json.job.id}`, { token: owner.token });
  assert.equal(finishedAfter.status, 409);
});
