// The room's settings: a new invite link or none (owner; the link itself is in the room's
// header, share.js), name, language and visibility (owner), members and their roles
// (owner), leaving or deleting the room. Removing someone and deleting the room take a
// second click on the same button.

import { api, room, session } from './api.js';
import { h, named, say } from './dom.js';
import { LANGUAGES, languageLabel } from './languages.js';
import { canRun, knownRuntimes } from './runtimes.js';

const CONFIRM_MS = 5000;

// leaving(on): told before this user leaves or deletes the room (and again with false if
// that failed), so the room's own news of it is not taken for a removal.
export function settingsPanel({ roomId, navigate, onInvite, leaving = () => {} }) {
  const el = h('section', { class: 'panel', 'aria-labelledby': 'settings-title' });
  let armed = null;
  let shown = null; // the info last rendered, to show an invite change at once

  // Arms `button` for a second click within a few seconds, saying what it will do; true
  // when this click is that second one.
  function confirmed(button, question, label) {
    if (armed === button) {
      armed = null;
      return true;
    }
    armed = button;
    const name = button.getAttribute('aria-label');
    button.removeAttribute('aria-label'); // the question is the name now
    button.textContent = question;
    button.classList.add('armed');
    setTimeout(() => {
      if (armed === button) {
        armed = null;
        button.textContent = label;
        if (name) button.setAttribute('aria-label', name);
        button.classList.remove('armed');
      }
    }, CONFIRM_MS);
    return false;
  }

  async function patch(body) {
    try {
      await api('PATCH', room(roomId), body);
      say('Saved.', 'ok');
    } catch (e) {
      say(e.message);
    }
  }

  // A new code (the old link stops working; removed members need the new one) or the
  // link switched off. The room event that follows refreshes the owner's other tabs.
  async function changeInvite(method) {
    try {
      const res = await api(method, `${room(roomId)}/invite`, method === 'POST' ? {} : undefined);
      say(method === 'POST' ? 'New invite link made: the old one no longer works.' : 'Invite link turned off.', 'ok');
      if (shown) {
        const info = { ...shown, room: { ...shown.room, ...res.room } };
        render(info);
        if (onInvite) onInvite(info);
      }
    } catch (e) {
      say(e.message);
    }
  }

  function inviteControls(r) {
    const rotateButton = h('button', { type: 'button', class: 'small', 'data-action': 'rotate-invite', onclick: () => changeInvite('POST') },
      r.invite ? 'New invite link' : 'Turn invite link on');
    if (!r.invite) {
      return [h('p', { class: 'small muted', 'data-role': 'invite-off' }, 'The invite link is off: no one can join with a link.'),
        h('div', { class: 'row' }, rotateButton)];
    }
    return [h('p', { class: 'small muted' }, 'The invite link is at the top of the room: whoever opens it joins as an editor.'),
      h('div', { class: 'row wrap' }, rotateButton,
        h('button', { type: 'button', class: 'small', 'data-action': 'disable-invite', onclick: () => changeInvite('DELETE') }, 'Turn invite link off'))];
  }

  async function setRole(m, role) {
    try {
      await api('PUT', `${room(roomId)}/members/${m.user.id}`, { role });
      say(`${m.user.username} is now ${role === 'viewer' ? 'a viewer' : 'an editor'}.`, 'ok');
    } catch (e) {
      say(e.message);
    }
  }

  async function remove(m, button) {
    const me = m.user.id === session.user?.id;
    if (button && !me && !confirmed(button, `Click again to remove ${m.user.username}`, 'Remove')) return;
    if (me) leaving(true);
    try {
      await api('DELETE', `${room(roomId)}/members/${m.user.id}`);
      if (me) navigate('/', 'You left the room.');
    } catch (e) {
      if (me) leaving(false);
      say(e.message);
    }
  }

  // Deleting takes two clicks on the same button (no dialogs: they trap keyboards and tests).
  async function del(button) {
    if (!confirmed(button, 'Click again to delete for everyone', 'Delete room')) return;
    leaving(true);
    try {
      await api('DELETE', room(roomId));
      navigate('/', 'The room was deleted.');
    } catch (e) {
      leaving(false);
      say(e.message);
    }
  }

  function render(info) {
    shown = info;
    const r = info.room;
    const owner = info.role === 'owner';
    const parts = [h('h3', { id: 'settings-title' }, owner ? 'Share and settings' : 'Room')];
    if (owner) {
      parts.push(...inviteControls(r));
      const form = h('form', { class: 'settings' },
        h('label', null, 'Name', h('input', { name: 'settings-name', value: r.name, maxlength: 100, required: true })),
        h('div', { class: 'row wrap' },
          h('label', { class: 'grow' }, 'Language', h('select', { name: 'settings-language' },
            LANGUAGES.map(([id]) => h('option', { value: id, selected: id === r.language }, languageLabel(id, canRun(knownRuntimes(), id)))))),
          h('label', { class: 'grow' }, 'Visibility', h('select', { name: 'settings-visibility' },
            h('option', { value: 'private', selected: r.visibility === 'private' }, 'Private (invite only)'),
            h('option', { value: 'public', selected: r.visibility === 'public' }, 'Public (anyone signed in)')))),
        h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save')));
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const body = {};
        const name = form.elements['settings-name'].value.trim();
        if (name && name !== r.name) body.name = name;
        if (form.elements['settings-language'].value !== r.language) body.language = form.elements['settings-language'].value;
        if (form.elements['settings-visibility'].value !== r.visibility) body.visibility = form.elements['settings-visibility'].value;
        if (Object.keys(body).length) patch(body);
      });
      parts.push(form);
    }
    parts.push(h('h4', null, 'Members'));
    parts.push(h('ul', { class: 'members' }, (info.members || []).map((m) => {
      const me = m.user.id === session.user?.id;
      const controls = [];
      if (owner && m.role !== 'owner') {
        const sel = h('select', { 'aria-label': `Role of ${m.user.username}`, name: 'member-role' },
          h('option', { value: 'editor', selected: m.role === 'editor' }, 'editor'),
          h('option', { value: 'viewer', selected: m.role === 'viewer' }, 'viewer'));
        sel.addEventListener('change', () => setRole(m, sel.value));
        const rm = h('button', { type: 'button', class: 'small danger', 'data-action': 'remove-member', 'aria-label': `Remove ${m.user.username}` }, 'Remove');
        rm.addEventListener('click', () => remove(m, rm));
        controls.push(sel, rm);
      } else {
        controls.push(h('span', { class: 'muted small' }, m.role));
      }
      return h('li', { 'data-member': m.user.username }, h('span', { class: 'grow' }, named(m.user.username), me ? ' (you)' : ''), ...controls);
    })));
    if (owner) {
      const b = h('button', { type: 'button', class: 'danger' }, 'Delete room');
      b.addEventListener('click', () => del(b));
      parts.push(h('div', { class: 'row' }, b));
    } else if (info.role) {
      const me = (info.members || []).find((m) => m.user.id === session.user?.id);
      if (me) parts.push(h('div', { class: 'row' }, h('button', { type: 'button', onclick: () => remove(me) }, 'Leave room')));
    }
    el.replaceChildren(...parts);
  }

  return { el, render };
}
