// A room's kept operation log is bounded by bytes (OPS_LOG_MAX_BYTES, lib/lua/_opslog.lua),
// not only by count: large operations push the oldest entries out, never one not yet folded
// into the stored text, always keeping the newest. Clients behind the trimmed log get the
// usual 409 revision_too_old; those within it are transformed as before. The stack's API
// runs with the default budget (16 MiB), so the commits here go through the API binary run
// as CGI against the stack's PostgreSQL and Redis with a small one (as scripting.test.mjs
// does for DOCUMENT_MAX_BYTES); reads go through the stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, cgi, newUser, redis, redisJson } from '../lib/api.mjs';

const DOC_MAX = 4096;
const BUDGET = 8192;
// SNAPSHOT_INTERVAL_MS: an hour, so the stack's snapshotter (whose budget is the default)
// leaves these rooms alone while a test runs: every fold and trim here is the CGI's
const ENV = { DOCUMENT_MAX_BYTES: String(DOC_MAX), OPS_LOG_MAX_BYTES: String(BUDGET), SNAPSHOT_INTERVAL_MS: '3600000' };

async function roomOf(owner) {
  const r = await call('POST', '/api/rooms', { token: owner.token, body: { name: 'opslog', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  return r.json.room;
}

// POST /operations through the API with the small budget: {status, json}
function commit(owner, room, body, env = ENV) {
  const r = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: owner.token, body, env });
  assert.equal(r.code, 0, r.stderr.slice(0, 2000));
  return r;
}

async function doc(owner, room) {
  const r = await call('GET', `/api/rooms/${room.id}/document`, { token: owner.token });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

const opsKey = (room) => `cc:room:{${room.id}}:ops`;
const docKey = (room) => `cc:room:{${room.id}}:doc`;

// The ops list as Redis holds it: its entries' sizes in bytes, oldest first, and the
// revision of its first entry.
function opsList(room) {
  const sizes = redisJson('LRANGE', opsKey(room), '0', '-1').map((e) => Buffer.byteLength(e));
  const rev = Number(redis('HGET', docKey(room), 'revision'));
  return { sizes, total: sizes.reduce((a, b) => a + b, 0), first: rev - sizes.length + 1 };
}

// What an operator sees in Redis after every commit: the list within the budget plus its
// newest entry, and `obytes` its true total.
function assertBounded(room) {
  const l = opsList(room);
  assert.ok(l.sizes.length >= 1, 'the newest entry is kept');
  assert.ok(l.total <= BUDGET + l.sizes[l.sizes.length - 1], `the list holds ${l.total} bytes: ${l.sizes}`);
  assert.equal(redis('HGET', docKey(room), 'obytes'), String(l.total), 'obytes is the list\'s total');
  return l;
}

// 3,000 bytes of one character: a paste three quarters of DOCUMENT_MAX_BYTES
const big = (c) => c.repeat(3000);

test('large operations: a client behind the trimmed log reloads, one within it is transformed', async () => {
  const a = await newUser();
  const room = await roomOf(a);
  let r = commit(a, room, { revision: 0, ops: ['start\n'] });
  assert.equal(r.status, 200, r.body);
  // a paste of 3,000 bytes at the end and its removal, three times: nobody reads, so none
  // of them is folded until the ops waiting pass the budget themselves (the committer then
  // folds, and the fold's trim drops what the budget cannot hold)
  let rev = 1;
  for (const ops of [[6, big('a')], [6, -3000], [6, big('a')], [6, -3000], [6, big('a')]]) {
    r = commit(a, room, { revision: rev, ops });
    assert.equal(r.status, 200, r.body);
    rev = r.json.revision;
  }
  assert.equal(rev, 6);

  // (b) three revisions behind, within the kept log: transformed over 4..6 and committed
  r = commit(a, room, { revision: 3, ops: ['# '] });
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json, { revision: 7, ops: ['# ', 3006] });
  assert.deepEqual(await doc(a, room), { revision: 7, content: `# start\n${big('a')}`, language: 'python' });

  // (a) a client still at revision 1, which the budget trimmed: 409 revision_too_old with the
  // revision now, exactly as for a client behind the last 1,000 operations
  r = commit(a, room, { revision: 1, ops: [6, 'late'] });
  assert.equal(r.status, 409, r.body);
  assert.deepEqual(r.json, { error: 'revision_too_old', message: r.json.message, revision: 7 });
  // nothing of it was applied; after fetching the document it commits again
  const d = await doc(a, room);
  assert.equal(d.revision, 7);
  assert.equal(d.content, `# start\n${big('a')}`);
  r = commit(a, room, { revision: d.revision, ops: [8, 'late'] });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.revision, 8);
  assert.equal((await doc(a, room)).content, `# start\nlate${big('a')}`);
  // what was trimmed: revisions 1 and 2; 4 on are kept
  const l = opsList(room);
  assert.ok(l.first > 2 && l.first <= 4, `the list starts at revision ${l.first}`);
});

test('the list stays within the budget plus its newest entry, and obytes is its true total', async () => {
  const a = await newUser();
  const room = await roomOf(a);
  let r = commit(a, room, { revision: 0, ops: ['start\n'] });
  assert.equal(r.status, 200, r.body);
  assertBounded(room);
  let rev = 1;
  for (let i = 0; i < 8; i++) {
    r = commit(a, room, { revision: rev, ops: i % 2 ? [6, -3000] : [6, big(String(i))] });
    assert.equal(r.status, 200, r.body);
    rev = r.json.revision;
    assertBounded(room);
    // a read folds too, and trims with the stack's own (default) budget: nothing more
    if (i === 4) assert.equal((await doc(a, room)).content, `start\n${big('4')}`);
    assertBounded(room);
  }
  const l = opsList(room);
  assert.ok(l.first > 1, `something was trimmed (the list starts at revision ${l.first})`);
  assert.ok(l.total <= BUDGET, `${l.total} bytes`);
});

test('a document written without obytes, or counted at another revision, gets it back right on its next commit', async () => {
  const a = await newUser();
  const room = await roomOf(a);
  let rev = 0;
  for (const ops of [['x = 1\n'], [6, big('b')], [6, -3000], [6, 'y = 2\n']]) {
    const r = commit(a, room, { revision: rev, ops });
    assert.equal(r.status, 200, r.body);
    rev = r.json.revision;
  }
  const before = assertBounded(room);
  // as an older version left it: the list, and no total
  assert.equal(redis('HDEL', docKey(room), 'obytes'), '1');
  const r = commit(a, room, { revision: rev, ops: [12, 'z = 3\n'] });
  assert.equal(r.status, 200, r.body);
  const after = assertBounded(room);
  assert.equal(after.total, before.total + after.sizes[after.sizes.length - 1]);
  assert.equal((await doc(a, room)).content, 'x = 1\ny = 2\nz = 3\n');
  // as when an older version's API committed since the total was counted: its revision
  // (orev) is behind the document's, and the total is not the list's any more
  redis('HSET', docKey(room), 'obytes', '123', 'orev', String(rev));
  const r2 = commit(a, room, { revision: rev + 1, ops: [18, '# end\n'] });
  assert.equal(r2.status, 200, r2.body);
  assertBounded(room);
  assert.equal(redis('HGET', docKey(room), 'orev'), String(rev + 2));
  assert.equal((await doc(a, room)).content, 'x = 1\ny = 2\nz = 3\n# end\n');
});

test('a resent commit whose entry the budget trimmed is answered too old with the revision it became, never applied twice', async () => {
  const a = await newUser();
  const room = await roomOf(a);
  let r = commit(a, room, { revision: 0, ops: ['base\n'] });
  assert.equal(r.status, 200, r.body);
  const first = { revision: 1, ops: [5, 'once\n'], client_id: 'tab.1' };
  r = commit(a, room, first);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json, { revision: 2, ops: [5, 'once\n'] });
  // resent while its entry is kept: the first answer again
  r = commit(a, room, first);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json, { revision: 2, ops: [5, 'once\n'] });
  // large pastes and removals push it out of the log
  let rev = 2;
  while (opsList(room).first <= 2) {
    const ops = rev % 2 === 0 ? [10, big('c')] : [10, -3000];
    r = commit(a, room, { revision: rev, ops });
    assert.equal(r.status, 200, r.body);
    rev = r.json.revision;
    assert.ok(rev < 20, 'the budget trims within a few large commits');
  }
  assertBounded(room);
  // resent now: too old, as docs/API.md says of a repeat older than the kept log, with the
  // revision it became (the edit is in the document)
  r = commit(a, room, first);
  assert.equal(r.status, 409, r.body);
  assert.deepEqual(r.json, { error: 'revision_too_old', message: r.json.message, revision: rev, applied_revision: 2 });
  assert.equal(r.headers['x-revision'], String(rev));
  // a request of the same age that was never committed: the plain 409
  r = commit(a, room, { ...first, client_id: 'tab.2' });
  assert.equal(r.status, 409, r.body);
  assert.deepEqual(r.json, { error: 'revision_too_old', message: r.json.message, revision: rev });
  const d = await doc(a, room);
  assert.equal(d.revision, rev, 'nothing was committed');
  assert.equal(d.content.split('once\n').length, 2, 'its text is there once');
});

test('the API refuses to start with an OPS_LOG_MAX_BYTES that is not a number or below 2 x DOCUMENT_MAX_BYTES', async () => {
  const a = await newUser();
  const room = await roomOf(a);
  const cases = [
    [{ DOCUMENT_MAX_BYTES: '4096', OPS_LOG_MAX_BYTES: '8191' },
      /configuration: OPS_LOG_MAX_BYTES \(8191\) must be at least 2 x DOCUMENT_MAX_BYTES \(2 x 4096 = 8192\)/],
    // the default DOCUMENT_MAX_BYTES, 1 MiB
    [{ OPS_LOG_MAX_BYTES: '1048576' },
      /configuration: OPS_LOG_MAX_BYTES \(1048576\) must be at least 2 x DOCUMENT_MAX_BYTES \(2 x 1048576 = 2097152\)/],
    [{ OPS_LOG_MAX_BYTES: '16MiB' }, /configuration: OPS_LOG_MAX_BYTES must be an integer from 2048 to \d+ \(got "16MiB"\)/],
  ];
  for (const [env, message] of cases) {
    const r = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: a.token, body: { revision: 0, ops: ['x'] }, env });
    assert.equal(r.code, 1, r.stderr.slice(0, 2000));
    assert.equal(r.status, 500, r.body);
    assert.deepEqual(r.json, { error: 'misconfigured', message: 'the server is misconfigured' });
    assert.match(r.stderr, message);
  }
  // nothing was committed; the least value (2 x DOCUMENT_MAX_BYTES) is taken
  assert.equal((await doc(a, room)).revision, 0);
  const ok = commit(a, room, { revision: 0, ops: ['x'] }, { DOCUMENT_MAX_BYTES: '4096', OPS_LOG_MAX_BYTES: '8192' });
  assert.equal(ok.status, 200, ok.body);
});
