import { describe, expect, it } from 'vitest';
import { coalesceEdits, mergeFields } from '../../lib/edits/coalesce.ts';
import type { EditFields, QueuedEdit } from '../../lib/edits/types.ts';

const KEYBOARD = [{ TEXT: 'Yes', COMMAND: 'yes' }];
const OTHER_KEYBOARD = [{ TEXT: 'No', COMMAND: 'no' }];

let sequence = 0;
function queued(
  fields: EditFields,
  target: Partial<Pick<QueuedEdit, 'portal' | 'botId' | 'messageId'>> = {},
) {
  sequence += 1;
  const edit: QueuedEdit = {
    portal: 'a.bitrix24.com',
    botId: 7,
    messageId: 100,
    ...target,
    fields,
    editId: `e${sequence}`,
    requestedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, sequence)).toISOString(),
  };
  return { record: `r${sequence}`, edit };
}

describe('coalesceEdits', () => {
  it('turns one edit into one merged edit carrying its record', () => {
    const input = queued({ message: 'hi' });
    expect(coalesceEdits([input])).toEqual([
      {
        groupId: 'a.bitrix24.com:7:100',
        portal: 'a.bitrix24.com',
        botId: 7,
        messageId: 100,
        fields: { message: 'hi' },
        records: [input.record],
        editIds: [input.edit.editId],
        lastEditId: input.edit.editId,
        firstRequestedAt: input.edit.requestedAt,
      },
    ]);
  });

  it('keeps an earlier message when a later edit changes only the keyboard', () => {
    const [merged] = coalesceEdits([
      queued({ message: 'first', urlPreview: 'N' }),
      queued({ keyboard: KEYBOARD }),
    ]);
    expect(merged?.fields).toEqual({ message: 'first', urlPreview: 'N', keyboard: KEYBOARD });
  });

  it('lets a later message replace an earlier one', () => {
    const [merged] = coalesceEdits([
      queued({ message: 'one' }),
      queued({ message: 'two' }),
      queued({ message: 'three' }),
    ]);
    expect(merged?.fields).toEqual({ message: 'three' });
  });

  it('lets a later keyboard "N" remove an earlier keyboard, and a later keyboard replace "N"', () => {
    const [removed] = coalesceEdits([
      queued({ message: 'm', keyboard: KEYBOARD }),
      queued({ keyboard: 'N' }),
    ]);
    expect(removed?.fields).toEqual({ message: 'm', keyboard: 'N' });
    const [restored] = coalesceEdits([queued({ keyboard: 'N' }), queued({ keyboard: OTHER_KEYBOARD })]);
    expect(restored?.fields).toEqual({ keyboard: OTHER_KEYBOARD });
  });

  it('replaces a keyboard or attach wholesale rather than merging buttons or blocks', () => {
    const [merged] = coalesceEdits([
      queued({ keyboard: [...KEYBOARD, ...OTHER_KEYBOARD], attach: [{ MESSAGE: 'a' }, { MESSAGE: 'b' }] }),
      queued({ keyboard: OTHER_KEYBOARD, attach: { BLOCKS: [{ MESSAGE: 'c' }] } }),
    ]);
    expect(merged?.fields).toEqual({ keyboard: OTHER_KEYBOARD, attach: { BLOCKS: [{ MESSAGE: 'c' }] } });
  });

  it('records every contributing record and edit id in queue order, and the first request time', () => {
    const inputs = [queued({ message: 'a' }), queued({ message: 'b' }), queued({ keyboard: 'N' })];
    const [merged] = coalesceEdits(inputs);
    expect(merged?.records).toEqual(inputs.map((i) => i.record));
    expect(merged?.editIds).toEqual(inputs.map((i) => i.edit.editId));
    expect(merged?.lastEditId).toBe(inputs[2]?.edit.editId);
    expect(merged?.firstRequestedAt).toBe(inputs[0]?.edit.requestedAt);
  });

  it('keeps messages apart when portal, bot or message id differ', () => {
    const merged = coalesceEdits([
      queued({ message: 'base' }),
      queued({ message: 'other portal' }, { portal: 'b.bitrix24.com' }),
      queued({ message: 'other bot' }, { botId: 8 }),
      queued({ message: 'other message' }, { messageId: 101 }),
    ]);
    expect(merged.map((m) => [m.groupId, m.fields.message])).toEqual([
      ['a.bitrix24.com:7:100', 'base'],
      ['b.bitrix24.com:7:100', 'other portal'],
      ['a.bitrix24.com:8:100', 'other bot'],
      ['a.bitrix24.com:7:101', 'other message'],
    ]);
  });

  it('orders merged edits by first appearance when groups interleave', () => {
    const a1 = queued({ message: 'a1' });
    const b1 = queued({ message: 'b1' }, { messageId: 2 });
    const a2 = queued({ message: 'a2' });
    const c1 = queued({ message: 'c1' }, { messageId: 3 });
    const b2 = queued({ keyboard: 'N' }, { messageId: 2 });
    const merged = coalesceEdits([a1, b1, a2, c1, b2]);
    expect(merged.map((m) => ({ records: m.records, fields: m.fields }))).toEqual([
      { records: [a1.record, a2.record], fields: { message: 'a2' } },
      { records: [b1.record, b2.record], fields: { message: 'b1', keyboard: 'N' } },
      { records: [c1.record], fields: { message: 'c1' } },
    ]);
  });

  it('does not change the queued edits it merges', () => {
    const first = queued({ message: 'a', keyboard: KEYBOARD });
    const snapshot = structuredClone(first.edit);
    coalesceEdits([first, queued({ message: 'b' })]);
    expect(first.edit).toEqual(snapshot);
  });

  it('returns nothing for no records', () => {
    expect(coalesceEdits([])).toEqual([]);
  });
});

describe('mergeFields', () => {
  it('overrides field by field, later over earlier', () => {
    expect(mergeFields({ message: 'a', keyboard: KEYBOARD }, { keyboard: 'N', urlPreview: 'Y' })).toEqual({
      message: 'a',
      keyboard: 'N',
      urlPreview: 'Y',
    });
  });

  it('does not let an explicit undefined erase an earlier value', () => {
    const later = { message: undefined, urlPreview: 'N' } as unknown as EditFields;
    expect(mergeFields({ message: 'kept' }, later)).toEqual({ message: 'kept', urlPreview: 'N' });
  });

  it('returns a new object and leaves both inputs alone', () => {
    const a: EditFields = { message: 'a' };
    const b: EditFields = { keyboard: 'N' };
    const merged = mergeFields(a, b);
    expect(merged).not.toBe(a);
    expect(a).toEqual({ message: 'a' });
    expect(b).toEqual({ keyboard: 'N' });
  });
});
