import { type BatchCommand, buildBatchCmd, packBatches, parseBatchResponse } from '../bitrix24/batch.ts';
import { findErrorRow, isRetryable, type Strategy } from '../bitrix24/error-table.ts';
import { isBitrix24Error } from '../bitrix24/errors.ts';
import { UPDATE_METHOD, updateParams } from '../bitrix24/imbot.ts';
import type { B24Time, CallOutcome } from '../bitrix24/types.ts';
import type { MergedEdit } from '../edits/coalesce.ts';
import { AppError } from '../errors.ts';
import { logger } from '../observability/logger.ts';
import { retryDelayMs } from '../pacing/backoff.ts';
import type { PortalCircuits } from '../pacing/circuit.ts';
import { standardPlan } from '../pacing/policies.ts';
import { BotNotAllowedError, type PortalGateway, withBotToken } from '../portal/gateway.ts';
import type { PortalSecret } from '../secrets/index.ts';
import type { ResolvedDrainOptions } from './options.ts';
import { attemptsOf } from './plan.ts';
import { type DrainState, waitForRoom } from './portal-state.ts';
import type { EditOutcome, ParsedEdit } from './types.ts';

type Edit = MergedEdit<ParsedEdit>;
export type Outcomes = Map<Edit, EditOutcome>;

/** Counters of one invocation's Bitrix24 traffic, for metrics. */
export interface CallStats {
  calls: number;
  /** Commands carried by each call, in order. */
  commandsPerCall: number[];
  rateLimited: number;
  /** Portals whose overload circuit this invocation opened. */
  circuitsOpened: string[];
}

export interface ApplyContext {
  gateway: PortalGateway;
  state: DrainState;
  circuits: PortalCircuits;
  options: ResolvedDrainOptions;
  /** Milliseconds left in the invocation. */
  remainingMs: () => number;
  signal: AbortSignal | undefined;
  now: () => number;
  random: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  stats: CallStats;
}

interface Failure {
  code: string;
  description: string;
  strategy: Strategy;
  time?: B24Time | undefined;
  retryAfterSeconds?: number | undefined;
  /** A delay decided by the drain itself (deadline hand-back, rate token too far away). */
  delayMs?: number;
}

type Unit =
  | { kind: 'batch'; commands: Array<BatchCommand & { edit: Edit }> }
  | { kind: 'single'; edit: Edit };

const BATCH_REFUSED = 'ERROR_BATCH_METHOD_NOT_ALLOWED';

/** Applies merged edits, portal by portal (portals in parallel), and says what became of each. */
export async function applyEdits(edits: readonly Edit[], ctx: ApplyContext): Promise<Outcomes> {
  const byPortal = Map.groupBy(edits, (edit) => edit.portal);
  const outcomes: Outcomes = new Map();
  await Promise.all(
    [...byPortal].map(async ([portal, portalEdits]) => {
      for (const [edit, outcome] of await applyPortal(portal, portalEdits, ctx)) outcomes.set(edit, outcome);
    }),
  );
  return outcomes;
}

async function applyPortal(portal: string, edits: Edit[], ctx: ApplyContext): Promise<Outcomes> {
  const outcomes: Outcomes = new Map();
  let secret: PortalSecret;
  try {
    secret = await ctx.gateway.secret(portal);
  } catch (error) {
    const failure = failureOf(error);
    for (const edit of edits) outcomes.set(edit, outcomeOf(failure, edit, ctx, undefined));
    return outcomes;
  }
  const units: Unit[] = [];
  const commands: Array<BatchCommand & { edit: Edit }> = [];
  for (const [i, edit] of edits.entries()) {
    if (!secret.bots.has(edit.botId)) {
      const refused = new BotNotAllowedError(portal, edit.botId);
      outcomes.set(edit, { kind: 'failed', code: refused.code, description: refused.message });
      continue;
    }
    const command = { key: `e${i}`, method: UPDATE_METHOD, params: updateParams(edit, edit.fields), edit };
    try {
      buildBatchCmd([command]);
      commands.push(command);
    } catch (error) {
      // Fields that have no bracket form can still go as JSON in a single call.
      logger.warn('Edit cannot be encoded for batch; sending it alone', { portal, reason: String(error) });
      units.push({ kind: 'single', edit });
    }
  }
  if (ctx.state.refusesBatch(portal)) {
    units.push(...commands.map(({ edit }): Unit => ({ kind: 'single', edit })));
  } else {
    const batches = packBatches(commands, { maxCommands: ctx.options.maxCommandsPerCall });
    units.unshift(...batches.map((batch): Unit => ({ kind: 'batch', commands: batch as typeof commands })));
  }

  for (let unit = units.shift(); unit; unit = units.shift()) {
    const unitEdits = unit.kind === 'batch' ? unit.commands.map((c) => c.edit) : [unit.edit];
    const held = await gate(portal, secret, ctx);
    if (held) {
      for (const edit of unitEdits) outcomes.set(edit, outcomeOf(held, edit, ctx, secret));
      continue;
    }
    const results =
      unit.kind === 'batch' ? await callBatch(portal, unit, ctx) : await callSingle(portal, unit.edit, ctx);
    for (const [edit, result] of results) {
      if (result === 'applied') {
        outcomes.set(edit, { kind: 'applied' });
      } else if (result.code.toUpperCase() === BATCH_REFUSED && unit.kind === 'batch') {
        if (!ctx.state.refusesBatch(portal))
          logger.warn('Portal refuses imbot.v2 in batch; sending single calls from now on', { portal });
        ctx.state.rememberBatchRefused(portal);
        units.push({ kind: 'single', edit });
      } else {
        outcomes.set(edit, outcomeOf(result, edit, ctx, secret));
      }
    }
  }
  return outcomes;
}

/**
 * Before a call: an open circuit, a deadline too close for one more request, or a rate token too
 * far away hold the work back. A token that comes in time is waited for here (pacing).
 */
async function gate(portal: string, secret: PortalSecret, ctx: ApplyContext): Promise<Failure | undefined> {
  if (ctx.circuits.openUntil(portal) !== undefined) {
    return { code: 'OVERLOAD_LIMIT', description: 'The portal’s circuit is open', strategy: 'overload' };
  }
  const spare = ctx.remainingMs() - ctx.options.callTimeoutMs - ctx.options.deadlineMarginMs;
  if (spare < 0) {
    return {
      code: 'DEADLINE',
      description: 'Not enough time left in the invocation for another call',
      strategy: 'server',
      delayMs: ctx.options.handBackDelayMs,
    };
  }
  const { bucket, share } = ctx.state.pace(portal, secret.limits);
  const wait = waitForRoom(bucket, share);
  if (wait > spare) {
    return {
      code: 'RATE_PACED',
      description: `The next rate token is ${wait} ms away`,
      strategy: 'rate-limit',
      delayMs: wait,
    };
  }
  await ctx.sleep(bucket.reserve(), ctx.signal);
  return undefined;
}

async function callBatch(
  portal: string,
  unit: Extract<Unit, { kind: 'batch' }>,
  ctx: ApplyContext,
): Promise<Map<Edit, 'applied' | Failure>> {
  const results = new Map<Edit, 'applied' | Failure>();
  const byKey = new Map(unit.commands.map((c) => [c.key, c.edit]));
  let answer: { outcome: CallOutcome | undefined; keys: string[] };
  try {
    answer = await ctx.gateway.withCredentials(portal, ctx.signal, async (secret, client, auth) => {
      const cmd: Record<string, string> = {};
      for (const { key, method, params, edit } of unit.commands) {
        try {
          Object.assign(
            cmd,
            buildBatchCmd([{ key, method, params: withBotToken(secret, params, edit.botId) }]),
          );
        } catch (error) {
          if (!(error instanceof BotNotAllowedError)) throw error;
          results.set(edit, failureOf(error));
        }
      }
      const keys = Object.keys(cmd);
      if (keys.length === 0) return { outcome: undefined, keys };
      ctx.stats.calls += 1;
      ctx.stats.commandsPerCall.push(keys.length);
      return { outcome: await client.call('batch', { halt: 0, cmd }, { auth, signal: ctx.signal }), keys };
    });
  } catch (error) {
    const failure = failureOf(error);
    noteFailure(portal, failure, ctx);
    for (const edit of byKey.values()) if (!results.has(edit)) results.set(edit, failure);
    return results;
  }
  if (!answer.outcome) return results;
  noteAnswer(portal, answer.outcome.time, ctx);
  let parsed: ReturnType<typeof parseBatchResponse>;
  try {
    parsed = parseBatchResponse(answer.keys, { result: answer.outcome.result });
  } catch (error) {
    const failure: Failure = { code: 'INVALID_RESPONSE', description: String(error), strategy: 'server' };
    for (const key of answer.keys) results.set(byKey.get(key) as Edit, failure);
    return results;
  }
  for (const [key, outcome] of parsed) {
    const edit = byKey.get(key) as Edit;
    if (outcome.ok) {
      if (outcome.time) ctx.state.rememberTime(portal, outcome.time);
      results.set(edit, 'applied');
      continue;
    }
    // Inside a batch there is no HTTP status: known codes by the table, unknown ones are the request's fault.
    const strategy: Strategy =
      outcome.code === 'NOT_RUN'
        ? 'server'
        : (findErrorRow(outcome.code, undefined)?.strategy ?? 'permanent');
    const failure: Failure = { code: outcome.code, description: outcome.description, strategy };
    noteFailure(portal, failure, ctx);
    results.set(edit, failure);
  }
  return results;
}

async function callSingle(
  portal: string,
  edit: Edit,
  ctx: ApplyContext,
): Promise<Map<Edit, 'applied' | Failure>> {
  ctx.stats.calls += 1;
  ctx.stats.commandsPerCall.push(1);
  try {
    const outcome = await ctx.gateway.updateMessage(portal, edit, edit.fields, ctx.signal);
    noteAnswer(portal, outcome.time, ctx);
    return new Map([[edit, 'applied']]);
  } catch (error) {
    const failure = failureOf(error);
    noteFailure(portal, failure, ctx);
    return new Map([[edit, failure]]);
  }
}

/** Any answer from Bitrix24 proves its REST API is not blocked. */
function noteAnswer(portal: string, time: B24Time | undefined, ctx: ApplyContext): void {
  ctx.state.rememberTime(portal, time);
  ctx.circuits.close(portal);
}

function noteFailure(portal: string, failure: Failure, ctx: ApplyContext): void {
  if (failure.strategy === 'rate-limit') {
    ctx.stats.rateLimited += 1;
    ctx.state.penalise(portal);
  } else if (failure.strategy === 'overload' && ctx.circuits.openUntil(portal) === undefined) {
    const until = ctx.circuits.open(portal);
    ctx.stats.circuitsOpened.push(portal);
    logger.error('Bitrix24 blocked the portal’s REST API (OVERLOAD_LIMIT); circuit open', {
      portal,
      openUntil: new Date(until).toISOString(),
    });
  }
}

function failureOf(error: unknown): Failure {
  if (isBitrix24Error(error)) {
    return {
      code: error.code,
      description: error.description || error.message,
      strategy: error.strategy,
      time: error.time,
      retryAfterSeconds: error.retryAfterSeconds,
    };
  }
  if (error instanceof AppError) {
    // Secrets Manager unreachable may pass; a missing or broken secret needs an operator.
    const strategy: Strategy =
      error.status >= 500 && error.code === 'SECRETS_UNAVAILABLE' ? 'server' : 'permanent';
    return { code: error.code, description: error.message, strategy };
  }
  logger.error('Unexpected error while applying edits', { error });
  return {
    code: 'DRAIN_ERROR',
    description: error instanceof Error ? error.name : 'unknown error',
    strategy: 'server',
  };
}

function outcomeOf(
  failure: Failure,
  edit: Edit,
  ctx: ApplyContext,
  secret: PortalSecret | undefined,
): EditOutcome {
  const { code, description, strategy } = failure;
  if (!isRetryable(strategy)) return { kind: 'failed', code, description };
  if (failure.delayMs !== undefined) {
    return {
      kind: 'deferred',
      code,
      description,
      delayMs: Math.min(failure.delayMs, ctx.options.maxDeferralMs),
    };
  }
  const time = failure.time ?? (strategy === 'operating-limit' ? ctx.state.lastTime(edit.portal) : undefined);
  const delay = retryDelayMs({
    strategy,
    attempt: attemptsOf(edit),
    now: ctx.now(),
    random: ctx.random,
    // The whole portal's limits: they set how fast Bitrix24's bucket drains.
    limits: secret?.limits ?? standardPlan,
    policy: ctx.options.serverBackoff,
    ...(time ? { time } : {}),
    ...(failure.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: failure.retryAfterSeconds }),
    ...(strategy === 'overload' ? circuitOf(edit.portal, ctx) : {}),
  });
  return { kind: 'deferred', code, description, delayMs: Math.min(delay, ctx.options.maxDeferralMs) };
}

function circuitOf(portal: string, ctx: ApplyContext): { circuitOpenUntil?: number } {
  const until = ctx.circuits.openUntil(portal);
  return until === undefined ? {} : { circuitOpenUntil: until };
}
