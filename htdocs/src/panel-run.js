// The run panel: stdin, the run button's work, and the output of the room's latest run,
// which every collaborator sees (the `execution` events reach the whole room). Each run
// says who started it and, folded away, the input it was given (the events and the jobs
// carry `user` and the stdin); opening the room shows its last run
// (GET /api/rooms/{id}/executions), so a reload or a late joiner sees the same output.

import { api, room } from './api.js';
import { h, named } from './dom.js';
import { languageName } from './languages.js';
import { editOnlyText, loadRuntimes as fetchRuntimes } from './runtimes.js';

const POLL_MS = 1500;
const OVER = new Set(['finished', 'failed', 'cancelled']);

// A Run whose answer is lost (503 while Redis waits for a replica, a dropped connection, a
// proxy timeout) is sent again with the same request_id: the server answers the job it
// made, so a retry never starts a second run (docs/API.md, "Sending a run again is safe").
const RUN_RETRIES = 2;
const RUN_RETRY_MS = 500; // then doubled
const retryable = (e) => e.status === 0 || e.status === 502 || e.status === 504 ||
  (e.status === 503 && e.code !== 'no_worker');
const newRequestId = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

// POST the run, retrying as above; the answer, or the last ApiError.
export async function submitRun(path, body) {
  const sent = { ...body, request_id: newRequestId() };
  for (let attempt = 0; ; attempt++) {
    try {
      return await api('POST', path, sent);
    } catch (e) {
      if (attempt >= RUN_RETRIES || !retryable(e)) throw e;
      await new Promise((r) => setTimeout(r, RUN_RETRY_MS * 2 ** attempt));
    }
  }
}

// "3 runs ahead of yours": the job's place in line, as `queued` events and GET give it.
export function queueText(position) {
  if (typeof position !== 'number' || position < 0) return 'Queued…';
  if (position === 0) return 'Queued: yours is next.';
  return `Queued: ${position} run${position === 1 ? '' : 's'} ahead of yours.`;
}

const SIGNALS = {
  SIGSEGV: 'invalid memory access',
  SIGBUS: 'invalid memory access',
  SIGABRT: 'aborted',
  SIGFPE: 'arithmetic error, such as a division by zero',
  SIGILL: 'illegal instruction',
  SIGKILL: 'killed',
  SIGTERM: 'terminated',
  SIGPIPE: 'wrote to a closed pipe',
  SIGXCPU: 'CPU time limit reached',
  SIGXFSZ: 'file size limit reached',
};

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

// The headline of a finished run, in plain words: {text, kind: 'ok'|'error'}. The result
// (docs/API.md, "Code execution") says why a step was stopped in `status` (and `message`);
// `signal` is only how it was stopped, which a limit explains better than "SIGKILL".
export function outcome(r) {
  const ms = Number.isFinite(r.time_ms) ? r.time_ms : null;
  const c = r.compile;
  if (r.status === 'compile_error' || (c && c.exit_code !== undefined && c.exit_code !== null && c.exit_code !== 0 && (r.exit_code === null || r.exit_code === undefined))) {
    if (c && c.status === 'time_limit_exceeded') return { text: 'Did not compile: the compiler took too long and was stopped', kind: 'error' };
    return { text: `Did not compile${c && c.exit_code ? ` (the compiler ended with exit code ${c.exit_code})` : ''}: see the compiler's messages below`, kind: 'error' };
  }
  switch (r.status) {
    case 'time_limit_exceeded':
      return { text: `Time limit reached: the program was stopped after ${ms !== null ? seconds(ms) : 'its time'}`, kind: 'error' };
    case 'memory_limit_exceeded':
      return { text: 'Memory limit reached: the program was stopped', kind: 'error' };
    case 'output_limit_exceeded':
      return { text: 'Output limit reached: the program was stopped', kind: 'error' };
    case 'file_size_limit_exceeded':
      return { text: 'File size limit reached: the program was stopped', kind: 'error' };
    case 'cancelled':
      return { text: 'Stopped before the end: the server\'s worker was shutting down', kind: 'error' };
    default:
      break;
  }
  const time = ms !== null ? ` · ${ms} ms` : '';
  if (r.signal) {
    const why = SIGNALS[r.signal];
    return { text: `Crashed: ended by ${r.signal}${why ? ` (${why})` : ''}${time}`, kind: 'error' };
  }
  if (r.status && r.message) return { text: `Stopped: ${r.message}${time}`, kind: 'error' };
  if (r.exit_code !== undefined && r.exit_code !== null) {
    return { text: `exit code ${r.exit_code}${time}`, kind: r.exit_code === 0 ? 'ok' : 'error' };
  }
  return { text: `Finished${time}`, kind: 'ok' };
}

// "Stopped by ann." from a cancellation's error ("cancelled by ann").
export function stoppedText(error) {
  const m = /^cancelled by (.+)$/.exec(error || '');
  if (m) return `Stopped by ${m[1]}.`;
  return error ? `Stopped (${error}).` : 'Stopped.';
}

// "Run by ann" and, when the run was given input, that input folded away: the lines over a
// run's output. The stdin shown is what the server keeps of it (the first 1,024 bytes).
export function runByline(j) {
  const parts = [];
  if (j.user && j.user.username) {
    parts.push(h('p', { class: 'run-by muted small', 'data-role': 'run-by' }, 'Run by ', named(j.user.username)));
  }
  if (j.stdin_given && typeof j.stdin === 'string') {
    parts.push(h('details', { class: 'run-input', 'data-role': 'run-input' },
      h('summary', null, j.stdin_truncated ? 'Input (its beginning)' : 'Input'),
      h('pre', { class: 'stdin' }, j.stdin)));
  }
  return parts;
}

// The members of a job or event the panel keeps: who ran it and its input.
function whoOf(d) {
  const out = {};
  for (const k of ['user', 'stdin', 'stdin_given', 'stdin_truncated']) if (d[k] !== undefined) out[k] = d[k];
  return out;
}

export function runPanel({ roomId, code, language, runKey }) {
  const stdin = h('textarea', { name: 'stdin', rows: 3, spellcheck: 'false', placeholder: 'Input for the program (optional)' });
  // Ctrl+Enter (⌘+Enter) runs from here as from the editor
  stdin.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey) && !ev.altKey && !ev.shiftKey) {
      ev.preventDefault();
      if (runKey) runKey();
    }
  });
  const runtime = h('select', { name: 'runtime', 'aria-label': 'Runtime' },
    h('option', { value: '' }, 'Room language'));
  const output = h('div', { class: 'output', 'data-role': 'output', 'aria-live': 'polite', tabindex: '0', 'data-state': 'idle' },
    h('p', { class: 'muted' }, 'Press Run (Ctrl+Enter) to run the code. Everyone in the room sees the output.'));
  // in a room whose language cannot run here, a sentence takes the place of the controls
  const unavailable = h('p', { class: 'run-note', 'data-role': 'run-unavailable', hidden: true });
  const runtimeRow = h('div', { class: 'row wrap run-control' }, h('label', { class: 'grow' }, 'Runtime', runtime));
  const stdinLabel = h('label', { class: 'run-control' }, 'Standard input', stdin);
  const el = h('section', { class: 'panel', 'aria-labelledby': 'run-title' },
    h('h3', { id: 'run-title' }, 'Run'),
    unavailable,
    runtimeRow,
    stdinLabel,
    output);

  let job = null; // the job on screen
  let mine = null; // the id of the last run started from this window
  let previous = null; // the one before, while an unknown job's kind is looked up
  const seen = new Set(); // jobs the room's events have named
  let pollTimer = null;
  let runtimesLoaded = false;

  async function loadRuntimes() {
    if (runtimesLoaded) return;
    runtimesLoaded = true;
    const runtimes = await fetchRuntimes();
    if (!runtimes) {
      runtimesLoaded = false; // no worker yet: try again next time
      return;
    }
    for (const r of runtimes) {
      runtime.append(h('option', { value: `${r.language}@${r.version}` }, `${r.language} ${r.version}`));
    }
  }
  loadRuntimes();

  // runnable false: the room's language has no runtime here (the room view decides, from
  // GET /api/runtimes); the sentence says so instead of the runtime and input controls.
  function setRunnable(runnable, sentence) {
    unavailable.hidden = runnable;
    unavailable.textContent = runnable ? '' : sentence;
    runtimeRow.hidden = !runnable;
    stdinLabel.hidden = !runnable;
    // "Press Run" would contradict the sentence; a run's output (from before the language
    // changed) stays
    output.hidden = !runnable && output.dataset.state === 'idle';
  }

  function show(state, ...children) {
    output.hidden = false;
    output.dataset.state = state;
    output.replaceChildren(...children);
  }

  // the output of j, under who ran it and with what input
  function showRun(state, j, ...children) {
    show(state, ...runByline(j), ...children);
  }

  // Whoever pressed Run sees its output: on a phone the panel is far below the editor.
  // Nobody else's view jumps when another person runs.
  function reveal() {
    output.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }

  function stream(label, text, cls) {
    return h('div', { class: `stream ${cls}` },
      h('div', { class: 'stream-label' }, label),
      h('pre', { class: cls }, text));
  }

  // Stop: DELETE /api/jobs/{id} (its submitter or the room's owner); the events say the rest.
  async function cancel(id, button) {
    button.disabled = true;
    try {
      await api('DELETE', `/api/jobs/${encodeURIComponent(id)}`);
      if (job && job.id === id && !OVER.has(job.status)) {
        job = { ...job, status: 'cancelled' };
        render(job);
      }
    } catch (e) {
      button.disabled = false;
      const msg = e.status === 403 ? 'Only whoever started this run or the room owner can stop it.'
        : e.status === 409 ? 'The run is already over.' : e.message;
      output.append(h('p', { class: 'run-meta error', 'data-role': 'cancel-error' }, msg));
    }
  }

  function render(j) {
    const r = j.result;
    if (j.status === 'queued' || j.status === 'running') {
      const stop = h('button', { type: 'button', class: 'small', 'data-action': 'cancel-run' }, 'Stop');
      stop.addEventListener('click', () => cancel(j.id, stop));
      showRun(j.status, j,
        h('p', { class: 'run-meta', 'data-role': 'queue-position' }, j.status === 'queued' ? queueText(j.position) : 'Running…'),
        stop);
      return;
    }
    if (j.status === 'cancelled') {
      showRun('cancelled', j, h('p', { class: 'run-meta stopped' }, stoppedText(j.error)));
      return;
    }
    if (!r) {
      showRun('failed', j, h('p', { class: 'run-meta error' }, `The run failed${j.error ? `: ${j.error}` : '.'}`));
      return;
    }
    const head = outcome(r);
    const parts = [h('p', { class: `run-meta ${head.kind}`, 'data-role': 'run-outcome' }, head.text)];
    const c = r.compile;
    if (c && (c.stderr || c.stdout || (c.exit_code !== undefined && c.exit_code !== null && c.exit_code !== 0))) {
      parts.push(stream(`compiler${c.exit_code ? ` (exit code ${c.exit_code})` : ''}`, `${c.stdout || ''}${c.stderr || ''}`, 'compile'));
    }
    if (r.stdout) parts.push(stream('stdout', r.stdout, 'stdout'));
    if (r.stderr) parts.push(stream('stderr', r.stderr, 'stderr'));
    if (r.error) parts.push(stream('error', String(r.error), 'stderr'));
    if (!r.stdout && !r.stderr && !(c && (c.stderr || c.stdout))) parts.push(h('p', { class: 'muted' }, '(no output)'));
    if (r.truncated || (c && c.truncated)) {
      parts.push(h('p', { class: 'run-note', 'data-role': 'truncated' },
        'The output was cut: the program printed more than the server keeps, so only its beginning is shown.'));
    }
    showRun(j.status === 'failed' ? 'failed' : 'finished', j, ...parts);
    if (j.id === mine) reveal();
  }

  async function fetchJob(id) {
    try {
      const { job: j } = await api('GET', `/api/jobs/${encodeURIComponent(id)}`);
      if (j.kind && j.kind !== 'execution') { // not a run (an AI job's news): not ours to show
        if (job && job.id === id) job = previous;
        return null;
      }
      if (job && job.id === id) {
        job = { ...job, ...j };
        render(job);
      }
      return j;
    } catch {
      return null;
    }
  }

  // Polls the job as well as listening: the stream may be down while it runs.
  function watch(id) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(async function tick() {
      if (!job || job.id !== id || OVER.has(job.status)) return;
      await fetchJob(id);
      if (job && job.id === id && !OVER.has(job.status)) pollTimer = setTimeout(tick, POLL_MS);
    }, POLL_MS * 2);
  }

  async function run() {
    const body = { code: code(), stdin: stdin.value };
    if (runtime.value) {
      const [lang, version] = runtime.value.split('@');
      body.language = lang;
      body.version = version;
    } else {
      body.language = language();
    }
    show('queued', h('p', { class: 'run-meta' }, 'Starting…'));
    reveal();
    try {
      const res = await submitRun(`${room(roomId)}/executions`, body);
      mine = res.job.id;
      // the room's events may have told about it already, while the answer travelled
      if (!job || job.id !== res.job.id) job = { id: res.job.id, status: res.job.status || 'queued' };
      render(job);
      watch(job.id);
    } catch (e) {
      let msg = e.message;
      if (e.status === 429 && /queue_full$/.test(e.code || '')) {
        msg = `${e.code === 'room_queue_full' ? 'This room has' : e.code === 'user_queue_full' ? 'You have' : 'The server has'} too many runs waiting. Try again in ${e.retryAfter || 5} seconds.`;
      } else if (e.status === 429) msg = `You have run code often in the last minute. Try again in ${e.retryAfter || 60} seconds.`;
      else if (e.code === 'no_worker') msg = 'No worker is running on the server, so code cannot run right now.';
      else if (e.status === 400 && /runtime/.test(e.code || '')) msg = editOnlyText(languageName(body.language));
      else if (e.status === 403) msg = 'Viewers cannot run code.';
      show('failed', h('p', { class: 'run-meta error' }, msg));
      loadRuntimes();
    }
  }

  // `execution` event: {job_id, status, position?, result?, error?}. The room's latest run
  // takes the panel; a `queued` event of the job on screen moves its place in line.
  function onEvent(d) {
    if (!d || typeof d.job_id !== 'string') return;
    // a waiting run told its new place in line is not a new run: it does not take the panel
    if (d.status === 'queued' && seen.has(d.job_id) && (!job || job.id !== d.job_id)) return;
    // another run stopped: nothing to show, and a run of ours waiting keeps the panel
    if (d.status === 'cancelled' && (!job || job.id !== d.job_id)) return;
    if (seen.size > 1000) seen.clear();
    seen.add(d.job_id);
    if (!job || job.id !== d.job_id) {
      if (d.status !== 'queued' && d.status !== 'running' && !d.result) {
        // a run started elsewhere, or before we came: the job tells what it is
        previous = job;
        job = { id: d.job_id, status: d.status };
        fetchJob(d.job_id);
        return;
      }
      job = { id: d.job_id, status: d.status };
    }
    job = { ...job, ...whoOf(d), status: d.status, result: d.result || job.result, position: d.position ?? job.position, error: d.error ?? job.error };
    if ((d.status === 'finished' || d.status === 'failed') && !d.result) fetchJob(d.job_id);
    else render(job);
  }

  // Opening the room: its last run, as everyone else saw it. A run the room's events
  // brought meanwhile is newer and stays.
  let destroyed = false;
  async function loadLast() {
    let list;
    try {
      ({ executions: list } = await api('GET', `${room(roomId)}/executions?limit=1`));
    } catch {
      return; // an older server, or none reachable: the panel starts empty as before
    }
    const last = list && list[0];
    // anything on screen by now (a run started here, an event's) is newer
    if (destroyed || !last || job || seen.has(last.id) || output.dataset.state !== 'idle') return;
    seen.add(last.id);
    job = last;
    // a list that would have been too large leaves a huge output out: the job itself has it
    if (job.result_omitted) fetchJob(job.id);
    else render(job);
    if (!OVER.has(job.status)) watch(job.id);
  }
  loadLast();

  return {
    el,
    run,
    onEvent,
    setRunnable,
    destroy() {
      destroyed = true;
      clearTimeout(pollTimer);
    },
  };
}
