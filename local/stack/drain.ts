import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { type PollerStats, type SqsHandler, startPoller } from '../poller.ts';
import { LOCAL_AWS } from './local-aws.ts';

export interface DrainInvocation {
  records: number;
  /** Records reported failed (or all of them when the handler threw): they come back later. */
  leftInQueue: number;
  error?: string;
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
  const observed = (): SqsHandler => {
    const handler = options.createHandler();
    return async (event, context) => {
      try {
        const result = await handler(event, context);
        const leftInQueue = result?.batchItemFailures?.length ?? 0;
        options.onInvocation?.({ records: event.Records.length, leftInQueue });
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
