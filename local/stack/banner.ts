import type { ApiActivity } from './activity.ts';
import type { LocalStackConfig } from './config.ts';
import type { DrainInvocation, DrainOutcomes } from './drain.ts';
import { resumeSummary } from './drain-switch.ts';
import type { LocalStackInfo } from './info.ts';
import type { DrainPauseView } from './sandbox/state.ts';
import type { ScheduledRun } from './scheduler.ts';

function interval(ms: number): string {
  const [n, unit] = ms % 60_000 === 0 ? [ms / 60_000, 'minute'] : [Math.round(ms / 1000), 'second'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

function rows(entries: Array<[string, string, (string | undefined)?]>): string[] {
  const width = Math.max(...entries.map(([label]) => label.length));
  return entries.map(([label, value, variable]) =>
    `  ${label.padEnd(width)}  ${value}${variable ? `   (${variable})` : ''}`.trimEnd(),
  );
}

/**
 * The curl of the README with the local URL and the configured bot (the demo's, or B24_BOT_ID);
 * against a real portal the message id is the caller's. botToken is left out: the banner never shows a token.
 */
export function curlCommand(info: LocalStackInfo, config: LocalStackConfig): string {
  const botId = config.realPortal?.botId ?? info.demo?.botId ?? 456;
  const messageId = config.realPortal ? '<message id>' : String(info.demo?.messageIds[0] ?? 789);
  const body = `{"botId":${botId},"messageId":${messageId},"fields":{"message":"Updated text"}}`;
  return `curl -X POST -H "Content-Type: application/json" -d '${body}' ${info.methodUrl}`;
}

/** What runs where, the curl to try, and the readiness line tests wait for. */
export function banner(info: LocalStackInfo, config: LocalStackConfig, startupMs: number): string {
  const portal =
    info.mode === 'emulator' && info.demo
      ? `emulator: portal "${info.portal}", bot ${info.demo.botId}, chat ${info.demo.chatId}, messages ${info.demo.messageIds.join(' ')}`
      : `your portal ${info.portalHost} (portal "${info.portal}", bot ${config.realPortal?.botId})`;
  const schedules =
    info.schedules.length === 0
      ? info.statusSpecsFile
        ? `${info.statusSpecsFile}: no schedules`
        : 'off (STATUS_SPECS_FILE names a schedules file)'
      : `${info.statusSpecsFile}: ${info.schedules
          .map(
            (s) => `"${s.name}" ${s.messageIds.map((id) => `#${id}`).join(' ')} every ${interval(s.everyMs)}`,
          )
          .join('; ')}`;
  const table = rows([
    ['Update API', info.methodUrl, config.api.variable],
    ['Fate API', `${info.apiUrl}/messages/{portal}/{botId}/{messageId}`],
    [
      'Bitrix24 SDKs',
      `${info.apiTlsUrl}/rest/1/<key>/  as the webhook URL; a key: npm run b24 -- caller add --local --portal ${info.portal} --name <who>`,
      config.apiTls.variable,
    ],
    [
      '',
      `certificate: ${info.certificateFile} (self-signed, this run's); Node trusts it with NODE_EXTRA_CA_CERTS=${info.certificateFile} node app.js`,
    ],
    ['Sandbox page', `${info.sandboxUrl}/`, config.sandbox.variable],
    [
      'Bitrix24',
      info.emulatorUrl ? `${info.emulatorUrl}  ${portal}` : portal,
      info.emulatorUrl ? config.emulator.variable : undefined,
    ],
    [
      'SQS',
      `${info.sqsUrl}  fauxqs: edits.fifo (failed edits: failed-edits.fifo), portal-work (wake-ups)`,
      config.sqs.variable,
    ],
    [
      'Secrets Manager',
      `${info.secretsManagerUrl}  secret ${info.secretName}`,
      config.secretsManager.variable,
    ],
    [
      'DynamoDB',
      `${info.dynamodbUrl}  dynalite: table ${info.ledgerTable} (the ledger)`,
      config.dynamodb.variable,
    ],
    [
      'Drain',
      `polls edits.fifo: batches of ${info.drain.batchSize}, ${info.drain.concurrency} at a time; ` +
        'merges edit records into the ledger and wakes their portals' +
        (info.drain.paused
          ? `; PAUSED with the reconcile, the sweep and the status schedules (--paused): Resume on the sandbox page or POST ${info.sandboxUrl}/api/drain/resume`
          : ''),
    ],
    [
      'Reconcile',
      `polls portal-work: batches of ${info.reconcile.batchSize}, ${info.reconcile.concurrency} at a time; ` +
        "applies each woken portal's edits in calls of up to 50" +
        (info.drain.paused ? '; PAUSED' : ''),
    ],
    [
      'Sweep',
      `every ${interval(info.sweep.everyMs)}: wakes every portal whose wake-up is overdue by over a minute`,
    ],
    ['Status messages', schedules],
  ]);
  return [
    'b24-message-editor · local stack (the production handlers, local endpoints)',
    '',
    ...table,
    '',
    `Try it, then watch ${info.sandboxUrl}/ :`,
    `  ${curlCommand(info, config)}`,
    "  (botToken is optional: the API always uses the bot's token from the portal's secret)",
    ...(config.realPortal
      ? [
          `  <message id>: a message bot ${config.realPortal.botId} sent. To post one and print its id:`,
          '  npm run b24 -- send --dialog chat<chat id> "Hello"   (the same B24_* variables; see --help)',
        ]
      : []),
    '',
    handlerLogsLine(info.handlerLogLevel, config.handlerLogLevel),
    `Ready in ${startupMs} ms. Ctrl-C stops everything.`,
  ].join('\n');
}

const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'CRITICAL', 'SILENT'];

/**
 * What the console shows of the handlers' own log lines: the level their logger has, which is the
 * one asked for unless that logger was made before the stack set it.
 */
export function handlerLogsLine(level: string, asked: string): string {
  const effective = level.toUpperCase();
  const hint =
    LOG_LEVELS.indexOf(effective) >= LOG_LEVELS.indexOf('WARN')
      ? 'POWERTOOLS_LOG_LEVEL=INFO npm start shows every edit'
      : 'POWERTOOLS_LOG_LEVEL=WARN npm start keeps the console to the lines above and the summaries';
  const mismatch =
    effective === asked.toUpperCase()
      ? ''
      : ` (${asked.toUpperCase()} was asked for, but the handlers' logger was made before the stack set it)`;
  return `Handler logs: ${effective} and above${mismatch} (${hint}).`;
}

function clock(date = new Date()): string {
  return date.toISOString().slice(11, 19);
}

export function requestLine(a: ApiActivity): string {
  const outcome =
    a.outcome === 'deferred' && a.reason ? `deferred (${a.reason}), edit ${a.editId}` : a.outcome;
  const target = a.messageId === undefined ? '' : ` · message ${a.messageId}`;
  return `${clock(new Date(a.at))} ${a.method} ${a.path} → ${a.status} ${outcome}${target} · ${a.durationMs} ms`;
}

/** A line for a status run worth telling about (something changed or failed); undefined otherwise. */
export function statusRunLine(run: ScheduledRun): string | undefined {
  if (run.error) return `${clock()} status "${run.schedule}" failed: ${run.error}`;
  const summary = (run.result ?? {}) as Record<string, unknown>;
  const parts = ['updated', 'deferred', 'failed', 'sourceErrors', 'invalid']
    .filter((key) => typeof summary[key] === 'number' && (summary[key] as number) > 0)
    .map((key) => `${key} ${summary[key]}`);
  return parts.length > 0 ? `${clock()} status "${run.schedule}": ${parts.join(', ')}` : undefined;
}

/**
 * What an invocation did, counted apart (zeros left out): the drain's edit records by fate, the
 * reconcile's messages applied, and its Bitrix24 calls (when it reports them).
 */
export function outcomeSummary(outcomes: Partial<DrainOutcomes>): string {
  const parts = (['merged', 'superseded', 'deferred', 'failed', 'applied'] as const)
    .filter((key) => (outcomes[key] ?? 0) > 0)
    .map((key) => `${outcomes[key]} ${key}`);
  const text = parts.join(', ') || (outcomes.calls ? 'none applied' : 'nothing to do');
  if (outcomes.calls === undefined) return text;
  return `${text} (${outcomes.calls} Bitrix24 call${outcomes.calls === 1 ? '' : 's'})`;
}

function invocationParts(summary: DrainInvocation): string[] {
  const parts = summary.outcomes ? [outcomeSummary(summary.outcomes)] : [];
  if (summary.leftInQueue > 0) parts.push(`${summary.leftInQueue} back to the queue for a later attempt`);
  if (summary.error) parts.push(`handler failed: ${summary.error}`);
  return parts;
}

/** A drain invocation: the edit records it merged into the ledger. */
export function drainLine(summary: DrainInvocation): string {
  const noun = summary.records === 1 ? 'edit' : 'edits';
  return `${clock()} drain: ${summary.records} ${noun} received: ${invocationParts(summary).join('; ')}`;
}

/** A reconcile invocation: the portal wake-ups it received, and what their portals' reconciles applied. */
export function reconcileLine(summary: DrainInvocation): string {
  const noun = summary.records === 1 ? 'wake-up' : 'wake-ups';
  return `${clock()} reconcile: ${summary.records} ${noun} received: ${invocationParts(summary).join('; ')}`;
}

/** A line for a sweep that found overdue portals, or failed; undefined for a quiet one. */
export function sweepLine(run: ScheduledRun): string | undefined {
  if (run.error) return `${clock()} sweep failed: ${run.error}`;
  const summary = (run.result ?? {}) as Record<string, unknown>;
  const count = (key: string) => (typeof summary[key] === 'number' ? (summary[key] as number) : 0);
  const overdue = count('overdue');
  if (overdue === 0) return undefined;
  const portals = `${overdue} portal${overdue === 1 ? '' : 's'}`;
  return `${clock()} sweep: ${portals} overdue, ${count('woken')} woken`;
}

/** A line for the sandbox's drain switch: paused, resuming, or what the resume took. */
export function drainSwitchLine(view: DrainPauseView): string {
  if (view.paused)
    return `${clock()} drain paused: edits wait in the ledger and the queues until resume, with no Bitrix24 call`;
  if (view.resuming) return `${clock()} drain resuming: the sweep once, then the drain and the reconcile`;
  return `${clock()} drain resumed${view.lastResume ? `: ${resumeSummary(view.lastResume)}` : ''}`;
}
