// Strict JSON input (RFC 8259) and the size of what an operation emits, through lighttpd
// and the API (lib/jsoncheck.c, fcgi/api.c, lib/store_doc.c).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createHash } from 'node:crypto';

import { call, createRoom, newUser, redis, roomEvents } from '../lib/api.mjs';

const op = (token, room, body) => call('POST', `/api/rooms/${room.id}/operations`, { token, body });
const docOf = async (token, room) => (await call('GET', `/api/rooms/${room.id}/document`, { token })).json;

async function roomWithText(text = 'abcd') {
  const u = await newUser('in');
  const room = await createRoom(u.token);
  const r = await op(u.token, room, { revision: 0, ops: [text] });
  assert.equal(r.status, 200, r.text);
  return { u, room };
}

test('raw control bytes inside a JSON string are refused with 400 naming the byte and where it is', async () => {
  const { u, room } = await roomWithText();
  // the reported body: 300,000 raw 0x01 bytes (1.8 MB once escaped in the event)
  const head = '{"revision":1,"ops":[4,"';
  const raw = head + '\x01'.repeat(300000) + '"]}';
  let r = await op(u.token, room, raw);
  assert.equal(r.status, 400, r.text.slice(0, 300));
  assert.equal(r.json.error, 'invalid_json');
  assert.match(r.json.message, /raw control byte 0x01 inside a string at byte 24\b/);
  // one raw byte is enough, tab and newline included
  for (const [ch, hex] of [['\x1f', '1F'], ['\t', '09'], ['\n', '0A'], ['\x00', '00']]) {
    r = await op(u.token, room, `{"revision":1,"ops":[4,"a${ch}b"]}`);
    assert.equal(r.status, 400, `${hex}: ${r.text}`);
    assert.equal(r.json.error, 'invalid_json');
    assert.match(r.json.message, hex === '00' ? /NUL byte at byte 25/ : new RegExp(`0x${hex}.* at byte 25`));
  }
  // nothing was committed, and no event was emitted
  assert.deepEqual(await docOf(u.token, room), { revision: 1, content: 'abcd', language: 'python' });
  assert.equal(roomEvents(room.id).filter((e) => e.type === 'operation').length, 1);
});

test('what cJSON would accept but RFC 8259 forbids is 400 invalid_json, on every endpoint', async () => {
  const { u, room } = await roomWithText();
  const cases = {
    'leading zero': ['{"revision":01,"ops":["x"]}', /leading zero at byte 12/],
    'fraction without digits': ['{"revision":1.,"ops":["x"]}', /no digit after its '\.' at byte 12/],
    'empty exponent': ['{"revision":1e,"ops":["x"]}', /empty exponent/],
    'vertical tab as whitespace': ['{"revision":1,\x0b"ops":["x"]}', /control byte 0x0B at byte 14/],
    'form feed as whitespace': ['\x0c{"revision":1,"ops":["x"]}', /control byte 0x0C at byte 0/],
    'duplicate name': ['{"revision":1,"ops":["x"],"revision":0}', /member name "revision" appears twice/],
    'duplicate name by escape': ['{"revision":1,"ops":["x"],"\\u0072evision":0}', /appears twice/],
    'trailing text': ['{"revision":1,"ops":["x"]} []', /text after the JSON value at byte 27/],
    'byte order mark': ['\ufeff{"revision":1,"ops":["x"]}', /at byte 0/],
    'lone surrogate': ['{"revision":1,"ops":["\\udc00"]}', /lone low surrogate escape at byte 22/],
    'NUL escape': ['{"revision":1,"ops":["\\u0000"]}', /\\u0000 escape at byte 22/],
    'bad escape': ['{"revision":1,"ops":["\\x41"]}', /invalid escape at byte 22/],
  };
  for (const [what, [body, msg]] of Object.entries(cases)) {
    const r = await op(u.token, room, body);
    assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
    assert.equal(r.json.error, 'invalid_json', what);
    assert.match(r.json.message, msg, what);
  }
  assert.equal((await docOf(u.token, room)).revision, 1);
  // the same check guards every body: sign-in, rooms, presence
  for (const [path, body, token] of [
    ['/api/auth/login', '{"username":"a","password":"b\x01c"}', undefined],
    ['/api/rooms', '{"name":"x","name":"y","language":"c"}', u.token],
    [`/api/rooms/${room.id}/presence`, '{"cursor":00}', u.token],
  ]) {
    const r = await call(path.endsWith('presence') ? 'PUT' : 'POST', path, { token, body });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.equal(r.json.error, 'invalid_json', path);
  }
});

test('escaped control characters are legal text: committed, stored and emitted exactly', async () => {
  const { u, room } = await roomWithText();
  // about 1 MB of \u0001 escapes: within the 1 MiB body bound, and the event (the escaped
  // size) within the event bound
  const n = 170000;
  const body = `{"revision":1,"ops":[4,"${'\\u0001'.repeat(n)}\\u001f\\t"]}`;
  const r = await op(u.token, room, body);
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal(r.json.revision, 2);
  const want = 'abcd' + '\x01'.repeat(n) + '\x1f\t';
  const d = await docOf(u.token, room);
  assert.equal(d.revision, 2);
  assert.equal(d.content, want);
  // the event is over 1 MB: Redis's Lua reads it, and answers its type, size, revision and
  // a digest of its inserted text. It is the newest operation event, not always the newest
  // event (the snapshotter's `snapshot` may follow it): the fields are found by name.
  const [type, size, rev, digest] = redis('--no-raw', 'EVAL',
    "for _, x in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 20)) do " +
    "local f = {} for i = 1, #x[2], 2 do f[x[2][i]] = x[2][i + 1] end " +
    "if f.type == 'operation' then local d = cjson.decode(f.data) " +
    "return {f.type, string.len(f.data), d.revision, redis.sha1hex(d.ops[2])} end end " +
    "return {'none', 0, 0, ''}",
    '1', `cc:room:{${room.id}}:events`).split('\n').map((l) => l.replace(/^\d+\) (\(integer\) )?"?|"$/g, ''));
  assert.equal(type, 'operation');
  assert.equal(Number(rev), 2);
  assert.equal(digest, createHash('sha1').update('\x01'.repeat(n) + '\x1f\t').digest('hex'));
  assert.ok(Number(size) > 6 * n && Number(size) < 2 * 1024 * 1024, size);
  // valid numbers RFC 8259 allows still pass
  const ok = await op(u.token, room, '{"revision":2,"ops":[-1,"y"], "client_id":"t-1" }\r\n');
  assert.equal(ok.status, 200, ok.text);
  const ok2 = await call('PUT', `/api/rooms/${room.id}/presence`, { token: u.token, body: '{"cursor":0,"selection":{"anchor":1E0,"head":0.2e1}}' });
  assert.equal(ok2.status, 204, ok2.text);
});
