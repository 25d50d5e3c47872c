import Mustache from 'mustache';
import * as v from 'valibot';
import { ConfigError } from '../errors.ts';
import { PORTAL_PATTERN } from '../portal-name.ts';

/** Default and maximum `source.timeoutMs`. */
export const SOURCE_TIMEOUT_DEFAULT_MS = 3_000;
export const SOURCE_TIMEOUT_MAX_MS = 10_000;

import type { EditFields } from '../edits/types.ts';
import { normaliseFields } from '../edits/validate.ts';
import { ValidationError } from '../errors.ts';
import { isRecord } from '../is-record.ts';

interface HttpSourceBase {
  url: string;
  /** Time for the whole read (headers and body). Default 3000, at most 10000. */
  timeoutMs: number;
  /** Request headers (an API key, `Authorization`). Default none. */
  headers: Record<string, string>;
}

/** GET a JSON document; the document is the template data. A non-2xx answer is a source error. */
export interface HttpJsonSource extends HttpSourceBase {
  type: 'http-json';
}

/**
 * GET a URL and describe the answer as template data: `{ ok, status, latencyMs, checkedAt, error? }`.
 * An unhealthy endpoint is what this source reports, so an answer outside 2xx, a timeout or a refused
 * connection are data with `ok: false` (and `status: null`, `error: {code, message}` when no answer
 * arrived), not source errors.
 */
export interface HttpHealthSource extends HttpSourceBase {
  type: 'http-health';
}

/** No source: the template renders with the built-in data only (`now`, `nowIso`). */
export interface NoSource {
  type: 'none';
}

export type StatusSource = HttpJsonSource | HttpHealthSource | NoSource;

/** Fields sent as they are with every update, beside the rendered `message`. */
export interface StatusStaticFields {
  /** Buttons, or `N` to remove the keyboard. */
  keyboard?: Record<string, unknown>[] | 'N';
  /** Attach blocks (short form) or a full attach object, checked by the edit rules. */
  attach?: NonNullable<EditFields['attach']>;
  /** Accepts `Y`/`N`/boolean; always `Y`/`N` here. */
  urlPreview?: 'Y' | 'N';
  /** Whether Bitrix24 marks the message edited (the edit rules' normal form). */
  isEdited?: boolean;
}

/**
 * What to do when the source fails: `keep` leaves the message as it is (default), a template
 * replaces it, rendered with `{ error: { message, code } }` plus `now` and `nowIso`.
 */
export type OnSourceError = 'keep' | { template: string };

/** One scheduled status message, fully resolved (defaults applied). */
export interface StatusSpec {
  /** Portal name (`acme` for acme.bitrix24.*); selects the portal's secret. */
  portal: string;
  botId: number;
  /** The bot's message kept current. */
  messageId: number;
  source: StatusSource;
  /** Mustache template producing the BB-code text; not HTML-escaped. */
  template: string;
  /** IANA time zone `now` is shown in. Default `UTC`. */
  timezone: string;
  /** Default `{}`. */
  fields: StatusStaticFields;
  /** Default `keep`. */
  onSourceError: OnSourceError;
}

export interface StatusSpecIssue {
  /** Position in `messages` (0 for a single spec), or -1 when the input as a whole is wrong. */
  index: number;
  /** Path inside the input, e.g. `messages[3].source.url`. */
  field: string;
  message: string;
}

export interface ParseStatusInputOptions {
  /**
   * Accept `http:` source URLs (local stack only). Default false: a spec that would be refused at run
   * time is refused when it is validated, at package time.
   */
  allowHttp?: boolean;
}

// valibot's strictObject stops at the first unknown key; this names every one of them.
function closedObject<const E extends v.ObjectEntries>(entries: E, what: string) {
  return v.pipe(
    // The object schema's message also covers a missing key, whose issue expects the key's name.
    v.looseObject(entries, (issue) =>
      issue.input === undefined && issue.expected !== 'Object' ? 'is required' : `must be ${what}`,
    ),
    v.rawCheck(({ dataset, addIssue }) => {
      const value = dataset.value;
      if (!isRecord(value)) return;
      for (const key of Object.keys(value)) {
        if (Object.hasOwn(entries, key)) continue;
        addIssue({
          message: `unknown key; expected one of ${Object.keys(entries).join(', ')}`,
          path: [{ type: 'object', origin: 'key', input: value, key, value: value[key] }],
        });
      }
    }),
  );
}

function templateIssue(template: string): string | undefined {
  try {
    Mustache.parse(template);
    return undefined;
  } catch (error) {
    return `is not a valid template: ${(error as Error).message}`;
  }
}

const templateSchema = v.pipe(
  v.string('must be a string'),
  v.check((template) => template.trim() !== '', 'must not be empty'),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const issue = templateIssue(dataset.value);
    if (issue) addIssue({ message: issue });
  }),
);

function positiveInteger() {
  return v.pipe(
    v.number('must be a positive integer'),
    v.safeInteger('must be a positive integer'),
    v.minValue(1, 'must be a positive integer'),
  );
}

function isValidTimezone(zone: string): boolean {
  // Intl also takes offsets such as "+01:00"; only named zones are wanted here.
  if (!/^[A-Za-z]/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function urlIssue(raw: string, allowHttp: boolean): string | undefined {
  const expected = allowHttp ? 'must be an http or https URL' : 'must be an https URL';
  const url = URL.parse(raw);
  if (!url) return expected;
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) return expected;
  // fetch refuses URLs with credentials, and a URL is not the place for a secret anyway.
  if (url.username || url.password) return 'must not hold a user name or password; use source.headers';
  return undefined;
}

function headersAreValid(headers: Record<string, string>): boolean {
  try {
    new Headers(headers);
    return true;
  } catch {
    return false;
  }
}

function httpSourceSchema<T extends 'http-json' | 'http-health'>(type: T, allowHttp: boolean) {
  return closedObject(
    {
      type: v.literal(type),
      url: v.pipe(
        v.string('must be a string'),
        v.rawCheck(({ dataset, addIssue }) => {
          if (!dataset.typed) return;
          const issue = urlIssue(dataset.value, allowHttp);
          if (issue) addIssue({ message: issue });
        }),
      ),
      timeoutMs: v.optional(
        v.pipe(
          v.number(`must be an integer from 1 to ${SOURCE_TIMEOUT_MAX_MS}`),
          v.safeInteger(`must be an integer from 1 to ${SOURCE_TIMEOUT_MAX_MS}`),
          v.minValue(1, `must be an integer from 1 to ${SOURCE_TIMEOUT_MAX_MS}`),
          v.maxValue(SOURCE_TIMEOUT_MAX_MS, `must be an integer from 1 to ${SOURCE_TIMEOUT_MAX_MS}`),
        ),
        SOURCE_TIMEOUT_DEFAULT_MS,
      ),
      headers: v.optional(
        v.pipe(
          v.record(v.string(), v.string('must be a string'), 'must be an object of header names to strings'),
          v.check(headersAreValid, 'must hold valid HTTP header names and values'),
        ),
        {},
      ),
    },
    'an object',
  );
}

const SOURCE_TYPES = ['http-json', 'http-health', 'none'] as const;

function sourceSchema(allowHttp: boolean) {
  const json = httpSourceSchema('http-json', allowHttp);
  const health = httpSourceSchema('http-health', allowHttp);
  const none = closedObject({ type: v.literal('none') }, 'an object');
  // Never succeeds; typed `never` so that the source union is exactly the three kinds above.
  const unknownType = v.pipe(
    v.unknown(),
    v.rawCheck(({ dataset, addIssue }) => {
      const input = dataset.value;
      if (!isRecord(input)) {
        addIssue({ message: input === undefined ? 'is required' : 'must be an object with a type' });
        return;
      }
      addIssue({
        message: `must be one of ${SOURCE_TYPES.join(', ')}`,
        path: [{ type: 'object', origin: 'value', input, key: 'type', value: input.type }],
      });
    }),
    v.transform((): never => {
      throw new Error('unreachable: an unknown source type always has an issue');
    }),
  );
  // Chosen by `type` so that the issues are those of the intended source, not of every union member.
  return v.lazy((input) => {
    const type = isRecord(input) ? input.type : undefined;
    if (type === 'http-json') return json;
    if (type === 'http-health') return health;
    if (type === 'none') return none;
    return unknownType;
  });
}

// Keyboard and attach follow the edit rules of the API and the queue (`normaliseFields`, after the
// schema): a status refresh never sends what an edit would be refused for.
const present = v.custom<unknown>((value) => value !== null && value !== undefined, 'must not be null');

const fieldsSchema = closedObject(
  {
    keyboard: v.exactOptional(present),
    attach: v.exactOptional(present),
    isEdited: v.exactOptional(present),
    urlPreview: v.exactOptional(
      v.pipe(
        v.union([v.picklist(['Y', 'N']), v.boolean()], 'must be "Y", "N", true or false'),
        v.transform((value): 'Y' | 'N' => (value === true || value === 'Y' ? 'Y' : 'N')),
      ),
    ),
  },
  'an object',
);

const onSourceErrorSchema = v.union(
  [v.literal('keep'), closedObject({ template: templateSchema }, 'an object')],
  'must be "keep" or { "template": "..." }',
);

function specSchema(allowHttp: boolean) {
  return closedObject(
    {
      portal: v.pipe(
        v.string('must be a string'),
        v.regex(PORTAL_PATTERN, `must match ${PORTAL_PATTERN.source}`),
      ),
      botId: positiveInteger(),
      messageId: positiveInteger(),
      source: sourceSchema(allowHttp),
      template: templateSchema,
      timezone: v.optional(
        v.pipe(v.string('must be a string'), v.check(isValidTimezone, 'must be an IANA time zone name')),
        'UTC',
      ),
      fields: v.optional(fieldsSchema, {}),
      onSourceError: v.optional(onSourceErrorSchema, 'keep'),
    },
    'a status spec object',
  );
}

const schemas = { https: specSchema(false), http: specSchema(true) };

function formatPath(prefix: string, issue: v.BaseIssue<unknown>): string {
  let field = prefix;
  for (const item of issue.path ?? []) {
    const key = item.key;
    field += typeof key === 'number' ? `[${key}]` : field ? `.${String(key)}` : String(key);
  }
  return field;
}

// Rebuilt field by field so that the result holds exactly the StatusSpec keys; the static fields in
// the edit rules' normal form (throws ValidationError naming `fields.…` when one breaks a rule).
function toSpec(output: v.InferOutput<(typeof schemas)['https']>): StatusSpec {
  const { source, fields, onSourceError } = output;
  const resolvedSource: StatusSource =
    source.type === 'none'
      ? { type: 'none' }
      : { type: source.type, url: source.url, timeoutMs: source.timeoutMs, headers: { ...source.headers } };
  const normal = normaliseFields(fields, output.botId, 'INVALID_STATUS_SPEC');
  const resolvedFields: StatusStaticFields = {};
  if (normal.keyboard !== undefined) resolvedFields.keyboard = normal.keyboard;
  if (normal.attach !== undefined) resolvedFields.attach = normal.attach;
  if (normal.urlPreview !== undefined) resolvedFields.urlPreview = normal.urlPreview;
  if (normal.isEdited !== undefined) resolvedFields.isEdited = normal.isEdited;
  return {
    portal: output.portal,
    botId: output.botId,
    messageId: output.messageId,
    source: resolvedSource,
    template: output.template,
    timezone: output.timezone,
    fields: resolvedFields,
    onSourceError: onSourceError === 'keep' ? 'keep' : { template: onSourceError.template },
  };
}

const NOT_AN_INPUT = 'must be a status spec object or { "messages": [spec, ...] }';

/**
 * Validates an EventBridge schedule input: one spec, or `{ "messages": [spec, ...] }`.
 * Each spec is checked as a whole and every problem is reported with its index and path;
 * valid specs come through even when others are refused. Two specs for the same message
 * (portal, botId, messageId) would overwrite each other, so the later one is refused.
 */
export function parseStatusInput(
  input: unknown,
  options: ParseStatusInputOptions = {},
): { specs: Array<{ index: number; spec: StatusSpec }>; invalid: StatusSpecIssue[] } {
  const specs: Array<{ index: number; spec: StatusSpec }> = [];
  const invalid: StatusSpecIssue[] = [];
  if (!isRecord(input)) {
    invalid.push({ index: -1, field: '', message: NOT_AN_INPUT });
    return { specs, invalid };
  }

  let entries: Array<{ index: number; prefix: string; value: unknown }>;
  if (Object.hasOwn(input, 'messages')) {
    for (const key of Object.keys(input)) {
      if (key !== 'messages') {
        invalid.push({ index: -1, field: key, message: 'unknown key; expected only messages' });
      }
    }
    const messages = input.messages;
    if (!Array.isArray(messages) || messages.length === 0) {
      invalid.push({ index: -1, field: 'messages', message: 'must be a non-empty array of status specs' });
      return { specs, invalid };
    }
    entries = messages.map((value, index) => ({ index, prefix: `messages[${index}]`, value }));
  } else {
    entries = [{ index: 0, prefix: '', value: input }];
  }

  const schema = options.allowHttp ? schemas.http : schemas.https;
  const targets = new Map<string, string>();
  for (const { index, prefix, value } of entries) {
    const result = v.safeParse(schema, value);
    if (!result.success) {
      for (const issue of result.issues) {
        invalid.push({ index, field: formatPath(prefix, issue), message: issue.message });
      }
      continue;
    }
    let spec: StatusSpec;
    try {
      spec = toSpec(result.output);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      // The edit rules name the field first: "fields.attach.BLOCKS[0] …" becomes its path and rule.
      const rule = error.message.startsWith(`${error.field} `)
        ? error.message.slice(error.field.length + 1)
        : error.message;
      invalid.push({ index, field: prefix ? `${prefix}.${error.field}` : error.field, message: rule });
      continue;
    }
    const target = `${spec.portal}:${spec.botId}:${spec.messageId}`;
    const first = targets.get(target);
    if (first !== undefined) {
      invalid.push({
        index,
        field: prefix ? `${prefix}.messageId` : 'messageId',
        message: `same portal, botId and messageId as ${first}; one message can have only one spec`,
      });
      continue;
    }
    targets.set(target, prefix || 'the spec');
    specs.push({ index, spec });
  }
  return { specs, invalid };
}

/**
 * Validates status specs at package time: returns every spec, or throws one ConfigError that lists
 * every problem (`label` names the input, e.g. the schedule, in the message).
 */
export function assertValidStatusSpecs(
  input: unknown,
  label: string,
  options: ParseStatusInputOptions = {},
): StatusSpec[] {
  const { specs, invalid } = parseStatusInput(input, options);
  if (invalid.length > 0) {
    const lines = invalid.map(({ field, message }) => `  ${field || '(input)'}: ${message}`);
    throw new ConfigError(
      label,
      `${label}: ${invalid.length} ${invalid.length === 1 ? 'problem' : 'problems'} in the status specs:\n${lines.join('\n')}`,
    );
  }
  return specs.map(({ spec }) => spec);
}
