import type { RateLimits } from '../bitrix24/types.ts';

export interface LeakyBucketOptions {
  /** Clock in milliseconds. Default `Date.now`. */
  now?: () => number;
  /** Requests already in the bucket when it is made (e.g. a container starting mid-burst). Default 0. */
  initialLevel?: number;
}

// Waits are rounded up to whole milliseconds so a caller sleeping that long never sends early. Float
// noise can leave a whole wait a hair above (500.0000000001 ms); this slack keeps it at 500, for an
// overshoot of at most 1e-6 ms of drain (about 1e-9 of a request).
const ROUNDING_SLACK_MS = 1e-6;

/**
 * Our side of Bitrix24's leaky bucket: every request adds 1, the level drains at `perSecond`, and a
 * request that would take the level above `burst` waits. Kept as the time the bucket will be empty
 * (a "theoretical arrival time"), which makes reservations exact and O(1).
 *
 * `reserve` counts the requests at once, even when the caller must first sleep, so concurrent
 * callers in one container queue up behind each other instead of all waking at the same moment.
 */
export class LeakyBucket {
  readonly #burst: number;
  readonly #perMs: number;
  readonly #now: () => number;
  /** When our view of the bucket, reservations included, drains to zero. */
  #emptyAt: number;

  constructor(limits: RateLimits, options: LeakyBucketOptions = {}) {
    const { burst, perSecond } = normaliseLimits(limits);
    const { now = Date.now, initialLevel = 0 } = options;
    if (typeof now !== 'function') {
      throw new TypeError(`Expected now to be a function, got ${typeof now}`);
    }
    if (!Number.isFinite(initialLevel) || initialLevel < 0) {
      throw new TypeError(`Expected initialLevel to be a non-negative number, got ${String(initialLevel)}`);
    }
    this.#burst = burst;
    this.#perMs = perSecond / 1000;
    this.#now = now;
    this.#emptyAt = now() + initialLevel / this.#perMs;
  }

  /**
   * Reserves `n` requests (default 1) and returns how many milliseconds to wait before sending them.
   * 0 while the bucket has room. `n` may not exceed the burst: such a group could never be sent at once.
   */
  reserve(n = 1): number {
    if (!Number.isInteger(n) || n < 1 || n > this.#burst) {
      throw new RangeError(
        `Expected n to be an integer from 1 to the burst ${this.#burst}, got ${String(n)}`,
      );
    }
    const now = this.#now();
    this.#emptyAt = Math.max(this.#emptyAt, now) + n / this.#perMs;
    // Send when the level, these n included, is down to the burst.
    const sendAt = this.#emptyAt - this.#burst / this.#perMs;
    return Math.max(0, Math.ceil(sendAt - now - ROUNDING_SLACK_MS));
  }

  /** The current level as we see it, requests reserved for later included. */
  level(): number {
    return Math.max(0, (this.#emptyAt - this.#now()) * this.#perMs);
  }

  /** When the bucket, reservations included, will be empty (epoch ms): what a next sender starts from. */
  emptyAt(): number {
    return this.#emptyAt;
  }

  /** Takes over another sender's view (its `emptyAt`); never lowers the level. */
  continueFrom(emptyAt: number): void {
    if (Number.isFinite(emptyAt)) this.#emptyAt = Math.max(this.#emptyAt, emptyAt);
  }

  /**
   * Raises our view of the level after Bitrix24 refused a request (QUERY_LIMIT_EXCEEDED means its
   * bucket is full, whatever we thought). Default: our burst. Never lowers the level, so requests
   * already reserved stay counted.
   */
  penalise(levelToSet: number = this.#burst): void {
    if (!Number.isFinite(levelToSet) || levelToSet < 0) {
      throw new RangeError(`Expected levelToSet to be a non-negative number, got ${String(levelToSet)}`);
    }
    this.#emptyAt = Math.max(this.#emptyAt, this.#now() + levelToSet / this.#perMs);
  }
}

/** Checks a portal's limits once, with errors naming the bad field. */
export function normaliseLimits(limits: RateLimits): RateLimits {
  const { burst, perSecond } = limits;
  if (!Number.isFinite(burst) || burst < 1) {
    throw new RangeError(`Expected limits.burst to be a number of at least 1, got ${String(burst)}`);
  }
  if (!Number.isFinite(perSecond) || perSecond <= 0) {
    throw new RangeError(`Expected limits.perSecond to be a positive number, got ${String(perSecond)}`);
  }
  return { burst, perSecond };
}
