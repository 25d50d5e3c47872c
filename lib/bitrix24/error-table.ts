/**
 * The one table that decides what to do with a Bitrix24 outcome. It covers every code of both
 * documented generations of the system error list, the imbot.v2 codes, the OAuth server's codes,
 * and the codes our client gives transport failures. The emulator and the tests loop over it.
 */
export const Strategy = {
  /** QUERY_LIMIT_EXCEEDED: the leaky bucket is full; wait for it to drain. */
  RateLimit: 'rate-limit',
  /** OPERATION_TIME_LIMIT: the method's time budget is spent; wait until `operating_reset_at`. */
  OperatingLimit: 'operating-limit',
  /** OVERLOAD_LIMIT: the portal's REST API is blocked; back off long and alert. */
  Overload: 'overload',
  /** 5xx, HTML bodies, connection errors, timeouts: may or may not have executed; retry an idempotent call. */
  Server: 'server',
  /** expired_token: refresh the OAuth access token once and repeat. */
  RefreshAuth: 'refresh-auth',
  /** Our own credentials are wrong or lack rights: nothing the caller can fix. */
  Auth: 'auth',
  /** The request itself is wrong; repeating it cannot help. */
  Permanent: 'permanent',
} as const;
export type Strategy = (typeof Strategy)[keyof typeof Strategy];

/** Strategies whose outcome may change by waiting. */
export const RETRYABLE_STRATEGIES: ReadonlySet<Strategy> = new Set([
  Strategy.RateLimit,
  Strategy.OperatingLimit,
  Strategy.Overload,
  Strategy.Server,
]);

export interface ErrorRow {
  /** Bitrix24 error code, as documented (compared case-insensitively). */
  readonly code: string;
  /** HTTP statuses the code is documented with, across doc generations. */
  readonly statuses: readonly number[];
  readonly strategy: Strategy;
  /** Only match this row when the HTTP status is one of `statuses` (for codes whose meaning depends on it). */
  readonly statusSpecific?: true;
  /**
   * Only match this row when Bitrix24's `error_description` matches (for codes with two meanings
   * under the same status). `description` must match it too, so the table tests itself.
   */
  readonly descriptionMatch?: RegExp;
  /**
   * The HTTP status our API answers when this code fails a caller's edit for good. Default: 400 for
   * `permanent` (the request is wrong), 502 otherwise (our credentials or configuration failed).
   */
  readonly callerStatus?: 403 | 404 | 410;
  /** A rotated portal secret may cure it: the gateway reads the secret again (past its cache) once. */
  readonly refetchSecret?: true;
  readonly description: string;
}

/** Codes the client itself gives failures that carry no Bitrix24 code. */
export const LocalCode = {
  Network: 'NETWORK_ERROR',
  Timeout: 'TIMEOUT',
  Aborted: 'ABORTED',
  InvalidResponse: 'INVALID_RESPONSE',
  UnexpectedResult: 'UNEXPECTED_RESULT',
  HttpRequired: 'HTTPS_REQUIRED',
  Redirected: 'REDIRECT_REFUSED',
} as const;

export const ERROR_TABLE: readonly ErrorRow[] = [
  // System errors, both documented generations.
  {
    code: 'INTERNAL_SERVER_ERROR',
    statuses: [500],
    strategy: 'server',
    description: 'Internal server error',
  },
  {
    code: 'ERROR_UNEXPECTED_ANSWER',
    statuses: [500],
    strategy: 'server',
    description: 'Unexpected response',
  },
  {
    code: 'QUERY_LIMIT_EXCEEDED',
    statuses: [503, 429],
    strategy: 'rate-limit',
    description: 'Too many requests',
  },
  {
    code: 'OPERATION_TIME_LIMIT',
    statuses: [429],
    strategy: 'operating-limit',
    description: 'Method is blocked due to operation time limit',
  },
  {
    code: 'OVERLOAD_LIMIT',
    statuses: [503, 401],
    strategy: 'overload',
    description: 'REST API is blocked due to overload',
  },
  {
    code: 'ERROR_BATCH_METHOD_NOT_ALLOWED',
    statuses: [405],
    strategy: 'permanent',
    description: 'Method is not allowed for batch usage',
  },
  {
    code: 'ERROR_BATCH_LENGTH_EXCEEDED',
    statuses: [400],
    strategy: 'permanent',
    description: 'Max batch length exceeded',
  },
  {
    code: 'NO_AUTH_FOUND',
    statuses: [401],
    strategy: 'auth',
    refetchSecret: true,
    description: 'Wrong or missing authorization data',
  },
  { code: 'INVALID_REQUEST', statuses: [400, 401], strategy: 'permanent', description: 'Https required' },
  {
    // The system meaning, told apart by its text: the 2025-26 table gives it 403, like the
    // message-level refusal, and the newer one 401.
    code: 'ACCESS_DENIED',
    statuses: [403, 401],
    descriptionMatch: /commercial plans|only by subscription|REST (API )?is (not )?available/i,
    strategy: 'auth',
    description: 'REST API is available only on commercial plans (the portal’s plan, not the message)',
  },
  {
    code: 'ACCESS_DENIED',
    statuses: [401],
    statusSpecific: true,
    strategy: 'auth',
    description: 'REST API is not available for this account',
  },
  {
    code: 'ACCESS_DENIED',
    statuses: [400, 403],
    strategy: 'permanent',
    callerStatus: 403,
    description: 'Access denied (the message is not the bot’s, or does not exist)',
  },
  {
    code: 'INVALID_CREDENTIALS',
    statuses: [403, 401],
    strategy: 'auth',
    refetchSecret: true,
    description: 'Invalid request credentials',
  },
  {
    code: 'ERROR_MANIFEST_IS_NOT_AVAILABLE',
    statuses: [404],
    strategy: 'permanent',
    description: 'Manifest is not available',
  },
  { code: 'ERROR_METHOD_NOT_FOUND', statuses: [404], strategy: 'permanent', description: 'Method not found' },
  { code: 'insufficient_scope', statuses: [403, 401], strategy: 'auth', description: 'Insufficient scope' },
  {
    code: 'expired_token',
    statuses: [401],
    strategy: 'refresh-auth',
    description: 'The access token has expired',
  },
  {
    code: 'invalid_token',
    statuses: [401],
    strategy: 'refresh-auth',
    description: 'The access token is invalid',
  },
  {
    code: 'user_access_error',
    statuses: [403, 401],
    strategy: 'auth',
    description: 'No access to the application',
  },
  {
    code: 'PORTAL_DELETED',
    statuses: [500, 403, 410],
    strategy: 'permanent',
    callerStatus: 410,
    description: 'Portal was deleted',
  },
  // Codes the official SDKs handle that neither doc table lists.
  {
    code: 'authorization_error',
    statuses: [401],
    strategy: 'auth',
    refetchSecret: true,
    description: 'Authorization failed',
  },
  {
    code: 'ERROR_OAUTH',
    statuses: [401],
    strategy: 'auth',
    refetchSecret: true,
    description: 'OAuth authorization failed',
  },
  {
    code: 'APPLICATION_NOT_FOUND',
    statuses: [401],
    strategy: 'auth',
    refetchSecret: true,
    description: 'The application is not found on the portal',
  },
  {
    code: 'NOT_INSTALLED',
    statuses: [401],
    strategy: 'auth',
    refetchSecret: true,
    description: 'The application is not installed on the portal',
  },
  {
    code: 'WRONG_AUTH_TYPE',
    statuses: [403],
    strategy: 'auth',
    refetchSecret: true,
    description: 'This method does not accept this kind of authorization',
  },
  {
    code: 'ALLOWED_ONLY_INTRANET_USER',
    statuses: [403],
    strategy: 'auth',
    refetchSecret: true,
    description: 'Only intranet (employee) users may call this method',
  },
  {
    code: 'ACCESS_ERROR',
    statuses: [403],
    strategy: 'auth',
    refetchSecret: true,
    description: 'The credentials have no access to this method',
  },
  // OAuth server.
  {
    code: 'invalid_grant',
    statuses: [400],
    strategy: 'auth',
    description: 'Refresh token is invalid or expired',
  },
  { code: 'invalid_client', statuses: [401], strategy: 'auth', description: 'Client id or secret is wrong' },
  { code: 'PAYMENT_REQUIRED', statuses: [402, 400], strategy: 'auth', description: 'Payment required' },
  // imbot.v2.
  {
    code: 'BOT_TOKEN_NOT_SPECIFIED',
    statuses: [400],
    strategy: 'permanent',
    refetchSecret: true,
    description: 'botToken is missing',
  },
  {
    code: 'CLIENT_ID_NOT_SPECIFIED',
    statuses: [400],
    strategy: 'permanent',
    description: 'botToken is missing',
  },
  { code: 'BOT_ID_REQUIRED', statuses: [400], strategy: 'permanent', description: 'botId is missing' },
  {
    code: 'BOT_NOT_FOUND',
    statuses: [400, 404],
    strategy: 'permanent',
    callerStatus: 404,
    description: 'No such bot',
  },
  {
    code: 'BOT_OWNERSHIP_ERROR',
    statuses: [400, 403],
    strategy: 'permanent',
    callerStatus: 403,
    refetchSecret: true,
    description: 'The bot belongs to another app, or the botToken differs',
  },
  { code: 'ATTACH_ERROR', statuses: [400], strategy: 'permanent', description: 'Malformed attach' },
  { code: 'ATTACH_OVERSIZE', statuses: [400], strategy: 'permanent', description: 'Attach too large' },
  { code: 'KEYBOARD_ERROR', statuses: [400], strategy: 'permanent', description: 'Malformed keyboard' },
  { code: 'KEYBOARD_OVERSIZE', statuses: [400], strategy: 'permanent', description: 'Keyboard too large' },
  {
    code: 'CANT_EDIT_MESSAGE',
    statuses: [400],
    strategy: 'permanent',
    description: 'The message can no longer be edited',
  },
  {
    code: 'EMPTY_MESSAGE',
    statuses: [400],
    strategy: 'permanent',
    description: 'Neither text nor attachment',
  },
  // Our client's own codes for failures without a Bitrix24 code.
  { code: LocalCode.Network, statuses: [], strategy: 'server', description: 'Connection failed' },
  { code: LocalCode.Timeout, statuses: [], strategy: 'server', description: 'No answer within the timeout' },
  { code: LocalCode.Aborted, statuses: [], strategy: 'server', description: 'Aborted before the deadline' },
  {
    code: LocalCode.InvalidResponse,
    statuses: [],
    strategy: 'server',
    description: 'The answer was not JSON',
  },
  {
    code: LocalCode.UnexpectedResult,
    statuses: [200],
    strategy: 'permanent',
    description: 'The answer had no truthy result',
  },
  {
    code: LocalCode.HttpRequired,
    statuses: [],
    strategy: 'permanent',
    description: 'Plain HTTP is not allowed',
  },
  // Not retried: a redirect stays until the portal URL in the secret is fixed, so the edit is kept
  // (ledger and failed-edits queue) for a replay; `auth` makes it our configuration (502), not the caller's.
  {
    code: LocalCode.Redirected,
    statuses: [],
    strategy: 'auth',
    description: 'The portal answered with a redirect, which is never followed',
  },
];

const byCode = new Map<string, ErrorRow[]>();
for (const row of ERROR_TABLE) {
  const key = row.code.toUpperCase();
  byCode.set(key, [...(byCode.get(key) ?? []), row]);
}

/**
 * The table row for a code, status and description, or undefined for a code the table does not
 * know. A row whose `descriptionMatch` matches wins, then a status-specific row, then the general one.
 */
export function findErrorRow(
  code: string | undefined,
  status: number | undefined,
  description?: string,
): ErrorRow | undefined {
  if (!code) return undefined;
  const rows = byCode.get(code.toUpperCase());
  if (!rows) return undefined;
  const byText =
    description === undefined ? undefined : rows.find((r) => r.descriptionMatch?.test(description));
  const exact = rows.find(
    (r) => r.statusSpecific && !r.descriptionMatch && status !== undefined && r.statuses.includes(status),
  );
  return byText ?? exact ?? rows.find((r) => !r.statusSpecific && !r.descriptionMatch);
}

/** For a code with several meanings, which one this answer has (the row's description); else undefined. */
export function meaningOf(
  code: string,
  status: number | undefined,
  description?: string,
): string | undefined {
  if ((byCode.get(code.toUpperCase())?.length ?? 0) < 2) return undefined;
  return findErrorRow(code, status, description)?.description;
}

/**
 * What to do with an outcome: by code first, then an unknown code falls back on its HTTP status.
 * Any 429 is a rate limit (the chat-bot docs document 429 for it), except OPERATION_TIME_LIMIT,
 * which keeps its own rule; any 5xx without a known code may pass.
 */
export function classify(
  status: number | undefined,
  code: string | undefined,
  description?: string,
): Strategy {
  const row = findErrorRow(code, status, description);
  if (status === 429 && row?.strategy !== Strategy.OperatingLimit) return Strategy.RateLimit;
  if (row) return row.strategy;
  if (status === undefined || status >= 500) return Strategy.Server;
  return Strategy.Permanent;
}

/** The HTTP status our API answers for a code that failed a caller's edit for good. */
export function callerStatusOf(code: string, status: number | undefined, description?: string): number {
  const row = findErrorRow(code, status, description);
  if (row?.callerStatus) return row.callerStatus;
  return (row?.strategy ?? classify(status, code, description)) === Strategy.Permanent ? 400 : 502;
}

export function isRetryable(strategy: Strategy): boolean {
  return RETRYABLE_STRATEGIES.has(strategy);
}
