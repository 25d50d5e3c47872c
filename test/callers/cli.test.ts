import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallerKeys } from '../../lib/callers/index.ts';
import { LedgerTable } from '../../lib/ledger/access.ts';
import { createLedgerTable, type LocalDynamoDb, startLocalDynamoDb } from '../../local/dynamodb.ts';
import { tlsCertificateFile } from '../../local/stack/config.ts';
import { LEDGER_TABLE_NAME } from '../../local/stack/local-aws.ts';
import { AWS } from '../support/harness.ts';

const root = new URL('../..', import.meta.url).pathname;
const exec = promisify(execFile);

// The `npm start` ledger as the CLI's --local finds it: table `ledger` on DYNAMODB_PORT.
let dynamo: LocalDynamoDb;
let client: DynamoDBClient;
beforeAll(async () => {
  dynamo = await startLocalDynamoDb();
  client = new DynamoDBClient({ ...AWS, endpoint: dynamo.url });
  await createLedgerTable(client, LEDGER_TABLE_NAME);
});
afterAll(async () => {
  client.destroy();
  await dynamo.close();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npm run b24 -- caller <args>` as a child process, with only the environment given. */
async function caller(args: string[], env: Record<string, string> = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(
      process.execPath,
      [join(root, 'scripts/b24.ts'), 'caller', ...args],
      {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
        timeout: 20_000,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

const localEnv = () => ({ DYNAMODB_PORT: String(dynamo.port), API_PORT: '3999', API_TLS_PORT: '3998' });
const verifier = () => new CallerKeys(new LedgerTable({ tableName: LEDGER_TABLE_NAME, client }));

describe('npm run b24 -- caller', () => {
  it("adds a key and prints it once with npm start's https and http webhook URLs and certificate file, lists it, then revokes it (--local)", async () => {
    const added = await caller(['add', '--local', '--portal', 'acme', '--name', 'build service'], localEnv());
    expect(added.code, added.stderr).toBe(0);
    const key = /^ {2}key +([a-z0-9]{40})$/m.exec(added.stdout)?.[1] ?? '';
    const keyId = key.slice(0, 8);
    expect(added.stdout).toContain(`Caller key ${keyId} added for portal acme (build service).`);
    expect(added.stdout).toMatch(
      new RegExp(`^ {2}webhook URL +https://127\\.0\\.0\\.1:3998/rest/1/${key}/$`, 'm'),
    );
    expect(added.stdout).toMatch(
      new RegExp(`^ {2}over HTTP +http://127\\.0\\.0\\.1:3999/rest/1/${key}/ `, 'm'),
    );
    expect(added.stdout).toContain(tlsCertificateFile(3998));
    expect(added.stdout).toContain('This is the only time the key is shown');
    expect(added.stdout.split(key)).toHaveLength(4);
    expect(await verifier().verify(key, { source: 'cli-test' })).toMatchObject({ ok: true, portal: 'acme' });

    const listed = await caller(['list', '--local'], localEnv());
    expect(listed.code, listed.stderr).toBe(0);
    const row = listed.stdout.split('\n').find((line) => line.startsWith(keyId)) ?? '';
    expect(row.split(/ {2,}/)).toEqual([
      keyId,
      'acme',
      'build service',
      expect.stringMatching(/^\d{4}-/),
      '-',
    ]);
    expect(listed.stdout).not.toContain(key.slice(8));

    const revoked = await caller(['revoke', '--local', keyId], localEnv());
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`Caller key ${keyId} revoked.`);
    expect(await verifier().verify(key, { source: 'cli-test' })).toEqual({ ok: false, reason: 'revoked' });
    const after = await caller(['list', '--local'], localEnv());
    const revokedRow = after.stdout.split('\n').find((line) => line.startsWith(keyId)) ?? '';
    expect(revokedRow.split(/ {2,}/)[4]).toMatch(/^\d{4}-\d\d-\d\dT/);

    const again = await caller(['revoke', '--local', keyId], localEnv());
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(
      `npm run b24 -- caller revoke: no live caller key ${keyId} (unknown, or revoked already).`,
    );
  });

  it("uses the deployed ledger named by STATE_TABLE_NAME, and puts --api's URL in the webhook URL", async () => {
    const run = await caller(
      [
        'add',
        '--portal',
        'acme',
        '--name',
        'deploy',
        '--api',
        'https://abc.execute-api.eu-central-1.amazonaws.com/',
      ],
      {
        AWS_REGION: AWS.region,
        AWS_ACCESS_KEY_ID: AWS.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: AWS.credentials.secretAccessKey,
        AWS_ENDPOINT_URL_DYNAMODB: dynamo.url,
        STATE_TABLE_NAME: LEDGER_TABLE_NAME,
      },
    );
    expect(run.code, run.stderr).toBe(0);
    const key = /^ {2}key +([a-z0-9]{40})$/m.exec(run.stdout)?.[1] ?? '';
    expect(run.stdout).toContain(`https://abc.execute-api.eu-central-1.amazonaws.com/rest/1/${key}/`);
    expect(await verifier().verify(key, { source: 'cli-test' })).toMatchObject({ ok: true, name: 'deploy' });
  });

  it('names a missing --portal in one line and exits 2, before touching any ledger', async () => {
    const run = await caller(['add', '--name', 'build service']);
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe(
      'npm run b24 -- caller add: --portal is required: the portal the key may edit. See npm run b24 -- caller add --help.',
    );
  });

  it('names the broken rule of --portal, --api or a keyId in one line and exits 2', async () => {
    const badPortal = await caller(['add', '--local', '--portal', 'Acme', '--name', 'x'], localEnv());
    expect(badPortal.code).toBe(2);
    expect(badPortal.stderr).toContain('--portal must match ^[a-z0-9][a-z0-9-]{0,62}$, got "Acme"');
    const badApi = await caller(
      ['add', '--local', '--portal', 'acme', '--name', 'x', '--api', 'ftp://x'],
      localEnv(),
    );
    expect(badApi.code).toBe(2);
    expect(badApi.stderr.trim().split('\n')).toEqual([
      expect.stringContaining('--api must be an http(s) URL'),
    ]);
    const badId = await caller(['revoke', '--local', 'Not-an-id'], localEnv());
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('<keyId> must be 8 lower-case letters and digits, got "Not-an-id"');
  });
});
