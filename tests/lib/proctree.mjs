// What /proc says about who started whom. No side effects on import (unlike procs.mjs, whose
// exit and signal handlers a bench script must not inherit), so bench/ can use it too.
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The fields of a /proc/PID/stat text (proc(5); /proc/PID/task/TID/stat reads the same), or
// null when it is not one: "pid (comm) state ppid pgrp session …". comm is the program's name
// as the program set it and may hold spaces, ')' and ') ', so the fields are counted from
// the LAST ') ', after which none can appear. Numbers as numbers; `fields` holds every field
// from state on as text (fields[0] is proc(5)'s field 3), for one not named here.
export function parseStat(text) {
  const open = text.indexOf(' (');
  const close = text.lastIndexOf(') ');
  if (open < 0 || close < open) return null;
  const fields = text.slice(close + 2).trimEnd().split(' ');
  if (fields.length < 20) return null;
  const n = (field) => Number(fields[field - 3]); // by proc(5)'s numbering, from 1
  return {
    pid: Number(text.slice(0, open)),
    comm: text.slice(open + 2, close),
    state: fields[0],
    ppid: n(4),
    pgrp: n(5),
    session: n(6),
    utime: n(14), // clock ticks
    stime: n(15),
    starttime: n(22), // clock ticks after boot
    rtPriority: n(40),
    policy: n(41),
    fields,
  };
}

// /proc/PID/stat read now and parsed (parseStat), or null when the process is gone (a zombie
// is still there: state 'Z'). { task: TID } reads one thread's instead.
export function procStat(pid, { task } = {}) {
  let text;
  try {
    text = readFileSync(task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`, 'latin1');
  } catch {
    return null;
  }
  return parseStat(text);
}

// Running or asleep, not a zombie waiting to be reaped, and not gone.
export function isAlive(pid) {
  const s = procStat(pid);
  return s !== null && s.state !== 'Z';
}

// The pids whose parent is pid (its direct children; a process gone while read is skipped).
export function childPids(pid) {
  const kids = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    if (procStat(d)?.ppid === pid) kids.push(Number(d));
  }
  return kids;
}

// The parent of pid (NaN if it is gone).
export function parentPid(pid) {
  return procStat(pid)?.ppid ?? NaN;
}

// /bin/sh copied under `name` (the kernel names a process after its program's file, cut to
// 15 bytes) and run with args, detached: a session and a group of its own, killed whole when
// the test t ends. The copy's path comes back too, to start it again.
export async function shNamed(t, name, args) {
  const dir = mkdtempSync(join(tmpdir(), 'cc-proctree-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync('/bin/sh', join(dir, name));
  chmodSync(join(dir, name), 0o755);
  const sh = spawn(join(dir, name), args, { stdio: 'ignore', detached: true });
  await new Promise((resolve, reject) => { sh.once('spawn', resolve); sh.once('error', reject); });
  t.after(() => { try { process.kill(-sh.pid, 'SIGKILL'); } catch { /* gone */ } });
  return { sh, program: join(dir, name) };
}
