// What one side (the portal or the emulator) answered to a step, reduced to what the check compares:
// the HTTP status, the shape of a success or the code of an error, never ids, times or texts.
import { isBitrix24Error } from '../../lib/bitrix24/errors.ts';
import type { CallOutcome } from '../../lib/bitrix24/types.ts';
import { isRecord } from '../../lib/is-record.ts';

export type Answer =
  /** A success: the client read a `result` from a 2xx answer. */
  | { kind: 'ok'; result: unknown; time: boolean }
  /** Bitrix24's `{error, error_description}`, or the client's own code when no usable answer came. */
  | { kind: 'error'; status: number | undefined; code: string; description: string; time: boolean }
  /** Not sent: a message the step needs was never sent on this side. */
  | { kind: 'skipped'; reason: string };

export function okAnswer(outcome: CallOutcome): Answer {
  return { kind: 'ok', result: outcome.result, time: outcome.time !== undefined };
}

/** A Bitrix24Error as an answer; anything else is not an answer and is thrown again. */
export function errorAnswer(error: unknown): Answer {
  if (!isBitrix24Error(error)) throw error;
  return {
    kind: 'error',
    status: error.httpStatus,
    code: error.code,
    description: error.description,
    time: error.time !== undefined,
  };
}

/**
 * The answer in one line, and what the two sides are compared by: `2xx {result: true} + time`,
 * `403 ACCESS_DENIED`. The client reads any 2xx as a success and does not say which one.
 */
export function summary(answer: Answer): string {
  const time = 'time' in answer && answer.time ? ' + time' : '';
  switch (answer.kind) {
    case 'ok':
      return `2xx \`${shapeOf(answer.result)}\`${time}`;
    case 'error':
      return `${answer.status ?? 'no answer'} ${answer.code}${time}`;
    case 'skipped':
      return `not sent (${answer.reason})`;
  }
}

export function sameAnswer(a: Answer, b: Answer): boolean {
  return summary(a) === summary(b);
}

/** A time object (`time`, a batch's `result_time` entries): its content is the clock's, not a shape. */
function isTimeObject(value: Record<string, unknown>): boolean {
  return typeof value.start === 'number' && typeof value.finish === 'number';
}

/**
 * The shape of a value: booleans and `null` as they are, numbers and strings by their type (ids,
 * texts), an error code (`error`) as itself, objects with their keys sorted (PHP and the emulator
 * may order them differently), `[]` and `{}` told apart (PHP's empty array is `[]`).
 */
export function shapeOf(value: unknown, key = ''): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'number') return 'number';
  if (typeof value === 'string') return key === 'error' ? JSON.stringify(value) : 'string';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[${[...new Set(value.map((item) => shapeOf(item)))].join(' | ')}]`;
  }
  if (isRecord(value)) {
    if (isTimeObject(value)) return 'time';
    const keys = Object.keys(value).sort();
    if (keys.length === 0) return '{}';
    return `{${keys.map((name) => `${name}: ${shapeOf(value[name], name)}`).join(', ')}}`;
  }
  return typeof value;
}
