import { type Clock, systemClock } from '../../lib/clock.ts';

/**
 * A virtual timeline for tests: time moves only when code waits on it. `sleep(ms)` moves the clock
 * `ms` forward and lets other work run before it resolves, so a waiter always finds at least `ms`
 * passed (what pacing relies on), however long the machine took to get there. Requests over
 * loopback take no virtual time: a test of pacing, budgets, cadence or settle windows sees the
 * same timeline on an idle machine and on a loaded one.
 *
 * Several actors sleeping at once add up their waits (the clock never goes back), as if each had
 * been descheduled for the others' time: what never crosses a limit on the real clock never
 * crosses it here either.
 */
export class VirtualClock implements Clock {
  #at: number;

  /** Starts at `start` (epoch ms); default: the real time now, rounded to a second. */
  constructor(start = Math.floor(Date.now() / 1000) * 1000) {
    this.#at = start;
  }

  readonly now = (): number => this.#at;

  readonly sleep = async (ms: number, signal?: AbortSignal): Promise<void> => {
    if (signal?.aborted) return;
    if (ms > 0) this.#at += ms;
    // Other work runs first, as it would while this caller waited.
    await new Promise<void>((resolve) => setImmediate(resolve));
  };

  /** Moves the clock forward by `ms` (the test's own passing of time). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`Expected ms to be a non-negative number, got ${String(ms)}`);
    this.#at += ms;
  }

  /** Moves the clock forward to `at` (epoch ms); never back. */
  advanceTo(at: number): void {
    if (!(at >= this.#at)) throw new RangeError(`Expected a time at or after ${this.#at}, got ${String(at)}`);
    this.#at = at;
  }

  /** Sets the clock to `at`, back as well as forward: a wall clock stepped by time synchronisation. */
  stepTo(at: number): void {
    if (!Number.isFinite(at)) throw new RangeError(`Expected a time in epoch ms, got ${String(at)}`);
    this.#at = at;
  }
}

/** `base` read `offsetMs` ahead: another container whose time is later (past a backoff). */
export function laterClock(offsetMs: number, base: Clock = systemClock): Clock {
  return { now: () => base.now() + offsetMs, sleep: (ms, signal) => base.sleep(ms, signal) };
}
