import { rm, writeFile } from 'node:fs/promises';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { parseStatusInput } from '../../lib/status/index.ts';
import {
  type Bitrix24Emulator,
  type DemoPortal,
  type EmulatedMessage,
  seedDemoPortal,
  startBitrix24Emulator,
} from '../bitrix24-emulator/index.ts';
import { createLedgerTable, startLocalDynamoDb } from '../dynamodb.ts';
import { startSecretsManager } from '../secrets-manager.ts';
import { startLocalSqs } from '../sqs.ts';
import { ActivityLog, type ApiActivity } from './activity.ts';
import { type HttpApiHandler, startApiServer } from './api-server.ts';
import { sweepLine } from './banner.ts';
import { type LocalStackConfig, type PortSetting, tlsCertificateFile } from './config.ts';
import {
  addOutcomes,
  type DrainInvocation,
  type DrainRunner,
  emptyOutcomes,
  RECONCILE_METRICS,
  startDrainRunner,
} from './drain.ts';
import { DrainSwitch, resumeSummary } from './drain-switch.ts';
import type { LocalStackInfo } from './info.ts';
import {
  createQueues,
  LEDGER_TABLE_NAME,
  LOCAL_AWS,
  portalSecret,
  QUEUES,
  type QueueUrls,
  setHandlerEnvironment,
} from './local-aws.ts';
import { onPort } from './ports.ts';
import { readQueueView } from './queue-view.ts';
import { apiRefusals, EditTally, observeLedger, statusRefusals } from './sandbox/edit-tally.ts';
import { DemoSource, startSandboxServer } from './sandbox/server.ts';
import type {
  ActionResult,
  ChatMessage,
  DrainPauseView,
  SandboxActions,
  SandboxState,
} from './sandbox/state.ts';
import { type ScheduledRun, type Scheduler, startScheduler } from './scheduler.ts';
import { loadStatusSchedules, type StatusSchedule } from './status-schedules.ts';
import { startTlsProxy } from './tls-proxy.ts';

/** The functions as deployed (serverless.yml): names, timeouts, routes, batch sizes. */
const FUNCTIONS = {
  updateMessage: {
    name: 'updateMessage',
    timeoutMs: 15_000,
    routes: ['POST /rest/imbot.v2.Chat.Message.update', 'POST /rest/imbot.v2.Chat.Message.update.json'],
  },
  webhook: {
    name: 'webhook',
    timeoutMs: 15_000,
    routes: ['ANY /rest/{user}/{key}/{method}'],
  },
  getMessage: {
    name: 'getMessage',
    timeoutMs: 10_000,
    routes: ['GET /messages/{portal}/{botId}/{messageId}'],
  },
  drainEdits: { name: 'drain-edits', timeoutMs: 60_000, batchSize: 10 },
  // Deployed with maximum concurrency 10 (reconcileMaxConcurrency); here the drain's (DRAIN_MAX_CONCURRENCY).
  reconcilePortals: { name: 'reconcile-portals', timeoutMs: 60_000, batchSize: 10 },
  refreshStatus: { name: 'refreshStatus', timeoutMs: 60_000 },
  sweep: { name: 'sweep', timeoutMs: 60_000 },
} as const;

/** What EventBridge hands a scheduled function (the sweep reads none of it). */
const SCHEDULED_EVENT = {
  version: '0',
  source: 'aws.events',
  'detail-type': 'Scheduled Event',
  region: LOCAL_AWS.region,
  detail: {},
};

export interface LocalStack {
  readonly info: LocalStackInfo;
  close(): Promise<void>;
}

export interface StackEvents {
  onRequest?(activity: ApiActivity): void;
  onStatusRun?(run: ScheduledRun): void;
  onDrainInvocation?(invocation: DrainInvocation): void;
  onDrainError?(error: unknown): void;
  /** A reconcile invocation on the portal work queue. */
  onReconcileInvocation?(invocation: DrainInvocation): void;
  onReconcileError?(error: unknown): void;
  onSweep?(run: ScheduledRun): void;
  /** The drain was paused or resumed (the sandbox's switch). */
  onDrainSwitch?(view: DrainPauseView): void;
}

export interface LocalStackOptions {
  /** Start with the drain, the reconcile, the sweep and the status schedules paused (`npm start -- --paused`). */
  paused?: boolean;
}

function chatMessage(m: EmulatedMessage): ChatMessage {
  const author = m.system
    ? 'System'
    : m.botId !== undefined
      ? `Build bot (bot ${m.botId})`
      : `User ${m.authorId}`;
  return {
    id: m.id,
    author,
    botId: m.system ? undefined : m.botId,
    text: m.text,
    system: m.system,
    editCount: m.editCount,
    updatedAt: new Date(m.updatedAt).toISOString(),
    keyboard: m.keyboard,
    attach: m.attach,
  };
}

/** What the sandbox page's buttons do: edits go through the local API, as a caller's would. */
function sandboxActions(
  methodUrl: string,
  botId: number,
  emulator: Bitrix24Emulator | undefined,
  scheduler: () => Scheduler | undefined,
  sqs: { url: string; queues: QueueUrls },
  drainSwitch: () => DrainSwitch | undefined,
): SandboxActions {
  return {
    async replayFailed() {
      // Imported when used: lib/ reads the environment when its modules load (the handlers' logger
      // its level), so nothing of it that logs is imported before the stack has set the environment.
      const { replayFailedEdits } = await import('../../lib/edits/failed.ts');
      const client = new SQSClient({ ...LOCAL_AWS, endpoint: sqs.url });
      try {
        const { replayed, kept } = await replayFailedEdits({
          failedQueueUrl: sqs.queues.failedEdits,
          editsQueueUrl: sqs.queues.edits,
          client,
        });
        return { ok: true, summary: `Moved ${replayed} failed edit(s) back to the queue; ${kept} kept.` };
      } finally {
        client.destroy();
      }
    },
    async sendEdit(edit) {
      // Paused, the form's edits pile up too: applied at once, they would show no coalescing.
      const async = edit.async || drainSwitch()?.paused === true;
      const response = await fetch(methodUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(async ? { prefer: 'respond-async' } : {}) },
        body: JSON.stringify({ botId, messageId: edit.messageId, fields: { message: edit.text } }),
      });
      return editResult(response.status, await response.text());
    },
    ...(emulator
      ? {
          simulateBusy: async () => {
            emulator.inject({ kind: 'query-limit' }, 1);
            return { ok: true, summary: 'Bitrix24 answers the next call with QUERY_LIMIT_EXCEEDED.' };
          },
        }
      : {}),
    refreshStatus: async () => {
      const runner = scheduler();
      if (!runner) return { ok: false, summary: 'No status schedules (STATUS_SPECS_FILE).' };
      if (drainSwitch()?.paused)
        return { ok: false, summary: 'Drain paused: the status schedules wait for Resume.' };
      await runner.runNow();
      return { ok: true, summary: 'Ran the status schedules; their last runs are listed above.' };
    },
    async pauseDrain() {
      const change = drainSwitch();
      if (!change) return { ok: false, summary: 'The drain is not running yet.' };
      const paused = await change.pause();
      return {
        ok: true,
        summary: paused
          ? 'Drain paused: deferred edits (202) wait in the ledger with their portal’s wake-up, and no Bitrix24 call is made for them; the reconcile, the sweep and the status schedules wait too.'
          : 'The drain was already paused.',
      };
    },
    async resumeDrain() {
      const change = drainSwitch();
      if (!change) return { ok: false, summary: 'The drain is not running yet.' };
      const report = await change.resume();
      return report
        ? { ok: report.landed, summary: `Resumed: ${resumeSummary(report)}.` }
        : { ok: true, summary: 'The drain was not paused.' };
    },
  };
}

/** The update API's answer to the page's edit form, as one line plus its status, editId and error. */
function editResult(status: number, text: string): ActionResult {
  let body: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
  } catch {
    // Not JSON: the status alone says what happened.
  }
  const pick = (key: string) => (typeof body[key] === 'string' ? (body[key] as string) : undefined);
  const editId = pick('editId');
  const error = pick('error');
  const description = pick('error_description');
  const outcome = error
    ? `${error}: ${description ?? ''}`
    : body.deferred === true
      ? `deferred (${pick('reason') ?? 'queued'})`
      : 'applied';
  return {
    ok: status < 300,
    summary: `HTTP ${status} ${outcome}${editId ? ` · editId ${editId}` : ''}`,
    status,
    ...(editId ? { editId } : {}),
    ...(error ? { error } : {}),
    ...(description ? { description } : {}),
  };
}

/**
 * Starts the whole system on 127.0.0.1: the Bitrix24 emulator (or a real portal), the SQS emulator
 * with the edits, failed-edits and portal work queues, a local Secrets Manager holding the portal's
 * secret, a local DynamoDB holding the ledger table, the API (update, webhook and fate routes) over
 * HTTP and, for Bitrix24's SDKs, over HTTPS (its certificate written to a file), the drain, the
 * reconcile of woken portals, the sweep, the status scheduler and the sandbox page. The production
 * handlers are imported from functions/ only after the environment points them at the local
 * endpoints.
 * On any failure, what already started is stopped before the error is thrown.
 */
export async function startLocalStack(
  config: LocalStackConfig,
  events: StackEvents = {},
  options: LocalStackOptions = {},
): Promise<LocalStack> {
  const cleanup = new AsyncDisposableStack();
  // Every port the stack uses: a port found taken is answered with one free now and none of these.
  const ports = [
    config.api,
    config.apiTls,
    config.sandbox,
    config.emulator,
    config.sqs,
    config.secretsManager,
    config.dynamodb,
  ];
  const on = <T>(setting: PortSetting, start: (port: number) => Promise<T>) => onPort(setting, start, ports);
  try {
    let emulator: Bitrix24Emulator | undefined;
    let demo: DemoPortal | undefined;
    if (!config.realPortal) {
      const started = await on(config.emulator, (port) => startBitrix24Emulator({ port }));
      cleanup.defer(() => started.close());
      emulator = started;
      demo = seedDemoPortal(started);
    }
    const secretName = `${config.secretPrefix}${config.portal}`;
    const secret = portalSecret(config, emulator && demo ? { url: emulator.url, demo } : undefined);
    const secretsManager = await on(config.secretsManager, (port) =>
      startSecretsManager({ port, secrets: { [secretName]: secret } }),
    );
    cleanup.defer(() => secretsManager.close());
    const sqs = await on(config.sqs, (port) => startLocalSqs({ port }));
    cleanup.defer(() => sqs.close());
    const queues = await createQueues(sqs.url, config.maxAttempts);
    const dynamodb = await on(config.dynamodb, (port) => startLocalDynamoDb({ port }));
    cleanup.defer(() => dynamodb.close());
    // Kept open: the sandbox page reads the ledger through it.
    const dynamoClient = new DynamoDBClient({ ...LOCAL_AWS, endpoint: dynamodb.url });
    cleanup.defer(() => dynamoClient.destroy());
    await createLedgerTable(dynamoClient, LEDGER_TABLE_NAME);

    setHandlerEnvironment(config, {
      sqs: sqs.url,
      secretsManager: secretsManager.url,
      dynamodb: dynamodb.url,
      ledgerTable: LEDGER_TABLE_NAME,
      ...queues,
    });
    // Imported now, not above: the handlers and lib/ read the environment when their modules load.
    const updateMessage = await import('../../functions/update-message.ts');
    const getMessage = await import('../../functions/get-message.ts');
    const webhook = await import('../../functions/webhook.ts');
    const drainEdits = await import('../../functions/drain-edits.ts');
    const reconcilePortals = await import('../../functions/reconcile-portals.ts');
    const refreshStatus = await import('../../functions/refresh-status.ts');
    const sweep = await import('../../functions/sweep.ts');
    const { Ledger } = await import('../../lib/ledger/messages.ts');
    const { getRuntime } = await import('../../lib/runtime.ts');
    const { logger } = await import('../../lib/observability/logger.ts');

    // Every edit, by the path it came in on, from what the handlers' ledger answers them.
    const tally = new EditTally();
    observeLedger(getRuntime().ledger(), tally);

    const activity = new ActivityLog();
    const api = await on(config.api, (port) =>
      startApiServer({
        port,
        functions: [
          {
            ...FUNCTIONS.updateMessage,
            handler: tally.handler('api', updateMessage.handler, apiRefusals) as unknown as HttpApiHandler,
          },
          {
            ...FUNCTIONS.webhook,
            handler: tally.handler('api', webhook.handler, apiRefusals) as unknown as HttpApiHandler,
          },
          { ...FUNCTIONS.getMessage, handler: getMessage.handler as unknown as HttpApiHandler },
        ],
        onActivity: (entry) => {
          activity.add(entry);
          events.onRequest?.(entry);
        },
      }),
    );
    cleanup.defer(() => api.close());
    const tls = await on(config.apiTls, (port) => startTlsProxy(api.url, { port }));
    cleanup.defer(() => tls.close());
    const certificateFile = tlsCertificateFile(tls.port);
    // A file left by a stack that was killed goes first; 'wx' then refuses to write through a link
    // someone else put at this path in a shared temp directory.
    await rm(certificateFile, { force: true });
    await writeFile(certificateFile, tls.ca, { flag: 'wx', mode: 0o644 });
    cleanup.defer(() => rm(certificateFile, { force: true }));
    const methodUrl = `${api.url}/rest/imbot.v2.Chat.Message.update`;
    const portalHost = new URL(config.realPortal?.url ?? emulator?.url ?? '').host;

    let drain: DrainRunner | undefined;
    let reconcile: DrainRunner | undefined;
    // Both runners' outcomes: the drain's edit records by fate, the reconcile's applied and calls.
    const drainTotals = emptyOutcomes();
    let scheduler: Scheduler | undefined;
    let drainSwitch: DrainSwitch | undefined;
    let schedules: StatusSchedule[] = [];
    const demoSource = emulator ? new DemoSource() : undefined;

    const invocations = () =>
      `${drain?.stats.invocations ?? 0} drain and ${reconcile?.stats.invocations ?? 0} reconcile invocations`;

    // The status messages of the stack's portal, by message: a schedule writes over other edits of them.
    const statusMessages = new Map<string, { name: string; everyMs: number }>();

    async function getState(): Promise<SandboxState> {
      const queue = await readQueueView(sqs.url, QUEUES).catch((error: unknown) => ({
        error: error instanceof Error ? error.message : String(error),
      }));
      const lastRuns = new Map((scheduler?.lastRuns() ?? []).map((run) => [run.schedule, run]));
      const chatId = demo?.chatId;
      const withSchedule = (m: ChatMessage): ChatMessage => {
        const schedule = statusMessages.get(`${m.botId}:${m.id}`);
        return schedule && !m.system ? { ...m, statusSchedule: schedule } : m;
      };
      return {
        generatedAt: new Date().toISOString(),
        portal: config.portal,
        portalHost,
        mode: emulator ? 'emulator' : 'real-portal',
        apiUrl: methodUrl,
        botId: config.realPortal?.botId ?? demo?.botId ?? 456,
        chat:
          emulator && chatId !== undefined
            ? {
                id: chatId,
                messages: emulator
                  .messages()
                  .filter((m) => m.chatId === chatId)
                  .map((m) => withSchedule(chatMessage(m))),
              }
            : undefined,
        queue,
        requests: activity.entries(),
        edits: tally.totals(),
        portals: tally.portals(),
        drain: drain
          ? {
              running: !drain.paused,
              note: drain.paused
                ? `Drain paused after ${invocations()}; the reconcile, the sweep and the status schedules wait too`
                : `Drain running: ${invocations()}; ` +
                  `sweep every ${Math.round(config.sweepIntervalMs / 1000)} s`,
              totals: { ...drainTotals },
              ...(drainSwitch ? { pause: drainSwitch.view() } : {}),
            }
          : { running: false, note: 'Drain not running', totals: { ...drainTotals } },
        schedules: schedules.map((s) => ({ ...s, lastRun: lastRuns.get(s.name) })),
      };
    }

    const botId = config.realPortal?.botId ?? demo?.botId ?? 456;
    // The fate route's timing, from the configuration the handlers read.
    const { messageMinIntervalMs, ambiguousSettleMs } = getRuntime().config;
    const sandbox = await on(config.sandbox, (port) =>
      startSandboxServer({
        port,
        getState,
        ledger: {
          ledger: new Ledger({ tableName: LEDGER_TABLE_NAME, client: dynamoClient }),
          timing: { messageMinIntervalMs, ambiguousSettleMs },
        },
        actions: sandboxActions(
          methodUrl,
          botId,
          emulator,
          () => scheduler,
          { url: sqs.url, queues },
          () => drainSwitch,
        ),
        ...(demoSource ? { demoSource } : {}),
      }),
    );
    cleanup.defer(() => sandbox.close());
    activity.onAdd((entry) => {
      if (entry.outcome === 'deferred') drainSwitch?.noteDeferredEdit();
      sandbox.notify();
    });

    const { metrics } = await import('../../lib/observability/metrics.ts');
    // The ingest stage: merges the edits queue's records into the ledger and wakes their portals.
    const startedDrain = startDrainRunner({
      sqsUrl: sqs.url,
      queueUrl: queues.edits,
      functionName: FUNCTIONS.drainEdits.name,
      createHandler: () => tally.handler('queue', drainEdits.createHandler(drainEdits.defaultDeps)),
      metrics,
      maxConcurrency: config.drainMaxConcurrency,
      batchSize: FUNCTIONS.drainEdits.batchSize,
      timeoutMs: FUNCTIONS.drainEdits.timeoutMs,
      paused: options.paused === true,
      onInvocation: (invocation) => {
        addOutcomes(drainTotals, invocation.outcomes);
        // The drain's failed records are the invalid ones: never recorded, moved to the failed-edits queue.
        tally.refused('queue', invocation.outcomes?.failed ?? 0);
        events.onDrainInvocation?.(invocation);
        sandbox.notify();
      },
      onError: (error) => events.onDrainError?.(error),
    });
    cleanup.defer(() => startedDrain.stop());
    drain = startedDrain;

    // The apply stage: reconciles each portal the portal work queue wakes, and leaves its next wake-up.
    const startedReconcile = startDrainRunner({
      sqsUrl: sqs.url,
      queueUrl: queues.portalWork,
      functionName: FUNCTIONS.reconcilePortals.name,
      createHandler: () => reconcilePortals.createHandler(reconcilePortals.defaultDeps),
      metrics,
      outcomeMetrics: RECONCILE_METRICS,
      maxConcurrency: config.drainMaxConcurrency,
      batchSize: FUNCTIONS.reconcilePortals.batchSize,
      timeoutMs: FUNCTIONS.reconcilePortals.timeoutMs,
      paused: options.paused === true,
      onInvocation: (invocation) => {
        addOutcomes(drainTotals, invocation.outcomes);
        events.onReconcileInvocation?.(invocation);
        sandbox.notify();
      },
      onError: (error) => events.onReconcileError?.(error),
    });
    cleanup.defer(() => startedReconcile.stop());
    reconcile = startedReconcile;

    if (config.statusSpecsFile) {
      schedules = await loadStatusSchedules(config.statusSpecsFile, {
        PORTAL: config.portal,
        SANDBOX_URL: sandbox.url,
        API_URL: api.url,
      });
      for (const schedule of schedules) {
        for (const { spec } of parseStatusInput(schedule.input, { allowHttp: true }).specs) {
          if (spec.portal !== config.portal) continue;
          statusMessages.set(`${spec.botId}:${spec.messageId}`, {
            name: schedule.name,
            everyMs: schedule.everyMs,
          });
        }
      }
      const startedScheduler = startScheduler({
        schedules,
        handler: tally.handler(
          'status',
          refreshStatus.handler as unknown as (event: unknown, context: Context) => Promise<unknown>,
          statusRefusals,
        ),
        functionName: FUNCTIONS.refreshStatus.name,
        timeoutMs: FUNCTIONS.refreshStatus.timeoutMs,
        paused: options.paused === true,
        onRun: (run) => {
          events.onStatusRun?.(run);
          sandbox.notify();
        },
      });
      cleanup.defer(() => startedScheduler.close());
      scheduler = startedScheduler;
    }

    // The deployed sweep runs every minute; here more often. The scheduler never runs it twice at once.
    // It only wakes overdue portals (the reconcile applies): `{ overdue, woken }`.
    const sweeper = startScheduler({
      schedules: [{ name: 'sweep', everyMs: config.sweepIntervalMs, input: SCHEDULED_EVENT, messageIds: [] }],
      handler: sweep.handler as unknown as (event: unknown, context: Context) => Promise<unknown>,
      functionName: FUNCTIONS.sweep.name,
      timeoutMs: FUNCTIONS.sweep.timeoutMs,
      paused: options.paused === true,
      onRun: (run) => {
        events.onSweep?.(run);
        if (sweepLine(run)) sandbox.notify();
      },
    });
    cleanup.defer(() => sweeper.close());

    let switchPosition = `${options.paused === true} false`;
    drainSwitch = new DrainSwitch({
      drain: startedDrain,
      reconcile: startedReconcile,
      sweep: sweeper,
      schedules: () => scheduler,
      // Against a real portal, the calls the reconcile says it made (the emulator records its own).
      calls: emulator
        ? () => emulator.calls.filter((call) => !call.viaBatch).length
        : () => drainTotals.calls,
      queued: async () => {
        const view = await readQueueView(sqs.url, QUEUES);
        const { ready, delayed, inFlight } = view.wakeups;
        return { edits: view.waiting + view.inFlight, wakeups: ready + delayed + inFlight };
      },
      paused: options.paused === true,
      onChange: (view) => {
        // Told on a switch only, not on every edit counted while paused.
        const position = `${view.paused} ${view.resuming}`;
        if (position !== switchPosition) events.onDrainSwitch?.(view);
        switchPosition = position;
        sandbox.notify();
      },
    });

    const stack = cleanup.move();
    return {
      info: {
        mode: emulator ? 'emulator' : 'real-portal',
        portal: config.portal,
        portalHost,
        secretName,
        apiUrl: api.url,
        apiTlsUrl: tls.url,
        certificateFile,
        methodUrl,
        sandboxUrl: sandbox.url,
        emulatorUrl: emulator?.url,
        sqsUrl: sqs.url,
        secretsManagerUrl: secretsManager.url,
        queues,
        dynamodbUrl: dynamodb.url,
        ledgerTable: LEDGER_TABLE_NAME,
        drain: {
          concurrency: config.drainMaxConcurrency,
          batchSize: FUNCTIONS.drainEdits.batchSize,
          paused: options.paused === true,
        },
        reconcile: {
          concurrency: config.drainMaxConcurrency,
          batchSize: FUNCTIONS.reconcilePortals.batchSize,
        },
        sweep: { everyMs: config.sweepIntervalMs },
        schedules,
        statusSpecsFile: config.statusSpecsFile,
        demo: demo ? { botId: demo.botId, chatId: demo.chatId, messageIds: demo.botMessageIds } : undefined,
        // What the handlers' logger does, not what was asked of it (the banner says this one).
        handlerLogLevel: logger.getLevelName(),
      },
      close: () => stack.disposeAsync(),
    };
  } catch (error) {
    await cleanup.disposeAsync();
    throw error;
  }
}
