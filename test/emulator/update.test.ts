import { afterEach, describe, expect, it } from 'vitest';
import { attachServerLength } from '../../lib/edits/server-size.ts';
import { type DemoSetup, postJson, startDemo, UPDATE } from './helpers.ts';

let setup: DemoSetup;

afterEach(async () => {
  await setup?.emu.close();
});

describe('bot rules on imbot.v2.Chat.Message.update', () => {
  it('answers 400 BOT_TOKEN_NOT_SPECIFIED to a webhook call without botToken', async () => {
    setup = await startDemo();
    const answer = await postJson(setup.webhook(UPDATE), {
      botId: 456,
      messageId: 789,
      fields: { message: 'x' },
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('BOT_TOKEN_NOT_SPECIFIED');
  });

  it('answers 400 BOT_ID_REQUIRED when botId is missing', async () => {
    setup = await startDemo();
    const answer = await postJson(setup.webhook(UPDATE), {
      botToken: 'my_bot_token',
      messageId: 789,
      fields: { message: 'x' },
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('BOT_ID_REQUIRED');
  });

  it('answers 400 BOT_NOT_FOUND for a bot id nobody registered', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UPDATE, { botId: 999, messageId: 789, fields: { message: 'x' } });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('BOT_NOT_FOUND');
  });

  it('answers 403 BOT_OWNERSHIP_ERROR when the botToken differs from the registered one', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UPDATE, {
      botToken: 'stolen_token',
      messageId: 789,
      fields: { message: 'x' },
    });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('BOT_OWNERSHIP_ERROR');
    expect(answer.text).not.toContain('stolen_token');
  });

  it('lets another webhook of the portal edit the bot’s message with the right botToken: the token alone decides', async () => {
    setup = await startDemo();
    setup.emu.addWebhook({ userId: 2, code: 'other_webhook' });
    const answer = await postJson(`${setup.emu.url}/rest/2/other_webhook/${UPDATE}`, {
      botId: 456,
      botToken: 'my_bot_token',
      messageId: 789,
      fields: { message: 'from another webhook' },
    });
    expect(answer.status).toBe(200);
    expect(setup.emu.getMessage(789)?.text).toBe('from another webhook');
    const wrongToken = await postJson(`${setup.emu.url}/rest/2/other_webhook/${UPDATE}`, {
      botId: 456,
      botToken: 'not_the_token',
      messageId: 789,
      fields: { message: 'x' },
    });
    expect(wrongToken.status).toBe(403);
    expect(wrongToken.body.error).toBe('BOT_OWNERSHIP_ERROR');
  });

  it('answers 403 ACCESS_DENIED for a message written by a human', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UPDATE, {
      messageId: setup.demo.humanMessageId,
      fields: { message: 'x' },
    });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('ACCESS_DENIED');
    expect(setup.emu.getMessage(setup.demo.humanMessageId)?.text).toBe('Thanks, bot!');
  });

  it('answers 403 ACCESS_DENIED for a message that does not exist', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UPDATE, { messageId: 123_456, fields: { message: 'x' } });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('ACCESS_DENIED');
  });

  it('answers 403 ACCESS_DENIED for a system message even though the bot sent it', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UPDATE, {
      messageId: setup.demo.systemMessageId,
      fields: { message: 'x' },
    });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('ACCESS_DENIED');
    expect(setup.emu.getMessage(setup.demo.systemMessageId)).toMatchObject({
      authorId: 0,
      botId: 456,
      editCount: 0,
    });
  });

  it('answers 403 ACCESS_DENIED for a message of another bot of the same webhook', async () => {
    setup = await startDemo();
    const otherBot = setup.emu.registerBot({ botToken: 'second_bot_token', owner: { webhookUserId: 1 } });
    const foreign = setup.emu.addMessage({ botId: otherBot, chatId: 12, text: 'not yours' });
    const answer = await setup.asBot(UPDATE, { messageId: foreign, fields: { message: 'x' } });
    expect(answer.body.error).toBe('ACCESS_DENIED');
  });
});

describe('successful updates', () => {
  it('answers {result:{result:true}} with a time object by default (nested shape)', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'Build #41: passed' } });
    expect(answer.status).toBe(200);
    expect(answer.body.result).toEqual({ result: true });
    expect(answer.body.time).toMatchObject({
      start: expect.any(Number),
      finish: expect.any(Number),
      duration: expect.any(Number),
      processing: expect.any(Number),
      date_start: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/),
      date_finish: expect.stringMatching(/[+-]\d\d:\d\d$/),
      operating: expect.any(Number),
      operating_reset_at: expect.any(Number),
    });
  });

  it('answers {result:true} once switched to the flat shape, and back', async () => {
    setup = await startDemo({ successShape: 'flat' });
    const flat = await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'a' } });
    expect(flat.body.result).toBe(true);
    setup.emu.setSuccessShape('nested');
    const nested = await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'b' } });
    expect(nested.body.result).toEqual({ result: true });
  });

  it('counts edits and keeps every text the message had, in order', async () => {
    setup = await startDemo();
    await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'Build #41: 50%' } });
    await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'Build #41: passed' } });
    expect(setup.emu.getMessage(789)).toMatchObject({
      text: 'Build #41: passed',
      editCount: 2,
      history: ['Build #41: running…', 'Build #41: 50%', 'Build #41: passed'],
    });
  });

  it('cuts a text above 20,000 code points to 20,000 and appends " (...)"', async () => {
    setup = await startDemo();
    // Astral characters are two UTF-16 units each: the limit counts characters, not units.
    const text = '😀'.repeat(20_005);
    await setup.asBot(UPDATE, { messageId: 789, fields: { message: text } });
    const stored = setup.emu.getMessage(789)?.text ?? '';
    expect([...stored].length).toBe(20_000 + ' (...)'.length);
    expect(stored.endsWith('😀 (...)')).toBe(true);
  });

  it('keeps a text of exactly 20,000 code points whole', async () => {
    setup = await startDemo();
    const text = 'x'.repeat(20_000);
    await setup.asBot(UPDATE, { messageId: 789, fields: { message: text } });
    expect(setup.emu.getMessage(789)?.text).toBe(text);
  });

  it('stores a bare button array wrapped in BUTTONS and removes the keyboard on "N" or an empty value', async () => {
    setup = await startDemo();
    const buttons = [{ TEXT: 'Open', LINK: 'https://example.com/build/41' }];
    await setup.asBot(UPDATE, { messageId: 789, fields: { keyboard: buttons } });
    expect(setup.emu.getMessage(789)?.keyboard).toEqual({ BUTTONS: buttons });
    await setup.asBot(UPDATE, { messageId: 789, fields: { keyboard: 'N' } });
    expect(setup.emu.getMessage(789)?.keyboard).toBeNull();
    await setup.asBot(UPDATE, { messageId: 790, fields: { keyboard: { BOT_ID: 456, BUTTONS: buttons } } });
    expect(setup.emu.getMessage(790)?.keyboard).toEqual({ BOT_ID: 456, BUTTONS: buttons });
    await setup.asBot(UPDATE, { messageId: 790, fields: { keyboard: '' } });
    expect(setup.emu.getMessage(790)?.keyboard).toBeNull();
  });

  it('answers 400 KEYBOARD_ERROR for a keyboard that is neither buttons nor N', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UPDATE, { messageId: 789, fields: { keyboard: 42 } });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('KEYBOARD_ERROR');
  });

  it('accepts true/false and "Y"/"N" for urlPreview', async () => {
    setup = await startDemo({ inferred: { urlPreviewWithoutMessage: true } });
    for (const [value, expected] of [
      ['N', false],
      [true, true],
      [false, false],
      ['Y', true],
    ] as const) {
      await setup.asBot(UPDATE, { messageId: 789, fields: { urlPreview: value } });
      expect(setup.emu.getMessage(789)?.urlPreview).toBe(expected);
    }
  });

  it('leaves the text alone when only the attach changes', async () => {
    setup = await startDemo();
    const attach = [{ MESSAGE: 'Tests: 120 passed' }];
    await setup.asBot(UPDATE, { messageId: 789, fields: { attach } });
    expect(setup.emu.getMessage(789)).toMatchObject({ text: 'Build #41: running…', attach, editCount: 1 });
  });
});

describe('attach limits', () => {
  it('answers 400 ATTACH_OVERSIZE when the serialised attach is above 60,000 characters', async () => {
    setup = await startDemo();
    const attach = [{ MESSAGE: 'y'.repeat(60_000) }];
    const answer = await setup.asBot(UPDATE, { messageId: 789, fields: { attach, message: 'with attach' } });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('ATTACH_OVERSIZE');
    expect(setup.emu.getMessage(789)?.editCount).toBe(0);
  });

  it('accepts an attach just under 60,000 characters as Bitrix24 counts it (with the defaults it stores)', async () => {
    setup = await startDemo();
    const overhead = attachServerLength([{ MESSAGE: 'y' }]) - 1;
    const attach = [{ MESSAGE: 'y'.repeat(59_999 - overhead) }];
    const answer = await setup.asBot(UPDATE, { messageId: 789, fields: { attach } });
    expect(answer.status).toBe(200);
  });

  it.each([
    ['an object with an unknown key', { FOO: 1 }],
    ['an array of unknown blocks', [{ FOO: 1 }]],
    ['BLOCKS of unknown blocks', { COLOR_TOKEN: 'primary', BLOCKS: [{ FOO: 1 }] }],
    ['a full form with no blocks', { BLOCKS: [] }],
    ['a lone block outside an array', { MESSAGE: 'not a block list' }],
  ])(
    'answers 400 ATTACH_ERROR to an attach that keeps no block (%s) and leaves the message',
    async (_, attach) => {
      setup = await startDemo();
      const answer = await setup.asBot(UPDATE, {
        messageId: 789,
        fields: { message: 'with attach', attach },
      });
      expect(answer.status).toBe(400);
      expect(answer.body).toEqual({ error: 'ATTACH_ERROR', error_description: 'Incorrect attach params' });
      expect(setup.emu.getMessage(789)).toMatchObject({ text: 'Build #41: running…', editCount: 0 });
    },
  );

  it('keeps an attach with one known block among unknown ones', async () => {
    setup = await startDemo();
    const attach = { BLOCKS: [{ FOO: 1 }, { DELIMITER: { SIZE: 200 } }] };
    expect((await setup.asBot(UPDATE, { messageId: 789, fields: { attach } })).status).toBe(200);
    expect(setup.emu.getMessage(789)?.attach).toEqual(attach);
  });

  it('answers 400 ATTACH_ERROR when attach is neither an array nor an object', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UPDATE, { messageId: 789, fields: { attach: 'just text' } });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('ATTACH_ERROR');
  });
});

describe('sibling methods', () => {
  it('sends a message that the same bot can then update and delete', async () => {
    setup = await startDemo();
    const sent = await setup.asBot('imbot.v2.Chat.Message.send', {
      dialogId: 'chat12',
      fields: { message: 'hello' },
    });
    expect(sent.body.result).toEqual({ id: expect.any(Number), uuidMap: {} });
    const id = (sent.body.result as { id: number }).id;
    expect(setup.emu.getMessage(id)).toMatchObject({ chatId: 12, authorId: 456, text: 'hello' });
    expect((await setup.asBot(UPDATE, { messageId: id, fields: { message: 'edited' } })).status).toBe(200);
    const deleted = await setup.asBot('imbot.v2.Chat.Message.delete', { messageId: id });
    expect(deleted.body.result).toEqual({ result: true });
    expect(setup.emu.getMessage(id)).toBeUndefined();
  });

  it('answers 400 EMPTY_MESSAGE to a send with neither text nor attach', async () => {
    setup = await startDemo();
    const sent = await setup.asBot('imbot.v2.Chat.Message.send', {
      dialogId: 'chat12',
      fields: { message: '' },
    });
    expect(sent.body.error).toBe('EMPTY_MESSAGE');
  });

  it('returns the stored message from Chat.Message.get to a supervisor bot', async () => {
    setup = await startDemo();
    const supervisor = setup.emu.registerBot({
      botToken: 'supervisor_token',
      owner: { webhookUserId: 1 },
      type: 'supervisor',
    });
    const answer = await setup.asBot('imbot.v2.Chat.Message.get', {
      botId: supervisor,
      botToken: 'supervisor_token',
      messageId: 789,
    });
    expect(answer.body.result).toMatchObject({
      message: { id: 789, chatId: 12, authorId: 456, isSystem: false },
    });
  });

  it('refuses Chat.Message.get to an ordinary bot with 403 BOT_TYPE_NOT_ALLOWED', async () => {
    setup = await startDemo();
    const answer = await setup.asBot('imbot.v2.Chat.Message.get', { messageId: 789 });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('BOT_TYPE_NOT_ALLOWED');
  });
});
