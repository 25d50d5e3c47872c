import type { B24Time, RateLimits } from '../bitrix24/types.ts';
import { LeakyBucket, normaliseLimits } from '../pacing/leaky-bucket.ts';
import {
  markSpent,
  type OperatingBook,
  type OperatingObservation,
  type OperatingPolicy,
  operatingWaitMs,
  pruneOperatingBook,
  recordOperating,
} from '../pacing/operating-budget.ts';

/** Requests of each portal's burst kept unused as a margin for timing differences. */
const BURST_SLACK = 1;

export interface PortalPace {
  limitsKey: string;
  /** The portal's whole bucket as we keep it (its burst less the slack). */
  bucket: LeakyBucket;
  /** The fullest the drain and the sweep may take the bucket: all but the API's headroom. */
  backgroundCap: number;
  /** The fullest the API may take it. */
  apiCap: number;
  perSecond: number;
}

export interface PortalPacingOptions {
  /**
   * The fraction of each portal's burst the drain and the sweep leave free for the synchronous API
   * (API_RATE_SHARE): headroom, not a slice of the rate.
   */
  apiShare: number;
  /** Each method's operating-time budget (Bitrix24 cloud: 480 s per ten one-minute baskets). */
  operating: OperatingPolicy;
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
  /** Each portal's operating-time use per method, as its answers report it. */
  readonly #operating = new Map<string, OperatingBook>();

  constructor(options: PortalPacingOptions) {
    this.#options = options;
  }

  /**
   * The portal's bucket, remade when the secret's limits change. There is one per portal for the
   * whole fleet: the lease hands it from holder to holder (`takeOver`, `handOver`), the API's calls
   * included, so no container starts with a fresh burst of its own.
   */
  pace(portal: string, limits: RateLimits): PortalPace {
    const { burst, perSecond } = normaliseLimits(limits);
    const limitsKey = `${burst}/${perSecond}`;
    let pace = this.#paces.get(portal);
    if (!pace || pace.limitsKey !== limitsKey) {
      // One request of the burst is left unused: our view and Bitrix24's differ by a request's
      // latency, and at the very edge of the burst that difference is a QUERY_LIMIT_EXCEEDED.
      const apiCap = Math.max(1, burst - BURST_SLACK);
      const backgroundCap = Math.max(1, burst * (1 - this.#options.apiShare) - BURST_SLACK);
      pace = {
        limitsKey,
        bucket: new LeakyBucket({ burst: apiCap, perSecond }, { now: this.#options.now }),
        backgroundCap,
        apiCap,
        perSecond,
      };
      this.#paces.set(portal, pace);
    }
    const handedOver = this.#handedOver.get(portal);
    if (handedOver !== undefined) {
      pace.bucket.continueFrom(handedOver);
      this.#handedOver.delete(portal);
    }
    return pace;
  }

  /** Continues from the bucket and the operating-time book another container left with the lease. */
  takeOver(portal: string, emptyAt: number | undefined, operating?: OperatingBook): void {
    if (emptyAt !== undefined) this.#handedOver.set(portal, emptyAt);
    if (operating !== undefined) this.#operating.set(portal, operating);
  }

  /** When this container's bucket of the portal empties, for the next holder of the lease. */
  handOver(portal: string): number | undefined {
    return this.#paces.get(portal)?.bucket.emptyAt();
  }

  /** The portal's operating-time book for the next holder of the lease (baskets still in the window). */
  operatingBook(portal: string): OperatingBook {
    return pruneOperatingBook(
      this.#operating.get(portal) ?? {},
      this.#options.now(),
      this.#options.operating,
    );
  }

  /**
   * How long a call must wait for the operating-time budget of every method it is billed to
   * (a `batch` call: `batch` and its commands' method, whichever reading of the docs holds).
   */
  operatingWait(portal: string, methods: readonly string[], commands: number): number {
    const book = this.#operating.get(portal);
    if (!book) return 0;
    const now = this.#options.now();
    return Math.max(
      0,
      ...methods.map((m) => operatingWaitMs(book[m], commands, now, this.#options.operating)),
    );
  }

  /** Records what an answer reported of a method's operating time. */
  noteOperating(portal: string, method: string, seen: OperatingObservation): void {
    const book = this.#operating.get(portal) ?? {};
    const use = recordOperating(book[method], seen, this.#options.operating);
    if (use) this.#operating.set(portal, { ...book, [method]: use });
  }

  /** After OPERATION_TIME_LIMIT: the methods' budget is spent until `freeAt`. */
  operatingSpent(portal: string, methods: readonly string[], freeAt: number): void {
    const book = { ...(this.#operating.get(portal) ?? {}) };
    const now = this.#options.now();
    for (const m of methods) book[m] = markSpent(book[m], now, freeAt, this.#options.operating);
    this.#operating.set(portal, book);
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

/** How long until `n` more requests fit the bucket below `cap`, without reserving them. */
export function waitForRoom(pace: PortalPace, cap: number, n = 1): number {
  const over = pace.bucket.level() + n - cap;
  return over <= 0 ? 0 : Math.ceil((over / pace.perSecond) * 1000);
}
