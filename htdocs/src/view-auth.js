// Sign in and sign up. One form, two buttons: Enter signs in.

import { api, session } from './api.js';
import { h, say } from './dom.js';

function message(e, kind) {
  if (e.status === 401) return 'Wrong username or password.';
  if (e.status === 409) return 'That username is taken. Sign in, or pick another one.';
  if (e.status === 429) return `Too many attempts. Try again in ${e.retryAfter || 60} seconds.`;
  if (e.status === 400 && kind === 'register') {
    return `${e.message} (usernames: 3–32 letters, digits, _ - .; passwords: at least 8 characters)`;
  }
  return e.message;
}

export function renderAuth(main, { route, roomId }) {
  main.className = 'narrow';
  let busy = false;
  async function go(kind) {
    if (busy) return;
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    if (!username || !password) {
      say('Enter a username and a password.');
      (username ? form.elements.password : form.elements.username).focus();
      return;
    }
    busy = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const res = await api('POST', kind === 'register' ? '/api/auth/register' : '/api/auth/login', { username, password });
      session.save(res);
      say('');
      await route();
    } catch (e) {
      say(message(e, kind));
    } finally {
      busy = false;
      form.removeAttribute('aria-busy');
    }
  }
  const form = h('form', { class: 'card auth', novalidate: true },
    h('h2', null, roomId ? 'Sign in to join the room' : 'Sign in or create an account'),
    roomId ? h('p', { class: 'muted' }, 'You were invited to a room. Once you are signed in, it opens.') : null,
    h('label', null, 'Username',
      h('input', { name: 'username', autocomplete: 'username', required: true, minlength: 3, maxlength: 32, autocapitalize: 'none', spellcheck: 'false' })),
    h('label', null, 'Password',
      h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, minlength: 8 })),
    h('div', { class: 'row' },
      h('button', { type: 'submit', class: 'primary', 'data-action': 'login' }, 'Sign in'),
      h('button', { type: 'button', 'data-action': 'register', onclick: () => go('register') }, 'Create account')),
    h('p', { class: 'muted small' }, 'New here? Pick a username and a password of 8 characters or more, then “Create account”.'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go('login');
  });
  main.append(h('div', { class: 'hero' },
    h('h2', null, 'Code together, live.'),
    h('p', null, 'Open a room, send its link, and edit the same code with your friends — see their cursors, run the code, and ask the AI for a hint.')),
  form);
  form.elements.username.focus();
  return { destroy() {} };
}
