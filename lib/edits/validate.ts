import * as v from 'valibot';
import { ValidationError } from '../errors.ts';
import { PORTAL_PATTERN } from '../portal-name.ts';
import { checkAttach } from './attach.ts';
import { normaliseKeyboard } from './keyboard.ts';
import { count, utf8Bytes } from './rules.ts';
import { assertServerSize } from './server-size.ts';
import { type EditFields, EDIT_FIELD_NAMES as FIELD_NAMES, type QueuedEdit } from './types.ts';

export const MESSAGE_MAX_CHARACTERS = 20_000;
/** SQS's largest message body (256 KiB): an edit that cannot be queued is refused up front. */
export const QUEUE_MAX_BYTES = 262_144;
/**
 * Room kept for the rest of a queue body around `fields`: portal (≤ 63), the two ids, editId
 * (≤ 128), requestedAt and the JSON keys are under 400 bytes; 1 KiB leaves slack.
 */
const QUEUE_ENVELOPE_BYTES = 1_024;

/**
 * Keys that Bitrix24 clients send and this service must not take, with what to do instead: the
 * credentials are the service's own (in the portal's secret), never the caller's.
 */
const NOT_TAKEN: Readonly<Record<string, string>> = {
  auth: 'is not taken: this service holds the portal’s credentials (in its secret) and calls Bitrix24 with them; leave auth out and name the portal in the X-B24-Portal header',
};

/** Rule texts for keys that are missing or not allowed in a strict object. */
function strictMessage(allowed: readonly string[]) {
  return (issue: v.StrictObjectIssue) => {
    const key = issue.path?.at(-1)?.key;
    if (issue.expected === 'never' && typeof key === 'string' && Object.hasOwn(NOT_TAKEN, key))
      return NOT_TAKEN[key] as string;
    return issue.expected === 'never'
      ? `is not a known field (allowed: ${allowed.join(', ')})`
      : issue.received === 'undefined'
        ? 'is required'
        : 'must be a JSON object';
  };
}

const ID_RULE = 'must be a positive integer (a JSON number or a string of digits)';
const positiveId = v.pipe(
  v.union(
    [
      v.pipe(v.number(), v.safeInteger(ID_RULE)),
      v.pipe(v.string(), v.regex(/^\d{1,15}$/, ID_RULE), v.transform(Number)),
    ],
    ID_RULE,
  ),
  v.number(),
  v.minValue(1, ID_RULE),
);

/**
 * An id as a path segment carries it (the GET route): the update body's rule, so that both routes
 * name the same messages (an id past 2^53 would round to another message's).
 */
export function parseIdSegment(field: 'botId' | 'messageId', text: string, code = 'INVALID_REQUEST'): number {
  const result = v.safeParse(positiveId, text, { abortEarly: true });
  if (!result.success) throw new ValidationError(field, `${field} ${ID_RULE}`, code);
  return result.output;
}

const message = v.pipe(
  v.string('must be a string'),
  v.check(
    (text) => codePoints(text) <= MESSAGE_MAX_CHARACTERS,
    (issue) =>
      `is ${count(codePoints(issue.input as string))} characters; the limit is ${count(MESSAGE_MAX_CHARACTERS)}`,
  ),
);

// Keyboard, attach and isEdited are checked by hand after the schema (`normaliseFields`), so that
// the status specs get the same rules: errors name the button or block, and the keyboard needs
// the botId for its BOT_ID rule.
const present = v.custom<unknown>((x) => x !== null, 'must not be null');

const urlPreview = v.pipe(
  v.union([v.picklist(['Y', 'N']), v.boolean()], 'must be "Y", "N", true or false'),
  v.transform((value): 'Y' | 'N' => (value === true || value === 'Y' ? 'Y' : 'N')),
);

const fieldsSchema = v.pipe(
  v.strictObject(
    {
      message: v.optional(message),
      attach: v.optional(present),
      keyboard: v.optional(present),
      urlPreview: v.optional(urlPreview),
      isEdited: v.optional(present),
    },
    strictMessage(FIELD_NAMES),
  ),
  v.check(
    (fields) => FIELD_NAMES.some((name) => fields[name] !== undefined),
    `must contain at least one of ${FIELD_NAMES.join(', ')}`,
  ),
);

const updateSchema = v.strictObject(
  {
    botId: positiveId,
    messageId: positiveId,
    fields: fieldsSchema,
    botToken: v.optional(v.string('must be a string')),
  },
  strictMessage(['botId', 'messageId', 'fields', 'botToken']),
);

const queuedSchema = v.strictObject(
  {
    portal: v.pipe(
      v.string('must be a string'),
      v.regex(PORTAL_PATTERN, `must match ${PORTAL_PATTERN.source}`),
    ),
    botId: positiveId,
    messageId: positiveId,
    fields: fieldsSchema,
    editId: v.optional(
      v.pipe(
        v.string('must be a string'),
        v.minLength(1, 'must not be empty'),
        v.maxLength(128, 'must be at most 128 characters'),
      ),
    ),
    requestedAt: v.optional(
      v.pipe(v.string('must be a string'), v.isoTimestamp('must be an ISO 8601 timestamp')),
    ),
  },
  strictMessage(['portal', 'botId', 'messageId', 'fields', 'editId', 'requestedAt']),
);

/** An update request as the API accepts it, normalised. `botToken` is accepted and dropped. */
export interface UpdateRequest {
  botId: number;
  messageId: number;
  fields: EditFields;
}

function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function firstIssue(issues: readonly v.BaseIssue<unknown>[], code: string): ValidationError {
  // `abortEarly` gives one issue; the union's own message is kept over its members'.
  const issue = issues[0] as v.BaseIssue<unknown>;
  const path = v.getDotPath(issue) ?? 'body';
  return new ValidationError(path, `${path} ${issue.message}`, code);
}

/**
 * Whether these fields, sent as one update, set the message's text to empty with no attach kept:
 * Bitrix24 deletes such a message. One edit's fields, or a message's whole desired state (edits
 * merged one after another can reach it: an empty text with an attach, then the attach removed).
 */
export function leavesMessageEmpty(fields: EditFields): boolean {
  return fields.message !== undefined && fields.message.trim() === '' && (fields.attach ?? 'N') === 'N';
}

/**
 * The one normalisation of an edit's fields, shared by the API, the queue and the status specs: the
 * keyboard and the attach in their normal forms, both within the size Bitrix24 counts, no empty
 * text by accident, and room for it in the queue. Throws ValidationError naming the field
 * (`fields.…`) and the rule.
 */
export function normaliseFields(fields: Record<string, unknown>, botId: number, code: string): EditFields {
  const out: EditFields = {};
  if (typeof fields.message === 'string') out.message = fields.message;
  if (fields.attach !== undefined) out.attach = checkAttach(fields.attach, 'fields.attach', code);
  if (fields.keyboard !== undefined) {
    out.keyboard = normaliseKeyboard(fields.keyboard, botId, 'fields.keyboard', code);
  }
  if (fields.urlPreview === 'Y' || fields.urlPreview === 'N') out.urlPreview = fields.urlPreview;
  if (fields.isEdited !== undefined) out.isEdited = readIsEdited(fields.isEdited, code);
  if (leavesMessageEmpty(out)) {
    throw new ValidationError(
      'fields.message',
      'fields.message is empty: Bitrix24 deletes a message whose text is set to empty; send an attach (not its removal) with it, or leave message out',
      code,
    );
  }
  assertServerSize(out, botId, code);
  assertFitsQueue(out, code);
  return out;
}

/**
 * imbot.v2 booleans are JSON true/false with "Y"/"N" as a fallback; "1"/"0" is how PHP's
 * http_build_query writes a boolean, so a PHP SDK's batch command sends isEdited that way.
 */
function readIsEdited(value: unknown, code: string): boolean {
  if (value === true || value === 'Y' || value === '1') return true;
  if (value === false || value === 'N' || value === '0') return false;
  throw new ValidationError(
    'fields.isEdited',
    'fields.isEdited must be true, false, "Y", "N", "1" or "0"',
    code,
  );
}

/**
 * An edit must fit one SQS message with its envelope, or the API could take it and no queue would:
 * the answer names the largest field. The field limits keep edits well below this; it is the
 * backstop for whatever they let through together.
 */
export function assertFitsQueue(fields: EditFields, code = 'INVALID_REQUEST_BODY'): void {
  const bytes = utf8Bytes(JSON.stringify({ fields })) + QUEUE_ENVELOPE_BYTES;
  if (bytes <= QUEUE_MAX_BYTES) return;
  const sizes = Object.entries(fields).map(
    ([name, value]) => [name, utf8Bytes(JSON.stringify(value))] as const,
  );
  const [largest = 'fields', largestBytes = 0] = sizes.sort((a, b) => b[1] - a[1])[0] ?? [];
  throw new ValidationError(
    `fields.${largest}`,
    `fields.${largest} is ${count(largestBytes)} bytes; the edit would be ${count(bytes)} bytes in the queue, above SQS's limit of ${count(QUEUE_MAX_BYTES)}`,
    code,
  );
}

/** Validates the body of an update request; throws ValidationError naming the field and the rule. */
export function parseUpdateRequest(body: unknown): UpdateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('body', 'body must be a JSON object', 'INVALID_REQUEST_BODY');
  }
  const result = v.safeParse(updateSchema, body, { abortEarly: true });
  if (!result.success) throw firstIssue(result.issues, 'INVALID_REQUEST_BODY');
  const { botId, messageId, fields } = result.output;
  return { botId, messageId, fields: normaliseFields(fields, botId, 'INVALID_REQUEST_BODY') };
}

/**
 * Validates a deferred-edit queue body. `editId` and `requestedAt` default to the SQS message id and
 * sent time, so that external producers may leave them out.
 */
export function parseQueuedEdit(
  body: unknown,
  defaults: { editId: string; requestedAt: string },
): QueuedEdit {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('body', 'body must be a JSON object', 'INVALID_EDIT');
  }
  const result = v.safeParse(queuedSchema, body, { abortEarly: true });
  if (!result.success) throw firstIssue(result.issues, 'INVALID_EDIT');
  const { portal, botId, messageId, fields, editId, requestedAt } = result.output;
  return {
    portal,
    botId,
    messageId,
    fields: normaliseFields(fields, botId, 'INVALID_EDIT'),
    editId: editId ?? defaults.editId,
    requestedAt: requestedAt ?? defaults.requestedAt,
  };
}
