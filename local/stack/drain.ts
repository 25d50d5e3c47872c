import { AsyncLocalStorage } from 'node:async_hooks';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { type PollerStats, type SqsHandler, startPoller } from '../poller.ts';
import { LOCAL_AWS } from './local-aws.ts';

/** What the drain did with one invocation's records, from its own metrics (EditsApplied, …). */
export interface DrainOutcomes {
  applied: number;
  superseded: number;
  failed: number;
  deferred: number;
  /** Bitrix24 calls made (BitrixCalls). */
  calls: number;
}

export interface DrainInvocation {
  records: number;
  /** Records reported failed (or all of them when the handler threw): they come back later. */
  leftInQueue: number;
  /** Undefined when the handler published no metrics (it threw before its report). */
  outcomes?: DrainOutcomes;
  error?: string;
}

const OUTCOME_METRICS = {
  applied: 'EditsApplied',
  superseded: 'EditsSuperseded',
  failed: 'EditsFailed',
  deferred: 'EditsDeferred',
  calls: 'BitrixCalls',
} as const;

// The drain reports its outcomes as EMF metrics (lib/drain/observe.ts), which are off locally. The
// report is synchronous, so the invocation it belongs to is the async context it runs in.
const invocationOutcomes = new AsyncLocalStorage<{ outcomes?: DrainOutcomes }>();
const watched = new WeakSet<Metrics>();

function watchDrainMetrics(metrics: Metrics): void {
  if (watched.has(metrics)) return;
  watched.add(metrics);
  const publish = metrics.publishStoredMetrics.bind(metrics);
  metrics.publishStoredMetrics = () => {
    const slot = invocationOutcomes.getStore();
    if (slot && metrics.hasStoredMetrics()) {
      const emf = metrics.serializeMetrics() as unknown as Record<string, unknown>;
      const read = (name: string) => {
        const value = emf[name];
        const first = Array.isArray(value) ? value[0] : value;
        return typeof first === 'number' ? first : 0;
      };
      slot.outcomes = Object.fromEntries(
        Object.entries(OUTCOME_METRICS).map(([key, name]) => [key, read(name)]),
      ) as unknown as DrainOutcomes;
    }
    return publish();
  };
}

export interface DrainRunnerOptions {
  sqsUrl: string;
  queueUrl: string;
  /** A new drain handler, as one Lambda container would load it. */
  createHandler: () => (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | undefined>;
  maxConcurrency: number;
  batchSize: number;
  timeoutMs: number;
  onInvocation?: (invocation: DrainInvocation) => void;
  onError?: (error: unknown) => void;
  /**
   * The handlers' metrics (lib/observability/metrics.ts), read for each invocation's outcomes. Passed
   * in rather than imported: that module reads the configuration once, so it must load after the
   * stack has set the environment.
   */
  metrics?: Metrics;
}

export interface DrainRunner {
  readonly stats: Readonly<PollerStats>;
  stop(): Promise<void>;
}

// stop() lets invocations in progress finish; a stuck one must not hold Ctrl-C hostage.
const STOP_WAIT_MS = 3_000;

/**
 * The drain function behind an SQS event source mapping (local/poller.ts): batches of up to
 * `batchSize`, `maxConcurrency` invocations at a time, each slot with its own handler instance like
 * a separate Lambda container; successes deleted, `batchItemFailures` left for a later receive.
 */
export function startDrainRunner(options: DrainRunnerOptions): DrainRunner {
  const client = new SQSClient({ ...LOCAL_AWS, endpoint: options.sqsUrl });
  if (options.metrics) watchDrainMetrics(options.metrics);
  const observed = (): SqsHandler => {
    const handler = options.createHandler();
    return async (event, context) => {
      const slot: { outcomes?: DrainOutcomes } = {};
      try {
        const result = await invocationOutcomes.run(slot, () => handler(event, context));
        const leftInQueue = result?.batchItemFailures?.length ?? 0;
        options.onInvocation?.({
          records: event.Records.length,
          leftInQueue,
          ...(slot.outcomes ? { outcomes: slot.outcomes } : {}),
        });
        return result;
      } catch (error) {
        const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        options.onInvocation?.({
          records: event.Records.length,
          leftInQueue: event.Records.length,
          error: message,
        });
        throw error;
      }
    };
  };
  const poller = startPoller({
    client,
    queueUrl: options.queueUrl,
    handlerFor: observed,
    maxConcurrency: options.maxConcurrency,
    batchSize: options.batchSize,
    timeoutMs: options.timeoutMs,
    ...(options.onError ? { onError: options.onError } : {}),
  });
  return {
    stats: poller.stats,
    async stop() {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, STOP_WAIT_MS);
      });
      await Promise.race([poller.stop(), waited]);
      clearTimeout(timer);
      client.destroy();
    },
  };
}
