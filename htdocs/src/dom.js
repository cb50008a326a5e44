// Building the page: elements from tag, attributes and children; text is always text
// (never parsed as HTML). Attribute values go through setAttribute, never style
// attributes (the CSP forbids inline styles).

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// A name someone chose (a room's, a user's) shown among other text: in a <bdi>, so that
// its own direction, and any bidi control it holds left open (U+202E and the like), stays
// inside it and cannot reorder the text around it.
export const named = (text) => h('bdi', null, text);

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// A status line in the page's live region, for screen readers as for eyes. kind: 'error'
// and 'notice' (news to read, such as why a room was left) stay until replaced; 'ok'
// (a confirmation) goes after a few seconds. text: a string, or an array of strings and
// nodes (a name in named()).
export function say(text, kind = 'error') {
  const el = document.getElementById('status');
  if (!el) return;
  if (Array.isArray(text)) el.replaceChildren(...text.map((c) => (c instanceof Node ? c : String(c))));
  else el.textContent = text || '';
  el.dataset.kind = kind;
  clearTimeout(say.timer);
  if (text && kind === 'ok') say.timer = setTimeout(() => { el.textContent = ''; }, 4000);
}

// An error shown under the form field it is about (and tied to it for screen readers by
// aria-describedby); null clears it. Typing in the field clears it too.
export function fieldError(input, text) {
  const id = `${input.name}-error`;
  let el = document.getElementById(id);
  if (!text) {
    if (el) el.remove();
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
    return;
  }
  if (!el) {
    el = h('p', { id, class: 'field-error', 'data-error-for': input.name });
    input.insertAdjacentElement('afterend', el);
    input.addEventListener('input', () => fieldError(input, null), { once: true });
  }
  el.textContent = text;
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', id);
}

export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}
