import type { RateLimits } from '../bitrix24/types.ts';
import { LeakyBucket, type ShareOptions, shareOfLimits } from './leaky-bucket.ts';

/**
 * What a background caller of Bitrix24 needs to remember per portal in one container: its pacer and
 * whether the portal refuses imbot.v2 inside `batch`. The drain's `DrainState` has the same shape.
 */
export interface PortalPacing {
  /** The portal's bucket, made on first use from the secret's limits, remade when they change. */
  pace(portal: string, limits: RateLimits): { bucket: LeakyBucket };
  refusesBatch(portal: string): boolean;
  rememberBatchRefused(portal: string): void;
}

export interface PortalPacersOptions {
  /** How this container's slice of each portal's limits is cut (see `shareOfLimits`). */
  share: ShareOptions;
  /** Clock in milliseconds, handed to every bucket. Default `Date.now`. */
  now?: () => number;
}

interface Pace {
  limits: RateLimits;
  bucket: LeakyBucket;
}

/**
 * One leaky bucket per portal for the life of a container, so that everything in it that calls
 * Bitrix24 in the background queues behind the same bucket instead of each assuming the whole slice.
 */
export class PortalPacers implements PortalPacing {
  readonly #share: ShareOptions;
  readonly #now: () => number;
  readonly #paces = new Map<string, Pace>();
  readonly #noBatch = new Set<string>();

  constructor(options: PortalPacersOptions) {
    // Checked once here, so that a bad share fails at cold start rather than on the first portal.
    shareOfLimits({ burst: 1, perSecond: 1 }, options.share);
    this.#share = { ...options.share };
    this.#now = options.now ?? Date.now;
  }

  pace(portal: string, limits: RateLimits): { bucket: LeakyBucket } {
    const pace = this.#paces.get(portal);
    if (pace && pace.limits.burst === limits.burst && pace.limits.perSecond === limits.perSecond) return pace;
    const share = shareOfLimits(limits, this.#share);
    // A remade bucket keeps the old level (within its new burst): requests just sent still count.
    const bucket = new LeakyBucket(share, {
      now: this.#now,
      initialLevel: pace ? Math.min(pace.bucket.level(), share.burst) : 0,
    });
    const made = { limits: { burst: limits.burst, perSecond: limits.perSecond }, bucket };
    this.#paces.set(portal, made);
    return made;
  }

  refusesBatch(portal: string): boolean {
    return this.#noBatch.has(portal);
  }

  rememberBatchRefused(portal: string): void {
    this.#noBatch.add(portal);
  }
}
