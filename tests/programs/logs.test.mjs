// Logs under `make run` stay bounded (scripts/cap-logs.sh, run by scripts/run.sh every
// LOG_CHECK_S seconds): a log past its cap is kept as FILE.1 and emptied in place, and a
// program still writing to it (an appending descriptor, as every log of the stack has)
// carries on at the start of the emptied file, with no hole and nothing restarted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, writeSync, closeSync, readFileSync, statSync, existsSync, rmSync, writeFileSync } from 'node:fs';
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

test('a cap that is not a number is refused with a message', () => {
  const r = (() => {
    try { execFileSync(CAP, ['/tmp', '10MB'], { stdio: 'pipe' }); return null; } catch (e) { return e; }
  })();
  assert.ok(r, 'refused');
  assert.equal(r.status, 2);
  assert.match(String(r.stderr), /MAX_BYTES must be a number/);
});
