// The HTTP edge of the API behind lighttpd: body limits, media types, malformed JSON, unknown
// paths and methods, odd request lines, security headers, and the access log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { call, newUser, uniqueName, rawHttp, createRoom, BASE } from '../lib/api.mjs';
import { assertSecurityHeaders as assertPolicy } from '../lib/policy.mjs';

const MiB = 1024 * 1024;

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') || '', /^application\/json/, r.text);
  assert.equal(typeof r.json?.error, 'string', r.text);
  assert.equal(typeof r.json.message, 'string');
  if (code) assert.equal(r.json.error, code, r.text);
}

async function assertAlive() {
  const r = await call('GET', '/api/health');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'ok');
}

// A register body padded with an ignored field to exactly `size` bytes.
function paddedRegister(size) {
  const head = JSON.stringify({ username: uniqueName('big'), password: 'big-body-pw', pad: '' });
  return head.slice(0, -2) + 'x'.repeat(size - head.length) + '"}';
}

test('a body over 1 MiB is refused with 413 JSON; exactly 1 MiB is read', async () => {
  for (const size of [MiB + 1, MiB + 4096, 2 * MiB - 4096]) {
    const r = await call('POST', '/api/auth/register', { body: paddedRegister(size) });
    assertError(r, 413);
    assert.equal(r.json.error, 'payload_too_large');
  }
  const exact = paddedRegister(MiB);
  assert.equal(Buffer.byteLength(exact), MiB);
  const ok = await call('POST', '/api/auth/register', { body: exact });
  assert.equal(ok.status, 201, ok.text.slice(0, 200));
  // far over: the web server's own limit answers before the API sees it; the server lives on
  const huge = await rawHttp(`POST /api/auth/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${8 * MiB}\r\nConnection: close\r\n\r\n{"a":`);
  assert.equal(huge.status, 413, huge.head);
  await assertAlive();
});

// docs/API.md: over 2 MiB the web server refuses a body unread, lighttpd and Apache alike
// (lighttpd.conf server.max-request-size, deploy/apache/codecollab.conf LimitRequestBody).
test('a body announced over 2 MiB is answered 413 before it is sent; 2 MiB itself is read', async () => {
  // Only the first 64 KiB of the announced body are sent and the request is never finished:
  // an answer can come only from a server that refused the body without reading it (one
  // that reads it waits for the rest, and the deadline passes with no answer at all).
  const part = '{"pad":"' + 'x'.repeat(64 * 1024);
  for (const size of [2 * MiB + 1, 3 * MiB, 4 * MiB]) {
    const r = await rawHttp(`POST /api/auth/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${size}\r\nConnection: close\r\n\r\n${part}`, { timeoutMs: 20000 });
    assert.equal(r.status, 413, `Content-Length ${size}, ${part.length} bytes of it sent: ${JSON.stringify(r.head)}`);
    assert.equal(JSON.parse(r.body).error, 'payload_too_large', `Content-Length ${size}`);
  }
  // at the bound the web server hands the body on, and the API reads it all and refuses it
  // as over its own 1 MiB
  const atBound = await call('POST', '/api/auth/register', { body: paddedRegister(2 * MiB) });
  assertError(atBound, 413, 'payload_too_large');
  await assertAlive();
});

test('a body that is not application/json is refused with 415', async () => {
  const body = JSON.stringify({ username: uniqueName('ct'), password: 'media-type-pw' });
  for (const ct of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp', 'application/json-seq', 'application/xml', 'json', '']) {
    const r = await call('POST', '/api/auth/register', { body, headers: { 'content-type': ct } });
    assertError(r, 415);
  }
  const none = await rawHttp(`POST /api/auth/register HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  assert.equal(none.status, 415, none.head);
  assert.match(none.body, /"error"/);
  // parameters and case do not matter
  for (const ct of ['application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8']) {
    const r = await call('POST', '/api/auth/register', { body: JSON.stringify({ username: uniqueName('ct'), password: 'media-type-pw' }), headers: { 'content-type': ct } });
    assert.equal(r.status, 201, `${ct}: ${r.text}`);
  }
});

// docs/API.md "Bodies": JSON is UTF-8, so a charset other than utf-8 (or utf8) is refused as any other
// media type is, and so is a Content-Type whose parameters cannot be read (RFC 9110).
test('a Content-Type with a charset other than utf-8, or malformed parameters, is refused with 415', async () => {
  const body = () => JSON.stringify({ username: uniqueName('cs'), password: 'media-type-pw' });
  const refused = [
    'application/json;charset=latin1',
    'application/json; charset=ISO-8859-1',
    'application/json; charset="latin1"',
    'application/json; CHARSET=utf-16',
    'application/json; charset=utf8x',
    'application/json; charset=utf-8; charset=latin1',
    'application/json; charset=',
    'application/json; charset=""',
    'application/json; charset="utf-8',
    'application/json; charset',
    'application/json; =utf-8',
    'application/json x',
    'application/json, text/plain',
    `application/json; charset=${'u'.repeat(6000)}`,
  ];
  for (const ct of refused) {
    const b = body();
    const r = await rawHttp(`POST /api/auth/register HTTP/1.1\r\nHost: t\r\nContent-Type: ${ct}\r\n` +
      `Content-Length: ${b.length}\r\nConnection: close\r\n\r\n${b}`);
    assert.equal(r.status, 415, `${ct.slice(0, 60)}: ${r.head}`);
    assert.equal(JSON.parse(r.body).error, 'unsupported_media_type', ct.slice(0, 60));
  }
  const accepted = [
    'application/json;',
    'application/json;charset="utf-8"',
    'application/json; charset="UTF-8"',
    'application/json ; charset=Utf-8 ',
    'application/json; foo=bar; charset=utf-8',
    'application/json; charset=utf8',
    'application/json; charset="UTF8"',
    `application/json; x=${'a'.repeat(6000)}`,
  ];
  for (const ct of accepted) {
    const r = await call('POST', '/api/auth/register', { body: body(), headers: { 'content-type': ct } });
    assert.equal(r.status, 201, `${ct.slice(0, 60)}: ${r.text}`);
  }
});

// docs/API.md "Bodies": an endpoint that reads no fields takes no body or a JSON object (its
// members ignored, as unknown fields are everywhere); any other body is refused as on every
// endpoint, before anything is done (sign-out and a stream ticket took any body unread).
test('an endpoint without fields takes no body or a JSON object; another body is 415 or 400 and changes nothing', async () => {
  const owner = await newUser();
  const member = await newUser();
  const room = await createRoom(owner.token);
  const joined = await call('POST', `/api/rooms/${room.id}/join`, { token: member.token, body: { invite: room.invite } });
  assert.equal(joined.status, 200, joined.text);
  const endpoints = [
    ['POST', `/api/rooms/${room.id}/stream-ticket`, 200],
    ['POST', `/api/rooms/${room.id}/invite`, 200],
    ['DELETE', `/api/rooms/${room.id}/invite`, 200],
    ['DELETE', '/api/jobs/nosuchjob0000000', 404], // the body is looked at before the job
    ['DELETE', `/api/rooms/${room.id}/members/${member.user.id}`, 204],
    ['DELETE', `/api/rooms/${room.id}`, 204],
    ['POST', '/api/auth/logout', 204],
  ];
  const refused = [
    ['text/plain', 'x', 415, 'unsupported_media_type'],
    ['application/x-www-form-urlencoded', 'a=1', 415, 'unsupported_media_type'],
    ['application/json; charset=latin1', '{}', 415, 'unsupported_media_type'],
    ['application/json', '{"a":', 400, 'invalid_json'],
    ['application/json', '[]', 400, 'invalid_json'],
  ];
  for (const [method, path] of endpoints) {
    for (const [ct, body, status, code] of refused) {
      const r = await call(method, path, { token: owner.token, body, headers: { 'content-type': ct } });
      assertError(r, status, code);
    }
  }
  // nothing was done: the member, the room and the session are all still there
  const members = await call('GET', `/api/rooms/${room.id}/members`, { token: owner.token });
  assert.equal(members.status, 200, members.text);
  assert.ok(members.json.members.some((m) => m.user.id === member.user.id), members.text);
  assert.equal((await call('GET', '/api/auth/me', { token: owner.token })).status, 200);
  // no body, or an object whose members are not read
  const none = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: owner.token });
  assert.equal(none.status, 200, none.text);
  for (const [method, path, status] of endpoints) {
    const r = await call(method, path, { token: owner.token, body: { ignored: true } });
    assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
  }
  assert.equal((await call('GET', '/api/auth/me', { token: owner.token })).status, 401, 'signed out');
});

test('malformed JSON of every shape answers 400 JSON and the server keeps working', async () => {
  const deepArr = '['.repeat(100000) + ']'.repeat(100000);
  const deepObj = '{"a":'.repeat(100000) + '1' + '}'.repeat(100000);
  const bodies = {
    'empty': '',
    'whitespace': '   \n ',
    'truncated': '{"username":"abc","password":"abcdefgh"',
    'truncated string': '{"username":"ab',
    'lone brace': '{',
    'trailing garbage': '{"username":"abcd","password":"abcdefgh"} x',
    'two objects': '{"a":1}{"b":2}',
    'array': '[{"username":"abcd","password":"abcdefgh"}]',
    'empty array': '[]',
    'number': '42',
    'string': '"username"',
    'null': 'null',
    'true': 'true',
    'single quotes': "{'username':'abcd','password':'abcdefgh'}",
    'trailing comma': '{"username":"abcd","password":"abcdefgh",}',
    'unquoted key': '{username:"abcd"}',
    'comment': '{"a":1 /* no */}',
    'NaN': '{"a":NaN}',
    'bad escape': '{"username":"a\\qb","password":"abcdefgh"}',
    'short unicode escape': '{"username":"a\\u12","password":"abcdefgh"}',
    'NUL byte': '{"username":"ab\u0000cd","password":"abcdefgh"}',
    'NUL byte after the object': '{"username":"abcd","password":"abcdefgh"}\u0000',
    '\\u0000 escape': '{"username":"ab\\u0000cd","password":"abcdefgh"}',
    '\\u0000 in an ignored field': `{"username":"${uniqueName('n')}","password":"abcdefgh","x":"\\u0000"}`,
    'lone high surrogate \\ud800': '{"username":"abcd","password":"abc\\ud800defgh"}',
    'lone low surrogate \\udc00': '{"username":"abcd","password":"abc\\udc00defgh"}',
    'high surrogate then a letter': '{"username":"abcd","password":"abc\\ud800\\u0041defgh"}',
    'surrogate at the end': '{"username":"abcd","password":"abcdefgh\\ud83d"}',
    'nested arrays 100,000 deep': deepArr,
    'nested arrays 100,000 deep in a field': `{"username":"abcd","password":"abcdefgh","x":${deepArr}}`,
    'nested objects 100,000 deep': deepObj,
  };
  for (const [what, body] of Object.entries(bodies)) {
    const r = await call('POST', '/api/auth/register', { body });
    assert.equal(r.status, 400, `${what}: ${r.status} ${r.text.slice(0, 200)}`);
    assertError(r, 400);
  }
  const bytes = (s) => Buffer.from(s, 'latin1');
  const utf8 = {
    'FF byte in username': bytes('{"username":"ab\xffcd","password":"abcdefgh"}'),
    'stray continuation in password': bytes('{"username":"abcd","password":"abc\x80defgh"}'),
    'overlong slash': bytes('{"username":"ab\xc0\xafcd","password":"abcdefgh"}'),
    'encoded surrogate': bytes('{"username":"abcd","password":"abc\xed\xa0\x80defgh"}'),
    'truncated sequence': bytes('{"username":"abcd","password":"abcdefgh\xe2\x82"}'),
    'beyond U+10FFFF': bytes('{"username":"abcd","password":"abcdefgh\xf4\x90\x80\x80"}'),
    'in an ignored field': bytes(`{"username":"${uniqueName('u8')}","password":"abcdefgh","x":"\xfe\xff"}`),
    'in a key': bytes(`{"username":"${uniqueName('u8')}","password":"abcdefgh","\xff":1}`),
  };
  for (const [what, body] of Object.entries(utf8)) {
    const r = await call('POST', '/api/auth/register', { body: new Uint8Array(body) });
    assert.equal(r.status, 400, `${what}: ${r.status} ${r.text.slice(0, 200)}`);
    assertError(r, 400);
  }
  // the same protection on an authenticated endpoint
  const u = await newUser();
  for (const body of ['{"name":', '[1]', '{"name":"a\\ud800"}', deepArr]) {
    assertError(await call('POST', '/api/rooms', { token: u.token, body }), 400);
  }
  await assertAlive();
  // and well-formed unicode passes: escapes, a surrogate pair, raw four-byte UTF-8
  const room = await call('POST', '/api/rooms', { token: u.token, body: '{"name":"\\u00e9t\\u00e9 \\ud83d\\ude80 🚀","language":"c"}' });
  assert.equal(room.status, 201, room.text);
  assert.equal(room.json.room.name, 'été 🚀 🚀');
});

test('a chunked request body is read like any other', async () => {
  const body = JSON.stringify({ username: uniqueName('chunk'), password: 'chunked-body' });
  const a = body.slice(0, 10), b = body.slice(10);
  const r = await rawHttp(`POST /api/auth/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${a.length.toString(16)}\r\n${a}\r\n${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`);
  assert.equal(r.status, 201, r.head + r.body);
  assert.equal(JSON.parse(r.body).user.username, JSON.parse(body).username);
});

test('an unknown /api path answers JSON 404', async () => {
  for (const path of ['/api/nope', '/api/', '/api/auth', '/api/auth/', '/api/HEALTH', '/api/rooms/x/y/z', '/api/rooms/x/members/1/2', `/api/${uniqueName('p')}`, '/api/health.php']) {
    const r = await call('GET', path, { token: 'x' });
    assert.equal(r.status, 404, `${path}: ${r.text}`);
    assertError(r, 404);
  }
});

test('a wrong method answers 405 with an Allow header', async () => {
  const cases = [
    ['DELETE', '/api/health', ['GET', 'HEAD']],
    ['POST', '/api/health', ['GET', 'HEAD']],
    ['GET', '/api/auth/register', ['POST']],
    ['PUT', '/api/auth/login', ['POST']],
    ['POST', '/api/auth/me', ['DELETE', 'GET', 'HEAD']],
    ['PUT', '/api/rooms', ['GET', 'HEAD', 'POST']],
    ['DELETE', '/api/rooms', ['GET', 'HEAD', 'POST']],
    ['POST', '/api/rooms/abcdef', ['DELETE', 'GET', 'HEAD', 'PATCH']],
    ['GET', '/api/rooms/abcdef/join', ['POST']],
    ['PATCH', '/api/rooms/abcdef/members', ['GET', 'HEAD']],
    ['GET', '/api/rooms/abcdef/members/1', ['DELETE', 'PUT']],
  ];
  for (const [method, path, allowed] of cases) {
    const r = await call(method, path, { body: method === 'GET' ? undefined : {} });
    assertError(r, 405);
    const allow = (r.headers.get('allow') || '').split(',').map((s) => s.trim()).filter(Boolean);
    assert.deepEqual(allow.sort(), allowed, `${method} ${path}: Allow ${r.headers.get('allow')}`);
  }
});

// docs/API.md: a wrong method on an /events/ path is 405 with Allow: GET, OPTIONS. A POST
// with no body (curl -X POST) is refused by lighttpd with 411 before its proxy takes it to
// the broker, so the API answers it; it must tell what the broker tells a POST with a body.
test('a POST to a stream path is 405 with Allow, with a body or without one', async () => {
  const u = await newUser();
  const room = await createRoom(u.token);
  const cases = [
    [`/events/rooms/${room.id}`, 405, 'method_not_allowed', 'GET, OPTIONS'],
    [`/events/rooms/${room.id}/poll`, 405, 'method_not_allowed', 'GET, OPTIONS'],
    [`/events/rooms/${room.id}/ws`, 405, 'method_not_allowed', 'GET, OPTIONS'],
    ['/events/multi', 405, 'method_not_allowed', 'GET, OPTIONS'],
    ['/events/multi/ws', 405, 'method_not_allowed', 'GET, OPTIONS'],
    ['/events/health', 405, 'method_not_allowed', 'GET, HEAD, OPTIONS'],
    ['/events/multi/poll', 404, 'not_found', null],
    [`/events/rooms/${room.id}/nope`, 404, 'not_found', null],
    ['/events/nope', 404, 'not_found', null],
    ['/events/rooms/a%20b', 404, 'room_not_found', null],
  ];
  for (const [path, status, code, allow] of cases) {
    for (const body of ['', '{}']) {
      const length = body ? `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n` : '';
      const r = await rawHttp(`POST ${path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${u.token}\r\n` +
        `${length}Connection: close\r\n\r\n${body}`);
      const what = `POST ${path} ${body ? 'with' : 'without'} a body: ${r.head}\n${r.body}`;
      assert.equal(r.status, status, what);
      assert.equal(JSON.parse(r.body).error, code, what);
      const got = /^allow:\s*(.*?)\s*$/im.exec(r.head);
      assert.equal(got ? got[1] : null, allow, what);
    }
  }
});

// docs/API.md: the client's pages and files (every path outside /api/ and /events/) are
// only read: any other method is 405 with Allow: GET, HEAD, whether a body comes or not
// (lighttpd refuses a POST without one with 411 before it looks at the path; its error
// handler, the API, answers that) and whether the file exists or not.
test('a method other than GET or HEAD on a page or file is 405 with Allow: GET, HEAD, with a body or without one', async () => {
  const paths = ['/', '/index.html', '/r/abcdef', '/r/abcdef?invite=x', '/nope.html', '/api', '/events'];
  const methods = [['POST', '{}'], ['POST', 'a=1'], ['POST', ''], ['PUT', '{}'], ['PATCH', '{}'], ['DELETE', ''], ['OPTIONS', '']];
  for (const path of paths) {
    for (const [method, body] of methods) {
      const length = body ? `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n` : '';
      const r = await rawHttp(`${method} ${path} HTTP/1.1\r\nHost: t\r\n${length}Connection: close\r\n\r\n${body}`);
      const what = `${method} ${path} ${body ? 'with' : 'without'} a body: ${r.head}\n${r.body.slice(0, 200)}`;
      assert.equal(r.status, 405, what);
      assert.match(r.head, /^content-type: application\/json/im, what);
      assert.equal(JSON.parse(r.body).error, 'method_not_allowed', what);
      const got = /^allow:\s*(.*?)\s*$/im.exec(r.head);
      assert.equal(got ? got[1] : null, 'GET, HEAD', what);
      assert.match(r.head, /^x-content-type-options: nosniff/im, what);
    }
  }
  // reading them is as before
  for (const method of ['GET', 'HEAD']) {
    const r = await rawHttp(`${method} /r/abcdef HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
    assert.equal(r.status, 200, `${method}: ${r.head}`);
    assert.match(r.head, /^content-type: text\/html/im);
  }
});

test('HEAD answers like GET without a body', async () => {
  const get = await call('GET', '/api/health');
  const head = await call('HEAD', '/api/health');
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
  assert.equal(head.headers.get('content-type'), get.headers.get('content-type'));
  // lighttpd passes the API's Content-Length on; Apache's mod_proxy_fcgi sends API answers
  // chunked and so gives a HEAD answer no length (docs/DEPLOY.md, "Apache httpd")
  if (process.env.WEB !== 'apache') {
    assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(get.text)));
  }
  const missing = await call('HEAD', '/api/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.text, '');
});

test('garbage or oversized Content-Length is refused and the server keeps working', async () => {
  for (const cl of ['abc', '-1', '1e3', '0x10', '99999999999999999999999', '18446744073709551616', '5, 5']) {
    const r = await rawHttp(`POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${cl}\r\nConnection: close\r\n\r\n{"a":1}`);
    assert.ok([400, 411, 413].includes(r.status), `Content-Length ${cl}: ${r.head}`);
  }
  // a body shorter than announced: the connection times out or closes, nothing answers 2xx
  const short = await rawHttp('POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{"a":1}', { timeoutMs: 1000 });
  assert.ok(short.status === 0 || short.status >= 400, short.head);
  await assertAlive();
});

test('one trailing slash is forgiven; odd path segments are 404', async () => {
  const u = await newUser();
  const a = await call('GET', '/api/rooms/', { token: u.token });
  assert.equal(a.status, 200, a.text);
  assert.deepEqual(a.json, { rooms: [], next: null });
  assert.equal((await call('GET', '/api/health/')).status, 200);
  assert.equal((await call('GET', '/api/auth/me/', { token: u.token })).status, 200);
  const room = await call('POST', '/api/rooms/', { token: u.token, body: { name: 'slash', language: 'c' } });
  assert.equal(room.status, 201, room.text);
  assert.equal((await call('GET', `/api/rooms/${room.json.room.id}/`, { token: u.token })).status, 200);
  for (const path of ['/api/rooms//', '/api//rooms', '/api/health//', `/api/rooms/${room.json.room.id}//`]) {
    assertError(await call('GET', path, { token: u.token }), 404);
  }
  const odd = [
    '/api/rooms/%2e%2e',
    '/api/rooms/%2e%2e/members',
    `/api/rooms/${'a'.repeat(65)}`,
    `/api/rooms/${'a'.repeat(4000)}`,
    '/api/rooms/%F0%9F%9A%80',
    '/api/rooms/a%20b',
    "/api/rooms/a'b",
    '/api/rooms/a;b',
    '/api/rooms/a%3Bb',
    `/api/rooms/${room.json.room.id}%2Fmembers`,
    '/api/rooms/..%2f..%2fhealth',
  ];
  for (const path of odd) {
    const r = await call('GET', path, { token: u.token });
    assert.equal(r.status, 404, `${path.slice(0, 80)}: ${r.text.slice(0, 200)}`);
  }
  // the longest id the router takes is still just an unknown room
  assertError(await call('GET', `/api/rooms/${'a'.repeat(64)}`, { token: u.token }), 404);
  await assertAlive();
});

test('error answers are valid UTF-8 JSON even when they quote a long non-ASCII path', async () => {
  const strict = new TextDecoder('utf-8', { fatal: true });
  for (let n = 470; n < 500; n++) {
    const path = Buffer.concat([Buffer.from('/api/' + 'a'.repeat(n)), Buffer.from('ééé€€🚀🚀')]);
    const r = await rawHttp(Buffer.concat([Buffer.from('GET '), path, Buffer.from(' HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')]));
    assert.equal(r.status, 404, r.head);
    const body = Buffer.from(r.body, 'latin1');
    let text;
    assert.doesNotThrow(() => { text = strict.decode(body); }, `invalid UTF-8 in the answer for ${n}: ${body.subarray(-24).toString('hex')}`);
    const json = JSON.parse(text);
    assert.equal(json.error, 'not_found');
  }
});

// What every response must carry: the headers lighttpd.conf writes, whichever server of the
// front door answered (lighttpd or Apache: this file runs through both), and no HSTS over
// HTTP; and that policy is a strict CSP, nosniff, a referrer policy.
function assertSecurityHeaders(h, what) {
  assertPolicy(h, what);
  const csp = h.get('content-security-policy');
  assert.ok(csp, `${what}: Content-Security-Policy`);
  assert.ok(!/unsafe-inline/.test(csp), `${what}: ${csp}`);
  assert.ok(!/unsafe-eval/.test(csp), `${what}: ${csp}`);
  assert.match(csp, /(^|;)\s*frame-ancestors 'none'\s*(;|$)/, `${what}: ${csp}`);
  assert.match(csp, /(^|;)\s*default-src 'self'/, `${what}: ${csp}`);
  assert.match(csp, /(^|;)\s*object-src 'none'/, `${what}: ${csp}`);
  // Trusted Types: HTML and script sinks take only what the page's one policy made
  // (htdocs/src/trusted-types.js), no duplicate of it and no default policy
  assert.match(csp, /(^|;)\s*require-trusted-types-for 'script'\s*(;|$)/, `${what}: ${csp}`);
  assert.match(csp, /(^|;)\s*trusted-types codecollab\s*(;|$)/, `${what}: ${csp}`);
  assert.equal(h.get('x-content-type-options'), 'nosniff', what);
  assert.ok(h.get('referrer-policy'), `${what}: Referrer-Policy`);
  assert.match(h.get('referrer-policy'), /^(no-referrer|same-origin|strict-origin|strict-origin-when-cross-origin)$/);
  assert.equal(h.get('strict-transport-security'), null, `${what}: no HSTS over plain HTTP`);
}

test('security headers on API answers and on static files; no HSTS over plain HTTP', async () => {
  const u = await newUser();
  const api = [
    ['GET', '/api/health'],
    ['GET', '/api/auth/me', u.token],
    ['GET', '/api/rooms', u.token],
    ['GET', '/api/nope'],
    ['DELETE', '/api/health'],
    ['GET', '/api/auth/me'],
  ];
  for (const [method, path, token] of api) {
    const r = await call(method, path, { token });
    assertSecurityHeaders(r.headers, `${method} ${path} (${r.status})`);
    // answers with tokens and private data are not cached
    assert.match(r.headers.get('cache-control') || '', /no-store/, `${method} ${path}`);
  }
  const reg = await call('POST', '/api/auth/register', { body: { username: uniqueName('h'), password: 'header-pw-1' } });
  assertSecurityHeaders(reg.headers, 'POST /api/auth/register');
  assert.match(reg.headers.get('cache-control') || '', /no-store/);
  const big = await call('POST', '/api/auth/register', { body: paddedRegister(MiB + 1) });
  assertSecurityHeaders(big.headers, '413');
  for (const path of ['/', '/index.html', '/r/abcdef', '/no-such-file.txt']) {
    const r = await fetch(BASE + path);
    await r.arrayBuffer();
    assertSecurityHeaders(r.headers, `GET ${path} (${r.status})`);
  }
  const page = await fetch(BASE + '/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  await page.arrayBuffer();
});

test('the access log has one line per request with method, path, status and milliseconds', async () => {
  const path = `/api/log-probe-${uniqueName('')}`;
  const r = await call('GET', path);
  assert.equal(r.status, 404);
  const file = `${process.env.CC_VAR}/log/access.log`;
  let lines = [];
  // lighttpd buffers its access log (flushed every few seconds or once 8 KiB are pending):
  // requests with long paths fill the buffer so the wait is short
  for (let i = 0; i < 60; i++) {
    lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.includes(path));
    if (lines.length) break;
    if (i < 10) await (await fetch(`${BASE}/log-padding-${'p'.repeat(3000)}`)).arrayBuffer();
    await new Promise((ok) => setTimeout(ok, 100));
  }
  assert.equal(lines.length, 1, `one line for ${path} in ${file}`);
  const fields = lines[0].trim().split(/\s+/);
  assert.ok(fields.includes('GET'), lines[0]);
  assert.ok(fields.includes(path), lines[0]);
  assert.ok(fields.includes('404'), lines[0]);
  assert.match(fields.at(-1), /^\d+$/, `a millisecond figure last: ${lines[0]}`);
  assert.ok(Number(fields.at(-1)) < 60000, lines[0]);
  assert.match(fields[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/, lines[0]);
  const all = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  for (const line of all.slice(-20)) assert.match(line, /^\S+ \S+ [A-Z]+ \/\S* \d{3} \d+$/, line);
});
