import { decodeBracketParams } from '../../lib/bitrix24/query-string.ts';

export { phpTruthy } from '../../lib/bitrix24/query-string.ts';

/** PHP's default `max_input_vars`: parse_str stops after this many variables and drops the rest silently. */
export const MAX_INPUT_VARS = 1_000;

/** Keys that name the prototype machinery, never a Bitrix24 field: their variables are left out. */
const UNSAFE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * How the emulated server reads form bodies and batch command strings: PHP's parse_str (the one
 * decoder, lib/bitrix24/query-string.ts), `max_input_vars` included, without prototype keys.
 */
export function parsePhpQuery(query: string, maxInputVars = MAX_INPUT_VARS): Record<string, unknown> {
  return decodeBracketParams(query, { maxInputVars, dropKeys: UNSAFE_KEYS });
}
