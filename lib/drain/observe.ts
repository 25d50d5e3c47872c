import { logger } from '../observability/logger.ts';
import { MetricUnit, metrics } from '../observability/metrics.ts';
import type { DrainRecord, ParsedEdit, RecordDecision } from './types.ts';

const MESSAGES = {
  recorded: 'Edit recorded; its portal’s wake-up applies it',
  superseded: 'Edit superseded by one accepted later',
  unchanged: 'Edit recorded; the message already shows it',
} as const;

/** One structured log line per record's outcome, and the invocation's metrics in EMF. */
export function reportOutcomes(
  records: readonly DrainRecord[],
  decisions: ReadonlyMap<string, RecordDecision>,
  parsed: ReadonlyMap<string, ParsedEdit>,
): void {
  const counts = { recorded: 0, superseded: 0, unchanged: 0, deferred: 0, failed: 0 };
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
    if (decision?.action === 'ack' && decision.outcome === 'failed') {
      counts.failed += 1;
      logger.warn('Edit failed; its reason is kept in the failed-edits queue', {
        ...context,
        outcome: 'failed',
        code: decision.code,
      });
    } else if (decision?.action === 'ack') {
      const outcome = decision.outcome as keyof typeof MESSAGES;
      counts[outcome] += 1;
      logger.info(MESSAGES[outcome], { ...context, outcome });
    } else if (decision?.action === 'hand-back') {
      counts.deferred += 1;
      logger.info('Edit not recorded yet; its record comes back', {
        ...context,
        outcome: 'deferred',
        code: decision.code,
        delayMs: decision.delayMs,
      });
    }
  }
  metrics.addMetric('EditsMerged', MetricUnit.Count, counts.recorded + counts.unchanged);
  metrics.addMetric('EditsSuperseded', MetricUnit.Count, counts.superseded);
  metrics.addMetric('EditsDeferred', MetricUnit.Count, counts.deferred);
  metrics.addMetric('EditsFailed', MetricUnit.Count, counts.failed);
  metrics.publishStoredMetrics();
}
