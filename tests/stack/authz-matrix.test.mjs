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
// and a stranger's own AI requests in a public room, nobody else's).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';

import { call, newUser, createRoom, uniqueName } from '../lib/api.mjs';
import { run, waitJob } from '../lib/jobs.mjs';

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
  for (const [method, path, body] of endpoints()) {
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
