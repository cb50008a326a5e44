// A room's event history is bounded in bytes as well as in entries (lib/events.h
// EVENTS_HISTORY_MAX_BYTES, 16 MiB; lib/lua/_emit.lua): a member who pastes and deletes large
// text again and again fills no more than that of Redis, however few the events. A client
// whose position went with the trimmed entries is told to resync, as with the count bound.
// The pastes go through the stack's API with its defaults (DOCUMENT_MAX_BYTES 1 MiB, bodies
// up to 1 MiB), so the bound here is the real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, call, createRoom, newUser, redis, redisJson } from '../lib/api.mjs';
import { sseBlockStream, sseFields } from '../lib/sse.mjs';

const MAX_BYTES = 16 * 1024 * 1024;
const PASTE = 900 * 1024;
// Whether stream id a comes after b.
const idAfter = (a, b) => {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am > bm || (am === bm && as > bs);
};
const key = (room) => `cc:room:{${room.id}}:events`;

// The history's size as Redis holds it, summed by Redis (the history is many megabytes):
// {count, bytes (type and data of every entry), newest (its bytes), first (its id)}.
function historySize(room) {
  const [count, bytes, newest, first] = redisJson('EVAL',
    "local count, bytes, last = 0, 0, 0 local from = '-' local first = '' " +
    'while true do ' +
    "  local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 4) " +
    '  for _, e in ipairs(page) do ' +
    "    local s = 0 for i = 1, #e[2] - 1, 2 do if e[2][i] == 'type' or e[2][i] == 'data' then s = s + #e[2][i + 1] end end " +
    "    if first == '' then first = e[1] end " +
    '    count, bytes, last = count + 1, bytes + s, s ' +
    '  end ' +
    '  if #page < 4 then break end ' +
    "  from = '(' .. page[#page][1] " +
    'end ' +
    'return {count, bytes, last, first}', '1', key(room));
  return { count, bytes, newest, first };
}

function assertBounded(room, what) {
  const h = historySize(room);
  assert.ok(h.count >= 1, `${what}: the newest entry is kept`);
  assert.ok(h.bytes <= MAX_BYTES || h.count === 1, `${what}: the history holds ${h.bytes} bytes in ${h.count} entries`);
  return h;
}

async function commit(u, room, revision, ops) {
  const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision, ops } });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  return r.json;
}

// The first events an SSE stream of the room gives a client resuming after lastId (each
// {id, type, data}); the stream is closed after `want` events.
async function resume(u, room, lastId, want) {
  const ac = new AbortController();
  const r = await fetch(`${BASE}/events/rooms/${room.id}`, {
    headers: { authorization: `Bearer ${u.token}`, accept: 'text/event-stream', 'last-event-id': lastId },
    signal: ac.signal,
  });
  assert.equal(r.status, 200);
  const got = [];
  const guard = setTimeout(() => ac.abort(), 15000);
  try {
    for await (const block of sseBlockStream(r.body)) {
      const f = sseFields(block);
      if (!f.data) continue;
      got.push({ id: f.id, type: f.event, data: f.data.length < 200 ? JSON.parse(f.data) : f.data.length });
      if (got.length >= want) break;
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  } finally {
    clearTimeout(guard);
    ac.abort();
  }
  return got;
}

test('pasting and deleting a large text again and again: the history stays within its bytes; a client behind it resyncs', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  let rev = 0;
  const paste = (c) => c.repeat(PASTE);
  // the first paste's event is where a client that saw it stands
  let j = await commit(u, room, rev, [paste('a')]);
  rev = j.revision;
  const firstId = historySize(room).first;
  // 20 pastes of 900 KiB and their deletions: 18 MiB of events, in 40 entries
  for (let i = 0; i < 20; i++) {
    j = await commit(u, room, rev, [-PASTE]);
    rev = j.revision;
    j = await commit(u, room, rev, [paste(String.fromCharCode(98 + (i % 20)))]);
    rev = j.revision;
    const h = assertBounded(room, `paste ${i + 1}`);
    assert.ok(h.count < 100, `${h.count} entries`);
  }
  const h = assertBounded(room, 'at the end');
  assert.ok(h.bytes > MAX_BYTES - 2 * PASTE, `the history still holds what fits (${h.bytes} bytes)`);
  const info = redisJson('XINFO', 'STREAM', key(room));
  const added = Array.isArray(info) ? info[info.indexOf('entries-added') + 1] : info['entries-added'];
  assert.ok(added - h.count >= 3, `${added} entries added, ${h.count} kept: the oldest went by bytes`);
  assert.ok(idAfter(h.first, firstId), 'the first paste is gone');

  // a client resuming after the first paste, whose event the history no longer holds: told
  // to start over
  const back = await resume(u, room, firstId, 1);
  assert.deepEqual(back.map((e) => [e.type, e.data]), [['resync', { reason: 'history_trimmed' }]]);
  // so is one polling from there
  const p = await call('GET', `/events/rooms/${room.id}/poll?since=${firstId}`, { token: u.token });
  assert.equal(p.status, 200, p.text.slice(0, 300));
  assert.equal(p.json.events[0].type, 'resync');
  assert.deepEqual(p.json.events[0].data, { reason: 'history_trimmed' });

  // one resuming within what is kept is given the events after its position, no resync
  const ids = redisJson('XRANGE', key(room), '-', '+', 'COUNT', 3).map((e) => e[0]);
  const within = await resume(u, room, ids[0], 2);
  assert.deepEqual(within.map((e) => e.id), ids.slice(1, 3));
  assert.ok(within.every((e) => e.type !== 'resync'));
});

test('small events: the count bound still applies, the byte bound takes nothing', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  // 1,100 one-character operations
  let rev = 0;
  for (let i = 0; i < 1100; i++) rev = (await commit(u, room, rev, i ? [i, 'x'] : ['x'])).revision;
  const h = assertBounded(room, 'small events');
  assert.ok(h.count >= 1000 && h.count <= 1100, `${h.count} entries`);
  assert.ok(h.bytes < 1024 * 1024, `${h.bytes} bytes`);
});

test('a history written before the byte bound (entries without their running total) is bounded at the next event', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  // 24 entries of 900 KiB as the version before wrote them (type and data, nothing else):
  // 21 MiB, over the bound
  for (let i = 0; i < 24; i++) {
    redis('EVAL', "return redis.call('XADD', KEYS[1], '*', 'type', 'room', 'data', " +
      "'{\"reason\":\"updated\",\"pad\":\"' .. string.rep('p', tonumber(ARGV[1])) .. '\"}')", '1', key(room), String(PASTE));
  }
  const before = historySize(room);
  assert.ok(before.bytes > MAX_BYTES, `${before.bytes} bytes written`);
  // a client reads it as before
  let p = await call('GET', `/events/rooms/${room.id}/poll?since=${before.first}`, { token: u.token });
  assert.equal(p.status, 200, p.text.slice(0, 300));
  assert.equal(p.json.events[0].type, 'room');

  // the next event (a small commit) bounds it
  let rev = (await commit(u, room, 0, ['hello'])).revision;
  let h = assertBounded(room, 'after the first commit');
  assert.ok(h.count < 24, `${h.count} entries`);
  // and large ones keep it bounded
  for (let i = 0; i < 4; i++) {
    rev = (await commit(u, room, rev, [5, 'q'.repeat(PASTE)])).revision;
    rev = (await commit(u, room, rev, [5, -PASTE])).revision;
    h = assertBounded(room, `after paste ${i + 1}`);
  }
  // the oldest entries written before are gone: a client there resyncs
  p = await call('GET', `/events/rooms/${room.id}/poll?since=${before.first}`, { token: u.token });
  assert.equal(p.status, 200, p.text.slice(0, 300));
  assert.deepEqual(p.json.events[0], { ...p.json.events[0], type: 'resync', data: { reason: 'history_trimmed' } });
});
