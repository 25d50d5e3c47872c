import { GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { sendFailedEdits } from '../../lib/edits/failed.ts';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import { sqsWakeups } from '../../lib/schedule/portal-queue.ts';
import { QUEUES } from '../../local/stack/local-aws.ts';
import { readQueueView } from '../../local/stack/queue-view.ts';
import { localQueues } from './support/local-queues.ts';

function edit(messageId: number, message: string) {
  return {
    portal: 'demo',
    botId: 456,
    messageId,
    fields: { message },
    editId: `edit-${messageId}`,
    requestedAt: new Date().toISOString(),
  };
}

describe('the queue panel of the sandbox page', () => {
  const local = localQueues();

  it('creates both FIFO queues and the standard portal work queue on 127.0.0.1, reachable by the URLs it returns', async () => {
    expect(local.queues.edits).toBe(`${local.sqs.url}/000000000000/${QUEUES.edits}`);
    expect(local.queues.failedEdits).toBe(`${local.sqs.url}/000000000000/${QUEUES.failedEdits}`);
    expect(local.queues.portalWork).toBe(`${local.sqs.url}/000000000000/${QUEUES.portalWork}`);
    const { Attributes } = await local.client.send(
      new GetQueueAttributesCommand({ QueueUrl: local.queues.portalWork, AttributeNames: ['All'] }),
    );
    expect(Attributes?.FifoQueue).toBeUndefined();
    expect(Attributes?.VisibilityTimeout).toBe('360');
  });

  it('counts waiting and in-flight edits and lists failed ones with their reasons, without receiving any', async () => {
    await enqueueEdits([edit(789, 'waiting text'), edit(790, 'in flight text')], {
      queueUrl: local.queues.edits,
      client: local.client,
    });
    // Takes the first message of each group; 789's group is then in flight, as in a drain invocation.
    await local.client.send(
      new ReceiveMessageCommand({
        QueueUrl: local.queues.edits,
        MaxNumberOfMessages: 1,
        VisibilityTimeout: 30,
      }),
    );
    await sendFailedEdits(
      [
        {
          body: JSON.stringify(edit(800, 'not yours')),
          groupId: 'demo:456:800',
          deduplicationId: 'f-1',
          errorCode: 'ACCESS_DENIED',
          errorDescription: 'Access denied',
          attempts: 1,
          firstRequestedAt: new Date().toISOString(),
          editIds: ['edit-800'],
        },
      ],
      { queueUrl: local.queues.failedEdits, client: local.client },
    );

    const view = await readQueueView(local.sqs.url, QUEUES);
    expect(view).toMatchObject({ waiting: 1, inFlight: 1, failed: 1 });
    expect(view.pending.map((p) => p.state).sort()).toEqual(['in-flight', 'waiting']);
    expect(view.pending.find((p) => p.state === 'in-flight')?.visibleAt).toMatch(/^\d{4}-/);
    expect(view.failures).toEqual([
      {
        editId: 'edit-800',
        messageId: 800,
        text: 'not yours',
        errorCode: 'ACCESS_DENIED',
        errorDescription: 'Access denied',
        attempts: '1',
      },
    ]);
    // Looking again shows the same: the inspection received nothing.
    expect(await readQueueView(local.sqs.url, QUEUES)).toMatchObject({ waiting: 1, inFlight: 1, failed: 1 });
  });

  it('counts the portal wake-ups apart, ready or delayed, without receiving any', async () => {
    const sender = sqsWakeups({ client: local.client, queueUrl: local.queues.portalWork, now: Date.now });
    const now = Date.now();
    expect(
      await sender.send([
        { portal: 'demo', at: now },
        { portal: 'acme', at: now + 600_000 },
      ]),
    ).toEqual([]);
    const view = await readQueueView(local.sqs.url, QUEUES);
    expect(view.wakeups).toEqual({ ready: 1, delayed: 1, inFlight: 0 });
    // Wake-ups are not edits: the edits counts are the previous test's.
    expect(view).toMatchObject({ waiting: 1, inFlight: 1, failed: 1 });
    expect(view.pending).toHaveLength(2);
  });
});
