import type { RateLimits } from './types.ts';

/** The portal's request counter: +1 per HTTP request, drained continuously by `perSecond`. */
export class LeakyBucket {
  #limits: RateLimits | null;
  #level = 0;
  #updatedAt: number;
  readonly #now: () => number;

  constructor(limits: RateLimits | null, now: () => number) {
    this.#limits = limits;
    this.#now = now;
    this.#updatedAt = now();
  }

  setLimits(limits: RateLimits | null): void {
    this.#drain();
    this.#limits = limits;
  }

  level(): number {
    this.#drain();
    return this.#level;
  }

  /** Adds one request; false (and nothing added) when that would take the level above `burst`. */
  tryTake(): boolean {
    this.#drain();
    if (!this.#limits) return true;
    if (this.#level + 1 > this.#limits.burst) return false;
    this.#level += 1;
    return true;
  }

  empty(): void {
    this.#level = 0;
    this.#updatedAt = this.#now();
  }

  #drain(): void {
    const at = this.#now();
    const elapsedSeconds = Math.max(0, at - this.#updatedAt) / 1000;
    this.#updatedAt = at;
    if (this.#limits) this.#level = Math.max(0, this.#level - elapsedSeconds * this.#limits.perSecond);
  }
}
