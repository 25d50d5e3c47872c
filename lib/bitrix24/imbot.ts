import type { EditFields } from '../edits/types.ts';
import { isRecord } from './client.ts';

export const UPDATE_METHOD = 'imbot.v2.Chat.Message.update';

export interface UpdateTarget {
  botId: number;
  messageId: number;
  /** Webhook auth only; OAuth calls identify the bot by the app. */
  botToken?: string | undefined;
}

/**
 * Parameters of `imbot.v2.Chat.Message.update`. A keyboard gets `BOT_ID` beside `BUTTONS`, as the
 * keyboard docs ask for updates, so that command buttons are routed to this bot.
 */
export function updateParams(target: UpdateTarget, fields: EditFields): Record<string, unknown> {
  const out: Record<string, unknown> = { ...fields };
  if (fields.keyboard !== undefined && fields.keyboard !== 'N') {
    out.keyboard = Array.isArray(fields.keyboard)
      ? { BOT_ID: target.botId, BUTTONS: fields.keyboard }
      : { BOT_ID: target.botId, ...fields.keyboard };
  }
  const params: Record<string, unknown> = { botId: target.botId, messageId: target.messageId, fields: out };
  if (target.botToken !== undefined) params.botToken = target.botToken;
  return params;
}

/** Both documented success shapes of boolean imbot.v2 methods: `true` and `{ result: true }`. */
export function isBooleanSuccess(result: unknown): boolean {
  if (result === true) return true;
  return isRecord(result) && result.result === true;
}
