import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { MiddlewareObj } from '@middy/core';
import { logger } from './logger.ts';

/**
 * Every log line of an invocation carries the Lambda request id (Powertools' context keys) and,
 * for API Gateway events, the API's own request id (`apiRequestId`), so a caller's report can be
 * traced from the access log to the handler's lines. Keys are reset after each invocation.
 */
export function logContext(): MiddlewareObj[] {
  const apiRequestId: MiddlewareObj = {
    before: (request) => {
      const id = (request.event as { requestContext?: { requestId?: unknown } } | null)?.requestContext
        ?.requestId;
      if (typeof id === 'string' && id !== '') logger.appendKeys({ apiRequestId: id });
    },
  };
  return [injectLambdaContext(logger, { resetKeys: true }), apiRequestId];
}
