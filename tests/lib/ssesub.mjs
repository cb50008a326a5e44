// bench-ssesub (bench/c/ssesub.c) as a child process for the tests, with its line protocol
// as promises: tell (a command), ask (a command and its one-line answer), open, count,
// collect, and finish (end of stdin: it must exit 0 with nothing on stderr, so no sanitizer
// report). kids: a Set the caller empties after its tests (each kid is in it while it runs).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

export function ssesub(bin, args, kids) {
  const kid = spawn(bin, args, {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
  });
  kids.add(kid);
  let stderr = '', buf = '';
  const lines = [], waiters = [];
  kid.stderr.on('data', (d) => { stderr += d; });
  kid.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      while (waiters.length && lines.length) waiters.shift()(lines.shift());
    }
  });
  const exited = new Promise((resolve) => kid.on('exit', (code, signal) => {
    kids.delete(kid);
    resolve({ code, signal });
  }));
  const line = () => new Promise((resolve, reject) => {
    if (lines.length) { resolve(lines.shift()); return; }
    waiters.push(resolve);
    exited.then(() => reject(new Error(`bench-ssesub exited; stderr: ${stderr}`)));
  });
  const s = {
    kid,
    stderr: () => stderr,
    line,
    tell: (cmd) => kid.stdin.write(`${cmd}\n`),
    ask: async (cmd) => { s.tell(cmd); return line(); },
    async open(n, conc) {
      const m = /^open (\d+) (\d+) (.*)$/.exec(await s.ask(`open ${n} ${conc}`));
      assert.ok(m, 'an open answer');
      return { ready: Number(m[1]), failed: Number(m[2]), error: m[3] };
    },
    async count() {
      const [, rec, live, lost] = (await s.ask('count')).split(' ').map(Number);
      return { rec, live, lost };
    },
    // every receipt: its marker and the CLOCK_MONOTONIC nanoseconds of its read
    async collect() {
      s.tell('collect');
      const out = [];
      for (let l = await line(); l !== 'end'; l = await line()) {
        const [m, ns] = l.split(' ');
        out.push({ marker: Number(m), ns: BigInt(ns) });
      }
      return out;
    },
    async finish() {
      kid.stdin.end();
      const r = await exited;
      assert.deepEqual(r, { code: 0, signal: null }, `exit; stderr: ${stderr}`);
      assert.equal(stderr, '', 'nothing on stderr');
    },
  };
  return s;
}
