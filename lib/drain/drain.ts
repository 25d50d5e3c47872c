import { setTimeout as delay } from 'node:timers/promises';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { sendFailedEdits } from '../edits/failed.ts';
import { PortalCircuits } from '../pacing/circuit.ts';
import type { PortalGateway } from '../portal/gateway.ts';
import { type ApplyContext, applyEdits, type CallStats } from './apply.ts';
import { reportOutcomes } from './observe.ts';
import { type DrainOptions, normaliseDrainOptions } from './options.ts';
import { mergeEdits, parseRecords, planDecisions, settleDeadLetters, toDrainRecord } from './plan.ts';
import { DrainState } from './portal-state.ts';
import { changeVisibility, queueUrlFromArn } from './sqs.ts';
import type { FailedEdit } from './types.ts';

export interface DrainDeps {
  gateway: PortalGateway;
  sqs: SQSClient;
  options: DrainOptions;
  /** The edits queue, for visibility changes. Default: derived from each record's eventSourceARN. */
  editsQueueUrl?: string | undefined;
  /** Per-portal overload circuits. Default: 5 min doubling to 1 h. */
  circuits?: PortalCircuits;
  now?: () => number;
  random?: () => number;
  /** Waits for a rate token. Default: a timer that the signal cuts short. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface Invocation {
  /** Milliseconds left before the invocation's deadline (Lambda's `getRemainingTimeInMillis`). */
  remainingMs: () => number;
  signal?: AbortSignal | undefined;
}

export type Drain = (event: SQSEvent, invocation: Invocation) => Promise<SQSBatchResponse>;

/**
 * The deferred-edits drain for one container: options checked once, per-portal pacing and circuits
 * kept across invocations. Each invocation parses, merges, applies and settles its records, and
 * reports the ones to come back as batch item failures (their visibility set to their delay).
 */
export function createDrain(deps: DrainDeps): Drain {
  const options = normaliseDrainOptions(deps.options);
  const now = deps.now ?? Date.now;
  const state = new DrainState({ concurrency: options.maxConcurrency, apiShare: options.apiRateShare, now });
  const circuits = deps.circuits ?? new PortalCircuits({ now });
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? sleepUnlessAborted;

  return async (event, invocation) => {
    const records = event.Records.map(toDrainRecord);
    const { edits, invalid } = parseRecords(records);
    const stats: CallStats = { calls: 0, commandsPerCall: [], rateLimited: 0, circuitsOpened: [] };
    const context: ApplyContext = {
      gateway: deps.gateway,
      state,
      circuits,
      options,
      remainingMs: invocation.remainingMs,
      signal: invocation.signal,
      now,
      random,
      sleep,
      stats,
    };
    const outcomes = await applyEdits(mergeEdits(edits), context);
    const plan = planDecisions({ records, invalid, outcomes, maxAttempts: options.maxAttempts });

    const toSend = plan.deadLetters.filter((failed) =>
      failed.records.some((r) => plan.decisions.get(r.messageId)?.action === 'dead-letter'),
    );
    const sent = await sendFailedEdits(toSend, { queueUrl: options.failedEditsQueueUrl, client: deps.sqs });
    const refused = new Set<FailedEdit>(sent.refused.map(({ index }) => toSend[index] as FailedEdit));
    const decisions = settleDeadLetters(records, plan, refused, options.handBackDelayMs);

    const handBacks = event.Records.flatMap((record) => {
      const decision = decisions.get(record.messageId);
      return decision?.action === 'hand-back'
        ? [
            {
              record,
              receiptHandle: record.receiptHandle,
              messageId: record.messageId,
              delayMs: decision.delayMs,
            },
          ]
        : [];
    });
    const byQueue = Map.groupBy(
      handBacks,
      ({ record }) => deps.editsQueueUrl ?? queueUrlFromArn(record.eventSourceARN) ?? '',
    );
    for (const [queueUrl, items] of byQueue) if (queueUrl) await changeVisibility(deps.sqs, queueUrl, items);

    reportOutcomes(records, decisions, new Map(edits.map((p) => [p.record.messageId, p])), stats);
    return { batchItemFailures: handBacks.map(({ messageId }) => ({ itemIdentifier: messageId })) };
  };
}

async function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  await delay(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}
