// Upgrading from the key layout before lib/rkeys.def (scripts/redis-upgrade-keys.sh): a
// room whose live document, operations, event history and member cache sit under the old
// names (cc:room:ID:…) keeps all of them after the script runs, and readers see the text
// typed before the upgrade, not only what the last snapshot saved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { call, newUser, redis } from '../lib/api.mjs';

const SCRIPT = fileURLToPath(new URL('../../scripts/redis-upgrade-keys.sh', import.meta.url));
const upgrade = () => execFileSync(SCRIPT, { env: { ...process.env }, encoding: 'utf8' });

test('keys of the old layout are renamed and the room carries on where it was', async () => {
  const a = await newUser();
  const r = await call('POST', '/api/rooms', { token: a.token, body: { name: 'upgrade', language: 'python' } });
  assert.equal(r.status, 201, r.text);
  const room = r.json.room;
  for (let rev = 0; rev < 3; rev++) {
    const op = await call('POST', `/api/rooms/${room.id}/operations`,
      { token: a.token, body: { revision: rev, ops: rev ? [rev, `${rev}`] : ['x'] } });
    assert.equal(op.status, 200, op.text);
  }
  // put the room back into the old layout, as a Redis written by an older version holds it
  for (const suffix of ['doc', 'ops', 'events', 'members']) {
    assert.equal(redis('RENAME', `cc:room:{${room.id}}:${suffix}`, `cc:room:${room.id}:${suffix}`), 'OK');
  }
  redis('SET', `cc:ai:asked:${room.id}:${'ab'.repeat(32)}`, '1', 'EX', '600');
  const out = upgrade();
  assert.match(out, /redis: \d+ keys renamed/);
  for (const suffix of ['doc', 'ops', 'events', 'members']) {
    assert.equal(redis('EXISTS', `cc:room:${room.id}:${suffix}`), '0', suffix);
    assert.equal(redis('EXISTS', `cc:room:{${room.id}}:${suffix}`), '1', suffix);
  }
  assert.equal(redis('EXISTS', `cc:room:{${room.id}}:ai:asked:${'ab'.repeat(32)}`), '1');
  const ttl = Number(redis('TTL', `cc:room:{${room.id}}:ai:asked:${'ab'.repeat(32)}`));
  assert.ok(ttl > 0 && ttl <= 600, `the mark keeps its expiry (${ttl})`);
  // the document and its revision are the ones typed before the upgrade
  const d = await call('GET', `/api/rooms/${room.id}/document`, { token: a.token });
  assert.equal(d.status, 200, d.text);
  assert.equal(d.json.revision, 3);
  assert.equal(d.json.content, 'x12');
  // and typing goes on from there
  const next = await call('POST', `/api/rooms/${room.id}/operations`,
    { token: a.token, body: { revision: 3, ops: [3, '!'] } });
  assert.equal(next.status, 200, next.text);
  assert.equal(next.json.revision, 4);
  // a second run finds nothing to do
  assert.equal(upgrade(), '');
});
