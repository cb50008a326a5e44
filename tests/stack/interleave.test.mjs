// Typists at one spot through the real stack (lib/ot.h, "Who goes first"): ten clients
// running the browser's own OT state machine (htdocs/src/collab.js) over real POSTs
// (lighttpd, the API processes) and real SSE streams (the broker), all putting their
// carets at one spot and typing at once: keystrokes, pastes, backspaces over their own
// text and edits elsewhere in the document. Every client must end with the server's text,
// and every typist's text must be one unbroken run, the runs in author order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import EventSource from 'eventsource';
import { BASE, call, newUser, redis, redisJson } from '../lib/api.mjs';
import { rng } from '../lib/rng.mjs';
import { Collab } from '../../htdocs/src/collab.js';
import { OpBuilder, apply, authorCmp, cpLength, transformIndex } from '../../htdocs/src/ot.js';

const CLIENTS = 10;
// made in all, by the ten together; INTERLEAVE_OPERATIONS sets another count, up to 10,000
// (tests/cluster/stack-suites.mjs: 4,000). 5,000 by default: the longest test of make
// test's longest lane took 96 s with 10,000 (2026-12-06), and what the extra operations add
// is load, not cases: the order of typists at one spot is checked by the simulation of
// tests/unit/test_ot.c (40,000 operations in make test, 1,000,000 in make ot-sim) and, on
// collab.js itself, by tests/unit/client-collab.test.mjs
const OPERATIONS = Number(process.env.INTERLEAVE_OPERATIONS || 5000);
// at most 10,000: each typist's characters are numbered within 4,096 code points (base())
if (!Number.isInteger(OPERATIONS) || OPERATIONS < CLIENTS || OPERATIONS > 10000 || OPERATIONS % CLIENTS !== 0) {
  throw new Error(`INTERLEAVE_OPERATIONS: a multiple of ${CLIENTS} up to 10000, not ${process.env.INTERLEAVE_OPERATIONS}`);
}
const SEED_TEXT = 'def main():\n    print(|#)\n';
const SPOT = Array.from(SEED_TEXT).indexOf('|') + 1;
// typist i types U+10000 + i * 4096 + its count: astral, and whose it is can be read back
const base = (i) => 0x10000 + i * 4096;
const ownerOf = (cp) => Math.floor((cp - 0x10000) / 4096);
const ELSEWHERE = ['x', ' ', 'é', '中', '😀'];

function makeClient(i, user, room, r) {
  const c = { i, user, text: '', caret: SPOT, typed: 0, made: 0, revision: 0, failures: [] };
  const path = `/api/rooms/${room.id}`;
  c.collab = new Collab({
    send: async (body) => {
      const res = await call('POST', `${path}/operations`, { token: user.token, body });
      return { status: res.status, json: res.json };
    },
    fetchDocument: async () => (await call('GET', `${path}/document`, { token: user.token })).json,
    // the caret follows as the editor's does (htdocs/src/editor.js applyRemote)
    applyRemote: (op, before) => {
      c.text = apply(op, c.text);
      c.caret = transformIndex(op, c.caret, !!before);
    },
    localText: () => c.text,
    onState: () => {},
    onError: (status, message) => c.failures.push(`${status} ${message}`),
    canSend: () => true,
  }, `t${i}${['a', 'ａ', '😀'][i % 3]}`, user.user.id);

  // one edit of this typist's: at its caret mostly, now and then elsewhere (before the
  // marker '|', where nobody types)
  c.edit = () => {
    const cps = Array.from(c.text);
    const len = cps.length;
    const b = new OpBuilder();
    const k = r();
    const prev = cps[c.caret - 1]?.codePointAt(0);
    if (k < 0.07 && prev >= base(i) && prev < base(i + 1)) { // backspace over our own
      b.retain(c.caret - 1).delete(1).retain(len - c.caret);
      c.caret -= 1;
    } else if (k < 0.12) { // elsewhere: insert or delete before the marker
      const bar = cps.indexOf('|');
      const at = Math.floor(r() * bar);
      // before the marker, so before the caret: the caret moves with the text
      if (r() < 0.5 && at < bar - 1) {
        b.retain(at).delete(1).retain(len - at - 1);
        c.caret -= 1;
      } else {
        b.retain(at).insert(ELSEWHERE[Math.floor(r() * ELSEWHERE.length)]).retain(len - at);
        c.caret += 1;
      }
    } else { // a keystroke, or a paste of a few
      const n = k < 0.2 ? 2 + Math.floor(r() * 4) : 1;
      let t = '';
      for (let j = 0; j < n; j++) t += String.fromCodePoint(base(i) + c.typed++);
      b.retain(c.caret).insert(t).retain(len - c.caret);
      c.caret += n;
    }
    const op = b.done();
    c.text = apply(op, c.text);
    c.made += 1;
    c.collab.local(op);
  };
  return c;
}

async function openStream(c, room) {
  const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: c.user.token, body: {} });
  assert.equal(t.status, 200, t.text);
  c.es = new EventSource(`${BASE}/events/rooms/${room.id}?ticket=${t.json.ticket}`);
  c.es.addEventListener('operation', (e) => c.collab.remote(JSON.parse(e.data)));
  await new Promise((resolve, reject) => { c.es.onopen = resolve; c.es.onerror = reject; });
  c.es.onerror = null;
}

// Resolves once every client is synchronized at the server's revision (checked after each
// event or answer, through onState), or rejects with where each one stands.
function settled(clients, room, token, ms) {
  return new Promise((resolve, reject) => {
    let checking = false;
    let again = false;
    const check = async () => {
      if (checking) { // one more check after this one: a change may have come meanwhile
        again = true;
        return;
      }
      checking = true;
      const doc = (await call('GET', `/api/rooms/${room.id}/document`, { token })).json;
      checking = false;
      if (clients.every((c) => c.collab.state === 'synchronized' && c.collab.revision === doc.revision)) {
        clearTimeout(timer);
        resolve(doc);
      } else if (again) {
        again = false;
        check();
      }
    };
    const timer = setTimeout(() => reject(new Error(`not settled: ${clients.map((c) => `${c.i}:${c.collab.state}@${c.collab.revision}`).join(' ')}`)), ms);
    for (const c of clients) c.collab.io.onState = (s) => { if (s === 'synchronized') check(); };
    check();
  });
}

test('ten typists at one spot through the real stack: one text, every run unbroken', { timeout: 600000 }, async () => {
  const r = rng(1303);
  const owner = await newUser('il');
  const created = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'interleave', language: 'python' } });
  assert.equal(created.status, 201, created.text);
  const room = created.json.room;
  assert.equal((await call('POST', `/api/rooms/${room.id}/operations`, { token: owner.token, body: { revision: 0, ops: [SEED_TEXT] } })).status, 200);
  // three people: the owner and two editors, with several clients (sites) each
  const users = [owner];
  for (let k = 0; k < 2; k++) {
    const u = await newUser('il');
    const j = await call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite: room.invite } });
    assert.equal(j.status, 200, j.text);
    users.push(u);
  }
  const clients = [];
  for (let i = 0; i < CLIENTS; i++) clients.push(makeClient(i, users[i % users.length], room, r));
  // as the browser does: stream first, then the document
  for (const c of clients) await openStream(c, room);
  for (const c of clients) {
    const doc = (await call('GET', `/api/rooms/${room.id}/document`, { token: c.user.token })).json;
    c.text = doc.content;
    c.caret = SPOT;
    c.collab.load(doc);
  }
  try {
    // everyone types at once, each at its own random pace (pacing, not synchronisation)
    const per = OPERATIONS / CLIENTS;
    await Promise.all(clients.map(async (c) => {
      while (c.made < per) {
        c.edit();
        await new Promise((res) => setTimeout(res, Math.floor(r() * 6)));
      }
    }));
    const doc = await settled(clients, room, owner.token, 240000);
    for (const c of clients) {
      assert.deepEqual(c.failures, [], `client ${c.i}`);
      assert.equal(c.text, doc.content, `client ${c.i} ends with the server's text`);
    }
    // every typist's characters: one unbroken run in typing order; the runs in author order
    const cps = Array.from(doc.content).map((ch) => ch.codePointAt(0));
    const spot = cps.slice(cps.indexOf(0x7c) + 1, cps.indexOf(0x23));
    let broken = 0;
    for (const c of clients) {
      const at = [];
      spot.forEach((v, j) => { if (ownerOf(v) === c.i) at.push(j); });
      const whole = at.length === 0 || at[at.length - 1] - at[0] + 1 === at.length;
      const ordered = at.every((p, j) => j === 0 || spot[p] > spot[at[j - 1]]);
      if (!whole || !ordered) broken++;
    }
    assert.ok(spot.every((v) => v >= 0x10000), 'only typed text at the spot');
    let misordered = 0;
    for (let j = 1; j < spot.length; j++) {
      const x = clients[ownerOf(spot[j - 1])];
      const y = clients[ownerOf(spot[j])];
      if (x !== y && authorCmp(x.collab.me, y.collab.me) > 0) misordered++;
    }
    const made = clients.reduce((n, c) => n + c.made, 0);
    console.log(`interleave: ${made} operations made by ${CLIENTS} clients, ${doc.revision - 1} committed; 0 divergences; ${broken} broken runs; ${misordered} misordered joins`);
    assert.equal(made, OPERATIONS);
    assert.ok(clients.every((c) => c.typed < 4096), 'each typist within its 4,096 code points');
    assert.equal(broken, 0, 'broken runs');
    assert.equal(misordered, 0, 'runs out of author order');
  } finally {
    for (const c of clients) {
      c.es.close();
      c.collab.stop();
    }
  }
});

test('the op log keeps authors; an entry from before authors were kept still transforms', async () => {
  const u = await newUser('il');
  const created = await call('POST', '/api/rooms', { token: u.token, body: { name: 'log', language: 'python' } });
  const room = created.json.room;
  const post = (body) => call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body });
  assert.equal((await post({ revision: 0, ops: ['ab'], client_id: 'zz.1' })).status, 200);
  assert.equal((await post({ revision: 1, ops: [1, 'X', 1], client_id: 'zz.2' })).status, 200);
  const entries = redisJson('LRANGE', `cc:room:{${room.id}}:ops`, '0', '-1').map((e) => JSON.parse(e));
  assert.deepEqual(entries[1], { u: u.user.id, s: 'zz', ops: [1, 'X', 1] });
  // a lower site (same user), made at revision 1 at the same spot: goes before X
  const first = await post({ revision: 1, ops: [1, 'a'], client_id: 'aa.1' });
  assert.equal(first.status, 200, first.text);
  assert.deepEqual(first.json.ops, [1, 'a', 2]); // "ab" → "aXb" → "aaXb"
  // the entry of revision 2 rewritten as stored before authors were kept: its author is
  // unknown, so the committed one goes first, as it always did
  redis('LSET', `cc:room:{${room.id}}:ops`, '1', JSON.stringify([1, 'X', 1]));
  const legacy = await post({ revision: 1, ops: [1, 'b'], client_id: 'aa.2' });
  assert.equal(legacy.status, 200, legacy.text);
  assert.deepEqual(legacy.json.ops, [3, 'b', 1]); // after X (by authors it would be before)
  const doc = (await call('GET', `/api/rooms/${room.id}/document`, { token: u.token })).json;
  assert.equal(doc.content, 'aaXbb');
});
