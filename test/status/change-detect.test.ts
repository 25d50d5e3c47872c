import { describe, expect, it } from 'vitest';
import { AppliedFieldsCache, canonicalJson } from '../../lib/status/change-detect.ts';

describe('AppliedFieldsCache', () => {
  const fields = {
    message: 'Deploy: ✅ green',
    urlPreview: 'N' as const,
    attach: {
      COLOR_TOKEN: 'primary',
      BLOCKS: [{ MESSAGE: 'a' }, { DELIMITER: { SIZE: 200, COLOR: '#ccc' } }],
    },
  };

  it('treats fields as unchanged when only the key order differs, at every depth', () => {
    const cache = new AppliedFieldsCache();
    cache.remember('acme:456:789', fields);
    const reordered = {
      attach: {
        BLOCKS: [{ MESSAGE: 'a' }, { DELIMITER: { COLOR: '#ccc', SIZE: 200 } }],
        COLOR_TOKEN: 'primary',
      },
      urlPreview: 'N' as const,
      message: 'Deploy: ✅ green',
    };
    expect(cache.isUnchanged('acme:456:789', reordered)).toBe(true);
  });

  it('sees a change in text, in array order or in a nested value', () => {
    const cache = new AppliedFieldsCache();
    cache.remember('k', fields);
    expect(cache.isUnchanged('k', { ...fields, message: 'Deploy: ❌ red' })).toBe(false);
    expect(
      cache.isUnchanged('k', {
        ...fields,
        attach: {
          COLOR_TOKEN: 'primary',
          BLOCKS: [{ DELIMITER: { SIZE: 200, COLOR: '#ccc' } }, { MESSAGE: 'a' }],
        },
      }),
    ).toBe(false);
    expect(cache.isUnchanged('k', { ...fields, urlPreview: 'Y' })).toBe(false);
  });

  it('reports unknown and forgotten keys as changed', () => {
    const cache = new AppliedFieldsCache();
    expect(cache.isUnchanged('k', fields)).toBe(false);
    cache.remember('k', fields);
    cache.forget('k');
    expect(cache.isUnchanged('k', fields)).toBe(false);
  });

  it('keeps each key apart', () => {
    const cache = new AppliedFieldsCache();
    cache.remember('a', { message: 'one' });
    expect(cache.isUnchanged('b', { message: 'one' })).toBe(false);
  });

  it('drops the least recently used entry when full', () => {
    const cache = new AppliedFieldsCache({ maxEntries: 2 });
    cache.remember('a', { message: 'a' });
    cache.remember('b', { message: 'b' });
    expect(cache.isUnchanged('a', { message: 'a' })).toBe(true);
    cache.remember('c', { message: 'c' });
    expect(cache.size).toBe(2);
    expect(cache.isUnchanged('a', { message: 'a' })).toBe(true);
    expect(cache.isUnchanged('b', { message: 'b' })).toBe(false);
    expect(cache.isUnchanged('c', { message: 'c' })).toBe(true);
  });

  it('refuses a bound below 1', () => {
    expect(() => new AppliedFieldsCache({ maxEntries: 0 })).toThrow(
      'Expected maxEntries to be a positive integer, got 0',
    );
  });
});

describe('canonicalJson', () => {
  it('sorts object keys and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: 2 }, 3] })).toBe('{"a":[{"c":2,"d":1},3],"b":1}');
  });
});
