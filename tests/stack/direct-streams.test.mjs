// Direct streams (docs/API.md, "Direct streams"): the stack of make run (STREAM_ORIGIN=auto)
// tells a client that came over plain HTTP where the broker takes its streams itself, and
// the streams opened there carry the room's events with the headers a page of another origin
// needs. The front door's /events/ keeps working (the other suites use it). A client that
// came over HTTPS is told nothing (a page served over TLS could not use a plain origin).
// Explicit origins and `off` are checked on the API binary itself (CGI runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import WebSocket from 'ws';

import { BASE, call, cgi, newUser, createRoom, rawHttp, sseBlocks } from '../lib/api.mjs';
import { waitFor } from '../lib/procs.mjs';
import { startFrontDoor } from '../lib/door.mjs';
import { assertSecurityHeaders } from '../lib/policy.mjs';
import { ROOT } from '../lib/browser.mjs';

const BROKER_PORT = process.env.BROKER_PORT;
const base = new URL(BASE);
const origin = `http://${base.hostname}:${BROKER_PORT}`;
// make run's default with lighttpd (scripts/run.sh); the Apache pass keeps streams on the front door
const ON_STACK = (process.env.WEB || 'lighttpd') === 'lighttpd' && Boolean(BROKER_PORT);

const ticketFor = async (token, room) => {
  const r = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token, body: {} });
  assert.equal(r.status, 200, r.text);
  return r.json;
};
const op = (token, room, revision, text) => call('POST', `/api/rooms/${room.id}/operations`,
  { token, body: { revision, ops: [text] } }).then((r) => assert.equal(r.status, 200, r.text));

// An SSE stream read with fetch, as a page of another origin would (the Origin header says so).
function sse(url, headers = {}) {
  const ctl = new AbortController();
  const s = { blocks: [], status: 0 };
  s.opened = fetch(url, { headers: { origin: BASE, ...headers }, signal: ctl.signal }).then((res) => {
    s.status = res.status;
    s.headers = res.headers;
    sseBlocks(res.body, (block) => s.blocks.push(block));
  });
  s.close = () => ctl.abort();
  return s;
}

test('GET /api/streams and the stream ticket name the broker\'s own origin', { skip: !ON_STACK && 'the stack was not started with STREAM_ORIGIN=auto' }, async () => {
  const r = await call('GET', '/api/streams');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { origin });
  // the host the client used is the one it is sent back to (the port is the broker's)
  const other = await rawHttp(`GET /api/streams HTTP/1.1\r\nHost: localhost:${base.port}\r\nConnection: close\r\n\r\n`);
  assert.equal(other.status, 200, other.head);
  assert.deepEqual(JSON.parse(other.body), { origin: `http://localhost:${BROKER_PORT}` });

  const u = await newUser('dso');
  const room = await createRoom(u.token);
  const t = await ticketFor(u.token, room);
  assert.equal(typeof t.ticket, 'string');
  assert.equal(t.stream_origin, origin);

  // the page's policy lets it connect there, and only there besides its own origin
  const page = await fetch(`${BASE}/`);
  const csp = page.headers.get('content-security-policy');
  assert.match(csp, new RegExp(`connect-src 'self' http://\\*:${BROKER_PORT} ws://\\*:${BROKER_PORT};`));
});

test('over HTTPS no origin is given (a page served over TLS cannot use a plain one)', { skip: !(ON_STACK && process.env.TLS_URL) && 'needs the stack\'s HTTPS listener' }, async () => {
  const CA = readFileSync(process.env.CC_TLS_CA);
  const s = http2.connect(process.env.TLS_URL, { ca: CA });
  try {
    const body = await new Promise((resolve, reject) => {
      const req = s.request({ ':path': '/api/streams' });
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (d) => { text += d; });
      req.on('end', () => resolve(text));
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(JSON.parse(body), { origin: null });
  } finally {
    s.close();
  }
});

test('SSE, long-poll and WebSocket at the direct origin carry the room\'s events, readable cross-origin', { skip: !ON_STACK && 'the stack was not started with STREAM_ORIGIN=auto' }, async () => {
  const u = await newUser('dss');
  const room = await createRoom(u.token);

  // SSE
  const t1 = await ticketFor(u.token, room);
  const s = sse(`${t1.stream_origin}/events/rooms/${room.id}?ticket=${encodeURIComponent(t1.ticket)}`);
  await s.opened;
  try {
    assert.equal(s.status, 200);
    assert.match(s.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(s.headers.get('access-control-allow-origin'), '*');
    assert.equal(s.headers.get('x-content-type-options'), 'nosniff');
    // a stream with no id carries events from its live moment on, which ": connected" marks
    await waitFor(() => s.blocks.some((b) => b.startsWith(': connected')), { timeout: 5000, what: 'the SSE stream live' });
    await op(u.token, room, 0, 'direct');
    await waitFor(() => s.blocks.some((b) => b.includes('event: operation') && b.includes('"direct"')),
      { timeout: 5000, what: 'the operation on the direct SSE stream' });
  } finally {
    s.close();
  }

  // long-poll: the event already there is answered at once
  const t2 = await ticketFor(u.token, room);
  const p = await fetch(`${t2.stream_origin}/events/rooms/${room.id}/poll?ticket=${encodeURIComponent(t2.ticket)}&since=0`,
    { headers: { origin: BASE } });
  assert.equal(p.status, 200);
  assert.equal(p.headers.get('access-control-allow-origin'), '*');
  const pj = await p.json();
  assert.ok(pj.events.some((e) => e.type === 'operation' && JSON.stringify(e.data).includes('direct')), JSON.stringify(pj));

  // WebSocket
  const t3 = await ticketFor(u.token, room);
  const ws = new WebSocket(`${t3.stream_origin.replace(/^http/, 'ws')}/events/rooms/${room.id}/ws?ticket=${encodeURIComponent(t3.ticket)}`,
    { origin: BASE });
  const frames = [];
  ws.on('message', (m) => frames.push(JSON.parse(String(m))));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  try {
    // live at its "subscribed" frame, not at the 101
    await waitFor(() => frames.some((f) => f.type === 'subscribed'), { timeout: 5000, what: 'the WebSocket live' });
    await op(u.token, room, 1, 'again');
    await waitFor(() => frames.some((f) => f.type === 'operation' && JSON.stringify(f.data).includes('again')),
      { timeout: 5000, what: 'the operation on the direct WebSocket' });
  } finally {
    ws.close();
  }
});

test('a refusal at the direct origin is readable cross-origin: a bad ticket is a 401 with CORS', { skip: !ON_STACK && 'the stack was not started with STREAM_ORIGIN=auto' }, async () => {
  const u = await newUser('dsr');
  const room = await createRoom(u.token);
  const r = await fetch(`${origin}/events/rooms/${room.id}?ticket=not-a-ticket`, { headers: { origin: BASE } });
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  const j = await r.json();
  assert.equal(typeof j.error, 'string');
});

// run.sh's run/csp.conf for an origin of one's own sets the policy for HTTP and for HTTPS,
// where lighttpd.conf sets it too: written with `=`, that second setting stopped lighttpd
// at start ("Duplicate config variable"), whether TLS was on or not.
test('a STREAM_ORIGIN of one\'s own through lighttpd: it starts, and its pages may connect there, over HTTP and HTTPS', { skip: (process.env.WEB || 'lighttpd') !== 'lighttpd' && 'lighttpd\'s configuration' }, async () => {
  const named = 'https://streams.example.com:8443';
  const door = await startFrontDoor({ env: { STREAM_ORIGIN: named }, csp: 'stream-origin' });
  try {
    const page = await fetch(`${door.base}/`);
    await page.arrayBuffer();
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy'),
      /connect-src 'self' https:\/\/streams\.example\.com:8443 wss:\/\/streams\.example\.com:8443;/);
    // and otherwise lighttpd.conf's headers, exactly
    assertSecurityHeaders(page.headers, 'GET / over HTTP', { connect: `${named} ${named.replace(/^http/, 'ws')}` });
    const api = await fetch(`${door.base}/api/streams`);
    assert.deepEqual(await api.json(), { origin: named });
    // over HTTPS (no listener here: what lighttpd made of its configuration) the same
    // policy, the same headers, and HSTS
    const parsed = execFileSync('lighttpd', ['-p', '-f', join(ROOT, 'lighttpd.conf')], { env: door.env }).toString();
    const https = parsed.split('$HTTP["scheme"] == "https" {').slice(1).map((b) => b.slice(0, b.indexOf('} # end of')));
    assert.equal(https.length, 1, parsed);
    assert.match(https[0], /"Content-Security-Policy"\s+=> "[^"]*connect-src 'self' https:\/\/streams\.example\.com:8443 wss:\/\/streams\.example\.com:8443;/);
    for (const h of ['"X-Content-Type-Options"\\s+=> "nosniff"', '"X-Frame-Options"\\s+=> "DENY"', '"Strict-Transport-Security"\\s+=> "max-age=']) {
      assert.match(https[0], new RegExp(h), https[0]);
    }
  } finally {
    await door.stop();
  }
});

test('STREAM_ORIGIN: an origin is answered as a browser writes it, off and an unknown host give none, a bad value stops the API', () => {
  const run = (env, extra = {}) => cgi({ uri: '/api/streams', env, ...extra });
  let r = run({ STREAM_ORIGIN: 'https://streams.example.com' }, { https: true });
  assert.equal(r.status, 200, r.body + r.stderr);
  assert.deepEqual(r.json, { origin: 'https://streams.example.com' });
  r = run({ STREAM_ORIGIN: 'HTTPS://Streams.Example.COM:443' }, { https: true });
  assert.deepEqual(r.json, { origin: 'https://streams.example.com' }, 'lower case, no default port');
  r = run({ STREAM_ORIGIN: 'off', HTTP_HOST: 'localhost:8080' });
  assert.deepEqual(r.json, { origin: null });
  r = run({ STREAM_ORIGIN: undefined, HTTP_HOST: 'localhost:8080' });
  assert.deepEqual(r.json, { origin: null }, 'the API alone gives none unless told');
  r = run({ STREAM_ORIGIN: 'auto', BROKER_PORT: '9001', HTTP_HOST: 'example.org:8080' });
  assert.deepEqual(r.json, { origin: 'http://example.org:9001' });
  // a Host header that is no host name is not echoed into a URL
  for (const host of ['evil.com/path', 'a b', '"><script>', 'x:99999', '']) {
    r = run({ STREAM_ORIGIN: 'auto', BROKER_PORT: '9001', HTTP_HOST: host });
    assert.deepEqual(r.json, { origin: null }, host);
  }
  for (const bad of ['streams.example.com', 'http://s.example.com/events', 'ftp://x', 'http://x:0', 'yes', 'http://a..b', 'http://x:080']) {
    r = run({ STREAM_ORIGIN: bad, HTTP_HOST: 'localhost' });
    assert.notEqual(r.status, 200, bad);
    assert.match(r.stderr + r.body, /STREAM_ORIGIN/, bad);
  }
});
