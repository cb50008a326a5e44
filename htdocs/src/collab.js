// The client side of the collaboration protocol (docs/API.md, "Operations"): a state
// machine over one room's document, free of the DOM and of the network, which it reaches
// through the functions it is given.
//
//   synchronized          nothing of ours is on its way: the editor shows the server's
//                         document at `revision`
//   awaiting              one operation (`outstanding`) is sent and not yet confirmed
//   awaiting with buffer  and more local edits (`buffer`, composed into one) wait for it
//
// Operation events come in revision order from the room's stream. The one that carries
// our outstanding operation's client_id confirms it; any other is transformed over what
// we have pending (ours as `a`, the server's as `b`, and inserts at one position ordered
// by author, user id then client site, as on the server: lib/ot.h "Who goes first") and
// handed to the editor, with whether an insert exactly at our caret belongs before it
// (its author sorts before us) so that our next keystroke lands where the server puts it.
// An answer to our POST confirms too, once every earlier revision has arrived, so a slow
// stream does not hold up typing.
//
// A gap in revisions, a `resync` event or a 409 refetches the document: the difference
// between what we last knew and the new text stands for everything we missed, and our
// pending edits are transformed over it, so they survive.

import {
  apply, author, authorCmp, compose, cpLength, diff, extend, isNoop, targetLength, transform,
  transformIndex,
} from './ot.js';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;
// POST answers that say what became of an edit (committed, refused for good, or stale)
// (404: the room is gone, and with it whatever the edit was)
const TELLS = new Set([200, 400, 403, 404, 409, 413]);
const HOLD_MAX_MS = 15000; // a kept edit waits this long at most for the stream's replay

export class Collab {
  // io: {
  //   send(body) -> Promise<{status, json}>   POST .../operations (status 0: no answer)
  //   fetchDocument() -> Promise<{revision, content}>
  //   applyRemote(op, before)  change the editor by op (code points, against its current
  //                        text); before: text inserted exactly at a caret goes before it
  //   localText()          the editor's text
  //   onState(state)       'synchronized' | 'awaiting' | 'buffer' | 'resyncing'
  //   onError(code, message)  an edit was refused for good (403, 413, 400)
  //   canSend()            false while offline: sending waits for retry()
  // }
  // clientPrefix: this client's site (no '.'); userId: the signed-in user's id. Together
  // they are our author for ordering concurrent inserts.
  constructor(io, clientPrefix, userId) {
    this.io = io;
    this.prefix = clientPrefix;
    this.me = author(userId, `${clientPrefix}.0`);
    this.seq = 0;
    this.revision = -1;
    this.serverText = '';
    this.outstanding = null; // {op, id, sent, committedAt, answer}
    this.buffer = null;
    this.queue = []; // operation events that came while loading or resyncing
    this.busy = false; // loading or resyncing
    this.retryTimer = null;
    this.retryDelay = RETRY_MIN_MS;
    this.stopped = false;
    this.ready = false;
    this.holdUntil = null; // a kept edit that may be committed waits for this revision
  }

  get state() {
    if (this.busy) return 'resyncing';
    if (!this.outstanding) return 'synchronized';
    return this.buffer ? 'buffer' : 'awaiting';
  }

  // Pending local operations, the outstanding one first, for mapping remote cursors.
  pending() {
    const out = [];
    if (this.outstanding) out.push(this.outstanding.op);
    if (this.buffer) out.push(this.buffer);
    return out;
  }

  // A code point index in the server's document at `revision`, in the local text.
  toLocalIndex(pos) {
    for (const op of this.pending()) pos = transformIndex(op, pos);
    return pos;
  }

  // First load: the document as fetched; the editor already shows `content`.
  load(doc) {
    this.revision = doc.revision;
    this.serverText = doc.content;
    this.serverLen = cpLength(doc.content);
    this.ready = true;
    if (this.wantResync) this.resync(); // asked for before the document came
    else this.drainQueue();
    this.emitState();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.holdTimer);
    clearTimeout(this.resyncTimer);
  }

  // ---- keeping unsent edits across a reload ------------------------------------------

  // What is not confirmed yet, or null: the server's text and revision our edits were
  // made on, the outstanding operation with the client_id it was (or will be) sent under
  // and whether it may have reached the server, and the buffer; the site and sequence,
  // so the page that takes them over sends as the same author (ties order by it).
  unsent() {
    const o = this.outstanding;
    if (!this.ready || !o) return null;
    return {
      revision: this.revision,
      base: this.serverText,
      op: o.op,
      id: o.id,
      sent: Boolean(o.sent || o.inFlight || o.uncertain || o.committedAt),
      sentAs: o.sentAs || null, // the request as it went out, to send it again the same
      buffer: this.buffer,
      site: this.prefix,
      seq: this.seq,
      clean: !this.busy && this.queue.length === 0,
    };
  }

  // Starts from edits kept by unsent() instead of load(): the editor already shows them
  // applied to `base`. Operation events since then (the stream resumes after the event id
  // kept with them) are taken in order; the one carrying the outstanding client_id
  // confirms it when the server had it after all. An outstanding edit that may have
  // reached the server is held until the events have brought us to `fetchedRevision` (the
  // document's revision now): by then its event, if any, has come. It is sent again only
  // if not. Should the replay not come, the fetched text settles it (resync).
  restore(saved, fetchedRevision) {
    this.revision = saved.revision;
    this.serverText = saved.base;
    this.serverLen = cpLength(saved.base);
    this.seq = Math.max(this.seq, saved.seq || 0);
    this.outstanding = { op: saved.op, id: saved.id, sent: false, uncertain: Boolean(saved.sent), sentAs: saved.sentAs || null };
    this.buffer = saved.buffer && !isNoop(saved.buffer) ? saved.buffer : null;
    this.ready = true;
    if (saved.sent && Number.isInteger(fetchedRevision) && fetchedRevision > saved.revision) {
      this.holdUntil = fetchedRevision;
      clearTimeout(this.holdTimer);
      this.holdTimer = setTimeout(() => {
        if (this.holdUntil === null) return;
        this.holdUntil = null;
        this.resync();
      }, HOLD_MAX_MS);
    }
    if (this.wantResync) { // asked for before the document came: the fetched text decides
      this.resync();
      this.emitState();
      return;
    }
    this.drainQueue();
    this.emitState();
    if (this.holdUntil === null) this.retry();
  }

  // The replay has reached the revision a held edit waited for: it was not committed
  // (or it has been confirmed already): send what is left.
  releaseHold() {
    if (this.holdUntil === null || this.revision < this.holdUntil) return;
    this.holdUntil = null;
    clearTimeout(this.holdTimer);
    this.retry();
  }

  // ---- local edits ---------------------------------------------------------------------

  // op: a change the user just made, against the previous local text (exact length).
  local(op) {
    if (isNoop(op)) return;
    if (this.outstanding) this.buffer = this.buffer ? compose(this.buffer, op) : op;
    else {
      this.outstanding = { op, id: this.nextId(), sent: false };
      this.flush();
    }
    this.emitState();
  }

  nextId() {
    this.seq += 1;
    return `${this.prefix}.${this.seq}`;
  }

  // Sends the outstanding operation unless it is on its way or sending must wait.
  flush() {
    const o = this.outstanding;
    if (!o || o.sent || this.busy || this.stopped || !this.ready || this.holdUntil !== null) return;
    if (!this.io.canSend()) return; // retry() comes when we are back online
    this.send(o);
  }

  // An operation goes out as it was first sent, every time: the server recognises a repeat
  // of that exact request (same client_id, revision and ops) and answers it with the first
  // commit instead of applying it again. (It transforms the old revision's operation over
  // what came since, as ours was transformed here.)
  send(o) {
    o.sent = true;
    o.inFlight = true;
    if (!o.sentAs) o.sentAs = { revision: this.revision, ops: o.op.slice() };
    this.io.send({ revision: o.sentAs.revision, ops: o.sentAs.ops, client_id: o.id })
      .then((res) => this.answered(o, res))
      .catch(() => this.answered(o, { status: 0 }));
  }

  answered(o, res) {
    o.inFlight = false;
    if (this.stopped) return;
    if (this.outstanding !== o) { // confirmed by its event meanwhile
      if (this.wantResync && !this.busy && !(this.outstanding && this.outstanding.inFlight)) this.resync();
      return;
    }
    const { status, json } = res;
    // the server said what became of the edit; 401 and 429 come before it looks, and say
    // nothing of an earlier send whose answer was lost
    if (TELLS.has(status)) o.uncertain = false;
    if (status === 200 && json && Number.isInteger(json.revision)) {
      this.retryDelay = RETRY_MIN_MS;
      o.committedAt = json.revision;
      o.applied = json.ops;
      if (this.wantResync) this.resync();
      else this.confirmIfDue();
      return;
    }
    if (status === 409 && json && Number.isInteger(json.applied_revision) && json.applied_revision > 0) {
      // a repeat of a request the server committed (as applied_revision) whose operation it
      // no longer keeps: the edit is in the document. The refetched text holds it, so the
      // rebase keeps only what came after it (the buffer), and it is never sent again
      this.retryDelay = RETRY_MIN_MS;
      o.committedAt = json.applied_revision;
      o.applied = null;
      this.resync();
      return;
    }
    if (status === 409) { // stale beyond the kept log, or ahead: start again from the server
      o.sent = false;
      this.resync();
      return;
    }
    if (status === 400 || status === 403 || status === 413) {
      // refused for good: the edit cannot be made; go back to the server's text
      this.io.onError(status, (json && json.message) || `the edit was refused (${status})`);
      this.io.applyRemote(diff(this.io.localText(), this.serverText));
      this.outstanding = null;
      this.buffer = null;
      this.resync();
      return;
    }
    if (status === 401) {
      o.sent = false;
      o.probed = false; // a later resync asks about an uncertain edit again
      this.io.onError(401, (json && json.message) || 'your session has ended');
      return;
    }
    // no answer, 429 or 5xx: it may or may not have been committed. The stream brings
    // the commit if it was (and confirms it by client_id); try again after a pause, by
    // which time a reconnected stream has replayed what we missed. A resync that waited
    // for this answer asks the server about it first (resync(): the probe), so the rebase
    // does not take a committed edit for an unsent one and send it a second time.
    o.sent = false;
    if (status === 0 || status >= 500) o.uncertain = true;
    if (this.wantResync) {
      if (o.uncertain && o.probed) {
        // the question itself went unanswered: a refetch now would take the edit for an
        // unsent one, so ask again after a pause
        o.probed = false;
        clearTimeout(this.resyncTimer);
        this.resyncTimer = setTimeout(() => this.resync(), this.nextRetryDelay());
        return;
      }
      this.resync();
      return;
    }
    this.scheduleRetry();
  }

  nextRetryDelay() {
    const d = this.retryDelay * (0.75 + Math.random() * 0.5);
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    return d;
  }

  scheduleRetry() {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.flush(), this.nextRetryDelay());
  }

  // Called when the connection is back: send what waits, now.
  retry() {
    clearTimeout(this.retryTimer);
    this.retryDelay = RETRY_MIN_MS;
    // give the stream a moment to replay a commit we did not hear about
    const o = this.outstanding;
    this.retryTimer = setTimeout(() => this.flush(), o && o.uncertain ? 400 : 0);
  }

  // The POST answer confirmed our operation at `committedAt`; it can be taken as done
  // once every revision before it has been applied here.
  confirmIfDue() {
    const o = this.outstanding;
    if (!o || !o.committedAt || this.busy) return;
    if (o.committedAt === this.revision + 1) this.acknowledge(o.applied);
  }

  acknowledge(appliedOps) {
    const o = this.outstanding;
    const op = appliedOps || o.op;
    this.serverText = apply(op, this.serverText);
    this.serverLen = targetLength(extend(op, this.serverLen));
    this.revision += 1;
    this.outstanding = null;
    if (this.buffer) {
      this.outstanding = { op: this.buffer, id: this.nextId(), sent: false };
      this.buffer = null;
      this.flush();
    }
    this.emitState();
  }

  // ---- the stream --------------------------------------------------------------------

  // data: the `operation` event's {revision, ops, user, client_id}.
  remote(data) {
    if (this.busy || !this.ready) {
      this.queue.push(data);
      return;
    }
    const r = data.revision;
    if (!Number.isInteger(r) || r <= this.revision) return; // seen already
    if (r > this.revision + 1) { // we missed some: the document tells what
      this.queue.push(data);
      this.resync();
      return;
    }
    const o = this.outstanding;
    if (o && data.client_id === o.id) {
      this.acknowledge(data.ops);
      this.releaseHold();
      return;
    }
    let op;
    try {
      op = extend(data.ops, this.serverLen);
      this.serverText = apply(op, this.serverText);
      this.serverLen = targetLength(op);
    } catch {
      this.resync();
      return;
    }
    this.revision = r;
    const them = author(data.user && data.user.id, data.client_id);
    const mineFirst = authorCmp(this.me, them) < 0;
    if (o) [o.op, op] = transform(o.op, op, mineFirst);
    if (this.buffer) [this.buffer, op] = transform(this.buffer, op, mineFirst);
    if (!isNoop(op)) {
      try {
        this.io.applyRemote(op, authorCmp(them, this.me) < 0);
      } catch {
        this.resync(); // the editor and the model disagree: the server settles it
        return;
      }
    }
    this.confirmIfDue();
    this.releaseHold();
    this.emitState();
  }

  drainQueue() {
    const q = this.queue.sort((a, b) => a.revision - b.revision);
    this.queue = [];
    for (const d of q) {
      if (this.busy) {
        this.queue.push(d);
        continue;
      }
      this.remote(d);
    }
  }

  // ---- resynchronising ---------------------------------------------------------------

  // Refetches the document and rebases what we have pending onto it. While our POST is
  // on its way we wait for its answer, so we know whether the server has our edit.
  resync() {
    if (this.stopped) return;
    clearTimeout(this.resyncTimer); // this one does what a scheduled one would
    if (!this.ready) { // nothing to rebase yet: done once load() or restore() has the text
      this.wantResync = true;
      return;
    }
    if (this.outstanding && this.outstanding.inFlight) {
      this.wantResync = true;
      return;
    }
    // An edit that may have been committed without our hearing of it (its answer lost) is
    // sent once more first, under the same client_id: the server answers a repeat with the
    // first commit's revision (docs/API.md, "Live documents"), or commits it now. Either
    // way we know, and the rebase below does not apply it a second time.
    const o = this.outstanding;
    if (o && o.uncertain && !o.committedAt && !o.probed && !this.busy && this.ready) {
      this.wantResync = true;
      // offline: no refetch either, which would take the edit for an unsent one; retry(),
      // when the connection is back, sends it, and its answer brings the resync back here
      if (!this.io.canSend()) return;
      o.probed = true;
      this.send(o);
      return;
    }
    if (this.busy) {
      this.wantResync = true;
      return;
    }
    this.wantResync = false;
    this.busy = true;
    this.emitState();
    this.io.fetchDocument().then((doc) => {
      this.busy = false;
      this.rebase(doc);
      if (this.wantResync) this.resync();
      else {
        this.drainQueue();
        this.flush();
      }
      this.emitState();
    }, () => {
      this.busy = false;
      this.wantResync = false;
      this.emitState();
      clearTimeout(this.resyncTimer);
      this.resyncTimer = setTimeout(() => this.resync(), 2000);
    });
  }

  rebase(doc) {
    this.holdUntil = null; // the fetched text decides now
    clearTimeout(this.holdTimer);
    const o = this.outstanding;
    // what the server's document was when our pending edits were made, and those edits
    let base = this.serverText;
    let pending = null;
    if (o && o.committedAt && o.committedAt <= doc.revision) {
      // the server has our outstanding edit: it is part of the new text
      base = apply(o.op, base);
      pending = this.buffer;
    } else if (o) {
      pending = this.buffer ? compose(o.op, this.buffer) : o.op;
    }
    const theirs = diff(base, doc.content);
    let mine = pending;
    let shown = theirs;
    if (pending) [mine, shown] = transform(pending, theirs);
    this.revision = doc.revision;
    this.serverText = doc.content;
    this.serverLen = cpLength(doc.content);
    this.outstanding = mine && !isNoop(mine) ? { op: mine, id: this.nextId(), sent: false } : null;
    this.buffer = null;
    if (!isNoop(shown)) this.io.applyRemote(shown);
    // a last safety net: if the editor and our model disagree, the server wins
    const expect = this.outstanding ? apply(this.outstanding.op, this.serverText) : this.serverText;
    const local = this.io.localText();
    if (local !== expect) {
      this.outstanding = null;
      this.io.applyRemote(diff(local, this.serverText));
    }
  }

  emitState() {
    this.io.onState(this.state);
  }
}
