import { AppError, ValidationError } from '../errors.ts';

/** Deepest nesting of arrays and objects a request body may have (an update needs about ten). */
export const MAX_BODY_DEPTH = 64;
/** Keys that name the prototype machinery, never a Bitrix24 field: refused wherever they appear. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const REPLACEMENT_CHARACTER = '\uFFFD';

/** The request body is not declared as JSON. */
export class UnsupportedMediaTypeError extends AppError {
  override name = 'UnsupportedMediaTypeError';
  constructor() {
    super('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json', 415);
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
function bodyText({ body, isBase64Encoded }: RawBody): string {
  if (body === undefined || body === '') {
    throw new ValidationError('body', 'The request body is empty; send the update as JSON', 'MALFORMED_JSON');
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
  if (forbidden !== undefined) {
    throw new ValidationError(
      'body',
      `The request body has the key "${forbidden}"; the keys ${[...FORBIDDEN_KEYS].join(', ')} are refused anywhere in it`,
    );
  }
  return parsed;
}
