import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler as createWebhookHandler } from '../../functions/webhook.ts';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import { CallerKeys } from '../../lib/callers/index.ts';
import { attachServerLength, SERVER_JSON_LIMIT } from '../../lib/edits/server-size.ts';
import type { HttpResult } from '../../lib/http/responses.ts';
import { postUpdate, purgeQueues, update, updateDeps } from '../api/helpers.ts';
import {
  drainAndWake,
  editBody,
  eventOf,
  failedIds,
  recordingSqs,
  sqsRecord,
} from '../drain/support/fixtures.ts';
import { type DemoSetup, startDemo, UPDATE } from '../emulator/helpers.ts';
import { httpApiEvent, lambdaContext } from '../support/events.ts';
import { BOT, freshLedger, type Harness, startHarness } from '../support/harness.ts';

const CARD = [{ MESSAGE: 'Build #41: [B]green[/B]' }];
/** A GRID of link rows, each with a BB-code link and a LINK: 8 slashes a row. */
const linkGrid = (rows: number) => [
  {
    GRID: Array.from({ length: rows }, (_, i) => ({
      DISPLAY: 'LINE',
      NAME: `Build ${i}`,
      VALUE: `[URL=https://ci.example.com/b/${i}]log[/URL]`,
      LINK: `https://ci.example.com/b/${i}`,
    })),
  },
];
/** The most rows of `linkGrid` Bitrix24 stores, as the service counts them. */
function largestGrid(): number {
  let rows = 1;
  while (attachServerLength(linkGrid(rows + 1)) < SERVER_JSON_LIMIT) rows++;
  return rows;
}

describe('the emulator, as Bitrix24 answers these fields', () => {
  let setup: DemoSetup;
  afterEach(async () => {
    await setup?.emu.close();
  });

  it.each([
    ['"N"', 'N'],
    ['an empty string', ''],
    ['an empty array', []],
  ])(
    'removes the attach given as %s on an update, as the legacy update cleared it',
    async (_name, attach) => {
      setup = await startDemo();
      expect((await setup.asBot(UPDATE, { messageId: 789, fields: { attach: CARD } })).status).toBe(200);
      const answer = await setup.asBot(UPDATE, { messageId: 789, fields: { attach } });
      expect(answer.status).toBe(200);
      expect(setup.emu.getMessage(789)?.attach).toEqual([]);
    },
  );

  it('answers ATTACH_OVERSIZE one GRID row past where the service stops taking it, and stores the row before', async () => {
    setup = await startDemo();
    const rows = largestGrid();
    const over = await setup.asBot(UPDATE, { messageId: 789, fields: { attach: linkGrid(rows + 1) } });
    expect(over.body.error).toBe('ATTACH_OVERSIZE');
    const fits = await setup.asBot(UPDATE, { messageId: 789, fields: { attach: linkGrid(rows) } });
    expect(fits.status).toBe(200);
  });

  it('answers KEYBOARD_OVERSIZE to 400 command buttons of 14 KB, counting the defaults it adds to each', async () => {
    setup = await startDemo();
    const buttons = Array.from({ length: 400 }, (_, i) => ({ TEXT: `Btn ${i}`, COMMAND: `c${i}` }));
    const answer = await setup.asBot(UPDATE, {
      messageId: 789,
      fields: { keyboard: { BOT_ID: 456, BUTTONS: buttons } },
    });
    expect(answer.body.error).toBe('KEYBOARD_OVERSIZE');
  });
});

describe('through the real handlers against the emulator', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ timeoutMs: 1_000 });
  });
  afterAll(async () => {
    await h.close();
  });
  beforeEach(() => {
    h.emulator.reset();
    h.wakeups.clear();
  });
  afterEach(async () => {
    await purgeQueues(h);
  });

  const updates = () => h.emulator.calls.filter((c) => c.method === UPDATE_METHOD);
  const fieldsSent = (call: { params: unknown }) =>
    (call.params as { fields: Record<string, unknown> }).fields;

  it('removes the attach through the API, sending "N"', async () => {
    const deps = updateDeps(h, await freshLedger(h));
    expect((await postUpdate(update({ attach: CARD }), deps)).status).toBe(200);
    h.emulator.clearCalls();
    expect((await postUpdate(update({ attach: [] }), deps)).status).toBe(200);
    expect(updates().map(fieldsSent)).toEqual([{ attach: 'N' }]);
    expect(h.emulator.getMessage(789)?.attach).toEqual([]);
  });

  it('removes the attach inside a batch from the drain, where "N" is the only form a query string has', async () => {
    const [a, b] = [1, 2].map(() => h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'Build' })) as [
      number,
      number,
    ];
    const drain = drainAndWake(h, recordingSqs(h.sqsEndpoint).client);
    await drain(
      eventOf([sqsRecord(editBody(a, { attach: CARD })), sqsRecord(editBody(b, { attach: CARD }))]),
    );
    expect(h.emulator.getMessage(a)?.attach).toEqual(CARD);
    h.emulator.clearCalls();

    const response = await drain(
      eventOf([sqsRecord(editBody(a, { attach: 'N' })), sqsRecord(editBody(b, { message: 'other' }))]),
    );
    expect(failedIds(response)).toEqual([]);
    const command = updates().find(
      (c) => c.viaBatch && (c.params as { messageId: unknown }).messageId === String(a),
    );
    expect(command && fieldsSent(command).attach).toBe('N');
    expect(h.emulator.getMessage(a)?.attach).toEqual([]);
  });

  it('refuses the 470-row link GRID with 400 before calling Bitrix24, saying its count and the limit', async () => {
    const deps = updateDeps(h, await freshLedger(h));
    h.emulator.clearCalls();
    const answer = await postUpdate(update({ attach: linkGrid(470) }), deps);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({
      error: 'INVALID_REQUEST_BODY',
      error_description: expect.stringMatching(
        /^fields\.attach is 6\d,\d{3} characters as Bitrix24 counts it.*the limit is 60,000/,
      ),
    });
    expect(h.emulator.calls).toEqual([]);
  });

  it('sends isEdited to Bitrix24 as the caller gave it', async () => {
    const deps = updateDeps(h, await freshLedger(h));
    h.emulator.clearCalls();
    expect((await postUpdate(update({ message: 'quiet fix', isEdited: 'N' }), deps)).status).toBe(200);
    expect(updates().map(fieldsSent)).toEqual([{ message: 'quiet fix', isEdited: false }]);
  });

  it('takes isEdited as PHP writes a boolean in a form body ("0") on the webhook route', async () => {
    const ledger = await freshLedger(h);
    const callers = new CallerKeys(ledger.table, { cacheTtlMs: 0 });
    const { key } = await callers.add({ portal: 'acme', name: 'php-sdk' });
    h.emulator.clearCalls();
    const event = httpApiEvent(undefined, {
      path: `/rest/1/${key}/${UPDATE}`,
      method: 'POST',
      rawBody: `botId=${BOT.id}&messageId=789&fields%5Bmessage%5D=from+PHP&fields%5BisEdited%5D=0`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const handler = createWebhookHandler({ ...updateDeps(h, ledger), callers });
    const result = (await handler(event as never, lambdaContext())) as HttpResult;
    expect(result.statusCode).toBe(200);
    expect(updates().map(fieldsSent)).toEqual([{ message: 'from PHP', isEdited: false }]);
  });
});
