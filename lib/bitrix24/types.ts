/** The `time` object Bitrix24 attaches to every answer; the field set varies by method and install. */
export interface B24Time {
  start?: number;
  finish?: number;
  duration?: number;
  processing?: number;
  date_start?: string;
  date_finish?: string;
  /** Seconds this method has run for this app/webhook in the last ten minutes (cloud only). */
  operating?: number;
  /** Unix seconds when the oldest one-minute basket of `operating` drops (cloud only). */
  operating_reset_at?: number;
}

/** How a call authenticates: a webhook path, or an OAuth access token in the body. */
export type PortalAuth =
  | { type: 'webhook'; userId: number; code: string }
  | { type: 'oauth'; accessToken: string };

/** Rate limits of a portal's leaky bucket: at most `burst` requests above the drain of `perSecond`. */
export interface RateLimits {
  burst: number;
  perSecond: number;
}

/** A successful call: the raw `result` and the `time` object, if any. */
export interface CallOutcome<T = unknown> {
  result: T;
  time?: B24Time;
}

/** One sub-request of a `batch` call, as Bitrix24 reports it. */
export type BatchItemOutcome =
  | { ok: true; result: unknown; time?: B24Time }
  | { ok: false; code: string; description: string };
