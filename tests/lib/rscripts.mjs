// The Lua scripts exactly as the programs send them: their final text (key functions and
// libraries put together by scripts/luagen.sh) and SHA-1, read from the generated
// build/gen/rscripts.c (make builds it). scripts() → Map name → {name, text, sha}.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './procs.mjs';

// A C string literal's body ("…" without the quotes) as the text it stands for.
function unescape(body) {
  return body.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c === 't' ? '\t' : c));
}

export function scripts(path = join(ROOT, 'build/gen/rscripts.c')) {
  const src = readFileSync(path, 'utf8');
  const out = new Map();
  const re = /const struct rscript rs_(\w+) = \{\n\t"(\w+)",\n((?:\t"(?:[^"\\]|\\.)*"\n)*)\t, "([0-9a-f]{40})"\n\};/g;
  for (const m of src.matchAll(re)) {
    const text = [...m[3].matchAll(/\t"((?:[^"\\]|\\.)*)"\n/g)].map((l) => unescape(l[1])).join('');
    out.set(m[2], { name: m[2], text, sha: m[4] });
  }
  if (out.size === 0) throw new Error(`no scripts found in ${path} (run make first)`);
  return out;
}
