import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../lib/ledger/store.ts';
import {
  markSpent,
  type OperatingPolicy,
  operatingWaitMs,
  recordOperating,
  usedSeconds,
} from '../../lib/pacing/operating-budget.ts';
import { emptyStats } from '../../lib/reconcile/send.ts';
import type { OperatingBilling } from '../../local/bitrix24-emulator/types.ts';
import { BOT, freshLedger, type Harness, startHarness, testReconciler } from '../support/harness.ts';

const cloud: OperatingPolicy = { limitSeconds: 480, basketMs: 60_000, threshold: 0.8 };
const T0 = Date.UTC(2026, 11, 2, 12, 0, 0);

describe('the operating-time model', () => {
  it('lets calls through at once while the method is under the threshold', () => {
    const use = recordOperating(undefined, { startedAt: T0, commands: 50, operating: 100 }, cloud);
    expect(use?.perCommand).toBeCloseTo(2);
    expect(operatingWaitMs(use, 50, T0 + 1_000, cloud)).toBe(0);
  });

  it('spreads the rest of the budget until the oldest basket drops once past the threshold', () => {
    // 380 s used by 50 commands at T0 (7.6 s each): one more command makes 387.6 s, past 80% of 480.
    const use = recordOperating(undefined, { startedAt: T0, commands: 50, operating: 380 }, cloud);
    const at = T0 + 30_000;
    const wait = operatingWaitMs(use, 1, at, cloud);
    // 7.6 s of the 100 s left, at the pace that spends the rest by T0's drop (600 s): 42.4 s after T0.
    const due = at + wait;
    expect(due - T0).toBeGreaterThan(42_000);
    expect(due - T0).toBeLessThan(43_000);
    // Later in the window the same call is due at once: its share of the rest has been earned.
    expect(operatingWaitMs(use, 1, T0 + 100_000, cloud)).toBe(0);
  });

  it('never lets a call cross the limit: it waits for the baskets whose drop makes room', () => {
    let use = recordOperating(undefined, { startedAt: T0, commands: 50, operating: 300 }, cloud);
    use = recordOperating(use, { startedAt: T0 + 120_000, commands: 50, operating: 470 }, cloud);
    expect(usedSeconds(use, T0 + 130_000, cloud)).toBeCloseTo(470);
    // 50 commands cost more than 5 s each now, far more than the 10 s left: wait for T0's basket.
    const wait = operatingWaitMs(use, 50, T0 + 130_000, cloud);
    // (Two seconds after the drop by Bitrix24's clock: the request's way there and the clocks' skew.)
    expect(T0 + 130_000 + wait).toBe(T0 + 602_000);
    expect(usedSeconds(use, T0 + 602_000, cloud)).toBeCloseTo(170);
  });

  it('after OPERATION_TIME_LIMIT waits until the reset Bitrix24 named, even for spend it never saw', () => {
    const spent = markSpent(undefined, T0, T0 + 45_000, cloud);
    const withCost = recordOperating(spent, { startedAt: T0, commands: 1, operating: 481 }, cloud);
    expect(operatingWaitMs(withCost, 1, T0 + 1_000, cloud)).toBe(44_000);
    expect(operatingWaitMs(withCost, 1, T0 + 45_000, cloud)).toBe(0);
  });
});

/**
 * One emulator per billing reading: 4 s of server time per method in ten 400 ms baskets, 8 ms a
 * command; calls of 25 commands (0.2 s), a twentieth of the budget (on a cloud portal a full call is
 * a few hundredths of it: the finer, the less a call that does not fit leaves unused).
 */
const SCALED = { limitSeconds: 4, basketMs: 400, processingMs: 8 };
const WINDOW_MS = 10 * SCALED.basketMs;
const WINDOWS = 3;

const harnesses: Harness[] = [];
afterAll(() => Promise.all(harnesses.map((h) => h.close())));

describe.each<OperatingBilling>(['per-method', 'per-batch'])(
  'a long drain under a scaled operating budget billed %s',
  (billing) => {
    // The share is of wall-clock time, and this process also hosts the emulator and DynamoDB: when a
    // loaded CI machine stalls it for seconds, the calls it could not make in them are lost to the
    // ratio (seen once in CI: 0.87, with gaps of 2.6 and 3.1 s between calls; alone it reaches 0.97).
    // One more run then.
    it('never receives OPERATION_TIME_LIMIT and uses at least 90% of what the budget allows, across containers', {
      retry: 1,
    }, async () => {
      const h = await startHarness({
        timeoutMs: 3_000,
        emulator: {
          operatingBilling: billing,
          operatingLimitSeconds: SCALED.limitSeconds,
          operatingBasketMs: SCALED.basketMs,
          processingMs: SCALED.processingMs,
        },
      });
      harnesses.push(h);
      const ledger: Ledger = await freshLedger(h);
      const container = () =>
        testReconciler(h, ledger, {
          apiRateShare: 0,
          maxCommandsPerCall: 25,
          operatingLimitSeconds: SCALED.limitSeconds,
          operatingBasketMs: SCALED.basketMs,
        });
      // More than the budget lets through in the run: the budget, not the backlog, is the limit.
      const ids = Array.from({ length: 1_800 }, () =>
        h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '-' }),
      );
      const first = container();
      for (let i = 0; i < ids.length; i += 50) {
        await Promise.all(
          ids.slice(i, i + 50).map((messageId) => {
            const key = { portal: 'acme', botId: BOT.id, messageId };
            const fields = { message: `edit of ${messageId}` };
            return first.merge(key, [{ ...key, fields, editId: randomUUID(), at: Date.now(), seq: '' }]);
          }),
        );
      }
      h.emulator.clearCalls();
      const runMs = WINDOWS * WINDOW_MS + 1_000;
      const until = Date.now() + runMs;
      // Calls stop at `deadline`: the time kept for one call's timeout and margin comes on top.
      const run = (ms: number) => {
        const deadline = Math.min(until, Date.now() + ms) + 3_100;
        return {
          hints: [],
          mode: 'fill' as const,
          remainingMs: () => deadline - Date.now(),
          stats: emptyStats(),
        };
      };
      // Two containers one after the other: the second continues from the book the first left.
      await first.reconcilePortal('acme', run(runMs / 2));
      await container().reconcilePortal('acme', run(runMs));

      const calls = h.emulator.calls;
      expect(calls.filter((c) => c.code === 'OPERATION_TIME_LIMIT' || c.httpStatus === 429)).toEqual([]);
      const t0 = calls[0]?.at ?? 0;
      const applied = calls.filter(
        (c) => c.viaBatch && c.httpStatus === 200 && c.at >= t0 && c.at < t0 + WINDOWS * WINDOW_MS,
      ).length;
      const usedSeconds = (applied * SCALED.processingMs) / 1000;
      const allowedSeconds = WINDOWS * SCALED.limitSeconds;
      expect(
        usedSeconds / allowedSeconds,
        `${applied} commands in ${WINDOWS} windows; calls at ${calls.filter((c) => !c.viaBatch).map((c) => c.at - t0)} ms`,
      ).toBeGreaterThanOrEqual(0.9);
      expect(usedSeconds).toBeLessThanOrEqual(allowedSeconds + 0.2 + 1e-9);
    });
  },
);
