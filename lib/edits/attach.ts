import { ValidationError } from '../errors.ts';
import { isRecord } from '../is-record.ts';
import { COLOR_TOKENS, HEX_COLOR_RULE, isColorToken, isHexColor, isLink, LINK_RULE } from './rules.ts';

/**
 * Deepest nesting of arrays and objects: the full form with a GRID, IMAGE or FILE block is 5
 * levels (attach → BLOCKS → block → items → item); one more is allowed for slack.
 */
export const ATTACH_MAX_DEPTH = 6;
export const ATTACH_BLOCK_TYPES = ['MESSAGE', 'LINK', 'USER', 'GRID', 'IMAGE', 'FILE', 'DELIMITER'] as const;
const GRID_DISPLAYS = ['BLOCK', 'LINE', 'ROW', 'TABLE'] as const;
/** Fields that hold a URL, in any block. */
const URL_FIELDS = ['LINK', 'PREVIEW', 'AVATAR'] as const;
/** The documented default and fallback size of a DELIMITER. */
const DELIMITER_SIZE = 200;
const FORMS_RULE = 'must be an array of blocks or an object with BLOCKS; "N", "" or [] to remove the attach';

export type Attach = unknown[] | Record<string, unknown>;
type Fail = (where: string, rule: string) => ValidationError;

/**
 * Checks an attach in either documented form (full `{ID?, COLOR_TOKEN?, COLOR?, BLOCKS}` or the bare
 * block array) and gives it back unchanged, except that an empty DELIMITER gets its documented
 * default SIZE (an empty object has no query-string form inside `batch`). `"N"`, `""` and `[]`
 * remove the attach and become `"N"`, the one form of a removal (the legacy update cleared it with
 * "N" or an empty value; an empty array has no query-string form inside `batch`). Idempotent.
 * Throws ValidationError naming the block (`fields.attach[2]`) and the rule. Its size is
 * Bitrix24's to count: `assertServerSize`.
 */
export function checkAttach(raw: unknown, path: string, code: string): Attach | 'N' {
  const fail: Fail = (where, rule) => new ValidationError(where, `${where} ${rule}`, code);
  if (typeof raw === 'string') {
    if (raw.trim() === '' || raw.trim() === 'N') return 'N';
    throw fail(path, FORMS_RULE);
  }
  if (Array.isArray(raw) && raw.length === 0) return 'N';
  if (!Array.isArray(raw) && !isRecord(raw)) throw fail(path, FORMS_RULE);
  const depth = depthOf(raw, ATTACH_MAX_DEPTH + 1);
  if (depth > ATTACH_MAX_DEPTH) {
    throw fail(
      path,
      `nests more than ${ATTACH_MAX_DEPTH} levels of arrays and objects; the limit is ${ATTACH_MAX_DEPTH}`,
    );
  }
  if (Array.isArray(raw)) return checkBlocks(raw, path, fail);
  for (const key of Object.keys(raw)) {
    if (!['ID', 'COLOR_TOKEN', 'COLOR', 'BLOCKS'].includes(key)) {
      throw fail(`${path}.${key}`, 'is not an attach key (allowed: ID, COLOR_TOKEN, COLOR, BLOCKS)');
    }
  }
  if (raw.ID !== undefined && !/^[1-9]\d{0,14}$/.test(String(raw.ID))) {
    throw fail(`${path}.ID`, 'must be a positive integer');
  }
  if (raw.COLOR_TOKEN !== undefined && !isColorToken(raw.COLOR_TOKEN)) {
    throw fail(`${path}.COLOR_TOKEN`, `must be one of ${COLOR_TOKENS.join(', ')}`);
  }
  if (raw.COLOR !== undefined && !isHexColor(raw.COLOR)) throw fail(`${path}.COLOR`, HEX_COLOR_RULE);
  if (!Array.isArray(raw.BLOCKS)) throw fail(`${path}.BLOCKS`, 'is required: an array of blocks');
  return { ...raw, BLOCKS: checkBlocks(raw.BLOCKS, `${path}.BLOCKS`, fail) };
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
    throw fail(
      path,
      'must hold at least one block (the docs define no empty attach); send "N" to remove the attach',
    );
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
      checkColors(content as Record<string, unknown>, where, fail);
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
        checkColors(item as Record<string, unknown>, `${where}[${i}]`, fail);
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

/** `COLOR` (HEX) and `COLOR_TOKEN` of a GRID item or a DELIMITER. */
function checkColors(item: Record<string, unknown>, at: string, fail: Fail): void {
  if (item.COLOR !== undefined && !isHexColor(item.COLOR)) throw fail(`${at}.COLOR`, HEX_COLOR_RULE);
  if (item.COLOR_TOKEN !== undefined && !isColorToken(item.COLOR_TOKEN)) {
    throw fail(`${at}.COLOR_TOKEN`, `must be one of ${COLOR_TOKENS.join(', ')}`);
  }
}
