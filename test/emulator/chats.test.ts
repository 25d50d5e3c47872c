import { afterEach, describe, expect, it } from 'vitest';
import { type Answer, type DemoSetup, postJson, startDemo, UPDATE } from './helpers.ts';

const ADD = 'imbot.v2.Chat.add';
const LEAVE = 'imbot.v2.Chat.leave';
const SEND = 'imbot.v2.Chat.Message.send';

interface ChatAnswer {
  chat: { id: number; dialogId: string; owner: number; color: string; role: string; [key: string]: unknown };
  users: { id: number; bot: boolean; type: string }[];
}

let setup: DemoSetup;

afterEach(async () => {
  await setup?.emu.close();
});

function chatOf(answer: Answer): ChatAnswer {
  return answer.body.result as ChatAnswer;
}

/** A chat made by the demo bot; its dialog id. */
async function makeChat(fields: Record<string, unknown> = { title: 'Builds' }): Promise<string> {
  const answer = await setup.asBot(ADD, { fields });
  expect(answer.status).toBe(200);
  return chatOf(answer).chat.dialogId;
}

function sendTo(dialogId: string, bot = { botId: setup.demo.botId, botToken: setup.demo.botToken }) {
  return postJson(setup.webhook(SEND), { ...bot, dialogId, fields: { message: 'hello' } });
}

describe('imbot.v2.Chat.add', () => {
  it('makes a group chat the bot owns and answers it with its dialog id chat<N>, where the bot may then send', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(ADD, { fields: { title: 'Builds', description: 'CI news' } });
    expect(answer.status).toBe(200);
    expect(answer.body.time).toBeDefined();
    const { chat, users } = chatOf(answer);
    expect(chat).toMatchObject({
      dialogId: `chat${chat.id}`,
      name: 'Builds',
      description: 'CI news',
      type: 'chat',
      owner: setup.demo.botId,
      role: 'owner',
      lastMessageId: null,
      userCounter: 1,
    });
    expect(users).toEqual([]);
    expect(setup.emu.chats()).toEqual([
      expect.objectContaining({ id: chat.id, ownerId: setup.demo.botId, members: [setup.demo.botId] }),
    ]);
    const sent = await sendTo(chat.dialogId);
    expect(sent.status).toBe(200);
    const { id } = sent.body.result as { id: number };
    expect(setup.emu.getMessage(id)).toMatchObject({ chatId: chat.id, botId: setup.demo.botId });
  });

  it('gives a new chat an id past every chat the portal holds messages in', async () => {
    setup = await startDemo();
    const first = await makeChat();
    const second = await makeChat();
    expect([first, second]).toEqual(['chat13', 'chat14']);
  });

  it('puts fields.userIds in the chat and lists them, the calling bot left out as in the page’s example', async () => {
    setup = await startDemo();
    const other = setup.emu.registerBot({ botToken: 'other_bot_token', owner: { webhookUserId: 1 } });
    const answer = await setup.asBot(ADD, { fields: { userIds: [3, '4', 3, 'x', other] } });
    const { chat, users } = chatOf(answer);
    expect(users.map(({ id, bot, type }) => ({ id, bot, type }))).toEqual([
      { id: 3, bot: false, type: 'employee' },
      { id: 4, bot: false, type: 'employee' },
      { id: other, bot: true, type: 'bot' },
    ]);
    expect(chat.userCounter).toBe(4);
    expect(setup.emu.chats()[0]?.members).toEqual([3, 4, setup.demo.botId, other]);
  });

  it('makes fields.ownerId the owner and a member, the bot a member', async () => {
    setup = await startDemo();
    const { chat, users } = chatOf(await setup.asBot(ADD, { fields: { ownerId: 7 } }));
    expect([chat.owner, chat.role]).toEqual([7, 'member']);
    expect(users.map((user) => user.id)).toEqual([7]);
    expect(setup.emu.chats()[0]).toMatchObject({ ownerId: 7, members: [7, setup.demo.botId] });
  });

  it('posts fields.message as the chat’s first message, by the bot (inferred: the page does not say by whom)', async () => {
    setup = await startDemo();
    const { chat } = chatOf(await setup.asBot(ADD, { fields: { message: 'Hello, chat' } }));
    expect(chat.messageCount).toBe(1);
    expect(setup.emu.getMessage(chat.lastMessageId as number)).toMatchObject({
      chatId: chat.id,
      botId: setup.demo.botId,
      text: 'Hello, chat',
    });
  });

  it('answers the hex of a documented colour code, and assigns one of the documented colours to a missing or unknown code', async () => {
    setup = await startDemo();
    const mint = chatOf(await setup.asBot(ADD, { fields: { color: 'mint' } })).chat.color;
    const unknown = chatOf(await setup.asBot(ADD, { fields: { color: 'chartreuse' } })).chat.color;
    const none = chatOf(await setup.asBot(ADD, {})).chat.color;
    expect(mint).toBe('#4ba984');
    for (const color of [unknown, none]) expect(color).toMatch(/^#[0-9a-f]{6}$/);
  });

  it('refuses a wrong token with 403 BOT_OWNERSHIP_ERROR and an unknown bot with 400 BOT_NOT_FOUND, making no chat', async () => {
    setup = await startDemo();
    const wrong = await setup.asBot(ADD, { botToken: 'not_the_token', fields: { title: 'x' } });
    const unknown = await setup.asBot(ADD, { botId: 999, fields: { title: 'x' } });
    const noToken = await postJson(setup.webhook(ADD), { botId: setup.demo.botId });
    expect([wrong.status, wrong.body.error]).toEqual([403, 'BOT_OWNERSHIP_ERROR']);
    expect([unknown.status, unknown.body.error]).toEqual([400, 'BOT_NOT_FOUND']);
    expect([noToken.status, noToken.body.error]).toEqual([400, 'BOT_TOKEN_NOT_SPECIFIED']);
    expect(setup.emu.chats()).toEqual([]);
  });
});

describe('imbot.v2.Chat.Message.send to a chat made by imbot.v2.Chat.add', () => {
  it('refuses a bot that is not in the chat with 403 ACCESS_DENIED', async () => {
    setup = await startDemo();
    const dialogId = await makeChat();
    const other = setup.emu.registerBot({ botToken: 'other_bot_token', owner: { webhookUserId: 1 } });
    const answer = await sendTo(dialogId, { botId: other, botToken: 'other_bot_token' });
    expect([answer.status, answer.body.error]).toEqual([403, 'ACCESS_DENIED']);
  });
});

describe('imbot.v2.Chat.leave', () => {
  it('takes the bot out of the chat, answering {result: true}; its sends there and a second leave then answer 403 ACCESS_DENIED', async () => {
    setup = await startDemo();
    const dialogId = await makeChat({ userIds: [1] });
    const answer = await setup.asBot(LEAVE, { dialogId });
    expect([answer.status, answer.body.result]).toEqual([200, { result: true }]);
    expect(setup.emu.chats()[0]?.members).toEqual([1]);
    const sent = await sendTo(dialogId);
    const again = await setup.asBot(LEAVE, { dialogId });
    for (const refused of [sent, again])
      expect([refused.status, refused.body.error]).toEqual([403, 'ACCESS_DENIED']);
  });

  it('still lets the bot update and delete its own messages in a chat it left (inferred: the pages tie both to the author)', async () => {
    setup = await startDemo();
    const dialogId = await makeChat();
    const sent = await sendTo(dialogId);
    const messageId = (sent.body.result as { id: number }).id;
    await setup.asBot(LEAVE, { dialogId });
    const updated = await setup.asBot(UPDATE, { messageId, fields: { message: 'edited after leaving' } });
    expect(updated.status).toBe(200);
    expect(setup.emu.getMessage(messageId)?.text).toBe('edited after leaving');
    expect((await setup.asBot('imbot.v2.Chat.Message.delete', { messageId })).status).toBe(200);
    expect(setup.emu.getMessage(messageId)).toBeUndefined();
  });

  it('answers a bare true under the flat success shape', async () => {
    setup = await startDemo({ successShape: 'flat' });
    const answer = await setup.asBot(LEAVE, { dialogId: await makeChat() });
    expect([answer.status, answer.body.result]).toEqual([200, true]);
  });

  it('lets the bot send to a chat the emulator did not make until it leaves that chat', async () => {
    setup = await startDemo();
    expect((await sendTo('chat12')).status).toBe(200);
    expect((await setup.asBot(LEAVE, { dialogId: 'chat12' })).status).toBe(200);
    expect((await sendTo('chat12')).body.error).toBe('ACCESS_DENIED');
  });

  it('answers 403 ACCESS_DENIED for a chat the bot was never in, and for a one-to-one dialog', async () => {
    setup = await startDemo();
    const other = setup.emu.registerBot({ botToken: 'other_bot_token', owner: { webhookUserId: 1 } });
    const dialogId = await makeChat();
    const notIn = await postJson(setup.webhook(LEAVE), {
      botId: other,
      botToken: 'other_bot_token',
      dialogId,
    });
    const oneToOne = await setup.asBot(LEAVE, { dialogId: '1' });
    for (const answer of [notIn, oneToOne])
      expect([answer.status, answer.body.error]).toEqual([403, 'ACCESS_DENIED']);
    expect(setup.emu.chats()[0]?.members).toEqual([setup.demo.botId]);
  });

  it('answers 400 DIALOG_ID_REQUIRED without a usable dialogId', async () => {
    setup = await startDemo();
    const answer = await setup.asBot(LEAVE, {});
    expect([answer.status, answer.body.error]).toEqual([400, 'DIALOG_ID_REQUIRED']);
  });

  it('refuses a wrong token with 403 BOT_OWNERSHIP_ERROR and an unknown bot with 400 BOT_NOT_FOUND, the bot staying in the chat', async () => {
    setup = await startDemo();
    const dialogId = await makeChat();
    const wrong = await setup.asBot(LEAVE, { botToken: 'not_the_token', dialogId });
    const unknown = await setup.asBot(LEAVE, { botId: 999, dialogId });
    expect([wrong.status, wrong.body.error]).toEqual([403, 'BOT_OWNERSHIP_ERROR']);
    expect([unknown.status, unknown.body.error]).toEqual([400, 'BOT_NOT_FOUND']);
    expect((await sendTo(dialogId)).status).toBe(200);
  });
});
