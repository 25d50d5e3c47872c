/**
 * A "deployment" in its own process, for the convergence test: Lambda-like pollers over the edits
 * queue (the drain) and the portal work queue (the reconcile), one handler per slot (like separate
 * Lambda containers: each its own reconciler, pacing and lease owner), and the sweep, all on one
 * ledger table. Settings come as JSON in argv[2].
 * SIGTERM stops it gracefully and prints `DRAIN-STATS {json}` (poller counters and peak RSS);
 * SIGKILL is a crash.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createHandler } from '../../../functions/drain-edits.ts';
import { createHandler as createReconcileHandler } from '../../../functions/reconcile-portals.ts';
import { Ledger } from '../../../lib/ledger/messages.ts';
import { PortalCircuits } from '../../../lib/pacing/circuit.ts';
import { PortalGateway } from '../../../lib/portal/gateway.ts';
import type { ReconcileOptions } from '../../../lib/reconcile/options.ts';
import { Reconciler } from '../../../lib/reconcile/reconcile.ts';
import { sqsWakeups } from '../../../lib/schedule/portal-queue.ts';
import { sweep } from '../../../lib/schedule/sweep.ts';
import { createSecretStore } from '../../../lib/secrets/index.ts';
import { type SqsHandler, startPoller } from '../../../local/poller.ts';

export interface WorkerSettings {
  sqsEndpoint: string;
  secretsEndpoint: string;
  secretPrefix: string;
  /** The local DynamoDB holding the ledger table `ledgerTable`. */
  dynamoEndpoint: string;
  ledgerTable: string;
  queueUrl: string;
  /** The portal work queue (standard). */
  portalQueueUrl: string;
  maxConcurrency: number;
  /** The invocation timeout. */
  timeoutMs: number;
  options: ReconcileOptions;
  circuit?: { openMs: number; maxOpenMs: number };
  /** Also run the sweep every this many ms in this process (a SIGKILL then kills it mid-sweep too). */
  sweepEveryMs?: number;
  /** How overdue a wake-up is before the sweep sends it again. */
  sweepGraceMs?: number;
}

const settings = JSON.parse(process.argv[2] ?? '{}') as WorkerSettings;
const aws = { region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
const sqs = new SQSClient({ ...aws, endpoint: settings.sqsEndpoint });
const ledger = new Ledger({
  tableName: settings.ledgerTable,
  client: new DynamoDBClient({ ...aws, endpoint: settings.dynamoEndpoint }),
});
const store = createSecretStore({
  client: new SecretsManagerClient({ ...aws, endpoint: settings.secretsEndpoint }),
  prefix: settings.secretPrefix,
  ttlSeconds: 300,
});
const gateway = new PortalGateway({
  store,
  timeoutMs: settings.options.callTimeoutMs ?? 10_000,
  allowHttp: true,
});
const wakeups = sqsWakeups({ client: sqs, queueUrl: settings.portalQueueUrl, now: Date.now });
let peakRss = process.memoryUsage().rss;
let peakHeap = process.memoryUsage().heapUsed;
const sampler = setInterval(() => {
  const now = process.memoryUsage();
  peakRss = Math.max(peakRss, now.rss);
  peakHeap = Math.max(peakHeap, now.heapUsed);
}, 50);

const poller = startPoller({
  client: sqs,
  queueUrl: settings.queueUrl,
  maxConcurrency: settings.maxConcurrency,
  timeoutMs: settings.timeoutMs,
  waitTimeSeconds: 0,
  handlerFor: () =>
    createHandler({
      ledger,
      sqs,
      wakeups,
      editsQueueUrl: settings.queueUrl,
      options: settings.options,
    }) as SqsHandler,
});
const reconcilePoller = startPoller({
  client: sqs,
  queueUrl: settings.portalQueueUrl,
  maxConcurrency: settings.maxConcurrency,
  timeoutMs: settings.timeoutMs,
  waitTimeSeconds: 0,
  handlerFor: () =>
    createReconcileHandler({
      reconciler: new Reconciler({
        ledger,
        gateway,
        sqs,
        wakeups,
        options: settings.options,
        ...(settings.circuit ? { circuits: new PortalCircuits(settings.circuit) } : {}),
      }),
      sqs,
      queueUrl: settings.portalQueueUrl,
    }) as SqsHandler,
});

// The scheduled sweep, as its own "function", one run at a time.
let sweeping: Promise<unknown> = Promise.resolve();
const sweeper = settings.sweepEveryMs
  ? setInterval(() => {
      sweeping = sweeping.then(() =>
        sweep({ table: ledger.table, sender: wakeups, graceMs: settings.sweepGraceMs }).catch(
          () => undefined,
        ),
      );
    }, settings.sweepEveryMs)
  : undefined;

// Bounded: the worker never outlives the test process that started it, nor ten minutes.
process.on('disconnect', () => process.exit(1));
setTimeout(() => process.exit(1), 10 * 60_000).unref();

process.once('SIGTERM', async () => {
  clearInterval(sweeper);
  await sweeping;
  await Promise.all([poller.stop(), reconcilePoller.stop()]);
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const cpu = process.cpuUsage(cpuAtReady);
  // What the work left behind: the heap after a full collection (when the worker runs with --expose-gc).
  (globalThis as { gc?: () => void }).gc?.();
  const retainedHeap = process.memoryUsage().heapUsed;
  process.stdout.write(
    `DRAIN-STATS ${JSON.stringify({ ...poller.stats, reconcile: reconcilePoller.stats, peakRss, peakHeap, retainedHeap, cpu })}\n`,
    () => process.exit(0),
  );
});
// CPU from here on is the work's, not the process start's.
const cpuAtReady = process.cpuUsage();
process.stdout.write('DRAIN-READY\n');
