// A query parameter's name is read percent-decoded (fcgi/query.c), as a cache or proxy in
// front reads it: `li%6Dit` is `limit`, also for the rule against repeated parameters, and
// a name with a malformed escape is refused. Values are still taken only as sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, newUser, createRoom } from '../lib/api.mjs';

test('query parameter names are percent-decoded: li%6Dit is limit', async () => {
  const a = await newUser('qname');
  const room = await createRoom(a.token);
  await createRoom(a.token);
  const all = await call('GET', '/api/rooms', { token: a.token });
  assert.equal(all.status, 200, all.text);
  assert.equal(all.json.rooms.length, 2);
  for (const q of ['li%6Dit=1', 'li%6dit=1', '%6C%69%6D%69%74=1']) {
    const r = await call('GET', `/api/rooms?${q}`, { token: a.token });
    assert.equal(r.status, 200, `${q}: ${r.text}`);
    assert.equal(r.json.rooms.length, 1, q);
    assert.notEqual(r.json.next, null, q);
  }
  // '+' is a space in a name, as in a form: "li mit" is no parameter of this endpoint
  const plus = await call('GET', '/api/rooms?li+mit=1', { token: a.token });
  assert.equal(plus.status, 200, plus.text);
  assert.equal(plus.json.rooms.length, 2);
  // the executions' own reading of limit too
  const runs = await call('GET', `/api/rooms/${room.id}/executions?li%6Dit=0`, { token: a.token });
  assert.equal(runs.status, 400, runs.text);
  assert.equal(runs.json.error, 'invalid_request');
  assert.match(runs.json.message, /limit must be a whole number/);
  const hist = await call('GET', `/api/rooms/${room.id}/history?befor%65=0`, { token: a.token });
  assert.equal(hist.status, 400, hist.text);
  assert.match(hist.json.message, /before must be an integer/);
});

test('a name given twice, one of them escaped, is given twice', async () => {
  const a = await newUser('qtwice');
  const room = await createRoom(a.token);
  const cases = [
    '/api/rooms?limit=1&li%6Dit=2',
    '/api/rooms?lim%69t=1&limit=1',
    `/api/rooms/${room.id}/members?limit=1&%6Cimit=1`,
    `/api/rooms/${room.id}/history?limit=5&limi%74=5`,
  ];
  for (const path of cases) {
    const r = await call('GET', path, { token: a.token });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.equal(r.json.error, 'invalid_request');
    assert.match(r.json.message, /limit parameter is given more than once/, path);
  }
  const runs = await call('GET', `/api/rooms/${room.id}/executions?limit=2&l%69mit=3`, { token: a.token });
  assert.equal(runs.status, 400, runs.text);
  assert.match(runs.json.message, /limit is given twice/);
});

test('a name with a malformed escape is refused 400 where the endpoint reads its query', async () => {
  const a = await newUser('qbad');
  const room = await createRoom(a.token);
  const paths = [
    '/api/rooms?%zz=1',
    '/api/rooms?limit=1&li%6=1',
    '/api/rooms?a%=1',
    '/api/rooms?x%4',
    `/api/rooms/${room.id}/members?%G0=1`,
    `/api/rooms/${room.id}/history?limit=1&%zz`,
    `/api/rooms/${room.id}/executions?%zz=1&limit=1`,
  ];
  for (const path of paths) {
    const r = await call('GET', path, { token: a.token });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.equal(r.json.error, 'invalid_request');
    assert.match(r.json.message, /name holds a malformed percent escape/, path);
  }
  // values are not decoded: an escape in one is refused as before, a value of a parameter
  // no endpoint reads is not looked at
  const v = await call('GET', '/api/rooms?limit=%31', { token: a.token });
  assert.equal(v.status, 400, v.text);
  assert.equal(v.json.error, 'invalid_request');
  const other = await call('GET', '/api/rooms?x=%zz', { token: a.token });
  assert.equal(other.status, 200, other.text);
});
