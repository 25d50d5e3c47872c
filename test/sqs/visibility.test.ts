import { describe, expect, it } from 'vitest';
import { toVisibilityTimeoutSeconds } from '../../lib/sqs/visibility.ts';

describe('toVisibilityTimeoutSeconds', () => {
  it.each([
    [0, 0],
    [1, 1],
    [999, 1],
    [1_000, 1],
    [1_001, 2],
    [-5_000, 0],
    [12 * 3_600_000, 43_200],
    [12 * 3_600_000 + 1, 43_200],
    [Number.POSITIVE_INFINITY, 43_200],
  ])('turns %s ms into %s s', (ms, seconds) => {
    expect(toVisibilityTimeoutSeconds(ms)).toBe(seconds);
  });

  it('refuses NaN rather than hiding a bug as a zero wait', () => {
    expect(() => toVisibilityTimeoutSeconds(Number.NaN)).toThrow('Expected ms to be a number, got NaN');
  });
});
