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
