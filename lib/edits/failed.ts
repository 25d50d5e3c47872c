import {
  DeleteMessageBatchCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { maskSecretValues, redactString } from '../observability/redact.ts';
import { sqsBatches } from '../sqs/batches.ts';
import { changeVisibility } from '../sqs/visibility.ts';
import { sqsClient } from './queue.ts';

/** The failed-edits queue did not take an edit that failed for good: it stays in the ledger, and comes back. */
export const FAILED_QUEUE_UNAVAILABLE = 'FAILED_QUEUE_UNAVAILABLE';

/** One message for the failed-edits queue (the DLQ of the edits queue). */
export interface FailedEditMessage {
  /** The (merged) edit as a queue body, ready to be sent back; or an invalid body verbatim. */
  body: string;
  /** The edit's message group in the edits queue. */
  groupId: string;
  deduplicationId: string;
  /** Why it failed: a Bitrix24 code, INVALID_EDIT, MAX_ATTEMPTS, PORTAL_NOT_FOUND, … */
  errorCode: string;
  errorDescription: string;
  /** Receives of the edit before it was given up. */
  attempts: number;
  /** ISO 8601 time its first edit was accepted. */
  firstRequestedAt: string;
  /** Edit ids merged into it, in queue order. */
  editIds: readonly string[];
}

export interface SendFailedResult {
  /** Indexes (into the input) of the messages the queue accepted. */
  accepted: number[];
  /** Messages it did not take, with the reason. */
  refused: Array<{ index: number; code: string; message: string }>;
}

const MAX_ATTRIBUTE_CHARS = 4_000;

/**
 * Sends failed edits to the failed-edits FIFO queue with their reason as message attributes
 * (`errorCode`, `errorDescription`, `attempts`, `firstRequestedAt`, `editIds`), in their own
 * message group, ten at a time. Never throws for a queue failure: what was not accepted is reported.
 */
export async function sendFailedEdits(
  messages: readonly FailedEditMessage[],
  options: { queueUrl: string; client?: SQSClient },
): Promise<SendFailedResult> {
  const client = options.client ?? sqsClient();
  const result: SendFailedResult = { accepted: [], refused: [] };
  for (const { start, chunk } of sqsBatches(messages)) {
    try {
      const response = await client.send(
        new SendMessageBatchCommand({
          QueueUrl: options.queueUrl,
          Entries: chunk.map((message, i) => ({
            Id: String(start + i),
            // The last guard: a credential quoted upstream, or sent by a producer, is not kept here.
            MessageBody: maskSecretValues(message.body),
            MessageGroupId: message.groupId,
            MessageDeduplicationId: message.deduplicationId.slice(0, 128),
            MessageAttributes: attributesOf(message),
          })),
        }),
      );
      for (const ok of response.Successful ?? []) result.accepted.push(Number(ok.Id));
      for (const bad of response.Failed ?? []) {
        result.refused.push({
          index: Number(bad.Id),
          code: bad.Code ?? 'Unknown',
          message: bad.Message ?? '',
        });
      }
    } catch (error) {
      const code = error instanceof Error ? error.name : 'Error';
      chunk.forEach((_, i) => {
        result.refused.push({
          index: start + i,
          code,
          message: 'The failed-edits queue could not be reached',
        });
      });
    }
  }
  return result;
}

function attributesOf(message: FailedEditMessage): Record<string, MessageAttributeValue> {
  const text = (value: string) => ({
    DataType: 'String',
    StringValue: redactString(value).slice(0, MAX_ATTRIBUTE_CHARS) || '-',
  });
  return {
    errorCode: text(message.errorCode),
    errorDescription: text(message.errorDescription),
    attempts: { DataType: 'Number', StringValue: String(message.attempts) },
    firstRequestedAt: text(message.firstRequestedAt),
    editIds: text(message.editIds.join(',')),
  };
}

/** A failed edit as read back from the failed-edits queue. */
export interface ReadFailedEdit {
  body: string;
  groupId: string;
  errorCode: string;
  errorDescription: string;
  attempts: number;
  firstRequestedAt: string;
}

export interface ReplayOptions {
  failedQueueUrl: string;
  editsQueueUrl: string;
  client?: SQSClient;
  /** Which failed edits to send back. Default: all but INVALID_EDIT (those would only fail again). */
  include?: (edit: ReadFailedEdit) => boolean;
  /** Stop after this many messages read. Default 1000. */
  maxMessages?: number;
  /**
   * How long a message read stays hidden while the run pages on, should the run die midway.
   * Default 60 s. What the run does not move is visible again when it ends.
   */
  visibilityTimeoutSeconds?: number;
}

/**
 * Moves failed edits back to the edits queue after their cause is fixed: each one is sent in its
 * message group with a new deduplication id (`replay-<failed message id>`, so running the replay
 * twice within five minutes does not send it twice) and deleted from the failed-edits queue only
 * once the edits queue accepted it. A replayed edit queues behind edits accepted since it failed.
 */
export async function replayFailedEdits(options: ReplayOptions): Promise<{ replayed: number; kept: number }> {
  const client = options.client ?? sqsClient();
  // What the run reads but does not move stays hidden while it pages on (a FIFO queue hands out a
  // group's next message only while its first is in flight), and is visible again when it ends.
  const left: Message[] = [];
  try {
    return await replayPages(options, client, left);
  } finally {
    if (left.length > 0) {
      await changeVisibility(
        client,
        options.failedQueueUrl,
        left.map((message) => ({
          receiptHandle: message.ReceiptHandle ?? '',
          messageId: message.MessageId ?? '',
          delayMs: 0,
        })),
      );
    }
  }
}

async function replayPages(
  options: ReplayOptions,
  client: SQSClient,
  left: Message[],
): Promise<{ replayed: number; kept: number }> {
  const include = options.include ?? ((edit: ReadFailedEdit) => edit.errorCode !== 'INVALID_EDIT');
  const maxMessages = options.maxMessages ?? 1_000;
  let replayed = 0;
  let kept = 0;
  while (replayed + kept < maxMessages) {
    const { Messages: messages = [] } = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: options.failedQueueUrl,
        MaxNumberOfMessages: Math.min(10, maxMessages - replayed - kept),
        VisibilityTimeout: options.visibilityTimeoutSeconds ?? 60,
        MessageSystemAttributeNames: ['MessageGroupId'],
        MessageAttributeNames: ['All'],
      }),
    );
    if (messages.length === 0) break;
    const chosen = messages.filter((message) => {
      const attrs = message.MessageAttributes ?? {};
      const read: ReadFailedEdit = {
        body: message.Body ?? '',
        groupId: message.Attributes?.MessageGroupId ?? 'replay',
        errorCode: attrs.errorCode?.StringValue ?? '',
        errorDescription: attrs.errorDescription?.StringValue ?? '',
        attempts: Number(attrs.attempts?.StringValue ?? 0),
        firstRequestedAt: attrs.firstRequestedAt?.StringValue ?? '',
      };
      return include(read);
    });
    kept += messages.length - chosen.length;
    left.push(...messages.filter((message) => !chosen.includes(message)));
    if (chosen.length === 0) continue;
    const sent = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: options.editsQueueUrl,
        Entries: chosen.map((message, i) => ({
          Id: String(i),
          MessageBody: message.Body ?? '',
          MessageGroupId: message.Attributes?.MessageGroupId ?? 'replay',
          MessageDeduplicationId: `replay-${message.MessageId ?? i}`.slice(0, 128),
        })),
      }),
    );
    const done = (sent.Successful ?? []).map((ok) => chosen[Number(ok.Id)]).filter((m) => m !== undefined);
    kept += chosen.length - done.length;
    left.push(...chosen.filter((message) => !done.includes(message)));
    if (done.length > 0) {
      await client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: options.failedQueueUrl,
          Entries: done.map((message, i) => ({ Id: String(i), ReceiptHandle: message.ReceiptHandle ?? '' })),
        }),
      );
    }
    replayed += done.length;
  }
  return { replayed, kept };
}
