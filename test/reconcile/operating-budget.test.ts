import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { emptyStats } from '../../lib/reconcile/send.ts';
import type { OperatingBilling } from '../../local/bitrix24-emulator/types.ts';
import { VirtualClock } from '../support/clock.ts';
import { BOT, freshLedger, type Harness, startHarness, testReconciler } from '../support/harness.ts';

/**
 * One emulator per billing reading: 4 s of server time per method in ten 400 ms baskets, 32 ms a
 * command; calls of 6 commands (0.19 s), a twentieth of the budget (on a cloud portal a full call is
 * a few hundredths of it: the finer, the less a call that does not fit leaves unused).
 */
const SCALED = { limitSeconds: 4, basketMs: 400, processingMs: 32, commandsPerCall: 6 };
const WINDOW_MS = 10 * SCALED.basketMs;
const WINDOWS = 3;

const harnesses: Harness[] = [];
afterAll(() => Promise.all(harnesses.map((h) => h.close())));

describe.each<OperatingBilling>(['per-method', 'per-batch'])(
  'a long drain under a scaled operating budget billed %s',
  (billing) => {
    // On a virtual clock shared by the emulator, the ledger and the reconcilers: the share of the
    // budget used is a property of the pacing, the same on an idle machine and on a loaded one.
    // Two alignments of the run to the portal's baskets (150 ms in, calls fell in our drop margin).
    it.each([0, 150])(
      'never receives OPERATION_TIME_LIMIT and uses at least 90% of what the budget allows, across containers (baskets %i ms in)',
      async (offset) => {
        const clock = new VirtualClock(Date.UTC(2026, 0, 1) + offset);
        const h = await startHarness({
          clock,
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
            maxCommandsPerCall: SCALED.commandsPerCall,
            operatingLimitSeconds: SCALED.limitSeconds,
            operatingBasketMs: SCALED.basketMs,
          });
        // More than the budget lets through in the run: the budget, not the backlog, is the limit.
        const ids = Array.from({ length: 450 }, () =>
          h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '-' }),
        );
        const first = container();
        for (let i = 0; i < ids.length; i += 50) {
          await Promise.all(
            ids.slice(i, i + 50).map((messageId) => {
              const key = { portal: 'acme', botId: BOT.id, messageId };
              const fields = { message: `edit of ${messageId}` };
              return first.merge(key, [{ ...key, fields, editId: randomUUID(), at: clock.now(), seq: '' }]);
            }),
          );
        }
        h.emulator.clearCalls();
        const runMs = WINDOWS * WINDOW_MS + 1_000;
        const until = clock.now() + runMs;
        // Calls stop at `deadline`: the time kept for one call's timeout and margin comes on top.
        const run = (ms: number) => {
          const deadline = Math.min(until, clock.now() + ms) + 3_100;
          return {
            hints: [],
            mode: 'fill' as const,
            remainingMs: () => deadline - clock.now(),
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
      },
    );
  },
);
