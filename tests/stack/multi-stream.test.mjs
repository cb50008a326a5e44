// The stream of several rooms through the real stack (the front door, API, broker): a member's
// rooms arrive on one connection, a room the member may not read is dropped and never sent,
// a removal drops only that room, a sign-out ends the stream. Run through lighttpd and, in
// the Apache pass, through Apache (scripts/test.sh).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { BASE, call, newUser, createRoom, sseBlocks } from '../lib/api.mjs';
import { waitFor } from '../lib/procs.mjs';

// The stream read with fetch, as the browser client's shared worker reads it.
function multi(rooms, token) {
  const ctl = new AbortController();
  const s = { events: [], ended: false };
  s.opened = fetch(`${BASE}/events/multi?${new URLSearchParams({ rooms: rooms.join(',') })}`,
    { headers: { Authorization: `Bearer ${token}` }, signal: ctl.signal }).then(async (res) => {
    s.status = res.status;
    if (res.status !== 200) {
      s.json = await res.json().catch(() => null);
      s.ended = true;
      return;
    }
    sseBlocks(res.body, (block) => {
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data) s.events.push(JSON.parse(data));
    }).then(() => { s.ended = true; });
  });
  s.of = (room, type) => s.events.filter((e) => e.room === room && (!type || e.type === type));
  s.close = () => ctl.abort();
  return s;
}

const op = (token, room, text) => call('POST', `/api/rooms/${room.id}/operations`, { token, body: { revision: 0, ops: [text] } })
  .then((r) => assert.equal(r.status, 200, r.text));

test('a member\'s rooms on one stream: a room it may not read is dropped, a removal drops one room, sign-out ends it', async () => {
  const owner = await newUser('mso');
  const m = await newUser('msm');
  const priv = await createRoom(owner.token, { visibility: 'private' });
  const pub = await createRoom(owner.token, { visibility: 'public' });
  const closed = await createRoom(owner.token, { visibility: 'private' });
  let r = await call('POST', `/api/rooms/${priv.id}/join`, { token: m.token, body: { invite: priv.invite } });
  assert.equal(r.status, 200, r.text);
  r = await call('POST', `/api/rooms/${pub.id}/join`, { token: m.token, body: {} });
  assert.equal(r.status, 200, r.text);

  const s = multi([priv.id, pub.id, closed.id], m.token);
  await s.opened;
  assert.equal(s.status, 200);
  await waitFor(() => s.of(priv.id, 'subscribed').length && s.of(pub.id, 'subscribed').length && s.of(closed.id, 'dropped').length,
    { what: 'both rooms live, the third dropped' });
  assert.equal(s.of(closed.id, 'dropped')[0].data.reason, 'not_a_member');

  await op(owner.token, priv, 'in the private room');
  await op(owner.token, pub, 'in the public room');
  await op(owner.token, closed, 'never sent');
  await waitFor(() => s.of(priv.id, 'operation').length === 1 && s.of(pub.id, 'operation').length === 1, { what: 'both operations' });
  assert.deepEqual(s.of(priv.id, 'operation')[0].data.ops, ['in the private room']);
  assert.equal(s.of(pub.id, 'operation')[0].data.user.id, owner.user.id);

  // removed from one room: that room goes, the other stays
  r = await call('DELETE', `/api/rooms/${priv.id}/members/${m.user.id}`, { token: owner.token });
  assert.equal(r.status, 204, r.text);
  await waitFor(() => s.of(priv.id, 'dropped').length === 1, { what: 'the private room dropped' });
  assert.equal(s.of(priv.id, 'dropped')[0].data.reason, 'not_a_member');
  await call('POST', `/api/rooms/${priv.id}/operations`, { token: owner.token, body: { revision: 1, ops: ['after the removal '] } });
  await op(owner.token, pub, 'still live ');
  await waitFor(() => s.of(pub.id, 'operation').length === 2, { what: 'the public room goes on' });
  assert.equal(s.of(priv.id, 'operation').length, 1);
  assert.equal(s.of(closed.id).filter((e) => e.type !== 'dropped').length, 0, 'nothing of the room it may not read');
  assert.equal(s.ended, false);

  // the stream takes the session's token, never a ticket
  const t = await call('POST', `/api/rooms/${pub.id}/stream-ticket`, { token: m.token, body: {} });
  const refused = await fetch(`${BASE}/events/multi?rooms=${pub.id}&ticket=${t.json.ticket}`);
  assert.equal(refused.status, 401);

  // sign-out: the last room is dropped and the stream ends
  r = await call('POST', '/api/auth/logout', { token: m.token });
  assert.equal(r.status, 204);
  await waitFor(() => s.ended, { what: 'the stream ended' });
  assert.equal(s.of(pub.id, 'dropped')[0].data.reason, 'session_revoked');
  const again = multi([pub.id], m.token);
  await again.opened;
  assert.equal(again.status, 401);
});

test('through the front door a broker answer carries each security header once, and its CORS origin', async () => {
  // the broker sets them for answers read straight from its port; the web server in front
  // sets (replaces) its own, so a proxied answer must not carry two of a kind
  const u = await newUser();
  for (const [path, init, status] of [
    ['/events/health', {}, 200],
    ['/events/multi?rooms=nosuchroom1', { headers: { Authorization: `Bearer ${u.token}` } }, 403],
    ['/events/rooms/nosuchroom1', {}, 401],
  ]) {
    const r = await fetch(`${BASE}${path}`, init);
    await r.arrayBuffer();
    assert.equal(r.status, status, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    assert.ok(!r.headers.get('referrer-policy').includes(','), `${path}: ${r.headers.get('referrer-policy')}`);
    assert.equal(r.headers.get('access-control-allow-origin'), '*', path);
  }
});
