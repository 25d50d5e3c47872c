import { DeleteMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Ledger } from '../../lib/ledger/messages.ts';
import { failedEdits, wakeLater } from '../api/helpers.ts';
import { BOT, type Harness, startHarness } from '../support/harness.ts';
import {
  drainHandler,
  editBody,
  eventOf,
  failedIds,
  freshLedger,
  receiveAll,
  recordingSqs,
  sqsRecord,
  visibilityChanges,
} from './support/fixtures.ts';

// The drain is the ingest stage: it merges and acknowledges, and wakes portals; it calls no portal.
// What the woken reconcile does with the ledger is test/reconcile/wakeups.test.ts.
let h: Harness;

function message(text = 'Build: queued'): number {
  return h.emulator.addMessage({ botId: BOT.id, chatId: 12, text });
}
const key = (messageId: number, portal = 'acme') => ({ portal, botId: BOT.id, messageId });

beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  h.wakeups.clear();
  for (const m of await receiveAll(h.sqs, h.failedQueueUrl)) {
    const { DeleteMessageCommand } = await import('@aws-sdk/client-sqs');
    await h.sqs.send(
      new DeleteMessageCommand({ QueueUrl: h.failedQueueUrl, ReceiptHandle: m.ReceiptHandle }),
    );
  }
});

describe('merging and acknowledging', () => {
  it('merges K edits of one message into one desired state, acknowledges all K and calls no portal', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger });
    const bodies = [
      editBody(id, { message: 'Build: running' }),
      editBody(id, { keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/1' }] }),
      editBody(id, { message: 'Build: 50%' }),
      editBody(id, { urlPreview: false }),
      editBody(id, { message: 'Build: passed' }),
    ];
    const response = await drain(eventOf(bodies.map((b) => sqsRecord(b))));
    expect(failedIds(response)).toEqual([]);
    expect(h.emulator.calls).toEqual([]);
    const state = await ledger.get(key(id));
    expect(state.desired.message?.value).toBe('Build: passed');
    expect(state.desired.keyboard?.value).toEqual([{ TEXT: 'Logs', LINK: 'https://ci.example/1' }]);
    expect(state.desired.urlPreview?.value).toBe('N');
    expect(state.version).toBe(1);
  });

  it('wakes each touched portal once per event, due at once, and not again while that wake-up is pending', async () => {
    const ledger = await freshLedger(h);
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger });
    const before = Date.now();
    const records = [
      ...[message(), message(), message()].map((id) => sqsRecord(editBody(id, { message: 'a' }))),
      sqsRecord(editBody(77, { message: 'b' }, { portal: 'other' })),
    ];
    expect(failedIds(await drain(eventOf(records)))).toEqual([]);
    expect(h.wakeups.sent.map((w) => w.portal).sort()).toEqual(['acme', 'other']);
    for (const wakeup of h.wakeups.sent) expect(wakeup.at).toBeGreaterThanOrEqual(before);
    expect(failedIds(await drain(eventOf([sqsRecord(editBody(message(), { message: 'c' }))])))).toEqual([]);
    expect(h.wakeups.sent).toHaveLength(2);
    expect((await ledger.portals.view('acme')).wakeAt).toBe(h.wakeups.last('acme')?.at);
  });

  it('leaves the wake-up to the reconciler holding the portal’s lease, which sees the merge on the portal item', async () => {
    const ledger = await freshLedger(h);
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger });
    expect((await ledger.portals.acquireLease('acme', 'another-run', Date.now() + 10_000)).acquired).toBe(
      true,
    );
    const before = Date.now();
    expect(failedIds(await drain(eventOf([sqsRecord(editBody(message(), { message: 'held' }))])))).toEqual(
      [],
    );
    expect(h.wakeups.sent).toEqual([]);
    expect((await ledger.portals.view('acme')).touchedAt).toBeGreaterThanOrEqual(before);
  });

  it('acknowledges a record whose edit the message already wants, without a wake-up', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger });
    const record = sqsRecord(editBody(id, { message: 'once' }));
    await drain(eventOf([record]));
    h.wakeups.clear();
    // The same record again (a redelivery): nothing to merge, the pending wake-up covers it.
    expect(failedIds(await drain(eventOf([record])))).toEqual([]);
    expect(h.wakeups.sent).toEqual([]);
  });

  it('never hands a record back while another reconciler holds the portal', async () => {
    const ledger = await freshLedger(h);
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, { ledger });
    await ledger.portals.acquireLease('acme', 'a-long-run', Date.now() + 60_000);
    for (let i = 0; i < 5; i += 1) {
      expect(failedIds(await drain(eventOf([sqsRecord(editBody(message(), { message: `${i}` }))])))).toEqual(
        [],
      );
    }
    expect(visibilityChanges(sqs.commands).size).toBe(0);
  });
});

describe('acceptance stamps', () => {
  it('counts an edit stamped later than SQS received it as accepted when sent: an edit sent after it still wins', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger });
    const future = sqsRecord(
      editBody(id, { message: 'from 2099' }, { requestedAt: '2099-01-01T00:00:00.000Z' }),
    );
    expect(failedIds(await drain(eventOf([future])))).toEqual([]);
    const later = sqsRecord(editBody(id, { message: 'sent after it' }));
    expect(failedIds(await drain(eventOf([later])))).toEqual([]);
    const state = await ledger.get(key(id));
    expect(state.desired.message?.value).toBe('sent after it');
    expect(state.desired.message?.at).toBeLessThanOrEqual(Date.now());
  });

  it('tries a failed edit again when its identical record comes back (SQS’s DLQ redrive), and keeps it again when it fails again', async () => {
    const id = h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'a human wrote this' });
    const ledger = await freshLedger(h);
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger });
    const record = editBody(id, { message: 'not ours to edit' });
    expect(failedIds(await drain(eventOf([sqsRecord(record)])))).toEqual([]);
    await wakeLater(h, ledger);
    expect((await ledger.get(key(id))).lastError?.code).toBe('ACCESS_DENIED');
    expect(await failedEdits(h)).toHaveLength(1);
    expect(failedIds(await drain(eventOf([sqsRecord(record)])))).toEqual([]);
    expect((await ledger.get(key(id))).version).toBe(2);
    // Past the first wake-up's call (made 5 minutes on) and its cadence.
    const woken = await wakeLater(h, ledger, 10 * 60_000);
    expect(woken.calls).toBe(1);
    expect((await ledger.get(key(id))).failedVersion).toBe(2);
    // Taken one by one: a FIFO group's next record shows once the one before it is deleted.
    const kept: string[] = [];
    for (let i = 0; i < 5; i++) {
      const [next] = await receiveAll(h.sqs, h.failedQueueUrl, 1);
      if (!next) break;
      kept.push(JSON.parse(next.Body ?? '{}').editId);
      await h.sqs.send(
        new DeleteMessageCommand({ QueueUrl: h.failedQueueUrl, ReceiptHandle: next.ReceiptHandle }),
      );
    }
    expect(kept).toEqual([expect.stringMatching(/^failed-1-/), expect.stringMatching(/^failed-2-/)]);
  });

  it('keeps an earlier stamp as it is: a replayed edit never overrides what was accepted after its first request', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger });
    const accepted = sqsRecord(editBody(id, { message: 'accepted now' }));
    expect(failedIds(await drain(eventOf([accepted])))).toEqual([]);
    const replayed = sqsRecord(
      editBody(
        id,
        { message: 'first requested an hour ago' },
        { requestedAt: new Date(Date.now() - 3_600_000).toISOString() },
      ),
    );
    expect(failedIds(await drain(eventOf([replayed])))).toEqual([]);
    expect((await ledger.get(key(id))).desired.message?.value).toBe('accepted now');
  });
});

describe('nothing lost', () => {
  it('sends invalid bodies to the failed-edits queue with their reasons, then acknowledges them', async () => {
    const id = message();
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    const records = [
      sqsRecord('{"portal": "acme", "botId": 456', { groupId: 'raw-1' }),
      sqsRecord(JSON.stringify({ portal: 'acme', botId: 456, messageId: id, fields: {} }), {
        groupId: 'raw-2',
      }),
    ];
    expect(failedIds(await drain(eventOf(records)))).toEqual([]);
    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    const byGroup = new Map(failed.map((m) => [m.Attributes?.MessageGroupId, m]));
    const reason = (group: string) => {
      const attributes = byGroup.get(group)?.MessageAttributes ?? {};
      return [attributes.errorCode?.StringValue, attributes.errorDescription?.StringValue];
    };
    expect(reason('raw-1')).toEqual(['INVALID_EDIT', 'body is not JSON']);
    expect(reason('raw-2')).toEqual([
      'INVALID_EDIT',
      'fields must contain at least one of message, attach, keyboard, urlPreview, isEdited',
    ]);
    expect(byGroup.get('raw-1')?.Body).toBe('{"portal": "acme", "botId": 456');
  });

  it('refuses to drain anything without a failed-edits queue, failing the invocation so nothing is deleted', async () => {
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, {
      options: { failedEditsQueueUrl: undefined },
    });
    await expect(drain(eventOf([sqsRecord(editBody(message(), { message: 'x' }))]))).rejects.toThrow(
      /FAILED_EDITS_QUEUE_URL/,
    );
  });

  it('keeps an invalid edit in the edits queue when the failed-edits queue does not take it', async () => {
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, {
      options: { failedEditsQueueUrl: `${h.failedQueueUrl.replace('failed-edits', 'missing')}` },
    });
    const record = sqsRecord('not an edit', { groupId: 'raw-3' });
    expect(failedIds(await drain(eventOf([record])))).toEqual([record.messageId]);
  });

  it('hands every record of a message back, after a short delay, when the ledger cannot record its edits', async () => {
    const id = message();
    const sqs = recordingSqs(h.sqsEndpoint);
    const missing = new Ledger({ tableName: 'no-such-table', client: h.dynamo });
    const drain = drainHandler(h, sqs.client, { ledger: missing });
    const records = [sqsRecord(editBody(id, { message: 'a' })), sqsRecord(editBody(id, { message: 'b' }))];
    const response = await drain(eventOf(records));
    expect(failedIds(response)).toEqual(records.map((r) => r.messageId));
    const changes = visibilityChanges(sqs.commands);
    for (const r of records) expect(changes.get(r.receiptHandle)).toBe(1);
    expect(h.wakeups.sent).toEqual([]);
  });
});
