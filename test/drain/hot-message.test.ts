import { afterAll, beforeAll, expect, it } from 'vitest';
import { VirtualClock } from '../support/clock.ts';
import { BOT, type Harness, runDueWakeups, startHarness, testReconciler } from '../support/harness.ts';
import {
  drainHandler,
  editBody,
  eventOf,
  failedIds,
  freshLedger,
  recordingSqs,
  sqsRecord,
} from './support/fixtures.ts';

// One message edited far faster than its cadence, through the edits queue: the records of its
// group come in events of 10 (as SQS FIFO hands out one group's records), the drain acknowledges
// them all, and the reconcile woken for its portal applies the latest state once per cadence.
let h: Harness;
let clock: VirtualClock;

beforeAll(async () => {
  clock = new VirtualClock();
  h = await startHarness({ clock });
});
afterAll(() => h.close());

it('acknowledges every record of a hot message and applies its last edit within one cadence of the last call', async () => {
  const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'answer: …' });
  const ledger = await freshLedger(h);
  const options = { messageMinIntervalMs: 1_000, batchLingerMs: 0 };
  const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger, clock, options });
  const reconcile = testReconciler(h, ledger, options);
  // 200 edits over 5 s: events of 10, a quarter of a second apart; the reconcile runs what is due.
  for (let event = 0; event < 20; event += 1) {
    const records = Array.from({ length: 10 }, (_, i) =>
      sqsRecord(
        editBody(
          id,
          { message: `answer: ${event * 10 + i}` },
          { requestedAt: new Date(clock.now() + i).toISOString() },
        ),
      ),
    );
    expect(failedIds(await drain(eventOf(records))), `event ${event}`).toEqual([]);
    await runDueWakeups(h, reconcile);
    clock.advance(250);
  }
  const lastCall = Math.max(...h.emulator.calls.map((call) => call.at));
  const wakeup = h.wakeups.last('acme');
  expect(wakeup?.at).toBeLessThanOrEqual(lastCall + 1_000);
  clock.advanceTo(wakeup?.at ?? 0);
  await runDueWakeups(h, reconcile);
  expect(h.emulator.getMessage(id)?.text).toBe('answer: 199');
  // One call per cadence at most: 5 s of edits, and the final state.
  const calls = h.emulator.calls.filter((call) => !call.viaBatch);
  expect(calls.length).toBeLessThanOrEqual(7);
  expect(h.emulator.getMessage(id)?.history.length).toBe(calls.length + 1);
});
