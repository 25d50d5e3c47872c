import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSecretStore, SecretInvalidError } from '../../lib/secrets/index.ts';
import { type LocalSecretsManager, startSecretsManager } from '../../local/secrets-manager.ts';
import { rejection } from '../support/rejection.ts';

let sm: LocalSecretsManager;
let client: SecretsManagerClient;

beforeAll(async () => {
  sm = await startSecretsManager({ secrets: { 'seeded/one': 'first value' } });
  client = new SecretsManagerClient({
    endpoint: sm.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  client.destroy();
  await sm.close();
});

describe('local Secrets Manager', () => {
  it('listens on loopback', () => {
    expect(sm.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('serves secrets given at start to GetSecretValue', async () => {
    const out = await client.send(new GetSecretValueCommand({ SecretId: 'seeded/one' }));
    expect(out).toMatchObject({
      Name: 'seeded/one',
      SecretString: 'first value',
      VersionStages: ['AWSCURRENT'],
    });
    expect(out.CreatedDate).toBeInstanceOf(Date);
  });

  it('creates a secret and finds it by name, full ARN and ARN without suffix', async () => {
    const created = await client.send(new CreateSecretCommand({ Name: 'arn/test', SecretString: 'v1' }));
    expect(created.ARN).toMatch(/^arn:aws:secretsmanager:us-east-1:\d{12}:secret:arn\/test-[\w-]{6}$/);
    const partial = created.ARN?.slice(0, -7) ?? '';
    for (const SecretId of ['arn/test', created.ARN ?? '', partial]) {
      expect((await client.send(new GetSecretValueCommand({ SecretId }))).SecretString).toBe('v1');
    }
    expect(sm.getCount('arn/test')).toBe(3);
  });

  it('refuses to create a secret twice with ResourceExistsException', async () => {
    await client.send(new CreateSecretCommand({ Name: 'twice', SecretString: 'a' }));
    const error = await rejection(client.send(new CreateSecretCommand({ Name: 'twice', SecretString: 'b' })));
    expect(error).toBeInstanceOf(ResourceExistsException);
  });

  it('answers ResourceNotFoundException for an unknown secret', async () => {
    const error = await rejection(client.send(new GetSecretValueCommand({ SecretId: 'missing' })));
    expect(error).toBeInstanceOf(ResourceNotFoundException);
    expect((error as ResourceNotFoundException).$metadata.httpStatusCode).toBe(400);
  });

  it('stores a put as the new current version and keeps the old one as previous', async () => {
    sm.setSecret('versions', 'old');
    const put = await client.send(new PutSecretValueCommand({ SecretId: 'versions', SecretString: 'new' }));
    const current = await client.send(
      new GetSecretValueCommand({ SecretId: 'versions', VersionStage: 'AWSCURRENT' }),
    );
    const previous = await client.send(
      new GetSecretValueCommand({ SecretId: 'versions', VersionStage: 'AWSPREVIOUS' }),
    );
    expect(current).toMatchObject({ SecretString: 'new', VersionId: put.VersionId });
    expect(previous.SecretString).toBe('old');
    expect(previous.VersionId).not.toBe(put.VersionId);
    expect(sm.getSecret('versions')).toBe('new');
    const byId = await client.send(
      new GetSecretValueCommand({ SecretId: 'versions', VersionId: previous.VersionId }),
    );
    expect(byId.SecretString).toBe('old');
  });

  it('describes a secret with its version stages', async () => {
    sm.setSecret('described', 'x');
    sm.setSecret('described', 'y');
    const out = await client.send(new DescribeSecretCommand({ SecretId: 'described' }));
    expect(out.Name).toBe('described');
    expect(Object.values(out.VersionIdsToStages ?? {}).sort()).toEqual([['AWSCURRENT'], ['AWSPREVIOUS']]);
  });

  it('lists secrets filtered by name prefix, page by page', async () => {
    for (const name of ['list/a', 'list/b', 'list/c']) sm.setSecret(name, name);
    const filter = [{ Key: 'name' as const, Values: ['list/'] }];
    const first = await client.send(new ListSecretsCommand({ Filters: filter, MaxResults: 2 }));
    const second = await client.send(
      new ListSecretsCommand({ Filters: filter, MaxResults: 2, NextToken: first.NextToken }),
    );
    expect(first.SecretList?.map((s) => s.Name)).toEqual(['list/a', 'list/b']);
    expect(second.SecretList?.map((s) => s.Name)).toEqual(['list/c']);
    expect(second.NextToken).toBeUndefined();
  });

  it('deletes a secret: scheduled deletion refuses reads, forced deletion forgets it', async () => {
    sm.setSecret('gone/soon', 'x');
    sm.setSecret('gone/now', 'x');
    await client.send(new DeleteSecretCommand({ SecretId: 'gone/soon', RecoveryWindowInDays: 7 }));
    await client.send(new DeleteSecretCommand({ SecretId: 'gone/now', ForceDeleteWithoutRecovery: true }));
    const scheduled = await rejection(client.send(new GetSecretValueCommand({ SecretId: 'gone/soon' })));
    expect(scheduled.name).toBe('InvalidRequestException');
    expect(await rejection(client.send(new GetSecretValueCommand({ SecretId: 'gone/now' })))).toBeInstanceOf(
      ResourceNotFoundException,
    );
    expect(sm.getSecret('gone/soon')).toBeUndefined();
    const listed = await client.send(
      new ListSecretsCommand({ Filters: [{ Key: 'name', Values: ['gone/'] }] }),
    );
    expect(listed.SecretList).toEqual([]);
  });

  it('answers injected failures with the status and error type asked for, then recovers', async () => {
    sm.failNext(2, { type: 'ThrottlingException', status: 400 });
    for (let i = 0; i < 2; i += 1) {
      const error = await rejection(client.send(new GetSecretValueCommand({ SecretId: 'seeded/one' })));
      expect(error.name).toBe('ThrottlingException');
    }
    const out = await client.send(new GetSecretValueCommand({ SecretId: 'seeded/one' }));
    expect(out.SecretString).toBe('first value');
  });

  it('serves binary secrets, which the portal store refuses as not a string secret', async () => {
    await client.send(
      new CreateSecretCommand({ Name: 'b24/portals/binary', SecretBinary: new TextEncoder().encode('{}') }),
    );
    const out = await client.send(new GetSecretValueCommand({ SecretId: 'b24/portals/binary' }));
    expect(new TextDecoder().decode(out.SecretBinary)).toBe('{}');
    const store = createSecretStore({ client, prefix: 'b24/portals/', ttlSeconds: 0 });
    const error = await rejection(store.get('binary'));
    expect(error).toBeInstanceOf(SecretInvalidError);
    expect((error as SecretInvalidError).field).toBe('SecretString');
  });

  it('answers an unknown operation with UnknownOperationException', async () => {
    const response = await fetch(sm.url, {
      method: 'POST',
      headers: {
        'x-amz-target': 'secretsmanager.RotateSecret',
        'content-type': 'application/x-amz-json-1.1',
      },
      body: '{}',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ __type: 'UnknownOperationException' });
  });

  it('closes promptly although the SDK keeps its connection alive', async () => {
    const other = await startSecretsManager({ secrets: { k: 'v' } });
    const otherClient = new SecretsManagerClient({
      endpoint: other.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await otherClient.send(new GetSecretValueCommand({ SecretId: 'k' }));
    // Without closing the kept-alive connection, close() would wait on it until the test times out.
    await other.close();
    otherClient.destroy();
  });
});
