import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fitsInBatch, MAX_PAIRS_PER_COMMAND, pairCount } from '../../lib/bitrix24/batch.ts';
import { UPDATE_METHOD, updateParams } from '../../lib/bitrix24/imbot.ts';
import { parseUpdateRequest } from '../../lib/edits/validate.ts';
import { postUpdate, update, updateDeps } from '../api/helpers.ts';
import {
  drainAndWake,
  editBody,
  eventOf,
  failedIds,
  recordingSqs,
  sqsRecord,
} from '../drain/support/fixtures.ts';
import { BOT, freshLedger, type Harness, startHarness } from '../support/harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(() => h.emulator.reset());

const BUTTONS = [{ TEXT: 'Logs', LINK: 'https://ci.example/41' }];
/** The rows of the stored message's first GRID block. */
const gridRows = (id: number): unknown[] =>
  ((h.emulator.getMessage(id)?.attach ?? []) as Array<{ GRID?: unknown[] }>)[0]?.GRID ?? [];
const grid = (rows: number) => [
  { GRID: Array.from({ length: rows }, (_, i) => ({ DISPLAY: 'LINE', NAME: `n${i}`, VALUE: `v${i}` })) },
];
const message = (text = 'Build: queued') => h.emulator.addMessage({ botId: BOT.id, chatId: 12, text });
const batchCommands = () => h.emulator.calls.filter((c) => c.viaBatch && c.method === UPDATE_METHOD);
const singleUpdates = () => h.emulator.calls.filter((c) => !c.viaBatch && c.method === UPDATE_METHOD);
const fieldsSent = (call: { params: unknown }) => (call.params as { fields: Record<string, unknown> }).fields;

describe('keyboard removal on every path', () => {
  it.each([
    ['[]', []],
    ['""', ''],
    ['{BUTTONS: []}', { BUTTONS: [] }],
    ['"N"', 'N'],
  ])('removes the keyboard given as %s inside a batch, sending "N"', async (_name, keyboard) => {
    const [a, b] = [message(), message()];
    const drain = drainAndWake(h, recordingSqs(h.sqsEndpoint).client);
    await drain(
      eventOf([sqsRecord(editBody(a, { keyboard: BUTTONS })), sqsRecord(editBody(b, { keyboard: BUTTONS }))]),
    );
    expect(h.emulator.getMessage(a)?.keyboard).toBeTruthy();
    h.emulator.clearCalls();

    const response = await drain(
      eventOf([sqsRecord(editBody(a, { keyboard })), sqsRecord(editBody(b, { message: 'other' }))]),
    );
    expect(failedIds(response)).toEqual([]);
    const command = batchCommands().find((c) => (c.params as { messageId: string }).messageId === String(a));
    expect(command && fieldsSent(command).keyboard).toBe('N');
    expect(h.emulator.getMessage(a)?.keyboard).toBeNull();
  });

  it('removes the keyboard given as [] through the API, sending "N" in the single call too', async () => {
    const ledger = await freshLedger(h);
    const deps = updateDeps(h, ledger);
    expect((await postUpdate(update({ keyboard: BUTTONS }), deps)).status).toBe(200);
    h.emulator.clearCalls();
    expect((await postUpdate(update({ keyboard: [] }), deps)).status).toBe(200);
    expect(singleUpdates().map(fieldsSent)).toEqual([{ keyboard: 'N' }]);
    expect(h.emulator.getMessage(789)?.keyboard).toBeNull();
  });

  it('sends the object and JSON-string forms as BOT_ID beside BUTTONS, the same as the array form', async () => {
    const ledger = await freshLedger(h);
    const deps = updateDeps(h, ledger);
    for (const keyboard of [JSON.stringify({ BOT_ID: BOT.id, BUTTONS }), { BUTTONS }]) {
      expect(
        (await postUpdate(update({ keyboard, message: String(keyboard).length.toString() }), deps)).status,
      ).toBe(200);
      expect(h.emulator.getMessage(789)?.keyboard).toEqual({ BOT_ID: BOT.id, BUTTONS });
    }
  });
});

describe('one normal form in the ledger', () => {
  it('takes the object form of a keyboard the message already shows as no change, calling Bitrix24 not at all', async () => {
    const ledger = await freshLedger(h);
    const deps = updateDeps(h, ledger);
    expect((await postUpdate(update({ message: 'same', keyboard: BUTTONS }), deps)).status).toBe(200);
    h.emulator.clearCalls();
    const again = await postUpdate(update({ message: 'same', keyboard: { BOT_ID: BOT.id, BUTTONS } }), deps);
    expect(again.status).toBe(200);
    expect(h.emulator.calls).toEqual([]);
  });
});

describe('max_input_vars', () => {
  it('counts a 400-row GRID as more pairs than fit one batch command, and a small edit as fitting', () => {
    const big = updateParams(
      { botId: BOT.id, messageId: 1 },
      parseUpdateRequest({ botId: BOT.id, messageId: 1, fields: { attach: grid(400) } }).fields,
    );
    expect(pairCount(big)).toBe(1_202);
    expect(pairCount(big)).toBeGreaterThan(MAX_PAIRS_PER_COMMAND);
    expect(fitsInBatch(big)).toBe(false);
    expect(fitsInBatch(updateParams({ botId: BOT.id, messageId: 1 }, { message: 'x', keyboard: 'N' }))).toBe(
      true,
    );
  });

  it('sends a message too large for a batch command as a single JSON call, so no row is lost', async () => {
    const [big, small] = [message(), message()];
    const drain = drainAndWake(h, recordingSqs(h.sqsEndpoint).client);
    const response = await drain(
      eventOf([
        sqsRecord(editBody(big, { attach: grid(400) })),
        sqsRecord(editBody(small, { message: 'small' })),
      ]),
    );
    expect(failedIds(response)).toEqual([]);
    expect(singleUpdates().map((c) => (c.params as { messageId: number }).messageId)).toEqual([big]);
    const rows = gridRows(big);
    expect(rows).toHaveLength(400);
    expect(h.emulator.getMessage(small)?.text).toBe('small');
  });
});
