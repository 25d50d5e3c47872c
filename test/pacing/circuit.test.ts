import { describe, expect, it } from 'vitest';
import { PortalCircuits } from '../../lib/pacing/circuit.ts';
import { VirtualClock } from '../support/clock.ts';

const MINUTE = 60_000;

describe('PortalCircuits', () => {
  it('starts closed for every portal', () => {
    expect(
      new PortalCircuits({ now: new VirtualClock(1_700_000_000_000).now }).openUntil('a.bitrix24.com'),
    ).toBeUndefined();
  });

  it('opens for 5 minutes and closes by itself when they run out', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const circuits = new PortalCircuits({ now: clock.now });
    const start = clock.now();
    expect(circuits.open('a')).toBe(start + 5 * MINUTE);
    expect(circuits.openUntil('a')).toBe(start + 5 * MINUTE);
    clock.advance(5 * MINUTE - 1);
    expect(circuits.openUntil('a')).toBe(start + 5 * MINUTE);
    clock.advance(1);
    expect(circuits.openUntil('a')).toBeUndefined();
  });

  it('does not extend or double when opened again while still open', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const circuits = new PortalCircuits({ now: clock.now });
    const until = circuits.open('a');
    clock.advance(MINUTE);
    expect(circuits.open('a')).toBe(until);
    expect(circuits.open('a')).toBe(until);
    clock.advanceTo(until);
    expect(circuits.open('a') - until).toBe(10 * MINUTE);
  });

  it('doubles each open after a failed probe, from 5 minutes up to 1 hour', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const circuits = new PortalCircuits({ now: clock.now });
    const durations: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      const until = circuits.open('a');
      durations.push((until - clock.now()) / MINUTE);
      clock.advanceTo(until);
    }
    expect(durations).toEqual([5, 10, 20, 40, 60, 60, 60]);
  });

  it('starts again from 5 minutes after a success closes the circuit', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const circuits = new PortalCircuits({ now: clock.now });
    clock.advanceTo(circuits.open('a'));
    clock.advanceTo(circuits.open('a'));
    circuits.close('a');
    expect(circuits.openUntil('a')).toBeUndefined();
    expect(circuits.open('a') - clock.now()).toBe(5 * MINUTE);
  });

  it('closes at once when a success arrives while open', () => {
    const circuits = new PortalCircuits({ now: new VirtualClock(1_700_000_000_000).now });
    circuits.open('a');
    circuits.close('a');
    expect(circuits.openUntil('a')).toBeUndefined();
  });

  it('keeps portals independent', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const circuits = new PortalCircuits({ now: clock.now });
    clock.advanceTo(circuits.open('a'));
    const aUntil = circuits.open('a');
    const bUntil = circuits.open('b');
    expect(aUntil - clock.now()).toBe(10 * MINUTE);
    expect(bUntil - clock.now()).toBe(5 * MINUTE);
    circuits.close('a');
    expect(circuits.openUntil('a')).toBeUndefined();
    expect(circuits.openUntil('b')).toBe(bUntil);
  });

  it('stays at the cap however many opens pile up', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const circuits = new PortalCircuits({ now: clock.now, openMs: 1, maxOpenMs: 1_000 });
    for (let i = 0; i < 2_000; i += 1) clock.advanceTo(circuits.open('a'));
    expect(circuits.open('a') - clock.now()).toBe(1_000);
  });

  it('follows custom open times', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const circuits = new PortalCircuits({ now: clock.now, openMs: 100, maxOpenMs: 250 });
    const durations: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const until = circuits.open('a');
      durations.push(until - clock.now());
      clock.advanceTo(until);
    }
    expect(durations).toEqual([100, 200, 250, 250]);
  });

  it.each([
    [{ openMs: 0 }, 'Expected openMs to be a positive number, got 0'],
    [{ openMs: Number.NaN }, 'Expected openMs to be a positive number, got NaN'],
    [
      { openMs: 1_000, maxOpenMs: 999 },
      'Expected maxOpenMs to be a number of at least openMs (1000), got 999',
    ],
    [{ now: 5 as unknown as () => number }, 'Expected now to be a function, got number'],
  ])('refuses options %o naming the option and value', (options, message) => {
    expect(() => new PortalCircuits(options)).toThrow(message);
  });
});
