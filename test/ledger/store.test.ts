import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../lib/ledger/messages.ts';
import { desiredFields, type IncomingEdit } from '../../lib/ledger/model.ts';
import { BOT, freshLedger, type Harness, startHarness } from '../support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

const timing = { messageMinIntervalMs: 0, ambiguousSettleMs: 65_000 };
const key = { portal: 'acme', botId: BOT.id, messageId: 4_001 };
let clock = Date.now();
function edit(editId: string, fields: IncomingEdit['fields']): IncomingEdit {
  clock += 1;
  return { ...key, fields, editId, at: clock, seq: '' };
}

/** Two containers: two Ledger instances on one table, each with its own copy of what it saw. */
async function twoContainers(): Promise<[Ledger, Ledger]> {
  const a = await freshLedger(h);
  return [a, new Ledger({ tableName: a.tableName, client: h.dynamo })];
}

describe("a container's copy of a message", () => {
  it('never hides a merge another container made meanwhile', async () => {
    const [a, b] = await twoContainers();
    await a.merge(key, [edit('e1', { message: 'one' })], timing);
    await b.merge(key, [edit('e2', { keyboard: [{ TEXT: 'Open', COMMAND: 'open' }] })], timing);
    const third = await a.merge(key, [edit('e3', { message: 'three' })], timing);
    expect(desiredFields(third.state)).toEqual({
      message: 'three',
      keyboard: [{ TEXT: 'Open', COMMAND: 'open' }],
    });
    expect(third.state.version).toBe(3);
    expect(third.state.pendingEditIds).toEqual(['e1', 'e2', 'e3']);
    expect(await b.get(key)).toEqual(third.state);
  });

  it('never revives edit ids another container recorded as applied', async () => {
    const [a, b] = await twoContainers();
    const first = await a.merge(key, [edit('e1', { message: 'one' })], timing);
    expect(await b.markApplied(key, first.state.version, Date.now(), timing)).toBe('clean');
    const second = await a.merge(key, [edit('e2', { message: 'two' })], timing);
    expect(second.state.pendingEditIds).toEqual(['e2']);
    expect(second.state.appliedVersion).toBe(first.state.version);
    expect(second.state.version).toBe(first.state.version + 1);
  });

  it('answers a merge with the item as written, bookkeeping included', async () => {
    const [a] = await twoContainers();
    const first = await a.merge(key, [edit('e1', { message: 'one' })], timing);
    await a.markApplied(key, first.state.version, Date.now(), timing);
    const second = await a.merge(key, [edit('e2', { message: 'two' })], timing);
    expect(second.state).toEqual(await new Ledger({ tableName: a.tableName, client: h.dynamo }).get(key));
    expect(second.state.lastCallAt).toBeTypeOf('number');
  });
});

describe('the dirty index', () => {
  /** dynalite keeps one entry per index key and 6 hex digits of an md5 of the table key. */
  const localEntryHash = (pk: string) =>
    createHash('md5').update('Outliers').update(Buffer.from(pk, 'utf8')).digest('hex').slice(0, 6);

  it('keeps every dirty message listed, even two due at the same moment whose keys the local DynamoDB hashes alike', async () => {
    // Two fresh messages (both due at once) whose table keys share dynalite's short hash.
    const seen = new Map<string, number>();
    let pair: [number, number] | undefined;
    for (let id = 1; !pair && id < 200_000; id += 1) {
      const hash = localEntryHash(`msg#acme#${BOT.id}#${id}`);
      const other = seen.get(hash);
      if (other === undefined) seen.set(hash, id);
      else pair = [other, id];
    }
    const [a, b] = pair ?? [0, 0];
    expect(a).toBeGreaterThan(0);
    const ledger = await freshLedger(h);
    const keyOf = (messageId: number) => ({ portal: 'acme', botId: BOT.id, messageId });
    for (const id of [a, b])
      await ledger.merge(
        keyOf(id),
        [{ ...edit(`e${id}`, { message: `edit of ${id}` }), ...keyOf(id) }],
        timing,
      );
    expect((await ledger.dirtyKeys('acme', 10)).map((k) => k.messageId).sort()).toEqual([a, b].sort());
    // Applying one removes its entry, and only its own.
    expect(await ledger.markApplied(keyOf(a), 1, Date.now(), timing)).toBe('clean');
    expect((await ledger.dirtyKeys('acme', 10)).map((k) => k.messageId)).toEqual([b]);
  });
});
