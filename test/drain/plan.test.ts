import { describe, expect, it } from 'vitest';
import {
  type DrainRecord,
  type EditOutcome,
  FAILED_QUEUE_UNAVAILABLE,
  INVALID_EDIT,
  MAX_ATTEMPTS,
  mergeEdits,
  parseRecords,
  planDecisions,
  settleDeadLetters,
} from '../../lib/drain/index.ts';

let seq = 0;
function record(body: unknown, groupId: string, receiveCount = 1): DrainRecord {
  seq += 1;
  return {
    messageId: `m${seq}`,
    receiptHandle: `h${seq}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    groupId,
    receiveCount,
    sentAt: 1_700_000_000_000 + seq,
  };
}

const edit = (messageId: number, fields: Record<string, unknown>, editId?: string) => ({
  portal: 'acme',
  botId: 456,
  messageId,
  fields,
  ...(editId ? { editId } : {}),
});

function plan(records: DrainRecord[], outcomeOf: (messageId: number) => EditOutcome, maxAttempts = 8) {
  const { edits, invalid } = parseRecords(records);
  const merged = mergeEdits(edits);
  const outcomes = new Map(merged.map((m) => [m, outcomeOf(m.messageId)]));
  return { merged, ...planDecisions({ records, invalid, outcomes, maxAttempts }) };
}

const applied: EditOutcome = { kind: 'applied' };
const deferred = (delayMs = 3000): EditOutcome => ({
  kind: 'deferred',
  code: 'INTERNAL_SERVER_ERROR',
  description: 'Internal server error',
  delayMs,
});

describe('drain plan', () => {
  it('merges the edits of one message field by field in queue order, later fields winning', () => {
    const records = [
      record(edit(1, { message: 'a', keyboard: [{ TEXT: 'k1' }] }), 'g1'),
      record(edit(2, { message: 'other' }), 'g2'),
      record(edit(1, { message: 'b' }), 'g1'),
      record(edit(1, { urlPreview: 'N' }), 'g1'),
    ];
    const { merged } = plan(records, () => applied);
    expect(merged.map((m) => m.messageId)).toEqual([1, 2]);
    expect(merged[0]?.fields).toEqual({ message: 'b', keyboard: [{ TEXT: 'k1' }], urlPreview: 'N' });
    expect(merged[0]?.records).toHaveLength(3);
  });

  it('defaults editId and requestedAt of external producers to the SQS message id and sent time', () => {
    const r = record({ portal: 'acme', botId: 456, messageId: 1, fields: { message: 'x' } }, 'g1');
    const { edits } = parseRecords([r]);
    expect(edits[0]?.edit.editId).toBe(r.messageId);
    expect(edits[0]?.edit.requestedAt).toBe(new Date(r.sentAt).toISOString());
  });

  it('acknowledges the last record of an applied merge as applied and the earlier ones as superseded', () => {
    const records = [record(edit(1, { message: 'a' }), 'g1'), record(edit(1, { message: 'b' }), 'g1')];
    const { decisions } = plan(records, () => applied);
    expect(decisions.get(records[0]?.messageId ?? '')).toEqual({ action: 'ack', outcome: 'superseded' });
    expect(decisions.get(records[1]?.messageId ?? '')).toEqual({ action: 'ack', outcome: 'applied' });
  });

  it('hands back every record of a deferred merge with its delay, superseded ones included', () => {
    const records = [record(edit(1, { message: 'a' }), 'g1'), record(edit(1, { message: 'b' }), 'g1')];
    const { decisions, deadLetters } = plan(records, () => deferred(4000));
    for (const r of records) {
      expect(decisions.get(r.messageId)).toMatchObject({ action: 'hand-back', delayMs: 4000 });
    }
    expect(deadLetters).toEqual([]);
  });

  it('hands back every later record of a message group after one is handed back (FIFO order)', () => {
    // A producer that groups by portal rather than by message: one group, two messages.
    const records = [
      record(edit(1, { message: 'a' }), 'acme'),
      record(edit(2, { message: 'b' }), 'acme'),
      record(edit(3, { message: 'c' }), 'other'),
    ];
    const { decisions } = plan(records, (id) => (id === 1 ? deferred(5000) : applied));
    expect(decisions.get(records[1]?.messageId ?? '')).toMatchObject({
      action: 'hand-back',
      delayMs: 5000,
      blockedBy: records[0]?.messageId,
    });
    expect(decisions.get(records[2]?.messageId ?? '')).toEqual({ action: 'ack', outcome: 'applied' });
  });

  it('does not let a record of a group overtake an earlier one that is dead-lettered but not yet accepted', () => {
    const records = [record('not json', 'acme'), record(edit(2, { message: 'b' }), 'acme')];
    const p = plan(records, () => applied);
    const refused = new Set(p.deadLetters);
    const settled = settleDeadLetters(records, p, refused, 1000);
    expect(settled.get(records[0]?.messageId ?? '')).toMatchObject({
      action: 'hand-back',
      code: FAILED_QUEUE_UNAVAILABLE,
    });
    expect(settled.get(records[1]?.messageId ?? '')).toMatchObject({
      action: 'hand-back',
      blockedBy: records[0]?.messageId,
    });
  });

  it('dead-letters invalid bodies with INVALID_EDIT and the rule they break', () => {
    const records = [
      record('{oops', 'g1'),
      record({ portal: 'acme', botId: 456, messageId: 1, fields: { colour: 'red' } }, 'g2'),
    ];
    const { decisions, deadLetters } = plan(records, () => applied);
    expect(deadLetters.map((d) => [d.errorCode, d.errorDescription])).toEqual([
      [INVALID_EDIT, 'body is not JSON'],
      [INVALID_EDIT, expect.stringContaining('fields.colour is not a known field')],
    ]);
    expect(deadLetters[0]?.body).toBe('{oops');
    expect(decisions.get(records[0]?.messageId ?? '')).toMatchObject({ action: 'dead-letter' });
  });

  it('gives up with MAX_ATTEMPTS once a deferred edit has been received maxAttempts times, naming the last error', () => {
    const records = [
      record(edit(1, { message: 'a' }, 'e1'), 'g1', 7),
      record(edit(1, { keyboard: 'N' }, 'e2'), 'g1', 8),
    ];
    const { decisions, deadLetters } = plan(records, () => deferred(), 8);
    expect(deadLetters).toHaveLength(1);
    const [failed] = deadLetters;
    expect(failed?.errorCode).toBe(MAX_ATTEMPTS);
    expect(failed?.errorDescription).toContain('INTERNAL_SERVER_ERROR');
    expect(failed?.attempts).toBe(8);
    expect(failed?.editIds).toEqual(['e1', 'e2']);
    expect(JSON.parse(failed?.body ?? '')).toMatchObject({
      portal: 'acme',
      botId: 456,
      messageId: 1,
      editId: 'e2',
      fields: { message: 'a', keyboard: 'N' },
    });
    for (const r of records) expect(decisions.get(r.messageId)?.action).toBe('dead-letter');
  });

  it('acknowledges dead-lettered records only once the failed-edits queue accepted them', () => {
    const records = [record(edit(1, { message: 'a' }), 'g1')];
    const p = plan(records, () => ({ kind: 'failed', code: 'ACCESS_DENIED', description: 'Access denied' }));
    const settled = settleDeadLetters(records, p, new Set(), 1000);
    expect(settled.get(records[0]?.messageId ?? '')).toEqual({
      action: 'ack',
      outcome: 'failed',
      code: 'ACCESS_DENIED',
    });
  });
});
