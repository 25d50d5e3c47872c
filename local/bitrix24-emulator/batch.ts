import { phpSection } from '../../lib/bitrix24/query-string.ts';
import { fail, failure, type Outcome, ok } from './outcome.ts';
import { parsePhpQuery, phpTruthy } from './php-query.ts';
import type { B24Time } from './time-object.ts';

export const MAX_BATCH_COMMANDS = 50;

export interface BatchCommandResult {
  outcome: Outcome;
  time: B24Time | undefined;
}

export interface BatchRunner {
  /** True when one of these methods makes the server refuse the whole batch call. */
  refusesCall(methods: readonly string[]): boolean;
  run(key: string, method: string, params: Record<string, unknown>): BatchCommandResult;
}

interface Command {
  key: string;
  text: string;
}

function commandsOf(cmd: unknown): Command[] {
  if (typeof cmd !== 'object' || cmd === null) return [];
  return Object.entries(cmd).map(([key, value]) => ({
    key,
    text: typeof value === 'string' ? value : String(value),
  }));
}

function methodOf(text: string): string {
  const q = text.indexOf('?');
  return q === -1 ? text : text.slice(0, q);
}

/** `$result[cmd][field]…` refers to an earlier command's result; unresolved references stay literal text. */
function substitute(text: string, results: Record<string, unknown>): string {
  return text.replace(/\$result((?:\[[^\]]*\])+)/g, (whole, path: string) => {
    let value: unknown = results;
    for (const [, segment] of path.matchAll(/\[([^\]]*)\]/g)) {
      if (typeof value !== 'object' || value === null) return whole;
      value = (value as Record<string, unknown>)[segment ?? ''];
    }
    return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
      ? encodeURIComponent(String(value))
      : whole;
  });
}

/**
 * Runs the first 50 commands; each one past 50 fails on its own with ERROR_BATCH_LENGTH_EXCEEDED
 * (the batch page: "extras fail"), and the call as a whole succeeds. Only a command that succeeded
 * gets a `result_time` entry. Each command's query goes through parse_str, `max_input_vars` included.
 */
export function runBatch(params: Record<string, unknown>, runner: BatchRunner): Outcome {
  const all = commandsOf(params.cmd);
  const commands = all.slice(0, MAX_BATCH_COMMANDS);
  if (runner.refusesCall(commands.map((c) => methodOf(c.text))))
    return fail('ERROR_BATCH_METHOD_NOT_ALLOWED');
  const halt = phpTruthy(params.halt);

  const results: Record<string, unknown> = {};
  const errors: Record<string, unknown> = {};
  const times: Record<string, unknown> = {};
  for (const { key, text } of commands) {
    const resolved = substitute(text, results);
    const q = resolved.indexOf('?');
    const query = q === -1 ? '' : resolved.slice(q + 1);
    const { outcome, time } = runner.run(key, methodOf(resolved), parsePhpQuery(query));
    if (outcome.ok) {
      results[key] = outcome.result;
      if (time) times[key] = time;
    } else {
      errors[key] = { error: outcome.code, error_description: outcome.description };
      if (halt) break;
    }
  }
  const halted = halt && Object.keys(errors).length > 0;
  if (!halted) {
    const extra = failure('ERROR_BATCH_LENGTH_EXCEEDED');
    for (const { key } of all.slice(MAX_BATCH_COMMANDS)) {
      errors[key] = { error: extra.code, error_description: extra.description };
      if (halt) break;
    }
  }
  return ok({
    result: phpSection(results),
    result_error: phpSection(errors),
    result_total: [],
    result_next: [],
    result_time: phpSection(times),
  });
}
