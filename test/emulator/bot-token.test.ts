import { afterEach, describe, expect, it } from 'vitest';
import { type DemoSetup, postJson, startDemo } from './helpers.ts';

const REGISTER = 'imbot.v2.Bot.register';
const BOT_UPDATE = 'imbot.v2.Bot.update';
const SEND = 'imbot.v2.Chat.Message.send';

let setup: DemoSetup;

afterEach(async () => {
  await setup?.emu.close();
});

/** Posts to chat 12 as the demo bot with `botToken`: the bot's token is whichever one this works with. */
async function sendWith(botToken: string) {
  return postJson(setup.webhook(SEND), {
    botId: setup.demo.botId,
    botToken,
    dialogId: 'chat12',
    fields: { message: 'hello' },
  });
}

describe('imbot.v2.Bot.register with a code already registered', () => {
  it('returns the same bot unchanged, its first token still the only one that works', async () => {
    setup = await startDemo();
    const answer = await postJson(setup.webhook(REGISTER), {
      fields: { code: 'build_bot', botToken: 'another_token', properties: { name: 'Build bot' } },
    });
    expect(answer.status).toBe(200);
    expect((answer.body.result as { bot: { id: number } }).bot.id).toBe(setup.demo.botId);
    expect((await sendWith('another_token')).body.error).toBe('BOT_OWNERSHIP_ERROR');
    expect((await sendWith(setup.demo.botToken)).status).toBe(200);
  });
});

describe('imbot.v2.Bot.update', () => {
  it('gives the bot the token in fields.botToken when authorised with the current one; the old one is refused at once', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(BOT_UPDATE, { fields: { botToken: 'rotated_token' } });
    expect(answer.status).toBe(200);
    expect((answer.body.result as { bot: { id: number; code: string } }).bot).toMatchObject({
      id: setup.demo.botId,
      code: 'build_bot',
    });
    expect(answer.text).not.toContain('rotated_token');
    const old = await sendWith(setup.demo.botToken);
    expect([old.status, old.body.error]).toEqual([403, 'BOT_OWNERSHIP_ERROR']);
    expect((await sendWith('rotated_token')).status).toBe(200);
    expect(setup.emu.calls.find((c) => c.method === BOT_UPDATE)?.params).toMatchObject({
      botToken: '[redacted]',
      fields: { botToken: '[redacted]' },
    });
  });

  it('refuses a caller with another token with 403 BOT_OWNERSHIP_ERROR and keeps the token', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(BOT_UPDATE, {
      botToken: 'not_the_token',
      fields: { botToken: 'rotated_token' },
    });
    expect([answer.status, answer.body.error]).toEqual([403, 'BOT_OWNERSHIP_ERROR']);
    expect((await sendWith('rotated_token')).body.error).toBe('BOT_OWNERSHIP_ERROR');
    expect((await sendWith(setup.demo.botToken)).status).toBe(200);
  });

  it('ignores a blank fields.botToken, as documented, and changes the profile only', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(BOT_UPDATE, {
      fields: { botToken: '   ', properties: { name: 'Renamed' } },
    });
    expect(answer.status).toBe(200);
    expect((await sendWith(setup.demo.botToken)).status).toBe(200);
  });

  it('refuses a token another bot holds with the generic BOT_TOKEN_ROTATION_FAILED, both bots keeping theirs', async () => {
    setup = await startDemo();
    const other = setup.emu.registerBot({ botToken: 'other_bot_token', owner: { webhookUserId: 1 } });
    const answer = await setup.asBot(BOT_UPDATE, { fields: { botToken: 'other_bot_token' } });
    expect([answer.status, answer.body.error]).toEqual([400, 'BOT_TOKEN_ROTATION_FAILED']);
    expect(answer.text).not.toContain('other_bot_token');
    expect((await sendWith(setup.demo.botToken)).status).toBe(200);
    const asOther = await postJson(setup.webhook(SEND), {
      botId: other,
      botToken: 'other_bot_token',
      dialogId: 'chat12',
      fields: { message: 'still mine' },
    });
    expect(asOther.status).toBe(200);
  });

  it('refuses a new token over 40 characters and keeps the current one', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(BOT_UPDATE, { fields: { botToken: 'x'.repeat(41) } });
    expect([answer.status, answer.body.error]).toEqual([400, 'BOT_TOKEN_INVALID_LENGTH']);
    expect((await sendWith(setup.demo.botToken)).status).toBe(200);
  });

  it('answers 400 BOT_NOT_FOUND for a bot nobody registered', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(BOT_UPDATE, { botId: 999, fields: { botToken: 'rotated_token' } });
    expect([answer.status, answer.body.error]).toEqual([400, 'BOT_NOT_FOUND']);
  });
});
