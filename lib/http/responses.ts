import { AppError } from '../errors.ts';
import { logger } from '../observability/logger.ts';
import { maskSecretValues, redactString } from '../observability/redact.ts';

/** What a Lambda proxy integration returns. */
export interface HttpResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' } as const;

export function jsonResult(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): HttpResult {
  // The last guard: whatever reached an answer, no credential this process knows leaves in it.
  const text = JSON.stringify(body, (_key, value: unknown) =>
    typeof value === 'string' ? maskSecretValues(value) : value,
  );
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: text };
}

/** Bitrix24's own error shape, so that callers handle our errors as they handle Bitrix24's. */
export function errorResult(
  statusCode: number,
  code: string,
  description: string,
  retryAfterSeconds?: number,
): HttpResult {
  const headers: Record<string, string> =
    retryAfterSeconds === undefined
      ? {}
      : { 'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))) };
  return jsonResult(
    statusCode,
    { error: redactString(code), error_description: redactString(description) },
    headers,
  );
}

/**
 * Turns anything thrown into a response. Our own errors keep their code and message; middy's HTTP
 * errors (content type, malformed JSON) get ours; anything else is a bug: logged, answered generically.
 */
export function toErrorResult(error: unknown): HttpResult {
  if (error instanceof AppError) {
    const retryAfter =
      'retryAfterSeconds' in error ? (error.retryAfterSeconds as number | undefined) : undefined;
    if (error.status >= 500 && error.status !== 502 && error.status !== 503 && error.status !== 504) {
      logger.error('Request failed on our side', { error });
      return errorResult(500, 'INTERNAL_ERROR', 'Internal error');
    }
    return errorResult(error.status, error.code, error.message, retryAfter);
  }
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode;
  if (statusCode === 415) {
    return errorResult(415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json');
  }
  if (statusCode === 422 || statusCode === 400) {
    return errorResult(400, 'MALFORMED_JSON', 'The request body is not valid JSON');
  }
  logger.error('Unexpected error', { error });
  return errorResult(500, 'INTERNAL_ERROR', 'Internal error');
}
