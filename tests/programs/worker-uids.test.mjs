// The host uids of the sandbox's steps, held by lock files (queue-worker/sandbox_uid.c;
// docs/INTERNALS.md, "Sandbox host uids"), through the real worker and real redis-servers:
// the lock directory (SANDBOX_UID_LOCK_DIR) checked at start, a local user who is not root
// unable to take a uid away from the worker, two workers in different network namespaces
// never running steps as one uid at the same time, a killed worker's uid free again, and a
// process still running as a uid: killed before a step is handed it, and a uid given back
// only once none runs as it (kept held, unused, while one will not die), also after a
// program made its sandbox outlive bwrap.
// Each test has a directory and a range of uids of its own (by this process's pid), past
// the default range and past what tests/programs/test_sandbox.c and
// tests/unit/test_sandbox_uid.c take. Needs root and the ASan build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { childPids } from '../lib/proctree.mjs';

import {
  WORKER_BIN, enqueue, job, jobId, startRedis, startWorker, stopRedis, stopWorker, waitFor, waitStatus,
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

test('a /proc that is not the one of the worker\'s own pid namespace: the worker refuses to start, saying so (it could not find a step\'s leftovers there)', () => withRedisOf([], async (r, redis) => {
  // a pid namespace of its own, the host's /proc still mounted: /proc/self is the worker's
  // pid in the host's namespace, getpid() 1
  await assert.rejects(startWorker(redis.port, env(join(top, 'pidns')), { wrap: ['unshare', '--pid', '--fork'] }), (e) => {
    assert.match(e.message, /before it started/);
    assert.match(e.message, /\/proc is not the one of the worker's own pid namespace \(\/proc\/self is \d+, the worker's pid 1\)/);
    return true;
  });
  // with its own /proc it starts
  const w = await startWorker(redis.port, env(join(top, 'pidns')), { wrap: ['unshare', '--pid', '--kill-child=SIGTERM', '--mount-proc'] });
  // stopped as a supervisor of the namespace would: a SIGTERM to the worker itself (its pid
  // 1 takes it, having a handler), after which unshare ends with it. unshare passes on no
  // SIGTERM of its own, so one sent to it would wait out stopWorker's bound (20 s) first.
  const [inner] = childPids(w.pid);
  assert.ok(inner, 'the worker runs under unshare');
  process.kill(inner, 'SIGTERM');
  const { code } = await w.exited;
  assert.equal(code, 0, w.output);
}));

test('two workers in pid namespaces of their own (each pid 1, one hostname) are two consumers: each keeps its own liveness and capacity, and one\'s stop leaves the other\'s', () => withRedisOf([], async (r, redis, workers) => {
  const wrap = ['unshare', '--pid', '--kill-child=SIGTERM', '--mount-proc'];
  const dir = join(top, 'pidns-two');
  for (let i = 0; i < 2; i++) workers.push(await startWorker(redis.port, env(dir), { wrap }));
  const names = workers.map((w) => w.output.match(/consumer (\S+): \d+ job threads/)[1]);
  // both are pid 1 in their namespaces (<host>-1-<random>); the names still differ
  assert.notEqual(names[0], names[1]);
  for (const n of names) assert.match(n, /-1-[0-9a-f]{8}$/);
  for (const n of names) assert.equal(await r.cmd('EXISTS', `cc:worker:${n}:alive`), 1, `${n}'s liveness key`);
  await waitFor(async () => (await r.cmd('HLEN', 'cc:{jobs}:fair:workers')) === 2, { what: 'both workers counted as capacity' });
  // the first stops, as a supervisor of its namespace would stop it (as in the test above)
  const [inner] = childPids(workers[0].pid);
  assert.ok(inner, 'the worker runs under unshare');
  process.kill(inner, 'SIGTERM');
  assert.equal((await workers[0].exited).code, 0, workers[0].output);
  workers.shift();
  assert.equal(await r.cmd('EXISTS', `cc:worker:${names[0]}:alive`), 0, 'the stopped worker\'s liveness key is gone');
  assert.equal(await r.cmd('EXISTS', `cc:worker:${names[1]}:alive`), 1, 'the other\'s is kept');
  assert.equal(await r.cmd('HEXISTS', 'cc:{jobs}:fair:workers', names[0]), 0);
  assert.equal(await r.cmd('HEXISTS', 'cc:{jobs}:fair:workers', names[1]), 1);
  // and the one left runs jobs under its own name
  const id = await enqueue(r, { request: py('print(7 * 6)') });
  const done = await waitStatus(r, id, 'finished', 30000);
  assert.equal(done.result.stdout, '42\n', JSON.stringify(done.result));
  assert.equal(done.worker, names[1]);
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

// ---- processes still running as a uid (docs/INTERNALS.md, "Sandbox host uids") ----
// A stand-in for what a step can leave behind when its uid is given back: the test starts a
// process as the range's one uid itself (root may), as a process of a step that outlived
// its sandbox would run: one of a worker killed mid-step, whose lock the kernel drops at once
// while it ends the step's processes a moment later, or one the kernel is slow to end. It
// holds every inotify instance the kernel gives a user (fs.inotify.max_user_instances), a
// count kept per host uid whatever the namespaces, so a step that runs as the same uid while
// it lives cannot get one: the failure a user would see. It says how many it holds, ignores
// SIGTERM and SIGINT, and sleeps until killed.
const LEFTOVER = String.raw`
import ctypes, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while n < 1000 and libc.inotify_init() >= 0:
    n += 1
print('held', n, flush=True)
time.sleep(600)
`;

// One inotify instance, as a file watcher takes.
const WATCH = String.raw`
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
print('inotify_init', 'ok' if fd >= 0 else os.strerror(ctypes.get_errno()))
`;

// Starts LEFTOVER as uid (its own gid too); cgroupProcs, when given, is a cgroup.procs file
// it joins before it drops to the uid. Resolves once it holds its instances.
async function startLeftover(uid, cgroupProcs = null) {
  const drop = ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '/usr/bin/python3', '-c', LEFTOVER];
  const argv = cgroupProcs ? ['sh', '-c', `echo $$ > '${cgroupProcs}' && exec "$@"`, 'sh', ...drop] : drop;
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  p.out = '';
  p.stdout.on('data', (d) => { p.out += d; });
  p.stderr.on('data', (d) => { p.out += d; });
  p.ended = new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  process.on('exit', () => { try { p.kill('SIGKILL'); } catch { /* gone */ } });
  await waitFor(() => /held \d+\n/.test(p.out) || p.exitCode !== null, { what: 'the leftover process' });
  const held = Number(p.out.match(/held (\d+)\n/)?.[1]);
  if (!(held > 0)) p.kill('SIGKILL');
  assert.ok(held > 0, `the leftover took no inotify instance: ${p.out}`);
  return p;
}

// A process of the uid whose lock nobody holds: a step is handed the uid only once it is gone
// (killed at the take), and gets its inotify instance. With cgroups (the default here, v1 on
// the test machines) and without: the take does not rely on them.
for (const cgroup of ['auto', 'none']) {
  test(`a process still running as a free uid (a killed worker's step) is killed before a step runs as it (SANDBOX_CGROUP=${cgroup})`, () => withRedisOf([], async (r, redis, workers) => {
    const dir = join(top, `stale-${cgroup}`);
    workers.push(await startWorker(redis.port, env(dir, { SANDBOX_CGROUP: cgroup })));
    const leftover = await startLeftover(BASE);
    try {
      const id = await enqueue(r, { request: py(WATCH) });
      const j = await waitStatus(r, id, ['finished', 'failed'], 20000);
      assert.equal(j.status, 'finished', JSON.stringify(j));
      assert.equal(j.result.stdout, 'inotify_init ok\n', 'the step shared its uid with the leftover process');
      assert.deepEqual(await leftover.ended, { code: null, signal: 'SIGKILL' });
      assert.match(workers[0].output, new RegExp(`uid ${BASE} was free but 1 process\\(es\\) still ran as it .*killed, another uid taken`));
    } finally {
      leftover.kill('SIGKILL');
      await leftover.ended;
    }
  }));
}

// A freezer cgroup of the test's own, where a process takes no SIGKILL until it is thawed:
// a process that will not go. Without the v1 freezer, v2's cgroup.freeze.
function makeFreezer(name) {
  const v1 = '/sys/fs/cgroup/freezer';
  const dir = existsSync(v1) ? join(v1, name) : join('/sys/fs/cgroup', name);
  mkdirSync(dir);
  const set = (frozen) => (existsSync(v1)
    ? writeFileSync(join(dir, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED')
    : writeFileSync(join(dir, 'cgroup.freeze'), frozen ? '1' : '0'));
  const state = () => readFileSync(join(dir, existsSync(v1) ? 'freezer.state' : 'cgroup.freeze'), 'utf8').trim();
  // a group empties a moment after its last process is reaped
  const remove = () => waitFor(() => {
    try {
      rmdirSync(dir);
      return true;
    } catch (e) {
      if (e.code === 'EBUSY') return false;
      throw e;
    }
  }, { timeout: 5000, what: `${dir} to empty` });
  return { procs: join(dir, 'cgroup.procs'), freeze: () => set(true), thaw: () => set(false), state, remove };
}

test('without cgroups, a uid is given back only once no process runs as it; one that will not die keeps it held, and no later step runs as it until it is gone', () => withRedisOf([], async (r, redis, workers) => {
  const dir = join(top, 'stuck');
  const lock = join(dir, `${BASE}.lock`);
  // (8 s of the run to start, freeze and check the leftover in, on a loaded machine)
  workers.push(await startWorker(redis.port, env(dir, { SANDBOX_CGROUP: 'none', RUN_TIMEOUT_MS: '20000' })));
  const frz = makeFreezer(`cc-test-uid-stuck-${process.pid}`);
  let leftover = null;
  try {
    // a run that holds the uid for a while: the leftover appears while it runs, as a
    // process of the step that outlived its sandbox would
    const id = await enqueue(r, { request: py('import time\nprint("up", flush=True)\ntime.sleep(8)\nprint("done")\n') });
    await waitStatus(r, id, 'running');
    await waitFor(() => lockHeld(lock) === 1, { what: 'the step to hold its uid' });
    leftover = await startLeftover(BASE, frz.procs);
    frz.freeze();
    await waitFor(() => frz.state() === 'FROZEN' || frz.state() === '1', { what: 'the leftover to be frozen' });
    // (the run must still be running: the leftover was in place before its uid was given back)
    assert.equal((await job(r, id)).status, 'running', 'the run ended before the leftover was frozen: the machine is too slow for this test');

    const j = await waitStatus(r, id, ['finished', 'failed'], 30000);
    assert.equal(j.status, 'finished', JSON.stringify(j));
    assert.equal(j.result.stdout, 'up\ndone\n');
    // still held: no step is handed it while the leftover lives
    assert.equal(lockHeld(lock), 1, `uid ${BASE} was given back while a process still ran as it`);
    assert.match(workers[0].output, new RegExp(`1 process\\(es\\) of uid ${BASE} still live 5000 ms after SIGKILL: the uid stays held, unused, until they are gone`));
    const next = await enqueue(r, { request: py(WATCH) });
    const jn = await waitStatus(r, next, ['finished', 'failed'], 30000);
    assert.equal(jn.status, 'failed', JSON.stringify(jn));
    assert.match(jn.error, /no host uid free for the sandbox/);

    // thawed, it takes the SIGKILL it was sent; the next run finds it gone and has the uid
    // again, from the same worker (it was held until the worker's restart)
    frz.thaw();
    assert.deepEqual(await leftover.ended, { code: null, signal: 'SIGKILL' });
    const again = await enqueue(r, { request: py(WATCH) });
    const ja = await waitStatus(r, again, ['finished', 'failed'], 20000);
    assert.equal(ja.status, 'finished', JSON.stringify(ja));
    assert.equal(ja.result.stdout, 'inotify_init ok\n');
    assert.match(workers[0].output, new RegExp(`the processes of uid ${BASE} are gone: the uid is given back`));
    assert.equal(lockHeld(lock), 0, 'the uid is free again once the run ended');
  } finally {
    if (leftover) {
      leftover.kill('SIGKILL');
      frz.thaw();
      await leftover.ended;
    }
    await frz.remove();
  }
}));

// Live processes (not zombies) whose real or effective uid is uid: [pid, name].
function liveOf(uid) {
  const found = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let text;
    try {
      text = readFileSync(`/proc/${name}/status`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    const ids = text.match(/^Uid:\s+(\d+)\s+(\d+)/m);
    const state = text.match(/^State:\s+(\S)/m)?.[1];
    if (ids && (Number(ids[1]) === uid || Number(ids[2]) === uid) && state !== 'Z' && state !== 'X') {
      found.push([Number(name), text.match(/^Name:\s+(.*)$/m)?.[1]]);
    }
  }
  return found;
}

// A program that would make its sandbox outlive the step (x86-64): bwrap's init, pid 1 of the
// step's pid namespace, runs as the same uid, so the program would write into it through
// /proc/1/mem code where the init resumes when its child ends: prctl(PR_SET_PDEATHSIG, 0),
// then pause() for ever. Killing bwrap would then no longer kill the init (--die-with-parent
// is that signal), and the namespace and everything in it (here a child holding every
// inotify instance of the uid) would live on after bwrap is reaped; the step would end at its
// time limit. The init's mem files are covered (/dev/null on a nodev mount), so the open
// fails; and were anything left, the look through /proc as the uid is given back ends it.
const OUTLIVE = String.raw`
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
pc = int(open('/proc/1/syscall').read().split()[-1], 16)
code = bytes([0xbf, 1, 0, 0, 0, 0x31, 0xf6, 0xb8, 0x9d, 0, 0, 0, 0x0f, 0x05,
              0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7])
with open('/proc/1/mem', 'r+b', buffering=0) as m:
    m.seek(pc)
    m.write(code)
r, w = os.pipe()
if os.fork() == 0:
    n = 0
    while n < 1000 and libc.inotify_init() >= 0:
        n += 1
    os.write(w, str(n).encode())
    os.close(1)
    os.close(2)
    time.sleep(600)
print('left behind, holding', os.read(r, 16).decode(), flush=True)
`;

test('a program cannot write into its sandbox\'s init (/proc/1/mem) to make it outlive bwrap; nothing of the step is left, and the next run gets its uid clean', { skip: process.arch !== 'x64' && 'the program is x86-64 code' }, () => withRedisOf([], async (r, redis, workers) => {
  const dir = join(top, 'outlive');
  workers.push(await startWorker(redis.port, env(dir, { SANDBOX_CGROUP: 'none', RUN_TIMEOUT_MS: '2000' })));
  try {
    const id = await enqueue(r, { request: py(OUTLIVE) });
    const j = await waitStatus(r, id, ['finished', 'failed'], 20000);
    assert.equal(j.status, 'finished', JSON.stringify(j));
    // it read "left behind, holding 128" and ran into the time limit
    assert.equal(j.result.stdout, '', JSON.stringify(j.result));
    assert.match(j.result.stderr, /PermissionError: \[Errno 13\] Permission denied: '\/proc\/1\/mem'/, JSON.stringify(j.result));
    assert.notEqual(j.result.status, 'time_limit_exceeded', JSON.stringify(j.result));
    const task = await enqueue(r, { request: py("open('/proc/1/task/1/mem', 'r+b', buffering=0)") });
    const jt = await waitStatus(r, task, ['finished', 'failed'], 20000);
    assert.match(jt.result.stderr, /PermissionError: \[Errno 13\] Permission denied: '\/proc\/1\/task\/1\/mem'/, JSON.stringify(jt.result));
    assert.deepEqual(liveOf(BASE), [], `processes of the step's uid ${BASE} outlived it`);
    const next = await enqueue(r, { request: py(WATCH) });
    const jn = await waitStatus(r, next, ['finished', 'failed'], 20000);
    assert.equal(jn.status, 'finished', JSON.stringify(jn));
    assert.equal(jn.result.stdout, 'inotify_init ok\n');
  } finally {
    // (on a worker without the cover and the look, the outliving processes: the test's own, by pid)
    for (const [pid] of liveOf(BASE)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}));
