import { isRecord } from '../../lib/is-record.ts';
/**
 * What the local stack tells the sandbox page and the console about each request to the update API.
 * Built from the parsed bodies by `summariseRequest`, which keeps only ids and codes: a request's
 * botToken and a message's text never reach it.
 */
export interface ApiActivity {
  at: string;
  requestId: string;
  method: string;
  path: string;
  status: number;
  durationMs: number;
  /**
   * `applied`, `deferred`, `duplicate` (an Idempotency-Key's repeat), `fate: <status>` (a message's
   * fate was read), a `batch`'s commands by outcome, or the error code of the answer.
   */
  outcome: string;
  botId?: number;
  messageId?: number;
  /** The edit's id, when the answer carried one (deferred edits, and applied ones that name it). */
  editId?: string;
  /** For deferred edits: why. */
  reason?: string;
  /** For errors: the answer's error_description (it names the field and the rule). */
  description?: string;
}

function parseJson(text: string | undefined): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function positiveInteger(value: unknown): number | undefined {
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof number === 'number' && Number.isSafeInteger(number) && number > 0 ? number : undefined;
}

export function summariseRequest(
  line: Pick<ApiActivity, 'at' | 'requestId' | 'method' | 'path' | 'durationMs'>,
  requestBody: string | undefined,
  status: number,
  responseBody: string | undefined,
  pathParameters: Readonly<Record<string, string>> = {},
): ApiActivity {
  const request = parseJson(requestBody);
  const response = parseJson(responseBody);
  const activity: ApiActivity = { ...line, status, outcome: `HTTP ${status}` };
  // The update route names the message in its body, the fate route in its path.
  const ids = isRecord(request) ? request : pathParameters;
  const botId = positiveInteger(ids.botId);
  const messageId = positiveInteger(ids.messageId);
  if (botId !== undefined) activity.botId = botId;
  if (messageId !== undefined) activity.messageId = messageId;
  if (isRecord(response)) {
    if (typeof response.editId === 'string') activity.editId = response.editId;
    if (typeof response.error === 'string') {
      activity.outcome = response.error;
      if (typeof response.error_description === 'string') activity.description = response.error_description;
    } else if (response.deferred === true) {
      activity.outcome = 'deferred';
      if (typeof response.reason === 'string') activity.reason = response.reason;
    } else if (response.duplicate === true) activity.outcome = 'duplicate';
    else if (isRecord(response.result) && 'result_error' in response.result) {
      activity.outcome = batchOutcome(response.result);
    } else if (response.result === true || (isRecord(response.result) && response.result.result === true)) {
      // This API's own answer, or the webhook route's in Bitrix24's shape (`{result: {result: true}}`).
      activity.outcome = 'applied';
    } else if (typeof response.status === 'string') activity.outcome = `fate: ${response.status}`;
  }
  return activity;
}

function entries(section: unknown): number {
  return Array.isArray(section) ? section.length : isRecord(section) ? Object.keys(section).length : 0;
}

/**
 * A `batch` answer of the webhook route by its commands: applied ones have a time, recorded ones
 * that wait are in `result_deferred`, and every refused or failed one is in `result_error`.
 */
function batchOutcome(result: Record<string, unknown>): string {
  const applied = entries(result.result_time);
  const deferred = entries(result.result_deferred);
  const errors = entries(result.result_error);
  const commands = entries(result.result) + errors;
  const parts = [
    applied > 0 ? `${applied} applied` : '',
    deferred > 0 ? `${deferred} deferred` : '',
    errors > 0 ? `${errors} ${errors === 1 ? 'error' : 'errors'}` : '',
  ].filter(Boolean);
  return `batch of ${commands}: ${parts.join(', ') || 'nothing done'}`;
}

/** The last `capacity` requests, newest first. */
export class ActivityLog {
  readonly #capacity: number;
  readonly #entries: ApiActivity[] = [];
  readonly #listeners = new Set<(activity: ApiActivity) => void>();

  constructor(capacity = 25) {
    this.#capacity = capacity;
  }

  add(activity: ApiActivity): void {
    this.#entries.unshift(activity);
    this.#entries.length = Math.min(this.#entries.length, this.#capacity);
    for (const listener of this.#listeners) listener(activity);
  }

  entries(): readonly ApiActivity[] {
    return this.#entries;
  }

  /** Returns the function that stops listening. */
  onAdd(listener: (activity: ApiActivity) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
