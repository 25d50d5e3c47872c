import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/update-message.ts';
import type { HttpResult } from '../../lib/http/responses.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { httpApiEvent, lambdaContext } from '../support/events.ts';
import { BOT, freshLedger, type Harness, startHarness } from '../support/harness.ts';
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
    const handler = createHandler(updateDeps(h, ledger));
    // 800 ms left: less than one call (1,000 ms) and its margin (100 ms).
    const event = httpApiEvent(
      { botId: BOT.id, messageId: id, fields: { message: 'in time' } },
      { headers: { 'x-b24-portal': 'acme' } },
    );
    const result = (await handler(event as never, lambdaContext(800))) as HttpResult;
    expect(result.statusCode).toBe(202);
    expect(JSON.parse(result.body)).toMatchObject({ deferred: true, reason: 'DEADLINE' });
    expect(h.emulator.calls).toEqual([]);
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: id });
    expect(state.desired.message?.value).toBe('in time');
    expect(state.version).toBeGreaterThan(state.appliedVersion);
  });
});
