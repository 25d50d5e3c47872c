import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import { sqsWakeups } from '../../lib/schedule/portal-queue.ts';
import {
  DRAIN_METRICS,
  type DrainInvocation,
  emptyOutcomes,
  RECONCILE_METRICS,
  startDrainRunner,
} from '../../local/stack/drain.ts';
import { DrainSwitch, type Pausable, type Queued, resumeSummary } from '../../local/stack/drain-switch.ts';
import { QUEUES } from '../../local/stack/local-aws.ts';
import { readQueueView } from '../../local/stack/queue-view.ts';
import { startSandboxServer } from '../../local/stack/sandbox/server.ts';
import type { SandboxState } from '../../local/stack/sandbox/state.ts';
import { startScheduler } from '../../local/stack/scheduler.ts';
import type { StatusSchedule } from '../../local/stack/status-schedules.ts';
import { waitFor } from '../support/wait.ts';
import { localQueues } from './support/local-queues.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nothingQueued = async (): Promise<Queued> => ({ edits: 0, wakeups: 0 });

/** A runner on `queueUrl` whose handler writes down the `field` of each record's body, in order. */
function recordingRunner(sqsUrl: string, queueUrl: string, field: string, maxConcurrency: number) {
  const seen: string[] = [];
  const runner = startDrainRunner({
    sqsUrl,
    queueUrl,
    createHandler: () => async (event: SQSEvent) => {
      for (const record of event.Records) seen.push(JSON.parse(record.body)[field]);
      return { batchItemFailures: [] };
    },
    maxConcurrency,
    batchSize: 10,
    timeoutMs: 5_000,
  });
  return { runner, seen };
}

describe('the local drain paused and resumed (the SQS emulator, through the real SDK)', () => {
  const local = localQueues();

  it('leaves an edit sent while paused in the queue, received by nobody, and drains it once resumed', async () => {
    const { runner: drain, seen: received } = recordingRunner(local.sqs.url, local.queues.edits, 'editId', 2);
    try {
      // Both slots are in a long poll now: the pause must not leave one behind to take the edit.
      await sleep(200);
      await drain.pause();
      expect(drain.paused).toBe(true);
      const edit = {
        portal: 'demo',
        botId: 456,
        messageId: 789,
        fields: { message: 'Sent while paused' },
        editId: 'paused-1',
        requestedAt: new Date().toISOString(),
      };
      expect(
        (await enqueueEdits([edit], { queueUrl: local.queues.edits, client: local.client })).failed,
      ).toEqual([]);
      await sleep(1_500);
      expect(received).toEqual([]);
      expect(await readQueueView(local.sqs.url, QUEUES)).toMatchObject({ waiting: 1, inFlight: 0 });

      drain.resume();
      await expect.poll(() => received, { timeout: 5_000, interval: 50 }).toEqual(['paused-1']);
      await expect
        .poll(() => readQueueView(local.sqs.url, QUEUES), { timeout: 5_000, interval: 50 })
        .toMatchObject({ waiting: 0, inFlight: 0 });
      expect(drain.stats).toMatchObject({ invocations: 1, deleted: 1 });
    } finally {
      await drain.stop();
    }
  });
});

describe('the local reconcile paused and resumed (the standard portal work queue, through the real SDK)', () => {
  const local = localQueues();

  it('leaves a wake-up sent while paused on the portal work queue, and reconciles its portal once resumed', async () => {
    const woken: string[] = [];
    const reconcile = startDrainRunner({
      sqsUrl: local.sqs.url,
      queueUrl: local.queues.portalWork,
      functionName: 'reconcile-portals',
      createHandler: () => async (event: SQSEvent) => {
        for (const record of event.Records) {
          // A standard queue's record: no group, no sequence number.
          expect(record.attributes.SequenceNumber).toBeUndefined();
          woken.push(JSON.parse(record.body).portal);
        }
        return { batchItemFailures: [] };
      },
      maxConcurrency: 2,
      batchSize: 10,
      timeoutMs: 5_000,
      paused: true,
    });
    try {
      expect(reconcile.paused).toBe(true);
      // The production sender, as the drain and the API use it.
      const sender = sqsWakeups({ client: local.client, queueUrl: local.queues.portalWork, now: Date.now });
      expect(await sender.send([{ portal: 'demo', at: Date.now() }])).toEqual([]);
      await sleep(1_500);
      expect(woken).toEqual([]);
      expect((await readQueueView(local.sqs.url, QUEUES)).wakeups).toEqual({
        ready: 1,
        delayed: 0,
        inFlight: 0,
      });

      reconcile.resume();
      await waitFor(() => woken.length === 1, 10_000, 'the wake-up to be received');
      expect(woken).toEqual(['demo']);
      await waitFor(
        async () => (await readQueueView(local.sqs.url, QUEUES)).wakeups.inFlight === 0,
        10_000,
        'the wake-up to be deleted',
      );
      expect((await readQueueView(local.sqs.url, QUEUES)).wakeups).toEqual({
        ready: 0,
        delayed: 0,
        inFlight: 0,
      });
      expect(reconcile.stats).toMatchObject({ invocations: 1, deleted: 1 });
    } finally {
      await reconcile.stop();
    }
  });
});

// Each on an SQS emulator of its own: a runner stopped mid long poll leaves a receive behind in the
// emulator, which would take the next test's first message out of sight for the visibility timeout.
describe('the local reconcile on a delayed wake-up', () => {
  const local = localQueues();

  it('holds a wake-up for a later time on the queue as delayed, and delivers it once due', async () => {
    const { runner: reconcile, seen: woken } = recordingRunner(
      local.sqs.url,
      local.queues.portalWork,
      'portal',
      1,
    );
    try {
      const sender = sqsWakeups({ client: local.client, queueUrl: local.queues.portalWork, now: Date.now });
      expect(await sender.send([{ portal: 'later', at: Date.now() + 2_000 }])).toEqual([]);
      expect((await readQueueView(local.sqs.url, QUEUES)).wakeups).toMatchObject({ delayed: 1 });
      await waitFor(() => woken.length === 1, 15_000, 'the delayed wake-up to be received');
      expect(woken).toEqual(['later']);
    } finally {
      await reconcile.stop();
    }
  });
});

describe('the local drain and reconcile outcomes', () => {
  const local = localQueues();

  it("reads each runner's outcomes from its own handler's metrics", async () => {
    process.env.POWERTOOLS_METRICS_DISABLED = 'true';
    const metrics = new Metrics({ namespace: 'LocalStackTest', serviceName: 'local' });
    const seen: Record<string, DrainInvocation[]> = { drain: [], reconcile: [] };
    const report = (counts: Record<string, number>) => {
      for (const [name, value] of Object.entries(counts)) metrics.addMetric(name, MetricUnit.Count, value);
      metrics.publishStoredMetrics();
    };
    const drain = startDrainRunner({
      sqsUrl: local.sqs.url,
      queueUrl: local.queues.edits,
      metrics,
      outcomeMetrics: DRAIN_METRICS,
      createHandler: () => async () => {
        report({ EditsMerged: 1, EditsSuperseded: 0, EditsDeferred: 0, EditsFailed: 0 });
        return { batchItemFailures: [] };
      },
      maxConcurrency: 1,
      batchSize: 10,
      timeoutMs: 5_000,
      onInvocation: (invocation) => seen.drain?.push(invocation),
    });
    const reconcile = startDrainRunner({
      sqsUrl: local.sqs.url,
      queueUrl: local.queues.portalWork,
      metrics,
      outcomeMetrics: RECONCILE_METRICS,
      createHandler: () => async () => {
        report({ PortalsReconciled: 1, EditsApplied: 3, BitrixCalls: 1 });
        return { batchItemFailures: [] };
      },
      maxConcurrency: 1,
      batchSize: 10,
      timeoutMs: 5_000,
      onInvocation: (invocation) => seen.reconcile?.push(invocation),
    });
    try {
      const edit = {
        portal: 'demo',
        botId: 456,
        messageId: 789,
        fields: { message: 'Merged' },
        editId: 'metrics-1',
        requestedAt: new Date().toISOString(),
      };
      await enqueueEdits([edit], { queueUrl: local.queues.edits, client: local.client });
      const sender = sqsWakeups({ client: local.client, queueUrl: local.queues.portalWork, now: Date.now });
      await sender.send([{ portal: 'demo', at: Date.now() }]);
      await waitFor(
        () => seen.drain?.length === 1 && seen.reconcile?.length === 1,
        10_000,
        'one invocation of each runner',
      );
      expect(seen.drain?.[0]?.outcomes).toEqual({ merged: 1, superseded: 0, deferred: 0, failed: 0 });
      expect(seen.reconcile?.[0]?.outcomes).toEqual({ applied: 3, calls: 1 });
    } finally {
      await Promise.all([drain.stop(), reconcile.stop()]);
      delete process.env.POWERTOOLS_METRICS_DISABLED;
    }
  });
});

describe('the local scheduler paused', () => {
  const schedule: StatusSchedule = { name: 'sweep', everyMs: 20, input: {}, messageIds: [] };

  it('skips its interval runs and runNow while paused, and runs again once resumed', async () => {
    let runs = 0;
    const scheduler = startScheduler({
      schedules: [schedule],
      functionName: 'sweep',
      timeoutMs: 1_000,
      paused: true,
      handler: async () => {
        runs += 1;
      },
    });
    try {
      await scheduler.runNow();
      await sleep(120);
      expect(runs).toBe(0);
      scheduler.resume();
      await expect.poll(() => runs, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      await scheduler.pause();
      const atPause = runs;
      await scheduler.runNow();
      await sleep(120);
      expect(runs).toBe(atPause);
    } finally {
      await scheduler.close();
    }
  });

  it('resolves its pause only once the run in progress has finished', async () => {
    let finished = false;
    const scheduler = startScheduler({
      schedules: [{ ...schedule, everyMs: 60_000 }],
      functionName: 'sweep',
      timeoutMs: 1_000,
      handler: async () => {
        await sleep(150);
        finished = true;
      },
    });
    try {
      await scheduler.pause();
      expect(finished).toBe(true);
    } finally {
      await scheduler.close();
    }
  });
});

/** A part of the stack that says when it was paused, resumed or run. */
function part(name: string, log: string[]): Pausable & { runNow(): Promise<void> } {
  let paused = false;
  return {
    get paused() {
      return paused;
    },
    async pause() {
      paused = true;
      log.push(`${name} paused`);
    },
    resume() {
      paused = false;
      log.push(`${name} resumed`);
    },
    async runNow() {
      log.push(`${name} ran${paused ? ' while paused' : ''}`);
    },
  };
}

describe('the drain switch', () => {
  it('pauses the drain, the reconcile, the sweep and the schedules, and resumes the sweep first and the schedules once the queues are empty', async () => {
    const log: string[] = [];
    let queued: Queued = { edits: 3, wakeups: 1 };
    let calls = 7;
    const change = new DrainSwitch({
      drain: part('drain', log),
      reconcile: part('reconcile', log),
      sweep: part('sweep', log),
      schedules: () => part('schedules', log),
      calls: () => calls,
      queued: async () => {
        const now = queued;
        // The drain merges the edit records; the reconcile takes the wake-up and spends one call.
        if (log.includes('drain resumed')) queued = { ...queued, edits: 0 };
        if (log.includes('reconcile resumed')) {
          queued = { ...queued, wakeups: 0 };
          calls = 8;
        }
        return now;
      },
    });
    expect(await change.pause()).toBe(true);
    expect(await change.pause()).toBe(false);
    expect(log.toSorted()).toEqual(['drain paused', 'reconcile paused', 'schedules paused', 'sweep paused']);
    log.length = 0;

    const report = await change.resume();
    expect(log).toEqual([
      'sweep resumed',
      'sweep ran',
      'drain resumed',
      'reconcile resumed',
      'schedules resumed',
    ]);
    expect(report).toMatchObject({ edits: 3, calls: 1, landed: true });
    expect(change.view()).toMatchObject({
      paused: false,
      resuming: false,
      lastResume: { edits: 3, calls: 1 },
    });
    expect(await change.resume()).toBeUndefined();
  });

  it('counts the edits deferred while paused and the edits queue’s records, and waits for the wake-ups too', async () => {
    const log: string[] = [];
    const change = new DrainSwitch({
      drain: part('drain', log),
      reconcile: part('reconcile', log),
      sweep: part('sweep', log),
      calls: () => 0,
      // The reconcile never takes the wake-up here: the resume gives up waiting and says so.
      queued: async () => ({ edits: 2, wakeups: 1 }),
      landingWaitMs: 300,
    });
    await change.pause();
    for (let i = 0; i < 5; i += 1) change.noteDeferredEdit();
    const report = await change.resume();
    expect(report).toMatchObject({ edits: 7, landed: false });
    if (!report) throw new Error('no resume report');
    expect(resumeSummary(report)).toContain('7 edits → 0 Bitrix24 calls so far; the queues still held work');
  });

  it('counts the edits the API deferred while paused, from zero at each pause', async () => {
    const log: string[] = [];
    const change = new DrainSwitch({
      drain: part('drain', log),
      reconcile: part('reconcile', log),
      sweep: part('sweep', log),
      calls: () => 0,
      queued: nothingQueued,
    });
    change.noteDeferredEdit();
    await change.pause();
    change.noteDeferredEdit();
    change.noteDeferredEdit();
    expect(change.view()).toMatchObject({ paused: true, editsWhilePaused: 2 });
    await change.resume();
    await change.pause();
    expect(change.view()).toMatchObject({ paused: true, editsWhilePaused: 0 });
  });

  it('says how many calls the edits took, or that some were still waiting', () => {
    const report = { at: '', edits: 20, calls: 1, landed: true, durationMs: 420 };
    expect(resumeSummary(report)).toBe('20 edits → 1 Bitrix24 call in 0.4 s');
    expect(resumeSummary({ ...report, calls: 2, landed: false, durationMs: 15_000 })).toBe(
      '20 edits → 2 Bitrix24 calls so far; the queues still held work after 15.0 s',
    );
  });
});

describe('the sandbox server drain endpoints', () => {
  it('answers POST /api/drain/pause and /resume with the switch state, and a plain form post with the page', async () => {
    const log: string[] = [];
    const change = new DrainSwitch({
      drain: part('drain', log),
      reconcile: part('reconcile', log),
      sweep: part('sweep', log),
      calls: () => 0,
      queued: nothingQueued,
    });
    const state = {
      drain: { running: true, note: '', totals: emptyOutcomes() },
    } as SandboxState;
    const server = await startSandboxServer({
      port: 0,
      getState: async () => ({ ...state, drain: { ...state.drain, pause: change.view() } }),
      actions: {
        pauseDrain: async () => ({ ok: await change.pause(), summary: 'paused' }),
        resumeDrain: async () => ({ ok: (await change.resume()) !== undefined, summary: 'resumed' }),
      },
    });
    try {
      const paused = await fetch(`${server.url}/api/drain/pause`, { method: 'POST' });
      expect(paused.headers.get('content-type')).toContain('application/json');
      expect(await paused.json()).toMatchObject({ ok: true, drain: { paused: true } });
      const form = await fetch(`${server.url}/api/drain/resume`, {
        method: 'POST',
        body: new URLSearchParams(),
        redirect: 'manual',
      });
      expect(form.status).toBe(303);
      expect(form.headers.get('location')).toBe('/');
      expect(change.view()).toMatchObject({ paused: false, lastResume: { edits: 0 } });
    } finally {
      await server.close();
    }
  });
});
