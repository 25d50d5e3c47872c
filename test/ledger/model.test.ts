import { describe, expect, it } from 'vitest';
import {
  desiredFields,
  dueAt,
  emptyState,
  fateOf,
  type IncomingEdit,
  isDirty,
  type MessageState,
  mergeEdits,
} from '../../lib/ledger/model.ts';

const key = { portal: 'acme', botId: 456, messageId: 789 };
const timing = { messageMinIntervalMs: 1_000, ambiguousSettleMs: 65_000 };

function edit(editId: string, at: number, fields: IncomingEdit['fields'], seq = ''): IncomingEdit {
  return { ...key, editId, at, seq, fields };
}

function merged(...edits: IncomingEdit[]): MessageState {
  return mergeEdits(emptyState(key), edits).state;
}

describe('merging edits into a message’s desired state', () => {
  it('keeps, per field, the value of the edit accepted last, whatever order they arrive in', () => {
    const a = edit('a', 1_000, { message: 'red', keyboard: 'N' });
    const b = edit('b', 2_000, { message: 'green' });
    const inOrder = merged(a, b);
    const reversed = merged(b, a);
    expect(desiredFields(inOrder)).toEqual({ message: 'green', keyboard: 'N' });
    expect(desiredFields(reversed)).toEqual({ message: 'green', keyboard: 'N' });
  });

  it('breaks a tie of acceptance times by queue sequence number, compared as numbers', () => {
    const early = edit('a', 1_000, { message: 'first' }, '99');
    const late = edit('b', 1_000, { message: 'second' }, '100');
    expect(desiredFields(merged(late, early)).message).toBe('second');
  });

  it('lets the later arrival win between two edits stamped in the same millisecond without queue order', () => {
    const state = merged(edit('a', 1_000, { message: 'first' }), edit('b', 1_000, { message: 'second' }));
    expect(desiredFields(state).message).toBe('second');
  });

  it('reports an edit whose every field was set by a later edit as superseded, without a new version', () => {
    const state = merged(edit('b', 2_000, { message: 'new' }));
    const result = mergeEdits(state, [edit('a', 1_000, { message: 'old' })]);
    expect(result.changed).toBe(false);
    expect(result.superseded).toEqual(['a']);
    expect(result.state.version).toBe(1);
  });

  it('changes nothing when the same edit arrives again by another path', () => {
    const state = merged(edit('a', 1_000, { message: 'x' }));
    const again = mergeEdits(state, [edit('a', 1_000, { message: 'x' }, '12345')]);
    expect(again.changed).toBe(false);
    expect(again.superseded).toEqual([]);
  });

  it('makes a failed message dirty again when its failed state is replayed under an edit id of its own', () => {
    const state = { ...merged(edit('a', 1_000, { message: 'x' })), failedVersion: 1 };
    expect(isDirty(state)).toBe(false);
    const replay = mergeEdits(state, [edit('failed-1-r', 1_000, { message: 'x' }, '777')]);
    expect(replay.changed).toBe(true);
    expect(isDirty(replay.state)).toBe(true);
  });

  it('makes a failed message dirty again when one of its own records comes back whole (a DLQ redrive)', () => {
    const state = { ...merged(edit('a', 1_000, { message: 'x' })), failedVersion: 1 };
    const again = mergeEdits(state, [edit('a', 1_000, { message: 'x' }, '12')]);
    expect(again.changed).toBe(true);
    expect(isDirty(again.state)).toBe(true);
    expect(again.state.attempts).toBe(0);
  });

  it('leaves a failed message failed when an edit every field of which was set later comes back', () => {
    const state = {
      ...merged(edit('a', 1_000, { message: 'x' }), edit('b', 2_000, { message: 'y' })),
      failedVersion: 1,
    };
    const again = mergeEdits(state, [edit('a', 1_000, { message: 'x' })]);
    expect(again.changed).toBe(false);
    expect(isDirty(again.state)).toBe(false);
  });

  it('keeps the later stamp of an equal value without a new version, so an edit accepted in between stays older', () => {
    const red = merged(edit('a', 1_000, { message: 'red' }));
    const again = mergeEdits(red, [edit('c', 3_000, { message: 'red' })]);
    expect(again).toMatchObject({ changed: false, restamped: true });
    expect(again.state.version).toBe(1);
    const late = mergeEdits(again.state, [edit('b', 2_000, { message: 'green' })]);
    expect(late.changed).toBe(false);
    expect(desiredFields(late.state).message).toBe('red');
  });

  it('keeps a field an edit leaves out as the earlier edit set it', () => {
    const state = merged(
      edit('a', 1_000, { message: 'text' }),
      edit('b', 2_000, { keyboard: [{ TEXT: 'Go' }] }),
    );
    expect(desiredFields(state)).toEqual({ message: 'text', keyboard: [{ TEXT: 'Go' }] });
  });
});

describe('when a dirty message may be applied', () => {
  it('waits for the cadence after the last call and for the settle window after an ambiguous one', () => {
    const state = merged(edit('a', 1_000, { message: 'x' }));
    expect(dueAt({ ...state, lastCallAt: 10_000 }, timing)).toBe(11_000);
    expect(dueAt({ ...state, lastCallAt: 10_000, inDoubtSince: 10_000 }, timing)).toBe(75_000);
    expect(dueAt({ ...state, lastCallAt: 10_000 }, { ...timing, messageMinIntervalMs: 0 })).toBe(0);
    expect(dueAt({ ...state, retryAt: 90_000, lastCallAt: 10_000 }, timing)).toBe(90_000);
  });

  it('tells applied, pending and failed messages apart', () => {
    const state = merged(edit('a', 1_000, { message: 'x' }));
    expect(fateOf(state, timing).kind).toBe('pending');
    expect(fateOf({ ...state, appliedVersion: 1 }, timing)).toEqual({ kind: 'applied', version: 1 });
    const error = { code: 'ACCESS_DENIED', description: 'no', at: 5 };
    expect(fateOf({ ...state, failedVersion: 1, lastError: error }, timing)).toEqual({
      kind: 'failed',
      version: 1,
      error,
    });
  });
});
