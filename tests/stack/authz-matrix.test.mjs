// Who may do what in a room, endpoint by endpoint, for every kind of caller at once
// (docs/SECURITY.md, "Who can do what in a room" and "How fast taking access away works").
// In a private room: the owner, an editor, a viewer, a stranger, a member the owner removed,
// a member who left, an account deleted while a member, a session signed out while a member,
// and a stream ticket used as an API token, each on every endpoint of the room and on a job
// of it. Each refusal is checked with its status and code (docs/API.md, "Errors"), each right
// with an answer that is no refusal. Other suites take each rule through its races and
// failures; this one holds the whole table, so that an endpoint added or changed later cannot
// forget a row of it. Also what no other suite checks: the runs of a member who leaves and of
// an account deleted while a member end cancelled, and who may cancel whose job (a viewer's
// and a stranger's own AI requests in a public room, nobody else's). That the table has a row
// for every route of the API is checked too, against the routes the API itself names (its
// metrics label every route of its table) and against docs/API.md's endpoints.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join as pathJoin } from 'node:path';

import { call, newUser, createRoom, uniqueName } from '../lib/api.mjs';
import { run, waitJob } from '../lib/jobs.mjs';
import { ROOT } from '../lib/procs.mjs';

// long enough that it is still queued or running when its author loses the right to run it
const SLOW = 'import time\ntime.sleep(30)\nprint("ran after the change")\n';

let room, job, who;

const join = (u) => call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite: room.invite } });

before(async () => {
  const owner = await newUser('mo');
  room = await createRoom(owner.token, { visibility: 'private' });
  const [editor, viewer, stranger, removed, left, deleted, signedOut] = await Promise.all(
    ['me', 'mv', 'ms', 'mr', 'ml', 'md', 'mx'].map((p) => newUser(p)));
  for (const u of [editor, viewer, removed, left, deleted, signedOut]) {
    const j = await join(u);
    assert.equal(j.status, 200, j.text);
  }
  const demote = await call('PUT', `/api/rooms/${room.id}/members/${viewer.user.id}`,
    { token: owner.token, body: { role: 'viewer' } });
  assert.equal(demote.status, 200, demote.text);
  // the editor's run: the job every caller asks about by its id
  const r = await run(editor.token, room, { language: 'python', code: 'print(1)\n' });
  assert.equal(r.status, 202, r.text);
  job = r.json.job.id;
  // runs of the members about to go: each must end cancelled, never run
  const runs = {};
  for (const [name, u] of [['left', left], ['deleted', deleted]]) {
    const s = await run(u.token, room, { language: 'python', code: SLOW });
    assert.equal(s.status, 202, s.text);
    runs[name] = s.json.job.id;
  }
  const t = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: editor.token });
  assert.equal(t.status, 200, t.text);
  let res = await call('DELETE', `/api/rooms/${room.id}/members/${removed.user.id}`, { token: owner.token });
  assert.equal(res.status, 204, res.text);
  res = await call('DELETE', `/api/rooms/${room.id}/members/${left.user.id}`, { token: left.token });
  assert.equal(res.status, 204, res.text);
  res = await call('DELETE', '/api/auth/me', { token: deleted.token, body: { password: deleted.password } });
  assert.equal(res.status, 204, res.text);
  res = await call('POST', '/api/auth/logout', { token: signedOut.token });
  assert.equal(res.status, 204, res.text);
  who = {
    owner, editor, viewer, stranger, removed, left, deleted, signedOut,
    ticket: { token: t.json.ticket, user: editor.user },
    runs,
  };
});

// What each caller gets: 'ok' (any answer but a refusal), or [status, code].
const NOT_MEMBER = [403, 'not_a_member'];
const FORBIDDEN = [403, 'forbidden'];
const NO_JOB = [404, 'job_not_found'];
const REVOKED = [401, 'session_revoked'];
const BAD_TOKEN = [401, 'invalid_token'];

const READ = { owner: 'ok', editor: 'ok', viewer: 'ok', stranger: NOT_MEMBER, removed: NOT_MEMBER, left: NOT_MEMBER };
const EDIT = { ...READ, viewer: FORBIDDEN };
const OWNER = { ...READ, editor: FORBIDDEN, viewer: FORBIDDEN };

// [method, path (a function of the room and the job), body, expectations]
const endpoints = () => [
  ['GET', `/api/rooms/${room.id}`, undefined, READ],
  // joining again without the code: a member stays one, the others need the invite
  ['POST', `/api/rooms/${room.id}/join`, {}, { ...READ, stranger: [403, 'invite_required'],
    removed: [403, 'removed'], left: [403, 'invite_required'] }],
  ['GET', `/api/rooms/${room.id}/members`, undefined, READ],
  ['GET', `/api/rooms/${room.id}/members?limit=1`, undefined, READ],
  ['GET', `/api/rooms/${room.id}/document`, undefined, READ],
  ['GET', `/api/rooms/${room.id}/presence`, undefined, READ],
  ['PUT', `/api/rooms/${room.id}/presence`, { cursor: 0 }, READ],
  ['POST', `/api/rooms/${room.id}/stream-ticket`, undefined, READ],
  ['GET', `/api/rooms/${room.id}/history`, undefined, READ],
  ['GET', `/api/rooms/${room.id}/history?limit=1&before=5`, undefined, READ],
  ['GET', `/api/rooms/${room.id}/history/0`, undefined, READ],
  ['GET', `/api/rooms/${room.id}/history/1`, undefined, READ],
  ['GET', `/api/rooms/${room.id}/executions`, undefined, READ],
  ['POST', `/api/rooms/${room.id}/ai/hint`, { code: 'x = 1' }, READ],
  ['POST', `/api/rooms/${room.id}/ai/review`, { code: 'x = 1' }, READ],
  ['POST', `/api/rooms/${room.id}/operations`, { revision: 999999, ops: ['x'] }, EDIT],
  ['PUT', `/api/rooms/${room.id}/document`, { content: 'x', base_revision: 999999 }, EDIT],
  ['POST', `/api/rooms/${room.id}/executions`, { language: 'nosuchlanguage' }, EDIT],
  ['PATCH', `/api/rooms/${room.id}`, { name: 'same' }, OWNER],
  ['POST', `/api/rooms/${room.id}/invite`, undefined, { ...OWNER, owner: 'skip' }],
  ['DELETE', `/api/rooms/${room.id}/invite`, undefined, { ...OWNER, owner: 'skip' }],
  ['PUT', `/api/rooms/${room.id}/members/${who.editor.user.id}`, { role: 'editor' }, OWNER],
  ['DELETE', `/api/rooms/${room.id}/members/${who.owner.user.id}`, undefined, { ...OWNER, owner: 'skip' }],
  ['DELETE', `/api/rooms/${room.id}`, undefined, { ...OWNER, owner: 'skip' }],
  ['GET', `/api/jobs/${job}`, undefined, { ...READ, stranger: NO_JOB, removed: NO_JOB, left: NO_JOB }],
  // the editor's own job: the viewer may not cancel it, the others may not see it
  ['DELETE', `/api/jobs/${job}`, undefined,
    { owner: 'skip', editor: 'skip', viewer: FORBIDDEN, stranger: NO_JOB, removed: NO_JOB, left: NO_JOB }],
];

// The caller's own account and room list: no room's rights in question, but a session that
// is over and a stream ticket must act here no more than in a room. [method, path, body]
const accountEndpoints = [
  ['GET', '/api/auth/me'],
  ['DELETE', '/api/auth/me', { password: 'not-the-password' }],
  ['POST', '/api/auth/logout'],
  ['POST', '/api/auth/password', { password: 'not-the-password', new_password: 'another-password-1' }],
  ['GET', '/api/rooms'],
  ['POST', '/api/rooms', { name: 'never made' }],
];

// The routes that take no session at all, each with why it has no row: every caller, or
// none, gets the same answer.
const NO_CALLER = {
  'GET /api/health': 'the health of the stores, to anyone',
  'GET /api/streams': 'where streams are opened, to anyone',
  'POST /api/auth/register': 'makes an account: no session yet',
  'POST /api/auth/login': 'makes a session: none yet',
  'GET /api/runtimes': 'the installed runtimes, to anyone',
  'GET /metrics': "the web server's metrics listener only (tests/stack/metrics.test.mjs)",
};

async function check(name, method, path, body, want) {
  const r = await call(method, path, { token: who[name].token, body });
  const what = `${name}: ${method} ${path} -> ${r.status} ${r.text.slice(0, 200)}`;
  if (want === 'ok') {
    assert.ok(r.status < 500 && ![401, 403].includes(r.status) &&
      !['room_not_found', 'job_not_found'].includes(r.json?.error), what);
  } else {
    assert.equal(r.status, want[0], what);
    assert.equal(r.json?.error, want[1], what);
  }
}

test('every endpoint of a private room answers each caller as the table says', async () => {
  for (const [method, path, body, want] of endpoints()) {
    for (const [name, w] of Object.entries(want)) {
      if (w !== 'skip') await check(name, method, path, body, w);
    }
  }
});

test('an account deleted, a session signed out and a stream ticket act nowhere (401)', async () => {
  for (const [method, path, body] of [...endpoints(), ...accountEndpoints]) {
    await check('deleted', method, path, body, REVOKED);
    await check('signedOut', method, path, body, REVOKED);
    await check('ticket', method, path, body, BAD_TOKEN);
  }
});

test('the runs of a member who left and of an account deleted while a member end cancelled, unrun', async () => {
  for (const [name, id] of Object.entries(who.runs)) {
    const j = await waitJob(who.owner.token, id, { ms: 30000 });
    assert.equal(j.status, 'cancelled', `${name}: ${JSON.stringify(j)}`);
    assert.ok(!String(j.result?.stdout ?? '').includes('ran after the change'), `${name}: ${JSON.stringify(j)}`);
  }
});

test('cancelling in a public room: the owner any job, viewers and strangers their own AI requests only', async () => {
  const owner = await newUser('po');
  const pub = await createRoom(owner.token, { visibility: 'public' });
  const [editor, viewer, stranger] = await Promise.all(['pe', 'pv', 'ps'].map((p) => newUser(p)));
  for (const u of [editor, viewer]) {
    const j = await call('POST', `/api/rooms/${pub.id}/join`, { token: u.token, body: {} });
    assert.equal(j.status, 200, j.text);
  }
  const d = await call('PUT', `/api/rooms/${pub.id}/members/${viewer.user.id}`, { token: owner.token, body: { role: 'viewer' } });
  assert.equal(d.status, 200, d.text);
  const r = await run(editor.token, pub, { language: 'python', code: 'print(2)\n' });
  assert.equal(r.status, 202, r.text);
  const runId = r.json.job.id;
  // an AI request each of the viewer and the stranger (code of their own: no shared answer)
  const ask = async (u) => {
    const a = await call('POST', `/api/rooms/${pub.id}/ai/hint`, { token: u.token, body: { code: `# ${uniqueName('q')}\nx = 1\n` } });
    assert.equal(a.status, 202, a.text);
    return a.json.job.id;
  };
  const viewerAsk = await ask(viewer), strangerAsk = await ask(stranger);
  const cancel = (u, id) => call('DELETE', `/api/jobs/${id}`, { token: u.token });
  const refused = (res, what) => {
    assert.equal(res.status, 403, `${what}: ${res.text}`);
    assert.equal(res.json.error, 'forbidden', what);
  };
  const allowed = (res, what) => assert.ok([200, 409].includes(res.status), `${what}: ${res.status} ${res.text}`);
  // the stranger reads the run (a public room), but may cancel only what they asked
  assert.equal((await call('GET', `/api/jobs/${runId}`, { token: stranger.token })).status, 200);
  refused(await cancel(stranger, runId), "the stranger cancels the editor's run");
  refused(await cancel(stranger, viewerAsk), "the stranger cancels the viewer's AI request");
  refused(await cancel(viewer, runId), "the viewer cancels the editor's run");
  refused(await cancel(viewer, strangerAsk), "the viewer cancels the stranger's AI request");
  refused(await cancel(editor, strangerAsk), "the editor cancels the stranger's AI request");
  allowed(await cancel(stranger, strangerAsk), 'the stranger cancels their own AI request');
  allowed(await cancel(viewer, viewerAsk), 'the viewer cancels their own AI request');
  allowed(await cancel(owner, runId), "the owner cancels the editor's run");
  // and the stranger still changes nothing: edits, runs and the owner's part need a membership
  const edit = await call('POST', `/api/rooms/${pub.id}/operations`, { token: stranger.token, body: { revision: 0, ops: ['x'] } });
  assert.equal(edit.status, 403, edit.text);
  assert.equal(edit.json.error, 'not_a_member');
  const exec = await run(stranger.token, pub, { language: 'python', code: 'print(3)\n' });
  assert.equal(exec.status, 403, exec.text);
  assert.equal(exec.json.error, 'not_a_member');
  const inv = await call('POST', `/api/rooms/${pub.id}/invite`, { token: stranger.token });
  assert.equal(inv.status, 403, inv.text);
  assert.equal(inv.json.error, 'not_a_member');
});

// The API's routes as it names them: its request counter has a series for every route of
// its table (fcgi/route.c, fcgi/api_metrics.c: "METHOD pattern", '*' for a path segment),
// at zero too, and one "none" for requests no route took.
async function apiRoutes() {
  const url = process.env.API_METRICS_URL;
  assert.ok(url, 'the stack exports the API metrics URL (scripts/stack.sh)');
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  const text = await res.text();
  const routes = new Set();
  for (const m of text.matchAll(/^codecollab_api_requests_total\{route="([^"]*)",/gm)) routes.add(m[1]);
  assert.ok(routes.delete('none'), `the API metrics have no route="none" series: not the format this reads\n${text.slice(0, 500)}`);
  assert.ok(routes.size > 0, 'no route found in the API metrics: the check below would check nothing');
  for (const r of routes) assert.match(r, /^(GET|POST|PUT|PATCH|DELETE) \/[^\s]*$/, 'a route label of another shape');
  return [...routes];
}

// Whether a path (its query left off) has the shape of a route's pattern: a '*' is one
// segment, not empty.
function matches(route, method, path) {
  const [m, pattern] = route.split(' ');
  const want = pattern.split('/'), got = path.split('?')[0].split('/');
  return m === method && want.length === got.length && want.every((w, i) => (w === '*' ? got[i] !== '' : w === got[i]));
}

// The make cluster layout has no metrics listener at its web nodes (scripts/cluster.sh):
// there the route table is not read; the one stack's run checks it.
const NO_METRICS = process.env.REDIS_CLUSTER && 'the cluster layout has no API metrics listener to read the routes from';

test('the table has a row for every route of the API, and none for a route it lacks', { skip: NO_METRICS }, async () => {
  const routes = await apiRoutes();
  const covered = new Set(), problems = [];
  for (const [method, path] of [...endpoints(), ...accountEndpoints]) {
    const hit = routes.filter((r) => matches(r, method, path));
    if (hit.length !== 1) problems.push(`the row ${method} ${path} names ${hit.length ? `several routes: ${hit.join(', ')}` : 'no route of the API'}`);
    hit.forEach((r) => covered.add(r));
  }
  for (const r of Object.keys(NO_CALLER)) {
    if (!routes.includes(r)) problems.push(`NO_CALLER names ${r}, no route of the API`);
    if (covered.has(r)) problems.push(`${r} is in NO_CALLER and has a row too`);
    covered.add(r);
  }
  for (const r of routes) if (!covered.has(r)) problems.push(`${r}: a route of the API with no row here (nor in NO_CALLER)`);
  assert.deepEqual(problems, []);
});

test("docs/API.md names every route of the API as an endpoint, and no endpoint the API lacks", { skip: NO_METRICS }, async () => {
  const routes = await apiRoutes();
  // `METHOD /api/…` anywhere in the text, {name} for a segment; /metrics is in OPERATIONS.md
  const documented = new Set();
  const read = (file, re) => {
    for (const m of readFileSync(pathJoin(ROOT, 'docs', file), 'utf8').matchAll(re)) {
      documented.add(`${m[1]} ${m[2].replace(/\{[^}/]*\}/g, '*')}`);
    }
  };
  read('API.md', /`(GET|POST|PUT|PATCH|DELETE) (\/api\/[^`?\s]*)/g);
  read('OPERATIONS.md', /`(GET) (\/metrics)`/g);
  assert.ok(documented.size > 0, 'no endpoint found in docs/API.md: the check below would check nothing');
  assert.deepEqual({
    'routes of the API that the docs do not name': routes.filter((r) => !documented.has(r)),
    'endpoints the docs name that the API does not have': [...documented].filter((d) => !routes.includes(d)),
  }, {
    'routes of the API that the docs do not name': [],
    'endpoints the docs name that the API does not have': [],
  });
});
