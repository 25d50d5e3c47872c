import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import { logger } from '../observability/logger.ts';
import { MetricUnit, metrics } from '../observability/metrics.ts';
import { redeliveryDelayMs } from '../pacing/backoff.ts';
import { parseWakeup } from '../schedule/portal-queue.ts';
import { changeVisibility, queueUrlFromArn } from '../sqs/visibility.ts';
import type { Reconciler } from './reconcile.ts';
import { type CallStats, emptyStats, failureOf } from './send.ts';

export interface WakeupInvocation {
  remainingMs: () => number;
  signal?: AbortSignal | undefined;
}

export interface WakeupSummary {
  /** Distinct portals the event woke. */
  portals: number;
  /** Portals found held by another reconciler (it looks at them again itself). */
  held: number;
  /** Portals whose reconcile failed (their wake-ups come back shortly). */
  failed: number;
  applied: number;
  calls: number;
}

/**
 * The apply stage: one invocation of the portal work queue's consumer. Reconciles the portals its
 * wake-ups name in parallel, each under its own lease, each leaving its own next wake-up: a portal
 * that hangs costs its own reconcile, no one else's. Duplicate wake-ups of a portal count once; a
 * body that names no portal is dropped. A portal whose reconcile failed (the ledger unreachable)
 * has its wake-ups back after a delay that doubles with each receive (`redeliveryDelayMs`).
 */
export async function reconcileWakeups(
  records: readonly SQSRecord[],
  invocation: WakeupInvocation,
  deps: { reconciler: Reconciler; sqs: SQSClient; queueUrl?: string | undefined },
): Promise<SQSBatchResponse> {
  const byPortal = new Map<string, SQSRecord[]>();
  for (const record of records) {
    const wakeup = parseWakeup(record.body);
    if (!wakeup) {
      logger.warn('Dropped a portal work queue message that names no portal', {
        sqsMessageId: record.messageId,
      });
      continue;
    }
    byPortal.set(wakeup.portal, [...(byPortal.get(wakeup.portal) ?? []), record]);
  }
  const stats: CallStats = emptyStats();
  const summary: WakeupSummary = { portals: byPortal.size, held: 0, failed: 0, applied: 0, calls: 0 };
  // How long the edits applied here waited in the ledger, from their message becoming dirty.
  let longestWaitMs: number | undefined;
  const failed: SQSRecord[] = [];
  await Promise.all(
    [...byPortal].map(async ([portal, wakeups]) => {
      try {
        const report = await deps.reconciler.reconcilePortal(portal, {
          hints: [],
          mode: 'fill',
          remainingMs: invocation.remainingMs,
          signal: invocation.signal,
          stats,
        });
        if (report.leaseHeld) summary.held += 1;
        const now = deps.reconciler.ledger.table.now();
        for (const [text, fate] of report.fates) {
          if (fate.kind !== 'applied') continue;
          summary.applied += 1;
          const since = report.states.get(text)?.dirtySince;
          if (since !== undefined) longestWaitMs = Math.max(longestWaitMs ?? 0, now - since);
        }
      } catch (error) {
        summary.failed += 1;
        failed.push(...wakeups);
        const { code, description } = failureOf(error);
        logger.error('Reconciling a portal failed; its wake-up comes back shortly', {
          portal,
          code,
          description,
        });
      }
    }),
  );
  const base = deps.reconciler.options.handBackDelayMs;
  for (const [queueUrl, items] of Map.groupBy(
    failed,
    (r) => deps.queueUrl ?? queueUrlFromArn(r.eventSourceARN) ?? '',
  )) {
    if (!queueUrl) continue;
    await changeVisibility(
      deps.sqs,
      queueUrl,
      items.map((r) => ({
        receiptHandle: r.receiptHandle,
        messageId: r.messageId,
        delayMs: redeliveryDelayMs(Number(r.attributes.ApproximateReceiveCount) || 1, base),
      })),
    );
  }
  summary.calls = stats.calls;
  metrics.addMetric('PortalsReconciled', MetricUnit.Count, summary.portals - summary.held - summary.failed);
  metrics.addMetric('EditsApplied', MetricUnit.Count, summary.applied);
  metrics.addMetric('BitrixCalls', MetricUnit.Count, stats.calls);
  metrics.addMetric('BitrixRateLimited', MetricUnit.Count, stats.rateLimited);
  for (const n of stats.commandsPerCall) metrics.addMetric('CommandsPerCall', MetricUnit.Count, n);
  metrics.addMetric('PortalCircuitOpen', MetricUnit.Count, stats.circuitsOpened.length);
  // Its Maximum over a period: the oldest edit the wake-ups applied, how far the ledger is behind.
  if (longestWaitMs !== undefined)
    metrics.addMetric('EditWaitSeconds', MetricUnit.Seconds, Math.max(0, longestWaitMs) / 1000);
  metrics.publishStoredMetrics();
  logger.info('Portals reconciled', { ...summary });
  return { batchItemFailures: failed.map((r) => ({ itemIdentifier: r.messageId })) };
}
