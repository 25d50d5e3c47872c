import middy from '@middy/core';
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import { type WebhookDeps, webhook } from '../lib/api/webhook.ts';
import { CallerKeys } from '../lib/callers/index.ts';
import { editRequestOptions, type HttpEvent, header, requestLine, sourceIp } from '../lib/http/event.ts';
import { jsonErrors } from '../lib/http/middleware.ts';
import type { HttpResult } from '../lib/http/responses.ts';
import { logContext } from '../lib/observability/context.ts';
import { getRuntime } from '../lib/runtime.ts';

export function defaultDeps(): WebhookDeps {
  const { editDeps, ledger } = getRuntime();
  return { ...editDeps(), callers: new CallerKeys(ledger().table) };
}

/**
 * POST /rest/{user}/{key}/{method}: Bitrix24's webhook form, for Bitrix24 clients pointed at this
 * service (lib/api/webhook.ts). Not signed with IAM: the caller key in the path is checked before
 * anything else is read or written.
 */
export function createHandler(deps: WebhookDeps | (() => WebhookDeps)) {
  let resolved: WebhookDeps | undefined;
  return middy<HttpEvent, HttpResult>({ timeoutEarlyInMillis: 500 })
    .use(logContext())
    .use(jsonErrors())
    .use(httpHeaderNormalizer())
    .handler((event, context, { signal }) => {
      resolved ??= typeof deps === 'function' ? deps() : deps;
      const { method, path } = requestLine(event);
      return webhook(
        {
          method,
          path,
          contentType: header(event, 'content-type'),
          body: typeof event.body === 'string' ? event.body : undefined,
          isBase64Encoded: event.isBase64Encoded,
          source: sourceIp(event),
          ...editRequestOptions(event, context, signal),
        },
        resolved,
      );
    });
}

export const handler = createHandler(defaultDeps);
