import type { Bitrix24Emulator } from './types.ts';

export interface DemoPortal {
  webhook: { userId: number; code: string };
  botId: number;
  botToken: string;
  chatId: number;
  /** Message 789, the one the README examples edit. */
  messageId: number;
  /** All messages by the bot that it may edit (789, 790, 791). */
  botMessageIds: number[];
  /** A message by a human user: editing it is ACCESS_DENIED. */
  humanMessageId: number;
  /** A system message sent by the bot: stored with author 0, so editing it is ACCESS_DENIED too. */
  systemMessageId: number;
}

/** The portal the README, the CLI and the local stack use: one webhook, one bot, chat 12. */
export function seedDemoPortal(emu: Bitrix24Emulator): DemoPortal {
  const webhook = { userId: 1, code: 'demo_webhook_code' };
  const botToken = 'my_bot_token';
  const chatId = 12;
  emu.addWebhook(webhook);
  const botId = emu.registerBot({
    id: 456,
    code: 'build_bot',
    botToken,
    owner: { webhookUserId: webhook.userId },
  });
  const messageId = emu.addMessage({ id: 789, botId, chatId, text: 'Build #41: running…' });
  const botMessageIds = [
    messageId,
    emu.addMessage({ id: 790, botId, chatId, text: 'Build #40: passed' }),
    emu.addMessage({ id: 791, botId, chatId, text: 'Deploy #17: waiting for approval' }),
  ];
  const humanMessageId = emu.addMessage({ id: 800, authorId: 1, chatId, text: 'Thanks, bot!' });
  const systemMessageId = emu.addMessage({
    id: 801,
    botId,
    chatId,
    text: 'Build bot joined the chat',
    system: true,
  });
  return { webhook, botId, botToken, chatId, messageId, botMessageIds, humanMessageId, systemMessageId };
}
