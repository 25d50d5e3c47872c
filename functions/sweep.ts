import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { sqsClient } from '../lib/edits/queue.ts';
import { logContext } from '../lib/observability/context.ts';
import { Reconciler } from '../lib/reconcile/reconcile.ts';
import { type SweepSummary, sweep } from '../lib/reconcile/sweep.ts';
import { getRuntime } from '../lib/runtime.ts';

/** The sweep's reconciler from the environment (STATE_TABLE_NAME, FAILED_EDITS_QUEUE_URL, …). */
export function defaultReconciler(): Reconciler {
  const { gateway, ledger, reconcileOptions } = getRuntime();
  return new Reconciler({ ledger: ledger(), gateway, sqs: sqsClient(), options: reconcileOptions });
}

/**
 * Scheduled every minute: reconciles every portal with dirty messages due. The reconciler is made
 * on the first invocation (a configuration error fails that invocation loudly) and kept after.
 */
export function createHandler(make: () => Reconciler) {
  let reconciler: Reconciler | undefined;
  return middy<unknown, SweepSummary, Error, Context>({ timeoutEarlyInMillis: 200 })
    .use(logContext())
    .handler((_event, context, { signal }) => {
      reconciler ??= make();
      return sweep(reconciler, { remainingMs: () => context.getRemainingTimeInMillis(), signal });
    });
}

export const handler = createHandler(defaultReconciler);
