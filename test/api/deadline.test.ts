import { createServer } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/update-message.ts';
import type { HttpResult } from '../../lib/http/responses.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { httpApiEvent, lambdaContext } from '../support/events.ts';
import { AWS, BOT, freshLedger, type Harness, startHarness } from '../support/harness.ts';
import { updateDeps } from './helpers.ts';

let h: Harness;
let ledger: Ledger;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  ledger = await freshLedger(h);
});

describe('an API request short of time', () => {
  it('answers 202 with the edit kept, never 500, when a Bitrix24 call no longer fits before the deadline', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    const handler = createHandler(updateDeps(h, ledger, {}, { options: { callTimeoutMs: 10_000 } }));
    // 5 s left: time to record the edit, not for a call of 10 s and its margin.
    const event = httpApiEvent(
      { botId: BOT.id, messageId: id, fields: { message: 'in time' } },
      { headers: { 'x-b24-portal': 'acme' } },
    );
    const result = (await handler(event as never, lambdaContext(5_000))) as HttpResult;
    expect(result.statusCode).toBe(202);
    expect(JSON.parse(result.body)).toMatchObject({ deferred: true, reason: 'DEADLINE' });
    expect(h.emulator.calls).toEqual([]);
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: id });
    expect(state.desired.message?.value).toBe('in time');
    expect(state.version).toBeGreaterThan(state.appliedVersion);
  });

  it('answers 503 DEADLINE, never 500, when the ledger does not answer before the deadline', async () => {
    const hanging = createServer(() => undefined);
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const address = hanging.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const silent = new Ledger({
        tableName: ledger.tableName,
        client: new DynamoDBClient({ ...AWS, endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 }),
      });
      const handler = createHandler(updateDeps(h, silent));
      const event = httpApiEvent(
        { botId: BOT.id, messageId: 789, fields: { message: 'never recorded' } },
        { headers: { 'x-b24-portal': 'acme' } },
      );
      // 3 s left: the request answers 1.5 s before its deadline, before Middy's early timeout.
      const result = (await handler(event as never, lambdaContext(3_000))) as HttpResult;
      expect(result.statusCode).toBe(503);
      expect(JSON.parse(result.body)).toMatchObject({ error: 'DEADLINE' });
      expect(JSON.parse(result.body).error_description).toContain('send it again');
    } finally {
      hanging.closeAllConnections();
      await new Promise((resolve) => hanging.close(resolve));
    }
  });
});
