import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { type PollerStats, type SqsHandler, startPoller } from '../poller.ts';
import { LOCAL_AWS } from './local-aws.ts';

/**
 * What the queue consumers did, from their own metrics: the drain (the ingest stage) merges edit
 * records into the ledger; the reconcile of woken portals applies them with Bitrix24 calls.
 */
export interface DrainOutcomes {
  /** Edit records merged into the ledger (EditsMerged). */
  merged: number;
  /** Edit records superseded by one accepted later (EditsSuperseded). */
  superseded: number;
  /** Edit records handed back to the queue because their merge failed (EditsDeferred). */
  deferred: number;
  /** Edit records failed for good, on the failed-edits queue (EditsFailed). */
  failed: number;
  /** Messages applied by the reconcile (EditsApplied). */
  applied: number;
  /** Bitrix24 calls made by the reconcile (BitrixCalls). */
  calls: number;
}

/** Which metric each outcome is read from; a runner reads only its own handler's. */
export type OutcomeMetrics = Partial<Record<keyof DrainOutcomes, string>>;

/** The drain's (functions/drain-edits.ts, lib/drain/observe.ts). */
export const DRAIN_METRICS: OutcomeMetrics = {
  merged: 'EditsMerged',
  superseded: 'EditsSuperseded',
  deferred: 'EditsDeferred',
  failed: 'EditsFailed',
};

/** The reconcile's (functions/reconcile-portals.ts, lib/reconcile/wakeups.ts). */
export const RECONCILE_METRICS: OutcomeMetrics = {
  applied: 'EditsApplied',
  calls: 'BitrixCalls',
};

export interface DrainInvocation {
  records: number;
  /** Records reported failed (or all of them when the handler threw): they come back later. */
  leftInQueue: number;
  /**
   * The outcomes the runner's metrics name (the others are absent). Undefined when the handler
   * published no metrics (it threw before its report).
   */
  outcomes?: Partial<DrainOutcomes>;
  error?: string;
}

export function emptyOutcomes(): DrainOutcomes {
  return { merged: 0, superseded: 0, deferred: 0, failed: 0, applied: 0, calls: 0 };
}

/** Adds an invocation's outcomes to running totals. */
export function addOutcomes(totals: DrainOutcomes, outcomes: Partial<DrainOutcomes> | undefined): void {
  for (const key of Object.keys(totals) as Array<keyof DrainOutcomes>) totals[key] += outcomes?.[key] ?? 0;
}

// The handlers report their outcomes as EMF metrics (lib/drain/observe.ts, lib/reconcile/wakeups.ts),
// which are off locally. Each report is synchronous, so the invocation it belongs to is the async
// context it runs in; the context also says which metrics its runner reads.
interface OutcomeSlot {
  names: OutcomeMetrics;
  outcomes?: Partial<DrainOutcomes>;
}
const invocationOutcomes = new AsyncLocalStorage<OutcomeSlot>();
const watched = new WeakSet<Metrics>();

function watchMetrics(metrics: Metrics): void {
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
      // Summed: a handler that publishes twice in one invocation loses nothing.
      const outcomes: Partial<DrainOutcomes> = slot.outcomes ?? {};
      for (const [key, name] of Object.entries(slot.names) as Array<[keyof DrainOutcomes, string]>) {
        outcomes[key] = (outcomes[key] ?? 0) + read(name);
      }
      slot.outcomes = outcomes;
    }
    return publish();
  };
}

export interface DrainRunnerOptions {
  sqsUrl: string;
  queueUrl: string;
  /** The function's name in its Lambda context (logs). Default 'drain-edits'. */
  functionName?: string;
  /** A new handler, as one Lambda container would load it. */
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
  /** The metrics this runner's handler reports its outcomes in. Default `DRAIN_METRICS`. */
  outcomeMetrics?: OutcomeMetrics;
  /** Starts paused: nothing is received until `resume()`. Default false. */
  paused?: boolean;
}

export interface DrainRunner {
  readonly stats: Readonly<PollerStats>;
  readonly paused: boolean;
  /**
   * Stops receiving, as a disabled event source mapping does: edits stay in the queue. Resolves
   * once the receive and the invocations in progress have finished (or after 10 s, if one is stuck).
   */
  pause(): Promise<void>;
  /** Receives again. */
  resume(): void;
  stop(): Promise<void>;
}

// stop() lets invocations in progress finish; a stuck one must not hold Ctrl-C hostage.
const STOP_WAIT_MS = 3_000;
// pause() waits for the receive in progress (1 s long poll) and the invocation it may hand over.
const PAUSE_WAIT_MS = 10_000;
const PAUSE_POLL_MS = 20;

/**
 * Holds the poller's receives while closed, in the SQS client itself. Stopping the poller instead
 * would abort its long poll on this side only: the SQS emulator would then hand the next edit to a
 * receive nobody reads, in flight for the visibility timeout, blocking its message group.
 */
class ReceiveGate {
  #closed: PromiseWithResolvers<void> | undefined;
  #receiving = 0;
  /** Receives that returned messages whose invocation has not started yet. */
  #handoffs = 0;
  #invoking = 0;

  constructor(client: SQSClient, closed: boolean) {
    if (closed) this.#closed = Promise.withResolvers();
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'ReceiveMessageCommand') return next(args);
        while (this.#closed) await this.#closed.promise;
        this.#receiving += 1;
        try {
          const result = await next(args);
          const messages = (result.output as { Messages?: unknown[] }).Messages ?? [];
          if (messages.length > 0) this.#handoffs += 1;
          return result;
        } finally {
          this.#receiving -= 1;
        }
      },
      { step: 'initialize', name: 'drainPauseGate' },
    );
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Marks an invocation started; returns the function that marks it finished. */
  invoking(): () => void {
    this.#handoffs = Math.max(0, this.#handoffs - 1);
    this.#invoking += 1;
    return () => {
      this.#invoking -= 1;
    };
  }

  /** Resolves once nothing is received or invoked any more (or after PAUSE_WAIT_MS, if stuck). */
  async close(): Promise<void> {
    this.#closed ??= Promise.withResolvers();
    const deadline = Date.now() + PAUSE_WAIT_MS;
    while (this.#receiving + this.#handoffs + this.#invoking > 0 && Date.now() < deadline) {
      await delay(PAUSE_POLL_MS);
    }
  }

  open(): void {
    const closed = this.#closed;
    this.#closed = undefined;
    closed?.resolve();
  }
}

/**
 * A function behind an SQS event source mapping (local/poller.ts): the drain on the edits queue, or
 * the reconcile on the portal work queue. Batches of up to `batchSize`, `maxConcurrency`
 * invocations at a time, each slot with its own handler instance like a separate Lambda container;
 * successes deleted, `batchItemFailures` left for a later receive.
 */
export function startDrainRunner(options: DrainRunnerOptions): DrainRunner {
  const client = new SQSClient({ ...LOCAL_AWS, endpoint: options.sqsUrl });
  const gate = new ReceiveGate(client, options.paused ?? false);
  if (options.metrics) watchMetrics(options.metrics);
  const names = options.outcomeMetrics ?? DRAIN_METRICS;
  const observed = (): SqsHandler => {
    const handler = options.createHandler();
    return async (event, context) => {
      const slot: OutcomeSlot = { names };
      const done = gate.invoking();
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
      } finally {
        done();
      }
    };
  };
  const poller = startPoller({
    client,
    queueUrl: options.queueUrl,
    handlerFor: observed,
    ...(options.functionName ? { functionName: options.functionName } : {}),
    maxConcurrency: options.maxConcurrency,
    batchSize: options.batchSize,
    timeoutMs: options.timeoutMs,
    ...(options.onError ? { onError: options.onError } : {}),
  });
  return {
    stats: poller.stats,
    get paused() {
      return gate.closed;
    },
    pause: () => gate.close(),
    resume: () => gate.open(),
    async stop() {
      // A receive held by the gate goes on, and meets the stop's abort at once.
      gate.open();
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
