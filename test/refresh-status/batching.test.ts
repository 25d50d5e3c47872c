import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import { refreshStatuses } from '../../lib/status/refresh.ts';
import type { Bitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { BOT, type Harness, startHarness } from '../support/harness.ts';
import { batchCalls, depsFor, drainQueue, seedMessages, spec, startPortal, updateCalls } from './helpers.ts';

let h: Harness;
let globex: Bitrix24Emulator;
const ACME_IDS: number[] = [];
const GLOBEX_IDS: number[] = [];

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 2_000 });
  globex = await startPortal(h, 'globex');
  ACME_IDS.push(...seedMessages(h.emulator, 3001, 60));
  GLOBEX_IDS.push(...seedMessages(globex, 4001, 60));
});
afterAll(async () => {
  await Promise.all([h.close(), globex.close()]);
});
beforeEach(() => {
  h.emulator.reset();
  globex.reset();
});
afterEach(async () => {
  await drainQueue(h);
});

/** 60 specs per portal; `version` changes the rendered text of the first `changed` of each. */
function twoPortals(version: string, changed = 60) {
  const specsOf = (portal: string, ids: number[]) =>
    ids.map((id, i) => spec(id, { portal, template: `${portal} ${id} ${i < changed ? version : 'v1'}` }));
  return { messages: [...specsOf('acme', ACME_IDS), ...specsOf('globex', GLOBEX_IDS)] };
}

describe('sending the changed messages of a portal together', () => {
  it('updates 120 messages on two portals with at most ceil(changed / 50) batch calls per portal', async () => {
    const { deps } = depsFor(h);
    const first = await refreshStatuses({ event: twoPortals('v1') }, deps);
    expect(first.summary).toMatchObject({ updated: 120, failed: 0, deferred: 0 });
    expect(batchCalls(h.emulator)).toHaveLength(2);
    expect(batchCalls(globex)).toHaveLength(2);
    expect(h.emulator.getMessage(3060)?.text).toBe('acme 3060 v1');
    expect(globex.getMessage(4001)?.text).toBe('globex 4001 v1');

    h.emulator.clearCalls();
    globex.clearCalls();
    const second = await refreshStatuses({ event: twoPortals('v2', 20) }, deps);
    expect(second.summary).toMatchObject({ updated: 40, unchanged: 80 });
    expect(batchCalls(h.emulator)).toHaveLength(1);
    expect(batchCalls(globex)).toHaveLength(1);
    expect(updateCalls(h.emulator).map((call) => call.viaBatch)).toEqual(Array(20).fill(true));
    expect(h.emulator.getMessage(3020)?.text).toBe('acme 3020 v2');
    expect(h.emulator.getMessage(3021)?.text).toBe('acme 3021 v1');
  });

  it('updates a lone changed message with one update call, without a batch', async () => {
    const { deps } = depsFor(h);
    await refreshStatuses({ event: spec(3001, { template: 'alone' }) }, deps);
    expect(h.emulator.calls.map(({ method, viaBatch }) => ({ method, viaBatch }))).toEqual([
      { method: UPDATE_METHOD, viaBatch: false },
    ]);
    expect(h.emulator.getMessage(3001)?.text).toBe('alone');
  });

  it('paces the batches of a portal so that its bucket never refuses them', async () => {
    const tight = await startPortal(h, 'tight', {
      emulator: { limits: { burst: 2, perSecond: 5 } },
      secret: { limits: { burst: 1, perSecond: 5 } },
    });
    try {
      const ids = seedMessages(tight, 5001, 120);
      const { deps } = depsFor(h);
      const report = await refreshStatuses(
        { event: { messages: ids.map((id) => spec(id, { portal: 'tight' })) } },
        deps,
      );
      expect(report.summary).toMatchObject({ updated: 120, deferred: 0 });
      const batches = batchCalls(tight);
      expect(batches.map((call) => call.httpStatus)).toEqual([200, 200, 200]);
      const gaps = batches.slice(1).map((call, i) => call.at - (batches[i]?.at ?? 0));
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(150);
    } finally {
      await tight.close();
    }
  });
});

describe('deferring what Bitrix24 cannot take now', () => {
  it('defers every message of a portal to the edits queue when batch answers 503 QUERY_LIMIT_EXCEEDED', async () => {
    h.emulator.inject({ kind: 'query-limit', method: 'batch' });
    const { deps } = depsFor(h);
    const report = await refreshStatuses({ event: twoPortals('deferred') }, deps);
    expect(report.summary).toMatchObject({ deferred: 60, updated: 60, failed: 0 });
    // After the refusal the second batch of the portal is not sent at all.
    expect(batchCalls(h.emulator).map((call) => call.httpStatus)).toEqual([503]);
    expect(h.emulator.getMessage(3001)?.history).not.toContain('acme 3001 deferred');

    const queued = await drainQueue(h);
    expect(queued).toHaveLength(60);
    expect(queued[0]).toEqual({
      groupId: `acme:${BOT.id}:3001`,
      edit: {
        portal: 'acme',
        botId: BOT.id,
        messageId: 3001,
        fields: { message: 'acme 3001 deferred' },
        editId: expect.any(String),
        requestedAt: expect.any(String),
      },
    });
    expect(queued.map(({ edit }) => edit.messageId)).toEqual(ACME_IDS);
    expect(report.specs.find((s) => s.messageId === 3001)).toMatchObject({
      outcome: 'deferred',
      code: 'QUERY_LIMIT_EXCEEDED',
      editId: queued[0]?.edit.editId,
    });
  });

  it('sends a deferred status again on the next run, because it was never confirmed', async () => {
    h.emulator.inject({ kind: 'server-error' });
    const { deps } = depsFor(h);
    const input = spec(3002, { template: 'after a 500' });
    expect((await refreshStatuses({ event: input }, deps)).summary).toMatchObject({ deferred: 1 });
    expect(await drainQueue(h)).toHaveLength(1);
    expect((await refreshStatuses({ event: input }, deps)).summary).toMatchObject({ updated: 1 });
    expect(h.emulator.getMessage(3002)?.text).toBe('after a 500');
  });

  it('counts deferrals as failed when the edits queue is unavailable', async () => {
    h.emulator.inject({ kind: 'overload' });
    const { deps } = depsFor(h, { enqueue: (edits) => enqueueEdits(edits, { queueUrl: undefined }) });
    const report = await refreshStatuses({ event: spec(3003) }, deps);
    expect(report.summary).toMatchObject({ deferred: 0, failed: 1 });
    expect(report.specs[0]).toMatchObject({ outcome: 'failed', code: 'QUEUE_UNAVAILABLE' });
  });

  it('defers instead of calling Bitrix24 when the Lambda deadline is too close', async () => {
    const { deps } = depsFor(h);
    const report = await refreshStatuses(
      { event: { messages: [spec(3004), spec(3005)] }, sendBy: Date.now() - 1 },
      deps,
    );
    expect(report.summary).toMatchObject({ deferred: 2 });
    expect(report.specs.map((s) => s.code)).toEqual(['DEADLINE', 'DEADLINE']);
    expect(h.emulator.calls).toEqual([]);
    expect((await drainQueue(h)).map(({ edit }) => edit.messageId)).toEqual([3004, 3005]);
  });
});

describe('when Bitrix24 refuses imbot.v2 inside batch', () => {
  it.each([
    ['each command', 'command'],
    ['the whole batch call', 'call'],
  ] as const)('falls back to single update calls when it refuses %s', async (_label, mode) => {
    // A roomy bucket: 120 single calls on the standard plan would be paced over half a minute.
    const strict = await startPortal(h, `nobatch-${mode}`, {
      secret: { limits: { burst: 500, perSecond: 100 } },
    });
    try {
      strict.disallowInBatch(UPDATE_METHOD, mode);
      const ids = seedMessages(strict, 6001, 60);
      const { deps } = depsFor(h);
      const portal = `nobatch-${mode}`;
      const first = await refreshStatuses(
        { event: { messages: ids.map((id) => spec(id, { portal, template: `single ${id}` })) } },
        deps,
      );
      expect(first.summary).toMatchObject({ updated: 60, failed: 0 });
      expect(strict.getMessage(6060)?.text).toBe('single 6060');
      // Two batches were packed; after the first refusal the second is not tried.
      expect(batchCalls(strict)).toHaveLength(1);

      // The container remembers: the next run goes straight to single calls.
      strict.clearCalls();
      await refreshStatuses(
        { event: { messages: ids.map((id) => spec(id, { portal, template: `again ${id}` })) } },
        deps,
      );
      expect(batchCalls(strict)).toHaveLength(0);
      expect(updateCalls(strict).filter((call) => !call.viaBatch)).toHaveLength(60);
    } finally {
      await strict.close();
    }
  });
});
