// The history panel: the room's snapshots; view one, or restore it. Restoring is an
// ordinary edit (an operation replacing the text), so everyone sees it and it can be
// undone like typing. The list is not a scroll box of its own (a wheel over it scrolls
// the tools, never stops in it): it shows the newest few, and the rest on demand. The API
// gives each snapshot's size (`length`, in characters) and, for saves since it kept them,
// who typed the change since the save before (`authors`) and how much (`inserted`,
// `deleted`, in characters).

import { api, room } from './api.js';
import { formatTime, h, named, say } from './dom.js';

const FIRST_SHOWN = 8;

function size(n) {
  return n === 1 ? '1 character' : `${n.toLocaleString()} characters`;
}

// "ann, bob · +12 −3": who typed the change and how much, as text and nodes (each name
// isolated); empty when the save does not say.
export function changeParts(s) {
  const parts = [];
  if (Array.isArray(s.authors) && s.authors.length) {
    const names = s.authors.slice(0, 3).map((a) => named(a.username));
    names.forEach((n, i) => parts.push(...(i ? [', ', n] : [n])));
    if (s.authors.length > 3) parts.push(` and ${s.authors.length - 3} more`);
  }
  if (Number.isInteger(s.inserted) && Number.isInteger(s.deleted)) {
    if (parts.length) parts.push(' · ');
    parts.push(`+${s.inserted.toLocaleString()} −${s.deleted.toLocaleString()}`);
  }
  return parts;
}

// Said in words for screen readers: "by ann and bob: 12 characters added, 3 deleted".
function changeLabel(s) {
  const who = Array.isArray(s.authors) && s.authors.length ? `by ${s.authors.map((a) => a.username).join(' and ')}` : '';
  const how = Number.isInteger(s.inserted) && Number.isInteger(s.deleted)
    ? `${size(s.inserted)} added, ${s.deleted.toLocaleString()} deleted` : '';
  return [who, how].filter(Boolean).join(': ');
}

export function historyPanel({ roomId, restore, canEdit }) {
  const list = h('ul', { class: 'history', 'data-role': 'history' });
  const more = h('button', { type: 'button', class: 'small', 'data-action': 'history-more', hidden: true });
  let all = false; // the whole list, not only the newest
  const preview = h('div', { class: 'snapshot-preview', hidden: true });
  const refresh = h('button', { type: 'button', class: 'small', onclick: () => load() }, 'Refresh');
  const el = h('section', { class: 'panel', 'aria-labelledby': 'history-title' },
    h('div', { class: 'panel-head' }, h('h3', { id: 'history-title' }, 'History'), refresh),
    list, more, preview);
  more.addEventListener('click', () => {
    all = !all;
    load();
  });
  let timer = null;
  let editable = canEdit();

  async function content(revision) {
    const snap = await api('GET', `${room(roomId)}/history/${revision}`);
    return snap.content;
  }

  async function view(s) {
    try {
      const text = await content(s.revision);
      preview.hidden = false;
      preview.replaceChildren(
        h('div', { class: 'panel-head' },
          h('span', { class: 'stream-label' }, `Revision ${s.revision} · ${formatTime(s.saved_at)}`),
          h('button', { type: 'button', class: 'small', onclick: () => { preview.hidden = true; } }, 'Close')),
        h('pre', { class: 'snapshot-text', tabindex: '0' }, text || '(empty)'));
    } catch (e) {
      say(e.message);
    }
  }

  async function doRestore(s, button) {
    button.disabled = true;
    try {
      restore(await content(s.revision));
      say(`Restored revision ${s.revision}. Undo (Ctrl+Z) brings your text back.`, 'ok');
    } catch (e) {
      say(e.message);
    } finally {
      button.disabled = !editable;
    }
  }

  async function load() {
    let snapshots;
    try {
      ({ snapshots } = await api('GET', `${room(roomId)}/history`));
    } catch (e) {
      list.replaceChildren(h('li', { class: 'muted' }, `History is unavailable: ${e.message}`));
      return;
    }
    if (!snapshots.length) {
      list.replaceChildren(h('li', { class: 'muted' }, 'No snapshots yet: they are saved a few seconds after edits.'));
      return;
    }
    const shown = all ? snapshots : snapshots.slice(0, FIRST_SHOWN);
    more.hidden = snapshots.length <= FIRST_SHOWN;
    more.textContent = all ? 'Show fewer' : `Show all ${snapshots.length}`;
    list.replaceChildren(...shown.map((s) => {
      const restoreButton = h('button', { type: 'button', class: 'small', 'data-action': 'restore', disabled: !editable, 'aria-label': `Restore revision ${s.revision}` }, 'Restore');
      restoreButton.addEventListener('click', () => doRestore(s, restoreButton));
      const change = changeParts(s);
      return h('li', { 'data-revision': s.revision },
        h('span', { class: 'grow' }, h('strong', null, `r${s.revision}`), ' ',
          h('span', { class: 'muted small' }, `${formatTime(s.saved_at)}${Number.isInteger(s.length) ? ` · ${size(s.length)}` : ''}`),
          change.length ? h('span', { class: 'history-change small', 'data-role': 'history-change', title: changeLabel(s) }, change) : null),
        h('button', { type: 'button', class: 'small', onclick: () => view(s), 'aria-label': `View revision ${s.revision}` }, 'View'),
        restoreButton);
    }));
  }

  load();
  return {
    el,
    load,
    // a `snapshot` event: a new one was saved
    onSnapshot() {
      clearTimeout(timer);
      timer = setTimeout(load, 300);
    },
    setEditable(on) {
      editable = on;
      for (const b of list.querySelectorAll('[data-action="restore"]')) b.disabled = !on;
    },
    destroy() { clearTimeout(timer); },
  };
}
