import type { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { Config } from '../lib/config.ts';
import { DrainState } from '../lib/drain/portal-state.ts';
import { enqueueEdits } from '../lib/edits/queue.ts';
import { metrics } from '../lib/observability/metrics.ts';
import { getRuntime } from '../lib/runtime.ts';
import { AppliedFieldsCache } from '../lib/status/change-detect.ts';
import { type RefreshDeps, type RefreshSummary, refreshStatuses } from '../lib/status/refresh.ts';

export interface RefreshHandlerDeps extends RefreshDeps {
  config: RefreshDeps['config'] & Pick<Config, 'b24TimeoutMs' | 'deadlineMarginMs'>;
  metrics: Metrics;
}

export function defaultDeps(): RefreshHandlerDeps {
  const { config, gateway } = getRuntime();
  return {
    config,
    gateway,
    // Paced like one drain container: a run's few batch calls per portal fit in that slice.
    pacing: new DrainState({
      concurrency: config.drainMaxConcurrency,
      apiShare: config.apiRateShare,
      now: Date.now,
    }),
    cache: new AppliedFieldsCache(),
    enqueue: (edits) => enqueueEdits(edits, { queueUrl: config.editsQueueUrl }),
    metrics,
  };
}

/** EventBridge schedule → refresh the status messages of its input; resolves with the summary. */
export function createHandler(deps: RefreshHandlerDeps) {
  return middy<unknown, RefreshSummary, Error, Context>({ timeoutEarlyInMillis: 500 })
    .use(logMetrics(deps.metrics))
    .handler(async (event, context, { signal }) => {
      // No request starts that could outlive the deadline: what is left goes to the queue in time.
      const reserveMs = deps.config.b24TimeoutMs + deps.config.deadlineMarginMs;
      const sendBy = Date.now() + context.getRemainingTimeInMillis() - reserveMs;
      const report = await refreshStatuses({ event, signal, sendBy }, deps);
      return report.summary;
    });
}

export const handler = createHandler(defaultDeps());
