import { MAX_BATCH_COMMANDS } from '../bitrix24/batch.ts';
import { ConfigError } from '../errors.ts';
import { serverErrorBackoff } from '../pacing/policies.ts';

/** How the drain behaves; every field has a default that suits Lambda behind a FIFO event source. */
export interface DrainOptions {
  /** The failed-edits FIFO queue (the DLQ). Required: an edit that cannot be applied must land somewhere. */
  failedEditsQueueUrl: string | undefined;
  /** Receives (SQS ApproximateReceiveCount) after which an edit that would wait again is given up. Default 8. */
  maxAttempts?: number;
  /** Share of each portal's rate left to the synchronous API, in [0, 1). Default 0.2. */
  apiRateShare?: number;
  /** The event source mapping's maximum concurrency: how many drains share a portal's budget. Default 2. */
  maxConcurrency?: number;
  /** Timeout of one Bitrix24 request in ms (the gateway's `timeoutMs`). Default 10000. */
  callTimeoutMs?: number;
  /** Time kept free before the deadline beyond one request timeout, in ms. Default 1000. */
  deadlineMarginMs?: number;
  /** Visibility delay of work handed back because the invocation ran out of time, in ms. Default 1000. */
  handBackDelayMs?: number;
  /** Longest delay any deferral gets, in ms. Default 12 h (SQS's longest visibility timeout). */
  maxDeferralMs?: number;
  /** Backoff of ambiguous outcomes (5xx, timeouts, resets). Default base 2 s, cap 15 min. */
  serverBackoff?: { baseMs: number; capMs: number };
  /** Most commands in one `batch` call, 1..50. Default 50 (an SQS FIFO event carries at most 10). */
  maxCommandsPerCall?: number;
}

export type ResolvedDrainOptions = Readonly<Required<Omit<DrainOptions, 'failedEditsQueueUrl'>>> & {
  readonly failedEditsQueueUrl: string;
};

const TWELVE_HOURS_MS = 12 * 60 * 60_000;

/** Checks and completes drain options once, with errors that name the option and the value received. */
export function normaliseDrainOptions(options: DrainOptions): ResolvedDrainOptions {
  const {
    failedEditsQueueUrl,
    maxAttempts = 8,
    apiRateShare = 0.2,
    maxConcurrency = 2,
    callTimeoutMs = 10_000,
    deadlineMarginMs = 1_000,
    handBackDelayMs = 1_000,
    maxDeferralMs = TWELVE_HOURS_MS,
    serverBackoff = serverErrorBackoff,
    maxCommandsPerCall = MAX_BATCH_COMMANDS,
  } = options;
  if (typeof failedEditsQueueUrl !== 'string' || failedEditsQueueUrl === '') {
    throw new ConfigError(
      'FAILED_EDITS_QUEUE_URL',
      'Expected FAILED_EDITS_QUEUE_URL to name the failed-edits queue: without it a failed edit would be lost',
    );
  }
  integer('maxAttempts', maxAttempts, 1, 1_000);
  integer('maxConcurrency', maxConcurrency, 1, 1_000);
  integer('callTimeoutMs', callTimeoutMs, 1, 15 * 60_000);
  integer('deadlineMarginMs', deadlineMarginMs, 0, 15 * 60_000);
  integer('handBackDelayMs', handBackDelayMs, 0, TWELVE_HOURS_MS);
  integer('maxDeferralMs', maxDeferralMs, 0, TWELVE_HOURS_MS);
  integer('maxCommandsPerCall', maxCommandsPerCall, 1, MAX_BATCH_COMMANDS);
  if (typeof apiRateShare !== 'number' || !(apiRateShare >= 0 && apiRateShare < 1)) {
    throw new RangeError(`Expected apiRateShare to be a number in [0, 1), got ${String(apiRateShare)}`);
  }
  integer('serverBackoff.baseMs', serverBackoff.baseMs, 0, TWELVE_HOURS_MS);
  integer('serverBackoff.capMs', serverBackoff.capMs, serverBackoff.baseMs, TWELVE_HOURS_MS);
  return Object.freeze({
    failedEditsQueueUrl,
    maxAttempts,
    apiRateShare,
    maxConcurrency,
    callTimeoutMs,
    deadlineMarginMs,
    handBackDelayMs,
    maxDeferralMs,
    serverBackoff: Object.freeze({ baseMs: serverBackoff.baseMs, capMs: serverBackoff.capMs }),
    maxCommandsPerCall,
  });
}

function integer(name: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Expected ${name} to be an integer from ${min} to ${max}, got ${String(value)} (${typeof value})`,
    );
  }
}
