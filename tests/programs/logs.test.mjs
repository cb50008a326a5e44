// Logs under `make run` stay bounded (scripts/cap-logs.sh, run by scripts/run.sh every
// LOG_CHECK_S seconds): a log past its cap is kept as FILE.1 and emptied in place, and a
// program still writing to it (an appending descriptor, as every log of the stack has)
// carries on at the start of the emptied file, with no hole and nothing restarted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, writeSync, closeSync, readFileSync, statSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CAP = fileURLToPath(new URL('../../scripts/cap-logs.sh', import.meta.url));

test('a log over its cap is kept once as .1 and emptied; its writer goes on at the start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-logs-'));
  try {
    const path = join(dir, 'worker.log');
    const fd = openSync(path, 'a'); // as the shell's >> opens it
    const line = 'x'.repeat(99) + '\n';
    for (let i = 0; i < 30; i++) writeSync(fd, line); // 3,000 bytes
    writeFileSync(join(dir, 'small.log'), 'tiny\n');
    writeFileSync(join(dir, 'notes.txt'), 'y'.repeat(5000)); // not a log: left alone
    execFileSync(CAP, [dir, '2000']);
    assert.equal(statSync(path).size, 0, 'emptied');
    assert.equal(statSync(`${path}.1`).size, 3000, 'the old content kept once');
    assert.equal(readFileSync(join(dir, 'small.log'), 'utf8'), 'tiny\n', 'a log under the cap is untouched');
    assert.ok(!existsSync(join(dir, 'small.log.1')));
    assert.equal(statSync(join(dir, 'notes.txt')).size, 5000);
    writeSync(fd, 'after\n');
    assert.equal(readFileSync(path, 'utf8'), 'after\n', 'the writer appends at the new end: no hole of zeros');
    // a second pass over the cap replaces the older copy: at most two copies on disk
    for (let i = 0; i < 25; i++) writeSync(fd, line);
    execFileSync(CAP, [dir, '2000']);
    assert.ok(readFileSync(`${path}.1`, 'utf8').startsWith('after\n'));
    closeSync(fd);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A full disk: the copy to .1 fails part way (a `cp` first on PATH that writes half of the
// first log's copy and fails, as cp does on ENOSPC; the other logs are copied by the real cp).
// The cap must not leave the partial copy behind (the disk would stay full) nor stop there:
// the log is emptied without a copy, with a line saying so, and the logs after it are capped.
test('a copy that fails (a full disk): the log is emptied anyway, no partial .1 is left, and the other logs are still capped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-logs-'));
  try {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'cp'), `#!/bin/sh
# cp -f -- SRC DST
src=$3 dst=$4
case "$src" in
  */a.log) head -c 1000 "$src" >"$dst"; echo "cp: error writing '$dst': No space left on device" >&2; exit 1 ;;
esac
exec /bin/cp "$@"
`, { mode: 0o755 });
    const logs = join(dir, 'logs');
    mkdirSync(logs);
    const big = 'z'.repeat(2999) + '\n';
    for (const n of ['a', 'b', 'c']) writeFileSync(join(logs, `${n}.log`), big);
    const r = spawnSync(CAP, [logs, '2000'], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    assert.equal(statSync(join(logs, 'a.log')).size, 0, 'the log whose copy failed is emptied all the same');
    assert.ok(!existsSync(join(logs, 'a.log.1')), 'no partial copy is left taking the space');
    for (const n of ['b', 'c']) {
      assert.equal(statSync(join(logs, `${n}.log`)).size, 0, `${n}.log, after it, is still capped`);
      assert.equal(readFileSync(join(logs, `${n}.log.1`), 'utf8'), big, `${n}.log's copy is whole`);
    }
    assert.match(r.stderr, /a\.log could not be copied .*emptied without a copy/);
    assert.equal(r.status, 1, 'the failure shows in the exit status');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cap that is not a number is refused with a message', () => {
  const r = (() => {
    try { execFileSync(CAP, ['/tmp', '10MB'], { stdio: 'pipe' }); return null; } catch (e) { return e; }
  })();
  assert.ok(r, 'refused');
  assert.equal(r.status, 2);
  assert.match(String(r.stderr), /MAX_BYTES must be a number/);
});
