// The browser client's OT state machine (htdocs/src/collab.js) in a simulated room: a
// server that commits as the real one does (transforming late operations over the log),
// three clients editing at random, answers and events arriving in any order, events lost
// (a gap, then a refetch), `resync` events and 409s. Every client must end with the
// server's text. Then typists at one spot (lib/ot.h, "Who goes first"): every typist's
// text must end up one unbroken run. No browser and no stack: the machine is driven
// directly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from '../lib/rng.mjs';
import { waitFor } from '../lib/procs.mjs';
import { Collab } from '../../htdocs/src/collab.js';
import {
  OpBuilder, apply, author, authorCmp, cpLength, transform, transformIndex,
} from '../../htdocs/src/ot.js';

const PIECES = ['a', 'b', ' ', '\n', 'é', '日', '😀', '👩‍💻'];

function randomEdit(r, len) {
  const b = new OpBuilder();
  const at = Math.floor(r() * (len + 1));
  b.retain(at);
  const del = r() < 0.4 ? Math.floor(r() * Math.min(3, len - at + 1)) : 0;
  if (r() < 0.8 || del === 0) b.insert(PIECES[Math.floor(r() * PIECES.length)] + PIECES[Math.floor(r() * PIECES.length)]);
  b.delete(del);
  b.retain(len - at - del);
  return b.done();
}

class Server {
  constructor() {
    this.text = '';
    this.log = []; // log[i] took revision i to i + 1
    this.clients = [];
    this.committed = new Map(); // the same request again -> the answer it got (cc:room:{id}:commits)
    this.kept = Infinity; // the operations the log keeps (DOC_OPS_KEEP); the commits set outlives them
  }

  get revision() {
    return this.log.length;
  }

  // as lib/store_doc.c: over the log since `revision`, the lower author's insert first
  commit({ revision, ops, client_id: clientId }, forceConflict, userId = 1) {
    const key = clientId ? `${userId}|${revision}|${JSON.stringify(ops)}|${clientId}` : null;
    // a repeat of a commit is answered as the first one was, and not applied again
    const first = this.revision - this.kept + 1; // the oldest revision the log holds
    if (key && this.committed.has(key)) {
      const done = this.committed.get(key);
      if (done.revision >= first) return { status: 200, json: done };
      // its entry is gone: too old, but the server says which revision it became
      return { status: 409, json: { error: 'revision_too_old', revision: this.revision, applied_revision: done.revision } };
    }
    if (revision > this.revision || revision + 1 < first || forceConflict) return { status: 409, json: { error: 'revision_too_old', revision: this.revision } };
    let op = ops;
    const me = author(userId, clientId);
    for (const b of this.log.slice(revision)) [op] = transform(op, b.op, authorCmp(me, b.author) < 0);
    this.text = apply(op, this.text);
    this.log.push({ op, author: me });
    const ev = { revision: this.revision, ops: op, client_id: clientId, user: { id: userId, username: 'x' } };
    for (const c of this.clients) c.inbox.push(ev);
    if (key) this.committed.set(key, { revision: this.revision, ops: op });
    return { status: 200, json: { revision: this.revision, ops: op } };
  }
}

function makeClient(server, r, name, userId = 1) {
  const c = { name, text: '', inbox: [], requests: [], docs: [], caret: 0, userId };
  c.collab = new Collab({
    send: (body) => new Promise((resolve) => c.requests.push({ body, resolve })),
    fetchDocument: () => new Promise((resolve) => c.docs.push(resolve)),
    // the caret follows as the editor's does (htdocs/src/editor.js applyRemote)
    applyRemote: (op, before) => { c.text = apply(op, c.text); c.caret = transformIndex(op, c.caret, !!before); },
    localText: () => c.text,
    onState: () => {},
    onError: (status, message) => { throw new Error(`${name}: ${status} ${message}`); },
    canSend: () => c.online !== false,
  }, name, userId);
  c.collab.load({ revision: server.revision, content: server.text });
  c.text = server.text;
  server.clients.push(c);
  c.edit = () => {
    const op = randomEdit(r, cpLength(c.text));
    c.text = apply(op, c.text);
    c.collab.local(op);
  };
  return c;
}

const seen = { conflicts: 0, gaps: 0, resyncs: 0 };
const settle = () => new Promise((resolve) => setImmediate(resolve));

// What a resync does with an edit whose answer was lost (p's `first`): it sends it once
// more under the same client_id (the server answers with the first commit), and only then
// fetches the document; then every event and request still waiting is played out.
async function probeThenRefetch(server, p, first, others = []) {
  assert.equal(p.requests.length, 1, 'the uncertain edit is sent again before the refetch');
  assert.equal(p.requests[0].body.client_id, first.body.client_id, 'under the same client_id');
  const again = p.requests.shift();
  again.resolve(server.commit(again.body, false, p.userId));
  await settle();
  assert.equal(p.docs.length, 1, 'then the document is fetched');
  p.docs.shift()({ revision: server.revision, content: server.text });
  await settle();
  const waiting = () => p.inbox.length || p.requests.length || others.some((o) => o.inbox.length);
  for (let i = 0; i < 50 && waiting(); i++) {
    if (p.inbox.length) p.collab.remote(p.inbox.shift());
    for (const o of others) if (o.inbox.length) o.collab.remote(o.inbox.shift());
    if (p.requests.length) { const x = p.requests.shift(); x.resolve(server.commit(x.body, false, p.userId)); }
    await settle();
  }
}

// p types 'once'; the server commits it, but both its answer and its event are lost.
// Returns that first request.
async function typedAndLost(server, p) {
  p.text = 'once';
  p.collab.local(['once']);
  await settle();
  const first = p.requests.shift();
  server.commit(first.body, false, p.userId); // committed, but the answer is lost
  first.resolve({ status: 0 });
  p.inbox.length = 0; // and so is its event
  await settle();
  return first;
}

async function simulate(seed, steps) {
  const r = rng(seed);
  const server = new Server();
  const clients = ['p', 'q', 's'].map((n) => makeClient(server, r, n));
  const act = async (editing) => {
    const c = clients[Math.floor(r() * clients.length)];
    const k = r();
    if (editing && k < 0.35) c.edit();
    else if (k < 0.55 && c.requests.length) { // the server takes a request (maybe refusing it as stale)
      const q = c.requests.shift();
      const refuse = editing && r() < 0.03;
      if (refuse) seen.conflicts++;
      q.resolve(server.commit(q.body, refuse, c.userId));
    } else if (k < 0.8 && c.inbox.length) { // an event arrives
      c.collab.remote(c.inbox.shift());
    } else if (editing && k < 0.84 && c.inbox.length > 1) { // events are lost: the next one shows a gap
      c.inbox.splice(0, 1 + Math.floor(r() * (c.inbox.length - 1)));
      seen.gaps++;
    } else if (editing && k < 0.86) { // the broker says the history no longer reaches back
      c.inbox.length = 0;
      c.collab.resync();
      seen.resyncs++;
    } else if (c.docs.length) { // a refetched document arrives
      c.docs.shift()({ revision: server.revision, content: server.text });
    }
    await settle();
  };
  for (let i = 0; i < steps; i++) await act(true);
  // no more typing: let everything in flight arrive
  let i = 0;
  for (; i < 20000; i++) {
    const busy = clients.some((c) => c.requests.length || c.inbox.length || c.docs.length || c.collab.state !== 'synchronized');
    if (!busy) break;
    await act(false);
  }
  for (const c of clients) {
    assert.equal(c.collab.state, 'synchronized', `seed ${seed}: ${c.name} is ${c.collab.state}`);
    assert.equal(c.text, server.text, `seed ${seed}: ${c.name}'s text`);
    assert.equal(c.collab.revision, server.revision, `seed ${seed}: ${c.name}'s revision`);
  }
  return server;
}

test('clients converge with the server whatever the order of answers and events', async () => {
  let ops = 0;
  for (let seed = 1; seed <= 100; seed++) ops += (await simulate(seed, 300)).revision;
  assert.ok(ops > 1000, `enough operations were committed (${ops})`);
  assert.ok(seen.conflicts > 20 && seen.gaps > 20 && seen.resyncs > 20, JSON.stringify(seen));
});

// Typists at one spot: 2..10 clients, each typing its own characters (astral, one per
// typist and count) at its caret, pasting a few at once, backspacing over its own, while
// answers and events arrive in any order. Each typist's text must be one unbroken run in
// typing order, and the spot must hold the runs in author order. (A refetch rebases over
// a diff, which knows no authors: gaps, resyncs and 409s are left out here; see
// docs/INTERNALS.md.)
async function typists(seed, steps) {
  const r = rng(seed);
  const server = new Server();
  server.text = 'x = |#;';
  const n = 2 + Math.floor(r() * 9);
  const names = [];
  while (names.length < n) {
    const name = ['a', 'b', 'ａ', '😀', 'z'][Math.floor(r() * 5)] + names.length;
    names.push(name);
  }
  const clients = names.map((name) => makeClient(server, r, name, 1 + Math.floor(r() * 3)));
  const base = (i) => 0x10000 + i * 4096;
  clients.forEach((c, i) => {
    c.caret = 5;
    c.typed = 0;
    c.edit = () => {
      const len = cpLength(c.text);
      const b = new OpBuilder();
      const before = Array.from(c.text)[c.caret - 1];
      const own = before && before.codePointAt(0) >= base(i) && before.codePointAt(0) < base(i + 1);
      if (own && r() < 0.15) {
        b.retain(c.caret - 1).delete(1).retain(len - c.caret);
        c.caret -= 1;
      } else {
        const k = r() < 0.1 ? 2 + Math.floor(r() * 4) : 1;
        let t = '';
        for (let j = 0; j < k; j++) t += String.fromCodePoint(base(i) + c.typed++);
        b.retain(c.caret).insert(t).retain(len - c.caret);
        c.caret += k;
      }
      const op = b.done();
      c.text = apply(op, c.text);
      c.collab.local(op);
    };
  });
  const act = async (editing) => {
    const c = clients[Math.floor(r() * clients.length)];
    const k = r();
    if (editing && k < 0.4) c.edit();
    else if (k < 0.6 && c.requests.length) {
      const q = c.requests.shift();
      q.resolve(server.commit(q.body, false, c.userId));
    }
    else if (c.inbox.length) c.collab.remote(c.inbox.shift());
    await settle();
  };
  for (let i = 0; i < steps; i++) await act(true);
  for (let i = 0; i < 20000 && clients.some((c) => c.requests.length || c.inbox.length || c.collab.state !== 'synchronized'); i++) await act(false);
  for (const c of clients) assert.equal(c.text, server.text, `seed ${seed}: ${c.name}'s text`);
  const cps = Array.from(server.text).map((ch) => ch.codePointAt(0));
  const spot = cps.slice(cps.indexOf(0x7c) + 1, cps.indexOf(0x23));
  let ops = 0;
  clients.forEach((c, i) => {
    const at = [];
    spot.forEach((v, j) => { if (v >= base(i) && v < base(i + 1)) at.push(j); });
    assert.ok(at.length === 0 || at[at.length - 1] - at[0] + 1 === at.length, `seed ${seed}: ${c.name}'s run is broken`);
    for (let j = 1; j < at.length; j++) assert.ok(spot[at[j]] > spot[at[j - 1]], `seed ${seed}: ${c.name}'s run is out of order`);
    ops += c.typed;
  });
  const owner = (v) => clients[Math.floor((v - 0x10000) / 4096)];
  for (let j = 1; j < spot.length; j++) {
    const x = owner(spot[j - 1]);
    const y = owner(spot[j]);
    assert.ok(x === y || authorCmp(x.collab.me, y.collab.me) < 0, `seed ${seed}: runs out of author order`);
  }
  return ops;
}

test('typists at one spot keep their runs whole, in author order, 2 to 10 of them', async () => {
  let typed = 0;
  for (let seed = 1; seed <= 60; seed++) typed += await typists(seed, 400);
  assert.ok(typed > 5000, `enough characters were typed (${typed})`);
});

// An edit the server committed whose answer and event were both lost: the resync that
// follows sends it once more under the same client_id first; the server answers the first
// commit, and the edit is in the text once (docs/CLIENT.md, "Unsent edits").
test('a committed edit whose answer and event were lost is not applied twice by a resync', async () => {
  const server = new Server();
  const r = rng(7);
  const p = makeClient(server, r, 'p');
  const q = makeClient(server, r, 'q', 2);
  const first = await typedAndLost(server, p);
  // q types meanwhile
  q.collab.remote(q.inbox.shift());
  q.text = apply([4, '!'], q.text);
  q.collab.local([4, '!']);
  await settle();
  const qr = q.requests.shift();
  qr.resolve(server.commit(qr.body, false, q.userId));
  await settle();
  // p learns of a gap and resyncs: it asks the server about its edit first
  p.collab.resync();
  await settle();
  await probeThenRefetch(server, p, first, [q]);
  assert.equal(server.text, 'once!');
  assert.equal(p.text, 'once!');
  assert.equal(q.text, 'once!');
  assert.equal(p.collab.state, 'synchronized');
});

// The same, but by the time the resync asks, the room has moved on past the kept log: the
// server no longer has the operation to answer with, and says `409 revision_too_old` with
// `applied_revision`, the revision the edit became. The client takes the edit as committed
// (the fetched text holds it), keeps only what was typed after it, and the edit is in the
// text once (docs/CLIENT.md, "Unsent edits").
test('a committed edit whose entry the server no longer keeps is taken as committed by a resync, not sent again', async () => {
  const server = new Server();
  server.kept = 2;
  const r = rng(9);
  const p = makeClient(server, r, 'p');
  const q = makeClient(server, r, 'q', 2);
  const first = await typedAndLost(server, p);
  // p types on while the edit is uncertain: that waits in the buffer
  p.text = 'once?';
  p.collab.local([4, '?']);
  // q types three times at the start: the log keeps two operations, so p's (revision 1) is
  // gone
  q.collab.remote(q.inbox.shift());
  for (let i = 0; i < 3; i++) {
    q.text = apply(['!'], q.text);
    q.collab.local(['!']);
    await settle();
    const qr = q.requests.shift();
    qr.resolve(server.commit(qr.body, false, q.userId));
    await settle();
    q.collab.remote(q.inbox.shift());
  }
  assert.equal(server.text, '!!!once');
  // the old request, as any that old, is beyond the kept log; the repeat is known
  assert.equal(server.commit({ revision: 0, ops: ['once'], client_id: 'p.99' }, false, 1).json.applied_revision, undefined);
  const asked = server.commit(first.body, false, p.userId);
  assert.deepEqual(asked, { status: 409, json: { error: 'revision_too_old', revision: 4, applied_revision: 1 } });
  p.collab.resync();
  await settle();
  await probeThenRefetch(server, p, first, [q]);
  assert.equal(server.text, '!!!once?');
  assert.equal(p.text, '!!!once?');
  assert.equal(q.text, '!!!once?');
  assert.equal(p.collab.state, 'synchronized');
  assert.equal(q.collab.state, 'synchronized');
});

// A room page as view-room.js wires it: the editor exists only once the document is
// loaded, and the io functions reach it (before then they throw, as this.editor.x would).
function pageClient() {
  const c = { editor: null, requests: [], docs: [] };
  c.collab = new Collab({
    send: (body) => new Promise((resolve) => c.requests.push({ body, resolve })),
    fetchDocument: () => new Promise((resolve) => c.docs.push(resolve)),
    applyRemote: (op) => { c.editor.text = apply(op, c.editor.text); },
    localText: () => c.editor.text,
    onState: () => {},
    onError: (status, message) => { throw new Error(`${status} ${message}`); },
    canSend: () => true,
  }, 'page', 1);
  return c;
}

// A `resync` (history_trimmed) can come on the stream before the page has the document.
test('a resync asked for before the document is loaded runs once it is', async () => {
  const c = pageClient();
  assert.doesNotThrow(() => c.collab.resync());
  await settle();
  assert.equal(c.docs.length, 0, 'nothing is fetched before the load');
  // the document read on opening, at revision 3; the server has moved on to 5
  c.editor = { text: 'abc' };
  c.collab.load({ revision: 3, content: 'abc' });
  await settle();
  assert.equal(c.docs.length, 1, 'the wanted resync fetches the document once loaded');
  assert.equal(c.collab.state, 'resyncing');
  c.docs.shift()({ revision: 5, content: 'abcde' });
  await settle();
  assert.equal(c.editor.text, 'abcde');
  assert.equal(c.collab.revision, 5);
  assert.equal(c.collab.state, 'synchronized');
  assert.equal(c.docs.length, 0, 'and only once');
});

test('a resync asked for before kept edits are restored runs once they are, and they survive', async () => {
  const c = pageClient();
  c.collab.resync();
  await settle();
  assert.equal(c.docs.length, 0);
  // kept edits: "X" typed after "a" in "ab" at revision 1, never sent; the server is at 2,
  // "ab" -> "abz"
  c.editor = { text: 'aXb' };
  c.collab.restore({ revision: 1, base: 'ab', op: [1, 'X', 1], id: 'page.1', sent: false, buffer: null, site: 'page', seq: 1 }, 2);
  await settle();
  assert.equal(c.requests.length, 0, 'the edit waits for the fetched text');
  assert.equal(c.docs.length, 1, 'the wanted resync fetches the document');
  c.docs.shift()({ revision: 2, content: 'abz' });
  await settle();
  assert.equal(c.editor.text, 'aXbz');
  assert.equal(c.requests.length, 1, 'then the edit is sent, rebased onto revision 2');
  assert.equal(c.requests[0].body.revision, 2);
  assert.deepEqual(apply(c.requests[0].body.ops, 'abz'), 'aXbz');
});

// The same, but the resync is asked for while the POST is still on its way (a gap on the
// stream as the network failed, say): it waits for the answer, and when that answer is lost
// too the edit is uncertain all the same; the resync sends it once more under its client_id
// before it rebases, so the edit is not taken for an unsent one and committed a second time.
test('an edit whose answer is lost while a resync waits for it is not applied twice', async () => {
  const server = new Server();
  const r = rng(11);
  const p = makeClient(server, r, 'p');
  p.text = 'once';
  p.collab.local(['once']);
  await settle();
  const first = p.requests.shift();
  // a gap on the stream while the POST is on its way: the resync waits for its answer
  p.collab.resync();
  await settle();
  assert.equal(p.docs.length, 0, 'nothing is fetched while the edit is on its way');
  server.commit(first.body, false, p.userId); // committed, but the answer is lost
  first.resolve({ status: 0 });
  p.inbox.length = 0; // and so is its event
  await settle();
  await probeThenRefetch(server, p, first);
  assert.equal(server.text, 'once');
  assert.equal(server.revision, 1);
  assert.equal(p.text, 'once');
  assert.equal(p.collab.state, 'synchronized');
});

// The resend that asks about an uncertain edit can go unanswered as well (the network is
// still down) or be turned away before the server looks at it (429, 503). Neither says
// whether the first send was committed, so the resync must not go on to the refetch and
// take the edit for an unsent one: it asks again after a pause, until an answer tells.
for (const [name, answers] of [
  ['a 429', [{ status: 429, json: { error: 'rate_limited' } }]],
  ['no answer, then a 503', [{ status: 0 }, { status: 503, json: { error: 'unavailable' } }]],
]) {
  test(`a resync whose question about an uncertain edit gets ${name} asks again`, async () => {
    const server = new Server();
    const r = rng(13);
    const p = makeClient(server, r, 'p');
    const first = await typedAndLost(server, p);
    p.collab.resync();
    await settle();
    for (const answer of answers) {
      assert.equal(p.requests.length, 1, 'the uncertain edit is sent again before any refetch');
      assert.equal(p.requests[0].body.client_id, first.body.client_id);
      p.requests.shift().resolve(answer);
      await settle();
      assert.equal(p.docs.length, 0, 'an answer that tells nothing does not lead to a refetch');
      // the next question comes after a pause
      for (let i = 0; i < 100 && !p.requests.length && !p.docs.length; i++) await new Promise((res) => setTimeout(res, 50));
    }
    await probeThenRefetch(server, p, first);
    assert.equal(server.text, 'once');
    assert.equal(server.revision, 1);
    assert.equal(p.text, 'once');
    assert.equal(p.collab.state, 'synchronized');
  });
}

// Offline (canSend() false) a resync cannot ask about an uncertain edit, and must not
// refetch either: the rebase would take the edit for an unsent one. It waits; back online,
// retry() sends the edit under its client_id, and the answer lets the resync go on.
test('a resync while offline waits to ask about an uncertain edit instead of refetching', async () => {
  const server = new Server();
  const p = makeClient(server, rng(17), 'p');
  const first = await typedAndLost(server, p);
  p.online = false;
  p.collab.resync();
  await settle();
  assert.equal(p.requests.length, 0, 'nothing is sent while offline');
  assert.equal(p.docs.length, 0, 'and nothing is fetched');
  p.online = true;
  p.collab.retry();
  await waitFor(() => p.requests.length === 1, { what: 'the edit sent again once back online', interval: 20 });
  await probeThenRefetch(server, p, first);
  assert.equal(server.text, 'once');
  assert.equal(p.text, 'once');
  assert.equal(p.collab.state, 'synchronized');
});
