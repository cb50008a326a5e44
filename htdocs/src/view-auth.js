// Sign in and sign up. One form, two buttons: Enter signs in. A problem with a field is
// said under that field; anything else (too many attempts, the server) in the status line.

import { api, session } from './api.js';
import { fieldError, h, say } from './dom.js';

const USERNAME_RULE = 'Usernames have 3 to 32 characters: letters, digits, _ - and .';
const PASSWORD_RULE = 'Passwords have at least 8 characters.';

// {field: 'username'|'password'|null, text} for a refused sign-in or sign-up.
function problem(e, kind) {
  if (e.status === 401) return { field: 'password', text: 'Wrong username or password.' };
  if (e.status === 409) return { field: 'username', text: 'That username is taken. Sign in, or pick another one.' };
  if (e.status === 429) return { field: null, text: `Too many attempts. Try again in ${e.retryAfter || 60} seconds.` };
  if (e.status === 400) {
    // the message names the field (docs/API.md, "Errors")
    const field = /password/i.test(e.message) ? 'password' : 'username';
    const rule = kind === 'register' ? ` ${field === 'password' ? PASSWORD_RULE : USERNAME_RULE}` : '';
    return { field, text: `${e.message.charAt(0).toUpperCase()}${e.message.slice(1)}.${rule}` };
  }
  return { field: null, text: e.message };
}

// What is wrong with the fields before asking the server, or null.
function check(username, password, kind) {
  if (!username) return { field: 'username', text: 'Enter a username.' };
  if (kind === 'register' && (username.length < 3 || username.length > 32)) return { field: 'username', text: USERNAME_RULE };
  if (!password) return { field: 'password', text: 'Enter a password.' };
  if (kind === 'register' && [...password].length < 8) return { field: 'password', text: PASSWORD_RULE };
  return null;
}

export function renderAuth(main, { route, roomId }) {
  main.className = 'narrow';
  let busy = false;
  async function go(kind) {
    if (busy) return;
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    fieldError(form.elements.username, null);
    fieldError(form.elements.password, null);
    say('');
    const wrong = check(username, password, kind);
    if (wrong) {
      fieldError(form.elements[wrong.field], wrong.text);
      form.elements[wrong.field].focus();
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
      const p = problem(e, kind);
      if (p.field) fieldError(form.elements[p.field], p.text);
      else say(p.text);
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
