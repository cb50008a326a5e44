// What /proc says about who started whom. No side effects on import (unlike procs.mjs, whose
// exit and signal handlers a bench script must not inherit), so bench/ can use it too.
import { readdirSync, readFileSync } from 'node:fs';

// The parent pid in the text of /proc/PID/stat: "pid (comm) state ppid …". comm is the
// program's name as the program set it and may hold spaces and ')', so the fields are
// counted from its last ')', after which none can appear.
function statParent(stat) {
  const close = stat.lastIndexOf(')');
  if (close < 0) return NaN;
  return Number(stat.slice(close + 2).split(' ')[1]);
}

// The pids whose parent is pid (its direct children; a process gone while read is skipped).
export function childPids(pid) {
  const kids = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${d}/stat`, 'latin1'); } catch { continue; }
    if (statParent(stat) === pid) kids.push(Number(d));
  }
  return kids;
}

// The parent of pid (NaN if it is gone).
export function parentPid(pid) {
  try { return statParent(readFileSync(`/proc/${pid}/stat`, 'latin1')); } catch { return NaN; }
}
