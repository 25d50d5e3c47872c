import { describe, expect, it } from 'vitest';
import {
  type BatchCommand,
  buildBatchCmd,
  DEFAULT_MAX_BATCH_BYTES,
  packBatches,
  parseBatchResponse,
} from '../../lib/bitrix24/batch.ts';
import { decodeBracketParams } from '../../lib/bitrix24/query-string.ts';

const UPDATE = 'imbot.v2.Chat.Message.update';

function update(key: string, message = `text of ${key}`): BatchCommand {
  return { key, method: UPDATE, params: { botId: 7, botToken: 'tok', messageId: 1, fields: { message } } };
}

/** A command whose `key` + `method?query` text is exactly `bytes` long. */
function sized(key: string, bytes: number): BatchCommand {
  const fixed = `${key}m?v=`.length;
  return { key, method: 'm', params: { v: 'x'.repeat(bytes - fixed) } };
}

describe('buildBatchCmd', () => {
  it('maps each key to method?bracket-encoded params', () => {
    const cmd = buildBatchCmd([
      {
        key: 'p.bitrix24.com:7:42',
        method: UPDATE,
        params: {
          botId: 7,
          messageId: 42,
          fields: { message: 'a & b', keyboard: [{ TEXT: 'Go', COMMAND: 'go' }] },
        },
      },
      { key: 'other', method: UPDATE, params: { botId: 7, messageId: 43, fields: { keyboard: 'N' } } },
    ]);
    expect(cmd).toEqual({
      'p.bitrix24.com:7:42': `${UPDATE}?botId=7&messageId=42&fields[message]=a%20%26%20b&fields[keyboard][0][TEXT]=Go&fields[keyboard][0][COMMAND]=go`,
      other: `${UPDATE}?botId=7&messageId=43&fields[keyboard]=N`,
    });
  });

  it('writes a command without params as the bare method name', () => {
    expect(buildBatchCmd([{ key: 'r', method: 'imbot.v2.Revision.get', params: {} }])).toEqual({
      r: 'imbot.v2.Revision.get',
    });
  });

  it('keeps params readable back with parse_str semantics', () => {
    const text = buildBatchCmd([update('a', 'x=1&y=[2]')]).a ?? '';
    const query = text.slice(text.indexOf('?') + 1);
    expect(decodeBracketParams(query)).toEqual({
      botId: '7',
      botToken: 'tok',
      messageId: '1',
      fields: { message: 'x=1&y=[2]' },
    });
  });

  it('refuses two commands with the same key, which one cmd map cannot hold', () => {
    expect(() => buildBatchCmd([update('a'), update('a')])).toThrow(/Duplicate batch command key "a"/);
  });

  it.each([
    ['an empty key', { key: '', method: UPDATE, params: {} }, /key without brackets, got ""/],
    ['a key with brackets', { key: 'a[0]', method: UPDATE, params: {} }, /got "a\[0\]"/],
    [
      'a method with a query',
      { key: 'a', method: 'x?y=1', params: {} },
      /method name for batch command a, got "x\?y=1"/,
    ],
  ])('refuses %s', (_, command, message) => {
    expect(() => buildBatchCmd([command])).toThrow(message);
  });
});

describe('packBatches', () => {
  it('fills batches of 50 greedily and keeps the order', () => {
    const commands = Array.from({ length: 120 }, (_, i) => update(`k${i}`));
    const batches = packBatches(commands);
    expect(batches.map((b) => b.length)).toEqual([50, 50, 20]);
    expect(batches.flat()).toEqual(commands);
  });

  it('honours a smaller maxCommands', () => {
    const commands = Array.from({ length: 7 }, (_, i) => update(`k${i}`));
    expect(packBatches(commands, { maxCommands: 3 }).map((b) => b.map((c) => c.key))).toEqual([
      ['k0', 'k1', 'k2'],
      ['k3', 'k4', 'k5'],
      ['k6'],
    ]);
  });

  it('returns no batches for no commands', () => {
    expect(packBatches([])).toEqual([]);
  });

  it('counts key and cmd text against maxBytes, filling a batch up to exactly the limit', () => {
    const commands = [sized('a', 100), sized('b', 100), sized('c', 100)];
    expect(packBatches(commands, { maxBytes: 200 }).map((b) => b.map((c) => c.key))).toEqual([
      ['a', 'b'],
      ['c'],
    ]);
    expect(packBatches(commands, { maxBytes: 199 }).map((b) => b.map((c) => c.key))).toEqual([
      ['a'],
      ['b'],
      ['c'],
    ]);
  });

  it('measures the encoded text, so unicode counts by its percent-encoded size', () => {
    // "й" is 2 UTF-8 bytes, 6 characters once percent-encoded.
    const unicode: BatchCommand = { key: 'u', method: 'm', params: { v: 'й'.repeat(10) } };
    const bytes = 'um?v='.length + 60;
    expect(packBatches([unicode, sized('x', 10)], { maxBytes: bytes + 10 })).toHaveLength(1);
    expect(packBatches([unicode, sized('x', 10)], { maxBytes: bytes + 9 })).toHaveLength(2);
  });

  it('sends a command larger than maxBytes alone, between the batches around it', () => {
    const commands = [sized('a', 40), sized('b', 40), sized('huge', 500), sized('c', 40)];
    expect(packBatches(commands, { maxBytes: 100 }).map((b) => b.map((c) => c.key))).toEqual([
      ['a', 'b'],
      ['huge'],
      ['c'],
    ]);
  });

  it('defaults to 512 KiB per batch', () => {
    const commands = Array.from({ length: 10 }, (_, i) => sized(`k${i}`, 200 * 1024));
    expect(DEFAULT_MAX_BATCH_BYTES).toBe(524_288);
    expect(packBatches(commands).map((b) => b.length)).toEqual([2, 2, 2, 2, 2]);
  });

  it('refuses duplicate keys across the whole input', () => {
    expect(() => packBatches([update('a'), update('b'), update('a')], { maxCommands: 1 })).toThrow(
      /Duplicate batch command key "a"/,
    );
  });

  it.each([
    [{ maxCommands: 51 }, 'Expected maxCommands to be an integer from 1 to 50, got 51 (number)'],
    [{ maxCommands: 0 }, 'Expected maxCommands to be an integer from 1 to 50, got 0 (number)'],
    [{ maxCommands: 2.5 }, 'got 2.5 (number)'],
    [
      { maxCommands: '10' as unknown as number },
      'maxCommands to be an integer from 1 to 50, got 10 (string)',
    ],
    [{ maxBytes: 0 }, 'Expected maxBytes to be a positive integer, got 0 (number)'],
    [{ maxBytes: Number.NaN }, 'Expected maxBytes to be a positive integer, got NaN (number)'],
  ])('refuses options %o naming the option and value', (options, message) => {
    expect(() => packBatches([update('a')], options)).toThrow(message);
  });
});

describe('parseBatchResponse', () => {
  const time = { start: 1, finish: 2, duration: 1, operating: 0.5, operating_reset_at: 1_700_000_600 };

  it('reads mixed outcomes: flat, nested and object successes, errors, and a command left out', () => {
    const body = {
      result: {
        result: { flat: true, nested: { result: true }, sent: { id: 789, uuidMap: {} } },
        result_error: { denied: { error: 'ACCESS_DENIED', error_description: 'Access denied' } },
        result_total: [],
        result_next: [],
        result_time: { flat: time },
      },
      time,
    };
    const outcomes = parseBatchResponse(['flat', 'nested', 'sent', 'denied', 'missing'], body);
    expect(Object.fromEntries(outcomes)).toStrictEqual({
      flat: { ok: true, result: true, time },
      nested: { ok: true, result: { result: true } },
      sent: { ok: true, result: { id: 789, uuidMap: {} } },
      denied: { ok: false, code: 'ACCESS_DENIED', description: 'Access denied' },
      missing: {
        ok: false,
        code: 'NOT_RUN',
        description:
          'Absent from both result and result_error: the batch halted earlier, or Bitrix24 dropped it',
      },
    });
  });

  it.each([
    ['false', false],
    ['nested false', { result: false }],
    ['null', null],
    ['zero', 0],
    ['an empty string', ''],
  ])('counts a result of %s as UNEXPECTED_RESULT', (_, result) => {
    const outcome = parseBatchResponse(['a'], { result: { result: { a: result }, result_error: [] } }).get(
      'a',
    );
    expect(outcome).toMatchObject({ ok: false, code: 'UNEXPECTED_RESULT' });
  });

  it('reads a PHP empty array [] as an empty section', () => {
    const allFailed = parseBatchResponse(['a'], {
      result: {
        result: [],
        result_error: { a: { error: 'BOT_NOT_FOUND', error_description: 'no bot' } },
        result_time: [],
      },
    });
    expect(allFailed.get('a')).toEqual({ ok: false, code: 'BOT_NOT_FOUND', description: 'no bot' });
    const allPassed = parseBatchResponse(['a'], { result: { result: { a: true }, result_error: [] } });
    expect(allPassed.get('a')).toEqual({ ok: true, result: true });
  });

  it('reads sections that PHP sent as JSON arrays because the keys were 0..n-1', () => {
    const outcomes = parseBatchResponse(['0', '1', '2'], {
      result: { result: [true, { result: true }], result_error: [], result_time: [time] },
    });
    expect(outcomes.get('0')).toEqual({ ok: true, result: true, time });
    expect(outcomes.get('1')).toEqual({ ok: true, result: { result: true } });
    expect(outcomes.get('2')).toMatchObject({ ok: false, code: 'NOT_RUN' });
  });

  it('marks the commands after a halting failure NOT_RUN', () => {
    const outcomes = parseBatchResponse(['a', 'b', 'c', 'd'], {
      result: {
        result: { a: { result: true } },
        result_error: { b: { error: 'ACCESS_DENIED', error_description: '' } },
        result_time: { a: time },
      },
    });
    expect([...outcomes.values()].map((o) => (o.ok ? 'ok' : o.code))).toEqual([
      'ok',
      'ACCESS_DENIED',
      'NOT_RUN',
      'NOT_RUN',
    ]);
  });

  it('lets an error win when Bitrix24 lists a key in both sections', () => {
    const outcome = parseBatchResponse(['a'], {
      result: {
        result: { a: true },
        result_error: { a: { error: 'INTERNAL_SERVER_ERROR', error_description: 'x' } },
      },
    }).get('a');
    expect(outcome).toMatchObject({ ok: false, code: 'INTERNAL_SERVER_ERROR' });
  });

  it('gives a malformed error entry the INVALID_RESPONSE code', () => {
    const outcome = parseBatchResponse(['a'], { result: { result: [], result_error: { a: 'boom' } } }).get(
      'a',
    );
    expect(outcome).toEqual({ ok: false, code: 'INVALID_RESPONSE', description: '' });
  });

  it('answers only for the keys asked about, in their order', () => {
    const outcomes = parseBatchResponse(['b', 'a'], {
      result: { result: { a: true, b: true, extra: true } },
    });
    expect([...outcomes.keys()]).toEqual(['b', 'a']);
  });

  it('leaves time out when result_time has nothing for the key', () => {
    const outcome = parseBatchResponse(['a'], {
      result: { result: { a: true }, result_time: { a: 'junk' } },
    }).get('a');
    expect(outcome).toStrictEqual({ ok: true, result: true });
  });

  it.each([
    ['null', null, /got null/],
    ['an HTML page', '<html>502 Bad Gateway</html>', /got a string of 28 characters/],
    [
      'a top-level error',
      { error: 'QUERY_LIMIT_EXCEEDED', error_description: 'Too many requests' },
      /got an object with keys error, error_description/,
    ],
    ['a single-call answer', { result: true, time: {} }, /Expected a batch answer/],
    ['an object without sections', { result: { foo: 1 } }, /Expected a batch answer/],
    ['an array', [1, 2], /got an array of 2/],
  ])('throws a plain Error for %s, which is not a batch answer', (_, body, message) => {
    expect(() => parseBatchResponse(['a'], body)).toThrow(message);
  });

  it('names the shape of a bad body but never its content', () => {
    const body = { error: 'X', error_description: 'botToken=supersecret' };
    let thrown: unknown;
    try {
      parseBatchResponse(['a'], body);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Error);
    expect((thrown as Error).message).toContain('error_description');
    expect((thrown as Error).message).not.toContain('supersecret');
  });
});
