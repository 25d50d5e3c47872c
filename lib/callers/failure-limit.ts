export interface FailureLimitOptions {
  /** Failures of one source that close it for the rest of its window. */
  limit: number;
  /** A source's window, from its first failure (ms). */
  windowMs: number;
  /** Sources remembered at most; the one whose window began first is forgotten beyond it. */
  maxSources: number;
}

interface Window {
  since: number;
  failures: number;
}

/**
 * Failed key checks per source (the caller's IP) in this container, in a fixed window from the
 * source's first failure: once `limit` failed, the source is refused until the window ends. A
 * success does not reset the count: otherwise a holder of one good key could interleave it with
 * guesses at others. The memory stays bounded however many sources fail.
 */
export class FailureLimit {
  readonly #options: FailureLimitOptions;
  /** In the order the windows began: the first one is the oldest. */
  readonly #sources = new Map<string, Window>();

  constructor(options: FailureLimitOptions) {
    this.#options = options;
  }

  /** Sources remembered now. */
  get size(): number {
    return this.#sources.size;
  }

  /** How long `source` stays closed from `now` (ms), having used up its failures; 0 while it is open. */
  closedFor(source: string, now: number): number {
    const window = this.#current(source, now);
    if (!window || window.failures < this.#options.limit) return 0;
    return window.since + this.#options.windowMs - now;
  }

  /** Counts a failure of `source` at `now`. */
  fail(source: string, now: number): void {
    const window = this.#current(source, now);
    if (window) {
      window.failures += 1;
      return;
    }
    if (this.#sources.size >= this.#options.maxSources) {
      const oldest = this.#sources.keys().next();
      if (!oldest.done) this.#sources.delete(oldest.value);
    }
    this.#sources.set(source, { since: now, failures: 1 });
  }

  #current(source: string, now: number): Window | undefined {
    const window = this.#sources.get(source);
    if (!window) return undefined;
    // A clock stepped back ends the window too, rather than stretch it by the step.
    if (now >= window.since && now - window.since < this.#options.windowMs) return window;
    this.#sources.delete(source);
    return undefined;
  }
}
