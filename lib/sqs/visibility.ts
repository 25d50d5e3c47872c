import { ChangeMessageVisibilityBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { logger } from '../observability/logger.ts';
import { sqsBatches } from './batches.ts';

// Records an SQS event source hands back (the drain's edits, the reconcile's wake-ups) come again
// after a delay of their own: their visibility timeout, set before the batch's failures are reported.

/** SQS's longest visibility timeout: 12 hours. */
export const MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200;

/** A delay in ms as an SQS visibility timeout: whole seconds rounded up, within 0..43200. */
export function toVisibilityTimeoutSeconds(ms: number): number {
  if (Number.isNaN(ms)) throw new RangeError('Expected ms to be a number, got NaN');
  return Math.min(MAX_VISIBILITY_TIMEOUT_SECONDS, Math.max(0, Math.ceil(ms / 1000)));
}

/** `arn:aws:sqs:eu-west-1:123456789012:edits.fifo` → `https://sqs.eu-west-1.amazonaws.com/123456789012/edits.fifo`. */
export function queueUrlFromArn(arn: string): string | undefined {
  const match = /^arn:[\w-]+:sqs:([\w-]+):(\d+):(.+)$/.exec(arn);
  return match ? `https://sqs.${match[1]}.amazonaws.com/${match[2]}/${match[3]}` : undefined;
}

/**
 * Sets each handed-back record's visibility timeout to its delay, ten at a time. A failure is
 * logged, not thrown: the record is reported failed anyway and returns after the queue's own timeout.
 */
export async function changeVisibility(
  client: SQSClient,
  queueUrl: string,
  items: ReadonlyArray<{ receiptHandle: string; delayMs: number; messageId: string }>,
): Promise<number> {
  let changed = 0;
  for (const { chunk } of sqsBatches(items)) {
    try {
      const response = await client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((item, i) => ({
            Id: String(i),
            ReceiptHandle: item.receiptHandle,
            VisibilityTimeout: toVisibilityTimeoutSeconds(item.delayMs),
          })),
        }),
      );
      changed += response.Successful?.length ?? 0;
      for (const bad of response.Failed ?? []) {
        logger.warn('Could not set the visibility of a handed-back record', {
          sqsMessageId: chunk[Number(bad.Id)]?.messageId,
          code: bad.Code,
        });
      }
    } catch (error) {
      logger.warn('Could not set the visibility of handed-back records', {
        count: chunk.length,
        error: error instanceof Error ? error.name : String(error),
      });
    }
  }
  return changed;
}
