import { describe, expect, it } from 'vitest';
import {
  classify,
  ERROR_TABLE,
  findErrorRow,
  isRetryable,
  Strategy,
} from '../../lib/bitrix24/error-table.ts';

describe('the strategy table', () => {
  it.each(ERROR_TABLE.map((row) => [row.code, row.statuses, row.strategy, row] as const))(
    'classifies %s with each of its documented statuses %j as %s',
    (code, statuses, strategy, row) => {
      // A row told apart by its text is tested with its own description, which must match it.
      const description = row.descriptionMatch ? row.description : undefined;
      for (const status of statuses.length ? statuses : [undefined]) {
        expect(classify(status, code, description)).toBe(strategy);
      }
    },
  );

  it('compares codes case-insensitively', () => {
    expect(classify(401, 'EXPIRED_TOKEN')).toBe(Strategy.RefreshAuth);
    expect(classify(503, 'query_limit_exceeded')).toBe(Strategy.RateLimit);
  });

  it('tells the system ACCESS_DENIED (401, REST unavailable) from the message-level one', () => {
    expect(classify(401, 'ACCESS_DENIED')).toBe(Strategy.Auth);
    expect(classify(403, 'ACCESS_DENIED')).toBe(Strategy.Permanent);
    expect(classify(400, 'ACCESS_DENIED')).toBe(Strategy.Permanent);
  });

  it('takes any 429 as a rate limit, with or without a code, but keeps OPERATION_TIME_LIMIT its own rule', () => {
    expect(classify(429, 'SOMETHING_NEW')).toBe(Strategy.RateLimit);
    expect(classify(429, undefined)).toBe(Strategy.RateLimit);
    expect(classify(429, 'OPERATION_TIME_LIMIT')).toBe(Strategy.OperatingLimit);
    expect(classify(503, 'SOMETHING_NEW')).toBe(Strategy.Server);
  });

  it('falls back on the HTTP status for a code it does not know: 5xx is a server error, 4xx permanent', () => {
    expect(findErrorRow('SOMETHING_NEW', 500)).toBeUndefined();
    expect(classify(502, 'SOMETHING_NEW')).toBe(Strategy.Server);
    expect(classify(599, undefined)).toBe(Strategy.Server);
    expect(classify(418, 'SOMETHING_NEW')).toBe(Strategy.Permanent);
    expect(classify(undefined, undefined)).toBe(Strategy.Server);
  });

  it('covers every code of both documented generations of the system error list', () => {
    const documented = [
      'INTERNAL_SERVER_ERROR',
      'ERROR_UNEXPECTED_ANSWER',
      'QUERY_LIMIT_EXCEEDED',
      'OPERATION_TIME_LIMIT',
      'ERROR_BATCH_METHOD_NOT_ALLOWED',
      'ERROR_BATCH_LENGTH_EXCEEDED',
      'NO_AUTH_FOUND',
      'INVALID_REQUEST',
      'OVERLOAD_LIMIT',
      'ACCESS_DENIED',
      'INVALID_CREDENTIALS',
      'ERROR_MANIFEST_IS_NOT_AVAILABLE',
      'insufficient_scope',
      'expired_token',
      'user_access_error',
      'PORTAL_DELETED',
      'ERROR_METHOD_NOT_FOUND',
    ];
    const known = new Set(ERROR_TABLE.map((row) => row.code.toUpperCase()));
    expect(documented.filter((code) => !known.has(code.toUpperCase()))).toEqual([]);
  });

  it('counts exactly the waiting strategies as retryable', () => {
    const retryable = Object.values(Strategy).filter(isRetryable);
    expect(retryable.sort()).toEqual(['operating-limit', 'overload', 'rate-limit', 'server']);
  });
});
