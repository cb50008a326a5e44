// The broker read by a page of another origin (docs/API.md, "Streams from another origin"):
// against a real redis-server, every answer on /events/* carries Access-Control-Allow-Origin
// and the security headers (stream heads, long-poll answers, the 101, errors up to the 503 of
// a full broker), a preflight is answered 204 with exactly the headers a browser needs, hostile
// preflights get a clean answer, a connection kept by preflights is bounded (100 requests, two
// head timeouts, the next request read once the answers before it are sent, and kept only
// while its address holds at most half of BROKER_MAX_HEADS_PER_ADDRESS), and
// BROKER_ALLOW_ORIGIN narrows the origin or, when it is not one, stops the broker at start with
// a message naming it.
// Run: node --test tests/programs/broker-cors.test.mjs (after make build-asan).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

import { startBroker, stop, start, waitFor, freePort, sleep, rssKiB, BROKER_BIN } from '../lib/procs.mjs';
import { ticket, session } from '../lib/tokens.mjs';
import { startBrokerOnRedis, stopBrokerOnRedis } from '../lib/broker-redis.mjs';

const SECRET = randomBytes(24).toString('hex');
let redis, broker, rc;
let roomSeq = 0;

async function newRoom() {
  const room = `c${process.pid}x${++roomSeq}`;
  await rc.cmd('SET', `cc:room:{${room}}:visibility`, 'public');
  return room;
}
const tk = (room) => ticket(SECRET, { room, user: 7, name: 'cross' });

before(async () => {
  ({ redis, rc, broker } = await startBrokerOnRedis({ secret: SECRET, env: { BROKER_POLL_TIMEOUT_MS: '300' } }));
});

after(() => stopBrokerOnRedis({ redis, rc, broker }));

// One connection, the request written as is; resolves with everything read once the broker
// closes it, or once until() holds for what was read so far (then the socket is dropped).
function raw(port, request, until = null) {
  return new Promise((resolve, reject) => {
    const s = createConnection(port, '127.0.0.1', () => s.write(request));
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (d) => {
      text += d;
      if (until && until(text)) { s.destroy(); resolve(text); }
    });
    s.on('error', reject);
    s.on('close', () => resolve(text));
  });
}

// "HTTP/1.1 204 No Content\r\nA: b\r\n..." -> { status, lines (as sent), headers (lower-case
// names), body }
function parse(text) {
  const cut = text.indexOf('\r\n\r\n');
  assert.ok(cut > 0, `no complete head in ${JSON.stringify(text.slice(0, 300))}`);
  const [first, ...lines] = text.slice(0, cut).split('\r\n');
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(first.split(' ')[1]), first, lines, headers, body: text.slice(cut + 4) };
}

function assertCors(h, origin = '*', what = '') {
  assert.equal(h['access-control-allow-origin'], origin, `${what}: ${JSON.stringify(h)}`);
  // what a page of the allowed origin may read past the CORS-safelisted headers
  assert.equal(h['access-control-expose-headers'], 'WWW-Authenticate, Retry-After', what);
  assert.equal(h['x-content-type-options'], 'nosniff', what);
  assert.equal(h['referrer-policy'], 'no-referrer', what);
}

const ORIGIN = 'Origin: http://page.example:8080\r\n';

test('streams, long-poll answers, the 101 and error answers carry the CORS and security headers', async () => {
  const room = await newRoom();
  // the SSE head, as a page's EventSource gets it
  let r = parse(await raw(broker.port, `GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: b\r\n${ORIGIN}\r\n`,
    (t) => t.includes(': connected')));
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
  assertCors(r.headers, '*', 'SSE');

  // the same seen by fetch (what the browser's CORS check reads)
  let res = await fetch(`${broker.base}/events/rooms/${room}/poll?ticket=${tk(room)}`, { headers: { Origin: 'http://page.example' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.deepEqual((await res.json()).events, []);
  // a long-poll answered with events (the history from the start holds one)
  await rc.emit(room, 'operation', { revision: 1, ops: ['a'] });
  res = await fetch(`${broker.base}/events/rooms/${room}/poll?ticket=${tk(room)}&since=0-0`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.ok((await res.json()).events.some((e) => e.type === 'operation'));

  // errors: bad ticket, unknown path, unknown room, method, malformed head, oversized head
  for (const [path, status, code] of [
    [`/events/rooms/${room}?ticket=not-a-token`, 401, 'invalid_token'],
    [`/events/rooms/${room}`, 401, 'unauthorized'],
    ['/events/nowhere', 404, 'not_found'],
    ['/elsewhere', 404, 'not_found'],
    [`/events/rooms/${room}/poll?ticket=${tk(room)}&since=abc`, 400, 'invalid_request'],
    [`/events/rooms/${room}?ticket=${tk('another')}`, 403, 'forbidden'],
  ]) {
    res = await fetch(`${broker.base}${path}`);
    assert.equal(res.status, status, path);
    assert.equal((await res.json()).error, code, path);
    assertCors(Object.fromEntries(res.headers), '*', path);
    // a 401's challenge is a header the page may read (Access-Control-Expose-Headers)
    if (status === 401) {
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="codecollab"', path);
      const exposed = res.headers.get('access-control-expose-headers').toLowerCase().split(/\s*,\s*/);
      assert.ok(exposed.includes('www-authenticate'), path);
    }
  }
  const gone = `c${process.pid}gone`;
  res = await fetch(`${broker.base}/events/rooms/${gone}?ticket=${tk(gone)}`);
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error, 'room_not_found');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  r = parse(await raw(broker.port, `DELETE /events/rooms/${room} HTTP/1.1\r\nHost: b\r\n\r\n`));
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, 'GET, OPTIONS');
  assertCors(r.headers, '*', '405');
  r = parse(await raw(broker.port, `GET /events/health HTTP/1.1\r\nX: ${'a'.repeat(9000)}\r\n\r\n`));
  assert.equal(r.status, 431);
  assertCors(r.headers, '*', '431');
  r = parse(await raw(broker.port, `GET /events/health?x=${'a'.repeat(9000)} HTTP/1.1\r\nHost: b\r\n\r\n`));
  assert.equal(r.status, 414);
  assertCors(r.headers, '*', '414');
  r = parse(await raw(broker.port, 'GET /events/health HTTP/1.1\r\nBad Header\r\n\r\n'));
  assert.equal(r.status, 400);
  assertCors(r.headers, '*', '400');
  res = await fetch(`${broker.base}/events/health`);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');

  // the WebSocket's 101
  const ws = new WebSocket(`ws://127.0.0.1:${broker.port}/events/rooms/${room}/ws?ticket=${tk(room)}`, { origin: 'http://page.example' });
  const up = await new Promise((resolve, reject) => { ws.once('upgrade', resolve); ws.once('error', reject); });
  assert.equal(up.statusCode, 101);
  assertCors(up.headers, '*', '101');
  ws.terminate();

  // a stream of several rooms
  const auth = `Bearer ${session(SECRET, { user: 7, name: 'cross' })}`;
  r = parse(await raw(broker.port, `GET /events/multi?rooms=${room} HTTP/1.1\r\nHost: b\r\nAuthorization: ${auth}\r\n${ORIGIN}\r\n`,
    (t) => t.includes(': connected')));
  assert.equal(r.status, 200);
  assertCors(r.headers, '*', 'multi');
  res = await fetch(`${broker.base}/events/multi?rooms=${room}`, { headers: { Authorization: `Bearer ${tk(room)}` } });
  assert.equal(res.status, 401);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
});

const PREFLIGHT = (path, extra = '') => `OPTIONS ${path} HTTP/1.1\r\nHost: b\r\n${ORIGIN}` +
  'Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization, last-event-id\r\n' + extra + '\r\n';

test('a preflight is answered 204 with exactly the CORS headers, no body, and the connection can go on', async () => {
  const room = await newRoom();
  for (const path of [`/events/multi?rooms=${room}`, `/events/rooms/${room}`, `/events/rooms/${room}/poll`, `/events/rooms/${room}/ws`]) {
    const text = await raw(broker.port, PREFLIGHT(path, 'Connection: close\r\n'));
    const r = parse(text);
    assert.equal(r.first, 'HTTP/1.1 204 No Content', path);
    assert.deepEqual(r.lines.sort(), [
      'Access-Control-Allow-Headers: authorization, last-event-id',
      'Access-Control-Allow-Methods: GET',
      'Access-Control-Allow-Origin: *',
      'Access-Control-Expose-Headers: WWW-Authenticate, Retry-After',
      'Access-Control-Max-Age: 600',
      'Connection: close',
      'Referrer-Policy: no-referrer',
      'X-Content-Type-Options: nosniff',
    ], path);
    // no body: the answer ends with its head, and the connection with the answer
    assert.equal(r.body, '', path);
  }

  // fetch's view of it
  const res = await fetch(`${broker.base}/events/rooms/${room}`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://page.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-methods'), 'GET');
  assert.equal(res.headers.get('access-control-allow-headers'), 'authorization, last-event-id');
  assert.equal(res.headers.get('access-control-max-age'), '600');
  assert.equal(await res.text(), '');

  // HTTP/1.1 keeps the connection: the request behind the preflight is answered on it
  // (here sent at once, pipelined), and no other answer comes before it
  const text = await raw(broker.port, PREFLIGHT(`/events/rooms/${room}`) +
    `GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: b\r\n\r\n`, (t) => t.includes(': connected'));
  const cut = text.indexOf('\r\n\r\n') + 4;
  const first = parse(text.slice(0, cut));
  assert.equal(first.status, 204);
  assert.equal(first.headers.connection, undefined);
  const second = parse(text.slice(cut));
  assert.equal(second.status, 200);
  assert.equal(second.headers['content-type'], 'text/event-stream; charset=utf-8');
  assertCors(second.headers);

  // HTTP/1.0, or a preflight with a body, closes after the answer
  for (const req of [
    `OPTIONS /events/rooms/${room} HTTP/1.0\r\n\r\n`,
    `OPTIONS /events/rooms/${room} HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello`,
  ]) {
    const r = parse(await raw(broker.port, req));
    assert.equal(r.status, 204, req);
    assert.equal(r.headers.connection, 'close', req);
    assert.equal(r.body, '', req);
  }
});

test('OPTIONS outside /events/ is not a preflight: 404 with the CORS headers, nothing allowed', async () => {
  for (const path of ['/', '/api/rooms', '/events', '/eventsx/rooms/a']) {
    const r = parse(await raw(broker.port, `OPTIONS ${path} HTTP/1.1\r\nHost: b\r\n${ORIGIN}Access-Control-Request-Method: GET\r\n\r\n`));
    assert.equal(r.status, 404, path);
    assert.equal(JSON.parse(r.body).error, 'not_found', path);
    assertCors(r.headers, '*', path);
    assert.equal(r.headers['access-control-allow-methods'], undefined, path);
  }
  // the asterisk form (RFC 9110 §9.3.7) is not taken either, and the answer says so
  const r = parse(await raw(broker.port, 'OPTIONS * HTTP/1.1\r\nHost: b\r\n\r\n'));
  assert.equal(r.status, 400);
  assert.match(JSON.parse(r.body).message, /asterisk/);
  assertCors(r.headers);
});

test('hostile preflights get a clean answer and the broker goes on', async () => {
  const room = await newRoom();
  // a request-headers list past the head's bound, in one field and in many
  let r = parse(await raw(broker.port, PREFLIGHT(`/events/rooms/${room}`,
    `Access-Control-Request-Headers: ${'x-a,'.repeat(50000)}x\r\n`)));
  assert.equal(r.status, 431);
  assert.equal(JSON.parse(r.body).error, 'header_too_large');
  assertCors(r.headers);
  const many = Array.from({ length: 100 }, (_, i) => `Access-Control-Request-Headers: h${i}\r\n`).join('');
  r = parse(await raw(broker.port, PREFLIGHT(`/events/rooms/${room}`, many)));
  assert.equal(r.status, 431);
  assertCors(r.headers);
  // no Host over HTTP/1.1 (RFC 9112 §3.2), a Host that is no host, odd values, control bytes
  r = parse(await raw(broker.port, `OPTIONS /events/rooms/${room} HTTP/1.1\r\nConnection: close\r\n\r\n`));
  assert.equal(r.status, 400);
  assert.match(JSON.parse(r.body).message, /Host/);
  assertCors(r.headers);
  r = parse(await raw(broker.port, `OPTIONS /events/rooms/${room} HTTP/1.1\r\nHost: a/b\r\n${ORIGIN}\r\n`));
  assert.equal(r.status, 400);
  assert.match(JSON.parse(r.body).message, /Host/);
  assertCors(r.headers);
  r = parse(await raw(broker.port, `OPTIONS /events/rooms/${room} HTTP/1.1\r\nHost: b\r\nAccess-Control-Request-Method: DELETE\r\n` +
    'Origin: null\r\nConnection: close\r\n\r\n'));
  assert.equal(r.status, 204);
  assert.equal(r.headers['access-control-allow-methods'], 'GET');
  r = parse(await raw(broker.port, `OPTIONS /events/rooms/${room} HTTP/1.1\r\nOrigin: a\x01b\r\n\r\n`));
  assert.equal(r.status, 400);
  assertCors(r.headers);
  // a head split byte by byte still makes one preflight
  const s = createConnection(broker.port, '127.0.0.1');
  await new Promise((resolve) => s.once('connect', resolve));
  let got = '';
  s.setEncoding('latin1');
  s.on('data', (d) => { got += d; });
  const closed = new Promise((resolve) => s.on('close', resolve));
  for (const ch of PREFLIGHT(`/events/rooms/${room}`, 'Connection: close\r\n')) {
    s.write(ch);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await closed;
  assert.equal(parse(got).status, 204);
  // a thousand pipelined preflights: answered in order while the client reads, up to the
  // hundredth, which closes the connection (SERVER_KEEPALIVE_MAX); the rest are not answered
  const text = await raw(broker.port, PREFLIGHT(`/events/rooms/${room}`).repeat(1000));
  const answers = text.split('HTTP/1.1 204 No Content\r\n').slice(1);
  assert.equal(answers.length, KEEPALIVE_MAX);
  assert.ok(answers.slice(0, -1).every((a) => !a.includes('Connection:')));
  assert.ok(text.endsWith('Connection: close\r\n\r\n'));
  const h = await (await fetch(`${broker.base}/events/health`)).json();
  assert.equal(h.status, 'ok');
});

// A preflight may keep its connection, and then the next request starts where the preflight's
// body ends. A head whose body could be read two ways (two lengths, a chunked body, a length
// that is no number), or that names two hosts, is refused before anything acts on it, so
// bytes a proxy in front took for a body never become a request here (RFC 9112 §6.3, §11.2).
test('a head whose end could be read two ways is refused with 400 and the connection closed; "close" in any Connection line is heard', async () => {
  const room = await newRoom();
  const next = 'GET /events/health HTTP/1.1\r\nHost: b\r\n\r\n';
  for (const [what, fields, body, why] of [
    ['two lengths, the second covering a request', `Content-Length: 0\r\nContent-Length: ${next.length}\r\n`, next, /Content-Length/],
    ['a chunked body', 'Transfer-Encoding: chunked\r\n', `0\r\n\r\n${next}`, /Transfer-Encoding/],
    ['a length that is no number', 'Content-Length: 0, 0\r\n', next, /Content-Length/],
    ['two hosts', 'Host: c\r\n', next, /Host/],
  ]) {
    for (const method of ['OPTIONS', 'GET']) {
      const text = await raw(broker.port, `${method} /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: b\r\n${fields}\r\n${body}`);
      const r = parse(text);
      assert.equal(r.status, 400, `${method}, ${what}: ${text.slice(0, 300)}`);
      assert.equal(r.headers.connection, 'close', `${method}, ${what}`);
      const b = JSON.parse(r.body);
      assert.equal(b.error, 'invalid_request', `${method}, ${what}`);
      assert.match(b.message, why, `${method}, ${what}`);
      assertCors(r.headers, '*', `${method}, ${what}`);
      assert.equal(text.split('HTTP/1.1 ').length - 1, 1, `${method}, ${what}: one answer, nothing read as a request behind it`);
    }
  }
  // one length of 0 keeps the connection as before
  let text = await raw(broker.port, `OPTIONS /events/rooms/${room} HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n${next}`,
    (t) => t.includes('"status"'));
  assert.equal(parse(text).status, 204);
  assert.match(text.slice(text.indexOf('\r\n\r\n') + 4), /^HTTP\/1\.1 200 /);
  // an HTTP/1.1 preflight without Host is refused and closes: the request behind it is not read
  text = await raw(broker.port, `OPTIONS /events/rooms/${room} HTTP/1.1\r\nContent-Length: 0\r\n\r\n${next}`);
  const refused = parse(text);
  assert.equal(refused.status, 400);
  assert.equal(refused.headers.connection, 'close');
  assert.match(JSON.parse(refused.body).message, /Host/, 'one answer, nothing read behind it');

  // "close" in a second Connection line closes after the preflight: the request behind it
  // is not answered
  text = await raw(broker.port, PREFLIGHT(`/events/rooms/${room}`, 'Connection: keep-alive\r\nConnection: close\r\n') + next);
  const r = parse(text);
  assert.equal(r.status, 204);
  assert.equal(r.headers.connection, 'close');
  assert.equal(r.body, '', 'nothing after the preflight\'s answer');
});

// ---- keep-alive after a preflight: what one connection can make the broker do ----

const KEEPALIVE_MAX = 100; // SERVER_KEEPALIVE_MAX, sse-broker/server.c
const peakKiB = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const answersIn = (text) => text.split('HTTP/1.1 204 No Content\r\n').length - 1;

// A connection whose client writes `request` and then reads nothing until told to.
function mute(port, request) {
  const s = createConnection(port, '127.0.0.1');
  s.pause();
  s.on('error', () => {});
  s.written = new Promise((resolve) => s.once('connect', () => s.write(request, () => resolve())));
  s.readAll = () => new Promise((resolve) => {
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (d) => { text += d; });
    s.once('close', () => resolve(text));
    s.resume();
  });
  return s;
}

test('preflights pipelined by clients that never read: at most the bound answered per connection, and the broker does not grow', async () => {
  const own = await startBroker({ redisPort: redis.port, secret: SECRET });
  const C = 20;
  const PER = 30000; // 1.1 MB of requests each; their answers were 7.5 MB
  const socks = [];
  try {
    const before = rssKiB(own.pid);
    for (let i = 0; i < C; i++) socks.push(mute(own.port, 'OPTIONS /events/ HTTP/1.1\r\nHost: b\r\n\r\n'.repeat(PER)));
    await Promise.all(socks.map((s) => s.written));
    await sleep(1000); // time for the broker to read and answer what it will
    // what each client gets once it reads: the bound's worth of answers, the last one closing
    let timer;
    const texts = await Promise.race([
      Promise.all(socks.map((s) => s.readAll())),
      new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error('connections still open 20 s after the flood')), 20000);
      }),
    ]).finally(() => clearTimeout(timer));
    // the peak over the whole flood, read once every connection has been served: the answers
    // were kept for the client up to BROKER_CLIENT_BUFFER (4 MiB) per connection, C x 4 MiB at
    // most, 80 MiB here; now at most a hundred answers, which the socket takes
    const grown = peakKiB(own.pid) - before;
    assert.ok(grown < C * 1024 / 2, `the broker's resident size rose by ${grown} KiB at its peak`);
    for (const text of texts) {
      assert.equal(answersIn(text), KEEPALIVE_MAX);
      assert.ok(text.endsWith('Connection: close\r\n\r\n'), text.slice(-300));
    }
    assert.equal((await (await fetch(`${own.base}/events/health`)).json()).status, 'ok');
  } finally {
    for (const s of socks) s.destroy();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

// One connection; send(i) writes the i-th request once the answer before it was read, `gap`
// ms later. Resolves with the answers read and whether the broker closed the connection,
// after `most` requests or at the close.
function oneByOne(port, { most, gap, request }) {
  return new Promise((resolve, reject) => {
    const s = createConnection(port, '127.0.0.1');
    let text = '', sent = 0, closed = false;
    s.setEncoding('latin1');
    const next = () => {
      if (closed) return;
      if (sent === most) { s.destroy(); return; }
      sent++;
      s.write(request);
    };
    s.on('connect', next);
    s.on('data', (d) => {
      text += d;
      if (answersIn(text) === sent && text.endsWith('\r\n\r\n') && !text.endsWith('Connection: close\r\n\r\n')) {
        setTimeout(next, gap);
      }
    });
    s.on('end', () => { closed = true; });
    s.on('error', reject);
    s.on('close', () => resolve({ text, sent, closed }));
  });
}

test('a connection is kept for at most the bound of requests: the last preflight says Connection: close, and the broker closes it', async () => {
  // a head timeout long enough that only the count ends the connection
  const own = await startBroker({ redisPort: redis.port, secret: SECRET, env: { BROKER_HEAD_TIMEOUT_MS: '120000' } });
  try {
    const room = await newRoom();
    const { text, sent, closed } = await oneByOne(own.port, { most: KEEPALIVE_MAX + 20, gap: 10, request: PREFLIGHT(`/events/rooms/${room}`) });
    assert.ok(closed, 'the broker closed the connection');
    assert.equal(sent, KEEPALIVE_MAX);
    const answers = text.split('HTTP/1.1 204 No Content\r\n').slice(1);
    assert.equal(answers.length, KEEPALIVE_MAX);
    assert.ok(answers.slice(0, -1).every((a) => !a.includes('Connection:')));
    assert.ok(text.endsWith('Connection: close\r\n\r\n'));

    // as a browser does it: a preflight, its answer read, then the GET on the same connection
    const b = createConnection(own.port, '127.0.0.1');
    let got = '';
    b.setEncoding('latin1');
    b.on('data', (d) => { got += d; });
    b.on('error', () => {});
    await new Promise((resolve) => b.once('connect', resolve));
    b.write(PREFLIGHT(`/events/rooms/${room}`));
    await waitFor(() => answersIn(got) === 1 && got.endsWith('\r\n\r\n'), { what: 'the preflight answer' });
    await sleep(200);
    b.write(`GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: b\r\n${ORIGIN}\r\n`);
    await waitFor(() => got.includes(': connected'), { what: 'the stream behind the preflight' });
    assert.match(got, /\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    b.destroy();

    // below the bound, the request behind the preflights still opens its stream
    const s = await raw(own.port, PREFLIGHT(`/events/rooms/${room}`).repeat(KEEPALIVE_MAX - 1) +
      `GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: b\r\n\r\n`, (t) => t.includes(': connected'));
    assert.equal(answersIn(s), KEEPALIVE_MAX - 1);
    assert.match(s, /\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  } finally {
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

test('preflights every few hundred ms do not hold a connection past twice the head timeout: one after the first timeout says Connection: close', async () => {
  const T = 1000;
  const own = await startBroker({ redisPort: redis.port, secret: SECRET, env: { BROKER_HEAD_TIMEOUT_MS: String(T) } });
  try {
    const room = await newRoom();
    const t0 = Date.now();
    // each preflight within the head timeout of the one before: that renewed it forever
    const { text, sent, closed } = await oneByOne(own.port, { most: 30, gap: 300, request: PREFLIGHT(`/events/rooms/${room}`) });
    const ms = Date.now() - t0;
    assert.ok(closed, `the broker kept the connection for ${sent} preflights over ${ms} ms`);
    assert.ok(ms < 2 * T + 1000, `closed after ${ms} ms`);
    assert.ok(sent >= 2 && sent <= 6, `${sent} preflights`);
    assert.equal(answersIn(text), sent);
    assert.ok(text.endsWith('Connection: close\r\n\r\n'));
  } finally {
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

// BROKER_MAX_HEADS_PER_ADDRESS (docs/OPERATIONS.md, "Per address, before the request"): a
// connection a preflight keeps goes on holding its address's place while it waits for the
// next request, so a preflight keeps it only while the address holds at most half the bound
// (itself included). Browsers behind one NAT that leave their preflights' connections idle
// then hold at most half the places, and the next heads from the address are still taken;
// the ones past half are told Connection: close and give their places back at once. Here
// 127.0.0.9 is a client of its own (no trusted proxy) with a bound of 4: two kept, the rest
// closed.
test('BROKER_MAX_HEADS_PER_ADDRESS=4: preflights keep their connections for at most half an address\'s places, and its next heads are still taken', async () => {
  const own = await startBroker({ redisPort: redis.port, secret: SECRET,
    env: { BROKER_MAX_HEADS_PER_ADDRESS: '4', BROKER_TRUSTED_PROXIES: 'none', BROKER_HEAD_TIMEOUT_MS: '30000' } });
  const from = '127.0.0.9';
  const socks = [];
  // a connection from `from` that sends `request`; .text is all it read, .gone whether the
  // broker closed it
  const open = (request) => new Promise((resolve, reject) => {
    const s = createConnection({ port: own.port, host: '127.0.0.1', localAddress: from }, () => {
      s.write(request);
      resolve(s);
    });
    s.text = '';
    s.gone = false;
    s.setEncoding('latin1');
    s.on('data', (d) => { s.text += d; });
    s.on('close', () => { s.gone = true; });
    s.on('error', reject);
    socks.push(s);
  });
  try {
    const room = await newRoom();
    // one browser after the other: a preflight, its answer read, the connection left idle
    const pre = [];
    for (let i = 0; i < 4; i++) {
      const s = await open(PREFLIGHT(`/events/rooms/${room}`));
      await waitFor(() => s.text.endsWith('\r\n\r\n'), { what: `preflight ${i + 1} answered` });
      pre.push(s);
    }
    for (const s of pre) assert.equal(parse(s.text).status, 204);
    // the first two are kept; the broker closes the others after their answer
    assert.deepEqual(pre.map((s) => parse(s.text).headers.connection ?? 'kept'), ['kept', 'kept', 'close', 'close']);
    await waitFor(() => pre[2].gone && pre[3].gone, { what: 'the connections past half the bound closed' });
    await sleep(300);
    assert.ok(!pre[0].gone && !pre[1].gone, 'the kept connections wait for their request');
    // the address holds two places (the kept connections): its next heads are taken, up to
    // the bound, and one more is refused as before
    const health = await open('GET /events/health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n');
    await waitFor(() => health.gone, { what: 'the health answer' });
    assert.equal(parse(health.text).status, 200, health.text.slice(0, 200));
    const partial = [await open('GET /events/health HTTP/1.1\r\n'), await open('GET /events/health HTTP/1.1\r\n')];
    await sleep(300);
    assert.ok(partial.every((s) => !s.gone && s.text === ''), 'two heads under way beside the kept connections');
    const refused = await open('GET /events/health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n');
    await waitFor(() => refused.gone, { what: 'the refusal' });
    const r = parse(refused.text);
    assert.equal(r.status, 503);
    assert.equal(JSON.parse(r.body).error, 'too_many_clients');
    // a kept connection still carries the request behind its preflight: the stream opens
    pre[0].write(`GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: b\r\n${ORIGIN}\r\n`);
    await waitFor(() => pre[0].text.includes(': connected'), { what: 'the stream behind the kept preflight' });
    assert.match(pre[0].text, /\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  } finally {
    for (const s of socks) s.destroy();
    const r = await stop(own);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${own.output}`);
  }
});

test('BROKER_ALLOW_ORIGIN narrows every answer to one origin; a value that is not one stops the broker', async () => {
  const one = await startBroker({
    redisPort: redis.port, secret: SECRET,
    env: { BROKER_ALLOW_ORIGIN: 'https://A.example:443', BROKER_MAX_STREAMS: '1' },
  });
  try {
    const room = await newRoom();
    // a 401's challenge, which that origin's page may read (before a stream fills the broker)
    const un = await fetch(`${one.base}/events/rooms/${room}`);
    assert.equal(un.status, 401);
    assert.equal(un.headers.get('www-authenticate'), 'Bearer realm="codecollab"');
    assertCors(Object.fromEntries(un.headers), 'https://a.example', '401');
    const held = parse(await raw(one.port, `GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: b\r\n\r\n`,
      (t) => t.includes(': connected')));
    // written the way a browser sends its Origin
    assertCors(held.headers, 'https://a.example', 'SSE');
    // the broker is full now (raw() dropped the socket: wait until it holds a stream again)
    const s = createConnection(one.port, '127.0.0.1', () => s.write(`GET /events/rooms/${room}?ticket=${tk(room)} HTTP/1.1\r\nHost: b\r\n\r\n`));
    s.on('error', () => {});
    await waitFor(async () => (await (await fetch(`${one.base}/events/health`)).json()).clients === 1, { what: 'one stream held' });
    const full = await fetch(`${one.base}/events/rooms/${room}?ticket=${tk(room)}`);
    assert.equal(full.status, 503);
    assert.equal((await full.json()).error, 'too_many_clients');
    assert.equal(full.headers.get('access-control-allow-origin'), 'https://a.example');
    assert.equal(full.headers.get('retry-after'), '1');
    // which that origin's page may read
    assertCors(Object.fromEntries(full.headers), 'https://a.example', '503');
    s.destroy();
    const pre = parse(await raw(one.port, PREFLIGHT(`/events/rooms/${room}`, 'Connection: close\r\n')));
    assert.equal(pre.status, 204);
    assertCors(pre.headers, 'https://a.example', 'preflight');
    const nf = await fetch(`${one.base}/events/nowhere`);
    assert.equal(nf.headers.get('access-control-allow-origin'), 'https://a.example');
  } finally {
    const r = await stop(one);
    assert.equal(r.code, 0, one.output);
  }

  for (const bad of ['https://a.example/', 'a.example', 'https://a.example, https://b.example', 'ftp://a.example', 'https://a.example:0']) {
    const child = start(BROKER_BIN, [], {
      env: {
        ...process.env, BROKER_HOST: '127.0.0.1', BROKER_PORT: String(await freePort()), REDIS_URL: `redis://127.0.0.1:${redis.port}`,
        JWT_SECRET: SECRET, BROKER_ALLOW_ORIGIN: bad,
      },
    });
    // a broker that took the value would listen: it is stopped instead of hanging the test
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    const { code } = await child.exited;
    clearTimeout(timer);
    assert.equal(code, 2, `${bad}: ${child.output}`);
    assert.match(child.output, /BROKER_ALLOW_ORIGIN/, bad);
    assert.match(child.output, /one origin/, bad);
    assert.doesNotMatch(child.output, /listening/, bad);
  }
});
