import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallerKeys, type CallerKeysOptions } from '../../lib/callers/index.ts';
import { LedgerTable, LedgerUnavailableError } from '../../lib/ledger/access.ts';
import { redactString } from '../../lib/observability/redact.ts';
import { VirtualClock } from '../support/clock.ts';
import { AWS, freshLedger, type Harness, startHarness } from '../support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

const SOURCE = '203.0.113.7';

/** A ledger table of its own on an injected clock, and the DynamoDB requests made through it. */
async function setup(options: CallerKeysOptions = {}) {
  const clock = new VirtualClock(Date.UTC(2026, 11, 6, 12));
  const { tableName } = await freshLedger(h);
  const client = new DynamoDBClient({ ...AWS, endpoint: h.dynamoEndpoint });
  const requests: string[] = [];
  client.middlewareStack.add(
    (next, context) => (args) => {
      requests.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  const table = new LedgerTable({ tableName, client, now: clock.now });
  /** Another container on the same table: its own memory, the same clock. */
  const container = (more: CallerKeysOptions = {}) => new CallerKeys(table, { ...options, ...more });
  return { clock, table, requests, keys: container(), container };
}

describe('caller keys', () => {
  it('verifies an issued key and names its portal and holder', async () => {
    const { keys, container } = await setup();
    const { key, keyId } = await keys.add({ portal: 'acme', name: 'build service' });
    const verified = { ok: true, keyId, portal: 'acme', name: 'build service' };
    expect(await keys.verify(key, { source: SOURCE })).toEqual(verified);
    // The same in a container that never saw the key issued.
    expect(await container().verify(key, { source: SOURCE })).toEqual(verified);
  });

  it('refuses a wrong secret for a real keyId as unknown, as it does a keyId never issued', async () => {
    const { keys, container } = await setup();
    const { key, keyId } = await keys.add({ portal: 'acme', name: 'build service' });
    const wrong = `${keyId}${key.slice(8).split('').reverse().join('')}`;
    expect(wrong).not.toBe(key);
    expect(await container().verify(wrong, { source: SOURCE })).toEqual({ ok: false, reason: 'unknown' });
    expect(await container().verify(`zzzzzzzz${key.slice(8)}`, { source: SOURCE })).toEqual({
      ok: false,
      reason: 'unknown',
    });
  });

  it('refuses a malformed segment without reading the ledger', async () => {
    const { container, requests } = await setup();
    const keys = container();
    for (const segment of ['', 'abcd1234efgh5678', `${'a'.repeat(39)}/`, `${'A'.repeat(40)}`, undefined])
      expect(await keys.verify(segment, { source: SOURCE })).toEqual({ ok: false, reason: 'malformed' });
    expect(requests).toEqual([]);
  });

  it('reads an unknown keyId once per cache time, however often it is tried', async () => {
    const { container, requests, clock } = await setup({ failureLimit: 1_000 });
    const keys = container();
    const unknown = `q1w2e3r4${'x'.repeat(32)}`;
    for (let i = 0; i < 20; i++) expect((await keys.verify(unknown, { source: SOURCE })).ok).toBe(false);
    expect(requests).toEqual(['GetItemCommand']);
    clock.advance(60_000);
    await keys.verify(unknown, { source: SOURCE });
    expect(requests).toEqual(['GetItemCommand', 'GetItemCommand']);
  });

  it('refuses a key revoked elsewhere once the cache time has passed, and lists it revoked', async () => {
    const { keys, container, clock } = await setup();
    const { key, keyId } = await keys.add({ portal: 'acme', name: 'build service' });
    const warm = container();
    expect((await warm.verify(key, { source: SOURCE })).ok).toBe(true);

    clock.advance(5_000);
    expect(await keys.revoke(keyId)).toBe(true);
    const revokedAt = clock.now();
    // The container that revoked it refuses it at once; a warm one trusts what it read until then.
    expect(await keys.verify(key, { source: SOURCE })).toEqual({ ok: false, reason: 'revoked' });
    clock.advance(54_999);
    expect((await warm.verify(key, { source: SOURCE })).ok).toBe(true);
    clock.advance(1);
    expect(await warm.verify(key, { source: SOURCE })).toEqual({ ok: false, reason: 'revoked' });

    expect(await keys.list()).toEqual([
      { keyId, portal: 'acme', name: 'build service', createdAt: revokedAt - 5_000, revokedAt },
    ]);
    expect(await keys.revoke(keyId)).toBe(false);
    expect(await keys.revoke('n0such1d')).toBe(false);
  });

  it('answers revoked only to the right secret: a guess at a revoked keyId is unknown', async () => {
    const { keys } = await setup();
    const { key, keyId } = await keys.add({ portal: 'acme', name: 'build service' });
    await keys.revoke(keyId);
    expect(await keys.verify(`${keyId}${'0'.repeat(32)}`, { source: SOURCE })).toEqual({
      ok: false,
      reason: 'unknown',
    });
    expect(await keys.verify(key, { source: SOURCE })).toEqual({ ok: false, reason: 'revoked' });
  });

  it('lists every key oldest first, with its portal and holder and no hash', async () => {
    const { keys, clock } = await setup();
    const first = await keys.add({ portal: 'acme', name: 'build service' });
    clock.advance(1_000);
    const second = await keys.add({ portal: 'other-portal', name: 'Deploy bot «prod»' });
    const listed = await keys.list();
    expect(listed).toEqual([
      { keyId: first.keyId, portal: 'acme', name: 'build service', createdAt: clock.now() - 1_000 },
      { keyId: second.keyId, portal: 'other-portal', name: 'Deploy bot «prod»', createdAt: clock.now() },
    ]);
  });

  it('keeps neither a key nor its secret in any item, and gives its item no TTL and no index attribute', async () => {
    const { keys, table } = await setup();
    const issued = [
      await keys.add({ portal: 'acme', name: 'build service' }),
      await keys.add({ portal: 'acme', name: 'deploy service' }),
    ];
    const { Items = [] } = await table.doc.send(new ScanCommand({ TableName: table.tableName }));
    const stored = JSON.stringify(Items, (_key, value) => (value instanceof Set ? [...value] : value));
    for (const { key } of issued) {
      expect(stored).not.toContain(key);
      expect(stored).not.toContain(key.slice(8));
    }
    const callerItems = Items.filter((item) => String(item.pk).startsWith('caller#'));
    expect(callerItems).toHaveLength(2);
    for (const item of callerItems)
      expect(Object.keys(item).sort()).toEqual(['createdAt', 'hash', 'name', 'pk', 'portal']);
    expect(Items.find((item) => item.pk === 'callers')).toEqual({
      pk: 'callers',
      keyIds: new Set(issued.map((k) => k.keyId)),
    });
  });

  it('throttles a source after too many failures without reading the ledger, and lets it in after the window', async () => {
    const { keys, container, requests, clock } = await setup({ failureLimit: 3, failureWindowMs: 60_000 });
    const { key } = await keys.add({ portal: 'acme', name: 'build service' });
    const api = container();
    for (let i = 0; i < 3; i++)
      expect((await api.verify(`guess000${String(i).repeat(32)}`, { source: SOURCE })).ok).toBe(false);
    const readsBefore = requests.length;
    expect(await api.verify(`guess999${'9'.repeat(32)}`, { source: SOURCE })).toEqual({
      ok: false,
      reason: 'throttled',
      retryAfterMs: 60_000,
    });
    // The right key too, from that source: nothing is read or compared until the window ends.
    expect(await api.verify(key, { source: SOURCE })).toMatchObject({ ok: false, reason: 'throttled' });
    expect(requests.length).toBe(readsBefore);
    // Another source is not held back.
    expect((await api.verify(key, { source: '198.51.100.1' })).ok).toBe(true);

    clock.advance(59_999);
    expect(await api.verify(key, { source: SOURCE })).toEqual({
      ok: false,
      reason: 'throttled',
      retryAfterMs: 1,
    });
    clock.advance(1);
    expect((await api.verify(key, { source: SOURCE })).ok).toBe(true);
  });

  it('masks a verified key, and its secret alone, wherever a log line or an error would show it', async () => {
    const { keys } = await setup();
    const { key } = await keys.add({ portal: 'acme', name: 'build service' });
    await keys.verify(key, { source: SOURCE });
    const line = redactString(`GET https://api.example/x/${key}/imbot.v2 secret=${key.slice(8)}`);
    expect(line).not.toContain(key.slice(8));
    expect(line).toContain('[redacted]');
  });

  it('refuses a portal or a holder name that breaks its rule, naming the field', async () => {
    const { keys } = await setup();
    await expect(keys.add({ portal: 'Acme Portal', name: 'x' })).rejects.toMatchObject({
      field: 'portal',
      message: expect.stringMatching(/^portal must match \^\[a-z0-9\]/),
    });
    for (const name of ['', '   ', 'a'.repeat(65), 'two\nlines'])
      await expect(keys.add({ portal: 'acme', name })).rejects.toMatchObject({ field: 'name' });
    expect(await keys.add({ portal: 'acme', name: 'a'.repeat(64) })).toHaveProperty('keyId');
    await expect(keys.revoke('NOT-AN-ID')).rejects.toMatchObject({ field: 'keyId' });
  });

  it('refuses options out of range, naming the option and the value', async () => {
    const { table } = await setup();
    expect(() => new CallerKeys(table, { cacheTtlMs: -1 })).toThrow(
      'Expected cacheTtlMs to be an integer from 0 to 3600000, got -1',
    );
    expect(() => new CallerKeys(table, { failureLimit: 0 })).toThrow(/^Expected failureLimit/);
  });

  it('fails with LEDGER_UNAVAILABLE, naming no key, when the ledger cannot be read', async () => {
    const { keys } = await setup();
    const { key } = await keys.add({ portal: 'acme', name: 'build service' });
    const down = new CallerKeys(
      new LedgerTable({
        tableName: 'ledger',
        client: new DynamoDBClient({ ...AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 }),
      }),
    );
    const failure = await down.verify(key, { source: SOURCE }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(LedgerUnavailableError);
    expect(String((failure as Error).message)).not.toContain(key.slice(8));
    // Not remembered as unknown: the next check reads again.
    await expect(down.verify(key, { source: SOURCE })).rejects.toBeInstanceOf(LedgerUnavailableError);
  });
});
