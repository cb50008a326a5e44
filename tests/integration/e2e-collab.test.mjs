// The browser client's OT state machine (htdocs/src/collab.js) in a simulated room: a
// server that commits as the real one does (transforming late operations over the log),
// three clients editing at random, answers and events arriving in any order, events lost
// (a gap, then a refetch), `resync` events and 409s. Every client must end with the
// server's text. No browser and no stack: the machine is driven directly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from '../e2e/lib/rng.mjs';
import { Collab } from '../../htdocs/src/collab.js';
import { OpBuilder, apply, cpLength, transform } from '../../htdocs/src/ot.js';

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
  }

  get revision() {
    return this.log.length;
  }

  commit({ revision, ops, client_id: clientId }, forceConflict) {
    if (revision > this.revision || forceConflict) return { status: 409, json: { error: 'revision_too_old', revision: this.revision } };
    let op = ops;
    for (const b of this.log.slice(revision)) [op] = transform(op, b);
    this.text = apply(op, this.text);
    this.log.push(op);
    const ev = { revision: this.revision, ops: op, client_id: clientId, user: { id: 1, username: 'x' } };
    for (const c of this.clients) c.inbox.push(ev);
    return { status: 200, json: { revision: this.revision, ops: op } };
  }
}

function makeClient(server, r, name) {
  const c = { name, text: '', inbox: [], requests: [], docs: [] };
  c.collab = new Collab({
    send: (body) => new Promise((resolve) => c.requests.push({ body, resolve })),
    fetchDocument: () => new Promise((resolve) => c.docs.push(resolve)),
    applyRemote: (op) => { c.text = apply(op, c.text); },
    localText: () => c.text,
    onState: () => {},
    onError: (status, message) => { throw new Error(`${name}: ${status} ${message}`); },
    canSend: () => true,
  }, name);
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
      q.resolve(server.commit(q.body, refuse));
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
