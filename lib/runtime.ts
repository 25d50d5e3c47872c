import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AWS_CLIENT_LIMITS } from './aws.ts';
import { type Config, getConfig } from './config.ts';
import { sqsClient } from './edits/queue.ts';
import { ConfigError } from './errors.ts';
import { Ledger } from './ledger/messages.ts';
import { PortalGateway } from './portal/gateway.ts';
import type { ReconcileOptions } from './reconcile/options.ts';
import { Reconciler } from './reconcile/reconcile.ts';
import { sqsWakeups, type WakeupSender } from './schedule/portal-queue.ts';
import { createSecretStore, type SecretStore } from './secrets/index.ts';

export interface Runtime {
  config: Config;
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
  const ledgerOf = (): Ledger => {
    if (!config.stateTableName) {
      throw new ConfigError(
        'STATE_TABLE_NAME',
        'Expected STATE_TABLE_NAME to name the ledger table: every edit is recorded there first',
      );
    }
    ledger ??= new Ledger({ tableName: config.stateTableName });
    return ledger;
  };
  const gateway = new PortalGateway({
    store,
    timeoutMs: config.b24TimeoutMs,
    allowHttp: config.b24AllowHttp,
    // One OAuth refresh per expiry for the fleet, on the ledger's portal item.
    refreshLock: () => (config.stateTableName ? ledgerOf().portals : undefined),
    // One secret per Bitrix24 portal, fleet-wide, on the ledger's host claims.
    hostClaims: () => (config.stateTableName ? ledgerOf().hosts : undefined),
  });
  const wakeups = sqsWakeups({ client: sqsClient(), queueUrl: config.portalQueueUrl, now: Date.now });
  const reconcileOptions = reconcileOptionsOf(config);
  let reconciler: Reconciler | undefined;
  runtime = {
    config,
    store,
    gateway,
    ledger: ledgerOf,
    reconcileOptions,
    wakeups,
    reconciler: () => {
      reconciler ??= new Reconciler({
        ledger: ledgerOf(),
        gateway,
        sqs: sqsClient(),
        wakeups,
        options: reconcileOptions,
      });
      return reconciler;
    },
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
