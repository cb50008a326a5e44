// scripts/services.sh, the supervisor `make run` and `make cluster` share, on its own: its
// stop helpers wait for a pid and then SIGKILL it, up to tens of seconds after the service
// was started. By then the service may have ended and its pid been given to an unrelated
// process. The helpers check the process's start time against the one noted when the
// service started (svc_note), and leave a process that is not the one noted alone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync,
  unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir, waitFor } from '../lib/procs.mjs';
import { isAlive as alive, procStat } from '../lib/proctree.mjs';
import { startPrimary, stopPg } from '../lib/pg.mjs';

const started = [];
after(() => {
  for (const c of started) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
});

// A bystander: a process of the test's own that takes no notice of SIGTERM, returned once
// it ignores it (bit 15 of SigIgn in /proc/PID/status).
async function bystander() {
  const c = spawn('sh', ['-c', 'trap "" TERM; while :; do sleep 1; done'], { stdio: 'ignore' });
  started.push(c);
  const ignoresTerm = () => {
    try {
      const m = /^SigIgn:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${c.pid}/status`, 'latin1'));
      return m && (BigInt(`0x${m[1]}`) & (1n << 14n)) !== 0n;
    } catch {
      return false;
    }
  };
  await waitFor(ignoresTerm, { what: `pid ${c.pid} ignoring SIGTERM` });
  return c;
}

const startTime = (pid) => procStat(pid).starttime;

// Live, and not a zombie waiting for this test to reap it.

const exitSignal = (c) => (c.exitCode !== null || c.signalCode !== null
  ? Promise.resolve(c.signalCode) : new Promise((res) => c.once('exit', (code, sig) => res(sig))));

// The script, sourced by a bash with the say/die its users define; prints what it says.
function services(body) {
  const script = `say() { printf 'say: %s\\n' "$*"; }\ndie() { printf 'die: %s\\n' "$*"; exit 1; }\n` +
    `ROOT=${JSON.stringify(ROOT)}\n. "$ROOT/scripts/services.sh"\n${body}\n`;
  const t0 = Date.now();
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 30000 });
  return { ...r, ms: Date.now() - t0 };
}

test('a pid now held by another process than the one noted is neither waited for nor signalled', async () => {
  const b = await bystander();
  // as if a service that had this pid was noted, ended, and the pid was given to b since
  const r = services(`sborn[${b.pid}]=${startTime(b.pid) - 1}
svc_kill TERM ${b.pid}
svc_kill KILL ${b.pid}
gone_or_kill ${b.pid} 10 the-service && echo gone
gone_or_kill_all 10 the-service ${b.pid} && echo all-gone`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^gone$/m);
  assert.match(r.stdout, /^all-gone$/m);
  assert.doesNotMatch(r.stdout, /killed/, 'no line says it was killed');
  // each would wait its 10 s for the process noted, and then kill it
  assert.ok(r.ms < 8000, `the helpers returned at once, not after their bounds (${r.ms} ms)`);
  assert.ok(alive(b.pid), 'the other process is still running');
});

test('the process noted gets SIGKILL after its bound, with a line naming it', async () => {
  const b = await bystander();
  const r = services(`svc_note ${b.pid}
svc_kill TERM ${b.pid}
gone_or_kill ${b.pid} 1 the-service && echo returned`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`say: the-service \\(pid ${b.pid}\\) had not ended 1 s after its stop signal: killed`));
  assert.match(r.stdout, /^returned$/m);
  assert.ok(r.ms >= 900, `it waited for the bound first (${r.ms} ms)`);
  assert.ok(!alive(b.pid), 'it is gone');
  assert.equal(await exitSignal(b), 'SIGKILL');
});

test('a pid never noted is handled as before: waited for, then killed', async () => {
  const b = await bystander();
  const r = services(`gone_or_kill ${b.pid} 1 the-service; echo rc=$?`);
  assert.match(r.stdout, /rc=0/);
  assert.match(r.stdout, /had not ended 1 s after its stop signal: killed/);
  assert.ok(!alive(b.pid));
});

// oneshot: a long one-time command of the start (initdb, schema.sql, pg_basebackup) runs in
// the background under the `wait` builtin, which a trapped signal ends at once: the stop's
// trap runs then, not once the command has ended, and ends the command (svc_stop_oneshot).
// Run in the foreground, as before, the `sleep 30` below would hold the trap for 30 s.
test('a stop signal during a one-time command runs its trap at once; the command is ended, its output stays in its log and the stop\'s lines do not', async () => {
  const dir = tempDir('cc-oneshot-');
  const log = join(dir, 'oneshot.log');
  // the signal once the command has written both lines (a fixed delay could come first)
  const r = services(`trap 'svc_stop_oneshot && say "ended $oneshot_name (pid $oneshot_stopped)"; exit 0' TERM
( n=0; until grep -q to-stderr "${log}" 2>/dev/null || [ $n -ge 200 ]; do sleep 0.05; n=$((n + 1)); done; kill -TERM $$ ) &
oneshot "the sleeper" ">${log}" sh -c 'echo started; echo to-stderr >&2; exec sleep 30'
say "not reached"`);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.ms < 10000, `the trap ran at once, not after the command (${r.ms} ms)`);
  const pid = Number(/^say: ended the sleeper \(pid (\d+)\)$/m.exec(r.stdout)?.[1]);
  assert.ok(pid > 0, r.stdout);
  assert.doesNotMatch(r.stdout, /not reached/);
  assert.ok(!alive(pid), 'the command is gone');
  assert.equal(readFileSync(log, 'utf8'), 'started\nto-stderr\n', 'its output and errors in its log, nothing of the stop');
});

// The stop's signal as early as can be: the command itself sends it on its first step, so
// the trap often runs before oneshot has noted the pid (it then finds the command by $!).
test('a stop signal right at a one-time command\'s launch still ends the command', () => {
  for (let i = 0; i < 20; i++) {
    const dir = tempDir('cc-oneshot-');
    const pidFile = join(dir, 'pid');
    const r = services(`trap 'svc_stop_oneshot && say "ended $oneshot_name (pid $oneshot_stopped)"; exit 0' TERM
oneshot "the early one" "" sh -c 'echo $$ >"${pidFile}"; kill -TERM ${'$'}PPID; exec sleep 30'
say "not reached"`);
    assert.equal(r.status, 0, r.stderr);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.match(r.stdout, new RegExp(`^say: ended the early one \\(pid ${pid}\\)$`, 'm'), `round ${i}: ${r.stdout}`);
    assert.ok(r.ms < 10000, `round ${i}: the trap ran at once (${r.ms} ms)`);
    assert.ok(!alive(pid), `round ${i}: the command is gone`);
  }
});

test('a one-time command that ends by itself: its exit status, its log anew (">file") or added to (">>file"), or the script\'s own output', () => {
  const dir = tempDir('cc-oneshot-');
  const log = join(dir, 'a.log');
  const r = services(`oneshot first ">${log}" sh -c 'echo one; exit 3'; echo "rc=$?"
oneshot second ">>${log}" sh -c 'echo two >&2'; echo "rc=$?"
oneshot third "" sh -c 'echo three'; echo "rc=$?"
oneshot fourth ">${log}" sh -c 'echo four'; echo "rc=$? pid=[$oneshot_pid]"
svc_stop_oneshot || echo "none under way"
# a trapped signal whose trap returns: the wait goes on, and the status is still the
# command's, also when the command ends while the trap runs (the cut-short wait's own
# status, 138, is not it). The command ends only once the trap has begun (a handshake, not
# a race of delays).
trap 'touch "${dir}/go"; n=0; while [ -e /proc/$oneshot_pid ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done; echo usr1' USR1
( n=0; until [ -e "${dir}/ready" ] || [ $n -ge 200 ]; do sleep 0.05; n=$((n + 1)); done; kill -USR1 $$ ) &
oneshot fifth "" sh -c 'touch "${dir}/ready"; n=0; until [ -e "${dir}/go" ] || [ $n -ge 200 ]; do sleep 0.05; n=$((n + 1)); done; exit 4'; echo "rc=$?"`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'rc=3\nrc=0\nthree\nrc=0\nrc=0 pid=[]\nnone under way\nusr1\nrc=4\n');
  assert.equal(readFileSync(log, 'utf8'), 'four\n');
});

// What a one-time command makes (initdb's directory, pg_basebackup's copy, the Redis nodes'
// files) is marked unfinished while it runs, until it has ended by itself; a start that finds
// a mark (the command was cut short, or killed with the script) stops with a line saying what
// to remove, and removes nothing.
test('unfinished_begin / unfinished_end / unfinished_check: a start that finds a mark stops, saying what to remove, and removes nothing', () => {
  const dir = tempDir('cc-unfinished-');
  mkdirSync(join(dir, 'pg'));
  writeFileSync(join(dir, 'pg/PG_VERSION'), '15');
  const r = services(`set -euo pipefail
CC_VAR=${dir}
unfinished_begin made "rm -rf nothing"
unfinished_end made
unfinished_check made && echo "made: no mark"
unfinished_check never && echo "never: no mark"
unfinished_begin initdb "rm -rf '${dir}/pg'/*"
unfinished_check initdb
echo "not reached"`);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, 'made: no mark\nnever: no mark\n' +
    `die: an earlier start's initdb did not finish, and what it left is not to be taken for done: remove it (rm -rf '${dir}/pg'/*), then ${dir}/.unfinished-initdb, and start again\n`);
  assert.deepEqual(readdirSync(join(dir, 'pg')), ['PG_VERSION'], 'nothing is removed');
});

// A stop signal's trap runs between two commands; inside a block or function call whose
// output is redirected to a file, the stop's lines (say, notice) would land in that file
// (tls.conf, haproxy.cfg, run/env, a log). The scripts build such a file's text first and
// write it with one command, and give oneshot its log as an argument. A signal inside such a
// block cannot be timed from a test, so this reads the scripts: no compound command
// (`{ …; }`, a loop, if, case) and no call of one of their functions has its output
// redirected to a file (/dev/null and other descriptors are fine).
test('run.sh, cluster.sh and the files they source redirect no block and no function call into a file', () => {
  const files = ['run.sh', 'cluster.sh', 'services.sh', 'supervise.sh', 'proc.sh'].map((f) => join(ROOT, 'scripts', f));
  const texts = files.map((f) => readFileSync(f, 'utf8'));
  const fns = new Set();
  for (const t of texts) for (const m of t.matchAll(/^\s*([A-Za-z_]\w*)\(\)\s*\{/gm)) fns.add(m[1]);
  // >file, >>file, 2>file, &>file; not >&2, 2>&1 or /dev/null
  const intoFile = /(^|[^<&\d])[&\d]?>{1,2}\s*(?!&)(?!\/dev\/null)\S/;
  // one command of a line: what follows ;, &&, ||, |, !, if, then, else, do, while, until
  const commands = (code) => code.split(/&&|\|\||[;|]|!\s|\b(?:if|then|else|do|while|until)\b/);
  const offending = (code) => commands(code).some((c) => {
    const closing = /^\s*(\}|done|fi|esac)\s*(\S.*)?$/.exec(c);
    const call = /^\s*([A-Za-z_]\w*)(\s|$)/.exec(c);
    return (closing?.[2] && intoFile.test(closing[2])) || (call && fns.has(call[1]) && intoFile.test(c));
  });
  // quoted text and comments are not redirections
  const bare = (line) => line.replace(/'[^']*'|"(\\.|[^"\\])*"/g, "''").replace(/(^|\s)#.*$/, '');
  // the check itself finds the shapes it is for
  fns.add('probe_fn'); // a name none of the scripts uses
  for (const bad of ['{ a; } >"$f"', 'x && probe_fn hi >>log', 'if probe_fn hi &>out; then', 'done >"$CC_VAR/x"', '  probe_fn hi 2>err']) {
    assert.ok(offending(bare(bad)), `the check finds: ${bad}`);
  }
  for (const fine of ['probe_fn hi >&2', 'probe_fn hi 2>/dev/null', 'echo x >"$f"', 'probe_fn "a > b"', 'done <"$f"', 'x 2>&1']) {
    assert.ok(!offending(bare(fine)), `the check lets through: ${fine}`);
  }
  fns.delete('probe_fn');
  const found = [];
  texts.forEach((t, i) => {
    for (const line of t.replace(/\\\n/g, ' ').split('\n')) {
      if (offending(bare(line))) found.push(`${files[i]}: ${line.trim()}`);
    }
  });
  assert.deepEqual(found, []);
});

// The postgres user's uid: pg_data_dir gives it the data and socket directories.
const PG_UID = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());

// pg_data_dir where the postgres user cannot enter CC_VAR (a checkout under /root): the data
// and the socket live in directories under /var/tmp, linked from CC_VAR/pg and CC_VAR/run/pg.
// Those names are predictable and /var/tmp open to all, and every start gives what the links
// lead to to postgres: so the far end is checked at every start, not only the first. A
// cleaner of /var/tmp may remove the directory, and anyone may then put a link there.
test('pg_data_dir: the /var/tmp directory behind CC_VAR/pg is checked at every start; a link or another user\'s directory there is refused, and what it leads to is not given to postgres', () => {
  const cc = tempDir('cc-pgdir-');
  chmodSync(cc, 0o700); // postgres cannot enter it
  const dir = join(cc, 'pg');
  const alt = `/var/tmp/codecollab-pg-${createHash('sha1').update(cc).digest('hex').slice(0, 12)}`;
  // the name a checkout elsewhere (before a move) would have had
  const moved = `/var/tmp/codecollab-pg-${createHash('sha1').update(`${cc}-before`).digest('hex').slice(0, 12)}`;
  const victim = tempDir('cc-victim-');
  chmodSync(victim, 0o755);
  const nobody = 65534;
  const start = () => services(`CC_VAR=${JSON.stringify(cc)}\npg_data_dir ${JSON.stringify(dir)} && echo ready`);
  const untouched = () => {
    const st = statSync(victim);
    assert.deepEqual([st.uid, st.mode & 0o777], [0, 0o755], 'what the link leads to is left as it was');
  };
  try {
    // an empty directory where the data goes, as a start that failed here before left it
    mkdirSync(dir);
    let r = start();
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^say: PostgreSQL's data is in ${alt} \\(linked from ${dir}\\)`, 'm'));
    assert.match(r.stdout, new RegExp(`^say: PostgreSQL's socket directory is in ${alt}-socket \\(linked from ${cc}/run/pg\\)`, 'm'));
    assert.equal(readlinkSync(dir), alt);
    assert.equal(readlinkSync(join(cc, 'run/pg')), `${alt}-socket`);
    for (const d of [alt, `${alt}-socket`]) {
      const st = lstatSync(d);
      assert.ok(st.isDirectory(), d);
      assert.deepEqual([st.uid, st.mode & 0o777], [PG_UID, 0o700], d);
    }
    // the next start takes them as they are; a mode postgres changed is set back
    chmodSync(alt, 0o755);
    r = start();
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, 'ready\n');
    assert.equal(lstatSync(alt).mode & 0o777, 0o700);
    // the directory removed, and a link to another directory put in its place
    rmSync(alt, { recursive: true });
    symlinkSync(victim, alt);
    r = start();
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, new RegExp(`^die: ${alt} is a symbolic link, not a directory, or belongs to another user`, 'm'));
    untouched();
    // a directory of another user in its place
    unlinkSync(alt);
    mkdirSync(alt, { mode: 0o777 });
    chownSync(alt, nobody, nobody);
    r = start();
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /^die: .* belongs to another user/m);
    assert.equal(statSync(alt).uid, nobody);
    // var/ moved here from elsewhere: its link names the old place's directory, which is
    // gone, and a link to another directory was put there
    rmSync(alt, { recursive: true });
    unlinkSync(dir);
    symlinkSync(moved, dir);
    symlinkSync(victim, moved);
    r = start();
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, new RegExp(`^die: ${moved} is a symbolic link`, 'm'));
    untouched();
    // once the link is gone, a start makes it anew
    unlinkSync(dir);
    r = start();
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(lstatSync(alt).uid, PG_UID);
  } finally {
    for (const d of [alt, `${alt}-socket`, moved]) rmSync(d, { recursive: true, force: true });
  }
});

// Where postgres can enter CC_VAR (the usual case): plain directories in it, no links.
test('pg_data_dir: a CC_VAR the postgres user can enter holds the data and socket directories themselves', () => {
  const cc = tempDir('cc-pgdir-');
  chmodSync(cc, 0o755);
  const r = services(`CC_VAR=${JSON.stringify(cc)}\npg_data_dir ${JSON.stringify(join(cc, 'pg'))} && echo ready`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.stdout, 'ready\n');
  const data = lstatSync(join(cc, 'pg'));
  const sock = lstatSync(join(cc, 'run/pg'));
  assert.ok(data.isDirectory() && sock.isDirectory(), 'directories, not links');
  assert.deepEqual([data.uid, data.mode & 0o777], [PG_UID, 0o700]);
  assert.equal(sock.uid, PG_UID);
});

// After a host crash var/pg keeps its postmaster.pid, and by the next boot its pid may belong
// to any process (as root, kill -0 succeeds on all of them). The start must not take that
// process for a PostgreSQL server still running on var/pg: only a postgres working in that
// very directory stops it; a file naming anything else is stale, removed with a line.
test('pg_not_running: a postmaster.pid naming a live process that is not this directory\'s server (a sleep, a postgres of another directory) is stale and removed; the server running on it still stops the start', async () => {
  const srv = await startPrimary();
  const data = join(srv.dir, 'data');
  const real = readFileSync(join(data, 'postmaster.pid'), 'utf8');
  assert.equal(Number(real.split('\n')[0]), srv.pid);
  let r = services(`pg_not_running ${JSON.stringify(data)} && echo goes-on`);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`^die: a PostgreSQL server \\(pid ${srv.pid}\\) already runs on `, 'm'));
  assert.ok(existsSync(join(data, 'postmaster.pid')), 'a running server\'s file is left alone');

  const sleeper = spawn('sleep', ['120'], { stdio: 'ignore' });
  started.push(sleeper);
  await waitFor(() => readFileSync(`/proc/${sleeper.pid}/comm`, 'utf8') === 'sleep\n', { what: 'the sleep running' });
  const pg = join(tempDir('cc-pgpid-'), 'pg');
  mkdirSync(pg, { mode: 0o700 });
  for (const [pid, comm] of [[sleeper.pid, 'sleep'], [srv.pid, 'postgres']]) {
    const file = join(pg, 'postmaster.pid');
    writeFileSync(file, real.replace(/^\d+/, String(pid)));
    r = services(`pg_not_running ${JSON.stringify(pg)} && echo goes-on`);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^say: .*postmaster.pid names pid ${pid}, which is not a PostgreSQL server of .*\\(it is ${comm}\\).*removing it$`, 'm'));
    assert.match(r.stdout, /^goes-on$/m, 'the start goes on');
    assert.ok(!existsSync(file), 'the stale file is gone');
  }
  assert.ok(alive(sleeper.pid) && alive(srv.pid), 'the processes it named are left alone');
  await stopPg(srv);
});
