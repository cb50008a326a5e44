// `make cluster` (scripts/cluster.sh, docs/SCALING.md): the layout itself. Started on free
// ports with throwaway data through tests/lib/cluster.mjs, which later cluster suites use too.
// - topology.json against the real processes: each named process runs the right program,
//   listens on its ports, and the PostgreSQL primary and replica are what they say;
// - HAProxy serves the front page and /api/health through both web nodes and streams
//   through the brokers; its own refusals (no broker up) are JSON;
// - a web node whose API is slow for 3.5 s stays in HAProxy's rotation; one that hangs is
//   taken out after two checks of 5 s, and comes back when it goes on;
// - kill -9 of a web node: requests keep being answered, the node is started again;
// - SIGTERM: nothing of the layout is left running, and each worker was told to stop once.
// A second test forms the Redis Cluster (three masters, three replicas) and checks its roles
// in topology.json, then stops. CLUSTER_TEST_REDIS picks the Redis of the first test
// (single: one plain redis-server; cluster: the Redis Cluster, once every program speaks it).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startCluster } from '../lib/cluster.mjs';
import { waitFor, sleep, pauseProcess } from '../lib/procs.mjs';
import { isAlive as alive } from '../lib/proctree.mjs';

const PROGRAM = {
  haproxy: /^haproxy /,
  web: /^lighttpd /,
  broker: /codecollab-broker$/,
  worker: /codecollab-worker$/,
  snapshotter: /codecollab-snapshotter$/,
  postgres: /\/postgres -D /,
  redis: /^redis-server /,
};
const cmdline = (pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
const listening = (port) => new Promise((resolve) => {
  const s = connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(true); });
  s.once('error', () => resolve(false));
});
const psql = (url, q) => execFileSync('psql', ['-X', '-At', url, '-c', q]).toString().trim();

let running = [];
after(async () => { for (const c of running) await c.stop(); });

test('make cluster: topology.json is the real layout; HAProxy spreads over both web nodes; a killed web node is not missed; SIGTERM stops all', async () => {
  const c = await startCluster({ redis: process.env.CLUSTER_TEST_REDIS || 'single' });
  running.push(c);
  const topo = c.topology();
  assert.equal(topo.state, 'ready');
  assert.equal(topo.port, c.port);
  const count = (role) => topo.processes.filter((p) => p.role === role).length;
  assert.deepEqual([count('haproxy'), count('web'), count('broker'), count('worker'), count('snapshotter'), count('postgres')],
    [1, 2, 2, 2, 2, 2], JSON.stringify(topo.processes.map((p) => p.name)));
  for (const p of topo.processes) {
    assert.ok(Number.isInteger(p.pid) && alive(p.pid), `${p.name}: pid ${p.pid} runs`);
    assert.match(cmdline(p.pid), PROGRAM[p.role], `${p.name} (pid ${p.pid}) is a ${p.role}`);
    if (p.role === 'postgres') {
      assert.ok(existsSync(join(p.socket_dir, `.s.PGSQL.${p.ports[0]}`)), `${p.name}'s socket`);
    } else {
      for (const port of p.ports) assert.ok(await listening(port), `${p.name} listens on ${port}`);
    }
  }
  for (const w of c.byRole('web')) {
    assert.ok(w.api_pids.length >= 1, `${w.name} has API processes`);
    for (const a of w.api_pids) assert.match(cmdline(a), /codecollab-api$/);
  }
  // the PostgreSQL servers are what they say, and the replica streams from the primary
  const primary = c.proc('pg-primary');
  const replica = c.proc('pg-replica');
  assert.equal(psql(primary.url, 'SELECT pg_is_in_recovery()'), 'f');
  assert.equal(psql(replica.url, 'SELECT pg_is_in_recovery()'), 't');
  assert.equal(psql(replica.url, 'SELECT status FROM pg_stat_wal_receiver'), 'streaming');
  // the programs get the same servers under their ordinary role, in its database
  // (topology.json's URLs are the superuser's, for an operator, in the database postgres)
  const asApp = (url) => url.replace('user=postgres', 'user=codecollab').replace(':///postgres?', ':///codecollab?');
  assert.equal(c.env.DATABASE_READ_URL, asApp(replica.url));
  assert.equal(c.env.DATABASE_URL, asApp(primary.url));
  assert.match(replica.url, /^postgresql:\/\/\/postgres\?.*user=postgres/);
  // which node is which in Redis
  for (const r of c.byRole('redis')) assert.ok(['master', 'replica'].includes(r.redis_role), JSON.stringify(r));

  // the front page and the API through HAProxy, served by both web nodes (no stickiness;
  // HAProxy names the server that answered in X-Served-By)
  const servedBy = new Set();
  for (let i = 0; i < 8; i++) {
    const page = await fetch(`${c.base}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    servedBy.add(page.headers.get('x-served-by'));
    const h = await fetch(`${c.base}/api/health`);
    assert.equal(h.status, 200);
    assert.equal((await h.json()).status, 'ok');
    servedBy.add(h.headers.get('x-served-by'));
  }
  assert.deepEqual([...servedBy].sort(), ['web-1', 'web-2']);
  // streams go to the brokers
  const bh = await fetch(`${c.base}/events/health`);
  assert.equal(bh.status, 200);
  assert.match(bh.headers.get('x-served-by'), /^broker-[12]$/);
  assert.equal((await bh.json()).status, 'ok');

  // HAProxy's own refusals are JSON in the API's error shape: no broker to take a stream
  // (both stopped: HAProxy's checks mark them down), with Retry-After; the streams come back
  // when the brokers do
  const brokers = c.byRole('broker');
  for (const b of brokers) process.kill(b.pid, 'SIGSTOP');
  try {
    const refused = await waitFor(async () => {
      const r = await fetch(`${c.base}/events/health`, { signal: AbortSignal.timeout(1500) }).catch(() => null);
      return r && r.status === 503 && r;
    }, { timeout: 20000, what: 'HAProxy refusing /events/ with both brokers stopped' });
    assert.match(refused.headers.get('content-type'), /^application\/json/);
    assert.equal(refused.headers.get('retry-after'), '1');
    const j = await refused.json();
    assert.equal(j.error, 'broker_unavailable');
    assert.equal(typeof j.message, 'string');
  } finally {
    for (const b of brokers) process.kill(b.pid, 'SIGCONT');
  }
  await waitFor(async () => (await fetch(`${c.base}/events/health`, { signal: AbortSignal.timeout(1500) }).catch(() => null))?.status === 200,
    { timeout: 20000, what: 'the brokers back behind HAProxy' });

  // A web node that is slow is not taken out, one that hangs is. HAProxy's check of a web
  // node waits in line behind the requests the node is working on, so it is given 5 s
  // (scripts/cluster.sh, backend web; with 1 s, a burst of sign-ups took both nodes out and
  // the next request got 503). web-1's API processes are stopped for 3.5 s: two checks of
  // 1 s would both have failed by then. The requests it got meanwhile are answered once they
  // go on, and HAProxy names no web node down. Stopped for good, web-1 is taken out after
  // two checks of 5 s, and requests go to web-2 alone; it is back once it goes on.
  const hapLog = () => readFileSync(join(c.dir, 'log/haproxy.log'), 'utf8');
  const stateLines = (state) => hapLog().split('\n').filter((l) => l.includes(`Server web/web-1 is ${state}`)).length;
  const health = async () => {
    const t = Date.now();
    const r = await fetch(`${c.base}/api/health`, { signal: AbortSignal.timeout(30000) });
    return { status: r.status, by: r.headers.get('x-served-by'), ms: Date.now() - t, text: await r.text() };
  };
  const slow = c.proc('web-1');
  const downsBefore = stateLines('DOWN');
  // the processes stopped, during() run, then on again however it went (every one of them:
  // the rest of the test needs web-1)
  const stallFor = async (ms, during) => {
    const t = Date.now();
    try {
      for (const pid of slow.api_pids) await pauseProcess(pid);
      const got = await during();
      await sleep(ms - (Date.now() - t));
      return got;
    } finally {
      for (const pid of slow.api_pids) {
        try { process.kill(pid, 'SIGCONT'); } catch { /* gone: the supervisor starts another */ }
      }
    }
  };
  const held = [];
  await stallFor(3500, async () => {
    // round-robin: about half of these wait for web-1 (a failure is an answer to report)
    for (let i = 0; i < 4; i++) held.push(health().catch((e) => ({ status: 0, text: String(e) })));
  });
  const answers = await Promise.all(held);
  for (const a of answers) assert.equal(a.status, 200, a.text);
  assert.ok(answers.some((a) => a.by === 'web-1' && a.ms >= 2000), JSON.stringify(answers));
  // the check that waited has had its answer, or its 5 s, and the next one passed: web-1 is
  // back to full health, so the stop below starts from no failed check
  await sleep(2500);
  assert.equal(stateLines('DOWN'), downsBefore, `web-1 was taken out for being slow:\n${hapLog()}`);
  const upsBefore = stateLines('UP');
  let outAfter;
  await stallFor(0, async () => {
    const t = Date.now();
    await waitFor(() => stateLines('DOWN') > downsBefore, { timeout: 30000, what: 'HAProxy taking out web-1, stopped' });
    outAfter = Date.now() - t;
    for (let i = 0; i < 4; i++) {
      const a = await health();
      assert.equal(a.status, 200, a.text);
      assert.equal(a.by, 'web-2');
    }
  });
  assert.ok(outAfter >= 5000, `web-1 was out ${outAfter} ms after it stopped: a check waits 5 s`);
  console.log(`  web-1's API stopped: out of HAProxy's rotation after ${outAfter} ms`);
  await waitFor(() => stateLines('UP') > upsBefore, { timeout: 20000, what: 'web-1 back in HAProxy\'s rotation' });

  // kill -9 one web node: every request is still answered (HAProxy retries a refused
  // connection elsewhere and takes the node out), and the supervisor starts it again
  const victim = c.proc('web-1');
  process.kill(victim.pid, 'SIGKILL');
  const t0 = Date.now();
  let answered = 0;
  while (Date.now() - t0 < 3000) {
    const r = await fetch(`${c.base}/api/health`);
    assert.equal(r.status, 200, `a request ${Date.now() - t0} ms after the kill`);
    answered++;
    await sleep(20);
  }
  assert.ok(answered >= 10);
  const back = await waitFor(() => {
    const w = c.proc('web-1');
    return w.pid !== victim.pid && alive(w.pid) && w.api_pids.length > 0 && w;
  }, { timeout: 30000, what: 'web-1 started again' });
  assert.match(cmdline(back.pid), /^lighttpd /);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${back.ports[0]}/api/health`)).status === 200,
    { timeout: 20000, what: 'web-1 answering again' });
  assert.match(readFileSync(join(c.dir, 'log/supervisor.log'), 'utf8'), /web-1 \(pid \d+\) was killed by signal KILL/);

  // SIGTERM: nothing of the layout is left
  const pids = c.topology().processes.flatMap((p) => [p.pid, ...(p.api_pids || [])]);
  running = running.filter((x) => x !== c);
  const left = await c.stop({ keep: true });
  assert.deepEqual(c.exit, { code: 0, signal: null }, `cluster.sh ended by itself:\n${c.script.output.slice(-3000)}`);
  assert.deepEqual(left, [], 'processes of the layout left after SIGTERM');
  assert.deepEqual(pids.filter(alive), []);
  // one stop signal for each program: a second SIGTERM makes a worker cancel its running jobs
  for (const w of c.byRole('worker')) {
    const log = readFileSync(join(c.dir, `log/${w.name}.log`), 'utf8');
    assert.equal(log.match(/taking no more jobs/g)?.length, 1, `${w.name} told to stop once:\n${log.slice(-2000)}`);
    assert.doesNotMatch(log, /second signal/, `${w.name} was sent a second stop signal`);
  }
  c.remove();
});

test('make cluster: the Redis Cluster forms with three masters and three replicas, every slot covered', async () => {
  const c = await startCluster({ redis: 'cluster', ready: false });
  running.push(c);
  const nodes = c.byRole('redis');
  assert.equal(nodes.length, 6);
  const masters = nodes.filter((n) => n.redis_role === 'master');
  const replicas = nodes.filter((n) => n.redis_role === 'replica');
  assert.equal(masters.length, 3, JSON.stringify(nodes));
  assert.equal(replicas.length, 3);
  // each master has its own replica
  assert.deepEqual(replicas.map((r) => r.master).sort(), masters.map((m) => m.name).sort());
  for (const n of nodes) {
    assert.match(cmdline(n.pid), /^redis-server .*\[cluster\]/);
    assert.deepEqual(n.ports.length, 2, 'the node and its cluster bus');
    const info = execFileSync('redis-cli', ['-p', String(n.ports[0]), 'cluster', 'info']).toString();
    assert.match(info, /cluster_state:ok/);
    assert.match(info, /cluster_slots_ok:16384/);
    assert.match(info, /cluster_known_nodes:6/);
    const conf = execFileSync('redis-cli', ['-p', String(n.ports[0]), 'config', 'get', 'appendonly']).toString();
    assert.match(conf, /appendonly\s+yes/);
  }
  running = running.filter((x) => x !== c);
  // stopped while it still starts the programs: it ends by itself (not by the harness's
  // SIGKILL), having waited for everything it started
  const left = await c.stop();
  assert.deepEqual(c.exit, { code: 0, signal: null }, `cluster.sh ended by itself:\n${c.script.output.slice(-3000)}`);
  assert.deepEqual(left, []);
});

// The stop waits for every service and kills one that does not end on its signal: haproxy,
// stopped with SIGSTOP, never acts on its SIGTERM, and gets SIGKILL after its STOP_FRONT_S
// (3 s here; the default, 10 s, is not what is under test and only made the test slower). The script
// then goes on and ends by itself, with nothing of the layout left. (A `wait` on the stopped
// child, which returns only when the child ends, held such a stop until the test's SIGKILL.)
// The stop starts only once every thread of haproxy is in state T: HAProxy never catches
// SIGTERM (in /proc/PID/status its SigCgt lacks bit 15 however long it has run: the default
// action, exit), and kill() only queues SIGSTOP. A SIGTERM that came before haproxy had
// taken its SIGSTOP was taken first (15 before 19) and ended it at once: the stop was over
// after 1.7 s with no kill line, once in four runs on a busy machine.
// This layout listens on IPv6 loopback alone (CC_BIND=::1): the start's own checks and
// run/env must reach HAProxy there (they went to 127.0.0.1, so the start never became ready).
test('make cluster: a service that ignores its stop signal is killed after its grace; the stop ends by itself and leaves nothing (on CC_BIND=::1)', async (t) => {
  const grace = 3;
  const c = await startCluster({ redis: 'single', env: { STOP_FRONT_S: String(grace), CC_BIND: '::1' } });
  running.push(c);
  assert.equal(c.base, `http://[::1]:${c.port}`);
  assert.equal(c.env.BASE_URL, c.base);
  assert.equal((await fetch(`${c.base}/api/health`)).status, 200);
  await assert.rejects(fetch(`http://127.0.0.1:${c.port}/api/health`), 'nothing listens on 127.0.0.1');
  assert.match(c.script.output, new RegExp(`ready: http://localhost:${c.port}/`));
  const hap = c.proc('haproxy');
  const pids = c.topology().processes.flatMap((p) => [p.pid, ...(p.api_pids || [])]);
  await pauseProcess(hap.pid);
  // the pid of topology.json is the process that serves the port: stopped, nothing answers
  const r = await fetch(`${c.base}/api/health`, { signal: AbortSignal.timeout(1000) }).catch((e) => e);
  assert.ok(r instanceof Error, `an answer from port ${c.port} with haproxy (pid ${hap.pid}) stopped`);
  running = running.filter((x) => x !== c);
  const t0 = Date.now();
  // when haproxy itself ended (a zombie counts as ended), not only when the whole stop did
  let hapGone = null;
  const watch = setInterval(() => { if (hapGone === null && !alive(hap.pid)) hapGone = Date.now() - t0; }, 20);
  const left = await c.stop({ waitMs: 45000 });
  clearInterval(watch);
  const took = Date.now() - t0;
  hapGone ??= took;
  t.diagnostic(`the stop took ${took} ms with haproxy stopped; haproxy ended after ${hapGone} ms`);
  assert.deepEqual(c.exit, { code: 0, signal: null },
    `cluster.sh ended by itself after its stop (not by the test's SIGKILL):\n${c.script.output.slice(-3000)}`);
  assert.deepEqual(left, [], 'processes of the layout left after the stop');
  assert.deepEqual(pids.filter(alive), []);
  assert.match(c.script.output, new RegExp(`haproxy \\(pid ${hap.pid}\\) had not ended ${grace} s after its stop signal: killed`));
  assert.ok(hapGone >= grace * 1000 - 500, `haproxy had its ${grace} s (it ended ${hapGone} ms after the stop began)`);
});

// A stop bound that is not a whole number of seconds from 1 to 86400 ends the start before
// anything runs, with a line naming the variable (scripts/services.sh: svc_check_stop_bounds).
test('make cluster: a bad stop bound (STOP_*_S) is refused at start, naming the variable', async () => {
  for (const [name, value] of [['STOP_FRONT_S', '0'], ['STOP_REDIS_S', 'ten']]) {
    await assert.rejects(startCluster({ redis: 'single', env: { [name]: value } }), (e) => {
      assert.match(e.message, /^cluster\.sh exited \(1\)/, e.message);
      assert.match(e.message, new RegExp(`error: ${name} must be a whole number of seconds from 1 to 86400 \\(got '${value}'\\)`));
      return true;
    });
  }
});
