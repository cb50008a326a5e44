// bench-opsgen (bench/c/opsgen.c), the load generator of bench/ops.mjs, against HTTP servers
// written here on loopback: a correct one (the requests it sends, the revisions it carries
// from one commit to the next, keep-alive and reconnects, chunked answers, the open loop's
// rate) and hostile ones, each of which must only fail requests, reported in its JSON line:
// never a crash, a hang or a sanitizer report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, start } from '../lib/procs.mjs';

const BIN = process.env.CC_OPSGEN_BIN || join(ROOT, 'build/asan/bin/bench-opsgen');
const TOKEN = 'tok.en-1';

// A loopback server: calls answer(req, sock, srv) for every whole request it reads
// (method, path, headers, body); srv.requests lists them, each with the connection's number.
async function server(answer) {
  const srv = { requests: [], connections: 0, sockets: new Set() };
  const s = createServer((sock) => {
    const conn = srv.connections++;
    srv.sockets.add(sock);
    sock.on('close', () => srv.sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.toString('latin1', 0, end).split('\r\n');
        const [method, path, version] = lines[0].split(' ');
        const headers = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
        }
        const len = Number(headers['content-length'] || 0);
        if (buf.length < end + 4 + len) return;
        const body = buf.toString('utf8', end + 4, end + 4 + len);
        buf = buf.subarray(end + 4 + len);
        const req = { method, path, version, headers, body, conn, n: srv.requests.length };
        srv.requests.push(req);
        answer(req, sock, srv);
      }
    });
  });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  srv.port = s.address().port;
  srv.close = () => {
    for (const sock of srv.sockets) sock.destroy();
    return new Promise((r) => s.close(r));
  };
  return srv;
}

// Runs the generator to its end: {code, json, stderr}.
async function gen(port, args) {
  const child = start(BIN, ['--port', String(port), '--token', TOKEN, ...args]);
  let out = '', err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const { code, signal } = await child.exited;
  const lines = out.trim().split('\n');
  let json = null;
  try { json = JSON.parse(lines.at(-1)); } catch { /* asserted below */ }
  assert.equal(signal, null, `killed by ${signal}: ${err}`);
  assert.equal(code, 0, `exit ${code}: ${err}`);
  assert.equal(lines.length, 1, `one line of output: ${out}`);
  assert.ok(json, `JSON: ${out}`);
  // no sanitizer report, no warning (scripts/test.sh sends sanitizer reports to files, and
  // checks them after the group)
  assert.equal(err, '', 'nothing on stderr');
  return json;
}

const ok200 = (rev) => {
  const body = `{"revision":${rev},"ops":["x"]}`;
  return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
};

test('a correct server: the requests, revisions carried per room, keep-alive, reconnects, chunked answers', async () => {
  const revs = new Map();
  const srv = await server((req, sock) => {
    const room = /^\/api\/rooms\/([^/]+)\/operations$/.exec(req.path)[1];
    const rev = (revs.get(room) || 0) + 1;
    revs.set(room, rev);
    req.room = room;
    req.answered = rev;
    const body = `{"revision":${rev},"ops":["x"]}`;
    const perConn = srv.requests.filter((r) => r.conn === req.conn).length;
    // every 5th answer on a connection ends it, as lighttpd's keep-alive limit does
    const close = perConn === 5 ? 'Connection: close\r\n' : '';
    let pieces;
    if (req.n % 3 === 1) {
      // chunked, in pieces written apart, with a chunk extension and a trailer
      pieces = [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n${close}\r\n`,
        `5;ext=1\r\n${body.slice(0, 5)}\r\n${(body.length - 5).toString(16)}\r\n${body.slice(5)}`,
        '\r\n0\r\nX-Trailer: t\r\n\r\n'];
    } else {
      pieces = [`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${close}\r\n${body}`];
    }
    const next = () => {
      sock.write(pieces.shift());
      if (pieces.length) setImmediate(next);
      else if (close) sock.end();
    };
    next();
  });
  try {
    const j = await gen(srv.port, ['--rooms', 'roomA,roomB', '--writers', '1', '--seconds', '0.5']);
    assert.equal(j.failed, 0, j.first_failure);
    assert.ok(j.ok >= 20, `some requests: ${j.ok}`);
    assert.equal(j.ok, srv.requests.length, 'every request the server saw is counted ok');
    assert.equal(j.writers, 1);
    assert.equal(j.rooms, 2);
    const known = new Map();
    srv.requests.forEach((r, i) => {
      assert.equal(r.method, 'POST');
      assert.equal(r.version, 'HTTP/1.1');
      // rooms[(w + ok + failed) % rooms]: one writer alternates
      assert.equal(r.room, i % 2 ? 'roomB' : 'roomA');
      assert.equal(r.headers.host, `127.0.0.1:${srv.port}`);
      assert.equal(r.headers.authorization, `Bearer ${TOKEN}`);
      assert.equal(r.headers['content-type'], 'application/json');
      // the newest revision answered for that room, 0 at first
      assert.deepEqual(JSON.parse(r.body), { revision: known.get(r.room) || 0, ops: ['x'] });
      known.set(r.room, r.answered);
    });
    // kept alive: 5 requests a connection, then a new one (opened at once, before the next)
    const conns = [...new Set(srv.requests.map((r) => r.conn))];
    for (const c of conns.slice(0, -1)) assert.equal(srv.requests.filter((r) => r.conn === c).length, 5);
    const closes = Math.floor(srv.requests.length / 5);
    assert.ok(j.reconnects === closes || j.reconnects === closes - 1, `${j.reconnects} reconnects for ${closes} closes`);
    assert.ok(j.latency_ms.p50 > 0 && j.latency_ms.max >= j.latency_ms.p99, JSON.stringify(j.latency_ms));
    assert.ok(j.cpu_us > 0 && j.cpu_us_per_request > 0);
  } finally {
    await srv.close();
  }
});

test('many writers in one room: each sends a revision it was answered, never one ahead', async () => {
  let rev = 0;
  const srv = await server((req, sock) => { req.answered = ++rev; sock.write(ok200(rev)); });
  try {
    const j = await gen(srv.port, ['--rooms', 'r1', '--writers', '8', '--seconds', '0.3']);
    assert.equal(j.failed, 0, j.first_failure);
    assert.equal(j.ok, srv.requests.length);
    const answered = new Set([0, ...srv.requests.map((r) => r.answered)]);
    const lastOn = new Map(); // connection: the revision its last answer carried
    for (const r of srv.requests) {
      const sent = JSON.parse(r.body).revision;
      assert.ok(answered.has(sent) && sent < r.answered, `request ${r.n} sent revision ${sent}`);
      // a writer has read its own last answer before it sends again: at least that revision
      assert.ok(sent >= (lastOn.get(r.conn) || 0), `request ${r.n} sent ${sent}, behind its own last answer`);
      lastOn.set(r.conn, r.answered);
    }
    // 8 connections opened before the clock started (and the address probe), no more
    assert.equal(new Set(srv.requests.map((r) => r.conn)).size, 8);
    assert.equal(j.reconnects, 0);
  } finally {
    await srv.close();
  }
});

test('open loop: the offered rate is honoured, and a slow server is counted from when commits were due', async () => {
  const srv = await server((req, sock) => sock.write(ok200(1)));
  try {
    // 4 writers, 200/s for 1 s: each writer's commits are due every 20 ms
    const j = await gen(srv.port, ['--rooms', 'r', '--writers', '4', '--rate', '200', '--seconds', '1']);
    assert.equal(j.failed, 0, j.first_failure);
    assert.equal(j.ok, srv.requests.length);
    // at most what was offered (200 due in 1 s): the rate is honoured, never exceeded; at
    // least a quarter of it, as a loaded machine may delay the generator and the server
    assert.ok(j.ok >= 50 && j.ok <= 200, `${j.ok} commits at 200/s for 1 s`);
    assert.equal(j.rate, 200);
  } finally {
    await srv.close();
  }
  // answers after 40 ms, commits due every 20 ms: each waits behind the one before
  const slow = await server((req, sock) => setTimeout(() => sock.write(ok200(1)), 40));
  try {
    const j = await gen(slow.port, ['--rooms', 'r', '--writers', '1', '--rate', '50', '--seconds', '0.4']);
    assert.equal(j.failed, 0, j.first_failure);
    // about 10 in 0.4 s at one answer per 40 ms; fewer on a busy machine (seen: 4)
    assert.ok(j.ok >= 3 && j.ok <= 20, `${j.ok} commits`);
    assert.ok(j.late_queued >= 2, `queued behind an answer: ${j.late_queued}`);
    assert.ok(j.latency_ms.max > j.from_send_ms.max + 20, `from due ${j.latency_ms.max} ms, from the send ${j.from_send_ms.max} ms`);
  } finally {
    await slow.close();
  }
});

const head = (lines) => `HTTP/1.1 200 OK\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;
// answer: what the server writes to every request; then end: whether it closes the connection
const HOSTILE = [
  { name: 'garbage', answer: 'garbage\r\n\r\n', kind: 'protocol', text: /malformed status line: garbage/ },
  { name: 'status not a number', answer: 'HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n', kind: 'protocol', text: /malformed status line/ },
  { name: 'header without a colon', answer: head(['Content-Length 5']) + 'hello', kind: 'protocol', text: /malformed header line/ },
  { name: 'head over 16 KiB', answer: head([`X-Big: ${'a'.repeat(20000)}`, 'Content-Length: 0']), kind: 'protocol', text: /head over 16 KiB/ },
  { name: 'head never ending', answer: `HTTP/1.1 200 OK\r\n${'X: y\r\n'.repeat(4000)}`, kind: 'protocol', text: /head over 16 KiB/ },
  { name: 'Content-Length over 1 MiB', answer: head(['Content-Length: 2000000']), kind: 'protocol', text: /Content-Length 2000000 is over 1 MiB/ },
  { name: 'Content-Length overflowing', answer: head(['Content-Length: 184467440737095516160000']), kind: 'protocol', text: /over 1 MiB/ },
  { name: 'negative Content-Length', answer: head(['Content-Length: -5']) + 'hello', kind: 'protocol', text: /bad Content-Length: -5/ },
  { name: 'Content-Length not digits', answer: head(['Content-Length: 12abc']), kind: 'protocol', text: /bad Content-Length: 12abc/ },
  { name: 'two Content-Lengths', answer: head(['Content-Length: 5', 'Content-Length: 6']) + 'hello!', kind: 'protocol', text: /bad Content-Length/ },
  { name: 'bad chunk size', answer: head(['Transfer-Encoding: chunked']) + 'zz\r\nhello\r\n0\r\n\r\n', kind: 'protocol', text: /bad chunk size: zz/ },
  { name: 'empty chunk size', answer: head(['Transfer-Encoding: chunked']) + '\r\n', kind: 'protocol', text: /bad chunk size/ },
  { name: 'huge chunk size', answer: head(['Transfer-Encoding: chunked']) + 'fffffffffffffffffffffff\r\n', kind: 'protocol', text: /chunked body over 1 MiB/ },
  { name: 'chunks adding up to over 1 MiB', answer: head(['Transfer-Encoding: chunked']) + `80000\r\n${'a'.repeat(0x80000)}\r\n`.repeat(3), kind: 'protocol', text: /chunked body over 1 MiB/ },
  { name: 'chunk without its CRLF', answer: head(['Transfer-Encoding: chunked']) + '3\r\nabcXY', kind: 'protocol', text: /not followed by CRLF/ },
  { name: 'chunk-size line never ending', answer: head(['Transfer-Encoding: chunked']) + '5;' + 'e'.repeat(8000), kind: 'protocol', text: /chunk-size line over/ },
  { name: 'unknown Transfer-Encoding', answer: head(['Transfer-Encoding: gzip']), kind: 'protocol', text: /unsupported Transfer-Encoding: gzip/ },
  { name: 'body until close over 1 MiB', answer: head([]) + 'b'.repeat(1100000), kind: 'protocol', text: /body over 1 MiB/ },
  { name: '200 without a revision', answer: head(['Content-Length: 2']) + '{}', kind: 'protocol', text: /200 without a revision: \{\}/ },
  { name: 'an error answer', answer: 'HTTP/1.1 503 Busy\r\nContent-Length: 20\r\n\r\n{"error":"busy\nnow"}', kind: 'http', text: /^503 \{"error":"busy\?now"\}$/ },
  { name: 'closed mid-answer', answer: head(['Content-Length: 100']) + 'abc', end: true, kind: 'closed', text: /closed with the request in flight \(answer incomplete\)/ },
  { name: 'closed without an answer', answer: '', end: true, kind: 'closed', text: /closed with the request in flight \(no answer\)/ },
  { name: 'reset without an answer', answer: '', reset: true, kind: 'closed', text: /request in flight/ },
];

for (const h of HOSTILE) {
  test(`a hostile server: ${h.name}`, async () => {
    const srv = await server((req, sock) => {
      if (h.reset) { sock.resetAndDestroy(); return; }
      if (h.answer) sock.write(h.answer);
      if (h.end) sock.end();
    });
    try {
      // 2 writers, 40 commits/s for 0.25 s: about 10 requests
      const j = await gen(srv.port, ['--rooms', 'r', '--writers', '2', '--rate', '40', '--seconds', '0.25', '--timeout-ms', '2000']);
      assert.equal(j.ok, 0);
      // about 10 due; on a busy machine fewer are sent in the time (seen: 2), never more
      assert.ok(j.failed >= 1 && j.failed <= 10, `${j.failed} failed`);
      assert.equal(j.failures[h.kind], j.failed, JSON.stringify(j.failures));
      assert.match(j.first_failure, h.text);
      // a hostile answer costs its connection; an error answer does not
      if (h.kind === 'http') assert.equal(srv.connections, 3, 'the probe and one connection per writer');
      else assert.ok(srv.connections >= j.failed, `${srv.connections} connections for ${j.failed} failures`);
    } finally {
      await srv.close();
    }
  });
}

test('a server that never answers: each request fails after the timeout, and the run ends', async () => {
  const srv = await server(() => {});
  try {
    const t0 = Date.now();
    const j = await gen(srv.port, ['--rooms', 'r', '--writers', '1', '--rate', '20', '--seconds', '0.3', '--timeout-ms', '200']);
    assert.equal(j.ok, 0);
    assert.ok(j.failed >= 2 && j.failed <= 3, `${j.failed} failed`);
    assert.equal(j.failures.timeout, j.failed);
    assert.equal(j.first_failure, 'no answer within 200 ms');
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await srv.close();
  }
});

test('bad arguments are refused with exit status 2; no server is exit status 1', async () => {
  for (const args of [[], ['--port', '1', '--token', 't'], ['--port', '1', '--token', 't', '--rooms', 'a/b'],
    ['--port', '1', '--token', 'a b', '--rooms', 'a'], ['--port', '1', '--token', 't', '--rooms', 'a', '--writers', '0']]) {
    const c = start(BIN, args);
    assert.equal((await c.exited).code, 2, `${args.join(' ')}: ${c.output}`);
  }
  const srv = await server(() => {});
  const port = srv.port;
  await srv.close();
  const c = start(BIN, ['--port', String(port), '--token', 't', '--rooms', 'a']);
  assert.equal((await c.exited).code, 1);
  assert.match(c.output, /cannot connect to 127\.0\.0\.1:\d+: Connection refused/);
});
