import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/drain-edits.ts';
import { createHandler as createReconcileHandler } from '../../functions/reconcile-portals.ts';
import { replayFailedEdits } from '../../lib/edits/failed.ts';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import type { QueuedEdit } from '../../lib/edits/types.ts';
import { Reconciler } from '../../lib/reconcile/reconcile.ts';
import { sqsWakeups } from '../../lib/schedule/portal-queue.ts';
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

/**
 * The ingest and apply stages as deployed, each behind its own Lambda-like poller: the drain on the
 * FIFO edits queue `queueUrl`, and the reconcile on a portal work queue of its own (standard, SQS
 * delays), both on a ledger of their own, with short backoffs.
 */
async function pipeline(queueUrl: string) {
  const { CreateQueueCommand } = await import('@aws-sdk/client-sqs');
  const portalQueue = await h.sqs.send(
    new CreateQueueCommand({ QueueName: `work-${queueUrl.split('/').pop()?.replace('.fifo', '')}` }),
  );
  const portalQueueUrl = portalQueue.QueueUrl as string;
  const ledger = await freshLedger(h);
  const options = testOptions(h, { serverBackoff: { baseMs: 200, capMs: 1_000 }, maxDeferralMs: 1_000 });
  const wakeups = sqsWakeups({ client: h.sqs, queueUrl: portalQueueUrl, now: Date.now });
  const drain = startPoller({
    client: h.sqs,
    queueUrl,
    handler: createHandler({ ledger, sqs: h.sqs, wakeups, editsQueueUrl: queueUrl, options }) as SqsHandler,
    timeoutMs: 5_000,
  });
  const reconcile = startPoller({
    client: h.sqs,
    queueUrl: portalQueueUrl,
    handler: createReconcileHandler({
      reconciler: new Reconciler({
        ledger,
        gateway: h.gateway,
        sqs: h.sqs,
        wakeups,
        options,
        random: () => 0.5,
      }),
      sqs: h.sqs,
      queueUrl: portalQueueUrl,
    }) as SqsHandler,
    timeoutMs: 5_000,
  });
  return {
    drain,
    reconcile,
    stop: () => Promise.all([drain.stop(), reconcile.stop()]),
  };
}

describe('the Lambda-like pollers with the drain and the reconcile', () => {
  it('drains a FIFO queue and applies what it merged through the portal work queue: every record deleted at once, each message at its last edit', async () => {
    const queueUrl = await createFifoQueue(h.sqs, 'poll-basic');
    const ids = [1, 2, 3, 4].map(() => h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'v0' }));
    const edits = ids.flatMap((id) => [1, 2, 3, 4, 5].map((v) => edit(id, `v${v}`)));
    const sent = await enqueueEdits(edits, { queueUrl, client: h.sqs });
    expect(sent.failed).toEqual([]);
    h.emulator.inject({ kind: 'server-error' }, 2);

    const stages = await pipeline(queueUrl);
    try {
      await waitFor(
        () => ids.every((id) => h.emulator.getMessage(id)?.text === 'v5'),
        30_000,
        'every message at its last edit',
      );
      await waitFor(async () => (await queueDepth(h.sqs, queueUrl)) === 0, 20_000, 'the queue to empty');
    } finally {
      await stages.stop();
    }
    for (const id of ids) {
      const versions = (h.emulator.getMessage(id)?.history ?? []).map((text) => Number(text.slice(1)));
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    }
    // No record was kept in flight as a retry signal: the retries lived in the ledger.
    expect(stages.drain.stats).toMatchObject({ deleted: 20, leftInQueue: 0 });
  });

  it('re-applies the same fields when an answer is lost after the edit ran (ambiguous outcome), and a later edit lands after it', async () => {
    const queueUrl = await createFifoQueue(h.sqs, 'poll-ambiguous');
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'v0' });
    await enqueueEdits([edit(id, 'v1')], { queueUrl, client: h.sqs });
    h.emulator.inject({ kind: 'reset', afterApply: true });
    const stages = await pipeline(queueUrl);
    try {
      await waitFor(
        () => (h.emulator.getMessage(id)?.history.length ?? 0) >= 3,
        30_000,
        'the message applied again after its settle window',
      );
      // The edit whose answer was lost is sent once more, whole, after the settle window.
      expect(h.emulator.getMessage(id)?.history).toEqual(['v0', 'v1', 'v1']);
      await enqueueEdits([edit(id, 'v2')], { queueUrl, client: h.sqs });
      await waitFor(() => h.emulator.getMessage(id)?.text === 'v2', 30_000, 'the later edit applied');
    } finally {
      await stages.stop();
    }
    expect(h.emulator.getMessage(id)?.history).toEqual(['v0', 'v1', 'v1', 'v2']);
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
    const stages = await pipeline(queueUrl);
    try {
      await waitFor(async () => (await queueDepth(h.sqs, h.failedQueueUrl)) === 1, 20_000, 'the failed edit');
    } finally {
      await stages.stop();
    }

    h.secretsManager.setSecret(`${PREFIX}late`, webhookSecret(h.emulator.url));
    const replay = await replayFailedEdits({
      failedQueueUrl: h.failedQueueUrl,
      editsQueueUrl: queueUrl,
      client: h.sqs,
    });
    expect(replay).toEqual({ replayed: 1, kept: 0 });
    const again = await pipeline(queueUrl);
    try {
      await waitFor(() => h.emulator.getMessage(id)?.text === 'late v1', 20_000, 'the replayed edit applied');
    } finally {
      await again.stop();
    }
    expect(await receiveAll(h.sqs, h.failedQueueUrl)).toEqual([]);
  });
});
