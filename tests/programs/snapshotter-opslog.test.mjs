// The snapshotter and the operation log's byte bound (OPS_LOG_MAX_BYTES, lib/lua/_opslog.lua):
// it reads the setting with the other document settings and refuses to start on a bad one,
// and a save whose operations since the last save the budget trimmed from Redis falls back
// to a checkpoint of the right text (lib/store_doc.c store_doc_snapshot). Real parts: a
// redis-server, a PostgreSQL with the schema, the API run as CGI for commits and reads, and
// codecollab-snapshotter processes started here (never running while the test commits, so
// what it saves does not depend on timing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { start, stop, waitFor } from '../lib/procs.mjs';
import { snapshotterGround, SNAP_BIN } from '../lib/snapshotter-ground.mjs';

const { cgi, base } = await snapshotterGround('snapshotter-opslog-test-secret-0123456789');
// a small budget; saves only when a snapshotter here is told to stop (it then saves every
// room marked, whatever its time)
const ENV = { DOCUMENT_MAX_BYTES: '4096', OPS_LOG_MAX_BYTES: '8192', SNAPSHOT_INTERVAL_MS: '600000', SNAPSHOT_LEASE_MS: '1800000' };

const api = (req) => {
  const r = cgi({ ...req, env: { ...base, ...ENV } });
  assert.equal(r.code, 0, r.stderr.slice(0, 2000));
  return r;
};

function roomOf() {
  const reg = api({ method: 'POST', uri: '/api/auth/register', body: { username: 'opslog1', password: 'opslog-pass-123' } });
  assert.equal(reg.status, 201, reg.body);
  const room = api({ method: 'POST', uri: '/api/rooms', token: reg.json.token, body: { name: 'opslog' } });
  assert.equal(room.status, 201, room.body);
  return { id: room.json.room.id, token: reg.json.token };
}

function commit(room, revision, ops) {
  const r = api({ method: 'POST', uri: `/api/rooms/${room.id}/operations`, token: room.token, body: { revision, ops } });
  assert.equal(r.status, 200, r.body);
  return r.json.revision;
}

const history = (room) => {
  const r = api({ method: 'GET', uri: `/api/rooms/${room.id}/history`, token: room.token });
  assert.equal(r.status, 200, r.body);
  return r.json.snapshots;
};

function snapshotter(env) {
  const e = { ...process.env, ...base, ...env };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return start(SNAP_BIN, [], { env: e });
}

// A snapshotter that saves what is marked and stops (SIGTERM: one pass over every marked room).
async function saveAll() {
  const snap = snapshotter(ENV);
  try {
    await waitFor(() => snap.output.includes('writing room snapshots'), { what: 'the snapshotter started', timeout: 20000 });
  } finally {
    const ex = await stop(snap, 'SIGTERM', 20000);
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
}

test('the snapshotter refuses to start with an OPS_LOG_MAX_BYTES that is not a number or below 2 x DOCUMENT_MAX_BYTES', async () => {
  const cases = [
    [{ DOCUMENT_MAX_BYTES: '4096', OPS_LOG_MAX_BYTES: '4096' },
      /configuration: OPS_LOG_MAX_BYTES \(4096\) must be at least 2 x DOCUMENT_MAX_BYTES \(2 x 4096 = 8192\)/],
    [{ OPS_LOG_MAX_BYTES: 'lots' }, /configuration: OPS_LOG_MAX_BYTES must be an integer from 2048 to \d+ \(got "lots"\)/],
  ];
  for (const [env, message] of cases) {
    const snap = snapshotter(env);
    try {
      await waitFor(() => snap.exitCode !== null, { what: 'the snapshotter to refuse the setting', timeout: 20000 });
      await snap.closed;
      assert.equal(snap.exitCode, 1, snap.output);
      assert.match(snap.output, message);
    } finally {
      await stop(snap);
    }
  }
});

test('a save whose operations the byte budget trimmed is a checkpoint of the right text', async () => {
  const room = roomOf();
  let rev = commit(room, 0, ['start\n']);
  await saveAll();
  assert.deepEqual(history(room).map((h) => h.revision), [1]);
  // pastes of 3,000 bytes and their removals: the operations since that save (2 on) pass
  // the budget and the oldest of them leave Redis before the next save
  const paste = 'p'.repeat(3000);
  for (const ops of [[6, paste], [6, -3000], [6, paste], [6, -3000], [6, paste]]) rev = commit(room, rev, ops);
  assert.equal(rev, 6);
  await saveAll();
  const [newest] = history(room);
  assert.equal(newest.revision, 6);
  // saved whole, as a checkpoint: what was typed since the last save is not known any more
  assert.equal(newest.inserted, undefined, JSON.stringify(newest));
  assert.equal(newest.deleted, undefined, JSON.stringify(newest));
  assert.equal(newest.length, 6 + 3000);
  const text = api({ method: 'GET', uri: `/api/rooms/${room.id}/history/6`, token: room.token });
  assert.equal(text.status, 200, text.body);
  assert.equal(text.json.content, `start\n${paste}`);
  // and the document as the room sees it
  const live = api({ method: 'GET', uri: `/api/rooms/${room.id}/document`, token: room.token });
  assert.equal(live.json.content, `start\n${paste}`);
});
