// End-to-end: an edit the server committed, whose answer and event were both lost, is asked
// about again only after the room has moved on past the server's kept log (1,000
// operations). The server can no longer answer the repeat with the operation; it answers
// `409 revision_too_old` with `applied_revision`, the revision the edit became (docs/API.md,
// "Sending an operation again is safe"), and the page takes the edit as committed: it is in
// the document once, not rebased onto the fetched text and sent a second time
// (docs/CLIENT.md, "Never twice"). Every wait is for a condition, never a fixed time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person } from '../lib/browser.mjs';
import { converged, createRoom, editorText, holdableStream, serverDocument, signUp, token, uniqueName, waitForEditor } from '../lib/app.mjs';
import { waitFor } from '../lib/procs.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
const EDITOR = '[data-role="editor"] .cm-content';
let browser;
let P;

before(async () => {
  browser = await launch();
  P = await person(browser, BASE);
  await signUp(P.page, uniqueName('past'));
});

after(async () => {
  if (browser) await browser.close();
});

test('an edit committed before the kept log, whose answer was lost, is in the document once after a reload', async () => {
  const p = P.page;
  p.on('dialog', (d) => d.accept()); // leaving with unsent edits asks first
  await p.goto('/');
  const roomId = await createRoom(p, 'past the log', 'python');
  // the stream over a WebSocket whose events the test can hold back; the page's stream is
  // open meanwhile
  const stream = await holdableStream(p);
  await p.goto(`/r/${roomId}?transport=ws`);
  await waitForEditor(p);
  await p.click(EDITOR);
  await p.keyboard.insertText('before\n');
  await converged(BASE, [p], roomId);

  // the next edit reaches the server, but neither its answer nor its event comes back
  stream.hold();
  let first = null;
  await p.route('**/operations', async (r) => {
    if (!first) {
      first = { body: JSON.parse(r.request().postData()), answer: null };
      const res = await r.fetch().catch(() => null);
      first.answer = res ? await res.json() : null;
    }
    await r.abort('connectionreset');
  });
  await p.keyboard.press('Control+End');
  await p.keyboard.insertText('only once');
  await waitFor(() => first && first.answer, { what: 'the edit committed on the server', timeout: 20000 });
  assert.equal((await serverDocument(BASE, p, roomId)).content, 'before\nonly once');
  const became = first.answer.revision;

  // the room moves on: 1,010 commits that change nothing (a retain of the whole text) push
  // the edit's operation out of the kept log
  const auth = { authorization: `Bearer ${await token(p)}`, 'content-type': 'application/json' };
  let revision = became;
  for (let i = 0; i < 1010; i++) {
    const r = await fetch(`${BASE}/api/rooms/${roomId}/operations`, { method: 'POST', headers: auth, body: JSON.stringify({ revision, ops: [] }) });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    revision = JSON.parse(text).revision;
  }

  // the page is reloaded with the edit still uncertain; its stream stays held, so the
  // 15 s hold runs out and the resync asks the server about the edit under its client_id
  await p.waitForSelector('.room:not([data-sync="synchronized"])');
  await p.reload();
  await waitForEditor(p);
  await p.unroute('**/operations');
  const sent = [];
  p.on('request', (r) => { if (r.url().endsWith('/operations')) sent.push(JSON.parse(r.postData() || '{}')); });
  const answers = [];
  p.on('response', async (r) => { if (r.url().endsWith('/operations')) answers.push({ status: r.status(), json: await r.json().catch(() => null) }); });
  await waitFor(() => answers.length > 0, { what: 'the kept edit asked about after the hold', timeout: 30000 });
  stream.release();
  assert.deepEqual(sent[0], first.body, 'sent again exactly as the first time');
  assert.equal(answers[0].status, 409);
  assert.equal(answers[0].json.error, 'revision_too_old');
  assert.equal(answers[0].json.applied_revision, became, 'the server says which revision it became');

  const doc = await converged(BASE, [p], roomId, { timeout: 30000 });
  assert.equal(doc.content, 'before\nonly once', 'the edit is in the document once');
  assert.equal(await editorText(p), 'before\nonly once');
  assert.equal(doc.revision, revision, 'nothing was committed after the question');
  assert.deepEqual(sent.map((b) => b.client_id), [first.body.client_id], 'and the edit was not sent as a new one');
  // requests the browser logs as failed: the ones cut on purpose, and the 409
  const problems = P.problems.filter((m) => !/Failed to load resource|ERR_FAILED|WebSocket connection/.test(m));
  assert.deepEqual(problems, [], 'no console errors, exceptions or CSP violations');
});
