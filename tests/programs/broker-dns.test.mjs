// The broker resolves Redis host names without blocking its event loop (docs/INTERNALS.md,
// "Connecting to Redis"). Each broker here runs in a mount namespace of its own (unshare
// --mount) with a resolv.conf and a hosts file of this test bind-mounted over /etc/resolv.conf
// and /etc/hosts, so the machine's own files are never touched. The resolv.conf names one
// nameserver: a UDP socket of this test on 127.0.0.x port 53 that takes every query and never
// answers (glibc's getaddrinfo waits 2 x 5 s on it, the whole process stopped). The hosts file
// maps redis-test.invalid and localhost to 127.0.0.1.
//   - a Redis name that only the dead DNS could answer: the broker starts, and all through the
//     outage /events/health answers at once (redis "down") and a new stream gets its 503
//     redis_unavailable at once; the outage is logged once; the broker stops cleanly;
//   - a name the DNS server answers (300 ms late): connected, events reach a stream, and the
//     name is asked again at the reconnect after a Redis restart;
//   - names of the hosts file (localhost, redis-test.invalid): connected without asking the
//     DNS, events reach an SSE stream, and again after Redis restarts (the name is resolved
//     again at the reconnect);
//   - a Redis Cluster whose nodes announce themselves by host name (cluster-announce-hostname,
//     cluster-preferred-endpoint-type hostname) and a seed given by name: rooms on every
//     master stream their events;
//   - an empty resolv.conf (no nameserver: libevent's resolver cannot be set up from it): a
//     numeric host works as before, a name of the hosts file still resolves, any other name
//     is down with a clear error, logged once;
//   - a command of a stream's opening redirected (MOVED once; ASK from the old owner until
//     the lookup is done) to a node named by a host the DNS answers a second late: the
//     command waits for the name instead of failing, and the stream opens and streams.
// Needs root (mount namespaces, port 53); skipped with the reason otherwise.
// Run: scripts/test.sh programs tests/programs/broker-dns.test.mjs (after make build-asan).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, createConnection } from 'node:net';

import { start, stop, startRedis, waitFor, sleep, freePort, BROKER_BIN } from '../lib/procs.mjs';
import { deadDns, namespaced, namespaceSkip as skip } from '../lib/dns-double.mjs';
import { connectRedis, EMIT_SCRIPT, HISTORY_BOUNDS, roomKey } from '../lib/resp.mjs';
import { ticket } from '../lib/tokens.mjs';
import { sseBlockStream, sseFields } from '../lib/sse.mjs';
import { startRedisCluster, slotOf } from '../lib/redis-cluster.mjs';

const SECRET = randomBytes(24).toString('hex');
// A broker whose /etc/resolv.conf names only `dns` (or is `resolvConf`) and whose /etc/hosts
// is HOSTS.
async function startBrokerNs({ dns, env, resolvConf }) {
  const port = await freePort();
  const [cmd, ...args] = namespaced([BROKER_BIN], { dns, resolvConf });
  const child = start(cmd, args, {
    env: {
      ...process.env,
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0',
      BROKER_HOST: '127.0.0.1',
      BROKER_PORT: String(port),
      BROKER_HEARTBEAT_MS: '500',
      BROKER_REDIS_BACKOFF_MAX_MS: '1000',
      JWT_SECRET: SECRET,
      ...env,
    },
  });
  child.port = port;
  child.base = `http://127.0.0.1:${port}`;
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`broker exited: ${child.output}`);
    return /listening on/.test(child.output);
  }, { what: 'broker listening', timeout: 30000 });
  return child;
}

async function stopBroker(b) {
  const r = await stop(b, 'SIGTERM', 10000);
  assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${b.output}`);
  assert.doesNotMatch(b.output, /AddressSanitizer|LeakSanitizer|runtime error/);
}

// A GET, timed; an answer not there within 15 s is an error.
async function timed(url) {
  const t0 = Date.now();
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(15000) });
    const body = await r.text();
    return { ms: Date.now() - t0, status: r.status, headers: r.headers, body };
  } catch (e) {
    return { ms: Date.now() - t0, error: e.message };
  }
}

const health = async (b) => (await fetch(`${b.base}/events/health`)).json();

// An SSE stream read with fetch: `events` as they come, `live` once ": connected" arrived.
function sse(b, room, user) {
  const ctl = new AbortController();
  const s = { events: [], live: false, close: () => ctl.abort() };
  s.done = (async () => {
    const t = ticket(SECRET, { room, user, name: `u${user}` });
    const r = await fetch(`${b.base}/events/rooms/${room}?ticket=${t}`, { signal: ctl.signal });
    s.status = r.status;
    if (r.status !== 200) { s.body = await r.text(); return; }
    for await (const block of sseBlockStream(r.body)) {
      if (block.includes(': connected')) s.live = true;
      const f = sseFields(block);
      if (f.data) s.events.push({ id: f.id, type: f.event, data: JSON.parse(f.data) });
    }
  })().catch((e) => { if (e.name !== 'AbortError') s.error = e; });
  return s;
}

let roomSeq = 0;
const newRoom = () => `d${process.pid}x${++roomSeq}`;

// An event emitted into Redis reaches a live SSE stream of the broker.
async function eventReaches(b, rc, { room = newRoom(), stream } = {}) {
  if (!stream) {
    await rc.cmd('SET', roomKey(room, 'visibility'), 'public');
    stream = sse(b, room, 7);
    await waitFor(() => { if (stream.status > 200) throw new Error(stream.body); return stream.live; },
      { what: 'stream live', timeout: 20000 });
  }
  const n = stream.events.length;
  const id = await rc.emit(room, 'operation', { revision: n + 1, ops: ['x'] });
  await waitFor(() => stream.events.some((e) => e.id === id), { what: `event ${id} on the stream`, timeout: 20000 });
  return { room, stream };
}

test('a Redis name the DNS never answers: health and new streams are answered at once, all through the outage', { skip }, async () => {
  const dns = await deadDns();
  let b;
  try {
    b = await startBrokerNs({
      dns,
      env: { REDIS_URL: 'redis://redis.internal:6379', BROKER_REDIS_CONNECT_TIMEOUT_MS: '1500' },
    });
    // a few connect attempts' worth (timeout 1.5 s, then up to 1 s of backoff each)
    const end = Date.now() + 8000;
    const slow = [];
    let checks = 0;
    while (Date.now() < end && !slow.length) {
      const h = await timed(`${b.base}/events/health`);
      const t = ticket(SECRET, { room: 'r1', user: 3, name: 'c' });
      const s = await timed(`${b.base}/events/rooms/r1?ticket=${t}`);
      // a blocked loop answers nothing for as long as getaddrinfo waits (10 s per call with
      // this resolv.conf): a second is far above an answer's time, far below that
      for (const [what, r] of [['health', h], ['stream', s]]) {
        if (r.error || r.ms > 1000) slow.push({ what, ms: r.ms, error: r.error, after_ms: 8000 - (end - Date.now()) });
      }
      if (slow.length) break;
      assert.equal(h.status, 200);
      assert.equal(JSON.parse(h.body).redis, 'down');
      assert.equal(s.status, 503, s.body);
      assert.equal(JSON.parse(s.body).error, 'redis_unavailable');
      assert.equal(s.headers.get('retry-after'), '1');
      checks++;
      await sleep(200);
    }
    assert.deepEqual(slow, [], `answers that waited (after ${checks} prompt checks): ${JSON.stringify(slow)}`);
    assert.ok(checks >= 10, `${checks} checks`);
    // the name did go to the dead server, and again at the next attempts
    const asked = dns.queries.filter((q) => q === 'redis.internal').length;
    assert.ok(asked >= 4, `queries for redis.internal: ${asked} (${dns.queries.join(', ')})`);
    // the outage is one log line, not one per attempt
    const lines = b.output.split('\n').filter((l) => /redis\.internal/.test(l) && /not resolved within 1500 ms/.test(l));
    assert.equal(lines.length, 1, b.output);
    // a lookup under way when the broker stops (one has just asked: it waits 1.5 s) is given
    // up cleanly (no leak, exit 0)
    const sent = dns.queries.length;
    await waitFor(() => dns.queries.length > sent, { what: 'a new lookup', timeout: 15000, interval: 10 });
    await stopBroker(b);
    b = undefined;
  } finally {
    if (b) await stop(b, 'SIGKILL');
    dns.close();
  }
});

test('a name the DNS answers (slowly): connected and streaming, resolved again at each reconnect', { skip }, async () => {
  const dns = await deadDns({ answers: { 'redis-dns.test': '127.0.0.1' }, delayMs: 300 });
  let redis = await startRedis();
  let rc = await connectRedis(redis.port);
  let b;
  try {
    b = await startBrokerNs({ dns, env: { REDIS_URL: `redis://redis-dns.test:${redis.port}` } });
    await waitFor(async () => (await health(b)).redis === 'ok', { what: 'redis ok', timeout: 20000 });
    const live = await eventReaches(b, rc);
    const asked = () => dns.queries.filter((q) => q === 'redis-dns.test').length;
    const before = asked();
    assert.ok(before >= 1);
    // Redis restarts on the same port: the reconnect asks the DNS again
    await rc.cmd('SHUTDOWN', 'SAVE').catch(() => {});
    rc.close();
    await redis.exited;
    await waitFor(async () => (await health(b)).redis === 'down', { what: 'redis down seen', timeout: 20000 });
    redis = await startRedis({ port: redis.port, dir: redis.dir });
    rc = await connectRedis(redis.port);
    await waitFor(async () => (await health(b)).redis === 'ok', { what: 'reconnected', timeout: 20000 });
    await eventReaches(b, rc, live);
    assert.ok(asked() > before, `queries: ${dns.queries.join(', ')}`);
    live.stream.close();
    await stopBroker(b);
    b = undefined;
  } finally {
    if (b) await stop(b, 'SIGKILL');
    rc.close();
    await stop(redis);
    dns.close();
  }
});

test('names from /etc/hosts: connected without the DNS, events end to end, again after Redis restarts', { skip }, async () => {
  const dns = await deadDns();
  let redis = await startRedis();
  let rc = await connectRedis(redis.port);
  const brokers = [];
  try {
    for (const name of ['localhost', 'redis-test.invalid']) {
      const b = await startBrokerNs({ dns, env: { REDIS_URL: `redis://${name}:${redis.port}` } });
      brokers.push(b);
      await waitFor(async () => (await health(b)).redis === 'ok', { what: `${name}: redis ok`, timeout: 20000 });
      b.live = await eventReaches(b, rc);
    }
    // Redis restarts (same port, data kept): each broker reconnects, resolving its name again
    await rc.cmd('SHUTDOWN', 'SAVE').catch(() => {});
    rc.close();
    await redis.exited;
    for (const b of brokers) await waitFor(async () => (await health(b)).redis === 'down', { what: 'redis down seen', timeout: 20000 });
    redis = await startRedis({ port: redis.port, dir: redis.dir });
    rc = await connectRedis(redis.port);
    for (const b of brokers) {
      await waitFor(async () => (await health(b)).redis === 'ok', { what: 'reconnected', timeout: 20000 });
      await eventReaches(b, rc, b.live);
      assert.equal(b.live.stream.error, undefined);
      b.live.stream.close();
    }
    // the hosts file answered every time: not one query went to the DNS server
    assert.deepEqual(dns.queries, []);
    for (const b of brokers.splice(0)) await stopBroker(b);
  } finally {
    for (const b of brokers) await stop(b, 'SIGKILL');
    rc?.close();
    await stop(redis);
    dns.close();
  }
});

test('a Redis Cluster whose nodes announce host names: every master streams its rooms', { skip }, async () => {
  const dns = await deadDns();
  const cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  let b;
  try {
    for (const n of cluster.nodes) {
      await cluster.once(n.port, 'CONFIG', 'SET', 'cluster-announce-hostname', 'redis-test.invalid');
      await cluster.once(n.port, 'CONFIG', 'SET', 'cluster-preferred-endpoint-type', 'hostname');
    }
    // every node's CLUSTER SLOTS names every master by host name (gossip carries the names)
    await waitFor(async () => {
      for (const n of cluster.nodes) {
        const rows = await cluster.once(n.port, 'CLUSTER', 'SLOTS');
        if (!rows.every((r) => r[2][0] === 'redis-test.invalid')) return false;
      }
      return true;
    }, { what: 'host names announced', timeout: 20000 });
    b = await startBrokerNs({
      dns,
      env: { REDIS_CLUSTER: `redis-test.invalid:${cluster.nodes[0].port}`, BROKER_REDIS_CONNECT_TIMEOUT_MS: '1000' },
    });
    await waitFor(async () => (await health(b)).redis === 'ok', { what: 'cluster connected', timeout: 30000 });
    // a public room on each master, its event emitted where its slot lives
    const masters = await cluster.masters();
    assert.equal(masters.length, 3);
    for (const m of masters) {
      let room;
      do room = newRoom(); while ((await cluster.masterOf(roomKey(room))).port !== m.port);
      await cluster.cmd(roomKey(room, 'visibility'), 'SET', roomKey(room, 'visibility'), 'public');
      const s = sse(b, room, 9);
      await waitFor(() => { if (s.status > 200) throw new Error(s.body); return s.live; }, { what: `stream on ${m.port}`, timeout: 20000 });
      const id = await cluster.cmd(roomKey(room, 'events'), 'EVAL', EMIT_SCRIPT, 1, roomKey(room, 'events'),
        'operation', JSON.stringify({ revision: 1, ops: ['y'] }), HISTORY_BOUNDS);
      await waitFor(() => s.events.some((e) => e.id === id), { what: `event of the room on ${m.port}`, timeout: 20000 });
      s.close();
    }
    assert.deepEqual(dns.queries, []);
    await stopBroker(b);
    b = undefined;
  } finally {
    if (b) await stop(b, 'SIGKILL');
    await cluster.stop();
    dns.close();
  }
});

test('no usable resolv.conf: numeric hosts as before, names from /etc/hosts, a clear error for others', { skip }, async () => {
  const redis = await startRedis();
  const rc = await connectRedis(redis.port);
  const brokers = [];
  try {
    // an empty resolv.conf names no nameserver: libevent's resolver cannot be set up from it
    const ns = (url) => startBrokerNs({ resolvConf: '', env: { REDIS_URL: url, BROKER_REDIS_CONNECT_TIMEOUT_MS: '1500' } });
    const numeric = await ns(`redis://127.0.0.1:${redis.port}`);
    brokers.push(numeric);
    const named = await ns(`redis://redis-test.invalid:${redis.port}`);
    brokers.push(named);
    const unknown = await ns(`redis://redis.internal:${redis.port}`);
    brokers.push(unknown);
    for (const b of [numeric, named]) {
      await waitFor(async () => (await health(b)).redis === 'ok', { what: 'redis ok', timeout: 20000 });
      (await eventReaches(b, rc)).stream.close();
    }
    // the numeric host never needed a resolver, so nothing is said about one
    assert.doesNotMatch(numeric.output, /resolv\.conf/);
    assert.match(named.output, /resolv\.conf is missing, unreadable or names no nameserver: Redis host names are looked up in \/etc\/hosts only/);
    // a name nobody can answer: down at once at every attempt, said once, answered meanwhile
    await waitFor(() => unknown.output.split('\n').filter((l) => /redis\.internal/.test(l)).length >= 1, { what: 'the error logged', timeout: 20000 });
    await sleep(3000); // several attempts (backoff up to 1 s)
    const lines = unknown.output.split('\n').filter((l) => /redis\.internal/.test(l));
    assert.equal(lines.length, 1, unknown.output);
    assert.match(lines[0], /cannot resolve redis\.internal: not in \/etc\/hosts, and no nameserver/);
    const h = await timed(`${unknown.base}/events/health`);
    assert.equal(h.error, undefined);
    assert.equal(JSON.parse(h.body).redis, 'down');
    for (const b of brokers.splice(0)) await stopBroker(b);
  } finally {
    for (const b of brokers) await stop(b, 'SIGKILL');
    rc.close();
    await stop(redis);
  }
});

// A proxy in front of Redis port `port` that refuses the room's scripts: each command of the
// broker that is EVAL/EVALSHA with an argument naming room's hash tag, while `refuse()` says
// so, goes on as a PING of a marker, whose answer, in its place in the reply stream, becomes
// `-${error}`. `refused` counts them.
async function refusingProxy(port, room, refuse, error) {
  const marker = `cc-refused-${randomBytes(6).toString('hex')}`;
  const ping = `*2\r\n$4\r\nPING\r\n$${marker.length}\r\n${marker}\r\n`;
  const pong = Buffer.from(`$${marker.length}\r\n${marker}\r\n`);
  const tag = `{${room}}`;
  const p = { refused: 0 };
  const server = createServer((down) => {
    const up = createConnection(port, '127.0.0.1');
    let cmds = Buffer.alloc(0);
    let replies = Buffer.alloc(0);
    // the broker's commands, whole (hiredis sends arrays of bulk strings), one by one
    down.on('data', (d) => {
      cmds = Buffer.concat([cmds, d]);
      for (;;) {
        let at = cmds.indexOf('\r\n');
        if (cmds[0] !== 0x2a || at < 0) break;
        const argc = Number(cmds.subarray(1, at).toString());
        const args = [];
        at += 2;
        for (let i = 0; i < argc && at >= 0; i++) {
          const nl = cmds.indexOf('\r\n', at);
          if (nl < 0) { at = -1; break; }
          const len = Number(cmds.subarray(at + 1, nl).toString());
          if (cmds.length < nl + 2 + len + 2) { at = -1; break; }
          args.push(cmds.subarray(nl + 2, nl + 2 + len).toString('latin1'));
          at = nl + 2 + len + 2;
        }
        if (at < 0) break;
        const name = args[0].toUpperCase();
        if ((name === 'EVAL' || name === 'EVALSHA') && args.some((a) => a.includes(tag)) && refuse()) {
          p.refused++;
          up.write(ping);
        } else {
          up.write(cmds.subarray(0, at));
        }
        cmds = cmds.subarray(at);
      }
    });
    // the answers, with each marker's replaced; a marker split across reads is held back
    up.on('data', (d) => {
      replies = Buffer.concat([replies, d]);
      let at;
      while ((at = replies.indexOf(pong)) >= 0) {
        down.write(replies.subarray(0, at));
        down.write(`-${error()}\r\n`);
        replies = replies.subarray(at + pong.length);
      }
      let keep = 0;
      for (let k = Math.min(pong.length - 1, replies.length); k > 0 && !keep; k--)
        if (replies.subarray(replies.length - k).equals(pong.subarray(0, k))) keep = k;
      down.write(replies.subarray(0, replies.length - keep));
      replies = replies.subarray(replies.length - keep);
    });
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
    down.on('error', () => {});
    up.on('error', () => {});
  });
  p.port = await freePort();
  await new Promise((r) => server.listen(p.port, '127.0.0.1', r));
  p.close = () => server.close();
  return p;
}

// MOVED and ASK answered to a stream's opening, naming a node whose host name the DNS answers
// only after a second: the command waits for the lookup (docs/INTERNALS.md, "Connecting to
// Redis"), then goes to that node, and the stream opens (before, it got 503 redis_unavailable).
for (const kind of ['MOVED', 'ASK']) {
  test(`${kind} to a node whose name is still being resolved: the stream's opening waits for it`, { skip }, async () => {
    const dns = await deadDns({ answers: { 'slow-name.test': '127.0.0.1' }, delayMs: 1000 });
    const redis = await startRedis();
    const rc = await connectRedis(redis.port);
    const room = newRoom();
    const to = `${kind} ${slotOf(roomKey(room))} slow-name.test:${redis.port}`;
    // MOVED: once (the slot's owner is the named node from then on); ASK: every time, as the
    // source of a migrating slot answers for a key it no longer has
    let moves = 1;
    const proxy = await refusingProxy(redis.port, room, () => kind === 'ASK' || moves-- > 0, () => to);
    let b, s;
    try {
      b = await startBrokerNs({ dns, env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}` } });
      await waitFor(async () => (await health(b)).redis === 'ok', { what: 'redis ok', timeout: 20000 });
      await rc.cmd('SET', roomKey(room, 'visibility'), 'public');
      s = sse(b, room, 5);
      await waitFor(() => { if (s.status > 200) throw new Error(`${s.status} ${s.body}`); return s.live; },
        { what: 'stream live', timeout: 20000 });
      assert.ok(proxy.refused >= 1, 'the opening was redirected');
      assert.ok(dns.queries.includes('slow-name.test'), `queries: ${dns.queries.join(', ')}`);
      await eventReaches(b, rc, { room, stream: s });
      assert.equal(s.error, undefined);
      s.close();
      await s.done;
      // the one command that waited (the rights check) said so once, however often it was
      // refused meanwhile
      const lines = b.output.split('\n').filter((l) => l.includes(`${kind} ${slotOf(roomKey(room))}`));
      assert.equal(lines.length, 1, b.output);
      await stopBroker(b);
      b = undefined;
    } finally {
      s?.close();
      if (b) await stop(b, 'SIGKILL');
      proxy.close();
      rc.close();
      await stop(redis);
      dns.close();
    }
  });
}
