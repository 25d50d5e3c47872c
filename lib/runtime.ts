import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AWS_CLIENT_LIMITS } from './aws.ts';
import { type Config, getConfig } from './config.ts';
import { PortalGateway } from './portal/gateway.ts';
import { createSecretStore, type SecretStore } from './secrets/index.ts';

export interface Runtime {
  config: Config;
  store: SecretStore;
  gateway: PortalGateway;
}

let runtime: Runtime | undefined;

/** What every handler shares in one container, built once from the environment at cold start. */
export function getRuntime(): Runtime {
  if (!runtime) {
    const config = getConfig();
    const store = createSecretStore({
      client: new SecretsManagerClient(AWS_CLIENT_LIMITS),
      prefix: config.secretPrefix,
      ttlSeconds: config.secretCacheTtlSeconds,
    });
    const gateway = new PortalGateway({
      store,
      timeoutMs: config.b24TimeoutMs,
      allowHttp: config.b24AllowHttp,
    });
    runtime = { config, store, gateway };
  }
  return runtime;
}
