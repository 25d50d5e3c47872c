import { describe, expect, it } from 'vitest';
import { FailureLimit } from '../../lib/callers/index.ts';

describe('the failure limit of key checks', () => {
  it('closes a source at its limit until its window, counted from its first failure, ends', () => {
    const limit = new FailureLimit({ limit: 3, windowMs: 60_000, maxSources: 100 });
    limit.fail('10.0.0.1', 1_000);
    limit.fail('10.0.0.1', 20_000);
    expect(limit.closedFor('10.0.0.1', 20_000)).toBe(0);
    limit.fail('10.0.0.1', 30_000);
    expect(limit.closedFor('10.0.0.1', 30_000)).toBe(31_000);
    expect(limit.closedFor('10.0.0.2', 30_000)).toBe(0);
    expect(limit.closedFor('10.0.0.1', 60_999)).toBe(1);
    expect(limit.closedFor('10.0.0.1', 61_000)).toBe(0);
    // A fresh window: one failure is not enough to close it again.
    limit.fail('10.0.0.1', 61_000);
    expect(limit.closedFor('10.0.0.1', 61_000)).toBe(0);
  });

  it('ends a window when the clock is stepped back before it began', () => {
    const limit = new FailureLimit({ limit: 1, windowMs: 60_000, maxSources: 100 });
    limit.fail('10.0.0.1', 100_000);
    expect(limit.closedFor('10.0.0.1', 100_000)).toBe(60_000);
    expect(limit.closedFor('10.0.0.1', 99_999)).toBe(0);
  });

  it('remembers at most maxSources, forgetting the one whose window began first', () => {
    const limit = new FailureLimit({ limit: 1, windowMs: 60_000, maxSources: 3 });
    for (const [i, source] of ['a', 'b', 'c', 'd'].entries()) limit.fail(source, 1_000 + i);
    expect(limit.size).toBe(3);
    expect(limit.closedFor('a', 2_000)).toBe(0);
    expect(['b', 'c', 'd'].map((source) => limit.closedFor(source, 2_000) > 0)).toEqual([true, true, true]);
  });
});
