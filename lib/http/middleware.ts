import type { MiddlewareObj } from '@middy/core';
import { type HttpEvent, header, requestLine } from './event.ts';
import { parseJsonBody } from './json-body.ts';
import { errorResult, type HttpResult, toErrorResult } from './responses.ts';

/** Formats every error as `{error, error_description}` JSON; the last middleware of an HTTP handler. */
export function jsonErrors(): MiddlewareObj<unknown, HttpResult> {
  return {
    name: 'json-errors',
    onError: (request) => {
      request.response = toErrorResult(request.error);
    },
  };
}

/**
 * Answers requests for other methods or paths before the body is parsed. Paths are matched by suffix,
 * because HTTP API paths carry the stage name and Function URLs take any path.
 */
export function route(options: {
  method: string;
  pathSuffixes: readonly string[];
}): MiddlewareObj<HttpEvent, HttpResult> {
  return {
    name: 'route',
    before: (request) => {
      const { method, path } = requestLine(request.event);
      if (!options.pathSuffixes.some((suffix) => path.endsWith(suffix))) {
        return errorResult(
          404,
          'ERROR_METHOD_NOT_FOUND',
          `No method at ${path}; POST to ${options.pathSuffixes[0]}`,
        );
      }
      if (method.toUpperCase() !== options.method) {
        return {
          ...errorResult(405, 'METHOD_NOT_ALLOWED', `Use ${options.method}`),
          headers: { allow: options.method, 'content-type': 'application/json; charset=utf-8' },
        };
      }
      return undefined;
    },
  };
}

/**
 * Replaces `event.body` with the parsed JSON, refusing with the rule broken (see `parseJsonBody`):
 * not declared as JSON, not UTF-8, too deep, a prototype key, not JSON. After the header normaliser.
 */
export function jsonBody(): MiddlewareObj<HttpEvent, HttpResult> {
  return {
    name: 'json-body',
    before: (request) => {
      const { event } = request;
      const parsed = parseJsonBody({
        contentType: header(event, 'content-type'),
        body: typeof event.body === 'string' ? event.body : undefined,
        isBase64Encoded: event.isBase64Encoded,
      });
      // The handler reads the parsed body where the text was, as with Middy's own JSON parser.
      (event as { body: unknown }).body = parsed;
    },
  };
}
