// deploy/systemd/: systemd's own checker accepts every unit (with the programs' paths
// pointed at this build, since it checks that ExecStart exists), and the units say what
// docs/DEPLOY.md promises: Restart=on-failure with a delay, the environment from
// /etc/codecollab/env, one API process per instance. Skipped without systemd-analyze.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../lib/procs.mjs';

const DIR = join(ROOT, 'deploy/systemd');
const BIN = join(ROOT, 'build/asan/bin');
const have = spawnSync('systemd-analyze', ['--version']).status === 0;
const units = readdirSync(DIR).filter((f) => /\.(service|target)$/.test(f));

// Copies the units into a directory with the install paths replaced by this build's
// binaries (and an instance of the API template); returns the paths to verify.
function staged(edit = (name, text) => text) {
  const d = mkdtempSync('/tmp/cc-systemd-');
  const files = [];
  for (const u of units) {
    let text = readFileSync(join(DIR, u), 'utf8').replaceAll('/usr/local/lib/codecollab/', `${BIN}/`);
    text = edit(u, text);
    const name = u === 'codecollab-api@.service' ? 'codecollab-api@1.service' : u;
    writeFileSync(join(d, name), text);
    files.push(join(d, name));
  }
  return { d, files };
}

function verify(files) {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('systemd-analyze verify accepts every unit, and refuses a broken one', { skip: !have && 'no systemd-analyze' }, () => {
  const ok = staged();
  try {
    const r = verify(ok.files);
    assert.equal(r.status, 0, r.out);
    assert.equal(r.out.trim(), '', 'no warnings either');
  } finally { rmSync(ok.d, { recursive: true, force: true }); }
  // the check can fail: a typo in a unit is reported
  const bad = staged((name, text) => (name === 'codecollab-broker.service' ? text.replace('Restart=on-failure', 'Restart=sometimes') : text));
  try {
    const r = verify(bad.files);
    assert.match(r.out, /Restart|sometimes/, r.out);
  } finally { rmSync(bad.d, { recursive: true, force: true }); }
});

test('every program has a unit that restarts it on failure with a delay and reads /etc/codecollab/env', () => {
  for (const prog of ['codecollab-api@.service', 'codecollab-broker.service', 'codecollab-worker.service', 'codecollab-snapshotter.service']) {
    const text = readFileSync(join(DIR, prog), 'utf8');
    assert.match(text, /^Restart=on-failure$/m, prog);
    assert.match(text, /^RestartSec=\d+m?s$/m, prog);
    assert.match(text, /^StartLimitBurst=\d+$/m, prog);
    assert.match(text, /^EnvironmentFile=\/etc\/codecollab\/env$/m, prog);
    assert.match(text, /^WantedBy=codecollab\.target$/m, prog);
  }
  // the programs with a loop show life to systemd's watchdog (lib/alive.h): a hung one is
  // killed and restarted like a dead one
  for (const prog of ['codecollab-broker.service', 'codecollab-worker.service', 'codecollab-snapshotter.service']) {
    const text = readFileSync(join(DIR, prog), 'utf8');
    assert.match(text, /^WatchdogSec=\d+s$/m, prog);
    assert.match(text, /^NotifyAccess=main$/m, prog);
  }
  const api = readFileSync(join(DIR, 'codecollab-api@.service'), 'utf8');
  // spawn-fcgi -n: the API process itself is the unit's main process, one socket per instance
  assert.match(api, /^ExecStart=\/usr\/bin\/spawn-fcgi -n -s \/run\/codecollab\/api\.sock-%i /m);
  const worker = readFileSync(join(DIR, 'codecollab-worker.service'), 'utf8');
  assert.doesNotMatch(worker, /^User=/m, 'the local sandbox needs root');
  assert.doesNotMatch(worker, /^ProtectControlGroups=yes/m, 'the sandbox writes /sys/fs/cgroup/codecollab');
});
