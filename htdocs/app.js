// The start page: sign up / sign in, the room list, and a read-only room view at /r/{id}.
// Plain ES module, no inline script (the CSP forbids it). The token lives in localStorage.

const $ = (sel) => document.querySelector(sel);
const state = { token: localStorage.getItem('cc.token'), user: JSON.parse(localStorage.getItem('cc.user') || 'null') };

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((json && json.message) || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return json;
}

function say(text, ok = false) {
  const el = $('#status');
  el.textContent = text;
  el.classList.toggle('ok', ok);
}

function show(view) {
  for (const id of ['auth-view', 'rooms-view', 'room-view']) $('#' + id).hidden = id !== view;
  const signedIn = Boolean(state.token);
  $('[data-action="logout"]').hidden = !signedIn;
  $('#whoami').hidden = !signedIn;
  $('#whoami').textContent = signedIn && state.user ? state.user.username : '';
}

function signedIn(res) {
  state.token = res.token;
  state.user = res.user;
  localStorage.setItem('cc.token', res.token);
  localStorage.setItem('cc.user', JSON.stringify(res.user));
}

function signOut() {
  state.token = null;
  state.user = null;
  localStorage.removeItem('cc.token');
  localStorage.removeItem('cc.user');
}

async function authenticate(kind) {
  const form = $('#auth-form');
  const body = { username: form.username.value.trim(), password: form.password.value };
  try {
    signedIn(await api('POST', kind === 'register' ? '/api/auth/register' : '/api/auth/login', body));
    say('');
    await route();
  } catch (e) {
    say(e.message);
  }
}

async function showRooms() {
  show('rooms-view');
  const list = $('#room-list');
  list.replaceChildren();
  const { rooms } = await api('GET', '/api/rooms');
  for (const room of rooms) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = `/r/${room.id}`;
    a.textContent = room.name; // text, never HTML
    li.append(a, ` — ${room.language}, ${room.role}`);
    list.append(li);
  }
  if (!rooms.length) list.append(Object.assign(document.createElement('li'), { textContent: 'No rooms yet.' }));
}

async function showRoom(id) {
  const invite = new URLSearchParams(location.search).get('invite');
  let info;
  try {
    info = await api('GET', `/api/rooms/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status !== 403) throw e;
    await api('POST', `/api/rooms/${encodeURIComponent(id)}/join`, invite ? { invite } : {});
    info = await api('GET', `/api/rooms/${encodeURIComponent(id)}`);
  }
  show('room-view');
  $('#room-title').textContent = info.room.name;
  $('#room-language').textContent = info.room.language;
  $('#room-role').textContent = info.role || 'visitor';
  $('#invite-box').hidden = !info.room.invite;
  if (info.room.invite) $('[data-role="invite-link"]').textContent = `${location.origin}/r/${info.room.id}?invite=${info.room.invite}`;
  const ul = $('[data-role="participants"]');
  ul.replaceChildren(...info.members.map((m) => Object.assign(document.createElement('li'), { textContent: `${m.user.username} (${m.role})` })));
}

async function route() {
  if (!state.token) return show('auth-view');
  try {
    const m = location.pathname.match(/^\/r\/([A-Za-z0-9_-]+)\/?$/);
    if (m) await showRoom(m[1]);
    else await showRooms();
  } catch (e) {
    if (e.status === 401) {
      signOut();
      show('auth-view');
      say('Your session has ended; sign in again.');
    } else {
      say(e.message);
    }
  }
}

$('#auth-form').addEventListener('submit', (ev) => { ev.preventDefault(); authenticate('login'); });
$('[data-action="register"]').addEventListener('click', () => authenticate('register'));
$('[data-action="logout"]').addEventListener('click', () => { signOut(); history.pushState(null, '', '/'); route(); });
$('#create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  try {
    const { room } = await api('POST', '/api/rooms', { name: form['room-name'].value, language: form.language.value });
    form.reset();
    history.pushState(null, '', `/r/${room.id}`);
    await route();
  } catch (e) {
    say(e.message);
  }
});
window.addEventListener('popstate', route);
route();
