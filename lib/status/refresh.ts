import { randomUUID } from 'node:crypto';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { Config } from '../config.ts';
import type { QueuedEdit } from '../edits/types.ts';
import { AppError } from '../errors.ts';
import { isDirty, type MessageKey, type MessageState, messageKeyText } from '../ledger/model.ts';
import { logger } from '../observability/logger.ts';
import { MetricUnit } from '../observability/metrics.ts';
import type { Reconciler } from '../reconcile/reconcile.ts';
import type { ReconcileFate } from '../reconcile/run.ts';
import { emptyStats } from '../reconcile/send.ts';
import { renderStatus } from './render.ts';
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
  /** Milliseconds left before the invocation's deadline: no call starts that could outlive it. */
  remainingMs?: (() => number) | undefined;
}

/** Where the summary goes as metrics; the project's Powertools `metrics` in production. */
export type MetricsSink = Pick<Metrics, 'addMetric'>;

export interface RefreshDeps {
  config: Pick<Config, 'statusConcurrency' | 'b24AllowHttp'>;
  /** Records each rendering in the ledger and applies the changed ones, paced with every other sender. */
  reconciler: Reconciler;
  metrics?: MetricsSink;
  /** The moment shown as `now` in templates and stamped as the edits' acceptance time. Default `new Date()`. */
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

interface Pending {
  index: number;
  key: MessageKey;
  edit: QueuedEdit;
  sourceError: string | undefined;
}

/**
 * Refreshes scheduled status messages: validates the input as a whole (refused specs are reported,
 * the others run), renders every spec with bounded concurrency, and records each rendering in the
 * ledger like any edit. A rendering equal to the message's desired state that is already applied
 * costs no call, in any container; the changed messages of each portal are reconciled together
 * (up to 50 per `batch` call, paced with every other sender). What Bitrix24 cannot take now stays
 * in the ledger for its portal's wake-up. Every expected outcome is reported; only bugs throw.
 */
export async function refreshStatuses(input: RefreshInput, deps: RefreshDeps): Promise<RefreshReport> {
  const now = deps.now?.() ?? new Date();
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
    const key = { portal: spec.portal, botId: spec.botId, messageId: spec.messageId };
    const edit: QueuedEdit = {
      ...key,
      fields: result.fields,
      editId: deps.newId?.() ?? randomUUID(),
      requestedAt: now.toISOString(),
    };
    pending.push({ index, key, edit, sourceError: result.sourceError?.code });
  });

  // Record every rendering; the ones that changed the desired state (or are still not applied) go on.
  const toApply: Pending[] = [];
  const states = new Map<string, MessageState[]>();
  await Promise.all(
    pending.map(async (item) => {
      try {
        const merged = await deps.reconciler.merge(item.key, [
          { ...item.key, fields: item.edit.fields, editId: item.edit.editId, at: now.getTime(), seq: '' },
        ]);
        if (isDirty(merged.state)) {
          toApply.push(item);
          states.set(item.key.portal, [...(states.get(item.key.portal) ?? []), merged.state]);
        } else reports.push(reportOf(item, 'unchanged'));
      } catch (error) {
        reports.push(
          reportOf(item, 'failed', { code: error instanceof AppError ? error.code : 'LEDGER_UNAVAILABLE' }),
        );
      }
    }),
  );

  const byPortal = Map.groupBy(toApply, (item) => item.key.portal);
  await Promise.all(
    [...byPortal].map(async ([portal, items]) => {
      let fates: Map<string, ReconcileFate> = new Map();
      try {
        const report = await deps.reconciler.reconcilePortal(portal, {
          hints: items.map((item) => item.key),
          mode: 'fill',
          remainingMs: input.remainingMs ?? (() => Number.MAX_SAFE_INTEGER),
          signal: input.signal,
          stats: emptyStats(),
        });
        fates = report.fates;
        // Held elsewhere: the holder looks at the portal again before it lets go (it sees the touch).
        if (report.leaseHeld) await deps.reconciler.afterMerge(portal, states.get(portal) ?? []);
      } catch (error) {
        logger.error('Reconciling a portal failed; its status edits stay in the ledger', {
          portal,
          code: error instanceof AppError ? error.code : 'RECONCILE_ERROR',
        });
        await deps.reconciler.afterMerge(portal, states.get(portal) ?? []).catch(() => undefined);
      }
      for (const item of items) {
        const fate = fates.get(messageKeyText(item.key));
        if (fate?.kind === 'applied') reports.push(reportOf(item, 'updated'));
        else if (fate?.kind === 'failed') reports.push(reportOf(item, 'failed', { code: fate.error.code }));
        else {
          const reason =
            fate?.kind === 'held'
              ? fate.code
              : fate?.kind === 'pending'
                ? (fate.lastError?.code ?? 'PENDING')
                : 'RECONCILE_ERROR';
          reports.push(reportOf(item, 'deferred', { code: reason, editId: item.edit.editId }));
        }
      }
    }),
  );

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
    ...item.key,
    outcome,
    ...extra,
    ...(item.sourceError ? { sourceError: item.sourceError } : {}),
  };
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
  deferred: 'Status message recorded; applied when Bitrix24 can take it',
  failed: 'Status message failed',
  kept: 'Status source failed; message kept',
};

function logOutcome(report: SpecReport): void {
  const level = report.outcome === 'failed' || report.outcome === 'kept' ? 'warn' : 'info';
  logger[level](OUTCOME_MESSAGES[report.outcome], { ...report });
}
