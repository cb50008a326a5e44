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
  let early = []; // events that came while our request's answer was on its way
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
      const why = result && typeof result === 'object' && result.error ? String(result.error) : '';
      show('failed', kind, why ? `The assistant could not answer: ${why}` : 'The assistant could not answer.');
    } else {
      show('answered', kind, answerText(result) || '(the assistant had nothing to say)', note);
    }
  }

  async function poll(id, kind) {
    try {
      const { job } = await api('GET', `/api/jobs/${encodeURIComponent(id)}`);
      if (!pending || pending.id !== id) return;
      if (job.status === 'finished') {
        done(kind, job.status, job.result);
        return;
      }
      if (job.status === 'failed' || job.status === 'cancelled') {
        done(kind, 'failed', { error: job.error || (job.status === 'cancelled' ? 'the request was cancelled' : '') });
        return;
      }
      if (job.status === 'queued') { // not silence: say what it waits for
        show('waiting', kind, typeof job.position === 'number' && job.position > 0
          ? `Waiting for a free worker: ${job.position} ahead of this request…` : 'Waiting for a free worker…');
      }
    } catch { /* keep trying while the answer is due */ }
    if (pending && pending.id === id) pollTimer = setTimeout(() => poll(id, kind), POLL_MS);
  }

  async function ask(kind) {
    early = [];
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
      const before = early;
      early = [];
      for (const d of before) onEvent(d);
      if (!pending || pending.id !== id) return; // one of them settled it
      pollTimer = setTimeout(() => poll(id, kind), POLL_MS * 2);
    } catch (e) {
      busy(false);
      let msg = e.message;
      if (e.code === 'ai_disabled') msg = `No AI provider is configured on this server, so the assistant cannot answer (${e.message}).`;
      else if (e.code === 'ai_misconfigured') msg = `The AI assistant is not set up correctly on this server: ${e.message}.`;
      else if (e.code === 'no_code') msg = 'There is no code to look at yet: write some, or ask a question.';
      else if (e.status === 404 || e.status === 405) msg = 'The AI assistant is not available on this server.';
      else if (e.status === 429 && /queue_full$/.test(e.code || '')) msg = `Too many requests are waiting. Try again in ${e.retryAfter || 5} seconds.`;
      else if (e.status === 429) msg = `You have asked often in the last minute. Try again in ${e.retryAfter || 60} seconds.`;
      else if (e.status === 503) msg = `The AI assistant is unavailable right now (${e.message}).`;
      show('failed', kind, msg);
    }
  }

  hint.addEventListener('click', () => ask('hint'));
  review.addEventListener('click', () => ask('review'));

  // `ai` event: {job_id, kind, status, result?}; ours (the one we wait for) is shown.
  function onEvent(d) {
    if (!d) return;
    if (!pending && answer.dataset.state === 'waiting') { // ours may be this one: keep it for a moment
      if (early.length < 50) early.push(d);
      return;
    }
    if (!pending || d.job_id !== pending.id) return;
    if (d.status === 'finished' && d.result !== undefined) done(d.kind || pending.kind, d.status, d.result);
    else if ((d.status === 'failed' || d.status === 'cancelled') && d.error) done(d.kind || pending.kind, 'failed', { error: d.error });
    else if (d.status === 'finished' || d.status === 'failed' || d.status === 'cancelled') poll(pending.id, pending.kind);
  }

  return { el, onEvent, destroy() { clearTimeout(pollTimer); } };
}
