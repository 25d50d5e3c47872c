import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createDrain, type Drain, type DrainDeps } from '../lib/drain/index.ts';
import { sqsClient } from '../lib/edits/queue.ts';
import { logContext } from '../lib/observability/context.ts';
import { getRuntime } from '../lib/runtime.ts';

/** The drain's dependencies from the environment (EDITS_QUEUE_URL, PORTAL_QUEUE_URL, STATE_TABLE_NAME, …). */
export function defaultDeps(): DrainDeps {
  const { config, clock, ledger, reconcileOptions, wakeups } = getRuntime();
  return {
    clock,
    ledger: ledger(),
    sqs: sqsClient(),
    wakeups,
    editsQueueUrl: config.editsQueueUrl,
    options: reconcileOptions,
  };
}

/**
 * SQS FIFO event source with ReportBatchItemFailures: merges each record and wakes its portal. Dependencies are resolved on the first
 * invocation (a configuration error then fails that invocation loudly, and nothing is deleted).
 */
export function createHandler(deps: DrainDeps | (() => DrainDeps)) {
  let drain: Drain | undefined;
  return middy<SQSEvent, SQSBatchResponse, Error, Context>({ timeoutEarlyInMillis: 200 })
    .use(logContext())
    .handler((event, context, { signal }) => {
      drain ??= createDrain(typeof deps === 'function' ? deps() : deps);
      return drain(event, { remainingMs: () => context.getRemainingTimeInMillis(), signal });
    });
}

export const handler = createHandler(defaultDeps);
