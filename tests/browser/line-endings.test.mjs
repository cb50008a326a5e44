// End-to-end: a document with Windows line endings ("\r\n"), as a script puts a file from
// disk (PUT /api/rooms/{id}/document). The server counts every "\r" as a character; the
// editor must too, or each edit after such a line lands one place early per line above it,
// on the server and so on every screen. Text pasted into the editor still gets the editor's
// own line breaks ("\n"), as before.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person } from '../lib/browser.mjs';
import { createRoom, serverDocument, signUp, token, uniqueName } from '../lib/app.mjs';
import { waitFor } from '../lib/procs.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
let browser;
let P;

before(async () => {
  browser = await launch();
  P = await person(browser, BASE);
});

after(async () => {
  if (browser) await browser.close();
});

// Waits until the server's document is `want` and the page has nothing left to send.
async function serverHas(roomId, want) {
  let last;
  try {
    await waitFor(async () => {
      last = (await serverDocument(BASE, P.page, roomId)).content;
      return last === want && await P.page.getAttribute('.room', 'data-sync') === 'synchronized';
    }, { what: 'the server\'s document', timeout: 15000 });
  } catch (e) {
    assert.fail(`${e.message}: ${JSON.stringify(last)}, not ${JSON.stringify(want)}`);
  }
}

test('a document with CRLF line endings: what a person types lands where they typed it, on the server too; pasted CRLF text arrives with "\\n" line breaks', async () => {
  await signUp(P.page, uniqueName('crlf'));
  const roomId = await createRoom(P.page, 'line endings', 'python');
  const put = await fetch(`${BASE}/api/rooms/${roomId}/document`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${await token(P.page)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ content: 'a = 1\r\nb = 2\r\n', base_revision: 0 }),
  });
  assert.equal(put.status, 200, await put.text());
  const editor = '[data-role="editor"] .cm-content';
  // the page shows it as three lines (the last one empty)
  await waitFor(async () => (await P.page.locator(`${editor} .cm-line`).allTextContents()).length === 3
    && (await P.page.textContent(editor)).includes('b = 2'), { what: 'the page showing the text', timeout: 15000 });

  await P.page.click(editor);
  await P.page.keyboard.press('Control+End');
  await P.page.keyboard.type('c = 3');
  await P.page.keyboard.press('Control+Home');
  await P.page.keyboard.press('ArrowDown');
  await P.page.keyboard.press('Home');
  await P.page.keyboard.type('# ');
  await serverHas(roomId, 'a = 1\r\n# b = 2\r\nc = 3');

  // a paste from a Windows program (its clipboard text has "\r\n" line breaks)
  await P.page.keyboard.press('Control+End');
  await P.page.evaluate((sel) => {
    const data = new DataTransfer();
    data.setData('text/plain', '\r\nd = 4\r\ne = 5');
    document.querySelector(sel).dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, editor);
  await serverHas(roomId, 'a = 1\r\n# b = 2\r\nc = 3\nd = 4\ne = 5');
  assert.deepEqual(P.problems, [], 'no console errors, exceptions or CSP violations');
});
