import type { QueueUrls } from './local-aws.ts';
import type { StatusSchedule } from './status-schedules.ts';

/** Where everything runs, for the banner and the tests. */
export interface LocalStackInfo {
  mode: 'emulator' | 'real-portal';
  portal: string;
  portalHost: string;
  secretName: string;
  apiUrl: string;
  /** The same API over HTTPS (`https://127.0.0.1:<port>`), for Bitrix24's SDKs. */
  apiTlsUrl: string;
  /** The HTTPS API's certificate (PEM), made for this run: what a client trusts (`NODE_EXTRA_CA_CERTS`). */
  certificateFile: string;
  /** The method URL of the README's curl. */
  methodUrl: string;
  sandboxUrl: string;
  emulatorUrl: string | undefined;
  sqsUrl: string;
  secretsManagerUrl: string;
  queues: QueueUrls;
  /** The local DynamoDB and the ledger table in it. */
  dynamodbUrl: string;
  ledgerTable: string;
  /** The drain (edits queue); `paused` holds for the reconcile, the sweep and the schedules too. */
  drain: { concurrency: number; batchSize: number; paused?: boolean };
  /** The reconcile of woken portals (portal work queue). */
  reconcile: { concurrency: number; batchSize: number };
  sweep: { everyMs: number };
  schedules: readonly StatusSchedule[];
  statusSpecsFile: string | undefined;
  demo: { botId: number; chatId: number; messageIds: number[] } | undefined;
  /** The level the handlers' logger has (`WARN`, `INFO`, …): what the console shows of their lines. */
  handlerLogLevel: string;
}
