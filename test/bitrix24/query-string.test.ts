import { describe, expect, it } from 'vitest';
import { decodeBracketParams, encodeBracketParams } from '../../lib/bitrix24/query-string.ts';
import { seededRandom } from '../support/random.ts';

describe('encodeBracketParams', () => {
  it('writes a nested keyboard in bracket notation with literal brackets', () => {
    const qs = encodeBracketParams({
      botId: 7,
      messageId: 42,
      fields: { message: 'Done', keyboard: [{ TEXT: 'Yes', COMMAND: 'answer', COMMAND_PARAMS: 'yes' }] },
    });
    expect(qs).toBe(
      'botId=7&messageId=42&fields[message]=Done&fields[keyboard][0][TEXT]=Yes' +
        '&fields[keyboard][0][COMMAND]=answer&fields[keyboard][0][COMMAND_PARAMS]=yes',
    );
  });

  it('writes an attach of typed blocks down to the leaves', () => {
    const qs = encodeBracketParams({
      fields: {
        attach: {
          COLOR_TOKEN: 'primary',
          BLOCKS: [{ MESSAGE: 'Hi' }, { GRID: [{ NAME: 'A', VALUE: 'B' }] }],
        },
      },
    });
    expect(qs).toBe(
      'fields[attach][COLOR_TOKEN]=primary&fields[attach][BLOCKS][0][MESSAGE]=Hi' +
        '&fields[attach][BLOCKS][1][GRID][0][NAME]=A&fields[attach][BLOCKS][1][GRID][0][VALUE]=B',
    );
  });

  it('percent-encodes the characters that would break the query: & = [ ] + % # and space as %20', () => {
    expect(encodeBracketParams({ v: 'a&b=c[d] e+f%g#h?' })).toBe('v=a%26b%3Dc%5Bd%5D%20e%2Bf%25g%23h%3F');
  });

  it("encodes RFC 3986 reserved !'()* and leaves unreserved -._~ alone", () => {
    expect(encodeBracketParams({ v: "!'()*-._~" })).toBe('v=%21%27%28%29%2A-._~');
  });

  it('encodes unicode text as UTF-8 bytes', () => {
    expect(encodeBracketParams({ v: 'Привет 👋' })).toBe(
      'v=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%20%F0%9F%91%8B',
    );
  });

  it('encodes unicode keys too', () => {
    expect(encodeBracketParams({ f: { ключ: 'x' } })).toBe('f[%D0%BA%D0%BB%D1%8E%D1%87]=x');
  });

  it('replaces a lone surrogate with U+FFFD instead of failing the whole edit', () => {
    expect(encodeBracketParams({ v: 'cut \ud83d' })).toBe('v=cut%20%EF%BF%BD');
  });

  it('writes booleans as Y and N', () => {
    expect(encodeBracketParams({ a: true, b: false, f: { BLOCK: true } })).toBe('a=Y&b=N&f[BLOCK]=Y');
  });

  it('writes numbers and bigints in decimal', () => {
    expect(encodeBracketParams({ a: 0, b: -3, c: 1.5, d: -0, e: 12345678901234567890n })).toBe(
      'a=0&b=-3&c=1.5&d=0&e=12345678901234567890',
    );
  });

  it('writes a Date as ISO 8601', () => {
    expect(encodeBracketParams({ at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)) })).toBe(
      'at=2026-01-02T03%3A04%3A05.000Z',
    );
  });

  it('leaves out null and undefined, keeping the indexes of the array items around them', () => {
    expect(encodeBracketParams({ a: null, b: undefined, c: ['x', null, 'z'], d: 'kept' })).toBe(
      'c[0]=x&c[2]=z&d=kept',
    );
  });

  it('sends an empty array or object as an empty value so Bitrix24 sees the key', () => {
    expect(encodeBracketParams({ fields: { keyboard: [], attach: {} }, list: [] })).toBe(
      'fields[keyboard]=&fields[attach]=&list=',
    );
  });

  it('keeps the empty string as an empty value', () => {
    expect(encodeBracketParams({ fields: { message: '' } })).toBe('fields[message]=');
  });

  it('returns an empty string for no params', () => {
    expect(encodeBracketParams({})).toBe('');
  });

  it.each([
    ['NaN', { a: Number.NaN }, /a: NaN is not a finite number/],
    ['Infinity', { f: { x: Number.POSITIVE_INFINITY } }, /f\[x\]: Infinity/],
    ['a function', { a: () => 1 }, /a: a function has no query-string form/],
    ['a symbol', { a: Symbol('s') }, /a: a symbol/],
    ['a Map', { a: new Map() }, /a: a Map/],
  ])('refuses %s, naming where it is', (_, params, message) => {
    expect(() => encodeBracketParams(params)).toThrow(message);
  });

  it.each([
    ['a key with a bracket', { f: { 'a[b': 1 } }, /"a\[b" under f/],
    ['an empty nested key', { f: { '': 1 } }, /"" under f/],
    ['a dotted top-level name', { 'fields.message': 'x' }, /"fields.message"/],
    ['a top-level name with a space', { 'bot id': 1 }, /"bot id"/],
  ])('refuses %s, which parse_str would read differently', (_, params, message) => {
    expect(() => encodeBracketParams(params)).toThrow(message);
  });
});

describe('decodeBracketParams', () => {
  it('reads + and %20 as spaces, like PHP urldecode', () => {
    expect(decodeBracketParams('a=x+y%20z')).toEqual({ a: 'x y z' });
  });

  it('turns maps keyed 0..n-1 in order into arrays, as PHP json_encode would', () => {
    expect(decodeBracketParams('k[0][TEXT]=a&k[1][TEXT]=b')).toEqual({ k: [{ TEXT: 'a' }, { TEXT: 'b' }] });
  });

  it('keeps maps with gaps or other keys as objects with string keys', () => {
    expect(decodeBracketParams('k[0]=a&k[2]=c')).toEqual({ k: { '0': 'a', '2': 'c' } });
    expect(decodeBracketParams('k[1]=b&k[0]=a')).toEqual({ k: { '0': 'a', '1': 'b' } });
  });

  it('appends for [] at one past the largest integer key', () => {
    expect(decodeBracketParams('k[]=a&k[]=b')).toEqual({ k: ['a', 'b'] });
    expect(decodeBracketParams('k[5]=a&k[]=b')).toEqual({ k: { '5': 'a', '6': 'b' } });
  });

  it('lets a later duplicate win, whether scalar or nested', () => {
    expect(decodeBracketParams('a=1&a=2')).toEqual({ a: '2' });
    expect(decodeBracketParams('a=1&a[b]=2')).toEqual({ a: { b: '2' } });
    expect(decodeBracketParams('a[b]=2&a=1')).toEqual({ a: '1' });
  });

  it('renames dots and spaces in the top-level name to underscores, but not inside brackets', () => {
    expect(decodeBracketParams('a.b=1&c%20d[e.f]=2')).toEqual({ a_b: '1', c_d: { 'e.f': '2' } });
  });

  it('treats a name without = as an empty value and skips empty pairs', () => {
    expect(decodeBracketParams('a&&b=1&')).toEqual({ a: '', b: '1' });
  });

  it('leaves malformed percent escapes as they are instead of failing', () => {
    expect(decodeBracketParams('a=100%&b=%41%zz')).toEqual({ a: '100%', b: 'A%zz' });
  });

  it('stores __proto__ as an ordinary key without touching the prototype', () => {
    const decoded = decodeBracketParams('__proto__[polluted]=yes');
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(decoded, '__proto__')).toBe(true);
  });
});

describe('encode then decode', () => {
  it('gives back a keyboard and attach with awkward text, values as PHP would see them', () => {
    const params = {
      botId: 7,
      fields: {
        message: 'Total: 5 & 6 = 11 [b]bold[/b] 100% ✓ 👋\nnext line',
        keyboard: [
          { TEXT: 'A=B & [C]', COMMAND: 'go', BLOCK: true },
          { TYPE: 'NEWLINE' },
          { TEXT: '+1', LINK: 'https://example.com/?q=a&b=[c]#frag' },
        ],
        attach: [{ MESSAGE: 'x' }, { DELIMITER: { SIZE: 200, COLOR: '#c8c8c8' } }],
        urlPreview: false,
      },
    };
    expect(decodeBracketParams(encodeBracketParams(params))).toEqual({
      botId: '7',
      fields: {
        message: 'Total: 5 & 6 = 11 [b]bold[/b] 100% ✓ 👋\nnext line',
        keyboard: [
          { TEXT: 'A=B & [C]', COMMAND: 'go', BLOCK: 'Y' },
          { TYPE: 'NEWLINE' },
          { TEXT: '+1', LINK: 'https://example.com/?q=a&b=[c]#frag' },
        ],
        attach: [{ MESSAGE: 'x' }, { DELIMITER: { SIZE: '200', COLOR: '#c8c8c8' } }],
        urlPreview: 'N',
      },
    });
  });

  it('round-trips 300 random nested structures to their PHP-visible form', () => {
    const random = seededRandom(42);
    for (let i = 0; i < 300; i += 1) {
      const params = randomObject(random, 0) as Record<string, unknown>;
      for (const key of Object.keys(params)) {
        if (/[. ]/.test(key)) delete params[key];
      }
      const expected = Object.fromEntries(
        Object.entries(params).map(([key, value]) => [key, asPhpSeesIt(value)]),
      );
      expect(decodeBracketParams(encodeBracketParams(params))).toEqual(expected);
    }
  });
});

const KEY_CHARS = ['a', 'Z', '0', '1', '_', '-', 'й', '👋', '&', '=', '%', '+', '#', '?', '/', "'", '.', ' '];
const TEXT_CHARS = [...KEY_CHARS, '[', ']', '\n', '"', '\\', '&amp;', '%20'];

function randomString(random: () => number, chars: string[], maxLength: number): string {
  const length = Math.floor(random() * maxLength);
  let text = '';
  for (let i = 0; i < length; i += 1) text += chars[Math.floor(random() * chars.length)];
  return text;
}

function randomValue(random: () => number, depth: number): unknown {
  const pick = random();
  if (depth < 3 && pick < 0.15) return randomObject(random, depth + 1);
  if (depth < 3 && pick < 0.3) {
    return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth + 1));
  }
  if (pick < 0.4) return random() < 0.5;
  if (pick < 0.5) return Math.round((random() - 0.5) * 1e6) / 100;
  return randomString(random, TEXT_CHARS, 12);
}

function randomObject(random: () => number, depth: number): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  const size = Math.floor(random() * 4);
  for (let i = 0; i < size; i += 1) {
    const key = randomString(random, KEY_CHARS, 6);
    if (key !== '') object[key] = randomValue(random, depth);
  }
  return object;
}

/** What PHP's parse_str then json_encode make of params: strings, Y/N, empty containers as ''. */
function asPhpSeesIt(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 'Y' : 'N';
  if (typeof value === 'number') return String(value);
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value);
  if (entries.length === 0) return '';
  const isList = entries.every(([key], index) => key === String(index));
  return isList
    ? entries.map(([, child]) => asPhpSeesIt(child))
    : Object.fromEntries(entries.map(([key, child]) => [key, asPhpSeesIt(child)]));
}
