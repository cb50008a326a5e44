// A session's streams end when the session does, expiry included: a stream opened with a
// session token, or with a ticket taken with it, is acting as that session, and once its
// token has expired the session can no longer be signed out (POST /api/auth/logout needs a
// token that is still valid), so a stream opened with a stolen token would otherwise outlive
// the token for good, ended only by a password change (docs/SECURITY.md, "What a token and a
// ticket grant, and for how long").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { BASE, call, newUser, createRoom, signJwt } from '../lib/api.mjs';
import { waitFor } from '../lib/procs.mjs';

const claims = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());

function sse(url, token) {
  const ctl = new AbortController();
  const s = { text: '', ended: false, close: () => ctl.abort() };
  s.opened = fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {}, signal: ctl.signal })
    .then(async (res) => {
      s.status = res.status;
      try { for await (const ch of res.body) s.text += Buffer.from(ch).toString(); } catch { /* aborted */ }
      s.ended = true;
    });
  return s;
}

function ws(url, token) {
  const sock = new WebSocket(url, token ? { headers: { Authorization: `Bearer ${token}` } } : undefined);
  const s = { events: [], ended: false, close: () => sock.terminate() };
  sock.on('message', (m) => s.events.push(JSON.parse(m.toString())));
  sock.on('close', (code) => { s.ended = true; s.code = code; });
  sock.on('error', () => {});
  return s;
}

test('the streams of a session end when its token expires: bearer SSE and WebSocket, and a ticket\'s stream', async () => {
  const owner = await newUser('xo');
  const x = await newUser('xx');
  const room = await createRoom(owner.token, { visibility: 'public' });
  // x's own session, as a token that expires in a few seconds (TOKEN_TTL is at least 60 s)
  const now = Math.floor(Date.now() / 1000);
  const short = signJwt({ ...claims(x.token), iat: now, exp: now + 4 });
  const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: short, body: {} });
  assert.equal(t.status, 200, t.text);

  const wsBase = BASE.replace(/^http/, 'ws');
  const a = sse(`${BASE}/events/rooms/${room.id}`, short);
  const b = sse(`${BASE}/events/rooms/${room.id}?ticket=${t.json.ticket}`);
  const c = ws(`${wsBase}/events/rooms/${room.id}/ws`, short);
  await waitFor(() => a.text.includes(': connected') && b.text.includes(': connected')
    && c.events.some((e) => e.type === 'subscribed'), { what: 'the three streams live' });

  // the token expires; the API refuses it from then on
  await waitFor(async () => (await call('GET', '/api/auth/me', { token: short })).status === 401,
    { timeout: 10000, what: 'the token expired' });
  // well past it, the room goes on: nothing of it may reach the expired session
  await new Promise((r) => setTimeout(r, 5000));
  const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: owner.token, body: { revision: 0, ops: ['after the expiry'] } });
  assert.equal(op.status, 200, op.text);
  await new Promise((r) => setTimeout(r, 1000));
  try {
    assert.ok(!a.text.includes('after the expiry'), 'the bearer SSE stream got an event after its session expired');
    assert.ok(!b.text.includes('after the expiry'), 'the ticket\'s SSE stream got an event after its session expired');
    assert.ok(!c.events.some((e) => e.type === 'operation'), 'the WebSocket got an event after its session expired');
    assert.ok(a.ended && b.ended && c.ended, 'every stream of the expired session ended');
    assert.equal(c.code, 1008);
  } finally {
    a.close(); b.close(); c.close();
  }
});
