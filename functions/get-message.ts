import middy from '@middy/core';
import { getMessage, messagePath } from '../lib/api/get-message.ts';
import { type HttpEvent, requestLine } from '../lib/http/event.ts';
import { jsonErrors } from '../lib/http/middleware.ts';
import { errorResult, type HttpResult } from '../lib/http/responses.ts';
import type { Ledger } from '../lib/ledger/messages.ts';
import type { Timing } from '../lib/ledger/model.ts';
import { logContext } from '../lib/observability/context.ts';
import { getRuntime } from '../lib/runtime.ts';

export interface GetMessageDeps {
  ledger: Ledger;
  timing: Timing;
}

export function defaultDeps(): GetMessageDeps {
  const { config, ledger } = getRuntime();
  return {
    ledger: ledger(),
    timing: {
      messageMinIntervalMs: config.messageMinIntervalMs,
      ambiguousSettleMs: config.ambiguousSettleMs,
    },
  };
}

/** GET /messages/{portal}/{botId}/{messageId} (IAM-authorised like the update route). */
export function createHandler(deps: GetMessageDeps | (() => GetMessageDeps)) {
  let resolved: GetMessageDeps | undefined;
  return middy<HttpEvent, HttpResult>()
    .use(logContext())
    .use(jsonErrors())
    .handler((event) => {
      const { method, path } = requestLine(event);
      const parts = messagePath(path);
      if (!parts) return errorResult(404, 'ERROR_METHOD_NOT_FOUND', `No route at ${path}`);
      if (method.toUpperCase() !== 'GET') return errorResult(405, 'METHOD_NOT_ALLOWED', 'Use GET');
      resolved ??= typeof deps === 'function' ? deps() : deps;
      return getMessage(parts, resolved);
    });
}

export const handler = createHandler(defaultDeps);
