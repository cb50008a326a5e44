// The CodeMirror 6 binding: the editor, its languages, the conversion between
// CodeMirror's changes (UTF-16 offsets) and operations (code points), and the remote
// carets and selections of the other people in the room.

import { ChangeSet, Compartment, EditorSelection, EditorState, Prec, StateEffect, StateField, Transaction } from '@codemirror/state';
import {
  EditorView, RectangleMarker, crosshairCursor, drawSelection, dropCursor,
  highlightActiveLine, highlightActiveLineGutter, highlightSpecialChars, keymap, layer, lineNumbers,
  rectangularSelection,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab, redo } from '@codemirror/commands';
import {
  HighlightStyle, StreamLanguage, bracketMatching, foldGutter, foldKeymap, indentOnInput,
  indentUnit, syntaxHighlighting,
} from '@codemirror/language';
import { closeBrackets, closeBracketsKeymap } from '@codemirror/autocomplete';
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search';
import { tags } from '@lezer/highlight';
import { cpp } from '@codemirror/lang-cpp';
import { python } from '@codemirror/lang-python';
import { javascript } from '@codemirror/lang-javascript';
import { java } from '@codemirror/lang-java';
import { go } from '@codemirror/lang-go';
import { rust } from '@codemirror/lang-rust';
import { shell } from '@codemirror/legacy-modes/mode/shell';

import { NOT_SENT, OpBuilder, cpAdvance, cpLength, wellFormed } from './ot.js';

// ---- languages -----------------------------------------------------------------------

const LANGUAGES = {
  c: () => cpp(),
  'c++': () => cpp(),
  python: () => python(),
  javascript: () => javascript(),
  typescript: () => javascript({ typescript: true }),
  java: () => java(),
  go: () => go(),
  rust: () => rust(),
  bash: () => StreamLanguage.define(shell),
  plaintext: () => [],
};

function languageSupport(name) {
  const make = LANGUAGES[name] || LANGUAGES.plaintext;
  return make();
}

// Colours come from CSS variables (style.css), so light and dark themes both work.
const highlight = HighlightStyle.define([
  { tag: [tags.keyword, tags.controlKeyword, tags.moduleKeyword, tags.operatorKeyword], color: 'var(--hl-keyword)' },
  { tag: [tags.string, tags.special(tags.string), tags.character], color: 'var(--hl-string)' },
  { tag: [tags.number, tags.bool, tags.null, tags.atom], color: 'var(--hl-number)' },
  { tag: [tags.comment, tags.lineComment, tags.blockComment], color: 'var(--hl-comment)', fontStyle: 'italic' },
  { tag: [tags.function(tags.variableName), tags.function(tags.propertyName)], color: 'var(--hl-function)' },
  { tag: [tags.typeName, tags.className, tags.namespace], color: 'var(--hl-type)' },
  { tag: [tags.definition(tags.variableName)], color: 'var(--hl-def)' },
  { tag: [tags.processingInstruction, tags.meta, tags.macroName], color: 'var(--hl-meta)' },
  { tag: [tags.propertyName], color: 'var(--hl-property)' },
  { tag: tags.invalid, color: 'var(--hl-invalid)' },
]);

const theme = EditorView.theme({
  '&': { height: '100%', backgroundColor: 'var(--editor-bg)', color: 'var(--fg)' },
  '.cm-scroller': { fontFamily: 'var(--mono)', lineHeight: '1.5' },
  '.cm-content': { caretColor: 'var(--fg)' },
  '.cm-gutters': { backgroundColor: 'var(--gutter-bg)', color: 'var(--muted)', borderRight: '1px solid var(--border)' },
  '.cm-activeLine': { backgroundColor: 'var(--active-line)' },
  '.cm-activeLineGutter': { backgroundColor: 'var(--active-line)' },
  '&.cm-focused .cm-cursor': { borderLeftColor: 'var(--fg)' },
  '&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection': { backgroundColor: 'var(--selection)' },
  '&.cm-focused': { outline: '2px solid var(--focus)', outlineOffset: '-2px' },
});

// ---- remote carets -------------------------------------------------------------------

const setRemote = StateEffect.define(); // {id, name, cls, anchor, head} in UTF-16 offsets
const dropRemote = StateEffect.define(); // id

// A caret drawn in a layer over the text, outside the editable content: widgets inside
// it would sit where the local user types, and Chrome copies the style of neighbouring
// inline elements into typed text as style attributes (which the CSP refuses).
// The name tag over it shows for a few seconds after its owner moves or types, then fades
// (style.css), so it does not keep covering the code on the line above; `moves` counts
// the owner's moves, and a new one shows the tag again.
class CaretMarker {
  constructor(name, cls, left, top, height, moves) {
    this.name = name;
    this.cls = cls;
    this.left = left;
    this.top = top;
    this.height = height;
    this.moves = moves;
  }

  eq(o) {
    return o.name === this.name && o.cls === this.cls && o.left === this.left && o.top === this.top
      && o.height === this.height && o.moves === this.moves;
  }

  draw() {
    const caret = document.createElement('div');
    caret.className = `cm-remote-caret ${this.cls}`;
    caret.dataset.user = this.name;
    caret.setAttribute('aria-hidden', 'true');
    const label = document.createElement('div');
    label.className = 'cm-remote-name';
    label.textContent = this.name;
    caret.append(label);
    this.place(caret);
    return caret;
  }

  update(dom, prev) {
    if (prev.name !== this.name || prev.cls !== this.cls) return false;
    this.place(dom);
    if (prev.moves !== this.moves && dom.firstChild && dom.firstChild.getAnimations) {
      for (const a of dom.firstChild.getAnimations()) a.currentTime = 0; // show the tag again
    }
    return true;
  }

  place(dom) {
    // CSSOM, not a style attribute: allowed by the CSP
    dom.style.left = `${this.left}px`;
    dom.style.top = `${this.top}px`;
    dom.style.height = `${this.height}px`;
    dom.classList.toggle('cm-remote-caret-top', this.top < 18);
  }
}

const remoteField = StateField.define({
  create: () => new Map(),
  update(map, tr) {
    let next = map;
    if (tr.docChanged) {
      next = new Map();
      for (const [id, c] of map) {
        next.set(id, { ...c, anchor: tr.changes.mapPos(c.anchor, 1), head: tr.changes.mapPos(c.head, 1) });
      }
    }
    for (const e of tr.effects) {
      if (e.is(setRemote)) {
        if (next === map) next = new Map(map);
        const len = tr.state.doc.length;
        const v = e.value;
        const had = next.get(v.id);
        next.set(v.id, { ...v, anchor: Math.min(v.anchor, len), head: Math.min(v.head, len), moves: had ? had.moves + 1 : 0 });
      } else if (e.is(dropRemote)) {
        if (next === map) next = new Map(map);
        next.delete(e.value);
      }
    }
    return next;
  },
});

function remoteMarkers(view) {
  const markers = [];
  const scroll = view.scrollDOM.getBoundingClientRect();
  const baseLeft = scroll.left - view.scrollDOM.scrollLeft * view.scaleX;
  const baseTop = scroll.top - view.scrollDOM.scrollTop * view.scaleY;
  const { from, to } = view.viewport;
  for (const c of view.state.field(remoteField).values()) {
    if (c.anchor !== c.head) {
      const range = EditorSelection.range(c.anchor, c.head);
      markers.push(...RectangleMarker.forRange(view, `cm-remote-selection ${c.cls}`, range));
    }
    if (c.head < from || c.head > to) continue;
    const at = view.coordsAtPos(c.head, 1) || view.coordsAtPos(c.head, -1);
    if (!at) continue;
    markers.push(new CaretMarker(c.name, c.cls, (at.left - baseLeft) / view.scaleX, (at.top - baseTop) / view.scaleY,
      (at.bottom - at.top) / view.scaleY, c.moves));
  }
  return markers;
}

const remoteLayer = layer({
  above: true,
  class: 'cm-remote-layer',
  markers: remoteMarkers,
  update: (u) => u.docChanged || u.viewportChanged || u.geometryChanged
    || u.startState.field(remoteField) !== u.state.field(remoteField),
});

// ---- changes and operations ----------------------------------------------------------

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;
const unitAt = (doc, i) => (i >= 0 && i < doc.length ? doc.sliceString(i, i + 1).charCodeAt(0) : 0);
const splitsPair = (doc, i) => isHigh(unitAt(doc, i - 1)) && isLow(unitAt(doc, i));

// The operation (code points, exact length) a transaction makes of its start document.
// Change boundaries inside a surrogate pair are widened to the whole pair; a lone
// surrogate the change leaves behind, and a NUL, is sent as U+FFFD (`lone` is then true).
export function transactionToOp(tr) {
  const old = tr.startState.doc;
  const now = tr.state.doc;
  const ranges = [];
  tr.changes.iterChanges((fromA, toA, fromB, toB) => {
    if (splitsPair(old, fromA)) {
      fromA--;
      fromB--;
    }
    if (splitsPair(old, toA)) {
      toA++;
      toB++;
    }
    const prev = ranges[ranges.length - 1];
    if (prev && fromA <= prev.toA) {
      prev.toA = Math.max(prev.toA, toA);
      prev.toB = Math.max(prev.toB, toB);
    } else {
      ranges.push({ fromA, toA, fromB, toB });
    }
  });
  const b = new OpBuilder();
  let pos = 0;
  let lone = false;
  for (const r of ranges) {
    b.retain(cpLength(old.sliceString(pos, r.fromA)));
    b.delete(cpLength(old.sliceString(r.fromA, r.toA)));
    const text = now.sliceString(r.fromB, r.toB);
    const clean = wellFormed(text);
    if (clean !== text) lone = true;
    b.insert(clean);
    pos = r.toA;
  }
  b.retain(cpLength(old.sliceString(pos)));
  return { op: b.done(), lone };
}

// CodeMirror changes doing op (code points) to the document `text`.
function opToChanges(op, text) {
  const changes = [];
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') {
      changes.push({ from: pos, insert: c });
    } else {
      const end = cpAdvance(text, pos, Math.abs(c));
      if (cpLength(text.slice(pos, end)) !== Math.abs(c)) throw new RangeError('operation past the end of the editor text');
      if (c < 0) changes.push({ from: pos, to: end });
      pos = end;
    }
  }
  return changes;
}

// ---- Windows line endings -------------------------------------------------------------

// The editor keeps every "\r" as a character (lineSeparator below), so a document with
// Windows line endings has positions exactly as the server counts them. Editing it should
// keep its line endings: a document whose first line ends in "\r\n" (a file put from disk)
// gets "\r\n" for every line break typed, pasted or dropped in, never has a caret left
// between a line's "\r" and its "\n" (End, a click past the line's end), and loses a
// "\r\n" whole to Backspace or Delete. Other documents get "\n", as CodeMirror gives.
const crlfDoc = (doc) => doc.lines > 1 && doc.line(1).text.endsWith('\r');

// Text coming in from the clipboard or a drop, with the document's own line breaks.
export function lineBreaksFor(text, state) {
  return crlfDoc(state.doc) ? text.replace(/\r\n?|\n/g, '\r\n') : text.replace(/\r\n?/g, '\n');
}

// pos, or the place before the "\r" when pos is between a line's "\r" and its "\n"
function offCr(doc, pos) {
  if (pos === 0 || pos >= doc.length || doc.sliceString(pos - 1, pos + 1) !== '\r\n') return pos;
  return pos - 1;
}

// ArrowRight (with Shift: extending the selection) at a line's end, before its "\r\n":
// on to the next line's start, past both (the caret is never left between them)
const crlfRight = (extend) => (view) => {
  const { state } = view;
  const r = state.selection.main;
  if (!crlfDoc(state.doc) || state.selection.ranges.length > 1 || (!extend && !r.empty)
    || state.doc.sliceString(r.head, r.head + 2) !== '\r\n') return false;
  view.dispatch({
    selection: extend ? EditorSelection.range(r.anchor, r.head + 2) : EditorSelection.cursor(r.head + 2),
    scrollIntoView: true,
    userEvent: 'select',
  });
  return true;
};

const crlfEditing = EditorState.transactionFilter.of((tr) => {
  // a change from elsewhere, or a restored snapshot, is taken exactly as it is
  if (tr.annotation(Transaction.remote) || tr.isUserEvent('input.restore') || !crlfDoc(tr.startState.doc)) return tr;
  const old = tr.startState.doc;
  if (tr.docChanged && tr.isUserEvent('delete')) {
    // a deletion that would split a "\r\n" takes all of it
    const ranges = [];
    let widened = false;
    tr.changes.iterChanges((fromA, toA) => {
      let from = fromA;
      let to = toA;
      if (from > 0 && to > from && old.sliceString(from - 1, from + 1) === '\r\n') from--;
      if (to > from && to < old.length && old.sliceString(to - 1, to + 1) === '\r\n') to++;
      if (from !== fromA || to !== toA) widened = true;
      ranges.push({ from, to });
    });
    if (!widened) return tr;
    const changes = tr.startState.changes(ranges);
    return { changes, selection: tr.startState.selection.map(changes, -1), userEvent: tr.annotation(Transaction.userEvent), scrollIntoView: true };
  }
  if (tr.docChanged && tr.isUserEvent('input')) {
    // a line break typed (Enter, with its indentation) is "\r\n" here; the carets after
    // it move on by the "\r" put before it. The character after the change is looked at
    // too: Enter drops the white space after the caret, and takes "\r" for some.
    const now = tr.newDoc;
    const crs = [];
    tr.changes.iterChanges((fromA, toA, fromB, toB) => {
      for (let i = fromB; i <= toB && i < now.length; i++) {
        if (now.sliceString(i, i + 1) === '\n' && (i === 0 || now.sliceString(i - 1, i) !== '\r')) crs.push({ from: i, insert: '\r' });
      }
    });
    return crs.length ? [tr, { changes: crs, sequential: true }] : tr;
  }
  if (tr.docChanged || !tr.selection) return tr;
  // a caret moved (End, a click past a line's end, an arrow) never rests between "\r" and
  // "\n": it stops before the "\r" (ArrowRight goes on past both: crlfRight)
  let moved = false;
  const ranges = tr.selection.ranges.map((r) => {
    const head = offCr(old, r.head);
    if (head === r.head) return r;
    moved = true;
    return r.empty ? EditorSelection.cursor(head) : EditorSelection.range(r.anchor, head);
  });
  return moved ? [tr, { selection: EditorSelection.create(ranges, tr.selection.mainIndex), sequential: true }] : tr;
});

// ---- Tab and the keyboard ------------------------------------------------------------

// Tab indents in the editor, which would trap keyboard users and, worse, type spaces into
// everyone's code when someone only meant to move on. So the editor reached with the
// keyboard (Tab from the control before it) lets Tab and Shift+Tab go on to the next
// control (CodeMirror's tab-focus mode) until any other key is pressed there: then Tab
// indents. A click into the editor makes Tab indent at once. Esc then Tab always leaves.
const FOCUS_BY_POINTER_MS = 1000;
const UNTIL_ANOTHER_KEY = 24 * 3600 * 1000; // tab-focus mode ends with the next other key

function tabPolicy() {
  let pointerAt = 0;
  return EditorView.domEventHandlers({
    pointerdown(event, view) {
      pointerAt = Date.now();
      view.setTabFocusMode(false);
      return false;
    },
    focus(event, view) {
      if (Date.now() - pointerAt > FOCUS_BY_POINTER_MS) view.setTabFocusMode(UNTIL_ANOTHER_KEY);
      return false;
    },
  });
}

// Ctrl+Shift+Z (Cmd+Shift+Z on macOS) redoes whatever case the letter comes in. With Caps
// Lock on the key is a lowercase 'z' with Shift held, which CodeMirror's keymap takes as
// Ctrl-z (undo) whenever there is something to undo; this runs before the keymap.
const MAC = /Mac|iPhone|iPad|iPod/.test(navigator.platform);

function redoKey() {
  return Prec.highest(EditorView.domEventHandlers({
    keydown(event, view) {
      const mod = MAC ? event.metaKey && !event.ctrlKey : event.ctrlKey && !event.metaKey;
      if (!mod || !event.shiftKey || event.altKey || event.key.toLowerCase() !== 'z') return false;
      event.preventDefault();
      redo(view);
      return true;
    },
  }));
}

// ---- the editor ----------------------------------------------------------------------

export class Editor {
  // opts: {parent, doc, language, readOnly, onLocal(op), onSelection(), runKey()}
  constructor(opts) {
    this.opts = opts;
    this.language = new Compartment();
    this.editable = new Compartment();
    const self = this;
    const state = EditorState.create({
      doc: opts.doc,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        foldGutter(),
        drawSelection(),
        dropCursor(),
        EditorState.allowMultipleSelections.of(true),
        // The text is the server's, character for character, and positions are counted in
        // it: a carriage return is a character like any other. By default CodeMirror takes
        // "\r\n" and "\r" for line breaks and keeps only "\n", so a document from a
        // Windows file would be shorter here than on the server, and every edit after its
        // first line would land one place early per line above it, for everyone.
        EditorState.lineSeparator.of('\n'),
        // ...and one with Windows line endings keeps them as it is edited
        EditorView.clipboardInputFilter.of(lineBreaksFor),
        crlfEditing,
        indentOnInput(),
        indentUnit.of('    '),
        syntaxHighlighting(highlight),
        bracketMatching(),
        closeBrackets(),
        rectangularSelection(),
        crosshairCursor(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        keymap.of([
          { key: 'Mod-Enter', run: () => { opts.runKey?.(); return true; } },
          { key: 'ArrowRight', run: crlfRight(false), shift: crlfRight(true) },
          ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap,
          ...foldKeymap, indentWithTab,
        ]),
        theme,
        remoteField,
        remoteLayer,
        this.language.of(languageSupport(opts.language)),
        this.editable.of(editableExt(!opts.readOnly)),
        EditorView.contentAttributes.of({
          'aria-label': 'Code editor. Tab moves on until you type here; then Tab indents, and Esc then Tab leaves.',
        }),
        tabPolicy(),
        redoKey(),
        EditorView.updateListener.of((u) => self.updated(u)),
        EditorView.domEventHandlers({ beforeinput: typeOverSelection }),
      ],
    });
    this.view = new EditorView({ state, parent: opts.parent });
  }

  updated(u) {
    for (const tr of u.transactions) {
      if (!tr.docChanged || tr.annotation(Transaction.remote)) continue;
      const { op, lone } = transactionToOp(tr);
      this.opts.onLocal(op);
      if (lone) setTimeout(() => this.replaceLoneSurrogates(), 0);
    }
    // only our own moves are news to the others: a remote edit maps our caret the same
    // way on every screen
    if (u.transactions.some((tr) => !tr.annotation(Transaction.remote) && (tr.docChanged || tr.selection))) {
      this.opts.onSelection();
    }
  }

  // The text we sent has U+FFFD where the editor still has a lone surrogate or a NUL:
  // match it.
  replaceLoneSurrogates() {
    const text = this.text();
    const changes = [];
    const re = new RegExp(NOT_SENT.source, 'g');
    for (let m = re.exec(text); m; m = re.exec(text)) changes.push({ from: m.index, to: m.index + 1, insert: '\ufffd' });
    if (changes.length) this.view.dispatch({ changes, annotations: [Transaction.remote.of(true), Transaction.addToHistory.of(false)] });
  }

  text() {
    return this.view.state.doc.toString();
  }

  // A change from elsewhere: not sent back, not undone by the local user's undo.
  // before: text inserted exactly at our caret belongs before it (its author sorts
  // before us, lib/ot.h "Who goes first"), so the caret moves past it; otherwise the
  // caret stays in front of it. Either way our next keystroke lands where the server's
  // order puts it and our typing stays one run.
  applyRemote(op, before = false) {
    const state = this.view.state;
    // split into lines as the state does (lineSeparator above), "\r" kept
    const changes = ChangeSet.of(opToChanges(op, this.text()), state.doc.length, state.lineBreak);
    this.view.dispatch({
      changes,
      selection: state.selection.map(changes, before ? 1 : -1),
      annotations: [Transaction.remote.of(true), Transaction.addToHistory.of(false)],
    });
  }

  // A change made here on purpose (restore a snapshot): sent like typing, undoable.
  replaceAll(content) {
    const cur = this.text();
    if (cur === content) return;
    let p = 0;
    while (p < cur.length && p < content.length && cur.charCodeAt(p) === content.charCodeAt(p)) p++;
    if (p > 0 && isHigh(cur.charCodeAt(p - 1))) p--;
    let s = 0;
    while (s < cur.length - p && s < content.length - p
      && cur.charCodeAt(cur.length - 1 - s) === content.charCodeAt(content.length - 1 - s)) s++;
    if (s > 0 && isLow(cur.charCodeAt(cur.length - s))) s--;
    this.view.dispatch({
      changes: { from: p, to: cur.length - s, insert: content.slice(p, content.length - s) },
      userEvent: 'input.restore',
    });
  }

  // The main selection in code points: {cursor, selection:{anchor, head}}.
  selectionCp() {
    const sel = this.view.state.selection.main;
    const doc = this.view.state.doc;
    const head = cpLength(doc.sliceString(0, sel.head));
    const anchor = sel.anchor === sel.head ? head : cpLength(doc.sliceString(0, sel.anchor));
    return { cursor: head, selection: { anchor, head } };
  }

  // Shows (or moves) another person's caret; positions in code points of the local text.
  setRemote(id, name, cls, anchorCp, headCp) {
    const text = this.text();
    const anchor = cpAdvance(text, 0, anchorCp);
    const head = anchorCp === headCp ? anchor : cpAdvance(text, 0, headCp);
    this.view.dispatch({ effects: setRemote.of({ id, name, cls, anchor, head }) });
  }

  dropRemote(id) {
    this.view.dispatch({ effects: dropRemote.of(id) });
  }

  setLanguage(name) {
    this.view.dispatch({ effects: this.language.reconfigure(languageSupport(name)) });
  }

  setReadOnly(readOnly) {
    this.view.dispatch({ effects: this.editable.reconfigure(editableExt(!readOnly)) });
  }

  focus() {
    this.view.focus();
  }

  destroy() {
    this.view.destroy();
  }
}

// Typing over a selection is done here rather than by the browser: Chrome keeps the look
// of the text it deletes by writing a style attribute into the line, which the CSP
// refuses (a console error for every such keystroke). IME composition stays native.
function typeOverSelection(event, view) {
  if (event.inputType !== 'insertText' || typeof event.data !== 'string' || view.composing) return false;
  if (view.state.selection.ranges.every((r) => r.empty) || view.state.readOnly) return false;
  event.preventDefault();
  view.dispatch(view.state.replaceSelection(event.data), { userEvent: 'input.type', scrollIntoView: true });
  return true;
}

function editableExt(editable) {
  return [EditorState.readOnly.of(!editable), EditorView.editable.of(editable)];
}
