// A removal or a demotion that Redis loses in a failover must not come back as access. The
// member cache (cc:room:{id}:members) is what the document endpoints and the broker trust on
// a hit, and nothing corrects an entry the removed member still has there (their own GET is
// refused before it touches the cache). So a change that takes rights away is answered only
// once a replica holds it (REDIS_WAIT_REPLICAS, as a commit is; docs/SECURITY.md): a master
// that dies after the answer cannot take the removal with it.
//
// The test runs the API binary as CGI (as tests/stack/durability.test.mjs does) against a
// Redis master and replica of its own, the replica fed through a TCP relay the test can hold:
// what the relay holds when the master dies never reaches the replica, as with a master that
// dies before it replicated. PostgreSQL is the stack's.
//
// A request run with cgi() blocks this process, and with it the relay: the replica hears
// nothing until the run ends, so such a request that must wait for a replica is answered 503.
// The requests that must see a replica confirm at once run with cgiAsync() instead, the relay
// passing the master's stream only when the master asks the replica how far it got (what a
// WAIT makes it do): a replica that holds what the master waited for and nothing else.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, cgi, cgiAsync, newUser, createRoom } from '../lib/api.mjs';
import { freePort, waitFor } from '../lib/procs.mjs';
import { connectRedis } from '../lib/resp.mjs';

const procs = [];
const dirs = [];
const relays = [];
const clients = [];
after(async () => {
  for (const c of clients) c.close();
  for (const r of relays) r.close();
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function redisServer(args) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cc-failover-'));
  dirs.push(dir);
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, ...args], { stdio: 'ignore' });
  procs.push(p);
  await waitFor(async () => {
    try { (await connectRedis(port)).close(); return true; } catch { return false; }
  }, { what: `redis-server on ${port}` });
  return { port, proc: p };
}

// A relay from the replica to the master: replies from the master (the replication stream)
// pass while open and are held while held; release() sends what was held, cut() drops it
// and every connection, as a master that died before sending it. onlyWhenAsked() holds them
// too, but sends all that was held as soon as the master asks the replica for its offset
// (REPLCONF GETACK, which the master sends when a client WAITs for replicas).
async function relayTo(port) {
  const listen = await freePort();
  let mode = 'open'; // or 'held', 'asked'
  const pairs = [];
  const flush = (p) => { for (const d of p.queue) p.down.write(d); p.queue = []; };
  const server = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    const pair = { down, up, queue: [], tail: '' };
    pairs.push(pair);
    down.on('data', (d) => up.write(d));
    up.on('data', (d) => {
      if (mode === 'open') { down.write(d); return; }
      pair.queue.push(d);
      if (mode !== 'asked') return;
      // the request may come split across reads: the end of the last one is kept
      const seen = pair.tail + d.toString('latin1');
      pair.tail = seen.slice(-16);
      if (seen.includes('GETACK')) flush(pair);
    });
    const end = () => { down.destroy(); up.destroy(); };
    down.on('error', end); up.on('error', end); down.on('close', end); up.on('close', end);
  });
  await new Promise((r) => server.listen(listen, '127.0.0.1', r));
  const relay = {
    port: listen,
    hold() { mode = 'held'; },
    onlyWhenAsked() { mode = 'asked'; },
    // does what the relay holds contain this text (a command of the replication stream)?
    holds(text) {
      return pairs.some((p) => Buffer.concat(p.queue).toString('latin1').includes(text));
    },
    release() {
      mode = 'open';
      pairs.forEach(flush);
    },
    cut() {
      mode = 'held';
      for (const p of pairs) { p.queue = []; p.down.destroy(); p.up.destroy(); }
      if (server.listening) server.close();
    },
    close() { relay.cut(); },
  };
  relays.push(relay);
  return relay;
}

const url = (port) => `redis://127.0.0.1:${port}`;

// A master and a replica fed through a relay, in sync; the API as CGI in front of either.
async function replicatedRedis() {
  const master = await redisServer([]);
  const relay = await relayTo(master.port);
  const replica = await redisServer(['--replicaof', '127.0.0.1', String(relay.port)]);
  const rr = await connectRedis(replica.port);
  clients.push(rr);
  await waitFor(async () => /master_link_status:up/.test(await rr.cmd('INFO', 'replication')),
    { timeout: 30000, what: 'the replica in sync' });
  return {
    master, relay, replica, rr,
    // as with REDIS_CLUSTER, one replica must confirm
    onMaster: (opts) => cgi({ ...opts, env: { REDIS_URL: url(master.port), REDIS_CLUSTER: '', REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_MS: '200' } }),
    // not blocking this process: the relay in it must pass the replication meanwhile
    onMasterAsync: (opts) => cgiAsync({ ...opts, env: { REDIS_URL: url(master.port), REDIS_CLUSTER: '', REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_MS: '1500' } }),
    onReplica: (opts) => cgi({ ...opts, env: { REDIS_URL: url(replica.port), REDIS_CLUSTER: '' } }),
    // the master dies with what the relay holds; the replica takes over with what it has
    async failover() {
      relay.cut();
      master.proc.kill('SIGKILL');
      await new Promise((res) => master.proc.once('exit', res));
      await rr.cmd('REPLICAOF', 'NO', 'ONE');
    },
  };
}

// A private room with owner and member m, m's entry in the master's member cache and the
// replica's.
async function roomWithMember(R, prefix) {
  const owner = await newUser(`${prefix}o`);
  const m = await newUser(`${prefix}m`);
  const room = await createRoom(owner.token, { visibility: 'private' });
  const r = await call('POST', `/api/rooms/${room.id}/join`, { token: m.token, body: { invite: room.invite } });
  assert.equal(r.status, 200, r.text);
  // the member opens the room: their entry goes into the master's member cache
  const g = R.onMaster({ method: 'GET', uri: `/api/rooms/${room.id}`, token: m.token });
  assert.equal(g.status, 200, g.body);
  const key = `cc:room:{${room.id}}:members`;
  await waitFor(async () => (await R.rr.cmd('HGET', key, String(m.user.id))) === 'editor',
    { what: 'the member entry on the replica' });
  return { owner, m, room };
}

// The owner's change sent while the replica hears nothing; a 503 ("send it again") is sent
// again, as the client does, once the replica can hear. The answer the owner ends with.
async function changeAsTheOwnerSeesIt(R, opts) {
  R.relay.hold();
  let r = R.onMaster(opts);
  if (r.status === 503) {
    assert.equal(r.json.error, 'redis_unavailable', r.body);
    R.relay.release();
    r = await R.onMasterAsync(opts);
  }
  return r;
}

test('a removal answered as done survives the loss of the master: the removed member reads and edits nothing', async () => {
  const R = await replicatedRedis();
  const { owner, m, room } = await roomWithMember(R, 'fr');
  const r = await changeAsTheOwnerSeesIt(R, { method: 'DELETE', uri: `/api/rooms/${room.id}/members/${m.user.id}`, token: owner.token });
  // 204, or the retry of a removal that happened: 404 member_not_found, in force everywhere
  assert.ok(r.status === 204 || (r.status === 404 && r.json.error === 'member_not_found'), r.body);

  await R.failover();
  let a = R.onReplica({ method: 'GET', uri: `/api/rooms/${room.id}/history`, token: m.token });
  assert.equal(a.status, 403, `the removed member reads the room's history: ${a.body}`);
  a = R.onReplica({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: m.token,
    body: { revision: 0, ops: ['after the removal'] } });
  assert.equal(a.status, 403, `the removed member edits the room: ${a.body}`);
  a = R.onReplica({ method: 'PUT', uri: `/api/rooms/${room.id}/presence`, token: m.token, body: { cursor: 0 } });
  assert.equal(a.status, 403, `the removed member shows a caret in the room: ${a.body}`);
});

test('a demotion to viewer answered as done survives the loss of the master: the viewer edits nothing', async () => {
  const R = await replicatedRedis();
  const { owner, m, room } = await roomWithMember(R, 'fd');
  const r = await changeAsTheOwnerSeesIt(R, { method: 'PUT', uri: `/api/rooms/${room.id}/members/${m.user.id}`,
    token: owner.token, body: { role: 'viewer' } });
  assert.equal(r.status, 200, r.body);

  await R.failover();
  let a = R.onReplica({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: m.token,
    body: { revision: 0, ops: ['after the demotion'] } });
  assert.equal(a.status, 403, `the viewer edits the room: ${a.body}`);
  a = R.onReplica({ method: 'PUT', uri: `/api/rooms/${room.id}/document`, token: m.token,
    body: { content: 'replaced', base_revision: 0 } });
  assert.equal(a.status, 403, `the viewer replaces the document: ${a.body}`);
});

// The WAITs the master has answered (INFO commandstats), 0 before the first.
async function waitsAnswered(R) {
  const c = await connectRedis(R.master.port);
  try {
    const m = /cmdstat_wait:calls=(\d+)/.exec(await c.cmd('INFO', 'commandstats'));
    return m ? Number(m[1]) : 0;
  } finally { c.close(); }
}

// The same two changes with a replica that confirms them: the relay passes only what the
// master waits for, so the answer is the done one at once, and what it waited for is all the
// replica has when the master dies. On one Redis the change and the cancels of the member's
// runs after it go on one connection, and one WAIT after the cancels covers both: one round
// trip to the replica per change, not two.
for (const [what, req, done] of [
  ['a removal', (room, m) => ({ method: 'DELETE', uri: `/api/rooms/${room.id}/members/${m.user.id}` }), 204],
  ['a demotion to viewer', (room, m) => ({ method: 'PUT', uri: `/api/rooms/${room.id}/members/${m.user.id}`,
    body: { role: 'viewer' } }), 200],
]) {
  test(`${what} that a replica confirms is answered done at once after one WAIT, and the member edits nothing after the loss of the master`, async () => {
    const R = await replicatedRedis();
    const { owner, m, room } = await roomWithMember(R, 'fq');
    R.relay.onlyWhenAsked();
    const before = await waitsAnswered(R);
    const r = await R.onMasterAsync({ ...req(room, m), token: owner.token });
    assert.equal(r.status, done, `${what} with a replica that confirms: ${r.body}`);
    assert.equal(await waitsAnswered(R) - before, 1, `${what}: WAITs sent to the master`);
    await R.failover();
    const a = R.onReplica({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: m.token,
      body: { revision: 0, ops: [`after ${what}`] } });
    assert.equal(a.status, 403, `${what}, then a failover: the member edits the room: ${a.body}`);
  });
}

// The same for what ends a session: a sign-out, a password change and an account deletion
// are answered as done only once a replica holds them, and a request that finds its session
// already over (the retry of one answered 503, whose write the master has) is answered 401
// only once a replica holds that. So the user's old token is refused after the failover.
// Sent with the relay held (and through cgi(), which holds it as well), the first answer is
// a 503 and the retry's a 401 or the done one; sent through the relay that passes only what
// the master waits for (below), the one answer is the done one.
async function endAsTheUserSeesIt(R, opts) {
  R.relay.hold();
  let r = R.onMaster(opts);
  if (r.status === 503) {
    assert.equal(r.json.error, 'redis_unavailable', r.body);
    // and again while the replica still hears nothing: the master refuses the session now,
    // but says so only once a replica holds it
    const early = R.onMaster(opts);
    assert.equal(early.status, 503, early.body);
    R.relay.release();
    r = await R.onMasterAsync(opts);
  }
  return r;
}

// A user with a session the master's Redis and the replica's both know (its generation
// copied there): else the failover loses the generation altogether, and the API refills it
// from PostgreSQL, which knows the change anyway.
async function userKnownToBoth(R) {
  const u = await newUser('fs');
  const me = R.onMaster({ method: 'GET', uri: '/api/auth/me', token: u.token });
  assert.equal(me.status, 200, me.body);
  await waitFor(async () => (await R.rr.cmd('EXISTS', `cc:user:${u.user.id}:tokgen`)) === 1,
    { what: 'the generation on the replica' });
  return u;
}

async function failoverRefuses(R, u, what) {
  await R.failover();
  // /api/auth/me reads the account in PostgreSQL; the room list trusts the session check
  for (const uri of ['/api/auth/me', '/api/rooms']) {
    const after = R.onReplica({ method: 'GET', uri, token: u.token });
    assert.equal(after.status, 401, `${what}, then a failover: the old token still works on ${uri}: ${after.body}`);
  }
}

for (const [what, req, done] of [
  ['a sign-out', (u) => ({ method: 'POST', uri: '/api/auth/logout', token: u.token }), 204],
  ['a password change', (u) => ({ method: 'POST', uri: '/api/auth/password', token: u.token,
    body: { password: u.password, new_password: 'changed-password-1' } }), 200],
  ['an account deletion', (u) => ({ method: 'DELETE', uri: '/api/auth/me', token: u.token,
    body: { password: u.password } }), 204],
]) {
  test(`${what} answered as done survives the loss of the master: the old token is refused`, async () => {
    const R = await replicatedRedis();
    const u = await userKnownToBoth(R);
    const r = await endAsTheUserSeesIt(R, req(u));
    // done, or the retry of one that was done: 401 session_revoked
    assert.ok(r.status === done || (r.status === 401 && r.json.error === 'session_revoked'), r.body);
    await failoverRefuses(R, u, what);
  });

  test(`${what} that a replica confirms is answered done at once, and survives the loss of the master`, async () => {
    const R = await replicatedRedis();
    const u = await userKnownToBoth(R);
    // the replica hears only what the master waits for; the run leaves the relay free
    R.relay.onlyWhenAsked();
    const r = await R.onMasterAsync(req(u));
    assert.equal(r.status, done, `${what} with a replica that confirms: ${r.body}`);
    // the master dies with anything it did not wait for
    await failoverRefuses(R, u, what);
  });
}

// A commit whose answer was 503 (no replica confirmed it) and that the client sends again is
// recognised as the first commit; that answer too waits for a replica, and its WAIT, sent on
// another connection than the first commit's, must cover it: with the relay passing only what
// the master waits for, an answered repeat whose WAIT covered nothing would leave the first
// commit with the master, and the failover would lose an operation the client was told is in.
test('an operation answered 503 and sent again is answered only once a replica holds the first commit, which then survives the loss of the master', async () => {
  const R = await replicatedRedis();
  const u = await userKnownToBoth(R);
  const room = await createRoom(u.token, { visibility: 'private' });
  // the room's live state on the master, and on the replica before it stops hearing
  const g = R.onMaster({ method: 'GET', uri: `/api/rooms/${room.id}/document`, token: u.token });
  assert.equal(g.status, 200, g.body);
  await waitFor(async () => (await R.rr.cmd('EXISTS', `cc:room:{${room.id}}:doc`)) === 1,
    { what: 'the document on the replica' });
  const op = { method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: u.token,
    body: { revision: 0, ops: ['kept across the failover'], client_id: 'failover-site' } };
  R.relay.hold();
  const first = R.onMaster(op);
  assert.equal(first.status, 503, first.body);
  assert.equal(first.json.error, 'redis_unavailable', first.body);
  // cgi() blocked this process: what the master sent meanwhile (the commit, then the ask of
  // its WAIT) is still in the relay's socket. It must be held before the relay passes asks,
  // or that first, late ask would let the commit through whatever the repeat does
  await waitFor(async () => R.relay.holds('GETACK'), { what: 'the first WAIT\'s ask held' });
  R.relay.onlyWhenAsked();
  const again = await R.onMasterAsync(op);
  assert.equal(again.status, 200, again.body);
  assert.equal(again.json.revision, 1, again.body);
  await R.failover();
  const doc = R.onReplica({ method: 'GET', uri: `/api/rooms/${room.id}/document`, token: u.token });
  assert.equal(doc.status, 200, doc.body);
  assert.equal(doc.json.content, 'kept across the failover', `the failover lost the commit: ${doc.body}`);
  assert.equal(doc.json.revision, 1, doc.body);
});
