import { randomUUID } from 'node:crypto';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { type BatchCommand, buildBatchCmd, packBatches, parseBatchResponse } from '../bitrix24/batch.ts';
import { findErrorRow, isRetryable, LocalCode, Strategy } from '../bitrix24/error-table.ts';
import { Bitrix24Error, isBitrix24Error } from '../bitrix24/errors.ts';
import { UPDATE_METHOD, updateParams } from '../bitrix24/imbot.ts';
import type { Config } from '../config.ts';
import { type DrainState, waitForRoom } from '../drain/portal-state.ts';
import type { EnqueueResult } from '../edits/queue.ts';
import { type EditFields, messageGroupId, type QueuedEdit } from '../edits/types.ts';
import { AppError } from '../errors.ts';
import { logger } from '../observability/logger.ts';
import { MetricUnit } from '../observability/metrics.ts';
import type { PortalGateway } from '../portal/gateway.ts';
import { withBotToken } from '../portal/gateway.ts';
import type { PortalSecret } from '../secrets/index.ts';
import type { AppliedFieldsCache } from './change-detect.ts';
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
  pacing: Pick<DrainState, 'pace' | 'penalise' | 'refusesBatch' | 'rememberBatchRefused'>;
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

const BATCH_NOT_ALLOWED = 'ERROR_BATCH_METHOD_NOT_ALLOWED';
/** Deferral reason when the Lambda deadline leaves no time for another request. */
export const DEADLINE_CODE = 'DEADLINE';

type Result = { kind: 'updated' } | { kind: 'defer'; code: string } | { kind: 'failed'; code: string };

interface Pending {
  index: number;
  portal: string;
  botId: number;
  messageId: number;
  key: string;
  fields: EditFields;
  sourceError: string | undefined;
  result?: Result;
}

interface Run {
  deps: RefreshDeps;
  signal: AbortSignal | undefined;
  sendBy: number;
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
  const run: Run = {
    deps,
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
  await Promise.all([...byPortal].map(([portal, items]) => sendPortal(portal, items, run)));
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

/** Sends the changed messages of one portal and records a result on each. */
async function sendPortal(portal: string, items: Pending[], run: Run): Promise<void> {
  const { deps, signal } = run;
  let secret: PortalSecret;
  try {
    secret = await deps.gateway.secret(portal);
  } catch (error) {
    const result = resultOf(error);
    for (const item of items) item.result = result;
    return;
  }
  const sendable: Pending[] = [];
  for (const item of items) {
    // Checked here, before any request: one unknown bot must not fail the batch it would share.
    if (secret.bots.has(item.botId)) sendable.push(item);
    else item.result = { kind: 'failed', code: 'BOT_NOT_FOUND' };
  }

  // Set by a failure that says the portal will refuse everything for a while; the rest is deferred.
  let stop: string | undefined;
  const gate = async (): Promise<string | undefined> => {
    if (stop) return stop;
    if (signal?.aborted || Date.now() >= run.sendBy) return DEADLINE_CODE;
    const { bucket, share } = deps.pacing.pace(portal, secret.limits);
    // Looked at before reserving: a token that comes too late is not taken from the drain's slice.
    if (Date.now() + waitForRoom(bucket, share) > run.sendBy) return DEADLINE_CODE;
    return (await sleep(bucket.reserve(), signal)) ? undefined : DEADLINE_CODE;
  };
  const fail = (targets: Pending[], error: unknown) => {
    const result = resultOf(error);
    for (const item of targets) item.result = result;
    if (!isBitrix24Error(error)) return;
    if (error.strategy === Strategy.RateLimit) deps.pacing.penalise(portal);
    if (error.strategy === Strategy.RateLimit || error.strategy === Strategy.Overload) stop = error.code;
  };

  const singles: Pending[] = [];
  if (sendable.length === 1 || deps.pacing.refusesBatch(portal)) singles.push(...sendable);
  else {
    const byKey = new Map(sendable.map((item) => [commandKey(item), item]));
    const batches = packBatches(sendable.map((item) => command(secret, item)));
    for (const batch of batches) {
      const targets = batch.map(({ key }) => byKey.get(key) as Pending);
      const blocked = await gate();
      if (blocked) {
        for (const item of targets) item.result = { kind: 'defer', code: blocked };
        continue;
      }
      try {
        const outcomes = await sendBatch(portal, targets, run);
        for (const item of targets) {
          const outcome = outcomes.get(commandKey(item));
          if (outcome?.ok) {
            item.result = { kind: 'updated' };
          } else if (!outcome) {
            item.result = { kind: 'defer', code: 'NOT_RUN' };
          } else if (outcome.code.toUpperCase() === BATCH_NOT_ALLOWED) {
            singles.push(item);
          } else {
            item.result = codeResult(outcome.code, commandStrategy(outcome.code));
          }
        }
      } catch (error) {
        if (isBitrix24Error(error) && error.code.toUpperCase() === BATCH_NOT_ALLOWED)
          singles.push(...targets);
        else fail(targets, error);
      }
      if (singles.length > 0 && !deps.pacing.refusesBatch(portal)) {
        deps.pacing.rememberBatchRefused(portal);
        logger.warn('Bitrix24 refuses imbot.v2 inside batch; sending single updates', { portal });
      }
    }
  }

  for (const item of singles) {
    const blocked = await gate();
    if (blocked) {
      item.result = { kind: 'defer', code: blocked };
      continue;
    }
    try {
      await deps.gateway.updateMessage(
        portal,
        { botId: item.botId, messageId: item.messageId },
        item.fields,
        signal,
      );
      item.result = { kind: 'updated' };
    } catch (error) {
      fail([item], error);
    }
  }
}

function commandKey(item: Pending): string {
  return `s${item.index}`;
}

function command(secret: PortalSecret, item: Pending): BatchCommand {
  const params = updateParams({ botId: item.botId, messageId: item.messageId }, item.fields);
  return { key: commandKey(item), method: UPDATE_METHOD, params: withBotToken(secret, params, item.botId) };
}

/** One `batch` call (halt=0); the commands are built again if the gateway recovers with a new secret. */
async function sendBatch(portal: string, targets: Pending[], run: Run) {
  const keys = targets.map(commandKey);
  return run.deps.gateway.withCredentials(portal, run.signal, async (secret, client, auth) => {
    const cmd = buildBatchCmd(targets.map((item) => command(secret, item)));
    const answer = await client.call('batch', { halt: 0, cmd }, { auth, signal: run.signal });
    try {
      return parseBatchResponse(keys, { result: answer.result });
    } catch (error) {
      throw new Bitrix24Error({
        method: 'batch',
        host: client.host,
        httpStatus: 200,
        code: LocalCode.InvalidResponse,
        description: (error as Error).message,
      });
    }
  });
}

/**
 * A command's error inside a batch comes without an HTTP status. A code the table does not know is
 * taken as permanent there: the next scheduled run sends the status again anyway, whereas a deferred
 * edit that can never succeed would cycle through the drain until it reaches the dead-letter queue.
 */
function commandStrategy(code: string): Strategy {
  if (code === 'NOT_RUN') return Strategy.Server;
  return findErrorRow(code, undefined)?.strategy ?? Strategy.Permanent;
}

function codeResult(code: string, strategy: Strategy): Result {
  return isRetryable(strategy) ? { kind: 'defer', code } : { kind: 'failed', code };
}

function resultOf(error: unknown): Result {
  if (isBitrix24Error(error)) return codeResult(error.code, error.strategy);
  if (error instanceof AppError) {
    // Secrets Manager unreachable: the drain will read the secret again later.
    return error.code === 'SECRETS_UNAVAILABLE'
      ? { kind: 'defer', code: error.code }
      : { kind: 'failed', code: error.code };
  }
  logger.error('Status refresh hit an unexpected error', { error });
  return { kind: 'failed', code: 'INTERNAL_ERROR' };
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

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
