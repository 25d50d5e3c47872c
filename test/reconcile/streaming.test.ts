import { randomUUID } from 'node:crypto';
import type { SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import { createDrain } from '../../lib/drain/index.ts';
import { logger } from '../../lib/observability/logger.ts';
import { Reconciler } from '../../lib/reconcile/reconcile.ts';
import { VirtualClock } from '../support/clock.ts';
import { BOT, freshLedger, type Harness, runDueWakeups, startHarness } from '../support/harness.ts';

// Set before the modules load: a hundred invocations would print a hundred metric lines.
vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

// On a virtual clock shared by the emulator, the ledger, the drain and the sweep: the cadence is
// counted on the same timeline however long the machine takes for each event.
const clock = new VirtualClock();
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ clock });
  // A thousand records log a thousand lines; this test's evidence is the emulator's state.
  logger.setLogLevel('ERROR');
});
afterAll(async () => {
  logger.setLogLevel('INFO');
  await h.close();
});

let sequence = 0;
function record(messageId: number, text: string): SQSRecord {
  sequence += 1;
  const id = randomUUID();
  return {
    messageId: id,
    receiptHandle: `handle-${id}`,
    body: JSON.stringify({ portal: 'acme', botId: BOT.id, messageId, fields: { message: text }, editId: id }),
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(clock.now()),
      SenderId: 'test',
      ApproximateFirstReceiveTimestamp: String(clock.now()),
      MessageGroupId: `acme:${BOT.id}:${messageId}`,
      MessageDeduplicationId: id,
      SequenceNumber: String(sequence),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:edits.fifo',
    awsRegion: 'us-east-1',
  };
}

describe('a bot streaming an answer into one message', () => {
  it('costs at most one call per cadence interval (plus two) for 1,000 edits, and the message ends at the last', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '…' });
    const ledger = await freshLedger(h);
    const options = {
      failedEditsQueueUrl: h.failedQueueUrl,
      messageMinIntervalMs: 1_000,
      batchLingerMs: 0,
      indexLagMs: 0,
    };
    const drain = createDrain({
      ledger,
      sqs: h.sqs,
      wakeups: h.wakeups,
      editsQueueUrl: h.editsQueueUrl,
      options,
      clock,
    });
    const reconciler = new Reconciler({
      ledger,
      gateway: h.gateway,
      sqs: h.sqs,
      wakeups: h.wakeups,
      options,
      clock,
    });
    const startedAt = clock.now();
    // 1,000 partial texts in events of 10, as a FIFO queue hands one message group out: an event
    // every 30 ms, 3 s in all; the portal's wake-ups run as they come due.
    for (let part = 1; part <= 1_000; part += 10) {
      const records = Array.from({ length: 10 }, (_, i) => record(id, `part ${part + i}`));
      expect((await drain({ Records: records }, { remainingMs: () => 30_000 })).batchItemFailures).toEqual(
        [],
      );
      await runDueWakeups(h, reconciler);
      clock.advance(30);
    }
    const seconds = (clock.now() - startedAt) / 1000;
    // The last apply waits for the cadence: its wake-up is due a second after the call before it.
    clock.advance(1_000);
    await runDueWakeups(h, reconciler);
    const calls = h.emulator.calls.filter((c) => c.method === UPDATE_METHOD).length;
    expect(h.emulator.getMessage(id)?.text).toBe('part 1000');
    // One call per cadence interval: at 0, 1, 2 and 3 s, and one for the last part.
    expect(calls).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(h.wakeups.pending()).toEqual([]);
  });
});
