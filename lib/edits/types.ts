/**
 * The fields of an edit after validation and normalisation (what the ledger stores):
 * `urlPreview` is always `Y`/`N`; `keyboard` is a non-empty button array or `N` (every documented
 * removal form becomes `N`, every keyboard form the bare array; `updateParams` adds BOT_ID);
 * `attach` is either documented form, checked.
 */
export interface EditFields {
  message?: string;
  attach?: unknown[] | Record<string, unknown>;
  keyboard?: Record<string, unknown>[] | 'N';
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
