import { attachServerLength, keyboardServerLength, SERVER_JSON_LIMIT } from '../../lib/edits/server-size.ts';
import { type Failure, failure } from './outcome.ts';

export const MAX_MESSAGE_CODE_POINTS = 20_000;
/**
 * The im module keeps an attach or a keyboard only while the JSON it stores is below this many
 * characters, counted as the service counts them (`lib/edits/server-size.ts`).
 */
export const MAX_ATTACH_CHARS = SERVER_JSON_LIMIT;
const CUT_MARK = ' (...)';

export type Parsed<T> = { value: T } | { failure: Failure };

/** What `send` documents for long texts (update does not say; the brief makes it do the same). */
export function cutText(text: string): string {
  const codePoints = [...text];
  if (codePoints.length <= MAX_MESSAGE_CODE_POINTS) return text;
  return codePoints.slice(0, MAX_MESSAGE_CODE_POINTS).join('') + CUT_MARK;
}

/** imbot.v2 booleans: JSON true/false, "Y"/"N", and "1"/"0" as PHP's http_build_query sends them. */
export function parseBool(value: unknown): boolean | undefined {
  if (value === true || value === false) return value;
  if (typeof value === 'number') return value !== 0;
  if (typeof value !== 'string') return undefined;
  const v = value.toUpperCase();
  if (v === 'Y' || v === '1' || v === 'TRUE') return true;
  if (v === 'N' || v === '0' || v === 'FALSE' || v === '') return false;
  return undefined;
}

/** Ids arrive as numbers from JSON and as digit strings from forms and batch commands. */
export function parseId(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) {
    const id = Number(value.trim());
    return id > 0 ? id : undefined;
  }
  return undefined;
}

export function isMissing(value: unknown): boolean {
  return value === undefined || value === null || value === '';
}

/** PHP's empty() of a decoded parameter: what the legacy update read as "clear it". */
function phpEmpty(value: unknown): boolean {
  if (isMissing(value) || value === false || value === 0 || value === '0') return true;
  return typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}

/** Keyboard and attach may also come as a JSON string, the only way to pass them whole in a batch command. */
function fromJsonString(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const trimmed = value.trim();
  if (!trimmed.startsWith('[') && !trimmed.startsWith('{')) return value;
  try {
    return JSON.parse(trimmed);
  } catch {
    return value;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The documented block types: a block is an object keyed by one of them. */
const ATTACH_BLOCK_KEYS = ['MESSAGE', 'LINK', 'USER', 'GRID', 'IMAGE', 'FILE', 'DELIMITER'] as const;

/** What the server walks as blocks: `BLOCKS` of the full form, else the value itself (an object by its values). */
function blocksOf(attach: unknown[] | Record<string, unknown>): unknown[] {
  const blocks = !Array.isArray(attach) && !isMissingValue(attach.BLOCKS) ? attach.BLOCKS : attach;
  if (Array.isArray(blocks)) return blocks;
  return isObject(blocks) ? Object.values(blocks) : [];
}

function isMissingValue(value: unknown): boolean {
  return value === undefined || value === null;
}

function isKnownBlock(block: unknown): boolean {
  return isObject(block) && ATTACH_BLOCK_KEYS.some((key) => !isMissingValue(block[key]));
}

/**
 * `"N"` or an empty value (`""`, `[]`, `{}`, as PHP's empty() reads them) removes the attach, as the
 * legacy update did; the removed attach is stored as `[]`, the server's default for a message
 * without one. Otherwise the server builds the attach from the blocks it recognises and refuses one
 * that keeps none (`{FOO: 1}`, `[{FOO: 1}]`, `{BLOCKS: []}`, a lone block outside an array) with
 * ATTACH_ERROR, before it measures the size of what it would store.
 */
export function parseAttach(raw: unknown): Parsed<unknown[] | Record<string, unknown>> {
  if (raw === 'N' || phpEmpty(raw)) return { value: [] };
  const value = fromJsonString(raw);
  if (!Array.isArray(value) && !isObject(value)) return { failure: failure('ATTACH_ERROR') };
  if (!blocksOf(value).some(isKnownBlock)) return { failure: failure('ATTACH_ERROR') };
  if (attachServerLength(value) >= SERVER_JSON_LIMIT) return { failure: failure('ATTACH_OVERSIZE') };
  return { value };
}

/** `null` means "remove the keyboard" ("N" or an empty value); a bare button array is wrapped in BUTTONS. */
export function parseKeyboard(raw: unknown): Parsed<Record<string, unknown> | null> {
  if (isMissing(raw) || (typeof raw === 'string' && raw.toUpperCase() === 'N')) return { value: null };
  const value = fromJsonString(raw);
  let keyboard: Record<string, unknown>;
  if (Array.isArray(value)) {
    if (value.length === 0) return { value: null };
    keyboard = { BUTTONS: value };
  } else if (isObject(value) && Array.isArray(value.BUTTONS)) {
    // No buttons shows no keyboard: the same as removing it.
    if (value.BUTTONS.length === 0) return { value: null };
    keyboard = value;
  } else {
    return { failure: failure('KEYBOARD_ERROR') };
  }
  // Our service always sends BOT_ID; without it, count a one-digit id rather than drop command buttons.
  const botId = parseId(keyboard.BOT_ID) ?? 1;
  if (keyboardServerLength(keyboard.BUTTONS, botId) >= SERVER_JSON_LIMIT) {
    return { failure: failure('KEYBOARD_OVERSIZE') };
  }
  return { value: keyboard };
}
