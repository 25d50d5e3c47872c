import { afterEach, describe, expect, it } from 'vitest';
import { type DemoSetup, postJson, startDemo, UPDATE } from './helpers.ts';

const UNREGISTER = 'imbot.v2.Bot.unregister';
const REGISTER = 'imbot.v2.Bot.register';
const SEND = 'imbot.v2.Chat.Message.send';

let setup: DemoSetup;

afterEach(async () => {
  await setup?.emu.close();
});

describe('imbot.v2.Bot.unregister', () => {
  it('deletes the bot and answers {result: true} under the nested success shape', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UNREGISTER);
    expect(answer.status).toBe(200);
    expect(answer.body.result).toEqual({ result: true });
    expect(answer.body.time).toBeDefined();
    expect(setup.emu.bots().map((bot) => bot.id)).not.toContain(setup.demo.botId);
  });

  it('answers a bare true under the flat success shape', async () => {
    setup = await startDemo({ successShape: 'flat' });
    const answer = await setup.asBot(UNREGISTER);
    expect([answer.status, answer.body.result]).toEqual([200, true]);
  });

  it('refuses the bot’s id and token afterwards with 400 BOT_NOT_FOUND: it can no longer send, edit or delete its messages, which stay', async () => {
    setup = await startDemo();
    await setup.asBot(UNREGISTER);
    const { messageId } = setup.demo;
    const sent = await setup.asBot(SEND, { dialogId: 'chat12', fields: { message: 'still here?' } });
    const edited = await setup.asBot(UPDATE, { messageId, fields: { message: 'edited' } });
    const deleted = await setup.asBot('imbot.v2.Chat.Message.delete', { messageId });
    const again = await setup.asBot(UNREGISTER);
    for (const answer of [sent, edited, deleted, again]) {
      expect([answer.status, answer.body.error]).toEqual([400, 'BOT_NOT_FOUND']);
    }
    expect(setup.emu.getMessage(messageId)).toMatchObject({ text: 'Build #41: running…', editCount: 0 });
  });

  it('frees the bot’s code: Bot.register with it makes a new bot, with a new id', async () => {
    setup = await startDemo();
    await setup.asBot(UNREGISTER);
    const answer = await postJson(setup.webhook(REGISTER), {
      fields: { code: 'build_bot', botToken: 'new_token', properties: { name: 'Build bot' } },
    });
    const { bot } = answer.body.result as { bot: { id: number; code: string } };
    expect(bot.code).toBe('build_bot');
    expect(bot.id).not.toBe(setup.demo.botId);
    expect(setup.emu.bots().map(({ id, code }) => ({ id, code }))).toEqual([
      { id: bot.id, code: 'build_bot' },
    ]);
  });

  it('takes the bot out of the chats it was in', async () => {
    setup = await startDemo();
    const made = await setup.asBot('imbot.v2.Chat.add', { fields: { title: 'Builds', userIds: [1] } });
    const { id } = (made.body.result as { chat: { id: number } }).chat;
    await setup.asBot(UNREGISTER);
    expect(setup.emu.chats().find((chat) => chat.id === id)?.members).toEqual([1]);
  });

  it('refuses a wrong token with 403 BOT_OWNERSHIP_ERROR and keeps the bot', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UNREGISTER, { botToken: 'not_the_token' });
    expect([answer.status, answer.body.error]).toEqual([403, 'BOT_OWNERSHIP_ERROR']);
    expect(setup.emu.bots().map((bot) => bot.id)).toContain(setup.demo.botId);
  });

  it('answers 400 BOT_NOT_FOUND for a bot nobody registered', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(UNREGISTER, { botId: 999 });
    expect([answer.status, answer.body.error]).toEqual([400, 'BOT_NOT_FOUND']);
  });

  it('answers 400 BOT_TOKEN_NOT_SPECIFIED over a webhook without botToken, and 400 BOT_ID_REQUIRED without botId', async () => {
    setup = await startDemo();
    const noToken = await postJson(setup.webhook(UNREGISTER), { botId: setup.demo.botId });
    const noId = await postJson(setup.webhook(UNREGISTER), { botToken: setup.demo.botToken });
    expect([noToken.status, noToken.body.error]).toEqual([400, 'BOT_TOKEN_NOT_SPECIFIED']);
    expect([noId.status, noId.body.error]).toEqual([400, 'BOT_ID_REQUIRED']);
    expect(setup.emu.bots().map((bot) => bot.id)).toContain(setup.demo.botId);
  });

  it('lets an OAuth app unregister its own bot, without a botToken, and refuses another app’s bot', async () => {
    setup = await startDemo();
    const grant = setup.emu.addOAuthApp({ clientId: 'local.app.1', clientSecret: 'app-secret-1' });
    const own = setup.emu.registerBot({ owner: { clientId: 'local.app.1' } });
    const other = setup.emu.registerBot({ owner: { clientId: 'local.app.2' } });
    const url = `${setup.emu.url}/rest/${UNREGISTER}`;
    const refused = await postJson(url, { auth: grant.accessToken, botId: other });
    const removed = await postJson(url, { auth: grant.accessToken, botId: own });
    expect([refused.status, refused.body.error]).toEqual([403, 'BOT_OWNERSHIP_ERROR']);
    expect([removed.status, removed.body.result]).toEqual([200, { result: true }]);
    expect(setup.emu.bots().map((bot) => bot.id)).toEqual([setup.demo.botId, other]);
  });
});
