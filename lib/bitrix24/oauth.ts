import ky, { isNetworkError, isTimeoutError } from 'ky';
import { parsePortalUrl } from './client.ts';
import { LocalCode } from './error-table.ts';
import { Bitrix24Error } from './errors.ts';

export const DEFAULT_OAUTH_URL = 'https://oauth.bitrix.info/oauth/token/';

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
}

const METHOD = 'oauth.token refresh';

/** Exchanges a refresh token for a new token pair (the old refresh token stops working). */
export async function refreshOAuthTokens(request: RefreshRequest): Promise<OAuthTokens> {
  const url = parsePortalUrl(request.oauthUrl, request.allowHttp, 'oauthUrl');
  const host = url.host;
  let response: Response;
  let text: string;
  try {
    response = await ky.get(url, {
      searchParams: {
        grant_type: 'refresh_token',
        client_id: request.clientId,
        client_secret: request.clientSecret,
        refresh_token: request.refreshToken,
      },
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
          ? body.error_description
          : '';
    throw new Bitrix24Error({
      method: METHOD,
      host,
      httpStatus: response.status,
      code: body.error,
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
  return { accessToken: access_token, refreshToken: refresh_token, expiresAt };
}
