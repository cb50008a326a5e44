// Operations on plain text (docs/API.md, "Operations"), with the server's semantics
// (lib/ot.c): an operation is an array walking the document from its start; a positive
// number retains that many characters, a negative one deletes that many, a string
// inserts itself. Characters are Unicode code points, never UTF-16 units: every count
// here is in code points and strings are sliced only at code point boundaries.
//
// Operations are kept normal, as the server keeps them: adjacent components of one kind
// merged, no zero counts or empty strings, and an insert next to a delete written first.
// Functions never change the arrays they are given.

// ---- code points in JavaScript strings ------------------------------------------------

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

// Number of code points in s (a lone surrogate counts as one, as JSON would send it).
export function cpLength(s) {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) {
      n--;
      i++;
    }
  }
  return n;
}

// The UTF-16 index in s after `cps` code points counted from UTF-16 index `from`.
// Stops at the end of s.
export function cpAdvance(s, from, cps) {
  let i = from;
  while (cps > 0 && i < s.length) {
    i += isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
    cps--;
  }
  return i;
}

// Code point index of UTF-16 index i in s (an index inside a pair counts as after it).
export function cpIndex(s, i) {
  return cpLength(s.slice(0, i));
}

// Replaces what the server takes in no text by U+FFFD: unpaired surrogates, which UTF-8
// cannot carry, and NUL (U+0000), which the API refuses (docs/API.md, "Live documents").
export const NOT_SENT = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|\u0000/g;
export function wellFormed(s) {
  return s.replace(NOT_SENT, '\ufffd');
}

// ---- building -----------------------------------------------------------------------

// Appends components to an operation, keeping it normal and counting its lengths.
export class OpBuilder {
  constructor() {
    this.ops = [];
    this.base = 0;
    this.target = 0;
  }

  retain(n) {
    if (n <= 0) return this;
    const ops = this.ops;
    const last = ops[ops.length - 1];
    if (typeof last === 'number' && last > 0) ops[ops.length - 1] = last + n;
    else ops.push(n);
    this.base += n;
    this.target += n;
    return this;
  }

  delete(n) {
    if (n <= 0) return this;
    const ops = this.ops;
    const last = ops[ops.length - 1];
    if (typeof last === 'number' && last < 0) ops[ops.length - 1] = last - n;
    else ops.push(-n);
    this.base += n;
    return this;
  }

  // `cps` may be given when the caller knows the code point length of s.
  insert(s, cps = cpLength(s)) {
    if (s === '') return this;
    const ops = this.ops;
    const last = ops[ops.length - 1];
    if (typeof last === 'number' && last < 0) {
      // an insert goes before a trailing delete, joining an insert before that
      const before = ops[ops.length - 2];
      if (typeof before === 'string') ops[ops.length - 2] = before + s;
      else ops.splice(ops.length - 1, 0, s);
    } else if (typeof last === 'string') {
      ops[ops.length - 1] = last + s;
    } else {
      ops.push(s);
    }
    this.target += cps;
    return this;
  }

  done() {
    return this.ops;
  }
}

// ---- inspecting ---------------------------------------------------------------------

export function baseLength(op) {
  let n = 0;
  for (const c of op) if (typeof c === 'number') n += Math.abs(c);
  return n;
}

export function targetLength(op) {
  let n = 0;
  for (const c of op) {
    if (typeof c === 'string') n += cpLength(c);
    else if (c > 0) n += c;
  }
  return n;
}

// True when op changes nothing.
export function isNoop(op) {
  return op.every((c) => typeof c === 'number' && c > 0);
}

// Checks the shape of an operation that came from outside; returns it normal.
export function normalize(op) {
  if (!Array.isArray(op)) throw new TypeError('an operation is an array');
  const b = new OpBuilder();
  for (const c of op) {
    if (typeof c === 'string') b.insert(c);
    else if (Number.isInteger(c) && c > 0) b.retain(c);
    else if (Number.isInteger(c) && c < 0) b.delete(-c);
    else throw new TypeError(`not an operation component: ${JSON.stringify(c)}`);
  }
  return b.done();
}

// op with its trailing retain written out, so that its base length is exactly len.
export function extend(op, len) {
  const base = baseLength(op);
  if (base > len) throw new RangeError(`the operation reaches past the end of a ${len}-character document`);
  const b = new OpBuilder();
  for (const c of op) pushComponent(b, c);
  return b.retain(len - base).done();
}

function pushComponent(b, c) {
  if (typeof c === 'string') b.insert(c);
  else if (c > 0) b.retain(c);
  else b.delete(-c);
}

// ---- applying -----------------------------------------------------------------------

// The text after op; characters past its base length are kept (the implicit trailing
// retain). Throws when a retain or delete runs past the end.
export function apply(op, text) {
  const parts = [];
  let at = 0; // UTF-16 index in text
  for (const c of op) {
    if (typeof c === 'string') {
      parts.push(c);
      continue;
    }
    const n = Math.abs(c);
    const end = cpAdvance(text, at, n);
    if (cpLength(text.slice(at, end)) !== n) throw new RangeError('the operation runs past the end of the document');
    if (c > 0) parts.push(text.slice(at, end));
    at = end;
  }
  parts.push(text.slice(at));
  return parts.join('');
}

// ---- composing and transforming -----------------------------------------------------

// A read position inside an operation, possibly in the middle of a component.
class Walk {
  constructor(op) {
    this.op = op;
    this.i = 0;
    this.done = 0; // characters of the current component already taken
    this.off = 0; // insert: UTF-16 units of its text already taken
  }

  // [kind, characters left] of the current component, or null at the end.
  peek() {
    if (this.i >= this.op.length) return null;
    const c = this.op[this.i];
    if (typeof c === 'string') {
      if (this.len === undefined) this.len = cpLength(c);
      return ['insert', this.len - this.done];
    }
    return [c > 0 ? 'retain' : 'delete', Math.abs(c) - this.done];
  }

  // Takes k characters of the current component; for an insert, returns their text.
  take(k) {
    const c = this.op[this.i];
    let text = '';
    if (typeof c === 'string') {
      const end = cpAdvance(c, this.off, k);
      text = c.slice(this.off, end);
      this.off = end;
    }
    this.done += k;
    const total = typeof c === 'string' ? this.len : Math.abs(c);
    if (this.done === total) {
      this.i++;
      this.done = 0;
      this.off = 0;
      this.len = undefined;
    }
    return text;
  }
}

// One operation doing a then b. Needs targetLength(a) == baseLength(b).
export function compose(a, b) {
  if (targetLength(a) !== baseLength(b)) {
    throw new RangeError(`cannot compose: the first operation leaves ${targetLength(a)} characters, the second expects ${baseLength(b)}`);
  }
  const r = new OpBuilder();
  const wa = new Walk(a);
  const wb = new Walk(b);
  for (;;) {
    const ca = wa.peek();
    const cb = wb.peek();
    if (!ca && !cb) break;
    if (ca && ca[0] === 'delete') { // b never saw these characters
      wa.take(ca[1]);
      r.delete(ca[1]);
    } else if (cb && cb[0] === 'insert') { // nor these: a never had them
      r.insert(wb.take(cb[1]), cb[1]);
    } else if (!ca || !cb) {
      throw new RangeError('cannot compose: the operations do not line up');
    } else {
      const k = Math.min(ca[1], cb[1]);
      const ta = wa.take(k);
      wb.take(k);
      if (ca[0] === 'retain' && cb[0] === 'retain') r.retain(k);
      else if (ca[0] === 'retain') r.delete(k); // b deletes what a kept
      else if (cb[0] === 'retain') r.insert(ta, k); // b keeps what a inserted
      // else b deletes what a inserted: nothing is left of either
    }
  }
  return r.done();
}

// ---- who goes first (lib/ot.h, "Who goes first") ------------------------------------

// An operation's author: {user, site}, site being its client_id up to the last '.'.
export function siteOf(clientId) {
  if (typeof clientId !== 'string') return '';
  const dot = clientId.lastIndexOf('.');
  return dot >= 0 ? clientId.slice(0, dot) : clientId;
}

export function author(userId, clientId) {
  return { user: Number.isInteger(userId) ? userId : 0, site: siteOf(clientId) };
}

// <0 when x's inserts go before y's at one position, >0 after, 0 for the same author.
// Sites compare by code point, as the server compares their UTF-8 bytes (UTF-16 units
// would order astral characters differently).
export function authorCmp(x, y) {
  if (x.user !== y.user) return x.user < y.user ? -1 : 1;
  const a = Array.from(x.site);
  const b = Array.from(y.site);
  for (let i = 0; i < a.length && i < b.length; i++) {
    const d = a[i].codePointAt(0) - b[i].codePointAt(0);
    if (d) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

// Transforms two operations made on the same document (equal base lengths) so that
// apply(apply(d, a), b') == apply(apply(d, b), a'); returns [a', b'].
// Roles, as on the server: b is the operation committed first (the server's), a the one
// made without seeing it (the client's pending one). When both insert at the same
// position, a's text goes first if aFirst (its author sorts first: authorCmp), else b's;
// server and client pass the same, so they order ties alike.
export function transform(a, b, aFirst = false) {
  if (baseLength(a) !== baseLength(b)) {
    throw new RangeError(`cannot transform: the operations apply to documents of ${baseLength(a)} and ${baseLength(b)} characters`);
  }
  const ap = new OpBuilder();
  const bp = new OpBuilder();
  const wa = new Walk(a);
  const wb = new Walk(b);
  for (;;) {
    const ca = wa.peek();
    const cb = wb.peek();
    if (!ca && !cb) break;
    if (aFirst && ca && ca[0] === 'insert') {
      const t = wa.take(ca[1]);
      ap.insert(t, ca[1]);
      bp.retain(ca[1]);
      continue;
    }
    if (cb && cb[0] === 'insert') {
      const t = wb.take(cb[1]);
      ap.retain(cb[1]);
      bp.insert(t, cb[1]);
      continue;
    }
    if (ca && ca[0] === 'insert') {
      const t = wa.take(ca[1]);
      ap.insert(t, ca[1]);
      bp.retain(ca[1]);
      continue;
    }
    if (!ca || !cb) throw new RangeError('cannot transform: the operations do not line up');
    const k = Math.min(ca[1], cb[1]);
    wa.take(k);
    wb.take(k);
    if (ca[0] === 'retain' && cb[0] === 'retain') {
      ap.retain(k);
      bp.retain(k);
    } else if (ca[0] === 'delete' && cb[0] === 'retain') {
      ap.delete(k);
    } else if (ca[0] === 'retain' && cb[0] === 'delete') {
      bp.delete(k);
    } // both deleted the same characters: neither has to any more
  }
  return [ap.done(), bp.done()];
}

// Where a cursor at code point index pos ends up once op is applied: text inserted
// before it pushes it right, text deleted before it pulls it left (lib/ot.c's rule).
// Text inserted exactly at it pushes it too unless afterOp is false: the caret of a
// typist whose author sorts before op's stays before such text, as their typing would.
export function transformIndex(op, pos, afterOp = true) {
  let at = 0;
  let out = pos;
  for (const c of op) {
    if (at > pos) break;
    if (typeof c === 'string') {
      if (at < pos || afterOp) out += cpLength(c);
    } else if (c > 0) at += c;
    else {
      out -= Math.min(-c, pos - at);
      at += -c;
    }
  }
  return out;
}

// An operation turning `from` into `to`: one replacement between their common prefix
// and suffix, cut at code point boundaries. Enough for a refetched document or a
// restored snapshot, where the exact edit history is unknown.
export function diff(from, to) {
  let p = 0;
  const max = Math.min(from.length, to.length);
  while (p < max && from.charCodeAt(p) === to.charCodeAt(p)) p++;
  if (p > 0 && p < max + 1 && isHigh(from.charCodeAt(p - 1))) p--; // never split a pair
  let s = 0;
  while (s < max - p && from.charCodeAt(from.length - 1 - s) === to.charCodeAt(to.length - 1 - s)) s++;
  if (s > 0 && isLow(from.charCodeAt(from.length - s))) s--;
  const b = new OpBuilder();
  b.retain(cpLength(from.slice(0, p)));
  b.delete(cpLength(from.slice(p, from.length - s)));
  b.insert(to.slice(p, to.length - s));
  b.retain(cpLength(from.slice(from.length - s)));
  return b.done();
}
