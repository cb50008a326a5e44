// End-to-end: the client offers Run only where the server can run the room's language
// (GET /api/runtimes). The room form marks languages without a runtime "edit only" and says
// what that means; a room in such a language has no working Run (button, Ctrl+Enter) and
// says why in plain words; a room in a language the server can run (Java, one of the
// optional runtimes the test stack offers) runs with its input. Every wait is for a
// condition, never a fixed time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person, screenshot } from '../lib/browser.mjs';
import { createRoom, signUp, uniqueName, waitForEditor } from '../lib/app.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
let browser;
let A;
let runtimes = [];

before(async () => {
  browser = await launch();
  A = await person(browser, BASE);
  const r = await fetch(`${BASE}/api/runtimes`);
  assert.equal(r.status, 200, 'the stack has a worker');
  runtimes = (await r.json()).runtimes;
});

after(async () => {
  if (browser) await browser.close();
});

const runnable = (lang) => runtimes.some((r) => r.language === lang || r.aliases.includes(lang));

// POSTs to the executions endpoint the page has sent since the last call.
function executionsOf(page) {
  const seen = [];
  page.on('request', (req) => {
    if (req.method() === 'POST' && /\/executions$/.test(new URL(req.url()).pathname)) seen.push(req.url());
  });
  return seen;
}

test('the room form marks languages the server cannot run as edit only, and says what it means', async () => {
  const p = A.page;
  await signUp(p, uniqueName('rt'));
  // the labels come once the runtimes have arrived
  await p.waitForSelector('select[name="language"] option[data-runnable]', { state: 'attached' });
  const options = await p.$$eval('select[name="language"] option', (os) => os.map((o) => ({ value: o.value, text: o.textContent })));
  assert.ok(options.length >= 12, JSON.stringify(options));
  for (const o of options) {
    if (runnable(o.value)) assert.doesNotMatch(o.text, /edit only/, `${o.value} can run: ${o.text}`);
    else assert.match(o.text, /\(edit only\)$/, `${o.value} cannot run: ${o.text}`);
  }
  assert.ok(!runnable('plaintext'));
  assert.equal(options.find((o) => o.value === 'plaintext').text, 'Plain text (edit only)');
  assert.equal(options.find((o) => o.value === 'python').text, 'Python');
  // picking an edit-only language explains it before the room exists; a runnable one does not
  const note = '[data-role="language-note"]';
  await p.selectOption('select[name="language"]', 'plaintext');
  await p.waitForSelector(`${note}:visible`);
  assert.equal(await p.textContent(note),
    'This server cannot run Plain text: no runtime for it is installed. You can still edit together.');
  await p.selectOption('select[name="language"]', 'python');
  await p.waitForSelector(note, { state: 'hidden' });
});

test('a room in an edit-only language has no working Run and says why', async () => {
  const p = A.page;
  await p.goto('/');
  await createRoom(p, uniqueName('notes-'), 'plaintext');
  const run = '[data-action="run"]';
  await p.waitForSelector(`${run}[data-runnable="false"]`);
  assert.equal(await p.isDisabled(run), true);
  const why = 'This server cannot run Plain text: no runtime for it is installed. You can still edit together.';
  assert.equal(await p.getAttribute(run, 'title'), why);
  const notice = '[data-role="run-unavailable"]';
  await p.waitForSelector(`${notice}:visible`);
  assert.equal(await p.textContent(notice), why);
  assert.doesNotMatch(await p.textContent(notice), /api|GET/);
  assert.equal(await p.isVisible('[name="stdin"]'), false, 'no input box for a program that cannot run');
  await screenshot(p, 'run-edit-only');
  // neither a click nor Ctrl+Enter from the editor starts a run
  const posts = executionsOf(p);
  await p.click(run, { force: true });
  await p.click('[data-role="editor"] .cm-content');
  await p.keyboard.insertText('just notes');
  await p.keyboard.press('Control+Enter');
  // anything the page would have sent has been sent by the time this answer is back
  await p.evaluate(() => fetch('/api/health').then((r) => r.status));
  assert.deepEqual(posts, []);
  assert.equal(await p.getAttribute('[data-role="output"]', 'data-state'), 'idle');
  assert.equal(await p.isVisible('[data-role="output"]'), false, 'no "Press Run" hint beside the sentence');
  assert.deepEqual(A.problems, [], 'no console errors, exceptions or CSP violations');
});

test('a room in a language the server runs (Java, an added runtime) runs with its input', async (t) => {
  if (!runnable('java')) {
    t.skip('this stack offers no Java (RUNTIMES_EXTRA)');
    return;
  }
  const p = A.page;
  await p.goto('/');
  await createRoom(p, uniqueName('java-'), 'java');
  await waitForEditor(p);
  const run = '[data-action="run"]';
  await p.waitForSelector(`${run}[data-runnable="true"]`);
  assert.equal(await p.isDisabled(run), false);
  assert.equal(await p.isVisible('[data-role="run-unavailable"]'), false);
  await p.click('[data-role="editor"] .cm-content');
  await p.keyboard.insertText('import java.util.Scanner;\npublic class Main {\npublic static void main(String[] a) {\n'
    + 'System.out.println("hi " + new Scanner(System.in).nextLine());\n}\n}\n');
  await p.fill('[name="stdin"]', 'from the box');
  await p.click(run);
  await p.waitForSelector('[data-role="output"][data-state="finished"] pre.stdout', { timeout: 60000 });
  assert.equal(await p.textContent('[data-role="output"] pre.stdout'), 'hi from the box\n');
  assert.match(await p.textContent('[data-role="output"] [data-role="run-outcome"]'), /^exit code 0 · \d+ ms$/);
  assert.deepEqual(A.problems, [], 'no console errors, exceptions or CSP violations');
});
