import { describe, expect, it } from 'vitest';
import {
  attachServerLength,
  keyboardServerLength,
  SERVER_JSON_LIMIT,
  serverJsonLength,
} from '../../lib/edits/server-size.ts';
import { serverAttachForm, serverKeyboardForm } from '../../lib/edits/stored-form.ts';
import { parseQueuedEdit, parseUpdateRequest } from '../../lib/edits/validate.ts';
import { ValidationError } from '../../lib/errors.ts';
import { parseStatusInput } from '../../lib/status/spec.ts';

const BOT_ID = 456;
const parse = (fields: Record<string, unknown>) =>
  parseUpdateRequest({ botId: BOT_ID, messageId: 789, fields });
const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

function refusal(fields: Record<string, unknown>): ValidationError {
  try {
    parse(fields);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

/** A GRID of link rows, each with a BB-code link and a LINK: 8 slashes a row. */
const linkGrid = (rows: number) => [
  {
    GRID: Array.from({ length: rows }, (_, i) => ({
      DISPLAY: 'LINE',
      NAME: `Build ${i}`,
      VALUE: `[URL=https://ci.example.com/b/${i}]log[/URL]`,
      LINK: `https://ci.example.com/b/${i}`,
    })),
  },
];
const commandButtons = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ TEXT: `Btn ${i}`, COMMAND: `c${i}` }));

describe('how Bitrix24 counts JSON characters', () => {
  it.each([
    ['a slash as two ("\\/")', '/', 2],
    ['a Cyrillic letter as six (\\uXXXX)', 'ж', 6],
    ['an accented Latin letter as six', 'é', 6],
    ['an emoji as twelve (a surrogate pair)', '😀', 12],
    ['a double quote as six (\\u0022)', '"', 6],
    ['an ampersand, an apostrophe and angle brackets as six each', `&'<>`, 24],
    ['a backslash and a newline as two each', '\\\n', 4],
    ['another control character as six', '\u0001', 6],
    ['plain ASCII as one each', 'Build 41', 8],
  ])('counts %s', (_name, text, chars) => {
    expect(serverJsonLength(text)).toBe(chars + 2);
  });

  it('counts keys, commas, brackets and integers as PHP writes them', () => {
    expect(serverJsonLength({ A: [1, 22, 'x'], B: null, C: true })).toBe(
      JSON.stringify({ A: [1, 22, 'x'], B: null, C: true }).length,
    );
  });
});

describe('the attach as Bitrix24 stores it', () => {
  it('adds ID, DESCRIPTION and COLOR_TOKEN, wraps a USER or LINK block in a list and gives a DELIMITER its SIZE and COLOR', () => {
    const form = serverAttachForm([
      { MESSAGE: '  x  ' },
      { DELIMITER: {} },
      { USER: { NAME: 'CI', AVATAR: 'https://ci.example/a.png', FOO: 'dropped' } },
      { LINK: { LINK: '/logs', NAME: 'Logs' } },
    ]);
    expect(form).toEqual({
      ID: expect.any(Number),
      BLOCKS: [
        { MESSAGE: 'x' },
        { DELIMITER: { SIZE: 200, COLOR: '#c6c6c6' } },
        { USER: [{ NAME: 'CI', AVATAR_TYPE: 'USER', AVATAR: 'https://ci.example/a.png' }] },
        { LINK: [{ LINK: '/logs', NAME: 'Logs' }] },
      ],
      DESCRIPTION: '',
      COLOR_TOKEN: 'base',
    });
    expect(String(form?.ID)).toHaveLength(10);
  });

  it('gives every GRID item its NAME and VALUE, and keeps a full form COLOR', () => {
    const form = serverAttachForm({
      COLOR: '#29619b',
      BLOCKS: [{ GRID: [{ DISPLAY: 'LINE', NAME: 'only a name' }] }],
    });
    expect(form?.BLOCKS).toEqual([{ GRID: [{ DISPLAY: 'LINE', NAME: 'only a name', VALUE: '' }] }]);
    expect(form?.COLOR).toBe('#29619b');
  });

  it('keeps no block it cannot use, as the server does', () => {
    expect(serverAttachForm([{ MESSAGE: '   ' }, { LINK: { NAME: 'no link' } }, { FOO: 1 }])).toBeUndefined();
  });
});

describe('the keyboard as Bitrix24 stores it', () => {
  it('adds BOT_ID, TYPE, COMMAND_PARAMS, VOTE, BLOCK, WAIT, CONTEXT, DISABLED, DISPLAY and BG_COLOR_TOKEN to a command button', () => {
    expect(serverKeyboardForm([{ TEXT: ' Retry ', COMMAND: '/retry' }, { TYPE: 'NEWLINE' }], BOT_ID)).toEqual(
      [
        {
          BOT_ID: BOT_ID,
          TYPE: 'BUTTON',
          COMMAND: 'retry',
          COMMAND_PARAMS: '',
          TEXT: 'Retry',
          VOTE: 'N',
          BLOCK: 'N',
          WAIT: 'N',
          CONTEXT: 'ALL',
          DISABLED: 'N',
          DISPLAY: 'BLOCK',
          BG_COLOR_TOKEN: 'base',
        },
        { TYPE: 'NEWLINE' },
      ],
    );
  });

  it('counts a button LINK HTML-escaped, an ampersand as "\\u0026amp;"', () => {
    const plain = keyboardServerLength([{ TEXT: 'Go', LINK: 'https://x.io/?a=1' }], BOT_ID);
    const amp = keyboardServerLength([{ TEXT: 'Go', LINK: 'https://x.io/?a=1&' }], BOT_ID);
    expect(amp - plain).toBe('\\u0026amp;'.length);
  });
});

describe('the size rule on every path', () => {
  it('refuses a 470-row link GRID of under 60,000 bytes that Bitrix24 counts above 60,000 characters, naming its count and limit', () => {
    const attach = linkGrid(470);
    expect(bytes(attach)).toBeLessThan(SERVER_JSON_LIMIT + 1_000);
    const chars = attachServerLength(attach);
    expect(chars).toBeGreaterThan(bytes(attach) + 470 * 8);
    const error = refusal({ attach });
    expect(error.field).toBe('fields.attach');
    expect(error.message).toContain(`fields.attach is ${chars.toLocaleString('en-US')} characters`);
    expect(error.message).toContain('the limit is 60,000');
    expect(error.message).toContain('ATTACH_OVERSIZE');
  });

  it('refuses 400 command buttons of 14 KB: with the defaults Bitrix24 adds to each they are above 60,000 characters', () => {
    const keyboard = commandButtons(400);
    expect(bytes(keyboard)).toBeLessThan(15_000);
    const error = refusal({ keyboard });
    expect(error.field).toBe('fields.keyboard');
    expect(error.message).toContain(
      `${keyboardServerLength(keyboard, BOT_ID).toLocaleString('en-US')} characters`,
    );
    expect(error.message).toContain('KEYBOARD_OVERSIZE');
  });

  it('accepts an attach Bitrix24 counts at 59,999 characters and refuses one at 60,000', () => {
    const overhead = attachServerLength([{ MESSAGE: 'x' }]) - 1;
    const sized = (chars: number) => [{ MESSAGE: 'x'.repeat(chars - overhead) }];
    expect(attachServerLength(sized(59_999))).toBe(59_999);
    expect(parse({ attach: sized(59_999) }).fields.attach).toEqual(sized(59_999));
    expect(refusal({ attach: sized(60_000) }).message).toContain('is 60,000 characters');
  });

  it('accepts a keyboard of 42 KB that Bitrix24 counts below its limit, which the legacy 30 KB reading refused', () => {
    const keyboard = Array.from({ length: 100 }, (_, i) => ({ TEXT: 'k'.repeat(400), COMMAND: `c${i}` }));
    expect(bytes(keyboard)).toBeGreaterThan(42_000);
    expect(keyboardServerLength(keyboard, BOT_ID)).toBeLessThan(SERVER_JSON_LIMIT);
    expect(parse({ keyboard }).fields.keyboard).toHaveLength(100);
  });

  it('refuses the oversized attach in a queue body with INVALID_EDIT, as the drain reads it', () => {
    const read = () =>
      parseQueuedEdit(
        { portal: 'acme', botId: BOT_ID, messageId: 789, fields: { attach: linkGrid(470) } },
        { editId: 'e', requestedAt: '2026-12-02T00:00:00.000Z' },
      );
    expect(read).toThrow(expect.objectContaining({ field: 'fields.attach', code: 'INVALID_EDIT' }));
  });

  it('refuses the oversized keyboard in a status spec, naming fields.keyboard', () => {
    const { invalid } = parseStatusInput({
      portal: 'acme',
      botId: BOT_ID,
      messageId: 789,
      source: { type: 'none' },
      template: 'Status {{now}}',
      fields: { keyboard: commandButtons(400) },
    });
    expect(invalid).toEqual([
      expect.objectContaining({
        field: 'fields.keyboard',
        message: expect.stringContaining('KEYBOARD_OVERSIZE'),
      }),
    ]);
  });
});

describe('an attach Bitrix24 would keep nothing of', () => {
  it('is refused before the call, naming fields.attach and ATTACH_ERROR', () => {
    for (const attach of [[{ MESSAGE: '  ' }], { BLOCKS: [{ MESSAGE: '' }] }]) {
      const error = refusal({ message: 'x', attach });
      expect(error.field).toBe('fields.attach');
      expect(error.message).toMatch(/keeps no block.*ATTACH_ERROR/);
    }
  });
});
