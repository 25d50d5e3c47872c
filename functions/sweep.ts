import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { LedgerTable } from '../lib/ledger/access.ts';
import { logContext } from '../lib/observability/context.ts';
import { logger } from '../lib/observability/logger.ts';
import { MetricUnit, metrics } from '../lib/observability/metrics.ts';
import { getRuntime } from '../lib/runtime.ts';
import type { WakeupSender } from '../lib/schedule/portal-queue.ts';
import { type SweepSummary, sweep } from '../lib/schedule/sweep.ts';

export interface SweepDeps {
  table: LedgerTable;
  sender: WakeupSender;
}

/** The sweep's table and wake-up queue from the environment (STATE_TABLE_NAME, PORTAL_QUEUE_URL). */
export function defaultDeps(): SweepDeps {
  const { ledger, wakeups } = getRuntime();
  return { table: ledger().table, sender: wakeups };
}

/**
 * Scheduled every minute: wakes every portal whose wake-up is overdue (lost, never sent, or its
 * holder died). Dependencies are made on the first invocation (a configuration error fails that
 * invocation loudly) and kept after.
 */
export function createHandler(make: () => SweepDeps) {
  let deps: SweepDeps | undefined;
  return middy<unknown, SweepSummary, Error, Context>({ timeoutEarlyInMillis: 200 })
    .use(logContext())
    .handler(async () => {
      deps ??= make();
      const summary = await sweep(deps);
      metrics.addMetric('SweepOverdue', MetricUnit.Count, summary.overdue);
      metrics.addMetric('SweepWoken', MetricUnit.Count, summary.woken);
      metrics.publishStoredMetrics();
      logger.info('Sweep done', { ...summary });
      return summary;
    });
}

export const handler = createHandler(defaultDeps);
