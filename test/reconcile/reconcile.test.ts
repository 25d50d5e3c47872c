import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { messageKeyText } from '../../lib/ledger/model.ts';
import type { ReconcileOptions } from '../../lib/reconcile/options.ts';
import type { Reconciler } from '../../lib/reconcile/reconcile.ts';
import { emptyStats } from '../../lib/reconcile/send.ts';
import { receiveAll } from '../drain/support/fixtures.ts';
import { VirtualClock } from '../support/clock.ts';
import { BOT, freshLedger, type Harness, startHarness, testReconciler } from '../support/harness.ts';
import { waitFor } from '../support/wait.ts';

// Cadence, settle windows, the lease and the bucket on a virtual clock shared with the emulator
// and the ledger (test/support/clock.ts): requests take no time on it, waits are exact.
const clock = new VirtualClock();
let h: Harness;
let ledger: Ledger;

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 500, clock });
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  // Each test its own table: one test's dirty messages never fill another's calls.
  ledger = await freshLedger(h);
});

function reconciler(options: Partial<ReconcileOptions> = {}): Reconciler {
  return testReconciler(h, ledger, { callTimeoutMs: 500, ...options });
}

function message(text = 'queued'): number {
  return h.emulator.addMessage({ botId: BOT.id, chatId: 12, text });
}

const key = (messageId: number) => ({ portal: 'acme', botId: BOT.id, messageId });
let stamp = clock.now();
/** An edit accepted 1 ms after the previous one, unless `at` says when. */
function edit(messageId: number, fields: Record<string, unknown>, at?: number) {
  stamp = Math.max(stamp + 1, clock.now());
  return { ...key(messageId), fields, editId: randomUUID(), at: at ?? stamp, seq: '' };
}

function run(mode: 'fill' | 'only', hints = [] as ReturnType<typeof key>[]) {
  return { hints, mode, remainingMs: () => 30_000, stats: emptyStats() };
}

const batchCalls = () => h.emulator.calls.filter((c) => c.method === 'batch');
const updates = () => h.emulator.calls.filter((c) => c.method === UPDATE_METHOD);

describe('the reconciler', () => {
  it('packs 60 dirty messages of a portal into calls of 50 and 10 and leaves every one applied', async () => {
    const r = reconciler();
    const ids = Array.from({ length: 60 }, () => message());
    for (const id of ids) await r.merge(key(id), [edit(id, { message: `done ${id}` })]);
    const stats = emptyStats();
    await r.reconcilePortal('acme', { ...run('fill'), stats });
    expect(stats.commandsPerCall).toEqual([50, 10]);
    expect(batchCalls()).toHaveLength(2);
    for (const id of ids) expect(h.emulator.getMessage(id)?.text).toBe(`done ${id}`);
    const states = await ledger.getMany(ids.map(key));
    expect([...states.values()].every((s) => s.appliedVersion === s.version && s.version === 1)).toBe(true);
    expect(await ledger.dirtyKeys('acme', 100)).toEqual([]);
  });

  it('sends the whole desired state: a later keyboard-only edit keeps the earlier text', async () => {
    const r = reconciler();
    const id = message();
    await r.merge(key(id), [edit(id, { message: 'Deploy: green' })]);
    await r.merge(key(id), [edit(id, { keyboard: [{ TEXT: 'Open', LINK: 'https://example.com' }] })]);
    await r.reconcilePortal('acme', run('only', [key(id)]));
    const applied = h.emulator.getMessage(id);
    expect(applied?.text).toBe('Deploy: green');
    expect(applied?.keyboard).toBeTruthy();
  });

  it('never lets an edit accepted earlier override one accepted later, whatever order they are merged in', async () => {
    const r = reconciler();
    const id = message();
    const late = edit(id, { message: 'green' }, 2_000);
    const early = edit(id, { message: 'red' }, 1_000);
    await r.merge(key(id), [late]);
    await r.reconcilePortal('acme', run('only', [key(id)]));
    const result = await r.merge(key(id), [early]);
    expect(result.superseded).toEqual([early.editId]);
    await r.reconcilePortal('acme', run('fill'));
    expect(h.emulator.getMessage(id)?.history.slice(1)).toEqual(['green']);
  });

  it('keeps a message whose call timed out dirty and re-applies the latest state only after the settle window, so a late landing is overwritten', async () => {
    const r = reconciler({ ambiguousSettleMs: 1_000 });
    const id = message();
    await r.merge(key(id), [edit(id, { message: 'v1' })]);
    // The call outlives the 500 ms timeout and lands after it.
    h.emulator.inject({ kind: 'slow', delayMs: 800 });
    const first = await r.reconcilePortal('acme', run('only', [key(id)]));
    expect(first.fates.get(messageKeyText(key(id)))?.kind).toBe('pending');
    await r.merge(key(id), [edit(id, { message: 'v2' })]);
    // Inside the settle window nothing is sent, though v2 is waiting.
    await r.reconcilePortal('acme', run('only', [key(id)]));
    expect(updates()).toHaveLength(1);
    // The late call lands (on the machine's time), then the settle window passes.
    await waitFor(() => h.emulator.getMessage(id)?.text === 'v1', 10_000, 'the late landing');
    clock.advance(1_100);
    const last = await r.reconcilePortal('acme', run('only', [key(id)]));
    expect(last.fates.get(messageKeyText(key(id)))?.kind).toBe('applied');
    expect(h.emulator.getMessage(id)?.text).toBe('v2');
  });

  it('applies a message at most once per cadence; edits in between coalesce into the next apply', async () => {
    const r = reconciler({ messageMinIntervalMs: 1_000 });
    const id = message();
    await r.merge(key(id), [edit(id, { message: 'part 1' })]);
    await r.reconcilePortal('acme', run('only', [key(id)]));
    for (let i = 2; i <= 20; i += 1) {
      await r.merge(key(id), [edit(id, { message: `part ${i}` })]);
      const report = await r.reconcilePortal('acme', run('only', [key(id)]));
      expect(report.fates.get(messageKeyText(key(id)))?.kind).toBe('pending');
    }
    expect(updates()).toHaveLength(1);
    clock.advance(1_000);
    await r.reconcilePortal('acme', run('fill'));
    expect(h.emulator.getMessage(id)?.history.slice(1)).toEqual(['part 1', 'part 20']);
  });

  it('sends a permanent failure to the failed-edits queue with its reason and keeps the reason in the ledger', async () => {
    const r = reconciler();
    const id = h.emulator.addMessage({ botId: 999, chatId: 12, text: 'not ours' });
    await r.merge(key(id), [edit(id, { message: 'mine now' })]);
    const report = await r.reconcilePortal('acme', run('fill', [key(id)]));
    const fate = report.fates.get(messageKeyText(key(id)));
    expect(fate).toMatchObject({ kind: 'failed', error: { code: 'ACCESS_DENIED' } });
    const state = await ledger.get(key(id));
    expect(state.failedVersion).toBe(state.version);
    expect(state.lastError?.code).toBe('ACCESS_DENIED');
    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    const ours = failed.filter((m) => JSON.parse(m.Body ?? '{}').messageId === id);
    expect(ours).toHaveLength(1);
    expect(ours[0]?.MessageAttributes?.errorCode?.StringValue).toBe('ACCESS_DENIED');
    expect(JSON.parse(ours[0]?.Body ?? '{}').fields).toEqual({ message: 'mine now' });
  });

  it('leaves a portal to the reconciler that holds its lease, and the next holder paces on from where it left the bucket', async () => {
    const holder = reconciler();
    const other = reconciler();
    const id = message();
    await other.merge(key(id), [edit(id, { message: 'x' })]);
    expect((await ledger.portals.acquireLease('acme', 'someone-else', clock.now() + 10_000)).acquired).toBe(
      true,
    );
    const report = await other.reconcilePortal('acme', run('fill', [key(id)]));
    expect(report.leaseHeld).toBe(true);
    expect(h.emulator.calls).toEqual([]);
    // The holder spent the portal's whole burst; the next holder continues from its bucket.
    // Standard plan (50 at 2/s): the drain fills it to 39 (a fifth is the API's headroom, one request
    // slack); 19.9 s to empty is a level of 39.8, so one more request is 1.8 over: 900 ms away.
    const startedAt = clock.now();
    await ledger.portals.releaseLease('acme', 'someone-else', { bucketEmptyAt: startedAt + 19_900 });
    await holder.reconcilePortal('acme', run('fill'));
    expect(h.emulator.getMessage(id)?.text).toBe('x');
    // (Waits round up to the next whole ms.)
    expect(h.emulator.calls[0]?.at).toBeGreaterThanOrEqual(startedAt + 900);
    expect(h.emulator.calls[0]?.at).toBeLessThanOrEqual(startedAt + 901);
  });

  it('sends nothing to a portal whose last holder died mid-call until that call can no longer land', async () => {
    const r = reconciler({ ambiguousSettleMs: 1_000 });
    const id = message();
    await r.merge(key(id), [edit(id, { message: 'after the crash' })]);
    // A holder renewed its lease for a call and died: the lease runs out, the call's start stays.
    const callStartedAt = clock.now();
    await ledger.portals.acquireLease('acme', 'crashed', callStartedAt + 100, callStartedAt);
    clock.advance(150);
    const held = await r.reconcilePortal('acme', run('fill', [key(id)]));
    expect(held.fates.get(messageKeyText(key(id)))).toMatchObject({ kind: 'held', code: 'CALL_IN_DOUBT' });
    expect(h.emulator.calls).toEqual([]);
    clock.advance(callStartedAt + 1_000 - clock.now());
    const applied = await r.reconcilePortal('acme', run('fill', [key(id)]));
    expect(applied.fates.get(messageKeyText(key(id)))?.kind).toBe('applied');
    expect(h.emulator.getMessage(id)?.text).toBe('after the crash');
  });

  it('lets one run of a reconciler at a time send to a portal: a second run of the same container finds it held, and the message never goes back to an older state', async () => {
    const r = reconciler();
    const id = message('initial');
    await r.merge(key(id), [edit(id, { message: 'older' })]);
    // The first run's call is slow; a newer edit comes meanwhile and a second run of the same
    // reconciler (a second request in one container) tries the portal.
    h.emulator.inject({ kind: 'slow', delayMs: 400 }, 1);
    const first = r.reconcilePortal('acme', run('fill'));
    await waitFor(() => updates().length === 1, 5_000, 'the first run’s call');
    await r.merge(key(id), [edit(id, { message: 'newer' })]);
    const second = await r.reconcilePortal('acme', run('fill'));
    expect(second.leaseHeld).toBe(true);
    await first;
    await r.reconcilePortal('acme', run('fill'));
    expect(h.emulator.getMessage(id)?.history).toEqual(['initial', 'older', 'newer']);
  });

  it('keeps, per field, the latest of ten concurrent merges of one message', async () => {
    const r = reconciler();
    const id = message();
    const edits = Array.from({ length: 10 }, (_, i) =>
      edit(id, i % 2 === 0 ? { message: `text ${i}` } : { urlPreview: i % 4 === 1 ? 'N' : 'Y' }, 1_000 + i),
    );
    await Promise.all(edits.map((e) => r.merge(key(id), [e])));
    const state = await ledger.get(key(id));
    expect(state.desired.message?.value).toBe('text 8');
    expect(state.desired.urlPreview?.value).toBe('N');
  });
});

describe('the lease on the machine’s own time', () => {
  // The lease must survive calls that take real time: requests, not waits, fill this run.
  let real: Harness;
  beforeAll(async () => {
    real = await startHarness({ timeoutMs: 500 });
  });
  afterAll(() => real.close());

  it('renews the lease before a call that starts after its claim, so a long run of single calls keeps the portal from a second reconciler', async () => {
    // Leases of one second (what an invocation with a second left gets); every call takes 150 ms,
    // and each message is too large for a batch command: 12 single calls in one unit of work.
    const table = await freshLedger(real);
    const holder = testReconciler(real, table, { callTimeoutMs: 500 });
    const other = testReconciler(real, table, { callTimeoutMs: 500 });
    const ids = Array.from({ length: 12 }, () =>
      real.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'initial' }),
    );
    const rows = Array.from({ length: 400 }, (_, i) => ({ DISPLAY: 'LINE', NAME: `n${i}`, VALUE: `v${i}` }));
    for (const id of ids) {
      const fields = { message: `single ${id}`, attach: [{ GRID: rows }] };
      await holder.merge(key(id), [{ ...key(id), fields, editId: randomUUID(), at: Date.now(), seq: '' }]);
    }
    real.emulator.inject({ kind: 'slow', delayMs: 150 }, 12);
    const short = { ...run('fill'), remainingMs: () => 1_000 };
    const holding = holder.reconcilePortal('acme', short);
    // Past the first lease's second, while calls are still to come.
    await waitFor(
      () => real.emulator.calls.filter((c) => c.method === UPDATE_METHOD).length >= 8,
      20_000,
      'eight calls',
    );
    const second = await other.reconcilePortal('acme', short);
    expect(second.leaseHeld).toBe(true);
    await holding;
    expect(real.emulator.calls.filter((c) => c.method === UPDATE_METHOD)).toHaveLength(12);
    for (const id of ids) expect(real.emulator.getMessage(id)?.history).toEqual(['initial', `single ${id}`]);
  });
});
