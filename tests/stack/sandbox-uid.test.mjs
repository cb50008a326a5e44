// Runs of different users at the same time, through the real stack (two worker threads):
// the kernel counts some resources per host user, whatever the namespaces: inotify instances
// (fs.inotify.max_user_instances, 128), queued signals and POSIX timers (RLIMIT_SIGPENDING),
// POSIX message queue bytes (RLIMIT_MSGQUEUE), pipe buffers (fs.pipe-user-pages-soft),
// descriptors in flight over Unix sockets. When every sandbox ran as the same host uid
// (65534), what one run held of them another user's run could not have while it lasted; each
// step now runs as a host uid of its own (queue-worker/sandbox_uid.c; docs/SECURITY.md,
// "Running other people's code").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { newUser, createRoom } from '../lib/api.mjs';
import { jobHash, run, waitJob } from '../lib/jobs.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Takes every inotify instance the kernel gives it (at most 200), says how many, and holds
// them for 10 s: long enough for the other run to start while they are held.
const HOLD = `import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while n < 200 and libc.inotify_init() >= 0:
    n += 1
print('held', n, flush=True)
time.sleep(10)
`;

// One inotify instance, as Node's fs.watch or a file watcher would take.
const WATCH = `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
print('inotify_init', 'ok' if fd >= 0 else os.strerror(ctypes.get_errno()))
`;

test('what one run holds of a per-user kernel count (inotify instances) does not fail another user\'s run at the same time', async () => {
  const a = await newUser();
  const b = await newUser();
  const roomA = await createRoom(a.token);
  const roomB = await createRoom(b.token);
  const ra = await run(a.token, roomA, { language: 'python', code: HOLD });
  assert.equal(ra.status, 202, ra.text);
  // a's program has taken them once its job has run for a moment
  await waitJob(a.token, ra.json.job.id, { until: (j) => j.status !== 'queued' });
  await sleep(1000);
  const rb = await run(b.token, roomB, { language: 'python', code: WATCH });
  assert.equal(rb.status, 202, rb.text);
  const jb = await waitJob(b.token, rb.json.job.id);
  const ja = await waitJob(a.token, ra.json.job.id);
  assert.match(ja.result.stdout, /^held \d+\n$/, JSON.stringify(ja.result));
  // the test means something only if a held all a user may have, and b ran meanwhile
  const most = Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
  if (most <= 200) assert.ok(Number(ja.result.stdout.split(' ')[1]) >= most, `a held only ${ja.result.stdout.trim()} of ${most}`);
  // (the job hashes' times, in seconds)
  const started = Number(jobHash(rb.json.job.id).started_at), ended = Number(jobHash(ra.json.job.id).finished_at);
  assert.ok(started < ended, `b's run (started ${started}) did not run while a's held them (it ended ${ended})`);
  assert.equal(jb.status, 'finished', JSON.stringify(jb));
  assert.equal(jb.result.stdout, 'inotify_init ok\n', `another user's run held the inotify instances (${ja.result.stdout.trim()}): ${jb.result.stdout}`);
});
