// The AI provider's answers as hostile or broken outside input, through the real stack (the
// API, the worker, Redis) with the OpenAI-compatible double answering bytes of our choosing:
// what the room is told (the job and its `ai` events) and what is cached for 24 h.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { call, createRoom, newUser, redis, roomEvents } from '../lib/api.mjs';
import { waitJob } from '../lib/jobs.mjs';
import { useStackAiDouble, aiMarker } from '../lib/openai-double.mjs';

const ai = useStackAiDouble();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ask = (token, room, body) => call('POST', `/api/rooms/${room.id}/ai/hint`, { token, body });
// a chat completion whose content is `content`, as text (JSON.stringify escapes a NUL)
const completion = (content, finish = 'stop') =>
  JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish }] });

// One request per room and user (each its own rate limit): the job once over, whether its
// answer is cached, and how many provider calls it made.
async function askWith(answers) {
  const u = await newUser('aih');
  const room = await createRoom(u.token, { language: 'c' });
  const m = aiMarker();
  ai.double.script(m, answers);
  const code = `// ${m}\n`;
  const r = await ask(u.token, room, { code });
  assert.equal(r.status, 202, r.text);
  const job = await waitJob(u.token, r.json.job.id);
  const request = JSON.parse(redis('HGET', `cc:{jobs}:job:${r.json.job.id}`, 'request'));
  const cached = redis('EXISTS', `cc:ai:cache:${request.cache_key}`) === '1';
  return { u, room, m, code, job, cached, calls: ai.double.requestsFor(m).length };
}

async function aiEvent(roomId, status) {
  for (let i = 0; i < 100; i++) {
    const e = roomEvents(roomId).find((x) => x.type === 'ai' && x.data.status === status);
    if (e) return e.data;
    await sleep(50);
  }
  throw new Error(`no ai ${status} event in room ${roomId}`);
}

test('a raw NUL byte in the answer text (which JSON allows only escaped) is U+FFFD and the text goes on after it, as for \\u0000', async () => {
  // the body carries the byte 00 itself inside the content string
  const raw = Buffer.from(completion('line 2 is wrong; see line 5').replace('wrong;', 'wrong\u0000;'), 'utf8');
  assert.ok(raw.includes(0));
  const { job, cached, calls, room } = await askWith([{ raw }]);
  assert.equal(job.status, 'finished', JSON.stringify(job));
  // it used to end at the NUL ("line 2 is wrong"), not marked truncated, cached for 24 h
  assert.equal(job.result.text, 'line 2 is wrong\ufffd; see line 5');
  assert.equal(job.result.truncated, undefined);
  assert.equal(calls, 1);
  assert.equal(cached, true);
  assert.equal((await aiEvent(room.id, 'finished')).result.text, job.result.text);
});

test('bytes after the answer\'s JSON make the answer unreadable: a failed job saying so, nothing cached, the next request asks again', async () => {
  for (const tail of [' {"choices":[{"message":{"content":"second"}}]}', 'garbage', '\u0000{}']) {
    const raw = Buffer.from(completion('first') + tail, 'utf8');
    const { u, room, m, code, job, cached, calls } = await askWith([{ raw }, { text: 'a readable answer' }]);
    assert.equal(job.status, 'failed', `${JSON.stringify(tail)}: ${JSON.stringify(job)}`);
    assert.match(job.error, /the AI provider's answer is not valid JSON/);
    assert.equal(calls, 1);
    assert.equal(cached, false, JSON.stringify(tail));
    assert.match((await aiEvent(room.id, 'failed')).error, /not valid JSON/);
    // not cached: the same request makes a new job and a new provider call
    const again = await ask(u.token, room, { code });
    assert.equal(again.status, 202, again.text);
    const j2 = await waitJob(u.token, again.json.job.id);
    assert.equal(j2.status, 'finished');
    assert.equal(j2.result.text, 'a readable answer');
    assert.equal(ai.double.requestsFor(m).length, 2);
  }
  // JSON whitespace after the answer is fine
  const { job } = await askWith([{ raw: `${completion('fine')} \r\n\t ` }]);
  assert.equal(job.status, 'finished', JSON.stringify(job));
  assert.equal(job.result.text, 'fine');
});

test('a 2xx answer carrying the provider\'s error instead of choices names that error; nothing is cached', async () => {
  const cases = [
    [{ error: { message: 'Model is overloaded, try again later', code: 503 } }, /^the AI provider answered an error instead of an answer: Model is overloaded, try again later$/],
    [{ error: 'upstream timed out' }, /^the AI provider answered an error instead of an answer: upstream timed out$/],
    // no message of its own: the shape is what is wrong
    [{ object: 'chat.completion', choices: [] }, /^the AI provider's answer is malformed: it has no choices\[0\]\.message\.content$/],
  ];
  for (const [body, want] of cases) {
    const { job, cached, calls, room } = await askWith([{ raw: JSON.stringify(body) }]);
    assert.equal(job.status, 'failed', JSON.stringify(body));
    assert.match(job.error, want);
    assert.equal(calls, 1);
    assert.equal(cached, false);
    assert.match((await aiEvent(room.id, 'failed')).error, want);
  }
});

test('an HTTP error whose message holds an escaped NUL or lone surrogate still gives that message, as text', async () => {
  const body = '{"error":{"message":"model \\ud800 is not \\u0000 available"}}';
  const { job } = await askWith([{ status: 404, body }]);
  assert.equal(job.status, 'failed');
  // it used to show the raw JSON of the whole body: {"error":{"message":"model \ud800 …
  assert.equal(job.error, 'the AI provider answered HTTP 404: model \ufffd is not \ufffd available');
});

// What the worker already bounded, kept so: each case through the real worker, the
// double writing the bytes of the HTTP answer itself.
test('broken transfers: an endless trickle ends at AI_TIMEOUT_MS; a body cut off before its announced end and a broken chunked body are tried again; no partial answer is cached', async () => {
  const head = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n';
  const body = completion('half');
  const short = { wire: `${head}Content-Length: ${body.length}\r\n\r\n${body.slice(0, 30)}` };
  // chunked, the connection closed in the middle of a chunk: no length was announced
  const chunkCut = { wire: `${head}Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body.slice(0, 30)}` };
  const t0 = Date.now();
  const [drip, cutAlways, cutOnce, chunkOnce, chunk] = await Promise.all([
    // headers at once, then a blank every 200 ms for as long as the worker reads
    askWith([{ drip: ' ', everyMs: 200 }]),
    askWith([short, short, short]),
    askWith([short, { text: 'whole after a cut' }]),
    askWith([chunkCut, { text: 'whole after a cut chunk' }]),
    askWith([{ wire: `${head}Transfer-Encoding: chunked\r\n\r\nzz\r\n${completion('x')}\r\n` }, { text: 'whole this time' }]),
  ]);
  assert.equal(drip.job.status, 'failed');
  assert.match(drip.job.error, /^the AI provider did not answer within 4\.0 s$/);
  assert.ok(Date.now() - t0 < 15000, `took ${Date.now() - t0} ms`);
  assert.equal(drip.calls, 1);
  // it read "could not reach the AI provider at …: transfer closed with 470 bytes remaining
  // to read" and was not tried again, while a broken chunked body was
  assert.equal(cutAlways.job.status, 'failed');
  assert.equal(cutAlways.job.error,
    `the AI provider's answer was cut off: the connection closed after 30 of its ${body.length} bytes (3 attempts)`);
  assert.equal(cutAlways.calls, 3);
  assert.match((await aiEvent(cutAlways.room.id, 'failed')).error, /^the AI provider's answer was cut off: /);
  assert.equal(cutOnce.job.status, 'finished', JSON.stringify(cutOnce.job));
  assert.equal(cutOnce.job.result.text, 'whole after a cut');
  assert.equal(cutOnce.calls, 2);
  assert.equal(chunkOnce.job.status, 'finished', JSON.stringify(chunkOnce.job));
  assert.equal(chunkOnce.job.result.text, 'whole after a cut chunk');
  assert.equal(chunkOnce.calls, 2);
  assert.equal(chunk.job.status, 'finished', JSON.stringify(chunk.job));
  assert.equal(chunk.job.result.text, 'whole this time');
  assert.equal(chunk.calls, 2);
  assert.deepEqual([drip.cached, cutAlways.cached, cutOnce.cached, chunkOnce.cached, chunk.cached],
    [false, false, true, true, true]);
});

test('a chunked answer cut off in a chunk, every attempt: the job says so, with the bytes that came', async () => {
  const head = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n';
  const body = completion('half');
  const chunkCut = { wire: `${head}Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body.slice(0, 30)}` };
  const { job, calls, cached } = await askWith([chunkCut, chunkCut, chunkCut]);
  assert.equal(job.status, 'failed');
  assert.equal(job.error, 'the AI provider\'s answer was cut off: the connection closed after 30 bytes, before its end (3 attempts)');
  assert.equal(calls, 3);
  assert.equal(cached, false);
});
