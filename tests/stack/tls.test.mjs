// HTTPS and HTTP/2 (scripts/run.sh: TLS_CERT/TLS_KEY or TLS=self-signed). The test stack
// serves HTTPS on TLS_URL beside plain HTTP, with a self-signed certificate (CC_TLS_CA); these
// tests check what a person or a script would: the API over HTTP/2, HSTS only over HTTPS,
// and every stream transport (SSE and long-poll over HTTP/2, WebSocket over TLS). The
// browser client over HTTPS is tests/browser/tls.test.mjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { BASE, newUser } from '../lib/api.mjs';
import { assertSecurityHeaders } from '../lib/policy.mjs';

const TLS_URL = process.env.TLS_URL;
if (!TLS_URL) throw new Error('TLS_URL is not set: the test stack serves HTTPS beside HTTP (scripts/stack.sh)');
const CA = readFileSync(process.env.CC_TLS_CA);

const sessions = [];
after(() => sessions.forEach((s) => s.close()));

function h2session() {
  return new Promise((resolve, reject) => {
    const s = http2.connect(TLS_URL, { ca: CA });
    sessions.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

// One request on an HTTP/2 session: {status, headers, text, json}.
// raw: a Buffer sent as the body as it is; streamed: the body sent in 64 KiB pieces with
// no content-length (an empty one: an empty DATA frame ends the stream).
function h2request(s, method, path, { token, body, raw, streamed } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { ':method': method, ':path': path };
    if (token) headers.authorization = `Bearer ${token}`;
    const payload = raw ?? (body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
    if (streamed) {
      headers['content-type'] = 'application/json';
    } else if (payload) {
      // as browsers send it: lighttpd refuses a POST body of unknown length (411)
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const req = s.request(headers);
    let status = 0, hdrs = {}, text = '';
    req.setEncoding('utf8');
    req.on('response', (h) => { status = h[':status']; hdrs = h; });
    req.on('data', (d) => { text += d; });
    req.on('end', () => {
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
      resolve({ status, headers: hdrs, text, json });
    });
    req.on('error', reject);
    if (!streamed) {
      req.end(payload);
      return;
    }
    let at = 0;
    const more = () => {
      while (at < payload.length) {
        const piece = payload.subarray(at, at + 65536);
        at += piece.length;
        if (!req.write(piece)) {
          req.once('drain', more);
          return;
        }
      }
      req.end();
    };
    more();
  });
}

async function roomWithTicket(s) {
  const u = await newUser('tls');
  const room = await h2request(s, 'POST', '/api/rooms', { token: u.token, body: { name: 'over tls', language: 'python' } });
  assert.equal(room.status, 201, room.text);
  const t = await h2request(s, 'POST', `/api/rooms/${room.json.room.id}/stream-ticket`, { token: u.token, body: {} });
  assert.equal(t.status, 200, t.text);
  return { u, room: room.json.room, ticket: t.json.ticket };
}

test('the API answers over HTTPS with HTTP/2, with HSTS; plain HTTP sends no HSTS', async () => {
  const s = await h2session();
  assert.equal(s.alpnProtocol, 'h2', 'HTTP/2 negotiated by ALPN');
  const r = await h2request(s, 'GET', '/api/health');
  assert.equal(r.status, 200, r.text);
  // lighttpd.conf's headers with its HSTS, exactly (tests/lib/policy.mjs)
  assertSecurityHeaders(r.headers, 'GET /api/health over HTTPS', { https: true });
  const page = await h2request(s, 'GET', '/');
  assert.equal(page.status, 200);
  assertSecurityHeaders(page.headers, 'GET / over HTTPS', { https: true });
  const plain = await fetch(`${BASE}/api/health`);
  assert.equal(plain.status, 200);
  assertSecurityHeaders(plain.headers, 'GET /api/health over HTTP');
});

// lighttpd.conf: over server.max-request-size (2 MiB) lighttpd answers 413 itself; over
// HTTP/2, lighttpd 1.4.69 reset the stream with no answer at all while that 413 went to its
// error handler, so such requests have none (deploy/lighttpd/backend-error.lua words it).
test('a body over 2 MiB over HTTP/2 is answered 413 JSON on every path, not a reset stream; under 2 MiB the API answers', async () => {
  const MiB = 1024 * 1024;
  for (const [path, size] of [['/api/auth/register', 3 * MiB], ['/api/rooms', 2 * MiB + 1], ['/events/rooms/x', 3 * MiB], ['/index.html', 3 * MiB]]) {
    const s = await h2session();
    const r = await h2request(s, 'POST', path, { raw: Buffer.alloc(size, 'a') });
    assert.equal(r.status, 413, `${path}, ${size} bytes: ${r.text}`);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.equal(r.json?.error, 'payload_too_large', r.text);
    // lighttpd's own 413 (deploy/lighttpd/backend-error.lua) or the API's: the same headers
    assertSecurityHeaders(r.headers, `413 for ${path}`, { https: true });
  }
  // a Content-Length of seven digits under the bound still reaches the API, which reads it
  // and refuses it as over its own 1 MiB
  const s = await h2session();
  const mid = await h2request(s, 'POST', '/api/auth/register', { raw: Buffer.from(`{"pad":"${'x'.repeat(MiB + 100)}"}`) });
  assert.equal(mid.status, 413, mid.text);
  assert.equal(mid.json?.error, 'payload_too_large');
  const ok = await h2request(await h2session(), 'GET', '/api/health');
  assert.equal(ok.status, 200, 'the server lives on');
});

// lighttpd.conf: a PUT, PATCH or DELETE may stream its body without a length; past 2 MiB
// it is the same 413 JSON (over HTTP/2 the error handler's 413 was a reset stream too). A
// POST without a length is lighttpd's 411, which the API serves as the empty POST that
// `curl -X POST` sends (over HTTP/2 too, with an empty DATA frame to end it).
test('over HTTP/2 a streamed PUT is read, and refused with 413 JSON past 2 MiB; a POST with no length is the empty POST', async () => {
  const s = await h2session();
  const u = await newUser('h2stream');
  const room = await h2request(s, 'POST', '/api/rooms', { token: u.token, body: { name: 'streamed', language: 'python' } });
  assert.equal(room.status, 201, room.text);
  const id = room.json.room.id;
  const put = await h2request(s, 'PUT', `/api/rooms/${id}/document`,
    { token: u.token, streamed: true, raw: Buffer.from(JSON.stringify({ content: 'print(1)\n', base_revision: 0 })) });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.revision, 1);
  for (const method of ['PUT', 'PATCH']) {
    const big = await h2request(await h2session(), method, `/api/rooms/${id}${method === 'PUT' ? '/document' : ''}`,
      { token: u.token, streamed: true, raw: Buffer.alloc(3 * 1024 * 1024, 'a') });
    assert.equal(big.status, 413, `${method}: ${big.text}`);
    assert.equal(big.json?.error, 'payload_too_large', big.text);
    assert.equal(big.headers['x-frame-options'], 'DENY');
  }
  const doc = await h2request(s, 'GET', `/api/rooms/${id}/document`, { token: u.token });
  assert.deepEqual([doc.json.revision, doc.json.content], [1, 'print(1)\n'], 'nothing of the refused bodies applied');
  const ticket = await h2request(s, 'POST', `/api/rooms/${id}/stream-ticket`, { token: u.token, streamed: true, raw: Buffer.alloc(0) });
  assert.equal(ticket.status, 200, ticket.text);
  assert.equal(typeof ticket.json.ticket, 'string');
});

// Commits `text` at the start of the room's document, again every 300 ms, until `arrived`
// settles (a stream opened without a position carries what is committed once the broker
// has subscribed to the room, which can come a moment after the response's head on a
// loaded machine). Resolves to the last revision committed; `arrived`'s rejection (its own
// timeout) ends it too.
async function commitUntil(s, u, room, text, arrived) {
  let rev = 0, settled = false;
  arrived.then(() => { settled = true; }, () => { settled = true; });
  while (!settled) {
    const op = await h2request(s, 'POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision: rev, ops: [text] } });
    assert.equal(op.status, 200, op.text);
    rev = op.json.revision;
    await Promise.race([arrived.catch(() => {}), new Promise((r) => setTimeout(r, 300))]);
  }
  await arrived;
  return rev;
}

test('SSE and long-poll stream over HTTP/2, on the same connection as the API', async () => {
  const s = await h2session();
  const { u, room, ticket } = await roomWithTicket(s);
  const sse = s.request({ ':method': 'GET', ':path': `/events/rooms/${room.id}?ticket=${ticket}`, accept: 'text/event-stream' });
  sse.setEncoding('utf8');
  let got = '';
  const seen = new Promise((resolve, reject) => {
    sse.on('data', (d) => { got += d; if (/event: operation\n/.test(got)) resolve(); });
    sse.on('error', reject);
    // unref: a pending timer would hold the file open for its 15 s after the test
    setTimeout(() => reject(new Error(`no operation event over SSE: ${JSON.stringify(got)}`)), 15000).unref();
  });
  await new Promise((resolve) => sse.on('response', resolve));
  const rev = await commitUntil(s, u, room, 'über', seen);
  assert.match(got, /"ops":\[(\d+,)?"über"(,\d+)?\]/);
  sse.close();
  // long-poll: the operation is waiting for a client that asks from the start
  const t2 = await h2request(s, 'POST', `/api/rooms/${room.id}/stream-ticket`, { token: u.token, body: {} });
  const poll = await h2request(s, 'GET', `/events/rooms/${room.id}/poll?ticket=${t2.json.ticket}&since=0`);
  assert.equal(poll.status, 200, poll.text);
  assert.ok(poll.json.events.some((e) => e.type === 'operation' && e.data.revision === rev), poll.text);
});

test('WebSocket over TLS (wss) delivers the room events', async () => {
  const s = await h2session();
  const { u, room, ticket } = await roomWithTicket(s);
  const ws = new WebSocket(`${TLS_URL.replace('https', 'wss')}/events/rooms/${room.id}/ws?ticket=${ticket}`, { ca: CA });
  const frames = [];
  const got = new Promise((resolve, reject) => {
    ws.on('message', (m) => {
      const e = JSON.parse(m.toString());
      frames.push(e);
      if (e.type === 'operation') resolve(e);
    });
    ws.on('error', reject);
    setTimeout(() => reject(new Error(`no operation over wss: ${JSON.stringify(frames)}`)), 15000).unref();
  });
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  await commitUntil(s, u, room, 'wss', got);
  const e = await got;
  assert.equal(e.data.ops.find((x) => typeof x === 'string'), 'wss');
  ws.close();
});
