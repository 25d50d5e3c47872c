import { randomUUID } from 'node:crypto';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { Config } from '../config.ts';
import type { EnqueueResult } from '../edits/queue.ts';
import { messageGroupId, type QueuedEdit } from '../edits/types.ts';
import { AppError } from '../errors.ts';
import { logger } from '../observability/logger.ts';
import { MetricUnit } from '../observability/metrics.ts';
import type { PortalGateway } from '../portal/gateway.ts';
import type { AppliedFieldsCache } from './change-detect.ts';
import { renderStatus } from './render.ts';
import { type SendContext, type StatusUpdate, sendPortalUpdates } from './send.ts';
import { mapWithConcurrency } from './sources.ts';
import { parseStatusInput, type StatusSpecIssue } from './spec.ts';

/**
 * What one refresh did. `sourceErrors` counts specs whose source failed, whatever happened next: a
 * `keep` spec is counted there only, a spec whose error template was sent is also counted by how that
 * update went. `invalid` counts refused specs (the input as a whole counts as one when it is wrong).
 */
export interface RefreshSummary {
  updated: number;
  unchanged: number;
  deferred: number;
  failed: number;
  sourceErrors: number;
  invalid: number;
}

/** How one valid spec ended; `kept` is a failed source with `onSourceError: keep`. */
export type SpecOutcome = 'updated' | 'unchanged' | 'deferred' | 'failed' | 'kept';

export interface SpecReport {
  /** Position of the spec in the input. */
  index: number;
  portal: string;
  botId: number;
  messageId: number;
  outcome: SpecOutcome;
  /** Why it failed, was deferred or kept: a Bitrix24, source, render or queue error code. */
  code?: string;
  /** The source's error code when the source failed (also for an error template that was sent). */
  sourceError?: string;
  /** The deferred edit's id on the edits queue. */
  editId?: string;
}

export interface RefreshReport {
  summary: RefreshSummary;
  /** One entry per valid spec, in input order. */
  specs: SpecReport[];
  /** Every problem of the refused specs, by index and field. */
  issues: StatusSpecIssue[];
}

export interface RefreshInput {
  /** The schedule's input: one status spec, or `{ "messages": [spec, ...] }`. */
  event: unknown;
  /** The Lambda deadline: aborts source reads and Bitrix24 requests. */
  signal?: AbortSignal | undefined;
  /**
   * Epoch ms after which no Bitrix24 request is started; edits still waiting are deferred to the
   * queue instead, while there is time to send them there. Default: no limit.
   */
  sendBy?: number | undefined;
}

/** Where the summary goes as metrics; the project's Powertools `metrics` in production. */
export type MetricsSink = Pick<Metrics, 'addMetric'>;

export interface RefreshDeps {
  config: Pick<Config, 'statusConcurrency' | 'b24AllowHttp'>;
  gateway: PortalGateway;
  /**
   * Per-portal pacers and batch refusals kept across invocations: the drain's `DrainState`, so that
   * status updates are paced exactly as deferred edits are.
   */
  pacing: SendContext['pacing'];
  /** What this container last applied to each message. */
  cache: AppliedFieldsCache;
  /** Sends edits to the deferred-edits queue (normally `enqueueEdits` bound to EDITS_QUEUE_URL). */
  enqueue: (edits: QueuedEdit[]) => Promise<EnqueueResult>;
  metrics?: MetricsSink;
  /** The moment shown as `now` in templates and stamped on deferred edits. Default `new Date()`. */
  now?: () => Date;
  newId?: () => string;
}

/** Summary keys and the metric each is emitted as. */
export const REFRESH_METRICS = {
  updated: 'StatusUpdated',
  unchanged: 'StatusUnchanged',
  deferred: 'StatusDeferred',
  failed: 'StatusFailed',
  sourceErrors: 'StatusSourceErrors',
  invalid: 'StatusInvalid',
} as const satisfies Record<keyof RefreshSummary, string>;

interface Pending extends StatusUpdate {
  portal: string;
  /** The message's key in the applied-fields cache. */
  key: string;
  sourceError: string | undefined;
}

/**
 * Refreshes scheduled status messages: validates the input as a whole (refused specs are reported,
 * the others run), renders every spec with bounded concurrency, skips messages whose fields equal what
 * this container last applied, and sends the changed ones of each portal together in `batch` calls
 * of at most 50 commands, paced by the portal's bucket. A portal with one changed message gets a single
 * update call. Retryable failures are deferred to the edits queue; permanent ones are counted and logged.
 * Every expected outcome is reported; only bugs throw.
 */
export async function refreshStatuses(input: RefreshInput, deps: RefreshDeps): Promise<RefreshReport> {
  const now = deps.now?.() ?? new Date();
  const context: SendContext = {
    gateway: deps.gateway,
    pacing: deps.pacing,
    signal: input.signal,
    sendBy: input.sendBy ?? Number.POSITIVE_INFINITY,
  };
  const { specs, invalid: issues } = parseStatusInput(input.event, { allowHttp: deps.config.b24AllowHttp });
  const invalid = reportIssues(issues);

  const rendered = await mapWithConcurrency(specs, deps.config.statusConcurrency, ({ spec }) =>
    renderStatus(spec, {
      allowHttp: deps.config.b24AllowHttp,
      now,
      ...(input.signal ? { signal: input.signal } : {}),
    }),
  );

  const reports: SpecReport[] = [];
  const pending: Pending[] = [];
  specs.forEach(({ index, spec }, i) => {
    const result = rendered[i];
    const target = { index, portal: spec.portal, botId: spec.botId, messageId: spec.messageId };
    if (!result) return;
    if (result.kind === 'failed') {
      reports.push({ ...target, outcome: 'failed', code: result.error.code });
      return;
    }
    if (result.kind === 'keep') {
      reports.push({ ...target, outcome: 'kept', code: result.error.code, sourceError: result.error.code });
      return;
    }
    const key = messageGroupId(spec);
    const sourceError = result.sourceError?.code;
    if (deps.cache.isUnchanged(key, result.fields)) {
      reports.push({ ...target, outcome: 'unchanged', ...(sourceError ? { sourceError } : {}) });
      return;
    }
    pending.push({ ...target, key, fields: result.fields, sourceError });
  });

  const byPortal = Map.groupBy(pending, (item) => item.portal);
  await Promise.all([...byPortal].map(([portal, items]) => sendPortalUpdates(portal, items, context)));
  reports.push(...(await settle(pending, deps, now)));

  reports.sort((a, b) => a.index - b.index);
  const summary = summarise(reports, invalid);
  for (const report of reports) logOutcome(report);
  logger.info('Status refresh finished', { ...summary });
  if (deps.metrics) {
    for (const [key, name] of Object.entries(REFRESH_METRICS)) {
      deps.metrics.addMetric(name, MetricUnit.Count, summary[key as keyof RefreshSummary]);
    }
  }
  return { summary, specs: reports, issues };
}

/** Logs each refused spec once with all its problems; returns how many specs were refused. */
function reportIssues(issues: StatusSpecIssue[]): number {
  const byIndex = Map.groupBy(issues, (issue) => issue.index);
  for (const [index, list] of byIndex) {
    logger.warn(index === -1 ? 'Status input refused' : 'Status spec refused', {
      index,
      outcome: 'invalid',
      issues: list.map(({ field, message }) => ({ field, message })),
    });
  }
  return byIndex.size;
}

function reportOf(item: Pending, outcome: SpecOutcome, extra: Partial<SpecReport> = {}): SpecReport {
  return {
    index: item.index,
    portal: item.portal,
    botId: item.botId,
    messageId: item.messageId,
    outcome,
    ...extra,
    ...(item.sourceError ? { sourceError: item.sourceError } : {}),
  };
}

/** Remembers what was applied, forgets the rest, and defers what can wait to the edits queue. */
async function settle(items: Pending[], deps: RefreshDeps, now: Date): Promise<SpecReport[]> {
  const reports: SpecReport[] = [];
  const deferrals: Array<{ item: Pending; edit: QueuedEdit; reason: string }> = [];
  for (const item of items) {
    const result = item.result ?? { kind: 'failed', code: 'INTERNAL_ERROR' };
    if (result.kind === 'updated') {
      deps.cache.remember(item.key, item.fields);
      reports.push(reportOf(item, 'updated'));
      continue;
    }
    // Failed, or applied or not we cannot tell: the next run must send it again.
    deps.cache.forget(item.key);
    if (result.kind === 'failed') {
      reports.push(reportOf(item, 'failed', { code: result.code }));
      continue;
    }
    const edit: QueuedEdit = {
      portal: item.portal,
      botId: item.botId,
      messageId: item.messageId,
      fields: item.fields,
      editId: deps.newId?.() ?? randomUUID(),
      requestedAt: now.toISOString(),
    };
    deferrals.push({ item, edit, reason: result.code });
  }
  if (deferrals.length === 0) return reports;

  let refused: Map<string, string>;
  try {
    const sent = await deps.enqueue(deferrals.map(({ edit }) => edit));
    refused = new Map(sent.failed.map(({ editId }) => [editId, 'QUEUE_REFUSED']));
    if (sent.failed.length > 0) {
      logger.error('The edits queue refused status edits Bitrix24 could not take now', {
        count: sent.failed.length,
        codes: [...new Set(sent.failed.map(({ code }) => code))],
      });
    }
  } catch (error) {
    const code = error instanceof AppError ? error.code : 'QUEUE_UNAVAILABLE';
    logger.error('The edits queue is unavailable: status edits Bitrix24 could not take now are lost', {
      count: deferrals.length,
      code,
      error,
    });
    refused = new Map(deferrals.map(({ edit }) => [edit.editId, code]));
  }
  for (const { item, edit, reason } of deferrals) {
    const queueCode = refused.get(edit.editId);
    reports.push(
      queueCode === undefined
        ? reportOf(item, 'deferred', { code: reason, editId: edit.editId })
        : reportOf(item, 'failed', { code: queueCode }),
    );
  }
  return reports;
}

function summarise(reports: SpecReport[], invalid: number): RefreshSummary {
  const summary: RefreshSummary = {
    updated: 0,
    unchanged: 0,
    deferred: 0,
    failed: 0,
    sourceErrors: 0,
    invalid,
  };
  for (const report of reports) {
    if (report.outcome !== 'kept') summary[report.outcome] += 1;
    if (report.sourceError) summary.sourceErrors += 1;
  }
  return summary;
}

const OUTCOME_MESSAGES: Record<SpecOutcome, string> = {
  updated: 'Status message updated',
  unchanged: 'Status message unchanged',
  deferred: 'Status message deferred to the edits queue',
  failed: 'Status message failed',
  kept: 'Status source failed; message kept',
};

function logOutcome(report: SpecReport): void {
  const level = report.outcome === 'failed' || report.outcome === 'kept' ? 'warn' : 'info';
  logger[level](OUTCOME_MESSAGES[report.outcome], { ...report });
}
