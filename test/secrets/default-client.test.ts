import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSecretStore } from '../../lib/secrets/index.ts';
import { type LocalSecretsManager, startSecretsManager } from '../../local/secrets-manager.ts';

// The default client is built on first use, so the SDK's own environment variables set after the
// store was created still decide where it connects. This file owns its process (vitest forks).
const VARIABLES = [
  'AWS_ENDPOINT_URL_SECRETS_MANAGER',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
];
const saved = Object.fromEntries(VARIABLES.map((name) => [name, process.env[name]]));
let sm: LocalSecretsManager;

beforeAll(async () => {
  sm = await startSecretsManager({
    secrets: {
      'b24/portals/acme': JSON.stringify({
        portalUrl: 'https://acme.bitrix24.com',
        auth: { type: 'webhook', userId: 1, code: 'defaultClientCode' },
        bots: { '1': { botToken: 'defaultClientBot' } },
      }),
    },
  });
});

afterAll(async () => {
  for (const name of VARIABLES) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
  await sm.close();
});

it('builds its default client lazily, so AWS_ENDPOINT_URL_SECRETS_MANAGER set after creation applies', async () => {
  const store = createSecretStore({ prefix: 'b24/portals/', ttlSeconds: 60 });
  process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = sm.url;
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
  const secret = await store.get('acme');
  expect(secret.portalUrl).toBe('https://acme.bitrix24.com');
  expect(sm.getCount('b24/portals/acme')).toBe(1);
});
