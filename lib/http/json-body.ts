import { decodeBracketParams } from '../bitrix24/query-string.ts';
import { AppError, ValidationError } from '../errors.ts';

/** Deepest nesting of arrays and objects a request body may have (an update needs about ten). */
export const MAX_BODY_DEPTH = 64;
/** Keys that name the prototype machinery, never a Bitrix24 field: refused wherever they appear. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const FORM_CONTENT_TYPE = /^application\/x-www-form-urlencoded\s*(?:;|$)/i;
const REPLACEMENT_CHARACTER = '\uFFFD';

/** The request body is not declared as JSON. */
export class UnsupportedMediaTypeError extends AppError {
  override name = 'UnsupportedMediaTypeError';
  constructor(message = 'Content-Type must be application/json') {
    super('UNSUPPORTED_MEDIA_TYPE', message, 415);
  }
}

export interface RawBody {
  contentType: string | undefined;
  body: string | undefined;
  isBase64Encoded?: boolean | undefined;
}

/**
 * The body's text: base64 bodies are decoded as strict UTF-8; a text body holding U+FFFD was
 * decoded from invalid UTF-8 on the way (a caller who means U+FFFD can send it escaped, `\ufffd`).
 */
function bodyText({ body, isBase64Encoded }: RawBody, empty = 'send the update as JSON'): string {
  if (body === undefined || body === '') {
    throw new ValidationError('body', `The request body is empty; ${empty}`, 'MALFORMED_JSON');
  }
  let text = body;
  if (isBase64Encoded) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(body, 'base64'));
    } catch {
      throw invalidUtf8();
    }
  }
  if (text.includes(REPLACEMENT_CHARACTER)) throw invalidUtf8();
  return text;
}

function invalidUtf8(): ValidationError {
  return new ValidationError(
    'body',
    'The request body is not valid UTF-8 (it holds bytes that are not UTF-8, or U+FFFD, which marks them; send U+FFFD escaped as \\ufffd)',
  );
}

/** Nesting depth of a JSON text, counted without parsing it (strings skipped). Linear, no recursion. */
function depthOf(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/**
 * Parses a request body as JSON, refusing with the rule broken: a body not declared as JSON (415),
 * empty, not UTF-8, nested deeper than `MAX_BODY_DEPTH`, holding a forbidden key, or not JSON (400).
 */
export function parseJsonBody(raw: RawBody): unknown {
  if (!JSON_CONTENT_TYPE.test(raw.contentType ?? '')) throw new UnsupportedMediaTypeError();
  const text = bodyText(raw);
  if (depthOf(text) > MAX_BODY_DEPTH) {
    throw new ValidationError(
      'body',
      `The request body nests deeper than ${MAX_BODY_DEPTH} levels of arrays and objects`,
    );
  }
  let forbidden: string | undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (key, value: unknown) => {
      if (FORBIDDEN_KEYS.has(key)) forbidden ??= key;
      return value;
    });
  } catch {
    throw new ValidationError('body', 'The request body is not valid JSON', 'MALFORMED_JSON');
  }
  if (forbidden !== undefined) throw forbiddenKey(forbidden);
  return parsed;
}

function forbiddenKey(key: string): ValidationError {
  return new ValidationError(
    'body',
    `The request body has the key "${key}"; the keys ${[...FORBIDDEN_KEYS].join(', ')} are refused anywhere in it`,
  );
}

/**
 * Parses a body as Bitrix24 itself reads one: JSON, or a form (`application/x-www-form-urlencoded`,
 * what CRest and PHP's http_build_query send) read as PHP's parse_str reads it, so that
 * `fields[keyboard][0][TEXT]=Ok` nests and every value is a string. The refusals are those of
 * `parseJsonBody`, the forbidden keys included.
 */
export function parseBitrixBody(raw: RawBody): unknown {
  if (JSON_CONTENT_TYPE.test(raw.contentType ?? '')) return parseJsonBody(raw);
  if (!FORM_CONTENT_TYPE.test(raw.contentType ?? '')) {
    throw new UnsupportedMediaTypeError(
      'Content-Type must be application/json or application/x-www-form-urlencoded',
    );
  }
  const text = bodyText(raw, 'send the parameters as JSON or as a form');
  for (const pair of text.split('&')) {
    const name = pair.split('=', 1)[0] as string;
    if ((name.match(/\[|%5b/gi)?.length ?? 0) > MAX_BODY_DEPTH) {
      throw new ValidationError(
        'body',
        `The request body nests deeper than ${MAX_BODY_DEPTH} levels of brackets in a name`,
      );
    }
  }
  const parsed = decodeBracketParams(text);
  const forbidden = forbiddenIn(parsed);
  if (forbidden !== undefined) throw forbiddenKey(forbidden);
  return parsed;
}

/** The first forbidden key in a decoded form, if any (its depth is bounded above). */
function forbiddenIn(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, child] of Object.entries(value)) {
    if (FORBIDDEN_KEYS.has(key)) return key;
    const found = forbiddenIn(child);
    if (found !== undefined) return found;
  }
  return undefined;
}
