import { describe, expect, it } from 'vitest';
import { Strategy } from '../../lib/bitrix24/error-table.ts';
import { type RetryDelayInput, redeliveryDelayMs, retryDelayMs } from '../../lib/pacing/backoff.ts';
import { enterprisePlan, standardPlan, zeroDelayBackoff } from '../../lib/pacing/policies.ts';
import { MAX_VISIBILITY_TIMEOUT_SECONDS, toVisibilityTimeoutSeconds } from '../../lib/sqs/visibility.ts';
import { seededRandom } from '../support/random.ts';

const NOW = 1_700_000_000_000;
const MINUTE = 60_000;
const ALMOST_ONE = 1 - Number.EPSILON;

function delay(input: Partial<RetryDelayInput> & Pick<RetryDelayInput, 'strategy'>): number {
  return retryDelayMs({ attempt: 1, now: NOW, random: () => 0, limits: standardPlan, ...input });
}

/** Delays for many random draws, to check jitter stays within its bounds. */
function spread(input: Partial<RetryDelayInput> & Pick<RetryDelayInput, 'strategy'>): {
  min: number;
  max: number;
} {
  const random = seededRandom(7);
  const delays = Array.from({ length: 2_000 }, () => delay({ ...input, random }));
  return { min: Math.min(...delays), max: Math.max(...delays) };
}

describe('retryDelayMs after QUERY_LIMIT_EXCEEDED', () => {
  it('waits at least 1 s even when one request drains faster', () => {
    expect(delay({ strategy: Strategy.RateLimit, limits: standardPlan })).toBe(1_000);
    expect(delay({ strategy: Strategy.RateLimit, limits: enterprisePlan })).toBe(1_000);
  });

  it('waits for one request to drain when that takes longer than 1 s', () => {
    expect(delay({ strategy: Strategy.RateLimit, limits: { burst: 10, perSecond: 0.25 } })).toBe(4_000);
  });

  it('adds up to 1 s of jitter', () => {
    expect(delay({ strategy: Strategy.RateLimit, random: () => ALMOST_ONE })).toBe(1_999);
    const { min, max } = spread({ strategy: Strategy.RateLimit });
    expect(min).toBeGreaterThanOrEqual(1_000);
    expect(max).toBeLessThan(2_000);
    expect(max - min).toBeGreaterThan(900);
  });

  it('does not depend on the attempt', () => {
    expect(delay({ strategy: Strategy.RateLimit, attempt: 9 })).toBe(1_000);
  });

  it('waits at least as long as Retry-After says', () => {
    expect(delay({ strategy: Strategy.RateLimit, retryAfterSeconds: 3 })).toBe(3_000);
    expect(delay({ strategy: Strategy.RateLimit, retryAfterSeconds: 0 })).toBe(1_000);
  });
});

describe('retryDelayMs after OPERATION_TIME_LIMIT', () => {
  it('waits until operating_reset_at', () => {
    const time = { operating: 480.2, operating_reset_at: NOW / 1000 + 95 };
    expect(delay({ strategy: Strategy.OperatingLimit, time })).toBe(95_000);
  });

  it('adds 0 to 5 s of jitter', () => {
    const time = { operating_reset_at: NOW / 1000 + 30 };
    expect(delay({ strategy: Strategy.OperatingLimit, time, random: () => ALMOST_ONE })).toBe(34_999);
    const { min, max } = spread({ strategy: Strategy.OperatingLimit, time });
    expect(min).toBeGreaterThanOrEqual(30_000);
    expect(max).toBeLessThan(35_000);
    expect(max - min).toBeGreaterThan(4_500);
  });

  it('waits 60 s, one basket, when the reset time is unknown', () => {
    expect(delay({ strategy: Strategy.OperatingLimit })).toBe(MINUTE);
    expect(delay({ strategy: Strategy.OperatingLimit, time: { operating: 500 } })).toBe(MINUTE);
  });

  it('waits 60 s when the reset time is already past, since the time object is stale', () => {
    expect(delay({ strategy: Strategy.OperatingLimit, time: { operating_reset_at: NOW / 1000 - 5 } })).toBe(
      MINUTE,
    );
    expect(delay({ strategy: Strategy.OperatingLimit, time: { operating_reset_at: NOW / 1000 } })).toBe(
      MINUTE,
    );
  });

  it('waits no longer than the ten-minute window whatever the reset time claims', () => {
    const time = { operating_reset_at: NOW / 1000 + 86_400 };
    expect(delay({ strategy: Strategy.OperatingLimit, time })).toBe(10 * MINUTE);
  });

  it('waits at least as long as Retry-After says', () => {
    const time = { operating_reset_at: NOW / 1000 + 10 };
    expect(delay({ strategy: Strategy.OperatingLimit, time, retryAfterSeconds: 20 })).toBe(20_000);
  });
});

describe('retryDelayMs after a server error', () => {
  it('draws from 0 up to 2 s on the first attempt', () => {
    expect(delay({ strategy: Strategy.Server, random: () => 0 })).toBe(0);
    expect(delay({ strategy: Strategy.Server, random: () => 0.5 })).toBe(1_000);
    expect(delay({ strategy: Strategy.Server, random: () => ALMOST_ONE })).toBe(1_999);
  });

  it('doubles the ceiling on each attempt', () => {
    const ceilings = [1, 2, 3, 4, 5].map(
      (attempt) => delay({ strategy: Strategy.Server, attempt, random: () => 0.5 }) * 2,
    );
    expect(ceilings).toEqual([2_000, 4_000, 8_000, 16_000, 30_000]);
  });

  it('caps the ceiling at 30 seconds, even for absurd attempt counts: once the portal answers, every message is tried within half a minute', () => {
    for (const attempt of [5, 11, 50, 5_000]) {
      expect(delay({ strategy: Strategy.Server, attempt, random: () => 0.5 })).toBe(15_000);
      expect(delay({ strategy: Strategy.Server, attempt, random: () => ALMOST_ONE })).toBeLessThan(30_000);
    }
  });

  it('spreads delays over the whole range below the ceiling (full jitter)', () => {
    const { min, max } = spread({ strategy: Strategy.Server, attempt: 4 });
    expect(min).toBeGreaterThanOrEqual(0);
    expect(min).toBeLessThan(100);
    expect(max).toBeLessThan(16_000);
    expect(max).toBeGreaterThan(15_900);
  });

  it('follows a given policy, and the zero-delay policy never waits', () => {
    expect(
      delay({
        strategy: Strategy.Server,
        attempt: 3,
        random: () => 0.5,
        policy: { baseMs: 100, capMs: 300 },
      }),
    ).toBe(150);
    expect(
      delay({ strategy: Strategy.Server, attempt: 7, random: () => ALMOST_ONE, policy: zeroDelayBackoff }),
    ).toBe(0);
  });

  it('waits at least as long as Retry-After says', () => {
    expect(delay({ strategy: Strategy.Server, retryAfterSeconds: 30 })).toBe(30_000);
  });
});

describe('retryDelayMs after OVERLOAD_LIMIT', () => {
  it("waits until the portal's circuit closes, plus up to 5 s", () => {
    expect(delay({ strategy: Strategy.Overload, circuitOpenUntil: NOW + 5 * MINUTE })).toBe(5 * MINUTE);
    expect(
      delay({ strategy: Strategy.Overload, circuitOpenUntil: NOW + 5 * MINUTE, random: () => ALMOST_ONE }),
    ).toBe(5 * MINUTE + 4_999);
  });

  it('waits only the jitter when the circuit has just closed', () => {
    expect(delay({ strategy: Strategy.Overload, circuitOpenUntil: NOW - 1_000 })).toBe(0);
  });

  it("follows the circuit's schedule by attempt when no circuit time is given: 5 min doubling to 1 h", () => {
    const minutes = [1, 2, 3, 4, 5, 6, 1_000].map(
      (attempt) => delay({ strategy: Strategy.Overload, attempt }) / MINUTE,
    );
    expect(minutes).toEqual([5, 10, 20, 40, 60, 60, 60]);
  });
});

describe('retryDelayMs for failures that waiting cannot fix', () => {
  it.each([Strategy.RefreshAuth, Strategy.Auth, Strategy.Permanent])('throws for %s', (strategy) => {
    expect(() => delay({ strategy })).toThrow(`A ${strategy} failure is not retried after a delay`);
  });

  it('throws for a strategy it does not know', () => {
    expect(() => delay({ strategy: 'later' as Strategy })).toThrow('Unknown strategy "later"');
  });
});

describe('retryDelayMs input checks', () => {
  it.each([
    [{ attempt: 0 }, 'Expected attempt to be an integer of at least 1, got 0'],
    [{ attempt: 1.5 }, 'Expected attempt to be an integer of at least 1, got 1.5'],
    [{ now: Number.NaN }, 'Expected now to be a finite number, got NaN'],
    [{ random: () => 1 }, 'Expected random() to return a number in [0, 1), got 1'],
    [{ retryAfterSeconds: -1 }, 'Expected retryAfterSeconds to be a non-negative number, got -1'],
    [{ limits: { burst: 50, perSecond: 0 } }, 'Expected limits.perSecond to be a positive number, got 0'],
    [
      { policy: { baseMs: 100, capMs: 50 } },
      'Expected policy.capMs to be a number of at least policy.baseMs (100), got 50',
    ],
    [{ policy: { baseMs: -1, capMs: 50 } }, 'Expected policy.baseMs to be a non-negative number, got -1'],
  ])('refuses %o, naming the input and value', (input, message) => {
    expect(() => delay({ strategy: Strategy.Server, ...input })).toThrow(message);
  });

  it('refuses a circuit time that is not a number', () => {
    expect(() => delay({ strategy: Strategy.Overload, circuitOpenUntil: Number.NaN })).toThrow(
      'Expected circuitOpenUntil to be a finite number, got NaN',
    );
  });
});

describe('delays as SQS visibility timeouts', () => {
  it('fits every retryable delay into one visibility timeout', () => {
    const longest = Math.max(
      delay({ strategy: Strategy.Server, attempt: 100, random: () => ALMOST_ONE }),
      delay({ strategy: Strategy.Overload, attempt: 100, random: () => ALMOST_ONE }),
      delay({
        strategy: Strategy.OperatingLimit,
        time: { operating_reset_at: NOW / 1000 + 1e9 },
        random: () => ALMOST_ONE,
      }),
    );
    expect(toVisibilityTimeoutSeconds(longest)).toBeLessThan(MAX_VISIBILITY_TIMEOUT_SECONDS);
  });
});

describe('redeliveryDelayMs', () => {
  it('doubles the wait of a record handed back with each receive, from the base, up to 15 minutes', () => {
    expect([1, 2, 3, 4].map((n) => redeliveryDelayMs(n, 1_000))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(redeliveryDelayMs(11, 1_000)).toBe(15 * 60_000);
    // Ten receives (a queue's redrive) span a quarter of an hour of a store outage, not ten seconds.
    const total = Array.from({ length: 10 }, (_, i) => redeliveryDelayMs(i + 1, 1_000)).reduce(
      (a, b) => a + b,
    );
    expect(total).toBeGreaterThan(15 * 60_000);
  });
});
