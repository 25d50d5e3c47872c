import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { UpdateMessageDeps } from './api/update-message.ts';
import { AWS_CLIENT_LIMITS, observeServerTime } from './aws.ts';
import { StoreClock } from './clock.ts';
import { type Config, getConfig } from './config.ts';
import { sqsClient } from './edits/queue.ts';
import { ConfigError } from './errors.ts';
import { IdempotencyKeys } from './ledger/idempotency.ts';
import { Ledger } from './ledger/messages.ts';
import { PortalGateway } from './portal/gateway.ts';
import type { ReconcileOptions } from './reconcile/options.ts';
import { Reconciler } from './reconcile/reconcile.ts';
import { sqsWakeups, type WakeupSender } from './schedule/portal-queue.ts';
import { createSecretStore, type SecretStore } from './secrets/index.ts';

export interface Runtime {
  config: Config;
  /**
   * This container's clock, corrected to the ledger's (DynamoDB's answers): every acceptance stamp,
   * lease, settle window and due time is read from it, so one container's clock running off does
   * not decide for the others.
   */
  clock: StoreClock;
  store: SecretStore;
  gateway: PortalGateway;
  /** The message ledger (STATE_TABLE_NAME); throws ConfigError when the table is not configured. */
  ledger: () => Ledger;
  /** Reconcile options from the configuration. */
  reconcileOptions: ReconcileOptions;
  /** The portal work queue (PORTAL_QUEUE_URL). */
  wakeups: WakeupSender;
  /** This container's reconciler on the ledger (made on first use). */
  reconciler: () => Reconciler;
  /** What both update routes record and apply edits with (made on each call; cheap). */
  editDeps: () => UpdateMessageDeps;
}

let runtime: Runtime | undefined;

/** What every handler shares in one container, built once from the environment at cold start. */
export function getRuntime(): Runtime {
  if (runtime) return runtime;
  const config = getConfig();
  const store = createSecretStore({
    client: new SecretsManagerClient(AWS_CLIENT_LIMITS),
    prefix: config.secretPrefix,
    ttlSeconds: config.secretCacheTtlSeconds,
  });
  let ledger: Ledger | undefined;
  const clock: StoreClock = new StoreClock(undefined, () =>
    ledgerOf().table.get('clock', 'read the store’s time'),
  );
  const ledgerOf = (): Ledger => {
    if (!config.stateTableName) {
      throw new ConfigError(
        'STATE_TABLE_NAME',
        'Expected STATE_TABLE_NAME to name the ledger table: every edit is recorded there first',
      );
    }
    if (!ledger) {
      const client = new DynamoDBClient(AWS_CLIENT_LIMITS);
      observeServerTime(client, clock);
      ledger = new Ledger({ tableName: config.stateTableName, client, now: clock.now });
    }
    return ledger;
  };
  const gateway = new PortalGateway({
    store,
    clock,
    timeoutMs: config.b24TimeoutMs,
    allowHttp: config.b24AllowHttp,
    // One OAuth refresh per expiry for the fleet, on the ledger's portal item.
    refreshLock: () => (config.stateTableName ? ledgerOf().portals : undefined),
    // One secret per Bitrix24 portal, fleet-wide, on the ledger's host claims.
    hostClaims: () => (config.stateTableName ? ledgerOf().hosts : undefined),
  });
  const wakeups = sqsWakeups({ client: sqsClient(), queueUrl: config.portalQueueUrl, now: clock.now });
  const reconcileOptions = reconcileOptionsOf(config);
  let reconciler: Reconciler | undefined;
  const reconcilerOf = (): Reconciler => {
    reconciler ??= new Reconciler({
      ledger: ledgerOf(),
      gateway,
      sqs: sqsClient(),
      wakeups,
      clock,
      options: reconcileOptions,
    });
    return reconciler;
  };
  runtime = {
    config,
    clock,
    store,
    gateway,
    ledger: ledgerOf,
    reconcileOptions,
    wakeups,
    reconciler: reconcilerOf,
    editDeps: () => ({
      config,
      now: () => new Date(clock.now()),
      calibrate: () => clock.calibrate(),
      gateway,
      reconciler: reconcilerOf(),
      idempotency: new IdempotencyKeys({ tableName: ledgerOf().tableName }),
    }),
  };
  return runtime;
}

/** The reconcile settings the environment sets. */
export function reconcileOptionsOf(config: Config): ReconcileOptions {
  return {
    failedEditsQueueUrl: config.failedEditsQueueUrl,
    maxAttempts: config.maxAttempts,
    apiRateShare: config.apiRateShare,
    callTimeoutMs: config.b24TimeoutMs,
    deadlineMarginMs: config.deadlineMarginMs,
    batchLingerMs: config.batchLingerMs,
    batchMaxWaitMs: config.batchMaxWaitMs,
    messageMinIntervalMs: config.messageMinIntervalMs,
    ambiguousSettleMs: config.ambiguousSettleMs,
    operatingLimitSeconds: config.operatingLimitSeconds,
    operatingThresholdPercent: config.operatingThresholdPercent,
    operatingBasketMs: config.operatingBasketMs,
    indexLagMs: config.indexLagMs,
  };
}
