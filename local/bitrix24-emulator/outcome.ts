import { findErrorRow } from '../../lib/bitrix24/error-table.ts';

export interface Failure {
  status: number;
  code: string;
  description: string;
}

/** What one method call produced, before it is wrapped with `time` and written out. */
export type Outcome = { ok: true; result: unknown } | ({ ok: false } & Failure);

/**
 * The status and text the emulator gives each code it raises on its own. Statuses follow the
 * project's error table (first documented status) unless the brief fixes another one.
 */
const CATALOGUE = {
  ACCESS_DENIED: [403, 'Access denied'],
  // The wire text and status of the legacy methods and of the open-lines page (400 there); the
  // v2 pages name the code only.
  ATTACH_ERROR: [400, 'Incorrect attach params'],
  ATTACH_OVERSIZE: [400, 'Attach is too large'],
  BOT_CODE_ALREADY_TAKEN: [400, 'A bot with this code is already registered by another application'],
  BOT_CODE_REQUIRED: [400, 'Parameter fields.code is required'],
  BOT_ID_REQUIRED: [400, 'Parameter botId is required'],
  BOT_PROPERTIES_REQUIRED: [400, 'Parameter fields.properties.name is required'],
  BOT_NOT_FOUND: [400, 'Bot not found'],
  BOT_OWNERSHIP_ERROR: [403, 'Bot does not belong to this application or the botToken differs'],
  BOT_TOKEN_NOT_SPECIFIED: [400, 'Parameter botToken is required for webhook calls'],
  BOT_TYPE_NOT_ALLOWED: [403, 'Only supervisor and personal bots may read messages'],
  // Only with inferred.editWindowSeconds: the legacy update's code, text and 403.
  CANT_EDIT_MESSAGE: [403, "Time has expired for modification or you don't have access"],
  DIALOG_ID_REQUIRED: [400, 'Parameter dialogId is required'],
  EMPTY_MESSAGE: [400, 'Neither message nor attach given'],
  ERROR_BATCH_LENGTH_EXCEEDED: [400, 'Max batch length exceeded'],
  ERROR_BATCH_METHOD_NOT_ALLOWED: [405, 'Method is not allowed for batch usage'],
  ERROR_METHOD_NOT_FOUND: [404, 'Method not found!'],
  EXPIRED_TOKEN: [401, 'The access token provided has expired'],
  FIELDS_REQUIRED: [400, 'Parameter fields is required'],
  INTERNAL_SERVER_ERROR: [500, 'Internal server error'],
  INVALID_CREDENTIALS: [401, 'Invalid request credentials'],
  INVALID_REQUEST: [400, 'Malformed request body'],
  INVALID_TOKEN: [401, 'The access token provided is invalid'],
  KEYBOARD_ERROR: [400, 'Keyboard has an invalid format'],
  KEYBOARD_OVERSIZE: [400, 'Keyboard is too large'],
  NO_AUTH_FOUND: [401, 'Wrong authorization data'],
  OPERATION_TIME_LIMIT: [429, 'Method is blocked due to operation time limit'],
  OVERLOAD_LIMIT: [503, 'REST API is blocked due to overload'],
  QUERY_LIMIT_EXCEEDED: [503, 'Too many requests'],
} as const satisfies Record<string, readonly [number, string]>;

export type CatalogueCode = keyof typeof CATALOGUE;

/** The wire spelling of codes Bitrix24 sends in lower case. */
const WIRE_CODE: Partial<Record<CatalogueCode, string>> = {
  EXPIRED_TOKEN: 'expired_token',
  INVALID_TOKEN: 'invalid_token',
};

export function failure(code: CatalogueCode): Failure {
  const [status, description] = CATALOGUE[code];
  return { status, code: WIRE_CODE[code] ?? code, description };
}

export function fail(code: CatalogueCode): Outcome {
  return { ok: false, ...failure(code) };
}

export function ok(result: unknown): Outcome {
  return { ok: true, result };
}

/** A scripted error: the caller's status and code, the description from the error table when not given. */
export function customFailure(
  code: string,
  status: number | undefined,
  description: string | undefined,
): Failure {
  const row = findErrorRow(code, status);
  return {
    status: status ?? row?.statuses[0] ?? 400,
    code,
    description: description ?? row?.description ?? code,
  };
}
