// Which room languages can run here: GET /api/runtimes, asked once per page and shared by
// the room form, the room's Run button and the run panel's runtime list. A language with no
// runtime (Plain text always; Java, Go, … unless the operator added them) is "edit only".

import { api } from './api.js';

let pending = null; // the answer on its way, or null to ask again
let known = null; // the last list that arrived

// The runtimes as the API lists them ([{language, version, aliases}]), or null when the
// server cannot say now (no worker is running, the network is down): then nothing is
// called edit only. A failed look-up is asked again next time.
export function loadRuntimes() {
  if (!pending) {
    pending = api('GET', '/api/runtimes')
      .then((res) => (Array.isArray(res && res.runtimes) ? res.runtimes : null))
      .catch(() => null)
      .then((list) => {
        if (!list) pending = null;
        else known = list;
        return list;
      });
  }
  return pending;
}

// The list loadRuntimes() last received, or null (not asked yet, or not known).
export const knownRuntimes = () => known;

// true when a runtime goes by the language's name or one of its aliases, false when none
// does, null when the list is not known.
export function canRun(runtimes, language) {
  if (!Array.isArray(runtimes)) return null;
  const l = String(language || '').toLowerCase();
  return runtimes.some((r) => r && (String(r.language).toLowerCase() === l
    || (Array.isArray(r.aliases) && r.aliases.some((a) => String(a).toLowerCase() === l))));
}

// The sentence a room shows in place of Run, for people.
export function editOnlyText(name) {
  return `This server cannot run ${name}: no runtime for it is installed. You can still edit together.`;
}
