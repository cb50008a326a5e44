// End-to-end: the browser client in headless Chromium against the real stack. Two people
// (two browser contexts) sign up, share a room by its invite link, type at the same time
// (emoji, accents, CJK) and converge with the server; see each other's carets; run code
// and see the output in both windows; ask the AI; restore a snapshot; lose and regain the
// network; watch as a viewer. Every page must end without console errors or CSP
// violations. Screenshots of the main views go to tests/output/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { launch, person, screenshot } from '../lib/browser.mjs';
import {
  PASSWORD, converged, createRoom, editorText, serverDocument, signIn, signUp, token, uniqueName,
  waitForEditor,
} from '../lib/app.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
let browser;
let A; // the owner
let B; // the friend
let roomId;
let invite;
const ann = uniqueName('ann');
const bob = uniqueName('bob');
let aiDouble = null;

before(async () => {
  browser = await launch();
  A = await person(browser, BASE);
  B = await person(browser, BASE);
  // the test stack points its AI provider at AI_DOUBLE_PORT (scripts/test.sh); answer
  // there like an OpenAI-compatible API would, unless something else already does
  const port = Number(process.env.AI_DOUBLE_PORT || 0);
  if (port) aiDouble = await startAiDouble(port).catch(() => null);
});

after(async () => {
  if (browser) await browser.close();
  if (aiDouble) await new Promise((r) => aiDouble.close(r));
});

function startAiDouble(port) {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        id: 'e2e', object: 'chat.completion', created: 0, model: 'e2e',
        choices: [{ index: 0, message: { role: 'assistant', content: 'Try printing <b>n</b> before the loop.' }, finish_reason: 'stop' }],
      }));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const noProblems = (who) => assert.deepEqual(who.problems, [], 'no console errors, exceptions or CSP violations');

test('sign up, sign out, a wrong password, sign in', async () => {
  const p = A.page;
  await p.goto('/');
  await screenshot(p, 'sign-in');
  await signUp(p, ann);
  assert.equal(await p.textContent('#whoami'), ann);
  await p.click('[data-action="logout"]');
  await p.waitForSelector('[data-action="login"]');
  await signIn(p, ann, 'not the password');
  await p.waitForSelector('[data-error-for="password"]:has-text("Wrong username or password")'); // next to the field
  A.problems.length = 0; // the 401 of the wrong password is logged by the browser itself
  await signIn(p, ann);
  await p.waitForSelector('[name="room-name"]');
  assert.equal(await p.textContent('#whoami'), ann);
});

test('the owner creates a room and sees its invite link', async () => {
  const p = A.page;
  await screenshot(p, 'rooms');
  roomId = await createRoom(p, 'Pairing: FizzBuzz', 'python');
  assert.match(roomId, /^[A-Za-z0-9_-]+$/);
  invite = await p.getAttribute('[data-role="invite-link"]', 'href');
  assert.match(await p.textContent('[data-role="invite-link"]'), new RegExp(`/r/${roomId}\\?invite=`));
  assert.match(invite, new RegExp(`/r/${roomId}\\?invite=[A-Za-z0-9]+$`));
  assert.match(await p.textContent('[data-role="participants"]'), new RegExp(ann));
});

test('a friend opens the invite link signed out, signs up, and lands in the room as an editor', async () => {
  const p = B.page;
  await p.goto(invite);
  await p.waitForSelector('text=Sign in to join the room');
  await p.fill('[name="username"]', bob);
  await p.fill('[name="password"]', PASSWORD);
  await p.click('[data-action="register"]');
  await waitForEditor(p);
  assert.equal(new URL(p.url()).pathname, `/r/${roomId}`);
  assert.equal(await p.getAttribute('[contenteditable]', 'contenteditable'), 'true');
  // each sees the other among the participants
  await A.page.waitForSelector(`[data-role="participants"] >> text=${bob}`);
  await B.page.waitForSelector(`[data-role="participants"] >> text=${ann}`);
});

test('two people type at once (emoji, accents, CJK) and converge with the server', async () => {
  await A.page.click('[data-role="editor"] .cm-content');
  await B.page.click('[data-role="editor"] .cm-content');
  // at the same place: every screen ends the same (each person's text stays whole: interleave.test.mjs)
  await Promise.all([
    A.page.keyboard.type('aé😀b', { delay: 10 }),
    B.page.keyboard.type('x日🚀y', { delay: 10 }),
  ]);
  await converged(BASE, [A.page, B.page], roomId);
  // in different places, on separate lines
  await A.page.keyboard.press('Control+Home');
  await A.page.keyboard.type('\n');
  await converged(BASE, [A.page, B.page], roomId);
  await A.page.keyboard.press('Control+Home');
  await B.page.keyboard.press('Control+End');
  await Promise.all([
    A.page.keyboard.type('def fizz(n):  # Ünïcødé 😀 ok', { delay: 8 }),
    B.page.keyboard.type('\n# 日本語のコメント 🚀👩‍💻 by bob', { delay: 8 }),
  ]);
  // and edits in the middle of each other's text, with deletes
  await A.page.keyboard.press('Backspace');
  await B.page.keyboard.press('Home');
  await Promise.all([
    A.page.keyboard.type('K\nprint(fizz(15))  # ✓', { delay: 8 }),
    B.page.keyboard.type('😀é中', { delay: 8 }),
  ]);
  const doc = await converged(BASE, [A.page, B.page], roomId);
  for (const s of ['Ünïcødé 😀 oK', '😀é中# 日本語のコメント 🚀👩‍💻 by bob', 'print(fizz(15))  # ✓']) {
    assert.ok(doc.content.includes(s), `${JSON.stringify(s)} in ${JSON.stringify(doc.content)}`);
  }
  assert.equal(await editorText(A.page), doc.content);
});

test('each sees the other\'s caret, labelled with the username', async () => {
  await A.page.keyboard.press('ArrowLeft'); // a move sends presence
  await B.page.keyboard.press('ArrowRight');
  await A.page.waitForSelector(`[data-role="editor"] [data-user="${bob}"]`);
  await B.page.waitForSelector(`[data-role="editor"] [data-user="${ann}"]`);
  await screenshot(A.page, 'room-owner');
  await screenshot(B.page, 'room-friend');
});

test('Run shows the output, stdout and stderr apart, in both windows', async (t) => {
  const rt = await fetch(`${BASE}/api/runtimes`, { headers: { authorization: `Bearer ${await token(A.page)}` } });
  const runtimes = rt.status === 200 ? (await rt.json()).runtimes : [];
  if (!runtimes.some((r) => r.language === 'python')) {
    t.skip(`no python runtime on this server (GET /api/runtimes: ${rt.status})`);
    return;
  }
  // a program of its own, so the output is known
  const program = 'import sys\nname = sys.stdin.readline().strip()\nprint("hello", name, "🎉")\nprint("careful", file=sys.stderr)\n';
  await A.page.click('[data-role="editor"] .cm-content');
  await A.page.keyboard.press('Control+a');
  await A.page.keyboard.type(program);
  await converged(BASE, [A.page, B.page], roomId);
  await A.page.fill('[name="stdin"]', 'Ada');
  await A.page.click('[data-action="run"]');
  for (const p of [A.page, B.page]) {
    await p.waitForSelector('[data-role="output"][data-state="finished"]', { timeout: 30000 });
    assert.match(await p.textContent('[data-role="output"] pre.stdout'), /hello Ada 🎉/);
    assert.match(await p.textContent('[data-role="output"] pre.stderr'), /careful/);
    assert.match(await p.textContent('[data-role="output"] .run-meta'), /exit code 0 · \d+ ms/);
    assert.equal(await p.textContent('[data-role="output"] [data-role="run-by"]'), `Run by ${ann}`);
    assert.equal(await p.textContent('[data-role="output"] [data-role="run-input"] pre'), 'Ada');
  }
  await screenshot(B.page, 'run-output');
});

test('the AI panel shows an answer, as text', async (t) => {
  const p = A.page;
  await p.click('[data-action="ai-hint"]');
  await p.waitForSelector('[data-role="ai-answer"]:not([data-state="waiting"])', { timeout: 30000 });
  const state = await p.getAttribute('[data-role="ai-answer"]', 'data-state');
  const text = await p.textContent('[data-role="ai-answer"]');
  if (state !== 'answered') {
    t.skip(`the AI path is not live on this server: ${text}`);
    return;
  }
  assert.ok(text.trim().length > 0);
  // markup in an answer stays text
  assert.equal(await p.locator('[data-role="ai-answer"] b').count(), 0);
  await screenshot(p, 'ai-answer');
});

test('history: a snapshot appears, and restoring it brings its text back for everyone', async () => {
  const p = A.page;
  // snapshots are written a few seconds after edits (debounced)
  await p.waitForSelector('[data-role="history"] [data-action="restore"]', { timeout: 20000 });
  const before = await serverDocument(BASE, p, roomId);
  const snapRev = Number(await p.getAttribute('[data-role="history"] li[data-revision]', 'data-revision'));
  const snap = await (await fetch(`${BASE}/api/rooms/${roomId}/history/${snapRev}`, { headers: { authorization: `Bearer ${await token(p)}` } })).json();
  // change the text, then restore the snapshot
  await p.click('[data-role="editor"] .cm-content');
  await p.keyboard.press('Control+End');
  await p.keyboard.type('\n# scratch to be undone by a restore');
  await converged(BASE, [A.page, B.page], roomId);
  await p.click(`[data-role="history"] li[data-revision="${snapRev}"] [data-action="restore"]`);
  // the restore first fetches the snapshot, so both editors may still agree with the server
  // on the text before it for a moment: wait for the restored text to reach the server
  for (let i = 0; i < 100 && (await serverDocument(BASE, p, roomId)).content !== snap.content; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const doc = await converged(BASE, [A.page, B.page], roomId);
  assert.equal(doc.content, snap.content);
  assert.ok(doc.revision > before.revision);
  // each save says who typed the change since the one before
  await p.waitForSelector(`[data-role="history"] [data-role="history-change"]:has-text("${ann}")`, { timeout: 20000 });
  await p.locator('[data-role="history"]').scrollIntoViewIfNeeded();
  await screenshot(p, 'history');
});

test('edits made offline are kept and sent on reconnect', async () => {
  const p = B.page;
  await B.context.setOffline(true);
  await p.waitForSelector('[data-role="connection"][data-state="offline"]', { timeout: 10000 });
  await p.click('[data-role="editor"] .cm-content');
  await p.keyboard.press('Control+End');
  await p.keyboard.type('\n# typed offline ✈️');
  await A.page.click('[data-role="editor"] .cm-content');
  await A.page.keyboard.press('Control+Home');
  await A.page.keyboard.type('# meanwhile online\n');
  await screenshot(p, 'offline');
  await B.context.setOffline(false);
  await p.waitForSelector('[data-role="connection"][data-state="connected"]', { timeout: 15000 });
  const doc = await converged(BASE, [A.page, B.page], roomId);
  assert.match(doc.content, /^# meanwhile online\n/);
  assert.match(doc.content, /# typed offline ✈️$/);
  // the browser reports the requests that failed while offline: expected here
  B.problems.splice(0, B.problems.length, ...B.problems.filter((m) => !/ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|Failed to load resource/.test(m)));
});

test('WebSocket and long-poll clients follow the same room', async () => {
  const others = [];
  for (const kind of ['ws', 'poll']) {
    const o = await person(browser, BASE);
    await o.page.goto('/');
    await o.page.evaluate(([t, u]) => { localStorage.setItem('cc.token', t); localStorage.setItem('cc.user', u); },
      [await token(A.page), await A.page.evaluate(() => localStorage.getItem('cc.user'))]);
    await o.page.goto(`/r/${roomId}?transport=${kind}`);
    await waitForEditor(o.page);
    assert.equal(await o.page.getAttribute('.room', 'data-transport'), kind);
    others.push(o);
  }
  await A.page.keyboard.type('\n# seen by every transport 🛰️');
  await converged(BASE, [A.page, B.page, ...others.map((o) => o.page)], roomId);
  for (const o of others) {
    noProblems(o);
    await o.context.close();
  }
});

test('a viewer cannot type or run', async () => {
  // the owner makes bob a viewer in the settings panel
  await A.page.selectOption(`[data-member="${bob}"] select[name="member-role"]`, 'viewer');
  await B.page.waitForSelector('.room .badge:has-text("viewer")', { timeout: 10000 });
  const before = await serverDocument(BASE, B.page, roomId);
  assert.equal(await B.page.getAttribute('[data-role="editor"] .cm-content', 'contenteditable'), 'false');
  await B.page.click('[data-role="editor"] .cm-content');
  await B.page.keyboard.type('viewer text');
  await B.page.waitForTimeout(500);
  assert.equal((await serverDocument(BASE, B.page, roomId)).content, before.content);
  assert.equal(await editorText(B.page), before.content);
  assert.equal(await B.page.isDisabled('[data-action="run"]'), true);
  await screenshot(B.page, 'viewer');
});

test('the room reads well in a narrow window', async () => {
  await A.page.setViewportSize({ width: 420, height: 860 });
  await A.page.waitForTimeout(200);
  const overflow = await A.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `no sideways scrolling (${overflow}px)`);
  await screenshot(A.page, 'room-narrow');
  await A.page.setViewportSize({ width: 1280, height: 800 });
});

test('back to the room list: the shared room is there, with its role', async () => {
  await B.page.click('.room-title a.back');
  await B.page.waitForSelector(`.room-list a[href="/r/${roomId}"]`);
  assert.match(await B.page.textContent('.room-list'), /Pairing: FizzBuzz[\s\S]*viewer/);
  await screenshot(B.page, 'rooms-list');
  // and into the room again, without a reload
  await B.page.click(`.room-list a[href="/r/${roomId}"]`);
  await waitForEditor(B.page);
});

test('no console errors or CSP violations in either window', () => {
  noProblems(A);
  noProblems(B);
});
