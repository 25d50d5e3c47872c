import type { SQSRecord } from 'aws-lambda';
import { messageGroupId } from '../edits/types.ts';
import { parseQueuedEdit } from '../edits/validate.ts';
import type { IncomingEdit } from '../ledger/model.ts';
import type { DrainRecord, InvalidRecord, ParsedEdit } from './types.ts';

export const INVALID_EDIT = 'INVALID_EDIT';

/** The fields of an SQS event record the drain uses. */
export function toDrainRecord(record: SQSRecord): DrainRecord {
  const attributes = record.attributes;
  const receiveCount = Number(attributes.ApproximateReceiveCount);
  const sentAt = Number(attributes.SentTimestamp);
  const sequence = attributes.SequenceNumber;
  return {
    messageId: record.messageId,
    receiptHandle: record.receiptHandle,
    body: record.body,
    groupId: attributes.MessageGroupId ?? '',
    receiveCount: Number.isInteger(receiveCount) && receiveCount >= 1 ? receiveCount : 1,
    sentAt: Number.isFinite(sentAt) ? sentAt : Date.now(),
    sequenceNumber: typeof sequence === 'string' && /^\d+$/.test(sequence) ? sequence : '',
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
      // The group orders the message's edits: a record in another message's group would be applied
      // out of order with its own message's edits (and could be used to jump another group's queue).
      const expected = messageGroupId(edit);
      if (record.groupId !== '' && record.groupId !== expected) {
        invalid.push({
          record,
          description: `MessageGroupId "${record.groupId}" does not match the body's message: it must be "${expected}" (<portal>:<botId>:<messageId>)`,
        });
        continue;
      }
      edits.push({ record, edit });
    } catch (error) {
      invalid.push({ record, description: error instanceof Error ? error.message : String(error) });
    }
  }
  return { edits, invalid };
}

/**
 * When a queued edit counts as accepted: its `requestedAt` (the producer's stamp, or the
 * SentTimestamp for producers that send none), but never later than SQS received it. A stamp from
 * a producer whose clock runs ahead (or a typo: 2099) would otherwise win over every edit accepted
 * after it, and the message would ignore them. Earlier stamps stand (a replayed failed edit keeps
 * its first request's time, so it never overrides what was accepted since).
 */
export function acceptedAt({ record, edit }: ParsedEdit): { at: number; clamped: boolean } {
  const stamped = Date.parse(edit.requestedAt);
  return stamped > record.sentAt ? { at: record.sentAt, clamped: true } : { at: stamped, clamped: false };
}

/** A queued edit as the ledger merges it: accepted at `acceptedAt`, ties broken by the FIFO sequence number. */
export function incomingOf(parsed: ParsedEdit): IncomingEdit {
  const { record, edit } = parsed;
  return {
    portal: edit.portal,
    botId: edit.botId,
    messageId: edit.messageId,
    fields: edit.fields,
    editId: edit.editId,
    at: acceptedAt(parsed).at,
    seq: record.sequenceNumber,
  };
}

/** The edits of the event by message (queue order kept inside each). */
export function byMessage(edits: readonly ParsedEdit[]): Map<string, ParsedEdit[]> {
  return Map.groupBy(edits, ({ edit }) => messageGroupId(edit));
}
