// Sharing, in the room's header where a newcomer looks first: the owner's invite link
// with a Copy button (or a note that the link is off); in a public room, the room's own
// address for everyone. The settings panel keeps making a new link or turning it off.

import { h, say } from './dom.js';

export function inviteUrl(r) {
  return `${location.origin}/r/${r.id}?invite=${encodeURIComponent(r.invite)}`;
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    say(`${what} copied.`, 'ok');
  } catch {
    say(`Copy the ${what.toLowerCase()} by hand: select it and press Ctrl+C.`);
  }
}

export function shareBox() {
  const el = h('div', { class: 'share', 'data-role': 'share' });

  function render(info) {
    const r = info.room;
    const parts = [];
    if (info.role === 'owner' && r.invite) {
      const url = inviteUrl(r);
      parts.push(h('span', { class: 'share-label', id: 'share-label' }, 'Invite'),
        h('a', { 'data-role': 'invite-link', href: url, class: 'mono share-link', 'aria-describedby': 'share-label',
          title: 'Whoever opens this link joins as an editor' }, url),
        h('button', { type: 'button', class: 'small primary', 'data-action': 'copy-invite', onclick: () => copy(url, 'Invite link') }, 'Copy link'));
    } else if (info.role === 'owner') {
      parts.push(h('span', { class: 'share-label muted', 'data-role': 'invite-off' }, 'Invite link off (see Share and settings)'));
    } else if (r.visibility === 'public') {
      const url = `${location.origin}/r/${r.id}`;
      parts.push(h('span', { class: 'share-label' }, 'Public room'),
        h('button', { type: 'button', class: 'small', 'data-action': 'copy-room-link', onclick: () => copy(url, 'Room link') }, 'Copy room link'));
    }
    el.replaceChildren(...parts);
    el.hidden = parts.length === 0;
  }

  return { el, render };
}
