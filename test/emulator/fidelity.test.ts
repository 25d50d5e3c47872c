import { afterEach, describe, expect, it } from 'vitest';
import { buildBatchCmd } from '../../lib/bitrix24/batch.ts';
import { type EmulatorOptions, LEGACY_EDIT_WINDOW_SECONDS } from '../../local/bitrix24-emulator/index.ts';
import { type DemoSetup, manualClock, startDemo, UPDATE } from './helpers.ts';

let setup: DemoSetup;

afterEach(async () => {
  await setup?.emu.close();
});

const edit = (fields: unknown, messageId = 789) => setup.asBot(UPDATE, { messageId, fields });
/** The rows of the stored message's first GRID block. */
const gridRows = (id: number): unknown[] =>
  ((setup.emu.getMessage(id)?.attach ?? []) as Array<{ GRID?: unknown[] }>)[0]?.GRID ?? [];
const grid = (rows: number) => [
  { GRID: Array.from({ length: rows }, (_, i) => ({ DISPLAY: 'LINE', NAME: `n${i}`, VALUE: `v${i}` })) },
];

describe('update rules the v2 page leaves to the legacy docs', () => {
  it('answers 400 FIELDS_REQUIRED to empty fields and leaves the message as it was', async () => {
    setup = await startDemo();
    const answer = await edit({});
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('FIELDS_REQUIRED');
    expect(setup.emu.getMessage(789)).toMatchObject({ text: 'Build #41: running…', editCount: 0 });
  });

  it('deletes the message when the text is set to empty without an attach', async () => {
    setup = await startDemo();
    expect((await edit({ message: '' })).status).toBe(200);
    expect(setup.emu.getMessage(789)).toBeUndefined();
  });

  it('deletes the message on an empty text inside batch as well', async () => {
    setup = await startDemo();
    const cmd = buildBatchCmd([
      {
        key: 'a',
        method: UPDATE,
        params: { botId: 456, botToken: 'my_bot_token', messageId: 790, fields: { message: '' } },
      },
    ]);
    expect((await setup.asBot('batch', { cmd })).status).toBe(200);
    expect(setup.emu.getMessage(790)).toBeUndefined();
  });

  it('keeps the message when an empty text comes with an attach', async () => {
    setup = await startDemo();
    expect((await edit({ message: '', attach: [{ MESSAGE: 'card' }] })).status).toBe(200);
    expect(setup.emu.getMessage(789)).toMatchObject({ text: '', attach: [{ MESSAGE: 'card' }] });
  });

  it('removes the keyboard given as an object with no buttons', async () => {
    setup = await startDemo();
    await edit({ keyboard: [{ TEXT: 'a', COMMAND: 'a' }] });
    expect((await edit({ keyboard: { BOT_ID: 456, BUTTONS: [] } })).status).toBe(200);
    expect(setup.emu.getMessage(789)?.keyboard).toBeNull();
  });
});

describe('inferred rules, each off unless named', () => {
  it('edits a message of any age by default: the v2 update page documents no edit window', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now });
    clock.advance(365 * 24 * 3600 * 1000);
    expect((await edit({ message: 'a year later' })).status).toBe(200);
    expect(setup.emu.getMessage(789)?.text).toBe('a year later');
  });

  it('answers 403 CANT_EDIT_MESSAGE past inferred.editWindowSeconds, as the legacy update did', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, inferred: { editWindowSeconds: 60 } });
    clock.advance(59_000);
    expect((await edit({ message: 'in time' })).status).toBe(200);
    clock.advance(2_000);
    const late = await edit({ message: 'too late' });
    expect(late.status).toBe(403);
    expect(late.body).toEqual({
      error: 'CANT_EDIT_MESSAGE',
      error_description: "Time has expired for modification or you don't have access",
    });
    expect(setup.emu.getMessage(789)?.text).toBe('in time');
  });

  it('takes the legacy three days as inferred.editWindowSeconds', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, inferred: { editWindowSeconds: LEGACY_EDIT_WINDOW_SECONDS } });
    clock.advance(3 * 24 * 3600 * 1000 + 1_000);
    expect((await edit({ message: 'four days on' })).body.error).toBe('CANT_EDIT_MESSAGE');
  });

  it('refuses a bad inferred edit window at start, naming the option', async () => {
    await expect(startDemo({ inferred: { editWindowSeconds: 0 } })).rejects.toThrow(
      /inferred\.editWindowSeconds/,
    );
  });

  it('tells a caller of the old top-level editWindowSeconds where the window went', async () => {
    const old = { editWindowSeconds: 60 } as unknown as EmulatorOptions;
    await expect(startDemo(old)).rejects.toThrow(/inferred\.editWindowSeconds/);
  });

  it('ignores urlPreview on an update without a message by default, as the legacy update did', async () => {
    setup = await startDemo();
    expect((await edit({ urlPreview: 'N' })).status).toBe(200);
    expect(setup.emu.getMessage(789)?.urlPreview).toBe(true);
  });

  it('applies urlPreview without a message once inferred.urlPreviewWithoutMessage is on', async () => {
    setup = await startDemo({ inferred: { urlPreviewWithoutMessage: true } });
    expect((await edit({ urlPreview: 'N' })).status).toBe(200);
    expect(setup.emu.getMessage(789)?.urlPreview).toBe(false);
  });

  it('sets the documented default Y when a new text comes without urlPreview', async () => {
    setup = await startDemo();
    await edit({ message: 'no preview', urlPreview: false });
    expect(setup.emu.getMessage(789)?.urlPreview).toBe(false);
    await edit({ message: 'preview again' });
    expect(setup.emu.getMessage(789)?.urlPreview).toBe(true);
  });
});

describe('size limits', () => {
  it('answers 400 KEYBOARD_OVERSIZE to a keyboard above 30 KB of UTF-8 JSON', async () => {
    setup = await startDemo();
    const buttons = Array.from({ length: 130 }, (_, i) => ({ TEXT: 'к'.repeat(120), COMMAND: `c${i}` }));
    const answer = await edit({ keyboard: buttons });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('KEYBOARD_OVERSIZE');
  });

  it('answers 400 ATTACH_OVERSIZE to a Cyrillic attach of 30,001 characters (60,002 bytes)', async () => {
    setup = await startDemo();
    const answer = await edit({ attach: [{ MESSAGE: 'ж'.repeat(30_001) }] });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('ATTACH_OVERSIZE');
  });
});

describe('answers', () => {
  it('sends error answers without a time object', async () => {
    setup = await startDemo();
    const answer = await edit({ message: 'not mine' }, 800);
    expect(answer.status).toBe(403);
    expect(answer.body).toEqual({ error: 'ACCESS_DENIED', error_description: expect.any(String) });
  });
});

describe('max_input_vars inside batch', () => {
  it('drops the pairs of a batch command past 1,000, as parse_str does, while a JSON call keeps them all', async () => {
    setup = await startDemo();
    const attach = grid(400);
    expect((await edit({ attach }, 790)).status).toBe(200);
    expect(gridRows(790)).toHaveLength(400);

    const cmd = buildBatchCmd([
      {
        key: 'a',
        method: UPDATE,
        params: { botId: 456, botToken: 'my_bot_token', messageId: 791, fields: { attach } },
      },
    ]);
    expect((await setup.asBot('batch', { cmd })).status).toBe(200);
    const rows = gridRows(791);
    // 3 pairs before the attach, 3 per row: 999 pairs of rows survive, 332 rows whole and one cut.
    expect(rows.length).toBeLessThan(400);
    expect(rows.length).toBeGreaterThan(300);
  });
});
