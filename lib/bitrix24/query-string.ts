/**
 * PHP-style bracket query strings, the only way to pass nested params inside a `batch` cmd value
 * (Bitrix24 parses each cmd with PHP's parse_str; JSON is not accepted there).
 */

type Pair = readonly [name: string, value: string];

/**
 * Encodes params as PHP's http_build_query would, with the differences Bitrix24 needs:
 * - nested objects and arrays become `fields[keyboard][0][TEXT]=...` (brackets left literal for
 *   readability; parse_str decodes before it splits, so `%5B` would mean the same);
 * - names and values are percent-encoded per RFC 3986 (space is `%20`, `!'()*` are encoded too);
 * - booleans become `Y`/`N` (imbot.v2 accepts them; PHP's own `1`/`0` is not documented for it);
 * - numbers are written in decimal, bigints too; `null` and `undefined` are left out, as PHP does;
 * - an empty array or object becomes `name=` so Bitrix24 receives an empty value (PHP would drop it,
 *   and `keyboard=` is how an empty keyboard is sent).
 *
 * Throws for values that have no query-string form (functions, symbols, non-finite numbers, class
 * instances other than Date) and for names parse_str would read differently from what was meant.
 */
export function encodeBracketParams(params: Record<string, unknown>): string {
  return bracketPairs(params)
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

/**
 * The name=value pairs `encodeBracketParams` writes, one per variable PHP's parse_str will create
 * (and count against `max_input_vars`). Throws as `encodeBracketParams` does.
 */
export function bracketPairs(params: Record<string, unknown>): readonly Pair[] {
  const pairs: Pair[] = [];
  for (const [key, value] of Object.entries(params)) {
    checkTopLevelName(key);
    collect(encodeComponent(key), key, value, pairs);
  }
  return pairs;
}

function collect(name: string, path: string, value: unknown, pairs: Pair[]): void {
  if (value === null || value === undefined) return;
  if (Array.isArray(value) || isPlainObject(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) {
      pairs.push([name, '']);
      return;
    }
    for (const [key, child] of entries) {
      checkNestedName(key, path);
      collect(`${name}[${encodeComponent(key)}]`, `${path}[${key}]`, child, pairs);
    }
    return;
  }
  pairs.push([name, encodeComponent(scalarToString(value, path))]);
}

function scalarToString(value: unknown, path: string): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'boolean':
      return value ? 'Y' : 'N';
    case 'bigint':
      return value.toString();
    case 'number':
      if (!Number.isFinite(value))
        throw new TypeError(`Cannot encode ${path}: ${value} is not a finite number`);
      // -0 would print as "0" anyway; String() is the shortest decimal that reads back to the same number.
      return String(value);
    default:
      if (value instanceof Date) return value.toISOString();
      throw new TypeError(`Cannot encode ${path}: a ${describe(value)} has no query-string form`);
  }
}

// parse_str renames top-level names: spaces and dots become underscores, and brackets split names.
function checkTopLevelName(key: string): void {
  if (key === '' || /[[\]. ]/.test(key)) {
    throw new TypeError(
      `Cannot encode parameter name ${JSON.stringify(key)}: PHP's parse_str would rename it`,
    );
  }
}

// Inside brackets only `]` and `[` are structural, and an empty name means "append".
function checkNestedName(key: string, path: string): void {
  if (key === '' || /[[\]]/.test(key)) {
    throw new TypeError(
      `Cannot encode key ${JSON.stringify(key)} under ${path}: PHP's parse_str would read it as structure`,
    );
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null) return typeof value;
  return value.constructor?.name ?? 'object';
}

/** RFC 3986 percent-encoding: everything but unreserved characters. */
export function encodeComponent(text: string): string {
  // A lone surrogate (text cut in the middle of an emoji) would make encodeURIComponent throw and
  // fail the whole edit; U+FFFD keeps the rest of the message.
  return encodeURIComponent(text.toWellFormed()).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Parses a query string with PHP parse_str semantics, for round-trip tests and the emulator:
 * `+` and `%20` are spaces, later duplicates win, `a[]` appends, a scalar is replaced by a
 * nested value (and the other way round), and in the top-level name spaces and dots become `_`.
 *
 * All values stay strings. A nested map becomes an array when its keys are exactly `0..n-1` in
 * insertion order, which is what PHP's json_encode does with the same array and so what Bitrix24
 * would see; any other map stays an object with string keys (JavaScript then lists integer-like
 * keys first, whatever their order in the query).
 */
export function decodeBracketParams(
  qs: string,
  options: {
    maxInputVars?: number;
    /** Variables whose name has one of these keys at any level are left out whole. */
    dropKeys?: ReadonlySet<string>;
  } = {},
): Record<string, unknown> {
  const root: PhpArray = new Map();
  let vars = 0;
  for (const part of qs.split('&')) {
    if (part === '') continue;
    // PHP's max_input_vars: parse_str stops there and drops the rest silently.
    if (++vars > (options.maxInputVars ?? Number.POSITIVE_INFINITY)) break;
    const eq = part.indexOf('=');
    const rawName = decodeComponent(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? '' : decodeComponent(part.slice(eq + 1));
    const path = splitName(rawName);
    if (path && !path.some((key) => key !== null && options.dropKeys?.has(key))) assign(root, path, value);
  }
  return toObject(root);
}

type PhpArray = Map<string, PhpValue>;
type PhpValue = string | PhpArray;

function decodeComponent(text: string): string {
  const spaced = text.replaceAll('+', ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    // PHP's urldecode leaves malformed escapes as they are instead of failing.
    return spaced.replace(/%([0-9a-f]{2})/gi, (_, hex: string) =>
      String.fromCharCode(Number.parseInt(hex, 16)),
    );
  }
}

/** Splits `a[b][]` into `['a', 'b', null]` (null = append), or undefined for a name PHP ignores. */
function splitName(name: string): Array<string | null> | undefined {
  const trimmed = name.replace(/^ +/, '');
  let open = trimmed.indexOf('[');
  // An opening bracket with no closing one is part of the name (PHP turns it into `_`).
  if (open !== -1 && trimmed.indexOf(']', open) === -1) open = -1;
  const base = (open === -1 ? trimmed : trimmed.slice(0, open)).replace(/[ .[]/g, '_');
  if (base === '') return undefined;
  const path: Array<string | null> = [base];
  let i = open;
  while (i !== -1 && trimmed[i] === '[') {
    const close = trimmed.indexOf(']', i);
    if (close === -1) break;
    const key = trimmed.slice(i + 1, close);
    path.push(key === '' ? null : key);
    i = close + 1;
  }
  return path;
}

function assign(root: PhpArray, path: Array<string | null>, value: string): void {
  let node = root;
  for (let i = 0; i < path.length; i += 1) {
    const key = path[i] ?? nextIndex(node);
    if (i === path.length - 1) {
      node.set(key, value);
      return;
    }
    let child = node.get(key);
    if (!(child instanceof Map)) {
      child = new Map();
      node.set(key, child);
    }
    node = child;
  }
}

// PHP appends at one past the largest integer key so far.
function nextIndex(node: PhpArray): string {
  let next = 0;
  for (const key of node.keys()) {
    if (/^(0|-?[1-9]\d*)$/.test(key)) next = Math.max(next, Number(key) + 1);
  }
  return String(next);
}

function toObject(node: PhpArray): Record<string, unknown> {
  // fromEntries defines own properties, so a `__proto__` name cannot reach the prototype.
  return Object.fromEntries([...node].map(([key, value]) => [key, toValue(value)]));
}

function toValue(value: PhpValue): unknown {
  if (typeof value === 'string') return value;
  const isList = [...value.keys()].every((key, index) => key === String(index));
  return isList ? [...value.values()].map(toValue) : toObject(value);
}

/**
 * PHP's `(bool)` cast, which is how Bitrix24 reads flags such as `batch`'s `halt`: false only for
 * false, 0, "", "0", null and an empty array (a JSON `{}` or `[]`); every other string is true,
 * "false" and "N" included.
 */
export function phpTruthy(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  if (typeof value === 'string') return value !== '' && value !== '0';
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/**
 * A keyed section of an answer as PHP's json_encode renders its array: a list when keyed 0..n-1 in
 * order (an empty one included), else an object (a `batch` answer's `result`, `result_error`, …).
 */
export function phpSection(entries: Record<string, unknown>): Record<string, unknown> | unknown[] {
  const names = Object.keys(entries);
  if (names.every((name, index) => name === String(index))) return Object.values(entries);
  return entries;
}
