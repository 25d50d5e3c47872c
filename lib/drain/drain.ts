import { createHash } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { type Clock, systemClock } from '../clock.ts';
import { type FailedEditMessage, sendFailedEdits } from '../edits/failed.ts';
import { type MessageState, messageKeyText } from '../ledger/model.ts';
import type { Ledger } from '../ledger/store.ts';
import { logger } from '../observability/logger.ts';
import type { PortalCircuits } from '../pacing/circuit.ts';
import type { PortalGateway } from '../portal/gateway.ts';
import type { ReconcileOptions } from '../reconcile/options.ts';
import { LEASE_HELD, type ReconcileFate, Reconciler } from '../reconcile/reconcile.ts';
import { type CallStats, emptyStats, failureOf } from '../reconcile/send.ts';
import { reportOutcomes } from './observe.ts';
import { byMessage, decideRecords, INVALID_EDIT, incomingOf, parseRecords, toDrainRecord } from './plan.ts';
import { changeVisibility, queueUrlFromArn } from './sqs.ts';
import type { DrainRecord, ParsedEdit, RecordDecision } from './types.ts';

export const FAILED_QUEUE_UNAVAILABLE = 'FAILED_QUEUE_UNAVAILABLE';

export interface DrainDeps {
  gateway: PortalGateway;
  ledger: Ledger;
  sqs: SQSClient;
  options: ReconcileOptions;
  /** The edits queue, for visibility changes. Default: derived from each record's eventSourceARN. */
  editsQueueUrl?: string | undefined;
  /** Per-portal overload circuits. Default: 5 min doubling to 1 h. */
  circuits?: PortalCircuits;
  /** Reads the time and waits for rate tokens and the linger. Default the system clock. */
  clock?: Clock;
  random?: () => number;
}

export interface Invocation {
  /** Milliseconds left before the invocation's deadline (Lambda's `getRemainingTimeInMillis`). */
  remainingMs: () => number;
  signal?: AbortSignal | undefined;
}

export type Drain = (event: SQSEvent, invocation: Invocation) => Promise<SQSBatchResponse>;

/**
 * The edits queue's drain for one container. Each invocation merges its records into the ledger
 * (in queue order), reconciles the portals it touched (filling calls from their dirty sets), and
 * settles its records: acknowledged once their edits are durable in the ledger, except one record per
 * message still waiting, which comes back after the message's delay as its retry signal.
 */
export function createDrain(deps: DrainDeps): Drain {
  const clock = deps.clock ?? systemClock;
  const now = () => clock.now();
  const reconciler = new Reconciler({
    ledger: deps.ledger,
    gateway: deps.gateway,
    sqs: deps.sqs,
    options: deps.options,
    clock,
    ...(deps.circuits ? { circuits: deps.circuits } : {}),
    ...(deps.random ? { random: deps.random } : {}),
  });
  const options = reconciler.options;
  const delays = { minDelayMs: options.handBackDelayMs, maxDelayMs: options.maxDeferralMs };

  return async (event, invocation) => {
    const records = event.Records.map(toDrainRecord);
    const { edits, invalid } = parseRecords(records);
    const stats = emptyStats();
    const decisions = new Map<string, RecordDecision>();
    const handBack = (
      record: DrainRecord,
      code: string,
      description: string,
      delayMs = options.handBackDelayMs,
    ) => decisions.set(record.messageId, { action: 'hand-back', code, description, delayMs });

    if (invalid.length > 0) {
      const sent = await sendFailedEdits(
        invalid.map(({ record, description }) => failedInvalidRecord(record, description)),
        { queueUrl: options.failedEditsQueueUrl, client: deps.sqs },
      );
      const refused = new Set(sent.refused.map(({ index }) => index));
      invalid.forEach(({ record }, index) => {
        if (refused.has(index))
          handBack(
            record,
            FAILED_QUEUE_UNAVAILABLE,
            'The failed-edits queue did not accept the invalid edit',
          );
        else decisions.set(record.messageId, { action: 'ack', outcome: 'failed', code: INVALID_EDIT });
      });
    }

    // Merge: one conditional write per message; a message whose merge failed comes back whole.
    const messages = byMessage(edits);
    const merged: ParsedEdit[][] = [];
    const states: MessageState[] = [];
    const mergedAt = now();
    await Promise.all(
      [...messages.values()].map(async (group) => {
        const first = (group[0] as ParsedEdit).edit;
        try {
          states.push((await reconciler.merge(first, group.map(incomingOf))).state);
          merged.push(group);
        } catch (error) {
          const failure = failureOf(error);
          for (const { record } of group) handBack(record, failure.code, failure.description);
        }
      }),
    );

    // Reconcile each touched portal; one portal's failure never touches another's records.
    const byPortal = Map.groupBy(merged, (group) => (group[0] as ParsedEdit).edit.portal);
    await Promise.all(
      [...byPortal].map(async ([portal, groups]) => {
        let fates: Map<string, ReconcileFate>;
        try {
          const report = await reconciler.reconcilePortal(portal, {
            hints: groups.map((group) => (group[0] as ParsedEdit).edit),
            mode: 'fill',
            remainingMs: invocation.remainingMs,
            signal: invocation.signal,
            stats,
            known: states.filter((state) => state.portal === portal),
            knownAt: mergedAt,
          });
          fates = report.fates;
        } catch (error) {
          const failure = failureOf(error);
          logger.error('Reconciling a portal failed; its edits are kept in the ledger', {
            portal,
            code: failure.code,
          });
          fates = new Map();
          for (const group of groups) {
            fates.set(messageKeyText((group[0] as ParsedEdit).edit), {
              kind: 'held',
              code: failure.code,
              description: failure.description,
              delayMs: options.handBackDelayMs,
            });
          }
        }
        // A portal leased elsewhere keeps one record in flight as its re-check signal, not one per
        // message: a record held back blocks its message group in a FIFO queue.
        let signalled = false;
        for (const group of groups.toReversed()) {
          const fate =
            fates.get(messageKeyText((group[0] as ParsedEdit).edit)) ?? unknownFate(options.handBackDelayMs);
          for (const [id, decision] of decideRecords(group, fate, now(), delays)) {
            const leased =
              fate.kind === 'held' && fate.code === LEASE_HELD && decision.action === 'hand-back';
            decisions.set(id, leased && signalled ? { action: 'ack', outcome: 'recorded' } : decision);
            if (leased) signalled = true;
          }
        }
      }),
    );

    const handBacks = event.Records.flatMap((record) => {
      const decision = decisions.get(record.messageId) ?? {
        action: 'hand-back' as const,
        code: 'NOT_PLANNED',
        description: 'The drain reached no decision for this record',
        delayMs: options.handBackDelayMs,
      };
      decisions.set(record.messageId, decision);
      return decision.action === 'hand-back'
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

function unknownFate(delayMs: number): ReconcileFate {
  return {
    kind: 'held',
    code: 'NOT_REPORTED',
    description: 'The reconciler reported nothing for this message',
    delayMs,
  };
}

export type { CallStats };

function failedInvalidRecord(record: DrainRecord, description: string): FailedEditMessage {
  return {
    body: record.body,
    groupId: record.groupId || 'invalid',
    deduplicationId: `invalid-${createHash('sha256').update(record.messageId).digest('hex')}`,
    errorCode: INVALID_EDIT,
    errorDescription: description,
    attempts: record.receiveCount,
    firstRequestedAt: new Date(record.sentAt).toISOString(),
    editIds: [record.messageId],
  };
}
