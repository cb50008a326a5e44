// The worker's AI and Piston jobs against a real redis-server and the OpenAI-compatible and
// Piston doubles on loopback, with an AI_BASE_URL or PISTON_URL of the worker's own (the
// stack's are fixed): what a room member reads in a failed job and what the operator reads
// in the worker's log when that URL holds secrets (user:password@, a key in its query).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import {
  WORKER_BIN, enqueue, freePort, jobEvents, jobId, startWorker, stopWorker, waitStatus, withRedis,
} from '../lib/worker-harness.mjs';
import { aiMarker, startOpenAiDouble } from '../lib/openai-double.mjs';
import { startPiston } from '../lib/piston-double.mjs';

if (!existsSync(WORKER_BIN)) throw new Error(`${WORKER_BIN} is missing: run make build-asan`);
if (process.getuid() !== 0) throw new Error('the worker tests need root (cgroups for the sandbox)');

// a hint request as the API writes it (fcgi/h_ai.c), without cache key or scope
const hint = (marker) => ({ kind: 'hint', provider: 'openai', model: 'double-model', language: 'c', code: `// ${marker}\n`, question: '', first_line: 1 });
const SECRET = 's3cret';
const aiEnv = (base) => ({ AI_PROVIDER: 'openai', AI_BASE_URL: base, AI_API_KEY: 'test-key', AI_MODEL: 'double-model', AI_TIMEOUT_MS: '4000' });

function assertCleanExit(w, r) {
  assert.deepEqual(r, { code: 0, signal: null }, `worker exit: ${JSON.stringify(r)}\n${w.output}`);
  assert.doesNotMatch(w.output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
}

test('a provider that cannot be reached: the job\'s error and its event say so without AI_BASE_URL; the log names the URL without its userinfo and query', () => withRedis(async (r, redis) => {
  const port = await freePort(); // nothing listens there
  const w = await startWorker(redis.port, aiEnv(`http://op:pw-${SECRET}@127.0.0.1:${port}/v1?api-key=q-${SECRET}`));
  const room = jobId('room');
  const id = await enqueue(r, { room, kind: 'ai', request: hint(aiMarker()) });
  const j = await waitStatus(r, id, ['finished', 'failed']);
  assert.equal(j.status, 'failed');
  // it read "could not reach the AI provider at http://op:pw-s3cret@127.0.0.1:…/v1?api-key=
  // q-s3cret: Failed to connect to 127.0.0.1 port …"
  assert.equal(j.error, 'could not reach the AI provider: Couldn\'t connect to server (3 attempts)');
  const failed = (await jobEvents(r, room, id)).find((e) => e.data.status === 'failed');
  assert.equal(failed.type, 'ai');
  assert.equal(failed.data.error, j.error);
  // the operator's log: where the worker went and curl's own words, no secret
  assertCleanExit(w, await stopWorker(w));
  assert.match(w.output, new RegExp(`POST http://127\\.0\\.0\\.1:${port}/v1/chat/completions failed: .*port ${port}`));
  assert.ok(!w.output.includes(SECRET), w.output);
}));

test('a key in AI_BASE_URL\'s query stays in the query of the request: the path goes before it', () => withRedis(async (r, redis) => {
  const ai = await startOpenAiDouble();
  try {
    const w = await startWorker(redis.port, aiEnv(`http://127.0.0.1:${ai.port}/v1/?api-key=q-${SECRET}`));
    const m = aiMarker();
    ai.script(m, [{ text: 'an answer' }]);
    const id = await enqueue(r, { room: jobId('room'), kind: 'ai', request: hint(m) });
    const j = await waitStatus(r, id, ['finished', 'failed']);
    assert.equal(j.status, 'finished', j.error);
    assert.equal(j.result.text, 'an answer');
    // it was POSTed to /v1/?api-key=q-s3cret/chat/completions
    assert.deepEqual(ai.requestsFor(m).map((q) => [q.method, q.path]), [['POST', `/v1/chat/completions?api-key=q-${SECRET}`]]);
    assertCleanExit(w, await stopWorker(w));
  } finally {
    await ai.close();
  }
}));

test('Piston that cannot be reached: the job\'s error says so without PISTON_URL; the log names the URL without its secrets; a key in its query stays a query', () => withRedis(async (r, redis) => {
  const piston = await startPiston();
  let w;
  try {
    w = await startWorker(redis.port, {
      PISTON_URL: `http://op:pw-${SECRET}@127.0.0.1:${piston.port}/?key=q-${SECRET}`, PISTON_TIMEOUT_MS: '4000',
    });
    const room = jobId('room');
    const py = (code) => ({ language: 'python', version: '3.10.0', code, stdin: '', args: [] });
    const ok = await waitStatus(r, await enqueue(r, { room, request: py('print(1)') }), ['finished', 'failed']);
    assert.equal(ok.status, 'finished', ok.error);
    // the paths went before the query (it was "/?key=q-s3cret/api/v2/execute")
    const paths = new Set(piston.requests.map((q) => `${q.method} ${q.url}`));
    assert.ok(paths.has(`GET /api/v2/runtimes?key=q-${SECRET}`), [...paths].join(', '));
    assert.ok(paths.has(`POST /api/v2/execute?key=q-${SECRET}`), [...paths].join(', '));
    await piston.close();
    const id = await enqueue(r, { room, request: py('print(2)') });
    const j = await waitStatus(r, id, ['finished', 'failed']);
    assert.equal(j.status, 'failed');
    // it read "piston: http://op:pw-s3cret@127.0.0.1:…/?key=q-s3cret/api/v2/execute:
    // Couldn't connect to server"
    assert.equal(j.error, 'piston: could not reach Piston: Couldn\'t connect to server');
    const failed = (await jobEvents(r, room, id)).find((e) => e.data.status === 'failed');
    assert.equal(failed.data.error, j.error);
    assertCleanExit(w, await stopWorker(w));
    assert.match(w.output, new RegExp(`piston: POST http://127\\.0\\.0\\.1:${piston.port}/api/v2/execute failed: .*port ${piston.port}`));
    assert.ok(!w.output.includes(SECRET), w.output);
  } finally {
    await piston.close().catch(() => {});
  }
}));

test('a PISTON_URL or AI_BASE_URL the worker cannot make requests to stops it at start, saying so without the secrets in it', () => withRedis(async (r, redis) => {
  const cases = [
    // no scheme: every run failed later (the worker could not make its requests' URLs)
    [{ PISTON_URL: '127.0.0.1:2000' }, /PISTON_URL must be an http:\/\/ or https:\/\/ URL \(got a text libcurl does not read as a URL\)/],
    [{ PISTON_URL: `ftp://op:pw-${SECRET}@127.0.0.1:2000/?key=q-${SECRET}` }, /PISTON_URL must be an http:\/\/ or https:\/\/ URL \(got ftp:\/\/127\.0\.0\.1:2000\/\)/],
    [aiEnv(`http://[::1/v1?key=q-${SECRET}`), /AI_BASE_URL must be an http:\/\/ or https:\/\/ URL \(got a text libcurl does not read as a URL\)/],
    [aiEnv(`gopher://op:pw-${SECRET}@h/v1`), /AI_BASE_URL must be an http:\/\/ or https:\/\/ URL \(got gopher:\/\/h\/v1\)/],
  ];
  for (const [e, message] of cases) {
    await assert.rejects(startWorker(redis.port, e), (err) => {
      assert.match(err.message, /before it started/, JSON.stringify(e));
      assert.match(err.message, message, JSON.stringify(e));
      assert.ok(!err.message.includes(SECRET), err.message);
      return true;
    });
  }
  // a scheme in capitals is a scheme
  const w = await startWorker(redis.port, aiEnv('HTTPS://127.0.0.1:9/v1'));
  assertCleanExit(w, await stopWorker(w));
}));

// The series of one metric in a scrape of the worker's /metrics: {labels text: value}.
async function series(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out[m[2] ?? ''] = Number(m[3]);
  }
  return out;
}

test('what an AI job costs: an answer cut at max_tokens is kept, truncated, from one request and never asked again; every request is counted by what came back', () => withRedis(async (r, redis) => {
  const ai = await startOpenAiDouble();
  try {
    const metricsPort = await freePort();
    const w = await startWorker(redis.port, { ...aiEnv(`http://127.0.0.1:${ai.port}/v1`), WORKER_METRICS_PORT: String(metricsPort) });
    const room = jobId('room');
    const ask = async (m, answers) => {
      ai.script(m, answers);
      const j = await waitStatus(r, await enqueue(r, { room, kind: 'ai', request: hint(m) }), ['finished', 'failed']);
      return { j, calls: ai.requestsFor(m) };
    };
    // finish_reason "length": one completion, kept with truncated: true; a second answer
    // scripted for it is never asked for (nor with a larger max_tokens)
    const lm = aiMarker();
    const cut = await ask(lm, [{ text: 'Half of the ans', finishReason: 'length' }, { text: 'never asked for' }]);
    assert.equal(cut.j.status, 'finished', cut.j.error);
    assert.equal(cut.j.result.text, 'Half of the ans');
    assert.equal(cut.j.result.truncated, true);
    assert.equal(cut.calls.length, 1);
    assert.equal(cut.calls[0].body.max_tokens, 1024);
    // a whole answer: no truncated member
    const whole = await ask(aiMarker(), [{ text: 'all of it' }]);
    assert.equal(whole.j.status, 'finished', whole.j.error);
    assert.equal(whole.j.result.truncated, undefined);
    assert.equal(whole.calls.length, 1);
    // a body cut off in transfer after its 200 head (a completion made and lost), then a
    // whole one; a 429 (none made), then a whole one
    const body = JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'half' }, finish_reason: 'stop' }] });
    const short = { wire: `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 30)}` };
    const lost = await ask(aiMarker(), [short, { text: 'whole after a cut' }]);
    assert.equal(lost.j.result.text, 'whole after a cut');
    assert.equal(lost.calls.length, 2);
    const busy = await ask(aiMarker(), [{ status: 429, headers: { 'retry-after': '0' } }, { text: 'after a 429' }]);
    assert.equal(busy.j.result.text, 'after a 429');
    assert.equal(busy.calls.length, 2);
    assert.deepEqual(await series(metricsPort, 'codecollab_worker_ai_provider_requests_total'), {
      '{answer="answered"}': 3, '{answer="length"}': 1, '{answer="lost"}': 1, '{answer="refused"}': 1, '{answer="unanswered"}': 0,
    });
    assertCleanExit(w, await stopWorker(w));
  } finally {
    await ai.close();
  }
}));
