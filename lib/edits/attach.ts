import { ValidationError } from '../errors.ts';
import { isRecord } from '../is-record.ts';
import { count, isLink, LINK_RULE, utf8Bytes } from './rules.ts';

/**
 * The docs' "60,000 characters of serialised ATTACH", counted as UTF-8 bytes of the compact JSON.
 * The docs do not say what is counted; PHP's strlen counts bytes, so a count of UTF-16 units (or of
 * code points) would let a Cyrillic attach through at half its byte size. Bytes are the
 * conservative reading we can compute; PHP's own escaped JSON would be larger still.
 */
export const ATTACH_MAX_BYTES = 60_000;
/**
 * Deepest nesting of arrays and objects: the full form with a GRID, IMAGE or FILE block is 5
 * levels (attach → BLOCKS → block → items → item); one more is allowed for slack.
 */
export const ATTACH_MAX_DEPTH = 6;
export const ATTACH_BLOCK_TYPES = ['MESSAGE', 'LINK', 'USER', 'GRID', 'IMAGE', 'FILE', 'DELIMITER'] as const;
const COLOR_TOKENS = ['primary', 'secondary', 'alert', 'base'] as const;
const GRID_DISPLAYS = ['BLOCK', 'LINE', 'ROW', 'TABLE'] as const;
/** Fields that hold a URL, in any block. */
const URL_FIELDS = ['LINK', 'PREVIEW', 'AVATAR'] as const;
/** The documented default and fallback size of a DELIMITER. */
const DELIMITER_SIZE = 200;

export type Attach = unknown[] | Record<string, unknown>;
type Fail = (where: string, rule: string) => ValidationError;

/**
 * Checks an attach in either documented form (full `{ID?, COLOR_TOKEN?, COLOR?, BLOCKS}` or the bare
 * block array) and gives it back unchanged, except that an empty DELIMITER gets its documented
 * default SIZE (an empty object has no query-string form inside `batch`). Throws ValidationError
 * naming the block (`fields.attach[2]`) and the rule.
 */
export function checkAttach(raw: unknown, path: string, code: string): Attach {
  const fail: Fail = (where, rule) => new ValidationError(where, `${where} ${rule}`, code);
  if (!Array.isArray(raw) && !isRecord(raw)) {
    throw fail(path, 'must be an array of blocks or an object with BLOCKS');
  }
  const depth = depthOf(raw, ATTACH_MAX_DEPTH + 1);
  if (depth > ATTACH_MAX_DEPTH) {
    throw fail(
      path,
      `nests more than ${ATTACH_MAX_DEPTH} levels of arrays and objects; the limit is ${ATTACH_MAX_DEPTH}`,
    );
  }
  let out: Attach;
  if (Array.isArray(raw)) {
    out = checkBlocks(raw, path, fail);
  } else {
    for (const key of Object.keys(raw)) {
      if (!['ID', 'COLOR_TOKEN', 'COLOR', 'BLOCKS'].includes(key)) {
        throw fail(`${path}.${key}`, 'is not an attach key (allowed: ID, COLOR_TOKEN, COLOR, BLOCKS)');
      }
    }
    if (raw.ID !== undefined && !/^[1-9]\d{0,14}$/.test(String(raw.ID))) {
      throw fail(`${path}.ID`, 'must be a positive integer');
    }
    if (raw.COLOR_TOKEN !== undefined && !(COLOR_TOKENS as readonly unknown[]).includes(raw.COLOR_TOKEN)) {
      throw fail(`${path}.COLOR_TOKEN`, `must be one of ${COLOR_TOKENS.join(', ')}`);
    }
    if (raw.COLOR !== undefined && typeof raw.COLOR !== 'string') {
      throw fail(`${path}.COLOR`, 'must be a string (a HEX colour)');
    }
    if (!Array.isArray(raw.BLOCKS)) throw fail(`${path}.BLOCKS`, 'is required: an array of blocks');
    out = { ...raw, BLOCKS: checkBlocks(raw.BLOCKS, `${path}.BLOCKS`, fail) };
  }
  const bytes = utf8Bytes(JSON.stringify(out));
  if (bytes > ATTACH_MAX_BYTES) {
    throw fail(
      path,
      `is ${count(bytes)} bytes as UTF-8 JSON; the limit is ${count(ATTACH_MAX_BYTES)} (counted as bytes, not characters)`,
    );
  }
  return out;
}

/** Depth of nested arrays and objects, counting stops at `cap` so that a hostile input costs little. */
function depthOf(value: unknown, cap: number): number {
  if (typeof value !== 'object' || value === null) return 0;
  if (cap === 0) return 1;
  let deepest = 0;
  for (const child of Object.values(value)) {
    deepest = Math.max(deepest, depthOf(child, cap - 1));
    if (deepest >= cap) break;
  }
  return deepest + 1;
}

function checkBlocks(blocks: unknown[], path: string, fail: Fail): unknown[] {
  if (blocks.length === 0) {
    throw fail(path, 'must hold at least one block (the docs define no empty attach)');
  }
  return blocks.map((block, index) => checkBlock(block, `${path}[${index}]`, fail));
}

function checkBlock(block: unknown, at: string, fail: Fail): Record<string, unknown> {
  const keys = isRecord(block) ? Object.keys(block) : [];
  const type = keys[0];
  if (!isRecord(block) || keys.length !== 1 || !(ATTACH_BLOCK_TYPES as readonly unknown[]).includes(type)) {
    throw fail(
      at,
      `must be an object with exactly one key out of ${ATTACH_BLOCK_TYPES.join(', ')}${keys.length ? `; it has ${keys.join(', ')}` : ''}`,
    );
  }
  const where = `${at}.${type}`;
  const content = block[type as string];
  switch (type) {
    case 'MESSAGE':
      if (typeof content !== 'string') throw fail(where, 'must be a string');
      return block;
    case 'LINK':
      checkItem(content, where, ['LINK'], fail);
      return block;
    case 'USER':
      checkItem(content, where, ['NAME'], fail);
      return block;
    case 'DELIMITER':
      checkItem(content, where, [], fail);
      return Object.keys(content as object).length === 0 ? { DELIMITER: { SIZE: DELIMITER_SIZE } } : block;
    case 'GRID':
      if (!Array.isArray(content) || content.length === 0)
        throw fail(where, 'must be a non-empty array of items');
      content.forEach((item, i) => {
        checkItem(item, `${where}[${i}]`, ['DISPLAY'], fail);
        const display = (item as Record<string, unknown>).DISPLAY;
        if (!(GRID_DISPLAYS as readonly unknown[]).includes(display)) {
          throw fail(`${where}[${i}].DISPLAY`, `must be one of ${GRID_DISPLAYS.join(', ')}`);
        }
      });
      return block;
    default: {
      // IMAGE and FILE: an array of items, each with a LINK.
      if (!Array.isArray(content) || content.length === 0)
        throw fail(where, 'must be a non-empty array of items');
      content.forEach((item, i) => {
        checkItem(item, `${where}[${i}]`, ['LINK'], fail);
      });
      return block;
    }
  }
}

/** A flat object of strings and numbers with the required fields present and every URL field a link. */
function checkItem(item: unknown, at: string, required: readonly string[], fail: Fail): void {
  if (!isRecord(item)) throw fail(at, 'must be an object');
  for (const [key, value] of Object.entries(item)) {
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isFinite(value))) {
      throw fail(`${at}.${key}`, 'must be a string or a number');
    }
  }
  for (const name of required) {
    if (item[name] === undefined || String(item[name]).trim() === '')
      throw fail(`${at}.${name}`, 'is required');
  }
  for (const name of URL_FIELDS) {
    if (item[name] !== undefined && !isLink(item[name])) throw fail(`${at}.${name}`, LINK_RULE);
  }
}
