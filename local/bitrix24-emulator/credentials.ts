import { randomBytes } from 'node:crypto';
import { type Failure, failure } from './outcome.ts';
import type { SecretRegistry } from './redaction.ts';
import type { OAuthGrant } from './types.ts';

/** Who is calling: decides bot ownership and keys the operating-time baskets. */
export type Identity =
  | { kind: 'webhook'; userId: number; key: string }
  | { kind: 'oauth'; clientId: string; key: string };

interface AccessToken {
  clientId: string;
  expiresAtMs: number;
}

export interface OAuthAnswer {
  status: number;
  body: Record<string, unknown>;
}

const MEMBER_ID = 'e4f1c0de5a7b4c2d9e8f00112233aabb';

/**
 * The auth server's own codes (settings/oauth/error-codes.md), which are not the REST codes of the
 * same name: REST's INVALID_REQUEST means "Https required", the auth server's `invalid_request` a
 * malformed token request. The docs give no statuses: 400 and 401 for a bad client are OAuth 2.0's
 * (RFC 6749, section 5.2), and the ones the PHP SDK expects.
 */
const OAUTH_ERRORS: Readonly<Record<string, readonly [number, string]>> = {
  invalid_request: [400, 'The token request is malformed or misses a parameter'],
  invalid_client: [401, 'Client authentication failed: unknown client or wrong secret'],
  invalid_grant: [400, 'Refresh token is invalid, expired or already used'],
  invalid_scope: [400, 'The requested scope is wider than the application’s'],
  insufficient_scope: [400, 'The requested scope is wider than the application’s'],
};

/** An auth-server error with its own meaning; undefined for a code the auth server does not use. */
export function oauthFailure(code: string, status?: number, description?: string): Failure | undefined {
  const known = OAUTH_ERRORS[code.toLowerCase()];
  if (!known) return undefined;
  return { status: status ?? known[0], code, description: description ?? known[1] };
}

function newToken(): string {
  return randomBytes(24).toString('hex');
}

/** Webhooks, OAuth apps and their tokens. Refresh rotates: a used refresh token stops working. */
export class Credentials {
  readonly #webhooks = new Set<string>();
  readonly #apps = new Map<string, string>();
  readonly #accessTokens = new Map<string, AccessToken>();
  readonly #refreshTokens = new Map<string, string>();
  readonly #now: () => number;
  readonly #ttlSeconds: number;
  readonly #secrets: SecretRegistry;

  constructor(now: () => number, ttlSeconds: number, secrets: SecretRegistry) {
    this.#now = now;
    this.#ttlSeconds = ttlSeconds;
    this.#secrets = secrets;
  }

  addWebhook(userId: number, code: string): void {
    this.#secrets.add(code);
    this.#webhooks.add(`${userId}/${code}`);
  }

  webhook(userId: number, code: string): Identity | Failure {
    if (!this.#webhooks.has(`${userId}/${code}`)) return failure('INVALID_CREDENTIALS');
    return { kind: 'webhook', userId, key: `webhook:${userId}:${code}` };
  }

  addApp(clientId: string, clientSecret: string): OAuthGrant {
    this.#secrets.add(clientSecret);
    this.#apps.set(clientId, clientSecret);
    return this.#issue(clientId);
  }

  accessToken(token: string): Identity | Failure {
    const entry = this.#accessTokens.get(token);
    if (!entry) return failure('INVALID_TOKEN');
    if (this.#now() >= entry.expiresAtMs) return failure('EXPIRED_TOKEN');
    return { kind: 'oauth', clientId: entry.clientId, key: `app:${entry.clientId}` };
  }

  expireAccessTokens(): void {
    for (const entry of this.#accessTokens.values()) entry.expiresAtMs = Number.NEGATIVE_INFINITY;
  }

  revokeRefreshTokens(): void {
    this.#refreshTokens.clear();
  }

  /**
   * The answer of a refresh (`POST /oauth/token/` with a form body, or the older GET with a query).
   * As documented: `client_endpoint` is the portal's REST prefix, `server_endpoint` the auth server's
   * (`https://oauth.bitrix.info/rest/`), `domain` the auth server's host (not the portal's), `status`
   * the app's status (`L`: a local app). The emulator is its own auth server, so both name its origin.
   */
  refresh(params: Record<string, unknown>, portalUrl: string): OAuthAnswer {
    const { grant_type: grantType, client_id: clientId, client_secret: clientSecret } = params;
    const refreshToken = params.refresh_token;
    if (grantType !== 'refresh_token' || typeof clientId !== 'string' || typeof refreshToken !== 'string') {
      return oauthError('invalid_request');
    }
    if (this.#apps.get(clientId) !== clientSecret) return oauthError('invalid_client');
    if (this.#refreshTokens.get(refreshToken) !== clientId) return oauthError('invalid_grant');
    this.#refreshTokens.delete(refreshToken);
    const grant = this.#issue(clientId);
    const authServer = new URL(portalUrl);
    return {
      status: 200,
      body: {
        access_token: grant.accessToken,
        refresh_token: grant.refreshToken,
        expires: grant.expiresAt,
        expires_in: this.#ttlSeconds,
        client_endpoint: `${portalUrl}/rest/`,
        server_endpoint: `${authServer.origin}/rest/`,
        domain: authServer.host,
        member_id: MEMBER_ID,
        scope: 'imbot',
        status: 'L',
        user_id: 1,
      },
    };
  }

  #issue(clientId: string): OAuthGrant {
    const accessToken = newToken();
    const refreshToken = newToken();
    const expiresAtMs = this.#now() + this.#ttlSeconds * 1000;
    this.#secrets.add(accessToken);
    this.#secrets.add(refreshToken);
    this.#accessTokens.set(accessToken, { clientId, expiresAtMs });
    this.#refreshTokens.set(refreshToken, clientId);
    return { accessToken, refreshToken, expiresAt: Math.floor(expiresAtMs / 1000) };
  }
}

function oauthError(code: 'invalid_request' | 'invalid_client' | 'invalid_grant'): OAuthAnswer {
  const { status, description } = oauthFailure(code) as Failure;
  return { status, body: { error: code, error_description: description } };
}
