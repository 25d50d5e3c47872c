import { randomUUID } from 'node:crypto';
import { decodeBracketParams, phpSection, phpTruthy } from '../bitrix24/query-string.ts';
import type { B24Time } from '../bitrix24/types.ts';
import type { CallerKeys } from '../callers/index.ts';
import { parseUpdateRequest, type UpdateRequest } from '../edits/validate.ts';
import { AppError, ValidationError } from '../errors.ts';
import { parseBitrixBody } from '../http/json-body.ts';
import { errorResult, type HttpResult, jsonResult, toErrorResult } from '../http/responses.ts';
import {
  dueAt,
  type IncomingEdit,
  isDirty,
  type MergeResult,
  type MessageKey,
  type MessageState,
  messageKeyText,
} from '../ledger/model.ts';
import { logger } from '../observability/logger.ts';
import { EditUnscheduledError, RECORDED } from '../reconcile/reconcile.ts';
import type { ReconcileReport } from '../reconcile/run.ts';
import { emptyStats } from '../reconcile/send.ts';
import { ANSWER_RESERVE_MS, beforeDeadline } from './deadline.ts';
import { type UpdateAnswers, type UpdateMessageDeps, updateMessage } from './update-message.ts';

/**
 * The webhook route: Bitrix24's own request forms, for clients built for Bitrix24 (the official
 * SDKs, CRest, a webhook URL in a configuration file). The client's webhook code is a caller key
 * this service issued (`npm run b24 -- caller add`), in the path where Bitrix24 has it:
 * `/rest/<user>/<key>/<method>`. The key names the portal; the user id is not used.
 *
 * Served: `imbot.v2.Chat.Message.update` and `batch` of it, with method names in any case and an
 * optional `.json` suffix, bodies as JSON or as forms (PHP's bracket names), answered in Bitrix24's
 * shapes with status 200 for everything recorded, so that the SDKs' own handling works.
 */

/** The caller keys the route checks a request's key against (lib/callers). */
export type CallerVerifier = Pick<CallerKeys, 'verify'>;

export interface WebhookDeps extends UpdateMessageDeps {
  callers: CallerVerifier;
}

export interface WebhookRequest {
  method: string;
  path: string;
  contentType: string | undefined;
  body: string | undefined;
  isBase64Encoded?: boolean | undefined;
  /** The caller's address: failed key checks are limited per address. */
  source: string;
  preferAsync: boolean;
  idempotencyKey: string | undefined;
  signal?: AbortSignal | undefined;
  remainingMs?: (() => number) | undefined;
}

/** The methods served, as compared: lower case, no `.json`. */
export const UPDATE_METHOD = 'imbot.v2.chat.message.update';
export const BATCH_METHOD = 'batch';
/** Commands one `batch` runs, as Bitrix24's: each one past it fails on its own. */
export const MAX_BATCH_COMMANDS = 50;

const WEBHOOK_PATH = /\/rest\/([^/]+)\/([^/]+)\/([^/]+?)\/?$/;
const SERVED = 'imbot.v2.Chat.Message.update and batch';
const AUTH_NOT_TAKEN =
  'auth is not taken: this service holds the portal’s credentials and calls Bitrix24 with them; the caller key in the path names the portal';

export async function webhook(request: WebhookRequest, deps: WebhookDeps): Promise<HttpResult> {
  const now = () => deps.now?.().getTime() ?? Date.now();
  const span: Span = { startedAt: now(), now };
  try {
    const match = WEBHOOK_PATH.exec(request.path);
    if (!match) {
      return errorResult(
        404,
        'ERROR_METHOD_NOT_FOUND',
        'Method not found! The path is /rest/<user>/<key>/<method>',
      );
    }
    const check = await deps.callers.verify(match[2] as string, { source: request.source });
    if (!check.ok) {
      if (check.reason === 'throttled') {
        return errorResult(
          429,
          'TOO_MANY_FAILED_AUTHORIZATIONS',
          'Too many requests with wrong keys from this address; wait before trying again',
          (check.retryAfterMs ?? 60_000) / 1000,
        );
      }
      logger.info('Caller key refused', { reason: check.reason });
      // A Bitrix24 webhook code (or anything else not shaped as a key) is told what to use instead;
      // a key of the right shape that is wrong or revoked hears only Bitrix24's own words.
      return errorResult(
        401,
        'INVALID_CREDENTIALS',
        check.reason === 'malformed'
          ? 'Invalid request credentials: the code in the path is not a caller key of this service. This service holds the portal’s Bitrix24 credentials itself; put a caller key (npm run b24 -- caller add) where the webhook code goes'
          : 'Invalid request credentials',
      );
    }
    const method = methodName(match[3] as string);
    if (method === undefined || (method !== UPDATE_METHOD && method !== BATCH_METHOD)) {
      return errorResult(404, 'ERROR_METHOD_NOT_FOUND', `Method not found! This service serves ${SERVED}`);
    }
    if (request.method.toUpperCase() !== 'POST') {
      return {
        ...errorResult(405, 'METHOD_NOT_ALLOWED', 'Use POST'),
        headers: { allow: 'POST', 'content-type': 'application/json; charset=utf-8' },
      };
    }
    const body = parseBitrixBody(request);
    refuseAuth(body, 'auth');
    if (method === BATCH_METHOD) return await batch(check.portal, body, request, deps, span);
    return await updateMessage(
      {
        portal: check.portal,
        body,
        preferAsync: request.preferAsync,
        idempotencyKey: request.idempotencyKey,
        signal: request.signal,
        remainingMs: request.remainingMs,
      },
      deps,
      bitrixAnswers(span),
    );
  } catch (error) {
    if (error instanceof AppError) logger.info('Request refused', { code: error.code, status: error.status });
    return toErrorResult(error);
  }
}

/** The method of a path segment as compared, or undefined when it cannot be one. */
function methodName(segment: string): string | undefined {
  let text: string;
  try {
    text = decodeURIComponent(segment);
  } catch {
    return undefined;
  }
  return text.toLowerCase().replace(/\.json$/, '');
}

function refuseAuth(body: unknown, field: string): void {
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && Object.hasOwn(body, 'auth'))
    throw new ValidationError(field, `${field} ${AUTH_NOT_TAKEN}`, 'INVALID_REQUEST_BODY');
}

/**
 * Bitrix24's `time` object for an answer of this service's own: its start and finish, and no
 * operating time spent (the portal's budget is this service's to keep, not the caller's).
 */
/** A request's start and the clock it was read from (the container's, corrected to the ledger's). */
interface Span {
  startedAt: number;
  now: () => number;
}

function ownTime({ startedAt, now }: Span): Required<B24Time> {
  const finishedAt = now();
  const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
  return {
    start: startedAt / 1000,
    finish: finishedAt / 1000,
    duration: (finishedAt - startedAt) / 1000,
    processing: (finishedAt - startedAt) / 1000,
    date_start: iso(startedAt),
    date_finish: iso(finishedAt),
    operating: 0,
    operating_reset_at: Math.floor(finishedAt / 1000),
  };
}

/**
 * imbot.v2's success shape, `{result: {result: true}, time}`, for an edit applied or recorded: a
 * recorded edit is applied later or kept with its reason (GET /messages/… tells which), and says
 * so beside the result (`deferred`, `editId`, `reason`), where Bitrix24 clients do not look.
 */
function bitrixAnswers(span: Span): UpdateAnswers {
  return {
    applied: (time) => jsonResult(200, { result: { result: true }, time: { ...ownTime(span), ...time } }),
    deferred: (editId, reason) =>
      jsonResult(200, { result: { result: true }, time: ownTime(span), deferred: true, editId, reason }),
    duplicate: (editId) =>
      jsonResult(200, { result: { result: true }, time: ownTime(span), duplicate: true, editId }),
  };
}

interface Slot {
  name: string;
  request?: UpdateRequest;
  error?: { error: string; error_description: string };
  editId?: string;
}

function slotError(error: unknown): { error: string; error_description: string } {
  if (error instanceof AppError) return { error: error.code, error_description: error.message };
  logger.error('A batch command failed on our side', { error });
  return { error: 'INTERNAL_ERROR', error_description: 'Internal error' };
}

/** Commands of a `batch` body: `cmd` as an object (named commands) or a list. */
function commandsOf(body: unknown): Array<[string, unknown]> {
  const cmd = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).cmd : undefined;
  if (typeof cmd !== 'object' || cmd === null) {
    throw new ValidationError(
      'cmd',
      'cmd is required: an object or a list of "method?query" commands',
      'INVALID_REQUEST_BODY',
    );
  }
  const entries: Array<[string, unknown]> = Array.isArray(cmd)
    ? cmd.map((command, index) => [String(index), command])
    : Object.entries(cmd);
  if (entries.length === 0) throw new ValidationError('cmd', 'cmd holds no commands', 'INVALID_REQUEST_BODY');
  return entries;
}

/** Parses one command; its slot's error names `cmd[<name>]` and the rule. */
function parseCommand(name: string, command: unknown): UpdateRequest {
  if (typeof command !== 'string') {
    throw new ValidationError(
      `cmd[${name}]`,
      `cmd[${name}] must be a "method?query" string`,
      'INVALID_REQUEST_BODY',
    );
  }
  const q = command.indexOf('?');
  const method = methodName(q === -1 ? command : command.slice(0, q));
  if (method !== UPDATE_METHOD) {
    throw new AppError(
      'ERROR_METHOD_NOT_FOUND',
      `Method not found! A batch here runs imbot.v2.Chat.Message.update only`,
      404,
    );
  }
  const params = decodeBracketParams(q === -1 ? '' : command.slice(q + 1));
  refuseAuth(params, `cmd[${name}].auth`);
  try {
    return parseUpdateRequest(params);
  } catch (error) {
    if (error instanceof ValidationError) {
      throw new ValidationError(`cmd[${name}].${error.field}`, `cmd[${name}]: ${error.message}`, error.code);
    }
    throw error;
  }
}

/**
 * `batch` of updates: every command checked as a single update is, the valid ones recorded in the
 * ledger, then applied together (50 messages go in one Bitrix24 call), each command's outcome in its
 * slot of Bitrix24's batch shape. With `halt`, the first refused command stops the ones after it
 * (commands already in one Bitrix24 call are not stopped by a refusal inside it). A command
 * recorded and not applied yet is `true` in `result` and listed in `result_deferred` with its reason.
 */
async function batch(
  portal: string,
  body: unknown,
  request: WebhookRequest,
  deps: WebhookDeps,
  span: Span,
): Promise<HttpResult> {
  const halt = phpTruthy((body as Record<string, unknown>).halt);
  const entries = commandsOf(body);
  const slots: Slot[] = [];
  const bots = new Map<number, Promise<unknown>>();
  let halted = false;
  for (const [index, [name, command]] of entries.entries()) {
    if (index >= MAX_BATCH_COMMANDS) {
      if (halted) break;
      slots.push({
        name,
        error: {
          error: 'ERROR_BATCH_LENGTH_EXCEEDED',
          error_description: `Max batch length exceeded: ${MAX_BATCH_COMMANDS} commands run, the rest fail`,
        },
      });
      if (halt) break;
      continue;
    }
    try {
      const parsed = parseCommand(name, command);
      let allowed = bots.get(parsed.botId);
      if (!allowed) {
        allowed = deps.gateway.assertBotAllowed(portal, parsed.botId);
        bots.set(parsed.botId, allowed);
      }
      await allowed;
      slots.push({ name, request: parsed });
    } catch (error) {
      slots.push({ name, error: slotError(error) });
      if (halt) {
        halted = true;
        break;
      }
    }
  }

  // Record: one group of edits per message, in command order (the later command wins).
  await deps.calibrate?.();
  const at = deps.now?.().getTime() ?? Date.now();
  const groups = new Map<string, { key: MessageKey; edits: IncomingEdit[]; slots: Slot[] }>();
  for (const slot of slots) {
    if (!slot.request) continue;
    const key = { portal, botId: slot.request.botId, messageId: slot.request.messageId };
    const text = messageKeyText(key);
    const group = groups.get(text) ?? { key, edits: [], slots: [] };
    slot.editId = deps.newId ? deps.newId() : randomUUID();
    group.edits.push({ ...key, fields: slot.request.fields, editId: slot.editId, at, seq: '' });
    group.slots.push(slot);
    groups.set(text, group);
  }
  const { reconciler } = deps;
  const keys = [...groups.values()].map((group) => group.key);
  await reconciler.ledger.prefetch(keys, []).catch(() => undefined);
  const merged = new Map<string, MergeResult>();
  await Promise.all(
    [...groups].map(async ([text, group]) => {
      try {
        merged.set(text, await reconciler.merge(group.key, group.edits, { ahead: true }));
      } catch (error) {
        for (const slot of group.slots) slot.error = slotError(error);
      }
    }),
  );

  // Apply what was recorded, before the deadline; what is left is woken for, or said to be unscheduled.
  const states = [...merged.values()].map((result) => result.state);
  let report: ReconcileReport | undefined;
  let reason = RECORDED;
  if (merged.size > 0) {
    const hints = keys.filter((key) => merged.has(messageKeyText(key)));
    const outcome = await beforeDeadline(
      reconciler.reconcilePortal(portal, {
        mode: 'only',
        hints,
        known: states,
        knownAt: at,
        remainingMs: request.remainingMs
          ? () => (request.remainingMs?.() ?? 0) - ANSWER_RESERVE_MS
          : () => Number.MAX_SAFE_INTEGER,
        signal: request.signal,
        stats: emptyStats(),
      }),
      request.remainingMs,
    ).catch((error: unknown) => {
      logger.warn('A batch’s edits are recorded; applying them failed', {
        portal,
        code: error instanceof AppError ? error.code : 'INTERNAL_ERROR',
      });
      return 'failed' as const;
    });
    let left: MessageState[];
    if (outcome === 'deadline' || outcome === 'failed') {
      reason = outcome === 'deadline' ? 'DEADLINE' : RECORDED;
      left = states;
    } else {
      report = outcome;
      // What the run did not apply (another holder has the portal, a cadence, a backoff) is woken
      // for here, as the single update does: the holder may have looked at the dirty set already.
      left = hints.flatMap((key) => {
        // A run that found the portal held reports no states: the merged ones stand.
        const text = messageKeyText(key);
        const state = outcome.states.get(text) ?? merged.get(text)?.state;
        return state && isDirty(state) ? [state] : [];
      });
    }
    // At the deadline, straight through the portal work queue: the ledger may be why it came.
    const unscheduled = await scheduleLeft(deps, portal, left, outcome !== 'deadline');
    for (const text of unscheduled) {
      for (const slot of groups.get(text)?.slots ?? []) slot.error = slotError(new EditUnscheduledError());
    }
  }
  return batchAnswer(slots, groups, report, reason, span);
}

/**
 * Makes sure the portal is woken for recorded edits not applied yet (through its item, or straight
 * through the portal work queue when that fails or `viaLedger` is false); answers the messages
 * nothing will wake for.
 */
async function scheduleLeft(
  deps: WebhookDeps,
  portal: string,
  states: readonly MessageState[],
  viaLedger: boolean,
): Promise<string[]> {
  const dirty = states
    .filter((state) => isDirty(state))
    .map((state) => [messageKeyText(state), state] as const);
  if (dirty.length === 0) return [];
  const woken =
    viaLedger &&
    (await deps.reconciler
      .afterMerge(
        portal,
        dirty.map(([, state]) => state),
      )
      .then(() => true)
      .catch(() => false));
  if (woken) return [];
  // One wake-up at the earliest due time serves the portal's whole dirty set.
  const timing = deps.reconciler.options.timing;
  const [first] = dirty.map(([, state]) => state).sort((a, b) => dueAt(a, timing) - dueAt(b, timing));
  const at = first ? await deps.reconciler.wakeDirectly(first, first) : undefined;
  return at === undefined ? dirty.map(([text]) => text) : [];
}

function batchAnswer(
  slots: readonly Slot[],
  groups: Map<string, { key: MessageKey; slots: Slot[] }>,
  report: ReconcileReport | undefined,
  reason: string,
  span: Span,
): HttpResult {
  const result: Record<string, unknown> = {};
  const errors: Record<string, unknown> = {};
  const times: Record<string, unknown> = {};
  const deferred: Record<string, unknown> = {};
  const slotText = new Map<Slot, string>();
  for (const [text, group] of groups) for (const slot of group.slots) slotText.set(slot, text);
  const time = ownTime(span);
  for (const slot of slots) {
    if (slot.error) {
      errors[slot.name] = slot.error;
      continue;
    }
    const text = slotText.get(slot) as string;
    const fate = report?.fates.get(text);
    if (fate?.kind === 'failed') {
      errors[slot.name] = { error: fate.error.code, error_description: fate.error.description };
      continue;
    }
    result[slot.name] = { result: true };
    if (fate?.kind === 'applied') {
      times[slot.name] = { ...time, ...report?.times.get(text) };
      continue;
    }
    const why =
      fate?.kind === 'held'
        ? fate.code
        : fate?.kind === 'pending'
          ? (fate.lastError?.code ?? 'MESSAGE_CADENCE')
          : reason;
    deferred[slot.name] = { editId: slot.editId, reason: why };
  }
  logger.info('Batch answered', {
    commands: slots.length,
    applied: Object.keys(times).length,
    deferred: Object.keys(deferred).length,
    refused: Object.keys(errors).length,
  });
  return jsonResult(200, {
    result: {
      result: phpSection(result),
      result_error: phpSection(errors),
      result_total: [],
      result_next: [],
      result_time: phpSection(times),
      result_deferred: phpSection(deferred),
    },
    time,
  });
}
