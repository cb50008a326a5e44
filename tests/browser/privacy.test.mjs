// End-to-end (headless Chromium against the real stack): what the page leaves behind on a
// shared browser, and what a name can do to the text around it.
//   - Unsent edits (docs/CLIENT.md, "Unsent edits") hold a room's whole text: after signing
//     out, or once the session has ended, no entry and no copy of the text is left in
//     localStorage, whether the room was open or left before; entries older than a day or
//     of another account are gone after a page load, the user's own recent ones stay.
//   - A room name may hold a bidi control left open ("a" + U+202E): in the room list, the
//     room's title and the status line that quotes it, the name sits in an isolating element
//     and the text after it reads left to right as it was written.
// Every wait is for a condition, never a fixed time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person } from '../lib/browser.mjs';
import { converged, createRoom, signUp, token, uniqueName, waitForEditor } from '../lib/app.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

// requests the browser logs as failed while the test has cut the network, and the 401s of
// a session ended on purpose
const expectedNoise = /Failed to load resource|ERR_FAILED|ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|ERR_CONNECTION_REFUSED|WebSocket connection/;
const noProblems = (who) => assert.deepEqual(who.problems.filter((m) => !expectedNoise.test(m)), [],
  'no console errors, exceptions or CSP violations');

// What localStorage holds, as [key, value] pairs.
const storage = (page) => page.evaluate(() => Object.entries(localStorage));

// Nothing of unsent edits, and no value that holds any of `texts`.
async function assertNothingKept(page, texts) {
  const entries = await storage(page);
  assert.deepEqual(entries.filter(([k]) => k.startsWith('cc.unsent.')).map(([k]) => k), [], 'no unsent edits kept');
  for (const t of texts) {
    for (const [k, v] of entries) assert.ok(!v.includes(t), `localStorage ${k} holds the room's text ${JSON.stringify(t)}`);
  }
  assert.equal(await page.evaluate(() => localStorage.getItem('cc.token')), null);
}

// A new user in a private room of their own, with `text` typed and confirmed by the server;
// `transport`: the room's stream of its own (?transport=) rather than the shared one.
async function inRoomWith(text, transport) {
  const who = await person(browser, BASE);
  const p = who.page;
  await signUp(p, uniqueName('priv'));
  const roomId = await createRoom(p, `private ${uniqueName('r')}`, 'python');
  if (transport) {
    await p.goto(`/r/${roomId}?transport=${transport}`);
    await waitForEditor(p);
  }
  await p.click('[data-role="editor"] .cm-content');
  await p.keyboard.insertText(text);
  const doc = await converged(BASE, [p], roomId);
  assert.equal(doc.content, text);
  return { who, p, roomId };
}

// The network goes; an edit that cannot be sent is typed.
async function typeOffline(who, text) {
  const p = who.page;
  await who.context.setOffline(true);
  await p.waitForSelector('[data-role="connection"][data-state="offline"]', { timeout: 15000 });
  await p.click('[data-role="editor"] .cm-content');
  await p.keyboard.press('Control+End');
  await p.keyboard.type(text);
  await p.waitForSelector('.room:not([data-sync="synchronized"])');
}

test('signing out in a room with unsent edits leaves nothing of the room in localStorage', async () => {
  const secret = `SECRET-${uniqueName('s')}`;
  const { who, p } = await inRoomWith(`password = ${secret}\n`);
  const offline = `typed-offline-${uniqueName('o')}`;
  await typeOffline(who, offline);
  // signing out while offline: the logout request gets no answer, the local session goes
  await p.click('[data-action="logout"]');
  await p.waitForSelector('[name="username"]');
  await who.context.setOffline(false);
  await assertNothingKept(p, [secret, offline]);
  // nor after a page load
  await p.reload();
  await p.waitForSelector('[name="username"]');
  await assertNothingKept(p, [secret, offline]);
  noProblems(who);
  await who.context.close();
});

test('edits kept on leaving a room offline stay for their author, and go when they sign out', async () => {
  const secret = `SECRET-${uniqueName('s')}`;
  const { who, p, roomId } = await inRoomWith(`token = ${secret}\n`);
  const me = JSON.parse(await p.evaluate(() => localStorage.getItem('cc.user')));
  await typeOffline(who, 'kept for later');
  // back to the room list inside the app: the edits are kept for this user (what the entry
  // is for), the list itself cannot load while offline
  await p.click('.room-title a.back');
  await p.waitForFunction((id) => localStorage.getItem(`cc.unsent.${id}`) !== null, roomId);
  const kept = JSON.parse(await p.evaluate((id) => localStorage.getItem(`cc.unsent.${id}`), roomId));
  assert.equal(kept.user, me.id);
  assert.ok(kept.base.includes(secret), 'the entry holds the room\'s text');
  await p.click('[data-action="logout"]');
  await p.waitForSelector('[name="username"]');
  await who.context.setOffline(false);
  await assertNothingKept(p, [secret, 'kept for later']);
  noProblems(who);
  await who.context.close();
});

// The page learns of the end from its own stream's ticket request (sse), or from the shared
// stream refused with 401 and the question to /api/auth/me that follows (shared).
for (const transport of ['sse', null]) {
  test(`a session that ends with unsent edits leaves nothing of the room in localStorage (${transport || 'shared'} stream)`, async () => {
    const secret = `SECRET-${uniqueName('s')}`;
    const { who, p } = await inRoomWith(`key = ${secret}\n`, transport);
    const t = await token(p);
    await typeOffline(who, 'never sent');
    // the session ends on the server (as a sign-out elsewhere or an operator would end it);
    // back online, the page's next call is refused with 401
    const r = await fetch(`${BASE}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${t}` } });
    assert.equal(r.status, 204);
    await who.context.setOffline(false);
    await p.waitForSelector('[name="username"]', { timeout: 30000 });
    await p.waitForFunction(() => /session has ended/.test(document.getElementById('status').textContent));
    await assertNothingKept(p, [secret, 'never sent']);
    await who.context.close();
  });
}

// The shared stream's refusal can reach the page before the page is back online (the worker's
// stream is not the page's network): the question to /api/auth/me then gets no answer, and
// must be asked again once the page is online, or the page sits signed in, in a room whose
// stream is gone, for ever.
test('a session that ends while the page is offline: the refused shared stream signs the page out once it is back online', async () => {
  const secret = `SECRET-${uniqueName('s')}`;
  const { who, p } = await inRoomWith(`key = ${secret}\n`, null);
  const t = await token(p);
  await typeOffline(who, 'never sent');
  let unanswered = 0;
  p.on('requestfailed', (req) => { if (new URL(req.url()).pathname === '/api/auth/me') unanswered++; });
  const r = await fetch(`${BASE}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${t}` } });
  assert.equal(r.status, 204);
  // the worker's stream is refused, and the page's question goes out while it is offline
  const deadline = Date.now() + 30000;
  while (!unanswered && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  assert.ok(unanswered > 0, 'the page asked whether its session stands while it was offline');
  await who.context.setOffline(false);
  await p.waitForSelector('[name="username"]', { timeout: 30000 });
  await assertNothingKept(p, [secret, 'never sent']);
  await who.context.close();
});

test('a page load drops unsent edits older than a day and those of another account', async () => {
  const who = await person(browser, BASE);
  const p = who.page;
  await signUp(p, uniqueName('prune'));
  await p.waitForSelector('[data-role="rooms"]');
  const me = JSON.parse(await p.evaluate(() => localStorage.getItem('cc.user')));
  const entry = (user, savedAt, base) => JSON.stringify({
    v: 1, user, revision: 3, base, op: [base.length, 'x'], id: 'c1', site: 'ab12', seq: 1, savedAt,
  });
  const day = 24 * 3600 * 1000;
  await p.evaluate(([old, other, mine]) => {
    localStorage.setItem('cc.unsent.oldroom', old);
    localStorage.setItem('cc.unsent.otherroom', other);
    localStorage.setItem('cc.unsent.myroom', mine);
    localStorage.setItem('cc.unsent.garbled', '{not json');
  }, [entry(me.id, Date.now() - day - 60000, 'OLD TEXT of a room'),
    entry(me.id + 1, Date.now() - 60000, 'ANOTHER ACCOUNT\'S TEXT'),
    entry(me.id, Date.now() - 60000, 'my recent text')]);
  await p.reload();
  await p.waitForSelector('[data-role="rooms"]');
  const keys = (await storage(p)).map(([k]) => k).filter((k) => k.startsWith('cc.unsent.')).sort();
  assert.deepEqual(keys, ['cc.unsent.myroom'], 'only the signed-in user\'s recent entry is left');
  for (const [k, v] of await storage(p)) {
    assert.ok(!v.includes('OLD TEXT') && !v.includes('ANOTHER ACCOUNT'), `${k} holds a dropped entry's text`);
  }
  noProblems(who);
  await who.context.close();
});

// In the element of `selector` whose text contains `name`: is the text node holding `name`
// inside an isolating element (a <bdi> or unicode-bidi: isolate) that stays within that
// element and holds nothing after the name; and does `after`, the text that follows the
// name, read left to right (each character's box right of the one before)?
function isolation(page, selector, name, after) {
  return page.evaluate(([sel, nm, aft]) => {
    const root = [...document.querySelectorAll(sel)].find((e) => e.textContent.includes(nm));
    if (!root) return { found: false };
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let nameNode = null;
    let afterNode = null;
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!nameNode && n.data.includes(nm)) {
        nameNode = n;
        if (n.data.indexOf(aft, n.data.indexOf(nm)) >= 0) afterNode = n; // one text node
      } else if (nameNode && !afterNode && n.data.includes(aft)) {
        afterNode = n;
      }
    }
    if (!nameNode || !afterNode) return { found: false, text: root.textContent };
    // inside the element, not the element itself (a block such as <li> isolates its whole
    // content, the text after the name included)
    let iso = null;
    for (let e = nameNode.parentElement; e && e !== root; e = e.parentElement) {
      if (e.tagName === 'BDI' || getComputedStyle(e).unicodeBidi === 'isolate') {
        iso = e;
        break;
      }
    }
    const start = afterNode.data.indexOf(aft);
    const lefts = [];
    for (let i = 0; i < aft.length; i++) {
      if (aft[i] === ' ') continue;
      const r = document.createRange();
      r.setStart(afterNode, start + i);
      r.setEnd(afterNode, start + i + 1);
      lefts.push(r.getBoundingClientRect().left);
    }
    return {
      found: true,
      isolated: Boolean(iso),
      isolatesAfterToo: Boolean(iso && (iso.contains(afterNode) || afterNode === nameNode)),
      leftToRight: lefts.every((x, i) => i === 0 || x > lefts[i - 1]),
      lefts,
    };
  }, [selector, name, after]);
}

test('a name with a bidi override left open is isolated: the text after it reads as written', async () => {
  const who = await person(browser, BASE);
  const p = who.page;
  await signUp(p, uniqueName('bidi'));
  const name = 'a\u202e'; // RIGHT-TO-LEFT OVERRIDE, no POP DIRECTIONAL FORMATTING after it
  const r = await fetch(`${BASE}/api/rooms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token(p)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, language: 'python' }),
  });
  assert.equal(r.status, 201);
  const roomId = (await r.json()).room.id;
  // the room list: "a‮" then " Python · owner · <date>"
  await p.reload();
  await p.waitForSelector(`.room-list a[href="/r/${roomId}"]`);
  const inList = await isolation(p, '.room-list li', name, 'Python · owner');
  assert.ok(inList.found, JSON.stringify(inList));
  assert.ok(inList.isolated, 'the name in the room list sits in an isolating element');
  assert.ok(!inList.isolatesAfterToo, 'the text after the name is outside it');
  assert.ok(inList.leftToRight, `the text after the name reads left to right: ${JSON.stringify(inList.lefts)}`);
  // the room's title, with the badges after it
  await p.click(`.room-list a[href="/r/${roomId}"]`);
  await waitForEditor(p);
  // (the <h2> is a block, which isolates by itself; what counts is that the name is in an
  // isolating element without the badges)
  const title = await p.evaluate((nm) => {
    const bar = document.querySelector('.room-title');
    const t = bar.querySelector('.room-name');
    const badge = bar.querySelector('.badge');
    const walker = document.createTreeWalker(t, NodeFilter.SHOW_TEXT);
    let n = walker.nextNode();
    while (n && !n.data.includes(nm)) n = walker.nextNode();
    let e = n ? n.parentElement : null;
    while (e && e !== bar && !(e.tagName === 'BDI' || getComputedStyle(e).unicodeBidi === 'isolate')) e = e.parentElement;
    return { text: t.textContent, isolated: Boolean(e && e !== bar && !e.contains(badge)) };
  }, name);
  assert.equal(title.text, name);
  assert.ok(title.isolated, 'the room title sits in an isolating element, apart from the badges');
  assert.equal(await p.textContent('.room-title .badge'), 'Python');
  // the status line that quotes it: the room is deleted while open
  const d = await fetch(`${BASE}/api/rooms/${roomId}`, { method: 'DELETE', headers: { authorization: `Bearer ${await token(p)}` } });
  assert.equal(d.status, 204);
  await p.waitForFunction(() => /was deleted by its owner/.test(document.getElementById('status').textContent), null, { timeout: 30000 });
  assert.equal(await p.textContent('#status'), `The room “${name}” was deleted by its owner.`);
  const inStatus = await isolation(p, '#status', name, 'was deleted by its owner');
  assert.ok(inStatus.found, JSON.stringify(inStatus));
  assert.ok(inStatus.isolated, 'the quoted name sits in an isolating element');
  assert.ok(!inStatus.isolatesAfterToo);
  assert.ok(inStatus.leftToRight, `the status line reads left to right after the name: ${JSON.stringify(inStatus.lefts)}`);
  noProblems(who);
  await who.context.close();
});
