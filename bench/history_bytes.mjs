// Bytes of history stored in PostgreSQL for typing in a 100 KB file, driven faster than
// real time: a typist at 5 characters a second, saved every SNAPSHOT_INTERVAL_MS = 2 s of
// typing, is 10 one-character inserts per save. The script commits 10 inserts (a line being
// typed in the middle of the file), waits until the snapshotter saved that revision
// (GET /history), and repeats; the stack runs with a short SNAPSHOT_INTERVAL_MS so each
// "2 s" takes a few hundred milliseconds. Prints the bytes PostgreSQL holds for the room
// (pg_column_size of its rows: after TOAST compression, without indexes) and the bytes of
// text, for the simulated time and scaled to one hour. Needs BASE_URL and DATABASE_URL.
//   BENCH_HISTORY_SAVES (default 300 = 10 simulated minutes; 1800 = one hour)
import { execFileSync } from 'node:child_process';

const BASE = process.env.BASE_URL;
const SAVES = Number(process.env.BENCH_HISTORY_SAVES || 300);
const PER_SAVE = 10;

async function call(method, path, token, body) {
  const res = await fetch(BASE + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json().catch(() => null) };
}
const sql = (q) => execFileSync('psql', [process.env.DATABASE_URL, '-XAtqc', q], { encoding: 'utf8' }).trim();

// 100 KB of code-like text that compresses about as well as code does (not one repeated
// character, which TOAST would shrink to nothing).
function codeLike(bytes) {
  const words = ['def', 'return', 'self', 'value', 'index', 'for', 'in', 'range', 'if', 'else', 'print', 'items', 'result', 'None', 'True', 'len', 'append', 'count'];
  let seed = 12345, out = '';
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  while (out.length < bytes) {
    let line = '    '.repeat(rnd(3));
    const n = 3 + rnd(6);
    for (let i = 0; i < n; i++) line += words[rnd(words.length)] + (rnd(4) ? ' ' : `(${rnd(1000)}) `);
    out += line.trimEnd() + '\n';
  }
  return out.slice(0, bytes);
}

const name = 'hist' + Math.random().toString(36).slice(2, 10);
const token = (await call('POST', '/api/auth/register', undefined, { username: name, password: 'bench-password' })).json.token;
const room = (await call('POST', '/api/rooms', token, { name: 'history', language: 'python' })).json.room.id;
const text = codeLike(100 * 1024);
let rev = (await call('POST', `/api/rooms/${room}/operations`, token, { revision: 0, ops: [text] })).json.revision;
let pos = Math.floor(text.length / 2);
const typed = 'value = count(index) + 1\n';
const t0 = Date.now();
for (let s = 0; s < SAVES; s++) {
  for (let i = 0; i < PER_SAVE; i++) {
    const ch = typed[(s * PER_SAVE + i) % typed.length];
    const r = await call('POST', `/api/rooms/${room}/operations`, token, { revision: rev, ops: [pos, ch] });
    if (r.status !== 200) throw new Error(`commit: ${r.status} ${JSON.stringify(r.json)}`);
    rev = r.json.revision;
    pos++;
  }
  for (;;) {
    const h = await call('GET', `/api/rooms/${room}/history`, token);
    if (h.json.snapshots.length && h.json.snapshots[0].revision === rev) break;
    await new Promise((res) => setTimeout(res, 20));
  }
}
const secs = (Date.now() - t0) / 1000;
const hasOps = sql("SELECT to_regclass('history_ops') IS NOT NULL") === 't';
const q = (table, col) => sql(`SELECT coalesce(sum(pg_column_size(t.*)), 0) || ' ' || coalesce(sum(octet_length(${col})), 0) || ' ' || count(*) FROM ${table} t WHERE room_id = '${room}'`).split(' ').map(Number);
const [snapStored, snapText, snapRows] = q('snapshots', 'content');
const [opsStored, opsText, opsRows] = hasOps ? q('history_ops', 'ops') : [0, 0, 0];
const stored = snapStored + opsStored, minutes = (SAVES * 2) / 60;
const mb = (b) => (b / 1e6).toFixed(2) + ' MB';
console.log(`history of typing in a 100 KB file: ${SAVES * PER_SAVE} one-character inserts, ${SAVES} saves = ${minutes.toFixed(0)} simulated minutes (driven in ${secs.toFixed(0)} s)`);
console.log(`  checkpoints (full text): ${snapRows} rows, ${mb(snapStored)} stored (${mb(snapText)} of text)`);
console.log(`  typed operations:        ${opsRows} rows, ${mb(opsStored)} stored (${mb(opsText)} of JSON)`);
console.log(`  in all: ${mb(stored)}; scaled to one hour of typing: ${mb((stored * 60) / minutes)}`);
