import { describe, expect, it } from 'vitest';
import {
  byMessage,
  type DrainRecord,
  incomingOf,
  type ParsedEdit,
  parseRecords,
} from '../../lib/drain/index.ts';

let n = 0;
// No MessageGroupId by default (as from a standard queue): only a group that is present is checked.
function record(body: unknown, groupId = '', sequenceNumber = ''): DrainRecord {
  n += 1;
  return {
    messageId: `m${n}`,
    receiptHandle: `h${n}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    groupId,
    receiveCount: 1,
    sentAt: 1_700_000_000_000 + n,
    sequenceNumber,
  };
}

const edit = (messageId: number, fields: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  portal: 'acme',
  botId: 456,
  messageId,
  fields,
  ...extra,
});

function parsed(...records: DrainRecord[]): ParsedEdit[] {
  return parseRecords(records).edits;
}

const _delays = { minDelayMs: 1_000, maxDelayMs: 43_200_000 };

describe('reading queue records', () => {
  it('defaults editId and requestedAt of external producers to the SQS message id and sent time', () => {
    const r = record(edit(1, { message: 'x' }), 'acme:456:1', '18');
    const [one] = parsed(r);
    expect(one?.edit.editId).toBe(r.messageId);
    expect(one?.edit.requestedAt).toBe(new Date(r.sentAt).toISOString());
    expect(incomingOf(one as ParsedEdit)).toMatchObject({ at: r.sentAt, seq: '18', editId: r.messageId });
  });

  it('takes the acceptance time the producer stamped over the time the record was sent', () => {
    const [one] = parsed(record(edit(1, { message: 'x' }, { requestedAt: '2023-01-01T00:00:00.000Z' })));
    expect(incomingOf(one as ParsedEdit).at).toBe(Date.parse('2023-01-01T00:00:00.000Z'));
  });

  it('takes a stamp later than SQS received the record as the time it was sent', () => {
    const r = record(edit(1, { message: 'x' }, { requestedAt: '2099-01-01T00:00:00.000Z' }));
    const [one] = parsed(r);
    expect(incomingOf(one as ParsedEdit).at).toBe(r.sentAt);
  });

  it('tells invalid bodies apart with the rule they break', () => {
    const { edits, invalid } = parseRecords([record('not json'), record(edit(1, {}))]);
    expect(edits).toEqual([]);
    expect(invalid.map((i) => i.description)).toEqual([
      'body is not JSON',
      'fields must contain at least one of message, attach, keyboard, urlPreview, isEdited',
    ]);
  });

  it('groups edits by message, keeping queue order inside each', () => {
    const groups = byMessage(
      parsed(
        record(edit(1, { message: 'a' })),
        record(edit(2, { message: 'b' })),
        record(edit(1, { message: 'c' })),
      ),
    );
    expect([...groups.values()].map((g) => g.map((p) => p.edit.fields.message))).toEqual([['a', 'c'], ['b']]);
  });
});
