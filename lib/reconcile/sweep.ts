import { logger } from '../observability/logger.ts';
import { MetricUnit, metrics } from '../observability/metrics.ts';
import { mapWithConcurrency } from '../status/sources.ts';
import type { Reconciler } from './reconcile.ts';
import { type CallStats, emptyStats, failureOf } from './send.ts';

export interface SweepSummary {
  /** Portals that had dirty messages. */
  portals: number;
  /** Portals whose lease another reconciler held (it applies their messages). */
  leaseHeld: number;
  /** Portals whose reconcile failed (logged; the next sweep tries again). */
  failedPortals: number;
  applied: number;
  pending: number;
  failed: number;
  calls: number;
}

/** Portals reconciled at once by one sweep. */
const SWEEP_CONCURRENCY = 8;

/**
 * The safety net of convergence: reconciles every portal that has dirty messages due, whether or
 * not a queue record for them survived. One portal's failure never stops another's reconcile.
 */
export async function sweep(
  reconciler: Reconciler,
  invocation: { remainingMs: () => number; signal?: AbortSignal | undefined },
): Promise<SweepSummary> {
  const portals = await reconciler.ledger.dirtyPortals();
  const stats: CallStats = emptyStats();
  const summary: SweepSummary = {
    portals: portals.length,
    leaseHeld: 0,
    failedPortals: 0,
    applied: 0,
    pending: 0,
    failed: 0,
    calls: 0,
  };
  await mapWithConcurrency(portals, SWEEP_CONCURRENCY, async (portal) => {
    try {
      const report = await reconciler.reconcilePortal(portal, {
        hints: [],
        mode: 'fill',
        remainingMs: invocation.remainingMs,
        signal: invocation.signal,
        stats,
      });
      if (report.leaseHeld) summary.leaseHeld += 1;
      for (const fate of report.fates.values()) {
        if (fate.kind === 'applied') summary.applied += 1;
        else if (fate.kind === 'failed') summary.failed += 1;
        else summary.pending += 1;
      }
    } catch (error) {
      summary.failedPortals += 1;
      const { code, description } = failureOf(error);
      logger.error('Sweep could not reconcile a portal; the next sweep tries again', {
        portal,
        code,
        description,
      });
    }
  });
  summary.calls = stats.calls;
  metrics.addMetric('SweepPortals', MetricUnit.Count, summary.portals);
  metrics.addMetric('EditsApplied', MetricUnit.Count, summary.applied);
  metrics.addMetric('BitrixCalls', MetricUnit.Count, stats.calls);
  for (const n of stats.commandsPerCall) metrics.addMetric('CommandsPerCall', MetricUnit.Count, n);
  metrics.publishStoredMetrics();
  logger.info('Sweep done', { ...summary });
  return summary;
}
