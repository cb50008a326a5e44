// The runtimes a stack offers and the names they go by. The test stack's worker offers every
// optional runtime (scripts/stack.sh: RUNTIMES_EXTRA=all, installed by scripts/deps.sh test):
// each runs a program reading stdin through POST /api/executions, and one alias table
// (lib/lang.c) serves room creation and settings, the AI endpoints and executions alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, newUser, createRoom, uniqueName } from '../lib/api.mjs';
import { waitJob, run } from '../lib/jobs.mjs';

const ALIASES = {
  gcc: 'c', 'g++': 'c++', cpp: 'c++', 'node-js': 'javascript', node: 'javascript', js: 'javascript',
  py: 'python', sh: 'bash', golang: 'go', rs: 'rust', ts: 'typescript', rb: 'ruby', GCC: 'c',
};

test('GET /api/runtimes lists the optional runtimes, with the aliases of the one table', async () => {
  const r = await call('GET', '/api/runtimes');
  assert.equal(r.status, 200, r.text);
  const byName = Object.fromEntries(r.json.runtimes.map((x) => [x.language, x]));
  for (const lang of ['c', 'c++', 'python', 'javascript', 'bash', 'java', 'go', 'rust', 'typescript', 'ruby', 'php']) {
    assert.ok(byName[lang], `${lang} is offered: ${r.text}`);
    assert.match(byName[lang].version, /^\d+(\.\d+)*$/);
  }
  assert.ok(!byName.plaintext, 'plain text has no runtime');
  for (const [alias, lang] of Object.entries(ALIASES)) {
    if (alias === alias.toLowerCase()) assert.ok(byName[lang].aliases.includes(alias), `${lang} lists ${alias}`);
  }
});

test('every alias is accepted alike by room creation, room settings, executions and the AI', async () => {
  for (const [alias, lang] of Object.entries(ALIASES)) {
    const u = await newUser('alias'); // a user each: the per-minute limits of runs and AI
    const created = await call('POST', '/api/rooms', { token: u.token, body: { name: uniqueName('room-'), language: alias } });
    assert.equal(created.status, 201, `${alias}: ${created.text}`);
    assert.equal(created.json.room.language, lang, alias);
    const room = created.json.room;
    const patched = await call('PATCH', `/api/rooms/${room.id}`, { token: u.token, body: { language: alias } });
    assert.equal(patched.status, 200, `${alias}: ${patched.text}`);
    assert.equal(patched.json.room.language, lang);
    const ex = await run(u.token, room, { language: alias, code: '' });
    assert.equal(ex.status, 202, `${alias}: ${ex.text}`);
    assert.equal(ex.json.job.language, lang);
    const ai = await call('POST', `/api/rooms/${room.id}/ai/hint`, { token: u.token, body: { language: alias, code: 'x\n' } });
    assert.ok(ai.status === 202 || ai.status === 200, `${alias}: ${ai.status} ${ai.text}`);
  }
  // and an unknown name is refused by all of them
  const u = await newUser('alias');
  const room = await createRoom(u.token);
  assert.equal((await call('POST', '/api/rooms', { token: u.token, body: { name: 'x', language: 'cobol' } })).status, 400);
  assert.equal((await call('PATCH', `/api/rooms/${room.id}`, { token: u.token, body: { language: 'cobol' } })).status, 400);
  assert.equal((await run(u.token, room, { language: 'cobol', code: '' })).status, 400);
  assert.equal((await call('POST', `/api/rooms/${room.id}/ai/hint`, { token: u.token, body: { language: 'cobol', code: 'x' } })).status, 400);
});

const PROGRAMS = {
  java: 'import java.util.Scanner;\npublic class Main {\n  public static void main(String[] a) {\n    System.out.println("hello " + new Scanner(System.in).nextLine());\n  }\n}\n',
  go: 'package main\nimport ("bufio"; "fmt"; "os")\nfunc main() { s := bufio.NewScanner(os.Stdin); s.Scan(); fmt.Println("hello " + s.Text()) }\n',
  rust: 'use std::io::Read;\nfn main() { let mut s = String::new(); std::io::stdin().read_to_string(&mut s).unwrap(); println!("hello {}", s.trim()); }\n',
  typescript: "const fs = require('fs');\nconst who: string = fs.readFileSync(0, 'utf8').trim();\nconsole.log(`hello ${who}`);\n",
  ruby: 'puts "hello #{STDIN.read.strip}"\n',
  php: '<?php echo "hello " . trim(stream_get_contents(STDIN)) . "\\n";\n',
};

test('a room in each optional language runs its document with stdin', async () => {
  const u = await newUser('rt');
  for (const [lang, code] of Object.entries(PROGRAMS)) {
    const room = await createRoom(u.token, { language: lang });
    const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision: 0, ops: [code] } });
    assert.equal(op.status, 200, op.text);
    const r = await run(u.token, room, { stdin: 'world\n' });
    assert.equal(r.status, 202, `${lang}: ${r.text}`);
    assert.equal(r.json.job.language, lang);
    const job = await waitJob(u.token, r.json.job.id, { ms: 60000 });
    assert.equal(job.status, 'finished', `${lang}: ${JSON.stringify(job)}`);
    assert.equal(job.result.stdout, 'hello world\n', `${lang}: ${JSON.stringify(job.result)}`);
    assert.equal(job.result.exit_code, 0);
  }
});

test('TypeScript imports Node\'s built-in modules (untyped), as people write it', async () => {
  const u = await newUser('rt');
  const room = await createRoom(u.token, { language: 'typescript' });
  const code = "import * as fs from 'fs';\nimport { basename } from 'node:path';\n" +
    "function greet(name: string): string { return `hello ${name.trim()} from ${basename('/x/main.ts')}`; }\n" +
    "console.log(greet(fs.readFileSync(0, 'utf8')));\n";
  const op = await call('POST', `/api/rooms/${room.id}/operations`, { token: u.token, body: { revision: 0, ops: [code] } });
  assert.equal(op.status, 200, op.text);
  const r = await run(u.token, room, { stdin: 'world\n' });
  assert.equal(r.status, 202, r.text);
  const job = await waitJob(u.token, r.json.job.id, { ms: 60000 });
  assert.equal(job.status, 'finished', JSON.stringify(job));
  assert.equal(job.result.stdout, 'hello world from main.ts\n', JSON.stringify(job.result));
});

test('a compile error in Java, Go, Rust and TypeScript stops before the run and says why', async () => {
  const u = await newUser('rt');
  const room = await createRoom(u.token, { language: 'java' });
  const broken = {
    java: ['public class Main { public static void main(String[] a) { int x = "no"; } }\n', /incompatible types/],
    go: ['package main\nfunc main() { var x int = "no" }\n', /cannot use/],
    rust: ['fn main() { let x: i32 = "no"; }\n', /mismatched types/],
    typescript: ["const x: number = 'no';\n", /TS2322/],
  };
  for (const [lang, [code, why]] of Object.entries(broken)) {
    const r = await run(u.token, room, { language: lang, code });
    assert.equal(r.status, 202, r.text);
    const job = await waitJob(u.token, r.json.job.id, { ms: 60000 });
    assert.equal(job.status, 'finished', `${lang}: ${JSON.stringify(job)}`);
    assert.equal(job.result.status, 'compile_error', `${lang}: ${JSON.stringify(job.result)}`);
    assert.equal(job.result.exit_code, null);
    assert.match(job.result.compile.stderr + job.result.compile.stdout, why, lang);
  }
});

test('a plain text room has nothing to run: refused, no job queued', async () => {
  const u = await newUser('rt');
  const room = await createRoom(u.token, { language: 'txt' });
  assert.equal(room.language, 'plaintext');
  const r = await run(u.token, room, {});
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.job, undefined);
});
