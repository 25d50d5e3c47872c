import { randomUUID } from 'node:crypto';
import { isRetryable } from '../bitrix24/error-table.ts';
import { type Bitrix24Error, isBitrix24Error } from '../bitrix24/errors.ts';
import { type Config, PORTAL_PATTERN } from '../config.ts';
import type { EnqueueResult } from '../edits/queue.ts';
import { QueueUnavailableError } from '../edits/queue.ts';
import type { QueuedEdit } from '../edits/types.ts';
import { parseUpdateRequest } from '../edits/validate.ts';
import { AppError, ValidationError } from '../errors.ts';
import { errorResult, type HttpResult, jsonResult, toErrorResult } from '../http/responses.ts';
import { logger } from '../observability/logger.ts';
import type { PortalGateway } from '../portal/gateway.ts';

export interface UpdateMessageDeps {
  config: Pick<Config, 'defaultPortal'>;
  gateway: PortalGateway;
  /** Sends edits to the deferred-edits queue (normally `enqueueEdits` bound to EDITS_QUEUE_URL). */
  enqueue: (edits: QueuedEdit[], deduplicationIds: ReadonlyMap<string, string>) => Promise<EnqueueResult>;
  newId?: () => string;
  now?: () => Date;
}

export interface UpdateMessageInput {
  /** The `X-B24-Portal` header. */
  portal: string | undefined;
  /** The parsed JSON body. */
  body: unknown;
  /** `Prefer: respond-async` was sent. */
  preferAsync: boolean;
  /** The `Idempotency-Key` header: the queue's deduplication id when the edit is deferred. */
  idempotencyKey: string | undefined;
  signal?: AbortSignal | undefined;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/**
 * Applies an update now, or defers it to the queue when Bitrix24 is busy or the caller asked for it.
 * Every expected outcome is a response; only bugs throw.
 */
export async function updateMessage(input: UpdateMessageInput, deps: UpdateMessageDeps): Promise<HttpResult> {
  try {
    const portal = input.portal ?? deps.config.defaultPortal;
    if (portal === undefined) {
      return errorResult(
        400,
        'PORTAL_REQUIRED',
        'Name the portal in the X-B24-Portal header (no DEFAULT_PORTAL is set)',
      );
    }
    if (!PORTAL_PATTERN.test(portal)) {
      return errorResult(400, 'INVALID_PORTAL', `X-B24-Portal must match ${PORTAL_PATTERN.source}`);
    }
    if (input.idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(input.idempotencyKey)) {
      throw new ValidationError(
        'Idempotency-Key',
        'Idempotency-Key must be 1 to 128 printable ASCII characters without spaces',
        'INVALID_IDEMPOTENCY_KEY',
      );
    }
    const request = parseUpdateRequest(input.body);
    const target = { botId: request.botId, messageId: request.messageId };
    const context = { portal, ...target };

    if (input.preferAsync) {
      await deps.gateway.assertBotAllowed(portal, request.botId);
      return defer(deps, input, { portal, ...target, fields: request.fields }, 'requested');
    }
    try {
      const outcome = await deps.gateway.updateMessage(portal, target, request.fields, input.signal);
      logger.info('Edit applied', { ...context, outcome: 'applied' });
      return jsonResult(200, outcome.time ? { result: true, time: outcome.time } : { result: true });
    } catch (error) {
      if (isBitrix24Error(error) && isRetryable(error.strategy)) {
        return defer(deps, input, { portal, ...target, fields: request.fields }, error.code);
      }
      if (isBitrix24Error(error)) return upstreamFailure(error, context);
      throw error;
    }
  } catch (error) {
    if (error instanceof AppError) logger.info('Edit refused', { code: error.code, status: error.status });
    return toErrorResult(error);
  }
}

async function defer(
  deps: UpdateMessageDeps,
  input: UpdateMessageInput,
  edit: Omit<QueuedEdit, 'editId' | 'requestedAt'>,
  reason: string,
): Promise<HttpResult> {
  const editId: string = deps.newId ? deps.newId() : randomUUID();
  const queued: QueuedEdit = { ...edit, editId, requestedAt: (deps.now?.() ?? new Date()).toISOString() };
  const dedup = new Map(input.idempotencyKey ? [[editId, input.idempotencyKey]] : []);
  const result = await deps.enqueue([queued], dedup);
  const refused = result.failed[0];
  if (refused) {
    throw new QueueUnavailableError(`The edits queue refused the edit (${refused.code})`);
  }
  logger.info('Edit deferred', {
    portal: edit.portal,
    botId: edit.botId,
    messageId: edit.messageId,
    editId,
    outcome: 'deferred',
    reason,
  });
  return jsonResult(202, { result: true, deferred: true, editId, reason });
}

/** A Bitrix24 refusal that waiting cannot fix, as the caller should see it. */
function upstreamFailure(error: Bitrix24Error, context: Record<string, unknown>): HttpResult {
  const code = error.code;
  logger.warn('Edit failed upstream', { ...context, outcome: 'failed', code, strategy: error.strategy });
  const upper = code.toUpperCase();
  if (upper === 'BOT_NOT_FOUND') return errorResult(404, code, error.message);
  if (upper === 'ACCESS_DENIED' || upper === 'BOT_OWNERSHIP_ERROR')
    return errorResult(403, code, error.message);
  if (error.strategy === 'permanent' && error.httpStatus === 400)
    return errorResult(400, code, error.message);
  // Our own credentials or configuration failed: not the caller's fault, not a bug of ours.
  return errorResult(502, code, error.message);
}
