import { createServer, type Server, type Socket } from 'node:net';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler as createReconcileHandler } from '../../functions/reconcile-portals.ts';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import type { ReconcileOptions } from '../../lib/reconcile/options.ts';
import type { ReconcileReport } from '../../lib/reconcile/run.ts';
import { reconcileWakeups } from '../../lib/reconcile/wakeups.ts';
import { sqsWakeups } from '../../lib/schedule/portal-queue.ts';
import { toSqsRecord } from '../../local/poller.ts';
import {
  drainHandler,
  editBody,
  eventOf,
  failedIds,
  receiveAll,
  recordingSqs,
  sqsRecord,
} from '../drain/support/fixtures.ts';
import { VirtualClock } from '../support/clock.ts';
import { lambdaContext } from '../support/events.ts';
import {
  BOT,
  freshLedger,
  type Harness,
  PREFIX,
  runDueWakeups,
  startHarness,
  testReconciler,
  webhookSecret,
} from '../support/harness.ts';
import { waitFor } from '../support/wait.ts';

// The apply stage: a woken portal's reconcile, on a virtual clock shared with the emulator and the
// ledger (backoff, settle windows, the circuit and pacing are exact on it). The SQS path of the
// wake-ups is tested at the end, through the SQS emulator.
const clock = new VirtualClock();
let h: Harness;
let ledger: Ledger;
/** An endpoint that accepts connections and never answers: a portal whose calls hang. */
let hanging: Server;
const hangingSockets: Socket[] = [];

beforeAll(async () => {
  h = await startHarness({ clock, timeoutMs: 2_000 });
  // A portal whose Bitrix24 refuses connections, one with a tiny rate, one with room for 5/s.
  h.secretsManager.setSecret(`${PREFIX}down`, webhookSecret('http://127.0.0.1:9'));
  h.secretsManager.setSecret(
    `${PREFIX}trickle`,
    webhookSecret(h.emulator.url, { plan: undefined, limits: { burst: 1, perSecond: 0.01 } }),
  );
  h.secretsManager.setSecret(
    `${PREFIX}paced`,
    webhookSecret(h.emulator.url, { plan: undefined, limits: { burst: 1, perSecond: 5 } }),
  );
  hanging = createServer((socket) => hangingSockets.push(socket));
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  const address = hanging.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  h.secretsManager.setSecret(`${PREFIX}hang`, webhookSecret(`http://127.0.0.1:${port}`));
});
afterAll(async () => {
  for (const socket of hangingSockets) socket.destroy();
  await new Promise((resolve) => hanging.close(resolve));
  await h.close();
});
beforeEach(async () => {
  h.emulator.reset();
  h.wakeups.clear();
  ledger = await freshLedger(h);
  for (const m of await receiveAll(h.sqs, h.failedQueueUrl)) {
    const { DeleteMessageCommand } = await import('@aws-sdk/client-sqs');
    await h.sqs.send(
      new DeleteMessageCommand({ QueueUrl: h.failedQueueUrl, ReceiptHandle: m.ReceiptHandle }),
    );
  }
});

function message(text = 'Build: queued'): number {
  return h.emulator.addMessage({ botId: BOT.id, chatId: 12, text });
}
const key = (messageId: number, portal = 'acme') => ({ portal, botId: BOT.id, messageId });
const updates = () => h.emulator.calls.filter((c) => c.method === UPDATE_METHOD);
const httpCalls = () => h.emulator.calls.filter((c) => !c.viaBatch);

/** The ingest stage: the drain merges the records and wakes their portals. */
async function ingest(records: SQSRecord[]): Promise<void> {
  const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger, clock });
  expect(failedIds(await drain(eventOf(records)))).toEqual([]);
}

/** The apply stage: the portal work queue's consumer runs the wake-ups due by now. */
function wake(options: Partial<ReconcileOptions> = {}): Promise<ReconcileReport[]> {
  return runDueWakeups(h, testReconciler(h, ledger, options));
}

/** Everything written to stdout while `work` runs (the EMF metrics lines among it). */
async function stdoutOf(work: () => Promise<unknown>): Promise<string[]> {
  const written: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    written.push(String(chunk));
    return (write as (...args: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    await work();
  } finally {
    process.stdout.write = write;
  }
  return written;
}

/** The reconcile function's handling of one wake-up of portal acme, as the portal work queue hands it over. */
function wakeAcme(reconciler: ReturnType<typeof testReconciler>) {
  const record = toSqsRecord({ MessageId: 'w', ReceiptHandle: 'r', Body: '{"portal":"acme"}' }, 'arn:x');
  return reconcileWakeups([record], { remainingMs: () => 30_000 }, { reconciler, sqs: h.sqs });
}

describe('applying a woken portal', () => {
  it('applies K edits of one message as one update with their fields merged', async () => {
    const id = message();
    await ingest(
      [
        editBody(id, { message: 'Build: running' }),
        editBody(id, { keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/1' }] }),
        editBody(id, { message: 'Build: 50%' }),
        editBody(id, { urlPreview: false }),
        editBody(id, { message: 'Build: passed' }),
      ].map((b) => sqsRecord(b)),
    );
    await wake();
    // One message is one command: it goes as a plain call, not inside `batch`.
    expect(httpCalls().map((c) => c.method)).toEqual([UPDATE_METHOD]);
    const state = h.emulator.getMessage(id);
    expect(state?.history).toEqual(['Build: queued', 'Build: passed']);
    expect(state?.keyboard).toBeTruthy();
    expect(state?.urlPreview).toBe(false);
    expect((await ledger.portals.view('acme')).wakeAt).toBeUndefined();
  });

  it('packs the portal’s dirty messages, those of earlier events too, into one batch call and maps each answer to its message', async () => {
    const ours = message();
    const left = message();
    const someoneElses = h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'written by a person' });
    await ingest([sqsRecord(editBody(left, { message: 'left earlier' }))]);
    await ingest([
      sqsRecord(editBody(ours, { message: 'a' })),
      sqsRecord(editBody(someoneElses, { message: 'hijack' })),
      sqsRecord(editBody(ours, { message: 'b' })),
    ]);
    await wake();
    expect(httpCalls().map((c) => c.method)).toEqual(['batch']);
    expect(updates()).toHaveLength(3);
    expect(h.emulator.getMessage(ours)?.text).toBe('b');
    expect(h.emulator.getMessage(left)?.text).toBe('left earlier');
    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    expect(
      failed.map((m) => [JSON.parse(m.Body ?? '{}').messageId, m.MessageAttributes?.errorCode?.StringValue]),
    ).toEqual([[someoneElses, 'ACCESS_DENIED']]);
  });

  it('looks at the portal again after the index lag when a merge came that close to its last query', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'x' }))]);
    const [report] = await wake({ indexLagMs: 1_000 });
    expect(h.emulator.getMessage(id)?.text).toBe('x');
    expect(report?.nextWakeAt).toBeUndefined();
    // Nothing left, but the merge's touch was within the lag of the run's last query.
    expect(h.wakeups.pending()).toEqual([{ portal: 'acme', at: clock.now() + 1_000 }]);
    clock.advance(1_000);
    h.emulator.clearCalls();
    await wake({ indexLagMs: 1_000 });
    expect(h.emulator.calls).toEqual([]);
  });

  it('costs nothing for a duplicate wake-up: no call, no ledger change', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'once' }))]);
    await wake();
    h.emulator.clearCalls();
    await h.wakeups.send([{ portal: 'acme', at: clock.now() }]);
    const [report] = await wake();
    expect(h.emulator.calls).toEqual([]);
    expect(report?.nextWakeAt).toBeUndefined();
    expect(h.wakeups.pending()).toEqual([]);
  });

  it('reconciles many woken portals in one invocation, in parallel, one call each', async () => {
    const portals = Array.from({ length: 12 }, (_, i) => `fleet-${i}`);
    for (const portal of portals)
      h.secretsManager.setSecret(`${PREFIX}${portal}`, webhookSecret(h.emulator.url));
    const ids = portals.map(() => message());
    await ingest(
      portals.map((portal, i) => sqsRecord(editBody(ids[i] as number, { message: portal }, { portal }))),
    );
    const records = portals.map((portal, i) =>
      toSqsRecord(
        { MessageId: `w${i}`, ReceiptHandle: `r${i}`, Body: JSON.stringify({ portal, at: clock.now() }) },
        'arn:aws:sqs:us-east-1:000000000000:portal-work',
      ),
    );
    const response = await reconcileWakeups(
      records,
      { remainingMs: () => 30_000 },
      {
        reconciler: testReconciler(h, ledger),
        sqs: h.sqs,
      },
    );
    expect(response.batchItemFailures).toEqual([]);
    expect(httpCalls()).toHaveLength(12);
    expect(ids.map((id) => h.emulator.getMessage(id)?.text)).toEqual(portals);
  });

  it('does not hold one portal’s edits behind another portal whose calls hang', async () => {
    const id = message();
    await ingest([
      sqsRecord(editBody(5, { message: 'hangs' }, { portal: 'hang' })),
      sqsRecord(editBody(id, { message: 'independent' })),
    ]);
    const records = ['hang', 'acme'].map((portal, i) =>
      toSqsRecord(
        { MessageId: `w${i}`, ReceiptHandle: `r${i}`, Body: JSON.stringify({ portal, at: clock.now() }) },
        'arn:aws:sqs:us-east-1:000000000000:portal-work',
      ),
    );
    let done = false;
    const invocation = reconcileWakeups(
      records,
      { remainingMs: () => 30_000 },
      {
        reconciler: testReconciler(h, ledger, { callTimeoutMs: 10_000 }),
        sqs: h.sqs,
      },
    ).finally(() => {
      done = true;
    });
    await waitFor(() => h.emulator.getMessage(id)?.text === 'independent', 20_000, 'the other portal’s edit');
    // Applied while the hanging portal's call is still out.
    expect(done).toBe(false);
    await invocation;
    expect((await ledger.get(key(5, 'hang'))).lastError?.code).toBe('TIMEOUT');
  });
});

describe('a backlog that is still being sent', () => {
  const batching = { batchLingerMs: 1_000, batchMaxWaitMs: 10_000 };

  /** Sends `count` edits of distinct messages, one every `everyMs`, running the wake-ups as they fall due. */
  async function trickle(count: number, everyMs: number, quietMs: number) {
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger, clock, options: batching });
    const reconciler = testReconciler(h, ledger, batching);
    const ids = Array.from({ length: count }, () => message());
    const sentAt = new Map<number, number>();
    const appliedAt = new Map<number, number>();
    const step = async (ms: number) => {
      clock.advance(ms);
      await runDueWakeups(h, reconciler);
      for (const id of ids)
        if (!appliedAt.has(id) && h.emulator.getMessage(id)?.text === `import ${id}`)
          appliedAt.set(id, clock.now());
    };
    for (const id of ids) {
      sentAt.set(id, clock.now());
      expect(failedIds(await drain(eventOf([sqsRecord(editBody(id, { message: `import ${id}` }))])))).toEqual(
        [],
      );
      await step(everyMs);
    }
    for (let quiet = 0; quiet < quietMs; quiet += 250) await step(250);
    const waits = ids.map((id) => (appliedAt.get(id) ?? Number.POSITIVE_INFINITY) - (sentAt.get(id) ?? 0));
    return { ids, waits };
  }

  it('waits for the producer to pause and sends the whole backlog in one call', async () => {
    const { ids, waits } = await trickle(30, 300, 12_000);
    expect(httpCalls().map((c) => c.method)).toEqual(['batch']);
    expect(updates()).toHaveLength(30);
    expect(ids.every((id) => h.emulator.getMessage(id)?.text === `import ${id}`)).toBe(true);
    // The oldest edit waited no longer than batchMaxWaitMs (and the step that ran its wake-up).
    expect(Math.max(...waits)).toBeLessThanOrEqual(10_300);
  });

  it('sends a call at most every batchMaxWaitMs while the producer never pauses, and no edit waits longer', async () => {
    const { ids, waits } = await trickle(60, 500, 12_000);
    expect(ids.every((id) => h.emulator.getMessage(id)?.text === `import ${id}`)).toBe(true);
    expect(updates()).toHaveLength(60);
    // 30 s of edits: a call at 10, 20 and 30 s from the oldest waiting one, and the rest after the pause.
    expect(httpCalls().length).toBeLessThanOrEqual(4);
    expect(Math.max(...waits)).toBeLessThanOrEqual(10_500);
  });
});

describe('what a run leaves for the next wake-up', () => {
  const cases = [
    { fault: 'query-limit', settleMs: 5_000, range: [1_000, 2_000], why: 'a drained request and jitter' },
    {
      fault: 'operating-limit',
      settleMs: 1_000,
      range: [62_000, 63_000],
      why: 'reset unknown: 60 s + jitter',
    },
    { fault: 'server-error', settleMs: 1_000, range: [1_000, 1_000], why: 'half of 2 s, the settle window' },
    { fault: 'server-error', settleMs: 5_000, range: [5_000, 5_000], why: 'the 5 s settle window' },
    { fault: 'html', settleMs: 3_000, range: [3_000, 3_000], why: 'the 3 s settle window: it may have run' },
    { fault: 'reset', settleMs: 1_000, range: [1_000, 1_000], why: 'half of 2 s, the settle window' },
    { fault: 'overload', settleMs: 1_000, range: [300_000, 303_000], why: 'until the 5 min circuit closes' },
  ] as const;

  it.each(cases)(
    'wakes the portal again after $fault (settle window $settleMs ms) in $range ms ($why), with the edit kept',
    async ({ fault, settleMs, range }) => {
      const id = message();
      await ingest([sqsRecord(editBody(id, { message: 'x' })), sqsRecord(editBody(id, { message: 'y' }))]);
      h.emulator.inject({ kind: fault });
      const started = clock.now();
      const [report] = await wake({ ambiguousSettleMs: settleMs });
      const wakeIn = (report?.nextWakeAt ?? 0) - started;
      expect(wakeIn).toBeGreaterThanOrEqual(range[0]);
      expect(wakeIn).toBeLessThanOrEqual(range[1]);
      expect(h.wakeups.last('acme')?.at).toBe(report?.nextWakeAt);
      expect((await ledger.get(key(id))).desired.message?.value).toBe('y');
    },
  );

  it('applies the whole desired state on the next wake-up, edits merged before the failure included', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/2' }] }))]);
    h.emulator.inject({ kind: 'server-error' });
    await wake();
    await ingest([sqsRecord(editBody(id, { message: 'Build: passed' }))]);
    // Not before its retry time, though a new edit came.
    await wake();
    expect(updates()).toHaveLength(1);
    clock.advance(1_000);
    await wake();
    const state = h.emulator.getMessage(id);
    expect(state?.text).toBe('Build: passed');
    expect(state?.keyboard).toBeTruthy();
  });

  it('backs off by the failed calls the ledger counts: the second server error in a row waits twice as long', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'x' }))]);
    h.emulator.inject({ kind: 'server-error' }, 2);
    const first = clock.now();
    const [one] = await wake();
    expect((one?.nextWakeAt ?? 0) - first).toBe(1_000);
    clock.advance(1_000);
    const second = clock.now();
    const [two] = await wake();
    expect((two?.nextWakeAt ?? 0) - second).toBe(2_000);
    expect((await ledger.get(key(id))).attempts).toBe(2);
  });

  it('keeps a message whose call timed out back until the settle window from the call’s start has passed', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'late' }))]);
    h.emulator.inject({ kind: 'slow', delayMs: 2_300 });
    const started = clock.now();
    const running = wake({ callTimeoutMs: 2_000, ambiguousSettleMs: 5_000 });
    await waitFor(() => h.emulator.calls.length > 0, 10_000, 'the call');
    clock.advance(2_000);
    const [report] = await running;
    expect(report?.nextWakeAt).toBe(started + 5_000);
    // It lands late, after the timeout, as the window allows for.
    await waitFor(() => h.emulator.getMessage(id)?.text === 'late', 10_000, 'the late landing');
  });

  it('opens the portal’s circuit on OVERLOAD_LIMIT, emits PortalCircuitOpen, and calls nothing until it closes', async () => {
    await ingest([sqsRecord(editBody(message(), { message: 'blocked' }))]);
    h.emulator.inject({ kind: 'overload' });
    const reconciler = testReconciler(h, ledger);
    const written = await stdoutOf(() => wakeAcme(reconciler));
    const emf = written
      .flatMap((line) => line.split('\n'))
      .filter((line) => line.includes('PortalCircuitOpen'));
    expect(emf.some((line) => JSON.parse(line).PortalCircuitOpen === 1)).toBe(true);
    // Another message of the portal, due at once, waits for the circuit too.
    h.emulator.clearCalls();
    await ingest([sqsRecord(editBody(message(), { message: 'still blocked' }))]);
    await runDueWakeups(h, reconciler);
    expect(h.emulator.calls).toEqual([]);
  });

  it('emits EditWaitSeconds: how long the edits it applied had waited in the ledger', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'waited' }))]);
    clock.advance(42_000);
    const written = await stdoutOf(() => wakeAcme(testReconciler(h, ledger)));
    expect(h.emulator.getMessage(id)?.text).toBe('waited');
    const emf = written
      .flatMap((line) => line.split('\n'))
      .filter((line) => line.includes('EditWaitSeconds'))
      .map((line) => JSON.parse(line) as { EditWaitSeconds: number });
    expect(emf).toHaveLength(1);
    expect(emf[0]?.EditWaitSeconds).toBeGreaterThanOrEqual(42);
    expect(emf[0]?.EditWaitSeconds).toBeLessThan(60);
  });

  it('leaves a portal held by another reconciler to it: no call, and marks the portal so that the holder looks again before it lets go', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'while held' }))]);
    clock.advance(100);
    expect((await ledger.portals.acquireLease('acme', 'another-run', clock.now() + 10_000)).acquired).toBe(
      true,
    );
    // The holder's last look at the dirty set, before the wake-up came (it may have missed a merge
    // that the wake-up was to find).
    const holderQueriedAt = clock.now();
    clock.advance(100);
    const reconciler = testReconciler(h, ledger);
    const [report] = await runDueWakeups(h, reconciler);
    expect(report?.leaseHeld).toBe(true);
    expect(h.emulator.calls).toEqual([]);
    // The holder lets go with nothing left as it saw it; the mark makes it look again.
    const released = await ledger.portals.releaseLease('acme', 'another-run', {}, undefined);
    await reconciler.schedule.afterRelease('acme', undefined, released, holderQueriedAt);
    await runDueWakeups(h, reconciler);
    expect(h.emulator.getMessage(id)?.text).toBe('while held');
  });

  it('calls nothing when the deadline leaves no room for a call, and wakes the portal again shortly', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'no time' }))]);
    const started = clock.now();
    const reports = await runDueWakeups(
      h,
      testReconciler(h, ledger, { callTimeoutMs: 2_000, deadlineMarginMs: 200 }),
      2_000,
    );
    expect(h.emulator.calls).toEqual([]);
    expect(reports[0]?.nextWakeAt).toBe(started + 1_000);
  });

  it('waits for the next rate token when it comes before the deadline (pacing, not backoff)', async () => {
    const ids = [message(), message()];
    await ingest([sqsRecord(editBody(ids[0] as number, { message: 'paced' }, { portal: 'paced' }))]);
    const reconciler = testReconciler(h, ledger, { apiRateShare: 0 });
    await runDueWakeups(h, reconciler);
    await ingest([sqsRecord(editBody(ids[1] as number, { message: 'paced' }, { portal: 'paced' }))]);
    await runDueWakeups(h, reconciler);
    const [a, b] = httpCalls();
    // 5 a second, a burst of 1: 200 ms apart on the portal's clock.
    expect((b?.at ?? 0) - (a?.at ?? 0)).toBeGreaterThanOrEqual(200);
    for (const id of ids) expect(h.emulator.getMessage(id)?.text).toBe('paced');
  });

  it('wakes the portal at its next rate token when that is further away than the deadline', async () => {
    const reconciler = testReconciler(h, ledger, { apiRateShare: 0 });
    await ingest([sqsRecord(editBody(message(), { message: 'first' }, { portal: 'trickle' }))]);
    await runDueWakeups(h, reconciler);
    await ingest([sqsRecord(editBody(message(), { message: 'second' }, { portal: 'trickle' }))]);
    const started = clock.now();
    const [report] = await runDueWakeups(h, reconciler);
    // One request per 100 s: the token is about 100 s away.
    expect((report?.nextWakeAt ?? 0) - started).toBeGreaterThanOrEqual(99_000);
    expect((report?.nextWakeAt ?? 0) - started).toBeLessThanOrEqual(100_000);
    expect(httpCalls()).toHaveLength(1);
  });
});

describe('nothing lost', () => {
  it('sends permanent failures to the failed-edits queue with their reasons', async () => {
    const id = message();
    await ingest([
      sqsRecord(editBody(id, { message: 'unknown bot' }, { botId: 999 })),
      sqsRecord(editBody(id, { message: 'unknown portal' }, { portal: 'ghost' })),
    ]);
    await wake();
    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    const byGroup = new Map(failed.map((m) => [m.Attributes?.MessageGroupId, m]));
    const reason = (group: string) => {
      const attributes = byGroup.get(group)?.MessageAttributes ?? {};
      return [attributes.errorCode?.StringValue, attributes.errorDescription?.StringValue];
    };
    expect(reason(`acme:999:${id}`)).toEqual([
      'BOT_NOT_FOUND',
      'Bot 999 is not listed in the secret of portal "acme"',
    ]);
    expect(reason(`ghost:456:${id}`)[0]).toBe('PORTAL_NOT_FOUND');
    const ghost = byGroup.get(`ghost:456:${id}`);
    expect(JSON.parse(ghost?.Body ?? '')).toMatchObject({
      portal: 'ghost',
      messageId: id,
      fields: { message: 'unknown portal' },
    });
    expect(ghost?.MessageAttributes?.attempts?.StringValue).toBe('1');
    expect(ghost?.MessageAttributes?.firstRequestedAt?.StringValue).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('gives up with MAX_ATTEMPTS once the ledger counts maxAttempts failed calls of the message over giveUpAfterMs of failing, sending its whole desired state', async () => {
    const id = message();
    await ingest([
      sqsRecord(editBody(id, { keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/3' }] })),
      sqsRecord(editBody(id, { message: 'never' })),
    ]);
    h.emulator.inject({ kind: 'server-error' }, 3);
    const options = { maxAttempts: 2, giveUpAfterMs: 60_000 };
    await wake(options);
    expect(await receiveAll(h.sqs, h.failedQueueUrl)).toEqual([]);
    // Two failed calls a second apart: an outage of a second is ridden out, not reported.
    clock.advance(1_000);
    await wake(options);
    expect(updates()).toHaveLength(2);
    expect(await receiveAll(h.sqs, h.failedQueueUrl)).toEqual([]);
    clock.advance(60_000);
    await wake(options);
    expect(updates()).toHaveLength(3);
    const [failed, ...others] = await receiveAll(h.sqs, h.failedQueueUrl);
    expect(others).toEqual([]);
    expect(failed?.MessageAttributes?.errorCode?.StringValue).toBe('MAX_ATTEMPTS');
    expect(failed?.MessageAttributes?.errorDescription?.StringValue).toContain('INTERNAL_SERVER_ERROR');
    expect(failed?.MessageAttributes?.attempts?.StringValue).toBe('3');
    expect(JSON.parse(failed?.Body ?? '{}')).toMatchObject({
      messageId: id,
      fields: { message: 'never', keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/3' }] },
    });
    const state = await ledger.get(key(id));
    expect(state.failedVersion).toBe(state.version);
    expect(state.lastError?.code).toBe('MAX_ATTEMPTS');
    // The failed calls stay counted; an edit after the failure counts its own from zero.
    expect(state.attempts).toBe(3);
    expect(h.wakeups.pending()).toEqual([]);
    await ingest([sqsRecord(editBody(id, { message: 'after the failure' }))]);
    expect((await ledger.get(key(id))).attempts).toBe(0);
  });

  it('tries a message again within half a minute once its portal answers after a long outage, with the newest edit', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'during the outage' }))]);
    // Seven failed calls in a row: an exponential backoff without a short cap would be minutes long now.
    h.emulator.inject({ kind: 'server-error' }, 7);
    for (let failed = 0; failed < 7; failed++) {
      await wake();
      clock.advance(30_000);
    }
    expect(updates()).toHaveLength(7);
    const state = await ledger.get(key(id));
    expect(state.attempts).toBe(7);
    expect(state.failedVersion).toBeUndefined();
    // The outage is over; a newer edit comes. It does not wait out a long backoff of the older one.
    const failedAt = state.lastCallAt ?? 0;
    await ingest([sqsRecord(editBody(id, { message: 'after the outage' }))]);
    clock.advanceTo(Math.max(clock.now(), failedAt + 30_000));
    await wake();
    expect(h.emulator.getMessage(id)?.text).toBe('after the outage');
    expect(clock.now() - failedAt).toBeLessThanOrEqual(31_000);
  });

  it('keeps a message that failed for good dirty, and wakes its portal again, when the failed-edits queue does not take it', async () => {
    const id = message();
    await ingest([sqsRecord(editBody(id, { message: 'unknown bot' }, { botId: 999 }))]);
    const started = clock.now();
    const [report] = await wake({
      failedEditsQueueUrl: `${h.failedQueueUrl.replace('failed-edits', 'missing')}`,
    });
    const state = await ledger.get({ portal: 'acme', botId: 999, messageId: id });
    expect(state.failedVersion).toBeUndefined();
    expect(state.appliedVersion).toBeLessThan(state.version);
    expect(state.lastError?.code).toBe('FAILED_QUEUE_UNAVAILABLE');
    expect(state.lastError?.description).toContain('BOT_NOT_FOUND');
    expect(report?.nextWakeAt).toBe(started + 1_000);
  });
});

describe('the portal work queue through SQS', () => {
  it('delivers a wake-up to the reconcile handler, which applies the portal’s edits and drops a body that names no portal', async () => {
    const id = message();
    const sender = sqsWakeups({ client: h.sqs, queueUrl: h.portalQueueUrl, now: clock.now });
    // The drain with the SQS portal work queue, as deployed.
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { ledger, clock, wakeups: sender });
    expect(failedIds(await drain(eventOf([sqsRecord(editBody(id, { message: 'through SQS' }))])))).toEqual(
      [],
    );
    const { SendMessageCommand } = await import('@aws-sdk/client-sqs');
    await h.sqs.send(
      new SendMessageCommand({ QueueUrl: h.portalQueueUrl, MessageBody: '{"portal":"../etc"}' }),
    );
    const received = await h.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: h.portalQueueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const records = (received.Messages ?? []).map((m) =>
      toSqsRecord(m, 'arn:aws:sqs:us-east-1:000000000000:portal-work'),
    );
    expect(records.map((r) => JSON.parse(r.body).portal).sort()).toEqual(['../etc', 'acme']);
    const handler = createReconcileHandler({
      reconciler: testReconciler(h, ledger, {}, { wakeups: sender }),
      sqs: h.sqs,
      queueUrl: h.portalQueueUrl,
    });
    const response = await handler({ Records: records }, lambdaContext());
    expect(response?.batchItemFailures).toEqual([]);
    expect(h.emulator.getMessage(id)?.text).toBe('through SQS');
  });
});
