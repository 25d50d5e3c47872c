import { AppError } from '../errors.ts';
import { classify, meaningOf, type Strategy } from './error-table.ts';
import type { B24Time } from './types.ts';

export interface Bitrix24ErrorInit {
  method: string;
  host: string;
  code: string;
  description: string;
  /** HTTP status of the answer; undefined when no answer arrived. */
  httpStatus?: number | undefined;
  time?: B24Time | undefined;
  /** Seconds from a Retry-After header, when the server sent one. */
  retryAfterSeconds?: number | undefined;
  cause?: unknown;
}

/**
 * A failed Bitrix24 call. `code` is the Bitrix24 code (or one of `LocalCode`), `strategy` what to
 * do about it. The message names the method and the portal host, never a token or webhook path.
 */
export class Bitrix24Error extends AppError {
  override name = 'Bitrix24Error';
  readonly method: string;
  readonly host: string;
  readonly description: string;
  readonly httpStatus: number | undefined;
  readonly strategy: Strategy;
  readonly time: B24Time | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(init: Bitrix24ErrorInit) {
    // A code with two meanings (ACCESS_DENIED) says which one we read, so the caller need not guess.
    const meaning = meaningOf(init.code, init.httpStatus, init.description);
    super(
      init.code,
      `${init.method} on ${init.host} failed: ${init.code}${init.description ? ` (${init.description})` : ''}${meaning ? `: ${meaning}` : ''}`,
      502,
      init.cause === undefined ? undefined : { cause: init.cause },
    );
    this.method = init.method;
    this.host = init.host;
    this.description = init.description;
    this.httpStatus = init.httpStatus;
    this.strategy = classify(init.httpStatus, init.code, init.description);
    this.time = init.time;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

export function isBitrix24Error(error: unknown): error is Bitrix24Error {
  return error instanceof Bitrix24Error;
}
