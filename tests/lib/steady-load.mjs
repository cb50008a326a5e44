// Steady load on a running stack, and the checks a fault must not break: for the suites
// that kill a process under load (a supervised single box, or the cluster layout).
//
//   const load = await startLoad({ base, writers: 4, subscribers: 24 });
//   ... kill something ...
//   const t = await load.recovered(faultAt);   // ms until commits and streams flow again
//   const report = await load.finish();        // stops the load, waits, checks everything
//
// Writers insert unique markers ("<w3.17>") at the start of one room's document through
// POST /operations, each with a client_id, and send the very same request again after an
// error or a lost answer (the server answers a repeat as it answered the first time), so
// an operation counts as acknowledged only once a 200 came back. Subscribers follow the room
// over Server-Sent Events and, when their stream breaks, come back with a fresh ticket and
// Last-Event-ID. A trickle of executions runs beside them. finish() then checks:
//   - the final document holds every acknowledged marker exactly once, and no marker that
//     was never sent (nothing acknowledged was lost, nothing applied twice);
//   - every subscriber saw every revision from its first to the final one exactly once;
//   - every execution ended with exactly one final event and `finished` or `failed` status
//     (none lost, none finished twice).
// `bases` may list several front doors (web nodes): requests go round them.

import { sseBlockStream, sseFields } from './sse.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// p, or nothing after ms: the timer is cleared either way, so it keeps no process alive
async function within(p, ms) {
  let timer;
  try {
    return await Promise.race([p, new Promise((r) => { timer = setTimeout(r, ms); })]);
  } finally { clearTimeout(timer); }
}

async function http(base, method, path, { token, body, timeoutMs = 10000 } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

// Keeps asking until the answer is one of `want` (5xx and network errors are retried until
// deadlineMs has passed): for setup and checks, which may run while a node is down.
async function must(base, method, path, opts = {}, want = [200, 201, 202, 204], deadlineMs = 30000) {
  const until = Date.now() + deadlineMs;
  let last = '';
  for (;;) {
    try {
      const r = await http(base, method, path, opts);
      if (want.includes(r.status)) return r;
      last = `${r.status} ${r.text.slice(0, 200)}`;
      if (r.status < 500 && r.status !== 429) throw new Error(`${method} ${path}: ${last}`);
    } catch (e) {
      if (e.message.startsWith(`${method} ${path}:`)) throw e;
      last = e.message;
    }
    if (Date.now() > until) throw new Error(`${method} ${path}: no answer in time (${last})`);
    await sleep(200);
  }
}

const MARK = /<w(\d+)\.(\d+)>/g;

export async function startLoad({
  base, bases = [base], writers = 4, subscribers = 20, execEveryMs = 2500, writeGapMs = 20,
  language = 'python', execCode = (i) => `print(${i})`, log = () => {},
} = {}) {
  let turn = 0;
  const pick = () => bases[turn++ % bases.length];
  const password = 'pw-steady-load-1';
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const register = async (i) => {
    const r = await must(pick(), 'POST', '/api/auth/register', { body: { username: `load${i}x${suffix}`, password } }, [201]);
    return r.json.token;
  };
  const owner = await register(0);
  const room = (await must(pick(), 'POST', '/api/rooms', { token: owner, body: { name: 'steady load', language } }, [201])).json.room;
  const tokens = [owner];
  for (let i = 1; i < writers; i++) {
    const t = await register(i);
    await must(pick(), 'POST', `/api/rooms/${room.id}/join`, { token: t, body: { invite: room.invite } }, [200]);
    tokens.push(t);
  }

  let stopping = false;
  const acked = new Set();   // markers whose commit got a 200
  const sent = new Set();    // markers ever sent
  const stats = { commits: 0, retries: 0, errors: {}, lastAckAt: 0, execs: 0 };
  const ackLog = []; // {sent, t, rev} of every acknowledged commit, in order
  const note = (what) => { stats.errors[what] = (stats.errors[what] || 0) + 1; };

  // ---- writers
  const writer = async (w) => {
    const token = tokens[w % tokens.length];
    let revision = 0, n = 0;
    while (!stopping) {
      const marker = `<w${w}.${n++}>`;
      const body = { revision, ops: [marker], client_id: `load${w}.${n}` };
      sent.add(marker);
      const sentAt = Date.now(); // its first try: a repeat may be answered with an older commit
      for (;;) {
        let r;
        try {
          r = await http(pick(), 'POST', `/api/rooms/${room.id}/operations`, { token, body });
        } catch (e) {
          r = { status: 0, text: e.message };
        }
        if (r.status === 200) {
          acked.add(marker);
          stats.commits++;
          stats.lastAckAt = Date.now();
          revision = r.json.revision;
          ackLog.push({ sent: sentAt, t: stats.lastAckAt, rev: revision });
          break;
        }
        if (r.status === 409) {
          // revision_too_old, or revision_in_future when the server lost commits (the check
          // at the end finds those): nothing was applied; again from the current document
          const d = await must(pick(), 'GET', `/api/rooms/${room.id}/document`, { token });
          body.revision = revision = d.json.revision;
          body.client_id = `load${w}.${n}.r${revision}`;
          continue;
        }
        note(r.status || 'network');
        if (r.status && r.status < 500 && r.status !== 429 && r.status !== 409)
          throw new Error(`writer ${w}: ${r.status} ${r.text.slice(0, 200)}`);
        stats.retries++;
        if (stopping && Date.now() > stopDeadline) return; // unacknowledged: not counted
        await sleep(100);
      }
      await sleep(writeGapMs);
    }
  };
  let stopDeadline = 0;

  // ---- subscribers
  const subs = [];
  const subscriber = async (k) => {
    const token = tokens[k % tokens.length];
    const me = { k, revisions: [], recvAt: new Map(), dup: 0, lastId: '', connects: 0, lastAt: 0, resync: 0, ctrl: null, finals: new Map() };
    subs.push(me);
    while (!stopping) {
      try {
        const t = await http(pick(), 'POST', `/api/rooms/${room.id}/stream-ticket`, { token, body: {} });
        if (t.status !== 200) throw new Error(`ticket ${t.status}`);
        me.ctrl = new AbortController();
        const headers = { accept: 'text/event-stream' };
        if (me.lastId) headers['last-event-id'] = me.lastId;
        const res = await fetch(`${pick()}/events/rooms/${room.id}?ticket=${encodeURIComponent(t.json.ticket)}`, { headers, signal: me.ctrl.signal });
        if (res.status !== 200) { await res.body?.cancel(); throw new Error(`stream ${res.status}`); }
        me.connects++;
        for await (const block of sseBlockStream(res.body)) {
          const { id, event: type = 'message', data } = sseFields(block);
          if (id) me.lastId = id;
          if (type === 'resync') me.resync++;
          if (type === 'execution') {
            const e = JSON.parse(data);
            if (['finished', 'failed', 'cancelled', 'compile_error'].includes(e.status))
              me.finals.set(e.job_id, (me.finals.get(e.job_id) || 0) + 1);
            continue;
          }
          if (type !== 'operation') continue;
          const rev = JSON.parse(data).revision;
          if (me.revisions.length && rev <= me.revisions[me.revisions.length - 1]) me.dup++;
          me.revisions.push(rev);
          me.lastAt = Date.now();
          me.recvAt.set(rev, me.lastAt);
        }
      } catch (e) {
        if (stopping) break;
        note(`stream: ${e.name === 'AbortError' ? 'aborted' : e.message.slice(0, 40)}`);
      }
      if (!stopping) await sleep(200);
    }
  };

  // ---- executions
  const jobs = new Map(); // id -> token
  const executor = async () => {
    let i = 0;
    while (!stopping) {
      const token = tokens[i++ % tokens.length];
      try {
        const r = await http(pick(), 'POST', `/api/rooms/${room.id}/executions`, { token, body: { language: 'python', code: execCode(i) } });
        if (r.status === 202) { jobs.set(r.json.job.id, token); stats.execs++; }
        else note(`exec ${r.status}`);
      } catch (e) { note('exec network'); }
      await sleep(execEveryMs);
    }
  };

  const running = [];
  for (let k = 0; k < subscribers; k++) running.push(subscriber(k));
  // subscribers first, so each sees the room from its first commit
  const until = Date.now() + 20000;
  while (subs.some((s) => s.connects === 0) && Date.now() < until) await sleep(50);
  for (let w = 0; w < writers; w++) running.push(writer(w));
  if (execEveryMs > 0) running.push(executor());
  log(`load: room ${room.id}, ${writers} writers, ${subscribers} subscribers`);

  // The document and streams against what was acknowledged (finish() calls it; a test of
  // the checker itself may call it with a document of its own).
  const check = (final) => {
    const problems = [];
    const seen = new Map();
    for (const m of final.content.matchAll(MARK)) seen.set(m[0], (seen.get(m[0]) || 0) + 1);
    for (const m of acked) if (seen.get(m) !== 1) problems.push(`acknowledged ${m} is in the document ${seen.get(m) || 0} times`);
    for (const [m, c] of seen) {
      if (!sent.has(m)) problems.push(`${m} is in the document but was never sent`);
      else if (c !== 1) problems.push(`${m} is in the document ${c} times`);
    }
    for (const s of subs) {
      const r = s.revisions;
      if (s.dup) problems.push(`subscriber ${s.k} got ${s.dup} revisions twice or out of order`);
      if (s.resync) problems.push(`subscriber ${s.k} was told to resync`);
      if (!r.length) { problems.push(`subscriber ${s.k} got nothing`); continue; }
      if (r[r.length - 1] !== final.revision) problems.push(`subscriber ${s.k} ended at ${r[r.length - 1]}, not ${final.revision}`);
      if (r.length !== r[r.length - 1] - r[0] + 1) problems.push(`subscriber ${s.k} missed ${r[r.length - 1] - r[0] + 1 - r.length} revisions`);
    }
    return { problems };
  };

  return {
    check,
    room, stats, subs, tokens,
    // a job started outside the trickle, checked at the end like the others
    track(id, token) { jobs.set(id, token); },
    // ms from `since` (a Date.now() value) until the first commit sent after it was
    // acknowledged (commitMs), and until the last subscriber received that commit's revision
    // (streamsMs).
    async recovered(since, { timeoutMs = 60000 } = {}) {
      const until2 = since + timeoutMs;
      let first;
      while (!(first = ackLog.find((a) => a.sent > since))) {
        if (Date.now() > until2) throw new Error('no commit acknowledged after the fault');
        await sleep(20);
      }
      while (subs.some((s) => !s.revisions.length || s.revisions[s.revisions.length - 1] < first.rev)) {
        if (Date.now() > until2) throw new Error(`subscribers did not reach revision ${first.rev}`);
        await sleep(20);
      }
      let last = 0;
      for (const s of subs) {
        let t = s.recvAt.get(first.rev);
        if (t === undefined) for (const [rev, at] of s.recvAt) if (rev >= first.rev && (t === undefined || at < t)) t = at;
        last = Math.max(last, t);
      }
      return { commitMs: first.t - since, streamsMs: last - since };
    },
    async finish({ settleMs = 20000 } = {}) {
      stopDeadline = Date.now() + settleMs;
      stopping = true;
      await within(Promise.all(running.filter((p, i) => i >= subscribers)), settleMs + 5000);
      const d = await must(pick(), 'GET', `/api/rooms/${room.id}/document`, { token: owner });
      const final = d.json;
      // wait for the subscribers to reach the final revision, then close them
      const until3 = Date.now() + settleMs;
      while (subs.some((s) => !s.revisions.length || s.revisions[s.revisions.length - 1] < final.revision) && Date.now() < until3) await sleep(50);
      for (const s of subs) s.ctrl?.abort();
      await within(Promise.all(running.slice(0, subscribers)), 2000);

      const { problems } = check(final);
      // jobs: each ends once
      const jobReport = { finished: 0, failed: 0, other: 0 };
      for (const [id, token] of jobs) {
        const until4 = Date.now() + 60000;
        let j;
        for (;;) {
          j = (await must(pick(), 'GET', `/api/jobs/${id}`, { token })).json.job;
          if (['finished', 'failed', 'cancelled', 'compile_error'].includes(j.status) || Date.now() > until4) break;
          await sleep(250);
        }
        if (j.status === 'finished') jobReport.finished++;
        else if (j.status === 'failed') jobReport.failed++;
        else { jobReport.other++; problems.push(`job ${id} ended as ${j.status}`); }
      }
      // every subscriber saw each job end exactly once
      for (const s of subs)
        for (const [id, c] of s.finals) if (c !== 1) problems.push(`subscriber ${s.k} saw job ${id} end ${c} times`);
      for (const id of jobs.keys())
        for (const s of subs) if (!s.finals.has(id)) { problems.push(`subscriber ${s.k} never saw job ${id} end`); break; }
      return { problems, final, acked: acked.size, sent: sent.size, jobs: jobReport, stats, ids: [...jobs.keys()] };
    },
  };
}
