import { createHash, randomUUID } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { FAILED_QUEUE_UNAVAILABLE, type FailedEditMessage, sendFailedEdits } from '../edits/failed.ts';
import { messageGroupId, type QueuedEdit } from '../edits/types.ts';
import type { Ledger } from '../ledger/messages.ts';
import {
  desiredFields,
  dueAt,
  fateOf,
  type LedgerError,
  type MessageState,
  messageKeyText,
} from '../ledger/model.ts';
import { logger } from '../observability/logger.ts';
import type { ResolvedReconcileOptions } from './options.ts';
import type { ReconcileReport, ReconcileRun } from './run.ts';
import type { Job, JobResult } from './send.ts';

export const MAX_ATTEMPTS = 'MAX_ATTEMPTS';

/** What recording outcomes needs: the ledger, the failed-edits queue's client, the options, a clock. */
export interface RecordContext {
  ledger: Ledger;
  sqs: SQSClient;
  options: ResolvedReconcileOptions;
  now: () => number;
}

/**
 * Writes each job's outcome to the ledger and the run's report; what failed for good goes to the
 * failed-edits queue first (the API's own message excepted: its caller hears of it).
 */
export async function recordOutcomes(
  ctx: RecordContext,
  items: Array<{ job: Job; state: MessageState; result: JobResult }>,
  run: Pick<ReconcileRun, 'hints' | 'mode'>,
  report: ReconcileReport,
): Promise<void> {
  const { ledger, options: o } = ctx;
  const now = ctx.now();
  const failures: Array<{
    job: Job;
    state: MessageState;
    error: LedgerError;
    startedAt?: number | undefined;
  }> = [];
  const settle = (state: MessageState, changes: Partial<MessageState>) => {
    const next = { ...state, ...changes };
    const text = messageKeyText(state);
    report.states.set(text, next);
    report.fates.set(text, fateOf(next, o.timing));
  };
  await Promise.all(
    items.map(async ({ job, state, result }) => {
      const text = messageKeyText(job.key);
      if (result.kind === 'applied') {
        const mark = await ledger.markApplied(job.key, job.version, result.startedAt, o.timing);
        if (result.time) report.times.set(text, result.time);
        const applied = { appliedVersion: job.version, lastCallAt: result.startedAt, attempts: 0 };
        if (mark === 'clean')
          settle(state, { ...applied, retryAt: undefined, inDoubtSince: undefined, lastError: undefined });
        // Newer edits came, or a newer apply may have landed first: the message stays dirty.
        else settle({ ...state, version: Math.max(state.version, job.version + 1) }, applied);
        return;
      }
      if (result.kind === 'held') {
        report.states.set(text, state);
        report.fates.set(text, {
          kind: 'held',
          code: result.failure.code,
          description: result.failure.description,
          delayMs: Math.min(result.delayMs, o.maxDeferralMs),
        });
        return;
      }
      const { code, description, callerStatus } = result.failure;
      const error: LedgerError = { code, description, at: now, ...(callerStatus ? { callerStatus } : {}) };
      // Given up after `maxAttempts` failed calls, once the message has been failing for
      // `giveUpAfterMs`: an outage of the portal is ridden out, however many short backoffs it takes.
      const failingFor = result.kind === 'retry' ? now - (state.failingSince ?? result.startedAt) : 0;
      if (result.kind === 'retry' && (job.attempts + 1 < o.maxAttempts || failingFor < o.giveUpAfterMs)) {
        const retry = {
          error,
          retryAt: now + Math.min(result.delayMs, o.maxDeferralMs),
          startedAt: result.startedAt,
          inDoubt: result.inDoubt,
        };
        const next: MessageState = {
          ...state,
          lastError: error,
          retryAt: retry.retryAt,
          attempts: job.attempts + 1,
          lastCallAt: result.startedAt,
          ...(result.inDoubt ? { inDoubtSince: result.startedAt } : {}),
        };
        await ledger.markRetry(job.key, { ...retry, dueAt: dueAt(next, o.timing) });
        settle(next, {});
        return;
      }
      const final =
        result.kind === 'retry'
          ? {
              code: MAX_ATTEMPTS,
              description: `Gave up after ${job.attempts + 1} attempts; the last one ended with ${error.code}: ${error.description}`,
              at: now,
            }
          : error;
      failures.push({ job, state, error: final, startedAt: result.startedAt });
    }),
  );
  if (failures.length === 0) return;
  // The API's caller hears of its own edit's failure; every other failure goes to the queue (a
  // carried API edit's caller may have stopped waiting).
  const hinted = new Set(run.hints.map(messageKeyText));
  const toQueue = (job: Job) => run.mode === 'fill' || !hinted.has(messageKeyText(job.key));
  const queued = failures.filter((failure) => toQueue(failure.job));
  const refused = new Set<(typeof failures)[number]>();
  if (queued.length > 0) {
    const sent = await sendFailedEdits(
      queued.map(({ state, error }) => failedMessage(state, error)),
      { queueUrl: o.failedEditsQueueUrl, client: ctx.sqs },
    );
    for (const { index } of sent.refused) refused.add(queued[index] as (typeof failures)[number]);
  }
  await Promise.all(
    failures.map(async (failure) => {
      const { job, state, error, startedAt } = failure;
      if (refused.has(failure)) {
        const retryAt = now + o.handBackDelayMs;
        const kept: LedgerError = {
          code: FAILED_QUEUE_UNAVAILABLE,
          description: `The failed-edits queue did not accept the edit (it failed with ${error.code}: ${error.description})`,
          at: now,
        };
        const next: MessageState = { ...state, lastError: kept, retryAt };
        await ledger.markRetry(job.key, {
          error: kept,
          retryAt,
          dueAt: dueAt(next, o.timing),
          inDoubt: false,
        });
        settle(next, {});
        return;
      }
      const marked = await ledger.markFailed(job.key, job.version, error, startedAt);
      logger.warn('Message failed; its desired state is kept with the reason', {
        ...job.key,
        version: job.version,
        code: error.code,
        queued: toQueue(job),
      });
      settle(state, marked ? { failedVersion: job.version, lastError: error } : { lastError: error });
    }),
  );
}

/** The failed-edits queue's message for a message whose version failed for good. */
export function failedMessage(state: MessageState, error: LedgerError): FailedEditMessage {
  const stamps = Object.values(state.desired).filter((field) => field !== undefined);
  const last = stamps.reduce((a, b) => (b.at > a.at ? b : a), stamps[0] ?? { at: 0, editId: 'unknown' });
  const first = Math.min(...stamps.map((field) => field.at));
  const editIds = state.pendingEditIds.length > 0 ? state.pendingEditIds : [last.editId];
  const body: QueuedEdit = {
    portal: state.portal,
    botId: state.botId,
    messageId: state.messageId,
    fields: desiredFields(state),
    // Its own id: replayed, it is a new request to try again, ordered by the time its edits were accepted.
    editId: `failed-${state.version}-${randomUUID()}`,
    requestedAt: new Date(last.at).toISOString(),
  };
  return {
    body: JSON.stringify(body),
    groupId: messageGroupId(state),
    // Per message and version: a replay that fails again makes a new version, so it is kept again.
    deduplicationId: `failed-${createHash('sha256')
      .update(`${messageKeyText(state)}#${state.version}`)
      .digest('hex')}`,
    errorCode: error.code,
    errorDescription: error.description,
    attempts: state.attempts + 1,
    firstRequestedAt: new Date(Number.isFinite(first) ? first : 0).toISOString(),
    editIds,
  };
}
