// The browser client's OT (htdocs/src/ot.js) against its own laws and against the server:
// the same two concurrent operations, transformed in JavaScript and by the API, must give
// the same operation and the same document, emoji, combining marks and CJK included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../lib/fetch.mjs';
import { rng } from '../lib/rng.mjs';
import {
  OpBuilder, apply, author, authorCmp, baseLength, compose, cpLength, diff, normalize, targetLength, transform,
  transformIndex,
} from '../../htdocs/src/ot.js';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
const PIECES = ['a', 'b', 'z', ' ', '\n', 'é', 'e\u0301', '日本', '語', '😀', '👩‍💻', '🚀x', '{}', 'ß'];

function randomText(r, n) {
  let s = '';
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
  return s;
}

// A random operation on a document of len code points, exact length.
function randomOp(r, len) {
  const b = new OpBuilder();
  let left = len;
  while (left > 0 || r() < 0.3) {
    const k = r();
    if (k < 0.25) b.insert(randomText(r, 1 + Math.floor(r() * 3)));
    if (left === 0) break;
    const n = 1 + Math.floor(r() * Math.min(left, 6));
    if (k < 0.6) b.retain(n);
    else b.delete(n);
    left -= n;
  }
  return b.done();
}

test('ot.js: transform converges, compose equals applying in turn, indexes follow', () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const r = rng(seed);
    const doc = randomText(r, Math.floor(r() * 12));
    const len = cpLength(doc);
    const a = randomOp(r, len);
    const b = randomOp(r, len);
    assert.equal(baseLength(a), len, `seed ${seed}`);
    const aFirst = r() < 0.5;
    const [a2, b2] = transform(a, b, aFirst);
    const left = apply(b2, apply(a, doc));
    const right = apply(a2, apply(b, doc));
    assert.equal(left, right, `seed ${seed}: ${JSON.stringify({ doc, a, b, aFirst })}`);
    const c = randomOp(r, targetLength(a));
    assert.equal(apply(compose(a, c), doc), apply(c, apply(a, doc)), `seed ${seed} compose`);
    assert.equal(apply(diff(doc, left), doc), left, `seed ${seed} diff`);
    const pos = Math.floor(r() * (len + 1));
    assert.ok(transformIndex(a, pos) <= targetLength(a), `seed ${seed} index`);
  }
  // the tie-break: b's insert goes first unless a's author sorts first
  assert.deepEqual(transform(['A', 2], ['B', 2]), [[1, 'A', 2], ['B', 3]]);
  assert.equal(apply(transform(['A', 2], ['B', 2])[0], apply(['B', 2], 'xy')), 'BAxy');
  assert.deepEqual(transform(['A', 2], ['B', 2], true), [['A', 3], [1, 'B', 2]]);
  assert.equal(apply(transform(['A', 2], ['B', 2], true)[0], apply(['B', 2], 'xy')), 'ABxy');
  // authors: user id first, then the client_id's site (before its last '.'), by code point
  assert.equal(authorCmp(author(1, 'zz.9'), author(2, 'aa.1')), -1);
  assert.equal(authorCmp(author(3, 'tab1.7'), author(3, 'tab1.12')), 0);
  assert.equal(authorCmp(author(3, 'a.b.7'), author(3, 'a.c')), 1); // sites "a.b" and "a"
  assert.equal(authorCmp(author(3, 'ａ.1'), author(3, '😀.1')), -1); // U+FF41 < U+1F600, unlike UTF-16
  // a caret at an insert: pushed past a lower author's text, kept before a higher one's
  assert.equal(transformIndex([2, 'xy', 1], 2), 4);
  assert.equal(transformIndex([2, 'xy', 1], 2, false), 2);
  assert.equal(transformIndex([1, 'xy', 2], 2, false), 4);
  // normal form as on the server: an insert next to a delete is written first
  assert.deepEqual(normalize([1, -2, 'x', 3]), [1, 'x', -2, 3]);
  // code points, not UTF-16 units: an emoji is one character
  assert.equal(apply([1, -1], 'a😀b'), 'ab');
  assert.deepEqual(diff('x😀y', 'x😁y'), [1, '😁', -1, 1]);
});

const call = (method, path, token, body) => request(BASE, method, path, { token, body });

test('ot.js transforms concurrent operations exactly as the server does', async () => {
  const name = `otjs${Date.now().toString(36)}`;
  const reg = await call('POST', '/api/auth/register', null, { username: name, password: 'correct horse' });
  assert.equal(reg.status, 201);
  const t = reg.json.token;
  for (let seed = 1; seed <= 40; seed++) {
    const r = rng(seed * 7919);
    const { json: { room } } = await call('POST', '/api/rooms', t, { name: `ot ${seed}`, language: 'plaintext' });
    const path = `/api/rooms/${room.id}/operations`;
    const doc = randomText(r, 2 + Math.floor(r() * 10));
    assert.equal((await call('POST', path, t, { revision: 0, ops: [doc] })).status, 200);
    const len = cpLength(doc);
    const a = randomOp(r, len);
    const b = randomOp(r, len);
    if (a.length === 0 || b.length === 0 || a.every((c) => c > 0) || b.every((c) => c > 0)) continue;
    // b commits first; a was made at the same revision, without seeing it. Their sites
    // are picked so that either may sort first, astral against BMP included (the server
    // compares UTF-8 bytes, ot.js code points: the same order).
    const sites = [['a', 'b'], ['b', 'a'], ['ａ', '😀'], ['😀', 'ａ'], ['tab.x', 'tab']][seed % 5];
    const rb = await call('POST', path, t, { revision: 1, ops: b, client_id: `${sites[1]}.1` });
    assert.equal(rb.status, 200, JSON.stringify(rb.json));
    const ra = await call('POST', path, t, { revision: 1, ops: a, client_id: `${sites[0]}.1` });
    assert.equal(ra.status, 200, JSON.stringify(ra.json));
    const uid = reg.json.user.id;
    const [a2] = transform(a, b, authorCmp(author(uid, `${sites[0]}.1`), author(uid, `${sites[1]}.1`)) < 0);
    assert.deepEqual(ra.json.ops, a2, `seed ${seed}: ${JSON.stringify({ doc, a, b })}`);
    const { json: now } = await call('GET', `/api/rooms/${room.id}/document`, t);
    assert.equal(now.content, apply(a2, apply(b, doc)), `seed ${seed}`);
  }
});
