// The broker against a REAL Redis Cluster (3 masters, 3 replicas, on free ports:
// tests/lib/redis-cluster.mjs) with REDIS_CLUSTER set: rooms whose slots live on all three
// masters get their events over sharded pub/sub (SPUBLISH by the programs' own emit script,
// SSUBSCRIBE by the broker, one subscription connection per master); kill -9 of the master of
// a room's slot: its replica takes over and the room's stream goes on without a reconnect,
// every event exactly once; a slot moved with CLUSTER SETSLOT/MIGRATE: the broker follows the
// server's sunsubscribe to the new owner and nothing is lost or doubled; the same move step by
// step under a steady stream of writes, with what Redis answers at each stage checked on the way
// (docs/INTERNALS.md, "A slot migrated live"); a session signed out while the master holding its
// session key is stopped (SIGSTOP) during the rights re-check, with its replica taking over or
// not: the stream still ends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startBroker, stop, waitFor, sleep } from '../lib/procs.mjs';
import { EMIT_SCRIPT, HISTORY_BOUNDS, roomKey, Redis } from '../lib/resp.mjs';
import { ticket, newSid } from '../lib/tokens.mjs';
import { startRedisCluster, slotOf } from '../lib/redis-cluster.mjs';
import { sseBlockStream, sseFields } from '../lib/sse.mjs';

const SECRET = randomBytes(24).toString('hex');
let cluster, broker;

before(async () => {
  cluster = await startRedisCluster({ masters: 3, replicas: 1 });
  // a seed list naming one master: the rest of the cluster is learnt from CLUSTER SLOTS
  broker = await startBroker({
    redisPort: 1,
    secret: SECRET,
    env: {
      REDIS_CLUSTER: `127.0.0.1:${cluster.nodes[0].port}`,
      BROKER_HEARTBEAT_MS: '500',
      BROKER_REDIS_BACKOFF_MAX_MS: '1000',
      BROKER_REDIS_CONNECT_TIMEOUT_MS: '1000',
    },
  });
});

after(async () => {
  if (process.env.BROKER_CLUSTER_LOG) console.log(broker?.output);
  if (broker) {
    const r = await stop(broker);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${broker.output}`);
    assert.doesNotMatch(broker.output, /AddressSanitizer|runtime error/);
  }
  await cluster?.stop();
});

// The rights question (lib/lua/access_stream.lua) reads the room's keys and the subject's
// session and generation keys in one script. Until those are split per slot, a subject whose
// keys share the room's slot is picked, so the script runs where the room lives.
function subjectFor(room) {
  const slot = slotOf(roomKey(room));
  let user = 1;
  while (slotOf(`cc:user:${user}:tokgen`) !== slot) user++;
  let sid;
  do sid = newSid(); while (slotOf(`cc:sess:${sid}:revoked`) !== slot);
  return { user, sid };
}

let seq = 0;
// A public room (as the API leaves it) whose slot is served by master `m`.
async function roomOn(m) {
  for (;;) {
    const room = `c${process.pid}x${++seq}`;
    if ((await cluster.masterOf(roomKey(room))).port === m.port) {
      await cluster.cmd(roomKey(room, 'visibility'), 'SET', roomKey(room, 'visibility'), 'public');
      return room;
    }
  }
}

// One event, the way every program emits one (lib/lua/_emit.lua: XADD + SPUBLISH), at the node
// serving the room; with `replicated`, acknowledged by a replica (WAIT) before it counts, as the
// API's writes are (a master killed later cannot take it along).
async function emit(room, n, { replicated = false } = {}) {
  const args = ['EVAL', EMIT_SCRIPT, 1, roomKey(room, 'events'), 'operation', JSON.stringify({ n }), HISTORY_BOUNDS];
  if (!replicated) return cluster.cmd(roomKey(room, 'events'), ...args);
  const [id, acks] = await cluster.cmdThen(roomKey(room, 'events'), args, (r) => r.cmd('WAIT', 1, 5000));
  assert.equal(acks, 1, 'a replica has the event');
  return id;
}

// An SSE stream of a room that resumes with Last-Event-ID whenever it is cut, and counts how
// often it had to connect.
function stream(room) {
  const { user, sid } = subjectFor(room);
  const s = { events: [], connects: 0, closed: false, statuses: [] };
  const ac = new AbortController();
  s.close = () => { s.closed = true; ac.abort(); };
  (async () => {
    while (!s.closed) {
      const t = ticket(SECRET, { room, user, name: `u${user}`, sid });
      const last = s.events.at(-1)?.id;
      try {
        const res = await fetch(`${broker.base}/events/rooms/${room}?ticket=${t}`,
          { headers: last ? { 'Last-Event-ID': last } : {}, signal: ac.signal });
        s.statuses.push(res.status);
        if (res.status !== 200) { await sleep(200); continue; }
        s.connects++;
        for await (const block of sseBlockStream(res.body)) {
          const ev = sseFields(block);
          if (ev.event === 'operation') s.events.push({ id: ev.id, n: JSON.parse(ev.data).n });
        }
      } catch { /* cut: resume */ }
      if (!s.closed) await sleep(100);
    }
  })();
  return s;
}

// The broker listens to the room's channel at the node that serves it now.
async function subscribedAt(room) {
  const m = await cluster.masterOf(roomKey(room));
  const r = await cluster.once(m.port, 'PUBSUB', 'SHARDNUMSUB', roomKey(room));
  return r[1] >= 1 ? m : null;
}

const ids = (s) => s.events.map((e) => e.id);

test('rooms on all three masters get their events over sharded pub/sub', async () => {
  const masters = await cluster.masters();
  assert.equal(masters.length, 3);
  const rooms = [];
  for (const m of masters) rooms.push(await roomOn(m), await roomOn(m));
  const streams = rooms.map((r) => stream(r));
  try {
    for (const r of rooms) await waitFor(() => subscribedAt(r), { what: `the broker subscribed to ${r}` });
    // one subscription connection per master, each holding that master's rooms
    for (const m of masters) {
      const clients = await cluster.once(m.port, 'CLIENT', 'LIST');
      const ssub = clients.split('\n').filter((l) => / ssub=[1-9]/.test(l));
      assert.equal(ssub.length, 1, `one sharded subscriber at ${m.port}:\n${clients}`);
    }
    const want = rooms.map(() => []);
    for (let n = 1; n <= 5; n++) {
      for (let i = 0; i < rooms.length; i++) want[i].push(await emit(rooms[i], n));
    }
    await waitFor(() => streams.every((s, i) => s.events.length >= want[i].length), { what: 'every event at every stream' });
    await sleep(200); // nothing more (a double would come right behind)
    streams.forEach((s, i) => assert.deepEqual(ids(s), want[i], `room ${rooms[i]}`));
    assert.ok(streams.every((s) => s.connects === 1));
  } finally {
    for (const s of streams) s.close();
  }
});

test('kill -9 of the master of a room: its replica takes over and the stream goes on, every event once', async () => {
  const masters = await cluster.masters();
  const [victim, other] = masters;
  const room = await roomOn(victim);
  const calm = await roomOn(other);
  const s = stream(room);
  const c = stream(calm);
  try {
    await waitFor(() => subscribedAt(room), { what: 'subscribed' });
    await waitFor(() => subscribedAt(calm), { what: 'subscribed (calm room)' });
    const want = [];
    for (let n = 1; n <= 3; n++) want.push(await emit(room, n, { replicated: true }));
    await waitFor(() => s.events.length === 3, { what: 'events before the kill' });

    const killedAt = Date.now();
    await cluster.kill(victim);
    // the other master's rooms do not wait for the failover
    const calmId = await emit(calm, 1);
    await waitFor(() => ids(c).includes(calmId), { what: 'the calm room during the failover' });
    // the room's first event after the kill is written once the replica has taken over
    // (cmd tries again until then); the stream must have it within 5 s of that
    want.push(await emit(room, 4));
    const writableAt = Date.now();
    await waitFor(() => s.events.length >= 4, { what: 'the first event after the failover', timeout: 20000 });
    const back = Date.now();
    for (let n = 5; n <= 8; n++) want.push(await emit(room, n));
    await waitFor(() => s.events.length >= want.length, { what: 'every event after the failover' });
    await sleep(300);
    assert.deepEqual(ids(s), want);
    assert.equal(s.connects, 1, 'the stream was never cut');
    const promoted = await cluster.masterOf(roomKey(room));
    assert.notEqual(promoted.port, victim.port);
    assert.ok(await subscribedAt(room), 'subscribed at the promoted replica');
    console.log(`# failover: the room's slot writable again ${writableAt - killedAt} ms after the kill; ` +
      `its first event at the stream ${back - writableAt} ms later (${back - killedAt} ms after the kill)`);
    assert.ok(back - writableAt < 5000, `the stream went on ${back - writableAt} ms after the slot was writable`);
  } finally {
    s.close();
    c.close();
  }
});

test('a slot moved with CLUSTER SETSLOT/MIGRATE: the broker follows it and nothing is lost or doubled', async () => {
  const masters = (await cluster.masters());
  const from = masters[0];
  const to = masters[1];
  const room = await roomOn(from);
  const s = stream(room);
  try {
    await waitFor(() => subscribedAt(room), { what: 'subscribed' });
    const want = [];
    for (let n = 1; n <= 3; n++) want.push(await emit(room, n));
    await waitFor(() => s.events.length === 3, { what: 'events before the move' });
    await cluster.migrateSlot(slotOf(roomKey(room)), to);
    assert.equal((await cluster.masterOf(roomKey(room))).port, to.port);
    for (let n = 4; n <= 7; n++) want.push(await emit(room, n));
    await waitFor(() => s.events.length >= want.length, { what: 'events after the move', timeout: 10000 });
    await sleep(300);
    assert.deepEqual(ids(s), want);
    assert.equal(s.connects, 1, 'the stream was never cut');
    const at = await waitFor(() => subscribedAt(room), { what: 'subscribed at the new owner' });
    assert.equal(at.port, to.port);
    const old = await cluster.once(from.port, 'PUBSUB', 'SHARDNUMSUB', roomKey(room));
    assert.equal(old[1], 0, 'nothing left at the old owner');
  } finally {
    s.close();
  }
});

// One command on a connection of its own at port, after ASKING when asked: its answer, or the
// server's error text.
async function at(port, asking, ...args) {
  const r = new Redis(port);
  await r.connect();
  try {
    if (asking) await r.cmd('ASKING');
    return await r.cmd(...args);
  } catch (e) {
    if (!e.reply) throw e;
    return e.message;
  } finally {
    r.close();
  }
}

// Stream ids in stream order ("ms-seq", both parts numbers).
const byId = (a, b) => {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
};

// One event by the programs' own emit script (KEYS: the history only; the channel is named
// from it), routed the way lib/rds.c routes it: MOVED and ASK followed (ASK after ASKING),
// TRYAGAIN tried again shortly. Every refusal met is counted by its kind in `refused`; the
// port that wrote it is kept in `wroteAt` (event id → port).
async function emitRouted(room, n, refused, wroteAt) {
  const history = roomKey(room, 'events');
  const args = ['EVAL', EMIT_SCRIPT, 1, history, 'operation', JSON.stringify({ n }), HISTORY_BOUNDS];
  let port = await cluster.portOf(history);
  let asking = false;
  for (let tries = 0; tries < 1000; tries++) {
    const r = await at(port, asking, ...args);
    if (/^\d+-\d+$/.test(r)) {
      wroteAt.set(r, port);
      return r;
    }
    const m = /^(MOVED|ASK|TRYAGAIN)\b(?: \d+ [^:]+:(\d+))?/.exec(r);
    if (!m) throw new Error(`emit: ${r}`);
    refused[m[1]] = (refused[m[1]] ?? 0) + 1;
    asking = m[1] === 'ASK';
    if (m[2]) {
      port = Number(m[2]);
    } else {
      await sleep(20); // rds waits between tries too
      port = await cluster.portOf(history);
    }
  }
  throw new Error('emit: refused too often');
}

// A script that declares the channel among its KEYS, as every emitting script did before:
// the control that shows what the step-by-step test below avoids.
const DECLARED = "redis.call('XADD', KEYS[1], '*', 'type', 'operation', 'data', '{}') " +
  "return redis.call('SPUBLISH', KEYS[2], 'x')";
// Any call naming a key the room lacks besides one it has is refused the same way while the
// slot is open (docs/INTERNALS.md: e.g. doc_commit before the room's first commits entry).
const MISSING = "return redis.call('XLEN', KEYS[1])";

test('a live migration of a room\'s slot, step by step, under a steady stream of writes: the writes never wait, every event once, in order, the stream never cut', async () => {
  const masters = await cluster.masters();
  const to = masters[0];
  const room = await roomOn(masters[2]);
  const slot = slotOf(roomKey(room));
  const ch = roomKey(room);
  const history = roomKey(room, 'events');
  const s = stream(room);
  const want = [];
  const refused = {};
  const wroteAt = new Map();
  let writing = true;
  let writer;
  const written = (more) => {
    const goal = want.length + more;
    return waitFor(() => want.length >= goal, { what: `${more} more events written`, timeout: 15000 });
  };
  const count = (kind) => refused[kind] ?? 0;
  // the broker's subscription is where it started (a connection of the test's own would add one)
  const listening = async (port, what) => {
    const r = await at(port, false, 'PUBSUB', 'SHARDNUMSUB', ch);
    assert.equal(r[1], 1, `the broker listens at the source ${what}`);
  };
  let atTarget = [];
  try {
    await waitFor(() => subscribedAt(room), { what: 'subscribed' });
    await waitFor(() => s.connects === 1, { what: 'the stream open' });
    writer = (async () => {
      for (let n = 1; writing; n++) {
        want.push(await emitRouted(room, n, refused, wroteAt));
        await sleep(10); // a steady pace, not a flood
      }
    })();
    await written(5);
    await cluster.migrateSlot(slot, to, {
      step: async (stage, from) => {
        if (stage === 'importing') {
          // the target refuses the channel without ASKING: the source serves it
          assert.match(await at(to.port, false, 'SSUBSCRIBE', ch), new RegExp(`^MOVED ${slot} .*:${from.port}$`));
          await written(5);
          await listening(from.port, 'while the target imports');
        } else if (stage === 'migrating') {
          await listening(from.port, 'once migrating');
          // Redis answers no ASK for a shard channel: the source serves it until the hand-over
          assert.deepEqual(await at(from.port, false, 'SSUBSCRIBE', ch), ['ssubscribe', ch, 1]);
          // a script declaring the channel (a key Redis never finds) is refused now ...
          assert.match(await at(from.port, false, 'EVAL', DECLARED, 2, history, ch), /^TRYAGAIN/);
          assert.match(await at(from.port, false, 'EVAL', MISSING, 2, history, roomKey(room, 'none')), /^TRYAGAIN/);
          // ... ours, which publishes the channel without declaring it, is served at the
          // source at once, and the broker, still listening there, gets it live
          const tries = count('TRYAGAIN');
          const id = await at(from.port, false, 'EVAL', EMIT_SCRIPT, 1, history, 'operation', '{"n":0}', HISTORY_BOUNDS);
          assert.match(id, /^\d+-\d+$/, 'written at the source while migrating');
          want.push(id);
          await written(5);
          await waitFor(() => ids(s).includes(id), { what: 'an event written while migrating, live' });
          assert.equal(count('TRYAGAIN'), tries, 'no write waited');
        } else if (stage === 'migrated') {
          await listening(from.port, 'once the keys have moved');
          assert.deepEqual(await at(from.port, false, 'SSUBSCRIBE', ch), ['ssubscribe', ch, 1]);
          // the keys are at the target: the source answers ASK, the target under ASKING writes
          // and publishes at once (a declared channel would be TRYAGAIN there)
          assert.match(await at(to.port, true, 'EVAL', DECLARED, 2, history, ch), /^TRYAGAIN/);
          assert.match(await at(to.port, true, 'EVAL', MISSING, 2, history, roomKey(room, 'none')), /^TRYAGAIN/);
          const tries = count('TRYAGAIN');
          const asks = count('ASK');
          const before = want.length;
          // six: the write in flight when the counts were read may have had its ASK before
          // them, or been written at the source before the keys moved, and still be counted
          // among the written ones after (seen once on a loaded machine: 4 ASKs for 5 writes)
          await written(6);
          assert.equal(count('TRYAGAIN'), tries, 'no write waited');
          assert.ok(count('ASK') >= asks + 5, 'each write was asked to the target');
          atTarget = want.slice(before).filter((id) => wroteAt.get(id) === to.port);
          assert.ok(atTarget.length >= 5, 'written at the target under ASKING');
          // published at the target, where nobody listens yet: they reach the client only
          // from the history, after the hand-over
          const r = await at(to.port, false, 'PUBSUB', 'SHARDNUMSUB', ch);
          assert.equal(r[1], 0, 'nobody listens at the target before the hand-over');
          assert.ok(!atTarget.some((id) => ids(s).includes(id)), 'not delivered before the hand-over');
        } else if (stage === 'target') {
          // the writes go on at the new owner
          await written(5);
        }
      },
    });
    await written(5);
    writing = false;
    await writer;
    want.sort(byId);
    await waitFor(() => s.events.length >= want.length, { what: 'every event at the client', timeout: 10000 });
    await sleep(300); // a duplicate would come right behind
    assert.deepEqual(ids(s), want);
    assert.equal(s.connects, 1, 'the stream was never cut');
    assert.ok(atTarget.every((id) => ids(s).includes(id)));
    assert.equal(count('TRYAGAIN'), 0, `no write was refused with TRYAGAIN: ${JSON.stringify(refused)}`);
    const now = await waitFor(() => subscribedAt(room), { what: 'subscribed at the new owner' });
    assert.equal(now.port, to.port);
  } finally {
    writing = false;
    await writer?.catch(() => {});
    s.close();
  }
});

// The master (a node object) serving key, from a CLUSTER SLOTS answer (cluster.slots()).
const masterIn = (slots, key) => {
  const slot = slotOf(key);
  const row = slots.find((r) => r.from <= slot && slot <= r.to);
  return row && cluster.nodes.find((n) => n.port === row.port);
};

// A master with a replica in sync (so a failover can promote one).
async function hasReplica(m) {
  const i = await cluster.once(m.port, 'INFO', 'replication');
  return /^slave\d+:.*state=online/m.test(i);
}

// One SSE connection, never resumed: its events, its status, and whether it has ended. It asks
// for the `subscribed` event (subscribed=1), which says it is live: an event emitted before
// that may lie before the position it starts from.
function openOnce(room, { user, sid }) {
  const s = { events: [], status: 0, ended: false };
  const ac = new AbortController();
  s.close = () => ac.abort();
  const t = ticket(SECRET, { room, user, name: `u${user}`, sid });
  s.done = (async () => {
    try {
      const res = await fetch(`${broker.base}/events/rooms/${room}?ticket=${t}&subscribed=1`, { signal: ac.signal });
      s.status = res.status;
      if (res.status === 200) {
        for await (const block of sseBlockStream(res.body)) {
          const ev = sseFields(block);
          if (ev.event) s.events.push(ev);
        }
      }
    } catch { /* aborted */ }
    s.ended = true;
  })();
  return s;
}

// The replicas of master m (node objects), from its INFO replication.
async function replicasOf(m) {
  const i = await cluster.once(m.port, 'INFO', 'replication');
  const ports = [...i.matchAll(/^slave\d+:ip=[^,]*,port=(\d+)/gm)].map((x) => Number(x[1]));
  return cluster.nodes.filter((n) => ports.includes(n.port));
}

// A new stream of the session: its status (200, 401, 503, ...), and nothing more.
async function openStatus(room, { user, sid }) {
  const t = ticket(SECRET, { room, user, name: `u${user}`, sid });
  const res = await fetch(`${broker.base}/events/rooms/${room}?ticket=${t}`);
  await res.body?.cancel();
  return res.status;
}

// The rights question is asked in parts, one per slot (sse-broker/hub.c): here the session's
// part is on a master other than the room's, and that master stops answering while the
// question about a signed-out session is under way (SIGSTOP: the broker's request hangs until
// its heartbeat gives the connection up). The part is lost with the connection; nothing about
// the room's own node changed, so nothing else would ask again: the re-check itself must
// (and, failing that, drop the stream), or a signed-out session keeps reading the room.
// `failover`: the master's replica takes over (the question is answered there); without, the
// master stays away (its replicas may not take over, and the rest of the cluster serves on).
async function signedOutWhileStopped({ failover }) {
  const slots = await cluster.slots();
  const masters = await cluster.masters();
  const accessAt = masterIn(slots, 'cc:access');
  // the session's master: not where the sign-out is published (its loss would re-check every
  // room), with a replica that can take over when one should
  let victim;
  for (const m of masters) if (m !== accessAt && (!failover || await hasReplica(m))) { victim = m; break; }
  const replicated = await hasReplica(victim);
  const roomAt = masters.find((m) => m !== victim);
  const room = await roomOn(roomAt);
  let sid;
  do sid = newSid(); while (masterIn(slots, `cc:sess:${sid}:revoked`) !== victim);
  let user = 1000;
  while (masterIn(slots, `cc:user:${user}:tokgen`) !== roomAt) user++;
  await waitFor(async () => (await cluster.once(accessAt.port, 'PUBSUB', 'SHARDNUMSUB', 'cc:access'))[1] >= 1,
    { what: 'the broker listens to cc:access' });
  const held = failover ? [] : await replicasOf(victim);
  const restore = [];
  const config = async (n, key, value, back) => {
    await cluster.once(n.port, 'CONFIG', 'SET', key, value);
    restore.push([n, key, back]);
  };

  const s = openOnce(room, { user, sid });
  let stopped = false;
  try {
    if (!failover) {
      // the master stays away: its replicas do not take over, and the others serve on
      for (const n of cluster.alive()) await config(n, 'cluster-require-full-coverage', 'no', 'yes');
      for (const n of held) await config(n, 'cluster-replica-no-failover', 'yes', 'no');
    }
    await waitFor(() => s.events.some((e) => e.event === 'subscribed'), { what: 'the stream live' });
    const first = await emit(room, 1);
    await waitFor(() => s.events.some((e) => e.id === first), { what: 'an event before the sign-out' });

    // the sign-out as the API does it: the session's mark (replicated, as its writes are),
    // then {"user":U} on cc:access; the mark's master stops answering in between
    const mark = `cc:sess:${sid}:revoked`;
    if (replicated) {
      const [, acks] = await cluster.cmdThen(mark, ['SET', mark, '1', 'EX', 3600], (r) => r.cmd('WAIT', 1, 5000));
      assert.equal(acks, 1, 'a replica has the mark');
    } else {
      await cluster.cmd(mark, 'SET', mark, '1', 'EX', 3600);
    }
    cluster.pause(victim);
    stopped = true;
    await cluster.cmd('cc:access', 'SPUBLISH', 'cc:access', JSON.stringify({ user }));

    // the room's own master is fine: events keep coming while the stream is open
    let n = 1;
    const before = s.events.length;
    await waitFor(async () => {
      if (!s.ended) await emit(room, ++n);
      return s.ended;
    }, { what: 'the stream to end', timeout: 30000, interval: 500 }).catch((e) => {
      throw new Error(`${e.message}: still open, ${s.events.length - before} events delivered after the sign-out`);
    });
    if (!failover) {
      // nobody can tell whether the session may read: its next stream is refused for now
      assert.equal(await openStatus(room, { user, sid }), 503, 'a new stream while the master is away');
      cluster.resume(victim);
      stopped = false;
    }
    // what the user sees afterwards: the session cannot read the room again
    await waitFor(async () => await openStatus(room, { user, sid }) === 401,
      { what: 'a new stream of the signed-out session refused (401)', timeout: 30000, interval: 500 });
  } finally {
    s.close();
    if (stopped) cluster.resume(victim);
    await waitFor(() => cluster.ready(), { what: 'the cluster whole again', timeout: 60000, interval: 500 });
    for (const [node, key, value] of restore) await cluster.once(node.port, 'CONFIG', 'SET', key, value);
  }
}

test('a session signed out while the master holding its session key stops answering: the stream ends once its replica answers', async () => {
  await signedOutWhileStopped({ failover: true });
});

test('a session signed out while the master holding its session key stays away: the stream is dropped, and the session is refused once the master is back', async () => {
  await signedOutWhileStopped({ failover: false });
});
