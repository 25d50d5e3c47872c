import { PurgeQueueCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  drainAndWake,
  editBody,
  eventOf,
  failedIds,
  receiveAll,
  recordingSqs,
  sqsRecord,
} from '../drain/support/fixtures.ts';
import { BOT, type Harness, startHarness } from '../support/harness.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
  await h.sqs.send(new PurgeQueueCommand({ QueueUrl: h.failedQueueUrl }));
});
afterAll(() => h.close());

describe('a queue record whose MessageGroupId does not match its body', () => {
  it('goes to the failed-edits queue as INVALID_EDIT with the rule, unapplied, and is acknowledged', async () => {
    const target = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'untouched' });
    const mine = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'mine' });
    const drain = drainAndWake(h, recordingSqs(h.sqsEndpoint).client);
    // Sent in the group of message `mine`, but its body edits message `target`.
    const stray = sqsRecord(editBody(target, { message: 'out of order' }), {
      groupId: `acme:${BOT.id}:${mine}`,
    });
    const fine = sqsRecord(editBody(mine, { message: 'in its own group' }));
    const response = await drain(eventOf([stray, fine]));
    expect(failedIds(response)).toEqual([]);
    expect(h.emulator.getMessage(target)?.text).toBe('untouched');
    expect(h.emulator.getMessage(mine)?.text).toBe('in its own group');

    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    expect(failed).toHaveLength(1);
    const attributes = failed[0]?.MessageAttributes ?? {};
    expect(attributes.errorCode?.StringValue).toBe('INVALID_EDIT');
    expect(attributes.errorDescription?.StringValue).toBe(
      `MessageGroupId "acme:${BOT.id}:${mine}" does not match the body's message: it must be "acme:${BOT.id}:${target}" (<portal>:<botId>:<messageId>)`,
    );
    expect(failed[0]?.Body).toBe(stray.body);
  });
});
