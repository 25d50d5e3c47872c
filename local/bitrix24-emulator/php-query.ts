/**
 * PHP `parse_str` semantics, which is how Bitrix24 reads form bodies and batch command strings:
 * `fields[keyboard][0][TEXT]=Ok` nests, `a[]=x` appends, every value stays a string.
 */
type Node = Record<string, unknown>;

const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function decode(part: string): string {
  const spaced = part.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

function splitKey(key: string): string[] {
  const open = key.indexOf('[');
  if (open <= 0) return [key];
  const path = [key.slice(0, open)];
  const segment = /\[([^\]]*)\]/g;
  let match: RegExpExecArray | null = segment.exec(key);
  while (match !== null) {
    path.push(match[1] ?? '');
    match = segment.exec(key);
  }
  return path;
}

function nextIndex(node: Node): string {
  let max = -1;
  for (const key of Object.keys(node)) {
    if (/^\d+$/.test(key)) max = Math.max(max, Number(key));
  }
  return String(max + 1);
}

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Objects keyed 0..n-1 become arrays, as PHP's json_encode would render those PHP arrays. */
function toJsonShape(value: unknown): unknown {
  if (!isNode(value)) return value;
  const keys = Object.keys(value);
  const entries = keys.map((k) => [k, toJsonShape(value[k])] as const);
  if (keys.length > 0 && keys.every((k, i) => k === String(i))) return entries.map(([, v]) => v);
  return Object.fromEntries(entries);
}

/** PHP's default `max_input_vars`: parse_str stops after this many variables and drops the rest silently. */
export const MAX_INPUT_VARS = 1_000;

export function parsePhpQuery(query: string, maxInputVars = MAX_INPUT_VARS): Record<string, unknown> {
  const root: Node = {};
  let vars = 0;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    vars += 1;
    if (vars > maxInputVars) break;
    const eq = pair.indexOf('=');
    const rawKey = decode(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decode(pair.slice(eq + 1));
    const path = splitKey(rawKey);
    if (path.some((k) => UNSAFE_KEYS.has(k)) || path[0] === '') continue;
    let node = root;
    for (let i = 0; i < path.length; i++) {
      const key = path[i] === '' ? nextIndex(node) : (path[i] as string);
      if (i === path.length - 1) {
        node[key] = value;
      } else {
        const child = node[key];
        if (isNode(child)) {
          node = child;
        } else {
          const fresh: Node = {};
          node[key] = fresh;
          node = fresh;
        }
      }
    }
  }
  return Object.fromEntries(Object.entries(root).map(([k, v]) => [k, toJsonShape(v)]));
}
