// The cluster layout (make cluster, with a real Redis Cluster of three masters and three
// replicas and a PostgreSQL primary with a hot standby) under steady load: writers through
// HAProxy, subscribers spread over both brokers, a trickle of runs (tests/lib/steady-load.mjs).
// One fault at a time, each under a load of its own:
//   - kill -9 of a web node (lighttpd and its API processes);
//   - kill -9 of a broker;
//   - kill -9 of the worker running a job, mid-job;
//   - kill -9 of the Redis master that owns the room's slot (its replica takes over);
//   - a restart of the PostgreSQL primary.
// After each: no acknowledged operation lost or applied twice, every subscriber has every
// revision exactly once and ends on the final document's revision, every run ended once.
// The time each took to recover is printed (docs/BENCHMARKS.md, "Recovery in the cluster");
// the bounds asserted are generous, the figures are what to read.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster } from '../lib/cluster.mjs';
import { startLoad } from '../lib/steady-load.mjs';
import { sleep, waitFor } from '../lib/procs.mjs';

let c;
const times = [];

before(async () => {
  c = await startCluster({
    redis: 'cluster',
    env: { WORKERS: '2', REGISTER_RATE_LIMIT: '100000', EXECUTION_RATE_LIMIT: '100000' },
  });
});

after(async () => {
  if (times.length) {
    console.log('# recovery in the cluster (ms from the kill):');
    for (const t of times) console.log(`#   ${t}`);
  }
  if (c) {
    const left = await c.stop();
    assert.deepEqual(left, [], 'nothing of the layout is left running');
  }
});

const kill9 = (pid) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } };
const cli = (port, ...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();

async function api(method, path, token, body) {
  const r = await fetch(c.base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json };
}

// Runs fault(load) under a steady load, then checks what the load saw.
async function underLoad(name, fault, { execCode } = {}) {
  const load = await startLoad({ base: c.base, writers: 4, subscribers: 24, execEveryMs: 2500, execCode });
  let note, rec, report;
  try {
    await sleep(1500);
    note = await fault(load);
    rec = await load.recovered(note.at);
    await sleep(3000); // and on for a while after
  } finally {
    report = await load.finish(); // the load stops whatever happened
  }
  const extra = note.extra ? `, ${note.extra}` : '';
  times.push(`${name}: commits again after ${rec.commitMs}, every stream caught up after ${rec.streamsMs}${extra}` +
    ` (${report.acked} operations acknowledged, ${report.jobs.finished} runs finished, ${report.stats.retries} retried requests)`);
  if (report.problems.length) {
    // the layout's logs go with its directory when the suite ends: keep a copy to read
    const kept = mkdtempSync(join(tmpdir(), 'cc-faults-logs-'));
    cpSync(join(c.dir, 'log'), kept, { recursive: true });
    report.problems.push(`(the layout's logs are kept in ${kept})`);
  }
  assert.deepEqual(report.problems, [], `${name}: ${report.problems.slice(0, 10).join('\n')}`);
  assert.ok(report.acked > 30, `${name}: only ${report.acked} operations acknowledged`);
  assert.ok(rec.streamsMs < 30000, `${name}: recovery took ${rec.streamsMs} ms`);
  return { load, report, rec };
}

test('kill -9 of a web node under load', async () => {
  await underLoad('web node', async () => {
    const web = c.proc('web-1');
    const at = Date.now();
    for (const pid of [web.pid, ...(web.api_pids || [])]) kill9(pid);
    return { at };
  });
});

test('kill -9 of a broker under load', async () => {
  await underLoad('broker', async () => {
    const at = Date.now();
    kill9(c.proc('broker-1').pid);
    return { at };
  });
});

test('kill -9 of a worker in the middle of a run', async () => {
  await underLoad('worker mid-job', async (load) => {
    const token = load.tokens[0];
    const r = await api('POST', `/api/rooms/${load.room.id}/executions`, token,
      { language: 'python', code: 'import time\ntime.sleep(3)\nprint("slept")' });
    assert.equal(r.status, 202);
    const id = r.json.job.id;
    load.track(id, token);
    // the consumer that took it is "<host>-<pid>-<random hex>" (queue-worker/main.c)
    const redisPort = c.byRole('redis')[0].ports[0];
    let consumer = '';
    await waitFor(() => {
      consumer = cli(redisPort, '-c', 'HGET', `cc:{jobs}:job:${id}`, 'worker');
      return consumer !== '';
    }, { timeout: 20000, what: 'the run to start' });
    const pid = Number(consumer.match(/-(\d+)-[0-9a-f]{8}$/)?.[1]);
    assert.ok(c.byRole('worker').some((w) => w.pid === pid), `${consumer} is one of the layout's workers`);
    const at = Date.now();
    kill9(pid);
    let finished = 0;
    await waitFor(async () => {
      const j = await api('GET', `/api/jobs/${id}`, token);
      if (j.json?.job?.status === 'finished') { finished = Date.now() - at; return true; }
      return false;
    }, { timeout: 30000, interval: 100, what: 'the run taken over to finish' });
    const j = (await api('GET', `/api/jobs/${id}`, token)).json.job;
    assert.equal(j.result.stdout, 'slept\n');
    return { at, extra: `the run killed mid-way finished ${finished} ms after the kill` };
  });
});

// The port of the live master that serves slot, as the node on viaPort sees the cluster.
function slotOwner(viaPort, slot) {
  for (const line of cli(viaPort, 'CLUSTER', 'NODES').split('\n')) {
    const f = line.split(' ');
    if (f.length < 8 || !f[2].split(',').includes('master') || f[2].includes('fail')) continue;
    const owns = f.slice(8).some((r) => {
      if (r.startsWith('[')) return false; // a slot in migration
      const [a, b] = r.split('-').map(Number);
      return b === undefined ? slot === a : slot >= a && slot <= b;
    });
    if (owns) return Number(f[1].split('@')[0].split(':').pop());
  }
  return 0;
}

test('kill -9 of the Redis master that owns the room: its replica takes over', async () => {
  await underLoad('Redis master of the room', async (load) => {
    const nodes = c.byRole('redis');
    const via = nodes[0].ports[0];
    const slot = Number(cli(via, 'CLUSTER', 'KEYSLOT', `cc:room:{${load.room.id}}:doc`));
    const port = slotOwner(via, slot);
    const node = nodes.find((n) => n.ports[0] === port);
    assert.ok(node, `the master of slot ${slot} (port ${port}) is in topology.json`);
    const at = Date.now();
    kill9(node.pid);
    let promoted = 0;
    await waitFor(() => {
      for (const n of nodes) {
        if (n.ports[0] === port) continue;
        try {
          const p = slotOwner(n.ports[0], slot);
          if (p && p !== port) { promoted = Date.now() - at; return true; }
        } catch { /* a node that is down */ }
      }
      return false;
    }, { timeout: 30000, interval: 100, what: 'a replica to take the slot over' });
    return { at, extra: `a replica owned the slot ${promoted} ms after the kill` };
  });
});

test('a restart of the PostgreSQL primary under load', async () => {
  await underLoad('PostgreSQL primary restart', async (load) => {
    const token = load.tokens[0];
    const at = Date.now();
    process.kill(c.proc('pg-primary').pid, 'SIGINT'); // a fast shutdown; the supervisor starts it again
    await waitFor(async () => {
      const r = await api('GET', '/api/rooms', token).catch(() => ({ status: 0 }));
      return r.status !== 200;
    }, { timeout: 10000, interval: 50, what: 'the primary to go away' }).catch(() => {});
    let back = 0;
    await waitFor(async () => {
      const r = await api('GET', '/api/rooms', token).catch(() => ({ status: 0 }));
      if (r.status === 200) { back = Date.now() - at; return true; }
      return false;
    }, { timeout: 30000, interval: 100, what: 'the rooms list to answer again' });
    return { at, extra: `rooms listed (PostgreSQL) again ${back} ms after the restart began` };
  });
});
