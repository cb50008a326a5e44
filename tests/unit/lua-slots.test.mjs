// Redis Cluster: no script may touch keys of two slots (docs/INTERNALS.md, "Redis Cluster:
// one slot per script"). Read from the sources, so a new script or key cannot slip by:
// every script of lib/lua/ declares its KEYS on a `--! keys NAME …` line (names of
// lib/rkeys.def, in KEYS order; `A|B`: either key; `NAME*`: one or more of it), and
//   - every key it names itself (K_NAME(...), also in the libraries it uses) carries a fixed
//     hash tag ({jobs}): a script cannot show that an argument names the room of its KEYS,
//     so a room's keys come in KEYS only;
//   - all its keys, declared and named, share one hash tag (the same fixed text, or the same
//     placeholder, which the caller fills with one value per call; lib/rds.c refuses a call
//     whose KEYS hash to two slots), unless it touches exactly one key;
//   - it reads no KEYS[n] beyond those it declares;
//   - a channel (a name of lib/rkeys.def ending in _CHANNEL) is never declared (Redis would
//     count it as a key that is missing while the slot migrates, and refuse the call); a
//     script names it itself (_emit.lua: from the hash tag of the history key), and it must
//     share the hash tag of the script's keys, so it is published in their slot.
// tests/programs/cluster-scripts.test.mjs then runs every script on a real cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LUA = `${ROOT}lib/lua/`;

const patterns = new Map();
for (const line of readFileSync(`${ROOT}lib/rkeys.def`, 'utf8').split('\n')) {
  const m = /^RK\((\w+), "([^"]*)"\)/.exec(line);
  if (m) patterns.set(m[1], m[2]);
}

// The hash tag of a pattern: {fixed: 'jobs'}, {placeholder: '<room>'}, or null (no tag:
// the whole name is hashed).
export function tagOf(pattern) {
  const o = pattern.indexOf('{');
  const c = o < 0 ? -1 : pattern.indexOf('}', o + 1);
  if (o < 0 || c < 0 || c === o + 1) return null;
  const t = pattern.slice(o + 1, c);
  return /^<[a-z]+>$/.test(t) ? { placeholder: t } : (/[<>]/.test(t) ? { mixed: t } : { fixed: t });
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const isChannel = (name) => name.endsWith('_CHANNEL');

const code = (text) => text.split('\n').filter((l) => !/^\s*--/.test(l)).join('\n');

function scriptInfo(name) {
  const src = readFileSync(`${LUA}${name}.lua`, 'utf8');
  const uses = (/^--! use (.*)$/m.exec(src)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const body = [...uses.map((u) => readFileSync(`${LUA}_${u}.lua`, 'utf8')), src].map(code).join('\n');
  const decl = /^--! keys (.*)$/m.exec(src)?.[1].trim().split(/\s+/) ?? null;
  const named = [...new Set([...body.matchAll(/K_([A-Z0-9_]+)\(/g)].map((m) => m[1]))];
  const maxKey = Math.max(0, ...[...body.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])));
  const dynamicKeys = /KEYS\[[^\]\d]/.test(body);
  return { src, decl, named, maxKey, dynamicKeys };
}

// Every combination of alternatives: [[{name, many}], …]
function combos(decl) {
  let out = [[]];
  for (const d of decl) {
    const many = d.endsWith('*');
    const alts = (many ? d.slice(0, -1) : d).split('|');
    out = out.flatMap((c) => alts.map((a) => [...c, { name: a, many }]));
  }
  return out;
}

// Problems of one script, as sentences; [] when it stays in one slot.
export function problems(name, info = scriptInfo(name)) {
  const out = [];
  if (!info.decl) return [`${name}: no "--! keys" line`];
  for (const d of info.decl) {
    for (const a of d.replace(/\*$/, '').split('|')) {
      if (!patterns.has(a)) out.push(`${name}: declares ${a}, which lib/rkeys.def lacks`);
      else if (isChannel(a)) out.push(`${name}: declares the channel ${a} among its KEYS`);
    }
  }
  for (const k of info.named) {
    if (!patterns.has(k)) out.push(`${name}: calls K_${k}, which lib/rkeys.def lacks`);
    else if (!isChannel(k) && !tagOf(patterns.get(k))?.fixed) {
      out.push(`${name}: names ${patterns.get(k)} itself; a key without a fixed hash tag must come in KEYS`);
    }
  }
  if (out.length) return out;
  const many = info.decl.some((d) => d.endsWith('*'));
  if (!many && info.maxKey > info.decl.length) {
    out.push(`${name}: reads KEYS[${info.maxKey}] but declares ${info.decl.length}`);
  }
  if (info.dynamicKeys && !many) out.push(`${name}: indexes KEYS by a variable but declares no NAME*`);
  for (const c of combos(info.decl)) {
    const keys = [...c, ...info.named.map((n) => ({ name: n, many: false }))];
    if (keys.length === 1 && !keys[0].many) continue;
    const tags = keys.map((k) => tagOf(patterns.get(k.name)));
    const label = keys.map((k) => `${patterns.get(k.name)}${k.many ? '*' : ''}`).join(', ');
    if (tags.some((t) => !t || t.mixed)) {
      out.push(`${name}: ${label}: a key without a hash tag among several keys`);
    } else if (!tags.every((t) => same(t, tags[0]))) {
      out.push(`${name}: ${label}: hash tags differ (two slots)`);
    } else if (keys.some((k) => k.many) && tags[0].placeholder) {
      out.push(`${name}: ${label}: several keys of one kind, each its own ${tags[0].placeholder}`);
    }
  }
  return out;
}

const names = readdirSync(LUA).filter((f) => f.endsWith('.lua') && !f.startsWith('_'))
  .map((f) => f.slice(0, -4)).sort();

test('every script of lib/lua/ stays in one slot', () => {
  assert.ok(names.length >= 20, `found only ${names.length} scripts`);
  const all = names.flatMap((n) => problems(n));
  assert.deepEqual(all, []);
});

test('the check itself: scripts that would cross slots are caught', () => {
  const base = { named: [], maxKey: 1, dynamicKeys: false };
  assert.deepEqual(problems('a', { ...base, decl: ['ROOM_DOC'], named: ['ROOM_OPS'] }),
    ['a: names cc:room:{<room>}:ops itself; a key without a fixed hash tag must come in KEYS']);
  assert.match(problems('b', { ...base, decl: ['ROOM_DOC', 'JOBS'], maxKey: 2 })[0], /hash tags differ/);
  assert.match(problems('c', { ...base, decl: ['JOB'], named: ['SNAP_DUE'] })[0], /must come in KEYS/);
  assert.match(problems('d', { ...base, decl: ['ROOM_MEMBERS', 'SESSION_REVOKED*'], maxKey: 3 })[0], /without a hash tag/);
  assert.match(problems('e', { ...base, decl: ['ROOM_DOC', 'ROOM_OPS'], maxKey: 3 })[0], /reads KEYS\[3\]/);
  assert.match(problems('f', { ...base, decl: ['RL_USER', 'ROOM_DOC'], maxKey: 2 })[0], /without a hash tag/);
  assert.match(problems('g', { ...base, decl: null })[0], /no "--! keys" line/);
  assert.match(problems('h', { ...base, decl: ['NOPE'] })[0], /lacks/);
  assert.match(problems('i', { ...base, decl: ['ROOM_DOC*'] })[0], /each its own <room>/);
  assert.deepEqual(problems('j', { ...base, decl: ['RL_USER|RL_LOGIN_ADDR'] }), []);
  assert.deepEqual(problems('k', { ...base, decl: ['JOB', 'JOBS'], named: ['FAIR_ROOMS'], maxKey: 2 }), []);
  assert.deepEqual(problems('l', { ...base, decl: ['ROOM_DOC', 'ROOM_OPS'], maxKey: 2 }), []);
  // a room's channel: named by the script, in the room's slot, never declared
  assert.deepEqual(problems('m', { ...base, decl: ['ROOM_EVENTS'], named: ['ROOM_CHANNEL'] }), []);
  assert.match(problems('n', { ...base, decl: ['ROOM_EVENTS', 'ROOM_CHANNEL'], maxKey: 2 })[0], /declares the channel/);
  assert.match(problems('o', { ...base, decl: ['JOB'], named: ['ROOM_CHANNEL'] })[0], /hash tags differ/);
  assert.match(problems('p', { ...base, decl: ['JOB'], named: ['ACCESS_CHANNEL'] })[0], /without a hash tag/);
});
