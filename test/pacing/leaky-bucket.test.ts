import { describe, expect, it } from 'vitest';
import type { RateLimits } from '../../lib/bitrix24/types.ts';
import { LeakyBucket } from '../../lib/pacing/leaky-bucket.ts';
import { enterprisePlan, standardPlan } from '../../lib/pacing/policies.ts';
import { VirtualClock } from '../support/clock.ts';
import { seededRandom } from '../support/random.ts';

describe('LeakyBucket', () => {
  it('lets a full burst through at once from empty, then paces at the drain rate', () => {
    const bucket = new LeakyBucket(standardPlan, { now: new VirtualClock(1_700_000_000_000).now });
    const waits = Array.from({ length: 53 }, () => bucket.reserve());
    expect(waits.slice(0, 50)).toEqual(Array(50).fill(0));
    expect(waits.slice(50)).toEqual([500, 1_000, 1_500]);
  });

  it('drains while time passes', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const bucket = new LeakyBucket(standardPlan, { now: clock.now, initialLevel: 50 });
    expect(bucket.level()).toBe(50);
    clock.advance(10_000);
    expect(bucket.level()).toBe(30);
    clock.advance(60_000);
    expect(bucket.level()).toBe(0);
  });

  it('counts a reservation at once, so callers reserving together queue one behind the other', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const bucket = new LeakyBucket(enterprisePlan, { now: clock.now, initialLevel: 250 });
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([200, 400, 600]);
    expect(bucket.level()).toBe(253);
    clock.advance(600);
    expect(bucket.reserve()).toBe(200);
  });

  it('reserves several requests at once', () => {
    const bucket = new LeakyBucket(standardPlan, {
      now: new VirtualClock(1_700_000_000_000).now,
      initialLevel: 45,
    });
    expect(bucket.reserve(5)).toBe(0);
    expect(bucket.reserve(2)).toBe(1_000);
  });

  it('starts from an initial level', () => {
    const bucket = new LeakyBucket(standardPlan, {
      now: new VirtualClock(1_700_000_000_000).now,
      initialLevel: 49.5,
    });
    expect(bucket.reserve()).toBe(250);
  });

  it('rounds waits up to whole milliseconds, so sleeping that long never sends early', () => {
    const bucket = new LeakyBucket(
      { burst: 1, perSecond: 3 },
      { now: new VirtualClock(1_700_000_000_000).now },
    );
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([
      0, 334, 667, 1_000,
    ]);
  });

  it('sets the level to the burst after a refusal, so the next request waits one drain', () => {
    const bucket = new LeakyBucket(standardPlan, { now: new VirtualClock(1_700_000_000_000).now });
    bucket.reserve();
    bucket.penalise();
    expect(bucket.level()).toBe(50);
    expect(bucket.reserve()).toBe(500);
  });

  it('penalises to a given level, but never below what is already reserved', () => {
    const bucket = new LeakyBucket(standardPlan, {
      now: new VirtualClock(1_700_000_000_000).now,
      initialLevel: 20,
    });
    bucket.penalise(30);
    expect(bucket.level()).toBe(30);
    bucket.penalise(10);
    expect(bucket.level()).toBe(30);
  });

  it('does not hand out capacity when the clock steps backwards', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const bucket = new LeakyBucket(standardPlan, { now: clock.now, initialLevel: 50 });
    clock.stepTo(clock.now() - 5_000);
    expect(bucket.reserve()).toBe(5_500);
  });

  it.each([
    [0, 'Expected n to be an integer from 1 to the burst 50, got 0'],
    [1.5, 'got 1.5'],
    [51, 'got 51'],
  ])('refuses to reserve %s requests', (n, message) => {
    expect(() =>
      new LeakyBucket(standardPlan, { now: new VirtualClock(1_700_000_000_000).now }).reserve(n),
    ).toThrow(message);
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
    expect(() =>
      new LeakyBucket(standardPlan, { now: new VirtualClock(1_700_000_000_000).now }).penalise(-1),
    ).toThrow('Expected levelToSet to be a non-negative number, got -1');
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

interface Turns {
  portal: RateLimits;
  containers: number;
  /** Each holder continues from the bucket the previous holder left (the lease's hand-over). */
  handOver: boolean;
  /** Pause after each send, in ms; 0 sends as fast as the pacer allows. */
  pause: (random: () => number) => number;
  seed: number;
}

/**
 * Containers taking turns holding a portal's lease for ten minutes of a fake clock, each sending a
 * few requests per turn through its own bucket, against one reference bucket.
 */
function takeTurns({ portal, containers, handOver, pause, seed }: Turns): ReferenceBucket {
  const random = seededRandom(seed);
  const clock = new VirtualClock(0);
  const reference = new ReferenceBucket(portal);
  const buckets = Array.from({ length: containers }, () => new LeakyBucket(portal, { now: clock.now }));
  let leftAt: number | undefined;
  const end = 10 * 60_000;
  while (clock.now() < end) {
    const bucket = buckets[Math.floor(random() * containers)] as LeakyBucket;
    if (handOver && leftAt !== undefined) bucket.continueFrom(leftAt);
    const sends = 1 + Math.floor(random() * 80);
    for (let i = 0; i < sends && clock.now() < end; i++) {
      clock.advanceTo(clock.now() + bucket.reserve());
      reference.send(clock.now());
      clock.advanceTo(clock.now() + pause(random));
    }
    leftAt = bucket.emptyAt();
  }
  return reference;
}

describe('containers taking turns with the lease', () => {
  const greedy = () => 0;
  const bursty = (random: () => number) =>
    random() < 0.02 ? random() * 40_000 : random() < 0.3 ? random() * 300 : 0;

  for (const [planName, plan] of [
    ['standard', standardPlan],
    ['enterprise', enterprisePlan],
  ] as const) {
    for (const containers of [1, 3, 10]) {
      for (const [pattern, pause] of [
        ['greedy', greedy],
        ['bursty', bursty],
      ] as const) {
        it(`never overflow the ${planName} bucket with ${containers} ${pattern} containers continuing from the bucket handed over`, () => {
          const reference = takeTurns({
            portal: plan,
            containers,
            handOver: true,
            pause,
            seed: containers * 31,
          });
          expect(reference.peak).toBeLessThanOrEqual(plan.burst + 1e-9);
          if (pattern === 'greedy') {
            // Sending at their pace, the containers together use (nearly) all of the portal's capacity.
            expect(reference.sent).toBeGreaterThan((plan.burst + plan.perSecond * 600) * 0.98);
          }
        });
      }
    }
  }

  it('would overflow if each container started from a bucket of its own (the check has teeth)', () => {
    const reference = takeTurns({
      portal: standardPlan,
      containers: 3,
      handOver: false,
      pause: greedy,
      seed: 1,
    });
    expect(reference.peak).toBeGreaterThan(standardPlan.burst);
  });
});
