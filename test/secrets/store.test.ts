import { DeleteSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../lib/errors.ts';
import {
  createSecretStore,
  PortalNotFoundError,
  parsePortalSecret,
  SecretInvalidError,
  SecretsUnavailableError,
  serializePortalSecret,
  withOAuthTokens,
} from '../../lib/secrets/index.ts';
import { type LocalSecretsManager, startSecretsManager } from '../../local/secrets-manager.ts';
import { rejection } from '../support/rejection.ts';

const PREFIX = 'b24/portals/';
const WEBHOOK_CODE = 'storeWebhookCode1';

const webhookSecret = (botToken = 'storeBotToken1') =>
  JSON.stringify({
    portalUrl: 'https://acme.bitrix24.com',
    auth: { type: 'webhook', userId: 1, code: WEBHOOK_CODE },
    bots: { '456': { botToken } },
  });

const oauthSecret = JSON.stringify({
  portalUrl: 'https://beta.bitrix24.com',
  auth: {
    type: 'oauth',
    clientId: 'local.1',
    clientSecret: 'storeClientSecret',
    accessToken: 'storeAccess1',
    refreshToken: 'storeRefresh1',
    expiresAt: 1_900_000_000,
  },
  bots: { '7': {} },
  plan: 'enterprise',
});

let sm: LocalSecretsManager;
let client: SecretsManagerClient;

const clientFor = (endpoint: string) =>
  new SecretsManagerClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
  });

beforeAll(async () => {
  sm = await startSecretsManager();
  client = clientFor(sm.url);
});

afterAll(async () => {
  client.destroy();
  await sm.close();
});

let portalCount = 0;
/** A fresh portal per test, so counts and caches never leak between tests. */
function newPortal(value: string = webhookSecret()): string {
  portalCount += 1;
  const portal = `portal-${portalCount}`;
  sm.setSecret(`${PREFIX}${portal}`, value);
  return portal;
}

function clock(start = 1_000_000) {
  let time = start;
  return { now: () => time, advance: (ms: number) => (time += ms) };
}

describe('createSecretStore', () => {
  afterEach(() => {
    sm.failNext(0);
    sm.delayNext(0, 0);
  });

  it('reads a portal secret through the real SDK and records its version', async () => {
    const portal = newPortal();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    const secret = await store.get(portal);
    expect(secret).toMatchObject({
      portal,
      secretName: `${PREFIX}${portal}`,
      portalUrl: 'https://acme.bitrix24.com',
      auth: { type: 'webhook', code: WEBHOOK_CODE },
    });
    expect(secret.versionId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves a second get within the TTL from the cache', async () => {
    const portal = newPortal();
    const time = clock();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60, now: time.now });
    const first = await store.get(portal);
    time.advance(59_999);
    expect(await store.get(portal)).toBe(first);
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(1);
  });

  it('fetches again once the TTL has passed and sees the new value', async () => {
    const portal = newPortal();
    const time = clock();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60, now: time.now });
    await store.get(portal);
    sm.setSecret(`${PREFIX}${portal}`, webhookSecret('rotatedBotToken'));
    time.advance(60_000);
    expect((await store.get(portal)).bots.get(456)).toEqual({ botToken: 'rotatedBotToken' });
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(2);
  });

  it('bypasses and refreshes the cache when asked for a fresh secret', async () => {
    const portal = newPortal();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 600 });
    await store.get(portal);
    sm.setSecret(`${PREFIX}${portal}`, webhookSecret('rotatedBotToken'));
    expect((await store.get(portal)).bots.get(456)?.botToken).toBe('storeBotToken1');
    expect((await store.get(portal, { fresh: true })).bots.get(456)?.botToken).toBe('rotatedBotToken');
    expect((await store.get(portal)).bots.get(456)?.botToken).toBe('rotatedBotToken');
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(2);
  });

  it('shares one fetch between concurrent gets of a portal', async () => {
    const portal = newPortal();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    const secrets = await Promise.all([store.get(portal), store.get(portal), store.get(portal)]);
    expect(new Set(secrets).size).toBe(1);
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(1);
  });

  it('fetches every time when the TTL is 0', async () => {
    const portal = newPortal();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 0 });
    await store.get(portal);
    await store.get(portal);
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(2);
  });

  it('fetches again after invalidate', async () => {
    const portal = newPortal();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    await store.get(portal);
    store.invalidate(portal);
    await store.get(portal);
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(2);
  });

  it('rejects with PortalNotFoundError naming the portal and secret when no secret exists', async () => {
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    const error = await rejection(store.get('nowhere'));
    expect(error).toBeInstanceOf(PortalNotFoundError);
    expect(error).toMatchObject({ code: 'PORTAL_NOT_FOUND', status: 404, portal: 'nowhere' });
    expect(error.message).toContain('"nowhere"');
    expect(error.message).toContain(`"${PREFIX}nowhere"`);
  });

  it('treats a secret scheduled for deletion as a missing portal', async () => {
    const portal = newPortal();
    await client.send(new DeleteSecretCommand({ SecretId: `${PREFIX}${portal}`, RecoveryWindowInDays: 7 }));
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    expect(await rejection(store.get(portal))).toBeInstanceOf(PortalNotFoundError);
  });

  it.each([
    ['a 500', { type: 'InternalServiceError', status: 500 }],
    ['throttling', { type: 'ThrottlingException', status: 400 }],
    ['access denied', { type: 'AccessDeniedException', status: 400 }],
    ['a KMS decryption failure', { type: 'DecryptionFailure', status: 400 }],
  ])('rejects with SecretsUnavailableError on %s, and does not cache the failure', async (_, failure) => {
    const portal = newPortal();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    sm.failNext(1, failure);
    const error = await rejection(store.get(portal));
    expect(error).toBeInstanceOf(SecretsUnavailableError);
    expect(error).toMatchObject({
      code: 'SECRETS_UNAVAILABLE',
      status: 503,
      retryAfterSeconds: 5,
      reason: failure.type,
    });
    expect((await store.get(portal)).portal).toBe(portal);
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(2);
  });

  it('rejects with SecretsUnavailableError when the endpoint is down', async () => {
    const down = await startSecretsManager();
    const downClient = clientFor(down.url);
    await down.close();
    try {
      const store = createSecretStore({ client: downClient, prefix: PREFIX, ttlSeconds: 60 });
      const error = await rejection(store.get('acme'));
      expect(error).toBeInstanceOf(SecretsUnavailableError);
      expect((error as SecretsUnavailableError).reason).toBe('ECONNREFUSED');
    } finally {
      downClient.destroy();
    }
  });

  it('rejects with SecretInvalidError for a secret that is not JSON, without quoting it', async () => {
    const portal = newPortal(`not json ${WEBHOOK_CODE}`);
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    const error = await rejection(store.get(portal));
    expect(error).toBeInstanceOf(SecretInvalidError);
    expect(error.message).not.toContain(WEBHOOK_CODE);
  });

  it('does not cache an invalid secret, so a corrected one is read on the next get', async () => {
    const portal = newPortal('{}');
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    expect(await rejection(store.get(portal))).toBeInstanceOf(SecretInvalidError);
    sm.setSecret(`${PREFIX}${portal}`, webhookSecret());
    expect((await store.get(portal)).portal).toBe(portal);
  });

  it('rejects a portal key that breaks the naming rule with INVALID_PORTAL, without asking AWS', async () => {
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    for (const portal of ['Acme', '-acme', '../acme', '', 'a'.repeat(64)]) {
      const error = await rejection(store.get(portal));
      expect(error).toBeInstanceOf(ValidationError);
      expect(error).toMatchObject({ field: 'portal', code: 'INVALID_PORTAL', status: 400 });
      expect(error.message).toContain('lowercase letters, digits and hyphens');
      expect(sm.getCount(`${PREFIX}${portal}`)).toBe(0);
    }
  });

  it('writes a secret back as a new version that a later get returns', async () => {
    const portal = newPortal(oauthSecret);
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    const before = await store.get(portal);
    const tokens = { accessToken: 'storeAccess2', refreshToken: 'storeRefresh2', expiresAt: 1_900_003_600 };
    const stored = await store.put(withOAuthTokens(before, tokens));
    expect(stored.versionId).toBeDefined();
    expect(stored.versionId).not.toBe(before.versionId);
    expect(stored.auth).toMatchObject(tokens);
    expect(sm.getSecret(`${PREFIX}${portal}`)).toBe(serializePortalSecret(stored));

    expect(await store.get(portal)).toBe(stored);
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(1);
    const other = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    expect(await other.get(portal)).toEqual(stored);
  });

  it('keeps a put when a get that started before it finishes after it', async () => {
    const portal = newPortal(oauthSecret);
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    const before = await store.get(portal);
    sm.delayNext(1, 200);
    const slowGet = store.get(portal, { fresh: true });
    const stored = await store.put(
      withOAuthTokens(before, { accessToken: 'racedAccess', refreshToken: 'racedRefresh', expiresAt: 1 }),
    );
    expect((await slowGet).auth).toMatchObject({ accessToken: 'storeAccess1' });
    expect(await store.get(portal)).toBe(stored);
    expect(sm.getCount(`${PREFIX}${portal}`)).toBe(2);
  });

  it('refuses to put a secret that breaks the schema and writes nothing', async () => {
    const portal = newPortal();
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    const secret = await store.get(portal);
    const broken = { ...secret, bots: new Map([[456, {}]]) };
    expect(await rejection(store.put(broken))).toBeInstanceOf(SecretInvalidError);
    expect(sm.getSecret(`${PREFIX}${portal}`)).toBe(webhookSecret());
  });

  it('rejects a put for a portal without a secret with PortalNotFoundError', async () => {
    const store = createSecretStore({ client, prefix: PREFIX, ttlSeconds: 60 });
    const secret = { ...parsePortalSecret('ghost', `${PREFIX}ghost`, webhookSecret()) };
    expect(await rejection(store.put(secret))).toBeInstanceOf(PortalNotFoundError);
  });

  it('refuses a negative TTL when created', () => {
    expect(() => createSecretStore({ client, prefix: PREFIX, ttlSeconds: -1 })).toThrow(
      'Expected ttlSeconds to be a non-negative number, got -1',
    );
  });
});
