import * as v from 'valibot';
import { PORTAL_PATTERN } from '../config.ts';
import { ValidationError } from '../errors.ts';
import type { EditFields, QueuedEdit } from './types.ts';

export const MESSAGE_MAX_CHARACTERS = 20_000;
export const ATTACH_MAX_CHARACTERS = 60_000;
const FIELD_NAMES = ['message', 'attach', 'keyboard', 'urlPreview'] as const;

const count = (n: number) => n.toLocaleString('en-US');

/** Rule texts for keys that are missing or not allowed in a strict object. */
function strictMessage(allowed: readonly string[]) {
  return (issue: v.StrictObjectIssue) =>
    issue.expected === 'never'
      ? `is not a known field (allowed: ${allowed.join(', ')})`
      : issue.received === 'undefined'
        ? 'is required'
        : 'must be a JSON object';
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

const message = v.pipe(
  v.string('must be a string'),
  v.check(
    (text) => codePoints(text) <= MESSAGE_MAX_CHARACTERS,
    (issue) =>
      `is ${count(codePoints(issue.input as string))} characters; the limit is ${count(MESSAGE_MAX_CHARACTERS)}`,
  ),
);

const jsonObject = v.custom<Record<string, unknown>>(
  (x) => typeof x === 'object' && x !== null && !Array.isArray(x),
  'must be an object',
);

const attach = v.pipe(
  v.union([v.array(v.unknown()), jsonObject], 'must be an array of blocks or an object with BLOCKS'),
  v.check(
    (value) => JSON.stringify(value).length <= ATTACH_MAX_CHARACTERS,
    (issue) =>
      `is ${count(JSON.stringify(issue.input).length)} characters when serialised; the limit is ${count(ATTACH_MAX_CHARACTERS)}`,
  ),
);

const keyboard = v.union(
  [v.literal('N'), v.array(jsonObject, 'must be an array of button objects')],
  'must be an array of buttons, or "N" to remove the keyboard',
);

const urlPreview = v.pipe(
  v.union([v.picklist(['Y', 'N']), v.boolean()], 'must be "Y", "N", true or false'),
  v.transform((value): 'Y' | 'N' => (value === true || value === 'Y' ? 'Y' : 'N')),
);

const fieldsSchema = v.pipe(
  v.strictObject(
    {
      message: v.optional(message),
      attach: v.optional(attach),
      keyboard: v.optional(keyboard),
      urlPreview: v.optional(urlPreview),
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

function dropUndefined(fields: Record<string, unknown>): EditFields {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as EditFields;
}

/** Validates the body of an update request; throws ValidationError naming the field and the rule. */
export function parseUpdateRequest(body: unknown): UpdateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('body', 'body must be a JSON object', 'INVALID_REQUEST_BODY');
  }
  const result = v.safeParse(updateSchema, body, { abortEarly: true });
  if (!result.success) throw firstIssue(result.issues, 'INVALID_REQUEST_BODY');
  const { botId, messageId, fields } = result.output;
  return { botId, messageId, fields: dropUndefined(fields) };
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
    fields: dropUndefined(fields),
    editId: editId ?? defaults.editId,
    requestedAt: requestedAt ?? defaults.requestedAt,
  };
}
