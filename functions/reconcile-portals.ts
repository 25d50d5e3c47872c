import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { sqsClient } from '../lib/edits/queue.ts';
import { logContext } from '../lib/observability/context.ts';
import type { Reconciler } from '../lib/reconcile/reconcile.ts';
import { reconcileWakeups } from '../lib/reconcile/wakeups.ts';
import { getRuntime } from '../lib/runtime.ts';

export interface ReconcileDeps {
  reconciler: Reconciler;
  sqs: import('@aws-sdk/client-sqs').SQSClient;
  /** The portal work queue, for wake-ups handed back. Default: derived from each record's ARN. */
  queueUrl?: string | undefined;
}

/** The reconciler and the portal work queue from the environment (STATE_TABLE_NAME, PORTAL_QUEUE_URL, …). */
export function defaultDeps(): ReconcileDeps {
  const { config, reconciler } = getRuntime();
  return { reconciler: reconciler(), sqs: sqsClient(), queueUrl: config.portalQueueUrl };
}

/**
 * The portal work queue's consumer (standard SQS, ReportBatchItemFailures): reconciles the woken
 * portals in parallel. Dependencies are made on the first invocation.
 */
export function createHandler(deps: ReconcileDeps | (() => ReconcileDeps)) {
  let resolved: ReconcileDeps | undefined;
  return middy<SQSEvent, SQSBatchResponse, Error, Context>({ timeoutEarlyInMillis: 200 })
    .use(logContext())
    .handler((event, context, { signal }) => {
      resolved ??= typeof deps === 'function' ? deps() : deps;
      return reconcileWakeups(
        event.Records,
        { remainingMs: () => context.getRemainingTimeInMillis(), signal },
        resolved,
      );
    });
}

export const handler = createHandler(defaultDeps);
