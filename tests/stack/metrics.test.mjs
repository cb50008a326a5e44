// Prometheus metrics through the real stack (docs/OPERATIONS.md "Metrics"): each program's
// /metrics is scraped before and after doing something a user does, and the numbers must
// have moved as an operator would expect; /metrics is not served on the public port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import EventSource from 'eventsource';
import { BASE, call, newUser, createRoom } from '../lib/api.mjs';
import { ROOT } from '../lib/procs.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The text exposition format as a list of {name, labels, value}.
function parse(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a malformed sample line: ${line}`);
    const labels = {};
    for (const [, k, v] of (m[2] || '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape(url) {
  assert.ok(url, 'the stack exports the metrics URL (scripts/stack.sh)');
  const r = await fetch(url);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parse(await r.text());
}

// The value of the series with exactly these labels; undefined when absent.
function value(samples, name, labels = {}) {
  const want = JSON.stringify(Object.entries(labels).sort());
  const s = samples.find((x) => x.name === name && JSON.stringify(Object.entries(x.labels).sort()) === want);
  return s?.value;
}

// Scrapes until pred(samples) holds (the counters move right after the effect a client
// sees, on another thread or process).
async function scrapeUntil(url, pred, what, ms = 10000) {
  const end = Date.now() + ms;
  let s;
  for (;;) {
    s = await scrape(url);
    if (pred(s)) return s;
    if (Date.now() > end) assert.fail(`metrics never showed ${what}`);
    await sleep(50);
  }
}

async function ticketFor(user, room) {
  const r = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: user.token, body: {} });
  assert.equal(r.status, 200, r.text);
  return r.json.ticket;
}

async function waitJob(token, id, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await call('GET', `/api/jobs/${id}`, { token });
    assert.equal(r.status, 200, r.text);
    if (['finished', 'failed'].includes(r.json.job.status)) return r.json.job;
    if (Date.now() > end) throw new Error(`job ${id} still ${r.json.job.status}`);
    await sleep(50);
  }
}

const API = process.env.API_METRICS_URL;
const BROKER = process.env.BROKER_METRICS_URL;
const WORKER = process.env.WORKER_METRICS_URL;
const SNAPSHOTTER = process.env.SNAPSHOTTER_METRICS_URL;

test('/metrics is not served on the public port', async () => {
  for (const path of ['/metrics', '/events/metrics', '/api/metrics']) {
    const r = await fetch(BASE + path);
    const text = await r.text();
    assert.ok([403, 404].includes(r.status), `${path}: ${r.status}`);
    assert.doesNotMatch(text, /codecollab_/, path);
  }
});

test('the broker counts an SSE stream while it is open, and the events it delivers', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const T = { transport: 'sse' };
  // a stable count first: an SSE stream an earlier suite opened through Apache stays open on
  // the broker until a heartbeat to its gone client fails (BROKER_HEARTBEAT_MS, 15 s), and
  // one closing during this test would keep the count below the baseline for good. The
  // suites run one at a time, so none is left once those have gone.
  const before = await scrapeUntil(BROKER, (x) => value(x, 'codecollab_broker_streams_open', T) === 0,
    'no SSE stream left open by earlier suites', 45000);
  const open0 = value(before, 'codecollab_broker_streams_open', T);
  const started0 = value(before, 'codecollab_broker_streams_total', T);
  const sent0 = value(before, 'codecollab_broker_events_delivered_total', T);
  assert.equal(typeof open0, 'number');
  for (const t of ['ws', 'longpoll'])
    assert.equal(typeof value(before, 'codecollab_broker_streams_open', { transport: t }), 'number', t);

  // straight to the broker (its port is the test stack's BROKER_PORT): what it counts is
  // what it holds, and a front door may keep a closed client's stream open a while (Apache
  // until a heartbeat written to the gone client fails)
  const broker = process.env.BROKER_PORT ? `http://127.0.0.1:${process.env.BROKER_PORT}` : BASE;
  const got = [];
  const es = new EventSource(`${broker}/events/rooms/${room.id}?ticket=${await ticketFor(a, room)}`);
  es.addEventListener('operation', (e) => got.push(JSON.parse(e.data)));
  await new Promise((resolve, reject) => { es.onopen = resolve; es.onerror = reject; });
  try {
    const s = await scrapeUntil(BROKER, (x) => value(x, 'codecollab_broker_streams_open', T) === open0 + 1, 'the open stream');
    assert.equal(value(s, 'codecollab_broker_streams_total', T), started0 + 1);

    const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision: 0, ops: ['hi'] } });
    assert.equal(r.status, 200, r.text);
    const end = Date.now() + 10000;
    while (got.length === 0 && Date.now() < end) await sleep(20);
    assert.equal(got.length, 1, 'the stream got the operation');
    await scrapeUntil(BROKER, (x) => value(x, 'codecollab_broker_events_delivered_total', T) >= sent0 + 1, 'the delivered event');
  } finally {
    es.close();
  }
  await scrapeUntil(BROKER, (x) => value(x, 'codecollab_broker_streams_open', T) === open0, 'the stream gone after closing');
});

test('the worker counts a finished run by kind and outcome, with its sandbox time', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const F = { kind: 'execution', outcome: 'finished' };
  const before = await scrape(WORKER);
  const done0 = value(before, 'codecollab_worker_jobs_total', F);
  const failed0 = value(before, 'codecollab_worker_jobs_total', { kind: 'execution', outcome: 'failed' });
  const runs0 = value(before, 'codecollab_worker_sandbox_seconds_count', { step: 'run' });
  assert.equal(typeof done0, 'number');
  assert.ok(value(before, 'codecollab_jobs_queued') >= 0, 'the queue depth is read from Redis');

  const r = await call('POST', `/api/rooms/${room.id}/executions`, { token: a.token, body: { language: 'python', code: 'print(6*7)\n' } });
  assert.equal(r.status, 202, r.text);
  const job = await waitJob(a.token, r.json.job.id);
  assert.equal(job.status, 'finished');
  assert.equal(job.result.stdout, '42\n');

  const after = await scrapeUntil(WORKER, (x) => value(x, 'codecollab_worker_jobs_total', F) === done0 + 1, 'the finished run');
  assert.equal(value(after, 'codecollab_worker_jobs_total', { kind: 'execution', outcome: 'failed' }), failed0);
  assert.equal(value(after, 'codecollab_worker_sandbox_seconds_count', { step: 'run' }), runs0 + 1);
  // histogram buckets are cumulative and end at the count
  const buckets = after.filter((x) => x.name === 'codecollab_worker_sandbox_seconds_bucket' && x.labels.step === 'run');
  assert.equal(buckets.at(-1).labels.le, '+Inf');
  assert.equal(buckets.at(-1).value, runs0 + 1);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value);
});

test('the API counts requests by route and status, over all its processes', async () => {
  const me = { route: 'GET /api/auth/me', status: '200' };
  const none = { route: 'none', status: '404' };
  const before = await scrape(API);
  const me0 = value(before, 'codecollab_api_requests_total', me);
  const none0 = value(before, 'codecollab_api_requests_total', none);
  const slow0 = value(before, 'codecollab_api_request_seconds_count', { route: 'GET /api/auth/me' });
  assert.equal(typeof me0, 'number');
  const a = await newUser();
  // more requests than API processes: whichever processes answer, one file adds them up
  const N = 12;
  for (let i = 0; i < N; i++) assert.equal((await call('GET', '/api/auth/me', { token: a.token })).status, 200);
  assert.equal((await call('GET', '/api/no/such/thing')).status, 404);
  const after = await scrapeUntil(API, (x) => value(x, 'codecollab_api_requests_total', me) === me0 + N, `${N} more GET /api/auth/me`);
  assert.equal(value(after, 'codecollab_api_requests_total', none), none0 + 1, 'the 404 under route "none"');
  assert.equal(value(after, 'codecollab_api_request_seconds_count', { route: 'GET /api/auth/me' }), slow0 + N);
  // a 401 of the same route is told apart from its 200s
  const u0 = value(after, 'codecollab_api_requests_total', { route: 'GET /api/auth/me', status: '401' });
  assert.equal((await call('GET', '/api/auth/me')).status, 401);
  await scrapeUntil(API, (x) => value(x, 'codecollab_api_requests_total', { route: 'GET /api/auth/me', status: '401' }) === u0 + 1, 'the 401');
});

test('a commit raises operations committed by one; a stale revision is refused and counted so', async () => {
  const a = await newUser();
  const room = await createRoom(a.token);
  const before = await scrape(API);
  const ok0 = value(before, 'codecollab_api_operations_total', { result: 'committed' });
  const no0 = value(before, 'codecollab_api_operations_total', { result: 'refused' });
  const post = (body) => call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body });
  assert.equal((await post({ revision: 0, ops: ['x'] })).status, 200);
  let s = await scrapeUntil(API, (x) => value(x, 'codecollab_api_operations_total', { result: 'committed' }) === ok0 + 1, 'the commit');
  assert.equal(value(s, 'codecollab_api_operations_total', { result: 'refused' }), no0);
  assert.equal((await post({ revision: 5, ops: [1, 'y'] })).status, 409);
  s = await scrapeUntil(API, (x) => value(x, 'codecollab_api_operations_total', { result: 'refused' }) === no0 + 1, 'the refusal');
  assert.equal(value(s, 'codecollab_api_operations_total', { result: 'committed' }), ok0 + 1);
  assert.ok(value(s, 'codecollab_api_requests_total', { route: 'POST /api/rooms/*/operations', status: '409' }) >= 1);
  // the snapshotter saves the changed room within SNAPSHOT_INTERVAL_MS
  const saved0 = value(await scrape(SNAPSHOTTER), 'codecollab_snapshotter_snapshots_total', { outcome: 'saved' });
  assert.equal((await post({ revision: 1, ops: [1, 'z'] })).status, 200);
  await scrapeUntil(SNAPSHOTTER, (x) => value(x, 'codecollab_snapshotter_snapshots_total', { outcome: 'saved' }) > saved0, 'a saved snapshot', 15000);
});

test('the metrics listeners answer 404 for other paths', async () => {
  for (const url of [BROKER, WORKER, SNAPSHOTTER]) {
    const r = await fetch(url.replace(/\/metrics$/, '/other'));
    assert.equal(r.status, 404, url);
    await r.text();
  }
  // the web server's metrics listener serves /metrics and nothing else
  for (const path of ['/', '/api/health', '/index.html', '/events/health']) {
    const r = await fetch(API.replace(/\/metrics$/, path));
    assert.ok([403, 404].includes(r.status), `${path}: ${r.status}`);
    await r.text();
  }
});

test('docs/OPERATIONS.md and the Grafana dashboard name exactly the metrics the programs expose', async () => {
  const exposed = new Set();
  for (const url of [API, BROKER, WORKER, SNAPSHOTTER]) {
    const text = await (await fetch(url)).text();
    for (const m of text.matchAll(/^# TYPE (\S+) /gm)) exposed.add(m[1]);
  }
  const base = (n) => n.replace(/_(bucket|sum|count)$/, '');
  const named = (file) => new Set([...readFileSync(join(ROOT, file), 'utf8').matchAll(/codecollab_[a-z_]+|codecollab_jobs_[a-z_]+/g)]
    .map((m) => m[0]).filter((n) => !n.endsWith('_')).map((n) => (exposed.has(n) ? n : base(n))));
  const doc = named('docs/OPERATIONS.md');
  const dash = named('deploy/grafana/codecollab.json');
  for (const n of exposed) assert.ok(doc.has(n), `${n} is not in docs/OPERATIONS.md`);
  for (const n of exposed) assert.ok(dash.has(n), `${n} is not on the dashboard`);
  for (const n of doc) assert.ok(exposed.has(n), `docs/OPERATIONS.md names ${n}, which no program exposes`);
  for (const n of dash) assert.ok(exposed.has(n), `the dashboard uses ${n}, which no program exposes`);
});
