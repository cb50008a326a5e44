// The browser client's entry point: one page, three views chosen by the address.
//   /            sign in / sign up, then the room list
//   /r/{id}      a room (lighttpd rewrites it to index.html); ?invite=CODE joins it

import './csp.js';
import {
  onSessionExpired, onSessionMoved, sameSession, session, setViewUser, signOut, signedInId,
} from './api.js';
import { $, say } from './dom.js';
import { renderAuth } from './view-auth.js';
import { renderRooms } from './view-rooms.js';
import { openRoom } from './view-room.js';
import { streamRouteReady } from './stream-route.js';
import { pruneUnsent } from './unsent.js';

let current = null; // the view on screen: {destroy()}
let generation = 0;

function roomIdFromPath() {
  const m = location.pathname.match(/^\/r\/([A-Za-z0-9_-]+)\/?$/);
  return m ? m[1] : null;
}

function renderHeader() {
  const user = session.user;
  const signedIn = Boolean(session.token && user);
  $('#whoami').hidden = !signedIn;
  $('#whoami').textContent = signedIn ? user.username : '';
  $('[data-action="logout"]').hidden = !signedIn;
}

export async function route() {
  const gen = ++generation;
  if (current && current.destroy) current.destroy();
  current = null;
  // the new view acts as whoever is signed in now, and as no one else (api.js)
  setViewUser(signedInId());
  // unsent edits of a room are kept for the user signed in, for a day: none once signed
  // out or another user is (they hold a room's whole text)
  pruneUnsent();
  const main = $('#main');
  main.replaceChildren();
  main.className = '';
  renderHeader();
  const roomId = roomIdFromPath();
  const ctx = { navigate, route, isCurrent: () => gen === generation };
  let view = null;
  try {
    if (!session.token) view = renderAuth(main, { ...ctx, roomId });
    else if (roomId) view = await openRoom(main, roomId, ctx);
    else view = await renderRooms(main, ctx);
  } catch (e) {
    if (gen !== generation) return;
    if (e && e.status === 401) return; // the expiry listener has taken over
    say((e && e.message) || String(e));
  }
  // another navigation came while this view was being made: it is not the one on screen,
  // and nothing of it (a room's stream, its presence) may go on
  if (gen !== generation) {
    if (view && view.destroy) view.destroy();
    return;
  }
  current = view;
}

// Changes the view; `message` (optional) is shown once the new view is up, e.g. why a
// room was left.
export function navigate(path, message) {
  history.pushState(null, '', path);
  say('');
  route().then(() => { if (message) say(message, 'notice'); });
}

// The session cleared first: the room view then keeps nothing of the room (unsent.js), and
// route() removes what was kept. `token`: the one refused (null when the page had none any
// more: another tab signed out, and its stream heard of it before this page's `storage`
// event came, which says the same); a session another tab has started since stays.
const SIGNED_OUT_ELSEWHERE = 'You were signed out in another tab or window.';
onSessionExpired((token) => {
  if (token && session.token === token) session.clear();
  route().then(() => {
    if (session.token) return;
    if (token) say('Your session has ended; sign in again.');
    else say(SIGNED_OUT_ELSEWHERE, 'notice');
  });
});

// The session is shared by every tab (localStorage): signing out in another tab signs this
// one out, and signing in there as someone else starts this page's view again as them. A
// page never goes on acting as a user other than the one its view started with: its room's
// unsent edits are dropped rather than sent under another account.
function followSession() {
  if (sameSession()) return;
  const signedOut = !session.token;
  route().then(() => { if (signedOut && !session.token) say(SIGNED_OUT_ELSEWHERE, 'notice'); });
}
onSessionMoved(() => setTimeout(followSession, 0)); // after the refused call has returned
window.addEventListener('storage', (ev) => {
  if (ev.key === null || ev.key === 'cc.token' || ev.key === 'cc.user') followSession();
});

// links inside the app change the view without reloading the page
document.addEventListener('click', (ev) => {
  const a = ev.target.closest && ev.target.closest('a[data-link]');
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
});

// Signing out forgets the session in this browser at once, whatever the server does, and
// with it the unsent edits of every room (route() removes them once no one is signed in);
// the server is told meanwhile, and ends the token everywhere (its streams close). When it
// does not say so (unreachable, its session store down), or has not said so within
// SIGN_OUT_CONFIRM_MS (a server that holds the request), the page says that the session may
// still be valid elsewhere until it expires; once it does say so, "Signed out." replaces
// that (or an empty status line), nothing else the page said meanwhile.
const SIGN_OUT_CONFIRM_MS = 10000;
const NOT_CONFIRMED = 'You are signed out in this browser, but the server did not confirm it: the session may stay valid elsewhere until it expires.';
$('[data-action="logout"]').addEventListener('click', () => {
  const ended = signOut();
  navigate('/');
  const status = () => document.getElementById('status')?.textContent ?? '';
  const warn = () => { if (!session.token) say(NOT_CONFIRMED, 'notice'); };
  const timer = setTimeout(warn, SIGN_OUT_CONFIRM_MS);
  ended.then((ok) => {
    clearTimeout(timer);
    if (session.token) return; // signed in again meanwhile
    if (!ok) warn();
    else if (status() === '' || status() === NOT_CONFIRMED) say('Signed out.', 'ok');
  });
});

window.addEventListener('popstate', () => route());
streamRouteReady(); // where room streams open: asked once, while the first view loads
route();
