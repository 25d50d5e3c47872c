import { fitsInBatch, packBatches, parseBatchResponse } from '../bitrix24/batch.ts';
import { callerStatusOf, findErrorRow, isRetryable, Strategy } from '../bitrix24/error-table.ts';
import { isBitrix24Error } from '../bitrix24/errors.ts';
import { UPDATE_METHOD, updateParams } from '../bitrix24/imbot.ts';
import type { B24Time } from '../bitrix24/types.ts';
import type { EditFields } from '../edits/types.ts';
import { leavesMessageEmpty } from '../edits/validate.ts';
import { AppError } from '../errors.ts';
import type { MessageKey } from '../ledger/model.ts';
import { logger } from '../observability/logger.ts';
import { retryDelayMs } from '../pacing/backoff.ts';
import type { PortalCircuits } from '../pacing/circuit.ts';
import { operatingLimitRetry, standardPlan } from '../pacing/policies.ts';
import { BotNotAllowedError, type PortalGateway } from '../portal/gateway.ts';
import type { PortalSecret } from '../secrets/index.ts';
import { ACCESS_DENIED, judgeAccessDenied } from './access-denied.ts';
import { LeaseLostError } from './lease.ts';
import { type PortalPacing, waitForRoom } from './pacing.ts';

/** One message's whole desired state, to be sent as one update command. */
export interface Job {
  key: MessageKey;
  version: number;
  fields: EditFields;
  /** Failed calls of this message so far (for backoff). */
  attempts: number;
}

/** Why a job did not apply. */
export interface Failure {
  code: string;
  description: string;
  strategy: Strategy;
  /** What our API answers its caller when this failure is final (from the error table). */
  callerStatus?: number | undefined;
  time?: B24Time | undefined;
  retryAfterSeconds?: number | undefined;
}

/** What became of one job. */
export type JobResult =
  /** Bitrix24 answered success for the call started at `startedAt`. */
  | { kind: 'applied'; startedAt: number; time?: B24Time | undefined }
  /** A call carried it and failed in a way waiting may cure; `inDoubt` when it may still have landed. */
  | { kind: 'retry'; failure: Failure; delayMs: number; startedAt: number; inDoubt: boolean }
  /** Not sent: the circuit is open, the pacer or the deadline holds it back. */
  | { kind: 'held'; failure: Failure; delayMs: number }
  /** Waiting cannot help. */
  | { kind: 'failed'; failure: Failure; startedAt?: number | undefined };

/** Counters of one invocation's Bitrix24 traffic, for metrics. */
export interface CallStats {
  calls: number;
  /** Commands carried by each call, in order. */
  commandsPerCall: number[];
  rateLimited: number;
  /** Portals whose overload circuit this invocation opened. */
  circuitsOpened: string[];
}

export function emptyStats(): CallStats {
  return { calls: 0, commandsPerCall: [], rateLimited: 0, circuitsOpened: [] };
}

export interface SendContext {
  gateway: PortalGateway;
  pacing: PortalPacing;
  circuits: PortalCircuits;
  /**
   * The drain and the sweep: keep the API's headroom free and wait for room. Otherwise (the API):
   * take from the same bucket up to its whole burst, waiting at most one token's time.
   */
  paced: boolean;
  /** Milliseconds left in the invocation. */
  remainingMs: () => number;
  callTimeoutMs: number;
  deadlineMarginMs: number;
  /** Delay of work held back by the deadline, in ms. */
  handBackDelayMs: number;
  /** Longest delay any deferral gets, in ms (a method found spent is held no longer either). */
  maxDeferralMs: number;
  serverBackoff: { baseMs: number; capMs: number };
  signal: AbortSignal | undefined;
  now: () => number;
  random: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  stats: CallStats;
  /**
   * Right before each HTTP request: confirms that the sender may call the portal now and resolves
   * with the call's start, or rejects with `LeaseLostError` and the call stays unsent. Default: now.
   */
  claim?: (() => Promise<number>) | undefined;
}

/** Our code for work not sent because the portal's lease passed to another reconciler first. */
export const LEASE_LOST = 'LEASE_LOST';

const BATCH_REFUSED = 'ERROR_BATCH_METHOD_NOT_ALLOWED';
/**
 * The methods whose operating-time budget a call spends. The docs bill a batch's commands to their
 * own method; a measurement published with the JS SDK found the whole call billed to `batch`: both
 * are tracked, and a call waits for whichever is further spent.
 */
const BATCH_BILLING = ['batch', UPDATE_METHOD] as const;
const SINGLE_BILLING = [UPDATE_METHOD] as const;
/** Our code for a call held back to keep a method inside its operating-time budget. */
export const OPERATING_BUDGET = 'OPERATING_BUDGET';
/** Codes that mean the request may have run on the portal even though no answer said so. */
const AMBIGUOUS = Strategy.Server;
/** Our code for a desired state that would delete the message if sent (see `leavesMessageEmpty`). */
export const MESSAGE_WOULD_BE_EMPTY = 'MESSAGE_WOULD_BE_EMPTY';

/**
 * The one place that knows how edits reach a portal: the bot allow-list, packing into `batch` calls
 * (or single calls where the portal refuses imbot in batch), pacing, the circuit, the deadline, and
 * per-command classification. Sends one unit of work (one batch call of up to 50 jobs, or the
 * single calls of a portal that refuses batch) and says what became of each job.
 */
export async function sendJobs(
  portal: string,
  jobs: readonly Job[],
  ctx: SendContext,
): Promise<Map<Job, JobResult>> {
  const results = new Map<Job, JobResult>();
  let secret: PortalSecret;
  try {
    secret = await ctx.gateway.secret(portal);
  } catch (error) {
    const failure = failureOf(error);
    for (const job of jobs) results.set(job, afterFailure(failure, job, ctx, undefined, undefined));
    return results;
  }
  const batchable: Job[] = [];
  const singles: Job[] = [];
  for (const job of jobs) {
    if (!secret.bots.has(job.key.botId)) {
      const refused = new BotNotAllowedError(portal, job.key.botId);
      results.set(job, {
        kind: 'failed',
        failure: {
          code: refused.code,
          description: refused.message,
          strategy: Strategy.Permanent,
          callerStatus: refused.status,
        },
      });
    } else if (leavesMessageEmpty(job.fields)) {
      // Each edit was checked; merged, they can still ask for this (an empty text with an attach,
      // then the attach removed). Sent, Bitrix24 would delete the message.
      results.set(job, {
        kind: 'failed',
        failure: {
          code: MESSAGE_WOULD_BE_EMPTY,
          description:
            'The message’s edits leave it with an empty text and no attach, which Bitrix24 answers by deleting the message: send a text, or keep an attach',
          strategy: Strategy.Permanent,
          callerStatus: 400,
        },
      });
    } else if (ctx.pacing.refusesBatch(portal) || jobs.length === 1 || !encodable(job)) {
      singles.push(job);
    } else {
      batchable.push(job);
    }
  }
  for (const batch of packBatches(batchable.map((job, i) => ({ ...commandOf(job, `m${i}`), job })))) {
    const held = await gate(portal, secret, ctx, BATCH_BILLING, batch.length);
    const batchJobs = batch.map((command) => (command as ReturnType<typeof commandOf> & { job: Job }).job);
    if (held) {
      for (const job of batchJobs) results.set(job, held);
      continue;
    }
    for (const [job, result] of await callBatch(portal, batchJobs, secret, ctx)) {
      if (result === 'refused') singles.push(job);
      else results.set(job, result);
    }
  }
  for (const job of singles) {
    const held = await gate(portal, secret, ctx, SINGLE_BILLING, 1);
    if (held) {
      results.set(job, held);
      continue;
    }
    results.set(job, await callSingle(portal, job, secret, ctx));
  }
  return results;
}

function commandOf(job: Job, key: string) {
  return { key, method: UPDATE_METHOD, params: updateParams(job.key, job.fields), botId: job.key.botId };
}

/**
 * Fields that have no bracket form, or more pairs than PHP's max_input_vars lets through inside
 * `batch`, can still go whole as JSON in a single call.
 */
function encodable(job: Job): boolean {
  return fitsInBatch(commandOf(job, 'm').params);
}

/**
 * Before a call: an open circuit, a deadline too close for one more request, or a rate token too
 * far away hold the work back. A token that comes in time is waited for here (pacing).
 */
async function gate(
  portal: string,
  secret: PortalSecret,
  ctx: SendContext,
  billing: readonly string[],
  commands: number,
): Promise<JobResult | undefined> {
  const until = ctx.circuits.openUntil(portal);
  if (until !== undefined) {
    return {
      kind: 'held',
      failure: {
        code: 'OVERLOAD_LIMIT',
        description: 'The portal’s circuit is open',
        strategy: Strategy.Overload,
      },
      delayMs: Math.max(0, until - ctx.now()),
    };
  }
  const spare = ctx.remainingMs() - ctx.callTimeoutMs - ctx.deadlineMarginMs;
  if (spare < 0 || ctx.signal?.aborted) {
    return {
      kind: 'held',
      failure: {
        code: 'DEADLINE',
        description: 'Not enough time left in the invocation for another call',
        strategy: Strategy.Server,
      },
      delayMs: ctx.handBackDelayMs,
    };
  }
  // The drain and the sweep fill the shared bucket up to all but the API's headroom and wait for
  // room; the API may fill it up to the whole burst, and waits at most one token's time.
  const pace = ctx.pacing.pace(portal, secret.limits);
  const wait = waitForRoom(pace, ctx.paced ? pace.backgroundCap : pace.apiCap);
  const patience = ctx.paced ? spare : Math.min(spare, Math.ceil(1000 / pace.perSecond));
  if (wait > patience) {
    return {
      kind: 'held',
      failure: {
        code: 'RATE_PACED',
        description: `The next rate token is ${wait} ms away`,
        strategy: Strategy.RateLimit,
      },
      delayMs: wait,
    };
  }
  // Operating time: past the threshold the rest of the budget is spread; a call that would cross
  // the limit waits for baskets to drop. The drain waits while its invocation lasts; the API does not.
  const operatingWait = ctx.pacing.operatingWait(portal, billing, commands);
  if (operatingWait > patience) {
    return {
      kind: 'held',
      failure: {
        code: OPERATING_BUDGET,
        description: `Bitrix24's operating-time budget of ${billing.join(' / ')} is nearly spent; the next call is due in ${operatingWait} ms`,
        strategy: Strategy.OperatingLimit,
      },
      delayMs: operatingWait,
    };
  }
  pace.bucket.reserve();
  await ctx.sleep(Math.max(wait, operatingWait), ctx.signal);
  return undefined;
}

async function callBatch(
  portal: string,
  jobs: Job[],
  secret: PortalSecret,
  ctx: SendContext,
): Promise<Map<Job, JobResult | 'refused'>> {
  const results = new Map<Job, JobResult | 'refused'>();
  const commands = jobs.map((job, i) => commandOf(job, `m${i}`));
  const call = claimed(portal, ctx, commands.length);
  let answer: unknown;
  let startedAt: number;
  try {
    const outcome = await ctx.gateway.batch(portal, commands, { signal: ctx.signal, beforeSend: call.claim });
    startedAt = call.startedAt();
    noteAnswer(portal, outcome.time, ctx);
    noteOperating(portal, 'batch', outcome.time, startedAt, commands.length, ctx);
    answer = outcome.result;
  } catch (error) {
    if (error instanceof LeaseLostError) {
      for (const job of jobs) results.set(job, leaseLost(error, ctx));
      return results;
    }
    if (isBitrix24Error(error) && error.code.toUpperCase() === BATCH_REFUSED) {
      refuseBatch(portal, ctx);
      for (const job of jobs) results.set(job, 'refused');
      return results;
    }
    const failure = await judgeAccessDenied(portal, failureOf(error), 'batch-call', ctx);
    noteFailure(portal, failure, ctx, BATCH_BILLING);
    for (const job of jobs) results.set(job, afterFailure(failure, job, ctx, secret, call.sentAt));
    return results;
  }
  let parsed: ReturnType<typeof parseBatchResponse>;
  try {
    parsed = parseBatchResponse(
      commands.map((c) => c.key),
      { result: answer },
    );
  } catch (error) {
    const failure: Failure = {
      code: 'INVALID_RESPONSE',
      description: String(error),
      strategy: Strategy.Server,
    };
    for (const job of jobs) results.set(job, afterFailure(failure, job, ctx, secret, startedAt));
    return results;
  }
  // Each command's `operating` is its method's (or, billed per batch, the batch's): the last is the most.
  const commandTimes = [...parsed.values()].flatMap((o) => (o.ok && o.time ? [o.time] : []));
  const commandOperating = Math.max(...commandTimes.map((t) => t.operating ?? Number.NEGATIVE_INFINITY));
  if (Number.isFinite(commandOperating)) {
    // The first command started the basket, if this call did.
    const firstServed = Math.min(...commandTimes.map((t) => servedAt(t) ?? Number.POSITIVE_INFINITY));
    ctx.pacing.noteOperating(portal, UPDATE_METHOD, {
      startedAt,
      servedAt: Number.isFinite(firstServed) ? firstServed : undefined,
      commands: commandTimes.length,
      operating: commandOperating,
    });
  }
  // Every command refused as ACCESS_DENIED: the portal's REST access, or each message? (access-denied.ts)
  const refusals = jobs.map((_, i) => parsed.get(`m${i}`));
  const everyOneDenied =
    jobs.length > 1 &&
    refusals.every((outcome) => outcome && !outcome.ok && outcome.code.toUpperCase() === ACCESS_DENIED);
  const denied = everyOneDenied
    ? await judgeAccessDenied(
        portal,
        { code: ACCESS_DENIED, description: '', strategy: Strategy.Permanent },
        'every-command',
        ctx,
      )
    : undefined;
  for (const [i, job] of jobs.entries()) {
    const outcome = parsed.get(`m${i}`);
    if (outcome?.ok) {
      if (outcome.time) ctx.pacing.rememberTime(portal, outcome.time);
      results.set(job, { kind: 'applied', startedAt, time: outcome.time });
      continue;
    }
    const code = outcome?.code ?? 'NOT_RUN';
    if (code.toUpperCase() === BATCH_REFUSED) {
      refuseBatch(portal, ctx);
      results.set(job, 'refused');
      continue;
    }
    // Inside a batch there is no HTTP status: known codes by the table, unknown ones are the request's fault.
    const strategy: Strategy =
      code === 'NOT_RUN'
        ? Strategy.Server
        : (findErrorRow(code, undefined, outcome?.description)?.strategy ?? Strategy.Permanent);
    const own: Failure = { code, description: outcome?.description ?? '', strategy };
    const failure: Failure =
      denied && strategy === Strategy.Permanent
        ? { ...denied, description: `${own.description}${denied.description}` }
        : own;
    noteFailure(portal, failure, ctx, SINGLE_BILLING);
    // A command that answered (or never ran) did not land later: not in doubt.
    const result = afterFailure(failure, job, ctx, secret, startedAt);
    results.set(job, result.kind === 'retry' ? { ...result, inDoubt: false } : result);
  }
  return results;
}

async function callSingle(
  portal: string,
  job: Job,
  secret: PortalSecret,
  ctx: SendContext,
): Promise<JobResult> {
  const call = claimed(portal, ctx, 1);
  try {
    const outcome = await ctx.gateway.updateMessage(portal, job.key, job.fields, {
      signal: ctx.signal,
      beforeSend: call.claim,
    });
    const startedAt = call.startedAt();
    noteAnswer(portal, outcome.time, ctx);
    noteOperating(portal, UPDATE_METHOD, outcome.time, startedAt, 1, ctx);
    return { kind: 'applied', startedAt, time: outcome.time };
  } catch (error) {
    if (error instanceof LeaseLostError) return leaseLost(error, ctx);
    const failure = await judgeAccessDenied(portal, failureOf(error), 'single-call', ctx);
    noteFailure(portal, failure, ctx, SINGLE_BILLING);
    const result = afterFailure(failure, job, ctx, secret, call.sentAt);
    // An ACCESS_DENIED retried because its meaning could not be told was answered: not in doubt.
    return failure.code === ACCESS_DENIED && result.kind === 'retry' ? { ...result, inDoubt: false } : result;
  }
}

/**
 * One call's claim on the portal: made before each request leaves (the gateway repeats a request
 * after an auth recovery), counted once. `sentAt` is the start of the last request sent, undefined
 * while none left: what may still land is dated from it.
 */
function claimed(portal: string, ctx: SendContext, commands: number) {
  const call = {
    sentAt: undefined as number | undefined,
    claim: async (): Promise<void> => {
      const at = ctx.claim ? await ctx.claim() : ctx.now();
      if (call.sentAt === undefined) {
        ctx.stats.calls += 1;
        ctx.stats.commandsPerCall.push(commands);
      }
      ctx.pacing.noteCall(portal, at);
      call.sentAt = at;
    },
    /** After an answer: a request left, so there is a start. */
    startedAt: (): number => call.sentAt ?? ctx.now(),
  };
  return call;
}

function leaseLost(error: LeaseLostError, ctx: SendContext): JobResult {
  return {
    kind: 'held',
    failure: { code: LEASE_LOST, description: error.message, strategy: Strategy.Server },
    delayMs: ctx.handBackDelayMs,
  };
}

function refuseBatch(portal: string, ctx: SendContext): void {
  if (!ctx.pacing.refusesBatch(portal))
    logger.warn('Portal refuses imbot.v2 in batch; sending single calls from now on', { portal });
  ctx.pacing.rememberBatchRefused(portal);
}

/** Any answer from Bitrix24 proves its REST API is not blocked. */
function noteAnswer(portal: string, time: B24Time | undefined, ctx: SendContext): void {
  ctx.pacing.rememberTime(portal, time);
  ctx.circuits.close(portal);
}

/** What an answer's `time` says of the operating time of the method the call was billed to. */
function noteOperating(
  portal: string,
  method: string,
  time: B24Time | undefined,
  startedAt: number,
  commands: number,
  ctx: SendContext,
): void {
  if (typeof time?.operating === 'number') {
    ctx.pacing.noteOperating(portal, method, {
      startedAt,
      servedAt: servedAt(time),
      commands,
      operating: time.operating,
    });
  }
}

/** When the portal says a call started (`time.start`, Unix seconds), in epoch ms. */
function servedAt(time: B24Time): number | undefined {
  return typeof time.start === 'number' && Number.isFinite(time.start) ? time.start * 1000 : undefined;
}

function noteFailure(portal: string, failure: Failure, ctx: SendContext, billing: readonly string[]): void {
  if (failure.strategy === Strategy.OperatingLimit) {
    // Spent by calls we did not see (or a reading of the docs that does not hold): wait it out.
    // Until the reset Bitrix24 last named (one basket when unknown or past), never past the longest deferral.
    const resetAt = (failure.time ?? ctx.pacing.lastTime(portal))?.operating_reset_at;
    const now = ctx.now();
    const reset =
      resetAt !== undefined && resetAt * 1000 > now
        ? resetAt * 1000
        : now + operatingLimitRetry.unknownResetMs;
    ctx.pacing.operatingSpent(portal, billing, Math.min(now + ctx.maxDeferralMs, reset));
  } else if (failure.strategy === Strategy.RateLimit) {
    ctx.stats.rateLimited += 1;
    ctx.pacing.penalise(portal);
  } else if (failure.strategy === Strategy.Overload && ctx.circuits.openUntil(portal) === undefined) {
    const until = ctx.circuits.open(portal);
    ctx.stats.circuitsOpened.push(portal);
    logger.error('Bitrix24 blocked the portal’s REST API (OVERLOAD_LIMIT); circuit open', {
      portal,
      openUntil: new Date(until).toISOString(),
    });
  }
}

export function failureOf(error: unknown): Failure {
  if (isBitrix24Error(error)) {
    return {
      code: error.code,
      // The message names the method and the portal host: an operator can tell which portal to fix.
      description: error.message,
      strategy: error.strategy,
      callerStatus: callerStatusOf(error.code, error.httpStatus, error.description),
      time: error.time,
      retryAfterSeconds: error.retryAfterSeconds,
    };
  }
  if (error instanceof AppError) {
    // Secrets Manager unreachable may pass; a missing or broken secret needs an operator.
    const strategy: Strategy =
      error.status >= 500 && error.code === 'SECRETS_UNAVAILABLE' ? Strategy.Server : Strategy.Permanent;
    return { code: error.code, description: error.message, strategy, callerStatus: error.status };
  }
  logger.error('Unexpected error while applying edits', { error });
  return {
    code: 'RECONCILE_ERROR',
    description: error instanceof Error ? error.name : 'unknown error',
    strategy: Strategy.Server,
  };
}

/** A failure's consequence for one job: retry after a delay by the backoff rules, or fail. */
function afterFailure(
  failure: Failure,
  job: Job,
  ctx: SendContext,
  secret: PortalSecret | undefined,
  startedAt: number | undefined,
): JobResult {
  if (!isRetryable(failure.strategy)) return { kind: 'failed', failure, startedAt };
  const time =
    failure.time ??
    (failure.strategy === Strategy.OperatingLimit ? ctx.pacing.lastTime(job.key.portal) : undefined);
  const until = ctx.circuits.openUntil(job.key.portal);
  const delayMs = retryDelayMs({
    strategy: failure.strategy,
    attempt: job.attempts + 1,
    now: ctx.now(),
    random: ctx.random,
    // The whole portal's limits: they set how fast Bitrix24's bucket drains.
    limits: secret?.limits ?? standardPlan,
    policy: ctx.serverBackoff,
    ...(time ? { time } : {}),
    ...(failure.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: failure.retryAfterSeconds }),
    ...(failure.strategy === Strategy.Overload && until !== undefined ? { circuitOpenUntil: until } : {}),
  });
  if (startedAt === undefined) return { kind: 'held', failure, delayMs };
  return { kind: 'retry', failure, delayMs, startedAt, inDoubt: failure.strategy === AMBIGUOUS };
}
