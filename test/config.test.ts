import { describe, expect, it } from 'vitest';
import { loadConfig } from '../lib/config.ts';
import { ConfigError } from '../lib/errors.ts';

describe('configuration from the environment', () => {
  it('fills every documented default', () => {
    expect(loadConfig({})).toEqual({
      secretPrefix: 'b24/portals/',
      secretCacheTtlSeconds: 300,
      defaultPortal: undefined,
      editsQueueUrl: undefined,
      failedEditsQueueUrl: undefined,
      portalQueueUrl: undefined,
      maxAttempts: 8,
      apiRateShare: 0.2,
      drainMaxConcurrency: 2,
      b24TimeoutMs: 10_000,
      b24AllowHttp: false,
      deadlineMarginMs: 1_000,
      stateTableName: undefined,
      batchLingerMs: 1_000,
      batchMaxWaitMs: 10_000,
      messageMinIntervalMs: 1_000,
      ambiguousSettleMs: 65_000,
      operatingLimitSeconds: 480,
      operatingThresholdPercent: 80,
      operatingBasketMs: 60_000,
      indexLagMs: 1_000,
      statusConcurrency: 8,
      serviceName: 'b24-message-editor',
    });
  });

  it('reads set values', () => {
    const config = loadConfig({
      SECRET_PREFIX: 'x/',
      SECRET_CACHE_TTL_SECONDS: '0',
      DEFAULT_PORTAL: 'acme',
      MAX_ATTEMPTS: '3',
      API_RATE_SHARE: '0',
      B24_ALLOW_HTTP: 'true',
    });
    expect(config).toMatchObject({
      secretPrefix: 'x/',
      secretCacheTtlSeconds: 0,
      defaultPortal: 'acme',
      maxAttempts: 3,
      apiRateShare: 0,
      b24AllowHttp: true,
    });
  });

  it.each([
    [
      'SECRET_CACHE_TTL_SECONDS',
      'abc',
      'Expected SECRET_CACHE_TTL_SECONDS to be an integer of at least 0, got "abc"',
    ],
    ['MAX_ATTEMPTS', '0', 'Expected MAX_ATTEMPTS to be an integer from 1 to 100, got "0"'],
    ['B24_TIMEOUT_MS', '1.5', 'Expected B24_TIMEOUT_MS to be an integer from 1 to 60000, got "1.5"'],
    [
      'AMBIGUOUS_SETTLE_MS',
      '999',
      'Expected AMBIGUOUS_SETTLE_MS to be an integer from 1000 to 3600000, got "999"',
    ],
    ['BATCH_LINGER_MS', '-1', 'Expected BATCH_LINGER_MS to be an integer from 0 to 5000, got "-1"'],
    [
      'OPERATING_THRESHOLD_PERCENT',
      '0.8',
      'Expected OPERATING_THRESHOLD_PERCENT to be an integer from 1 to 100, got "0.8"',
    ],
    ['API_RATE_SHARE', '1', 'Expected API_RATE_SHARE to be a number from 0 up to (not including) 1, got "1"'],
    ['B24_ALLOW_HTTP', 'yes', 'Expected B24_ALLOW_HTTP to be true or false, got "yes"'],
    ['DEFAULT_PORTAL', 'Acme', 'Expected DEFAULT_PORTAL to match'],
  ])('refuses %s=%s with a message naming the variable and the value', (name, value, message) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(name);
    expect((error as ConfigError).message).toContain(message);
  });
});
