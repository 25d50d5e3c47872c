import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { observeServerTime } from '../../lib/aws.ts';
import { CLOCK_SKEW_BOUND_MS, type Clock, StoreClock, systemClock } from '../../lib/clock.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { postUpdate, update, updateDeps } from '../api/helpers.ts';
import { AWS, type Harness, startHarness } from '../support/harness.ts';

/** A machine whose clock runs `ms` off the true time. */
const offBy = (ms: number): Clock => ({ now: () => Date.now() + ms, sleep: systemClock.sleep });
const header = (ms: number) => new Date(ms).toUTCString();

describe('a clock corrected to the store’s', () => {
  it('moves a machine 120 s ahead back to the store’s time, to within the answer’s second, even after it was read before any answer', () => {
    const clock = new StoreClock(offBy(120_000));
    // Read before the first answer: the machine's time, which must not hold the clock there after.
    expect(clock.now() - Date.now()).toBeGreaterThan(119_000);
    const sentAt = clock.machineNow();
    clock.observe(header(Date.now()), sentAt, clock.machineNow());
    expect(Math.abs(clock.now() - Date.now())).toBeLessThanOrEqual(1_500);
  });

  it('moves a machine 5 s behind forward', () => {
    const clock = new StoreClock(offBy(-5_000));
    clock.observe(header(Date.now()), clock.machineNow(), clock.machineNow());
    expect(clock.offset).toBeGreaterThanOrEqual(5_000 - 1_000);
    expect(Math.abs(clock.now() - Date.now())).toBeLessThanOrEqual(1_500);
  });

  it('keeps a correction later answers allow, and never goes back in time', () => {
    let machine = 1_000_000;
    const clock = new StoreClock({ now: () => machine, sleep: systemClock.sleep });
    // The store is 120 s behind this machine: its answers say so.
    clock.observe(header(machine - 120_000), machine, machine + 20);
    const corrected = clock.offset;
    expect(corrected).toBeLessThan(-118_000);
    const before = clock.now();
    // A later answer allows the same correction: it stays as it is.
    machine += 5_000;
    clock.observe(header(machine - 120_000 + 300), machine, machine + 10);
    expect(clock.offset).toBe(corrected);
    // One that rules it out moves it, and what the clock gave before is never undercut.
    clock.observe(header(machine - 125_000), machine, machine + 10);
    expect(clock.offset).toBeLessThan(corrected);
    expect(clock.now()).toBeGreaterThanOrEqual(before);
  });

  it('leaves a machine within the skew bound as it is, and ignores answers without a date', () => {
    const clock = new StoreClock(offBy(CLOCK_SKEW_BOUND_MS / 2));
    clock.observe(header(Date.now()), clock.machineNow(), clock.machineNow());
    expect(clock.offset).toBe(0);
    clock.observe(undefined, 0, 0);
    clock.observe('not a date', 0, 0);
    expect(clock.offset).toBe(0);
  });
});

describe('an API container whose clock runs ahead', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ timeoutMs: 1_000 });
  });
  afterAll(async () => {
    await h.close();
  });

  it('stamps its edits with the ledger’s time, so a correct container’s later edit wins', async () => {
    const right = new Ledger({ tableName: h.ledgerTable, client: h.dynamo });
    // The ahead container: its own DynamoDB client, whose answers correct its clock.
    const client = new DynamoDBClient({ ...AWS, endpoint: h.dynamoEndpoint });
    const clock = new StoreClock(offBy(120_000), () => ahead.table.get('clock', 'read the store’s time'));
    observeServerTime(client, clock);
    const ahead = new Ledger({ tableName: h.ledgerTable, client, now: clock.now });
    const messageId = h.emulator.addMessage({ botId: 456, chatId: 12, text: 'start' });
    const aheadDeps = updateDeps(
      h,
      ahead,
      { now: () => new Date(clock.now()), calibrate: () => clock.calibrate() },
      { clock },
    );
    const first = update({ message: 'from the container 120 s ahead' }, { messageId });
    first.headers.prefer = 'respond-async';
    expect((await postUpdate(first, aheadDeps)).status).toBe(202);
    // Past what a `Date` header (whole seconds) can tell: the corrected clock is within half a second.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const later = update({ message: 'a second later, from a right clock' }, { messageId });
    later.headers.prefer = 'respond-async';
    expect((await postUpdate(later, updateDeps(h, right))).status).toBe(202);
    const state = await right.get({ portal: 'acme', botId: 456, messageId });
    expect(state.desired.message?.value).toBe('a second later, from a right clock');
    client.destroy();
  });
});
