import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { refreshStatuses } from '../../lib/status/refresh.ts';
import type { Bitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { laterClock, VirtualClock } from '../support/clock.ts';
import { BOT, type Harness, startHarness } from '../support/harness.ts';
import {
  batchCalls,
  depsFor,
  drainQueue,
  freshLedger,
  NOW,
  seedMessages,
  spec,
  startPortal,
  sweepLater,
  ticking,
  updateCalls,
  wakeLater,
} from './helpers.ts';

let h: Harness;
let ledger: Ledger;
let globex: Bitrix24Emulator;
const ACME_IDS: number[] = [];
const GLOBEX_IDS: number[] = [];

// Pacing on a virtual clock shared by the emulators, the ledger and the reconcilers.
beforeAll(async () => {
  h = await startHarness({ timeoutMs: 2_000, clock: new VirtualClock() });
  globex = await startPortal(h, 'globex');
  ACME_IDS.push(...seedMessages(h.emulator, 3001, 60));
  GLOBEX_IDS.push(...seedMessages(globex, 4001, 60));
});
afterAll(async () => {
  await Promise.all([h.close(), globex.close()]);
});
beforeEach(async () => {
  h.emulator.reset();
  h.wakeups.clear();
  globex.reset();
  ledger = await freshLedger(h);
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
    const { deps } = depsFor(h, ledger);
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
    const { deps } = depsFor(h, ledger);
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
      const { deps } = depsFor(h, ledger);
      const report = await refreshStatuses(
        { event: { messages: ids.map((id) => spec(id, { portal: 'tight' })) } },
        deps,
      );
      expect(report.summary).toMatchObject({ updated: 120, deferred: 0 });
      const batches = batchCalls(tight);
      expect(batches.map((call) => call.httpStatus)).toEqual([200, 200, 200]);
      // One token at 5 a second: 200 ms apart (ours keeps one request of the burst unused).
      const gaps = batches.slice(1).map((call, i) => call.at - (batches[i]?.at ?? 0));
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(200);
    } finally {
      await tight.close();
    }
  });
});

describe('deferring what Bitrix24 cannot take now', () => {
  it('defers the messages of a batch refused with 503 QUERY_LIMIT_EXCEEDED and sends the rest once the bucket has room', async () => {
    h.emulator.inject({ kind: 'query-limit', method: 'batch' });
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses({ event: twoPortals('deferred') }, deps);
    expect(report.summary).toMatchObject({ deferred: 50, updated: 70, failed: 0 });
    // Bitrix24's bucket is full after the refusal: the next call waits for a token to drain.
    const batches = batchCalls(h.emulator);
    expect(batches.map((call) => call.httpStatus)).toEqual([503, 200]);
    expect((batches[1]?.at ?? 0) - (batches[0]?.at ?? 0)).toBeGreaterThanOrEqual(500);
    const deferredIds = report.specs.filter((s) => s.outcome === 'deferred').map((s) => s.messageId);
    expect(deferredIds.every((id) => ACME_IDS.includes(id))).toBe(true);
    for (const id of ACME_IDS) {
      const shown = h.emulator.getMessage(id)?.text;
      expect(shown === `acme ${id} deferred`).toBe(!deferredIds.includes(id));
    }

    // Each deferred rendering is in the ledger under its edit id, and one wake-up waits for the portal.
    const first = deferredIds[0] as number;
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: first });
    expect(state.desired.message?.value).toBe(`acme ${first} deferred`);
    expect(report.specs.find((s) => s.messageId === first)).toMatchObject({
      outcome: 'deferred',
      code: 'QUERY_LIMIT_EXCEEDED',
      editId: state.pendingEditIds[0],
    });
    expect(h.wakeups.pending().map((w) => w.portal)).toEqual(['acme']);

    // The portal's wake-up applies what the ledger holds.
    await wakeLater(h, ledger);
    for (const id of ACME_IDS) expect(h.emulator.getMessage(id)?.text).toBe(`acme ${id} deferred`);
  });

  it('sends a status deferred after a 500 on a run after its settle window, because it was never confirmed', async () => {
    h.emulator.inject({ kind: 'server-error' });
    const clock = ticking(NOW);
    const input = spec(3002, { template: 'after a 500' });
    const first = depsFor(h, ledger, { now: clock }).deps;
    expect((await refreshStatuses({ event: input }, first)).summary).toMatchObject({ deferred: 1 });
    expect(h.wakeups.last('acme')).toBeDefined();
    // The failed call may still land: until the settle window has passed, nothing is sent again.
    h.emulator.clearCalls();
    expect((await refreshStatuses({ event: input }, first)).summary).toMatchObject({ deferred: 1 });
    expect(h.emulator.calls).toEqual([]);
    const later = depsFor(h, ledger, { now: clock }, { clock: laterClock(5 * 60_000, h.clock) }).deps;
    expect((await refreshStatuses({ event: input }, later)).summary).toMatchObject({ updated: 1 });
    expect(h.emulator.getMessage(3002)?.text).toBe('after a 500');
  });

  it('still counts a status as deferred when the portal work queue does not take its wake-up, and the sweep sends it once overdue', async () => {
    h.emulator.inject({ kind: 'overload' });
    const refusing = { send: async (wakeups: readonly { portal: string }[]) => wakeups.map((w) => w.portal) };
    const { deps } = depsFor(h, ledger, {}, { wakeups: refusing });
    const report = await refreshStatuses({ event: spec(3003, { template: 'queue down' }) }, deps);
    expect(report.summary).toMatchObject({ deferred: 1, failed: 0 });
    expect(report.specs[0]).toMatchObject({ outcome: 'deferred', code: 'OVERLOAD_LIMIT' });
    expect(h.wakeups.sent).toEqual([]);
    // Past the overload circuit's first five minutes, and past the sweep's grace.
    expect(await sweepLater(h, ledger, 10 * 60_000)).toEqual({ overdue: 1, woken: 1 });
    await wakeLater(h, ledger, 10 * 60_000);
    expect(h.emulator.getMessage(3003)?.text).toBe('queue down');
  });

  it('ends green when a status deferred while red is refreshed green: no later wake-up brings red back', async () => {
    const [id = 0] = seedMessages(h.emulator, 3101, 1);
    const clock = ticking(NOW);
    h.emulator.inject({ kind: 'query-limit' });
    const red = await refreshStatuses(
      { event: spec(id, { template: 'Deploy: red' }) },
      depsFor(h, ledger, { now: clock }).deps,
    );
    expect(red.specs[0]).toMatchObject({ outcome: 'deferred', code: 'QUERY_LIMIT_EXCEEDED' });
    // The next run, in another container, renders green while the message still backs off.
    const green = await refreshStatuses(
      { event: spec(id, { template: 'Deploy: green' }) },
      depsFor(h, ledger, { now: clock }).deps,
    );
    expect(green.specs[0]).toMatchObject({ outcome: 'deferred' });
    expect(h.emulator.getMessage(id)?.history).toEqual([`seed ${id}`]);

    await wakeLater(h, ledger);
    expect(h.emulator.getMessage(id)?.text).toBe('Deploy: green');
    // Every wake-up left, later still: red never comes back.
    await h.wakeups.send([{ portal: 'acme', at: 0 }]);
    await wakeLater(h, ledger, 10 * 60_000);
    expect(h.emulator.getMessage(id)?.history).toEqual([`seed ${id}`, 'Deploy: green']);
  });

  it('defers instead of calling Bitrix24 when the Lambda deadline is too close', async () => {
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses(
      { event: { messages: [spec(3004), spec(3005)] }, remainingMs: () => 0 },
      deps,
    );
    expect(report.summary).toMatchObject({ deferred: 2 });
    expect(report.specs.map((s) => s.code)).toEqual(['DEADLINE', 'DEADLINE']);
    expect(h.emulator.calls).toEqual([]);
    // Both wait in the ledger for the portal's next wake-up, shortly after.
    expect(h.wakeups.pending().map((w) => w.portal)).toEqual(['acme']);
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
      const { deps } = depsFor(h, ledger);
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
