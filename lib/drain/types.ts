import type { FailedEditMessage } from '../edits/failed.ts';
import type { QueuedEdit } from '../edits/types.ts';

/** One SQS record as the drain needs it. */
export interface DrainRecord {
  /** SQS message id: the `itemIdentifier` of a batch item failure. */
  messageId: string;
  receiptHandle: string;
  body: string;
  /** MessageGroupId (FIFO); '' when the queue gave none. */
  groupId: string;
  /** ApproximateReceiveCount: 1 on the first delivery. */
  receiveCount: number;
  /** SentTimestamp in ms. */
  sentAt: number;
}

/** A record whose body is a valid queued edit. */
export interface ParsedEdit {
  record: DrainRecord;
  edit: QueuedEdit;
}

/** A record whose body is not a valid queued edit. */
export interface InvalidRecord {
  record: DrainRecord;
  description: string;
}

/** What became of one merged edit (all its records share it). */
export type EditOutcome =
  | { kind: 'applied' }
  /** Try again after `delayMs`; `code` says why (a Bitrix24 code, or DEADLINE / RATE_PACED). */
  | { kind: 'deferred'; code: string; description: string; delayMs: number }
  /** Waiting cannot help: the edit goes to the failed-edits queue. */
  | { kind: 'failed'; code: string; description: string };

/** What to do with one SQS record. */
export type RecordDecision =
  /** Delete it: applied, superseded by a later edit of its message that was applied, or dead-lettered. */
  | { action: 'ack'; outcome: 'applied' | 'superseded' | 'failed'; code?: string }
  /** Send it (as part of `deadLetter`) to the failed-edits queue, and delete it once that is accepted. */
  | { action: 'dead-letter'; code: string; description: string }
  /** Report it failed with its visibility set to `delayMs`; `blockedBy` names the earlier record of its group. */
  | { action: 'hand-back'; code: string; description: string; delayMs: number; blockedBy?: string };

/** One message for the failed-edits queue, with the drain records it settles (in queue order). */
export interface FailedEdit extends FailedEditMessage {
  records: DrainRecord[];
}
