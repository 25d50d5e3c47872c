import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { createDrain } from '../../lib/drain/index.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { PortalGateway } from '../../lib/portal/gateway.ts';
import type { ReconcileOptions } from '../../lib/reconcile/options.ts';
import { Reconciler } from '../../lib/reconcile/reconcile.ts';
import { reconcileWakeups } from '../../lib/reconcile/wakeups.ts';
import { delaySeconds, type WakeupSender } from '../../lib/schedule/portal-queue.ts';
import { createSecretStore } from '../../lib/secrets/index.ts';
import {
  type Bitrix24Emulator,
  type RateLimits,
  startBitrix24Emulator,
} from '../../local/bitrix24-emulator/index.ts';
import { createLedgerTable } from '../../local/dynamodb.ts';
import { startSecretsManager } from '../../local/secrets-manager.ts';
import { AWS, BOT, PREFIX, WEBHOOK, webhookSecret } from '../../test/support/harness.ts';
import { consume, DelayQueueModel, FifoQueueModel } from './queues.ts';

/**
 * The deployed system in one benchmark process: the drain behind the edits queue (FIFO, as SQS
 * delivers it) and the reconcile behind the portal work queue (standard, with delays), each with
 * its own concurrency, on a ledger in a DynamoDB implementation in another process (so the
 * benchmark's CPU figures are the project's, not the database's), calling one Bitrix24 emulator per
 * portal, each with its own rate limit.
 */

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}

/** Requests to DynamoDB by kind, and writes by item (`pk`), through the real client. */
export interface DynamoCounts {
  reads: number;
  writes: number;
  writesByItem: Map<string, number>;
  /** Writes to portal items, by the start of their update expression. */
  portalWrites: Map<string, number>;
}

export async function startDynamoProcess(): Promise<{
  url: string;
  client: DynamoDBClient;
  counts: DynamoCounts;
  close: () => Promise<void>;
}> {
  const port = await freePort();
  const cli = new URL('../../node_modules/dynalite/cli.js', import.meta.url).pathname;
  const child: ChildProcess = spawn(
    process.execPath,
    [cli, '--host', '127.0.0.1', '--port', String(port), '--createTableMs', '0', '--deleteTableMs', '0'],
    { stdio: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ ...AWS, endpoint: url });
  for (let i = 0; i < 100; i += 1) {
    try {
      await client.send(new (await import('@aws-sdk/client-dynamodb')).ListTablesCommand({}));
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const counts: DynamoCounts = { reads: 0, writes: 0, writesByItem: new Map(), portalWrites: new Map() };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName);
      if (/^(Get|BatchGet|Query|Scan)/.test(name)) counts.reads += 1;
      else if (/^(Update|Put|Delete)/.test(name)) {
        counts.writes += 1;
        // Marshalled ({ S: … }) or not, as the document client hands it down.
        const pk = (args.input as { Key?: { pk?: { S?: string } | string } }).Key?.pk;
        const key = typeof pk === 'string' ? pk : pk?.S;
        if (key) counts.writesByItem.set(key, (counts.writesByItem.get(key) ?? 0) + 1);
        if (key?.startsWith('portal#')) {
          const kind = String((args.input as { UpdateExpression?: string }).UpdateExpression ?? '').slice(
            0,
            14,
          );
          counts.portalWrites.set(kind, (counts.portalWrites.get(kind) ?? 0) + 1);
        }
      }
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  return {
    url,
    client,
    counts,
    close: async () => {
      client.destroy();
      child.kill('SIGTERM');
    },
  };
}

export interface Portal {
  name: string;
  emulator: Bitrix24Emulator;
  /** Adds a message of the bot; returns its id. */
  message(): number;
}

export interface Deployment {
  ledger: Ledger;
  dynamo: DynamoCounts;
  portals: Map<string, Portal>;
  edits: FifoQueueModel;
  work: DelayQueueModel;
  /** One more container (the API's, for instance): its gateway and its reconciler. */
  container(): { gateway: PortalGateway; reconciler: Reconciler };
  /** Starts the drain and the reconcile slots. */
  start(): void;
  stop(): Promise<void>;
  close(): Promise<void>;
  /** Sends a queued edit to the edits queue, as a producer would. */
  sendEdit(portal: string, messageId: number, text: string): void;
}

export interface DeploymentOptions {
  portals: string[];
  limits: RateLimits;
  drainConcurrency: number;
  reconcileConcurrency: number;
  reconcileBatchSize?: number;
  options?: Partial<ReconcileOptions>;
}

export async function startDeployment(setup: DeploymentOptions): Promise<Deployment> {
  const dynamo = await startDynamoProcess();
  const tableName = 'bench-ledger';
  await createLedgerTable(dynamo.client, tableName);
  const emulators = await Promise.all(
    setup.portals.map(async (name) => {
      const emulator = await startBitrix24Emulator({ limits: setup.limits });
      emulator.addWebhook(WEBHOOK);
      emulator.registerBot({ id: BOT.id, botToken: BOT.token, owner: { webhookUserId: WEBHOOK.userId } });
      return {
        name,
        emulator,
        message: () => emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'queued' }),
      };
    }),
  );
  const secrets = await startSecretsManager({
    secrets: Object.fromEntries(
      emulators.map(({ name, emulator }) => [
        `${PREFIX}${name}`,
        webhookSecret(emulator.url, { plan: undefined, limits: setup.limits }),
      ]),
    ),
  });
  const secretsClient = new SecretsManagerClient({ ...AWS, endpoint: secrets.url });
  // The failed-edits queue is never written in these runs; the client only has to exist.
  const sqs = new SQSClient({ ...AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
  const ledger = new Ledger({ tableName, client: dynamo.client });
  const edits = new FifoQueueModel();
  const work = new DelayQueueModel();
  const wakeups: WakeupSender = {
    async send(list) {
      for (const w of list)
        work.send(JSON.stringify({ portal: w.portal, at: w.at }), delaySeconds(w.at, Date.now()));
      return [];
    },
  };
  const options: ReconcileOptions = {
    failedEditsQueueUrl: 'http://127.0.0.1:9/000000000000/failed-edits.fifo',
    // dynalite's indexes have no lag.
    indexLagMs: 0,
    ...setup.options,
  };
  // One gateway (one secret cache) per container, as in Lambda.
  const gateway = () =>
    new PortalGateway({
      store: createSecretStore({ client: secretsClient, prefix: PREFIX, ttlSeconds: 300 }),
      timeoutMs: options.callTimeoutMs ?? 10_000,
      allowHttp: true,
    });
  const container = () => {
    const own = gateway();
    return { gateway: own, reconciler: new Reconciler({ ledger, gateway: own, sqs, wakeups, options }) };
  };
  let running: Array<{ stop: () => Promise<void> }> = [];
  const invocation = () => {
    const deadline = Date.now() + 60_000;
    return { remainingMs: () => deadline - Date.now() };
  };
  const stop = async () => {
    await Promise.all(running.map((r) => r.stop()));
    running = [];
  };
  return {
    ledger,
    dynamo: dynamo.counts,
    portals: new Map(emulators.map((p) => [p.name, p])),
    edits,
    work,
    container,
    start() {
      running = [
        consume(
          edits,
          () => {
            const drain = createDrain({ ledger, sqs, wakeups, options });
            return (records: SQSRecord[]) => drain({ Records: records }, invocation());
          },
          { concurrency: setup.drainConcurrency },
        ),
        consume(
          work,
          () => {
            const { reconciler } = container();
            return (records: SQSRecord[]) => reconcileWakeups(records, invocation(), { reconciler, sqs });
          },
          { concurrency: setup.reconcileConcurrency, batchSize: setup.reconcileBatchSize ?? 10 },
        ),
      ];
    },
    stop,
    async close() {
      await stop();
      sqs.destroy();
      secretsClient.destroy();
      await Promise.all([...emulators.map((p) => p.emulator.close()), secrets.close(), dynamo.close()]);
    },
    sendEdit(portal, messageId, text) {
      edits.send(
        {
          portal,
          botId: BOT.id,
          messageId,
          fields: { message: text },
          editId: `${portal}-${messageId}-${edits.sent}`,
          requestedAt: new Date().toISOString(),
        },
        `${portal}:${BOT.id}:${messageId}`,
      );
    },
  };
}
