import { MAX_BATCH_COMMANDS } from '../bitrix24/batch.ts';
import { ConfigError } from '../errors.ts';
import { INDEX_LAG_MS } from '../ledger/dirty-index.ts';
import type { Timing } from '../ledger/model.ts';
import { cloudOperatingBudget, type OperatingPolicy } from '../pacing/operating-budget.ts';
import { serverErrorBackoff } from '../pacing/policies.ts';

const TWELVE_HOURS_MS = 12 * 60 * 60_000;

/**
 * The integer settings of reconciling, with their ranges: checked here for options and by
 * lib/config.ts for the environment variables that set them, so each rule is written once.
 */
export const RECONCILE_RANGES = {
  maxAttempts: { min: 1, max: 100, env: 'MAX_ATTEMPTS' },
  giveUpAfterMs: { min: 0, max: TWELVE_HOURS_MS, env: undefined },
  callTimeoutMs: { min: 1, max: 60_000, env: 'B24_TIMEOUT_MS' },
  deadlineMarginMs: { min: 0, max: 60_000, env: 'DEADLINE_MARGIN_MS' },
  handBackDelayMs: { min: 0, max: TWELVE_HOURS_MS, env: undefined },
  maxDeferralMs: { min: 0, max: TWELVE_HOURS_MS, env: undefined },
  maxCommandsPerCall: { min: 1, max: MAX_BATCH_COMMANDS, env: undefined },
  batchLingerMs: { min: 0, max: 5_000, env: 'BATCH_LINGER_MS' },
  batchMaxWaitMs: { min: 0, max: 60_000, env: 'BATCH_MAX_WAIT_MS' },
  messageMinIntervalMs: { min: 0, max: 3_600_000, env: 'MESSAGE_MIN_INTERVAL_MS' },
  ambiguousSettleMs: { min: 1_000, max: 3_600_000, env: 'AMBIGUOUS_SETTLE_MS' },
  operatingLimitSeconds: { min: 1, max: 86_400, env: 'OPERATING_LIMIT_SECONDS' },
  operatingThresholdPercent: { min: 1, max: 100, env: 'OPERATING_THRESHOLD_PERCENT' },
  operatingBasketMs: { min: 10, max: 3_600_000, env: 'OPERATING_BASKET_MS' },
  indexLagMs: { min: 0, max: 10_000, env: 'INDEX_LAG_MS' },
} as const;
export type RangedOption = keyof typeof RECONCILE_RANGES;

/** How reconciling behaves; every field has a default that suits Lambda behind a FIFO event source. */
export interface ReconcileOptions {
  /** The failed-edits FIFO queue (the DLQ). Required: an edit that cannot be applied must land somewhere. */
  failedEditsQueueUrl: string | undefined;
  /** Failed calls of a message after which it is given up (and `giveUpAfterMs` of failing). Default 8. */
  maxAttempts?: number;
  /**
   * How long a message must have been failing (since its first failed call after its last success)
   * before `maxAttempts` gives it up: a portal outage is ridden out, not reported. Default 15 min.
   */
  giveUpAfterMs?: number;
  /** Share of each portal's rate left to the synchronous API, in [0, 1). Default 0.2. */
  apiRateShare?: number;
  /** Timeout of one Bitrix24 request in ms (the gateway's `timeoutMs`). Default 10000. */
  callTimeoutMs?: number;
  /** Time kept free before the deadline beyond one request timeout, in ms. Default 1000. */
  deadlineMarginMs?: number;
  /** Delay of work held back because the invocation ran out of time, in ms. Default 1000. */
  handBackDelayMs?: number;
  /** Longest delay any deferral gets, in ms. Default 12 h (SQS's longest visibility timeout). */
  maxDeferralMs?: number;
  /** Backoff of ambiguous outcomes (5xx, timeouts, resets). Default base 2 s, cap 30 s. */
  serverBackoff?: { baseMs: number; capMs: number };
  /** Most messages in one `batch` call, 1..50. Default 50. */
  maxCommandsPerCall?: number;
  /**
   * The gap a call that would not be full keeps from the portal's previous call, and the pause in a
   * portal's incoming edits that ends the wait for a fuller call: calls carry what arrives meanwhile.
   * Default 1000.
   */
  batchLingerMs?: number;
  /**
   * The longest a fresh backlog waits for its producer to pause before a call that is not full
   * goes anyway (edits someone waits for, and messages already shown, wait only `batchLingerMs`).
   * Default 10000.
   */
  batchMaxWaitMs?: number;
  /** A message is applied at most once per this many ms; edits in between coalesce. 0: off. Default 1000. */
  messageMinIntervalMs?: number;
  /** After a call with an unknown outcome, its messages wait this long from its start. Default 65000. */
  ambiguousSettleMs?: number;
  /** Server seconds each method may use per window of ten baskets (Bitrix24 cloud: 480). Default 480. */
  operatingLimitSeconds?: number;
  /** Past this share of the limit, in percent, the rest is spread until baskets drop. Default 80. */
  operatingThresholdPercent?: number;
  /** Length of one operating-time basket (Bitrix24: a minute); scaled down only in tests. Default 60000. */
  operatingBasketMs?: number;
  /**
   * How long a write may take to show in a query of the dirty index: a run that ends this soon
   * after a merge into its portal looks again this much later. DynamoDB: under a second; the local
   * DynamoDB (dynalite) at once, so 0. Default 1000.
   */
  indexLagMs?: number;
}

type Grouped =
  | 'failedEditsQueueUrl'
  | 'messageMinIntervalMs'
  | 'ambiguousSettleMs'
  | 'operatingLimitSeconds'
  | 'operatingThresholdPercent'
  | 'operatingBasketMs';

export type ResolvedReconcileOptions = Readonly<Required<Omit<ReconcileOptions, Grouped>>> & {
  readonly failedEditsQueueUrl: string;
  readonly timing: Readonly<Timing>;
  readonly operatingBudget: OperatingPolicy;
};

export const RECONCILE_DEFAULTS = {
  maxAttempts: 8,
  giveUpAfterMs: 15 * 60_000,
  apiRateShare: 0.2,
  callTimeoutMs: 10_000,
  deadlineMarginMs: 1_000,
  handBackDelayMs: 1_000,
  maxDeferralMs: TWELVE_HOURS_MS,
  maxCommandsPerCall: MAX_BATCH_COMMANDS,
  batchLingerMs: 1_000,
  batchMaxWaitMs: 10_000,
  messageMinIntervalMs: 1_000,
  ambiguousSettleMs: 65_000,
  operatingLimitSeconds: cloudOperatingBudget.limitSeconds,
  operatingThresholdPercent: cloudOperatingBudget.threshold * 100,
  operatingBasketMs: cloudOperatingBudget.basketMs,
  indexLagMs: INDEX_LAG_MS,
} as const;

/** Checks and completes options once, with errors that name the option and the value received. */
export function normaliseReconcileOptions(options: ReconcileOptions): ResolvedReconcileOptions {
  const {
    failedEditsQueueUrl,
    apiRateShare = RECONCILE_DEFAULTS.apiRateShare,
    serverBackoff = serverErrorBackoff,
  } = options;
  if (typeof failedEditsQueueUrl !== 'string' || failedEditsQueueUrl === '') {
    throw new ConfigError(
      'FAILED_EDITS_QUEUE_URL',
      'Expected FAILED_EDITS_QUEUE_URL to name the failed-edits queue: without it a failed edit would be lost',
    );
  }
  const ranged = {} as Record<RangedOption, number>;
  for (const name of Object.keys(RECONCILE_RANGES) as RangedOption[]) {
    const value = options[name] ?? RECONCILE_DEFAULTS[name];
    const { min, max } = RECONCILE_RANGES[name];
    integer(name, value, min, max);
    ranged[name] = value;
  }
  if (typeof apiRateShare !== 'number' || !(apiRateShare >= 0 && apiRateShare < 1)) {
    throw new RangeError(`Expected apiRateShare to be a number in [0, 1), got ${String(apiRateShare)}`);
  }
  integer('serverBackoff.baseMs', serverBackoff.baseMs, 0, TWELVE_HOURS_MS);
  integer('serverBackoff.capMs', serverBackoff.capMs, serverBackoff.baseMs, TWELVE_HOURS_MS);
  const {
    messageMinIntervalMs,
    ambiguousSettleMs,
    operatingLimitSeconds,
    operatingThresholdPercent,
    operatingBasketMs,
    ...rest
  } = ranged;
  return Object.freeze({
    ...rest,
    failedEditsQueueUrl,
    apiRateShare,
    serverBackoff: Object.freeze({ baseMs: serverBackoff.baseMs, capMs: serverBackoff.capMs }),
    timing: Object.freeze({ messageMinIntervalMs, ambiguousSettleMs }),
    operatingBudget: Object.freeze({
      limitSeconds: operatingLimitSeconds,
      threshold: operatingThresholdPercent / 100,
      basketMs: operatingBasketMs,
    }),
  });
}

function integer(name: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Expected ${name} to be an integer from ${min} to ${max}, got ${String(value)} (${typeof value})`,
    );
  }
}
