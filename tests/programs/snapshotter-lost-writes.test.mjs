// The snapshotter after Redis lost writes that the room's saved history holds and then took
// other commits (docs/INTERNALS.md, "When Redis loses its last writes", "Diverged"), when a
// client commits inside the snapshotter's window: between restart_chain's fold and its
// reset (lib/lua/doc_reset.lua), whose compare-and-set on the revision is then refused. That
// save must write nothing, so the next pass still sees the divergence: the room's clients get
// `resync` {reason: document_restored}, the document moves past both histories, and no
// checkpoint of the diverged text on the old numbering hides it (tests/stack/redis-loss
// .test.mjs covers the same loss without the race).
//
// Real parts: a redis-server, a PostgreSQL with the schema, the API run as CGI for commits
// and reads, and codecollab-snapshotter processes started here. The window is made with a
// TCP proxy between the snapshotter and Redis that forwards everything but holds back the
// first doc_reset script call until the test has committed once more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, createServer } from 'node:net';
import { start, stop, waitFor } from '../lib/procs.mjs';
import { connectRedis, firstCommand, roomKey } from '../lib/resp.mjs';
import { scripts } from '../lib/rscripts.mjs';
import { snapshotterGround, SNAP_BIN } from '../lib/snapshotter-ground.mjs';

const { redisSrv, base } = await snapshotterGround('snapshotter-lost-writes-secret-0123456789');
// after the ground: it sets what tests/lib/api.mjs wants at its load
const { cgiAsync } = await import('../lib/api.mjs');
// commits mark the room due one second on; a snapshotter here passes every second
const ENV = { SNAPSHOT_INTERVAL_MS: '1000' };
const DOC_RESET = scripts().get('doc_reset');
const BASE_TEXT = '-'.repeat(2000); // long enough that a few characters typed save as a batch

const api = async (req) => {
  const r = await cgiAsync({ ...req, env: { ...base, ...ENV } });
  assert.equal(r.code, 0, r.stderr.slice(0, 2000));
  return r;
};

async function roomOf() {
  const reg = await api({ method: 'POST', uri: '/api/auth/register', body: { username: 'lostwrites1', password: 'lost-writes-pass-123' } });
  assert.equal(reg.status, 201, reg.body);
  const room = await api({ method: 'POST', uri: '/api/rooms', token: reg.json.token, body: { name: 'lost writes' } });
  assert.equal(room.status, 201, room.body);
  return { id: room.json.room.id, token: reg.json.token };
}

async function commitAll(room, revision, list) {
  for (const ops of list) {
    const r = await api({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, body: { revision, ops } });
    assert.equal(r.status, 200, r.body);
    revision = r.json.revision;
  }
  return revision;
}

const getDoc = async (room) => {
  const r = await api({ method: 'GET', uri: `/api/rooms/${room.id}/document`, token: room.token });
  assert.equal(r.status, 200, r.body);
  return r.json;
};
const historyRevisions = async (room) => {
  const r = await api({ method: 'GET', uri: `/api/rooms/${room.id}/history`, token: room.token });
  assert.equal(r.status, 200, r.body);
  return r.json.snapshots.map((s) => s.revision);
};
const historyText = async (room, revision) => {
  const r = await api({ method: 'GET', uri: `/api/rooms/${room.id}/history/${revision}`, token: room.token });
  assert.equal(r.status, 200, r.body);
  return r.json.content;
};

function snapshotter(redisUrl) {
  const e = { ...process.env, ...base, ...ENV, REDIS_URL: redisUrl };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return start(SNAP_BIN, [], { env: e });
}

// A snapshotter straight on Redis that saves what is marked and stops (SIGTERM: one pass over
// every marked room, due or not).
async function saveAll() {
  const snap = snapshotter(base.REDIS_URL);
  try {
    await waitFor(() => snap.output.includes('writing room snapshots'), { what: 'the snapshotter started', timeout: 20000 });
  } finally {
    const ex = await stop(snap, 'SIGTERM', 20000);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
}

// A TCP proxy to Redis on `port` that forwards every command and reply as they come, except
// the first call of doc_reset (EVALSHA by its SHA-1, or EVAL by its text): that one, and what
// follows it on its connection, waits until release(). `held` resolves once it is waiting;
// `answer` with Redis's reply to the script once released (a NOSCRIPT answer to EVALSHA is
// followed by the EVAL, whose answer counts).
async function resetHoldingProxy(port) {
  let release;
  const released = new Promise((r) => { release = r; });
  let onHeld, onAnswer;
  const held = new Promise((r) => { onHeld = r; });
  const answer = new Promise((r) => { onAnswer = r; });
  let caught = false;
  const socks = new Set();
  const server = createServer((down) => {
    const up = createConnection(port, '127.0.0.1');
    socks.add(down).add(up);
    let pending = Buffer.alloc(0);
    let holding = false;
    let watching = false;
    let replies = '';
    const end = () => { down.destroy(); up.destroy(); socks.delete(down); socks.delete(up); };
    down.on('error', end);
    up.on('error', end);
    down.on('close', end);
    up.on('close', end);
    up.on('data', (d) => {
      down.write(d);
      if (!watching) return;
      replies += d.toString('latin1');
      const m = /^(?:-NOSCRIPT[^\r]*\r\n)?(:-?\d+|-(?!NOSCRIPT)[^\r]*)\r\n/.exec(replies);
      if (m) { watching = false; onAnswer(m[1]); }
    });
    const pump = () => {
      while (!holding && pending.length) {
        const c = firstCommand(pending);
        if (!c) return;
        const name = c.args[0].toUpperCase();
        const isReset = (name === 'EVALSHA' && c.args[1] === DOC_RESET.sha) ||
          (name === 'EVAL' && c.args[1] === DOC_RESET.text);
        if (isReset && !caught) {
          caught = true;
          holding = true;
          onHeld(c.args);
          released.then(() => { holding = false; watching = true; pump(); });
          return;
        }
        up.write(pending.subarray(0, c.end));
        pending = pending.subarray(c.end);
      }
    };
    down.on('data', (d) => {
      pending = Buffer.concat([pending, d]);
      pump();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${server.address().port}`,
    held, answer, release,
    close() {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

test('a commit inside the snapshotter\'s restart after lost writes: nothing is saved from the old fold, and the next pass restarts the chain', async () => {
  const redis = await connectRedis(redisSrv.port);
  const room = await roomOf();
  const keys = ['doc', 'ops', 'commits'];
  // revisions 1..3 typed and saved, Redis's write keys kept aside there, 4..6 typed and saved
  let rev = await commitAll(room, 0, [[BASE_TEXT], [2000, 'a'], [2001, 'b']]);
  await saveAll();
  for (const k of keys) await redis.cmd('COPY', roomKey(room.id, k), roomKey(room.id, `${k}:aside`));
  rev = await commitAll(room, rev, [[2002, 'c'], [2003, 'd'], [2004, 'e']]);
  assert.equal(rev, 6);
  await saveAll();
  assert.equal((await historyRevisions(room))[0], 6);
  // Redis loses 4..6 (its document back at 3), and other commits take revisions 4..7
  for (const k of keys) {
    await redis.cmd('COPY', roomKey(room.id, `${k}:aside`), roomKey(room.id, k), 'REPLACE');
    await redis.cmd('DEL', roomKey(room.id, `${k}:aside`));
  }
  assert.equal((await getDoc(room)).revision, 3);
  rev = await commitAll(room, 3, [[2002, 'w'], [2003, 'x'], [2004, 'y'], [2005, 'z']]);
  assert.equal(rev, 7);
  const diverged = BASE_TEXT + 'abwxyz';

  const proxy = await resetHoldingProxy(redisSrv.port);
  const snap = snapshotter(proxy.url);
  try {
    // the snapshotter found the divergence and is about to reset the document at 7; a
    // client commits first
    let args = null, answer = null;
    proxy.held.then((a) => { args = a; });
    proxy.answer.then((a) => { answer = a; });
    await waitFor(() => args, { what: 'the snapshotter\'s reset', timeout: 30000 });
    // EVALSHA sha 4 doc ops commits events expected-revision …
    assert.equal(args[7], '7', `the reset expects revision 7: ${args.slice(0, 9)}`);
    rev = await commitAll(room, 7, [[2006, '!']]);
    assert.equal(rev, 8);
    proxy.release();
    await waitFor(() => answer, { what: 'Redis\'s answer to the reset', timeout: 30000 });
    assert.equal(answer, ':0', 'the reset\'s compare-and-set was not refused');
    const live = diverged + '!';

    // the next pass restarts the chain past both histories: revision 9, and every client
    // of the room told to fetch the document again
    const doc = await waitFor(async () => {
      const d = await getDoc(room);
      return d.revision === 9 && d;
    }, { what: 'the document moved past both histories (revision 9)', timeout: 30000, interval: 200 })
      .catch(async (e) => {
        throw new Error(`${e.message}; the document is at ${(await getDoc(room)).revision}, ` +
          `the history holds revisions ${await historyRevisions(room)}`);
      });
    assert.equal(doc.content, live);
    const events = await redis.cmd('XRANGE', roomKey(room.id, 'events'), '-', '+');
    const resyncs = events.map(([, f]) => f).filter((f) => f[f.indexOf('type') + 1] === 'resync')
      .map((f) => JSON.parse(f[f.indexOf('data') + 1]));
    assert.deepEqual(resyncs, [{ reason: 'document_restored', revision: 9, saved_revision: 6, text: 'live' }]);
    await waitFor(async () => (await historyRevisions(room))[0] === 9, { what: 'the checkpoint at 9 saved', timeout: 30000, interval: 200 });
  } finally {
    const ex = await stop(snap, 'SIGTERM', 20000);
    proxy.close();
    redis.close();
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
  // the history: nothing saved from the diverged Redis on the old numbering (7, 8), the
  // saved revisions of the lost edits still there, the live text at the new checkpoint
  const revs = await historyRevisions(room);
  assert.ok(!revs.some((r) => r > 6 && r < 9), `a save of the diverged text on the old numbering: ${revs}`);
  assert.ok(revs.includes(6), `history: ${revs}`);
  assert.equal(await historyText(room, 6), BASE_TEXT + 'abcde');
  assert.equal(await historyText(room, 9), diverged + '!');
  for (const r of [7, 8]) {
    const h = await api({ method: 'GET', uri: `/api/rooms/${room.id}/history/${r}`, token: room.token });
    assert.equal(h.status, 404, `history/${r}: ${h.body}`);
  }
  // a client at the revision the live document had before the restart must fetch it again
  const stale = await api({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, body: { revision: 8, ops: [1, 'q'] } });
  assert.equal(stale.status, 409, stale.body);
  assert.equal(stale.json.error, 'revision_too_old');
});
