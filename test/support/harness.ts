import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { type Clock, systemClock } from '../../lib/clock.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { PortalGateway } from '../../lib/portal/gateway.ts';
import type { ReconcileOptions } from '../../lib/reconcile/options.ts';
import { Reconciler, type ReconcilerDeps } from '../../lib/reconcile/reconcile.ts';
import type { ReconcileReport } from '../../lib/reconcile/run.ts';
import { emptyStats } from '../../lib/reconcile/send.ts';
import { createSecretStore, type SecretStore } from '../../lib/secrets/index.ts';
import {
  type Bitrix24Emulator,
  type EmulatorOptions,
  startBitrix24Emulator,
} from '../../local/bitrix24-emulator/index.ts';
import { createLedgerTable, startLocalDynamoDb } from '../../local/dynamodb.ts';
import { type LocalSecretsManager, startSecretsManager } from '../../local/secrets-manager.ts';
import { startLocalSqs } from '../../local/sqs.ts';
import { WakeupLog } from './wakeups.ts';

/**
 * Every secret value used by tests contains this marker, so that the output watcher
 * (test/support/watch-output.ts) can prove none of them ever reaches a log line.
 */
export const SECRET_MARKER = 's3cr3t';
export const WEBHOOK = { userId: 7, code: `whk_${SECRET_MARKER}_code_7` } as const;
export const BOT = { id: 456, token: `bot_${SECRET_MARKER}_456` } as const;
export const OAUTH_APP = { clientId: 'app.local.1', clientSecret: `cli_${SECRET_MARKER}_secret` } as const;
export const PREFIX = 'b24/portals/';
export const AWS = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
} as const;

export interface Harness {
  emulator: Bitrix24Emulator;
  secretsManager: LocalSecretsManager;
  sqs: SQSClient;
  secretsClient: SecretsManagerClient;
  editsQueueUrl: string;
  failedQueueUrl: string;
  sqsEndpoint: string;
  /** A store and gateway wired to the local Secrets Manager and the emulator (plain HTTP allowed). */
  store: SecretStore;
  gateway: PortalGateway;
  /** A local DynamoDB (dynalite) on loopback holding the ledger table `ledgerTable`. */
  dynamoEndpoint: string;
  dynamo: DynamoDBClient;
  ledgerTable: string;
  /** The one clock of the emulator, the gateway, and the ledgers and reconcilers made here. */
  clock: Clock;
  /** The portal work queue (standard) on the SQS emulator, for tests of the SQS path. */
  portalQueueUrl: string;
  /** Wake-ups the reconcilers made here sent, kept in memory (the tests run the reconciles). */
  wakeups: WakeupLog;
  close(): Promise<void>;
}

export function webhookSecret(emulatorUrl: string, overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    portalUrl: emulatorUrl,
    auth: { type: 'webhook', userId: WEBHOOK.userId, code: WEBHOOK.code },
    bots: { [BOT.id]: { botToken: BOT.token } },
    plan: 'standard',
    ...overrides,
  });
}

export function oauthSecret(
  emulatorUrl: string,
  oauthUrl: string,
  tokens: { accessToken: string; refreshToken: string; expiresAt: number },
): string {
  return JSON.stringify({
    portalUrl: emulatorUrl,
    auth: {
      type: 'oauth',
      clientId: OAUTH_APP.clientId,
      clientSecret: OAUTH_APP.clientSecret,
      oauthUrl,
      ...tokens,
    },
    bots: { [BOT.id]: {} },
    plan: 'standard',
  });
}

/**
 * The emulator (portal `acme`, webhook auth, bot 456 owning message 789), the local Secrets Manager
 * holding acme's secret, and an SQS emulator with the FIFO edits and failed-edits queues.
 */
export async function startHarness(
  options: {
    emulator?: EmulatorOptions;
    timeoutMs?: number;
    /** Default the system clock; a VirtualClock makes pacing, budgets and windows independent of load. */
    clock?: Clock;
  } = {},
): Promise<Harness> {
  const clock = options.clock ?? systemClock;
  const emulator = await startBitrix24Emulator({ limits: null, now: () => clock.now(), ...options.emulator });
  emulator.addWebhook(WEBHOOK);
  emulator.registerBot({ id: BOT.id, botToken: BOT.token, owner: { webhookUserId: WEBHOOK.userId } });
  emulator.addMessage({ id: 789, botId: BOT.id, chatId: 12, text: 'Build #41: running' });
  const secretsManager = await startSecretsManager({
    secrets: { [`${PREFIX}acme`]: webhookSecret(emulator.url) },
  });
  const localSqs = await startLocalSqs();
  const sqs = new SQSClient({ ...AWS, endpoint: localSqs.url });
  const failed = await sqs.send(
    new CreateQueueCommand({ QueueName: 'failed-edits.fifo', Attributes: { FifoQueue: 'true' } }),
  );
  const edits = await sqs.send(
    new CreateQueueCommand({
      QueueName: 'edits.fifo',
      Attributes: { FifoQueue: 'true', VisibilityTimeout: '30' },
    }),
  );
  const portalQueue = await sqs.send(
    new CreateQueueCommand({ QueueName: 'portal-work', Attributes: { VisibilityTimeout: '30' } }),
  );
  const secretsClient = new SecretsManagerClient({ ...AWS, endpoint: secretsManager.url });
  const localDynamo = await startLocalDynamoDb();
  const dynamo = new DynamoDBClient({ ...AWS, endpoint: localDynamo.url });
  const ledgerTable = 'ledger-test';
  await createLedgerTable(dynamo, ledgerTable);
  const store = createSecretStore({ client: secretsClient, prefix: PREFIX, ttlSeconds: 300 });
  const gateway = new PortalGateway({
    store,
    timeoutMs: options.timeoutMs ?? 2_000,
    allowHttp: true,
    clock,
  });
  return {
    emulator,
    secretsManager,
    sqs,
    secretsClient,
    editsQueueUrl: edits.QueueUrl as string,
    failedQueueUrl: failed.QueueUrl as string,
    sqsEndpoint: localSqs.url,
    store,
    gateway,
    dynamoEndpoint: localDynamo.url,
    dynamo,
    ledgerTable,
    clock,
    portalQueueUrl: portalQueue.QueueUrl as string,
    wakeups: new WakeupLog(),
    async close() {
      sqs.destroy();
      secretsClient.destroy();
      dynamo.destroy();
      await Promise.all([emulator.close(), secretsManager.close(), localSqs.close(), localDynamo.close()]);
    },
  };
}

/** A ledger on a table of its own, so that one test's dirty messages never fill another's calls. */
export async function freshLedger(h: Pick<Harness, 'dynamo'> & { clock?: Clock }): Promise<Ledger> {
  const tableName = `ledger-${randomUUID()}`;
  await createLedgerTable(h.dynamo, tableName);
  const clock = h.clock ?? systemClock;
  return new Ledger({ tableName, client: h.dynamo, now: () => clock.now() });
}

/**
 * A reconciler on the harness, standing for one container: no linger, no cadence, a short settle
 * window, no index lag and a fixed jitter, unless `options` says otherwise.
 */
export function testReconciler(
  h: Pick<Harness, 'gateway' | 'sqs' | 'failedQueueUrl' | 'wakeups'> & { clock?: Clock },
  ledger: Ledger,
  options: Partial<ReconcileOptions> = {},
  deps: Partial<Omit<ReconcilerDeps, 'ledger' | 'options'>> = {},
): Reconciler {
  return new Reconciler({
    ledger,
    gateway: h.gateway,
    sqs: h.sqs,
    wakeups: h.wakeups,
    random: () => 0.5,
    ...(h.clock ? { clock: h.clock } : {}),
    ...deps,
    options: {
      failedEditsQueueUrl: h.failedQueueUrl,
      callTimeoutMs: 3_000,
      deadlineMarginMs: 100,
      batchLingerMs: 0,
      messageMinIntervalMs: 0,
      ambiguousSettleMs: 1_000,
      // dynalite's indexes have no lag.
      indexLagMs: 0,
      ...options,
    },
  });
}

/**
 * What the portal work queue's consumer does, for the wake-ups sent so far: reconciles each portal
 * whose wake-up is due by the reconciler's clock, again for the wake-ups those runs leave that are
 * due too, until none is (bounded). Resolves with every run's report.
 */
export async function runDueWakeups(
  h: Pick<Harness, 'wakeups'> & { clock?: Clock },
  reconciler: Reconciler,
  remainingMs = 30_000,
  stats = emptyStats(),
): Promise<ReconcileReport[]> {
  const clock = h.clock ?? systemClock;
  const reports: ReconcileReport[] = [];
  for (let round = 0; round < 50; round += 1) {
    const portals = h.wakeups.takeDue(clock.now());
    if (portals.length === 0) break;
    reports.push(
      ...(await Promise.all(
        portals.map((portal) =>
          reconciler.reconcilePortal(portal, {
            hints: [],
            mode: 'fill',
            remainingMs: () => remainingMs,
            stats,
          }),
        ),
      )),
    );
  }
  return reports;
}
