// Prometheus metrics through the real stack (docs/OPERATIONS.md "Metrics"): each program's
// /metrics is scraped before and after doing something a user does, and the numbers must
// have moved as an operator would expect; /metrics is not served on the public port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import EventSource from 'eventsource';
import { BASE, call, newUser, createRoom } from './lib/api.mjs';

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

const BROKER = process.env.BROKER_METRICS_URL;
const WORKER = process.env.WORKER_METRICS_URL;

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
  const before = await scrape(BROKER);
  const open0 = value(before, 'codecollab_broker_streams_open', T);
  const started0 = value(before, 'codecollab_broker_streams_total', T);
  const sent0 = value(before, 'codecollab_broker_events_delivered_total', T);
  assert.equal(typeof open0, 'number');
  for (const t of ['ws', 'longpoll'])
    assert.equal(typeof value(before, 'codecollab_broker_streams_open', { transport: t }), 'number', t);

  const got = [];
  const es = new EventSource(`${BASE}/events/rooms/${room.id}?ticket=${await ticketFor(a, room)}`);
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

test('the metrics listeners answer 404 for other paths', async () => {
  for (const url of [BROKER, WORKER]) {
    const r = await fetch(url.replace(/\/metrics$/, '/other'));
    assert.equal(r.status, 404, url);
    await r.text();
  }
});
