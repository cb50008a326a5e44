// Collaborator colours. The server gives each user a stable colour (lib/presence.c) in
// presence events; the same function here colours members before they have moved. Rules
// go into one constructable stylesheet (allowed by the CSP, unlike style attributes), one
// class per colour: .cc-c-rrggbb sets --cc-user to it.

const PALETTE = [
  '#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4',
  '#f032e6', '#9a6324', '#469990', '#800000', '#808000', '#000075',
];
const MASK = (1n << 64n) - 1n;

export function userColor(id) {
  let x = (BigInt(Math.trunc(Number(id) || 0)) * 0x9e3779b97f4a7c15n) & MASK;
  x ^= x >> 29n;
  return PALETTE[Number(x % BigInt(PALETTE.length))];
}

let sheet = null;
const known = new Set();

// The class that paints an element in `color` ("#rrggbb"; anything else falls back).
export function colorClass(color) {
  const hex = /^#[0-9a-fA-F]{6}$/.test(color || '') ? color.slice(1).toLowerCase() : '808080';
  const cls = `cc-c-${hex}`;
  if (!known.has(hex)) {
    known.add(hex);
    if (!sheet) {
      sheet = new CSSStyleSheet();
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }
    sheet.insertRule(`.${cls} { --cc-user: #${hex}; }`, sheet.cssRules.length);
  }
  return cls;
}
