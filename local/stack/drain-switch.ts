import { setTimeout as delay } from 'node:timers/promises';
import type { DrainPauseView, ResumeReport } from './sandbox/state.ts';

/** Something the switch stops and starts: the drain's and the reconcile's pollers, the sweep, the status schedules. */
export interface Pausable {
  readonly paused: boolean;
  /** Resolves once what was running has finished: nothing reconciles after it. */
  pause(): Promise<void>;
  resume(): void;
}

/** What waits in the queues: edit records for the drain, portal wake-ups for the reconcile. */
export interface Queued {
  /** Edit records in the edits queue, waiting or in flight. */
  edits: number;
  /** Wake-ups on the portal work queue, delayed, waiting or in flight. */
  wakeups: number;
}

export interface DrainSwitchOptions {
  /** The drain (the ingest stage) on the edits queue: it merges records into the ledger. */
  drain: Pausable;
  /** The reconcile on the portal work queue: the only stage that calls Bitrix24 for deferred edits. */
  reconcile: Pausable;
  /** Run once at a resume before the drain, so that overdue portals are woken with the backlog. */
  sweep: Pausable & { runNow(): Promise<void> };
  /** The status schedules, when there are any: their refresh fills its call with the portal's dirty messages. */
  schedules?: () => Pausable | undefined;
  /** Bitrix24 calls made so far: the emulator's record, or the handlers' own counts against a real portal. */
  calls: () => number;
  /** What waits in the queues now. */
  queued: () => Promise<Queued>;
  /** How long a resume waits for the queues to empty before it reports. Default 15000. */
  landingWaitMs?: number;
  /** Starts paused (`npm start -- --paused`). Default false. */
  paused?: boolean;
  onChange?: (view: DrainPauseView) => void;
}

const DEFAULT_LANDING_WAIT_MS = 15_000;
const LANDING_POLL_MS = 100;

/**
 * The sandbox's "Pause the drain" switch. Paused, nothing reconciles: the drain's and the
 * reconcile's pollers stop receiving (edit records stay in the edits queue, portal wake-ups on the
 * portal work queue) and the sweep and the status schedules skip their runs (edits deferred by the
 * API stay desired ahead of applied in the ledger). A resume runs the sweep once, then the drain and
 * the reconcile, and counts the Bitrix24 calls until both queues are empty. One change at a time.
 */
export class DrainSwitch {
  readonly #options: DrainSwitchOptions;
  #paused: boolean;
  #since: Date | undefined;
  #editsWhilePaused = 0;
  #resuming = false;
  #lastResume: ResumeReport | undefined;
  #changes: Promise<unknown> = Promise.resolve();

  constructor(options: DrainSwitchOptions) {
    this.#options = options;
    this.#paused = options.paused ?? false;
    if (this.#paused) this.#since = new Date();
  }

  get paused(): boolean {
    return this.#paused;
  }

  view(): DrainPauseView {
    return {
      paused: this.#paused,
      ...(this.#since ? { since: this.#since.toISOString() } : {}),
      editsWhilePaused: this.#editsWhilePaused,
      resuming: this.#resuming,
      ...(this.#lastResume ? { lastResume: { ...this.#lastResume } } : {}),
    };
  }

  /** The API deferred an edit (202): counted while paused. */
  noteDeferredEdit(): void {
    if (!this.#paused) return;
    this.#editsWhilePaused += 1;
    this.#changed();
  }

  /** Resolves true once paused and nothing runs any more; false when it already was. */
  pause(): Promise<boolean> {
    return this.#serially(async () => {
      if (this.#paused) return false;
      this.#paused = true;
      this.#since = new Date();
      this.#editsWhilePaused = 0;
      this.#changed();
      const { drain, reconcile, sweep, schedules } = this.#options;
      await Promise.all([drain.pause(), reconcile.pause(), sweep.pause(), schedules?.()?.pause()]);
      return true;
    });
  }

  /** Resolves with what the backlog took, or undefined when the drain was not paused. */
  resume(): Promise<ResumeReport | undefined> {
    return this.#serially(async () => {
      if (!this.#paused) return undefined;
      const { drain, reconcile, sweep, schedules, calls, queued } = this.#options;
      const started = performance.now();
      const at = new Date().toISOString();
      // The API's deferred edits wait in the ledger, not in a queue: they are counted as they come.
      const edits = this.#editsWhilePaused + (await queued().catch(() => ({ edits: 0 }))).edits;
      const before = calls();
      this.#paused = false;
      this.#since = undefined;
      this.#resuming = true;
      this.#changed();
      try {
        sweep.resume();
        await sweep.runNow();
        drain.resume();
        reconcile.resume();
        const landed = await this.#emptied();
        this.#lastResume = {
          at,
          edits,
          calls: calls() - before,
          landed,
          durationMs: Math.round(performance.now() - started),
        };
        return { ...this.#lastResume };
      } finally {
        // Last: a status refresh would spend calls of its own in the window counted above.
        schedules?.()?.resume();
        this.#resuming = false;
        this.#changed();
      }
    });
  }

  async #emptied(): Promise<boolean> {
    const deadline = Date.now() + (this.#options.landingWaitMs ?? DEFAULT_LANDING_WAIT_MS);
    while (Date.now() < deadline) {
      const queued = await this.#options.queued().catch(() => undefined);
      if (queued && queued.edits + queued.wakeups === 0) return true;
      await delay(LANDING_POLL_MS);
    }
    return false;
  }

  #serially<T>(change: () => Promise<T>): Promise<T> {
    const next = this.#changes.then(change);
    this.#changes = next.catch(() => undefined);
    return next;
  }

  #changed(): void {
    this.#options.onChange?.(this.view());
  }
}

/** "20 edits → 1 Bitrix24 call", the page's and the console's summary of a resume. */
export function resumeSummary(report: ResumeReport): string {
  const edits = `${report.edits} edit${report.edits === 1 ? '' : 's'}`;
  const calls = `${report.calls} Bitrix24 call${report.calls === 1 ? '' : 's'}`;
  const took = `${(report.durationMs / 1000).toFixed(1)} s`;
  return report.landed
    ? `${edits} → ${calls} in ${took}`
    : `${edits} → ${calls} so far; the queues still held work after ${took}`;
}
