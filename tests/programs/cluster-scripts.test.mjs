// Every Lua script of lib/lua/, exactly as the programs send it (build/gen/rscripts.c), run
// with realistic arguments on a real Redis Cluster of three masters (tests/lib/redis-cluster.mjs):
// none may be refused with CROSSSLOT or "Script attempted to access keys that do not hash to
// the same slot" / "a non local key". The job queue runs end to end across slots: its
// scripts in the slot {jobs}, the outbox's entries carried into rooms served by other nodes.
// tests/unit/lua-slots.test.mjs checks the same rule from the sources.
import { test, before, after } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { startRedisCluster } from '../lib/redis-cluster.mjs';
import { scripts } from '../lib/rscripts.mjs';
import { HISTORY_BOUNDS, Redis } from '../lib/resp.mjs';

const S = scripts();
let c;
const rk = (room, what) => `cc:room:{${room}}${what ? `:${what}` : ''}`;
const TTL = String(7 * 86400);

before(async () => { c = await startRedisCluster({ masters: 3, replicas: 0 }); });
after(async () => { await c?.stop(); });

const run = (name, keys, args) => c.send('EVAL', S.get(name).text, keys.length, ...keys, ...args);

// Fresh rooms served by another node than the job queue, so every cross-slot mistake shows.
let roomSeq = 0;
async function roomsAway(n) {
  const jobs = await c.portOf('cc:{jobs}:stream');
  const out = [];
  for (let i = 0; out.length < n && i < 1000; i++) {
    const id = `room${roomSeq++}x${process.pid}`;
    if (await c.portOf(rk(id)) !== jobs) out.push(id);
  }
  assert.equal(out.length, n);
  return out;
}

function createArgs(id, room, kind = 'execution', right = '') {
  const extra = '"user":{"id":7,"username":"ann"}';
  return [String(TTL), kind, JSON.stringify({ job_id: id, status: 'queued' }), '20', '100000', id,
    room, '7', '100', '100', '10000', '10', '', '', '0', right, 'kind', kind, 'room', room, 'user', '7', 'username',
    'ann', 'request', '{}', 'attempts', '0', 'created_at', '1', 'event_extra', extra];
}

// jobstate_drain, step for step: each outbox entry applied in its room's slot, then deleted.
async function drain() {
  const box = await c.send('XRANGE', 'cc:{jobs}:outbox', '-', '+');
  for (const [eid, f] of box) {
    const o = {};
    for (let i = 0; i < f.length; i += 2) o[f[i]] = f[i + 1];
    await run('outbox_apply', [rk(o.room, 'events'), rk(o.room, 'outbox'), rk(o.room, 'runs'), rk(o.room, 'deleted')],
      [eid, o.type, o.data, HISTORY_BOUNDS, o.run || '', o.run ? o.keep : '', o.run ? o.ttl : '', TTL]);
  }
  if (box.length) await c.send('XDEL', 'cc:{jobs}:outbox', ...box.map(([eid]) => eid));
  return box.length;
}

async function history(room) {
  return (await c.send('XRANGE', rk(room, 'events'), '-', '+'))
    .map(([, f]) => ({ type: f[f.indexOf('type') + 1], data: JSON.parse(f[f.indexOf('data') + 1]) }));
}

// One case per script; a script without one fails the last test, so a new script is run
// here from the day it is added.
const cases = {
  async access_gen_store() { assert.equal(await run('access_gen_store', ['cc:user:7:tokgen'], ['3']), 1); },
  async access_stream() {
    const [r] = await roomsAway(1);
    await c.send('HSET', rk(r, 'members'), '7', 'owner');
    assert.deepEqual(await run('access_stream', [rk(r, 'members'), rk(r, 'visibility')], ['7', '8']), ['owner', '']);
  },
  async ai_finish() {
    const [r] = await roomsAway(1);
    await c.send('SET', rk(r, 'ai:pending:ab12'), 'job1');
    const keys = (k) => [rk(r, `ai:asked:${k}`), rk(r, `ai:pending:${k}`), rk(r, 'deleted')];
    assert.equal(await run('ai_finish', keys('ab12'), ['600', '1', 'job1']), 1);
    assert.equal(await c.send('EXISTS', rk(r, 'ai:pending:ab12')), 0);
    assert.equal(await c.send('GET', rk(r, 'ai:asked:ab12')), '1');
    // a deleted room is not marked asked; its job's pending mark still goes
    await c.send('SET', rk(r, 'deleted'), '1', 'EX', '60');
    await c.send('SET', rk(r, 'ai:pending:cd34'), 'job2');
    assert.equal(await run('ai_finish', keys('cd34'), ['600', '1', 'job2']), 1);
    assert.equal(await c.send('EXISTS', rk(r, 'ai:pending:cd34')), 0);
    assert.equal(await c.send('EXISTS', rk(r, 'ai:asked:cd34')), 0);
  },
  async ai_release() {
    const [r] = await roomsAway(1);
    assert.equal(await run('ai_release', [rk(r, 'ai:pending:ab12')], ['-']), 0);
    assert.equal(await run('ai_release', ['cc:ai:pending:ab12'], ['job1']), 0);
  },
  async broker_catchup() {
    const [r] = await roomsAway(1);
    await run('events_emit', [rk(r, 'events')], ['room', '{}', HISTORY_BOUNDS]);
    assert.equal((await run('broker_catchup', [rk(r, 'events')], ['0-0', '100']))[1].length, 1);
    assert.equal((await run('broker_catchup', [rk(r, 'events')], ['', '100']))[1].length, 1);
  },
  async broker_presence() {
    const [r] = await roomsAway(1);
    const keys = [rk(r, 'conns'), rk(r, 'events'), rk(r, 'deleted')];
    const exp = await run('broker_presence', keys, ['open', '30000', HISTORY_BOUNDS, 'b1', '7', 'ann']);
    assert.ok(exp > Date.now() - 60000);
    assert.equal(await run('presence_index', ['cc:presence:rooms'], [r, String(exp)]), 1);
    assert.ok(await run('broker_presence', keys, ['refresh', '30000', HISTORY_BOUNDS, 'b1', '7', 'ann']) >= exp);
    assert.equal(await run('broker_presence', keys, ['close', '30000', HISTORY_BOUNDS, 'b1', '7', 'ann']), 0);
    assert.equal(await run('broker_presence', keys, ['sweep', '30000', HISTORY_BOUNDS, 'b1']), 0);
    assert.deepEqual((await history(r)).map((e) => e.type), ['join', 'leave']);
    // a deleted room: no presence kept, no event written
    await c.send('SET', rk(r, 'deleted'), '1', 'EX', '60');
    assert.equal(await run('broker_presence', keys, ['open', '30000', HISTORY_BOUNDS, 'b1', '7', 'ann']), 0);
    assert.equal(await c.send('EXISTS', rk(r, 'conns')), 0);
    assert.deepEqual((await history(r)).map((e) => e.type), ['join', 'leave']);
  },
  async presence_emit() {
    // the budget (2 a window here) and the event in one call, on the room's node
    const [r] = await roomsAway(1);
    const keys = [rk(r, 'events'), rk(r, 'presence:rl:7'), rk(r, 'deleted')];
    const args = (cursor) => [JSON.stringify({ cursor }), HISTORY_BOUNDS, '2', '60000'];
    assert.equal((await run('presence_emit', keys, args(1)))[0], 1);
    assert.equal((await run('presence_emit', keys, args(2)))[0], 1);
    const over = await run('presence_emit', keys, args(3));
    assert.equal(over[0], 0);
    assert.ok(over[1] > 0 && over[1] <= 60000);
    assert.deepEqual((await history(r)).map((e) => [e.type, e.data.cursor]), [['presence', 1], ['presence', 2]]);
    // a deleted room (its mark, in the same slot) takes nothing
    assert.equal(await c.send('SET', rk(r, 'deleted'), '1', 'EX', '60'), 'OK');
    assert.deepEqual(await run('presence_emit', [rk(r, 'events'), rk(r, 'presence:rl:8'), rk(r, 'deleted')], args(4)), [2, 0]);
    assert.equal(await c.send('EXISTS', rk(r, 'presence:rl:8')), 0);
    assert.equal((await history(r)).length, 2);
  },
  async presence_index() {
    assert.equal(await run('presence_index', ['cc:presence:rooms'], ['nobody', '0']), 0);
  },
  async snap_claim() {
    const [r] = await roomsAway(1);
    const due = Date.now() - 1000;
    const lease = Date.now() + 60000;
    assert.equal(await run('snap_claim', ['cc:snap:due'], [r, '+inf', String(lease)]), -1); // not on it
    assert.equal(await c.send('ZADD', 'cc:snap:due', String(due), r), 1);
    assert.equal(await run('snap_claim', ['cc:snap:due'], [r, String(due - 1), String(lease)]), -1); // not due
    assert.equal(await run('snap_claim', ['cc:snap:due'], [r, String(due), String(lease)]), lease);
    assert.equal(await run('snap_claim', ['cc:snap:due'], [r, String(Date.now()), String(lease + 1)]), -1); // leased
    assert.equal(await run('snap_release', ['cc:snap:due'], [r, String(lease + 1)]), 0); // not this lease
    assert.equal(await run('snap_release', ['cc:snap:due'], [r, String(lease)]), 1);
    assert.equal(await c.send('ZSCORE', 'cc:snap:due', r), null);
  },
  snap_release() { return cases.snap_claim(); },
  async presence_due() {
    assert.ok(Array.isArray(await run('presence_due', ['cc:presence:rooms'], ['100'])));
  },
  async presence_list() {
    const [r] = await roomsAway(1);
    assert.deepEqual(await run('presence_list', [rk(r, 'conns')], ['100']), []);
  },
  async doc_init() {
    const [r] = await roomsAway(1);
    assert.equal(await run('doc_init', [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'commits')], ['0', '', '0', '0']), 1);
  },
  async doc_commit() {
    const [r] = await roomsAway(1);
    await run('doc_init', [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'commits')], ['0', '', '0', '0']);
    const keys = [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'events'), rk(r, 'members'), rk(r, 'commits'),
      rk(r, 'foldfail')];
    const a = await run('doc_commit', keys, ['0', '', '0', '0', '5', '5', '0', '1000000', '',
      '{"u":7,"s":"s1","ops":["hello"', ']}', '{"ops":["hello"', ']}', ',', '1000', HISTORY_BOUNDS, '7|1|d1|c1', '5000', '16777216', '1', '10000', '10000']);
    assert.equal(a[0], 1);
    assert.equal(a[1], 1);
    // the snapshot mark, in its own slot, right behind (lib/store_doc.c pipelines it)
    assert.equal(await c.send('ZADD', 'cc:snap:due', 'LT', String(Date.now() + 1000), r), 1);
    // the same request again: answered from the commits set
    const again = await run('doc_commit', keys, ['0', '', '0', '0', '5', '5', '0', '1000000', '',
      '{"u":7,"s":"s1","ops":["hello"', ']}', '{"ops":["hello"', ']}', ',', '1000', HISTORY_BOUNDS, '7|1|d1|c1', '5000', '16777216', '1', '10000', '10000']);
    assert.equal(again[0], 7);
    // 10,000 components before the final retain the script would write (the document is
    // longer than the span): refused, {10}, nothing written (what readers take: INTERNALS.md)
    const over = await run('doc_commit', keys, ['1', '', '2', '0', '1', '1', '0', '1000000', '',
      '{"u":7,"s":"s1","ops":[2,"x"', ']}', '{"ops":[2,"x"', ']}', ',', '1000', HISTORY_BOUNDS, '', '5000', '16777216', '10000', '10000', '10000']);
    assert.deepEqual(over, [10, 1, 10001]);
    assert.equal(await c.send('LLEN', rk(r, 'ops')), 1);
    // at the bound (ARGV 18 '0': every commit is at it): refused, {9} while the fold-failed
    // mark names an entry as it is stored, {8} (fold again) otherwise
    const bound = (member) => run('doc_commit', keys, ['1', '', '0', '0', '1', '1', '0', '1000000', '',
      '{"u":7,"s":"s1","ops":["!"', ']}', '{"ops":["!"', ']}', ',', '1000', HISTORY_BOUNDS, member, '0', '16777216', '1', '10000', '10000']);
    const entry = await c.send('LINDEX', rk(r, 'ops'), '-1');
    const digest = createHash('sha1').update(entry).digest('hex');
    assert.deepEqual(await bound('7|1|d2|c2'), [8, 1, 1]); // no mark
    assert.equal(await c.send('SET', rk(r, 'foldfail'), `1:${digest}`, 'PX', '60000'), 'OK');
    assert.deepEqual(await bound('7|1|d2|c2'), [9, 1, 1, 1]);
    assert.equal(await c.send('SET', rk(r, 'foldfail'), `1:${'0'.repeat(40)}`, 'PX', '60000'), 'OK');
    assert.deepEqual(await bound('7|1|d2|c2'), [8, 1, 1]); // the entry changed since
    assert.equal(await c.send('SET', rk(r, 'foldfail'), `0:${digest}`, 'PX', '60000'), 'OK');
    assert.deepEqual(await bound('7|1|d2|c2'), [8, 1, 1]); // below the list's first revision
    assert.equal(await c.send('SET', rk(r, 'foldfail'), `1:${digest}`, 'PX', '60000'), 'OK');
    assert.equal((await run('doc_fold_read', [rk(r, 'doc'), rk(r, 'ops')], []))[0], 1);
    assert.deepEqual(await run('doc_ops_range', [rk(r, 'doc'), rk(r, 'ops')], ['1', '1']),
      [1, ['{"u":7,"s":"s1","ops":["hello"]}']]);
    assert.equal(await run('doc_fold_store', [rk(r, 'doc'), rk(r, 'ops')], ['0', '1', 'hello', '5', '5', '0', '1000', '16777216']), 1);
    // an empty ops list: the mark (right a moment ago) names nothing stored
    assert.equal(await c.send('DEL', rk(r, 'ops')), 1);
    assert.deepEqual(await bound('7|1|d2|c2'), [8, 1, 0]);
    // the first request again, its entry gone from the list while the commits set still
    // has it: too old, with the revision it became
    assert.deepEqual(await bound('7|1|d1|c1'), [4, 1, 1]);
  },
  async doc_fold_read() { await cases.doc_commit(); },
  // the snapshotter's look at a room whose Redis may have lost writes, and the reset that
  // follows (lib/store_doc.c, check_saved and reset_doc)
  async doc_saved_check() {
    const [r] = await roomsAway(1);
    const keys = [rk(r, 'doc'), rk(r, 'ops')];
    assert.deepEqual(await run('doc_saved_check', keys, ['3']), [-1]);
    await run('doc_init', [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'commits')], ['0', '', '0', '0']);
    await c.send('HSET', rk(r, 'doc'), 'revision', '2');
    await c.send('RPUSH', rk(r, 'ops'), '{"u":7,"s":"","ops":["a"]}', '{"u":7,"s":"","ops":[1,"b"]}');
    // behind the saved revision 3: its own newest entry; past the saved 1: the entry of 1
    assert.deepEqual(await run('doc_saved_check', keys, ['3']), [2, 2, '{"u":7,"s":"","ops":[1,"b"]}']);
    assert.deepEqual(await run('doc_saved_check', keys, ['1']), [2, 1, '{"u":7,"s":"","ops":["a"]}']);
    assert.deepEqual(await run('doc_saved_check', keys, ['0']), [2, 0, null]);
  },
  async doc_reset() {
    const [r] = await roomsAway(1);
    await run('doc_init', [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'commits')], ['4', 'abcd', '4', '4']);
    await c.send('RPUSH', rk(r, 'ops'), '{"u":7,"s":"","ops":[4]}');
    const keys = [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'commits'), rk(r, 'events')];
    const data = '{"reason":"document_restored","revision":9,"saved_revision":8,"text":"live"}';
    assert.equal(await run('doc_reset', keys, ['3', '9', 'xyz', '3', '3', data, HISTORY_BOUNDS]), 0); // moved on
    assert.equal(await run('doc_reset', keys, ['4', '9', 'xyz', '3', '3', data, HISTORY_BOUNDS]), 1);
    assert.deepEqual(await c.send('HMGET', rk(r, 'doc'), 'revision', 'crev', 'content'), ['9', '9', 'xyz']);
    assert.equal(await c.send('EXISTS', rk(r, 'ops')), 0);
    assert.deepEqual(await history(r), [{ type: 'resync', data: JSON.parse(data) }]);
  },
  async doc_fold_store() { await cases.doc_commit(); },
  async doc_unload() {
    const [r] = await roomsAway(1);
    await run('doc_init', [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'commits')], ['4', 'abcd', '4', '4']);
    await c.send('RPUSH', rk(r, 'ops'), '{"u":7,"s":"","ops":[4]}');
    await c.send('ZADD', rk(r, 'commits'), '4', '7|3|d|c');
    for (const n of [1, 2, 3]) await c.send('XADD', rk(r, 'events'), '*', 'type', 'operation', 'data', `{"n":${n}}`);
    const keys = [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'commits'), rk(r, 'conns'), rk(r, 'foldfail'), rk(r, 'events')];
    const now = Date.now();
    assert.equal(await run('doc_unload', keys, ['4', '60000']), 3); // loaded just now
    await c.send('HDEL', rk(r, 'doc'), 'loaded'); // (as a document loaded long ago)
    assert.equal(await run('doc_unload', keys, ['3', '60000']), 0); // moved on
    await c.send('ZADD', rk(r, 'conns'), String(now + 60000), 'B|7|ann');
    assert.equal(await run('doc_unload', keys, ['4', '60000']), 2); // a stream is open
    assert.equal(await c.send('EXISTS', rk(r, 'doc')), 1);
    await c.send('ZADD', rk(r, 'conns'), String(now - 1000), 'B|7|ann'); // expired
    assert.equal(await run('doc_unload', keys, ['4', '60000']), 1);
    for (const k of ['doc', 'ops']) assert.equal(await c.send('EXISTS', rk(r, k)), 0, k);
    const ttl = await c.send('PTTL', rk(r, 'commits')); // the commits set outlives it a while
    assert.ok(ttl > 0 && ttl <= 60000, String(ttl));
    assert.deepEqual((await history(r)).map((e) => e.data), [{ n: 3 }]); // the newest entry only
    // the restore keeps what names revisions up to its own, and the set lives on again
    await c.send('ZADD', rk(r, 'commits'), '9', '7|8|d|later');
    assert.equal(await run('doc_init', [rk(r, 'doc'), rk(r, 'ops'), rk(r, 'commits')], ['4', 'abcd', '4', '4']), 1);
    assert.deepEqual(await c.send('ZRANGE', rk(r, 'commits'), '0', '-1'), ['7|3|d|c']);
    assert.equal(await c.send('PTTL', rk(r, 'commits')), -1);
  },
  async doc_ops_range() { await cases.doc_commit(); },
  async events_emit() {
    const [r] = await roomsAway(1);
    // the channel is not among the KEYS (docs/INTERNALS.md, "A slot migrated live"): the
    // script names it from the history key, so it must be the room's own channel, in the
    // room's slot, published at the node that serves the room
    assert.equal(c.slotOf(rk(r)), c.slotOf(rk(r, 'events')));
    const sub = new Redis(await c.portOf(rk(r)));
    await sub.connect();
    try {
      assert.deepEqual(await sub.cmd('SSUBSCRIBE', rk(r)), ['ssubscribe', rk(r), 1]);
      const id = await run('events_emit', [rk(r, 'events')], ['room', '{"reason":"updated"}', HISTORY_BOUNDS]);
      assert.match(id, /^\d+-\d+$/);
      // the message was sent before this PING's answer, so it is the next reply read
      assert.deepEqual(await sub.cmd('PING'),
        ['smessage', rk(r), `{"type":"room","id":"${id}","data":{"reason":"updated"}}`]);
      // the next names the entry before it, so a subscriber can tell it missed one
      const id2 = await run('events_emit', [rk(r, 'events')], ['room', '{"reason":"invite"}', HISTORY_BOUNDS]);
      assert.deepEqual(await sub.cmd('PING'), ['pong', '']); // the answer to the first PING
      assert.deepEqual(await sub.cmd('PING'),
        ['smessage', rk(r), `{"type":"room","id":"${id2}","prev":"${id}","data":{"reason":"invite"}}`]);
    } finally {
      sub.close();
    }
  },
  async ratelimit_check() {
    assert.deepEqual(await run('ratelimit_check', ['cc:rl:exec:7'], [String(Date.now()), '60000', '2', 'm1', '1']), [1, 0]);
  },
  async ratelimit_record() {
    assert.equal(await run('ratelimit_record', ['cc:rl:login:user:ann'], [String(Date.now()), '60000', 'm1']), 1);
  },
  async room_visibility() {
    const [r] = await roomsAway(1);
    assert.equal(await run('room_visibility', [rk(r, 'visibility')], ['public']), 1);
    assert.equal(await run('room_visibility', [rk(r, 'visibility')], ['public']), 0);
  },
  // the queue, end to end (once: the queue is one for the whole cluster): create, a
  // worker's registration (dispatch), running, finished, a cancel, every event carried to
  // rooms of other nodes by the drain, once
  job_create() { queueFlow ??= queueCase(); return queueFlow; },
  job_workers() { return cases.job_create(); },
  job_change() { return cases.job_create(); },
  job_cancel() { return cases.job_create(); },
  outbox_apply() { return cases.job_create(); },
  // a room deleted with a job queued in its line and one in flight: both cancelled, the room
  // out of the scheduler, and their outbox entries (the queued events) dropped in the room
  async job_room_drop() {
    await queueFlow; // not while the end-to-end case above uses the queue
    const [a] = await roomsAway(1);
    const tag = `${process.pid}x${roomSeq}`;
    const j1 = `jd1x${tag}`, j2 = `jd2x${tag}`;
    assert.deepEqual(await run('job_create', [`cc:{jobs}:job:${j1}`], createArgs(j1, a)), [1, 0]);
    assert.deepEqual(await run('job_create', [`cc:{jobs}:job:${j2}`], createArgs(j2, a)), [1, 1]);
    await c.send('HSET', 'cc:{jobs}:fair:inflight', j1, a); // as a dispatch leaves it
    await c.send('HINCRBY', 'cc:{jobs}:fair:running', a, 1);
    await c.send('LREM', `cc:{jobs}:fair:room:${a}`, 1, j1);
    await c.send('SET', rk(a, 'deleted'), '1', 'EX', '60');
    assert.equal(await run('job_room_drop', [`cc:{jobs}:fair:room:${a}`],
      [a, 'the room was deleted', '1', '100000', '10']), 2);
    for (const j of [j1, j2]) assert.equal(await c.send('HGET', `cc:{jobs}:job:${j}`, 'status'), 'cancelled');
    assert.equal(await c.send('EXISTS', `cc:{jobs}:fair:room:${a}`), 0);
    assert.equal(await c.send('ZSCORE', 'cc:{jobs}:fair:rooms', a), null);
    assert.equal(await c.send('HGET', 'cc:{jobs}:fair:running', a), null);
    assert.equal(await c.send('HGET', 'cc:{jobs}:fair:inflight', j1), null);
    assert.ok(await drain() > 0);
    assert.deepEqual(await c.send('EXISTS', rk(a, 'events'), rk(a, 'runs'), rk(a, 'outbox')), 0);
  },
  // a heartbeat touches only the entries still pending with its own consumer
  async queue_touch() {
    // a group of its own, so the end-to-end case's entries are not in its way
    const group = `touch${process.pid}`;
    await c.send('XGROUP', 'CREATE', 'cc:{jobs}:stream', group, '$', 'MKSTREAM');
    const id = await c.send('XADD', 'cc:{jobs}:stream', '*', 'job', `jt${process.pid}`);
    await c.send('XREADGROUP', 'GROUP', group, 'wt1', 'COUNT', '1', 'STREAMS', 'cc:{jobs}:stream', '>');
    assert.equal(await run('queue_touch', ['cc:{jobs}:stream'], [group, 'wt2', id]), 0);
    assert.equal(await run('queue_touch', ['cc:{jobs}:stream'], [group, 'wt1', id, '0-1']), 1);
    const [[, owner]] = await c.send('XPENDING', 'cc:{jobs}:stream', group, id, id, 1);
    assert.equal(owner, 'wt1');
    await c.send('XGROUP', 'DESTROY', 'cc:{jobs}:stream', group);
  },
  // names out of the consumer group: one with nothing pending goes, one with an entry stays
  async queue_forget() {
    const group = `forget${process.pid}`;
    await c.send('XGROUP', 'CREATE', 'cc:{jobs}:stream', group, '$', 'MKSTREAM');
    const id = await c.send('XADD', 'cc:{jobs}:stream', '*', 'job', `jf${process.pid}`);
    await c.send('XREADGROUP', 'GROUP', group, 'wf1', 'COUNT', '1', 'STREAMS', 'cc:{jobs}:stream', '>');
    await c.send('XGROUP', 'CREATECONSUMER', 'cc:{jobs}:stream', group, 'wf2');
    assert.equal(await run('queue_forget', ['cc:{jobs}:stream'], [group, 'wf1', 'wf2']), 1);
    const names = (await c.send('XINFO', 'CONSUMERS', 'cc:{jobs}:stream', group)).map((x) => x[x.indexOf('name') + 1]);
    assert.deepEqual(names, ['wf1']);
    const [[, owner]] = await c.send('XPENDING', 'cc:{jobs}:stream', group, id, id, 1);
    assert.equal(owner, 'wf1');
    await c.send('XGROUP', 'DESTROY', 'cc:{jobs}:stream', group);
  },
  // a request id's mark and its job, as job_create leaves them: a repeat, another request
  // under the id, an id that names nothing
  async job_repeat() {
    const [a] = await roomsAway(1);
    const id = `jr${process.pid}x${roomSeq}`;
    const claim = `cc:{jobs}:request:${a}:7:rid-1`;
    await c.send('HSET', `cc:{jobs}:job:${id}`, 'status', 'queued', 'language', 'bash', 'version', '5');
    await c.send('EXPIRE', `cc:{jobs}:job:${id}`, TTL);
    await c.send('SET', claim, `d1:${id}`, 'EX', '600');
    assert.deepEqual(await run('job_repeat', [claim], ['d1']), [2, id, 'queued', 'bash', '5']);
    assert.equal(await c.send('HGET', `cc:{jobs}:job:${id}`, 'repeats'), '1');
    assert.deepEqual(await run('job_repeat', [claim], ['d2']), [0, 'reused', 0, id]);
    assert.deepEqual(await run('job_repeat', [`cc:{jobs}:request:${a}:7:rid-2`], ['d1']), [1]);
  },
};
let queueFlow;

async function queueCase() {
  const [a, b] = await roomsAway(2);
  await c.send('XGROUP', 'CREATE', 'cc:{jobs}:stream', 'workers', '$', 'MKSTREAM').catch(() => {});
  const tag = `${process.pid}x${roomSeq}`;
  const j1 = `j1x${tag}`, j2 = `j2x${tag}`, j3 = `j3x${tag}`, j4 = `j4x${tag}`;
  assert.deepEqual(await run('job_create', [`cc:{jobs}:job:${j1}`], createArgs(j1, a)), [1, 0]);
  // a run made against its user's run-right mark (none yet: '='), and one against a mark
  // that is not the user's: refused, nothing written
  assert.deepEqual(await run('job_create', [`cc:{jobs}:job:${j2}`], createArgs(j2, a, 'execution', '=')), [1, 1]);
  assert.deepEqual(await run('job_create', [`cc:{jobs}:job:${j4}`], createArgs(j4, a, 'execution', '=stale')),
    [0, 'right', 0]);
  assert.equal(await c.send('EXISTS', `cc:{jobs}:job:${j4}`), 0);
  assert.deepEqual(await run('job_create', [`cc:{jobs}:job:${j3}`], createArgs(j3, b, 'ai')), [1, 0]);
  assert.equal(await run('job_workers', ['cc:{jobs}:fair:workers'], ['w1', '1', '5000', '0', '100000', '10']), 1);
  const [[, [[entry, fields]]]] = await c.send('XREADGROUP', 'GROUP', 'workers', 'w1', 'COUNT', '1', 'STREAMS', 'cc:{jobs}:stream', '>');
  const picked = fields[1];
  assert.ok([j1, j3].includes(picked), `dispatched ${picked}`);
  await c.send('HINCRBY', `cc:{jobs}:job:${picked}`, 'attempts', 1);
  const pr = picked === j1 ? a : b, kind = picked === j1 ? 'execution' : 'ai';
  const change = (status, from, data, extra = []) => run('job_change', [`cc:{jobs}:job:${picked}`, 'cc:{jobs}:stream'],
    ['1', from, status, kind, JSON.stringify(data), pr, '', 'workers', picked, '100000', '10', String(2 << 20), ...extra]);
  assert.deepEqual(await change('running', ' queued running ', { job_id: picked, status: 'running' }), [1, 'running']);
  assert.deepEqual(await change('finished', ' queued running ', { job_id: picked, status: 'finished', result: {} },
    ['result', '{}']), [1, 'finished']);
  await c.send('XACK', 'cc:{jobs}:stream', 'workers', entry);
  assert.deepEqual(await run('job_cancel', [`cc:{jobs}:job:${j2}`], ['execution',
    JSON.stringify({ job_id: j2, status: 'cancelled', error: 'cancelled by ann' }), a, j2, 'cancelled by ann',
    String(Math.floor(Date.now() / 1000)), '100000', '10']), [1, 'queued']);
  assert.ok(await drain() > 0);
  assert.equal(await drain(), 0);
  const ha = await history(a);
  const st = (h, id) => h.filter((e) => e.data.job_id === id).map((e) => e.data.status);
  assert.equal(st(ha, j2).at(-1), 'cancelled');
  assert.equal(st(ha, j2).filter((s) => s === 'cancelled').length, 1);
  const hp = await history(pr);
  assert.deepEqual(st(hp, picked).filter((s) => s !== 'queued'), ['running', 'finished']);
  assert.equal(st(hp, picked)[0], 'queued');
  assert.deepEqual((await c.send('LRANGE', rk(a, 'runs'), 0, -1)).sort(), [j1, j2].sort());
  assert.deepEqual(ha.at(0).data.user, { id: 7, username: 'ann' });
}

for (const name of [...S.keys()].sort()) {
  test(`${name} runs on a Redis Cluster without crossing slots`, async () => {
    assert.ok(cases[name], `no case for ${name} in this test: add one`);
    await cases[name]();
  });
}

test('the cluster refuses what crosses slots (so the cases above prove something)', async () => {
  const [a, b] = await roomsAway(2);
  await assert.rejects(run('doc_init', [rk(a, 'doc'), rk(a, 'ops'), 'cc:{jobs}:outbox'], ['0', '', '0', '0']),
    /CROSSSLOT|same slot|non local key/);
  await assert.rejects(c.send('EVAL', "return redis.call('GET', KEYS[1]) or redis.call('GET', 'cc:snap:due')", 1, rk(b, 'doc')),
    /same slot|non local key|WRONGTYPE/);
});
