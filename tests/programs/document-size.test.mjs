// A document at a raised DOCUMENT_MAX_BYTES can always be read back: every control character
// in it is six bytes of JSON in the answer (\u0001), so the answer bound of the API follows
// the setting (fcgi/api.c, http_set_resp_body_max) instead of staying at 8 MiB, where a
// 2 MiB document of such characters made GET …/document answer 500 for everyone. Real parts:
// a PostgreSQL with the schema, a redis-server, the API run as CGI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotterGround, clientOf } from '../lib/snapshotter-ground.mjs';

const ground = await snapshotterGround('document-size-test-secret-0123456789abcdef');
const { base } = ground;
const { cgiAsync } = await import('../lib/api.mjs');
const { roomOf, commit } = clientOf(ground, 'docsize');

test('a 2 MiB document of control characters (DOCUMENT_MAX_BYTES=2 MiB) is answered whole by GET …/document, 12 MB of JSON', async () => {
  const env = { DOCUMENT_MAX_BYTES: String(2 * 1024 * 1024) };
  const room = roomOf(env);
  // 12 operations of 170,000 U+0001 each: every request body under 1 MiB, the document
  // 2,040,000 bytes, under its bound
  const piece = '\u0001'.repeat(170000);
  let rev = 0;
  for (let i = 0; i < 12; i++) rev = commit(env, room, rev, i === 0 ? [piece] : [i * piece.length, piece]);
  assert.equal(rev, 12);
  const r = await cgiAsync({ method: 'GET', uri: `/api/rooms/${room.id}/document`, token: room.token, env: { ...base, ...env } });
  assert.equal(r.code, 0, r.stderr.slice(0, 2000));
  assert.equal(r.status, 200, r.body.slice(0, 500));
  assert.ok(r.body.length > 12000000, `${r.body.length} bytes of JSON`);
  assert.equal(r.json.revision, 12);
  assert.equal(r.json.content.length, 12 * piece.length);
  assert.ok(/^\u0001+$/.test(r.json.content), 'the text as written');
  // one more would pass the document's bound: refused as too large, as ever
  const over = await cgiAsync({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, env: { ...base, ...env },
    body: { revision: 12, ops: [12 * piece.length, '\u0001'.repeat(100000)] } });
  assert.equal(over.status, 413, over.body.slice(0, 500));
  assert.equal(over.json.error, 'document_too_large');
});
