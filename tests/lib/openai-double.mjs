// A stand-in for an OpenAI-compatible chat completions API, for the AI tests: a real HTTP
// server on loopback that records every request (method, path, headers, parsed body) and
// answers from a script.
//
//   const d = await startOpenAiDouble({ port });
//   d.script('marker-123', [{ status: 429, headers: { 'retry-after': '1' } }, { text: 'ok' }]);
//   ... requests whose body contains 'marker-123' get those answers in turn, then the default
//   d.requestsFor('marker-123')  // what arrived
//   await d.close();
//
// An answer is one of:
//   { text, finishReason?, delayMs? }             200, a chat completion with that content
//   { status, body?, headers?, delayMs? }         that status; body (string or object) as is
//   { raw, status?, delayMs? }                    200 (or status) with raw text as the body
//   { hang: true }                                never answers (the socket stays open)
//   { wire, keepOpen? }                           wire (string or Buffer) written to the socket
//                                                 as it is: status line, headers and body of
//                                                 our choosing (a broken chunked body, a body
//                                                 shorter than its Content-Length); the socket
//                                                 is then ended, or left open with keepOpen
//   { drip, everyMs, status? }                    200 (or status), chunked, then drip (a string)
//                                                 every everyMs for as long as the client reads
// and any of them with hold: true is held until d.release(marker) (then after its delayMs),
// answered at once if released before it arrived: a test makes the provider answer only
// once it is ready for the answer (the worker gives up after AI_TIMEOUT_MS all the same).
// Requests that match no script get { text: 'Double answer …' }.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { before, after } from 'node:test';

// For a stack suite: the double on AI_DOUBLE_PORT (where the test stack's AI provider points,
// scripts/test.sh), started before the file's tests and closed after them. The handle's
// `double` is the running double once the tests run.
export function useStackAiDouble() {
  const port = Number(process.env.AI_DOUBLE_PORT);
  if (!port) throw new Error('AI_DOUBLE_PORT is not set: run through scripts/test.sh');
  const handle = { double: null };
  before(async () => { handle.double = await startOpenAiDouble({ port }); });
  after(async () => { await handle.double?.close(); });
  return handle;
}

// A text to put in a request so that the double's script and records find it.
export const aiMarker = () => `m${randomBytes(6).toString('hex')}`;

export async function startOpenAiDouble({ port = 0, host = '127.0.0.1' } = {}) {
  const requests = [];
  const scripts = new Map(); // marker -> [answers]
  const sockets = new Set();
  const timers = new Set();
  const released = new Set(); // markers whose held answers may go
  const held = new Map(); // marker -> [send] waiting for release(marker)

  const completion = (req, { text, finishReason = 'stop' }) => ({
    id: `chatcmpl-${requests.length}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: req?.model ?? 'unknown',
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finishReason }],
    usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
  });

  const pick = (raw) => {
    for (const [marker, list] of scripts) {
      if (raw.includes(marker) && list.length) return { marker, answer: list.shift() };
    }
    return null;
  };

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try { body = JSON.parse(raw); } catch { /* recorded as raw only */ }
      const rec = { method: req.method, path: req.url, headers: { ...req.headers }, raw, body, at: Date.now() };
      requests.push(rec);
      const user = body?.messages?.find?.((m) => m.role === 'user')?.content ?? '';
      const picked = pick(raw);
      const answer = picked?.answer ?? { text: `Double answer: look again at line 1 (${body?.model ?? '?'}, ${user.length} chars).` };
      if (answer.hang) return; // the worker's timeout must end this
      const send = () => {
        if (res.destroyed) return;
        if (answer.wire !== undefined) {
          const sock = res.socket;
          res.detachSocket?.(sock);
          sock.write(answer.wire);
          if (!answer.keepOpen) sock.end();
          return;
        }
        if (answer.drip !== undefined) {
          res.writeHead(answer.status ?? 200, { 'content-type': 'application/json' });
          const t = setInterval(() => {
            if (res.destroyed || res.writableEnded) { clearInterval(t); timers.delete(t); return; }
            res.write(answer.drip);
          }, answer.everyMs ?? 100);
          timers.add(t);
          res.on('close', () => { clearInterval(t); timers.delete(t); });
          return;
        }
        let status = answer.status ?? 200;
        let payload;
        if (answer.raw !== undefined) payload = answer.raw;
        else if (answer.text !== undefined) payload = JSON.stringify(completion(body, answer));
        else payload = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? { error: { message: `scripted ${status}` } });
        res.writeHead(status, { 'content-type': 'application/json', ...(answer.headers ?? {}) });
        res.end(payload);
      };
      const go = () => {
        if (answer.delayMs) {
          const t = setTimeout(() => { timers.delete(t); send(); }, answer.delayMs);
          timers.add(t);
        } else {
          send();
        }
      };
      if (answer.hold && !released.has(picked.marker)) {
        if (!held.has(picked.marker)) held.set(picked.marker, []);
        held.get(picked.marker).push(go);
      } else {
        go();
      }
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();

  return {
    port: addr.port,
    url: `http://${host}:${addr.port}/v1`,
    requests,
    // answers for requests whose body contains marker, in order
    script(marker, answers) { scripts.set(marker, [...answers]); },
    requestsFor(marker) { return requests.filter((r) => r.raw.includes(marker)); },
    // lets the held answers of marker go, those waiting and those still to come
    release(marker) {
      released.add(marker);
      const waiting = held.get(marker) ?? [];
      held.delete(marker);
      for (const go of waiting) go();
    },
    // resolves once n requests contain marker (or rejects after timeoutMs)
    async waitFor(marker, n = 1, timeoutMs = 10000) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (this.requestsFor(marker).length >= n) return this.requestsFor(marker);
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`the double saw ${this.requestsFor(marker).length} of ${n} requests with ${marker}`);
    },
    async close() {
      for (const t of timers) { clearTimeout(t); clearInterval(t); }
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
