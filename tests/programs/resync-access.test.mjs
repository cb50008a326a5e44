// scripts/redis-resync-access.sh while the API changes rooms under it. PostgreSQL is played
// by a stand-in psql that answers each read of the rooms' access from a list and, after an
// answer, writes to Redis what the API would have written at that moment (its write comes
// after its commit). The script must leave Redis as PostgreSQL has it last, whatever the
// order: a room made public and private again, or a viewer made editor and viewer again,
// while it runs, is private and viewer at the end (Redis public would let strangers stream
// the room; editor would let the viewer edit). A room whose visibility key it turns from
// public to private is announced on cc:access ({"room":"<id>"}), so that brokers end
// strangers' streams of it, whether the first write or a correction turned it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, start, startRedis, stop, tempDir, waitFor } from '../lib/procs.mjs';

const RESYNC = join(ROOT, 'scripts/redis-resync-access.sh');
let server;
after(async () => { if (server) await stop(server); });

const cli = (...args) => execFileSync('redis-cli', ['-p', String(server.port), ...args], { encoding: 'utf8' }).trim();

// A psql of its own in dir: the n-th read of the rooms' access answers reads[n-1] (the last
// one from then on) and then runs writes[n-1] (redis-cli argument lists); the users' token
// generations read nothing.
function fakePsql(dir, reads, writes) {
  reads.forEach((text, i) => writeFileSync(join(dir, `read${i + 1}`), text));
  writes.forEach((cmds, i) => writeFileSync(join(dir, `after${i + 1}`),
    cmds.map((c) => `redis-cli -p ${server.port} ${c.map((a) => `'${a}'`).join(' ')} >/dev/null\n`).join('')));
  const psql = join(dir, 'psql');
  writeFileSync(psql, `#!/usr/bin/env bash
set -eu
dir=$(dirname "$0")
for q; do :; done
case $q in *token_gen*) exit 0 ;; esac
n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$dir/count"
f=$dir/read$n
[ -f "$f" ] || f=$dir/read${reads.length}
cat "$f"
[ ! -f "$dir/after$n" ] || bash "$dir/after$n"
`);
  chmodSync(psql, 0o755);
}

function resync(dir) {
  return new Promise((resolve) => {
    execFile(RESYNC, {
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, DATABASE_URL: 'postgresql://stand-in',
        REDIS_URL: `redis://127.0.0.1:${server.port}`, REDIS_CLUSTER: '', REDIS_PASSWORD: '' },
      encoding: 'utf8', timeout: 120000,
    }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

test('a room and a member changed and changed back while the script runs end as PostgreSQL has them', async () => {
  server ??= await startRedis();
  const dir = tempDir('cc-resync-');
  const room = 'resyncAba01';
  const vis = `cc:room:{${room}}:visibility`, members = `cc:room:{${room}}:members`;
  cli('SET', vis, 'private');
  cli('HSET', members, '1', 'owner', '2', 'viewer');
  fakePsql(dir, [
    // the first read: private, 2 a viewer; then the API makes it public and 2 an editor
    `V ${room} private\nM ${room} 1 owner\nM ${room} 2 viewer\n`,
    // the second read sees that; then the API makes it private and 2 a viewer again
    `V ${room} public\nM ${room} 1 owner\nM ${room} 2 editor\n`,
    `V ${room} private\nM ${room} 1 owner\nM ${room} 2 viewer\n`,
  ], [
    [['SET', vis, 'public'], ['HSET', members, '2', 'editor']],
    [['SET', vis, 'private'], ['HSET', members, '2', 'viewer']],
  ]);
  const r = await resync(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(cli('GET', vis), 'private', 'the room PostgreSQL has private is private in Redis');
  assert.equal(cli('HGET', members, '2'), 'viewer', 'the viewer is a viewer in Redis');
  assert.equal(cli('HGET', members, '1'), 'owner');
});

test('a room created after the first read, with none before it, keeps the keys the API wrote', async () => {
  server ??= await startRedis();
  cli('FLUSHALL');
  const dir = tempDir('cc-resync-');
  const room = 'resyncNew01';
  const vis = `cc:room:{${room}}:visibility`, members = `cc:room:{${room}}:members`;
  fakePsql(dir, [
    '', // no room yet; then the API creates one and writes its keys
    `V ${room} public\nM ${room} 1 owner\n`,
  ], [
    [['SET', vis, 'public'], ['HSET', members, '1', 'owner']],
  ]);
  const r = await resync(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(cli('GET', vis), 'public', 'the new room\'s visibility');
  assert.equal(cli('HGET', members, '1'), 'owner', 'the new room\'s owner');
});

test('the rooms made private again, by the first write or a correction, are announced on cc:access', async () => {
  server ??= await startRedis();
  cli('FLUSHALL');
  const dir = tempDir('cc-resync-');
  const vis = (room) => `cc:room:{${room}}:visibility`, members = (room) => `cc:room:{${room}}:members`;
  // rcA: public in the restored Redis, private in PostgreSQL (the first write turns it);
  // rcB: public in both (nothing to announce); rcC: PostgreSQL says public at the first read,
  // then the API makes it private (committed, its own write to Redis not yet done), so the
  // first write puts public and the correction turns it; rcD: private in both.
  for (const [room, v] of [['rcA', 'public'], ['rcB', 'public'], ['rcC', 'private'], ['rcD', 'private']]) {
    cli('SET', vis(room), v);
    cli('HSET', members(room), '1', 'owner');
  }
  const rows = (c) => `V rcA private\nM rcA 1 owner\nV rcB public\nM rcB 1 owner\nV rcC ${c}\nM rcC 1 owner\nV rcD private\nM rcD 1 owner\n`;
  fakePsql(dir, [rows('public'), rows('private')], []);
  const sub = start('redis-cli', ['-p', String(server.port), 'SSUBSCRIBE', 'cc:access']);
  try {
    await waitFor(() => sub.output.includes('ssubscribe'), { what: 'the listener subscribed', timeout: 20000 });
    const r = await resync(dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /the streams of 0 users and of 2 rooms made private looked at again/);
    // the announcements go out in one pipe, in the rooms' order: rcB's would come before rcC's
    await waitFor(() => sub.output.includes('{"room":"rcC"}'), { what: 'rcC announced', timeout: 20000 });
    const said = sub.output.split('\n').filter((l) => l.startsWith('{'));
    assert.deepEqual(said, ['{"room":"rcA"}', '{"room":"rcC"}']);
    for (const room of ['rcA', 'rcC', 'rcD']) assert.equal(cli('GET', vis(room)), 'private', room);
    assert.equal(cli('GET', vis('rcB')), 'public');
  } finally {
    await stop(sub);
  }
});

test('a Redis that holds what PostgreSQL has is read once and left alone, quietly', async () => {
  server ??= await startRedis();
  cli('FLUSHALL');
  const dir = tempDir('cc-resync-');
  const vis = (room) => `cc:room:{${room}}:visibility`, members = (room) => `cc:room:{${room}}:members`;
  cli('SET', vis('rqA'), 'private');
  cli('HSET', members('rqA'), '1', 'owner', '2', 'viewer');
  cli('SET', vis('rqB'), 'public');
  cli('HSET', members('rqB'), '3', 'owner');
  fakePsql(dir, [`V rqA private\nM rqA 1 owner\nM rqA 2 viewer\nV rqB public\nM rqB 3 owner\n`], []);
  const before = cli('INFO', 'commandstats').match(/cmdstat_set:calls=(\d+)/)?.[1] ?? '0';
  const r = await resync(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '', 'nothing differed, so nothing is said');
  // nothing was written, so no entry can hold a stale value of the script's: no second read
  assert.equal(readFileSync(join(dir, 'count'), 'utf8').trim(), '1', 'the rooms were read from PostgreSQL once');
  const after = cli('INFO', 'commandstats').match(/cmdstat_set:calls=(\d+)/)?.[1] ?? '0';
  assert.equal(after, before, 'no visibility key was written');
  assert.equal(cli('GET', vis('rqA')), 'private');
  assert.deepEqual(cli('HGETALL', members('rqA')).split('\n'), ['1', 'owner', '2', 'viewer']);
});
