import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';

/** API Gateway HTTP API (2.0), REST API (1.0) and Lambda Function URL events: what we read of them. */
export type HttpEvent = APIGatewayProxyEventV2 | APIGatewayProxyEvent;

export interface RequestLine {
  method: string;
  path: string;
  requestId: string | undefined;
}

export function requestLine(event: HttpEvent): RequestLine {
  if ('httpMethod' in event) {
    return { method: event.httpMethod, path: event.path, requestId: event.requestContext?.requestId };
  }
  return {
    method: event.requestContext.http.method,
    path: event.rawPath,
    requestId: event.requestContext.requestId,
  };
}

/**
 * Header lookup after `@middy/http-header-normalizer` has lower-cased the names. An empty value
 * counts as absent unless `keepEmpty` (for headers where "sent empty" must not mean "not sent").
 */
export function header(
  event: HttpEvent,
  name: string,
  options: { keepEmpty?: boolean } = {},
): string | undefined {
  const value = event.headers?.[name.toLowerCase()];
  if (value === undefined) return undefined;
  return value === '' && !options.keepEmpty ? undefined : value;
}

/** The caller's address as API Gateway saw it. */
export function sourceIp(event: HttpEvent): string {
  if ('httpMethod' in event) return event.requestContext?.identity?.sourceIp ?? 'unknown';
  return event.requestContext.http.sourceIp;
}

/** `Prefer: respond-async` was sent (RFC 7240): the caller asks not to wait for the edit. */
export function prefersAsync(event: HttpEvent): boolean {
  return /(^|[\s,])respond-async(\s*($|[,;]))/i.test(header(event, 'prefer') ?? '');
}

/** What an edit request carries beside its body, as both update routes read it. */
export function editRequestOptions(
  event: HttpEvent,
  context: { getRemainingTimeInMillis(): number },
  signal: AbortSignal,
): {
  preferAsync: boolean;
  idempotencyKey: string | undefined;
  signal: AbortSignal;
  remainingMs: () => number;
} {
  return {
    preferAsync: prefersAsync(event),
    idempotencyKey: header(event, 'idempotency-key', { keepEmpty: true }),
    signal,
    remainingMs: () => context.getRemainingTimeInMillis(),
  };
}
