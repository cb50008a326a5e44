// Live documents through the real stack: operations (OT), concurrency across several API
// processes, limits and hostile operations, presence, tickets, snapshots and restore.
import { test } from 'node:test';
import EventSource from 'eventsource';
import WebSocket from 'ws';
import assert from 'node:assert/strict';
import { BASE, call, newUser, redis, roomEvents } from '../lib/api.mjs';
import { applyOp, cpLength } from '../lib/ot.mjs';

async function roomWith(owner, extra = {}) {
  const r = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'collab', language: 'python', ...extra } });
  assert.equal(r.status, 201, r.text);
  return r.json.room;
}

const post = (token, room, body) => call('POST', `/api/rooms/${room.id}/operations`, { token, body });
const doc = async (token, room) => (await call('GET', `/api/rooms/${room.id}/document`, { token })).json;

const committedOps = (room) => roomEvents(room.id).filter((e) => e.type === 'operation').map((e) => e.data);

// Streams through lighttpd and the broker, each collecting the room's `operation` events.
async function ticketFor(user, room) {
  const r = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: user.token, body: {} });
  assert.equal(r.status, 200, r.text);
  return r.json.ticket;
}

async function openStreams(user, room) {
  const got = { sse: [], ws: [], poll: [] };
  const wsBase = BASE.replace(/^http/, 'ws');
  // each stream is awaited live (its `subscribed` marker, docs/API.md "Streams") from the
  // moment it is created: a marker that comes while the next ticket is fetched must not be
  // missed, and an operation posted before a stream is live would not reach it
  const es = new EventSource(`${BASE}/events/rooms/${room.id}?ticket=${await ticketFor(user, room)}&subscribed=1`);
  const esLive = new Promise((res, rej) => { es.addEventListener('subscribed', res); es.onerror = rej; });
  es.addEventListener('operation', (e) => got.sse.push(JSON.parse(e.data)));
  const ws = new WebSocket(`${wsBase}/events/rooms/${room.id}/ws?ticket=${await ticketFor(user, room)}`);
  let wsLiveAt;
  const wsLive = new Promise((res, rej) => { wsLiveAt = res; ws.on('error', rej); });
  ws.on('message', (m) => {
    const ev = JSON.parse(m.toString());
    if (ev.type === 'subscribed') wsLiveAt(ev.id);
    if (ev.type === 'operation') got.ws.push(ev.data);
  });
  // long-poll from where the room stood when the WebSocket went live onwards, until stopped
  // (a first poll without `since` would only answer at the next event, or after ~25 s)
  let since = (await Promise.all([wsLive, esLive]))[0];
  let polling = true;
  const pollTicket = await ticketFor(user, room);
  const stopPolling = new AbortController(); // the poll in flight at the end waits for an event
  const poller = (async () => {
    while (polling) {
      const r = await fetch(`${BASE}/events/rooms/${room.id}/poll?ticket=${pollTicket}&since=${encodeURIComponent(since)}`,
        { signal: stopPolling.signal });
      const body = await r.json();
      for (const ev of body.events) if (ev.type === 'operation') got.poll.push(ev.data);
      if (body.last_event_id) since = body.last_event_id;
    }
  })();
  return {
    got,
    async close(expected) {
      // wait until every transport has delivered everything, then close
      for (let i = 0; i < 200 && Object.values(got).some((l) => l.length < expected); i++) {
        await new Promise((res) => setTimeout(res, 50));
      }
      polling = false;
      stopPolling.abort();
      es.close();
      ws.close();
      await poller.catch(() => {});
    },
  };
}

test('a new room has an empty document at revision 0', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  assert.deepEqual(await doc(a.token, room), { revision: 0, content: '', language: 'python' });
});

test('operations apply in code points, with multi-byte and astral characters', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  let r = await post(a.token, room, { revision: 0, ops: ['héllo 😀 wörld 中文'] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { revision: 1, ops: ['héllo 😀 wörld 中文'] });
  // delete the emoji (code point 6) and the space after it; a trailing retain may be left out
  r = await post(a.token, room, { revision: 1, ops: [6, -2, '🎉'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revision, 2);
  assert.deepEqual(await doc(a.token, room), { revision: 2, content: 'héllo 🎉wörld 中文', language: 'python' });
});

test('a stale operation is transformed; concurrent inserts at one place keep commit order', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  await post(a.token, room, { revision: 0, ops: ['abc'] });
  let r = await post(a.token, room, { revision: 1, ops: [1, 'X'], client_id: 'one' });
  assert.deepEqual(r.json, { revision: 2, ops: [1, 'X', 2] });
  // made against revision 1 too: its insert at 1 goes after the committed one
  r = await post(a.token, room, { revision: 1, ops: [1, 'Y'], client_id: 'two' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { revision: 3, ops: [2, 'Y', 2] });
  // and a delete made against revision 1 of "bc" still deletes "bc"
  r = await post(a.token, room, { revision: 1, ops: [1, -2] });
  assert.equal(r.status, 200, r.text);
  assert.equal((await doc(a.token, room)).content, 'aXY');
  const events = committedOps(room);
  assert.deepEqual(events.map((e) => e.revision), [1, 2, 3, 4]);
  assert.equal(events[1].client_id, 'one');
  assert.equal(events[1].user.username, a.username);
});

test('ten clients typing at once through several API processes converge, nothing lost', { timeout: 120000 }, async () => {
  const owner = await newUser();
  const room = await roomWith(owner);
  const clients = [owner];
  for (let i = 1; i < 10; i++) {
    const u = await newUser();
    const j = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite: room.invite } });
    assert.equal(j.status, 200, j.text);
    clients.push(u);
  }
  const perClient = 15;
  const glyphs = ['a', 'é', 'ж', '中', '😀', '𝄞'];
  // Each client knows the document as of its last answer and edits that view: inserts a
  // unique marker somewhere, sometimes deletes a character of the seed text; the server
  // must transform every operation against what others committed meanwhile.
  const streams = await openStreams(clients[1], room);
  await post(owner.token, room, { revision: 0, ops: ['seed:' + 'x'.repeat(40)] });
  const markers = [];
  await Promise.all(clients.map(async (c, ci) => {
    let view = await doc(c.token, room);
    for (let k = 0; k < perClient; k++) {
      const marker = `<${ci}.${k}${glyphs[(ci + k) % glyphs.length]}>`;
      markers.push(marker);
      // insert between markers, never inside one (that would split it, legitimately)
      const free = [];
      let depth = 0;
      Array.from(view.content).forEach((ch, i) => {
        if (depth === 0) free.push(i);
        if (ch === '<') depth++;
        if (ch === '>') depth--;
      });
      free.push(cpLength(view.content));
      const at = free[Math.floor(Math.random() * free.length)];
      const ops = at > 0 ? [at, marker] : [marker];
      const r = await post(c.token, room, { revision: view.revision, ops, client_id: `c${ci}` });
      assert.equal(r.status, 200, r.text);
      if (k % 3 === 0) view = await doc(c.token, room); // sometimes catch up, mostly stay stale
    }
  }));
  const final = await doc(owner.token, room);
  assert.equal(final.revision, 1 + clients.length * perClient);
  for (const m of markers) assert.ok(final.content.includes(m), `marker ${m} was lost`);
  // replaying the committed operations in order gives exactly the document
  const events = committedOps(room);
  assert.deepEqual(events.map((e) => e.revision), Array.from({ length: final.revision }, (_, i) => i + 1));
  const replayed = events.reduce((d, e) => applyOp(d, e.ops), '');
  assert.equal(replayed, final.content);
  // and so does every live stream: SSE, WebSocket and long-poll, through lighttpd
  await streams.close(final.revision);
  for (const [name, ops] of Object.entries(streams.got)) {
    assert.deepEqual(ops.map((o) => o.revision), events.map((e) => e.revision), `${name}: every revision once, in order`);
    assert.equal(ops.reduce((d, o) => applyOp(d, o.ops), ''), final.content, `${name} replays to the document`);
  }
});

test('deletes and inserts racing on the same text converge to the replayed history', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  await post(a.token, room, { revision: 0, ops: ['0123456789'.repeat(5)] });
  const jobs = [];
  for (let i = 0; i < 30; i++) {
    const ops = i % 2 ? [1 + (i % 40), -3, 'ab'] : [1 + ((i * 7) % 45), '∑'];
    jobs.push(post(a.token, room, { revision: 1, ops })); // all against revision 1
  }
  const results = await Promise.all(jobs);
  for (const r of results) assert.equal(r.status, 200, r.text);
  const revs = results.map((r) => r.json.revision).sort((x, y) => x - y);
  assert.deepEqual(revs, Array.from({ length: 30 }, (_, i) => i + 2), 'every revision exactly once');
  const final = await doc(a.token, room);
  assert.equal(committedOps(room).reduce((d, e) => applyOp(d, e.ops), ''), final.content);
});

test('malformed and hostile operations are 400 and change nothing', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  await post(a.token, room, { revision: 0, ops: ['abcd'] });
  const bad = [
    { revision: 1, ops: 'abc' },
    { revision: 1, ops: [0] },
    { revision: 1, ops: [1.5] },
    { revision: 1, ops: [true] },
    { revision: 1, ops: [null] },
    { revision: 1, ops: [['x']] },
    { revision: 1, ops: [{ insert: 'x' }] },
    { revision: 1, ops: [''] },
    { revision: 1, ops: [5] },          // retain past the end
    { revision: 1, ops: [2, -3] },      // delete past the end
    { revision: 1, ops: [1e400] },
    { revision: 1, ops: Array(10001).fill(1) },
    { revision: -1, ops: ['x'] },
    { revision: 'one', ops: ['x'] },
    { ops: ['x'] },
    { revision: 1 },
  ];
  for (const body of bad) {
    const r = await post(a.token, room, body);
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)} -> ${r.status} ${r.text}`);
    assert.ok(r.json && r.json.error && r.json.message, r.text);
  }
  // raw bodies JSON.stringify cannot make: a lone surrogate escape, a \u0000, invalid UTF-8
  for (const raw of ['{"revision":1,"ops":["\\ud800"]}', '{"revision":1,"ops":["a\\u0000b"]}']) {
    const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: raw });
    assert.equal(r.status, 400, raw + ' ' + r.text);
  }
  const invalidUtf8 = Buffer.concat([Buffer.from('{"revision":1,"ops":["'), Buffer.from([0xc3, 0x28]), Buffer.from('"]}')]);
  const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: new Uint8Array(invalidUtf8) });
  assert.equal(r.status, 400, r.text);
  assert.deepEqual(await doc(a.token, room), { revision: 1, content: 'abcd', language: 'python' });
});

test('a revision in the future is 409 with the current revision', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  for (const revision of ['5', '1125899906842625', '4503599627370495']) {
    const r = await post(a.token, room, `{"revision":${revision},"ops":["x"]}`);
    assert.equal(r.status, 409, `${revision}: ${r.text}`);
    assert.equal(r.json.error, 'revision_in_future');
    assert.equal(r.json.revision, 0);
  }
  // past that bound, or no integer: the request is malformed
  for (const revision of ['4503599627370496', '4503599627370494.5', '1e300', '-1', '1.5', '"3"']) {
    const r = await post(a.token, room, `{"revision":${revision},"ops":["x"]}`);
    assert.equal(r.status, 400, `${revision}: ${r.text}`);
    assert.equal(r.json.error, 'invalid_request');
  }
  assert.deepEqual(await doc(a.token, room), { revision: 0, content: '', language: 'python' });
});

test('a revision older than the kept operation log is 409 with the current revision', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  // 1001 commits: the log keeps the last 1000, so revision 0 falls out of it. Seven
  // writers side by side (7 x 143), each from the revision of its own last answer: one round
  // trip after another would make this the file's slowest test behind a front door
  await Promise.all(Array.from({ length: 7 }, async () => {
    let rev = 0;
    for (let i = 0; i < 143; i++) {
      const r = await post(a.token, room, { revision: rev, ops: ['.'] });
      assert.equal(r.status, 200, r.text);
      rev = r.json.revision;
    }
  }));
  const r = await post(a.token, room, { revision: 0, ops: ['x'] });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error, 'revision_too_old');
  assert.equal(r.json.revision, 1001);
  // one inside the window still works
  const ok = await post(a.token, room, { revision: 1, ops: ['y'] });
  assert.equal(ok.status, 200, ok.text);
});

test('a document over its limit is 413 and keeps its content', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  const chunk = 'x'.repeat(600 * 1024);
  let r = await post(a.token, room, { revision: 0, ops: [chunk] });
  assert.equal(r.status, 200);
  r = await post(a.token, room, { revision: 1, ops: [chunk] });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error, 'document_too_large');
  const d = await doc(a.token, room);
  assert.equal(d.revision, 1);
  assert.equal(d.content.length, chunk.length);
});

test('viewers and strangers cannot edit; viewers can read', async () => {
  const owner = await newUser();
  const viewer = await newUser();
  const stranger = await newUser();
  const room = await roomWith(owner);
  await call('POST', `/api/rooms/${room.id}/join`, { token: viewer.token, body: { invite: room.invite } });
  const m = await call('PUT', `/api/rooms/${room.id}/members/${viewer.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal(m.status, 200, m.text);
  let r = await post(viewer.token, room, { revision: 0, ops: ['x'] });
  assert.equal(r.status, 403);
  r = await post(stranger.token, room, { revision: 0, ops: ['x'] });
  assert.equal(r.status, 403);
  r = await call('GET', `/api/rooms/${room.id}/document`, { token: stranger.token });
  assert.equal(r.status, 403);
  r = await call('GET', `/api/rooms/${room.id}/document`, { token: viewer.token });
  assert.equal(r.status, 200);
  r = await post(undefined, room, { revision: 0, ops: ['x'] });
  assert.equal(r.status, 401);
  r = await call('POST', '/api/rooms/nosuchroom/operations', { token: owner.token, body: { revision: 0, ops: ['x'] } });
  assert.equal(r.status, 404);
});

test('presence is broadcast with a stable colour; bad presence is 400', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  let r = await call('PUT', `/api/rooms/${room.id}/presence`, { token: a.token, body: { cursor: 3, selection: { anchor: 1, head: 3 } } });
  assert.equal(r.status, 204, r.text);
  r = await call('PUT', `/api/rooms/${room.id}/presence`, { token: a.token, body: { cursor: 4 } });
  assert.equal(r.status, 204, r.text);
  const datas = roomEvents(room.id).filter((e) => e.type === 'presence').map((e) => e.data);
  assert.equal(datas.length, 2);
  assert.deepEqual(datas[0].user, { id: a.user.id, username: a.username });
  assert.equal(datas[0].cursor, 3);
  assert.deepEqual(datas[0].selection, { anchor: 1, head: 3 });
  assert.match(datas[0].color, /^#[0-9a-f]{6}$/);
  assert.equal(datas[1].color, datas[0].color);
  assert.equal(datas[1].selection, null);
  for (const body of [{}, { cursor: -1 }, { cursor: 'x' }, { cursor: 1, selection: 5 }, { cursor: 1, selection: { anchor: 1 } }]) {
    r = await call('PUT', `/api/rooms/${room.id}/presence`, { token: a.token, body });
    assert.equal(r.status, 400, JSON.stringify(body));
  }
});

test('a stream ticket is short-lived and bound to its room', async () => {
  const a = await newUser();
  const stranger = await newUser();
  const room = await roomWith(a);
  const r = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: a.token });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.expires_in > 0 && r.json.expires_in <= 3600);
  const claims = JSON.parse(Buffer.from(r.json.ticket.split('.')[1], 'base64url').toString());
  assert.equal(claims.typ, 'ticket');
  assert.equal(claims.room, room.id);
  assert.equal(claims.exp - claims.iat, r.json.expires_in);
  const s = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: stranger.token });
  assert.equal(s.status, 403);
});

test('snapshots are saved after edits, listed, readable, and restore a flushed Redis', async () => {
  const a = await newUser();
  const room = await roomWith(a);
  await post(a.token, room, { revision: 0, ops: ['print("hi")\n'] });
  await post(a.token, room, { revision: 1, ops: [12, '# 🙂 end\n'] });
  // the snapshotter saves within SNAPSHOT_INTERVAL_MS (2 s) of the first change
  let hist;
  for (let i = 0; i < 50; i++) {
    hist = await call('GET', `/api/rooms/${room.id}/history`, { token: a.token });
    if (hist.json.snapshots.length && hist.json.snapshots[0].revision === 2) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(hist.status, 200);
  assert.equal(hist.json.snapshots[0].revision, 2);
  assert.match(hist.json.snapshots[0].saved_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  const one = await call('GET', `/api/rooms/${room.id}/history/2`, { token: a.token });
  assert.equal(one.status, 200);
  assert.equal(one.json.content, 'print("hi")\n# 🙂 end\n');
  assert.equal((await call('GET', `/api/rooms/${room.id}/history/99`, { token: a.token })).status, 404);
  // a revision beyond a bigint is a missing snapshot too, not a database error
  for (const rev of ['99999999999999999999', '9223372036854775808', '-1']) {
    const big = await call('GET', `/api/rooms/${room.id}/history/${rev}`, { token: a.token });
    assert.equal(big.status, 404, `${rev}: ${big.text}`);
    assert.equal(big.json.error, 'snapshot_not_found');
  }
  // Redis loses the room's live state: the document comes back from its snapshot
  redis('DEL', `cc:room:{${room.id}}:doc`, `cc:room:{${room.id}}:ops`);
  const d = await doc(a.token, room);
  assert.deepEqual(d, { revision: 2, content: 'print("hi")\n# 🙂 end\n', language: 'python' });
  // and editing carries on from there
  const r = await post(a.token, room, { revision: 2, ops: ['#!'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revision, 3);
});
