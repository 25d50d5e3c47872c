import { randomUUID } from 'node:crypto';
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDrain } from '../../lib/drain/index.ts';
import { replayFailedEdits, sendFailedEdits } from '../../lib/edits/failed.ts';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import { toSqsRecord } from '../../local/poller.ts';
import { createFifoQueue } from '../drain/support/fixtures.ts';
import {
  BOT,
  freshLedger,
  type Harness,
  runDueWakeups,
  startHarness,
  testReconciler,
} from '../support/harness.ts';

// A metric line per invocation is noise here: set before the modules load.
vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

async function receive(queueUrl: string, visibilitySeconds = 30): Promise<SQSEvent> {
  const { Messages = [] } = await h.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      MessageSystemAttributeNames: ['All'],
      MessageAttributeNames: ['All'],
      VisibilityTimeout: visibilitySeconds,
    }),
  );
  return { Records: Messages.map((m) => toSqsRecord(m, 'arn:aws:sqs:us-east-1:000000000000:edits.fifo')) };
}

describe('replaying failed edits', () => {
  it('keeps a replay that fails again, and never lets a replay override a field accepted after the failure', async () => {
    const ledger = await freshLedger(h);
    const editsQueue = await createFifoQueue(h.sqs, `replay-${randomUUID().slice(0, 8)}`, 30);
    const failedQueue = await createFifoQueue(h.sqs, `replay-failed-${randomUUID().slice(0, 8)}`, 30);
    const options = { failedEditsQueueUrl: failedQueue, batchLingerMs: 0, messageMinIntervalMs: 0 };
    const drain = createDrain({ ledger, sqs: h.sqs, wakeups: h.wakeups, editsQueueUrl: editsQueue, options });
    // What Lambda's event source mappings do: deletes the records the drain did not hand back, then
    // runs the portal's wake-up.
    const run = async () => {
      const event = await receive(editsQueue);
      const { batchItemFailures } = await drain(event, { remainingMs: () => 30_000 });
      const back = new Set(batchItemFailures.map((f) => f.itemIdentifier));
      for (const r of event.Records.filter((r) => !back.has(r.messageId)))
        await h.sqs.send(new DeleteMessageCommand({ QueueUrl: editsQueue, ReceiptHandle: r.receiptHandle }));
      await runDueWakeups(h, testReconciler(h, ledger, options));
    };

    // Written by someone else: every update is refused, so the edit fails for good.
    const theirs = h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'a person wrote this' });
    const edit = (text: string, requestedAt: string) => ({
      portal: 'acme',
      botId: BOT.id,
      messageId: theirs,
      fields: { message: text },
      editId: randomUUID(),
      requestedAt,
    });
    await enqueueEdits([edit('first try', new Date(Date.now() - 60_000).toISOString())], {
      queueUrl: editsQueue,
      client: h.sqs,
    });
    await run();
    expect((await receive(failedQueue, 0)).Records).toHaveLength(1);

    // Replayed and refused again: kept again, with its reason.
    await replayFailedEdits({
      failedQueueUrl: failedQueue,
      editsQueueUrl: editsQueue,
      client: h.sqs,
      visibilityTimeoutSeconds: 0,
    });
    await run();
    const again = await receive(failedQueue);
    expect(again.Records.map((r) => r.messageAttributes.errorCode?.stringValue)).toEqual(['ACCESS_DENIED']);
    expect(JSON.parse(again.Records[0]?.body ?? '{}').fields).toEqual({ message: 'first try' });

    // A newer edit accepted after the failure, then an old replay: the replay changes nothing.
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: theirs });
    await ledger.merge(
      state,
      [{ ...state, fields: { message: 'newer' }, editId: 'newer', at: Date.now(), seq: '' }],
      { messageMinIntervalMs: 0, ambiguousSettleMs: 65_000 },
    );
    const replayedOld = await ledger.merge(
      state,
      [
        {
          ...state,
          fields: { message: 'first try' },
          editId: 'old-replay',
          at: Date.now() - 60_000,
          seq: '99',
        },
      ],
      { messageMinIntervalMs: 0, ambiguousSettleMs: 65_000 },
    );
    expect(replayedOld.superseded).toEqual(['old-replay']);
    expect((await ledger.get(state)).desired.message?.value).toBe('newer');
  });

  it('leaves what it does not move visible: a run straight after it still finds it', async () => {
    const editsQueue = await createFifoQueue(h.sqs, `replay-${randomUUID().slice(0, 8)}`, 30);
    const failedQueue = await createFifoQueue(h.sqs, `replay-failed-${randomUUID().slice(0, 8)}`, 30);
    const failed = (messageId: number, errorCode: string) => ({
      body: JSON.stringify({ portal: 'acme', botId: BOT.id, messageId, fields: { message: errorCode } }),
      groupId: `acme:${BOT.id}:${messageId}`,
      deduplicationId: randomUUID(),
      errorCode,
      errorDescription: `failed with ${errorCode}`,
      attempts: 1,
      firstRequestedAt: new Date().toISOString(),
      editIds: [randomUUID()],
    });
    const sent = await sendFailedEdits([failed(1, 'ACCESS_DENIED'), failed(2, 'PORTAL_NOT_FOUND')], {
      queueUrl: failedQueue,
      client: h.sqs,
    });
    expect(sent.refused).toEqual([]);
    const queues = { failedQueueUrl: failedQueue, editsQueueUrl: editsQueue, client: h.sqs };
    expect(
      await replayFailedEdits({ ...queues, include: (edit) => edit.errorCode === 'PORTAL_NOT_FOUND' }),
    ).toEqual({ replayed: 1, kept: 1 });
    expect(await replayFailedEdits(queues)).toEqual({ replayed: 1, kept: 0 });
    expect((await receive(failedQueue, 0)).Records).toEqual([]);
  });
});
