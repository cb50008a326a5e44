// Unsent edits kept in localStorage between two pages of a room (docs/CLIENT.md, "Unsent
// edits"). An entry holds the room's text as the server last sent it, so it is kept for its
// author only: it is written while that user is the one signed in, taken by the next page
// that opens the room as them within a day, and every entry goes when no one is signed in
// (sign-out, an ended session) or the one signed in is someone else.

import { session } from './api.js';

const PREFIX = 'cc.unsent.';
const VERSION = 1;
const MAX_AGE_MS = 24 * 3600 * 1000; // older edits would surprise more than help

function read(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || 'null');
  } catch {
    return null;
  }
}

function fresh(saved) {
  return Boolean(saved && saved.v === VERSION && Date.now() - saved.savedAt < MAX_AGE_MS);
}

// The id of the user signed in on this browser, or null.
function signedIn() {
  const user = session.token ? session.user : null;
  return user && user.id !== undefined ? user.id : null;
}

// The kept edits of roomId for userId, removed as they are taken (another window must not
// send them too); null when there are none that can be used.
export function takeUnsent(roomId, userId) {
  const key = PREFIX + roomId;
  const saved = read(key);
  if (saved && saved.user !== userId) return null; // another account's: pruneUnsent's business
  localStorage.removeItem(key);
  if (!fresh(saved)) return null;
  if (!Number.isInteger(saved.revision) || typeof saved.base !== 'string' || !Array.isArray(saved.op)
    || typeof saved.id !== 'string' || typeof saved.site !== 'string' || !/^[0-9a-f]+$/.test(saved.site)) return null;
  return saved;
}

// Keeps a room's unsent edits (`unsent`: Collab.unsent() and the stream's last event id) for
// userId's next page of the room. Nothing is written unless userId is still the user signed
// in: a page whose user signed out (here or in another tab) or whose session ended keeps
// nothing of the room.
export function keepUnsent(roomId, userId, unsent) {
  if (userId === null || userId === undefined || signedIn() !== userId) return;
  try {
    localStorage.setItem(PREFIX + roomId, JSON.stringify({ v: VERSION, user: userId, ...unsent, savedAt: Date.now() }));
  } catch { /* storage full or off: the beforeunload warning was all we could do */ }
}

// Removes every entry that is not the signed-in user's or is older than a day, all of them
// when no one is signed in. Run whenever the view changes: at start-up, after signing in or
// out, when a session has ended.
export function pruneUnsent() {
  const me = signedIn();
  const keys = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (k && k.startsWith(PREFIX)) keys.push(k);
  }
  for (const k of keys) {
    const saved = me === null ? null : read(k);
    if (!saved || saved.user !== me || !fresh(saved)) localStorage.removeItem(k);
  }
}
