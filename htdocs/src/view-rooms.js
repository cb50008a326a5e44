// The room list: the caller's rooms, a form to create one and a box to open a link.

import { api } from './api.js';
import { fieldError, formatTime, h, named, say } from './dom.js';
import { LANGUAGES, languageLabel, languageName } from './languages.js';
import { canRun, editOnlyText, loadRuntimes } from './runtimes.js';

// "/r/ID?invite=CODE", a full URL of one, or a bare id -> the path to open.
export function roomPathFrom(text) {
  const s = text.trim();
  if (/^[A-Za-z0-9_-]+$/.test(s)) return `/r/${s}`;
  try {
    const u = new URL(s, location.origin);
    const m = u.pathname.match(/^\/r\/([A-Za-z0-9_-]+)\/?$/);
    if (!m) return null;
    const invite = u.searchParams.get('invite');
    return `/r/${m[1]}${invite ? `?invite=${encodeURIComponent(invite)}` : ''}`;
  } catch {
    return null;
  }
}

export async function renderRooms(main, { navigate, isCurrent }) {
  const { rooms } = await api('GET', '/api/rooms');
  if (!isCurrent()) return { destroy() {} };
  main.className = 'narrow';

  const create = h('form', { class: 'card' },
    h('h2', null, 'New room'),
    h('div', { class: 'row wrap' },
      h('label', { class: 'grow' }, 'Room name',
        h('input', { name: 'room-name', required: true, maxlength: 100, placeholder: 'e.g. Interview warm-up' })),
      h('label', null, 'Language',
        h('select', { name: 'language' }, LANGUAGES.map(([id, name]) => h('option', { value: id }, name))))),
    h('p', { class: 'muted small', 'data-role': 'language-note', hidden: true }),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', 'data-action': 'create-room' }, 'Create room')));
  // Languages without a runtime on this server are marked "edit only" once the list
  // arrives, and picking one says what that means before the room exists.
  let runtimes = null;
  const note = create.querySelector('[data-role="language-note"]');
  const select = create.elements.language;
  const explain = () => {
    const runnable = canRun(runtimes, select.value);
    note.hidden = runnable !== false;
    note.textContent = runnable === false ? editOnlyText(languageName(select.value)) : '';
  };
  select.addEventListener('change', explain);
  loadRuntimes().then((list) => {
    if (!list || !isCurrent()) return;
    runtimes = list;
    for (const opt of select.options) {
      const runnable = canRun(list, opt.value);
      opt.textContent = languageLabel(opt.value, runnable);
      opt.dataset.runnable = String(runnable);
    }
    explain();
  });
  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = create.elements['room-name'].value.trim();
    if (!name) {
      fieldError(create.elements['room-name'], 'Give the room a name.');
      create.elements['room-name'].focus();
      return;
    }
    const button = create.querySelector('[data-action="create-room"]');
    button.disabled = true;
    try {
      const { room } = await api('POST', '/api/rooms', { name, language: create.elements.language.value });
      navigate(`/r/${room.id}`);
    } catch (e) {
      if (e.status === 400 && /name/.test(e.message)) fieldError(create.elements['room-name'], e.message);
      else say(e.message);
      button.disabled = false;
    }
  });

  const join = h('form', { class: 'card' },
    h('h2', null, 'Open a room'),
    h('label', null, 'Room link or id',
      h('input', { name: 'room-link', placeholder: `${location.origin}/r/…`, autocomplete: 'off' })),
    h('div', { class: 'row' }, h('button', { type: 'submit', 'data-action': 'join-room' }, 'Open')));
  join.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const path = roomPathFrom(join.elements['room-link'].value);
    if (!path) {
      fieldError(join.elements['room-link'], 'That is not a room link. It looks like /r/abc123?invite=…');
      join.elements['room-link'].focus();
      return;
    }
    navigate(path);
  });

  const list = h('ul', { class: 'room-list', 'data-role': 'rooms' },
    rooms.length ? rooms.map((r) => h('li', null,
      h('a', { href: `/r/${encodeURIComponent(r.id)}`, 'data-link': true, class: 'room-link' }, named(r.name)),
      h('span', { class: 'muted small' }, ` ${languageName(r.language)} · ${r.role} · `,
        r.owner ? ['by ', named(r.owner.username), ' · '] : null, formatTime(r.created_at))))
      : h('li', { class: 'muted' }, 'No rooms yet: create one above, or open a link a friend sent you.'));

  main.append(create, join, h('section', { class: 'card' }, h('h2', null, 'Your rooms'), list));
  create.elements['room-name'].focus();
  return { destroy() {} };
}
