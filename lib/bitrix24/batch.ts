import { isRecord } from '../is-record.ts';
import { LocalCode } from './error-table.ts';
import { bracketPairs, encodeBracketParams } from './query-string.ts';
import type { B24Time, BatchItemOutcome } from './types.ts';

/** One sub-request of a `batch` call. `key` names it in `cmd` and in every section of the answer. */
export interface BatchCommand {
  key: string;
  method: string;
  params: Record<string, unknown>;
}

/** A sub-request that produced neither a result nor an error: the batch halted earlier, or Bitrix24 dropped it. */
export interface NotRunOutcome {
  ok: false;
  code: 'NOT_RUN';
  description: string;
}

export type BatchOutcome = BatchItemOutcome | NotRunOutcome;

/** Bitrix24 refuses a batch of more than 50 sub-requests (ERROR_BATCH_LENGTH_EXCEEDED). */
export const MAX_BATCH_COMMANDS = 50;
/** Our own ceiling on a batch's cmd text; Bitrix24 documents none, and huge bodies fail as 5xx. */
export const DEFAULT_MAX_BATCH_BYTES = 512 * 1024;

/**
 * Most name=value pairs we put in one batch command. Bitrix24 parses each command with PHP's
 * parse_str, which silently drops every variable past `max_input_vars` (default 1,000): a 400-row
 * GRID is 1,203 pairs. 900 leaves room for a portal that lowered the setting a little.
 */
export const MAX_PAIRS_PER_COMMAND = 900;

/** How many variables parse_str will make of these params inside a batch command. */
export function pairCount(params: Record<string, unknown>): number {
  return bracketPairs(params).length;
}

/**
 * Whether params can go inside `batch` unchanged: they have a query-string form and stay within
 * `MAX_PAIRS_PER_COMMAND`. Anything else must be sent as a single JSON call.
 */
export function fitsInBatch(params: Record<string, unknown>): boolean {
  try {
    return pairCount(params) <= MAX_PAIRS_PER_COMMAND;
  } catch {
    return false;
  }
}

export interface PackOptions {
  /** Most sub-requests per batch, 1..50. Default 50. */
  maxCommands?: number;
  /** Most bytes of cmd text (keys plus `method?query` strings) per batch. Default 512 KiB. */
  maxBytes?: number;
}

/** The `cmd` parameter of a batch call: key → `method?bracket-encoded-params`. */
export function buildBatchCmd(commands: BatchCommand[]): Record<string, string> {
  const cmd: Record<string, string> = {};
  for (const command of commands) {
    checkCommand(command);
    if (Object.hasOwn(cmd, command.key)) {
      throw new TypeError(`Duplicate batch command key ${JSON.stringify(command.key)}`);
    }
    cmd[command.key] = commandText(command);
  }
  return cmd;
}

/**
 * Splits commands into batches, greedily and in order, each within `maxCommands` and `maxBytes`.
 * A command larger than `maxBytes` on its own goes alone in its batch: Bitrix24 will refuse it and
 * the caller sees that command fail, rather than it disappearing here.
 */
export function packBatches(commands: BatchCommand[], options: PackOptions = {}): BatchCommand[][] {
  const { maxCommands, maxBytes } = normalisePackOptions(options);
  const batches: BatchCommand[][] = [];
  const seen = new Set<string>();
  let current: BatchCommand[] = [];
  let currentBytes = 0;
  for (const command of commands) {
    checkCommand(command);
    if (seen.has(command.key)) {
      throw new TypeError(`Duplicate batch command key ${JSON.stringify(command.key)}`);
    }
    seen.add(command.key);
    const bytes = utf8Length(command.key) + utf8Length(commandText(command));
    if (current.length > 0 && (current.length >= maxCommands || currentBytes + bytes > maxBytes)) {
      batches.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(command);
    currentBytes += bytes;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

function normalisePackOptions(options: PackOptions): Required<PackOptions> {
  const { maxCommands = MAX_BATCH_COMMANDS, maxBytes = DEFAULT_MAX_BATCH_BYTES } = options;
  if (!Number.isInteger(maxCommands) || maxCommands < 1 || maxCommands > MAX_BATCH_COMMANDS) {
    throw new TypeError(
      `Expected maxCommands to be an integer from 1 to ${MAX_BATCH_COMMANDS}, got ${String(maxCommands)} (${typeof maxCommands})`,
    );
  }
  if (!Number.isInteger(maxBytes) || maxBytes < 1) {
    throw new TypeError(
      `Expected maxBytes to be a positive integer, got ${String(maxBytes)} (${typeof maxBytes})`,
    );
  }
  return { maxCommands, maxBytes };
}

function commandText({ method, params }: BatchCommand): string {
  const query = encodeBracketParams(params);
  return query === '' ? method : `${method}?${query}`;
}

function checkCommand({ key, method }: BatchCommand): void {
  // Keys become `cmd[key]` and `$result[key]` on the server: brackets would split them.
  if (typeof key !== 'string' || key === '' || /[[\]]/.test(key)) {
    throw new TypeError(`Expected a batch command key without brackets, got ${JSON.stringify(key)}`);
  }
  if (typeof method !== 'string' || !/^[A-Za-z0-9_.]+$/.test(method)) {
    throw new TypeError(`Expected a method name for batch command ${key}, got ${JSON.stringify(method)}`);
  }
}

const encoder = new TextEncoder();
function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/**
 * Reads a batch answer `{result: {result, result_error, result_time, ...}}` into one outcome per key.
 *
 * - A key in `result_error` fails with its `error` code.
 * - A key in `result` succeeds when its value is truthy: `true`, the nested `{result: true}` shape of
 *   imbot.v2 docs since June 2026, or any other object (`{id: 1}`). `false`, `null`, `0`, `''` and
 *   `{result: <falsy>}` fail with UNEXPECTED_RESULT.
 * - A key in neither is NOT_RUN (halted batch, or Bitrix24 dropped it): safe to send again.
 *
 * Sections may be `[]` (PHP's empty array) or, when the keys were 0..n-1, a JSON array.
 * Throws a plain Error when the body is not a batch answer at all; the caller classifies it.
 */
export function parseBatchResponse(keys: string[], body: unknown): Map<string, BatchOutcome> {
  const outer = isRecord(body) ? body.result : undefined;
  if (!isRecord(outer) || !('result' in outer || 'result_error' in outer)) {
    throw new Error(`Expected a batch answer {result: {result, result_error}}, got ${shapeOf(body)}`);
  }
  const results = section(outer, 'result');
  const errors = section(outer, 'result_error');
  const times = section(outer, 'result_time');
  const outcomes = new Map<string, BatchOutcome>();
  for (const key of keys) {
    outcomes.set(key, outcomeOf(key, results, errors, times));
  }
  return outcomes;
}

function outcomeOf(
  key: string,
  results: Map<string, unknown>,
  errors: Map<string, unknown>,
  times: Map<string, unknown>,
): BatchOutcome {
  if (errors.has(key)) {
    const error = errors.get(key);
    const code = isRecord(error) && typeof error.error === 'string' ? error.error : LocalCode.InvalidResponse;
    const description =
      isRecord(error) && typeof error.error_description === 'string' ? error.error_description : '';
    return { ok: false, code, description };
  }
  if (!results.has(key)) {
    return {
      ok: false,
      code: 'NOT_RUN',
      description:
        'Absent from both result and result_error: the batch halted earlier, or Bitrix24 dropped it',
    };
  }
  const result = results.get(key);
  if (!isSuccess(result)) {
    return {
      ok: false,
      code: LocalCode.UnexpectedResult,
      description: `The result was ${shapeOf(result)}, not a truthy value`,
    };
  }
  const time = times.get(key);
  return isRecord(time) ? { ok: true, result, time: time as B24Time } : { ok: true, result };
}

function isSuccess(result: unknown): boolean {
  if (isRecord(result) && 'result' in result) return Boolean(result.result);
  return Boolean(result);
}

function section(outer: Record<string, unknown>, name: string): Map<string, unknown> {
  const value = outer[name];
  if (Array.isArray(value)) return new Map(value.map((item, index) => [String(index), item]));
  if (isRecord(value)) return new Map(Object.entries(value));
  return new Map();
}

// Names the shape, never the content: bodies can be HTML error pages or echo parameters.
function shapeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).slice(0, 5);
    return keys.length === 0 ? 'an empty object' : `an object with keys ${keys.join(', ')}`;
  }
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  return `${typeof value} ${String(value)}`;
}
