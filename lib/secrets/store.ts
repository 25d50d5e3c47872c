import {
  GetSecretValueCommand,
  type GetSecretValueCommandOutput,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { ConfigError, ValidationError } from '../errors.ts';
import { PORTAL_PATTERN } from '../portal-name.ts';
import { PortalNotFoundError, SecretInvalidError, SecretsUnavailableError } from './errors.ts';
import { type PortalSecret, parsePortalSecret, serializePortalSecret } from './schema.ts';

/** Portal secrets, read from and written back to Secrets Manager, cached per container. */
export interface SecretStore {
  /**
   * The portal's secret. Served from the cache while younger than the TTL; `fresh` skips the cache
   * and replaces its entry (use it after the portal rejected a credential).
   * Rejects with `ValidationError` (bad portal key), `PortalNotFoundError`, `SecretInvalidError`
   * or `SecretsUnavailableError`.
   */
  get(portal: string, options?: { fresh?: boolean }): Promise<PortalSecret>;
  /** Validates and writes the secret as a new version, updates the cache, returns the stored secret. */
  put(secret: PortalSecret): Promise<PortalSecret>;
  /** Forgets the cached secret of a portal. */
  invalidate(portal: string): void;
}

export interface SecretStoreOptions {
  /** Default: a `SecretsManagerClient` with default configuration, created on first use. */
  client?: SecretsManagerClient;
  /** Secret name prefix; a portal's secret is `${prefix}${portal}`. */
  prefix: string;
  /** How long a fetched secret is reused; 0 disables caching. */
  ttlSeconds: number;
  /** Clock in milliseconds. Default `Date.now`. */
  now?: () => number;
}

interface CacheEntry {
  secret: PortalSecret;
  expiresAt: number;
}

const PORTAL_RULE = `Expected portal to match ${PORTAL_PATTERN.source} (lowercase letters, digits and hyphens, at most 63 characters)`;

function checkPortal(portal: string): void {
  if (typeof portal !== 'string' || !PORTAL_PATTERN.test(portal)) {
    throw new ValidationError('portal', PORTAL_RULE, 'INVALID_PORTAL');
  }
}

function errorName(error: unknown): string {
  if (typeof error !== 'object' || error === null) return 'UnknownError';
  const { name, code } = error as { name?: unknown; code?: unknown };
  // Node network errors carry the useful part (ECONNREFUSED) in `code`; AWS errors in `name`.
  if (typeof code === 'string' && code) return code;
  return typeof name === 'string' && name ? name : 'UnknownError';
}

/** Converts what the SDK throws into our error family, at this one boundary. */
function toStoreError(error: unknown, portal: string, secretName: string): Error {
  const name = errorName(error);
  if (name === 'ResourceNotFoundException')
    return new PortalNotFoundError(portal, secretName, { cause: error });
  // A secret scheduled for deletion answers InvalidRequestException; for us the portal is gone.
  if (name === 'InvalidRequestException' && /deletion|deleted/i.test((error as Error).message ?? '')) {
    return new PortalNotFoundError(portal, secretName, { cause: error });
  }
  return new SecretsUnavailableError(secretName, name, { cause: error });
}

export function createSecretStore(options: SecretStoreOptions): SecretStore {
  const { prefix, ttlSeconds } = options;
  if (typeof prefix !== 'string') {
    throw new ConfigError('prefix', `Expected prefix to be a string, got ${typeof prefix}`);
  }
  if (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds < 0) {
    throw new ConfigError(
      'ttlSeconds',
      `Expected ttlSeconds to be a non-negative number, got ${String(ttlSeconds)}`,
    );
  }
  const ttlMs = ttlSeconds * 1000;
  const now = options.now ?? Date.now;
  let client = options.client;
  // Created lazily so that AWS_REGION and AWS_ENDPOINT_URL_SECRETS_MANAGER set after import still apply.
  const getClient = (): SecretsManagerClient => {
    client ??= new SecretsManagerClient({});
    return client;
  };

  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<PortalSecret>>();

  const remember = (secret: PortalSecret): void => {
    if (ttlMs > 0) cache.set(secret.portal, { secret, expiresAt: now() + ttlMs });
  };

  async function fetchSecret(portal: string): Promise<PortalSecret> {
    const secretName = `${prefix}${portal}`;
    let output: GetSecretValueCommandOutput;
    try {
      output = await getClient().send(new GetSecretValueCommand({ SecretId: secretName }));
    } catch (error) {
      throw toStoreError(error, portal, secretName);
    }
    if (typeof output.SecretString !== 'string') {
      throw new SecretInvalidError(
        secretName,
        'SecretString',
        'is missing (binary secrets are not supported)',
      );
    }
    const secret = parsePortalSecret(portal, secretName, output.SecretString);
    return output.VersionId ? Object.freeze({ ...secret, versionId: output.VersionId }) : secret;
  }

  function startFetch(portal: string): Promise<PortalSecret> {
    const promise = fetchSecret(portal).then(
      (secret) => {
        // Only the latest fetch may fill the cache: a put, an invalidate or a fresh get since this
        // fetch started has made its answer stale.
        if (inFlight.get(portal) === promise) {
          inFlight.delete(portal);
          remember(secret);
        }
        return secret;
      },
      (error: unknown) => {
        if (inFlight.get(portal) === promise) inFlight.delete(portal);
        throw error;
      },
    );
    inFlight.set(portal, promise);
    return promise;
  }

  return {
    async get(portal, getOptions = {}) {
      checkPortal(portal);
      if (!getOptions.fresh) {
        const entry = cache.get(portal);
        if (entry && now() < entry.expiresAt) return entry.secret;
        const pending = inFlight.get(portal);
        if (pending) return pending;
      }
      cache.delete(portal);
      return startFetch(portal);
    },

    async put(secret) {
      checkPortal(secret.portal);
      const secretName = `${prefix}${secret.portal}`;
      const serialized = serializePortalSecret(secret);
      // Parse what we are about to write: an invalid secret never reaches Secrets Manager.
      const stored = parsePortalSecret(secret.portal, secretName, serialized);
      let versionId: string | undefined;
      try {
        const output = await getClient().send(
          new PutSecretValueCommand({ SecretId: secretName, SecretString: serialized }),
        );
        versionId = output.VersionId;
      } catch (error) {
        throw toStoreError(error, secret.portal, secretName);
      }
      const result = versionId ? Object.freeze({ ...stored, versionId }) : stored;
      inFlight.delete(secret.portal);
      cache.delete(secret.portal);
      remember(result);
      return result;
    },

    invalidate(portal) {
      cache.delete(portal);
      inFlight.delete(portal);
    },
  };
}
