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

/** What one container keeps of one portal. */
interface PortalMemory {
  pace?: PortalPace | undefined;
  /** Where the previous holder of the portal's lease left its bucket (epoch ms it empties). */
  handedOver?: number | undefined;
  /** Operating-time use per method, as the portal's answers report it. */
  operating?: OperatingBook | undefined;
  /** The portal refuses imbot.v2 inside `batch`. */
  refusesBatch: boolean;
  /** When the portal's last call started (epoch ms), by any holder. */
  lastCallAt?: number | undefined;
  lastTime?: B24Time | undefined;
}

/**
 * What one container remembers between invocations about each portal: its rate bucket and
 * operating-time book (both handed from lease holder to lease holder), whether it refuses imbot.v2
 * inside `batch`, and the last `time` object Bitrix24 sent (OPERATION_TIME_LIMIT answers carry none;
 * the last success's `operating_reset_at` says when to retry).
 */
export class PortalPacing {
  readonly #options: PortalPacingOptions;
  readonly #portals = new Map<string, PortalMemory>();

  constructor(options: PortalPacingOptions) {
    this.#options = options;
  }

  #memory(portal: string): PortalMemory {
    let memory = this.#portals.get(portal);
    if (!memory) {
      memory = { refusesBatch: false };
      this.#portals.set(portal, memory);
    }
    return memory;
  }

  /**
   * The portal's bucket, remade when the secret's limits change. There is one per portal for the
   * whole fleet: the lease hands it from holder to holder (`takeOver`, `handOver`), the API's calls
   * included, so no container starts with a fresh burst of its own.
   */
  pace(portal: string, limits: RateLimits): PortalPace {
    const { burst, perSecond } = normaliseLimits(limits);
    const limitsKey = `${burst}/${perSecond}`;
    const memory = this.#memory(portal);
    let pace = memory.pace;
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
      memory.pace = pace;
    }
    if (memory.handedOver !== undefined) {
      pace.bucket.continueFrom(memory.handedOver);
      memory.handedOver = undefined;
    }
    return pace;
  }

  /** Continues from the bucket, the operating-time book and the last call another holder left. */
  takeOver(
    portal: string,
    emptyAt: number | undefined,
    operating?: OperatingBook,
    lastCallAt?: number,
  ): void {
    const memory = this.#memory(portal);
    if (emptyAt !== undefined) memory.handedOver = emptyAt;
    if (operating !== undefined) memory.operating = operating;
    if (lastCallAt !== undefined) memory.lastCallAt = Math.max(memory.lastCallAt ?? 0, lastCallAt);
  }

  /** A call to the portal started at `at`. */
  noteCall(portal: string, at: number): void {
    const memory = this.#memory(portal);
    memory.lastCallAt = Math.max(memory.lastCallAt ?? 0, at);
  }

  /** When the portal's last call started, as far as this container knows. */
  lastCallAt(portal: string): number | undefined {
    return this.#portals.get(portal)?.lastCallAt;
  }

  /** When this container's bucket of the portal empties, for the next holder of the lease. */
  handOver(portal: string): number | undefined {
    return this.#portals.get(portal)?.pace?.bucket.emptyAt();
  }

  /** The portal's operating-time book for the next holder of the lease (baskets still in the window). */
  operatingBook(portal: string): OperatingBook {
    return pruneOperatingBook(
      this.#portals.get(portal)?.operating ?? {},
      this.#options.now(),
      this.#options.operating,
    );
  }

  /**
   * How long a call must wait for the operating-time budget of every method it is billed to
   * (a `batch` call: `batch` and its commands' method, whichever reading of the docs holds).
   */
  operatingWait(portal: string, methods: readonly string[], commands: number): number {
    const book = this.#portals.get(portal)?.operating;
    if (!book) return 0;
    const now = this.#options.now();
    return Math.max(
      0,
      ...methods.map((m) => operatingWaitMs(book[m], commands, now, this.#options.operating)),
    );
  }

  /** Records what an answer reported of a method's operating time. */
  noteOperating(portal: string, method: string, seen: OperatingObservation): void {
    const memory = this.#memory(portal);
    const book = memory.operating ?? {};
    const use = recordOperating(book[method], seen, this.#options.operating);
    if (use) memory.operating = { ...book, [method]: use };
  }

  /** After OPERATION_TIME_LIMIT: the methods' budget is spent until `freeAt`. */
  operatingSpent(portal: string, methods: readonly string[], freeAt: number): void {
    const memory = this.#memory(portal);
    const book = { ...(memory.operating ?? {}) };
    const now = this.#options.now();
    for (const m of methods) book[m] = markSpent(book[m], now, freeAt, this.#options.operating);
    memory.operating = book;
  }

  /** After QUERY_LIMIT_EXCEEDED: Bitrix24's bucket is full, whatever ours said. */
  penalise(portal: string): void {
    this.#portals.get(portal)?.pace?.bucket.penalise();
  }

  refusesBatch(portal: string): boolean {
    return this.#portals.get(portal)?.refusesBatch === true;
  }

  rememberBatchRefused(portal: string): void {
    this.#memory(portal).refusesBatch = true;
  }

  lastTime(portal: string): B24Time | undefined {
    return this.#portals.get(portal)?.lastTime;
  }

  rememberTime(portal: string, time: B24Time | undefined): void {
    if (time) this.#memory(portal).lastTime = time;
  }
}

/** How long until `n` more requests fit the bucket below `cap`, without reserving them. */
export function waitForRoom(pace: PortalPace, cap: number, n = 1): number {
  const over = pace.bucket.level() + n - cap;
  return over <= 0 ? 0 : Math.ceil((over / pace.perSecond) * 1000);
}
