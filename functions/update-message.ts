import middy from '@middy/core';
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import { type UpdateMessageDeps, updateMessage } from '../lib/api/update-message.ts';
import { editRequestOptions, type HttpEvent, header } from '../lib/http/event.ts';
import { jsonBody, jsonErrors, route } from '../lib/http/middleware.ts';
import type { HttpResult } from '../lib/http/responses.ts';
import { logContext } from '../lib/observability/context.ts';
import { getRuntime } from '../lib/runtime.ts';

const METHOD_PATHS = ['/rest/imbot.v2.Chat.Message.update', '/rest/imbot.v2.Chat.Message.update.json'];

export function defaultDeps(): UpdateMessageDeps {
  return getRuntime().editDeps();
}

/**
 * POST /rest/imbot.v2.Chat.Message.update behind API Gateway (HTTP or REST API) or a Function URL.
 * Dependencies given as a function are made on the first request (a configuration error then
 * answers that request, instead of failing the module's import).
 */
export function createHandler(deps: UpdateMessageDeps | (() => UpdateMessageDeps)) {
  let resolved: UpdateMessageDeps | undefined;
  return middy<HttpEvent, HttpResult>({ timeoutEarlyInMillis: 500 })
    .use(logContext())
    .use(jsonErrors())
    .use(httpHeaderNormalizer())
    .use(route({ method: 'POST', pathSuffixes: METHOD_PATHS }))
    .use(jsonBody())
    .handler((event, context, { signal }) => {
      resolved ??= typeof deps === 'function' ? deps() : deps;
      return updateMessage(
        {
          portal: header(event, 'x-b24-portal', { keepEmpty: true }),
          body: event.body,
          ...editRequestOptions(event, context, signal),
        },
        resolved,
      );
    });
}

export const handler = createHandler(defaultDeps);
