// What idle rooms hold in Redis, what taking them out frees, and what bringing one back costs
// (ROOM_UNLOAD_IDLE_S; docs/INTERNALS.md, "Idle rooms"). Runs on a stack whose snapshotter
// unloads rooms idle for a few seconds (bench/run.sh's "idle" part starts one with
// ROOM_UNLOAD_IDLE_S=5 and SNAPSHOT_SWEEP_MS=1000): ROOMS rooms are typed in, OPS operations
// each (one short line, sent with a client_id as the browser sends its edits), then it prints
// Redis's used_memory and one room's keys (MEMORY USAGE) while the rooms are loaded, the same
// once the snapshotter took them all out, again once their commits sets expired (one
// ROOM_UNLOAD_IDLE_S later), and the time of each room's first read afterwards
// (restored from PostgreSQL) against its second (from Redis).
// Needs BASE_URL and REDIS_URL (scripts/stack.sh exports both).
//   BENCH_IDLE_ROOMS (default 20), BENCH_IDLE_OPS (default 1000)
import { execFileSync } from 'node:child_process';
import { BASE, newRoom, newUser, now, pct, send, sleep, ms } from './lib.mjs';

const ROOMS = Number(process.env.BENCH_IDLE_ROOMS || 20);
const OPS = Number(process.env.BENCH_IDLE_OPS || 1000);
const url = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
const where = url.protocol === 'unix:' ? ['-s', url.pathname] : ['-h', url.hostname, '-p', url.port || '6379'];
const rcli = (...args) => execFileSync('redis-cli', [...where, ...args], { encoding: 'utf8' }).trim();
const usedMemory = () => Number(/^used_memory:(\d+)/m.exec(rcli('INFO', 'memory'))[1]);
const key = (room, what) => `cc:room:{${room}}:${what}`;
const KINDS = ['doc', 'ops', 'commits', 'events'];
const usage = (room) => Object.fromEntries(KINDS.map((k) => [k, Number(rcli('MEMORY', 'USAGE', key(room, k), 'SAMPLES', '0')) || 0]));
const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
const mib = (b) => `${(b / 1048576).toFixed(2)} MiB`;

async function request(method, path, token, body) {
  const r = await send(method, BASE + path, {
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 200)}`);
  return JSON.parse(r.text);
}

const user = await newUser('idle');
const rooms = [];
for (let i = 0; i < ROOMS; i++) rooms.push((await newRoom(user.token)).id);
const t0 = now();
// all rooms typed in together, four requests at a time, so that every room's last commit
// comes at the end and none is idle before the loaded figures are read
for (let rev = 0; rev < OPS; rev++) {
  for (let i = 0; i < ROOMS; i += 4) {
    await Promise.all(rooms.slice(i, i + 4).map((room) => request('POST', `/api/rooms/${room}/operations`, user.token,
      { revision: rev, ops: [`x${rev} = ${rev}\n`], client_id: `bench-${room}` })));
  }
}
console.log(`idle rooms: ${ROOMS} rooms x ${OPS} operations committed in ${((now() - t0) / 1000).toFixed(1)} s`);
const loadedMem = usedMemory();
const one = usage(rooms[0]);
if (!one.doc) throw new Error('the first room was taken out before it was measured: start the stack with a longer ROOM_UNLOAD_IDLE_S');
console.log(`  loaded: Redis used_memory ${mib(loadedMem)}; one room's keys: ${KINDS.map((k) => `${k} ${kib(one[k])}`).join(', ')}`);

const t1 = now();
const left = () => rooms.filter((r) => rcli('EXISTS', key(r, 'doc')) === '1').length;
while (left() > 0) {
  if (now() - t1 > 180000) throw new Error(`${left()} of ${ROOMS} rooms still in Redis after 180 s`);
  await sleep(500);
}
const outMem = usedMemory();
const after = usage(rooms[0]);
console.log(`  all ${ROOMS} taken out ${((now() - t1) / 1000).toFixed(1)} s after the last commit: used_memory ${mib(outMem)} ` +
  `(${mib(loadedMem - outMem)} less, ${kib((loadedMem - outMem) / ROOMS)} a room); one room's keys: ${KINDS.map((k) => `${k} ${kib(after[k])}`).join(', ')}`);
// the commits sets go one ROOM_UNLOAD_IDLE_S later (their expiry)
const t2 = now();
while (rooms.some((r) => rcli('EXISTS', key(r, 'commits')) === '1')) {
  if (now() - t2 > 180000) throw new Error('commits sets still in Redis after 180 s');
  await sleep(500);
}
const goneMem = usedMemory();
console.log(`  their commits sets expired ${((now() - t2) / 1000).toFixed(1)} s later: used_memory ${mib(goneMem)} ` +
  `(${mib(loadedMem - goneMem)} less than loaded, ${kib((loadedMem - goneMem) / ROOMS)} a room)`);

// each room read twice: restored from PostgreSQL, then from Redis
const first = [], second = [];
for (const room of rooms) {
  let t = now();
  const a = await request('GET', `/api/rooms/${room}/document`, user.token);
  first.push(now() - t);
  t = now();
  const b = await request('GET', `/api/rooms/${room}/document`, user.token);
  second.push(now() - t);
  if (a.revision !== OPS || b.revision !== OPS || a.content !== b.content) throw new Error(`room ${room}: read back at ${a.revision}/${b.revision}`);
}
first.sort((x, y) => x - y);
second.sort((x, y) => x - y);
console.log(`  GET /document of a room taken out (restore, ${OPS} lines): p50 ${ms(pct(first, 50))} ms, max ${ms(first.at(-1))} ms; ` +
  `the next read: p50 ${ms(pct(second, 50))} ms, max ${ms(second.at(-1))} ms; used_memory now ${mib(usedMemory())}`);
