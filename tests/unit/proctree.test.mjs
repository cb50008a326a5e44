// childPids (tests/lib/proctree.mjs) against real processes whose command name looks like
// the fields of /proc/PID/stat: a parser that stops at the first ')' or splits on spaces
// reads the wrong parent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childPids } from '../lib/proctree.mjs';
import { waitFor } from '../lib/procs.mjs';

const comm = (pid) => readFileSync(`/proc/${pid}/comm`, 'latin1').trimEnd();

test('children of a pid, also when its name holds spaces and parentheses', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-proctree-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // the kernel names a process after its program's file: sh under a name that reads
  // "state S, parent 1" to a parser that stops at the first ') '
  const name = 'x) S 1 (';
  copyFileSync('/bin/sh', join(dir, name));
  chmodSync(join(dir, name), 0o755);
  // a group of its own, so that the shell and its sleep go together at the end
  const sh = spawn(join(dir, name), ['-c', 'sleep 60 & wait'], { stdio: 'ignore', detached: true });
  await new Promise((resolve, reject) => { sh.once('spawn', resolve); sh.once('error', reject); });
  t.after(() => { try { process.kill(-sh.pid, 'SIGKILL'); } catch { /* gone */ } });
  assert.equal(comm(sh.pid), name);
  assert.ok(childPids(process.pid).includes(sh.pid), 'the shell is a child of this process');
  // the shell forks its sleep a moment after it starts
  const kids = await waitFor(() => { const k = childPids(sh.pid); return k.length > 0 && k; },
    { what: "the shell's sleep" });
  assert.equal(kids.length, 1, `children of the shell: ${kids}`);
  assert.equal(comm(kids[0]), 'sleep');
  assert.ok(!childPids(process.pid).includes(kids[0]), 'a grandchild is not a child');
  assert.deepEqual(childPids(kids[0]), []);
});
