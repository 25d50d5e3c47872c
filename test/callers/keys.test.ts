import { describe, expect, it } from 'vitest';
import { newCallerKey, parseCallerKey } from '../../lib/callers/index.ts';

describe('a caller key', () => {
  it('is 40 lower-case letters and digits, its first 8 the keyId, and no two alike', () => {
    const keys = Array.from({ length: 200 }, () => newCallerKey());
    for (const { key, keyId, secret } of keys) {
      expect(key).toMatch(/^[a-z0-9]{40}$/);
      expect(key).toBe(`${keyId}${secret}`);
      expect(parseCallerKey(key)).toEqual({ keyId, secret });
    }
    expect(new Set(keys.map((k) => k.keyId)).size).toBe(keys.length);
    expect(new Set(keys.map((k) => k.secret)).size).toBe(keys.length);
  });

  it('draws every one of its 36 characters (no character left out by the draw)', () => {
    const seen = new Set(Array.from({ length: 200 }, () => newCallerKey().secret).join(''));
    expect(seen.size).toBe(36);
  });

  it.each([
    ['empty', ''],
    ['a Bitrix24 webhook code (16 characters)', 'abcd1234efgh5678'],
    ['one character short', 'a'.repeat(39)],
    ['one character long', 'a'.repeat(41)],
    ['upper case', `${'a'.repeat(8)}${'B'.repeat(32)}`],
    ['a slash', `${'a'.repeat(20)}/${'a'.repeat(19)}`],
    ['a dot', `${'a'.repeat(20)}.${'a'.repeat(19)}`],
    ['a percent escape', `${'a'.repeat(37)}%2f`],
    ['a dash', `${'a'.repeat(20)}-${'a'.repeat(19)}`],
    ['an underscore', `${'a'.repeat(20)}_${'a'.repeat(19)}`],
    ['a newline at the end', `${'a'.repeat(40)}\n`],
  ])('is not read from a segment with %s', (_what, segment) => {
    expect(parseCallerKey(segment)).toBeUndefined();
  });

  it('is not read from no segment at all', () => {
    expect(parseCallerKey(undefined)).toBeUndefined();
  });
});
