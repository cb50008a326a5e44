// scripts/test-digest.sh, the "what failed, in short" that ends a failed make test: read from
// output files the way the runners write it (node's TAP reporter, the C tests' FAIL lines,
// the fuzz and sanitizer FAILED lines). A digest that missed a failure, or named a passing
// test, would send whoever reads a red CI page to the wrong place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/test-digest.sh', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cc-test-digest-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = (text) => {
  const f = join(dir, `out${++n}.txt`);
  writeFileSync(f, text);
  return f;
};
const digest = (files, env = {}) => execFileSync(SCRIPT, files, { encoding: 'utf8', env: { ...process.env, ...env } });

// one test as node's TAP reporter prints it
const tap = (num, name, { ok = true, indent = '', error = null, location = '/r/tests/a.test.mjs:3:1' } = {}) => {
  const lines = [`${indent}# Subtest: ${name}`, `${indent}${ok ? 'ok' : 'not ok'} ${num} - ${name}`, `${indent}  ---`,
    `${indent}  duration_ms: 12.5`];
  if (!ok) {
    lines.push(`${indent}  location: '${location}'`, `${indent}  failureType: 'testCodeFailure'`);
    if (error.includes('\n')) lines.push(`${indent}  error: |-`, ...error.split('\n').map((l) => `${indent}    ${l}`));
    else lines.push(`${indent}  error: '${error}'`);
    lines.push(`${indent}  code: 'ERR_ASSERTION'`, `${indent}  stack: |-`, `${indent}    at x (file:///r/tests/a.test.mjs:9:3)`);
  }
  lines.push(`${indent}  ...`);
  return lines.join('\n') + '\n';
};

test('a passing run gives no digest at all', () => {
  const out = file(`TAP version 13\n${tap(1, 'fine')}${tap(2, 'also fine')}1..2\n# pass 2\n# fail 0\nC unit tests: 40 passed, 0 failed\n`);
  assert.equal(digest([out]), '');
});

test('each failure of each file: its name, its place and its error\'s first lines, not its stack; passing tests not named', () => {
  const a = file(`TAP version 13\n${tap(1, 'fine')}${tap(2, 'ten parallel sign-ups', {
    ok: false, error: '{"error":"api_unavailable"}\n{"token":"x"}\n+ actual - expected', location: '/r/tests/stack/auth.test.mjs:318:1',
  })}${tap(3, 'fine too')}`);
  const b = file(`== programs\n${tap(1, 'several jobs at once', { ok: false, error: "'' !== '42\\n'", location: '/r/tests/programs/worker.test.mjs:77:1' })}`);
  const got = digest([a, b]);
  assert.equal(got, [
    '-- ten parallel sign-ups',
    '   at /r/tests/stack/auth.test.mjs:318:1',
    '   {"error":"api_unavailable"}',
    '   {"token":"x"}',
    '   + actual - expected',
    '-- several jobs at once',
    '   at /r/tests/programs/worker.test.mjs:77:1',
    "   '' !== '42\\n'",
    '',
  ].join('\n'));
  assert.doesNotMatch(got, /fine|at x \(|ERR_ASSERTION|duration/);
});

test('a nested subtest and a file that timed out are both named; C and fuzz failures come last', () => {
  const out = file([
    tap(1, 'a nested step', { ok: false, indent: '    ', error: 'inner boom' }),
    tap(1, '/r/tests/programs/alive.test.mjs', { ok: false, error: 'test timed out after 240000ms', location: '/r/tests/programs/alive.test.mjs:1:1' }),
    'FAIL tests/unit/test_sandbox_cgroup.c:318: dir_exists(sub)',
    'sandbox_cgroup: 158 passed, 4 failed',
    'FAILED: build/asan/tests/unit/test_sandbox_cgroup (exit 1)',
    'fuzz: FAILED: nothing', // not at the start of the line: not a runner's verdict
    '',
  ].join('\n'));
  assert.equal(digest([out]), [
    '-- a nested step',
    '   at /r/tests/a.test.mjs:3:1',
    '   inner boom',
    '-- /r/tests/programs/alive.test.mjs',
    '   at /r/tests/programs/alive.test.mjs:1:1',
    '   test timed out after 240000ms',
    '-- FAIL tests/unit/test_sandbox_cgroup.c:318: dir_exists(sub)',
    '-- FAILED: build/asan/tests/unit/test_sandbox_cgroup (exit 1)',
    '',
  ].join('\n'));
});

test('bounded: at most DIGEST_TESTS failures of DIGEST_LINES lines each, and the count of the rest', () => {
  const long = Array.from({ length: 50 }, (_, i) => `line ${i}`).join('\n');
  let text = '';
  for (let i = 1; i <= 30; i++) text += tap(i, `failure ${i}`, { ok: false, error: long });
  const got = digest([file(text)]);
  const names = got.split('\n').filter((l) => l.startsWith('-- '));
  assert.deepEqual(names, Array.from({ length: 10 }, (_, i) => `-- failure ${i + 1}`));
  assert.equal(got.split('\n').filter((l) => l.startsWith('   line ')).length, 10 * 6);
  assert.match(got, /\(30 failures in all; the first 10 are above\)\n$/);
  const small = digest([file(text)], { DIGEST_TESTS: '2', DIGEST_LINES: '1' });
  assert.equal(small, '-- failure 1\n   at /r/tests/a.test.mjs:3:1\n   line 0\n-- failure 2\n   at /r/tests/a.test.mjs:3:1\n   line 0\n(30 failures in all; the first 2 are above)\n');
});

test('no file given: a usage message and exit status 2', () => {
  assert.throws(() => execFileSync(SCRIPT, [], { stdio: 'pipe' }), (e) => e.status === 2 && /usage/.test(e.stderr.toString()));
});
