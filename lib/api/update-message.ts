import { randomUUID } from 'node:crypto';
import { callerStatusOf } from '../bitrix24/error-table.ts';
import type { B24Time } from '../bitrix24/types.ts';
import type { Config } from '../config.ts';
import { canonicalJson } from '../edits/canonical.ts';
import { parseUpdateRequest } from '../edits/validate.ts';
import { AppError, ValidationError } from '../errors.ts';
import { errorResult, type HttpResult, jsonResult, toErrorResult } from '../http/responses.ts';
import {
  type Claim,
  IDEMPOTENCY_WINDOW_SECONDS,
  type IdempotencyKeys,
  sha256,
} from '../ledger/idempotency.ts';
import { type LedgerError, type MergeResult, type MessageKey, messageKeyText } from '../ledger/model.ts';
import { logger } from '../observability/logger.ts';
import type { PortalGateway } from '../portal/gateway.ts';
import { PORTAL_PATTERN } from '../portal-name.ts';
import { EditUnscheduledError, type Reconciler } from '../reconcile/reconcile.ts';
import { emptyStats } from '../reconcile/send.ts';
import { ANSWER_RESERVE_MS, beforeDeadline } from './deadline.ts';

export interface UpdateMessageDeps {
  config: Pick<Config, 'defaultPortal'>;
  gateway: PortalGateway;
  /**
   * Records every edit in the ledger, then applies the message's desired state now when it may, or
   * makes sure its portal's wake-up will.
   */
  reconciler: Reconciler;
  /** Idempotency keys kept in the ledger table: a repeated key answers with the original edit. */
  idempotency?: IdempotencyKeys;
  newId?: () => string;
  /** The acceptance stamp's clock (the container's, corrected to the ledger's). Default the machine's. */
  now?: () => Date;
  /** Makes sure `now` is corrected before the first stamp of a cold container (runtime.ts). */
  calibrate?: () => Promise<void>;
}

export interface UpdateMessageInput {
  /** The `X-B24-Portal` header. */
  portal: string | undefined;
  /** The parsed JSON body. */
  body: unknown;
  /** `Prefer: respond-async` was sent. */
  preferAsync: boolean;
  /** The `Idempotency-Key` header: a repeat within the window answers with the first edit. */
  idempotencyKey: string | undefined;
  signal?: AbortSignal | undefined;
  /** Milliseconds left before the invocation's deadline. Default: no deadline of its own. */
  remainingMs?: (() => number) | undefined;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/**
 * How an edit's outcome is put to its caller: this API's own answers (200 applied, 202 deferred),
 * or Bitrix24's (the webhook route: see webhook.ts). Refusals are Bitrix24's error shape on both.
 */
export interface UpdateAnswers {
  applied(time: B24Time | undefined): HttpResult;
  /** Recorded, and its portal's wake-up made sure of: applied later, or kept with its reason. */
  deferred(editId: string, reason: string): HttpResult;
  /** A repeat of an Idempotency-Key's edit within the window. */
  duplicate(editId: string): HttpResult;
}

const OWN_ANSWERS: UpdateAnswers = {
  applied: (time) => jsonResult(200, time ? { result: true, time } : { result: true }),
  deferred: (editId, reason) => jsonResult(202, { result: true, deferred: true, editId, reason }),
  duplicate: (editId) => jsonResult(202, { result: true, duplicate: true, editId }),
};

/**
 * Records an update in the ledger, then applies the message's desired state now, or leaves it to
 * its portal's wake-up (202) when Bitrix24 is busy, the message's cadence or settle window says
 * wait, another reconciler holds the portal, or the caller asked for it. Every expected outcome is
 * a response; only bugs throw.
 */
export async function updateMessage(
  input: UpdateMessageInput,
  deps: UpdateMessageDeps,
  answers: UpdateAnswers = OWN_ANSWERS,
): Promise<HttpResult> {
  const deferred = (key: MessageKey, editId: string, reason: string): HttpResult => {
    logger.info('Edit deferred', { ...key, editId, outcome: 'deferred', reason });
    return answers.deferred(editId, reason);
  };
  try {
    // Sent but empty is a mistake to report, not a request for the default portal.
    if (input.portal !== undefined && input.portal.trim() === '') {
      throw new ValidationError(
        'X-B24-Portal',
        'X-B24-Portal is empty: name the portal, or leave the header out to use DEFAULT_PORTAL',
        'INVALID_PORTAL',
      );
    }
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
    const key = { portal, botId: request.botId, messageId: request.messageId };
    await deps.gateway.assertBotAllowed(portal, request.botId);

    const editId: string = deps.newId ? deps.newId() : randomUUID();
    const idem =
      input.idempotencyKey !== undefined && deps.idempotency
        ? { keys: deps.idempotency, claim: { portal, key: input.idempotencyKey, editId } }
        : undefined;
    if (idem) {
      const contentHash = sha256(canonicalJson({ ...key, fields: request.fields }));
      const claim = await idem.keys.claim({ ...idem.claim, contentHash });
      if (claim.kind !== 'new') return repeated(claim, idem.claim.key, answers);
    }
    await deps.calibrate?.();
    const acceptedAt = deps.now?.() ?? new Date();
    const edits = [{ ...key, fields: request.fields, editId, at: acceptedAt.getTime(), seq: '' }];
    if (input.preferAsync) {
      await recording(idem, () => deps.reconciler.mergeAndSchedule(key, edits));
      return deferred(key, editId, 'requested');
    }
    let merged: MergeResult | undefined;
    const outcome = await beforeDeadline(
      recording(idem, () =>
        deps.reconciler.mergeAndApply(key, edits, {
          // The reconcile's calls fit before the request answers.
          remainingMs: input.remainingMs
            ? () => (input.remainingMs?.() ?? 0) - ANSWER_RESERVE_MS
            : () => Number.MAX_SAFE_INTEGER,
          signal: input.signal,
          stats: emptyStats(),
          onMerged: (result) => {
            merged = result;
          },
        }),
      ),
      input.remainingMs,
    );
    if (outcome === 'deadline') {
      // Recorded: woken straight through the portal work queue, and answered. Not (yet): the caller
      // sends it again (a repeat merges as the same content, and is applied once).
      if (merged && (await deps.reconciler.wakeDirectly(key, merged.state)) !== undefined)
        return deferred(key, editId, 'DEADLINE');
      if (merged) throw new EditUnscheduledError();
      return errorResult(
        503,
        'DEADLINE',
        'The edit was not recorded before the request’s deadline (the ledger did not answer in time); send it again',
        1,
      );
    }
    const { report } = outcome;
    const text = messageKeyText(key);
    const fate = report.fates.get(text);
    if (fate?.kind === 'applied') {
      logger.info('Edit applied', { ...key, editId, outcome: 'applied' });
      return answers.applied(report.times.get(text));
    }
    if (fate?.kind === 'failed') return upstreamFailure(fate.error, key);
    const reason =
      fate?.kind === 'held'
        ? fate.code
        : fate?.kind === 'pending'
          ? (fate.lastError?.code ?? 'MESSAGE_CADENCE')
          : 'PENDING';
    return deferred(key, editId, reason);
  } catch (error) {
    if (error instanceof AppError) logger.info('Edit refused', { code: error.code, status: error.status });
    return toErrorResult(error);
  }
}

/**
 * Runs the work that records the edit, then marks the request's Idempotency-Key recorded; a request
 * that fails before its edit is recorded gives its key up, so that a retry is not held up.
 */
async function recording<T>(
  idem: { keys: IdempotencyKeys; claim: { portal: string; key: string; editId: string } } | undefined,
  work: () => Promise<T>,
): Promise<T> {
  let result: T;
  try {
    result = await work();
  } catch (error) {
    await idem?.keys.release(idem.claim).catch(() => undefined);
    throw error;
  }
  await idem?.keys.recorded(idem.claim).catch((error: unknown) => {
    logger.warn('The Idempotency-Key could not be marked recorded; repeats are asked to retry', {
      portal: idem.claim.portal,
      editId: idem.claim.editId,
      code: error instanceof AppError ? error.code : 'LEDGER_UNAVAILABLE',
    });
  });
  return result;
}

/** The answer to a request whose Idempotency-Key was used within the window. */
function repeated(claim: Exclude<Claim, { kind: 'new' }>, key: string, answers: UpdateAnswers): HttpResult {
  if (claim.kind === 'duplicate') {
    logger.info('Edit repeated under its Idempotency-Key', { editId: claim.editId, outcome: 'duplicate' });
    return answers.duplicate(claim.editId);
  }
  if (claim.kind === 'conflict') {
    return errorResult(
      409,
      'IDEMPOTENCY_KEY_REUSED',
      `Idempotency-Key "${key}" was used for a different edit within the last ${IDEMPOTENCY_WINDOW_SECONDS / 60} minutes; send new content under a new key`,
    );
  }
  return errorResult(
    409,
    'IDEMPOTENCY_KEY_IN_USE',
    `Idempotency-Key "${key}" belongs to a request whose edit is not recorded yet; retry after Retry-After`,
    claim.retryAfterSeconds,
  );
}

/** A Bitrix24 refusal that waiting cannot fix, as the caller should see it (the error table's status). */
function upstreamFailure(error: LedgerError, context: Record<string, unknown>): HttpResult {
  const { code, description } = error;
  logger.warn('Edit failed upstream', { ...context, outcome: 'failed', code });
  return errorResult(error.callerStatus ?? callerStatusOf(code, undefined), code, description);
}
