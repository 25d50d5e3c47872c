/** The fields of an update this service takes, in the order it names them. */
export const EDIT_FIELD_NAMES = ['message', 'attach', 'keyboard', 'urlPreview', 'isEdited'] as const;

/**
 * The fields of an edit after validation and normalisation (what the ledger stores):
 * `urlPreview` is always `Y`/`N`; `keyboard` is a non-empty button array or `N` (every documented
 * removal form becomes `N`, every keyboard form the bare array; `updateParams` adds BOT_ID);
 * `attach` is either documented form, checked, or `N` (every removal form); `isEdited` a boolean.
 */
export interface EditFields {
  message?: string;
  attach?: unknown[] | Record<string, unknown> | 'N';
  keyboard?: Record<string, unknown>[] | 'N';
  urlPreview?: 'Y' | 'N';
  /**
   * Whether the message shows as edited. Sent only when given; Bitrix24's default for v2 is not
   * documented (the legacy `im.message.update` took `IS_EDITED` `Y`/`N`, default `Y`).
   */
  isEdited?: boolean;
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
