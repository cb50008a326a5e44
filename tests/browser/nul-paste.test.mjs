// End-to-end: text with a NUL character (U+0000) pasted into the editor. The server takes no
// NUL (docs/API.md, "Live documents": 400), so the page sends U+FFFD in its place, as it does
// for a lone surrogate, and shows the same. Before, the NUL went out as it was: the POST was
// refused for good, and the page put the editor back to the server's text, dropping the
// paste and everything typed after it while the refusal was on its way.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person } from '../lib/browser.mjs';
import { createRoom, serverDocument, signUp, token, uniqueName } from '../lib/app.mjs';
import { waitFor } from '../lib/procs.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
const EDITOR = '[data-role="editor"] .cm-content';
let browser;
let P;

before(async () => {
  browser = await launch();
  P = await person(browser, BASE);
  await signUp(P.page, uniqueName('nul'));
});

after(async () => {
  if (browser) await browser.close();
});

const paste = (text) => P.page.evaluate(([sel, t]) => {
  const data = new DataTransfer();
  data.setData('text/plain', t);
  document.querySelector(sel).dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
}, [EDITOR, text]);

test('a pasted NUL arrives as U+FFFD, and the paste and the typing after it are kept', async () => {
  await P.page.goto('/');
  const roomId = await createRoom(P.page, 'nul', 'python');
  const put = await fetch(`${BASE}/api/rooms/${roomId}/document`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${await token(P.page)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ content: 'a = 1\n', base_revision: 0 }),
  });
  assert.equal(put.status, 200, await put.text());
  await waitFor(async () => (await P.page.textContent(EDITOR)).includes('a = 1'), { what: 'the page showing the text', timeout: 15000 });
  await P.page.click(EDITOR);
  await P.page.keyboard.press('Control+End');
  await paste('b = "x\u0000y"');
  await P.page.keyboard.type('\nc = 2');
  const want = 'a = 1\nb = "x\ufffdy"\nc = 2';
  let last;
  try {
    await waitFor(async () => {
      last = (await serverDocument(BASE, P.page, roomId)).content;
      return last === want && await P.page.getAttribute('.room', 'data-sync') === 'synchronized';
    }, { what: 'the server\'s document', timeout: 15000 });
  } catch (e) {
    assert.fail(`${e.message}: ${JSON.stringify(last)}, not ${JSON.stringify(want)}`);
  }
  assert.equal((await P.page.textContent(EDITOR)).includes('\u0000'), false, 'the page shows no NUL');
  assert.deepEqual(P.problems, [], 'no console errors, exceptions or CSP violations');
});
