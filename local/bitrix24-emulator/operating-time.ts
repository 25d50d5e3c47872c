const BASKET_MS = 60_000;
const WINDOW_MS = 10 * BASKET_MS;

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
export function idleOperating(atMs: number): OperatingState {
  return { operating: 0, resetAt: Math.floor((atMs + WINDOW_MS) / 1000) };
}

/**
 * Execution time per method per app/webhook, summed in ten one-minute baskets (cloud limits.md).
 * A call is refused once the sum is at or above the limit; the call that crosses it still runs.
 */
export class OperatingTime {
  readonly #baskets = new Map<string, Map<number, Basket>>();
  readonly #now: () => number;
  readonly #limitSeconds: number;

  constructor(limitSeconds: number, now: () => number) {
    this.#limitSeconds = limitSeconds;
    this.#now = now;
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
    if (!Number.isFinite(oldest)) return idleOperating(at);
    return { operating: round(operating), resetAt: Math.floor((oldest + WINDOW_MS) / 1000) };
  }

  isBlocked(key: string): boolean {
    return this.state(key).operating >= this.#limitSeconds;
  }

  add(key: string, seconds: number): void {
    const at = this.#now();
    const baskets = this.#live(key, at);
    const minute = Math.floor(at / BASKET_MS);
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
      if (at >= basket.firstAt + WINDOW_MS) baskets.delete(minute);
    }
    return baskets;
  }
}

function round(seconds: number): number {
  return Math.round(seconds * 1e6) / 1e6;
}
