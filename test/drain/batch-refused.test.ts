import { afterEach, describe, expect, it } from 'vitest';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import { BOT, type Harness, startHarness } from '../support/harness.ts';
import { drainAndWake, editBody, eventOf, failedIds, recordingSqs, sqsRecord } from './support/fixtures.ts';

let h: Harness | undefined;
afterEach(() => h?.close());

describe('a portal that refuses imbot.v2 in batch', () => {
  it.each([
    { mode: 'call' as const, how: 'the whole batch call is refused with HTTP 405' },
    { mode: 'command' as const, how: 'each command is refused inside the batch' },
  ])('gets single calls, and keeps getting them, when $how', async ({ mode }) => {
    // A fresh emulator per mode: the emulator has no way to allow a method in batch again.
    const harness = await startHarness();
    h = harness;
    harness.emulator.disallowInBatch(UPDATE_METHOD, mode);
    const ids = [1, 2, 3].map(() =>
      harness.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'queued' }),
    );
    const httpCalls = () => harness.emulator.calls.filter((c) => !c.viaBatch).map((c) => c.method);
    const drain = drainAndWake(harness, recordingSqs(harness.sqsEndpoint).client);

    const first = await drain(eventOf(ids.map((id) => sqsRecord(editBody(id, { message: `first ${id}` })))));
    expect(failedIds(first)).toEqual([]);
    expect(httpCalls()).toEqual(['batch', UPDATE_METHOD, UPDATE_METHOD, UPDATE_METHOD]);
    for (const id of ids) expect(harness.emulator.getMessage(id)?.text).toBe(`first ${id}`);

    harness.emulator.clearCalls();
    const second = await drain(
      eventOf(ids.map((id) => sqsRecord(editBody(id, { message: `second ${id}` })))),
    );
    expect(failedIds(second)).toEqual([]);
    expect(httpCalls()).toEqual([UPDATE_METHOD, UPDATE_METHOD, UPDATE_METHOD]);
    for (const id of ids) expect(harness.emulator.getMessage(id)?.text).toBe(`second ${id}`);
  });
});
