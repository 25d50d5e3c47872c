import { createHash } from 'node:crypto';
import type { SQSRecord } from 'aws-lambda';
import { coalesceEdits, type MergedEdit } from '../edits/coalesce.ts';
import type { QueuedEdit } from '../edits/types.ts';
import { parseQueuedEdit } from '../edits/validate.ts';
import type {
  DrainRecord,
  EditOutcome,
  FailedEdit,
  InvalidRecord,
  ParsedEdit,
  RecordDecision,
} from './types.ts';

export const INVALID_EDIT = 'INVALID_EDIT';
export const MAX_ATTEMPTS = 'MAX_ATTEMPTS';
export const FAILED_QUEUE_UNAVAILABLE = 'FAILED_QUEUE_UNAVAILABLE';

/** The fields of an SQS event record the drain uses. */
export function toDrainRecord(record: SQSRecord): DrainRecord {
  const attributes = record.attributes;
  const receiveCount = Number(attributes.ApproximateReceiveCount);
  const sentAt = Number(attributes.SentTimestamp);
  return {
    messageId: record.messageId,
    receiptHandle: record.receiptHandle,
    body: record.body,
    groupId: attributes.MessageGroupId ?? '',
    receiveCount: Number.isInteger(receiveCount) && receiveCount >= 1 ? receiveCount : 1,
    sentAt: Number.isFinite(sentAt) ? sentAt : Date.now(),
  };
}

/** Splits records into valid queued edits and invalid bodies, keeping queue order. */
export function parseRecords(records: readonly DrainRecord[]): {
  edits: ParsedEdit[];
  invalid: InvalidRecord[];
} {
  const edits: ParsedEdit[] = [];
  const invalid: InvalidRecord[] = [];
  for (const record of records) {
    let body: unknown;
    try {
      body = JSON.parse(record.body);
    } catch {
      invalid.push({ record, description: 'body is not JSON' });
      continue;
    }
    try {
      const edit = parseQueuedEdit(body, {
        editId: record.messageId,
        requestedAt: new Date(record.sentAt).toISOString(),
      });
      edits.push({ record, edit });
    } catch (error) {
      invalid.push({ record, description: error instanceof Error ? error.message : String(error) });
    }
  }
  return { edits, invalid };
}

/** Merges the edits of each message (portal, botId, messageId), later fields over earlier ones. */
export function mergeEdits(edits: readonly ParsedEdit[]): MergedEdit<ParsedEdit>[] {
  return coalesceEdits(edits.map((parsed) => ({ record: parsed, edit: parsed.edit })));
}

/** Highest receive count among a merged edit's records: its head has been around longest. */
export function attemptsOf(merged: MergedEdit<ParsedEdit>): number {
  return Math.max(...merged.records.map(({ record }) => record.receiveCount));
}

export interface PlanInput {
  /** Every record of the event, in queue order. */
  records: readonly DrainRecord[];
  invalid: readonly InvalidRecord[];
  outcomes: ReadonlyMap<MergedEdit<ParsedEdit>, EditOutcome>;
  maxAttempts: number;
}

export interface DrainPlan {
  /** One decision per record, by SQS message id. */
  decisions: Map<string, RecordDecision>;
  /** Messages for the failed-edits queue; their records are acknowledged only once it accepts them. */
  deadLetters: FailedEdit[];
}

/**
 * Turns outcomes into one decision per record: an applied edit acknowledges all its records (the
 * last as applied, the others as superseded); a deferred one hands them back unless their attempts
 * are spent; a failed one, an invalid body or spent attempts go to the failed-edits queue. Then
 * FIFO order is kept: after a record handed back, every later record of its group is handed back.
 */
export function planDecisions(input: PlanInput): DrainPlan {
  const decisions = new Map<string, RecordDecision>();
  const deadLetters: FailedEdit[] = [];
  for (const [merged, outcome] of input.outcomes) {
    const records = merged.records.map(({ record }) => record);
    if (outcome.kind === 'applied') {
      records.forEach((record, i) => {
        decisions.set(record.messageId, {
          action: 'ack',
          outcome: i === records.length - 1 ? 'applied' : 'superseded',
        });
      });
      continue;
    }
    const attempts = attemptsOf(merged);
    let code = outcome.code;
    let description = outcome.description;
    if (outcome.kind === 'deferred') {
      if (attempts < input.maxAttempts) {
        for (const record of records) {
          decisions.set(record.messageId, {
            action: 'hand-back',
            code,
            description,
            delayMs: outcome.delayMs,
          });
        }
        continue;
      }
      code = MAX_ATTEMPTS;
      description = `Gave up after ${attempts} attempts; the last one ended with ${outcome.code}: ${outcome.description}`;
    }
    for (const record of records)
      decisions.set(record.messageId, { action: 'dead-letter', code, description });
    deadLetters.push(failedMergedEdit(merged, code, description, attempts));
  }
  for (const { record, description } of input.invalid) {
    decisions.set(record.messageId, { action: 'dead-letter', code: INVALID_EDIT, description });
    deadLetters.push(failedInvalidRecord(record, description));
  }
  return { decisions: propagateFifo(input.records, decisions), deadLetters };
}

/**
 * Once a record of a message group is handed back, every later record of that group in the batch
 * is handed back too, with the same delay, so that the group comes back in order.
 */
export function propagateFifo(
  records: readonly DrainRecord[],
  decisions: Map<string, RecordDecision>,
): Map<string, RecordDecision> {
  const blocked = new Map<string, { by: string; code: string; delayMs: number }>();
  for (const record of records) {
    const decision = decisions.get(record.messageId);
    const blocker = blocked.get(record.groupId);
    if (blocker && decision?.action !== 'hand-back') {
      decisions.set(record.messageId, {
        action: 'hand-back',
        code: blocker.code,
        description: `An earlier record of message group ${record.groupId} was handed back`,
        delayMs: blocker.delayMs,
        blockedBy: blocker.by,
      });
      continue;
    }
    if (decision === undefined) {
      // A record no outcome covers is a bug upstream; handing it back loses nothing.
      decisions.set(record.messageId, {
        action: 'hand-back',
        code: 'NOT_PLANNED',
        description: 'The drain reached no decision for this record',
        delayMs: 0,
      });
    }
    const settled = decisions.get(record.messageId);
    if (settled?.action === 'hand-back' && !blocker) {
      blocked.set(record.groupId, { by: record.messageId, code: settled.code, delayMs: settled.delayMs });
    }
  }
  return decisions;
}

/**
 * After the failed-edits queue answered: records of accepted messages are acknowledged, those of
 * refused ones handed back after `delayMs` (and FIFO order propagated again).
 */
export function settleDeadLetters(
  records: readonly DrainRecord[],
  plan: DrainPlan,
  refused: ReadonlySet<FailedEdit>,
  delayMs: number,
): Map<string, RecordDecision> {
  const { decisions } = plan;
  for (const failed of plan.deadLetters) {
    for (const record of failed.records) {
      const decision = decisions.get(record.messageId);
      if (decision?.action !== 'dead-letter') continue;
      decisions.set(
        record.messageId,
        refused.has(failed)
          ? {
              action: 'hand-back',
              code: FAILED_QUEUE_UNAVAILABLE,
              description: `The failed-edits queue did not accept the edit (it failed with ${decision.code})`,
              delayMs,
            }
          : { action: 'ack', outcome: 'failed', code: decision.code },
      );
    }
  }
  return propagateFifo(records, decisions);
}

function failedMergedEdit(
  merged: MergedEdit<ParsedEdit>,
  errorCode: string,
  errorDescription: string,
  attempts: number,
): FailedEdit {
  const last = merged.records[merged.records.length - 1]?.edit as QueuedEdit;
  const body: QueuedEdit = {
    portal: merged.portal,
    botId: merged.botId,
    messageId: merged.messageId,
    fields: merged.fields,
    editId: merged.lastEditId,
    requestedAt: last.requestedAt,
  };
  return {
    records: merged.records.map(({ record }) => record),
    body: JSON.stringify(body),
    groupId: merged.records[0]?.record.groupId || merged.groupId,
    deduplicationId: `edits-${digest(merged.editIds.join('\n'))}`,
    errorCode,
    errorDescription,
    attempts,
    firstRequestedAt: merged.firstRequestedAt,
    editIds: merged.editIds,
  };
}

function failedInvalidRecord(record: DrainRecord, description: string): FailedEdit {
  return {
    records: [record],
    body: record.body,
    groupId: record.groupId || 'invalid',
    deduplicationId: `invalid-${digest(record.messageId)}`,
    errorCode: INVALID_EDIT,
    errorDescription: description,
    attempts: record.receiveCount,
    firstRequestedAt: new Date(record.sentAt).toISOString(),
    editIds: [record.messageId],
  };
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
