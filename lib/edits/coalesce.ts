import { type EditFields, messageGroupId, type QueuedEdit } from './types.ts';

/** All queued edits of one message, merged into the one update that leaves it as the last edit meant. */
export interface MergedEdit<R> {
  /** `<portal>:<botId>:<messageId>`, the SQS message group. */
  groupId: string;
  portal: string;
  botId: number;
  messageId: number;
  /** The fields of every contributing edit, later ones overriding earlier ones field by field. */
  fields: EditFields;
  /** Every contributing record, in queue order: all of them are settled by this one update. */
  records: R[];
  /** Edit ids of the contributing edits, in queue order. */
  editIds: string[];
  /** Edit id of the last contributing edit. */
  lastEditId: string;
  /** `requestedAt` of the first contributing edit in queue order (for age metrics). */
  firstRequestedAt: string;
}

/**
 * Merges queued edits of the same message (portal, botId, messageId) in queue order, so a drain
 * sends one update per message instead of replaying superseded ones. Output is ordered by each
 * message's first appearance; records must be given in queue order (FIFO within a group).
 */
export function coalesceEdits<R>(records: Array<{ record: R; edit: QueuedEdit }>): MergedEdit<R>[] {
  const byGroup = new Map<string, MergedEdit<R>>();
  for (const { record, edit } of records) {
    const groupId = messageGroupId(edit);
    const merged = byGroup.get(groupId);
    if (merged) {
      merged.fields = mergeFields(merged.fields, edit.fields);
      merged.records.push(record);
      merged.editIds.push(edit.editId);
      merged.lastEditId = edit.editId;
    } else {
      byGroup.set(groupId, {
        groupId,
        portal: edit.portal,
        botId: edit.botId,
        messageId: edit.messageId,
        fields: mergeFields({}, edit.fields),
        records: [record],
        editIds: [edit.editId],
        lastEditId: edit.editId,
        firstRequestedAt: edit.requestedAt,
      });
    }
  }
  return [...byGroup.values()];
}

/**
 * `b` over `a`, field by field: each field of an update replaces that field wholesale on the
 * server (a new keyboard replaces the old one, `'N'` removes it), and fields an edit leaves out
 * stay as the earlier edit set them. An `undefined` in `b` does not erase `a`'s value.
 */
export function mergeFields(a: EditFields, b: EditFields): EditFields {
  // Generic over the keys so a field added to EditFields later merges without a change here.
  const defined = Object.entries(b).filter(([, value]) => value !== undefined);
  return { ...a, ...(Object.fromEntries(defined) as EditFields) };
}
