import { standardPlan } from '../../lib/pacing/policies.ts';
import { DEFAULT_BASKET_MS } from './operating-time.ts';
import type { EmulatorOptions, InferredRules, OperatingBilling, RateLimits, SuccessShape } from './types.ts';

export type InferredSettings = Required<InferredRules>;

export interface Settings {
  port: number;
  limits: RateLimits | null;
  operatingLimitSeconds: number;
  processingMs: number;
  operatingBilling: OperatingBilling;
  operatingBasketMs: number;
  successShape: SuccessShape;
  accessTokenTtlSeconds: number;
  now: () => number;
  random: () => number;
  inferred: InferredSettings;
}

function check(ok: boolean, name: string, rule: string, value: unknown): void {
  if (!ok) throw new RangeError(`Expected ${name} to be ${rule}, got ${JSON.stringify(value)}`);
}

export function checkLimits(limits: RateLimits | null): RateLimits | null {
  if (limits === null) return null;
  check(limits.burst >= 1, 'limits.burst', 'at least 1', limits.burst);
  check(limits.perSecond >= 0, 'limits.perSecond', 'a non-negative number', limits.perSecond);
  return { burst: limits.burst, perSecond: limits.perSecond };
}

export function checkShape(shape: SuccessShape): SuccessShape {
  check(shape === 'flat' || shape === 'nested', 'successShape', "'flat' or 'nested'", shape);
  return shape;
}

/** Every inferred rule off unless named; a window must be a positive number of seconds or null. */
export function checkInferred(inferred: InferredRules = {}): InferredSettings {
  const { editWindowSeconds = null, urlPreviewWithoutMessage = false } = inferred;
  check(
    editWindowSeconds === null || (Number.isFinite(editWindowSeconds) && editWindowSeconds > 0),
    'inferred.editWindowSeconds',
    'a positive number or null',
    editWindowSeconds,
  );
  check(
    typeof urlPreviewWithoutMessage === 'boolean',
    'inferred.urlPreviewWithoutMessage',
    'a boolean',
    urlPreviewWithoutMessage,
  );
  return { editWindowSeconds, urlPreviewWithoutMessage };
}

export function normaliseOptions(options: EmulatorOptions = {}): Settings {
  // The window used to be a top-level option with a three-day default; say where it went.
  const movedWindow = (options as Record<string, unknown>).editWindowSeconds;
  check(
    movedWindow === undefined,
    'editWindowSeconds',
    'absent (the window is an inferred rule now: inferred.editWindowSeconds, off by default)',
    movedWindow,
  );
  const settings: Settings = {
    port: options.port ?? 0,
    limits: checkLimits(options.limits === undefined ? standardPlan : options.limits),
    operatingLimitSeconds: options.operatingLimitSeconds ?? 480,
    processingMs: options.processingMs ?? 5,
    operatingBilling: options.operatingBilling ?? 'per-method',
    operatingBasketMs: options.operatingBasketMs ?? DEFAULT_BASKET_MS,
    successShape: checkShape(options.successShape ?? 'nested'),
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 3600,
    now: options.now ?? Date.now,
    random: options.random ?? Math.random,
    inferred: checkInferred(options.inferred),
  };
  const { port, operatingLimitSeconds, processingMs, accessTokenTtlSeconds } = settings;
  check(Number.isInteger(port) && port >= 0 && port <= 65_535, 'port', 'an integer 0..65535', port);
  check(operatingLimitSeconds > 0, 'operatingLimitSeconds', 'a positive number', operatingLimitSeconds);
  check(processingMs >= 0, 'processingMs', 'a non-negative number', processingMs);
  const { operatingBilling, operatingBasketMs } = settings;
  check(
    operatingBilling === 'per-method' || operatingBilling === 'per-batch',
    'operatingBilling',
    "'per-method' or 'per-batch'",
    operatingBilling,
  );
  check(operatingBasketMs >= 10, 'operatingBasketMs', 'a number of ms, at least 10', operatingBasketMs);
  check(accessTokenTtlSeconds > 0, 'accessTokenTtlSeconds', 'a positive number', accessTokenTtlSeconds);
  return settings;
}
