// The AI copilot against the real stack: POST /api/rooms/{id}/ai/hint and /ai/review through
// lighttpd, the API and the worker, with an OpenAI-compatible double as the provider.
// scripts/test.sh points the stack at AI_DOUBLE_PORT; this file owns the double on it.
// The local provider (compiler diagnostics) is reached by running the API as CGI with
// AI_PROVIDER=local: the job carries its provider, and the stack's worker runs the checker
// in its sandbox.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { call, cgi, createRoom, newUser, redis, roomEvents } from '../lib/api.mjs';
import { waitJob } from '../lib/jobs.mjs';
import { useStackAiDouble, aiMarker } from '../lib/openai-double.mjs';

const MODEL = process.env.AI_MODEL;
const KEY = process.env.AI_API_KEY;

const ai = useStackAiDouble();
const marker = aiMarker;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ask = (token, room, kind, body = {}) => call('POST', `/api/rooms/${room.id}/ai/${kind}`, { token, body });

async function waitEvents(roomId, pred, { timeout = 5000 } = {}) {
  const until = Date.now() + timeout;
  for (;;) {
    const evs = roomEvents(roomId).filter((e) => e.type === 'ai');
    if (pred(evs)) return evs;
    if (Date.now() > until) throw new Error(`ai events: ${JSON.stringify(evs)}`);
    await sleep(50);
  }
}

async function setDocument(token, room, content) {
  const r = await call('POST', `/api/rooms/${room.id}/operations`, { token, body: { revision: 0, ops: [content] } });
  assert.equal(r.status, 200, r.text);
}

async function owner(lang = 'c') {
  const u = await newUser('ai');
  const room = await createRoom(u.token, { language: lang });
  return { u, room };
}

test('a hint: queued job, one provider call with model, key and numbered code, answer stored and broadcast', async () => {
  const { u, room } = await owner('c');
  const m = marker();
  const code = `#include <stdio.h>\nint main(void) { /* ${m} */\n  return 0;\n}\n`;
  ai.double.script(m, [{ text: 'Think about what main returns. Which line decides it?' }]);
  const r = await ask(u.token, room, 'hint', { code });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(Object.keys(r.json.job).sort(), ['id', 'kind', 'status']);
  assert.equal(r.json.job.status, 'queued');
  assert.equal(r.json.job.kind, 'ai');
  assert.equal(r.headers.get('location'), `/api/jobs/${r.json.job.id}`);

  const job = await waitJob(u.token, r.json.job.id);
  assert.equal(job.status, 'finished', JSON.stringify(job));
  assert.equal(job.kind, 'ai');
  assert.deepEqual(job.result, {
    kind: 'hint', provider: 'openai', model: MODEL, cached: false,
    text: 'Think about what main returns. Which line decides it?',
  });

  const reqs = ai.double.requestsFor(m);
  assert.equal(reqs.length, 1);
  const q = reqs[0];
  assert.equal(q.method, 'POST');
  assert.equal(q.path, '/v1/chat/completions');
  assert.equal(q.headers.authorization, `Bearer ${KEY}`);
  assert.match(q.headers['content-type'], /^application\/json/);
  assert.equal(q.body.model, MODEL);
  assert.equal(typeof q.body.temperature, 'number');
  assert.equal(typeof q.body.max_tokens, 'number');
  assert.deepEqual(q.body.messages.map((x) => x.role), ['system', 'user']);
  assert.match(q.body.messages[0].content, /do not solve/i);
  const user = q.body.messages[1].content;
  assert.match(user, /Language: c\n/);
  assert.ok(user.includes(`   2 | int main(void) { /* ${m} */\n   3 |   return 0;\n`), user);

  const evs = await waitEvents(room.id, (e) => e.some((x) => x.data.status === 'finished'));
  assert.deepEqual(evs.map((e) => e.data.status), ['queued', 'running', 'finished']);
  for (const e of evs) {
    assert.equal(e.data.job_id, r.json.job.id);
    assert.equal(e.data.kind, 'hint');
  }
  assert.equal(evs[2].data.result.text, job.result.text);
  assert.equal(redis('EXISTS', `cc:room:{${room.id}}:ai:pending:${JSON.parse(redis('HGET', `cc:{jobs}:job:${job.id}`, 'request')).cache_key}`), '0');
});

test('the same request again is answered from the cache: 200 cached, no provider call, the room sees it', async () => {
  const { u, room } = await owner('python');
  const m = marker();
  const body = { code: `print("${m}")\n`, question: 'Is this idiomatic?' };
  const r1 = await ask(u.token, room, 'review', body);
  assert.equal(r1.status, 202, r1.text);
  const job = await waitJob(u.token, r1.json.job.id);
  assert.equal(job.status, 'finished');
  const key = JSON.parse(redis('HGET', `cc:{jobs}:job:${job.id}`, 'request')).cache_key;
  assert.match(key, /^[0-9a-f]{64}$/);
  const ttl = Number(redis('TTL', `cc:ai:cache:${key}`));
  assert.ok(ttl > 86000 && ttl <= 86400, `ttl ${ttl}`);

  const r2 = await ask(u.token, room, 'review', body);
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.json.cached, true);
  assert.equal(r2.json.result.cached, true);
  assert.equal(r2.json.result.text, job.result.text);
  assert.equal(r2.json.result.kind, 'review');
  // another member of the room asking the same gets the same, still without a call
  const other = await newUser('ai2');
  const inv = await call('GET', `/api/rooms/${room.id}`, { token: u.token });
  assert.equal(inv.status, 200, inv.text);
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: other.token, body: { invite: inv.json.room.invite } });
  assert.equal(j.status, 200, j.text);
  const r3 = await ask(other.token, room, 'review', body);
  assert.equal(r3.status, 200, r3.text);
  assert.equal(r3.json.cached, true);
  assert.equal(r3.json.result.cached, true);
  assert.equal(r3.json.result.text, job.result.text);
  await sleep(300);
  assert.equal(ai.double.requestsFor(m).length, 1);
  const evs = await waitEvents(room.id, (e) => e.filter((x) => x.data.job_id === null).length === 2);
  const cachedEv = evs.find((e) => e.data.job_id === null);
  assert.equal(cachedEv.data.status, 'finished');
  assert.equal(cachedEv.data.kind, 'review');
  assert.equal(cachedEv.data.result.cached, true);

  // a different question, kind or code is another request
  assert.equal((await ask(u.token, room, 'review', { ...body, question: 'And now?' })).status, 202);
  assert.equal((await ask(u.token, room, 'hint', body)).status, 202);
  assert.equal((await ask(u.token, room, 'review', { ...body, code: body.code + '\n' })).status, 202);
  await ai.double.waitFor(m, 4);
});

test('the shared cache tells no one that another room asked: a stranger gets a fresh-looking job, served without a second provider call', async () => {
  const a = await owner('c');
  const b = await owner('c'); // another user's private room
  const m = marker();
  ai.double.script(m, [{ text: 'Look at the loop bound.', delayMs: 200 }]);
  const body = { code: `int main(void) { /* ${m} */ return 0; }\n` };
  const ra = await ask(a.u.token, a.room, 'hint', body);
  assert.equal(ra.status, 202, ra.text);
  const ja = await waitJob(a.u.token, ra.json.job.id);
  assert.equal(ja.status, 'finished');

  // B sends A's exact code: answered as if nobody had asked (202, a new job of B's room,
  // not joined, not cached), and B still gets the answer
  const rb = await ask(b.u.token, b.room, 'hint', body);
  assert.equal(rb.status, 202, rb.text);
  assert.equal(rb.json.cached, undefined);
  assert.equal(rb.json.joined, undefined);
  assert.notEqual(rb.json.job.id, ra.json.job.id);
  const jb = await waitJob(b.u.token, rb.json.job.id);
  assert.equal(jb.status, 'finished', JSON.stringify(jb));
  assert.deepEqual(jb.result, ja.result);
  assert.equal(jb.result.cached, false);
  // B's room saw the events of a fresh request: queued, then finished with the job id
  const evs = await waitEvents(b.room.id, (e) => e.some((x) => x.data.status === 'finished'));
  assert.deepEqual(evs.map((e) => [e.data.job_id, e.data.status]).filter(([, st]) => st !== 'running'),
    [[rb.json.job.id, 'queued'], [rb.json.job.id, 'finished']]);
  assert.equal(evs.at(-1).data.result.cached, false);
  assert.equal(evs.at(-1).data.result.provider_ms, undefined);
  // the provider was called once in all
  assert.equal(ai.double.requestsFor(m).length, 1);

  // A asking again in A's room is a cache hit; so is B now, in B's room
  const again = await ask(a.u.token, a.room, 'hint', body);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.cached, true);
  assert.equal(again.json.result.text, 'Look at the loop bound.');
  assert.equal(again.json.result.provider_ms, undefined);
  const againB = await ask(b.u.token, b.room, 'hint', body);
  assert.equal(againB.status, 200, againB.text);
  assert.equal(againB.json.cached, true);
  assert.equal(ai.double.requestsFor(m).length, 1);
});

test('the code defaults to the room document and its language; a selection sends only its lines, numbered as in the file', async () => {
  const { u, room } = await owner('python');
  const m = marker();
  const doc = `import os\n# ${m}\ndef f(x):\n    return x + 1\nprint(f(2))\n`;
  await setDocument(u.token, room, doc);
  const r = await ask(u.token, room, 'review', {});
  assert.equal(r.status, 202, r.text);
  assert.equal((await waitJob(u.token, r.json.job.id)).status, 'finished');
  let user = ai.double.requestsFor(m).at(-1).body.messages[1].content;
  assert.match(user, /Language: python\n/);
  assert.ok(user.includes(`   1 | import os\n   2 | # ${m}\n   3 | def f(x):\n`), user);
  assert.match(ai.double.requestsFor(m).at(-1).body.messages[0].content, /Security/);

  // lines 2 to 4: from the "#" of line 2 to the end of line 4 (code points)
  const from = doc.indexOf('#');
  const to = doc.indexOf('print');
  const r2 = await ask(u.token, room, 'hint', { selection: { from, to }, language: 'py', question: 'why +1?' });
  assert.equal(r2.status, 202, r2.text);
  assert.equal((await waitJob(u.token, r2.json.job.id)).status, 'finished');
  user = ai.double.requestsFor(m).at(-1).body.messages[1].content;
  assert.match(user, /starts at line 2/);
  assert.match(user, /Question from the user: why \+1\?/);
  assert.ok(user.includes(`   2 | # ${m}\n   3 | def f(x):\n   4 |     return x + 1\nCODE>>>`), user);
  assert.ok(!user.includes('import os') && !user.includes('print(f(2))'), user);

  // a selection of given code, with multi-byte characters counted as code points
  const code = `é = 1\nñ = "${m}"\nz = 3\n`;
  const r3 = await ask(u.token, room, 'hint', { code, selection: { from: code.indexOf('ñ'), to: code.indexOf('z') } });
  assert.equal(r3.status, 202);
  assert.equal((await waitJob(u.token, r3.json.job.id)).status, 'finished');
  user = ai.double.requestsFor(m).at(-1).body.messages[1].content;
  assert.ok(user.includes(`   2 | ñ = "${m}"\nCODE>>>`), user);
  assert.ok(!user.includes('é = 1'), user);
});

test('concurrent identical requests make one provider call and share one job id', async () => {
  const { u, room } = await owner('c');
  const other = await newUser('ai');
  const inv = await call('GET', `/api/rooms/${room.id}`, { token: u.token });
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: other.token, body: { invite: inv.json.room.invite } })).status, 200);
  const m = marker();
  ai.double.script(m, [{ text: 'one answer for all', delayMs: 1500 }]);
  const body = { code: `int ${m};\n` };
  const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(i % 2 ? other.token : u.token, room, 'hint', body)));
  for (const r of rs) assert.equal(r.status, 202, r.text);
  const ids = new Set(rs.map((r) => r.json.job.id));
  assert.equal(ids.size, 1, JSON.stringify(rs.map((r) => r.json)));
  const job = await waitJob(u.token, [...ids][0]);
  assert.equal(job.result.text, 'one answer for all');
  await sleep(300);
  assert.equal(ai.double.requestsFor(m).length, 1);
  // and now it is cached
  const again = await ask(other.token, room, 'hint', body);
  assert.equal(again.status, 200);
  assert.equal(again.json.result.text, 'one answer for all');
});

test('provider 429 with Retry-After, then success: the job waits as told and finishes', async () => {
  const { u, room } = await owner('c');
  const m = marker();
  ai.double.script(m, [
    { status: 429, headers: { 'retry-after': '1' }, body: { error: { message: 'Rate limit reached' } } },
    { text: 'second time lucky' },
  ]);
  const r = await ask(u.token, room, 'review', { code: `// ${m}\n` });
  const job = await waitJob(u.token, r.json.job.id);
  assert.equal(job.status, 'finished', JSON.stringify(job));
  assert.equal(job.result.text, 'second time lucky');
  const reqs = ai.double.requestsFor(m);
  assert.equal(reqs.length, 2);
  assert.ok(reqs[1].at - reqs[0].at >= 900, `retried after ${reqs[1].at - reqs[0].at} ms`);
});

test('provider 500: retried with backoff, then a failed job naming the status and the provider message; a later success is possible', async () => {
  const { u, room } = await owner('c');
  const m = marker();
  const boom = { status: 500, body: { error: { message: 'upstream exploded' } } };
  ai.double.script(m, [boom, boom, boom]);
  const r = await ask(u.token, room, 'hint', { code: `// ${m}\n` });
  const job = await waitJob(u.token, r.json.job.id);
  assert.equal(job.status, 'failed');
  assert.match(job.error, /AI provider answered HTTP 500: upstream exploded \(3 attempts\)/);
  assert.equal(job.result, undefined);
  const reqs = ai.double.requestsFor(m);
  assert.equal(reqs.length, 3);
  // queue-worker/ai_http.c: the retries wait a random time in [d/2, d], d = 750 ms then
  // 1500 ms: at least 375 ms, then at least 750 ms (each gap checked against its own floor,
  // with a little slack for clock granularity; the two random waits are not compared)
  const gap1 = reqs[1].at - reqs[0].at, gap2 = reqs[2].at - reqs[1].at;
  assert.ok(gap1 >= 350, `first retry after ${gap1} ms`);
  assert.ok(gap2 >= 700, `second retry after ${gap2} ms`);
  const evs = await waitEvents(room.id, (e) => e.some((x) => x.data.status === 'failed'));
  assert.match(evs.find((e) => e.data.status === 'failed').data.error, /HTTP 500/);
  // a failure is not cached and leaves no pending mark: asking again makes a new job
  ai.double.script(m, [boom, { text: 'recovered' }]);
  const r2 = await ask(u.token, room, 'hint', { code: `// ${m}\n` });
  assert.equal(r2.status, 202);
  assert.notEqual(r2.json.job.id, r.json.job.id);
  const job2 = await waitJob(u.token, r2.json.job.id);
  assert.equal(job2.status, 'finished');
  assert.equal(job2.result.text, 'recovered');
});

test('a provider that hangs past AI_TIMEOUT_MS: one attempt, a failed job saying so', async () => {
  const { u, room } = await owner('c');
  const m = marker();
  ai.double.script(m, [{ hang: true }]);
  const t0 = Date.now();
  const r = await ask(u.token, room, 'hint', { code: `// ${m}\n` });
  const job = await waitJob(u.token, r.json.job.id);
  assert.equal(job.status, 'failed');
  assert.match(job.error, /did not answer within 4\.0 s/);
  const took = Date.now() - t0;
  assert.ok(took >= 3900 && took < 12000, `took ${took} ms`);
  assert.equal(ai.double.requestsFor(m).length, 1);
});

test('malformed, empty and refused answers fail the job with a clear message, without retries', async () => {
  const { u, room } = await owner('c');
  const cases = [
    [{ raw: '{"choices": [ {"message": ' }, /not valid JSON/],
    [{ raw: '<html>Bad Gateway</html>' }, /not valid JSON/],
    [{ raw: JSON.stringify({ choices: [] }) }, /malformed.*choices\[0\]\.message\.content/],
    [{ raw: JSON.stringify({ choices: [{ message: { content: 42 } }] }) }, /malformed/],
    [{ text: '   \n ' }, /empty answer/],
    [{ status: 401, body: { error: { message: 'Invalid API Key', type: 'invalid_request_error' } } }, /HTTP 401: Invalid API Key$/],
  ];
  for (const [answer, want] of cases) {
    const m = marker();
    ai.double.script(m, [answer]);
    const r = await ask(u.token, room, 'review', { code: `// ${m}\n` });
    assert.equal(r.status, 202);
    const job = await waitJob(u.token, r.json.job.id);
    assert.equal(job.status, 'failed', JSON.stringify(answer));
    assert.match(job.error, want);
    assert.equal(ai.double.requestsFor(m).length, 1, JSON.stringify(answer));
  }
});

test('hostile provider text stays text: stored and broadcast as a JSON string, without control characters', async () => {
  const { u, room } = await owner('javascript');
  const m = marker();
  const evil = '<img src=x onerror=alert(1)>\u001b[2J"}],"x":{"\r\nline\u0000after';
  ai.double.script(m, [{ text: evil }]);
  const r = await ask(u.token, room, 'hint', { code: `// ${m}\n` });
  const job = await waitJob(u.token, r.json.job.id);
  assert.equal(job.status, 'finished');
  assert.equal(job.result.text, '<img src=x onerror=alert(1)>[2J"}],"x":{"\nline\ufffdafter');
  assert.deepEqual(Object.keys(job.result).sort(), ['cached', 'kind', 'model', 'provider', 'text']);
  const evs = await waitEvents(room.id, (e) => e.some((x) => x.data.status === 'finished'));
  assert.equal(evs.find((e) => e.data.status === 'finished').data.result.text, job.result.text);
});

test('an answer holding \\u0000 or a lone surrogate escape: U+FFFD there, the rest of the answer kept', async () => {
  const { u, room } = await owner('python');
  // JSON.stringify writes a NUL as \u0000 and a lone surrogate as \ud800 (well-formed
  // JSON.stringify), as a provider's serializer may; a pair stays one character
  const cases = [
    ['Look at line 2\u0000 and then line 3.', 'Look at line 2\ufffd and then line 3.'],
    ['before \ud800 middle \udc00 after \ud83d\ude00 end', 'before \ufffd middle \ufffd after \u{1f600} end'],
    ['\u0000\ud83d', '\ufffd\ufffd'],
  ];
  // every case's outcome first, compared at once: a failure shows them all
  const got = [];
  for (const [text] of cases) {
    const m = marker();
    ai.double.script(m, [{ text }]);
    const r = await ask(u.token, room, 'hint', { code: `# ${m}\n` });
    assert.equal(r.status, 202, r.text);
    const job = await waitJob(u.token, r.json.job.id);
    got.push(job.status === 'finished' ? job.result.text : `${job.status}: ${job.error}`);
    assert.equal(ai.double.requestsFor(m).length, 1);
  }
  assert.deepEqual(got, cases.map(([, want]) => want));
});

// The API as CGI with the local provider: the job it queues says provider local.
function askLocal(token, room, kind, body, env = {}) {
  const r = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/ai/${kind}`, token, body, env: { AI_PROVIDER: 'local', ...env } });
  return r;
}

test('no AI provider: the local provider names the right lines of broken C, Python and JavaScript', async () => {
  const u = await newUser('ai');
  const cases = [
    ['c', '#include <stdio.h>\n\nint main(void)\n{\n\tprintf("%d\\n", count);\n\treturn 0;\n}\n', 5, /count/],
    ['python', 'def f(x):\n    return x * 2\n\nprint(f(3)\n', 4, /SyntaxError/],
    ['javascript', 'const a = 1;\nfunction g() {\n  return a +;\n}\n', 3, /SyntaxError/],
    ['c++', '#include <vector>\nint main() {\n  std::vector<int> v;\n  return total + v.size();\n}\n', 4, /total/],
    ['bash', 'if true; then\n  echo hi\n', 3, /syntax error/],
  ];
  for (const [lang, code, line, msg] of cases) {
    const room = await createRoom(u.token, { language: lang });
    const r = askLocal(u.token, room, 'review', { code });
    assert.equal(r.status, 202, `${lang}: ${r.body} ${r.stderr}`);
    const job = await waitJob(u.token, r.json.job.id, { ms: 30000 });
    assert.equal(job.status, 'finished', `${lang}: ${JSON.stringify(job)}`);
    const res = job.result;
    assert.equal(res.provider, 'local');
    assert.equal(res.kind, 'review');
    assert.ok(res.text.startsWith('No AI provider is configured: these are the compiler\'s diagnostics'), res.text);
    const errors = res.diagnostics.filter((d) => d.severity === 'error');
    assert.ok(errors.length >= 1, `${lang}: ${JSON.stringify(res)}`);
    assert.equal(errors[0].line, line, `${lang}: ${JSON.stringify(res.diagnostics)}`);
    assert.match(errors[0].message, msg);
    assert.match(res.text, new RegExp(`line ${line}`));
    for (const d of res.diagnostics) assert.deepEqual(Object.keys(d).filter((k) => !['line', 'column', 'severity', 'message'].includes(k)), []);
  }
  // clean code, and warnings with their lines; a selection moves the lines
  const room = await createRoom(u.token, { language: 'c' });
  let r = askLocal(u.token, room, 'hint', { code: 'int main(void)\n{\n\treturn 0;\n}\n' });
  let job = await waitJob(u.token, r.json.job.id, { ms: 30000 });
  assert.deepEqual(job.result.diagnostics, []);
  assert.match(job.result.text, /found no problems/);
  const code = 'int main(void)\n{\n\tint unused;\n\treturn 0;\n}\n';
  r = askLocal(u.token, room, 'hint', { code, selection: { from: 0, to: code.length } });
  job = await waitJob(u.token, r.json.job.id, { ms: 30000 });
  assert.equal(job.result.diagnostics[0].line, 3);
  assert.equal(job.result.diagnostics[0].severity, 'warning');
  // a language without a checker still answers, and says so
  const rustRoom = await createRoom(u.token, { language: 'rust' });
  r = askLocal(u.token, rustRoom, 'hint', { code: 'fn main() {}\n' });
  job = await waitJob(u.token, r.json.job.id, { ms: 30000 });
  assert.equal(job.status, 'finished');
  assert.match(job.result.text, /no checker for this language/);
});

test('the local provider\'s answer that only says what the worker could not do is not cached; its verdict on the code is', async () => {
  const u = await newUser('ai');
  const m = marker();
  // no checker for the language: an answer about this server, not about the code. It is not
  // stored in the cache shared by every room, nor is the room marked as having asked, so
  // the same request again is a new job (202), not 200 cached
  const rustRoom = await createRoom(u.token, { language: 'rust' });
  const body = { code: `// ${m}\nfn main() {}\n` };
  const r1 = askLocal(u.token, rustRoom, 'hint', body);
  assert.equal(r1.status, 202, `${r1.body} ${r1.stderr}`);
  const j1 = await waitJob(u.token, r1.json.job.id, { ms: 30000 });
  assert.equal(j1.status, 'finished', JSON.stringify(j1));
  assert.match(j1.result.text, /no checker for this language/);
  const key = JSON.parse(redis('HGET', `cc:{jobs}:job:${j1.id}`, 'request')).cache_key;
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.equal(redis('EXISTS', `cc:ai:cache:${key}`), '0');
  assert.equal(redis('EXISTS', `cc:room:{${rustRoom.id}}:ai:asked:${key}`), '0');
  const r2 = askLocal(u.token, rustRoom, 'hint', body);
  assert.equal(r2.status, 202, `${r2.body} ${r2.stderr}`);
  assert.equal(r2.json.cached, undefined);
  assert.notEqual(r2.json.job.id, j1.id);
  const j2 = await waitJob(u.token, r2.json.job.id, { ms: 30000 });
  assert.equal(j2.status, 'finished', JSON.stringify(j2));
  assert.equal(j2.result.cached, false);
  assert.match(j2.result.text, /no checker for this language/);
  assert.equal(redis('EXISTS', `cc:ai:cache:${key}`), '0');

  // the checker's verdict is about the code: stored, and the same request again is 200 cached
  const cRoom = await createRoom(u.token, { language: 'c' });
  const cBody = { code: `// ${m}\nint main(void)\n{\n\treturn 0;\n}\n` };
  const c1 = askLocal(u.token, cRoom, 'hint', cBody);
  assert.equal(c1.status, 202, `${c1.body} ${c1.stderr}`);
  const cj = await waitJob(u.token, c1.json.job.id, { ms: 30000 });
  assert.equal(cj.status, 'finished', JSON.stringify(cj));
  assert.match(cj.result.text, /found no problems/);
  const cKey = JSON.parse(redis('HGET', `cc:{jobs}:job:${cj.id}`, 'request')).cache_key;
  assert.equal(redis('EXISTS', `cc:ai:cache:${cKey}`), '1');
  const c2 = askLocal(u.token, cRoom, 'hint', cBody);
  assert.equal(c2.status, 200, `${c2.body} ${c2.stderr}`);
  assert.equal(c2.json.cached, true);
  assert.equal(c2.json.result.text, cj.result.text);
});

test('AI_PROVIDER=off answers 503 ai_disabled', async () => {
  const { u, room } = await owner('c');
  const r = askLocal(u.token, room, 'hint', { code: 'int x;' }, { AI_PROVIDER: 'off' });
  assert.equal(r.status, 503);
  assert.equal(r.json.error, 'ai_disabled');
  const bad = askLocal(u.token, room, 'hint', { code: 'int x;' }, { AI_PROVIDER: 'gpt' });
  assert.equal(bad.status, 500);
  assert.match(bad.json.message, /AI_PROVIDER must be openai, local or off/);
});

test('rate limit: AI_RATE_LIMIT new requests a minute, then 429 with Retry-After; cached answers do not count', async () => {
  const { u, room } = await owner('c');
  const m = marker();
  const first = await ask(u.token, room, 'hint', { code: `// ${m} 0\n` });
  assert.equal(first.status, 202);
  assert.equal((await waitJob(u.token, first.json.job.id)).status, 'finished');
  for (let i = 1; i < 10; i++) {
    const r = await ask(u.token, room, 'hint', { code: `// ${m} ${i}\n` });
    assert.equal(r.status, 202, `request ${i}: ${r.text}`);
  }
  const r = await ask(u.token, room, 'hint', { code: `// ${m} 10\n` });
  assert.equal(r.status, 429);
  assert.equal(r.json.error, 'rate_limited');
  assert.match(r.json.message, /at most 10 AI requests per minute/);
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
  // the cached one still answers
  const cached = await ask(u.token, room, 'hint', { code: `// ${m} 0\n` });
  assert.equal(cached.status, 200, cached.text);
  assert.equal(cached.json.cached, true);
  // another user is not limited
  const other = await owner('c');
  assert.equal((await ask(other.u.token, other.room, 'hint', { code: `// ${m} other\n` })).status, 202);
});

test('request limits: code up to 64 KiB (413 beyond), question up to 2000 characters, selection and language checked', async () => {
  const { u, room } = await owner('c');
  const m = marker();
  const big = `// ${m}\n` + 'x'.repeat(64 * 1024 - m.length - 4);
  assert.equal(Buffer.byteLength(big), 64 * 1024);
  assert.equal((await ask(u.token, room, 'review', { code: big })).status, 202);
  let r = await ask(u.token, room, 'review', { code: big + 'y' });
  assert.equal(r.status, 413);
  assert.equal(r.json.error, 'code_too_large');
  assert.match(r.json.message, /64 KiB/);
  // multi-byte: the limit is in bytes
  r = await ask(u.token, room, 'review', { code: 'é'.repeat(32 * 1024 + 1) });
  assert.equal(r.status, 413);
  // a big document is fine when the selection is small
  r = await ask(u.token, room, 'review', { code: big + 'y', selection: { from: 0, to: 20 } });
  assert.equal(r.status, 202, r.text);

  assert.equal((await ask(u.token, room, 'hint', { code: `// ${m} q`, question: 'q'.repeat(2000) })).status, 202);
  r = await ask(u.token, room, 'hint', { code: 'int x;', question: 'é'.repeat(2001) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'question_too_long');
  assert.match(r.json.message, /at most 2000 characters/);

  const bad = [
    [{ code: 42 }, 'invalid_request', /code must be a string/],
    [{ code: 'a\u0001b' }, 'invalid_request', /code must not contain control/],
    [{ question: ['x'] }, 'invalid_request', /question must be a string/],
    [{ language: 'cobol', code: 'x' }, 'invalid_request', /language cobol/],
    [{ code: 'abc', selection: { from: 2, to: 1 } }, 'invalid_request', /selection/],
    [{ code: 'abc', selection: { from: 0.5, to: 2 } }, 'invalid_request', /selection/],
    [{ code: 'abc', selection: 'all' }, 'invalid_request', /selection/],
    [{ code: 'abc', selection: { from: 1, to: 9 } }, 'invalid_selection', /outside the code \(3 characters\)/],
    [{ code: '' }, 'no_code', /no code/],
  ];
  for (const [body, code, msg] of bad) {
    r = await ask(u.token, room, 'hint', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error, code, JSON.stringify(body));
    assert.match(r.json.message, msg);
  }
  // an empty room document with no question has nothing to look at
  r = await ask(u.token, room, 'hint', {});
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'no_code');
  r = await call('POST', `/api/rooms/${room.id}/ai/hint`, { token: u.token, body: '{"code":' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'invalid_json');
});

test('who may ask: members and viewers yes, strangers to private rooms no, public rooms are readable', async () => {
  const { u, room } = await owner('c');
  const viewer = await newUser('aiv');
  const stranger = await newUser('ais');
  const info = await call('GET', `/api/rooms/${room.id}`, { token: u.token });
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: viewer.token, body: { invite: info.json.room.invite } })).status, 200);
  assert.equal((await call('PUT', `/api/rooms/${room.id}/members/${viewer.user.id}`, { token: u.token, body: { role: 'viewer' } })).status, 200);
  const m = marker();
  const r = await ask(viewer.token, room, 'hint', { code: `// ${m} viewer\n` });
  assert.equal(r.status, 202, r.text);
  assert.equal((await waitJob(viewer.token, r.json.job.id)).status, 'finished');

  let s = await ask(stranger.token, room, 'hint', { code: `// ${m} stranger\n` });
  assert.equal(s.status, 403);
  assert.equal(s.json.error, 'not_a_member');
  // nor can they read the job or get the cached answer
  const hidden = await call('GET', `/api/jobs/${r.json.job.id}`, { token: stranger.token });
  assert.equal(hidden.status, 404, hidden.text);
  assert.equal(hidden.json.error, 'job_not_found');
  s = await ask(stranger.token, room, 'hint', { code: `// ${m} viewer\n` });
  assert.equal(s.status, 403);
  assert.equal((await ask(null, room, 'hint', { code: 'x' })).status, 401);
  assert.equal((await ask(u.token, { id: 'nosuchroom1' }, 'hint', { code: 'x' })).status, 404);
  await sleep(200);
  assert.equal(ai.double.requestsFor(`${m} stranger`).length, 0);

  const pub = await createRoom(u.token, { language: 'python', visibility: 'public' });
  const p = await ask(stranger.token, pub, 'review', { code: `# ${m} public\n` });
  assert.equal(p.status, 202, p.text);
  assert.equal((await waitJob(stranger.token, p.json.job.id)).status, 'finished');

  // only POST
  const g = await call('GET', `/api/rooms/${room.id}/ai/hint`, { token: u.token });
  assert.equal(g.status, 405);
  assert.equal(g.headers.get('allow'), 'POST');
});
