import type { Wakeup, WakeupSender } from '../../lib/schedule/portal-queue.ts';

/**
 * The portal work queue kept in memory, for tests that drive the reconciles themselves on a
 * virtual clock (SQS delays run on the machine's time). The SQS path itself is tested through the
 * SQS emulator (the reconcile handler's tests, the local stack).
 */
export class WakeupLog implements WakeupSender {
  /** Every wake-up sent, in order. */
  readonly sent: Wakeup[] = [];
  #pending: Wakeup[] = [];

  async send(wakeups: readonly Wakeup[]): Promise<string[]> {
    this.sent.push(...wakeups);
    this.#pending.push(...wakeups);
    return [];
  }

  /** The portals whose wake-ups are due by `now` (each once), taken off the queue. */
  takeDue(now: number): string[] {
    const due = this.#pending.filter((w) => w.at <= now);
    this.#pending = this.#pending.filter((w) => w.at > now);
    return [...new Set(due.map((w) => w.portal))];
  }

  /** Wake-ups still waiting for their time. */
  pending(): readonly Wakeup[] {
    return this.#pending;
  }

  /** The latest wake-up sent for `portal`, if any. */
  last(portal: string): Wakeup | undefined {
    return this.sent.findLast((w) => w.portal === portal);
  }

  /** Forgets every wake-up (a new test). */
  clear(): void {
    this.sent.length = 0;
    this.#pending = [];
  }
}
