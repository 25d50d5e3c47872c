import { SWEEP_GRACE_MS } from '../../../lib/schedule/sweep.ts';
import { resumeSummary } from '../drain-switch.ts';
import { bbcodeToHtml, escapeHtml as e } from './bbcode.ts';
import { EDIT_PATHS, type EditCounts, type EditPath } from './edit-tally.ts';
import { renderAttach, renderKeyboard } from './rich.ts';
import type { ChatMessage, DrainPauseView, LedgerView, PortalWakeupView, SandboxState } from './state.ts';

/** The parts of the page that change; the event stream sends them, the script swaps them in. */
export interface Fragments {
  messages: string;
  edits: string;
  queue: string;
  wakeups: string;
  requests: string;
  schedules: string;
}

// Messages edited this recently are highlighted, so a change catches the eye.
const FRESH_MS = 4_000;

function clock(iso: string): string {
  return iso.slice(11, 19);
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function interval(ms: number): string {
  if (ms % 3_600_000 === 0) return plural(ms / 3_600_000, 'hour');
  if (ms % 60_000 === 0) return plural(ms / 60_000, 'minute');
  return plural(Math.round(ms / 1000), 'second');
}

function ledgerStatus(view: LedgerView): string {
  const error = view.error ? `${e(view.error.code)}: ${e(view.error.description)}` : '';
  if (view.status === 'applied') return '<strong class="ok">applied</strong>';
  if (view.status === 'failed') return `<strong class="bad">failed</strong> ${error}`;
  const next = view.nextRetryAt ? `next retry at ${clock(view.nextRetryAt)}` : 'due now';
  return `<strong class="warn">pending</strong>, ${next}${error ? ` (last error ${error})` : ''}`;
}

/** The ledger's side of a bot message, under what the emulator shows. */
function renderLedger(m: ChatMessage): string {
  if (m.ledger === undefined) return '';
  const view = m.ledger;
  const body =
    view === null
      ? 'no edits recorded'
      : [
          `desired ${view.text === undefined ? '(no text)' : `“${e(view.text)}”`}`,
          view.keyboard ? 'keyboard' : '',
          view.attach ? 'attach' : '',
        ]
          .filter(Boolean)
          .join(' + ') +
        ` · ${ledgerStatus(view)} · version ${view.version}, applied ${view.appliedVersion}` +
        ` · ${plural(view.pendingEditIds, 'pending edit id')}`;
  return `<div class="ledger muted" data-testid="ledger-${m.id}">Ledger: ${body}</div>`;
}

/** A status message says so: its schedule writes over any other edit at its next run. */
function renderStatusNote(m: ChatMessage): string {
  if (!m.statusSchedule) return '';
  const { name, everyMs } = m.statusSchedule;
  return `<div class="status-note" data-testid="status-message-${m.id}"><span class="badge">status message</span>
      re-rendered by the schedule “${e(name)}” every ${interval(everyMs)}: an edit sent here lasts until its next run</div>`;
}

function renderMessages(state: SandboxState, now: number): string {
  if (!state.chat) {
    return `<p class="note">Messages live in your portal (${e(state.portalHost)}); this stack cannot read them back.
      The requests and the queue are on the right.</p>`;
  }
  const items = state.chat.messages.map((m) => {
    const fresh = m.editCount > 0 && now - Date.parse(m.updatedAt) < FRESH_MS;
    const classes = ['message', m.system ? 'system' : '', m.botId ? 'bot' : 'person', fresh ? 'fresh' : '']
      .filter(Boolean)
      .join(' ');
    const edited =
      m.editCount > 0 ? ` · edited ${plural(m.editCount, 'time')}, last at ${clock(m.updatedAt)}` : '';
    return `<li class="${classes}" id="message-${m.id}" data-message-id="${m.id}" data-edit-count="${m.editCount}">
      <div class="meta"><span class="author">${e(m.author)}</span> <span class="id">#${m.id}</span>${e(edited)}</div>
      ${renderStatusNote(m)}
      <div class="text" data-testid="message-text-${m.id}">${bbcodeToHtml(m.text)}</div>
      ${renderAttach(m.attach, `attach-${m.id}`)}${renderKeyboard(m.keyboard, `keyboard-${m.id}`)}
      ${renderLedger(m)}
    </li>`;
  });
  const warning = state.ledgerError ? `<p class="warn">Ledger unavailable: ${e(state.ledgerError)}</p>` : '';
  return `${warning}<ol class="chat">${items.join('')}</ol>`;
}

/** The "Pause the drain" switch: a paused drain says so loudly, with what piled up meanwhile. */
function renderDrainSwitch(pause: DrainPauseView | undefined): string {
  if (!pause) return '';
  const last = pause.lastResume
    ? `<p class="muted" data-testid="last-resume">Last resume at ${clock(pause.lastResume.at)}: ${e(resumeSummary(pause.lastResume))}</p>`
    : '';
  if (pause.paused) {
    const since = pause.since ? ` since ${clock(pause.since)}` : '';
    return `<div class="paused" role="status" data-testid="drain-paused"><strong>Drain paused</strong>${since}:
        ${plural(pause.editsWhilePaused, 'edit')} deferred meanwhile. They wait in the ledger (desired ahead
        of applied) with their portal's wake-up on the portal work queue; no Bitrix24 call is made for them.
        The reconcile, the sweep and the status schedules wait too, and the form below defers its edits.
        <form method="post" action="/api/drain/resume" data-ajax class="inline">
          <button type="submit" title="Runs the sweep once, then the drain and the reconcile, and counts the Bitrix24 calls">Resume</button>
        </form></div>${last}`;
  }
  if (pause.resuming) {
    return `<p class="warn" data-testid="drain-resuming">Resuming: the sweep, then the drain and the reconcile, apply what piled up…</p>${last}`;
  }
  return `<form method="post" action="/api/drain/pause" data-ajax>
      <button type="submit" title="Edits pile up in the ledger and the queues until Resume: watch them land as a few calls">
        Pause the drain</button>
    </form>${last}`;
}

/** Each path's column: its heading and what it covers. */
const PATHS: Record<EditPath, { heading: string; title: string }> = {
  api: { heading: 'API', title: 'The update route and the webhook route (Bitrix24 SDKs)' },
  queue: {
    heading: 'edits queue',
    title: 'Records the drain took from edits.fifo, replays of failed edits included',
  },
  status: { heading: 'status', title: 'The status schedules’ renderings' },
  other: { heading: 'other', title: 'Edits merged by a handler outside these paths' },
};

/** The table's rows, in the order an edit goes: recorded first, then the one outcome it has now. */
const OUTCOMES: ReadonlyArray<{ key: keyof EditCounts; label: string; title: string }> = [
  {
    key: 'recorded',
    label: 'recorded',
    title: 'Merged into the ledger: from then on applied, superseded, or kept with its reason',
  },
  { key: 'applied', label: 'applied', title: 'Its value reached Bitrix24 in a call' },
  {
    key: 'superseded',
    label: 'superseded',
    title:
      'Replaced by an edit accepted later before it was applied (merged into the newer one), or arrived after one: never sent',
  },
  {
    key: 'deferred',
    label: 'deferred, waiting',
    title: 'Recorded and not applied yet: it waits in the ledger for its portal’s wake-up',
  },
  {
    key: 'failed',
    label: 'failed in Bitrix24',
    title:
      'Bitrix24 refused its message for good (ACCESS_DENIED, …) or its attempts ran out: kept with the reason',
  },
  {
    key: 'unchanged',
    label: 'unchanged',
    title: 'Asked for what the message already showed: nothing to send',
  },
  {
    key: 'refused',
    label: 'refused, not recorded',
    title:
      'Never recorded. API: requests and batch commands answered with an error before recording (invalid, unknown bot or portal, …). Edits queue: invalid records, moved to the failed-edits queue. Status: invalid specs and renderings whose source or template failed',
  },
];

/** Since start, every path's edits by what became of them, and what the queue consumers did. */
function renderEdits(state: SandboxState): string {
  const { edits } = state;
  const paths = EDIT_PATHS.filter(
    (path) => path !== 'other' || edits.other.recorded + edits.other.refused > 0,
  );
  const total = (key: keyof EditCounts) => paths.reduce((sum, path) => sum + edits[path][key], 0);
  const head = paths
    .map(
      (path) => `<th scope="col" class="num" title="${e(PATHS[path].title)}">${e(PATHS[path].heading)}</th>`,
    )
    .join('');
  const alarming = (key: keyof EditCounts, n: number) =>
    (key === 'failed' || key === 'refused') && n > 0 ? ' bad' : '';
  const rows = OUTCOMES.map(({ key, label, title }) => {
    const cells = paths
      .map(
        (path) =>
          `<td class="num${alarming(key, edits[path][key])}" data-testid="edits-${path}-${key}">${edits[path][key]}</td>`,
      )
      .join('');
    return `<tr><th scope="row" title="${e(title)}">${e(label)}</th>${cells}<td class="num total${alarming(key, total(key))}">${total(key)}</td></tr>`;
  });
  const { totals } = state.drain;
  return `<table class="tally" data-testid="edit-counts">
      <thead><tr><th scope="col">edits since start</th>${head}<th scope="col" class="num">all</th></tr></thead>
      <tbody>${rows.join('')}</tbody></table>
    <p class="muted">recorded = applied + superseded + deferred + failed in Bitrix24 + unchanged. The queue
      consumers since start: the reconcile applied <span data-testid="reconcile-applied">${plural(totals.applied, 'message')}</span>
      in <span data-testid="drain-calls">${plural(totals.calls, 'Bitrix24 call')}</span>; the drain handed
      <span data-testid="drain-handed-back">${plural(totals.deferred, 'edit record')}</span> back to the queue for
      another try (their merge failed).</p>`;
}

function renderQueue(state: SandboxState): string {
  const { queue, drain } = state;
  const drainLine = `<p class="drain ${drain.running ? 'ok' : 'warn'}" data-testid="drain-note">${e(drain.note)}</p>
    ${renderDrainSwitch(drain.pause)}`;
  if ('error' in queue) return `${drainLine}<p class="warn">Queue unavailable: ${e(queue.error)}</p>`;
  const counts = `<dl class="counts">
    <div><dt>waiting</dt><dd data-testid="queue-waiting">${queue.waiting}</dd></div>
    <div><dt>in flight</dt><dd data-testid="queue-in-flight">${queue.inFlight}</dd></div>
    <div class="${queue.failed > 0 ? 'bad' : ''}" title="Failed edits kept with their reason, until moved back"><dt>on the failed-edits queue</dt><dd data-testid="queue-failed">${queue.failed}</dd></div>
  </dl>`;
  const pending = queue.pending.map((p) => {
    const when =
      p.state === 'in-flight' && p.visibleAt
        ? `in flight, back in the queue at ${clock(p.visibleAt)}`
        : 'waiting';
    return `<li>#${p.messageId ?? '?'} ${p.text === undefined ? '' : `“${e(p.text)}”`}
      <span class="muted">${e(when)} · received ${plural(p.receiveCount, 'time')}</span></li>`;
  });
  const failures = queue.failures.map(
    (
      f,
    ) => `<li><strong>${e(f.errorCode)}</strong> #${f.messageId ?? '?'} ${f.text === undefined ? '' : `“${e(f.text)}”`}
      <div class="muted">${e(f.errorDescription)}${f.attempts ? ` · ${f.attempts === '1' ? '1 attempt' : `${e(f.attempts)} attempts`}` : ''}</div></li>`,
  );
  return `${drainLine}${counts}
    ${pending.length > 0 ? `<h3>Deferred edits</h3><ul class="list">${pending.join('')}</ul>` : ''}
    ${
      failures.length > 0
        ? `<h3>Failed edits</h3><ul class="list failures">${failures.join('')}</ul>
           <form method="post" action="/demo/replay-failed" data-ajax>
             <button type="submit" title="Once the cause is fixed: sends them back to the edits queue">
               Move failed edits back to the queue</button>
           </form>`
        : ''
    }`;
}

/** One portal's wake-up schedule: when it is looked at next, and whether a reconcile holds it now. */
function renderWakeup(w: PortalWakeupView, now: number): string {
  let next: string;
  if (w.wakeAt === 'none') next = 'none <span class="muted">(nothing waits in the ledger)</span>';
  else {
    const at = Date.parse(w.wakeAt);
    const when = w.leaseHeld
      ? 'the lease end: the holder looks again before it lets go'
      : at < now - SWEEP_GRACE_MS
        ? 'overdue: the sweep wakes it'
        : at <= now
          ? 'due'
          : 'on the portal work queue';
    next = `<time datetime="${e(w.wakeAt)}">${clock(w.wakeAt)}</time> <span class="muted">(${when})</span>`;
  }
  const lease =
    w.leaseHeld && w.leaseUntil
      ? `<strong class="warn">lease held</strong> until ${clock(w.leaseUntil)} <span class="muted">(a reconcile is on it)</span>`
      : 'no lease held';
  const touched = w.touchedAt ? ` · last edit merged at ${clock(w.touchedAt)}` : '';
  return `<li data-testid="wakeup-${e(w.portal)}" data-wake-at="${e(w.wakeAt)}" data-lease-held="${w.leaseHeld}">
      Portal <strong>${e(w.portal)}</strong>: next wake-up <span data-testid="wake-at-${e(w.portal)}">${next}</span>
      · <span data-testid="lease-${e(w.portal)}">${lease}</span>${touched}</li>`;
}

function renderWakeups(state: SandboxState, now: number): string {
  const depth =
    'error' in state.queue
      ? ''
      : `<dl class="counts" title="Wake-ups on the portal work queue">
    <div><dt>delayed</dt><dd data-testid="wakeups-delayed">${state.queue.wakeups.delayed}</dd></div>
    <div><dt>ready</dt><dd data-testid="wakeups-ready">${state.queue.wakeups.ready}</dd></div>
    <div><dt>in flight</dt><dd data-testid="wakeups-in-flight">${state.queue.wakeups.inFlight}</dd></div>
  </dl>`;
  const { wakeups } = state;
  if (wakeups === undefined) return `<p class="muted">No ledger to read the wake-ups from.</p>${depth}`;
  if ('error' in wakeups) return `<p class="warn">Wake-ups unavailable: ${e(wakeups.error)}</p>${depth}`;
  return `<ul class="list">${wakeups.map((w) => renderWakeup(w, now)).join('')}</ul>${depth}`;
}

function renderRequests(state: SandboxState): string {
  if (state.requests.length === 0)
    return '<p class="muted">No requests yet. Send the curl below, or use the form.</p>';
  const rows = state.requests.map((r) => {
    const outcome = r.outcome === 'deferred' && r.reason ? `deferred (${r.reason})` : r.outcome;
    const css = r.status < 300 ? (r.status === 202 ? 'deferred' : 'ok') : 'bad';
    const details = [
      r.description ? `<div class="description">${e(r.description)}</div>` : '',
      r.editId ? `<div class="muted">editId <code>${e(r.editId)}</code></div>` : '',
    ].join('');
    return `<tr class="${css}"><td class="time">${clock(r.at)}</td><td class="num">${r.status}</td><td>${e(outcome)}${details}</td>
      <td class="num">${r.messageId === undefined ? '' : `#${r.messageId}`}</td><td class="num">${r.durationMs} ms</td></tr>`;
  });
  return `<table class="requests"><thead><tr><th>time</th><th>status</th><th>outcome</th><th>message</th><th>took</th></tr></thead>
    <tbody>${rows.join('')}</tbody></table>`;
}

function renderSchedules(state: SandboxState, demo: DemoSourceView | undefined): string {
  if (state.schedules.length === 0) return '<p class="muted">No status schedules (STATUS_SPECS_FILE).</p>';
  const items = state.schedules.map((s) => {
    const run = s.lastRun;
    let last = 'not run yet';
    if (run?.error) last = `failed at ${clock(run.at)}: ${run.error}`;
    else if (run) {
      const summary = run.result && typeof run.result === 'object' ? run.result : {};
      const parts = Object.entries(summary)
        .filter(([, n]) => typeof n === 'number' && n > 0)
        .map(([k, n]) => `${k} ${n}`);
      last = `last run ${clock(run.at)}: ${parts.join(', ') || 'nothing to do'}`;
    }
    const messages = s.messageIds.map((id) => `#${id}`).join(', ');
    return `<li><strong>${e(s.name)}</strong> · ${e(messages)} every ${interval(s.everyMs)}<div class="muted">${e(last)}</div></li>`;
  });
  const demoControls = demo
    ? `<form method="post" action="/demo/deploy-status" data-ajax>
         Demo source: the build is <strong>${demo.ok ? 'green' : 'red'}</strong>
         <button type="submit">${demo.ok ? 'Break the build' : 'Fix the build'}</button>
       </form>`
    : '';
  return `<ul class="list">${items.join('')}</ul>${demoControls}
    <form method="post" action="/demo/refresh-status" data-ajax><button type="submit">Run the schedules now</button></form>`;
}

export interface DemoSourceView {
  ok: boolean;
}

export function renderFragments(
  state: SandboxState,
  demo: DemoSourceView | undefined,
  now = Date.now(),
): Fragments {
  return {
    messages: renderMessages(state, now),
    edits: renderEdits(state),
    queue: renderQueue(state),
    wakeups: renderWakeups(state, now),
    requests: renderRequests(state),
    schedules: renderSchedules(state, demo),
  };
}

function curlExample(state: SandboxState): string {
  const message = state.chat?.messages.find((m) => m.botId !== undefined && !m.system);
  const botId = message?.botId ?? state.botId;
  // Against a real portal the stack cannot list the bot's messages: the id is the caller's to fill in.
  const messageId = message ? String(message.id) : '<message id>';
  const body = `{"botId":${botId},"messageId":${messageId},"fields":{"message":"Updated text"}}`;
  return `curl -X POST -H "Content-Type: application/json" -d '${body}' ${state.apiUrl}`;
}

function messageIdHelp(state: SandboxState): string {
  if (state.chat) return '';
  return `<p class="note">Replace <code>&lt;message id&gt;</code> with the id of a message bot ${state.botId} sent:
    <code>npm run b24 -- send --dialog chat&lt;chat id&gt; "Hello"</code> posts one and prints its id
    (the same B24_* variables as <code>npm start</code>, see <code>npm run b24 -- send --help</code>).</p>`;
}

function editForm(state: SandboxState, busy: boolean): string {
  const messages = state.chat?.messages.filter((m) => m.botId !== undefined && !m.system) ?? [];
  if (messages.length === 0) return '';
  const options = messages
    .map((m) => `<option value="${m.id}">#${m.id}${m.statusSchedule ? ' (status message)' : ''}</option>`)
    .join('');
  const busyButton = busy
    ? `<form method="post" action="/demo/busy" data-ajax class="inline">
         <button type="submit" title="The emulator answers the next Bitrix24 call with QUERY_LIMIT_EXCEEDED">
           Make Bitrix24 busy for one call</button>
       </form>`
    : '';
  return `<form method="post" action="/demo/edit" data-ajax class="edit">
      <label>Message <select name="messageId">${options}</select></label>
      <label class="grow">Text <input name="text" value="Updated text" maxlength="20000" required></label>
      <label title="Sends Prefer: respond-async, so the edit goes through the queue and the drain">
        <input type="checkbox" name="async" value="1"> through the queue</label>
      <button type="submit">Send edit</button>
    </form>${busyButton}`;
}

const STYLE = `
  :root { font: 15px/1.45 system-ui, sans-serif; color: #1d2733; background: #eef2f6; }
  body { margin: 0; }
  header { background: #1f5fa8; color: #fff; padding: 12px 24px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .live { margin-left: auto; font-size: 13px; opacity: .85; }
  body[data-live="on"] header .live::before { content: "● "; color: #7ee787; }
  body[data-live="off"] header .live::before { content: "● "; color: #ffb4a9; }
  body[data-live="on"] .when-off, body[data-live="off"] .when-on { display: none; }
  .offline { display: none; margin: 0; padding: 8px 24px; background: #fff3cd; color: #6b4e00; }
  body[data-live="off"][data-connected="once"] .offline { display: block; }
  body[data-live="off"] main .ok, body[data-live="off"] .drain { color: #6b7785; }
  .answer { display: block; margin-top: 4px; font-size: 13px; }
  .answer.ok { color: #1b7f3b; } .answer.bad { color: #c62828; } .answer:empty { display: none; }
  .text, td, .list li, .ledger, .description { overflow-wrap: anywhere; word-break: break-word; }
  td.time, td.num, th.num { white-space: nowrap; overflow-wrap: normal; word-break: normal; font-variant-numeric: tabular-nums; }
  code { overflow-wrap: anywhere; }
  .keyboard { margin-top: 6px; display: grid; gap: 4px; }
  .kb-row { display: flex; flex-wrap: wrap; gap: 4px; }
  .kb-button { border: 1px solid #9fb6d3; border-radius: 6px; background: #fff; color: #1f5fa8; padding: 3px 10px; cursor: default; max-width: 100%; overflow-wrap: anywhere; }
  .kb-button.block { flex-basis: 100%; }
  .attach { margin-top: 6px; border-left: 3px solid #1f5fa8; padding: 2px 0 2px 8px; display: grid; gap: 4px; overflow-wrap: anywhere; }
  .at-grid { margin: 0; display: grid; gap: 2px; } .at-cell { display: flex; gap: 6px; } .at-cell dt { color: #52606d; } .at-cell dd { margin: 0; }
  .at-delimiter { border: 0; border-top: 1px solid #c5d3e3; margin: 2px 0; width: 100%; }
  main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 20px; padding: 20px 24px; }
  section { background: #fff; border-radius: 10px; padding: 14px 18px; box-shadow: 0 1px 2px #0002; margin-bottom: 20px; }
  h2 { font-size: 15px; margin: 0 0 10px; } h3 { font-size: 13px; margin: 12px 0 4px; color: #52606d; }
  .chat { list-style: none; margin: 0; padding: 0; display: grid; gap: 10px; }
  .message { padding: 8px 12px; border-radius: 10px; background: #f4f6f8; max-width: 90%; min-width: 0; box-sizing: border-box; }
  .message.bot { background: #e3efff; } .message.person { justify-self: end; background: #e7f7e7; }
  .message.system { background: none; color: #6b7785; font-style: italic; justify-self: center; }
  .message.fresh { animation: flash 2.5s ease-out; }
  @keyframes flash { from { background: #ffe58a; } }
  .ledger { margin-top: 4px; border-top: 1px dashed #c5d3e3; padding-top: 3px; }
  .status-note { font-size: 12px; color: #52606d; }
  .badge { display: inline-block; border-radius: 6px; padding: 0 6px; background: #1f5fa8; color: #fff; font-size: 11px; font-weight: 600; }
  .meta { font-size: 12px; color: #52606d; } .author { font-weight: 600; } .id { color: #8a96a3; }
  .counts { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0; } .counts div { background: #f4f6f8; border-radius: 8px; padding: 6px 12px; }
  .counts dt { font-size: 12px; color: #52606d; } .counts dd { margin: 0; font-size: 22px; font-weight: 600; }
  .counts .bad dd { color: #c62828; }
  .list { margin: 0; padding-left: 18px; } .list li { margin: 4px 0; }
  .muted, .note { color: #6b7785; font-size: 13px; } .warn { color: #a15c00; } .ok { color: #1b7f3b; } .bad { color: #c62828; }
  .failures strong { color: #c62828; }
  .paused { background: #fff3cd; border: 1px solid #e0b400; color: #6b4e00; border-radius: 8px; padding: 8px 12px; }
  .paused form { margin-top: 6px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; } td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eef1f4; }
  .tally td.num, .tally th.num { text-align: right; } .tally td, .tally thead th { font-size: 15px; } .tally th[scope="row"] { font-weight: normal; color: #52606d; }
  .tally td.total { font-weight: 600; }
  tr.deferred td:nth-child(3) { color: #a15c00; }
  form { margin: 10px 0 0; } form.edit { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
  .grow { flex: 1; display: flex; gap: 6px; align-items: center; } .grow input { flex: 1; min-width: 0; }
  input, select, button { font: inherit; } button { cursor: pointer; } select { max-width: 100%; }
  pre { background: #1d2733; color: #e6edf3; padding: 10px; border-radius: 8px; overflow-x: auto; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
  @media (max-width: 900px) { main { grid-template-columns: minmax(0, 1fr); } }
  @media (max-width: 520px) { main { padding: 12px 8px; } section { padding: 10px 10px; } header { flex-wrap: wrap; padding: 10px 12px; } }
`;

// Only makes the page live: the HTML above it is complete without it.
const SCRIPT = `
(() => {
  const shown = {};
  let events;
  let retry;
  // EventSource retries by itself after a dropped connection, but gives up for good on some
  // failures (readyState CLOSED): then a new one is opened, every two seconds, until one connects.
  function connect() {
    events = new EventSource('/events');
    events.addEventListener('state', (event) => {
      const fragments = JSON.parse(event.data);
      for (const [id, html] of Object.entries(fragments)) {
        const element = document.getElementById(id);
        if (element && shown[id] !== html) { element.innerHTML = html; shown[id] = html; }
      }
      document.body.dataset.live = 'on';
      document.body.dataset.connected = 'once';
    });
    events.addEventListener('error', () => {
      document.body.dataset.live = 'off';
      if (events.readyState === EventSource.CLOSED && !retry) {
        retry = setTimeout(() => { retry = undefined; connect(); }, 2000);
      }
    });
  }
  connect();
  // A form inside a live part is redrawn with it, often by the very change it asked for, before its
  // answer comes: the answer goes to the part's own line below it, found while the form is still in
  // the page. Other forms keep their answer beside them.
  function answerSlot(form) {
    const part = form.closest('[data-fragment]');
    let output = part
      ? document.querySelector('output[data-answer-for="' + part.id + '"]')
      : form.querySelector('output.answer');
    if (!output) {
      output = document.createElement('output');
      form.appendChild(output);
    }
    return output;
  }
  function show(output, ok, text) {
    output.className = 'answer ' + (ok ? 'ok' : 'bad');
    output.textContent = text;
  }
  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-ajax')) return;
    event.preventDefault();
    const output = answerSlot(form);
    show(output, true, 'Sending…');
    try {
      const response = await fetch(form.action, {
        method: 'POST',
        headers: { 'x-sandbox-fetch': '1' },
        body: new URLSearchParams(new FormData(form)),
      });
      const type = response.headers.get('content-type') || '';
      const result = type.includes('json') ? await response.json() : { ok: response.ok, summary: await response.text() };
      show(output, result.ok, result.summary || ('HTTP ' + response.status));
    } catch (error) {
      show(output, false, 'The local stack did not answer (' + error.message + '): is npm start still running?');
    }
  });
})();
`;

/** Where the answers of the buttons inside a live part are shown: outside it, so a redraw keeps them. */
function answerLine(part: keyof Fragments): string {
  return `<output class="answer" data-answer-for="${part}" role="status" aria-live="polite"></output>`;
}

export function renderPage(state: SandboxState, demo: DemoSourceView | undefined): string {
  const f = renderFragments(state, demo);
  const chatTitle = state.chat ? `Chat ${state.chat.id}` : 'Messages';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>b24-message-editor · local sandbox</title>
<style>${STYLE}</style>
</head>
<body data-live="off">
<header><h1>b24-message-editor · local sandbox</h1>
  <span>portal <strong>${e(state.portal)}</strong> (${e(state.mode === 'emulator' ? `Bitrix24 emulator at ${state.portalHost}` : state.portalHost)})</span>
  <span class="live" data-testid="connection"><span class="when-on">live</span><span class="when-off">disconnected from the local stack: reconnecting…</span></span></header>
<p class="offline" role="status">The local stack is not answering (stopped?). What you see below is as it was; the page reconnects by itself once <code>npm start</code> runs again.</p>
<main>
  <div>
    <section><h2>${e(chatTitle)}</h2><div id="messages" data-fragment>${f.messages}</div></section>
    <section><h2>Try it</h2>
      <pre>${e(curlExample(state))}</pre>
      ${messageIdHelp(state)}
      ${editForm(state, state.mode === 'emulator')}
    </section>
  </div>
  <div>
    <section><h2>Edits by path</h2><div id="edits" data-fragment>${f.edits}</div></section>
    <section><h2>Edits queue</h2><div id="queue" data-fragment>${f.queue}</div>${answerLine('queue')}</section>
    <section><h2>Portal wake-ups</h2><div id="wakeups" data-fragment>${f.wakeups}</div></section>
    <section><h2>Recent requests</h2><div id="requests" data-fragment>${f.requests}</div></section>
    <section><h2>Status messages</h2><div id="schedules" data-fragment>${f.schedules}</div>${answerLine('schedules')}</section>
  </div>
</main>
<script>${SCRIPT}</script>
</body>
</html>`;
}
