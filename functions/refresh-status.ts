import type { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { logContext } from '../lib/observability/context.ts';
import { metrics } from '../lib/observability/metrics.ts';
import { getRuntime } from '../lib/runtime.ts';
import { type RefreshDeps, type RefreshSummary, refreshStatuses } from '../lib/status/refresh.ts';

export interface RefreshHandlerDeps extends RefreshDeps {
  metrics: Metrics;
}

export function defaultDeps(): RefreshHandlerDeps {
  const { clock, config, reconciler } = getRuntime();
  return { config, reconciler: reconciler(), metrics, now: () => new Date(clock.now()) };
}

/**
 * EventBridge schedule → refresh the status messages of its input; resolves with the summary.
 * Dependencies given as a function are made on the first invocation (their metrics are the
 * project's Powertools metrics).
 */
export function createHandler(deps: RefreshHandlerDeps | (() => RefreshHandlerDeps)) {
  let resolved: RefreshHandlerDeps | undefined;
  return middy<unknown, RefreshSummary, Error, Context>({ timeoutEarlyInMillis: 500 })
    .use(logContext())
    .use(logMetrics(typeof deps === 'function' ? metrics : deps.metrics))
    .handler(async (event, context, { signal }) => {
      resolved ??= typeof deps === 'function' ? deps() : deps;
      // No request starts that could outlive the deadline; what is left stays in the ledger.
      const remainingMs = () => context.getRemainingTimeInMillis();
      const report = await refreshStatuses({ event, signal, remainingMs }, resolved);
      return report.summary;
    });
}

export const handler = createHandler(defaultDeps);
