import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_CLAIM_STALE_MS } from '../../lib/ledger/host-claim.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { freshLedger, type Harness, startHarness } from '../support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('the claim of a Bitrix24 portal for one portal key', () => {
  it('keeps the host for the key that claimed it, and lets another take it once unused for the stale time', async () => {
    let now = Date.UTC(2026, 11, 6, 12);
    const table = (await freshLedger(h)).tableName;
    const ledger = new Ledger({ tableName: table, client: h.dynamo, now: () => now });
    expect(await ledger.hosts.claim('Acme.Bitrix24.com', 'acme')).toBeUndefined();
    // The same portal under another key, in another case: refused, naming the key that serves it.
    expect(await ledger.hosts.claim('acme.bitrix24.com', 'acme-copy')).toBe('acme');
    // Renewed by its own key, still its.
    now += HOST_CLAIM_STALE_MS - 1;
    expect(await ledger.hosts.claim('acme.bitrix24.com', 'acme')).toBeUndefined();
    now += HOST_CLAIM_STALE_MS - 1;
    expect(await ledger.hosts.claim('acme.bitrix24.com', 'acme-copy')).toBe('acme');
    // Unused since for longer than the stale time: the portal moved to the other key.
    now += 2;
    expect(await ledger.hosts.claim('acme.bitrix24.com', 'acme-copy')).toBeUndefined();
    expect(await ledger.hosts.claim('acme.bitrix24.com', 'acme')).toBe('acme-copy');
  });
});
