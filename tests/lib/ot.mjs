// A reference implementation of the operations of docs/API.md for tests: apply an operation to a
// string, counting characters as Unicode code points.
export function applyOp(doc, ops) {
  const cps = Array.from(doc);
  let pos = 0;
  const out = [];
  for (const c of ops) {
    if (typeof c === 'string') out.push(...Array.from(c));
    else if (c > 0) {
      if (pos + c > cps.length) throw new Error(`retain past the end (${pos}+${c} > ${cps.length})`);
      out.push(...cps.slice(pos, pos + c));
      pos += c;
    } else {
      if (pos - c > cps.length) throw new Error('delete past the end');
      pos -= c;
    }
  }
  out.push(...cps.slice(pos));
  return out.join('');
}

export const cpLength = (s) => Array.from(s).length;
