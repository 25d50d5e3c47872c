import { createServer, type Server, type Socket } from 'node:net';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AWS_CLIENT_LIMITS } from '../../lib/aws.ts';
import { createSecretStore } from '../../lib/secrets/index.ts';
import { AWS } from '../support/harness.ts';

// An endpoint that accepts connections and never answers: a hung Secrets Manager.
let server: Server;
const sockets: Socket[] = [];
let url = '';
beforeAll(async () => {
  server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

describe('the AWS clients’ limits', () => {
  it('turn a Secrets Manager that never answers into SECRETS_UNAVAILABLE after two requests that each timed out', async () => {
    const client = new SecretsManagerClient({ ...AWS, ...AWS_CLIENT_LIMITS, endpoint: url });
    const store = createSecretStore({ client, prefix: 'b24/portals/', ttlSeconds: 0 });
    const started = Date.now();
    await expect(store.get('acme')).rejects.toMatchObject({ code: 'SECRETS_UNAVAILABLE', status: 503 });
    // The endpoint never answers: each attempt ended by its own timeout, and no more were made.
    expect(sockets).toHaveLength(AWS_CLIENT_LIMITS.maxAttempts);
    expect(Date.now() - started).toBeGreaterThanOrEqual(AWS_CLIENT_LIMITS.requestHandler.requestTimeout);
    client.destroy();
  }, 30_000);
});
