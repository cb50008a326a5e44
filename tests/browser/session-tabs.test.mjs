// End-to-end (headless Chromium against the real stack): the session is shared by every tab
// of a browser (docs/CLIENT.md, "One session for every tab").
//   - Signing out in one tab signs the user's other tabs out: a tab in a room shows the
//     sign-in form instead of going on as if nothing had happened, whether or not the
//     sign-out request reached the server.
//   - On a shared computer, signing out and in as someone else in one tab never commits
//     what the first user typed in another tab under the second user's account, and that
//     tab does not go on showing the room as the first user.
//   - The tabs' one stream connection (a shared worker) never streams a room a tab opened as
//     the first user under the second user's token, even before that tab has heard of the
//     change: the room ends there, and the tab opens it again as the second user.
// Every wait is for a condition, with a generous deadline.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, call, newUser, roomEvents } from '../lib/api.mjs';
import { launch, person, sharedWorkers } from '../lib/browser.mjs';
import { createRoom, signIn, signUp, token, uniqueName, waitForEditor } from '../lib/app.mjs';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

// A second tab of the same person (same context: same localStorage), on the room list.
async function secondTab(who) {
  const tab = await who.context.newPage();
  await tab.goto('/');
  await tab.waitForSelector('[data-action="logout"]:visible');
  return tab;
}

// The server ends the session's streams when it hears of the sign-out, which may reach the
// room tab first; when the sign-out request gets no answer (the server unreachable for a
// moment: the local session goes anyway), only the session shared by the tabs tells it.
for (const serverHears of [false, true]) {
  test(`signing out in one tab signs the other tab out of its room (${serverHears ? 'the server hears of it' : 'the sign-out request gets no answer'})`, async () => {
    const who = await person(browser, BASE);
    const p = who.page;
    await signUp(p, uniqueName('tabs'));
    await createRoom(p, uniqueName('room '), 'python');
    const tab = await secondTab(who);
    if (!serverHears) await tab.route('**/api/auth/logout', (r) => r.abort('connectionreset'));

    await tab.click('[data-action="logout"]');
    await tab.waitForSelector('[name="username"]');
    // the room tab learns of it: the sign-in form, and no room left on screen
    await p.waitForSelector('[name="username"]', { timeout: 10000 });
    assert.equal(await p.$('.room'), null, 'the room view is gone');
    assert.equal(await p.isVisible('[data-action="logout"]'), false);
    assert.equal(await token(p), null);
    // the tab that signed out says when the server did not confirm the end of the session
    if (!serverHears) await tab.waitForSelector('#status:has-text("the server did not confirm it")', { timeout: 10000 });
    else await tab.waitForSelector('#status:text-is("Signed out.")', { timeout: 10000 });
    await who.context.close();
  });
}

// A server that takes the sign-out request and does not answer (overloaded, its session store
// failing over, a network that drops the answer): the person who clicked Sign out on a shared
// computer and walked away must not leave the session behind. Here the request is held in the
// browser until the test lets it go on to the real server.
test('signing out while the server does not answer: the session is gone from every tab at once, and the server ends it once the request reaches it', async () => {
  const who = await person(browser, BASE);
  const p = who.page;
  await signUp(p, uniqueName('held'));
  await createRoom(p, uniqueName('room '), 'python');
  const tab = await secondTab(who);
  const old = await token(tab);
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let reached;
  const arrived = new Promise((resolve) => { reached = resolve; });
  const answered = tab.waitForResponse((r) => new URL(r.url()).pathname === '/api/auth/logout', { timeout: 60000 });
  await tab.route('**/api/auth/logout', async (r) => {
    reached();
    await held;
    await r.continue();
  });
  try {
    await tab.click('[data-action="logout"]');
    await arrived; // the request is on its way, and will stay there until released
    // well within the time the server is kept from answering: both tabs signed out
    await tab.waitForSelector('[name="username"]', { timeout: 10000 });
    await p.waitForSelector('[name="username"]', { timeout: 10000 });
    assert.equal(await p.$('.room'), null, 'the room view is gone');
    assert.equal(await token(tab), null, 'no token left in the browser');
    assert.equal(await token(p), null);
    // the server has not heard yet: the token still works there
    assert.equal((await call('GET', '/api/auth/me', { token: old })).status, 200);
    // and after 10 s without its answer the page says that the server has not confirmed
    await tab.waitForSelector('#status:has-text("the server did not confirm it")', { timeout: 30000 });
  } finally {
    release();
  }
  // the request goes on: the server ends the session
  assert.equal((await answered).status(), 204, 'the server answered the sign-out');
  const end = Date.now() + 10000;
  let status;
  while (Date.now() < end && (status = (await call('GET', '/api/auth/me', { token: old })).status) !== 401) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 401, 'the old token is refused once the sign-out reached the server');
  // once the answer comes, the page says so in place of its notice
  await tab.waitForSelector('#status:text-is("Signed out.")', { timeout: 10000 });
  await who.context.close();
});

// The first user (the person's page) in a new room, and a second user, an editor of it.
async function roomOfTwo(who) {
  const p = who.page;
  const aName = uniqueName('ann');
  await signUp(p, aName);
  const roomId = await createRoom(p, uniqueName('room '), 'python');
  const b = await newUser('bob');
  const info = await call('GET', `/api/rooms/${roomId}`, { token: await token(p) });
  assert.equal(info.status, 200, info.text);
  const joined = await call('POST', `/api/rooms/${roomId}/join`, { token: b.token, body: { invite: info.json.room.invite } });
  assert.equal(joined.status, 200, joined.text);
  return { aName, roomId, b };
}

// From its next load on, page never hears a `storage` event (another tab's change of the
// session): the moment before a real page hears it, made as long as the test needs.
function deafToStorage(page) {
  return page.addInitScript(() => {
    const add = window.addEventListener;
    window.addEventListener = function addEventListener(type, ...rest) {
      if (type === 'storage') return undefined;
      return add.call(this, type, ...rest);
    };
  });
}

// The page's next edit's POST held back, no answer given: `request` resolves to it once made.
async function holdFirstEdit(p) {
  let held;
  let heldCame;
  const heldNow = new Promise((resolve) => { heldCame = resolve; });
  await p.route('**/api/rooms/*/operations', (r) => {
    if (!held && r.request().method() === 'POST') {
      held = r;
      heldCame();
      return;
    }
    r.continue();
  });
  return { request: heldNow.then(() => held) };
}

// The room's log is watched well past the moment a page that kept the edit would send it
// again (within a second or two of the failure): nothing committed as the second user.
async function noOperationBy(roomId, user) {
  const byB = () => roomEvents(roomId).filter((e) => e.type === 'operation' && e.data.user && e.data.user.id === user.id);
  const watchUntil = Date.now() + 8000;
  while (Date.now() < watchUntil) {
    assert.deepEqual(byB().map((e) => e.data.ops), [], 'no operation committed as the second user');
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function notInDocument(roomId, b, text) {
  const doc = await call('GET', `/api/rooms/${roomId}/document`, { token: b.token });
  assert.equal(doc.status, 200, doc.text);
  assert.ok(!doc.json.content.includes(text), `the first user's text is in the document: ${JSON.stringify(doc.json.content)}`);
}

// The first tab ends up as the second user (the room opened anew as them) or signed out,
// never still showing the room as the first user.
function leftAsFirstUser(p, aName, bName) {
  return p.waitForFunction(({ a, bName: bn }) => {
    const signedInAs = document.querySelector('#whoami');
    const shown = signedInAs && !signedInAs.hidden ? signedInAs.textContent : null;
    const you = [...document.querySelectorAll('[data-role="participants"] [data-member]')]
      .filter((el) => el.textContent.includes('(you)')).map((el) => el.dataset.member);
    if (shown === a || you.includes(a)) return false;
    return (shown === bn && !you.some((u) => u !== bn)) || document.querySelector('[name="username"]') !== null;
  }, { a: aName, bName }, { timeout: 15000 });
}

for (const serverHears of [false, true]) {
  test(`an edit typed as one user is not committed as the next user to sign in on the browser (${serverHears ? 'the server hears of the sign-out' : 'the sign-out request gets no answer'})`, async () => {
    const who = await person(browser, BASE);
    const p = who.page;
    // the second user of the shared computer is an editor of the room
    const { aName, roomId, b } = await roomOfTwo(who);
    // the first user's edit is on its way, its answer held back
    const heldEdit = await holdFirstEdit(p);
    const text = `typed-by-ann-${uniqueName('t')}`;
    await p.click('[data-role="editor"] .cm-content');
    await p.keyboard.insertText(text);
    const held = await heldEdit.request;

    // in another tab: sign out, and in as the second user
    const tab = await secondTab(who);
    if (!serverHears) await tab.route('**/api/auth/logout', (r) => r.abort('connectionreset'));
    await tab.click('[data-action="logout"]');
    await tab.waitForSelector('[name="username"]');
    await signIn(tab, b.username, b.password);
    await tab.waitForFunction((name) => document.querySelector('#whoami')?.textContent === name, b.username);
    // the held request fails (no answer): a page still holding the edit would send it again
    await held.abort('connectionreset');

    // the edit is never committed as the second user, and the first tab does not go on
    // showing the room as the first user
    await noOperationBy(roomId, b.user);
    await leftAsFirstUser(p, aName, b.username);
    await notInDocument(roomId, b, text);
    await who.context.close();
  });
}

// The same, when the page in the room has not heard of the change (its `storage` event not
// come yet, the server not told of the sign-out): it still shows the room as the first user
// while the second is signed in, and its edit, whose request failed, is due to go again. It
// must not go, under anyone's token; the page says why and follows the session.
test('an edit held by a page that has not heard of the change of user is not sent as the next user', async () => {
  const who = await person(browser, BASE);
  const p = who.page;
  // this page only (the other tab keeps its own): the `storage` event is never listened to
  await deafToStorage(p);
  const { aName, roomId, b } = await roomOfTwo(who);
  const heldEdit = await holdFirstEdit(p);
  let watching = false;
  const sentSince = [];
  p.on('request', (req) => {
    if (watching && req.method() === 'POST' && /\/operations$/.test(new URL(req.url()).pathname)) sentSince.push(req.url());
  });
  const text = `typed-by-ann-${uniqueName('t')}`;
  await p.click('[data-role="editor"] .cm-content');
  await p.keyboard.insertText(text);
  const held = await heldEdit.request;

  // in another tab: sign out (the server not told, so the room's stream goes on) and in as
  // the second user
  const tab = await secondTab(who);
  await tab.route('**/api/auth/logout', (r) => r.abort('connectionreset'));
  await tab.click('[data-action="logout"]');
  await tab.waitForSelector('[name="username"]');
  await signIn(tab, b.username, b.password);
  await tab.waitForFunction((name) => document.querySelector('#whoami')?.textContent === name, b.username);
  watching = true;
  // the case this test is about: the page is still in the room as the first user
  assert.equal(await p.evaluate(() => document.querySelector('.room') !== null
    && document.querySelector('#whoami').textContent), aName, 'the page still shows the room as the first user');

  // the held request fails (no answer): the edit is due to be sent again
  await held.abort('connectionreset');
  await noOperationBy(roomId, b.user);
  assert.deepEqual(sentSince, [], 'no edit was sent once the second user had signed in');
  // the page says why it did not send it
  await p.waitForFunction(() => /another tab/.test(document.querySelector('#status')?.textContent || ''), null, { timeout: 15000 });
  await leftAsFirstUser(p, aName, b.username);
  await notInDocument(roomId, b, text);
  await who.context.close();
});

// The tabs share one stream connection (a SharedWorker, docs/CLIENT.md "One connection for
// all tabs"), which holds one token at a time. When someone else signs in in another tab, a
// room a tab opened as the first user must not be streamed under the second user's token,
// even for the moment before that tab has heard of the change (here: never, its `storage`
// event is not listened to) and even when the second user may enter the room (the broker
// would take their token). The tab's room ends instead, and the tab starts again as the
// second user, who gets the room's stream as themselves.
test('a room opened as one user is not streamed to that tab under the next user to sign in', async () => {
  const who = await person(browser, BASE);
  const p = who.page;
  // the `storage` event is never heard by this page (the moment before it comes, made long)
  await deafToStorage(p);
  await p.addInitScript(() => {
    // what goes between this page and the stream worker: each room it asks for (its key, and
    // the user signed in when it asked) and every message the worker sends about a room
    window.ccStreamLog = { opens: [], got: [] };
    const Real = window.SharedWorker;
    if (typeof Real !== 'function') return;
    window.SharedWorker = function SharedWorker(...args) {
      const w = new Real(...args);
      const post = w.port.postMessage.bind(w.port);
      w.port.postMessage = (m) => {
        if (m && m.op === 'open') {
          const u = JSON.parse(localStorage.getItem('cc.user') || 'null');
          window.ccStreamLog.opens.push({ key: m.key, user: u && u.id });
        }
        return post(m);
      };
      w.port.addEventListener('message', (ev) => {
        const m = ev.data;
        if (!m || typeof m.key !== 'string') return;
        const from = m.ev && m.ev.data && m.ev.data.user ? m.ev.data.user.id : null;
        window.ccStreamLog.got.push({ key: m.key, kind: m.kind, type: m.ev ? m.ev.type : null, from, status: m.status });
      });
      return w;
    };
  });
  // the first user's room, open in two tabs (one shared stream); the second user is an
  // editor of it
  const { aName, roomId, b } = await roomOfTwo(who);
  const a = (await p.evaluate(() => JSON.parse(localStorage.getItem('cc.user')))).id;
  assert.equal(await p.getAttribute('.room', 'data-transport'), 'shared');
  const tab2 = await who.context.newPage();
  await tab2.goto(`/r/${roomId}`);
  await waitForEditor(tab2);
  assert.equal(await tab2.getAttribute('.room', 'data-transport'), 'shared');

  // in a third tab, the second user signs in: the session goes from the first user's to
  // theirs in one step, as the worker hears it when no tab spoke to it between the sign-out
  // and the sign-in (the user first, then the token: the order api.js writes them in); then
  // that tab opens the room, as the second user
  const tab3 = await who.context.newPage();
  await tab3.goto('/');
  await tab3.waitForSelector('[data-action="logout"]:visible');
  await tab3.evaluate(({ token: t, user }) => {
    localStorage.setItem('cc.user', JSON.stringify(user));
    localStorage.setItem('cc.token', t);
  }, { token: b.token, user: b.user });
  await tab3.goto(`/r/${roomId}`);
  await waitForEditor(tab3);
  assert.equal(await tab3.textContent('#whoami'), b.username);

  // the first tab ends up in the room as the second user, on the shared stream; so does the
  // second tab
  const inRoomAs = (page, name) => page.waitForFunction((n) => document.querySelector('#whoami')?.textContent === n
    && document.querySelector('.room[data-ready="true"]') !== null
    && document.querySelector('[data-role="connection"]')?.dataset.state === 'connected', name, { timeout: 20000 });
  await inRoomAs(p, b.username);
  await inRoomAs(tab2, b.username);
  assert.equal(await p.getAttribute('.room', 'data-transport'), 'shared');

  // the room the first tab opened as the first user heard nothing under the second user's
  // token: it was never opened again, no event about the second user reached it, and it
  // ended (as a stream refused with 401 would) rather than going on
  const log = await p.evaluate(() => window.ccStreamLog);
  const asA = log.opens.filter((o) => o.user === a).map((o) => o.key);
  assert.ok(asA.length >= 1, `the page opened the room as the first user: ${JSON.stringify(log)}`);
  for (const key of asA) {
    const got = log.got.filter((m) => m.key === key);
    assert.deepEqual(got.filter((m) => m.kind === 'open').length, 1,
      `the first user's room was opened once, never again after the second user signed in: ${JSON.stringify(got)}`);
    assert.deepEqual(got.filter((m) => m.kind === 'event' && m.from === b.user.id), [],
      'no event about the second user reached the room opened as the first user');
    assert.deepEqual(got.filter((m) => m.kind === 'fatal').map((m) => m.status), [401],
      `the room opened as the first user ended: ${JSON.stringify(got)}`);
  }
  // the page opened the room again as the second user, and hears it
  const asB = log.opens.filter((o) => o.user === b.user.id).map((o) => o.key);
  assert.equal(asB.length, 1, `the page opened the room once as the second user: ${JSON.stringify(log.opens)}`);
  assert.ok(log.got.some((m) => m.key === asB[0] && m.kind === 'open'), 'the room is live as the second user');
  assert.notEqual(await p.textContent('#whoami'), aName);
  // and the page says why its view started again
  await p.waitForFunction(() => /another tab/.test(document.querySelector('#status')?.textContent || ''), null, { timeout: 15000 });
  await who.context.close();
});

// Tabs loaded before an upgrade go on with the build they were loaded with, and a browser
// gives every page that asks for the stream worker's script under its name the worker already
// running there. A worker of the previous build's protocol (its pages never name their user)
// must not be the one this build's pages talk to: they would be refused as the wrong user, and
// their room would stay without a stream until a reload. Here a tab of the previous build is
// stood in for by a page at the site's origin that the browser holds to no Trusted Types (as
// a tab loaded before the site required them, docs/SECURITY.md "Headers": it may start a
// worker from a plain string): before the app loads in another tab, it starts a worker under
// the previous name and asks it for a room the way such a page asked (no user, no time).
test('a stream worker started by a page of the previous build does not take this build\'s pages', async () => {
  const who = await person(browser, BASE);
  const p = who.page;
  await signUp(p, uniqueName('upg'));
  // the room made without opening it: no page of this build has started a worker yet
  const made = await call('POST', '/api/rooms', { token: await token(p), body: { name: uniqueName('room '), language: 'python' } });
  assert.equal(made.status, 201, made.text);
  const roomId = made.json.room.id;
  const old = await who.context.newPage();
  await old.route('**/previous-build', (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><title>previous build</title>' }));
  await old.goto('/previous-build');
  const oldStarted = await old.evaluate((room) => {
    if (typeof window.SharedWorker !== 'function') return false;
    const w = new window.SharedWorker('/dist/stream-worker.js', { name: 'codecollab-streams' });
    w.port.start();
    w.port.postMessage({ op: 'open', key: 'old-page', room, lastId: null,
      token: localStorage.getItem('cc.token'), origin: '' });
    window.ccOldWorker = w;
    return true;
  }, roomId);
  assert.equal(oldStarted, true, 'this browser has shared workers');
  const tab = await who.context.newPage();
  await tab.goto(`/r/${roomId}`);
  await waitForEditor(tab);
  assert.equal(await tab.getAttribute('.room', 'data-transport'), 'shared');
  await tab.waitForFunction(() => document.querySelector('[data-role="connection"]')?.dataset.state === 'connected',
    null, { timeout: 20000 });
  // two workers of the one script: the previous build's, and the one this build's page started
  assert.equal((await sharedWorkers(browser, tab)).length, 2);
  await who.context.close();
});
