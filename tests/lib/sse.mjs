// Server-Sent Events as the tests read them (no side effects on import, so the program
// suites, which start no stack, can use it too).

// The blocks of an SSE body (a fetch Response's body), each the text before a blank line,
// as they arrive. Errors (an aborted fetch) reach the caller.
export async function* sseBlockStream(body) {
  const dec = new TextDecoder();
  let text = '';
  for await (const chunk of body) {
    text += dec.decode(chunk, { stream: true });
    let at;
    while ((at = text.indexOf('\n\n')) >= 0) {
      yield text.slice(0, at);
      text = text.slice(at + 2);
    }
  }
}

// One block's fields ({id, event, data, …}; a field given twice keeps the last); comment
// lines (": …") and lines without a name are left out.
export function sseFields(block) {
  const ev = {};
  for (const line of block.split('\n')) {
    const c = line.indexOf(':');
    if (c > 0) ev[line.slice(0, c)] = line.slice(c + 1).trimStart();
  }
  return ev;
}

// The events of an SSE text cut at a block's end, as {id, type, data} with data parsed as
// JSON, for every block that has data (comments and blocks without data are left out). The
// data lines of one block are joined with newlines, as EventSource does.
export function sseEvents(text) {
  const events = [];
  for (const block of text.split('\n\n')) {
    const ev = { data: [] };
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') continue;
      const i = line.indexOf(':');
      const k = i < 0 ? line : line.slice(0, i);
      let v = i < 0 ? '' : line.slice(i + 1);
      if (v.startsWith(' ')) v = v.slice(1);
      if (k === 'data') ev.data.push(v); else ev[k] = v;
    }
    if (ev.data.length) events.push({ id: ev.id, type: ev.event, data: JSON.parse(ev.data.join('\n')) });
  }
  return events;
}
