import { ConfigError } from './errors.ts';
import { serviceNameOf } from './observability/service.ts';
import { PORTAL_PATTERN } from './portal-name.ts';
import { type RangedOption, RECONCILE_DEFAULTS, RECONCILE_RANGES } from './reconcile/options.ts';

/**
 * Everything the handlers read from the environment, normalised once at cold start.
 * This is the only module that reads `process.env` (the AWS SDK reads its own variables), but for
 * the service name the logger and the metrics take when they load (`observability/service.ts`).
 */
export interface Config {
  /** Secret name prefix; a portal's secret is `${secretPrefix}${portal}`. Default `b24/portals/`. */
  secretPrefix: string;
  /** How long a fetched portal secret is reused in one container. Default 300. */
  secretCacheTtlSeconds: number;
  /** Portal used when a request names none (`X-B24-Portal`). */
  defaultPortal: string | undefined;
  /** FIFO queue of deferred edits. */
  editsQueueUrl: string | undefined;
  /** FIFO failed-edits queue (the DLQ). */
  failedEditsQueueUrl: string | undefined;
  /** The portal work queue (standard): one pending wake-up per portal, delivered at its time. */
  portalQueueUrl: string | undefined;
  /** Receives of one edit before the drain gives up on it. Default 8. */
  maxAttempts: number;
  /** Share of a portal's rate kept for the synchronous API, 0 to <1. Default 0.2. */
  apiRateShare: number;
  /** The drain's event source mapping maximum concurrency. Default 2. */
  drainMaxConcurrency: number;
  /** Timeout of one Bitrix24 request. Default 10000. */
  b24TimeoutMs: number;
  /** Allow plain-HTTP portal URLs and sources (local use only). Default false. */
  b24AllowHttp: boolean;
  /** Time kept free before the Lambda deadline beyond one request timeout. Default 1000. */
  deadlineMarginMs: number;
  /** The ledger's DynamoDB table (STATE_TABLE_NAME). */
  stateTableName: string | undefined;
  /** The gap between a portal's calls that are not full, and the pause that ends a wait for more. Default 1000. */
  batchLingerMs: number;
  /** The longest a fresh backlog waits for its producer to pause. Default 10000. */
  batchMaxWaitMs: number;
  /** A message is applied at most once per this many ms (0: off). Default 1000. */
  messageMinIntervalMs: number;
  /** Wait after a call with an unknown outcome before its messages are sent again. Default 65000. */
  ambiguousSettleMs: number;
  /** Operating-time budget per method (OPERATING_LIMIT_SECONDS, default 480). */
  operatingLimitSeconds: number;
  /** Share of that budget, in percent, past which the rest is spread (default 80). */
  operatingThresholdPercent: number;
  /** One operating-time basket, ms (default 60000; tests scale it down). */
  operatingBasketMs: number;
  /** How long a merge may take to show in the dirty index (default 1000; 0 for the local DynamoDB). */
  indexLagMs: number;
  /** Status sources fetched at once by one refresh. Default 8. */
  statusConcurrency: number;
  /**
   * The `service` of log lines and of the metrics' dimension; one per stage, so that one stage's
   * alarms do not see another's metrics. `POWERTOOLS_SERVICE_NAME`, default `b24-message-editor`.
   */
  serviceName: string;
}

type Env = Record<string, string | undefined>;

function readInteger(
  env: Env,
  name: string,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    const range =
      max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
    throw new ConfigError(name, `Expected ${name} to be ${range}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** A reconcile setting from its environment variable, with the range the options check. */
function readRanged(env: Env, option: RangedOption): number {
  const { min, max, env: name } = RECONCILE_RANGES[option];
  if (name === undefined) throw new TypeError(`${option} has no environment variable`);
  return readInteger(env, name, RECONCILE_DEFAULTS[option], min, max);
}

function readFraction(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value >= 1) {
    throw new ConfigError(
      name,
      `Expected ${name} to be a number from 0 up to (not including) 1, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

function readBoolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = raw.trim().toLowerCase();
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new ConfigError(name, `Expected ${name} to be true or false, got ${JSON.stringify(raw)}`);
}

function readOptional(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

export function loadConfig(env: Env): Config {
  const defaultPortal = readOptional(env, 'DEFAULT_PORTAL');
  if (defaultPortal !== undefined && !PORTAL_PATTERN.test(defaultPortal)) {
    throw new ConfigError(
      'DEFAULT_PORTAL',
      `Expected DEFAULT_PORTAL to match ${PORTAL_PATTERN.source}, got ${JSON.stringify(defaultPortal)}`,
    );
  }
  return Object.freeze({
    secretPrefix: env.SECRET_PREFIX ?? 'b24/portals/',
    secretCacheTtlSeconds: readInteger(env, 'SECRET_CACHE_TTL_SECONDS', 300, 0),
    defaultPortal,
    editsQueueUrl: readOptional(env, 'EDITS_QUEUE_URL'),
    failedEditsQueueUrl: readOptional(env, 'FAILED_EDITS_QUEUE_URL'),
    portalQueueUrl: readOptional(env, 'PORTAL_QUEUE_URL'),
    maxAttempts: readRanged(env, 'maxAttempts'),
    apiRateShare: readFraction(env, 'API_RATE_SHARE', RECONCILE_DEFAULTS.apiRateShare),
    drainMaxConcurrency: readInteger(env, 'DRAIN_MAX_CONCURRENCY', 2, 1, 1_000),
    b24TimeoutMs: readRanged(env, 'callTimeoutMs'),
    b24AllowHttp: readBoolean(env, 'B24_ALLOW_HTTP', false),
    deadlineMarginMs: readRanged(env, 'deadlineMarginMs'),
    stateTableName: readOptional(env, 'STATE_TABLE_NAME'),
    batchLingerMs: readRanged(env, 'batchLingerMs'),
    batchMaxWaitMs: readRanged(env, 'batchMaxWaitMs'),
    messageMinIntervalMs: readRanged(env, 'messageMinIntervalMs'),
    ambiguousSettleMs: readRanged(env, 'ambiguousSettleMs'),
    operatingLimitSeconds: readRanged(env, 'operatingLimitSeconds'),
    operatingThresholdPercent: readRanged(env, 'operatingThresholdPercent'),
    operatingBasketMs: readRanged(env, 'operatingBasketMs'),
    indexLagMs: readRanged(env, 'indexLagMs'),
    statusConcurrency: readInteger(env, 'STATUS_CONCURRENCY', 8, 1, 100),
    serviceName: serviceNameOf(env),
  });
}

let cached: Config | undefined;

/** The process's configuration, read from `process.env` on first use. */
export function getConfig(): Config {
  cached ??= loadConfig(process.env);
  return cached;
}

/** Forget the cached configuration (tests and the local stack change the environment). */
export function resetConfig(): void {
  cached = undefined;
}
