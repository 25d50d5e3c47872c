import { SendMessageBatchCommand, type SendMessageBatchCommandOutput, SQSClient } from '@aws-sdk/client-sqs';
import { AWS_CLIENT_LIMITS } from '../aws.ts';
import { AppError } from '../errors.ts';
import { sqsBatches } from '../sqs/batches.ts';
import { messageGroupId, type QueuedEdit } from './types.ts';

/** The edits queue is not configured, or refused or failed to take an edit. */
export class QueueUnavailableError extends AppError {
  override name = 'QueueUnavailableError';
  readonly retryAfterSeconds = 5;
  constructor(message: string) {
    super('QUEUE_UNAVAILABLE', message, 503);
  }
}

export interface EnqueueOptions {
  queueUrl: string | undefined;
  /** Defaults to a client built from the environment (AWS_REGION, AWS_ENDPOINT_URL_SQS). */
  client?: SQSClient;
  /** Per-edit deduplication ids (e.g. a caller's Idempotency-Key); default the editId. */
  deduplicationIds?: ReadonlyMap<string, string>;
}

export interface EnqueueResult {
  /** editIds the queue accepted. */
  sent: string[];
  /** Edits the queue refused, with the reason SQS gave. */
  failed: Array<{ editId: string; code: string; message: string }>;
}

let defaultClient: SQSClient | undefined;

/** The SQS client built from the environment, made once per container. */
export function sqsClient(): SQSClient {
  defaultClient ??= new SQSClient(AWS_CLIENT_LIMITS);
  return defaultClient;
}

/**
 * Sends edits to the FIFO edits queue with SendMessageBatch, ten at a time. Each edit's message
 * group is its message (`portal:botId:messageId`), so edits of one message stay in order, and its
 * deduplication id is its editId, so a repeated send inside SQS's five-minute window is dropped.
 * Order is kept within each call; entries SQS refuses are reported, never silently dropped.
 */
export async function enqueueEdits(
  edits: readonly QueuedEdit[],
  options: EnqueueOptions,
): Promise<EnqueueResult> {
  const { queueUrl } = options;
  if (!queueUrl) throw new QueueUnavailableError('The edits queue is not configured (EDITS_QUEUE_URL)');
  const client = options.client ?? sqsClient();
  const result: EnqueueResult = { sent: [], failed: [] };
  for (const { chunk } of sqsBatches(edits)) {
    const entries = chunk.map((edit, i) => ({
      Id: String(i),
      MessageBody: JSON.stringify(edit),
      MessageGroupId: messageGroupId(edit),
      MessageDeduplicationId: dedupId(options.deduplicationIds?.get(edit.editId) ?? edit.editId),
    }));
    let response: SendMessageBatchCommandOutput;
    try {
      response = await client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      throw new QueueUnavailableError(`The edits queue could not be reached (${name})`);
    }
    for (const ok of response.Successful ?? []) {
      const edit = chunk[Number(ok.Id)];
      if (edit) result.sent.push(edit.editId);
    }
    for (const bad of response.Failed ?? []) {
      const edit = chunk[Number(bad.Id)];
      if (edit)
        result.failed.push({ editId: edit.editId, code: bad.Code ?? 'Unknown', message: bad.Message ?? '' });
    }
  }
  return result;
}

/** SQS allows 128 characters of [A-Za-z0-9] and punctuation; anything else is replaced. */
function dedupId(value: string): string {
  return value.replace(/[^\x21-\x7e]/g, '_').slice(0, 128);
}
