import { describe, expect, it } from 'vitest';
import {
  markSpent,
  type OperatingPolicy,
  operatingWaitMs,
  recordOperating,
  usedSeconds,
} from '../../lib/pacing/operating-budget.ts';

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

  it('counts a call made after the portal dropped a basket that we keep a margin longer, so its cost is not lost when ours drops', () => {
    // 300 s at T0; the portal drops that basket at T0 + 600 s, we at T0 + 602 s (the margin).
    let use = recordOperating(undefined, { startedAt: T0, commands: 50, operating: 300 }, cloud);
    // One second past the portal's drop: it counts only this call, 100 s.
    use = recordOperating(use, { startedAt: T0 + 601_000, commands: 50, operating: 100 }, cloud);
    expect(usedSeconds(use, T0 + 601_500, cloud)).toBeCloseTo(100);
    // After our own drop of T0's basket, the 100 s are still there.
    expect(usedSeconds(use, T0 + 603_000, cloud)).toBeCloseTo(100);
  });

  it('keeps a basket past the nominal drop while the portal still counts it (its clock is behind ours)', () => {
    let use = recordOperating(undefined, { startedAt: T0, commands: 50, operating: 300 }, cloud);
    // 16 commands at the 6 s a command seen so far: the answer's 400 s hold T0's 300 and this call's.
    use = recordOperating(use, { startedAt: T0 + 601_000, commands: 16, operating: 400 }, cloud);
    expect(usedSeconds(use, T0 + 601_500, cloud)).toBeCloseTo(400);
    expect(usedSeconds(use, T0 + 603_000, cloud)).toBeCloseTo(100);
  });

  it('after OPERATION_TIME_LIMIT waits until the reset Bitrix24 named, even for spend it never saw', () => {
    const spent = markSpent(undefined, T0, T0 + 45_000, cloud);
    const withCost = recordOperating(spent, { startedAt: T0, commands: 1, operating: 481 }, cloud);
    expect(operatingWaitMs(withCost, 1, T0 + 1_000, cloud)).toBe(44_000);
    expect(operatingWaitMs(withCost, 1, T0 + 45_000, cloud)).toBe(0);
  });
});
