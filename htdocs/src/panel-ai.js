// The AI panel: a hint or a review of the room's code. Answers are shown as text, never
// as HTML, whatever the model writes.

import { api, room } from './api.js';
import { h } from './dom.js';

const POLL_MS = 2000;

// The text of an AI result, whatever its shape: a string, or an object naming it.
export function answerText(result) {
  if (result === null || result === undefined) return '';
  if (typeof result === 'string') return result;
  for (const k of ['text', 'answer', 'content', 'message', 'hint', 'review', 'output']) {
    if (typeof result[k] === 'string' && result[k]) return result[k];
  }
  if (Array.isArray(result.diagnostics)) {
    return result.diagnostics.map((d) => (typeof d === 'string' ? d : d.message || JSON.stringify(d))).join('\n');
  }
  return JSON.stringify(result, null, 2);
}

export function aiPanel({ roomId, code, language }) {
  const question = h('textarea', { name: 'ai-question', rows: 2, placeholder: 'Optional: what do you want to know?' });
  const answer = h('div', { class: 'ai-answer', 'data-role': 'ai-answer', 'aria-live': 'polite', tabindex: '0', 'data-state': 'idle' },
    h('p', { class: 'muted' }, 'Ask for a hint when you are stuck, or a review when you are done.'));
  const hint = h('button', { type: 'button', 'data-action': 'ai-hint' }, 'Hint');
  const review = h('button', { type: 'button', 'data-action': 'ai-review' }, 'Review');
  const el = h('section', { class: 'panel', 'aria-labelledby': 'ai-title' },
    h('h3', { id: 'ai-title' }, 'AI assistant'),
    h('label', null, 'Question', question),
    h('div', { class: 'row' }, hint, review),
    answer);

  let pending = null; // {id, kind}
  let pollTimer = null;

  function show(state, kind, text, note) {
    answer.dataset.state = state;
    const parts = [];
    if (kind) parts.push(h('div', { class: 'stream-label' }, kind === 'review' ? 'Review' : 'Hint', note ? ` · ${note}` : ''));
    parts.push(h('div', { class: `ai-text ${state === 'failed' ? 'error' : ''}` }, text));
    answer.replaceChildren(...parts);
  }

  function busy(on) {
    hint.disabled = on;
    review.disabled = on;
    answer.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  function done(kind, status, result, note) {
    pending = null;
    clearTimeout(pollTimer);
    busy(false);
    if (status === 'failed') {
      const why = result && typeof result === 'object' && result.error ? result.error : 'The assistant could not answer.';
      show('failed', kind, String(why));
    } else {
      show('answered', kind, answerText(result) || '(the assistant had nothing to say)', note);
    }
  }

  async function poll(id, kind) {
    try {
      const { job } = await api('GET', `/api/jobs/${encodeURIComponent(id)}`);
      if (!pending || pending.id !== id) return;
      if (job.status === 'finished' || job.status === 'failed') {
        done(kind, job.status, job.result !== undefined ? job.result : { error: job.error });
        return;
      }
    } catch { /* keep trying while the answer is due */ }
    if (pending && pending.id === id) pollTimer = setTimeout(() => poll(id, kind), POLL_MS);
  }

  async function ask(kind) {
    busy(true);
    show('waiting', kind, 'Thinking…');
    const body = { code: code(), language: language() };
    if (question.value.trim()) body.question = question.value.trim();
    try {
      const res = await api('POST', `${room(roomId)}/ai/${kind}`, body);
      if (res && res.result !== undefined && !res.job) {
        done(kind, 'finished', res.result, res.cached ? 'cached' : '');
        return;
      }
      const id = res.job && (res.job.id || res.job);
      pending = { id, kind };
      if (res.job && res.job.result !== undefined && res.job.status === 'finished') {
        done(kind, 'finished', res.job.result);
        return;
      }
      pollTimer = setTimeout(() => poll(id, kind), POLL_MS * 2);
    } catch (e) {
      busy(false);
      let msg = e.message;
      if (e.status === 404 || e.status === 405) msg = 'The AI assistant is not available on this server.';
      else if (e.status === 429) msg = `You have asked often in the last minute. Try again in ${e.retryAfter || 60} seconds.`;
      else if (e.status === 503) msg = `The AI assistant is unavailable right now (${e.message}).`;
      show('failed', kind, msg);
    }
  }

  hint.addEventListener('click', () => ask('hint'));
  review.addEventListener('click', () => ask('review'));

  // `ai` event: {job_id, kind, status, result?}; ours (the one we wait for) is shown.
  function onEvent(d) {
    if (!d || !pending || d.job_id !== pending.id) return;
    if (d.status === 'finished' || d.status === 'failed') {
      if (d.result !== undefined) done(d.kind || pending.kind, d.status, d.result);
      else poll(pending.id, pending.kind);
    }
  }

  return { el, onEvent, destroy() { clearTimeout(pollTimer); } };
}
