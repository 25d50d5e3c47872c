/**
 * The fields of an edit as sent to Bitrix24, after validation and normalisation:
 * `urlPreview` is always `Y`/`N`, `keyboard` an array of buttons (or an object with `BUTTONS`) or `N`.
 */
export interface EditFields {
  message?: string;
  attach?: unknown[] | Record<string, unknown>;
  keyboard?: unknown[] | Record<string, unknown> | 'N';
  urlPreview?: 'Y' | 'N';
}

/**
 * The deferred-edits queue contract: the body of one SQS FIFO message.
 * MessageGroupId is `<portal>:<botId>:<messageId>`, MessageDeduplicationId the editId
 * (or the caller's Idempotency-Key).
 */
export interface QueuedEdit {
  portal: string;
  botId: number;
  messageId: number;
  fields: EditFields;
  /** Unique id of this edit (UUID when we make it). */
  editId: string;
  /** ISO 8601 time the edit was accepted. */
  requestedAt: string;
}

/** The message group of an edit: edits of one message keep their order. */
export function messageGroupId(edit: Pick<QueuedEdit, 'portal' | 'botId' | 'messageId'>): string {
  return `${edit.portal}:${edit.botId}:${edit.messageId}`;
}
