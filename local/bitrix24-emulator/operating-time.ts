/** Bitrix24 sums execution time in ten one-minute baskets; tests scale the minute down. */
export const DEFAULT_BASKET_MS = 60_000;
const BASKETS = 10;

interface Basket {
  /** When the first call of this minute ran; the basket drops ten minutes later. */
  firstAt: number;
  seconds: number;
}

export interface OperatingState {
  /** Seconds used in the window. */
  operating: number;
  /** Unix seconds when the oldest basket drops. */
  resetAt: number;
}

/** The state of a caller/method with no recent calls: a call now would start a basket dropping in ten minutes. */
export function idleOperating(atMs: number, basketMs = DEFAULT_BASKET_MS): OperatingState {
  return { operating: 0, resetAt: resetSeconds(atMs + BASKETS * basketMs, basketMs) };
}

/**
 * `operating_reset_at` is whole Unix seconds; with baskets scaled below a second (tests) it keeps
 * milliseconds, or it would say nothing useful.
 */
function resetSeconds(ms: number, basketMs: number): number {
  return basketMs >= 1000 ? Math.floor(ms / 1000) : Math.floor(ms) / 1000;
}

/**
 * Execution time per method per app/webhook, summed in ten one-minute baskets (cloud limits.md).
 * A call is refused once the sum is at or above the limit; the call that crosses it still runs.
 * Keys are `caller|method`; which method a `batch` bills is the engine's choice (`operatingBilling`).
 */
export class OperatingTime {
  readonly #baskets = new Map<string, Map<number, Basket>>();
  readonly #now: () => number;
  readonly #limitSeconds: number;
  readonly #basketMs: number;

  constructor(limitSeconds: number, now: () => number, basketMs = DEFAULT_BASKET_MS) {
    this.#limitSeconds = limitSeconds;
    this.#now = now;
    this.#basketMs = basketMs;
  }

  get windowMs(): number {
    return BASKETS * this.#basketMs;
  }

  state(key: string): OperatingState {
    const at = this.#now();
    const baskets = this.#live(key, at);
    let operating = 0;
    let oldest = Number.POSITIVE_INFINITY;
    for (const basket of baskets.values()) {
      operating += basket.seconds;
      oldest = Math.min(oldest, basket.firstAt);
    }
    if (!Number.isFinite(oldest)) return idleOperating(at, this.#basketMs);
    return { operating: round(operating), resetAt: resetSeconds(oldest + this.windowMs, this.#basketMs) };
  }

  isBlocked(key: string): boolean {
    return this.state(key).operating >= this.#limitSeconds;
  }

  add(key: string, seconds: number): void {
    const at = this.#now();
    const baskets = this.#live(key, at);
    const minute = Math.floor(at / this.#basketMs);
    const basket = baskets.get(minute);
    if (basket) basket.seconds += seconds;
    else baskets.set(minute, { firstAt: at, seconds });
  }

  clear(): void {
    this.#baskets.clear();
  }

  #live(key: string, at: number): Map<number, Basket> {
    let baskets = this.#baskets.get(key);
    if (!baskets) {
      baskets = new Map();
      this.#baskets.set(key, baskets);
    }
    for (const [minute, basket] of baskets) {
      if (at >= basket.firstAt + this.windowMs) baskets.delete(minute);
    }
    return baskets;
  }
}

function round(seconds: number): number {
  return Math.round(seconds * 1e6) / 1e6;
}
