// The snapshotter (`codecollab-snapshotter`, snapshotter/main.c) when its stores fail in the
// middle of a pass. It runs against a scripted Redis double (RESP2 over TCP) that records
// every command, so a failure can be placed exactly, and a PostgreSQL that is not there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, start, stop, sleep, waitFor, freePort } from '../lib/procs.mjs';
import { firstCommand } from '../lib/resp.mjs';

const SNAP_BIN = process.env.CC_SNAP_BIN || join(ROOT, 'build/asan/bin/codecollab-snapshotter');

const bulk = (s) => (s === null ? '$-1\r\n' : `$${Buffer.byteLength(s)}\r\n${s}\r\n`);
const array = (items) => `*${items.length}\r\n${items.map(bulk).join('')}`;
// The snapshotter claims a room with a script on the schedule (lib/lua/snap_claim.lua:
// EVALSHA sha 1 cc:snap:due room bound lease-end, answered with the lease's end) and ends
// the lease with another (snap_release.lua: EVALSHA sha 1 cc:snap:due room lease-end). It
// reads a room's text with one script (lib/lua/doc_fold_read.lua): the double answers it as
// Redis would for a document folded at revision rev, {1, rev, crev, content, {}}.
const isScript = (cmd) => cmd === 'EVALSHA' || cmd === 'EVAL';
const onSchedule = (args) => isScript(args[0].toUpperCase()) && args[3] === 'cc:snap:due';
const isClaim = (args) => onSchedule(args) && args.length === 7;
const isRelease = (args) => onSchedule(args) && args.length === 6;
const isRead = (args) => isScript(args[0].toUpperCase()) && !onSchedule(args);
const claimed = (args) => `:${args[6]}\r\n`; // the claim's answer: the lease's end
const claimsIn = (log) => log.filter((e) => isClaim(e.args));
const folded = (rev, content) => `*5\r\n:1\r\n:${rev}\r\n:${rev}\r\n${bulk(content)}*0\r\n`;

// Parses the complete commands (arrays of bulk strings) at the start of buf; bytes that are
// no command stop it there.
function parseCommands(buf) {
  const cmds = [];
  let pos = 0;
  for (;;) {
    let c;
    try {
      c = firstCommand(buf.subarray(pos));
    } catch {
      break;
    }
    if (!c) break;
    cmds.push(c.args);
    pos += c.end;
  }
  return { cmds, rest: buf.subarray(pos) };
}

// answer(args, conn) returns the reply text, or 'close' to drop the connection.
async function redisDouble(answer) {
  const log = [];
  let conns = 0;
  const server = createServer((sock) => {
    const conn = ++conns;
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      const { cmds, rest } = parseCommands(Buffer.concat([buf, d]));
      buf = rest;
      for (const args of cmds) {
        log.push({ conn, args, at: performance.now() });
        const r = answer(args, conn);
        if (r === 'close') { sock.destroy(); return; }
        sock.write(r);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, log, close: () => server.close() };
}

async function startSnapshotter(redisPort) {
  const pgPort = await freePort(); // nothing listens there
  const env = {
    ...process.env,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    DATABASE_URL: `postgresql://127.0.0.1:${pgPort}/none?connect_timeout=2`,
    SNAPSHOT_INTERVAL_MS: '2000',
  };
  return start(SNAP_BIN, [], { env });
}

test('snapshotter: Redis dropping the connection in the middle of a batch is survived', async () => {
  let passes = 0;
  const r = await redisDouble((args, conn) => {
    const cmd = args[0].toUpperCase();
    if (cmd === 'ZRANGEBYSCORE') return passes++ === 0 ? array(['room-a', 'room-b', 'room-c']) : '*0\r\n';
    if (isClaim(args)) return claimed(args);
    if (isRead(args)) return 'close'; // Redis goes away while a room is being saved
    return '+OK\r\n';
  });
  const snap = await startSnapshotter(r.port);
  try {
    await waitFor(() => passes >= 3, { what: 'passes after the failure', timeout: 15000 });
    assert.equal(snap.exitCode, null, `the snapshotter died:\n${snap.output}`);
    // the batch stopped at the failure: room-b and room-c were left due, not claimed on a
    // dropped connection
    assert.deepEqual(claimsIn(r.log).map((e) => e.args[4]), ['room-a']);
  } finally {
    const ex = await stop(snap);
    r.close();
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
});

test('snapshotter: a room whose snapshot PostgreSQL refused keeps its lease and is tried again', async () => {
  let passes = 0;
  const r = await redisDouble((args) => {
    const cmd = args[0].toUpperCase();
    if (cmd === 'ZRANGEBYSCORE') return passes++ === 0 ? array(['room-d']) : '*0\r\n';
    if (isClaim(args)) return claimed(args);
    if (isRelease(args)) return ':1\r\n';
    if (isRead(args)) return folded(7, 'print("unsaved")\n');
    if (cmd === 'ZADD') return ':1\r\n';
    return '+OK\r\n';
  });
  const snap = await startSnapshotter(r.port);
  try {
    const zadd = await waitFor(() => r.log.find((e) => e.args[0].toUpperCase() === 'ZADD'),
      { what: 'the room\'s lease brought forward', timeout: 15000 });
    // the lease stays (XX: only a room still on the schedule), brought forward to one
    // interval from now (LT: an earlier mark is kept)
    assert.deepEqual(zadd.args.slice(1, 4).map((a) => a.toUpperCase()), ['CC:SNAP:DUE', 'XX', 'LT']);
    assert.ok(Number(zadd.args[4]) > Date.now(), `a later due time: ${zadd.args[4]}`);
    assert.ok(Number(zadd.args[4]) < Number(claimsIn(r.log)[0].args[6]), 'before the lease ends');
    assert.equal(zadd.args[5], 'room-d');
    // and the failed save did not end the lease
    assert.equal(r.log.filter((e) => isRelease(e.args)).length, 0);
    assert.equal(snap.exitCode, null, `the snapshotter died:\n${snap.output}`);
  } finally {
    const ex = await stop(snap);
    r.close();
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
});

// Rooms that started changing together come due together: a pass that holds everything due
// spreads its saves over a quarter of SNAPSHOT_INTERVAL_MS (2 s here: 500 ms for 5 rooms,
// one every 100 ms) rather than queueing every commit behind them at once.
test('snapshotter: the saves of one pass are spread over a quarter of the interval', async () => {
  let passes = 0;
  const rooms = ['s-1', 's-2', 's-3', 's-4', 's-5'];
  const r = await redisDouble((args) => {
    const cmd = args[0].toUpperCase();
    if (cmd === 'ZRANGEBYSCORE') return passes++ === 0 ? array(rooms) : '*0\r\n';
    if (isClaim(args)) return claimed(args);
    if (isRelease(args)) return ':1\r\n';
    if (isRead(args)) return folded(3, 'x\n');
    if (cmd === 'ZADD') return ':1\r\n';
    return '+OK\r\n';
  });
  const snap = await startSnapshotter(r.port);
  try {
    const claims = await waitFor(() => {
      const z = claimsIn(r.log);
      return z.length === rooms.length && z;
    }, { what: 'every room of the pass claimed', timeout: 15000 });
    assert.deepEqual(claims.map((e) => e.args[4]), rooms);
    const gaps = claims.slice(1).map((e, i) => e.at - claims[i].at);
    const shown = `gaps between saves: ${gaps.map((x) => x.toFixed(0)).join(', ')} ms`;
    // four shares of 100 ms in all (this side's clock reads each claim when its bytes arrive,
    // so one gap may look shorter by what the next looks longer); never back to back
    assert.ok(claims.at(-1).at - claims[0].at >= 360, shown);
    for (const g of gaps) assert.ok(g >= 50, shown);
    assert.equal(snap.exitCode, null, `the snapshotter died:\n${snap.output}`);
  } finally {
    const ex = await stop(snap);
    r.close();
    assert.deepEqual(ex, { code: 0, signal: null }, snap.output);
  }
});
