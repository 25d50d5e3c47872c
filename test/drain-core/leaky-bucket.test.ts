import { describe, expect, it } from 'vitest';
import type { RateLimits } from '../../lib/bitrix24/types.ts';
import { LeakyBucket, shareOfLimits } from '../../lib/pacing/leaky-bucket.ts';
import { enterprisePlan, standardPlan } from '../../lib/pacing/policies.ts';
import { fakeClock, seededRandom } from './helpers.ts';

describe('LeakyBucket', () => {
  it('lets a full burst through at once from empty, then paces at the drain rate', () => {
    const bucket = new LeakyBucket(standardPlan, { now: fakeClock().now });
    const waits = Array.from({ length: 53 }, () => bucket.reserve());
    expect(waits.slice(0, 50)).toEqual(Array(50).fill(0));
    expect(waits.slice(50)).toEqual([500, 1_000, 1_500]);
  });

  it('drains while time passes', () => {
    const clock = fakeClock();
    const bucket = new LeakyBucket(standardPlan, { now: clock.now, initialLevel: 50 });
    expect(bucket.level()).toBe(50);
    clock.advance(10_000);
    expect(bucket.level()).toBe(30);
    clock.advance(60_000);
    expect(bucket.level()).toBe(0);
  });

  it('counts a reservation at once, so callers reserving together queue one behind the other', () => {
    const clock = fakeClock();
    const bucket = new LeakyBucket(enterprisePlan, { now: clock.now, initialLevel: 250 });
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([200, 400, 600]);
    expect(bucket.level()).toBe(253);
    clock.advance(600);
    expect(bucket.reserve()).toBe(200);
  });

  it('reserves several requests at once', () => {
    const bucket = new LeakyBucket(standardPlan, { now: fakeClock().now, initialLevel: 45 });
    expect(bucket.reserve(5)).toBe(0);
    expect(bucket.reserve(2)).toBe(1_000);
  });

  it('starts from an initial level', () => {
    const bucket = new LeakyBucket(standardPlan, { now: fakeClock().now, initialLevel: 49.5 });
    expect(bucket.reserve()).toBe(250);
  });

  it('rounds waits up to whole milliseconds, so sleeping that long never sends early', () => {
    const bucket = new LeakyBucket({ burst: 1, perSecond: 3 }, { now: fakeClock().now });
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([
      0, 334, 667, 1_000,
    ]);
  });

  it('sets the level to the burst after a refusal, so the next request waits one drain', () => {
    const bucket = new LeakyBucket(standardPlan, { now: fakeClock().now });
    bucket.reserve();
    bucket.penalise();
    expect(bucket.level()).toBe(50);
    expect(bucket.reserve()).toBe(500);
  });

  it('penalises to a given level, but never below what is already reserved', () => {
    const bucket = new LeakyBucket(standardPlan, { now: fakeClock().now, initialLevel: 20 });
    bucket.penalise(30);
    expect(bucket.level()).toBe(30);
    bucket.penalise(10);
    expect(bucket.level()).toBe(30);
  });

  it('does not hand out capacity when the clock steps backwards', () => {
    const clock = fakeClock();
    const bucket = new LeakyBucket(standardPlan, { now: clock.now, initialLevel: 50 });
    clock.advance(-5_000);
    expect(bucket.reserve()).toBe(5_500);
  });

  it.each([
    [0, 'Expected n to be an integer from 1 to the burst 50, got 0'],
    [1.5, 'got 1.5'],
    [51, 'got 51'],
  ])('refuses to reserve %s requests', (n, message) => {
    expect(() => new LeakyBucket(standardPlan, { now: fakeClock().now }).reserve(n)).toThrow(message);
  });

  it.each([
    [{ burst: 0, perSecond: 2 }, {}, 'Expected limits.burst to be a number of at least 1, got 0'],
    [{ burst: 50, perSecond: 0 }, {}, 'Expected limits.perSecond to be a positive number, got 0'],
    [{ burst: 50, perSecond: Number.NaN }, {}, 'Expected limits.perSecond to be a positive number, got NaN'],
    [standardPlan, { initialLevel: -1 }, 'Expected initialLevel to be a non-negative number, got -1'],
    [standardPlan, { now: 1 as unknown as () => number }, 'Expected now to be a function, got number'],
  ])('refuses limits %o with options %o, naming the bad one', (limits, options, message) => {
    expect(() => new LeakyBucket(limits, options)).toThrow(message);
  });

  it('refuses a negative penalty level', () => {
    expect(() => new LeakyBucket(standardPlan, { now: fakeClock().now }).penalise(-1)).toThrow(
      'Expected levelToSet to be a non-negative number, got -1',
    );
  });
});

describe('shareOfLimits', () => {
  it('gives each container an equal slice of what the API path leaves', () => {
    expect(shareOfLimits(standardPlan, { concurrency: 3, apiShare: 0.1 })).toEqual({
      burst: 15,
      perSecond: 0.6,
    });
    expect(shareOfLimits(enterprisePlan, { concurrency: 1, apiShare: 0 })).toEqual({
      burst: 250,
      perSecond: 5,
    });
  });

  it('keeps the burst at least 1 for very many containers, while the rate keeps shrinking', () => {
    expect(shareOfLimits(standardPlan, { concurrency: 100, apiShare: 0.5 })).toEqual({
      burst: 1,
      perSecond: 0.01,
    });
  });

  it.each([
    [{ concurrency: 0, apiShare: 0 }, 'Expected concurrency to be an integer of at least 1, got 0'],
    [{ concurrency: 1.5, apiShare: 0 }, 'got 1.5'],
    [{ concurrency: 1, apiShare: 1 }, 'Expected apiShare to be a number in [0, 1), got 1'],
    [{ concurrency: 1, apiShare: -0.1 }, 'got -0.1'],
    [{ concurrency: 1, apiShare: Number.NaN }, 'got NaN'],
  ])('refuses %o, naming the option and value', (options, message) => {
    expect(() => shareOfLimits(standardPlan, options)).toThrow(message);
  });
});

/** Bitrix24's bucket as the portal keeps it: +1 per request, draining continuously, never below 0. */
class ReferenceBucket {
  level = 0;
  peak = 0;
  sent = 0;
  #at = 0;
  readonly #perMs: number;

  constructor(limits: RateLimits) {
    this.#perMs = limits.perSecond / 1000;
  }

  send(at: number): void {
    this.level = Math.max(0, this.level - (at - this.#at) * this.#perMs) + 1;
    this.#at = at;
    this.peak = Math.max(this.peak, this.level);
    this.sent += 1;
  }
}

interface Simulation {
  portal: RateLimits;
  pacers: RateLimits[];
  /** Pause after each send, in ms; 0 sends as fast as the pacer allows. */
  pause: (random: () => number) => number;
  seed: number;
}

/** Runs pacers sharing one fake clock against one reference bucket for ten minutes. */
function simulate({ portal, pacers, pause, seed }: Simulation): ReferenceBucket {
  const random = seededRandom(seed);
  const clock = fakeClock(0);
  const reference = new ReferenceBucket(portal);
  const buckets = pacers.map((limits) => new LeakyBucket(limits, { now: clock.now }));
  // Each pacer's next event: when it reserves, or when its reserved request goes out.
  const events = buckets.map((_, index) => ({ at: Math.floor(random() * 2_000), index, kind: 'reserve' }));
  const end = 10 * 60_000;
  for (;;) {
    const next = events.reduce((a, b) => (b.at < a.at ? b : a));
    if (next.at > end) break;
    clock.set(next.at);
    const bucket = buckets[next.index] as LeakyBucket;
    if (next.kind === 'reserve') {
      next.at += bucket.reserve();
      next.kind = 'send';
    } else {
      reference.send(next.at);
      next.at += pause(random);
      next.kind = 'reserve';
    }
  }
  return reference;
}

describe('pacers sharing a portal', () => {
  const greedy = () => 0;
  const bursty = (random: () => number) =>
    random() < 0.02 ? random() * 40_000 : random() < 0.3 ? random() * 300 : 0;

  for (const [planName, plan] of [
    ['standard', standardPlan],
    ['enterprise', enterprisePlan],
  ] as const) {
    for (const concurrency of [1, 3, 7]) {
      for (const apiShare of [0, 0.2]) {
        for (const [pattern, pause] of [
          ['greedy', greedy],
          ['bursty', bursty],
        ] as const) {
          it(`never overflow the ${planName} bucket with ${concurrency} ${pattern} containers and an API share of ${apiShare}`, () => {
            const share = shareOfLimits(plan, { concurrency, apiShare });
            const pacers = Array.from({ length: concurrency }, () => share);
            if (apiShare > 0)
              pacers.push({ burst: plan.burst * apiShare, perSecond: plan.perSecond * apiShare });
            const reference = simulate({ portal: plan, pacers, pause, seed: concurrency * 31 + plan.burst });
            expect(reference.peak).toBeLessThanOrEqual(plan.burst + 1e-9);
            if (pattern === 'greedy') {
              // Sending at their pace, the pacers together use (nearly) all of the portal's capacity.
              const capacity = plan.burst + plan.perSecond * 600;
              expect(reference.sent).toBeGreaterThan(capacity * 0.98);
              // Start offsets of up to 2 s let the bucket drain a little before the last pacer's burst.
              expect(reference.peak).toBeGreaterThan(plan.burst * 0.9);
            }
          });
        }
      }
    }
  }

  it('would overflow if each container took the whole portal limits (the check has teeth)', () => {
    const reference = simulate({
      portal: standardPlan,
      pacers: [standardPlan, standardPlan],
      pause: greedy,
      seed: 1,
    });
    expect(reference.peak).toBeGreaterThan(standardPlan.burst);
  });
});
