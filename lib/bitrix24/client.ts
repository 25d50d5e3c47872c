import ky, { isNetworkError, isTimeoutError } from 'ky';
import { isRecord } from '../is-record.ts';
import { redactString } from '../observability/redact.ts';
import { LocalCode } from './error-table.ts';
import { Bitrix24Error } from './errors.ts';
import type { B24Time, CallOutcome, PortalAuth } from './types.ts';

export interface Bitrix24ClientOptions {
  /** `https://acme.bitrix24.com` (a trailing slash or `/rest/` suffix is tolerated). */
  portalUrl: string;
  /** Timeout of one request in ms. Default 10000. */
  timeoutMs?: number;
  /** Allow a plain-HTTP portal URL (local emulator only). Default false. */
  allowHttp?: boolean;
  /** Sent as User-Agent, as Bitrix24 recommends. */
  userAgent?: string;
}

export interface CallOptions {
  auth: PortalAuth;
  /** Aborts the request, e.g. shortly before the Lambda deadline. */
  signal?: AbortSignal | undefined;
}

export interface Bitrix24Client {
  /** The portal host, safe to show in messages. */
  readonly host: string;
  /** Calls one REST method with a JSON POST. Never retries: retry decisions belong to the caller. */
  call<T = unknown>(
    method: string,
    params: Record<string, unknown>,
    options: CallOptions,
  ): Promise<CallOutcome<T>>;
}

const DEFAULT_USER_AGENT = 'b24-message-editor/0.1 (+imbot.v2)';
const METHOD_PATTERN = /^[A-Za-z][\w.]*$/;

export function parsePortalUrl(portalUrl: string, allowHttp: boolean, label = 'portalUrl'): URL {
  let url: URL;
  try {
    url = new URL(portalUrl);
  } catch {
    throw new Bitrix24Error({
      method: '(client)',
      host: '(invalid URL)',
      code: 'INVALID_PORTAL_URL',
      description: `${label} must be an absolute https URL`,
    });
  }
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) {
    throw new Bitrix24Error({
      method: '(client)',
      host: url.host,
      code: LocalCode.HttpRequired,
      description: `${label} must use https (plain http only with B24_ALLOW_HTTP=true), got ${url.protocol}`,
    });
  }
  return url;
}

export function createBitrix24Client(options: Bitrix24ClientOptions): Bitrix24Client {
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
    throw new RangeError(`Expected timeoutMs to be a positive integer, got ${String(timeoutMs)}`);
  }
  const base = parsePortalUrl(options.portalUrl, options.allowHttp ?? false);
  const origin = base.origin;
  const host = base.host;
  const http = ky.create({
    retry: 0,
    timeout: timeoutMs,
    throwHttpErrors: false,
    // A followed 307/308 would re-send the token (in the body or the webhook path) to wherever it points.
    redirect: 'manual',
    headers: { accept: 'application/json', 'user-agent': options.userAgent ?? DEFAULT_USER_AGENT },
  });

  async function call<T>(
    method: string,
    params: Record<string, unknown>,
    { auth, signal }: CallOptions,
  ): Promise<CallOutcome<T>> {
    if (!METHOD_PATTERN.test(method)) {
      throw new Bitrix24Error({
        method: '(client)',
        host,
        code: 'INVALID_METHOD',
        description: 'not a method name',
      });
    }
    const url =
      auth.type === 'webhook'
        ? `${origin}/rest/${auth.userId}/${encodeURIComponent(auth.code)}/${method}`
        : `${origin}/rest/${method}`;
    const body = auth.type === 'oauth' ? { ...params, auth: auth.accessToken } : params;

    let response: Response;
    let text: string;
    try {
      response = await http.post(url, { json: body, signal: signal ?? null });
      text = await response.text();
    } catch (error) {
      throw transportError(error, method, host, signal);
    }
    return readAnswer<T>(response, text, method, host, url);
  }

  return { host, call };
}

function transportError(
  error: unknown,
  method: string,
  host: string,
  signal: AbortSignal | undefined,
): Bitrix24Error {
  if (signal?.aborted) {
    return new Bitrix24Error({ method, host, code: LocalCode.Aborted, description: 'aborted by the caller' });
  }
  if (isTimeoutError(error)) {
    return new Bitrix24Error({
      method,
      host,
      code: LocalCode.Timeout,
      description: 'no answer within the timeout',
    });
  }
  // The original error is not kept as `cause`: its message carries the URL, and so the webhook code.
  const description = isNetworkError(error) ? 'connection failed' : 'request failed';
  return new Bitrix24Error({ method, host, code: LocalCode.Network, description });
}

/**
 * A 3xx answer as an error naming the status and the target host. Never followed: the request
 * carried credentials, and the target is not the portal the secret names.
 */
export function redirectError(
  response: Response,
  method: string,
  host: string,
  requestUrl: string,
): Bitrix24Error {
  const location = response.headers.get('location');
  const target = location ? URL.parse(location, requestUrl) : null;
  const where = target ? `to ${target.protocol}//${target.host}` : 'without a usable Location';
  return new Bitrix24Error({
    method,
    host,
    httpStatus: response.status,
    code: LocalCode.Redirected,
    description: `HTTP ${response.status} redirect ${where} refused: calls never follow redirects; check the portal URL in the secret`,
  });
}

/** Bitrix24's own texts may quote a credential (a token, the webhook code): masked where they enter. */
function redactBatchErrors(result: unknown): unknown {
  if (!isRecord(result) || !isRecord(result.result_error)) return result;
  const errors: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(result.result_error)) {
    errors[key] = isRecord(entry)
      ? Object.fromEntries(
          Object.entries(entry).map(([k, v]) => [k, typeof v === 'string' ? redactString(v) : v]),
        )
      : entry;
  }
  return { ...result, result_error: errors };
}

function readAnswer<T>(
  response: Response,
  text: string,
  method: string,
  host: string,
  requestUrl: string,
): CallOutcome<T> {
  const httpStatus = response.status;
  if (httpStatus >= 300 && httpStatus < 400) throw redirectError(response, method, host, requestUrl);
  const retryAfterSeconds = parseRetryAfter(response.headers.get('retry-after'));
  const fail = (code: string, description: string, time?: B24Time) =>
    new Bitrix24Error({ method, host, httpStatus, retryAfterSeconds, time, code, description });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    const kind = (response.headers.get('content-type') ?? 'no content type').split(';')[0];
    throw fail(LocalCode.InvalidResponse, `HTTP ${httpStatus} answer was not JSON (${kind})`);
  }
  const record = isRecord(body) ? body : {};
  const time = isRecord(record.time) ? (record.time as B24Time) : undefined;
  if (typeof record.error === 'string' && record.error !== '') {
    const description = typeof record.error_description === 'string' ? record.error_description : '';
    throw fail(redactString(record.error), redactString(description), time);
  }
  if (httpStatus >= 400) throw fail(`HTTP_${httpStatus}`, 'error answer without an error code', time);
  if (!('result' in record)) throw fail(LocalCode.InvalidResponse, 'answer without a result', time);
  const result = redactBatchErrors(record.result) as T;
  return time ? { result, time } : { result };
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
