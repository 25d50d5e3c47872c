import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { DemoPortal } from '../bitrix24-emulator/index.ts';
import type { LocalStackConfig } from './config.ts';

/** Credentials and region of every local AWS client: nothing here ever reaches AWS. */
export const LOCAL_AWS = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
} as const;

/** The queues as deployed (infra/queues.yml), without the stage prefix. */
export const QUEUES = {
  edits: 'edits.fifo',
  failedEdits: 'failed-edits.fifo',
  portalWork: 'portal-work',
} as const;
const EDITS_VISIBILITY_TIMEOUT_SECONDS = 360;
/** As deployed: six times the reconcile function's 60 s timeout, as for the edits queue. */
const PORTAL_WORK_VISIBILITY_TIMEOUT_SECONDS = 360;
/** The ledger table (infra/ledger.yml), without the stage prefix. */
export const LEDGER_TABLE_NAME = 'ledger';

export interface QueueUrls {
  edits: string;
  failedEdits: string;
  /** The portal work queue (standard): each portal's next wake-up, delivered at its time. */
  portalWork: string;
}

/**
 * Creates the edits queue and its dead-letter queue, and the portal work queue (a standard queue:
 * its wake-ups carry their own DelaySeconds), with the deployed attributes.
 */
export async function createQueues(sqsUrl: string, maxAttempts: number): Promise<QueueUrls> {
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
    const portalWork = await client.send(
      new CreateQueueCommand({
        QueueName: QUEUES.portalWork,
        Attributes: {
          VisibilityTimeout: String(PORTAL_WORK_VISIBILITY_TIMEOUT_SECONDS),
          MessageRetentionPeriod: '345600',
        },
      }),
    );
    // fauxqs names its queues http://sqs.<region>.localhost:<port>/..., a host that does not resolve
    // everywhere; it finds a queue by its path whatever the host, so the URLs point at 127.0.0.1.
    const local = (queueUrl: string | undefined) => `${sqsUrl}${new URL(queueUrl ?? '').pathname}`;
    return {
      edits: local(edits.QueueUrl),
      failedEdits: local(failed.QueueUrl),
      portalWork: local(portalWork.QueueUrl),
    };
  } finally {
    client.destroy();
  }
}

/** The portal's secret in the documented format: the real portal's, or the emulator's demo portal. */
export function portalSecret(
  config: LocalStackConfig,
  emulator: { url: string; demo: DemoPortal } | undefined,
): string {
  const real = config.realPortal;
  if (real) {
    return JSON.stringify({
      portalUrl: real.url,
      auth: { type: 'webhook', userId: real.webhookUserId, code: real.webhookCode },
      bots: { [real.botId]: { botToken: real.botToken } },
      plan: real.plan,
    });
  }
  if (!emulator) throw new Error('Expected the emulator or a real portal');
  return JSON.stringify({
    portalUrl: emulator.url,
    auth: { type: 'webhook', userId: emulator.demo.webhook.userId, code: emulator.demo.webhook.code },
    bots: { [emulator.demo.botId]: { botToken: emulator.demo.botToken } },
    plan: 'standard',
  });
}

/**
 * Points the production handlers at the local endpoints: the variables lib/config.ts reads and the
 * AWS SDK's own. Must run before functions/ are imported, since they read them when they load.
 */
export function setHandlerEnvironment(
  config: LocalStackConfig,
  urls: QueueUrls & { sqs: string; secretsManager: string; dynamodb: string; ledgerTable: string },
): void {
  // A developer's own AWS session must not leak into, or be used by, the local stack.
  for (const name of ['AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE']) delete process.env[name];
  Object.assign(process.env, {
    AWS_REGION: LOCAL_AWS.region,
    AWS_ACCESS_KEY_ID: LOCAL_AWS.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_AWS.credentials.secretAccessKey,
    AWS_ENDPOINT_URL_SQS: urls.sqs,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: urls.secretsManager,
    AWS_ENDPOINT_URL_DYNAMODB: urls.dynamodb,
    STATE_TABLE_NAME: urls.ledgerTable,
    EDITS_QUEUE_URL: urls.edits,
    FAILED_EDITS_QUEUE_URL: urls.failedEdits,
    PORTAL_QUEUE_URL: urls.portalWork,
    // dynalite's indexes show a write at once: a run never needs to look again for a late merge.
    INDEX_LAG_MS: '0',
    DEFAULT_PORTAL: config.portal,
    SECRET_PREFIX: config.secretPrefix,
    MAX_ATTEMPTS: String(config.maxAttempts),
    DRAIN_MAX_CONCURRENCY: String(config.drainMaxConcurrency),
    // Plain-HTTP portal (the emulator) and status sources (the sandbox's demo source) are local only.
    B24_ALLOW_HTTP: 'true',
    POWERTOOLS_LOG_LEVEL: config.handlerLogLevel,
    POWERTOOLS_METRICS_DISABLED: config.metricsDisabled,
  });
}
