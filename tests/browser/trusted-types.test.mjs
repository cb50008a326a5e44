// End-to-end (headless Chromium against the real stack): the page runs under Trusted Types
// (docs/SECURITY.md, "Headers"). The front door sends `require-trusted-types-for 'script'`
// and `trusted-types codecollab` with the page and with the stream worker's script; the app
// used as people use it (sign up, a room, typing, a second person's edits and caret over the
// shared worker's stream, a run, the history panel and a restore) sets off no violation and
// no CSP error in the console; the shared worker really starts (from the page's one policy,
// htdocs/src/trusted-types.js), not the stream of the tab's own it falls back to; and an
// HTML or script sink given a plain string throws, in the page and in the worker, so the
// quiet run above proves something.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, call } from '../lib/api.mjs';
import { launch, person, sharedWorkers } from '../lib/browser.mjs';
import { PASSWORD, converged, createRoom, editorText, serverDocument, signUp, token, uniqueName, waitForEditor } from '../lib/app.mjs';

const WORKER = '/dist/stream-worker.js';
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

// The policy's directives, by name (CSP Level 3, "Parse a serialized CSP": directives split
// on ";", the name before the first space, in any case; the first of a name counts).
function directives(csp) {
  const out = new Map();
  for (const part of (csp || '').split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name && !out.has(name.toLowerCase())) out.set(name.toLowerCase(), values);
  }
  return out;
}

function assertTrustedTypes(csp, what) {
  const d = directives(csp);
  assert.deepEqual(d.get('require-trusted-types-for'), ["'script'"], `${what}: ${csp}`);
  // the app's own policy only: no other name, no 'allow-duplicates', no default policy
  assert.deepEqual(d.get('trusted-types'), ['codecollab'], `${what}: ${csp}`);
}

// A person whose page also keeps every securitypolicyviolation event (on top of the
// console errors, exceptions and violations person() records) and every console message
// that speaks of the policy or of Trusted Types, whatever its level.
async function watched() {
  const who = await person(browser, BASE);
  who.violations = [];
  who.policyConsole = [];
  who.page.on('console', (m) => {
    if (/Content Security Policy|Content-Security-Policy|Trusted ?Type|TrustedHTML|TrustedScript/i.test(m.text())) {
      who.policyConsole.push(`${m.type()}: ${m.text()}`);
    }
  });
  await who.page.exposeFunction('ccViolation', (v) => { who.violations.push(v); });
  await who.page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.ccViolation({
        directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI, sample: e.sample,
        source: `${e.sourceFile}:${e.lineNumber}`,
      });
    }, true);
  });
  return who;
}

// Evaluates `expression` in a shared worker (attached through the DevTools protocol, its
// messages carried by the browser's session) and returns its value.
async function inWorker(targetId, expression) {
  const cdp = await browser.newBrowserCDPSession();
  try {
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: false });
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer from the worker')), 10000);
      timer.unref();
      cdp.on('Target.receivedMessageFromTarget', (m) => {
        if (m.sessionId !== sessionId) return;
        const msg = JSON.parse(m.message);
        if (msg.id !== 1) return;
        clearTimeout(timer);
        if (msg.error) reject(new Error(JSON.stringify(msg.error)));
        else resolve(msg.result);
      });
    });
    await cdp.send('Target.sendMessageToTarget', {
      sessionId,
      message: JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression, returnByValue: true } }),
    });
    const r = await answer;
    assert.equal(r.exceptionDetails, undefined, JSON.stringify(r.exceptionDetails));
    return r.result.value;
  } finally {
    await cdp.detach();
  }
}

test('the page and the stream worker\'s script are served with the Trusted Types directives', async () => {
  for (const path of ['/', '/r/abc', '/index.html', '/dist/app.js', WORKER]) {
    const r = await fetch(`${BASE}${path}`);
    assert.equal(r.status, 200, path);
    await r.arrayBuffer();
    assertTrustedTypes(r.headers.get('content-security-policy'), `GET ${path}`);
  }
  // and the API's answers (the page's requests; the same policy everywhere)
  const health = await call('GET', '/api/health');
  assertTrustedTypes(health.headers.get('content-security-policy'), 'GET /api/health');
});

test('two people in a room under Trusted Types: no violation, and the shared worker carries the stream', async () => {
  const A = await watched();
  const B = await watched();
  try {
    // sign up, a room, its invite link
    await signUp(A.page, uniqueName('tta'));
    const roomId = await createRoom(A.page, 'Trusted Types', 'python');
    const invite = await A.page.getAttribute('[data-role="invite-link"]', 'href');
    // the second person signs up from the invite link and lands in the room
    await B.page.goto(invite);
    await B.page.waitForSelector('text=Sign in to join the room');
    await B.page.fill('[name="username"]', uniqueName('ttb'));
    await B.page.fill('[name="password"]', PASSWORD);
    await B.page.click('[data-action="register"]');
    await waitForEditor(B.page);
    const bName = await B.page.textContent('#whoami');
    const aName = await A.page.textContent('#whoami');

    // both rooms' streams came through the shared worker (shared-stream.js says 'shared'
    // only when the worker opened the room; its fallback is a stream of the tab's own, 'sse')
    for (const p of [A.page, B.page]) assert.equal(await p.getAttribute('.room', 'data-transport'), 'shared');
    // and the browser runs that worker: one for each person (a context of their own)
    for (const p of [A.page, B.page]) {
      const workers = await sharedWorkers(browser, p, WORKER);
      assert.equal(workers.length, 1, JSON.stringify(workers));
    }

    // typing; each sees the other's text and caret
    await A.page.click('[data-role="editor"] .cm-content');
    await A.page.keyboard.type('print("from ann")\n', { delay: 5 });
    await converged(BASE, [A.page, B.page], roomId);
    await B.page.click('[data-role="editor"] .cm-content');
    await B.page.keyboard.press('Control+End');
    await B.page.keyboard.type('print("from bob")', { delay: 5 });
    await converged(BASE, [A.page, B.page], roomId);
    assert.match(await editorText(A.page), /from ann[\s\S]*from bob/);
    await B.page.keyboard.press('ArrowLeft'); // a move sends presence
    await A.page.keyboard.press('ArrowRight');
    await A.page.waitForSelector(`[data-role="editor"] [data-user="${bName}"]`);
    await B.page.waitForSelector(`[data-role="editor"] [data-user="${aName}"]`);

    // a run and its output, where the server has python
    const rt = await call('GET', '/api/runtimes', { token: await token(A.page) });
    if (rt.status === 200 && rt.json.runtimes.some((r) => r.language === 'python')) {
      await A.page.click('[data-action="run"]');
      for (const p of [A.page, B.page]) {
        await p.waitForSelector('[data-role="output"][data-state="finished"]', { timeout: 30000 });
        assert.match(await p.textContent('[data-role="output"] pre.stdout'), /from ann\s+from bob/);
      }
    } else {
      console.log(`# no python runtime on this server (GET /api/runtimes: ${rt.status}): no run`);
    }

    // the history panel: a snapshot appears (written a few seconds after edits); restoring it
    await A.page.waitForSelector('[data-role="history"] [data-action="restore"]', { timeout: 20000 });
    const rev = await A.page.getAttribute('[data-role="history"] li[data-revision]', 'data-revision');
    const snap = await call('GET', `/api/rooms/${roomId}/history/${rev}`, { token: await token(A.page) });
    assert.equal(snap.status, 200, snap.text);
    await A.page.keyboard.type('\n# to be undone');
    await converged(BASE, [A.page, B.page], roomId);
    await A.page.click(`[data-role="history"] li[data-revision="${rev}"] [data-action="restore"]`);
    for (let i = 0; i < 100 && (await serverDocument(BASE, A.page, roomId)).content !== snap.json.content; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await converged(BASE, [A.page, B.page], roomId)).content, snap.json.content);

    // still on the worker's stream, and nothing the policy refused or complained of
    for (const p of [A.page, B.page]) assert.equal(await p.getAttribute('.room', 'data-transport'), 'shared');
    for (const who of [A, B]) {
      assert.deepEqual(who.violations, [], 'no securitypolicyviolation event');
      assert.deepEqual(who.policyConsole, [], 'no console message about the policy or Trusted Types');
      assert.deepEqual(who.problems, [], 'no console errors or exceptions');
    }
  } finally {
    await A.context.close();
    await B.context.close();
  }
});

test('Trusted Types are enforced: sinks given plain strings throw, in the page and in the worker', async () => {
  const who = await watched();
  try {
    await signUp(who.page, uniqueName('ttc'));
    await createRoom(who.page, 'Sinks', 'python');
    assert.equal(await who.page.getAttribute('.room', 'data-transport'), 'shared');
    const got = await who.page.evaluate((worker) => {
      const attempt = (f) => {
        try {
          f();
          return 'done';
        } catch (e) {
          return e.name;
        }
      };
      const script = document.createElement('script');
      return {
        innerHTML: attempt(() => { document.body.innerHTML = '<img src=x onerror=alert(1)>'; }),
        insertAdjacentHTML: attempt(() => document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=alert(1)>')),
        scriptSrc: attempt(() => { script.src = '/dist/app.js'; }),
        worker: attempt(() => new SharedWorker(worker, { name: 'not-ours' })),
        otherPolicy: attempt(() => trustedTypes.createPolicy('other', { createHTML: (s) => s })),
        policyAgain: attempt(() => trustedTypes.createPolicy('codecollab', { createHTML: (s) => s })),
        defaultPolicy: trustedTypes.defaultPolicy,
        img: document.querySelector('img[src="x"]') !== null,
        room: document.querySelector('.room') !== null,
      };
    }, WORKER);
    assert.deepEqual(got, {
      innerHTML: 'TypeError',
      insertAdjacentHTML: 'TypeError',
      scriptSrc: 'TypeError',
      worker: 'TypeError',
      otherPolicy: 'TypeError',
      policyAgain: 'TypeError',
      defaultPolicy: null,
      img: false,
      room: true,
    });
    // each refusal was reported as the quiet test above would have seen it
    await who.page.waitForTimeout(200);
    const seen = new Set(who.violations.map((v) => v.directive));
    assert.deepEqual([...seen].sort(), ['require-trusted-types-for', 'trusted-types'], JSON.stringify(who.violations));
    assert.ok(who.policyConsole.length > 0, 'the console reports them');

    // the worker's script came with the same policy (a worker's comes from its own answer):
    // a script URL as a string is refused there too, before anything is fetched
    const [worker] = await sharedWorkers(browser, who.page, WORKER);
    assert.ok(worker, 'the stream worker runs');
    const inside = await inWorker(worker.targetId, `(() => {
      const attempt = (f) => { try { f(); return 'done'; } catch (e) { return e.name; } };
      return {
        tt: typeof trustedTypes,
        importScripts: attempt(() => importScripts('/dist/no-such-script.js')),
        policy: attempt(() => trustedTypes.createPolicy('other', {})),
      };
    })()`);
    assert.deepEqual(inside, { tt: 'object', importScripts: 'TypeError', policy: 'TypeError' });
  } finally {
    await who.context.close();
  }
});
