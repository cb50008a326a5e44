// tests/lib/proctree.mjs: parseStat / procStat, and childPids built on them, against texts
// and real processes whose command name looks like the fields of /proc/PID/stat: a parser
// that stops at the first ')' or splits on spaces reads the wrong fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { childPids, isAlive, parseStat, procStat, shNamed } from '../lib/proctree.mjs';
import { waitFor } from '../lib/procs.mjs';

const comm = (pid) => readFileSync(`/proc/${pid}/comm`, 'latin1').trimEnd();

test('children of a pid, also when its name holds spaces and parentheses', async (t) => {
  // sh under a name that reads "state S, parent 1" to a parser that stops at the first ') ';
  // its group (the shell and its sleep) goes together at the end
  const name = 'x) S 1 (';
  const { sh } = await shNamed(t, name, ['-c', 'sleep 60 & wait']);
  assert.equal(comm(sh.pid), name);
  assert.ok(childPids(process.pid).includes(sh.pid), 'the shell is a child of this process');
  // the shell forks its sleep a moment after it starts
  const kids = await waitFor(() => { const k = childPids(sh.pid); return k.length > 0 && k; },
    { what: "the shell's sleep" });
  assert.equal(kids.length, 1, `children of the shell: ${kids}`);
  // the child is the shell's fork until it has run exec
  await waitFor(() => comm(kids[0]) === 'sleep', { what: `the shell's child ${kids[0]} to run sleep` });
  assert.ok(!childPids(process.pid).includes(kids[0]), 'a grandchild is not a child');
  assert.deepEqual(childPids(kids[0]), []);
});

// a stat line as the kernel writes it: pid, (comm), then 50 fields from state on
const statLine = (pid, comm, over = {}) => {
  const f = Array.from({ length: 50 }, (_, i) => String(i + 3)); // field k holds "k"
  f[0] = 'S';
  for (const [k, v] of Object.entries(over)) f[k - 3] = String(v);
  return `${pid} (${comm}) ${f.join(' ')}\n`;
};

test('parseStat: the fields after the last ") ", whatever the name holds', () => {
  for (const comm of ['sleep', 'a b', 'x) S 1 (', 'x) ', '((', ') ) )', 'end)']) {
    const s = parseStat(statLine(4321, comm, { 3: 'R', 4: 77, 5: 78, 6: 79, 22: 123456, 40: 1, 41: 2 }));
    assert.deepEqual({ pid: s.pid, comm: s.comm, state: s.state, ppid: s.ppid, pgrp: s.pgrp, session: s.session },
      { pid: 4321, comm, state: 'R', ppid: 77, pgrp: 78, session: 79 }, comm);
    assert.deepEqual([s.utime, s.stime, s.starttime, s.rtPriority, s.policy], [14, 15, 123456, 1, 2], comm);
    assert.equal(s.fields.length, 50);
    assert.equal(s.fields[49], '52', 'no newline in the last field');
  }
  assert.equal(parseStat(''), null);
  assert.equal(parseStat('12 (cut short) S 1 2'), null);
  assert.equal(parseStat('no parentheses at all'), null);
});

test('procStat: a live process whose name holds spaces and ") ", a zombie, a pid that is gone', async (t) => {
  const name = 'a) R 1 2 3 (b';
  // a session and a group of its own (setsid). The shell's first child exits and, the shell
  // having become `sleep 60` (exec), nobody reaps it: a zombie.
  const { sh, program } = await shNamed(t, name, ['-c', 'sleep 0 & exec sleep 60']);

  const zombie = await waitFor(() => {
    const k = childPids(sh.pid);
    return k.length === 1 && procStat(k[0])?.state === 'Z' && k[0];
  }, { what: 'the unreaped child of the shell' });
  const s = await waitFor(() => { const x = procStat(sh.pid); return x?.comm === 'sleep' && x; },
    { what: 'the shell become sleep' });
  assert.deepEqual([s.pid, s.ppid, s.pgrp, s.session], [sh.pid, process.pid, sh.pid, sh.pid]);
  assert.match(s.state, /^[RS]$/);
  assert.ok(isAlive(sh.pid));
  const me = procStat(process.pid);
  assert.ok(s.starttime >= me.starttime, `started after this process (${s.starttime} >= ${me.starttime})`);
  assert.equal(procStat(sh.pid, { task: sh.pid }).starttime, s.starttime, 'its main thread');

  const z = procStat(zombie);
  assert.deepEqual([z.state, z.ppid, z.pgrp, z.session], ['Z', sh.pid, sh.pid, sh.pid]);
  assert.equal(isAlive(zombie), false, 'a zombie is not alive');

  // while it was still "sh": its name, as the kernel read it from the file name
  const named = spawn(program, ['-c', 'read x'], { stdio: ['pipe', 'ignore', 'ignore'] });
  await new Promise((resolve, reject) => { named.once('spawn', resolve); named.once('error', reject); });
  t.after(() => named.kill('SIGKILL')); // a failed assertion below leaves it waiting for input
  const n = procStat(named.pid);
  assert.deepEqual([n.comm, n.ppid], [name, process.pid]);
  assert.equal(comm(named.pid), name);
  named.stdin.end();
  await new Promise((resolve) => named.once('exit', resolve));

  // pids stay below pid_max: this one is never a process's
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1'));
  assert.equal(procStat(pidMax), null);
  assert.equal(procStat(pidMax, { task: pidMax }), null);
  assert.equal(isAlive(pidMax), false);
});
