import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import {
  drainAndWake,
  editBody,
  eventOf,
  failedIds,
  receiveAll,
  sqsRecord,
} from '../drain/support/fixtures.ts';
import { BOT, type Harness, PREFIX, startHarness, webhookSecret } from '../support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
  // A portal whose secret breaks the schema: its limits cannot be paced.
  h.secretsManager.setSecret(
    `${PREFIX}broken`,
    webhookSecret(h.emulator.url, { plan: undefined, limits: { burst: 0.5, perSecond: 2 } }),
  );
});
afterAll(() => h.close());

describe('one portal’s failure', () => {
  it('never fails or repeats another portal’s edits in the same event', async () => {
    const healthy = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    const drain = drainAndWake(h, h.sqs);
    const response = await drain(
      eventOf([
        sqsRecord(editBody(healthy, { message: 'after' }, { portal: 'broken' })),
        sqsRecord(editBody(healthy, { message: 'applied once' })),
      ]),
    );
    expect(failedIds(response)).toEqual([]);
    expect(h.emulator.getMessage(healthy)?.history).toEqual(['before', 'applied once']);
    expect(h.emulator.calls.filter((c) => c.method === UPDATE_METHOD)).toHaveLength(1);
    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    expect(
      failed.map((m) => [JSON.parse(m.Body ?? '{}').portal, m.MessageAttributes?.errorCode?.StringValue]),
    ).toEqual([['broken', 'SECRET_INVALID']]);
    expect(failed[0]?.MessageAttributes?.errorDescription?.StringValue).toContain('limits.burst');
  });
});
