import type { RateLimits } from '../bitrix24/types.ts';
import { LeakyBucket, type ShareOptions, shareOfLimits } from './leaky-bucket.ts';

export interface PortalPacersOptions {
  /** How this container's slice of each portal's limits is cut (see `shareOfLimits`). */
  share: ShareOptions;
  /** Clock in milliseconds, handed to every bucket. Default `Date.now`. */
  now?: () => number;
}

interface Entry {
  limits: RateLimits;
  bucket: LeakyBucket;
}

/**
 * One leaky bucket per portal for the life of a container, shared by everything in it that calls
 * Bitrix24 in the background (the drain, the status refresh), so that they queue behind each other
 * instead of each assuming the portal's whole slice. Built on first use from the limits in the
 * portal's secret; a secret whose limits changed (a plan upgrade) gets a fresh bucket.
 */
export class PortalPacers {
  readonly #share: ShareOptions;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Entry>();

  constructor(options: PortalPacersOptions) {
    // Checked once here, so that a bad share fails at cold start rather than on the first portal.
    shareOfLimits({ burst: 1, perSecond: 1 }, options.share);
    this.#share = { ...options.share };
    this.#now = options.now ?? Date.now;
  }

  /** The portal's bucket, for `{ portal, limits }` of its secret. */
  for(secret: { portal: string; limits: RateLimits }): LeakyBucket {
    const entry = this.#buckets.get(secret.portal);
    if (entry && sameLimits(entry.limits, secret.limits)) return entry.bucket;
    // A replaced bucket keeps the old level (within its new burst): requests just sent still count.
    const share = shareOfLimits(secret.limits, this.#share);
    const bucket = new LeakyBucket(share, {
      now: this.#now,
      initialLevel: entry ? Math.min(entry.bucket.level(), share.burst) : 0,
    });
    this.#buckets.set(secret.portal, { limits: { ...secret.limits }, bucket });
    return bucket;
  }

  /** Portals with a bucket so far. */
  get size(): number {
    return this.#buckets.size;
  }
}

function sameLimits(a: RateLimits, b: RateLimits): boolean {
  return a.burst === b.burst && a.perSecond === b.perSecond;
}
