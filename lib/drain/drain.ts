import { createHash } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { type Clock, systemClock } from '../clock.ts';
import { FAILED_QUEUE_UNAVAILABLE, type FailedEditMessage, sendFailedEdits } from '../edits/failed.ts';
import type { Ledger } from '../ledger/messages.ts';
import { dueAt, isDirty, type MessageState } from '../ledger/model.ts';
import type { PortalView } from '../ledger/portal-item.ts';
import { logger } from '../observability/logger.ts';
import { redeliveryDelayMs } from '../pacing/backoff.ts';
import { normaliseReconcileOptions, type ReconcileOptions } from '../reconcile/options.ts';
import { failureOf } from '../reconcile/send.ts';
import type { WakeupSender } from '../schedule/portal-queue.ts';
import { WakeSchedule } from '../schedule/wake.ts';
import { changeVisibility, queueUrlFromArn } from '../sqs/visibility.ts';
import { reportOutcomes } from './observe.ts';
import { acceptedAt, byMessage, INVALID_EDIT, incomingOf, parseRecords, toDrainRecord } from './plan.ts';
import type { DrainRecord, ParsedEdit, RecordDecision } from './types.ts';

export interface DrainDeps {
  ledger: Ledger;
  /** The failed-edits queue's client, and the edits queue's for the records handed back. */
  sqs: SQSClient;
  /** Where each touched portal's wake-up goes (the portal work queue). */
  wakeups: WakeupSender;
  options: ReconcileOptions;
  /** The edits queue, for visibility changes. Default: derived from each record's eventSourceARN. */
  editsQueueUrl?: string | undefined;
  /** Default the system clock. */
  clock?: Clock;
}

export interface Invocation {
  /** Milliseconds left before the invocation's deadline (Lambda's `getRemainingTimeInMillis`). */
  remainingMs: () => number;
  signal?: AbortSignal | undefined;
}

export type Drain = (event: SQSEvent, invocation: Invocation) => Promise<SQSBatchResponse>;

/**
 * The edits queue's drain, the ingest stage: merges each record's edit into the ledger (in queue
 * order), acknowledges every record once its merge is durable (the ledger keeps what waits), and
 * makes sure each touched portal has a wake-up due by its earliest due message. It calls no portal:
 * the portal's reconcile, woken from the portal work queue, applies what the ledger holds. Only a
 * record whose merge or wake-up could not be recorded comes back (after a short delay).
 */
export function createDrain(deps: DrainDeps): Drain {
  const clock = deps.clock ?? systemClock;
  const options = normaliseReconcileOptions(deps.options);
  const schedule = new WakeSchedule({
    portals: deps.ledger.portals,
    sender: deps.wakeups,
    clock,
    indexLagMs: options.indexLagMs,
  });

  return async (event) => {
    const records = event.Records.map(toDrainRecord);
    const { edits, invalid } = parseRecords(records);
    const ahead = edits.filter((parsed) => acceptedAt(parsed).clamped);
    if (ahead.length > 0) {
      // Not refused (the edit is good), but the producer's clock or stamps deserve a look.
      logger.warn('Edits stamped later than the queue received them count as accepted when sent', {
        count: ahead.length,
        portal: ahead[0]?.edit.portal,
        editId: ahead[0]?.edit.editId,
      });
    }
    const decisions = new Map<string, RecordDecision>();
    const handBack = (record: DrainRecord, code: string, description: string) =>
      decisions.set(record.messageId, {
        action: 'hand-back',
        code,
        description,
        delayMs: redeliveryDelayMs(record.receiveCount, options.handBackDelayMs),
      });

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

    // Merge: one read of the messages this container has not seen lately and of their portals'
    // items, then one conditional write per message; a message whose merge failed comes back whole.
    const groups = [...byMessage(edits).values()];
    const keys = groups.map((group) => (group[0] as ParsedEdit).edit);
    const views = await deps.ledger
      .prefetch(keys, [...new Set(keys.map((key) => key.portal))])
      .catch((error: unknown) => {
        // Correct without it (each merge reads what it lacks), at more requests per edit: say so.
        logger.warn('The batch read before merging failed; merging item by item', {
          reason: error instanceof Error ? error.message : String(error),
        });
        return new Map<string, PortalView>();
      });
    const merged: Array<{
      group: ParsedEdit[];
      state: MessageState;
      superseded: Set<string>;
      /** Its portal needs a wake-up made sure of: it just became dirty, or a record came again. */
      wake: boolean;
    }> = [];
    await Promise.all(
      groups.map(async (group) => {
        const first = (group[0] as ParsedEdit).edit;
        try {
          const result = await deps.ledger.merge(first, group.map(incomingOf), options.timing);
          // A record back after a failure may have left its merge without its wake-up.
          const again = group.some(({ record }) => record.receiveCount > 1);
          merged.push({
            group,
            state: result.state,
            superseded: new Set(result.superseded),
            wake: isDirty(result.state) && (result.becameDirty || again),
          });
        } catch (error) {
          const failure = failureOf(error);
          for (const { record } of group) handBack(record, failure.code, failure.description);
        }
      }),
    );

    // Schedule: one look at the item of each portal with a message newly dirty, a wake-up where
    // none is due in time. (A message already dirty had its wake-up made sure of then.)
    const byPortal = Map.groupBy(merged, ({ group }) => (group[0] as ParsedEdit).edit.portal);
    await Promise.all(
      [...byPortal].map(async ([portal, messages]) => {
        const waking = messages.filter(({ wake }) => wake);
        try {
          // Not before a call could carry what else arrives meanwhile (`batchLingerMs`).
          const due = Math.min(...waking.map(({ state }) => dueAt(state, options.timing)));
          if (waking.length > 0) {
            const view = views.get(portal);
            // A backlog's pending wake-up will do while the backlog may wait (`batchMaxWaitMs`).
            await schedule.afterMerge(portal, Math.max(due, clock.now() + options.batchLingerMs), {
              latest: Math.max(due, clock.now() + options.batchMaxWaitMs),
              seen: view,
            });
          }
        } catch (error) {
          // The edits are in the ledger, but nothing may wake their portal: the records come back.
          const failure = failureOf(error);
          logger.warn('The portal’s wake-up could not be made sure of; its records come back', {
            portal,
            code: failure.code,
          });
          for (const { group } of messages)
            for (const { record } of group) handBack(record, failure.code, failure.description);
          return;
        }
        for (const { group, state, superseded } of messages) {
          for (const { record, edit } of group) {
            decisions.set(record.messageId, {
              action: 'ack',
              outcome: superseded.has(edit.editId) ? 'superseded' : isDirty(state) ? 'recorded' : 'unchanged',
            });
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

    reportOutcomes(records, decisions, new Map(edits.map((p) => [p.record.messageId, p])));
    return { batchItemFailures: handBacks.map(({ messageId }) => ({ itemIdentifier: messageId })) };
  };
}

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
