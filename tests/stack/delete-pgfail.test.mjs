// A room's deletion (DELETE /api/rooms/{id}) or its owner's (DELETE /api/auth/me) that
// PostgreSQL refuses, or whose connection is lost, must cost the room nothing: not the edits
// typed since its last save (they live in Redis until the snapshotter saves them), not the
// access of its members and of strangers to its streams.
//
// The failures are made in PostgreSQL itself: the API runs once as CGI (tests/lib/api.mjs)
// with a search_path that puts a schema of this test before public, where a view stands in
// for rooms or users. Its DELETE raises, or ends the connection it runs on, either in the
// DELETE itself or at the COMMIT (a deferred trigger of a table of the schema, which the
// view's DELETE writes to after deleting the real row). The stack's own API, behind
// lighttpd, sees the real tables and is what the test checks with.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { call, cgi, cgiAsync, createRoom, roomStreamStatus, newUser, redis, roomEvents, saved, sql, uniqueName } from '../lib/api.mjs';
import { waitFor } from '../lib/procs.mjs';

const schemas = [];
after(() => {
  for (const s of schemas) sql(`SET client_min_messages = warning; DROP SCHEMA IF EXISTS ${s} CASCADE`);
});

// How each failure is made, and the API's answer to it: an error PostgreSQL raises is a
// 500, a connection that is gone a 503.
const FAILURES = [
  ['raises in the DELETE', 'raise', 500],
  ['loses its connection in the DELETE', 'kill', 503],
  ['loses its connection at the COMMIT', 'commit', 503],
];

// A schema of this test's own where `table` is a view of public's whose DELETE fails as
// `how` says; the CGI environment whose database connection looks there first.
function failingDelete(table, how) {
  const s = uniqueName('cc_delfail_');
  schemas.push(s);
  // the backend ends itself; the sleep is where it notices, so nothing after it runs
  const die = `PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(30);`;
  const body = {
    raise: `RAISE EXCEPTION 'the delete is made to fail by the test';`,
    kill: die,
    commit: `DELETE FROM public.${table} WHERE id = OLD.id; INSERT INTO ${s}.at_commit VALUES (1); RETURN OLD;`,
  }[how];
  sql(`CREATE SCHEMA ${s};
    CREATE VIEW ${s}.${table} AS SELECT * FROM public.${table};
    CREATE TABLE ${s}.at_commit (x int);
    CREATE FUNCTION ${s}.die() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN ${die} RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER die AFTER INSERT ON ${s}.at_commit
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${s}.die();
    CREATE FUNCTION ${s}.del() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN ${body} RETURN NULL; END $$;
    CREATE TRIGGER del INSTEAD OF DELETE ON ${s}.${table} FOR EACH ROW EXECUTE FUNCTION ${s}.del();`);
  const url = new URL(process.env.DATABASE_URL);
  url.searchParams.append('options', `-csearch_path=${s},public`);
  // DATABASE_READ_URL is not passed on: every read of the run goes through the view
  return { DATABASE_URL: url.toString() };
}

const documentOf = async (room, token) => {
  const r = await call('GET', `/api/rooms/${room.id}/document`, { token });
  assert.equal(r.status, 200, r.text);
  return r.json;
};

// A public room of owner's whose last save holds "saved. " (revision 1), with three edits
// typed after it that no save has reached: they were committed by a CGI whose saves are an
// hour away, so the stack's snapshotter leaves them to the room's document in Redis.
async function roomWithUnsavedEdits(owner) {
  const room = await createRoom(owner.token, { visibility: 'public' });
  let r = await call('POST', `/api/rooms/${room.id}/operations`, { token: owner.token, body: { revision: 0, ops: ['saved. '] } });
  assert.equal(r.status, 200, r.text);
  await saved(room, 1);
  // the save's lease ends: nothing is due in the room any more
  await waitFor(() => redis('ZSCORE', 'cc:snap:due', room.id) === '', { what: 'the end of the save\'s lease', timeout: 30000 });
  let text = 'saved. ';
  for (const [i, word] of ['one ', 'two ', 'three'].entries()) {
    r = cgi({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: owner.token,
      body: { revision: i + 1, ops: [[...text].length, word] }, env: { SNAPSHOT_INTERVAL_MS: '3600000' } });
    assert.equal(r.status, 200, `${r.body} ${r.stderr}`);
    text += word;
  }
  const d = await documentOf(room, owner.token);
  assert.deepEqual([d.content, d.revision], [text, 4]);
  assert.ok(!roomEvents(room.id).some((e) => e.type === 'snapshot' && e.data.revision > 1), 'the edits were saved');
  return { room, text };
}

// The room lives on as it was: every edit, its members editing, strangers streaming it.
async function assertIntact(room, text, owner, editor, stranger) {
  assert.equal(sql(`SELECT count(*) FROM rooms WHERE id = '${room.id}'`), '1');
  const d = await documentOf(room, editor.token);
  assert.deepEqual([d.content, d.revision], [text, 4], 'the edits typed since the last save');
  const r = await call('POST', `/api/rooms/${room.id}/operations`, { token: editor.token, body: { revision: 4, ops: [[...text].length, '!'] } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await documentOf(room, owner.token)).content, `${text}!`);
  for (const u of [owner, editor, stranger]) assert.equal(await roomStreamStatus(room, u.token), 200, 'a stream of the room');
}

for (const [what, how, status] of FAILURES) {
  test(`a room DELETE that ${what} answers ${status} and the room keeps every edit`, async () => {
    const owner = await newUser('df');
    const editor = await newUser('df');
    const stranger = await newUser('df');
    const { room, text } = await roomWithUnsavedEdits(owner);
    assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: editor.token })).status, 200);

    const env = failingDelete('rooms', how);
    const del = await cgiAsync({ method: 'DELETE', uri: `/api/rooms/${room.id}`, token: owner.token, env });
    assert.equal(del.status, status, `${del.body} ${del.stderr}`);
    assert.equal(del.code, 0, del.stderr);
    assert.ok(!roomEvents(room.id).some((e) => e.type === 'room' && e.data.reason === 'deleted'), 'a `deleted` event went out');
    await assertIntact(room, text, owner, editor, stranger);

    // and it can be deleted once PostgreSQL lets it
    const again = await call('DELETE', `/api/rooms/${room.id}`, { token: owner.token });
    assert.equal(again.status, 204, again.text);
    assert.equal(sql(`SELECT count(*) FROM rooms WHERE id = '${room.id}'`), '0');
    for (const k of ['members', 'visibility', 'doc', 'ops']) assert.equal(redis('EXISTS', `cc:room:{${room.id}}:${k}`), '0', k);
  });

  test(`an account deletion that ${what} answers ${status} and its rooms keep every edit`, async () => {
    const owner = await newUser('df');
    const editor = await newUser('df');
    const stranger = await newUser('df');
    const { room, text } = await roomWithUnsavedEdits(owner);
    assert.equal((await call('POST', `/api/rooms/${room.id}/join`, { token: editor.token })).status, 200);

    const env = failingDelete('users', how);
    const del = await cgiAsync({ method: 'DELETE', uri: '/api/auth/me', token: owner.token, body: { password: owner.password }, env });
    assert.equal(del.status, status, `${del.body} ${del.stderr}`);
    assert.equal(del.code, 0, del.stderr);
    assert.equal((await call('GET', '/api/auth/me', { token: owner.token })).status, 200, 'the account is still there');
    await assertIntact(room, text, owner, editor, stranger);

    const again = await call('DELETE', '/api/auth/me', { token: owner.token, body: { password: owner.password } });
    assert.equal(again.status, 204, again.text);
    assert.equal(sql(`SELECT count(*) FROM rooms WHERE id = '${room.id}'`), '0');
  });
}
