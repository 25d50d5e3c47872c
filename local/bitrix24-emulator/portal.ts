import type { SecretRegistry } from './redaction.ts';
import type { BotOwner, BotType, EmulatedMessage } from './types.ts';

/** The legacy update page's window ("more than three days"), for `inferred.editWindowSeconds`. */
export const LEGACY_EDIT_WINDOW_SECONDS = 3 * 24 * 3600;

export interface Bot {
  /** Bots are users in Bitrix24: the bot id is also the author id of its messages. */
  id: number;
  code: string;
  botToken: string | undefined;
  owner: BotOwner;
  /** `bot` (default), `supervisor`, `personal`, `openline`: only supervisor and personal may read messages. */
  type: BotType;
}

export interface NewMessage {
  botId?: number | undefined;
  authorId?: number | undefined;
  chatId?: number | undefined;
  text: string;
  system?: boolean | undefined;
  id?: number | undefined;
  attach?: unknown;
  keyboard?: unknown;
  urlPreview?: boolean | undefined;
}

/** The portal's bots and chat messages. */
export class Portal {
  readonly bots = new Map<number, Bot>();
  readonly #messages = new Map<number, EmulatedMessage>();
  readonly #now: () => number;
  readonly #secrets: SecretRegistry;
  /** When each message was created, for the edit window. */
  readonly #createdAt = new Map<number, number>();
  /** Seconds after creation during which a message may be edited; null (the docs) for no window. */
  readonly #editWindowSeconds: number | null;
  #nextBotId = 1000;
  #nextMessageId = 1;

  constructor(now: () => number, secrets: SecretRegistry, editWindowSeconds: number | null = null) {
    this.#now = now;
    this.#secrets = secrets;
    this.#editWindowSeconds = editWindowSeconds;
  }

  registerBot(b: { id?: number; code?: string; botToken?: string; owner: BotOwner; type?: BotType }): number {
    const id = b.id ?? this.#nextBotId;
    this.#nextBotId = Math.max(this.#nextBotId, id + 1);
    this.#secrets.add(b.botToken);
    this.bots.set(id, {
      id,
      code: b.code ?? `bot_${id}`,
      botToken: b.botToken,
      owner: b.owner,
      type: b.type ?? 'bot',
    });
    return id;
  }

  /** A bot's new token (`Bot.update` with `fields.botToken`): the old one stops working at once. */
  setBotToken(id: number, botToken: string): void {
    const bot = this.bots.get(id);
    if (!bot) return;
    this.#secrets.add(botToken);
    bot.botToken = botToken;
  }

  /** Whether the edit window of a message has passed (always false without a window). */
  editWindowPassed(id: number, now: number): boolean {
    const created = this.#createdAt.get(id);
    if (this.#editWindowSeconds === null || created === undefined) return false;
    return now - created > this.#editWindowSeconds * 1000;
  }

  addMessage(m: NewMessage): number {
    const id = m.id ?? this.#nextMessageId;
    this.#nextMessageId = Math.max(this.#nextMessageId, id + 1);
    const system = m.system ?? false;
    // Bitrix24 stores system messages with author 0, which is why a bot cannot edit its own.
    const authorId = system ? 0 : (m.authorId ?? m.botId ?? 0);
    this.#messages.set(id, {
      id,
      chatId: m.chatId ?? 1,
      authorId,
      botId: m.botId,
      text: m.text,
      attach: m.attach ?? null,
      keyboard: m.keyboard ?? null,
      urlPreview: m.urlPreview ?? true,
      system,
      editCount: 0,
      history: [m.text],
      updatedAt: this.#now(),
    });
    this.#createdAt.set(id, this.#now());
    return id;
  }

  /** The live record, for the methods to change. */
  message(id: number): EmulatedMessage | undefined {
    return this.#messages.get(id);
  }

  deleteMessage(id: number): void {
    this.#messages.delete(id);
    this.#createdAt.delete(id);
  }

  /** Copies, so that callers cannot change the portal behind its back. */
  snapshot(id: number): EmulatedMessage | undefined {
    const message = this.#messages.get(id);
    return message ? structuredClone(message) : undefined;
  }

  snapshots(): EmulatedMessage[] {
    return [...this.#messages.values()].map((m) => structuredClone(m));
  }
}
