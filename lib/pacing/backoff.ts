import { Strategy } from '../bitrix24/error-table.ts';
import type { B24Time, RateLimits } from '../bitrix24/types.ts';
import { normaliseLimits } from './leaky-bucket.ts';
import {
  operatingLimitRetry,
  overloadCircuit,
  overloadRetry,
  rateLimitRetry,
  serverErrorBackoff,
} from './policies.ts';

export interface RetryDelayInput {
  /** What the failure calls for (from the error table). */
  strategy: Strategy;
  /** Which attempt failed: SQS ApproximateReceiveCount, from 1. */
  attempt: number;
  /** Current time in ms. */
  now: number;
  /** Uniform random number in [0, 1), for jitter. */
  random: () => number;
  /** The whole portal's limits (not a container's share): they set how fast its bucket drains. */
  limits: RateLimits;
  /** The `time` object of the failing answer or, for OPERATION_TIME_LIMIT, of the last success. */
  time?: B24Time;
  /** A Retry-After header, in seconds; the delay is never shorter. */
  retryAfterSeconds?: number;
  /** Exponential backoff for server errors. Default `serverErrorBackoff` (base 2 s, cap 15 min). */
  policy?: { baseMs: number; capMs: number };
  /**
   * For OVERLOAD_LIMIT: when the portal's circuit closes (`PortalCircuits.open`'s answer). Without
   * it, the circuit's schedule is followed by attempt: 5 min doubling to 1 h.
   */
  circuitOpenUntil?: number;
}

/**
 * How long to wait, in ms, before retrying after a failure of the given strategy.
 *
 * - rate-limit: until the portal's bucket has drained one request, at least 1 s, plus up to 1 s jitter.
 * - operating-limit: until `time.operating_reset_at` plus up to 5 s; 60 s when that is unknown or past.
 * - server: full jitter over `min(cap, base × 2^(attempt − 1))`.
 * - overload: until the portal's circuit closes, plus up to 5 s.
 * - refresh-auth, auth, permanent: throws, since waiting cannot help (refresh-auth is retried at once
 *   by the client, not deferred).
 */
export function retryDelayMs(input: RetryDelayInput): number {
  const { strategy, attempt, now, random, time, retryAfterSeconds } = input;
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`Expected attempt to be an integer of at least 1, got ${String(attempt)}`);
  }
  if (!Number.isFinite(now)) throw new RangeError(`Expected now to be a finite number, got ${String(now)}`);
  if (typeof random !== 'function')
    throw new TypeError(`Expected random to be a function, got ${typeof random}`);
  if (retryAfterSeconds !== undefined && !(Number.isFinite(retryAfterSeconds) && retryAfterSeconds >= 0)) {
    throw new RangeError(
      `Expected retryAfterSeconds to be a non-negative number, got ${String(retryAfterSeconds)}`,
    );
  }
  const limits = normaliseLimits(input.limits);
  const jitter = (maxMs: number): number => Math.floor(draw(random) * maxMs);
  const atLeastRetryAfter = (ms: number): number =>
    retryAfterSeconds === undefined ? ms : Math.max(ms, Math.ceil(retryAfterSeconds * 1000));

  switch (strategy) {
    case Strategy.RateLimit: {
      const drainOneMs = Math.ceil(1000 / limits.perSecond);
      return atLeastRetryAfter(Math.max(rateLimitRetry.minMs, drainOneMs)) + jitter(rateLimitRetry.jitterMs);
    }
    case Strategy.OperatingLimit: {
      const resetAt = time?.operating_reset_at;
      const untilReset = typeof resetAt === 'number' ? Math.ceil(resetAt * 1000 - now) : Number.NaN;
      // A reset already past means our time object is stale; a basket drops at least every minute.
      const wait =
        untilReset > 0
          ? Math.min(untilReset, operatingLimitRetry.maxWaitMs)
          : operatingLimitRetry.unknownResetMs;
      return atLeastRetryAfter(wait) + jitter(operatingLimitRetry.jitterMs);
    }
    case Strategy.Server: {
      const { baseMs, capMs } = normalisePolicy(input.policy ?? serverErrorBackoff);
      // 2 ** n reaches Infinity for huge attempts, and Math.min turns that back into the cap.
      const ceiling = Math.min(capMs, baseMs * 2 ** (attempt - 1));
      return atLeastRetryAfter(jitter(ceiling));
    }
    case Strategy.Overload: {
      const { circuitOpenUntil } = input;
      if (circuitOpenUntil !== undefined && !Number.isFinite(circuitOpenUntil)) {
        throw new RangeError(
          `Expected circuitOpenUntil to be a finite number, got ${String(circuitOpenUntil)}`,
        );
      }
      const wait =
        circuitOpenUntil === undefined
          ? Math.min(overloadCircuit.maxOpenMs, overloadCircuit.openMs * 2 ** (attempt - 1))
          : Math.max(0, Math.ceil(circuitOpenUntil - now));
      return atLeastRetryAfter(wait) + jitter(overloadRetry.jitterMs);
    }
    case Strategy.RefreshAuth:
    case Strategy.Auth:
    case Strategy.Permanent:
      throw new RangeError(`A ${strategy} failure is not retried after a delay`);
    default:
      throw new RangeError(`Unknown strategy ${JSON.stringify(strategy satisfies never)}`);
  }
}

/** The longest a record or wake-up handed back waits before it comes again. */
const REDELIVERY_CAP_MS = 15 * 60_000;

/**
 * How long a queue record (or wake-up) whose work could not be recorded waits before it comes
 * back: `baseMs` doubled with each receive, at most 15 minutes. With a queue's redrive after 10
 * receives, that rides out a store outage of a quarter of an hour instead of ten seconds.
 */
export function redeliveryDelayMs(receiveCount: number, baseMs: number): number {
  const doublings = Math.max(0, Math.min(30, Math.floor(receiveCount) - 1));
  return Math.min(REDELIVERY_CAP_MS, Math.max(baseMs, 1_000) * 2 ** doublings);
}

function normalisePolicy(policy: { baseMs: number; capMs: number }): { baseMs: number; capMs: number } {
  const { baseMs, capMs } = policy;
  if (!Number.isFinite(baseMs) || baseMs < 0) {
    throw new RangeError(`Expected policy.baseMs to be a non-negative number, got ${String(baseMs)}`);
  }
  if (!Number.isFinite(capMs) || capMs < baseMs) {
    throw new RangeError(
      `Expected policy.capMs to be a number of at least policy.baseMs (${baseMs}), got ${String(capMs)}`,
    );
  }
  return { baseMs, capMs };
}

function draw(random: () => number): number {
  const value = random();
  if (!(value >= 0 && value < 1)) {
    throw new RangeError(`Expected random() to return a number in [0, 1), got ${String(value)}`);
  }
  return value;
}
