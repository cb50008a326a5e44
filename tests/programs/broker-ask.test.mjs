// The broker meeting an ASK answer to SSUBSCRIBE. Redis 7 never gives one (a migrating slot's
// source serves its shard channels until the hand-over: docs/INTERNALS.md, "A slot migrated
// live"), so a proxy in front of a real redis-server makes one: it turns the broker's first
// SSUBSCRIBEs of a room's channel into a PING whose answer, in its place in the reply stream,
// it replaces with `ASK <slot> <importing node>`. The broker must not go to that node (with
// ASKING or without), must ask the slot's owner again until it answers, and must then catch the
// stream up from the history: every event once, in order, on one uncut stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, createConnection } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startRedis, startBroker, stop, waitFor, sleep, freePort } from '../lib/procs.mjs';
import { connectRedis } from '../lib/resp.mjs';
import { ticket } from '../lib/tokens.mjs';
import { slotOf } from '../lib/redis-cluster.mjs';
import { sseBlockStream, sseFields } from '../lib/sse.mjs';

const SECRET = randomBytes(24).toString('hex');
const MARK = 'ask-marker';
let redis, rc, proxy, importing, broker;
const seen = { rewritten: 0, asked: 0, importingConnects: 0 };
let asks = 0; // SSUBSCRIBEs of `channel` still to be refused
let channel = '';

// Replaces `from` by `to(...)` in a byte stream while `more()` says so. Bytes that may be the
// start of `from` split across reads are held back until the next read decides.
function rewriter(from, to, more, count) {
  let held = Buffer.alloc(0);
  return (chunk) => {
    let buf = Buffer.concat([held, chunk]);
    const out = [];
    let at;
    while (from() && more() && (at = buf.indexOf(from())) >= 0) {
      out.push(buf.subarray(0, at), Buffer.from(to()));
      buf = buf.subarray(at + Buffer.byteLength(from()));
      count();
    }
    let keep = 0;
    if (from() && more()) {
      const f = Buffer.from(from());
      for (let k = Math.min(f.length - 1, buf.length); k > 0 && !keep; k--)
        if (buf.subarray(buf.length - k).equals(f.subarray(0, k))) keep = k;
    }
    out.push(buf.subarray(0, buf.length - keep));
    held = buf.subarray(buf.length - keep);
    return Buffer.concat(out);
  };
}

const ssubCmd = () => channel && `*2\r\n$10\r\nSSUBSCRIBE\r\n$${channel.length}\r\n${channel}\r\n`;
const pingCmd = `*2\r\n$4\r\nPING\r\n$${MARK.length}\r\n${MARK}\r\n`;
const pongReply = `*2\r\n$4\r\npong\r\n$${MARK.length}\r\n${MARK}\r\n`; // PING once subscribed

before(async () => {
  redis = await startRedis();
  rc = await connectRedis(redis.port);
  // the node the ASK names: nothing should ever connect to it
  importing = createServer((s) => { seen.importingConnects++; s.destroy(); });
  const importingPort = await freePort();
  await new Promise((r) => importing.listen(importingPort, '127.0.0.1', r));
  proxy = createServer((down) => {
    const up = createConnection(redis.port, '127.0.0.1');
    let pending = 0; // our PINGs on this connection whose answers are still to come
    const toServer = rewriter(ssubCmd, () => pingCmd, () => asks > 0,
      () => { asks--; pending++; seen.rewritten++; });
    const toClient = rewriter(() => pongReply,
      () => `-ASK ${slotOf(channel)} 127.0.0.1:${importingPort}\r\n`, () => pending > 0,
      () => { pending--; seen.asked++; });
    down.on('data', (d) => up.write(toServer(d)));
    up.on('data', (d) => down.write(toClient(d)));
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
    down.on('error', () => {});
    up.on('error', () => {});
  });
  const proxyPort = await freePort();
  await new Promise((r) => proxy.listen(proxyPort, '127.0.0.1', r));
  broker = await startBroker({
    redisPort: proxyPort,
    secret: SECRET,
    env: { BROKER_HEARTBEAT_MS: '500', BROKER_REDIS_BACKOFF_MAX_MS: '400' },
  });
});

after(async () => {
  rc?.close();
  if (broker) {
    const r = await stop(broker);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${broker.output}`);
    assert.doesNotMatch(broker.output, /AddressSanitizer|runtime error/);
  }
  proxy?.close();
  importing?.close();
  await stop(redis);
});

// An SSE stream of room from lastId, collecting its operations.
function stream(room, lastId) {
  const s = { events: [], connects: 0 };
  const ac = new AbortController();
  s.close = () => ac.abort();
  s.done = (async () => {
    const t = ticket(SECRET, { room, user: 1, name: 'user1' });
    const res = await fetch(`${broker.base}/events/rooms/${room}?ticket=${t}`,
      { headers: { 'Last-Event-ID': lastId }, signal: ac.signal });
    assert.equal(res.status, 200);
    s.connects++;
    for await (const block of sseBlockStream(res.body)) {
      const ev = sseFields(block);
      if (ev.event === 'operation') s.events.push(ev.id);
    }
  })().catch((e) => { if (e.name !== 'AbortError') throw e; });
  return s;
}

test('ASK to SSUBSCRIBE: the owner is asked again, never the importing node; every event once, in order', async () => {
  const room = `a${process.pid}`;
  channel = `cc:room:{${room}}`;
  await rc.cmd('SET', `cc:room:{${room}}:visibility`, 'public');
  const emit = (n) => rc.emit(room, 'operation', { n });
  const want = [];
  const start = await emit(0);
  asks = 3;
  const s = stream(room, start);
  try {
    // events written while the broker is refused reach the client from the history
    await waitFor(() => seen.asked >= 1, { what: 'a first ASK' });
    for (let n = 1; n <= 3; n++) want.push(await emit(n));
    await waitFor(() => seen.asked >= 3, { what: 'three ASKs' });
    for (let n = 4; n <= 6; n++) want.push(await emit(n));
    await waitFor(async () => (await rc.cmd('PUBSUB', 'SHARDNUMSUB', channel))[1] === 1,
      { what: 'subscribed at the owner' });
    for (let n = 7; n <= 9; n++) want.push(await emit(n));
    await waitFor(() => s.events.length >= want.length, { what: 'every event at the client' });
    await sleep(300); // a duplicate would come right behind
    assert.deepEqual(s.events, want);
    assert.equal(s.connects, 1);
    assert.equal(seen.rewritten, 3);
    assert.equal(seen.importingConnects, 0, 'nothing went to the node the ASK named');
    assert.match(broker.output, /info: redis: .* answers ASK to SSUBSCRIBE cc:room:\{a\d+\}/);
    assert.doesNotMatch(broker.output, /warn: redis: SSUBSCRIBE/);
  } finally {
    s.close();
    await s.done;
  }
});
