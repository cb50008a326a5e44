// Presence has one budget per user per room, whichever way it comes (docs/API.md, "Live
// documents"): PUT /presence answers 429 with Retry-After past it, WebSocket presence past it
// is dropped, and what reaches the room's history stays within the budget however many
// connections the user has. Another user's presence is not touched, and presence at a
// normal rate is never refused. The budget is PRESENCE_RATE_LIMIT (default 20 a second).
//
// Timing: the floods are sent as fast as the machine can and checked against an upper bound
// per elapsed window (a slow machine only lowers what is sent); the normal rate sends fewer
// events in all than one window's budget, so no stall can bunch them over it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { BASE, call, newUser, createRoom, redis, roomEvents } from '../lib/api.mjs';
import { sleep, waitFor } from '../lib/procs.mjs';

const BUDGET = Number(process.env.PRESENCE_RATE_LIMIT || 20);
const WINDOW_MS = 1000;
const WS_BASE = BASE.replace(/^http/, 'ws');

const put = (user, room, cursor) => call('PUT', `/api/rooms/${room.id}/presence`, { token: user.token, body: { cursor } });
const presenceOf = (room, user) => roomEvents(room.id).filter((e) => e.type === 'presence' && e.data.user.id === user.user.id);
// the Redis time of an event, from its id ("<ms>-<seq>")
const msOf = (ev) => Number(ev.id.split('-')[0]);
// the most a fixed window of WINDOW_MS lets through between two moments span ms apart: the
// windows met are at most floor(span / window) + 2 (each starts a window after the last)
const mostIn = (spanMs) => BUDGET * (Math.floor(spanMs / WINDOW_MS) + 2);

// A public room of its own (any signed-in user may stream and send presence there) and a
// stranger who floods it.
async function publicRoom() {
  const owner = await newUser('plo');
  const room = await createRoom(owner.token, { visibility: 'public' });
  return { owner, room };
}

// A WebSocket stream, live (its `subscribed` frame); `events` collects what it receives.
async function openWs(url, headers = {}) {
  const ws = new WebSocket(url, { headers });
  const s = { ws, events: [], closed: false };
  ws.on('close', () => { s.closed = true; });
  await new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (m) => {
      const ev = JSON.parse(m.toString());
      s.events.push(ev);
      if (ev.type === 'subscribed') resolve();
    });
  });
  return s;
}
async function roomWs(user, room) {
  const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: user.token, body: {} });
  assert.equal(t.status, 200, t.text);
  return openWs(`${WS_BASE}/events/rooms/${room.id}/ws?ticket=${encodeURIComponent(t.json.ticket)}`);
}
const multiWs = (user, rooms) => openWs(`${WS_BASE}/events/multi/ws?rooms=${rooms.map((r) => r.id).join(',')}`,
  { Authorization: `Bearer ${user.token}` });
const closeAll = async (streams) => {
  for (const s of streams) if (!s.closed) s.ws.close();
  await waitFor(() => streams.every((s) => s.closed), { what: 'the streams closed' });
};

test('a loop of PUTs: 429 with Retry-After past the budget, the history holds no more than the budget allows', async () => {
  const { room } = await publicRoom();
  const flooder = await newUser('plf');
  const other = await newUser('plp');
  // the budget is per user and room: the same user elsewhere, and another user here, go on
  const { room: elsewhere } = await publicRoom();

  // as fast as the stack takes them, eight at a time, until the limit has answered (at least
  // 200 requests; 2,000 at most, or a minute, which the old code without a limit reached)
  const answers = [];
  let refused = null;
  let cursor = 0;
  const t0 = Date.now();
  const worker = async () => {
    while ((answers.length < 200 || !refused) && answers.length < 2000 && Date.now() - t0 < 60000) {
      const r = await put(flooder, room, cursor++);
      answers.push(r.status);
      if (r.status === 429 && !refused) {
        refused = r;
        // within the refused window: another user in the room, and the same user in another
        // room, are not limited
        assert.equal((await put(other, room, 1)).status, 204);
        assert.equal((await put(flooder, elsewhere, 1)).status, 204);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const elapsed = Date.now() - t0;

  assert.ok(refused, `no 429 among ${answers.length} PUTs in ${elapsed} ms`);
  assert.equal(refused.json.error, 'rate_limited');
  assert.equal(typeof refused.json.message, 'string');
  const ra = Number(refused.headers.get('retry-after'));
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 2, `Retry-After ${refused.headers.get('retry-after')}`);
  assert.ok(answers.every((s) => s === 204 || s === 429), `statuses: ${[...new Set(answers)]}`);

  const accepted = answers.filter((s) => s === 204).length;
  assert.ok(accepted <= mostIn(elapsed), `${accepted} PUTs accepted in ${elapsed} ms (budget ${BUDGET}/s)`);
  // every 204 is one event in the history and no 429 is: the flood is bounded there too
  const evs = presenceOf(room, flooder);
  assert.equal(evs.length, accepted);
  assert.ok(evs.length <= mostIn(msOf(evs.at(-1)) - msOf(evs[0])),
    `${evs.length} presence events in ${msOf(evs.at(-1)) - msOf(evs[0])} ms of Redis time`);
  assert.equal(presenceOf(room, other).length, 1);
  assert.equal(presenceOf(elsewhere, flooder).length, 1);

  // once the window is over, the user's presence is taken again
  await waitFor(async () => (await put(flooder, room, 7)).status === 204,
    { what: 'a PUT taken after the window', interval: ra * 1000, timeout: 20000 });
});

test('the WebSocket connections of one user, single- and multi-room, share the budget; others are not touched', async () => {
  const { room } = await publicRoom();
  const { room: second } = await publicRoom();
  const flooder = await newUser('plw');
  const other = await newUser('plo');
  const watcher = await roomWs(other, room);
  // three connections of one user: two one-room streams and a stream of two rooms
  const conns = [await roomWs(flooder, room), await roomWs(flooder, room), await multiWs(flooder, [room, second])];
  const send = (c, cursor) => c.ws.send(JSON.stringify(c === conns[2]
    ? { type: 'presence', room: room.id, cursor } : { type: 'presence', cursor }));
  try {
    // each connection sends 60 at once (before, each was allowed 30 a second)
    const PER_CONN = 60;
    conns.forEach((c, i) => { for (let k = 0; k < PER_CONN; k++) send(c, i * 1000 + k); });
    // another user's presence in the same room, in the same moment
    watcher.ws.send(JSON.stringify({ type: 'presence', cursor: 4242 }));
    await waitFor(() => presenceOf(room, other).length === 1, { what: 'the other user\'s presence' });

    // a marker behind each connection's flood, sent again until it is in the history (it
    // waits for a window with room left): each connection's messages are handled in order,
    // so once its marker is there, all its flood has been counted or dropped
    const MARK = 1_000_000;
    await waitFor(() => {
      const seen = new Set(presenceOf(room, flooder).map((e) => e.data.cursor).filter((c) => c >= MARK));
      if (conns.every((c, i) => seen.has(MARK + i))) return true;
      conns.forEach((c, i) => { if (!seen.has(MARK + i)) send(c, MARK + i); });
      return false;
    }, { what: 'every connection\'s marker', interval: 300, timeout: 30000 });

    const flood = presenceOf(room, flooder).filter((e) => e.data.cursor < MARK);
    assert.ok(flood.length >= 1);
    const span = msOf(flood.at(-1)) - msOf(flood[0]);
    assert.ok(flood.length <= mostIn(span),
      `${flood.length} of ${3 * PER_CONN} presence messages reached the history in ${span} ms (budget ${BUDGET}/s)`);
    // what was over the budget was dropped silently: every stream is still open
    assert.ok(conns.every((c) => !c.closed) && !watcher.closed);
    assert.equal(presenceOf(second, flooder).length, 0);
    // and the other user's presence reached the watcher's stream like anyone's
    await waitFor(() => watcher.events.some((e) => e.type === 'presence' && e.data.cursor === 4242),
      { what: 'the watcher got the other user\'s presence' });
  } finally {
    await closeAll([...conns, watcher]);
  }
});

test('presence at a normal rate, by PUT and WebSocket together, is never refused', async () => {
  const { room } = await publicRoom();
  const u = await newUser('pln');
  const ws = await roomWs(u, room);
  try {
    // about 4 a second over some 3 s, 16 in all: fewer than one window's budget, so even
    // a stall that bunched them all into one window keeps them within it
    assert.ok(16 < BUDGET);
    for (let k = 0; k < 8; k++) {
      const r = await put(u, room, k);
      assert.equal(r.status, 204, r.text);
      ws.ws.send(JSON.stringify({ type: 'presence', cursor: 100 + k }));
      await sleep(250);
    }
    await waitFor(() => presenceOf(room, u).length === 16, { what: 'all 16 presence events' });
    const cursors = presenceOf(room, u).map((e) => e.data.cursor).sort((a, b) => a - b);
    assert.deepEqual(cursors, [0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103, 104, 105, 106, 107]);
  } finally {
    await closeAll([ws]);
  }
});

test('presence to a room being deleted (its deleted mark is set) is 404 and writes nothing of the room', async () => {
  const { owner, room } = await publicRoom();
  const user = await newUser('pld');
  assert.equal((await put(user, room, 1)).status, 204);
  const before = presenceOf(room, user).length;
  // the mark DELETE /api/rooms/{id} sets before it clears the room's keys, while the row
  // (which the API read just before) is still there: the race the script closes
  const mark = `cc:room:{${room.id}}:deleted`;
  const counter = `cc:room:{${room.id}}:presence:rl:${user.user.id}`;
  redis('DEL', counter);
  redis('SET', mark, '1', 'PX', '60000');
  try {
    const r = await put(user, room, 2);
    assert.equal(r.status, 404, r.text);
    assert.equal(r.json.error, 'room_not_found');
    assert.equal(presenceOf(room, user).length, before, 'no presence event written');
    assert.equal(redis('EXISTS', counter), '0', 'no budget counter written');
  } finally {
    redis('DEL', mark);
  }
  // the mark, not anything else, answered: without it the same PUT goes through
  assert.equal((await put(user, room, 3)).status, 204);
  assert.equal((await put(owner, room, 4)).status, 204);
});
