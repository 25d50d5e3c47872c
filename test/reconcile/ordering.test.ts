import { randomUUID } from 'node:crypto';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { updateMessage } from '../../lib/api/update-message.ts';
import { createDrain } from '../../lib/drain/index.ts';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import type { ReconcileOptions } from '../../lib/reconcile/options.ts';
import { toSqsRecord } from '../../local/poller.ts';
import { createFifoQueue } from '../drain/support/fixtures.ts';
import { laterClock } from '../support/clock.ts';
import {
  BOT,
  freshLedger,
  type Harness,
  runDueWakeups,
  startHarness,
  testReconciler,
} from '../support/harness.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Edits of one message that reach it by different paths and in any order: the message ends at the
 * edit accepted last, every time. Each of these overwrote a newer edit with an older one before the
 * ledger existed.
 */
let h: Harness;
let ledger: Ledger;
let queueUrl: string;

const options = (): ReconcileOptions => ({
  failedEditsQueueUrl: h.failedQueueUrl,
  callTimeoutMs: 500,
  deadlineMarginMs: 100,
  batchLingerMs: 0,
  messageMinIntervalMs: 0,
  ambiguousSettleMs: 1_000,
});

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 500 });
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  h.wakeups.clear();
  ledger = await freshLedger(h);
  queueUrl = await createFifoQueue(h.sqs, `ordering-${randomUUID().slice(0, 8)}`, 30);
});

function api() {
  const reconciler = testReconciler(h, ledger, options());
  return (messageId: number, text: string) =>
    updateMessage(
      {
        portal: 'acme',
        body: { botId: BOT.id, messageId, fields: { message: text } },
        preferAsync: false,
        idempotencyKey: undefined,
      },
      {
        config: { defaultPortal: undefined },
        gateway: h.gateway,
        reconciler,
      },
    );
}

/** A producer's edit on the edits queue, accepted 5 s ago. */
async function enqueueOlder(messageId: number, text: string): Promise<void> {
  await enqueueEdits(
    [
      {
        portal: 'acme',
        botId: BOT.id,
        messageId,
        fields: { message: text },
        editId: randomUUID(),
        requestedAt: new Date(Date.now() - 5_000).toISOString(),
      },
    ],
    { queueUrl, client: h.sqs },
  );
}

/** Everything visible on the edits queue, as one Lambda event (a real FIFO hands a group's records out together). */
async function queuedEvent(): Promise<SQSEvent> {
  const { Messages = [] } = await h.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      MessageSystemAttributeNames: ['All'],
      VisibilityTimeout: 30,
    }),
  );
  return { Records: Messages.map((m) => toSqsRecord(m, 'arn:aws:sqs:us-east-1:000000000000:edits.fifo')) };
}

/** The drain, in this container or (`on` another Ledger instance) in a container of its own. */
function drain(on: Ledger = ledger) {
  const run = createDrain({
    ledger: on,
    sqs: h.sqs,
    wakeups: h.wakeups,
    editsQueueUrl: queueUrl,
    options: options(),
  });
  return (event: SQSEvent) => run(event, { remainingMs: () => 30_000 });
}

/** The portal work queue's consumer, in a container of its own, `laterMs` from now (past any backoff). */
function wake(laterMs = 0) {
  const clock = laterClock(laterMs);
  return runDueWakeups({ wakeups: h.wakeups, clock }, testReconciler(h, ledger, options(), { clock }));
}

describe('the message ends at the edit accepted last', () => {
  it('when an edit deferred while Bitrix24 was busy is drained after a newer one was applied through the API', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'start' });
    const send = api();
    h.emulator.inject({ kind: 'query-limit' });
    const deferred = await send(id, 'A (older)');
    expect(deferred.statusCode).toBe(202);
    // The portal answers again: the API applies the newer edit at once.
    const applied = await send(id, 'B (newer)');
    expect(applied.statusCode).toBe(200);
    await wake(60_000);
    expect(h.emulator.getMessage(id)?.text).toBe('B (newer)');
    expect(h.emulator.getMessage(id)?.history).not.toContain('A (older)');
  });

  it('when a drain container that saw the older edit gets its record again after another container applied a newer one', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'start' });
    await enqueueOlder(id, 'A (older)');
    // The drain runs in a container of its own (its own copy of the items it saw); the woken
    // portal finds Bitrix24 busy: the edit waits in the ledger.
    const elsewhere = drain(new Ledger({ tableName: ledger.tableName, client: h.dynamo }));
    const event = await queuedEvent();
    await elsewhere(event);
    h.emulator.inject({ kind: 'query-limit' });
    await wake();
    expect(h.emulator.getMessage(id)?.text).toBe('start');
    // Meanwhile the API (this container) applies a newer edit.
    expect((await api()(id, 'B (newer)')).statusCode).toBe(200);
    // The record comes back to the drain container all the same (SQS delivers at least once).
    await elsewhere(event);
    await wake(60_000);
    expect(h.emulator.getMessage(id)?.history.slice(1)).toEqual(['B (newer)']);
  });

  it('when a queued edit accepted earlier is drained after an API edit accepted later', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'start' });
    await enqueueOlder(id, 'queued (older)');
    expect((await api()(id, 'api (newer)')).statusCode).toBe(200);
    const response = await drain()(await queuedEvent());
    expect(response.batchItemFailures).toEqual([]);
    await wake();
    expect(h.emulator.getMessage(id)?.history.slice(1)).toEqual(['api (newer)']);
  });

  it('when a call that outlived its timeout lands late: the newer edit is applied after it', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'start' });
    const send = api();
    h.emulator.inject({ kind: 'slow', delayMs: 800 });
    expect((await send(id, 'v1 (lands late)')).statusCode).toBe(202);
    const newer = await send(id, 'v2');
    // The settle window holds v2 back until v1 can no longer land.
    expect(newer.statusCode).toBe(202);
    await waitFor(() => h.emulator.getMessage(id)?.text === 'v1 (lands late)', 10_000, 'the late landing');
    // Past the settle window of v1's call.
    await wake(1_100);
    expect(h.emulator.getMessage(id)?.text).toBe('v2');
  });
});
