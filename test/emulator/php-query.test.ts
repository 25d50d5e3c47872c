import { describe, expect, it } from 'vitest';
import { parsePhpQuery } from '../../local/bitrix24-emulator/php-query.ts';

describe('parsePhpQuery', () => {
  it('nests bracket keys and keeps every value a string', () => {
    expect(parsePhpQuery('botId=456&fields[message]=Hi+there&fields[urlPreview]=N')).toEqual({
      botId: '456',
      fields: { message: 'Hi there', urlPreview: 'N' },
    });
  });

  it('turns 0..n-1 keys into arrays, as json_encode renders PHP lists', () => {
    expect(parsePhpQuery('k[0][TEXT]=A&k[1][TEXT]=B&m[1]=x')).toEqual({
      k: [{ TEXT: 'A' }, { TEXT: 'B' }],
      m: { 1: 'x' },
    });
  });

  it('appends for empty brackets', () => {
    expect(parsePhpQuery('a[]=x&a[]=y')).toEqual({ a: ['x', 'y'] });
  });

  it('decodes percent-escapes in keys and values, and survives malformed ones as PHP’s urldecode does', () => {
    // urldecode decodes each valid escape to its byte and leaves a broken one as it is.
    expect(parsePhpQuery('fields%5Bmessage%5D=a%26b%3Dc&bad=%E0%A4%A')).toEqual({
      fields: { message: 'a&b=c' },
      bad: '\u00e0\u00a4%A',
    });
  });

  it('ignores keys that would reach the object prototype', () => {
    const parsed = parsePhpQuery('__proto__[polluted]=1&a[constructor][x]=1&ok=1');
    expect(parsed).toEqual({ ok: '1' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
