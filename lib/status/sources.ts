import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { SourceError, type SourceErrorCode } from './errors.ts';
import type { HttpHealthSource, StatusSource } from './spec.ts';

/** Largest source body read; past it the read stops and fails with `SOURCE_TOO_LARGE`. */
export const SOURCE_MAX_BYTES = 1024 * 1024;

export interface FetchSourceOptions {
  /**
   * Local mode (the local stack only): allow plain-HTTP URLs and loopback, link-local and
   * unique-local addresses.
   */
  allowHttp: boolean;
  /** The caller's deadline; aborting it fails the read with `SOURCE_ABORTED`. */
  signal?: AbortSignal;
  /** Clock for `latencyMs` and `checkedAt` of health checks. Default `Date.now`. */
  now?: () => number;
}

/** Template data of an `http-health` source. */
export interface HealthData {
  /** True for an answer with a 2xx status. */
  ok: boolean;
  /** HTTP status, or null when no answer arrived. */
  status: number | null;
  /** Time until the response headers arrived (or the check gave up). */
  latencyMs: number;
  /** ISO 8601 time the check started. */
  checkedAt: string;
  /** Why no answer arrived (`SOURCE_TIMEOUT`, `SOURCE_UNREACHABLE`, ...). */
  error?: { code: SourceErrorCode; message: string };
}

const USER_AGENT = 'b24-message-editor (status message)';
/** Redirects a source may follow; each hop is checked before anything is sent to it. */
export const SOURCE_MAX_REDIRECTS = 5;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

// Addresses a status source must never reach outside local mode: this host, the link (cloud
// metadata services sit at 169.254.169.254 and fd00:ec2::254) and unique-local networks.
const PRIVATE_ADDRESSES = new BlockList();
PRIVATE_ADDRESSES.addSubnet('127.0.0.0', 8, 'ipv4');
PRIVATE_ADDRESSES.addSubnet('0.0.0.0', 8, 'ipv4');
PRIVATE_ADDRESSES.addSubnet('169.254.0.0', 16, 'ipv4');
PRIVATE_ADDRESSES.addAddress('::1', 'ipv6');
PRIVATE_ADDRESSES.addAddress('::', 'ipv6');
PRIVATE_ADDRESSES.addSubnet('fe80::', 10, 'ipv6');
PRIVATE_ADDRESSES.addSubnet('fc00::', 7, 'ipv6');
// IPv4-mapped forms of the IPv4 ranges above.
PRIVATE_ADDRESSES.addSubnet('::ffff:7f00:0', 104, 'ipv6');
PRIVATE_ADDRESSES.addSubnet('::ffff:0:0', 104, 'ipv6');
PRIVATE_ADDRESSES.addSubnet('::ffff:a9fe:0', 112, 'ipv6');

function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  return family !== 0 && PRIVATE_ADDRESSES.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

function addressRefused(url: URL, detail: string): SourceError {
  return new SourceError({ code: 'SOURCE_ADDRESS_NOT_ALLOWED', host: url.host, detail });
}

/**
 * Refuses a URL whose host is, or resolves to, a private address. (The connection resolves the
 * name again; a name that changes its answer in between is a known gap, see docs/limits.md.)
 */
async function checkAddress(url: URL): Promise<void> {
  const name = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) {
    throw addressRefused(url, 'localhost is not allowed');
  }
  if (isIP(name) !== 0) {
    if (isPrivateAddress(name))
      throw addressRefused(url, `${name} is a loopback, link-local or private address`);
    return;
  }
  // A name that does not resolve fails in fetch, as SOURCE_UNREACHABLE.
  const addresses = await lookup(name, { all: true, verbatim: true }).catch(() => []);
  const bad = addresses.find(({ address }) => isPrivateAddress(address));
  if (bad) throw addressRefused(url, `resolves to ${bad.address}, a loopback, link-local or private address`);
}

/** Every hop is checked before anything is sent to it: the scheme, and the address outside local mode. */
async function checkHop(url: URL, options: FetchSourceOptions): Promise<void> {
  checkProtocol(url, options.allowHttp);
  if (!options.allowHttp) await checkAddress(url);
}

// The deepest `code` in a fetch failure's cause chain (ECONNREFUSED, ENOTFOUND, ...) says what failed.
function networkCode(error: unknown): string | undefined {
  let code: string | undefined;
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const candidate = (current as { code?: unknown }).code;
    if (typeof candidate === 'string') code = candidate;
    current = current.cause;
  }
  return code;
}

interface Attempt {
  url: URL;
  host: string;
  timeout: AbortSignal;
  caller: AbortSignal | undefined;
}

// Every failure is converted here, the one boundary between fetch and our error family.
function toSourceError(error: unknown, attempt: Attempt, timeoutMs: number): SourceError {
  if (error instanceof SourceError) return error;
  const { host } = attempt;
  if (attempt.caller?.aborted) {
    return new SourceError({
      code: 'SOURCE_ABORTED',
      host,
      detail: 'read aborted by the caller',
      cause: error,
    });
  }
  if (attempt.timeout.aborted) {
    return new SourceError({
      code: 'SOURCE_TIMEOUT',
      host,
      detail: `no answer within ${timeoutMs} ms`,
      cause: error,
    });
  }
  const code = networkCode(error);
  return new SourceError({
    code: 'SOURCE_UNREACHABLE',
    host,
    detail: `unreachable${code ? ` (${code})` : ''}`,
    cause: error,
  });
}

function checkProtocol(url: URL, allowHttp: boolean): void {
  if (url.protocol === 'https:' || (allowHttp && url.protocol === 'http:')) return;
  throw new SourceError({
    code: 'SOURCE_HTTP_NOT_ALLOWED',
    host: url.host,
    detail: `${url.protocol.replace(':', '')} is not allowed; use https`,
  });
}

async function readCapped(response: Response, host: string): Promise<Uint8Array> {
  const tooLarge = () =>
    new SourceError({
      code: 'SOURCE_TOO_LARGE',
      host,
      detail: `body is larger than ${SOURCE_MAX_BYTES} bytes`,
      httpStatus: response.status,
    });
  const declared = Number(response.headers.get('content-length'));
  if (declared > SOURCE_MAX_BYTES) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > SOURCE_MAX_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

async function get(
  source: Exclude<StatusSource, { type: 'none' }>,
  options: FetchSourceOptions,
  onHeaders: (response: Response, attempt: Attempt) => Promise<unknown>,
): Promise<unknown> {
  const first = new URL(source.url);
  const timeout = AbortSignal.timeout(source.timeoutMs);
  const attempt: Attempt = { url: first, host: first.host, timeout, caller: options.signal };
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  try {
    let url = first;
    for (let hop = 0; hop <= SOURCE_MAX_REDIRECTS; hop++) {
      await checkHop(url, options);
      const headers = new Headers({
        accept: source.type === 'http-json' ? 'application/json' : '*/*',
        'user-agent': USER_AGENT,
      });
      // The spec's headers (API keys) go to the spec's host only, never to where a redirect points.
      // set, not a spread: `Accept` from the spec must replace our `accept`, not be appended to it.
      if (url.host === first.host)
        for (const [name, value] of Object.entries(source.headers)) headers.set(name, value);
      const response = await fetch(url, { method: 'GET', headers, redirect: 'manual', signal });
      const location = response.headers.get('location');
      const next = REDIRECT_STATUSES.has(response.status) && location ? URL.parse(location, url.href) : null;
      if (!next) return await onHeaders(response, attempt);
      await response.body?.cancel();
      url = next;
    }
    throw new SourceError({
      code: 'SOURCE_TOO_MANY_REDIRECTS',
      host: first.host,
      detail: `more than ${SOURCE_MAX_REDIRECTS} redirects`,
    });
  } catch (error) {
    throw toSourceError(error, attempt, source.timeoutMs);
  }
}

async function fetchJson(source: Extract<StatusSource, { type: 'http-json' }>, options: FetchSourceOptions) {
  return get(source, options, async (response, { host }) => {
    if (!response.ok) {
      await response.body?.cancel();
      throw new SourceError({
        code: 'SOURCE_HTTP_STATUS',
        host,
        detail: `answered HTTP ${response.status}`,
        httpStatus: response.status,
      });
    }
    const body = await readCapped(response, host);
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as unknown;
    } catch (error) {
      throw new SourceError({
        code: 'SOURCE_NOT_JSON',
        host,
        detail: `body is not JSON (content-type ${response.headers.get('content-type') ?? 'none'})`,
        httpStatus: response.status,
        cause: error,
      });
    }
  });
}

// Refusals by our own rules or by the caller's deadline: they say nothing about the endpoint.
const OUR_RULES: ReadonlySet<SourceErrorCode> = new Set([
  'SOURCE_HTTP_NOT_ALLOWED',
  'SOURCE_ADDRESS_NOT_ALLOWED',
  'SOURCE_ABORTED',
]);

async function fetchHealth(source: HttpHealthSource, options: FetchSourceOptions): Promise<HealthData> {
  const clock = options.now ?? Date.now;
  const started = clock();
  const checkedAt = new Date(started).toISOString();
  try {
    return (await get(source, options, async (response) => {
      const latencyMs = Math.max(0, clock() - started);
      // Only the status matters; the body is dropped to free the connection.
      await response.body?.cancel();
      return { ok: response.ok, status: response.status, latencyMs, checkedAt } satisfies HealthData;
    })) as HealthData;
  } catch (error) {
    if (!(error instanceof SourceError)) throw error;
    if (OUR_RULES.has(error.code)) throw error;
    return {
      ok: false,
      status: null,
      latencyMs: Math.max(0, clock() - started),
      checkedAt,
      error: { code: error.code, message: error.message },
    };
  }
}

/**
 * Reads a status source and returns its template data: the parsed JSON for `http-json`,
 * `HealthData` for `http-health`, `{}` for `none`. GET only; https only and no private addresses
 * unless `allowHttp` (local mode); at most 5 redirects, each hop checked before it is sent and given
 * the spec's headers only on the spec's own host; each read has the source's own timeout; bodies
 * over 1 MB are refused.
 *
 * @throws SourceError with a code to switch on; the message names the host, never the path or query.
 */
export async function fetchSource(source: StatusSource, options: FetchSourceOptions): Promise<unknown> {
  switch (source.type) {
    case 'none':
      return {};
    case 'http-json':
      return fetchJson(source, options);
    case 'http-health':
      return fetchHealth(source, options);
  }
}

/**
 * Runs `fn` over `items` with at most `limit` calls in flight and returns the results in the
 * order of `items`. The first rejection rejects the whole call and no new items are started.
 */
export async function mapWithConcurrency<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new TypeError(`Expected limit to be a positive integer, got ${String(limit)}`);
  }
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T, i);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
