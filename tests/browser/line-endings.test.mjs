// End-to-end: what the editor sends for characters the server counts or refuses. A NUL
// pasted in (last test). A document with Windows line endings ("\r\n"), as a script puts a file from
// disk (PUT /api/rooms/{id}/document). The server counts every "\r" as a character; the
// editor must too, or each edit after such a line lands one place early per line above it,
// on the server and so on every screen. And editing such a document keeps its line endings:
// End stops before a line's "\r", Enter makes "\r\n", Backspace and Delete take a "\r\n"
// whole, pasted text gets "\r\n". A document with "\n" line endings gets "\n" from a paste.
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
  await signUp(P.page, uniqueName('crlf'));
});

after(async () => {
  if (browser) await browser.close();
});

// A new room whose document is `content`, shown in the page as `lines` lines.
async function roomWith(content, lines) {
  await P.page.goto('/');
  const roomId = await createRoom(P.page, 'line endings', 'python');
  const put = await fetch(`${BASE}/api/rooms/${roomId}/document`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${await token(P.page)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ content, base_revision: 0 }),
  });
  assert.equal(put.status, 200, await put.text());
  await waitFor(async () => (await P.page.locator(`${EDITOR} .cm-line`).allTextContents()).length === lines
    && (await P.page.textContent(EDITOR)).includes(content.split(/\r?\n/)[0]), { what: 'the page showing the text', timeout: 15000 });
  await P.page.click(EDITOR);
  return roomId;
}

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

// A paste from another program (its clipboard text as given).
const paste = (text) => P.page.evaluate(([sel, t]) => {
  const data = new DataTransfer();
  data.setData('text/plain', t);
  document.querySelector(sel).dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
}, [EDITOR, text]);

test('a document with CRLF line endings: what a person types lands where they typed it, on the server too, and its line endings stay CRLF', async () => {
  const roomId = await roomWith('a = 1\r\nb = 2\r\n', 3);
  const keys = P.page.keyboard;
  await keys.press('Control+End');
  await keys.type('c = 3');
  await keys.press('Control+Home');
  await keys.press('ArrowDown');
  await keys.press('Home');
  await keys.type('# ');
  await serverHas(roomId, 'a = 1\r\n# b = 2\r\nc = 3');
  // End stops before the line's "\r"; Enter makes "\r\n"
  await keys.press('Control+Home');
  await keys.press('End');
  await keys.type('0');
  await keys.press('Enter');
  await serverHas(roomId, 'a = 10\r\n\r\n# b = 2\r\nc = 3');
  // Backspace at a line's start takes the "\r\n" before it whole, Delete at a line's end too
  await keys.press('Backspace');
  await serverHas(roomId, 'a = 10\r\n# b = 2\r\nc = 3');
  await keys.press('End');
  await keys.press('End');
  await keys.press('Delete');
  await serverHas(roomId, 'a = 10# b = 2\r\nc = 3');
  // ArrowRight at a line's end goes on to the next line's start, ArrowLeft back before "\r"
  await keys.press('End');
  await keys.press('ArrowRight');
  await keys.type('+');
  await keys.press('ArrowLeft');
  await keys.press('ArrowLeft');
  await keys.type('!');
  await serverHas(roomId, 'a = 10# b = 2!\r\n+c = 3');
  // a paste gets the document's line endings, whatever the clipboard has
  await keys.press('Control+End');
  await paste('\nd = 4\re = 5\r\n');
  await serverHas(roomId, 'a = 10# b = 2!\r\n+c = 3\r\nd = 4\r\ne = 5\r\n');
  assert.deepEqual(P.problems, [], 'no console errors, exceptions or CSP violations');
});

test('a document with LF line endings: pasted CRLF text arrives with "\\n" line breaks, as ever', async () => {
  const roomId = await roomWith('x = 1\n', 2);
  await P.page.keyboard.press('Control+End');
  await paste('y = 2\r\nz = 3\r');
  await serverHas(roomId, 'x = 1\ny = 2\nz = 3\n');
  await P.page.keyboard.press('Enter');
  await serverHas(roomId, 'x = 1\ny = 2\nz = 3\n\n');
  assert.deepEqual(P.problems, [], 'no console errors, exceptions or CSP violations');
});

// The server takes no NUL (docs/API.md, "Live documents": 400), so the page sends U+FFFD in
// its place, as for a lone surrogate, and shows the same. Before, the NUL went out as it was:
// the POST was refused for good and the page put the editor back to the server's text,
// dropping the paste and everything typed after it while the refusal was on its way.
test('a pasted NUL arrives as U+FFFD, and the paste and the typing after it are kept', async () => {
  const roomId = await roomWith('a = 1\n', 2);
  await P.page.keyboard.press('Control+End');
  await paste('b = "x\u0000y"');
  await P.page.keyboard.type('\nc = 2');
  await serverHas(roomId, 'a = 1\nb = "x\ufffdy"\nc = 2');
  assert.equal((await P.page.textContent(EDITOR)).includes('\u0000'), false, 'the page shows no NUL');
  assert.deepEqual(P.problems, [], 'no console errors, exceptions or CSP violations');
});
