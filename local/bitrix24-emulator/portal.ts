import type { SecretRegistry } from './redaction.ts';
import type { BotOwner, BotType, EmulatedBot, EmulatedChat, EmulatedMessage } from './types.ts';

/** The legacy update page's window ("more than three days"), for `inferred.editWindowSeconds`. */
export const LEGACY_EDIT_WINDOW_SECONDS = 3 * 24 * 3600;

/** One-to-one dialogs have no chat id in the request; each user's private chat is this plus the user id. */
export const PRIVATE_CHAT_BASE = 1_000_000;

/** `Chat.add`'s colour codes and what its answer shows for each (the page's table). */
export const CHAT_COLORS: Readonly<Record<string, string>> = {
  red: '#df532d',
  green: '#64a513',
  mint: '#4ba984',
  lightBlue: '#4ba5c3',
  darkBlue: '#3e99ce',
  purple: '#8474c8',
  aqua: '#1eb4aa',
  pink: '#f76187',
  lime: '#58cc47',
  brown: '#ab7761',
  azure: '#29619b',
  khaki: '#728f7a',
  sand: '#ba9c7b',
  marengo: '#556574',
  gray: '#909090',
  graphite: '#5e5f5e',
};
const AUTOMATIC_COLORS = Object.values(CHAT_COLORS);

export interface Bot {
  /** Bots are users in Bitrix24: the bot id is also the author id of its messages. */
  id: number;
  code: string;
  botToken: string | undefined;
  owner: BotOwner;
  /** `bot` (default), `supervisor`, `personal`, `openline`: only supervisor and personal may read messages. */
  type: BotType;
}

/** A group chat made by `Chat.add`: the only chats whose members the emulator knows. */
export interface Chat {
  id: number;
  title: string;
  description: string;
  /** Hex, as the answer shows it. */
  color: string;
  ownerId: number;
  /** Users and bots; the owner is one of them. */
  members: Set<number>;
}

export interface NewChat {
  title: string;
  description: string;
  /** One of `CHAT_COLORS`' codes; anything else gets a colour assigned. */
  colorCode: unknown;
  ownerId: number;
  members: Iterable<number>;
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
  readonly #chats = new Map<number, Chat>();
  /** `chatId:userId` of those who left a group chat the emulator did not make. */
  readonly #leftUnmadeChats = new Set<string>();
  #nextBotId = 1000;
  #nextMessageId = 1;
  /** Past every group chat made or holding a message, so that a new chat never takes a seeded one's id. */
  #nextChatId = 1;

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

  /** The bot is gone: its id and token are refused from now on, and it is out of every chat it was in. */
  unregisterBot(id: number): void {
    this.bots.delete(id);
    for (const chat of this.#chats.values()) chat.members.delete(id);
  }

  addChat(c: NewChat): Chat {
    const id = this.#nextChatId;
    this.#nextChatId += 1;
    const color =
      typeof c.colorCode === 'string' && Object.hasOwn(CHAT_COLORS, c.colorCode)
        ? (CHAT_COLORS[c.colorCode] as string)
        : (AUTOMATIC_COLORS[id % AUTOMATIC_COLORS.length] as string);
    const { title, description, ownerId } = c;
    const chat: Chat = { id, title, description, color, ownerId, members: new Set([ownerId, ...c.members]) };
    this.#chats.set(id, chat);
    return chat;
  }

  /**
   * Whether a user or bot is in a group chat. Of a chat the emulator did not make it knows no
   * members, so everyone counts as one until they leave it (seeded chats need no setup).
   */
  inChat(chatId: number, userId: number): boolean {
    const chat = this.#chats.get(chatId);
    return chat ? chat.members.has(userId) : !this.#leftUnmadeChats.has(`${chatId}:${userId}`);
  }

  /** Takes a user or bot out of a group chat; false when it was not in it. */
  leaveChat(chatId: number, userId: number): boolean {
    if (!this.inChat(chatId, userId)) return false;
    const chat = this.#chats.get(chatId);
    if (chat) chat.members.delete(userId);
    else this.#leftUnmadeChats.add(`${chatId}:${userId}`);
    return true;
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
    const chatId = m.chatId ?? 1;
    if (chatId < PRIVATE_CHAT_BASE) this.#nextChatId = Math.max(this.#nextChatId, chatId + 1);
    const system = m.system ?? false;
    // Bitrix24 stores system messages with author 0, which is why a bot cannot edit its own.
    const authorId = system ? 0 : (m.authorId ?? m.botId ?? 0);
    this.#messages.set(id, {
      id,
      chatId,
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

  botSnapshots(): EmulatedBot[] {
    return [...this.bots.values()].map(({ id, code, type, owner }) => ({
      id,
      code,
      type,
      owner: { ...owner },
    }));
  }

  chatSnapshots(): EmulatedChat[] {
    return [...this.#chats.values()].map(({ id, title, description, color, ownerId, members }) => ({
      id,
      dialogId: `chat${id}`,
      title,
      description,
      color,
      ownerId,
      members: [...members].sort((a, b) => a - b),
    }));
  }
}
