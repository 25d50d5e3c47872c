/** The most entries one SQS batch request (SendMessageBatch, ChangeMessageVisibilityBatch) takes. */
export const SQS_BATCH_LIMIT = 10;

/** `items` in runs of at most one batch request each, with where each run starts in `items`. */
export function* sqsBatches<T>(items: readonly T[]): Generator<{ start: number; chunk: T[] }> {
  for (let start = 0; start < items.length; start += SQS_BATCH_LIMIT) {
    yield { start, chunk: items.slice(start, start + SQS_BATCH_LIMIT) };
  }
}
