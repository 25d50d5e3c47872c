import ky, { isNetworkError, isTimeoutError } from 'ky';
import { redactString } from '../observability/redact.ts';
import { parsePortalUrl, redirectError } from './client.ts';
import { LocalCode } from './error-table.ts';
import { Bitrix24Error } from './errors.ts';

export interface RefreshRequest {
  oauthUrl: string;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  timeoutMs: number;
  allowHttp: boolean;
  signal?: AbortSignal | undefined;
}

export interface OAuthTokens {
  accessToken: string;
  refreshToken: string;
  /** Unix seconds. */
  expiresAt: number;
  /**
   * The token endpoint of the auth server the answer names (`server_endpoint`, else `domain`): the
   * server depends on the portal's region (`oauth.bitrix.info`, `oauth.bitrix24.tech`). Absent when
   * the answer names none that can be used (then keep the one used).
   */
  oauthUrl?: string;
  /**
   * The portal's address the answer names (the origin of `client_endpoint`): where a renamed
   * portal now answers. Absent when the answer names none that can be used.
   */
  portalUrl?: string;
  /** The portal's install id (`member_id`): the same portal under any address. */
  memberId?: string;
}

const METHOD = 'oauth.token refresh';

/**
 * Exchanges a refresh token for a new token pair (the old refresh token stops working). The
 * parameters go in a form-encoded POST body, so the client secret and the refresh token never sit
 * in a URL (proxies and access logs keep URLs). Redirects are refused, not followed.
 */
export async function refreshOAuthTokens(request: RefreshRequest): Promise<OAuthTokens> {
  const url = parsePortalUrl(request.oauthUrl, request.allowHttp, 'oauthUrl');
  const host = url.host;
  let response: Response;
  let text: string;
  try {
    response = await ky.post(url, {
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: request.clientId,
        client_secret: request.clientSecret,
        refresh_token: request.refreshToken,
      }),
      headers: { accept: 'application/json' },
      redirect: 'manual',
      retry: 0,
      timeout: request.timeoutMs,
      throwHttpErrors: false,
      signal: request.signal ?? null,
    });
    text = await response.text();
  } catch (error) {
    const code = isTimeoutError(error) ? LocalCode.Timeout : LocalCode.Network;
    const description =
      isNetworkError(error) || isTimeoutError(error) ? 'the OAuth server did not answer' : 'failed';
    throw new Bitrix24Error({ method: METHOD, host, code, description });
  }
  if (response.status >= 300 && response.status < 400) throw redirectError(response, METHOD, host, url.href);
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Bitrix24Error({
      method: METHOD,
      host,
      httpStatus: response.status,
      code: LocalCode.InvalidResponse,
      description: `HTTP ${response.status} answer was not JSON`,
    });
  }
  if (typeof body.error === 'string') {
    const hint =
      body.error.toLowerCase() === 'invalid_grant'
        ? 'the refresh token is no longer valid: re-install or re-authorise the app on the portal and store the new tokens in the portal secret'
        : typeof body.error_description === 'string'
          ? redactString(body.error_description)
          : '';
    throw new Bitrix24Error({
      method: METHOD,
      host,
      httpStatus: response.status,
      code: redactString(body.error),
      description: hint,
    });
  }
  const { access_token, refresh_token } = body;
  if (typeof access_token !== 'string' || typeof refresh_token !== 'string') {
    throw new Bitrix24Error({
      method: METHOD,
      host,
      httpStatus: response.status,
      code: LocalCode.InvalidResponse,
      description: 'token answer without access_token and refresh_token',
    });
  }
  const expiresAt =
    typeof body.expires === 'number'
      ? body.expires
      : Math.floor(Date.now() / 1000) + (typeof body.expires_in === 'number' ? body.expires_in : 3600);
  const tokens: OAuthTokens = { accessToken: access_token, refreshToken: refresh_token, expiresAt };
  const oauthUrl = authServerOf(body, request.allowHttp);
  const portalUrl = portalOf(body, request.allowHttp);
  return {
    ...tokens,
    ...(oauthUrl ? { oauthUrl } : {}),
    ...(portalUrl ? { portalUrl } : {}),
    ...(typeof body.member_id === 'string' && body.member_id !== '' ? { memberId: body.member_id } : {}),
  };
}

/**
 * The portal's origin a token answer names in `client_endpoint` (`https://acme.bitrix24.com/rest/`):
 * https only (plain http with `allowHttp`), no user info, the REST prefix as its path.
 */
export function portalOf(body: Record<string, unknown>, allowHttp: boolean): string | undefined {
  const url = typeof body.client_endpoint === 'string' ? URL.parse(body.client_endpoint) : null;
  if (!url || url.username || url.password || !/^\/rest\/?$/.test(url.pathname)) return undefined;
  return url.protocol === 'https:' || (allowHttp && url.protocol === 'http:') ? url.origin : undefined;
}

/**
 * The token endpoint of the auth server a token answer names: `server_endpoint`
 * (`https://oauth.bitrix.info/rest/`) first, else `domain` (`oauth.bitrix.info`). Only https (plain
 * http with `allowHttp`) and no user info: the next refresh sends the client secret there.
 */
export function authServerOf(body: Record<string, unknown>, allowHttp: boolean): string | undefined {
  const candidates = [
    typeof body.server_endpoint === 'string' ? URL.parse(body.server_endpoint) : null,
    typeof body.domain === 'string' && /^[a-z0-9.-]+(:\d+)?$/i.test(body.domain)
      ? URL.parse(`https://${body.domain}/`)
      : null,
  ];
  for (const url of candidates) {
    if (!url || url.username || url.password) continue;
    if (url.protocol === 'https:' || (allowHttp && url.protocol === 'http:'))
      return `${url.origin}/oauth/token/`;
  }
  return undefined;
}
