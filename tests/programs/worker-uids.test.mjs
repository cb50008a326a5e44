// The host uids of the sandbox's steps, held by lock files (queue-worker/sandbox_uid.c;
// docs/INTERNALS.md, "Sandbox host uids"), through the real worker and real redis-servers:
// the lock directory (SANDBOX_UID_LOCK_DIR) checked at start, a local user who is not root
// unable to take a uid away from the worker, two workers in different network namespaces
// never running steps as one uid at the same time, and a killed worker's uid free again.
// Each test has a directory and a range of uids of its own (by this process's pid), past
// the default range and past what tests/programs/test_sandbox.c and
// tests/unit/test_sandbox_uid.c take. Needs root and the ASan build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

import {
  WORKER_BIN, enqueue, jobId, startRedis, startWorker, stopRedis, stopWorker, waitFor, waitStatus,
} from '../lib/worker-harness.mjs';

if (!existsSync(WORKER_BIN)) throw new Error(`${WORKER_BIN} is missing: run make build-asan`);
if (process.getuid() !== 0) throw new Error('the worker tests need root (the sandbox drops to its uids)');

const BASE = 2147418112 + 60000 + (process.pid % 1000) * 4;
const py = (code) => ({ language: 'python', version: '*', code, stdin: '', args: [] });

// A directory for this file's lock directories, which others may pass through (0755) so
// that only a lock directory's own mode keeps another user out of it.
const top = mkdtempSync('/tmp/cc-test-uid-locks-');
chmodSync(top, 0o755);
process.on('exit', () => rmSync(top, { recursive: true, force: true }));

const env = (dir, extra = {}) => ({
  SANDBOX_UID_BASE: String(BASE), SANDBOX_UID_COUNT: '1', SANDBOX_UID_LOCK_DIR: dir, WORKERS: '1', ...extra,
});

// 0 when nobody holds the lock of file (flock(1) takes it for a moment), 1 when held.
const lockHeld = (file) => spawnSync('flock', ['-n', '-E', '1', file, 'true']).status;

async function withRedisOf(args, fn) {
  const redis = await startRedis(args);
  const workers = [];
  try {
    await fn(redis.client, redis, workers);
  } finally {
    for (const w of workers) await stopWorker(w, 'SIGKILL');
    await stopRedis(redis);
  }
}

test('the lock directory: made (0700, root\'s) when missing; a symbolic link, a file, a directory others may write or another user owns: the worker refuses to start, saying why', () => withRedisOf([], async (r, redis, workers) => {
  const made = join(top, 'made');
  workers.push(await startWorker(redis.port, env(made)));
  const st = lstatSync(made);
  assert.ok(st.isDirectory());
  assert.equal(st.mode & 0o7777, 0o700);
  assert.equal(st.uid, 0);
  await stopWorker(workers.pop());

  const writable = join(top, 'writable');
  mkdirSync(writable);
  chmodSync(writable, 0o777);
  const group = join(top, 'group');
  mkdirSync(group);
  chmodSync(group, 0o770);
  const link = join(top, 'link');
  symlinkSync(made, link);
  const file = join(top, 'file');
  writeFileSync(file, '');
  const other = join(top, 'other');
  mkdirSync(other, { mode: 0o700 });
  chownSync(other, 65534, 65534);
  const cases = [
    [writable, /SANDBOX_UID_LOCK_DIR\) may be written by its group or others \(mode 0777\)/],
    [group, /may be written by its group or others \(mode 0770\)/],
    [link, /SANDBOX_UID_LOCK_DIR\) is a symbolic link/],
    [file, /SANDBOX_UID_LOCK_DIR\) is not a directory/],
    [other, /SANDBOX_UID_LOCK_DIR\) is owned by uid 65534, not by the worker's own \(0\)/],
    [join(top, 'no', 'parent'), /SANDBOX_UID_LOCK_DIR\): its parent .*\/no: No such file or directory/],
    [join(writable, 'locks'), /its parent .*\/writable \(uid 0, mode 0777\) must belong to root or the worker's user/],
  ];
  for (const [dir, message] of cases) {
    await assert.rejects(startWorker(redis.port, env(dir)), (e) => {
      assert.match(e.message, /before it started/, dir);
      assert.match(e.message, message, dir);
      return true;
    });
  }
  // nothing was made or changed through them: the first worker's self-test left its lock
  // file, nothing more
  assert.deepEqual(readdirSync(made), [`${BASE}.lock`]);
  assert.deepEqual(readdirSync(writable), []);
  assert.deepEqual(readdirSync(other), []);
  assert.equal(lstatSync(writable).mode & 0o7777, 0o777);
  assert.equal(lstatSync(other).uid, 65534);
}));

// Run as nobody: takes what it can of the range's uids, both ways a uid was ever held (the
// lock files, and the abstract socket names of earlier versions), says what it got, and
// holds it until killed.
const SQUAT = String.raw`
import fcntl, json, os, socket, sys, time
d, base, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held, got = [], {'locked': 0, 'bound': 0, 'errors': []}
for uid in range(base, base + count):
    try:
        fd = os.open(os.path.join(d, '%d.lock' % uid), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
        got['locked'] += 1
    except OSError as e:
        got['errors'].append(e.strerror)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind('\0codecollab-sandbox-uid-%d' % uid)
        held.append(s)
        got['bound'] += 1
    except OSError:
        pass
print(json.dumps(got), flush=True)
time.sleep(120)
`;

test('a local user who is not root cannot take the range\'s uids from the worker: no lock file can be made, opened or locked, and runs go on', () => withRedisOf([], async (r, redis, workers) => {
  const dir = join(top, 'squatted');
  const count = 2;
  workers.push(await startWorker(redis.port, env(dir, { SANDBOX_UID_COUNT: String(count) })));
  const squatter = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/python3', '-c', SQUAT,
    dir, String(BASE), String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  squatter.stdout.on('data', (d) => { out += d; });
  squatter.stderr.on('data', (d) => { out += d; });
  try {
    const got = await waitFor(() => (out.includes('\n') ? JSON.parse(out.split('\n')[0]) : null), { what: 'the squatter' });
    // the worker's runs still get a uid, every one of the range in turn
    const room = jobId('room');
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await enqueue(r, { room, request: py(`print(${i})`) }));
    for (let i = 0; i < 3; i++) {
      const j = await waitStatus(r, ids[i], ['finished', 'failed'], 20000);
      assert.equal(j.status, 'finished', JSON.stringify(j));
      assert.equal(j.result.stdout, `${i}\n`);
    }
    assert.equal(got.locked, 0, `nobody holds a uid's lock: ${out}`);
    assert.deepEqual(got.errors, ['Permission denied', 'Permission denied']);
    for (const f of readdirSync(dir)) assert.equal(lstatSync(join(dir, f)).uid, 0, f);
  } finally {
    squatter.kill('SIGKILL');
  }
}));

// Prints when it started and ended (the host's clock, which the sandbox shares), having
// slept between.
const SPAN = 'import time\na = time.time()\ntime.sleep(0.3)\nprint(a, time.time())\n';

test('two workers in different network namespaces, one lock directory, a range of one uid: their steps never run as it at the same time', () => withRedisOf(['--unixsocket', join(top, 'redis.sock'), '--unixsocketperm', '700'], async (r, redis, workers) => {
  const dir = join(top, 'shared');
  const e = env(dir, { REDIS_URL: `unix://${join(top, 'redis.sock')}` });
  workers.push(await startWorker(redis.port, e));
  workers.push(await startWorker(redis.port, e, { wrap: ['unshare', '--net'] }));
  const consumer = (w) => w.output.match(/consumer (\S+): \d+ job threads/)[1];
  const room = jobId('room');
  for (let round = 0; round < 3; round++) {
    const ids = [await enqueue(r, { room, request: py(SPAN) }), await enqueue(r, { room, request: py(SPAN) })];
    const [a, b] = await Promise.all(ids.map((id) => waitStatus(r, id, ['finished', 'failed'], 20000)));
    assert.equal(a.status, 'finished', JSON.stringify(a));
    assert.equal(b.status, 'finished', JSON.stringify(b));
    // one job each, or the test shows nothing
    assert.deepEqual(new Set([a.worker, b.worker]), new Set(workers.map(consumer)));
    const [a0, a1] = a.result.stdout.split(' ').map(Number);
    const [b0, b1] = b.result.stdout.split(' ').map(Number);
    assert.ok(a1 <= b0 || b1 <= a0, `both ran as uid ${BASE} at once: ${a0}..${a1} and ${b0}..${b1}`);
  }
}));

test('a killed worker\'s uid is free again at once: another worker starts and runs as it', async () => {
  const dir = join(top, 'killed');
  const lock = join(dir, `${BASE}.lock`);
  await withRedisOf([], async (r, redis, workers) => {
    workers.push(await startWorker(redis.port, env(dir)));
    const id = await enqueue(r, { request: py('import time\nprint("up", flush=True)\ntime.sleep(30)\n') });
    await waitStatus(r, id, 'running');
    // held while the step runs
    await waitFor(() => lockHeld(lock) === 1, { what: 'the step to hold its uid' });
    workers[0].kill('SIGKILL');
    await workers[0].exited;
    await waitFor(() => lockHeld(lock) === 0, { timeout: 2000, what: 'the killed worker\'s uid to be free' });
  });
  // on a Redis of its own, so that it does not take over the dead worker's job
  await withRedisOf([], async (r, redis, workers) => {
    workers.push(await startWorker(redis.port, env(dir)));
    const id = await enqueue(r, { request: py('print("again")') });
    const j = await waitStatus(r, id, ['finished', 'failed'], 20000);
    assert.equal(j.status, 'finished', JSON.stringify(j));
    assert.equal(j.result.stdout, 'again\n');
  });
});
