// The queue worker against a real redis-server and the real sandbox: jobs enqueued the way
// the API enqueues them (HSET cc:{jobs}:job:{id}, XADD cc:{jobs}:stream), results and `execution` events
// read back from Redis. Needs root (the sandbox's cgroups) and the ASan build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  ROOT, WORKER_BIN, enqueue, events, job, jobEvents, jobId, sleep, startWorker, stopWorker, subscribe, waitFor, waitStatus, withRedis,
} from '../lib/worker-harness.mjs';
import { RUNTIMES, startPiston } from '../lib/piston-double.mjs';
import { connectRedis } from '../lib/resp.mjs';

if (!existsSync(WORKER_BIN)) throw new Error(`${WORKER_BIN} is missing: run make build-asan`);
if (process.getuid() !== 0) throw new Error('the worker tests need root (cgroups for the sandbox)');

const py = (code, extra = {}) => ({ language: 'python', version: '3.11.2', code, stdin: '', args: [], ...extra });
const sh = (code) => ({ language: 'bash', version: '*', code, stdin: '', args: [] });

// Each test gets its own Redis, so one test's pending entries never reach another's workers.
function assertCleanExit(w, r) {
  assert.deepEqual(r, { code: 0, signal: null }, `worker exit: ${JSON.stringify(r)}\n${w.output}`);
  assert.doesNotMatch(w.output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
}

test('a job runs: result stored, running and finished events, runtimes published', () => withRedis(async (r) => {
  const w = await startWorker((await r.cmd('CONFIG', 'GET', 'port'))[1]);
  const runtimes = JSON.parse(await r.cmd('GET', 'cc:runtimes'));
  const names = runtimes.map((x) => x.language);
  for (const l of ['c', 'c++', 'python', 'javascript', 'bash']) assert.ok(names.includes(l), l);
  assert.ok(runtimes.find((x) => x.language === 'python').aliases.includes('py'));
  assert.ok(await r.cmd('TTL', 'cc:runtimes') > 0);

  const room = jobId('room');
  const id = await enqueue(r, {
    room,
    request: py('import sys\nprint(input().upper(), sys.argv[1:])\nprint("err", file=sys.stderr)\nsys.exit(4)',
      { stdin: 'hello\n', args: ['a', 'b c'] }),
  });
  const j = await waitStatus(r, id, 'finished');
  assert.equal(j.result.stdout, "HELLO ['a', 'b c']\n");
  assert.equal(j.result.stderr, 'err\n');
  assert.equal(j.result.exit_code, 4);
  assert.equal(j.result.signal, null);
  assert.equal(j.result.truncated, false);
  assert.equal(typeof j.result.time_ms, 'number');
  assert.equal(j.attempts, 1);
  // acknowledged only after the result: nothing pending
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'ack' });

  const ev = await jobEvents(r, room, id);
  assert.deepEqual(ev.map((e) => [e.type, e.data.status]),
    [['execution', 'queued'], ['execution', 'running'], ['execution', 'finished']]);
  assert.equal(ev[2].data.job_id, id);
  assert.deepEqual(ev[2].data.result, j.result);

  // a compile error, an unknown runtime, a malformed request
  const c = await enqueue(r, { room, request: { language: 'c', version: '*', code: 'int main( {', stdin: '', args: [] } });
  const bad = await enqueue(r, { room, request: { language: 'cobol', code: 'x' } });
  const worse = await enqueue(r, { room, request: { language: 'python', code: 7 } });
  const jc = await waitStatus(r, c, 'finished');
  assert.equal(jc.result.status, 'compile_error');
  assert.match(jc.result.compile.stderr, /error/);
  assert.notEqual(jc.result.compile.exit_code, 0);
  const jb = await waitStatus(r, bad, 'failed');
  assert.match(jb.error, /no runtime for "cobol"/);
  const jw = await waitStatus(r, worse, 'failed');
  assert.match(jw.error, /invalid request: code must be a string/);
  const failedEv = (await jobEvents(r, room, bad)).find((e) => e.data.job_id === bad && e.data.status === 'failed');
  assert.match(failedEv.data.error, /cobol/);

  assertCleanExit(w, await stopWorker(w));
}));

test('several jobs at once, up to WORKERS in parallel', () => withRedis(async (r, redis) => {
  const w = await startWorker(redis.port, { WORKERS: '3' });
  const room = jobId('room');
  const t0 = Date.now();
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push(await enqueue(r, { room, request: sh(`sleep 1; echo job ${i}`) }));
  ids.push(await enqueue(r, { room, request: { language: 'js', version: '*', code: 'console.log(6*7)', stdin: '', args: [] } }));
  ids.push(await enqueue(r, { room, request: { language: 'cpp', version: '*', code: '#include <cstdio>\nint main(){std::puts("cpp");}', stdin: '', args: [] } }));
  const done = await Promise.all(ids.map((id) => waitStatus(r, id, 'finished', 30000)));
  const took = Date.now() - t0;
  // the whole result, the attempts and what the worker logged of the job in the message: a
  // run that printed nothing says how it ended (fresh run s43e and the CI run of 2026-12-06
  // each had the js job finish with no output, once)
  const why = (i) => `${JSON.stringify(done[i].result)} attempts ${done[i].attempts} worker ${done[i].worker}\n` +
    w.output.split('\n').filter((l) => l.includes(ids[i]) || /sandbox|warn|error/i.test(l)).join('\n');
  for (let i = 0; i < 6; i++) assert.equal(done[i].result.stdout, `job ${i}\n`, why(i));
  assert.equal(done[6].result.stdout, '42\n', why(6));
  assert.equal(done[7].result.stdout, 'cpp\n', why(7));
  // six 1 s jobs on 3 threads: about 2 s, well under the 6 s of one at a time
  assert.ok(took < 5000, `took ${took} ms`);
  console.log(`  8 jobs on 3 threads: ${took} ms`);
  assertCleanExit(w, await stopWorker(w));
}));

// The consumer group's members by name (XINFO CONSUMERS: one flat [field, value, …] each).
async function consumers(r) {
  return (await r.cmd('XINFO', 'CONSUMERS', 'cc:{jobs}:stream', 'workers')).map((c) => c[c.indexOf('name') + 1]);
}

test('a stopped worker takes its name out of the consumer group, unless an entry is still pending with it', () => withRedis(async (r, redis) => {
  // CLAIM_IDLE_MS high: no one takes the entry below over while the test looks
  const env = { WORKERS: '1', CLAIM_IDLE_MS: '30000' };
  const name = (w) => w.output.match(/consumer (\S+): \d+ job threads/)[1];
  const a = await startWorker(redis.port, env);
  const id = await enqueue(r, { request: sh('echo once') });
  assert.equal((await waitStatus(r, id, 'finished')).result.stdout, 'once\n');
  // a read the job, which made it a member of the group
  assert.deepEqual(await consumers(r), [name(a)]);
  // an entry pending with b as it stops (the job's, handed to b by hand, which makes b a
  // member): DELCONSUMER would drop it, so b's name stays, and the entry stays pending for
  // another worker to take over
  const b = await startWorker(redis.port, env);
  const [[entry]] = await r.cmd('XRANGE', 'cc:{jobs}:stream', '-', '+', 'COUNT', '1');
  await r.cmd('XCLAIM', 'cc:{jobs}:stream', 'workers', name(b), '0', entry, 'FORCE', 'JUSTID');
  assertCleanExit(a, await stopWorker(a));
  assert.deepEqual(await consumers(r), [name(b)], `${name(a)} is out of the group`);
  assertCleanExit(b, await stopWorker(b));
  assert.deepEqual(await consumers(r), [name(b)], 'a name with an entry pending stays');
  const [pending] = await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers', '-', '+', '10');
  assert.deepEqual([pending[0], pending[1]], [entry, name(b)]);
}));

test('the names of workers that are gone leave the consumer group at a worker\'s start; one with a liveness key stays', () => withRedis(async (r, redis) => {
  await r.cmd('XGROUP', 'CREATE', 'cc:{jobs}:stream', 'workers', '0', 'MKSTREAM');
  // killed outright long ago: no liveness key, nothing pending
  await r.cmd('XGROUP', 'CREATECONSUMER', 'cc:{jobs}:stream', 'workers', 'gone-1-00000000');
  await r.cmd('XGROUP', 'CREATECONSUMER', 'cc:{jobs}:stream', 'workers', 'gone-2-00000000');
  // alive (its key is there), though it has read nothing
  await r.cmd('XGROUP', 'CREATECONSUMER', 'cc:{jobs}:stream', 'workers', 'alive-3-00000000');
  await r.cmd('SET', 'cc:worker:alive-3-00000000:alive', '1', 'PX', '60000');
  const w = await startWorker(redis.port, { WORKERS: '1' });
  await waitFor(async () => (await consumers(r)).join() === 'alive-3-00000000', { what: 'the gone names out of the group' });
  assert.match(w.output, /2 gone worker\(s\) taken out of the consumer group/);
  assertCleanExit(w, await stopWorker(w));
  assert.deepEqual(await consumers(r), ['alive-3-00000000']);
}));

test('a worker killed mid-job: another takes it over once its liveness key lapses (not after CLAIM_IDLE_MS) and finishes it once', () => withRedis(async (r, redis) => {
  // b is already running: it notices the dead worker by itself, as it would in production.
  // CLAIM_IDLE_MS stays at its 30 s default, so only the liveness key can explain a quick takeover.
  const env = { WORKERS: '1', CLAIM_IDLE_MS: '30000' };
  const a = await startWorker(redis.port, env);
  const b = await startWorker(redis.port, env);
  const consumer = (w) => w.output.match(/consumer (\S+): \d+ job threads/)[1];
  a.consumer = consumer(a);
  b.consumer = consumer(b);
  const room = jobId('room');
  const id = await enqueue(r, { room, request: sh('sleep 1.5; echo survived') });
  await waitStatus(r, id, 'running');
  const j0 = await job(r, id);
  const victim = j0.worker === b.consumer ? b : a;
  const survivor = victim === a ? b : a;
  assert.equal(j0.worker, victim.consumer);
  assert.equal(await r.cmd('EXISTS', `cc:worker:${victim.consumer}:alive`), 1, 'a running worker has its liveness key');
  victim.kill('SIGKILL');
  const t0 = Date.now();
  await victim.exited;
  await waitFor(async () => (await job(r, id)).attempts === 2, { timeout: 20000, what: 'the takeover' });
  const took = Date.now() - t0;
  const j = await waitStatus(r, id, 'finished', 20000);
  assert.equal(j.result.stdout, 'survived\n');
  assert.equal(j.attempts, 2);
  assert.equal(j.worker, survivor.consumer);
  assert.match(survivor.output, /is gone \(no liveness key\): taken over/);
  assert.ok(took < 15000, `taken over after ${took} ms (CLAIM_IDLE_MS is 30 s)`);
  console.log(`  a worker killed mid-job: its job taken over ${took} ms after the kill`);
  const evs = await jobEvents(r, room, id);
  assert.deepEqual(evs.map((e) => e.data.status), ['queued', 'running', 'running', 'finished']);
  // the second running says the job starts again from the beginning
  assert.equal(evs[1].data.restarted, undefined);
  assert.equal(evs[2].data.restarted, true);
  assert.equal(evs[2].data.attempt, 2);
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'ack' });
  assertCleanExit(survivor, await stopWorker(survivor));
  assert.equal(await r.cmd('EXISTS', `cc:worker:${survivor.consumer}:alive`), 0, 'a stopped worker deletes its liveness key');
}));

test('a dead worker\'s job behind 40 long jobs of a live worker: taken over within seconds of its liveness key lapsing', () => withRedis(async (r, redis) => {
  // The pending list holds 40 entries of a live worker (runs Piston holds) and then one of a
  // worker killed outright. The takeover scan must read past the first page (32 entries) of
  // the list. CLAIM_IDLE_MS is 10 minutes: XAUTOCLAIM never fires here, and the live
  // worker's heartbeats (every CLAIM_IDLE_MS / 3) never make its entries less idle than the
  // scan's minimum, which let a scan of only the first page see further once in a while.
  const HELD = 40;
  const piston = await startPiston();
  try {
    const env = {
      PISTON_URL: piston.url, PISTON_TIMEOUT_MS: '120000', CLAIM_IDLE_MS: '600000', WORKER_LIVENESS_MS: '1500',
    };
    const consumer = (w) => w.output.match(/consumer (\S+): \d+ job threads/)[1];
    const busy = await startWorker(redis.port, { ...env, WORKERS: String(HELD) });
    busy.consumer = consumer(busy);
    const room = jobId('room');
    const held = [];
    for (let i = 0; i < HELD; i++) held.push(await enqueue(r, { room, request: py(`print(${i}) # PISTON_HOLD`) }));
    await waitFor(() => piston.held() === HELD, { timeout: 30000, what: `${HELD} runs held on Piston` });
    // every thread of the busy worker is taken: the next job goes to the victim
    const victim = await startWorker(redis.port, { ...env, WORKERS: '1' });
    victim.consumer = consumer(victim);
    const id = await enqueue(r, { room, request: py('print("behind") # PISTON_HOLD') });
    await waitFor(() => piston.held() === HELD + 1, { what: 'the victim\'s run held on Piston' });
    assert.equal((await job(r, id)).worker, victim.consumer);
    const survivor = await startWorker(redis.port, { ...env, WORKERS: '1' });
    survivor.consumer = consumer(survivor);
    const pending = await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers', '-', '+', 100);
    assert.equal(pending.length, HELD + 1);
    assert.ok(pending.slice(0, HELD).every((p) => p[1] === busy.consumer), 'the live worker\'s entries come first');
    assert.equal(pending[HELD][1], victim.consumer);

    victim.kill('SIGKILL');
    await victim.exited;
    await waitFor(async () => await r.cmd('EXISTS', `cc:worker:${victim.consumer}:alive`) === 0,
      { what: 'the victim\'s liveness key to lapse' });
    const lapsed = Date.now();
    await waitFor(async () => (await job(r, id)).attempts === 2, { timeout: 10000, what: 'the takeover' });
    const took = Date.now() - lapsed;
    assert.match(survivor.output, new RegExp(`its worker ${victim.consumer} is gone \\(no liveness key\\): taken over`));
    assert.ok(took < 5000, `taken over ${took} ms after the liveness key lapsed`);
    console.log(`  a dead worker's job behind ${HELD} live ones: taken over ${took} ms after its liveness key lapsed`);

    piston.release();
    const j = await waitStatus(r, id, 'finished', 10000);
    assert.equal(j.result.stdout, 'ran print("behind") # PISTON_HOLD | stdin= | args=\n');
    assert.equal(j.worker, survivor.consumer);
    assert.equal(j.attempts, 2);
    // the live worker's jobs were never taken from it: each ran once, on it
    for (const h of held) {
      const x = await waitStatus(r, h, 'finished', 20000);
      assert.equal(x.attempts, 1);
      assert.equal(x.worker, busy.consumer);
    }
    await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'ack' });
    assertCleanExit(survivor, await stopWorker(survivor));
    assertCleanExit(busy, await stopWorker(busy));
  } finally {
    await piston.close();
  }
}));

test('a run whose output would make a result past JOB_RESULT_MAX (6 MiB): its outputs are cut to fit, truncated', () => withRedis(async (r, redis) => {
  // OUTPUT_LIMIT_KB lets each stream keep 8 MiB; 4 MiB of \x01 on stdout and on stderr are
  // 48 MiB of JSON once escaped (\u0001), far past what GET /api/jobs/{id} can answer (8 MiB)
  const w = await startWorker(redis.port, { WORKERS: '1', OUTPUT_LIMIT_KB: '8192' });
  const room = jobId('room');
  const n = 4 * 1024 * 1024;
  const id = await enqueue(r, {
    room,
    request: py(`import sys\nsys.stdout.write('\\x01' * ${n})\nsys.stdout.flush()\nsys.stderr.write('\\x01' * ${n})\n`),
  });
  // the status alone, then the result's size, before anything reads the result itself (on
  // a worker without the bound it is about 48 MiB)
  const key = `cc:{jobs}:job:${id}`;
  const status = await waitFor(async () => {
    const st = await r.cmd('HGET', key, 'status');
    return ['finished', 'failed'].includes(st) && st;
  }, { timeout: 60000, what: 'the run to end' });
  assert.equal(status, 'finished', await r.cmd('HGET', key, 'error'));
  const bytes = Number(await r.cmd('HSTRLEN', key, 'result'));
  assert.ok(bytes <= 6 * 1024 * 1024, `the stored result is ${bytes} bytes`);
  assert.ok(bytes > 6 * 1024 * 1024 - 4096, `the room is used: ${bytes} bytes`);
  const j = await job(r, id);
  assert.equal(j.result.truncated, true);
  assert.equal(j.result.exit_code, 0);
  assert.equal(j.result.status, null, 'the program itself was not stopped');
  // each stream keeps the start of what was printed, the two about evenly
  for (const out of [j.result.stdout, j.result.stderr]) {
    assert.ok(out.length > 400000 && out.length < n, `${out.length} characters`);
    assert.equal(out, '\x01'.repeat(out.length));
  }
  assertCleanExit(w, await stopWorker(w));
}));

test('a job that keeps killing its workers fails after the retry budget', () => withRedis(async (r, redis) => {
  const room = jobId('room');
  const id = await enqueue(r, { room, request: sh('sleep 30') });
  const env = { WORKERS: '1', JOB_MAX_ATTEMPTS: '3', CLAIM_IDLE_MS: '800' };
  for (let attempt = 1; attempt <= 3; attempt++) {
    const w = await startWorker(redis.port, env);
    await waitFor(async () => {
      const j = await job(r, id);
      return j.status === 'running' && j.attempts === attempt;
    }, { what: `attempt ${attempt}` });
    w.kill('SIGKILL');
    await w.exited;
  }
  const last = await startWorker(redis.port, env);
  const j = await waitStatus(r, id, 'failed', 20000);
  assert.match(j.error, /gave up after 3 attempts/);
  assert.equal(j.result, undefined);
  const ev = (await jobEvents(r, room, id)).at(-1);
  assert.equal(ev.data.status, 'failed');
  assert.match(ev.data.error, /gave up after 3 attempts/);
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'ack' });
  assertCleanExit(last, await stopWorker(last));
}));

test('SIGTERM: the running job finishes, no new job is taken, exit 0', () => withRedis(async (r, redis) => {
  const w = await startWorker(redis.port, { WORKERS: '1' });
  const room = jobId('room');
  const id = await enqueue(r, { room, request: sh('sleep 1.2; echo finished anyway') });
  await waitStatus(r, id, 'running');
  const t0 = Date.now();
  w.kill('SIGTERM');
  await sleep(100);
  const later = await enqueue(r, { room, request: sh('echo too late') });
  const exit = await w.exited;
  assertCleanExit(w, exit);
  assert.ok(Date.now() - t0 < 5000);
  const j = await job(r, id);
  assert.equal(j.status, 'finished');
  assert.equal(j.result.stdout, 'finished anyway\n');
  assert.equal((await job(r, later)).status, 'queued');

  // past the grace period a running job is cancelled and goes back to the queue
  const w2 = await startWorker(redis.port, { WORKERS: '1', SHUTDOWN_GRACE_MS: '300' });
  await waitStatus(r, later, 'finished');
  const slow = await enqueue(r, { room, request: sh('sleep 4; echo second try') });
  await waitStatus(r, slow, 'running');
  const t1 = Date.now();
  assertCleanExit(w2, await stopWorker(w2));
  assert.ok(Date.now() - t1 < 3000, 'cancelled within the grace period and a bit');
  const q = await job(r, slow);
  assert.equal(q.status, 'queued');
  assert.equal(q.attempts, 0);
  // queued when enqueued, queued again when put back
  assert.equal((await jobEvents(r, room, slow)).filter((e) => e.data.job_id === slow && e.data.status === 'queued').length, 2);
  const w3 = await startWorker(redis.port, { WORKERS: '1' });
  const done = await waitStatus(r, slow, 'finished', 20000);
  assert.equal(done.result.stdout, 'second try\n');
  assert.equal(done.attempts, 1);
  assertCleanExit(w3, await stopWorker(w3));
}));

test('Piston backend: success, 400, timeout, malformed answers, runtimes', () => withRedis(async (r, redis) => {
  const piston = await startPiston({ slowMs: 3000 });
  try {
    const w = await startWorker(redis.port, {
      PISTON_URL: `${piston.url}/`, PISTON_TIMEOUT_MS: '1000', WORKERS: '2', RUN_TIMEOUT_MS: '2500',
    });
    // published once the worker has Piston's list: a moment after it started, on a busy machine
    const runtimes = await waitFor(async () => JSON.parse(await r.cmd('GET', 'cc:runtimes')), { what: 'cc:runtimes' });
    assert.deepEqual(runtimes, RUNTIMES.map(({ language, version, aliases }) => ({ language, version, aliases })));

    const room = jobId('room');
    const ok = await enqueue(r, { room, request: py('print(1)', { stdin: 'in', args: ['x', 'y'] }) });
    const j = await waitStatus(r, ok, 'finished');
    assert.equal(j.result.stdout, 'ran print(1) | stdin=in | args=x,y\n');
    assert.equal(j.result.stderr, 'warn\n');
    assert.equal(j.result.exit_code, 3);
    assert.equal(j.result.signal, null);
    assert.equal(j.result.time_ms, 42);
    assert.equal(j.result.language, 'python');
    const sent = piston.requests.find((q) => q.url === '/api/v2/execute' && q.json.files[0].content === 'print(1)');
    assert.equal(sent.json.language, 'python');
    assert.equal(sent.json.version, '3.11.2');
    assert.equal(sent.json.stdin, 'in');
    assert.deepEqual(sent.json.args, ['x', 'y']);
    assert.equal(sent.json.run_timeout, 2500); // set explicitly, so sent
    assert.equal(sent.json.compile_timeout, undefined); // not set: Piston's own default
    assert.match(sent.headers['content-type'], /application\/json/);

    const cases = [
      ['PISTON_400', /piston: python-3.11.2 runtime is unknown/],
      ['PISTON_SLOW', /^piston: no answer within 1000 ms$/],
      ['PISTON_BADJSON', /piston: malformed answer/],
      ['PISTON_500', /piston: HTTP 500/],
    ];
    const ids = [];
    for (const [marker] of cases) ids.push(await enqueue(r, { room, request: py(`# ${marker}`) }));
    for (let i = 0; i < cases.length; i++) {
      const f = await waitStatus(r, ids[i], 'failed');
      assert.match(f.error, cases[i][1]);
    }
    const to = await waitStatus(r, await enqueue(r, { room, request: py('# PISTON_TIMEOUT') }), 'finished');
    assert.equal(to.result.status, 'time_limit_exceeded');
    assert.equal(to.result.signal, 'SIGKILL');
    assert.equal(to.result.exit_code, null);
    const ce = await waitStatus(r, await enqueue(r, {
      room, request: { language: 'c', version: '*', code: '// PISTON_COMPILE_ERROR', stdin: '', args: [] },
    }), 'finished');
    assert.equal(ce.result.status, 'compile_error');
    assert.match(ce.result.compile.stderr, /expected declaration/);

    const ev = await jobEvents(r, room, ids[0]);
    assert.ok(ev.some((e) => e.data.job_id === ids[0] && e.data.status === 'failed' && /unknown/.test(e.data.error)));
    assertCleanExit(w, await stopWorker(w));
  } finally {
    await piston.close();
  }
}));

test('Piston output (and an error message) that is not clean text is shown with U+FFFD, and output past OUTPUT_LIMIT_KB is cut as a local run\'s', () => withRedis(async (r, redis) => {
  // Piston is an outside service: its answer may escape lone surrogates or a NUL, or hold
  // bytes that are not UTF-8; the run still finishes and shows its output
  const piston = await startPiston({ bigOut: 5000 });
  try {
    const w = await startWorker(redis.port, { PISTON_URL: piston.url, PISTON_TIMEOUT_MS: '10000', OUTPUT_LIMIT_KB: '1' });
    const room = jobId('room');
    const id = await enqueue(r, { room, request: py('print(1) # PISTON_ODDTEXT') });
    const j = await waitStatus(r, id, ['finished', 'failed']);
    assert.equal(j.status, 'finished', j.error);
    assert.equal(j.result.stdout, 'high \uFFFD low \uFFFD nul \uFFFD pair \u{1F600} end \uFFFD');
    assert.equal(j.result.stderr, 'bytes \uFFFD\uFFFD( after');
    assert.equal(j.result.exit_code, 0);
    assert.equal(j.result.truncated, false);
    // the room's subscribers see the same text in the finished event
    const fin = (await jobEvents(r, room, id)).find((e) => e.data.job_id === id && e.data.status === 'finished');
    assert.equal(fin.data.result.stdout, j.result.stdout);
    assert.equal(fin.data.result.stderr, j.result.stderr);

    // 5,000 bytes on each stream, 1 KiB kept: cut and marked truncated, as a local run is
    const big = await waitStatus(r, await enqueue(r, { room, request: py('# PISTON_BIGOUT') }), ['finished', 'failed']);
    assert.equal(big.status, 'finished', big.error);
    assert.equal(big.result.stdout, 'x'.repeat(1024));
    assert.equal(big.result.stderr, 'x'.repeat(1024));
    assert.equal(big.result.truncated, true);
    assert.equal(big.result.status, 'output_limit_exceeded');

    // Piston's error message becomes the job's error as clean text of at most 300 bytes:
    // not hidden behind "HTTP 400" for a lone surrogate, no raw bytes or control characters
    const bad = await enqueue(r, { room, request: py('# PISTON_400_ODD') });
    const f = await waitStatus(r, bad, 'failed');
    assert.equal(f.error, `piston: bad \uFFFD name \uFFFD x\uFFFD [2J${'m'.repeat(275)}`);
    const failedEv = (await jobEvents(r, room, bad)).find((e) => e.data.job_id === bad && e.data.status === 'failed');
    assert.equal(failedEv.data.error, f.error);
    assertCleanExit(w, await stopWorker(w));
  } finally {
    await piston.close();
  }
}));

test('a NUL byte in a run\'s output shows as U+FFFD whoever ran it: the local sandbox, or Piston passing it on raw or escaped', () => withRedis(async (r, redis) => {
  const want = 'nul \uFFFD raw \uFFFD\uFFFD esc \uFFFD end';
  const room = jobId('room');
  // the local sandbox: the program's own bytes
  const local = await startWorker(redis.port);
  const l = await waitStatus(r, await enqueue(r, { room, request: sh("printf 'nul \\0 raw \\0\\0 esc \\0 end'") }), ['finished', 'failed']);
  assert.equal(l.status, 'finished', l.error);
  assert.equal(l.result.stdout, want);
  assertCleanExit(local, await stopWorker(local));
  // Piston: NUL bytes in its answer, which JSON allows only escaped. The answer was read up
  // to its first NUL and the run failed: "piston: malformed answer (not JSON with run or
  // compile)"
  const piston = await startPiston();
  try {
    const w = await startWorker(redis.port, { PISTON_URL: piston.url, PISTON_TIMEOUT_MS: '10000' });
    const id = await enqueue(r, { room, request: py('print(1) # PISTON_RAWNUL') });
    const j = await waitStatus(r, id, ['finished', 'failed']);
    assert.equal(j.status, 'finished', j.error);
    assert.equal(j.result.stdout, want);
    assert.equal(j.result.exit_code, 0);
    const fin = (await jobEvents(r, room, id)).find((e) => e.data.status === 'finished');
    assert.equal(fin.data.result.stdout, want);
    assertCleanExit(w, await stopWorker(w));
  } finally {
    await piston.close();
  }
}));

test('Piston\'s exit code: a whole number from 0 to 255 or a signal is shown (128 + n as signal n, as bash reports it); an answer with neither fails the run saying so, never "exit code -1"', () => withRedis(async (r, redis) => {
  const piston = await startPiston();
  try {
    const w = await startWorker(redis.port, { PISTON_URL: piston.url, PISTON_TIMEOUT_MS: '10000' });
    const room = jobId('room');
    const finished = [
      ['"code":7,"signal":null', 7, null],
      ['"code":null,"signal":"SIGSEGV"', null, 'SIGSEGV'],
      // Piston runs a program through a bash script, which reports its child's signal n as
      // exit status 128 + n: read as the signal, as a local run's bwrap status is
      ['"code":137,"signal":null,"status":"RE","message":"Exited with error status 137"', null, 'SIGKILL'],
      ['"code":139,"signal":null', null, 'SIGSEGV'],
      // not where the status is isolate's own failure, nor for a signal we have no name for
      ['"code":137,"signal":null,"status":"XX"', 137, null],
      ['"code":160,"signal":null,"status":"RE"', 160, null],
    ];
    // each used to finish with what valueint made of it: -1 (no code), 1, INT_MAX, -1
    const failed = [
      ['"signal":null', 'piston: malformed answer (the run has neither an exit code nor a signal)'],
      ['"code":1.5,"signal":null', 'piston: malformed answer (the run\'s exit code 1.5 is not a whole number from 0 to 255)'],
      ['"code":1e300,"signal":null', 'piston: malformed answer (the run\'s exit code 1e+300 is not a whole number from 0 to 255)'],
      ['"code":-1,"signal":null', 'piston: malformed answer (the run\'s exit code -1 is not a whole number from 0 to 255)'],
    ];
    const ids = [];
    for (const [members] of [...finished, ...failed]) ids.push(await enqueue(r, { room, request: py(`# PISTON_STAGE ${members}`) }));
    for (let i = 0; i < finished.length; i++) {
      const j = await waitStatus(r, ids[i], ['finished', 'failed']);
      assert.equal(j.status, 'finished', j.error);
      // the result's members as docs/API.md gives them: exit_code and signal always there
      assert.equal(j.result.stdout, 'out');
      assert.strictEqual(j.result.exit_code, finished[i][1]);
      assert.strictEqual(j.result.signal, finished[i][2]);
    }
    for (let i = 0; i < failed.length; i++) {
      const id = ids[finished.length + i];
      const j = await waitStatus(r, id, ['finished', 'failed']);
      assert.equal(j.status, 'failed', `${failed[i][0]}: ${JSON.stringify(j.result)}`);
      assert.equal(j.error, failed[i][1]);
      const ev = (await jobEvents(r, room, id)).find((e) => e.data.status === 'failed');
      assert.equal(ev.data.error, j.error);
    }
    assertCleanExit(w, await stopWorker(w));
  } finally {
    await piston.close();
  }
}));

test('a slow Piston /runtimes does not stall the worker: its running job is never taken over', () => withRedis(async (r, redis) => {
  // /runtimes answers after 8 s, refreshed every second; the liveness key lapses after 3 s
  // without renewal, and then the other worker's idle thread would claim the running job
  const piston = await startPiston({ slowMs: 7000, runtimesDelayMs: 8000 });
  try {
    const env = {
      PISTON_URL: piston.url, PISTON_TIMEOUT_MS: '30000', WORKERS: '1', RUNTIMES_REFRESH_S: '1',
      WORKER_LIVENESS_MS: '3000', CLAIM_IDLE_MS: '30000',
    };
    const a = await startWorker(redis.port, env);
    const b = await startWorker(redis.port, env);
    const room = jobId('room');
    const id = await enqueue(r, { room, request: py('print(2) # PISTON_SLOW') });
    const j = await waitStatus(r, id, ['finished', 'failed'], 40000);
    assert.equal(j.status, 'finished', j.error);
    assert.equal(j.result.stdout, 'ran print(2) # PISTON_SLOW | stdin= | args=\n');
    assert.equal(j.attempts, 1);
    const ev = (await jobEvents(r, room, id)).filter((e) => e.data.job_id === id);
    assert.deepEqual(ev.map((e) => e.data.status), ['queued', 'running', 'finished']);
    assert.ok(!ev.some((e) => e.data.restarted), 'never restarted');
    assert.equal(piston.requests.filter((q) => q.url === '/api/v2/execute').length, 1, 'run once on Piston');
    // the slow list is still announced
    const runtimes = await waitFor(async () => JSON.parse(await r.cmd('GET', 'cc:runtimes')), { what: 'cc:runtimes' });
    assert.deepEqual(runtimes.map((x) => x.language), RUNTIMES.map((x) => x.language));
    assertCleanExit(a, await stopWorker(a));
    assertCleanExit(b, await stopWorker(b));
  } finally {
    await piston.close();
  }
}));

test('a malformed job (attempts not an integer, a key that is no hash) ends and is acknowledged; the worker goes on', () => withRedis(async (r, redis) => {
  const room = jobId('room');
  // a hash whose attempt count Redis cannot increment (planted before the worker starts,
  // so that it never reads the job before the count is spoilt)
  const bad = await enqueue(r, { room, request: sh('echo never') });
  await r.cmd('HSET', `cc:{jobs}:job:${bad}`, 'attempts', 'abc');
  // and the job's key holding a string
  const wrong = jobId();
  await r.cmd('SET', `cc:{jobs}:job:${wrong}`, 'not a hash');
  await r.cmd('XADD', 'cc:{jobs}:stream', '*', 'job', wrong);
  const next = await enqueue(r, { room, request: sh('echo next') });
  const w = await startWorker(redis.port, { WORKERS: '1' });
  const j = await waitStatus(r, bad, ['failed', 'finished']);
  assert.equal(j.status, 'failed');
  assert.match(j.error, /malformed job: its attempt count cannot be kept .*not an integer/);
  assert.equal(j.result, undefined);
  const ev = (await jobEvents(r, room, bad)).filter((e) => e.data.job_id === bad).map((e) => e.data.status);
  assert.deepEqual(ev, ['queued', 'failed']);
  assert.equal((await waitStatus(r, next, 'finished')).result.stdout, 'next\n');
  // both bad entries acknowledged, not redelivered
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'ack' });
  assert.match(w.output, new RegExp(`job ${wrong} .*is not a job hash.*dropped`));
  assert.equal(await r.cmd('GET', `cc:{jobs}:job:${wrong}`), 'not a hash');
  // the worker keeps serving
  const after = await enqueue(r, { room, request: sh('echo after') });
  assert.equal((await waitStatus(r, after, 'finished')).result.stdout, 'after\n');
  assertCleanExit(w, await stopWorker(w));
}));

// Per job, the statuses of `events` ({data: {job_id, status}}) in order.
function byJob(evs) {
  const m = new Map();
  for (const e of evs) {
    if (!m.has(e.data.job_id)) m.set(e.data.job_id, []);
    m.get(e.data.job_id).push(e.data.status);
  }
  return m;
}

test('30 jobs on 2 threads: every subscriber sees queued, running, finished once each, in order; a finished hash always has its event', () => withRedis(async (r, redis) => {
  const room = jobId('room');
  const subs = [await subscribe(redis.port, room), await subscribe(redis.port, room)];
  const watcher = await connectRedis(redis.port);
  const w = await startWorker(redis.port, { WORKERS: '2' });
  const ids = [];
  for (let i = 0; i < 30; i++) ids.push(await enqueue(r, { room, request: sh(`echo ${i}`) }));
  // Meanwhile read each job's status, the room's history and the jobs' outbox in one
  // transaction, again and again: a status is never without its event, which is in the
  // history or still in the outbox (written in the same step as the status; the drain
  // carries it to the room, and the API drains before it answers GET /api/jobs/{id}).
  const seen = [];
  let done = false;
  const watching = (async () => {
    while (!done) {
      const replies = [watcher.cmd('MULTI'), ...ids.map((id) => watcher.cmd('HGET', `cc:{jobs}:job:${id}`, 'status')),
        watcher.cmd('XRANGE', `cc:room:{${room}}:events`, '-', '+'),
        watcher.cmd('XRANGE', 'cc:{jobs}:outbox', '-', '+'), watcher.cmd('EXEC')];
      const snap = (await Promise.all(replies)).at(-1);
      const entries = [...snap.at(-2), ...snap.at(-1).filter(([, f]) => f[f.indexOf('room') + 1] === room)];
      const hist = byJob(entries.map(([, f]) => ({ data: JSON.parse(f[f.indexOf('data') + 1]) })));
      ids.forEach((id, i) => {
        const st = snap[i];
        if (st !== 'queued') seen.push([id, st, (hist.get(id) || []).join(',')]);
      });
    }
  })();
  await Promise.all(ids.map((id) => waitStatus(r, id, 'finished', 60000)));
  await waitFor(() => subs.every((s) => s.messages.filter((m) => m.data.status === 'finished').length === 30),
    { what: 'every subscriber to hear 30 finished events' });
  done = true;
  await watching;
  watcher.close();
  for (const [id, st, hist] of seen) {
    assert.ok(hist.split(',').includes(st), `job ${id}: the hash said ${st} while the history and the outbox had only ${hist}`);
  }
  const expected = ['queued', 'running', 'finished'];
  for (const [n, s] of subs.entries()) {
    const got = byJob(s.messages);
    for (const id of ids) assert.deepEqual(got.get(id), expected, `subscriber ${n + 1}, job ${id}`);
    s.close();
  }
  // every finished event was published, and a drain adds an event and publishes it in one step
  const hist = byJob(await events(r, room));
  for (const id of ids) assert.deepEqual(hist.get(id), expected, `history of job ${id}`);
  console.log(`  30 jobs: ${seen.length} snapshots of running/finished jobs checked against the history`);
  assertCleanExit(w, await stopWorker(w));
}));

test('a stale worker (stalled until its job was claimed and finished) stores and announces nothing', () => withRedis(async (r, redis) => {
  const a = await startWorker(redis.port, { WORKERS: '1', CLAIM_IDLE_MS: '1500' });
  const room = jobId('room');
  const id = await enqueue(r, { room, request: sh('sleep 2; echo done') });
  await waitStatus(r, id, 'running');
  a.kill('SIGSTOP'); // its heartbeats stop: the job looks abandoned
  const b = await startWorker(redis.port, { WORKERS: '1', CLAIM_IDLE_MS: '1500' });
  const j = await waitStatus(r, id, 'finished', 30000);
  assert.equal(j.attempts, 2);
  const finishedBy = j.worker;
  a.kill('SIGCONT'); // attempt 1 comes back with its own outcome
  await waitFor(() => /attempt 1 is stale/.test(a.output), { timeout: 30000, what: 'the stale attempt to end' });
  const after = await job(r, id);
  assert.equal(after.status, 'finished');
  assert.equal(after.attempts, 2);
  assert.equal(after.worker, finishedBy, 'the outcome stays the one of the attempt that owns the job');
  assert.deepEqual((await jobEvents(r, room, id)).map((e) => e.data.status), ['queued', 'running', 'running', 'finished']);
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'ack' });
  assertCleanExit(a, await stopWorker(a));
  assertCleanExit(b, await stopWorker(b));
}));

test('a worker that stalls past its liveness and wakes up: its job stays with the worker that took it over, whose death is then noticed within seconds', () => withRedis(async (r, redis) => {
  // Heartbeats every CLAIM_IDLE_MS / 3 = 3 s. A woken worker that took the entry back with
  // them hid it from the orphan scan (its owner looked alive), and XAUTOCLAIM needs 9 s idle
  // after the stale run's 20 s: the job sat running with nobody running it for ~20 s.
  // RUN_TIMEOUT_MS lets the run's 20 s sleep go on (the default cuts it at 5 s).
  const env = { WORKERS: '1', CLAIM_IDLE_MS: '9000', WORKER_LIVENESS_MS: '1500', RUN_TIMEOUT_MS: '30000', SHUTDOWN_GRACE_MS: '0' };
  const w1 = await startWorker(redis.port, env);
  const w2 = await startWorker(redis.port, env);
  for (const w of [w1, w2]) w.consumer = w.output.match(/consumer (\S+): \d+ job threads/)[1];
  const room = jobId('room');
  const id = await enqueue(r, { room, request: sh('sleep 20; echo late') });
  await waitStatus(r, id, 'running');
  const a = (await job(r, id)).worker === w1.consumer ? w1 : w2;
  const b = a === w1 ? w2 : w1;
  a.kill('SIGSTOP'); // its liveness key lapses; its sandbox's sleep goes on
  const running = async (attempt) => (await events(r, room))
    .some((e) => e.data.job_id === id && e.data.status === 'running' && e.data.attempt === attempt);
  await waitFor(() => running(2), { timeout: 20000, what: 'b to take the job over (attempt 2)' });
  assert.equal((await job(r, id)).worker, b.consumer);
  a.kill('SIGCONT');
  await sleep(3500); // a heartbeat period of a's, and some
  const [[, owner]] = await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers', '-', '+', 10);
  assert.equal(owner, b.consumer, 'the entry stays pending with the worker that runs the job');
  b.kill('SIGKILL');
  const t0 = Date.now();
  await b.exited;
  // b's liveness key lapses after 1.5 s and a's free thread scans every second
  await waitFor(() => running(3), { timeout: 12000, what: 'the job taken over again once b died (attempt 3)' });
  const took = Date.now() - t0;
  const j = await job(r, id);
  assert.equal(j.status, 'running');
  assert.equal(j.attempts, 3);
  assert.equal(j.worker, a.consumer, 'run by a\'s only thread: its stale run was stopped');
  const line = `job ${id}: taken over by another worker (${b.consumer}): attempt 1 is stale, stopping it`;
  assert.ok(a.output.includes(line), `a logs: ${line}\n${a.output}`);
  console.log(`  a stalled worker woke up: the job taken over again ${took} ms after the other worker's kill`);
  // the stopped stale run wrote nothing: no requeue, no event of its own
  assert.deepEqual((await jobEvents(r, room, id)).map((e) => [e.data.status, e.data.attempt]),
    [['queued', undefined], ['running', undefined], ['running', 2], ['running', 3]]);
  // what DELETE /api/jobs/{id} leaves: attempt 3 stops, and the entry is acknowledged
  await r.cmd('HSET', `cc:{jobs}:job:${id}`, 'status', 'cancelled', 'error', 'cancelled by tester');
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { timeout: 20000, what: 'ack of the cancelled job' });
  assertCleanExit(a, await stopWorker(a));
}));

// A job put in its room's line of the fair scheduler the way the API's create script
// leaves it (lib/jobstate.c): the hash, the line, the backlog counters, the room in the
// ring. Workers dispatch it into cc:{jobs}:stream when a thread is free (their registration
// dispatches every second).
async function enqueueFair(r, { room, request, user = '1' }) {
  const id = jobId();
  await r.cmd('HSET', `cc:{jobs}:job:${id}`, 'kind', 'execution', 'room', room, 'user', user, 'username', 'tester',
    'request', JSON.stringify(request), 'status', 'queued', 'attempts', '0', 'created_at', Math.floor(Date.now() / 1000));
  await r.cmd('RPUSH', `cc:{jobs}:fair:room:${room}`, id);
  await r.cmd('INCR', 'cc:{jobs}:fair:depth');
  await r.cmd('HINCRBY', 'cc:{jobs}:fair:users', user, 1);
  const running = Number(await r.cmd('HGET', 'cc:{jobs}:fair:running', room) || 0);
  const turn = Number(await r.cmd('HGET', 'cc:{jobs}:fair:turn', room) || 0);
  await r.cmd('ZADD', 'cc:{jobs}:fair:rooms', 'NX', running * 1e12 + turn, room);
  return id;
}

test('fair dispatch across rooms, and a worker killed mid-job: taken over, every job once, nothing left in flight', () => withRedis(async (r, redis) => {
  const env = { WORKERS: '1', CLAIM_IDLE_MS: '1500' };
  const a = await startWorker(redis.port, env);
  const busy = jobId('room');
  const quiet = jobId('room');
  const xs = [];
  for (let i = 0; i < 3; i++) xs.push(await enqueueFair(r, { room: busy, request: sh(`sleep 1.5; echo x${i}`) }));
  await waitStatus(r, xs[0], 'running');
  const y = await enqueueFair(r, { room: quiet, request: sh('echo y') });
  a.kill('SIGKILL');
  await a.exited;
  const b = await startWorker(redis.port, env);
  for (const [i, id] of xs.entries()) assert.equal((await waitStatus(r, id, 'finished', 30000)).result.stdout, `x${i}\n`);
  assert.equal((await waitStatus(r, y, 'finished')).result.stdout, 'y\n');
  assert.equal((await job(r, xs[0])).attempts, 2);
  // dispatched in fair order: the quiet room's job before the busy room's second, each once
  const entries = (await r.cmd('XRANGE', 'cc:{jobs}:stream', '-', '+')).map(([, f]) => f[1]);
  assert.deepEqual(entries, [xs[0], y, xs[1], xs[2]]);
  for (const id of [...xs, y]) {
    const st = (await jobEvents(r, id === y ? quiet : busy, id)).filter((e) => e.data.job_id === id).map((e) => e.data.status);
    assert.equal(st.filter((s) => s === 'finished').length, 1, `job ${id}: ${st}`);
  }
  // every slot released, every counter back to nothing, every entry acknowledged
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'ack' });
  assert.equal(await r.cmd('HLEN', 'cc:{jobs}:fair:inflight'), 0);
  assert.equal(await r.cmd('HLEN', 'cc:{jobs}:fair:running'), 0);
  assert.equal(await r.cmd('GET', 'cc:{jobs}:fair:depth'), '0');
  assert.equal(await r.cmd('ZCARD', 'cc:{jobs}:fair:rooms'), 0);
  assert.equal(await r.cmd('HLEN', 'cc:{jobs}:fair:turn'), 0);
  // named by its host, its pid and a random part (two workers with one host and pid, in pid
  // namespaces of their own, are told apart: worker-uids.test.mjs)
  const consumer = b.output.match(/consumer (\S+): \d+ job threads/)[1];
  assert.match(consumer, new RegExp(`^${hostname().replace(/[^\w-]/g, '\\$&')}-${b.pid}-[0-9a-f]{8}$`));
  assert.equal(await r.cmd('HEXISTS', 'cc:{jobs}:fair:workers', consumer), 1);
  assertCleanExit(b, await stopWorker(b));
  // a stopped worker no longer counts as capacity
  assert.equal(await r.cmd('HEXISTS', 'cc:{jobs}:fair:workers', consumer), 0);
}));

test('a running job whose status becomes cancelled: its sandbox is killed, the entry acknowledged, nothing stored', () => withRedis(async (r, redis) => {
  const w = await startWorker(redis.port, { WORKERS: '1' });
  const room = jobId('room');
  const id = await enqueueFair(r, { room, request: sh('sleep 60; echo never') });
  await waitStatus(r, id, 'running');
  // what DELETE /api/jobs/{id} leaves (the API test covers the endpoint itself)
  await r.cmd('HSET', `cc:{jobs}:job:${id}`, 'status', 'cancelled', 'error', 'cancelled by tester');
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'ack of the cancelled job', timeout: 20000 });
  const j = await job(r, id);
  assert.equal(j.status, 'cancelled');
  assert.equal(j.result, undefined);
  assert.match(w.output, /cancelled by its owner: stopping it/);
  // the thread is free again: the next job runs
  const next = await enqueueFair(r, { room, request: sh('echo next') });
  assert.equal((await waitStatus(r, next, 'finished')).result.stdout, 'next\n');
  assertCleanExit(w, await stopWorker(w));
}));

// JOB_HANG_TIMEOUT_S (queue-worker/main.c, watch_jobs): a job still running past it is
// stopped by the main thread and fails with an error saying why (QUEUE_OVERRAN), instead of
// holding its thread, and its entry kept fresh, for as long as it runs; a setting below
// what the job settings allow is warned about at start.
test('a job running past JOB_HANG_TIMEOUT_S is stopped and fails, saying so; the thread takes the next job', () => withRedis(async (r, redis) => {
  const w = await startWorker(redis.port, { WORKERS: '1', JOB_HANG_TIMEOUT_S: '2', RUN_TIMEOUT_MS: '30000' });
  const room = jobId('room');
  const id = await enqueueFair(r, { room, request: sh('sleep 25; echo never') });
  await waitStatus(r, id, 'running');
  const t0 = Date.now();
  const j = await waitStatus(r, id, ['failed', 'finished'], 15000);
  const took = Date.now() - t0;
  assert.equal(j.status, 'failed', JSON.stringify(j));
  assert.equal(j.error, 'the job ran longer than a job may (JOB_HANG_TIMEOUT_S) and was stopped');
  assert.equal(j.attempts, 1, 'not put back in the queue to run as long again');
  assert.ok(took < 12000, `failed ${took} ms after it was seen running`);
  const failed = (await jobEvents(r, room, id)).find((e) => e.data.status === 'failed');
  assert.ok(failed, 'the room is told');
  assert.equal(failed.data.error, j.error);
  assert.match(w.output, new RegExp(`job ${id}: has run for [23] s, past JOB_HANG_TIMEOUT_S \\(2 s\\): stopping it`));
  assert.match(w.output, /JOB_HANG_TIMEOUT_S \(2 s\) is shorter than a job may take by the other settings \(\d+ s/);
  await waitFor(async () => (await r.cmd('XPENDING', 'cc:{jobs}:stream', 'workers'))[0] === 0, { what: 'the failed job acknowledged' });
  // the thread is free again, and a job within the bound runs as ever
  const next = await enqueueFair(r, { room, request: sh('echo next') });
  assert.equal((await waitStatus(r, next, 'finished')).result.stdout, 'next\n');
  assertCleanExit(w, await stopWorker(w));
  // the default leaves every job its settings' time: no warning; 0 turns the watch off; a
  // value that is no number of seconds stops the program, naming it
  const d = await startWorker(redis.port, { WORKERS: '1', JOB_HANG_TIMEOUT_S: '0' });
  const slow = await enqueueFair(r, { room, request: sh('sleep 3; echo slow') });
  assert.equal((await waitStatus(r, slow, 'finished')).result.stdout, 'slow\n');
  assertCleanExit(d, await stopWorker(d));
  const quiet = await startWorker(redis.port, { WORKERS: '1' });
  assertCleanExit(quiet, await stopWorker(quiet));
  assert.doesNotMatch(quiet.output + d.output, /JOB_HANG_TIMEOUT_S/);
  await assert.rejects(startWorker(redis.port, { JOB_HANG_TIMEOUT_S: 'soon' }),
    /worker exited 2 before it started: [^]*JOB_HANG_TIMEOUT_S must be an integer from 0 to \d+ \(got "soon"\)/);
}));

// The same watch when the job's thread does not come back: every transfer of libcurl's is
// made to wait for good (tests/programs/stall_curl.c, loaded with LD_PRELOAD: the only way to
// make a call of the worker's never end), and the job runs on Piston. The stopped job's
// thread is found stuck 10 s later: the worker stops showing life (ALIVE_FILE no longer
// counts), so its supervisor would start it again, and no longer keeps the job's entry
// fresh, so another worker claims it and runs it.
test('a job thread stuck in a call that never returns: the worker stops showing life and another worker runs the job', () => withRedis(async (r, redis) => {
  const stall = join(ROOT, 'build/asan/tests/programs/stall_curl.so');
  assert.ok(existsSync(stall), `${stall} is missing: run make build-asan`);
  const dir = mkdtempSync(join(tmpdir(), 'cc-stuck-'));
  const aliveFile = join(dir, 'alive');
  const count = () => Number(readFileSync(aliveFile, 'utf8').trim());
  const a = await startWorker(redis.port, {
    WORKERS: '1', JOB_HANG_TIMEOUT_S: '2', PISTON_URL: 'http://127.0.0.1:9', ALIVE_FILE: aliveFile,
    LD_PRELOAD: stall, ASAN_OPTIONS: 'detect_leaks=0:verify_asan_link_order=0',
  });
  try {
    const room = jobId('room');
    const id = await enqueueFair(r, { room, request: sh('echo ran') });
    await waitStatus(r, id, 'running');
    const before = count();
    await waitFor(() => count() > before, { what: 'the worker showing life while its job runs' });
    await waitFor(() => /has run for [23] s, past JOB_HANG_TIMEOUT_S \(2 s\): stopping it/.test(a.output), { what: 'the job stopped' });
    const t0 = Date.now();
    await waitFor(() => new RegExp(`job ${id}: its thread has not come back 10 s after the job was stopped: it is stuck`).test(a.output),
      { what: 'the thread found stuck', timeout: 20000 });
    assert.ok(Date.now() - t0 >= 8000, 'found stuck only after the grace');
    const stopped = count();
    await sleep(2000);
    assert.equal(count(), stopped, 'the worker went on showing life with a stuck thread');
    assert.equal((await job(r, id)).status, 'running', 'the stuck attempt stored nothing');
    // another worker (the local sandbox) claims the entry once it is no longer kept fresh
    const b = await startWorker(redis.port, { WORKERS: '1' });
    const done = await waitStatus(r, id, 'finished', 20000);
    assert.equal(done.result.stdout, 'ran\n');
    assert.equal(done.attempts, 2);
    assertCleanExit(b, await stopWorker(b));
  } finally {
    await stopWorker(a, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}));
