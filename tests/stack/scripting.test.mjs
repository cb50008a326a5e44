// What a scripter needs next (docs/API.md): replacing the whole document without counting
// code points, paging through rooms and history, who is present when a stream starts, and
// the one timestamp format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, call, cgi, newUser, createRoom, roomEvents } from '../lib/api.mjs';
import { waitFor } from '../lib/procs.mjs';

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.error, code, r.text);
  assert.equal(typeof r.json.message, 'string', r.text);
}

const put = (u, room, body) => call('PUT', `/api/rooms/${room.id}/document`, { token: u.token, body });
const doc = async (u, room) => (await call('GET', `/api/rooms/${room.id}/document`, { token: u.token })).json;

test('PUT document: the whole text in, an ordinary operation committed', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  let r = await put(u, room, { content: 'héllo wörld\n', base_revision: 0, client_id: 'script.1' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { revision: 1, ops: ['héllo wörld\n'] });
  // a change in the middle, astral characters included: no code points to count
  r = await put(u, room, { content: 'héllo 😀 wörld!\n', base_revision: 1 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revision, 2);
  let d = await doc(u, room);
  assert.deepEqual([d.revision, d.content], [2, 'héllo 😀 wörld!\n']);
  // every change is an `operation` event like any other, ops as applied
  const ops = roomEvents(room.id).filter((e) => e.type === 'operation');
  assert.equal(ops.length, 2);
  assert.equal(ops[0].data.client_id, 'script.1');
  assert.deepEqual(ops[1].data.ops, r.json.ops);
  assert.equal(ops[1].data.user.id, u.user.id);
  // the same text again: nothing to commit
  r = await put(u, room, { content: 'héllo 😀 wörld!\n', base_revision: 2 });
  assert.deepEqual(r.json, { revision: 2, ops: [] });
  // emptying it
  r = await put(u, room, { content: '', base_revision: 2 });
  assert.equal(r.status, 200, r.text);
  d = await doc(u, room);
  assert.deepEqual([d.revision, d.content], [3, '']);
});

test('PUT document: changes inside multi-byte characters never split one', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  // each step differs from the one before in the last byte(s) of a character, or only at
  // one end, where a byte-wise common part would end inside a character
  const steps = ['é', 'è', 'xè', 'è', 'èè', 'è', '😀', '😁', 'a😁', '😁b', '中文', '中字', '', 'end'];
  let rev = 0;
  for (const content of steps) {
    const r = await put(u, room, { content, base_revision: rev });
    assert.equal(r.status, 200, `${content}: ${r.text}`);
    rev = r.json.revision;
    const d = await doc(u, room);
    assert.equal(d.content, content);
    assert.equal(d.revision, rev);
  }
  assert.equal(rev, steps.length);
});

test('PUT document: conflicts, rights and bad bodies', async () => {
  const owner = await newUser();
  const viewer = await newUser();
  const stranger = await newUser();
  const room = await createRoom(owner.token);
  assert.equal((await put(owner, room, { content: 'one', base_revision: 0 })).status, 200);
  // someone else committed since the script read revision 0
  const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: owner.token, body: { revision: 1, ops: [3, ' two'] } });
  assert.equal(op.status, 200, op.text);
  let r = await put(owner, room, { content: 'mine', base_revision: 1 });
  assertError(r, 409, 'document_changed');
  assert.equal(r.json.revision, 2);
  r = await put(owner, room, { content: 'mine', base_revision: 7 });
  assertError(r, 409, 'document_changed');
  // far ahead, up to 2^52 - 1: still "changed"
  for (const far of ['1125899906842625', '4503599627370495']) {
    r = await put(owner, room, `{"content":"mine","base_revision":${far}}`);
    assertError(r, 409, 'document_changed');
    assert.equal(r.json.revision, 2);
  }
  assert.equal((await doc(owner, room)).content, 'one two', 'nothing was committed');
  // who may
  assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: viewer.token, body: { invite: room.invite } })).status, 200);
  assert.equal((await call('PUT', `/api/rooms/${room.id}/members/${viewer.user.id}`, { token: owner.token, body: { role: 'viewer' } })).status, 200);
  assertError(await put(viewer, room, { content: 'x', base_revision: 2 }), 403, 'forbidden');
  assertError(await put(stranger, room, { content: 'x', base_revision: 2 }), 403, 'not_a_member');
  assertError(await call('PUT', '/api/rooms/zz00000000/document', { token: owner.token, body: { content: 'x', base_revision: 0 } }), 404, 'room_not_found');
  // bodies
  for (const body of [{ base_revision: 2 }, { content: 'x' }, { content: 5, base_revision: 2 }, { content: ['x'], base_revision: 2 },
    { content: 'x', base_revision: -1 }, { content: 'x', base_revision: 1.5 }, { content: 'x', base_revision: '2' },
    '{"content":"x","base_revision":4503599627370496}', '{"content":"x","base_revision":1e300}']) {
    assertError(await put(owner, room, body), 400, 'invalid_request');
  }
  assertError(await put(owner, room, '{"content":"a\\u0000b","base_revision":2}'), 400, 'invalid_json');
  assertError(await put(owner, room, '{"content":"\\ud800","base_revision":2}'), 400, 'invalid_json');
  // oversized: over the body bound at the door, over DOCUMENT_MAX_BYTES in the API
  const big = await put(owner, room, { content: 'x'.repeat(1024 * 1024), base_revision: 2 });
  assertError(big, 413, 'payload_too_large');
  const small = cgi({ method: 'PUT', uri: `/api/rooms/${room.id}/document`, token: owner.token,
    body: { content: 'y'.repeat(1025), base_revision: 2 }, env: { DOCUMENT_MAX_BYTES: '1024' } });
  assert.equal(small.status, 413, small.body);
  assert.equal(small.json.error, 'document_too_large');
  const fits = cgi({ method: 'PUT', uri: `/api/rooms/${room.id}/document`, token: owner.token,
    body: { content: 'y'.repeat(1024), base_revision: 2 }, env: { DOCUMENT_MAX_BYTES: '1024' } });
  assert.equal(fits.status, 200, fits.body);
  assert.equal((await doc(owner, room)).content, 'y'.repeat(1024));
});

test('paging: rooms by cursor, history by revision, bounds checked', async () => {
  const u = await newUser();
  const names = [];
  for (let i = 0; i < 5; i++) names.push((await createRoom(u.token, { name: `page-${i}` })).name);
  const seen = [];
  let next = null;
  for (let page = 0; page < 4; page++) {
    const r = await call('GET', `/api/rooms?limit=2${next ? `&before=${next}` : ''}`, { token: u.token });
    assert.equal(r.status, 200, r.text);
    seen.push(...r.json.rooms.map((x) => x.name));
    next = r.json.next;
    if (!next) break;
  }
  assert.deepEqual(seen, [...names].reverse(), 'newest first, each once');
  assert.equal(next, null);
  const all = await call('GET', '/api/rooms', { token: u.token });
  assert.equal(all.json.rooms.length, 5);
  assert.equal(all.json.next, null);
  // a last page that is exactly full says so: next is null, never a cursor to an empty page
  for (const limit of [1, 5]) {
    const pages = [];
    for (next = null; pages.length < 6;) {
      const r = await call('GET', `/api/rooms?limit=${limit}${next ? `&before=${next}` : ''}`, { token: u.token });
      pages.push(r.json.rooms.map((x) => x.name));
      next = r.json.next;
      if (!next) break;
    }
    assert.deepEqual(pages.flat(), [...names].reverse(), `limit=${limit}`);
    assert.ok(pages.every((p) => p.length === limit), `limit=${limit}: no empty page: ${JSON.stringify(pages)}`);
  }
  for (const q of ['limit=0', 'limit=501', 'limit=x', 'limit=', 'limit=-3', 'limit=2.5', 'before=nonsense', 'before=12', 'before=1.a%2Fb', `limit=${'9'.repeat(40)}`]) {
    assertError(await call('GET', `/api/rooms?${q}`, { token: u.token }), 400, 'invalid_request');
  }
  // history: saves appear as the snapshotter writes them
  const room = await createRoom(u.token);
  for (let rev = 0; rev < 3; rev++) {
    assert.equal((await put(u, room, { content: `v${rev}`, base_revision: rev })).status, 200);
    await waitFor(async () => {
      const h = await call('GET', `/api/rooms/${room.id}/history`, { token: u.token });
      return h.json.snapshots.some((s) => s.revision === rev + 1);
    }, { what: `the save of revision ${rev + 1}`, timeout: 20000 });
  }
  const h1 = await call('GET', `/api/rooms/${room.id}/history?limit=2`, { token: u.token });
  assert.deepEqual(h1.json.snapshots.map((s) => s.revision), [3, 2]);
  assert.equal(h1.json.next, 2);
  const h2 = await call('GET', `/api/rooms/${room.id}/history?limit=2&before=${h1.json.next}`, { token: u.token });
  assert.deepEqual(h2.json.snapshots.map((s) => s.revision), [1]);
  assert.equal(h2.json.next, null);
  // a page that holds exactly the last saves: nothing follows it
  const h3 = await call('GET', `/api/rooms/${room.id}/history?limit=3`, { token: u.token });
  assert.deepEqual([h3.json.snapshots.map((s) => s.revision), h3.json.next], [[3, 2, 1], null]);
  const h4 = await call('GET', `/api/rooms/${room.id}/history?limit=1&before=2`, { token: u.token });
  assert.deepEqual([h4.json.snapshots.map((s) => s.revision), h4.json.next], [[1], null]);
  for (const q of ['limit=0', 'limit=201', 'before=0', 'before=-1', 'before=x']) {
    assertError(await call('GET', `/api/rooms/${room.id}/history?${q}`, { token: u.token }), 400, 'invalid_request');
  }
});

test('who is present when a stream starts: GET presence, then join and leave events', async () => {
  const owner = await newUser();
  const other = await newUser();
  const room = await createRoom(owner.token, { visibility: 'public' });
  const present = async (u) => {
    const r = await call('GET', `/api/rooms/${room.id}/presence`, { token: u.token });
    assert.equal(r.status, 200, r.text);
    return r.json.users;
  };
  assert.deepEqual(await present(owner), []);
  // straight to the broker (the test stack's BROKER_PORT): a front door may hold a closed
  // client's stream open a while (Apache until a heartbeat to the gone client fails)
  const broker = process.env.BROKER_PORT ? `http://127.0.0.1:${process.env.BROKER_PORT}` : BASE;
  const ac = new AbortController();
  const s = await fetch(`${broker}/events/rooms/${room.id}`, { headers: { authorization: `Bearer ${other.token}` }, signal: ac.signal });
  assert.equal(s.status, 200);
  await waitFor(async () => (await present(owner)).length === 1, { what: 'the stream counted' });
  assert.deepEqual(await present(owner), [{ id: other.user.id, username: other.username }]);
  ac.abort();
  await waitFor(async () => (await present(owner)).length === 0, { what: 'the stream gone', timeout: 20000 });
  // a stranger to a private room learns nothing
  const priv = await createRoom(owner.token);
  assertError(await call('GET', `/api/rooms/${priv.id}/presence`, { token: other.token }), 403, 'not_a_member');
});

test('timestamps: ISO-8601 UTC; new fields with milliseconds', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  assert.match(room.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const ex = await call('POST', `/api/rooms/${room.id}/executions`, { token: u.token, body: { code: 'print(1)' } });
  assert.equal(ex.status, 202, ex.text);
  const j = await call('GET', `/api/jobs/${ex.json.job.id}`, { token: u.token });
  assert.equal(typeof j.json.job.created_at, 'number');
  assert.match(j.json.job.submitted_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(Date.parse(j.json.job.submitted_at), j.json.job.created_at * 1000);
  // the room's list of runs gives each run as GET /api/jobs/{id} does: the same timestamps
  const list = await call('GET', `/api/rooms/${room.id}/executions`, { token: u.token });
  assert.equal(list.status, 200, list.text);
  const run = list.json.executions.find((e) => e.id === ex.json.job.id);
  assert.ok(run, list.text);
  assert.equal(run.created_at, j.json.job.created_at);
  assert.equal(run.submitted_at, j.json.job.submitted_at);
});
