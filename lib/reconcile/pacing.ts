import type { B24Time, RateLimits } from '../bitrix24/types.ts';
import { LeakyBucket, shareOfLimits } from '../pacing/leaky-bucket.ts';

/** Requests of each portal's burst kept unused as a margin for timing differences. */
const BURST_SLACK = 1;

interface PortalPace {
  limitsKey: string;
  share: RateLimits;
  bucket: LeakyBucket;
}

export interface PortalPacingOptions {
  /** How many senders share each portal's budget at once (1 for reconcilers: the lease makes them take turns). */
  concurrency: number;
  /** The fraction of each portal's budget left to the synchronous API. */
  apiShare: number;
  now: () => number;
}

/**
 * What one container remembers between invocations about each portal: its slice of the rate
 * budget, portals that refuse imbot.v2 inside `batch`, and the last `time` object Bitrix24 sent
 * (OPERATION_TIME_LIMIT answers carry none; the last success's `operating_reset_at` says when to retry).
 */
export class PortalPacing {
  readonly #options: PortalPacingOptions;
  readonly #paces = new Map<string, PortalPace>();
  readonly #noBatch = new Set<string>();
  readonly #lastTime = new Map<string, B24Time>();
  /** Where the previous holder of a portal's lease left its bucket (epoch ms it empties). */
  readonly #handedOver = new Map<string, number>();

  constructor(options: PortalPacingOptions) {
    this.#options = options;
  }

  /** The portal's pacer, remade when the secret's limits change. */
  pace(portal: string, limits: RateLimits): PortalPace {
    const limitsKey = `${limits.burst}/${limits.perSecond}`;
    let pace = this.#paces.get(portal);
    if (!pace || pace.limitsKey !== limitsKey) {
      const slice = shareOfLimits(limits, {
        concurrency: this.#options.concurrency,
        apiShare: this.#options.apiShare,
      });
      // One request of the burst is left unused: our view and Bitrix24's differ by a request's
      // latency, and at the very edge of the burst that difference is a QUERY_LIMIT_EXCEEDED.
      const share = { ...slice, burst: Math.max(1, slice.burst - BURST_SLACK) };
      pace = { limitsKey, share, bucket: new LeakyBucket(share, { now: this.#options.now }) };
      this.#paces.set(portal, pace);
    }
    const handedOver = this.#handedOver.get(portal);
    if (handedOver !== undefined) {
      pace.bucket.continueFrom(handedOver);
      this.#handedOver.delete(portal);
    }
    return pace;
  }

  /** Continues from the bucket another container left with the portal's lease. */
  takeOver(portal: string, emptyAt: number | undefined): void {
    if (emptyAt !== undefined) this.#handedOver.set(portal, emptyAt);
  }

  /** When this container's bucket of the portal empties, for the next holder of the lease. */
  handOver(portal: string): number | undefined {
    return this.#paces.get(portal)?.bucket.emptyAt();
  }

  /** After QUERY_LIMIT_EXCEEDED: Bitrix24's bucket is full, whatever ours said. */
  penalise(portal: string): void {
    this.#paces.get(portal)?.bucket.penalise();
  }

  refusesBatch(portal: string): boolean {
    return this.#noBatch.has(portal);
  }

  rememberBatchRefused(portal: string): void {
    this.#noBatch.add(portal);
  }

  lastTime(portal: string): B24Time | undefined {
    return this.#lastTime.get(portal);
  }

  rememberTime(portal: string, time: B24Time | undefined): void {
    if (time) this.#lastTime.set(portal, time);
  }
}

/** How long until `n` more requests fit our slice of the bucket, without reserving them. */
export function waitForRoom(bucket: LeakyBucket, share: RateLimits, n = 1): number {
  const over = bucket.level() + n - share.burst;
  return over <= 0 ? 0 : Math.ceil((over / share.perSecond) * 1000);
}
