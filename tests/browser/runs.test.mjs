// End-to-end: who ran the code, the last run after a reload or for a late joiner, and who
// typed each saved change (docs/CLIENT.md). Headless Chromium against the real stack; the
// phone (390×844) shows the last run without sideways scrolling. Every wait is for a
// condition.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person, screenshot } from '../lib/browser.mjs';
import { converged, createRoom, signUp, token, uniqueName, waitForEditor } from '../lib/app.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
let browser;
let A; // the owner, who runs the code
let B; // a friend in the room while it runs
let roomId;
let invite;
let python = false;
const ann = uniqueName('ann');
const bob = uniqueName('bob');
const cat = uniqueName('cat');
const people = [];

before(async () => {
  browser = await launch();
  A = await person(browser, BASE);
  B = await person(browser, BASE);
  people.push(A, B);
});

after(async () => {
  if (browser) await browser.close();
});

const noProblems = (who) => assert.deepEqual(who.problems, [], 'no console errors, exceptions or CSP violations');
const out = '[data-role="output"]';

async function setCode(page, code) {
  await page.click('[data-role="editor"] .cm-content');
  await page.keyboard.press('Control+a');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(code);
}

// The output panel as a person reads it: who ran it, whether the input is folded, the output.
async function panel(page) {
  return page.evaluate((sel) => {
    const o = document.querySelector(sel);
    const input = o.querySelector('[data-role="run-input"]');
    return {
      state: o.dataset.state,
      by: o.querySelector('[data-role="run-by"]')?.textContent ?? null,
      inputShown: input ? input.open : null,
      input: input?.querySelector('pre')?.textContent ?? null,
      stdout: o.querySelector('pre.stdout')?.textContent ?? null,
    };
  }, out);
}

test('set-up: ann makes a room, bob joins with the link', async () => {
  await signUp(A.page, ann);
  roomId = await createRoom(A.page, 'Who ran it', 'python');
  invite = await A.page.getAttribute('[data-role="invite-link"]', 'href');
  await signUp(B.page, bob, invite);
  await waitForEditor(B.page);
  const rt = await fetch(`${BASE}/api/runtimes`, { headers: { authorization: `Bearer ${await token(A.page)}` } });
  python = rt.status === 200 && (await rt.json()).runtimes.some((r) => r.language === 'python');
});

test('the output says who ran it, to everyone, with the input folded away', async (t) => {
  if (!python) return t.skip('no python runtime on this server');
  await setCode(A.page, 'import sys\nprint("sum:", sum(int(x) for x in sys.stdin.read().split()))\n');
  await converged(BASE, [A.page, B.page], roomId);
  await A.page.fill('[name="stdin"]', '1 2 3\n4');
  await A.page.click('[data-action="run"]');
  for (const p of [A.page, B.page]) {
    await p.waitForSelector(`${out}[data-state="finished"] pre.stdout:has-text("sum: 10")`, { timeout: 60000 });
    const v = await panel(p);
    assert.equal(v.by, `Run by ${ann}`);
    assert.equal(v.inputShown, false, 'the input is folded');
    assert.equal(v.input, '1 2 3\n4');
  }
  // unfolding it shows the input
  await B.page.click(`${out} [data-role="run-input"] summary`);
  assert.equal(await B.page.isVisible(`${out} [data-role="run-input"] pre`), true);
  await screenshot(B.page, 'run-by');
  // while a run waits or runs, it says whose it is too; a run without input shows no input
  await setCode(B.page, 'import time\ntime.sleep(1)\nprint("bob was here")\n');
  await converged(BASE, [A.page, B.page], roomId);
  await B.page.fill('[name="stdin"]', '');
  await B.page.click('[data-action="run"]');
  await A.page.waitForSelector(`${out}[data-state="running"] [data-role="run-by"]:has-text("Run by ${bob}")`, { timeout: 60000 });
  await A.page.waitForSelector(`${out}[data-state="finished"] pre.stdout:has-text("bob was here")`, { timeout: 60000 });
  const v = await panel(A.page);
  assert.equal(v.by, `Run by ${bob}`);
  assert.equal(v.inputShown, null, 'no input to show');
});

test('the last run survives a reload, and a late joiner sees it, on a phone too', async (t) => {
  if (!python) return t.skip('no python runtime on this server');
  await A.page.reload();
  await waitForEditor(A.page);
  await A.page.waitForSelector(`${out}[data-state="finished"] pre.stdout:has-text("bob was here")`, { timeout: 15000 });
  assert.equal((await panel(A.page)).by, `Run by ${bob}`);
  // cat joins later, on a phone: the last run is there when the room opens
  const C = await person(browser, BASE, { width: 390, height: 844 });
  people.push(C);
  await signUp(C.page, cat, invite);
  await waitForEditor(C.page);
  await C.page.waitForSelector(`${out}[data-state="finished"] pre.stdout:has-text("bob was here")`, { timeout: 15000 });
  const v = await panel(C.page);
  assert.equal(v.by, `Run by ${bob}`);
  const overflow = await C.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `no sideways scrolling (${overflow}px)`);
  // a run with input, seen on the phone: the input folded, unfolding it fits the screen
  await setCode(A.page, 'print(input()[::-1])\n');
  await converged(BASE, [A.page, C.page], roomId);
  await A.page.fill('[name="stdin"]', 'a rather long line of input for a phone, to see that it wraps and does not widen the page');
  await A.page.click('[data-action="run"]');
  await C.page.waitForSelector(`${out}[data-state="finished"] pre.stdout:has-text("egap eht")`, { timeout: 60000 });
  assert.equal((await panel(C.page)).by, `Run by ${ann}`);
  await C.page.locator(out).scrollIntoViewIfNeeded();
  await C.page.click(`${out} [data-role="run-input"] summary`);
  const wide = await C.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(wide <= 1, `the unfolded input does not widen the page (${wide}px)`);
  await screenshot(C.page, 'run-last-phone');
  noProblems(C);
  await C.context.close();
});

test('a Run whose answer is lost is sent again with its request_id: it runs once', async (t) => {
  if (!python) return t.skip('no python runtime on this server');
  const p = A.page;
  const path = `/api/rooms/${roomId}/executions`;
  const isRun = (u) => u.pathname === path;
  const before = await fetch(`${BASE}${path}?limit=20`, { headers: { authorization: `Bearer ${await token(p)}` } });
  const known = new Set((await before.json()).executions.map((x) => x.id));
  // the first POST reaches the server (the job is made), its answer is replaced by a 503
  // as a Redis replica that did not confirm in time gives it; later POSTs go through
  const sent = [];
  let retried;
  const retry = new Promise((resolve) => { retried = resolve; });
  await p.route(isRun, async (r) => {
    if (r.request().method() !== 'POST') return r.continue();
    sent.push(JSON.parse(r.request().postData()).request_id);
    if (sent.length > 1) {
      await r.continue();
      return retried();
    }
    await r.fetch();
    return r.fulfill({ status: 503, contentType: 'application/json',
      body: JSON.stringify({ error: 'redis_unavailable', message: 'the change was not confirmed by a Redis replica in time; try again' }) });
  });
  await setCode(p, 'print("just once")\n');
  await converged(BASE, [p, B.page], roomId);
  await p.fill('[name="stdin"]', '');
  await p.click('[data-action="run"]');
  // the room's events may show the output before the retry goes out: wait for both
  let bound;
  await Promise.race([retry, new Promise((_, reject) => {
    bound = setTimeout(() => reject(new Error('the Run was not sent again within 10 s')), 10000);
  })]);
  clearTimeout(bound);
  await p.waitForSelector(`${out}[data-state="finished"] pre.stdout:has-text("just once")`, { timeout: 60000 });
  await p.unroute(isRun);
  assert.equal(sent.length, 2, 'one retry');
  assert.match(sent[0], /^[0-9a-f]{32}$/);
  assert.equal(sent[1], sent[0], 'the retry carries the same request_id');
  const after = await fetch(`${BASE}${path}?limit=20`, { headers: { authorization: `Bearer ${await token(p)}` } });
  const fresh = (await after.json()).executions.filter((x) => !known.has(x.id));
  assert.equal(fresh.length, 1, 'one run made');
  assert.equal(fresh[0].result.stdout, 'just once\n');
  // the 503 is the browser's own network log line, nothing of the page
  A.problems.splice(0, A.problems.length, ...A.problems.filter((m) => !/Failed to load resource.*503/.test(m)));
});

test('a room without runs opens with the idle panel', async () => {
  const p = A.page;
  await p.click('.room-title a.back');
  await p.waitForSelector('[name="room-name"]');
  await createRoom(p, 'Nothing run yet', 'python');
  assert.equal(await p.getAttribute(out, 'data-state'), 'idle');
  assert.equal(await p.locator(`${out} [data-role="run-by"]`).count(), 0);
  await p.goto(`/r/${roomId}`);
  await waitForEditor(p);
});

test('the history names who typed each change and how much', async () => {
  const p = A.page;
  // both type; the snapshotter saves within seconds
  await B.page.click('[data-role="editor"] .cm-content');
  await B.page.keyboard.press('Control+End');
  await B.page.keyboard.insertText('\n# bob adds a line');
  await converged(BASE, [A.page, B.page], roomId);
  await p.click('[data-role="editor"] .cm-content');
  await p.keyboard.press('Control+End');
  await p.keyboard.insertText('\n# and ann one more');
  const doc = await converged(BASE, [A.page, B.page], roomId);
  const newest = `[data-role="history"] li[data-revision="${doc.revision}"]`;
  // the list refreshes on the `snapshot` event of the save that holds the last edit
  await p.waitForSelector(`${newest} [data-role="history-change"]`, { timeout: 30000 });
  const text = await p.textContent(`${newest} [data-role="history-change"]`);
  assert.match(text, new RegExp(ann));
  assert.match(text, /\+\d+ −\d+/);
  // every listed change that says who names ann or bob, and somewhere bob's line is named
  const all = await p.$$eval('[data-role="history"] [data-role="history-change"]', (els) => els.map((e) => e.textContent));
  assert.ok(all.some((x) => x.includes(bob)), JSON.stringify(all));
  for (const x of all) assert.ok(x.includes(ann) || x.includes(bob) || /^\+\d/.test(x), x);
  await p.locator('[data-role="history"]').scrollIntoViewIfNeeded();
  await screenshot(p, 'history-authors');
});

test('no console errors or CSP violations in any window', () => {
  for (const who of people) if (who.context) noProblems(who);
});
