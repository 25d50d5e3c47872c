import type { EditFields } from '../edits/types.ts';
import { isRecord } from '../is-record.ts';

export const UPDATE_METHOD = 'imbot.v2.Chat.Message.update';

export interface UpdateTarget {
  botId: number;
  messageId: number;
  /** Webhook auth only; OAuth calls identify the bot by the app. */
  botToken?: string | undefined;
}

/**
 * Parameters of `imbot.v2.Chat.Message.update`, the same for a single JSON call and a `batch`
 * command. A keyboard gets `BOT_ID` beside `BUTTONS`, as the keyboard docs ask for updates, so that
 * command buttons are routed to this bot; a removal always goes out as `"N"` (an empty array would be
 * `[]` in JSON but `keyboard=` in a batch command, which Bitrix24 may read differently).
 */
export function updateParams(target: UpdateTarget, fields: EditFields): Record<string, unknown> {
  const out: Record<string, unknown> = { ...fields };
  if (fields.keyboard !== undefined) {
    out.keyboard =
      fields.keyboard === 'N' || fields.keyboard.length === 0
        ? 'N'
        : { BOT_ID: target.botId, BUTTONS: fields.keyboard };
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
