import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/drain-edits.ts';
import { replayFailedEdits } from '../../lib/edits/failed.ts';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import type { QueuedEdit } from '../../lib/edits/types.ts';
import type { SqsHandler } from '../../local/poller.ts';
import { startPoller } from '../../local/poller.ts';
import { BOT, type Harness, PREFIX, startHarness, webhookSecret } from '../support/harness.ts';
import { waitFor } from '../support/wait.ts';
import { createFifoQueue, freshLedger, queueDepth, receiveAll, testOptions } from './support/fixtures.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

let n = 0;
function edit(messageId: number, text: string, portal = 'acme'): QueuedEdit {
  n += 1;
  return {
    portal,
    botId: BOT.id,
    messageId,
    fields: { message: text },
    editId: `edit-${n}`,
    requestedAt: new Date().toISOString(),
  };
}

/** The drain on a ledger of its own, with short backoffs so that records handed back return quickly. */
async function drainFor(queueUrl: string): Promise<SqsHandler> {
  return createHandler({
    gateway: h.gateway,
    ledger: await freshLedger(h),
    sqs: h.sqs,
    editsQueueUrl: queueUrl,
    options: testOptions(h, { serverBackoff: { baseMs: 200, capMs: 1_000 }, maxDeferralMs: 1_000 }),
  }) as SqsHandler;
}

describe('the Lambda-like poller with the drain', () => {
  it('drains a FIFO queue: successes deleted, failures back after their visibility, each message ends at its last edit', async () => {
    const queueUrl = await createFifoQueue(h.sqs, 'poll-basic');
    const ids = [1, 2, 3, 4].map(() => h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'v0' }));
    const edits = ids.flatMap((id) => [1, 2, 3, 4, 5].map((v) => edit(id, `v${v}`)));
    const sent = await enqueueEdits(edits, { queueUrl, client: h.sqs });
    expect(sent.failed).toEqual([]);
    h.emulator.inject({ kind: 'server-error' }, 2);

    const poller = startPoller({
      client: h.sqs,
      queueUrl,
      handler: await drainFor(queueUrl),
      timeoutMs: 5_000,
    });
    try {
      await waitFor(async () => (await queueDepth(h.sqs, queueUrl)) === 0, 20_000, 'the queue to empty');
    } finally {
      await poller.stop();
    }
    for (const id of ids) {
      const history = h.emulator.getMessage(id)?.history ?? [];
      expect(history.at(-1)).toBe('v5');
      const versions = history.map((text) => Number(text.slice(1)));
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    }
    expect(poller.stats.leftInQueue).toBeGreaterThan(0);
    expect(poller.stats.deleted).toBe(20);
  });

  it('re-applies the same fields when an answer is lost after the edit ran (ambiguous outcome)', async () => {
    const queueUrl = await createFifoQueue(h.sqs, 'poll-ambiguous');
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'v0' });
    await enqueueEdits([edit(id, 'v1'), edit(id, 'v2')], { queueUrl, client: h.sqs });
    h.emulator.inject({ kind: 'reset', afterApply: true });
    const poller = startPoller({
      client: h.sqs,
      queueUrl,
      handler: await drainFor(queueUrl),
      timeoutMs: 5_000,
    });
    try {
      await waitFor(async () => (await queueDepth(h.sqs, queueUrl)) === 0, 15_000, 'the queue to empty');
    } finally {
      await poller.stop();
    }
    // The edit whose answer was lost is applied once more after the settle window (whether or not
    // v2 came in the same event: the local queue hands out one record per group per receive).
    const history = h.emulator.getMessage(id)?.history ?? [];
    expect(history.slice(1, 3)).toEqual([history[1], history[1]]);
    expect(history.at(-1)).toBe('v2');
  });

  it('leaves the whole batch in the queue when the handler throws, and counts the deadline down from timeoutMs', async () => {
    const queueUrl = await createFifoQueue(h.sqs, 'poll-throws', 1);
    await enqueueEdits([edit(1, 'x')], { queueUrl, client: h.sqs });
    const seen: Array<{ receiveCount: string | undefined; remaining: number }> = [];
    const handler: SqsHandler = async (event, context) => {
      seen.push({
        receiveCount: event.Records[0]?.attributes.ApproximateReceiveCount,
        remaining: context.getRemainingTimeInMillis(),
      });
      if (seen.length === 1) throw new Error('crash');
      return { batchItemFailures: [] };
    };
    const poller = startPoller({ client: h.sqs, queueUrl, handler, timeoutMs: 3_000, maxInvocations: 2 });
    await waitFor(() => seen.length === 2, 10_000, 'two invocations');
    await poller.stop();
    expect(seen.map((s) => s.receiveCount)).toEqual(['1', '2']);
    for (const s of seen) expect(s.remaining).toBeGreaterThan(2_500);
    expect(poller.stats).toMatchObject({ invocations: 2, handlerErrors: 1, deleted: 1 });
  });

  it('replays failed edits after the cause is fixed: failed for a missing portal, applied once its secret exists', async () => {
    const queueUrl = await createFifoQueue(h.sqs, 'poll-replay');
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'v0' });
    await enqueueEdits([edit(id, 'late v1', 'late')], { queueUrl, client: h.sqs });
    const handler = await drainFor(queueUrl);
    let poller = startPoller({ client: h.sqs, queueUrl, handler, timeoutMs: 5_000 });
    await waitFor(async () => (await queueDepth(h.sqs, queueUrl)) === 0, 10_000, 'the queue to empty');
    await poller.stop();
    expect(await queueDepth(h.sqs, h.failedQueueUrl)).toBe(1);

    h.secretsManager.setSecret(`${PREFIX}late`, webhookSecret(h.emulator.url));
    const replay = await replayFailedEdits({
      failedQueueUrl: h.failedQueueUrl,
      editsQueueUrl: queueUrl,
      client: h.sqs,
    });
    expect(replay).toEqual({ replayed: 1, kept: 0 });
    poller = startPoller({ client: h.sqs, queueUrl, handler, timeoutMs: 5_000 });
    await waitFor(async () => (await queueDepth(h.sqs, queueUrl)) === 0, 10_000, 'the queue to empty');
    await poller.stop();
    expect(h.emulator.getMessage(id)?.text).toBe('late v1');
    expect(await receiveAll(h.sqs, h.failedQueueUrl)).toEqual([]);
  });
});
