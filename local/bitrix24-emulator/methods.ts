import { isRecord } from '../../lib/is-record.ts';
import type { Identity } from './credentials.ts';
import {
  cutText,
  isMissing,
  type Parsed,
  parseAttach,
  parseBool,
  parseId,
  parseKeyboard,
} from './message-fields.ts';
import type { InferredSettings } from './options.ts';
import { customFailure, type Failure, fail, failure, type Outcome, ok } from './outcome.ts';
import { type Bot, type Chat, type Portal, PRIVATE_CHAT_BASE } from './portal.ts';
import { isoWithOffset } from './time-object.ts';
import type { EmulatedMessage, SuccessShape } from './types.ts';

export interface MethodContext {
  identity: Identity;
  params: Record<string, unknown>;
  portal: Portal;
  successShape: SuccessShape;
  now: number;
  /** The inferred rules turned on (all off by default). */
  inferred: InferredSettings;
}

export interface MethodEntry {
  name: string;
  run(ctx: MethodContext): Outcome;
}

/** Revision numbers as of the fact sheet (rev 36, 2026-05). */
const REVISION = { rest: 36, web: 130, mobile: 20, desktop: 10 };

function booleanResult(shape: SuccessShape): unknown {
  return shape === 'flat' ? true : { result: true };
}

/** The BotController checks every imbot.v2 method runs before its own logic (revision 34 codes). */
function authorizeBot(ctx: MethodContext): Bot | Failure {
  const { params, identity } = ctx;
  if (identity.kind === 'webhook' && isMissing(params.botToken)) return failure('BOT_TOKEN_NOT_SPECIFIED');
  if (isMissing(params.botId)) return failure('BOT_ID_REQUIRED');
  const botId = parseId(params.botId);
  const bot = botId === undefined ? undefined : ctx.portal.bots.get(botId);
  if (!bot) return failure('BOT_NOT_FOUND');
  // Over a webhook the bot token alone says whose bot it is, whichever of the portal's webhooks calls.
  const owned =
    identity.kind === 'webhook'
      ? bot.botToken !== undefined && String(params.botToken) === bot.botToken
      : 'clientId' in bot.owner && bot.owner.clientId === identity.clientId;
  return owned ? bot : failure('BOT_OWNERSHIP_ERROR');
}

function isBot(value: Bot | Failure): value is Bot {
  return 'id' in value;
}

function reject(f: Failure): Outcome {
  return { ok: false, ...f };
}

/** A message the bot may change: its own, and not a system message (those are stored with author 0). */
function ownMessage(ctx: MethodContext, bot: Bot): EmulatedMessage | undefined {
  const id = parseId(ctx.params.messageId);
  const message = id === undefined ? undefined : ctx.portal.message(id);
  if (!message || message.system || message.authorId !== bot.id) return undefined;
  return message;
}

function fieldsOf(params: Record<string, unknown>): Record<string, unknown> | undefined {
  const { fields } = params;
  return typeof fields === 'object' && fields !== null && !Array.isArray(fields)
    ? (fields as Record<string, unknown>)
    : undefined;
}

function textOf(value: unknown): string {
  return typeof value === 'string' ? value : isMissing(value) ? '' : String(value);
}

function isParsedFailure(parsed: Parsed<unknown>): parsed is { failure: Failure } {
  return 'failure' in parsed;
}

interface RichFields {
  attach?: { value: unknown[] | Record<string, unknown> };
  keyboard?: { value: Record<string, unknown> | null };
}

/** The attach and keyboard of `fields`, each parsed where present; the first failure wins. */
function parseRichFields(fields: Record<string, unknown>): RichFields | { failure: Failure } {
  const rich: RichFields = {};
  if (fields.attach !== undefined) {
    const attach = parseAttach(fields.attach);
    if (isParsedFailure(attach)) return attach;
    rich.attach = attach;
  }
  if (fields.keyboard !== undefined) {
    const keyboard = parseKeyboard(fields.keyboard);
    if (isParsedFailure(keyboard)) return keyboard;
    rich.keyboard = keyboard;
  }
  return rich;
}

/** `chat<N>`: group chat N; a user id: the private chat with that user. */
function parseDialog(dialogId: unknown): { group: boolean; chatId: number } | undefined {
  const text = textOf(dialogId).trim();
  const chat = /^chat(\d+)$/i.exec(text);
  if (chat) return { group: true, chatId: Number(chat[1]) };
  const user = parseId(text);
  return user === undefined ? undefined : { group: false, chatId: PRIVATE_CHAT_BASE + user };
}

function send(ctx: MethodContext): Outcome {
  const bot = authorizeBot(ctx);
  if (!isBot(bot)) return reject(bot);
  const dialog = parseDialog(ctx.params.dialogId);
  if (dialog === undefined) return fail('DIALOG_ID_REQUIRED');
  const { chatId } = dialog;
  if (dialog.group && !ctx.portal.inChat(chatId, bot.id)) return fail('ACCESS_DENIED');
  const fields = fieldsOf(ctx.params);
  if (!fields) return fail('FIELDS_REQUIRED');
  const rich = parseRichFields(fields);
  if ('failure' in rich) return reject(rich.failure);
  const { attach, keyboard } = rich;
  const text = textOf(fields.message);
  if (text === '' && !attach) return fail('EMPTY_MESSAGE');
  const id = ctx.portal.addMessage({
    botId: bot.id,
    chatId,
    text: cutText(text),
    system: parseBool(fields.system) ?? false,
    attach: attach ? attach.value : null,
    keyboard: keyboard ? keyboard.value : null,
    urlPreview: parseBool(fields.urlPreview) ?? true,
  });
  return ok({ id, uuidMap: {} });
}

/**
 * `Bot.register` (webhook auth): idempotent per code and owner; the token goes in `fields.botToken`.
 * A repeat with a code the owner already registered returns that bot as it is, its token included:
 * the page says the repeat returns the existing bot "without updating the data" and sends updates
 * to `Bot.update`. Whether a webhook call with another token counts as the same owner the pages do
 * not say; here the webhook's user is the owner, so it gets the bot back, token unchanged.
 */
function register(ctx: MethodContext): Outcome {
  const { identity } = ctx;
  const fields = fieldsOf(ctx.params) ?? {};
  if (identity.kind === 'webhook' && isMissing(fields.botToken)) return fail('BOT_TOKEN_NOT_SPECIFIED');
  const code = textOf(fields.code).trim();
  if (code === '') return fail('BOT_CODE_REQUIRED');
  const properties = fields.properties as Record<string, unknown> | undefined;
  if (typeof properties !== 'object' || properties === null || textOf(properties.name).trim() === '') {
    return fail('BOT_PROPERTIES_REQUIRED');
  }
  const owner =
    identity.kind === 'webhook' ? { webhookUserId: identity.userId } : { clientId: identity.clientId };
  const sameOwner = (bot: Bot) =>
    'webhookUserId' in owner
      ? 'webhookUserId' in bot.owner && bot.owner.webhookUserId === owner.webhookUserId
      : 'clientId' in bot.owner && bot.owner.clientId === owner.clientId;
  const existing = [...ctx.portal.bots.values()].find((bot) => bot.code === code);
  if (existing && !sameOwner(existing)) return fail('BOT_CODE_ALREADY_TAKEN');
  const id =
    existing?.id ??
    ctx.portal.registerBot({
      code,
      owner,
      ...(identity.kind === 'webhook' ? { botToken: textOf(fields.botToken) } : {}),
    });
  return ok({ bot: { id, code, type: textOf(fields.type) || 'bot', eventMode: 'fetch' }, users: [] });
}

/** The longest `botToken` (the `Bot.update` page; `Bot.register` enforces it from 2026-08-06). */
const BOT_TOKEN_MAX_LENGTH = 40;

/**
 * `Bot.update`, authorised like every imbot.v2 method (over a webhook by the bot's current token).
 * The emulator keeps no bot profile, so `properties` and the flags are accepted and not stored.
 * `fields.botToken` rotates the token: from the next call only the new one works. A blank one is
 * ignored, as documented; one another bot holds answers the generic BOT_TOKEN_ROTATION_FAILED; the
 * page names no code for one over 40 characters, so it answers Bot.register's for the same rule.
 */
function updateBot(ctx: MethodContext): Outcome {
  const bot = authorizeBot(ctx);
  if (!isBot(bot)) return reject(bot);
  const fields = fieldsOf(ctx.params);
  if (!fields) return fail('FIELDS_REQUIRED');
  const next = textOf(fields.botToken);
  if (next.trim() !== '' && next !== bot.botToken) {
    if (next.length > BOT_TOKEN_MAX_LENGTH) {
      return reject(customFailure('BOT_TOKEN_INVALID_LENGTH', 400, 'botToken is longer than 40 characters'));
    }
    const taken = [...ctx.portal.bots.values()].some(
      (other) => other.id !== bot.id && other.botToken === next,
    );
    if (taken) return reject(customFailure('BOT_TOKEN_ROTATION_FAILED', 400, 'Bot token rotation failed'));
    ctx.portal.setBotToken(bot.id, next);
  }
  return ok({ bot: { id: bot.id, code: bot.code, type: bot.type, eventMode: 'fetch' }, users: [] });
}

/** `Bot.unregister`: the bot is deleted; its messages stay, and its code is free again. */
function unregister(ctx: MethodContext): Outcome {
  const bot = authorizeBot(ctx);
  if (!isBot(bot)) return reject(bot);
  ctx.portal.unregisterBot(bot.id);
  return ok(booleanResult(ctx.successShape));
}

/** Ids from a JSON array or a PHP form's `userIds[]` / `userIds[0]`; anything that is no id is dropped. */
function idList(value: unknown): number[] {
  const items = Array.isArray(value) ? value : isRecord(value) ? Object.values(value) : [];
  return items.map(parseId).filter((id) => id !== undefined);
}

function userView(portal: Portal, id: number) {
  const bot = portal.bots.has(id);
  return { id, active: true, name: `User ${id}`, bot, type: bot ? 'bot' : 'employee' };
}

function chatView(chat: Chat, botId: number, firstMessageId: number | undefined, now: number) {
  return {
    id: chat.id,
    dialogId: `chat${chat.id}`,
    name: chat.title,
    description: chat.description,
    type: 'chat',
    messageType: 'C',
    owner: chat.ownerId,
    color: chat.color,
    avatar: '',
    role: chat.ownerId === botId ? 'owner' : 'member',
    dateCreate: isoWithOffset(now),
    lastMessageId: firstMessageId ?? null,
    messageCount: firstMessageId === undefined ? 0 : 1,
    muteList: [],
    managerList: [],
    userCounter: chat.members.size,
  };
}

/**
 * `Chat.add`: a group chat with the bot in it, owned by `fields.ownerId` or else by the bot. What
 * the page leaves open (README, "Bots and chats"): the owner is a member; `fields.message` is the
 * bot's first message; `users` lists the members but the calling bot, as the page's example does.
 */
function addChat(ctx: MethodContext): Outcome {
  const bot = authorizeBot(ctx);
  if (!isBot(bot)) return reject(bot);
  const fields = fieldsOf(ctx.params) ?? {};
  const chat = ctx.portal.addChat({
    title: textOf(fields.title),
    description: textOf(fields.description),
    colorCode: fields.color,
    ownerId: parseId(fields.ownerId) ?? bot.id,
    members: [bot.id, ...idList(fields.userIds)],
  });
  const text = textOf(fields.message);
  const firstMessageId =
    text.trim() === ''
      ? undefined
      : ctx.portal.addMessage({ botId: bot.id, chatId: chat.id, text: cutText(text) });
  const users = [...chat.members].filter((id) => id !== bot.id).map((id) => userView(ctx.portal, id));
  return ok({ chat: chatView(chat, bot.id, firstMessageId, ctx.now), users });
}

/** `Chat.leave`: only a group chat (`chat<N>`) the bot is in; a one-to-one dialog cannot be left. */
function leaveChat(ctx: MethodContext): Outcome {
  const bot = authorizeBot(ctx);
  if (!isBot(bot)) return reject(bot);
  const dialog = parseDialog(ctx.params.dialogId);
  if (dialog === undefined) return fail('DIALOG_ID_REQUIRED');
  if (!dialog.group || !ctx.portal.leaveChat(dialog.chatId, bot.id)) return fail('ACCESS_DENIED');
  return ok(booleanResult(ctx.successShape));
}

/**
 * The preview flag after an update. It goes with the text: a new text takes the given flag or the
 * documented default Y; without a new text the flag is ignored, as the legacy update ignored it,
 * unless the inferred rule says to apply it anyway.
 */
function urlPreviewAfter(ctx: MethodContext, fields: Record<string, unknown>, current: boolean): boolean {
  const given = parseBool(fields.urlPreview);
  if (fields.message !== undefined) return given ?? true;
  return ctx.inferred.urlPreviewWithoutMessage ? (given ?? current) : current;
}

/**
 * Update, with the rules the v2 page leaves out taken from the legacy and `im` pages: `fields` must
 * change something, and an empty text without an attach deletes the message (as `im.message.update`
 * and `imbot.message.update` document). The legacy edit window applies only when turned on
 * (`inferred.editWindowSeconds`).
 */
function update(ctx: MethodContext): Outcome {
  const bot = authorizeBot(ctx);
  if (!isBot(bot)) return reject(bot);
  const message = ownMessage(ctx, bot);
  if (!message) return fail('ACCESS_DENIED');
  const fields = fieldsOf(ctx.params);
  if (!fields || Object.keys(fields).length === 0) return fail('FIELDS_REQUIRED');
  if (ctx.portal.editWindowPassed(message.id, ctx.now)) return fail('CANT_EDIT_MESSAGE');
  const rich = parseRichFields(fields);
  if ('failure' in rich) return reject(rich.failure);
  const { attach, keyboard } = rich;

  if (fields.message !== undefined && textOf(fields.message).trim() === '' && !attach) {
    ctx.portal.deleteMessage(message.id);
    return ok(booleanResult(ctx.successShape));
  }
  if (fields.message !== undefined) message.text = cutText(textOf(fields.message));
  if (attach) message.attach = attach.value;
  if (keyboard) message.keyboard = keyboard.value;
  message.urlPreview = urlPreviewAfter(ctx, fields, message.urlPreview);
  message.editCount += 1;
  message.history.push(message.text);
  message.updatedAt = ctx.now;
  return ok(booleanResult(ctx.successShape));
}

function remove(ctx: MethodContext): Outcome {
  const bot = authorizeBot(ctx);
  if (!isBot(bot)) return reject(bot);
  const message = ownMessage(ctx, bot);
  if (!message) return fail('ACCESS_DENIED');
  ctx.portal.deleteMessage(message.id);
  return ok(booleanResult(ctx.successShape));
}

function get(ctx: MethodContext): Outcome {
  const bot = authorizeBot(ctx);
  if (!isBot(bot)) return reject(bot);
  if (bot.type !== 'supervisor' && bot.type !== 'personal') return fail('BOT_TYPE_NOT_ALLOWED');
  const id = parseId(ctx.params.messageId);
  const message = id === undefined ? undefined : ctx.portal.message(id);
  if (!message) return fail('ACCESS_DENIED');
  return ok({
    message: {
      id: message.id,
      chatId: message.chatId,
      authorId: message.authorId,
      date: isoWithOffset(message.updatedAt),
      text: message.text,
      isSystem: message.system,
      uuid: null,
      forward: null,
      params: {
        ATTACH: message.attach,
        KEYBOARD: message.keyboard,
        URL_PREVIEW: message.urlPreview ? 'Y' : 'N',
      },
      viewedByOthers: false,
    },
    user: {
      id: message.authorId,
      active: true,
      name: `User ${message.authorId}`,
      bot: message.botId !== undefined,
    },
  });
}

const ENTRIES: readonly MethodEntry[] = [
  { name: 'imbot.v2.Chat.Message.send', run: send },
  { name: 'imbot.v2.Chat.Message.update', run: update },
  { name: 'imbot.v2.Chat.Message.delete', run: remove },
  { name: 'imbot.v2.Chat.Message.get', run: get },
  { name: 'imbot.v2.Revision.get', run: () => ok(REVISION) },
  // Scope basic, any user, no parameters: the server's time as YYYY-MM-DDThh:mm:ss±hh:mm.
  { name: 'server.time', run: (ctx) => ok(isoWithOffset(ctx.now)) },
  { name: 'imbot.v2.Bot.register', run: register },
  { name: 'imbot.v2.Bot.update', run: updateBot },
  { name: 'imbot.v2.Bot.unregister', run: unregister },
  { name: 'imbot.v2.Chat.add', run: addChat },
  { name: 'imbot.v2.Chat.leave', run: leaveChat },
];

const BY_NAME = new Map(ENTRIES.map((entry) => [entry.name.toLowerCase(), entry]));

/** Method names are case-insensitive in Bitrix24, and `.json` only picks the answer format. */
export function canonicalMethodName(raw: string): string {
  const name = raw.replace(/\.json$/i, '');
  return BY_NAME.get(name.toLowerCase())?.name ?? (name.toLowerCase() === 'batch' ? 'batch' : name);
}

export function findMethod(raw: string): MethodEntry | undefined {
  return BY_NAME.get(canonicalMethodName(raw).toLowerCase());
}
