import type { Context } from 'aws-lambda';
import { lambdaContext } from './lambda-context.ts';
import type { StatusSchedule } from './status-schedules.ts';

export type ScheduledHandler = (event: unknown, context: Context) => Promise<unknown>;

export interface ScheduledRun {
  schedule: string;
  at: string;
  durationMs: number;
  /** The handler's result (the status summary), when it returned. */
  result?: unknown;
  /** `Name: message` when it threw or timed out. */
  error?: string;
}

export interface SchedulerOptions {
  schedules: readonly StatusSchedule[];
  handler: ScheduledHandler;
  functionName: string;
  timeoutMs: number;
  onRun?: (run: ScheduledRun) => void;
  /** Starts paused: no run, not even the first, until `resume()`. Default false. */
  paused?: boolean;
}

export interface Scheduler {
  /** Runs every schedule (or the named one) now, unless it is already running. */
  runNow(name?: string): Promise<void>;
  lastRuns(): readonly ScheduledRun[];
  readonly paused: boolean;
  /**
   * Skips every run (timers and `runNow`) until `resume()`; resolves once the runs in progress have
   * finished (or after a few seconds, if one is stuck).
   */
  pause(): Promise<void>;
  /** Runs on the intervals again; the next run is at the next tick, not at once. */
  resume(): void;
  /** Stops the timers and waits (briefly) for runs in progress. */
  close(): Promise<void>;
}

const CLOSE_WAIT_MS = 3_000;

/**
 * What EventBridge does for the status function: each schedule's constant input, on its interval.
 * The first run is at start, so the page shows a current status at once. A run still in progress
 * when the next is due is not doubled.
 */
export function startScheduler(options: SchedulerOptions): Scheduler {
  const running = new Map<string, Promise<void>>();
  const last = new Map<string, ScheduledRun>();
  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  let paused = options.paused ?? false;

  async function invoke(schedule: StatusSchedule): Promise<void> {
    const started = performance.now();
    const at = new Date().toISOString();
    let run: ScheduledRun;
    try {
      const context = lambdaContext(options.functionName, options.timeoutMs);
      const result = await options.handler(structuredClone(schedule.input), context);
      run = { schedule: schedule.name, at, durationMs: Math.round(performance.now() - started), result };
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      const message = error instanceof Error ? error.message : String(error);
      run = {
        schedule: schedule.name,
        at,
        durationMs: Math.round(performance.now() - started),
        error: `${name}: ${message}`,
      };
    }
    last.set(schedule.name, run);
    options.onRun?.(run);
  }

  function trigger(schedule: StatusSchedule): Promise<void> {
    const current = running.get(schedule.name);
    if (current || closed || paused) return current ?? Promise.resolve();
    const run = invoke(schedule).finally(() => running.delete(schedule.name));
    running.set(schedule.name, run);
    return run;
  }

  for (const schedule of options.schedules) {
    timers.push(setInterval(() => void trigger(schedule), schedule.everyMs));
    void trigger(schedule);
  }

  async function settle(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_WAIT_MS);
    });
    await Promise.race([Promise.allSettled([...running.values()]), waited]);
    clearTimeout(timer);
  }

  return {
    async runNow(name) {
      await Promise.all(options.schedules.filter((s) => name === undefined || s.name === name).map(trigger));
    },
    lastRuns: () => [...last.values()],
    get paused() {
      return paused;
    },
    async pause() {
      paused = true;
      await settle();
    },
    resume() {
      paused = false;
    },
    async close() {
      closed = true;
      for (const timer of timers) clearInterval(timer);
      await settle();
    },
  };
}
