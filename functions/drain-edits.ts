import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createDrain, type Drain, type DrainDeps } from '../lib/drain/index.ts';
import { sqsClient } from '../lib/edits/queue.ts';
import { logContext } from '../lib/observability/context.ts';
import { getRuntime } from '../lib/runtime.ts';

/** The drain's dependencies from the environment (EDITS_QUEUE_URL, FAILED_EDITS_QUEUE_URL, MAX_ATTEMPTS, …). */
export function defaultDeps(): DrainDeps {
  const { config, gateway, ledger, reconcileOptions } = getRuntime();
  return {
    gateway,
    ledger: ledger(),
    sqs: sqsClient(),
    editsQueueUrl: config.editsQueueUrl,
    options: reconcileOptions,
  };
}

/**
 * SQS FIFO event source with ReportBatchItemFailures. Dependencies are resolved on the first
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
