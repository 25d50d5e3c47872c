import { logger } from '../observability/logger.ts';
import { MetricUnit, metrics } from '../observability/metrics.ts';
import type { CallStats } from '../reconcile/send.ts';
import type { DrainRecord, ParsedEdit, RecordDecision } from './types.ts';

/** One structured log line per record's outcome, and the invocation's metrics in EMF. */
export function reportOutcomes(
  records: readonly DrainRecord[],
  decisions: ReadonlyMap<string, RecordDecision>,
  parsed: ReadonlyMap<string, ParsedEdit>,
  stats: CallStats,
): void {
  const counts = { applied: 0, superseded: 0, deferred: 0, failed: 0 };
  for (const record of records) {
    const decision = decisions.get(record.messageId);
    const edit = parsed.get(record.messageId)?.edit;
    const context = {
      sqsMessageId: record.messageId,
      groupId: record.groupId,
      attempts: record.receiveCount,
      ...(edit
        ? { editId: edit.editId, portal: edit.portal, botId: edit.botId, messageId: edit.messageId }
        : {}),
    };
    if (decision?.action === 'ack' && decision.outcome === 'recorded') {
      counts.deferred += 1;
      logger.info('Edit recorded; its message waits for its next apply', { ...context, outcome: 'deferred' });
    } else if (decision?.action === 'ack' && decision.outcome !== 'failed') {
      counts[decision.outcome === 'applied' ? 'applied' : 'superseded'] += 1;
      logger.info(decision.outcome === 'applied' ? 'Edit applied' : 'Edit superseded', {
        ...context,
        outcome: decision.outcome,
      });
    } else if (decision?.action === 'ack') {
      counts.failed += 1;
      logger.warn('Edit failed; its reason is kept in the ledger and the failed-edits queue', {
        ...context,
        outcome: 'failed',
        code: decision.code,
      });
    } else if (decision?.action === 'hand-back') {
      counts.deferred += 1;
      logger.info('Edit deferred', {
        ...context,
        outcome: 'deferred',
        code: decision.code,
        delayMs: decision.delayMs,
      });
    }
  }
  metrics.addMetric('EditsApplied', MetricUnit.Count, counts.applied);
  metrics.addMetric('EditsSuperseded', MetricUnit.Count, counts.superseded);
  metrics.addMetric('EditsDeferred', MetricUnit.Count, counts.deferred);
  metrics.addMetric('EditsFailed', MetricUnit.Count, counts.failed);
  metrics.addMetric('BitrixCalls', MetricUnit.Count, stats.calls);
  metrics.addMetric('BitrixRateLimited', MetricUnit.Count, stats.rateLimited);
  for (const n of stats.commandsPerCall) metrics.addMetric('CommandsPerCall', MetricUnit.Count, n);
  metrics.addMetric('PortalCircuitOpen', MetricUnit.Count, stats.circuitsOpened.length);
  metrics.publishStoredMetrics();
}
