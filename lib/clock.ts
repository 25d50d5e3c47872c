import { setTimeout as delay } from 'node:timers/promises';

/**
 * Time as the code sees it: read and waited on through one object, so that a test can run the same
 * code on a virtual timeline (test/support/clock.ts) and its outcomes do not depend on how busy the
 * machine is. Every module that waits takes a `Clock`; one that only reads takes its `now`.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Resolves once `ms` have passed (at once for `ms <= 0`), or early when `signal` aborts; never rejects. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The machine's clock and timers. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (ms <= 0 || signal?.aborted) return;
    await delay(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
  },
});

/**
 * The skew bound: containers' clocks are trusted to agree with the store's within this many ms. A
 * container whose clock is further off (an ahead API container stamping edits in the future, a
 * sweeper judging leases by its own time) reads time through a `StoreClock`, corrected to the
 * store's own clock.
 */
export const CLOCK_SKEW_BOUND_MS = 1_000;

/**
 * What one answer's `Date` header (whole seconds, the server's clock while it answered) says of the
 * local clock's offset from the server's: the offset lies in `[low, high]`. The server's clock read
 * some time in `[date, date + 1000)`, while the local one read in `[sentAt, receivedAt]`.
 */
export function offsetBounds(
  date: number,
  sentAt: number,
  receivedAt: number,
): { low: number; high: number } {
  return { low: date - receivedAt, high: date + 1_000 - sentAt };
}

/**
 * The machine's clock corrected to a server's (the ledger's DynamoDB endpoint): each answer's `Date`
 * header bounds the offset (to a second and the round trip), and the correction is the middle of
 * the latest answer's bounds. A machine within `CLOCK_SKEW_BOUND_MS` of the server is left as it is
 * (a `Date` header says little below a second); one further off is corrected to within about half
 * a second.
 */
export class StoreClock implements Clock {
  #offset = 0;
  #last = Number.NEGATIVE_INFINITY;
  #observed = false;
  #calibrating: Promise<void> | undefined;
  readonly #base: Clock;
  readonly #probe: (() => Promise<unknown>) | undefined;

  /** `probe`: one cheap request to the store, made by `calibrate` when no answer was seen yet. */
  constructor(base: Clock = systemClock, probe?: () => Promise<unknown>) {
    this.#base = base;
    this.#probe = probe;
  }

  /** The machine's own time, uncorrected (what `observe` is given). */
  readonly machineNow = (): number => this.#base.now();

  /**
   * Makes sure the correction rests on at least one answer of the store (a cold container's first
   * stamp would otherwise be the machine's): one probe, shared, its failure ignored.
   */
  calibrate(): Promise<void> {
    if (this.#observed || !this.#probe) return Promise.resolve();
    const probe = this.#probe;
    this.#calibrating ??= probe().then(
      () => undefined,
      () => undefined,
    );
    return this.#calibrating;
  }

  /** The correction applied, ms (positive: the machine is behind the store). */
  get offset(): number {
    return this.#offset;
  }

  /**
   * Never earlier than a time it gave since the first answer: a correction moves time on, or holds
   * it, never back. (Before any answer the machine's time is all there is, and the first
   * correction may well undo it.)
   */
  readonly now = (): number => {
    const time = this.#base.now() + this.#offset;
    if (!this.#observed) return time;
    this.#last = Math.max(this.#last, time);
    return this.#last;
  };

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.#base.sleep(ms, signal);
  }

  /** One answer: sent and received at these machine times, with this `Date` header. */
  observe(date: string | undefined, sentAt: number, receivedAt: number): void {
    const server = date === undefined ? Number.NaN : Date.parse(date);
    if (!Number.isFinite(server)) return;
    this.#observed = true;
    const { low, high } = offsetBounds(server, sentAt, receivedAt);
    // Within the bound of no correction at all: none.
    if (low <= CLOCK_SKEW_BOUND_MS && high >= -CLOCK_SKEW_BOUND_MS) {
      this.#offset = 0;
      return;
    }
    // A correction the answer allows stays (no jitter from answer to answer); one it rules out
    // moves to the middle of what it allows: off by at most half of its width (a second and the
    // request's round trip).
    if (this.#offset < low || this.#offset > high) this.#offset = Math.round((low + high) / 2);
  }
}
