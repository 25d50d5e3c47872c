import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import {
  type Bitrix24Emulator,
  type EmulatedMessage,
  seedDemoPortal,
  startBitrix24Emulator,
} from '../bitrix24-emulator/index.ts';
import { type Poller, startPoller } from '../poller.ts';
import { startSecretsManager } from '../secrets-manager.ts';
import { startLocalSqs } from '../sqs.ts';
import { ActivityLog, type ApiActivity } from './activity.ts';
import { type HttpApiHandler, startApiServer } from './api-server.ts';
import type { LocalStackConfig } from './config.ts';
import { onPort } from './ports.ts';
import { readQueueView } from './queue-view.ts';
import { DemoSource, startSandboxServer } from './sandbox/server.ts';
import type { ChatMessage, SandboxState } from './sandbox/state.ts';
import { type ScheduledRun, type Scheduler, startScheduler } from './scheduler.ts';
import { loadStatusSchedules, type StatusSchedule } from './status-schedules.ts';

/** Names and timeouts as deployed (serverless.yml, infra/queues.yml). */
export const QUEUES = { edits: 'edits.fifo', failedEdits: 'failed-edits.fifo' } as const;
const FUNCTIONS = {
  updateMessage: {
    name: 'updateMessage',
    timeoutMs: 15_000,
    routes: ['POST /rest/imbot.v2.Chat.Message.update', 'POST /rest/imbot.v2.Chat.Message.update.json'],
  },
  drainEdits: { name: 'drainEdits', timeoutMs: 60_000, batchSize: 10 },
  refreshStatus: { name: 'refreshStatus', timeoutMs: 60_000 },
} as const;
const EDITS_VISIBILITY_TIMEOUT_SECONDS = 360;
// The poller finishes invocations in progress on stop; a stuck one must not hold Ctrl-C hostage.
const DRAIN_STOP_WAIT_MS = 3_000;
const LOCAL_AWS = { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };

/** Where everything runs, for the banner and the tests. */
export interface LocalStackInfo {
  mode: 'emulator' | 'real-portal';
  portal: string;
  portalHost: string;
  secretName: string;
  apiUrl: string;
  /** The method URL of the README's curl. */
  methodUrl: string;
  sandboxUrl: string;
  emulatorUrl: string | undefined;
  sqsUrl: string;
  secretsManagerUrl: string;
  queues: { edits: string; failedEdits: string };
  drain: { concurrency: number; batchSize: number };
  schedules: readonly StatusSchedule[];
  statusSpecsFile: string | undefined;
  demo: { botId: number; chatId: number; messageIds: number[] } | undefined;
}

export interface LocalStack {
  readonly info: LocalStackInfo;
  close(): Promise<void>;
}

export interface StackEvents {
  onRequest?(activity: ApiActivity): void;
  onStatusRun?(run: ScheduledRun): void;
  onDrainInvocation?(summary: { records: number; leftInQueue: number; error?: string }): void;
  onDrainError?(error: unknown): void;
}

/** The environment the production handlers read (lib/config.ts and the AWS SDK's defaults). */
function handlerEnvironment(
  config: LocalStackConfig,
  urls: { sqs: string; secretsManager: string; edits: string; failedEdits: string },
): Record<string, string> {
  return {
    AWS_REGION: LOCAL_AWS.region,
    AWS_ACCESS_KEY_ID: LOCAL_AWS.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_AWS.credentials.secretAccessKey,
    AWS_ENDPOINT_URL_SQS: urls.sqs,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: urls.secretsManager,
    EDITS_QUEUE_URL: urls.edits,
    FAILED_EDITS_QUEUE_URL: urls.failedEdits,
    DEFAULT_PORTAL: config.portal,
    SECRET_PREFIX: config.secretPrefix,
    MAX_ATTEMPTS: String(config.maxAttempts),
    DRAIN_MAX_CONCURRENCY: String(config.drainMaxConcurrency),
    // Plain-HTTP portal (the emulator) and status sources (the sandbox's demo source) are local only.
    B24_ALLOW_HTTP: 'true',
    POWERTOOLS_LOG_LEVEL: config.handlerLogLevel,
    POWERTOOLS_METRICS_DISABLED: config.metricsDisabled,
  };
}

function setEnvironment(values: Record<string, string>): void {
  // A developer's own AWS session must not leak into, or be used by, the local stack.
  for (const name of ['AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE']) delete process.env[name];
  Object.assign(process.env, values);
}

function portalSecret(config: LocalStackConfig, emulator: Bitrix24Emulator | undefined): string {
  const real = config.realPortal;
  if (real) {
    return JSON.stringify({
      portalUrl: real.url,
      auth: { type: 'webhook', userId: real.webhookUserId, code: real.webhookCode },
      bots: { [real.botId]: { botToken: real.botToken } },
      plan: real.plan,
    });
  }
  return JSON.stringify({
    portalUrl: emulator?.url,
    auth: { type: 'webhook', userId: DEMO.webhookUserId, code: DEMO.webhookCode },
    bots: { [DEMO.botId]: { botToken: DEMO.botToken } },
    plan: 'standard',
  });
}

// seedDemoPortal's values (local/bitrix24-emulator/demo.ts): the documentation's example ids.
const DEMO = { webhookUserId: 1, webhookCode: 'demo_webhook_code', botId: 456, botToken: 'my_bot_token' };

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
  };
}

async function createQueues(
  sqsUrl: string,
  maxAttempts: number,
): Promise<{ edits: string; failedEdits: string }> {
  const client = new SQSClient({ ...LOCAL_AWS, endpoint: sqsUrl });
  try {
    const failed = await client.send(
      new CreateQueueCommand({
        QueueName: QUEUES.failedEdits,
        Attributes: { FifoQueue: 'true', MessageRetentionPeriod: '1209600' },
      }),
    );
    const failedArn = `arn:aws:sqs:${LOCAL_AWS.region}:000000000000:${QUEUES.failedEdits}`;
    const edits = await client.send(
      new CreateQueueCommand({
        QueueName: QUEUES.edits,
        Attributes: {
          FifoQueue: 'true',
          VisibilityTimeout: String(EDITS_VISIBILITY_TIMEOUT_SECONDS),
          MessageRetentionPeriod: '345600',
          // As deployed: the drain moves an edit out after MAX_ATTEMPTS; the redrive catches crashes.
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: failedArn, maxReceiveCount: maxAttempts + 2 }),
        },
      }),
    );
    // fauxqs names its queues http://sqs.<region>.localhost:<port>/..., a host that does not resolve
    // everywhere; it finds a queue by its path whatever the host, so the URLs point at 127.0.0.1.
    const local = (queueUrl: string | undefined) => `${sqsUrl}${new URL(queueUrl ?? '').pathname}`;
    return { edits: local(edits.QueueUrl), failedEdits: local(failed.QueueUrl) };
  } finally {
    client.destroy();
  }
}

/**
 * Starts the whole system on 127.0.0.1: the Bitrix24 emulator (or a real portal), the SQS emulator
 * with both queues, a local Secrets Manager holding the portal's secret, the update API, the drain
 * poller, the status scheduler and the sandbox page. The production handlers are imported from
 * functions/ only after the environment points them at the local endpoints.
 * On any failure, what already started is stopped before the error is thrown.
 */
export async function startLocalStack(
  config: LocalStackConfig,
  events: StackEvents = {},
): Promise<LocalStack> {
  const cleanup = new AsyncDisposableStack();
  try {
    let emulator: Bitrix24Emulator | undefined;
    let demo: ReturnType<typeof seedDemoPortal> | undefined;
    if (!config.realPortal) {
      const started = await onPort(config.emulator, (port) => startBitrix24Emulator({ port }));
      emulator = started;
      cleanup.defer(() => started.close());
      demo = seedDemoPortal(started);
    }
    const secretName = `${config.secretPrefix}${config.portal}`;
    const secretsManager = await onPort(config.secretsManager, (port) =>
      startSecretsManager({ port, secrets: { [secretName]: portalSecret(config, emulator) } }),
    );
    cleanup.defer(() => secretsManager.close());
    const sqs = await onPort(config.sqs, (port) => startLocalSqs({ port }));
    cleanup.defer(() => sqs.close());
    const queueUrls = await createQueues(sqs.url, config.maxAttempts);

    setEnvironment(
      handlerEnvironment(config, { sqs: sqs.url, secretsManager: secretsManager.url, ...queueUrls }),
    );
    // Imported now, not above: the handlers read the environment when their modules load.
    const updateMessage = await import('../../functions/update-message.ts');
    const drainEdits = await import('../../functions/drain-edits.ts');
    const refreshStatus = await import('../../functions/refresh-status.ts');

    const activity = new ActivityLog();
    const api = await onPort(config.api, (port) =>
      startApiServer({
        port,
        handler: updateMessage.handler as unknown as HttpApiHandler,
        functionName: FUNCTIONS.updateMessage.name,
        timeoutMs: FUNCTIONS.updateMessage.timeoutMs,
        routes: FUNCTIONS.updateMessage.routes,
        onActivity: (entry) => {
          activity.add(entry);
          events.onRequest?.(entry);
        },
      }),
    );
    cleanup.defer(() => api.close());
    const methodUrl = `${api.url}/rest/imbot.v2.Chat.Message.update`;
    const botId = config.realPortal?.botId ?? DEMO.botId;

    let scheduler: Scheduler | undefined;
    let schedules: StatusSchedule[] = [];
    let poller: Poller | undefined;
    const demoSource = emulator ? new DemoSource() : undefined;
    const portalHost = config.realPortal
      ? new URL(config.realPortal.url).host
      : new URL(emulator?.url ?? '').host;

    async function getState(): Promise<SandboxState> {
      const queue = await readQueueView(sqs.url, QUEUES).catch((error: unknown) => ({
        error: error instanceof Error ? error.message : String(error),
      }));
      const lastRuns = new Map((scheduler?.lastRuns() ?? []).map((run) => [run.schedule, run]));
      return {
        generatedAt: new Date().toISOString(),
        portal: config.portal,
        portalHost,
        mode: emulator ? 'emulator' : 'real-portal',
        apiUrl: methodUrl,
        chat:
          emulator && demo
            ? {
                id: demo.chatId,
                messages: emulator
                  .messages()
                  .filter((m) => m.chatId === demo?.chatId)
                  .map(chatMessage),
              }
            : undefined,
        queue,
        requests: activity.entries(),
        drain: poller
          ? {
              running: true,
              note: `Drain running: ${poller.stats.invocations} invocations, ${poller.stats.deleted} edits settled`,
            }
          : { running: false, note: 'Drain not running' },
        schedules: schedules.map((s) => ({ ...s, lastRun: lastRuns.get(s.name) })),
      };
    }

    const sandbox = await onPort(config.sandbox, (port) =>
      startSandboxServer({
        port,
        getState,
        ...(demoSource ? { demoSource } : {}),
        actions: {
          async sendEdit(edit) {
            await fetch(methodUrl, {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                ...(edit.async ? { prefer: 'respond-async' } : {}),
              },
              body: JSON.stringify({ botId, messageId: edit.messageId, fields: { message: edit.text } }),
            });
          },
          ...(emulator
            ? {
                simulateBusy: async () => emulator.inject({ kind: 'query-limit' }, 1),
              }
            : {}),
          refreshStatus: async () => scheduler?.runNow(),
        },
      }),
    );
    cleanup.defer(() => sandbox.close());
    activity.onAdd(() => sandbox.notify());

    const drainClient = new SQSClient({ ...LOCAL_AWS, endpoint: sqs.url });
    cleanup.defer(() => drainClient.destroy());
    const startedPoller = startPoller({
      client: drainClient,
      queueUrl: queueUrls.edits,
      // One handler per slot, like separate Lambda containers of the event source mapping.
      handlerFor: () => {
        const handler = drainEdits.createHandler(drainEdits.defaultDeps);
        return async (event: SQSEvent, context: Context) => {
          try {
            const result: SQSBatchResponse | undefined = await handler(event, context);
            const left = result?.batchItemFailures?.length ?? 0;
            events.onDrainInvocation?.({ records: event.Records.length, leftInQueue: left });
            return result;
          } catch (error) {
            const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
            events.onDrainInvocation?.({
              records: event.Records.length,
              leftInQueue: event.Records.length,
              error: message,
            });
            throw error;
          } finally {
            sandbox.notify();
          }
        };
      },
      maxConcurrency: config.drainMaxConcurrency,
      batchSize: FUNCTIONS.drainEdits.batchSize,
      timeoutMs: FUNCTIONS.drainEdits.timeoutMs,
      onError: (error) => events.onDrainError?.(error),
    });
    poller = startedPoller;
    cleanup.defer(async () => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        startedPoller.stop(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, DRAIN_STOP_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    });

    if (config.statusSpecsFile) {
      schedules = await loadStatusSchedules(config.statusSpecsFile, {
        PORTAL: config.portal,
        SANDBOX_URL: sandbox.url,
        API_URL: api.url,
      });
      const startedScheduler = startScheduler({
        schedules,
        handler: refreshStatus.handler as unknown as (event: unknown, context: Context) => Promise<unknown>,
        functionName: FUNCTIONS.refreshStatus.name,
        timeoutMs: FUNCTIONS.refreshStatus.timeoutMs,
        onRun: (run) => {
          events.onStatusRun?.(run);
          sandbox.notify();
        },
      });
      scheduler = startedScheduler;
      cleanup.defer(() => startedScheduler.close());
    }

    const stack = cleanup.move();
    return {
      info: {
        mode: emulator ? 'emulator' : 'real-portal',
        portal: config.portal,
        portalHost,
        secretName,
        apiUrl: api.url,
        methodUrl,
        sandboxUrl: sandbox.url,
        emulatorUrl: emulator?.url,
        sqsUrl: sqs.url,
        secretsManagerUrl: secretsManager.url,
        queues: queueUrls,
        drain: { concurrency: config.drainMaxConcurrency, batchSize: FUNCTIONS.drainEdits.batchSize },
        schedules,
        statusSpecsFile: config.statusSpecsFile,
        demo: demo ? { botId: demo.botId, chatId: demo.chatId, messageIds: demo.botMessageIds } : undefined,
      },
      close: () => stack.disposeAsync(),
    };
  } catch (error) {
    await cleanup.disposeAsync();
    throw error;
  }
}
