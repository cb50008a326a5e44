// End-to-end, in headless Chromium against the real stack: two people type words at one
// spot at the same moment and each keeps their words whole (lib/ot.h, "Who goes first");
// then Ctrl-Z in one window takes back only that person's typing, in both windows, and
// Ctrl-Shift-Z brings it back (whatever case the letter comes in: Caps Lock).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person, screenshot } from '../lib/browser.mjs';
import { converged, createRoom, signUp, uniqueName, waitForEditor } from '../lib/app.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
const FIRST_A = 'alpha beta gamma ';
const FIRST_B = 'δέλτα 🌍 εψιλον ';
const THEN_A = 'delta epsilon ';
const THEN_B = 'ζήτα 日本 ';
const WORDS_A = FIRST_A + THEN_A;
const WORDS_B = FIRST_B + THEN_B;
let browser;
let A;
let B;
let roomId;

before(async () => {
  browser = await launch();
  A = await person(browser, BASE);
  B = await person(browser, BASE);
  await signUp(A.page, uniqueName('ann'));
  roomId = await createRoom(A.page, 'words', 'python');
  const invite = await A.page.getAttribute('[data-role="invite-link"]', 'href');
  await signUp(B.page, uniqueName('bob'), invite);
  await waitForEditor(B.page);
});

after(async () => {
  if (browser) await browser.close();
});

const noProblems = (who) => assert.deepEqual(who.problems, [], 'no console errors, exceptions or CSP violations');

test('two people typing words at one spot keep them whole, in both windows', async () => {
  // both carets at the start of the new, empty document
  await A.page.click('[data-role="editor"] .cm-content');
  await B.page.click('[data-role="editor"] .cm-content');
  await Promise.all([
    A.page.keyboard.type(FIRST_A, { delay: 15 }),
    B.page.keyboard.type(FIRST_B, { delay: 15 }),
  ]);
  const first = await converged(BASE, [A.page, B.page], roomId);
  assert.ok(first.content === FIRST_A + FIRST_B || first.content === FIRST_B + FIRST_A,
    `words torn apart: ${JSON.stringify(first.content)}`);
  // A caret move ends an undo group in CodeMirror's history, so each phrase is an undo
  // group of its own however fast the second follows the first: Ctrl-Z below then always
  // leaves the first phrase and Ctrl-Shift-Z has something to redo after an undo that
  // left more to undo. Left then right again puts each caret back where it was.
  for (const p of [A.page, B.page]) {
    await p.keyboard.press('ArrowLeft');
    await p.keyboard.press('ArrowRight');
  }
  // and on, each from where their caret was left: where one run meets the other, a
  // caret must not have been carried past the other's text
  await Promise.all([
    A.page.keyboard.type(THEN_A, { delay: 15 }),
    B.page.keyboard.type(THEN_B, { delay: 15 }),
  ]);
  const doc = await converged(BASE, [A.page, B.page], roomId);
  await screenshot(A.page, 'interleave-words');
  // one run each: the two phrases side by side, in whichever order the authors sort
  assert.ok(doc.content === WORDS_A + WORDS_B || doc.content === WORDS_B + WORDS_A,
    `words torn apart: ${JSON.stringify(doc.content)}`);
});

// After undo, `who`'s text: what is left once the other's words are taken out, a strict
// start of `words` (an undo takes back the last change, from the end of the run) that
// still has the first phrase (the phrases are separate undo groups; a loaded machine can
// split the second into more, typed over 500 ms apart).
function undoneOnlyOwn(content, first, words, others) {
  assert.ok(content.includes(others), `the other's words survive: ${JSON.stringify(content)}`);
  const left = content.replace(others, '');
  assert.ok(left.length < words.length && words.startsWith(left) && left.startsWith(first),
    `only the undoer's own last typing was taken back: ${JSON.stringify(content)}`);
}

// After a keystroke: the text once the editors and the server agree on something other
// than `from` (a key press returns before the editor has made it an edit, so the state
// right after it can still be the one before)
async function convergedAwayFrom(from) {
  const end = Date.now() + 15000;
  for (;;) {
    const { content } = await converged(BASE, [A.page, B.page], roomId);
    if (content !== from || Date.now() > end) return content;
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Ctrl-Shift-Z as a keyboard sends it: event.key 'Z'; with Caps Lock on: key 'z' with Shift
// held, which CodeMirror's own keymap matches as Ctrl-z first (an undo whenever there is
// more to undo). Both must redo; each window has more to undo at that point (two groups).
const REDO = 'Control+Shift+Z';
const REDO_CAPS_LOCK = 'Control+Shift+z';

test('Ctrl-Z undoes only your own typing, in both windows; Ctrl-Shift-Z redoes it, in either case', async () => {
  const before = (await converged(BASE, [A.page, B.page], roomId)).content;
  await A.page.keyboard.press('Control+z');
  const undoneA = await convergedAwayFrom(before);
  undoneOnlyOwn(undoneA, FIRST_A, WORDS_A, WORDS_B);
  await A.page.keyboard.press(REDO);
  assert.equal(await convergedAwayFrom(undoneA), before);
  await B.page.keyboard.press('Control+z');
  const undoneB = await convergedAwayFrom(before);
  undoneOnlyOwn(undoneB, FIRST_B, WORDS_B, WORDS_A);
  await B.page.keyboard.press(REDO_CAPS_LOCK);
  assert.equal(await convergedAwayFrom(undoneB), before, 'Ctrl+Shift+z (Caps Lock) redoes');
  noProblems(A);
  noProblems(B);
});
