// scripts/proc.sh: proc_stat, with which the supervisor (scripts/services.sh) and the watchdog
// (scripts/watchdog.sh) tell a live service from a dead one, a zombie and a pid given to
// another process. Checked against tests/lib/proctree.mjs's parser on real processes whose
// command names look like the fields of /proc/PID/stat: spaces, ')' and ') ', a tab and a
// newline, and the longest name the kernel keeps (15 bytes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { childPids, procStat, shNamed } from '../lib/proctree.mjs';
import { ROOT, waitFor } from '../lib/procs.mjs';

// proc_stat on each pid, in one bash that sourced scripts/proc.sh under `set -euo pipefail`
// (as scripts/run.sh runs it), after one bare call on its own pid: per pid, "0 state ppid
// pgrp session starttime" when it answers, "STATUS COUNT" (its status and how many fields
// it left) when it does not.
function procStatSh(pids) {
  const script = `set -euo pipefail
. ${JSON.stringify(join(ROOT, 'scripts/proc.sh'))}
proc_stat $$
for p in "$@"; do
  if proc_stat "$p"; then
    echo "0 \${pstat[0]} \${pstat[1]} \${pstat[2]} \${pstat[3]} \${pstat[19]}"
  else
    echo "$? \${#pstat[@]}"
  fi
done`;
  const r = spawnSync('bash', ['-c', script, 'bash', ...pids.map(String)], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  return r.stdout.trimEnd().split('\n');
}

test('proc_stat reads state, parent, group, session and start time whatever the name holds', async (t) => {
  const names = [
    'plain',
    'x) S 1 (', // a parser that stops at the first ") " reads state S, parent 1
    ') ) ) ) ) ) ) )', // 15 bytes, eight words
    ' ) ) ) ) ) ) ) ', // 15 bytes, nine: the most a program's name can split into
    'a\tb) c', // a tab splits words as a space does
    'n\nl) Z 9', // a newline too, and a line reader would stop at it
    'end)',
    '((',
    'a name longer than fifteen bytes', // the kernel keeps its first 15
  ];
  const procs = [];
  for (const name of names) {
    // the shell stays itself (no exec of its last command), so the process keeps the name
    const { sh } = await shNamed(t, name, ['-c', 'while :; do sleep 1; done']);
    procs.push(sh.pid);
  }
  const got = procStatSh(procs);
  procs.forEach((pid, i) => {
    const want = procStat(pid);
    assert.ok(want, `${JSON.stringify(names[i])} is running`);
    assert.equal(want.comm, names[i].slice(0, 15));
    const [status, state, ppid, pgrp, session, start] = got[i].split(' ');
    assert.equal(status, '0', `proc_stat answered for ${JSON.stringify(names[i])}: ${got[i]}`);
    assert.match(state, /^[RSD]$/, names[i]); // live: running, asleep, or in a disk wait
    assert.deepEqual([ppid, pgrp, session, start].map(Number),
      [process.pid, pid, pid, want.starttime], `fields of ${JSON.stringify(names[i])}`);
  });
});

test('proc_stat: a zombie is state Z; a pid that is gone answers 1 and leaves no fields', async (t) => {
  // the shell's first child (a subshell, so it keeps the shell's name) exits and, the shell
  // having become `sleep 60` (exec), nobody reaps it
  const { sh } = await shNamed(t, 'z) R 1 (', ['-c', ': & exec sleep 60']);
  const zombie = await waitFor(() => {
    const k = childPids(sh.pid);
    return k.length === 1 && procStat(k[0])?.state === 'Z' && k[0];
  }, { what: 'the unreaped child of the shell' });
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1')); // never a pid
  assert.equal(procStat(zombie).comm, 'z) R 1 (', 'the zombie has the odd name');
  const [z, gone] = procStatSh([zombie, pidMax]);
  const [status, state, ppid, pgrp, session, start] = z.split(' ');
  assert.deepEqual([status, state], ['0', 'Z'], z);
  assert.deepEqual([ppid, pgrp, session, start].map(Number), [sh.pid, sh.pid, sh.pid, procStat(zombie).starttime]);
  assert.equal(gone, '1 0');
});
