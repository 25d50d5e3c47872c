import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLedgerTable, type LocalDynamoDb, startLocalDynamoDb } from '../../local/dynamodb.ts';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const functions = readdirSync(join(root, 'functions'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
const LEDGER_TABLE_NAME = 'ledger-bundle-test';
let outdir: string;
let dynamo: LocalDynamoDb;

beforeAll(async () => {
  outdir = mkdtempSync(join(tmpdir(), 'b24-bundles-'));
  dynamo = await startLocalDynamoDb();
  const client = new DynamoDBClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    endpoint: dynamo.url,
  });
  await createLedgerTable(client, LEDGER_TABLE_NAME);
  client.destroy();
  await run(process.execPath, [join(root, 'scripts/build.mjs'), '--outdir', outdir], { cwd: root });
}, 120_000);
afterAll(async () => {
  rmSync(outdir, { recursive: true, force: true });
  await dynamo?.close();
});

/**
 * Runs `body` in a fresh Node process after importing the named bundle as `handler`, with only the
 * environment given (no AWS credentials of the machine), and returns the last line it printed as JSON.
 */
async function runBundle(name: string, body: string, env: Record<string, string> = {}): Promise<unknown> {
  const script = `const { handler } = await import(${JSON.stringify(`file://${join(outdir, name, 'index.mjs')}`)});
    const context = { getRemainingTimeInMillis: () => 10000 };
    ${body}`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    cwd: outdir,
    env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1', ...env },
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
}

/** The ledger (a local DynamoDB on loopback) for a bundle, through the SDK's own variables. */
const ledgerEnv = () => ({
  STATE_TABLE_NAME: LEDGER_TABLE_NAME,
  AWS_ENDPOINT_URL_DYNAMODB: dynamo.url,
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  FAILED_EDITS_QUEUE_URL: 'http://127.0.0.1:9/000000000000/failed-edits.fifo',
  POWERTOOLS_METRICS_DISABLED: 'true',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
});

describe('the build', () => {
  it('writes one minified ESM bundle per function', () => {
    expect(functions.length).toBeGreaterThan(0);
    expect(readdirSync(outdir).sort()).toEqual([...functions].sort());
    for (const name of functions) {
      const size = statSync(join(outdir, name, 'index.mjs')).size;
      expect(size).toBeGreaterThan(10_000);
      expect(size).toBeLessThan(1_500_000);
    }
  });

  it.each(functions)('imports %s as real ESM in a fresh Node process and exports a handler', async (name) => {
    const script = `const m = await import(${JSON.stringify(`file://${join(outdir, name, 'index.mjs')}`)});
      if (typeof m.handler !== 'function') { console.error('no handler'); process.exit(2); }
      console.log('handler ok');`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: outdir,
      env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1' },
      timeout: 30_000,
    });
    expect(stdout).toContain('handler ok');
  });

  it('answers an HTTP event through the bundled update-message handler without any AWS access', async () => {
    const response = (await runBundle(
      'update-message',
      `const event = { version: '2.0', rawPath: '/rest/imbot.v2.Chat.Message.update', headers: {},
        requestContext: { http: { method: 'GET' }, requestId: 'r' }, isBase64Encoded: false };
      console.log(JSON.stringify(await handler(event, context)));`,
    )) as { statusCode: number; body: string };
    expect(response.statusCode).toBe(405);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'METHOD_NOT_ALLOWED' });
  });

  it('reads the ledger over HTTP through the bundled get-message handler: 404 for a message never edited', async () => {
    const response = (await runBundle(
      'get-message',
      `const event = { version: '2.0', routeKey: 'GET /messages/{portal}/{botId}/{messageId}',
        rawPath: '/messages/demo/456/789', headers: {},
        pathParameters: { portal: 'demo', botId: '456', messageId: '789' },
        requestContext: { http: { method: 'GET', path: '/messages/demo/456/789' }, requestId: 'r' },
        isBase64Encoded: false };
      console.log(JSON.stringify(await handler(event, context)));`,
      ledgerEnv(),
    )) as { statusCode: number; body: string };
    expect(response.statusCode).toBe(404);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'MESSAGE_NOT_FOUND' });
  });

  it('queries the wake-up index over HTTP through the bundled sweep handler and finds no portal overdue', async () => {
    const summary = await runBundle(
      'sweep',
      `console.log(JSON.stringify(await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' }, context)));`,
      ledgerEnv(),
    );
    expect(summary).toEqual({ overdue: 0, woken: 0 });
  });

  it('reconciles a woken portal with nothing dirty through the bundled reconcile-portals handler, calling no portal', async () => {
    const record = (messageId: string, body: string) => ({
      messageId,
      receiptHandle: `rh-${messageId}`,
      body,
      attributes: { ApproximateReceiveCount: '1' },
      messageAttributes: {},
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:portal-work',
      awsRegion: 'us-east-1',
    });
    const event = {
      Records: [
        record('m1', JSON.stringify({ portal: 'acme', at: Date.now() })),
        record('m2', 'not a wake-up'),
      ],
    };
    const response = await runBundle(
      'reconcile-portals',
      `console.log(JSON.stringify(await handler(${JSON.stringify(event)}, context)));`,
      // No secret can be read and no portal reached: the run must need neither.
      { ...ledgerEnv(), PORTAL_QUEUE_URL: 'http://127.0.0.1:9/000000000000/portal-work' },
    );
    expect(response).toEqual({ batchItemFailures: [] });
  });
});
