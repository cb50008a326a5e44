// Signs of life (lib/alive.h) from the real programs, as systemd's watchdog receives them: a
// datagram socket of our own stands where systemd's NOTIFY_SOCKET would be (a python3
// receiver that notes each message's sender from the kernel's credentials, as systemd does
// for NotifyAccess=main), and the file a supervisor reads (ALIVE_FILE). The broker with
// several stream processes: only its main process notifies, and it ends when one of its
// stream processes hangs (SIGSTOP) for HANG_TIMEOUT_S. A stopped program sends nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, stop, startRedis, startBroker, tempDir, waitFor, sleep, pauseProcess } from '../lib/procs.mjs';
import { parentPid } from '../lib/proctree.mjs';
import { startWorker, stopWorker, WORKER_BIN } from '../lib/worker-harness.mjs';

const SECRET = randomBytes(24).toString('hex');
const redis = await startRedis();
after(() => stop(redis));

// Each datagram as "<sender pid> <text>" on a line of its own.
const RECEIVER = `
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = 0
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    print(pid, msg.decode(errors="replace"), flush=True)
`;

async function receiver() {
  const path = join(tempDir('cc-notify-'), 'notify');
  const r = start('python3', ['-c', RECEIVER, path]);
  await waitFor(() => {
    if (r.exitCode !== null || r.failed) throw new Error(`receiver: ${r.output}`);
    return r.output.includes('ready');
  }, { what: 'the notify receiver' });
  r.path = path;
  // whole lines only: the output read so far may end in the middle of one ("1234 " before
  // its text has come), which would count as a message with no text
  r.messages = () => r.output.split('\n').slice(1, -1).filter(Boolean).map((l) => {
    const [pid, ...text] = l.split(' ');
    return { pid: Number(pid), text: text.join(' ') };
  });
  return r;
}

// systemd's variables for a watchdog of `sec` seconds: notifications a quarter of it apart
const watchdog = (rcv, sec) => ({ NOTIFY_SOCKET: rcv.path, WATCHDOG_USEC: String(sec * 1e6) });
// the file's count; NaN while it is being rewritten (empty between the truncation and the
// first write of a new start)
const count = (file) => { const t = readFileSync(file, 'utf8').trim(); return t ? Number(t) : NaN; };

test('a broker of several processes: its main process notifies the watchdog and writes its file; a hung stream process ends it after HANG_TIMEOUT_S', async () => {
  const rcv = await receiver();
  const file = join(tempDir('cc-alive-'), 'broker');
  const broker = await startBroker({ redisPort: redis.port, secret: SECRET,
    env: { BROKER_PROCESSES: '2', HANG_TIMEOUT_S: '5', ALIVE_FILE: file, ...watchdog(rcv, 1) } });
  try {
    await sleep(1500);
    const got = rcv.messages();
    assert.ok(got.length >= 3, `notifications in 1.5 s of a 1 s watchdog: ${JSON.stringify(got)}`);
    assert.ok(got.every((m) => m.text === 'WATCHDOG=1' && m.pid === broker.pid),
      `only WATCHDOG=1, only from the main process ${broker.pid}: ${JSON.stringify(got)}`);
    const c0 = count(file);
    await sleep(800);
    assert.ok(count(file) > c0, 'the file\'s count goes up');

    const streams = (await waitFor(() => {
      const kids = [];
      for (const p of readFileSync(`/proc/${broker.pid}/task/${broker.pid}/children`, 'utf8').trim().split(/\s+/)) {
        if (p && parentPid(Number(p)) === broker.pid) kids.push(Number(p));
      }
      return kids.length === 2 && kids;
    }, { what: 'the two stream processes' }));
    await pauseProcess(streams[1]);
    const t0 = Date.now();
    const r = await Promise.race([broker.exited, sleep(30000).then(() => 'still running')]);
    const took = Date.now() - t0;
    assert.deepEqual(r, { code: 1, signal: null }, broker.output.slice(-2000));
    assert.ok(took >= 4500, `ended ${took} ms after the stop: not before HANG_TIMEOUT_S`);
    assert.match(broker.output, new RegExp(`process ${streams[1]} showed no sign of life for \\d+ ms \\(HANG_TIMEOUT_S\\): killing it`));
    assert.match(broker.output, new RegExp(`process ${streams[1]} ended \\(signal 9\\)`));
  } finally {
    await stop(broker, 'SIGKILL');
    await stop(rcv, 'SIGKILL');
  }
});

test('a broker of one process notifies while its loop turns, and not while it is stopped', async () => {
  const rcv = await receiver();
  const broker = await startBroker({ redisPort: redis.port, secret: SECRET, env: { ...watchdog(rcv, 1) } });
  try {
    await waitFor(() => rcv.messages().length >= 2, { what: 'notifications' });
    assert.ok(rcv.messages().every((m) => m.text === 'WATCHDOG=1' && m.pid === broker.pid));
    await pauseProcess(broker.pid);
    const n = rcv.messages().length;
    await sleep(1200);
    assert.ok(rcv.messages().length <= n + 1, 'nothing while stopped (one may have been on its way)');
    process.kill(broker.pid, 'SIGCONT');
    const m = rcv.messages().length;
    await waitFor(() => rcv.messages().length >= m + 2, { what: 'notifications again' });
    const r = await stop(broker);
    assert.equal(r.code, 0, broker.output);
  } finally {
    await stop(broker, 'SIGKILL');
    await stop(rcv, 'SIGKILL');
  }
});

test('the worker notifies the watchdog from its main process and writes its file; a bad HANG_TIMEOUT_S stops it at start', async () => {
  const rcv = await receiver();
  const file = join(tempDir('cc-alive-'), 'worker');
  const w = await startWorker(redis.port, { ALIVE_FILE: file, ...watchdog(rcv, 1) });
  try {
    await waitFor(() => rcv.messages().length >= 3, { what: 'notifications' });
    assert.ok(rcv.messages().every((m) => m.text === 'WATCHDOG=1' && m.pid === w.pid), JSON.stringify(rcv.messages()));
    const c0 = count(file);
    await waitFor(() => count(file) > c0, { what: 'the file\'s count to go up' });
  } finally {
    await stopWorker(w);
    await stop(rcv, 'SIGKILL');
  }
  const bad = start(WORKER_BIN, [], {
    env: { PATH: process.env.PATH, REDIS_URL: `redis://127.0.0.1:${redis.port}`, HANG_TIMEOUT_S: 'soon' } });
  const r = await bad.exited;
  assert.equal(r.code, 2, bad.output);
  assert.match(bad.output, /HANG_TIMEOUT_S must be an integer from 0 to 86400 \(got "soon"\)/);
});
