import { randomUUID } from 'node:crypto';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { canonicalJson } from '../../lib/edits/canonical.ts';
import { IdempotencyKeys, idempotencyPk, sha256 } from '../../lib/ledger/idempotency.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { postUpdate, purgeQueues, updateDeps } from '../api/helpers.ts';
import { httpApiEvent } from '../support/events.ts';
import { BOT, freshLedger, type Harness, startHarness } from '../support/harness.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

let h: Harness;
let ledger: Ledger;
let keys: IdempotencyKeys;
beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  h.wakeups.clear();
  ledger = await freshLedger(h);
  keys = new IdempotencyKeys({ tableName: ledger.tableName, client: h.dynamo });
});
afterEach(() => purgeQueues(h));

function edit(message: string, key: string, headers: Record<string, string> = {}) {
  return httpApiEvent(
    { botId: BOT.id, messageId: 789, fields: { message } },
    { headers: { 'x-b24-portal': 'acme', 'idempotency-key': key, ...headers } },
  );
}
const async = { prefer: 'respond-async' };

describe('Idempotency-Key', () => {
  it('answers a deferred edit repeated under its key with the original editId and duplicate: true, and records it once', async () => {
    const key = `deploy-${randomUUID()}`;
    const deps = updateDeps(h, ledger, { idempotency: keys });
    const first = await postUpdate(edit('Deploy 2/3', key, async), deps);
    const again = await postUpdate(edit('Deploy 2/3', key, async), deps);
    expect(first.status).toBe(202);
    expect(again).toMatchObject({
      status: 202,
      body: { result: true, duplicate: true, editId: first.body.editId },
    });
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: 789 });
    expect(state.pendingEditIds).toEqual([first.body.editId]);
    // One edit recorded, one wake-up for its portal.
    expect(h.wakeups.sent.map((w) => w.portal)).toEqual(['acme']);
  });

  it('calls Bitrix24 once for an applied edit repeated under its key', async () => {
    const key = `apply-${randomUUID()}`;
    const deps = updateDeps(h, ledger, { idempotency: keys });
    const before = h.emulator.getMessage(789)?.editCount ?? 0;
    const first = await postUpdate(edit('Build #43: green', key), deps);
    const again = await postUpdate(edit('Build #43: green', key), deps);
    expect(first.status).toBe(200);
    expect(again.status).toBe(202);
    expect(again.body.duplicate).toBe(true);
    expect(typeof again.body.editId).toBe('string');
    expect(h.emulator.getMessage(789)?.editCount).toBe(before + 1);
  });

  it('answers 409 IDEMPOTENCY_KEY_REUSED naming the key when it comes back with other content, and changes nothing', async () => {
    const key = `reused-${randomUUID()}`;
    const deps = updateDeps(h, ledger, { idempotency: keys });
    await postUpdate(edit('first content', key, async), deps);
    const other = await postUpdate(edit('other content', key, async), deps);
    expect(other.status).toBe(409);
    expect(other.body.error).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(String(other.body.error_description)).toContain(key);
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: 789 });
    expect(state.desired.message?.value).toBe('first content');
  });

  it('treats the key as new once the window has passed', async () => {
    const key = `window-${randomUUID()}`;
    const later = new IdempotencyKeys({
      tableName: ledger.tableName,
      client: h.dynamo,
      now: () => Date.now() + 301_000,
    });
    const first = await postUpdate(edit('same', key, async), updateDeps(h, ledger, { idempotency: keys }));
    const after = await postUpdate(edit('same', key, async), updateDeps(h, ledger, { idempotency: later }));
    expect(after.status).toBe(202);
    expect(after.body.duplicate).toBeUndefined();
    expect(after.body.editId).not.toBe(first.body.editId);
  });

  it('keeps only hashes in the ledger item, which expires with the window', async () => {
    const key = `stored-${randomUUID()}`;
    const started = Math.floor(Date.now() / 1000);
    const first = await postUpdate(
      edit('secret-ish content', key, async),
      updateDeps(h, ledger, { idempotency: keys }),
    );
    const { Item } = await h.dynamo.send(
      new GetItemCommand({ TableName: ledger.tableName, Key: { pk: { S: idempotencyPk('acme', key) } } }),
    );
    expect(Item?.pk?.S).toBe(`idem#acme#${sha256(key)}`);
    expect(Item?.editId?.S).toBe(first.body.editId);
    expect(Item?.contentHash?.S).toBe(
      sha256(
        canonicalJson({
          portal: 'acme',
          botId: BOT.id,
          messageId: 789,
          fields: { message: 'secret-ish content' },
        }),
      ),
    );
    const ttl = Number(Item?.ttl?.N);
    expect(ttl).toBeGreaterThanOrEqual(started + 300);
    expect(ttl).toBeLessThanOrEqual(started + 302);
    expect(JSON.stringify(Item)).not.toContain('secret-ish content');
    expect(JSON.stringify(Item)).not.toContain(key);
  });

  it('gives the key up when the edit could not be recorded, so that the retry is applied', async () => {
    const key = `retry-${randomUUID()}`;
    const missing = new Ledger({ tableName: `no-such-table-${randomUUID()}`, client: h.dynamo });
    const failed = await postUpdate(
      edit('after a ledger fault', key),
      updateDeps(h, missing, { idempotency: keys }),
    );
    expect(failed.status).toBe(503);
    const retry = await postUpdate(
      edit('after a ledger fault', key),
      updateDeps(h, ledger, { idempotency: keys }),
    );
    expect(retry.status).toBe(200);
    expect(h.emulator.getMessage(789)?.text).toBe('after a ledger fault');
  });

  it('asks a repeat to retry (409 IDEMPOTENCY_KEY_IN_USE with Retry-After) while the first request has not recorded its edit', async () => {
    const key = `inflight-${randomUUID()}`;
    const contentHash = sha256(
      canonicalJson({ portal: 'acme', botId: BOT.id, messageId: 789, fields: { message: 'in flight' } }),
    );
    expect(await keys.claim({ portal: 'acme', key, editId: 'first-request', contentHash })).toEqual({
      kind: 'new',
    });
    const repeat = await postUpdate(edit('in flight', key), updateDeps(h, ledger, { idempotency: keys }));
    expect(repeat.status).toBe(409);
    expect(repeat.body.error).toBe('IDEMPOTENCY_KEY_IN_USE');
    expect(Number(repeat.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });
});
