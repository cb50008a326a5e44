// Access that is taken away stays away, through the real stack (API, lighttpd, broker):
// every stream asks its rights before it starts, whatever its credential, and every open
// stream (SSE, WebSocket, long-poll; ticket or bearer) ends when its rights go: removal from
// the room, the room going private, sign-out, a password change. And events up to
// EVENTS_DATA_MAX reach every transport (or a resync), never a silent gap.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { BASE, call, newUser, createRoom, roomEvents, connectStackRedis } from '../lib/api.mjs';
import { start, stop, waitFor } from '../lib/procs.mjs';

const WS_BASE = BASE.replace(/^http/, 'ws');
let rc;
// every stream this file opens (sse(), ws()): the ones a test leaves open on purpose (a
// session that keeps its streams) are closed at the end, or the file would stay until the
// front door drops them
const openedStreams = new Set();

before(async () => {
  rc = await connectStackRedis();
});
after(async () => {
  for (const s of openedStreams) await s.close();
  rc?.close();
});

// ---- clients ----

async function ticketOf(user, room) {
  const r = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: user.token, body: {} });
  assert.equal(r.status, 200, r.text);
  return r.json.ticket;
}

// SSE through curl -N: exits when the broker ends the response.
function sse(room, { ticket, token }) {
  const args = ['-sN', '--no-buffer', `${BASE}/events/rooms/${room.id}${ticket ? `?ticket=${ticket}` : ''}`];
  if (token) args.push('-H', `Authorization: Bearer ${token}`);
  const child = start('curl', args);
  let text = '';
  child.stdout.on('data', (d) => { text += d; });
  const exited = new Promise((resolve) => child.once('exit', () => resolve(true)));
  const stream = {
    child,
    exited,
    get text() { return text; },
    connected: () => waitFor(() => text.includes(': connected'), { what: 'SSE connected' }),
    events() {
      const out = [];
      for (const block of text.slice(0, text.lastIndexOf('\n\n') + 2).split('\n\n')) {
        const ev = { data: [] };
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) ev.id = line.slice(4);
          else if (line.startsWith('event: ')) ev.type = line.slice(7);
          else if (line.startsWith('data: ')) ev.data.push(line.slice(6));
        }
        if (ev.type) out.push({ id: ev.id, type: ev.type, data: JSON.parse(ev.data.join('\n')) });
      }
      return out;
    },
    close: () => stop(child, 'SIGKILL'),
  };
  openedStreams.add(stream);
  return stream;
}

function ws(room, { ticket, token }) {
  const sock = new WebSocket(`${WS_BASE}/events/rooms/${room.id}/ws${ticket ? `?ticket=${ticket}` : ''}`,
    token ? { headers: { Authorization: `Bearer ${token}` } } : undefined);
  const events = [];
  sock.on('message', (m) => events.push(JSON.parse(m.toString())));
  const opened = new Promise((resolve, reject) => {
    sock.once('open', resolve);
    sock.once('unexpected-response', (_req, res) => reject(Object.assign(new Error('refused'), { status: res.statusCode })));
    sock.once('error', reject);
  });
  opened.catch(() => {});
  const closed = new Promise((resolve) => sock.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const stream = { sock, events, opened, closed, close: () => sock.terminate() };
  openedStreams.add(stream);
  return stream;
}

// The status a WebSocket upgrade is answered with (101 when it opens).
async function wsStatus(room, cred) {
  const c = ws(room, cred);
  try {
    await c.opened;
    c.close();
    return 101;
  } catch (e) {
    return e.status;
  }
}

function pollUrl(room, { ticket, since }) {
  const q = new URLSearchParams();
  if (ticket) q.set('ticket', ticket);
  if (since) q.set('since', since);
  return `${BASE}/events/rooms/${room.id}/poll?${q}`;
}

const streamsOpen = async () => (await (await fetch(`${BASE}/events/health`)).json()).clients;

// A long-poll of `room` after `since` with `cred` (a ticket, or a bearer token): resolves
// with its answer and when it came.
function poll(room, cred, since) {
  const headers = cred.token ? { Authorization: `Bearer ${cred.token}` } : {};
  return fetch(pollUrl(room, { ticket: cred.ticket, since }), { headers })
    .then(async (r) => ({ status: r.status, body: await r.json(), at: Date.now() }));
}

// A long-poll waiting after the room's newest event, with its credential. It is waited for
// until the broker counts it (other test files may open streams meanwhile, so this only
// makes it likely the poll is open before what the test does next; allEnded() accepts a
// poll that came too late and was refused).
async function pendingPoll(room, cred) {
  const last = await rc.cmd('XREVRANGE', `cc:room:{${room.id}}:events`, '+', '-', 'COUNT', 1);
  const since = last.length ? last[0][0] : '0';
  const before = await streamsOpen();
  const answer = poll(room, cred, since);
  await waitFor(async () => (await streamsOpen()) > before, { what: 'poll open', timeout: 3000 }).catch(() => {});
  return { answer, cred };
}

async function status(url, token) {
  const r = await fetch(url, token ? { headers: { Authorization: `Bearer ${token}` } } : undefined);
  await r.arrayBuffer();
  return r.status;
}

const ops = (events) => events.filter((e) => e.type === 'operation');
const jwtClaims = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());

async function privateRoomWith(owner, member) {
  const room = await createRoom(owner.token, { visibility: 'private' });
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: member.token, body: { invite: room.invite } });
  assert.equal(j.status, 200, j.text);
  return room;
}

async function postOp(user, room, revision, opsList) {
  const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: user.token, body: { revision, ops: opsList } });
  assert.equal(r.status, 200, r.text);
  return r.json.revision;
}

// The owner's own stream: proof that an event went out to the room.
async function watch(owner, room) {
  const w = sse(room, { token: owner.token });
  await w.connected();
  return w;
}

// How soon after the rights went a waiting long-poll must be answered: generous for a
// loaded machine, yet well below BROKER_POLL_TIMEOUT_MS (25 s), when a poll the broker
// forgot to cut would be answered (200, no events) anyway.
const CUT_WITHIN_MS = 10000;

// The refusals the broker answers a stream with once its rights went (docs/API.md, Streams).
const NOT_A_MEMBER = { status: 403, error: 'not_a_member', message: 'not a member of this room' };
const SIGNED_OUT = { status: 401, error: 'session_revoked', message: 'this session was signed out' };

// Every stream in `streams` has ended the way a revoked stream ends, the rights having gone
// at `revokedAt` (Date.now() once the API answered): SSE ends, WebSocket closes 1008, a
// long-poll is answered at once with what it held (nothing of the room after the rights
// went), and the same poll made again from that answer, with the same ticket or bearer
// token, is refused with `refusal`. A poll that reached the broker only after the rights
// went is refused with `refusal` itself.
async function allEnded({ sses = [], wss = [], polls = [] }, { room, revokedAt, refusal }) {
  for (const s of sses) assert.equal(await s.exited, true);
  for (const w of wss) {
    const { code } = await w.closed;
    assert.equal(code, 1008);
  }
  const refused = (r, what) => {
    assert.equal(r.status, refusal.status, `${what}: ${JSON.stringify(r.body)}`);
    assert.deepEqual(r.body, { error: refusal.error, message: refusal.message }, what);
  };
  for (const p of polls) {
    const r = await p.answer;
    if (r.status !== 200) {
      refused(r, 'a poll that came after the rights went');
      continue;
    }
    assert.ok(r.at - revokedAt < CUT_WITHIN_MS,
      `the waiting poll was answered ${r.at - revokedAt} ms after the rights went (cut by the broker, not by its timeout)`);
    assert.equal(ops(r.body.events).length, 0, 'nothing after the rights went');
    assert.equal(typeof r.body.last_event_id, 'string', JSON.stringify(r.body));
    refused(await poll(room, p.cred, r.body.last_event_id), 'the next poll from the answer, same credential');
  }
}

// ---- (1) an old ticket opened after the removal ----

test('a removed member\'s old ticket is refused on SSE, WebSocket and long-poll (403)', async () => {
  const owner = await newUser('own');
  const e = await newUser('e');
  const room = await privateRoomWith(owner, e);
  const t = await ticketOf(e, room);
  assert.equal(await status(pollUrl(room, { ticket: t, since: '0' })), 200, 'the ticket works while a member');
  const del = await call('DELETE', `/api/rooms/${room.id}/members/${e.user.id}`, { token: owner.token });
  assert.equal(del.status, 204, del.text);

  const r = await fetch(`${BASE}/events/rooms/${room.id}?ticket=${t}`);
  assert.equal(r.status, 403);
  assert.deepEqual(await r.json(), { error: 'not_a_member', message: 'not a member of this room' });
  assert.equal(await wsStatus(room, { ticket: t }), 403);
  assert.equal(await status(pollUrl(room, { ticket: t, since: '0' })), 403);
  // the bearer token and a new ticket too
  assert.equal(await status(pollUrl(room, { since: '0' }), e.token), 403);
  assert.equal(await wsStatus(room, { token: e.token }), 403);
  const nt = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: e.token, body: {} });
  assert.equal(nt.status, 403);
});

// Two SSE streams and two WebSockets of `user` on `room`, one of each by a fresh ticket and
// one by the bearer token, all connected.
async function openStreams(user, room) {
  const cred = { ticket: await ticketOf(user, room) };
  const bearer = { token: user.token };
  const sses = [sse(room, cred), sse(room, bearer)];
  const wss = [ws(room, cred), ws(room, bearer)];
  await Promise.all([...sses.map((x) => x.connected()), ...wss.map((c) => c.opened)]);
  return { cred, bearer, sses, wss };
}

// ---- (2) streams open before the removal ----

test('a removal ends the removed member\'s open SSE, WebSocket and long-poll streams, ticket and bearer', async () => {
  const owner = await newUser('own');
  const e = await newUser('e');
  const room = await privateRoomWith(owner, e);
  const w = await watch(owner, room);
  const { cred, bearer, sses, wss } = await openStreams(e, room);
  await waitFor(() => w.events().some((ev) => ev.type === 'join' && ev.data.user.id === e.user.id), { what: 'E joined' });
  const polls = [await pendingPoll(room, cred), await pendingPoll(room, bearer)];
  const rev = await postOp(owner, room, 0, ['before']);
  // every stream of E took the operation: they are all live
  await waitFor(() => sses.every((s) => ops(s.events()).length === 1) && wss.every((c) => ops(c.events).length === 1),
    { what: 'E streams live' });
  const answered = await Promise.all(polls.map((p) => p.answer));
  assert.deepEqual(answered.map((p) => ops(p.body.events).length), [1, 1]);
  const waiting = answered.map((p, i) => ({ cred: polls[i].cred, answer: poll(room, polls[i].cred, p.body.last_event_id) }));

  const del = await call('DELETE', `/api/rooms/${room.id}/members/${e.user.id}`, { token: owner.token });
  assert.equal(del.status, 204, del.text);
  await allEnded({ sses, wss, polls: waiting }, { room, revokedAt: Date.now(), refusal: NOT_A_MEMBER });
  for (const c of wss) assert.equal((await c.closed).reason, 'not a member of this room');
  // the stream's presence ended with it: E left the room
  await waitFor(() => w.events().some((ev) => ev.type === 'leave' && ev.data.user.id === e.user.id), { what: 'E left' });

  // the room goes on without E
  await postOp(owner, room, rev, [6, 'after']);
  await waitFor(() => ops(w.events()).length === 2, { what: 'owner got the later operation' });
  for (const s of sses) assert.equal(ops(s.events()).length, 1);
  for (const c of wss) assert.equal(ops(c.events).length, 1);
  // no presence of E reached the room after the removal
  const evs = roomEvents(room.id);
  const cut = evs.map((ev) => ev.type === 'room' && ev.data.reason === 'members').lastIndexOf(true);
  assert.ok(cut > 0);
  assert.equal(evs.slice(cut + 1).filter((ev) => ev.type === 'presence' && ev.data.user?.id === e.user.id).length, 0);
  // the old ticket is refused from now on
  assert.equal(await status(pollUrl(room, { ticket: cred.ticket, since: '0' })), 403);
  await w.close();
});

// ---- (3) a public room going private ----

test('a stranger streaming a public room is cut when it goes private (ticket and bearer)', async () => {
  const owner = await newUser('own');
  const s = await newUser('str');
  const room = await createRoom(owner.token, { visibility: 'public' });
  const w = await watch(owner, room);
  const { cred, bearer, sses, wss } = await openStreams(s, room);
  const rev = await postOp(owner, room, 0, ['public']);
  await waitFor(() => sses.every((x) => ops(x.events()).length === 1) && wss.every((c) => ops(c.events).length === 1),
    { what: 'stranger streams live' });
  const polls = [await pendingPoll(room, cred), await pendingPoll(room, bearer)];

  const p = await call('PATCH', `/api/rooms/${room.id}`, { token: owner.token, body: { visibility: 'private' } });
  assert.equal(p.status, 200, p.text);
  await allEnded({ sses, wss, polls }, { room, revokedAt: Date.now(), refusal: NOT_A_MEMBER });
  // every stream got the `updated` event first
  for (const x of sses) assert.ok(x.events().some((ev) => ev.type === 'room' && ev.data.reason === 'updated'));
  await postOp(owner, room, rev, [6, 'private']);
  await waitFor(() => ops(w.events()).length === 2, { what: 'owner got the later operation' });
  for (const x of sses) assert.equal(ops(x.events()).length, 1);
  for (const c of wss) assert.equal(ops(c.events).length, 1);
  assert.equal(await status(pollUrl(room, { ticket: cred.ticket, since: '0' })), 403);
  assert.equal(await wsStatus(room, bearer), 403);
  await w.close();
});

// ---- (4) sign-out and password change ----
// Through the API's POST /api/auth/logout and POST /api/auth/password: they mark the session
// revoked or raise the user's generation, then PUBLISH {"user":U} on cc:access (lib/access.h).

async function streamsOf(user, room) {
  const st = await openStreams(user, room);
  return { ...st, polls: [await pendingPoll(room, st.cred), await pendingPoll(room, st.bearer)] };
}

test('sign-out (POST /api/auth/logout) ends the session\'s streams, its tickets\' too; another session keeps its own', async () => {
  const owner = await newUser('own');
  const m = await newUser('m');
  const room = await privateRoomWith(owner, m);
  const w = await watch(owner, room);
  const st = await streamsOf(m, room);
  // the same user signed in elsewhere: another session
  const login = await call('POST', '/api/auth/login', { body: { username: m.username, password: m.password } });
  assert.equal(login.status, 200, login.text);
  const other = sse(room, { token: login.json.token });
  await other.connected();
  const claims = jwtClaims(m.token);
  assert.notEqual(jwtClaims(login.json.token).sid, claims.sid);

  const out = await call('POST', '/api/auth/logout', { token: m.token });
  assert.equal(out.status, 204, out.text);
  const revokedAt = Date.now();
  assert.equal(await rc.cmd('EXISTS', `cc:sess:${claims.sid}:revoked`), 1);
  await allEnded(st, { room, revokedAt, refusal: SIGNED_OUT });
  for (const c of st.wss) assert.equal((await c.closed).reason, 'this session was signed out');
  await postOp(owner, room, 0, ['later']);
  await waitFor(() => ops(other.events()).length === 1 && ops(w.events()).length === 1, { what: 'the other session streams on' });
  for (const x of st.sses) assert.equal(ops(x.events()).length, 0);
  // the signed-out session's token and tickets open nothing any more (401)
  const r = await fetch(pollUrl(room, { ticket: st.cred.ticket, since: '0' }));
  assert.equal(r.status, 401);
  assert.deepEqual(await r.json(), { error: 'session_revoked', message: 'this session was signed out' });
  assert.equal(await wsStatus(room, st.bearer), 401);
  await other.close();
  await w.close();
});

test('a password change (POST /api/auth/password) ends every older session\'s streams; the new token streams', async () => {
  const owner = await newUser('own');
  const m = await newUser('m');
  const room = await privateRoomWith(owner, m);
  const st = await streamsOf(m, room);
  const { gen } = jwtClaims(m.token);
  const pw = await call('POST', '/api/auth/password', { token: m.token, body: { password: m.password, new_password: `${m.password}-new` } });
  assert.equal(pw.status, 200, pw.text);
  const revokedAt = Date.now();
  assert.equal(jwtClaims(pw.json.token).gen, gen + 1);
  await allEnded(st, { room, revokedAt, refusal: SIGNED_OUT });
  assert.equal(await status(pollUrl(room, { ticket: st.cred.ticket, since: '0' })), 401);
  assert.equal(await status(pollUrl(room, { since: '0' }), m.token), 401);
  // the token the change answered is of the new generation: it streams
  const fresh = sse(room, { token: pw.json.token });
  await fresh.connected();
  await fresh.close();
});

// ---- (5) big events and resync ----

test('an operation event of about 1 MiB (\\u0001 escapes) reaches SSE, WebSocket and long-poll, and later events follow', async () => {
  const owner = await newUser('own');
  const room = await createRoom(owner.token, { visibility: 'private' });
  const bearer = { token: owner.token };
  const s = sse(room, bearer);
  const c = ws(room, bearer);
  await Promise.all([s.connected(), c.opened]);
  const poll = await pendingPoll(room, bearer);
  try {
  // the largest request body the API takes (1 MiB), every character U+0001 written as \u0001:
  // the event's data is over 1 MiB once the server escapes it again
  const n = Math.floor((1024 * 1024 - 64) / 6);
  const body = `{"revision":0,"ops":["${'\\u0001'.repeat(n)}"]}`;
  const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: owner.token, body });
  assert.equal(r.status, 200, r.text.slice(0, 200));
  const [[bigId, fields]] = await rc.cmd('XREVRANGE', `cc:room:{${room.id}}:events`, '+', '-', 'COUNT', 1);
  const big = { id: bigId, raw: fields[fields.indexOf('data') + 1] };
  assert.equal(fields[fields.indexOf('type') + 1], 'operation');
  assert.ok(Buffer.byteLength(big.raw) > 1024 * 1024, `event data is ${big.raw.length} bytes`);
  await postOp(owner, room, 1, [n, 'next']);

  const p = await poll.answer;
  assert.equal(p.status, 200);
  // each transport got the big event whole (or a resync in its place), then the next one
  const check = (evs, what) => {
    const got = evs.filter((ev) => ev.type === 'operation' || ev.type === 'resync');
    assert.ok(got.length >= 1, what);
    assert.equal(got[0].id, big.id, what);
    if (got[0].type === 'operation') assert.equal(got[0].data.ops[0].length, n, what);
  };
  check(p.body.events, 'long-poll');
  const next = await fetch(pollUrl(room, { since: p.body.last_event_id }), { headers: { Authorization: `Bearer ${owner.token}` } });
  const nb = await next.json();
  assert.deepEqual(ops(nb.events).map((ev) => ev.data.revision), [2], 'long-poll: the next event');
  await waitFor(() => ops(s.events()).some((ev) => ev.data.revision === 2) && ops(c.events).some((ev) => ev.data.revision === 2),
    { what: 'SSE and WebSocket got the next event', timeout: 15000 });
  check(s.events(), 'SSE');
  check(c.events, 'WebSocket');
  assert.deepEqual(ops(s.events()).map((ev) => ev.data.revision), [1, 2]);
  assert.deepEqual(ops(c.events).map((ev) => ev.data.revision), [1, 2]);
  assert.equal(c.sock.readyState, WebSocket.OPEN);
  assert.equal(s.child.exitCode, null, 'SSE not dropped');

  // a message the broker cannot read is not skipped silently: every live client gets a resync.
  // The snapshotter saves revision 2 within SNAPSHOT_INTERVAL_MS and emits `snapshot`: wait for
  // it first, so the poll below can only be answered by what this test publishes.
  await waitFor(async () => {
    const last = await rc.cmd('XREVRANGE', `cc:room:{${room.id}}:events`, '+', '-', 'COUNT', 1);
    const f = last.length ? last[0][1] : [];
    return f[f.indexOf('type') + 1] === 'snapshot' && JSON.parse(f[f.indexOf('data') + 1]).revision === 2;
  }, { what: 'the snapshot of revision 2', timeout: 15000 });
  const poll2 = await pendingPoll(room, bearer);
  // published until the poll is answered: a message on the channel is not kept, so one sent
  // before the poll's broker has subscribed to the room would reach nobody (on make cluster
  // the poll may land on a broker that was not in the room yet, and /events/health counts
  // one broker's streams only, so "poll open" above cannot tell)
  let answered = false;
  const answer2 = poll2.answer.then((v) => { answered = true; return v; });
  for (let i = 0; i < 50 && !answered; i++) {
    await rc.cmd('SPUBLISH', `cc:room:{${room.id}}`, '{"type":"operation","data":');
    await Promise.race([answer2, new Promise((r) => setTimeout(r, 300))]);
  }
  const p2 = await answer2;
  const got = p2.body.events.map((ev) => [ev.type, ev.data.reason]);
  assert.ok(got.length >= 1, 'the poll is answered with what it could not read');
  for (const g of got) assert.deepEqual(g, ['resync', 'malformed_event']);
  await waitFor(() => s.events().some((ev) => ev.type === 'resync') && c.events.some((ev) => ev.type === 'resync'),
    { what: 'resync on SSE and WebSocket' });
  await postOp(owner, room, 2, [n + 4, '!']);
  await waitFor(() => ops(s.events()).length === 3 && ops(c.events).length === 3, { what: 'events after the resync' });
  } finally {
    c.close();
    await s.close();
  }
});
