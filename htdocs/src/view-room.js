// A room: the shared editor, who is here, and the run, AI, history and settings panels.
// Wires the event stream (transport.js) to the OT client (collab.js) and the editor
// (editor.js), and sends this user's caret to the others.

import {
  ApiError, SESSION_CHANGED, api, request, room, session, sessionChanged, signedInId,
} from './api.js';
import { Collab } from './collab.js';
import { colorClass, userColor } from './colors.js';
import { h, named, say } from './dom.js';
import { Editor } from './editor.js';
import { apply } from './ot.js';
import { languageName } from './languages.js';
import { canRun, editOnlyText, loadRuntimes } from './runtimes.js';
import { aiPanel } from './panel-ai.js';
import { historyPanel } from './panel-history.js';
import { runPanel } from './panel-run.js';
import { settingsPanel } from './panel-settings.js';
import { shareBox } from './share.js';
import { RoomStream } from './transport.js';
import { keepUnsent, takeUnsent } from './unsent.js';
import { SharedRoomStream, sharedStreamsAvailable } from './shared-stream.js';
import { noteTicketOrigin } from './stream-route.js';

const PRESENCE_DEBOUNCE_MS = 100;
const OPEN_WAIT_MS = 3000;
const CONNECTION_TEXT = {
  connected: 'Live',
  reconnecting: 'Reconnecting…',
  unreachable: 'Server unreachable — retrying',
  offline: 'Offline — edits are kept',
};
const CONNECTION_TITLE = {
  connected: 'Edits reach everyone as you type.',
  reconnecting: 'The live connection dropped; the server answers, so it comes back in a moment.',
  unreachable: 'Your network is up but the server does not answer. The page keeps trying; your edits are kept and sent when it answers.',
  offline: 'Your device has no network connection. Your edits are sent when it is back.',
};

// Edits not confirmed by the server are kept in localStorage when the page goes away
// (reload, closing the tab, leaving the room) and taken up again by the next page that
// opens the room for the same user (unsent.js; docs/CLIENT.md, "Unsent edits").

// The room page for someone who may not enter (yet).
function outside(main, message, actions) {
  main.className = 'narrow';
  main.append(h('div', { class: 'card' }, h('h2', null, 'This room is closed to you'), h('p', null, message), actions || null,
    h('p', null, h('a', { href: '/', 'data-link': true }, 'Back to your rooms'))));
  return { destroy() {} };
}

async function enter(roomId, invite) {
  if (invite) {
    try {
      await api('POST', `${room(roomId)}/join`, { invite });
    } catch (e) {
      if (e.status !== 403 && e.status !== 404) throw e;
      return { error: e.code === 'invalid_invite' ? 'This invite link is not valid (any more). Ask the owner for a new one.' : e.message };
    }
  }
  try {
    return { info: await api('GET', room(roomId)) };
  } catch (e) {
    if (e.status === 404) return { error: 'There is no such room. It may have been deleted.' };
    if (e.status === 403) return { error: 'This room is private: open it with the invite link its owner shares.' };
    throw e;
  }
}

export async function openRoom(main, roomId, { navigate, route, isCurrent }) {
  const params = new URLSearchParams(location.search);
  const invite = params.get('invite');
  const { info: first, error } = await enter(roomId, invite);
  if (!isCurrent()) return { destroy() {} };
  if (invite) history.replaceState(null, '', `/r/${roomId}`); // the code need not linger
  if (error) return outside(main, error);
  return new RoomView(main, roomId, first, { navigate, route, isCurrent, transport: params.get('transport') }).start();
}

class RoomView {
  constructor(main, roomId, info, ctx) {
    this.main = main;
    this.roomId = roomId;
    this.info = info;
    this.ctx = ctx;
    this.me = session.user;
    this.people = new Map(); // user id -> {id, username, color, online, cursor, selection}
    this.destroyed = false;
    this.presenceTimer = null;
    this.editor = null;
  }

  // Whether the user signed in is still the one this view started with.
  sameUser() {
    return Boolean(this.me) && signedInId() === this.me.id;
  }

  get role() {
    return this.info.role;
  }

  get canEdit() {
    return this.role === 'owner' || this.role === 'editor';
  }

  async start() {
    this.render();
    this.title.focus(); // not the editor: a keyboard user's first Tab must not indent everyone's code
    const saved = takeUnsent(this.roomId, this.me && this.me.id);
    // a page taking over kept edits sends as their author (the same site), so ties order alike
    const clientPrefix = saved ? saved.site
      : Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
    this.collab = new Collab({
      // only as the user this view started with: another tab may have signed out, or in as
      // someone else (main.js then starts the view again; these edits are not theirs)
      send: (body) => (this.sameUser() ? request('POST', `${room(this.roomId)}/operations`, body)
        : Promise.resolve(sessionChanged())),
      fetchDocument: () => api('GET', `${room(this.roomId)}/document`),
      applyRemote: (op, before) => this.editor.applyRemote(op, before),
      localText: () => this.editor.text(),
      onState: (s) => {
        this.root.dataset.sync = s;
        if (s === 'synchronized') this.schedulePresence();
      },
      onError: (status, message) => {
        if (status === 403) this.refreshInfo();
        say(status === 413 ? `That edit would make the document too large: ${message}` : message);
      },
      canSend: () => navigator.onLine,
    }, clientPrefix, this.me && this.me.id);

    const opened = new Promise((resolve) => { this.firstOpen = resolve; });
    // one connection for the rooms of every tab (shared-stream.js), unless a transport of this
    // tab's own is asked for (?transport=sse|ws|poll, or cc.transport in localStorage)
    const kind = this.ctx.transport || localStorage.getItem('cc.transport') || 'shared';
    const Stream = kind === 'shared' && sharedStreamsAvailable() ? SharedRoomStream : RoomStream;
    this.stream = new Stream({
      roomId: this.roomId,
      kind: kind === 'shared' ? 'sse' : kind,
      lastId: saved && saved.clean ? saved.lastEventId : null, // replays what happened since
      ticket: () => api('POST', `${room(this.roomId)}/stream-ticket`, {}).then((j) => {
        noteTicketOrigin(j);
        return j.ticket;
      }),
      onEvent: (ev) => this.onEvent(ev),
      onState: (s) => this.connectionState(s),
      // straight to the broker or through the front door (docs/CLIENT.md, "Direct streams")
      onRoute: (r) => { this.root.dataset.streamRoute = r; },
      onOpen: (kind, resumed, fromNow) => {
        this.root.dataset.transport = kind;
        this.firstOpen();
        this.collab.retry();
        // a stream that began at its live moment carries nothing from before it: a document
        // read before then (the stream was slow to open, or this is a reconnection that had
        // no position) is read again, and the difference is what was missed
        if (fromNow && this.collab.ready) this.collab.resync();
        else if (fromNow && this.docAsked) this.rereadDoc = true; // the read is on its way
        if (!resumed || kind === 'poll') this.announce();
      },
      onFatal: (status) => {
        if (status === 401) {
          // the session ended: the app signs this page out (main.js); or another tab signed in
          // as someone else, whose token streams none of this view's rooms: the app starts the
          // view again as them, and the page says why
          if (session.token && !this.sameUser()) say(SESSION_CHANGED);
          return;
        }
        this.leave(status === 404 ? 'deleted' : 'removed');
      },
    });
    this.connectionState('reconnecting');
    this.stream.start();
    // the document is read once the stream is live, so nothing falls between the two
    await Promise.race([opened, new Promise((r) => setTimeout(r, OPEN_WAIT_MS))]);
    if (this.gone()) return this;
    let doc;
    this.docAsked = true;
    try {
      doc = await api('GET', `${room(this.roomId)}/document`);
    } catch (e) {
      if (this.gone()) return this;
      this.editorBox.replaceChildren(h('p', { class: 'error pad' }, `The document could not be loaded: ${e.message}`));
      return this;
    }
    if (this.gone()) return this;
    let shown = doc.content;
    let restoring = null;
    if (saved && this.canEdit) {
      try {
        shown = apply(saved.op, saved.base);
        if (saved.buffer) shown = apply(saved.buffer, shown);
        restoring = saved;
      } catch {
        shown = doc.content; // not edits of that text: nothing to take up
      }
    }
    this.editorBox.replaceChildren();
    this.editor = new Editor({
      parent: this.editorBox,
      doc: shown,
      language: this.info.room.language,
      readOnly: !this.canEdit,
      onLocal: (op) => this.collab.local(op),
      onSelection: () => this.schedulePresence(),
      runKey: () => this.runButton.click(),
    });
    if (restoring) {
      // an edit that may have reached the server waits for the stream's replay to say
      this.collab.restore(restoring, doc.revision);
      // without a replay of what happened since (or the document went back), the fetched
      // text tells: the kept edits are transformed over the difference
      if (!(restoring.clean && restoring.lastEventId) || doc.revision < restoring.revision) this.collab.resync();
      say('Your edits that had not reached the server before the page was left are being sent now.', 'ok');
    } else {
      this.collab.load(doc);
    }
    if (this.rereadDoc) this.collab.resync();
    this.root.dataset.ready = 'true';
    this.redrawCarets();
    this.onPageHide = () => this.keepUnsent();
    this.onBeforeUnload = (ev) => {
      if (!this.collab || !this.collab.unsent()) return;
      this.keepUnsent();
      ev.preventDefault(); // "leave the page?": edits have not reached the others yet
      ev.returnValue = '';
    };
    window.addEventListener('pagehide', this.onPageHide);
    window.addEventListener('beforeunload', this.onBeforeUnload);
    return this;
  }

  // Whether this view is over: destroyed, or another navigation came while it was being
  // made (the page shows something else). Such a view ends itself here, so that its stream,
  // its presence in the room and its worker subscription do not live on unseen.
  gone() {
    if (!this.destroyed && !this.ctx.isCurrent()) this.destroy();
    return this.destroyed;
  }

  // Writes the unconfirmed edits for the next page of this room (unsent.js): only while
  // this page's user is still the one signed in.
  keepUnsent() {
    const u = this.collab && this.collab.unsent();
    if (!u || !this.canEdit) return;
    const lastEventId = this.stream ? this.stream.lastId : null;
    keepUnsent(this.roomId, this.me && this.me.id, { ...u, lastEventId });
  }

  // Back to the room list, saying why: 'removed' (no longer a member, or the room went
  // private) or 'deleted'.
  leave(why) {
    if (this.destroyed || this.left) return;
    this.left = true;
    const name = ['“', named(this.info.room.name), '”'];
    this.ctx.navigate('/', why === 'deleted' ? ['The room ', ...name, ' was deleted by its owner.']
      : ['You no longer have access to the room ', ...name, ': its owner removed you, or made it private.']);
  }

  destroy() {
    if (this.destroyed) return; // once: route() may end a view that had ended itself
    if (!this.left) this.keepUnsent(); // sent when the room is opened again
    if (this.onPageHide) window.removeEventListener('pagehide', this.onPageHide);
    if (this.onBeforeUnload) window.removeEventListener('beforeunload', this.onBeforeUnload);
    this.destroyed = true;
    clearTimeout(this.presenceTimer);
    clearTimeout(this.announceTimer);
    if (this.stream) this.stream.close();
    if (this.collab) this.collab.stop();
    if (this.editor) this.editor.destroy();
    this.run.destroy();
    this.ai.destroy();
    this.history.destroy();
  }

  // ---- the page ----------------------------------------------------------------------

  render() {
    const r = this.info.room;
    this.main.className = 'wide';
    this.titleText = named(r.name); // the badges follow it on the same line
    this.title = h('h2', { class: 'room-name', tabindex: '-1' }, this.titleText);
    this.langBadge = h('span', { class: 'badge' }, languageName(r.language));
    this.roleBadge = h('span', { class: 'badge muted' }, this.role || 'visitor');
    this.connection = h('span', { class: 'connection', 'data-role': 'connection', 'data-state': 'reconnecting', role: 'status' }, CONNECTION_TEXT.reconnecting);
    this.runButton = h('button', { type: 'button', class: 'primary', 'data-action': 'run', title: 'Run (Ctrl+Enter)' }, 'Run ▶');
    this.runButton.addEventListener('click', () => {
      if (this.canEdit) this.run.run();
    });
    this.participants = h('ul', { class: 'participants', 'data-role': 'participants', 'aria-label': 'People in this room' });
    this.editorBox = h('div', { class: 'editor', 'data-role': 'editor' }, h('p', { class: 'muted pad' }, 'Loading the document…'));

    const code = () => (this.editor ? this.editor.text() : '');
    const language = () => this.info.room.language;
    this.run = runPanel({ roomId: this.roomId, code, language, runKey: () => this.runButton.click() });
    this.ai = aiPanel({ roomId: this.roomId, code, language });
    this.history = historyPanel({ roomId: this.roomId, restore: (text) => this.restore(text), canEdit: () => this.canEdit });
    this.settings = settingsPanel({
      roomId: this.roomId,
      navigate: this.ctx.navigate,
      onInvite: (info) => this.share.render(info),
      leaving: (on) => { this.left = on; },
    });
    this.share = shareBox();

    this.joinBar = h('div', { class: 'notice', hidden: true });
    this.root = h('section', { class: 'room', 'aria-label': `Room ${r.name}` },
      h('div', { class: 'room-bar' },
        h('div', { class: 'room-title' }, h('a', { href: '/', 'data-link': true, class: 'back', 'aria-label': 'All rooms' }, '←'), this.title, this.langBadge, this.roleBadge),
        this.participants,
        this.share.el,
        h('div', { class: 'room-actions' }, this.connection, this.runButton)),
      this.joinBar,
      h('div', { class: 'room-body' },
        h('div', { class: 'editor-col' }, this.editorBox),
        h('aside', { class: 'side', 'aria-label': 'Room tools' }, this.run.el, this.ai.el, this.history.el, this.settings.el)));
    this.main.append(this.root);
    this.applyInfo();
    // whether the room's language can run here: until the list arrives (or when the server
    // cannot say) Run stays as it is
    loadRuntimes().then((list) => {
      if (!list || this.destroyed) return;
      this.runtimes = list;
      this.applyInfo();
    });
  }

  applyInfo() {
    const r = this.info.room;
    this.titleText.textContent = r.name;
    this.langBadge.textContent = languageName(r.language);
    this.roleBadge.textContent = this.role || 'visitor';
    const runnable = canRun(this.runtimes, r.language) !== false;
    const editOnly = editOnlyText(languageName(r.language));
    this.runButton.disabled = !this.canEdit || !runnable;
    this.runButton.title = !runnable ? editOnly : this.canEdit ? 'Run (Ctrl+Enter)' : 'Viewers cannot run code';
    this.runButton.dataset.runnable = String(runnable);
    this.run.setRunnable(runnable, editOnly);
    this.settings.render(this.info);
    this.share.render(this.info);
    this.history.setEditable(this.canEdit);
    if (this.editor) this.editor.setReadOnly(!this.canEdit);
    if (!this.role) {
      const b = h('button', { type: 'button', class: 'primary' }, 'Join to edit');
      b.addEventListener('click', async () => {
        try {
          await api('POST', `${room(this.roomId)}/join`, {});
          await this.refreshInfo();
        } catch (e) {
          say(e.message);
        }
      });
      this.joinBar.replaceChildren(h('span', null, 'You are watching this public room. '), b);
      this.joinBar.hidden = false;
    } else if (this.role === 'viewer') {
      this.joinBar.replaceChildren(h('span', null, 'You are a viewer here: you can watch and ask the AI, but not edit or run.'));
      this.joinBar.hidden = false;
    } else {
      this.joinBar.hidden = true;
    }
    for (const m of this.info.members || []) {
      const p = this.person(m.user);
      p.role = m.role;
    }
    this.drawParticipants();
  }

  async refreshInfo() {
    try {
      const was = this.role;
      this.info = await api('GET', room(this.roomId));
      if (this.destroyed) return;
      this.applyInfo();
      // removed from a public room: still here, as a visitor who watches
      if (was && !this.role) say('The owner removed you from this room: you can still watch it.', 'notice');
    } catch (e) {
      if (e instanceof ApiError && (e.status === 403 || e.status === 404)) this.leave(e.status === 404 ? 'deleted' : 'removed');
    }
  }

  connectionState(s) {
    this.connection.dataset.state = s;
    this.connection.textContent = CONNECTION_TEXT[s] || s;
    this.connection.title = CONNECTION_TITLE[s] || '';
  }

  restore(text) {
    if (!this.editor || !this.canEdit) return;
    this.editor.replaceAll(text);
  }

  // ---- people ------------------------------------------------------------------------

  person(user) {
    let p = this.people.get(user.id);
    if (!p) {
      p = { id: user.id, username: user.username, color: userColor(user.id), online: false, role: null };
      this.people.set(user.id, p);
    }
    return p;
  }

  drawParticipants() {
    const meId = this.me && this.me.id;
    const people = [...this.people.values()]
      .filter((p) => p.role || p.online || p.id === meId)
      .sort((a, b) => (b.id === meId) - (a.id === meId) || b.online - a.online || a.username.localeCompare(b.username));
    this.participants.replaceChildren(...people.map((p) => {
      const here = p.online || p.id === meId;
      return h('li', { class: `person ${colorClass(p.color)} ${here ? 'online' : 'away'}`, 'data-member': p.username, title: `${p.username}${p.role ? ` (${p.role})` : ''}${here ? ', here now' : ', away'}` },
        h('span', { class: 'dot', 'aria-hidden': 'true' }),
        h('span', { class: 'who' }, named(p.username), p.id === meId ? ' (you)' : ''),
        h('span', { class: 'visually-hidden' }, here ? ' — here now' : ' — away'));
    }));
  }

  redrawCarets() {
    if (!this.editor) return;
    for (const p of this.people.values()) {
      if (p.online && p.cursor !== undefined && p.id !== this.me?.id) this.drawCaret(p);
    }
  }

  drawCaret(p) {
    if (!this.editor) return;
    const sel = p.selection || { anchor: p.cursor, head: p.cursor };
    const anchor = this.collab.toLocalIndex(sel.anchor);
    const head = this.collab.toLocalIndex(sel.head);
    this.editor.setRemote(p.id, p.username, colorClass(p.color), anchor, head);
  }

  // Tells the others where we are: when they join (they have no history of it) and when
  // we move. Positions are sent only while nothing of ours is unconfirmed, so they are
  // positions in the server's document.
  schedulePresence() {
    clearTimeout(this.presenceTimer);
    this.presenceTimer = setTimeout(() => this.sendPresence(), PRESENCE_DEBOUNCE_MS);
  }

  announce() {
    clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(() => this.sendPresence(), 50 + Math.random() * 250);
  }

  sendPresence() {
    // not while leaving: a cursor sent as the room is deleted is answered 404, which the
    // browser logs as an error
    if (this.destroyed || this.left || !this.editor || !this.collab) return;
    if (this.collab.state !== 'synchronized') return; // sent again once synchronized
    const p = this.editor.selectionCp();
    if (this.stream.sendPresence(p)) return;
    request('PUT', `${room(this.roomId)}/presence`, p).then((r) => {
      // over the budget (PRESENCE_RATE_LIMIT, far above what the debounce sends): the
      // position was not sent; the latest one goes when the window opens (in place of a
      // move scheduled meanwhile, which would be refused too)
      if (r.status !== 429 || this.destroyed) return;
      const wait = (Number(r.headers.get('retry-after')) || 1) * 1000;
      clearTimeout(this.presenceTimer);
      this.presenceTimer = setTimeout(() => this.sendPresence(), wait);
    });
  }

  // ---- events ------------------------------------------------------------------------

  onEvent({ type, data }) {
    if (this.destroyed || !data) return;
    switch (type) {
      case 'operation':
        this.collab.remote(data);
        break;
      case 'resync':
        this.collab.resync();
        break;
      case 'presence': {
        if (!data.user) break;
        const p = this.person(data.user);
        const wasOnline = p.online;
        p.online = true;
        if (data.color) p.color = data.color;
        p.cursor = data.cursor;
        p.selection = data.selection;
        if (!wasOnline) this.drawParticipants();
        if (data.user.id !== this.me?.id) this.drawCaret(p);
        break;
      }
      case 'join': {
        if (!data.user) break;
        const p = this.person(data.user);
        p.online = true;
        this.drawParticipants();
        if (data.user.id !== this.me?.id) this.announce(); // so the newcomer sees us
        break;
      }
      case 'leave': {
        if (!data.user) break;
        const p = this.person(data.user);
        p.online = false;
        if (this.editor) this.editor.dropRemote(p.id);
        this.drawParticipants();
        break;
      }
      case 'execution':
        this.run.onEvent(data);
        break;
      case 'ai':
        this.ai.onEvent(data);
        break;
      case 'snapshot':
        this.history.onSnapshot(data);
        break;
      case 'room':
        if (data.reason === 'deleted') {
          this.leave('deleted');
        } else if (data.reason === 'updated' && data.room) {
          const was = this.info.room.language;
          this.info.room = { ...this.info.room, ...data.room, invite: this.info.room.invite };
          if (this.editor && was !== this.info.room.language) this.editor.setLanguage(this.info.room.language);
          this.applyInfo();
        } else {
          this.refreshInfo();
        }
        break;
      default:
        break;
    }
  }
}
