import { ChangeMessageVisibilityBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { logger } from '../observability/logger.ts';
import { toVisibilityTimeoutSeconds } from '../pacing/backoff.ts';

// Records an SQS event source hands back (the drain's edits, the reconcile's wake-ups) come again
// after a delay of their own: their visibility timeout, set before the batch's failures are reported.

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
  for (let start = 0; start < items.length; start += 10) {
    const chunk = items.slice(start, start + 10);
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
