// Collaborator colours. The server gives each user a stable colour (lib/presence.c) in
// presence events; the same function here colours members before they have moved. Rules
// go into one constructable stylesheet (allowed by the CSP, unlike style attributes), one
// class per colour: .cc-c-rrggbb sets --cc-user to it and --cc-user-fg to the text colour
// that reads on it (black or white, whichever contrasts more: WCAG 2 relative luminance).

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

// WCAG 2 relative luminance of "#rrggbb".
function luminance(hex) {
  const ch = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
}

// The contrast ratio of two colours "#rrggbb", 1 to 21.
export function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

// Black or white text on the background "#rrggbb": the one with more contrast.
export function textColorOn(bg) {
  return contrast(bg, '#000000') >= contrast(bg, '#ffffff') ? '#000000' : '#ffffff';
}

export { PALETTE };

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
    sheet.insertRule(`.${cls} { --cc-user: #${hex}; --cc-user-fg: ${textColorOn(`#${hex}`)}; }`, sheet.cssRules.length);
  }
  return cls;
}
