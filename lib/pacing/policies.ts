import type { RateLimits } from '../bitrix24/types.ts';

/** Bitrix24 plans' leaky-bucket limits (limits.md): all plans but Enterprise drain 2/s above 50. */
export const standardPlan: RateLimits = Object.freeze({ burst: 50, perSecond: 2 });
export const enterprisePlan: RateLimits = Object.freeze({ burst: 250, perSecond: 5 });

export const PLANS = { standard: standardPlan, enterprise: enterprisePlan } as const;
export type PlanName = keyof typeof PLANS;

/** Exponential backoff with full jitter for server errors (drain): base 2 s, cap 15 min. */
/**
 * Server errors' backoff per message: full jitter over 2 s doubling, at most 30 s, so that once the
 * portal answers again every message is tried within half a minute, or when its settle window ends
 * after a call whose outcome is unknown (a newer edit never waits out an older one's long backoff). How long a message may go on failing before it is given up is
 * `giveUpAfterMs` (lib/reconcile/options.ts), not the backoff's length.
 */
export const serverErrorBackoff = Object.freeze({ baseMs: 2_000, capMs: 30_000 });
/** The per-portal circuit opened by OVERLOAD_LIMIT: 5 min, doubling up to 1 h. */
export const overloadCircuit = Object.freeze({ openMs: 5 * 60_000, maxOpenMs: 60 * 60_000 });
/** A policy with no waiting, for tests. */
export const zeroDelayBackoff = Object.freeze({ baseMs: 0, capMs: 0 });
/**
 * Retry after QUERY_LIMIT_EXCEEDED: wait for one request's worth of drain, at least `minMs`, plus up
 * to `jitterMs` so edits deferred together do not all come back in the same instant.
 */
export const rateLimitRetry = Object.freeze({ minMs: 1_000, jitterMs: 1_000 });
/**
 * Retry after OPERATION_TIME_LIMIT: until `operating_reset_at` plus up to `jitterMs`; `unknownResetMs`
 * (one one-minute basket) when the reset time is unknown or already past; never more than
 * `maxWaitMs`, the length of the whole ten-minute window, whatever the reset time claims.
 */
export const operatingLimitRetry = Object.freeze({
  unknownResetMs: 60_000,
  jitterMs: 5_000,
  maxWaitMs: 10 * 60_000,
});
/** Jitter added to an OVERLOAD_LIMIT wait, so a portal's deferred edits do not all return at once. */
export const overloadRetry = Object.freeze({ jitterMs: 5_000 });
