import { AppError } from '../errors.ts';

/** Why a status source could not be read. */
export const SourceErrorCode = {
  /** The source did not answer (headers and body) within its `timeoutMs`. */
  timeout: 'SOURCE_TIMEOUT',
  /** An `http-json` source answered with a status outside 200-299. */
  httpStatus: 'SOURCE_HTTP_STATUS',
  /** The body of an `http-json` source is not JSON. */
  notJson: 'SOURCE_NOT_JSON',
  /** The body is larger than the 1 MB cap. */
  tooLarge: 'SOURCE_TOO_LARGE',
  /** No HTTP answer at all: DNS, refused connection, reset, TLS failure. */
  unreachable: 'SOURCE_UNREACHABLE',
  /** The URL (or a redirect) is plain HTTP and plain HTTP is not allowed. */
  httpNotAllowed: 'SOURCE_HTTP_NOT_ALLOWED',
  /**
   * The URL (or a redirect) names a loopback, link-local, metadata or unique-local address
   * (refused unless in local mode).
   */
  addressNotAllowed: 'SOURCE_ADDRESS_NOT_ALLOWED',
  /** More redirects than the source may follow (5). */
  tooManyRedirects: 'SOURCE_TOO_MANY_REDIRECTS',
  /**
   * The caller's signal (the Lambda deadline) aborted the read. Not the source's fault, so
   * `renderStatus` reports it as `failed` instead of applying `onSourceError`.
   */
  aborted: 'SOURCE_ABORTED',
} as const;
export type SourceErrorCode = (typeof SourceErrorCode)[keyof typeof SourceErrorCode];

export interface SourceErrorInit {
  code: SourceErrorCode;
  /** Host (with port) of the source URL; the path and query string are never kept (may hold keys). */
  host: string;
  /** What went wrong, without the URL. */
  detail: string;
  /** HTTP status of the answer, when one arrived. */
  httpStatus?: number | undefined;
  cause?: unknown;
}

/** A status source could not be read. The message names the host, never the path or query string. */
export class SourceError extends AppError {
  override name = 'SourceError';
  declare readonly code: SourceErrorCode;
  readonly host: string;
  readonly httpStatus: number | undefined;

  constructor(init: SourceErrorInit) {
    super(
      init.code,
      `Status source on ${init.host}: ${init.detail}`,
      502,
      init.cause === undefined ? undefined : { cause: init.cause },
    );
    this.host = init.host;
    this.httpStatus = init.httpStatus;
  }
}

/** Why a status message could not be rendered. */
export const StatusRenderErrorCode = {
  /** The rendered text is over the Bitrix24 limit of 20,000 characters; never truncated. */
  messageTooLong: 'MESSAGE_TOO_LONG',
  /** The rendered text is empty or blank; an empty text may delete the message in Bitrix24. */
  messageEmpty: 'MESSAGE_EMPTY',
  /** The template does not parse (unclosed section, bad tag). */
  templateInvalid: 'TEMPLATE_INVALID',
  /** The time zone is not one `Intl` knows. */
  timezoneInvalid: 'TIMEZONE_INVALID',
} as const;
export type StatusRenderErrorCode = (typeof StatusRenderErrorCode)[keyof typeof StatusRenderErrorCode];

/** A status message could not be rendered from its template. */
export class StatusRenderError extends AppError {
  override name = 'StatusRenderError';
  declare readonly code: StatusRenderErrorCode;

  constructor(code: StatusRenderErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, 500, options);
  }
}
