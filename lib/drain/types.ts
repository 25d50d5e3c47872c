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
  /** The FIFO SequenceNumber (a decimal string): queue order within a message group; '' without one. */
  sequenceNumber: string;
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

/** What to do with one SQS record. */
export type RecordDecision =
  /**
   * Delete it: its edit is `recorded` in the ledger (its message waits for its portal's wake-up),
   * `superseded` by an edit accepted later, `unchanged` (the message already wants and shows it), or
   * `failed` for good with its reason on the failed-edits queue.
   */
  | { action: 'ack'; outcome: 'recorded' | 'superseded' | 'unchanged' | 'failed'; code?: string }
  /** Report it failed with its visibility set to `delayMs`: its merge or wake-up was not recorded. */
  | { action: 'hand-back'; code: string; description: string; delayMs: number };
