// RUNTIMES_EXTRA as the worker binary reads it at start: the runtimes it names are announced
// (cc:runtimes, what GET /api/runtimes serves) and run, the others are not; a bad value or a
// named runtime that is not installed stops the worker at once with a message saying what to
// do. Needs root (the sandbox's cgroups), the ASan build and the optional runtimes
// (scripts/deps.sh test installs them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

import {
  ROOT, WORKER_BIN, enqueue, startWorker, stopWorker, waitFor, waitStatus, withRedis,
} from '../lib/worker-harness.mjs';
import { HANG, RUNTIMES, startPiston } from '../lib/piston-double.mjs';

if (!existsSync(WORKER_BIN)) throw new Error(`${WORKER_BIN} is missing: run make build-asan`);
if (process.getuid() !== 0) throw new Error('the worker tests need root (cgroups for the sandbox)');

// Runs the worker until it exits by itself (a start error): {code, output}. Gives up after
// 20 s: a worker that starts instead is a failure.
function startFails(redisPort, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(WORKER_BIN, [], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', REDIS_URL: `redis://127.0.0.1:${redisPort}`, ...env },
    });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`the worker did not stop: ${output}`)); }, 20000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, output }); });
  });
}

test('RUNTIMES_EXTRA: the named optional runtimes are announced and run, the others are not', () => withRedis(async (r, redis) => {
  const w = await startWorker(redis.port, { RUNTIMES_EXTRA: 'golang, rb' });
  const runtimes = await waitFor(async () => {
    const s = await r.cmd('GET', 'cc:runtimes');
    return s ? JSON.parse(s) : null;
  }, { what: 'cc:runtimes' });
  const names = runtimes.map((x) => x.language).sort();
  assert.deepEqual(names, ['bash', 'c', 'c++', 'go', 'javascript', 'python', 'ruby']);
  assert.deepEqual(runtimes.find((x) => x.language === 'c').aliases, ['gcc']);
  assert.deepEqual(runtimes.find((x) => x.language === 'go').aliases, ['golang']);
  const id = await enqueue(r, { request: { language: 'go', version: '*', code: 'package main\nimport "fmt"\nfunc main() { fmt.Println("go ran") }\n', stdin: '', args: [] } });
  const job = await waitStatus(r, id, 'finished', 60000);
  assert.equal(job.result.stdout, 'go ran\n');
  const refused = await enqueue(r, { request: { language: 'java', version: '*', code: 'x', stdin: '', args: [] } });
  const failed = await waitStatus(r, refused, 'failed', 60000);
  assert.match(failed.error, /java/);
  const stop = await stopWorker(w);
  assert.deepEqual(stop, { code: 0, signal: null }, w.output);
  assert.doesNotMatch(w.output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
}));

test('a bad RUNTIMES_EXTRA stops the worker at start, saying which names work', () => withRedis(async (r, redis) => {
  for (const bad of ['cobol', 'java cobol', 'java;go', 'x'.repeat(2000)]) {
    const { code, output } = await startFails(redis.port, { RUNTIMES_EXTRA: bad });
    assert.notEqual(code, 0, output);
    assert.match(output, /RUNTIMES_EXTRA/, output);
    if (bad.length < 100) assert.match(output, /the ones that can be added are: java go rust typescript ruby php or all/, output);
    assert.doesNotMatch(output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  }
  assert.equal(await r.cmd('GET', 'cc:runtimes'), null, 'nothing announced');
}));

test('a named runtime that is not installed stops the worker, naming its Debian packages', () => withRedis(async (r, redis) => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-runtimes-'));
  try {
    // the shipped file with Java's compiler moved somewhere that does not exist
    const conf = readFileSync(join(ROOT, 'queue-worker/runtimes.conf'), 'utf8').replace('binary = /usr/bin/javac', 'binary = /nonexistent/javac');
    const path = join(dir, 'runtimes.conf');
    writeFileSync(path, conf);
    const { code, output } = await startFails(redis.port, { RUNTIMES_EXTRA: 'java', RUNTIMES_CONF: path });
    assert.notEqual(code, 0, output);
    assert.match(output, /RUNTIMES_EXTRA names java, but it cannot be offered \(\/nonexistent\/javac: not installed\); install the Debian packages default-jdk-headless/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}));

test('Piston\'s runtimes: one whose version a run could not carry, or whose name is not clean text, is not announced; the good ones are, and run', () => withRedis(async (r, redis) => {
  // next to Piston's usual list: a version of 40 bytes (the worker refuses a request's
  // version over 32), a language with a byte that is not UTF-8, one with a NUL, one with a
  // control character; an alias that is not clean text goes alone
  const good = RUNTIMES.map(({ language, version, aliases }) => ({ language, version, aliases }));
  const text = JSON.stringify([
    ...good.slice(0, 2),
    { language: 'rust', version: '1.68.2-nightly-2023-03-01-build-4711', aliases: ['rs'] },
    { language: 'BADBYTE', version: '1.0.0', aliases: [] },
    { language: 'nul\u0000x', version: '1.0.0', aliases: [] },
    { language: 'bell\u0007', version: '1.0.0', aliases: [] },
    { ...good[2], aliases: [...good[2].aliases, 'js\u001b'] },
  ]);
  const [before, after] = text.split('BADBYTE');
  const bytes = Buffer.concat([Buffer.from(before), Buffer.from([0x6c, 0x75, 0x61, 0xff]), Buffer.from(after)]);
  const piston = await startPiston({ runtimesBody: bytes });
  try {
    const w = await startWorker(redis.port, { PISTON_URL: piston.url, RUNTIMES_REFRESH_S: '1' });
    const runtimes = await waitFor(async () => {
      const s = await r.cmd('GET', 'cc:runtimes');
      return s ? JSON.parse(s) : null;
    }, { what: 'cc:runtimes' });
    assert.deepEqual(runtimes, good);
    // the good ones run
    const id = await enqueue(r, { request: { language: 'python', version: '3.10.0', code: 'print(1)', stdin: '', args: [] } });
    const job = await waitStatus(r, id, 'finished');
    assert.match(job.result.stdout, /^ran print\(1\)/);
    // said once, not at every refresh (one a second here): wait for three more lists
    const asked = () => piston.requests.filter((q) => q.url === '/api/v2/runtimes').length;
    const first = asked();
    await waitFor(() => asked() >= first + 3, { what: 'three refreshes of the runtimes' });
    const said = w.output.match(/runtimes: .*left out.*/g) ?? [];
    assert.equal(said.length, 1, w.output);
    assert.match(said[0], /4 of Piston's runtimes left out, not announced \(the first: runtime 3 of Piston's list: its version is not 1 to 31 bytes/);
    const stop = await stopWorker(w);
    assert.deepEqual(stop, { code: 0, signal: null }, w.output);
    assert.doesNotMatch(w.output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  } finally {
    await piston.close();
  }
}));

test('Piston\'s runtimes: a runtime listing thousands of aliases is announced with its first 32, and said once', () => withRedis(async (r, redis) => {
  // 5,000 aliases and one of 10,000 bytes: the API reads the whole announcement at every
  // run request, so it must not carry them all
  const many = Array.from({ length: 5000 }, (_, i) => `py${i}`);
  const good = RUNTIMES.map(({ language, version, aliases }) => ({ language, version, aliases }));
  const list = [{ ...good[0], aliases: ['py', 'p'.repeat(10000), ...many] }, ...good.slice(1)];
  const piston = await startPiston({ runtimesBody: Buffer.from(JSON.stringify(list)) });
  try {
    const w = await startWorker(redis.port, { PISTON_URL: piston.url, RUNTIMES_REFRESH_S: '1' });
    const runtimes = await waitFor(async () => {
      const s = await r.cmd('GET', 'cc:runtimes');
      return s ? JSON.parse(s) : null;
    }, { what: 'cc:runtimes' });
    assert.deepEqual(runtimes, [{ ...good[0], aliases: ['py', ...many.slice(0, 31)] }, ...good.slice(1)]);
    // the runtime still runs, by an alias that was kept
    const id = await enqueue(r, { request: { language: 'py', version: '*', code: 'print(1)', stdin: '', args: [] } });
    const job = await waitStatus(r, id, 'finished');
    assert.match(job.result.stdout, /^ran print\(1\)/);
    // said once, not at every refresh (one a second here): wait for three more lists
    const asked = () => piston.requests.filter((q) => q.url === '/api/v2/runtimes').length;
    const first = asked();
    await waitFor(() => asked() >= first + 3, { what: 'three refreshes of the runtimes' });
    const said = w.output.match(/runtimes: .*aliases.*left out.*/g) ?? [];
    assert.equal(said.length, 1, w.output);
    assert.match(said[0], /4969 of the aliases of Piston's runtimes left out, not announced \(at most 32 per runtime\)/);
    const stop = await stopWorker(w);
    assert.deepEqual(stop, { code: 0, signal: null }, w.output);
    assert.doesNotMatch(w.output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  } finally {
    await piston.close();
  }
}));

// cc:runtimes once the worker has published it, parsed (a generous wait: the ASan build on
// a busy machine, and up to a few refreshes)
async function announced(r) {
  return waitFor(async () => {
    const s = await r.cmd('GET', 'cc:runtimes');
    return s ? JSON.parse(s) : null;
  }, { what: 'cc:runtimes', timeout: 60000 });
}

test('Piston\'s runtimes: a list of 20,000 is announced with its first 500, and said once', () => withRedis(async (r, redis) => {
  // every client reads the announcement, and the API at every run request
  const list = Array.from({ length: 20000 }, (_, i) => ({ language: `lang${i}`, version: '1.0.0', aliases: [`l${i}`] }));
  const piston = await startPiston({ runtimesBody: Buffer.from(JSON.stringify(list)) });
  try {
    const w = await startWorker(redis.port, { PISTON_URL: piston.url, RUNTIMES_REFRESH_S: '1' });
    const runtimes = await announced(r);
    assert.equal(runtimes.length, 500);
    assert.deepEqual(runtimes, list.slice(0, 500));
    const asked = () => piston.requests.filter((q) => q.url === '/api/v2/runtimes').length;
    const first = asked();
    await waitFor(() => asked() >= first + 3, { what: 'three refreshes of the runtimes' });
    const said = w.output.match(/runtimes: .*left out.*/g) ?? [];
    assert.equal(said.length, 1, w.output);
    assert.match(said[0], /19500 of Piston's runtimes left out past the first ones, not announced \(at most 500 runtimes in 256 KiB\)/);
    const stop = await stopWorker(w);
    assert.deepEqual(stop, { code: 0, signal: null }, w.output);
    assert.doesNotMatch(w.output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  } finally {
    await piston.close();
  }
}));

test('Piston\'s runtimes: a lone surrogate in one runtime\'s name leaves out that runtime, not the list', () => withRedis(async (r, redis) => {
  // escapes a JSON serializer would not write: a lone high surrogate in a language, a lone
  // low one in a version, one in an alias (only the alias goes)
  const good = RUNTIMES.map(({ language, version, aliases }) => ({ language, version, aliases }));
  const text = JSON.stringify([
    good[0],
    { language: 'rustHIGH', version: '1.68.2', aliases: [] },
    good[1],
    { language: 'go', version: '1.16LOW', aliases: [] },
    { ...good[2], aliases: [...good[2].aliases, 'jsHIGH'] },
  ]).replaceAll('HIGH', '\\ud800').replaceAll('LOW', '\\udc00');
  const piston = await startPiston({ runtimesBody: Buffer.from(text) });
  try {
    const w = await startWorker(redis.port, { PISTON_URL: piston.url, RUNTIMES_REFRESH_S: '1' });
    assert.deepEqual(await announced(r), good);
    await waitFor(() => /runtimes: .*left out/.test(w.output), { what: 'the log line', timeout: 60000 });
    assert.match(w.output, /runtimes: 2 of Piston's runtimes left out, not announced \(the first: runtime 2 of Piston's list: its language is not/);
    const stop = await stopWorker(w);
    assert.deepEqual(stop, { code: 0, signal: null }, w.output);
    assert.doesNotMatch(w.output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  } finally {
    await piston.close();
  }
}));

test('Piston\'s runtimes: an answer that is not JSON, not a list, too large or never ending is logged; the next good one is announced', () => withRedis(async (r, redis) => {
  const bad = [
    Buffer.from('<html>bad gateway</html>'),
    Buffer.from('{"message":"internal error"}'),
    // 9 MiB of a list: past the 8 MiB the worker reads of an answer
    Buffer.from(`[${'"x",'.repeat(9 * 1024 * 1024 / 4)}"x"]`),
    HANG,
  ];
  const piston = await startPiston({ runtimesBody: (n) => bad[n - 1] });
  try {
    const w = await startWorker(redis.port, { PISTON_URL: piston.url, RUNTIMES_REFRESH_S: '1', PISTON_TIMEOUT_MS: '1500' });
    // nothing is announced until the fifth answer, Piston's usual list
    const runtimes = await announced(r);
    assert.ok(piston.requests.filter((q) => q.url === '/api/v2/runtimes').length >= 5);
    assert.deepEqual(runtimes, RUNTIMES.map(({ language, version, aliases }) => ({ language, version, aliases })));
    const lines = w.output.match(/runtimes: piston: .*/g) ?? [];
    assert.equal(lines.length, 4, w.output);
    assert.match(lines[0], /the runtimes answer is not JSON \(24 bytes\); nothing new announced/);
    assert.match(lines[1], /the runtimes answer is an object, not a list; nothing new announced/);
    assert.match(lines[2], /answer larger than 8388608 bytes; nothing new announced/);
    assert.match(lines[3], /no answer within 1500 ms; nothing new announced/);
    // the URL is in the log line before it (without secrets, had it any)
    assert.match(w.output, /piston: GET http:\/\/127\.0\.0\.1:\d+\/api\/v2\/runtimes failed: /);
    // and the worker runs jobs all along
    const id = await enqueue(r, { request: { language: 'python', version: '3.10.0', code: 'print(1)', stdin: '', args: [] } });
    const job = await waitStatus(r, id, 'finished');
    assert.match(job.result.stdout, /^ran print\(1\)/);
    const stop = await stopWorker(w);
    assert.deepEqual(stop, { code: 0, signal: null }, w.output);
    assert.doesNotMatch(w.output, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  } finally {
    await piston.close();
  }
}));
