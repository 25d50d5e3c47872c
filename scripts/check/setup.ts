// What the check needs on each side before its sequence, and takes away after it: on the portal a bot
// of its own with a fresh token and a chat it owns; in the emulator the same webhook user and bot.
import { randomBytes } from 'node:crypto';
import { type Bitrix24Client, createBitrix24Client } from '../../lib/bitrix24/client.ts';
import { isBitrix24Error } from '../../lib/bitrix24/errors.ts';
import type { PortalAuth } from '../../lib/bitrix24/types.ts';
import { AppError } from '../../lib/errors.ts';
import { isRecord } from '../../lib/is-record.ts';
import { registerSecret } from '../../lib/observability/redact.ts';
import type { LeakyBucket } from '../../lib/pacing/leaky-bucket.ts';
import { startBitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { Caller, Side } from './side.ts';

export const CHECK_BOT_CODE = 'b24_message_editor_check';
const BOT_NAME = 'Message editor check';
const CHAT_TITLE = 'b24-message-editor check';

type Webhook = Extract<PortalAuth, { type: 'webhook' }>;

/** A failed call in a line: Bitrix24's status, code and description (the client has redacted it). */
function failed(error: unknown): string {
  if (!isBitrix24Error(error)) return error instanceof Error ? error.message : String(error);
  const description = error.description ? ` (${error.description})` : '';
  return `${error.httpStatus ?? 'no answer'} ${error.code}${description}`;
}

export interface PortalRunOptions {
  client: Bitrix24Client;
  auth: Webhook;
  code: string;
  bucket: LeakyBucket;
}

/**
 * The check's footprint on the user's portal, kept as it is made so that `cleanUp` takes away what
 * exists, however far `setUp` or the sequence got.
 */
export class PortalRun {
  /** What was set up, for the report. */
  readonly notes: string[] = [];
  /** The portal's imbot.v2 REST revision (`imbot.v2.Revision.get`). */
  revision: number | undefined;
  side: Side | undefined;
  readonly #caller: Caller;
  readonly #code: string;
  readonly #userId: number;
  #bot: { id: number; token: string } | undefined;
  /** Until its token is shown to be another's, the bot may be this run's: the cleanup tries to remove it. */
  #ours = false;
  #chat: string | undefined;

  constructor({ client, auth, code, bucket }: PortalRunOptions) {
    this.#caller = new Caller({ client, auth, bucket });
    this.#code = code;
    this.#userId = auth.userId;
  }

  get #host(): string {
    return this.#caller.client.host;
  }

  async setUp(): Promise<Side> {
    // The webhook works, and which revision the portal runs: before anything is made on it.
    const revision = await this.#caller.call<{ rest?: unknown }>('imbot.v2.Revision.get', {});
    if (typeof revision.result.rest === 'number') this.revision = revision.result.rest;

    const token = randomBytes(16).toString('hex');
    registerSecret(token);
    const id = await this.#register(token);
    this.#bot = { id, token };
    this.#ours = true;
    await this.#checkToken(id, token);
    this.notes.push(`Bot ${id} (code \`${this.#code}\`) registered for this run, with a fresh token.`);
    this.side = new Side(this.#caller, { id, token }, await this.#makeChat(id, token));
    return this.side;
  }

  async #register(token: string): Promise<number> {
    try {
      const { result } = await this.#caller.call<{ bot?: { id?: unknown } }>('imbot.v2.Bot.register', {
        fields: { code: this.#code, botToken: token, type: 'bot', properties: { name: BOT_NAME } },
      });
      if (typeof result.bot?.id !== 'number')
        throw new Error('imbot.v2.Bot.register answered without bot.id');
      return result.bot.id;
    } catch (error) {
      if (!isBitrix24Error(error) || error.code !== 'BOT_CODE_ALREADY_TAKEN') throw error;
      throw new AppError(
        'CHECK_BOT_TAKEN',
        `The bot code ${this.#code} on ${this.#host} belongs to another application (BOT_CODE_ALREADY_TAKEN): run with --code <another code>`,
      );
    }
  }

  /**
   * Bot.register answers a code already registered with that bot as it is, its token included: a
   * bot an earlier check could not remove comes back holding that run's token (register-bot's rule).
   */
  async #checkToken(id: number, token: string): Promise<void> {
    try {
      await this.#caller.call('imbot.v2.Bot.update', {
        botId: id,
        botToken: token,
        fields: { properties: { name: BOT_NAME } },
      });
    } catch (error) {
      if (!isBitrix24Error(error) || error.code !== 'BOT_OWNERSHIP_ERROR') throw error;
      this.#ours = false;
      throw new AppError(
        'CHECK_BOT_TAKEN',
        `Bot ${id} (code ${this.#code}) on ${this.#host} already exists with another token, so the check cannot use it: an earlier check that could not remove it left it behind. Remove that bot in the portal, or run with --code <another code>`,
      );
    }
  }

  /** A chat the bot owns; where the portal will not make one, the bot's dialog with the webhook's user. */
  async #makeChat(botId: number, botToken: string): Promise<string> {
    try {
      const { result } = await this.#caller.call<{ chat?: unknown }>('imbot.v2.Chat.add', {
        botId,
        botToken,
        fields: {
          title: CHAT_TITLE,
          description: 'Made by npm run b24 -- check; the bot leaves it when done.',
        },
      });
      const chat = isRecord(result.chat) ? result.chat : {};
      const dialogId =
        typeof chat.dialogId === 'string'
          ? chat.dialogId
          : typeof chat.id === 'number'
            ? `chat${chat.id}`
            : '';
      if (dialogId === '') throw new Error('imbot.v2.Chat.add answered without chat.dialogId');
      this.#chat = dialogId;
      this.notes.push(`Chat \`${dialogId}\` made for this run (imbot.v2.Chat.add), owned by the bot.`);
      return dialogId;
    } catch (error) {
      this.notes.push(
        `imbot.v2.Chat.add answered ${failed(error)}: the messages go to the bot's private dialog with user ${this.#userId} (the webhook's user) instead.`,
      );
      return String(this.#userId);
    }
  }

  /** Deletes the messages sent, leaves the chat, unregisters the bot; says what it did and what it could not. */
  async cleanUp(): Promise<string[]> {
    const bot = this.#bot;
    if (!bot || !this.#ours) return [];
    const auth = { botId: bot.id, botToken: bot.token };
    const [deleted, gone, kept] = [[] as number[], [] as number[], [] as string[]];
    for (const messageId of this.side?.sent ?? []) {
      try {
        await this.#caller.call('imbot.v2.Chat.Message.delete', { ...auth, messageId, complete: true });
        deleted.push(messageId);
      } catch (error) {
        // Not there, or not the bot's: the sequence's empty text may have deleted it already.
        if (isBitrix24Error(error) && error.code === 'ACCESS_DENIED') gone.push(messageId);
        else
          kept.push(
            `Message ${messageId} is still there: imbot.v2.Chat.Message.delete answered ${failed(error)}.`,
          );
      }
    }
    const lines = [
      ...(deleted.length > 0 ? [`Messages deleted: ${deleted.join(', ')}.`] : []),
      ...(gone.length > 0
        ? [`Messages already gone (a delete answered ACCESS_DENIED): ${gone.join(', ')}.`]
        : []),
      ...kept,
    ];
    if (this.#chat) {
      try {
        await this.#caller.call('imbot.v2.Chat.leave', { ...auth, dialogId: this.#chat });
        lines.push(`The bot left \`${this.#chat}\`.`);
      } catch (error) {
        lines.push(`The bot is still in \`${this.#chat}\`: imbot.v2.Chat.leave answered ${failed(error)}.`);
      }
    }
    try {
      await this.#caller.call('imbot.v2.Bot.unregister', auth);
      lines.push(`Bot ${bot.id} unregistered.`);
    } catch (error) {
      lines.push(
        `Bot ${bot.id} (code \`${this.#code}\`) is still registered: imbot.v2.Bot.unregister answered ${failed(error)}. Remove it in the portal: until then a check with this --code stops at it.`,
      );
    }
    return lines;
  }
}

/**
 * The emulator of this checkout, in this process, seeded as the portal is: the webhook's user and
 * the check's bot with the same id, code and token, so that both sides get the same requests.
 */
export async function startReference(portal: { userId: number; code: string; side: Side }) {
  const emulator = await startBitrix24Emulator({ limits: null });
  const webhook = { userId: portal.userId, code: `check_${randomBytes(8).toString('hex')}` };
  emulator.addWebhook(webhook);
  const { bot, dialogId } = portal.side;
  emulator.registerBot({
    id: bot.id,
    code: portal.code,
    botToken: bot.token,
    owner: { webhookUserId: portal.userId },
  });
  const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
  const side = new Side(new Caller({ client, auth: { type: 'webhook', ...webhook } }), bot, dialogId);
  return { side, close: () => emulator.close() };
}
