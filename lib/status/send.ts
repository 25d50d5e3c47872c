import type { BatchCommand } from '../bitrix24/batch.ts';
import { buildBatchCmd, packBatches, parseBatchResponse } from '../bitrix24/batch.ts';
import { findErrorRow, isRetryable, LocalCode, Strategy } from '../bitrix24/error-table.ts';
import { Bitrix24Error, isBitrix24Error } from '../bitrix24/errors.ts';
import { UPDATE_METHOD, updateParams } from '../bitrix24/imbot.ts';
import { type DrainState, waitForRoom } from '../drain/portal-state.ts';
import type { EditFields } from '../edits/types.ts';
import { AppError } from '../errors.ts';
import { logger } from '../observability/logger.ts';
import { type PortalGateway, withBotToken } from '../portal/gateway.ts';
import type { PortalSecret } from '../secrets/index.ts';

const BATCH_NOT_ALLOWED = 'ERROR_BATCH_METHOD_NOT_ALLOWED';
/** Deferral reason when the Lambda deadline leaves no time for another request. */
export const DEADLINE_CODE = 'DEADLINE';

/** How one update ended: applied, to be deferred to the edits queue, or failed for good. */
export type SendResult =
  | { kind: 'updated' }
  | { kind: 'defer'; code: string }
  | { kind: 'failed'; code: string };

/** One changed status message of a portal; `result` is set by `sendPortalUpdates`. */
export interface StatusUpdate {
  /** Position of its spec in the input; names its command inside a batch. */
  index: number;
  botId: number;
  messageId: number;
  fields: EditFields;
  result?: SendResult;
}

export interface SendContext {
  gateway: PortalGateway;
  pacing: Pick<DrainState, 'pace' | 'penalise' | 'refusesBatch' | 'rememberBatchRefused'>;
  /** The Lambda deadline: aborts requests and pacing waits. */
  signal: AbortSignal | undefined;
  /** Epoch ms after which no request is started. */
  sendBy: number;
}

/**
 * Sends the changed messages of one portal and records a result on each: two or more go out in
 * `batch` calls (halt=0, at most 50 commands), one alone as a single update; each request waits for the
 * portal's pacer. A portal that refuses imbot.v2 inside batch gets single updates from then on.
 * Only bugs throw.
 */
export async function sendPortalUpdates(
  portal: string,
  items: StatusUpdate[],
  run: SendContext,
): Promise<void> {
  const { signal } = run;
  let secret: PortalSecret;
  try {
    secret = await run.gateway.secret(portal);
  } catch (error) {
    const result = resultOf(error);
    for (const item of items) item.result = result;
    return;
  }
  const sendable: StatusUpdate[] = [];
  for (const item of items) {
    // Checked here, before any request: one unknown bot must not fail the batch it would share.
    if (secret.bots.has(item.botId)) sendable.push(item);
    else item.result = { kind: 'failed', code: 'BOT_NOT_FOUND' };
  }

  // Set by a failure that says the portal will refuse everything for a while; the rest is deferred.
  let stop: string | undefined;
  const gate = async (): Promise<string | undefined> => {
    if (stop) return stop;
    if (signal?.aborted || Date.now() >= run.sendBy) return DEADLINE_CODE;
    const { bucket, share } = run.pacing.pace(portal, secret.limits);
    // Looked at before reserving: a token that comes too late is not taken from the drain's slice.
    if (Date.now() + waitForRoom(bucket, share) > run.sendBy) return DEADLINE_CODE;
    return (await sleep(bucket.reserve(), signal)) ? undefined : DEADLINE_CODE;
  };
  const fail = (targets: StatusUpdate[], error: unknown) => {
    const result = resultOf(error);
    for (const item of targets) item.result = result;
    if (!isBitrix24Error(error)) return;
    if (error.strategy === Strategy.RateLimit) run.pacing.penalise(portal);
    if (error.strategy === Strategy.RateLimit || error.strategy === Strategy.Overload) stop = error.code;
  };

  const singles: StatusUpdate[] = [];
  if (sendable.length === 1 || run.pacing.refusesBatch(portal)) singles.push(...sendable);
  else {
    const byKey = new Map(sendable.map((item) => [commandKey(item), item]));
    const batches = packBatches(sendable.map((item) => command(secret, item)));
    for (const batch of batches) {
      const targets = batch.map(({ key }) => byKey.get(key) as StatusUpdate);
      if (run.pacing.refusesBatch(portal)) {
        singles.push(...targets);
        continue;
      }
      const blocked = await gate();
      if (blocked) {
        for (const item of targets) item.result = { kind: 'defer', code: blocked };
        continue;
      }
      try {
        const outcomes = await sendBatch(portal, targets, run);
        for (const item of targets) {
          const outcome = outcomes.get(commandKey(item));
          if (outcome?.ok) {
            item.result = { kind: 'updated' };
          } else if (!outcome) {
            item.result = { kind: 'defer', code: 'NOT_RUN' };
          } else if (outcome.code.toUpperCase() === BATCH_NOT_ALLOWED) {
            singles.push(item);
          } else {
            item.result = codeResult(outcome.code, commandStrategy(outcome.code));
          }
        }
      } catch (error) {
        if (isBitrix24Error(error) && error.code.toUpperCase() === BATCH_NOT_ALLOWED)
          singles.push(...targets);
        else fail(targets, error);
      }
      if (singles.length > 0 && !run.pacing.refusesBatch(portal)) {
        run.pacing.rememberBatchRefused(portal);
        logger.warn('Bitrix24 refuses imbot.v2 inside batch; sending single updates', { portal });
      }
    }
  }

  for (const item of singles) {
    const blocked = await gate();
    if (blocked) {
      item.result = { kind: 'defer', code: blocked };
      continue;
    }
    try {
      await run.gateway.updateMessage(
        portal,
        { botId: item.botId, messageId: item.messageId },
        item.fields,
        signal,
      );
      item.result = { kind: 'updated' };
    } catch (error) {
      fail([item], error);
    }
  }
}

function commandKey(item: StatusUpdate): string {
  return `s${item.index}`;
}

function command(secret: PortalSecret, item: StatusUpdate): BatchCommand {
  const params = updateParams({ botId: item.botId, messageId: item.messageId }, item.fields);
  return { key: commandKey(item), method: UPDATE_METHOD, params: withBotToken(secret, params, item.botId) };
}

/** One `batch` call (halt=0); the commands are built again if the gateway recovers with a new secret. */
async function sendBatch(portal: string, targets: StatusUpdate[], run: SendContext) {
  const keys = targets.map(commandKey);
  return run.gateway.withCredentials(portal, run.signal, async (secret, client, auth) => {
    const cmd = buildBatchCmd(targets.map((item) => command(secret, item)));
    const answer = await client.call('batch', { halt: 0, cmd }, { auth, signal: run.signal });
    try {
      return parseBatchResponse(keys, { result: answer.result });
    } catch (error) {
      throw new Bitrix24Error({
        method: 'batch',
        host: client.host,
        httpStatus: 200,
        code: LocalCode.InvalidResponse,
        description: (error as Error).message,
      });
    }
  });
}

/**
 * A command's error inside a batch comes without an HTTP status. A code the table does not know is
 * taken as permanent there: the next scheduled run sends the status again anyway, whereas a deferred
 * edit that can never succeed would cycle through the drain until it reaches the dead-letter queue.
 */
function commandStrategy(code: string): Strategy {
  if (code === 'NOT_RUN') return Strategy.Server;
  return findErrorRow(code, undefined)?.strategy ?? Strategy.Permanent;
}

function codeResult(code: string, strategy: Strategy): SendResult {
  return isRetryable(strategy) ? { kind: 'defer', code } : { kind: 'failed', code };
}

function resultOf(error: unknown): SendResult {
  if (isBitrix24Error(error)) return codeResult(error.code, error.strategy);
  if (error instanceof AppError) {
    // Secrets Manager unreachable: the drain will read the secret again later.
    return error.code === 'SECRETS_UNAVAILABLE'
      ? { kind: 'defer', code: error.code }
      : { kind: 'failed', code: error.code };
  }
  logger.error('Status refresh hit an unexpected error', { error });
  return { kind: 'failed', code: 'INTERNAL_ERROR' };
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
