import { describe, expect, it } from 'vitest';
import { assertFitsQueue, parseQueuedEdit, parseUpdateRequest } from '../../lib/edits/validate.ts';
import { ValidationError } from '../../lib/errors.ts';

const BOT_ID = 456;
const parse = (fields: Record<string, unknown>) =>
  parseUpdateRequest({ botId: BOT_ID, messageId: 789, fields });

function refusal(fields: Record<string, unknown>): ValidationError {
  try {
    parse(fields);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

const BUTTONS = [
  { TEXT: 'Open', LINK: 'https://example.com/build/41' },
  { TYPE: 'NEWLINE' },
  { TEXT: 'Retry', COMMAND: 'retry', COMMAND_PARAMS: '41' },
];

describe('keyboard forms', () => {
  it.each([
    ['a bare button array', BUTTONS],
    ['an object with BUTTONS', { BUTTONS }],
    ['an object with BOT_ID and BUTTONS', { BOT_ID: BOT_ID, BUTTONS }],
    ['a JSON string of the array', JSON.stringify(BUTTONS)],
    ['a JSON string of the object', JSON.stringify({ BOT_ID: BOT_ID, BUTTONS })],
  ])('accepts %s and stores the one normal form, the button array', (_name, keyboard) => {
    expect(parse({ keyboard }).fields.keyboard).toEqual(BUTTONS);
  });

  it.each([
    ['"N"', 'N'],
    ['an empty string', ''],
    ['an empty array', []],
    ['an object with no buttons', { BUTTONS: [] }],
    ['a JSON string of an empty array', '[]'],
    ['a JSON string of an object with no buttons', '{"BOT_ID":456,"BUTTONS":[]}'],
  ])('reads %s as "remove the keyboard" and stores "N"', (_name, keyboard) => {
    expect(parse({ keyboard }).fields.keyboard).toBe('N');
  });

  it('gives the normal form back unchanged when the queue body is read again', () => {
    const { fields } = parse({ keyboard: { BOT_ID: BOT_ID, BUTTONS }, message: 'x' });
    const again = parseQueuedEdit(
      { portal: 'acme', botId: BOT_ID, messageId: 789, fields },
      { editId: 'e', requestedAt: '2026-12-02T00:00:00.000Z' },
    );
    expect(again.fields).toEqual(fields);
  });

  it('writes JSON booleans of a button as Y/N, the form both paths send alike', () => {
    const { fields } = parse({ keyboard: [{ TEXT: 'Go', COMMAND: 'go', BLOCK: true, DISABLED: false }] });
    expect(fields.keyboard).toEqual([{ TEXT: 'Go', COMMAND: 'go', BLOCK: 'Y', DISABLED: 'N' }]);
  });

  it.each([
    ['a button without TEXT', [{ LINK: 'https://x.io' }], 'fields.keyboard[0].TEXT', 'is required'],
    [
      'a button with two actions',
      [BUTTONS[0], { TEXT: 'Both', LINK: 'https://x.io', COMMAND: 'go' }],
      'fields.keyboard[1]',
      'exactly one action',
    ],
    ['a button with no action', [{ TEXT: 'Idle' }], 'fields.keyboard[0]', 'it has none'],
    [
      'a javascript: link',
      [{ TEXT: 'X', LINK: 'javascript:alert(1)' }],
      'fields.keyboard[0].LINK',
      'http(s)',
    ],
    [
      'a protocol-relative link',
      [{ TEXT: 'X', LINK: '//evil.example' }],
      'fields.keyboard[0].LINK',
      'http(s)',
    ],
    [
      'an ACTION without ACTION_VALUE',
      [{ TEXT: 'X', ACTION: 'PUT' }],
      'fields.keyboard[0].ACTION_VALUE',
      'with ACTION',
    ],
    [
      'an unknown ACTION',
      [{ TEXT: 'X', ACTION: 'JUMP', ACTION_VALUE: 'y' }],
      'fields.keyboard[0].ACTION',
      'DIALOG',
    ],
    ['a NEWLINE with text', [{ TYPE: 'NEWLINE', TEXT: 'x' }], 'fields.keyboard[0]', 'no other fields'],
    ['another TYPE', [{ TYPE: 'SPACE' }], 'fields.keyboard[0].TYPE', 'NEWLINE'],
    ['a lower-case field', [{ text: 'x', LINK: 'https://x.io' }], 'fields.keyboard[0].text', 'upper case'],
    [
      'a nested value',
      [{ TEXT: 'x', COMMAND: { a: 1 } }],
      'fields.keyboard[0].COMMAND',
      'string or a number',
    ],
    ['a BOT_ID of another bot', { BOT_ID: 999, BUTTONS }, 'fields.keyboard.BOT_ID', "bot's own id"],
    ['an unknown keyboard key', { BUTTONS, COLOR: 'red' }, 'fields.keyboard.COLOR', 'BUTTONS, BOT_ID'],
    ['a string that is not JSON', '[{"TEXT":', 'fields.keyboard', 'not valid JSON'],
    ['"Y"', 'Y', 'fields.keyboard', 'or "N" to remove the keyboard'],
  ])('refuses %s, naming the field and the rule', (_name, keyboard, field, rule) => {
    const error = refusal({ keyboard });
    expect(error.field).toBe(field);
    expect(error.message).toContain(field);
    expect(error.message).toContain(rule);
  });

  it.each([
    ['BG_COLOR', { BG_COLOR: 'red' }, 'HEX colour'],
    ['TEXT_COLOR', { TEXT_COLOR: '#12345' }, 'HEX colour'],
    ['OFF_BG_COLOR', { OFF_BG_COLOR: '29619b' }, 'HEX colour'],
    ['OFF_TEXT_COLOR', { OFF_TEXT_COLOR: '#ggg' }, 'HEX colour'],
    ['BG_COLOR_TOKEN', { BG_COLOR_TOKEN: 'danger' }, 'primary, secondary, alert, base'],
  ])('refuses a button %s that is not a documented colour, naming it', (name, colour, rule) => {
    const error = refusal({ keyboard: [{ TEXT: 'Go', COMMAND: 'go', ...colour }] });
    expect(error.field).toBe(`fields.keyboard[0].${name}`);
    expect(error.message).toContain(rule);
  });

  it('accepts HEX colours of 3 and 6 digits and the colour tokens on a button', () => {
    const button = {
      TEXT: 'Go',
      COMMAND: 'go',
      BG_COLOR: '#29619B',
      TEXT_COLOR: '#fff',
      OFF_BG_COLOR: '#000000',
      OFF_TEXT_COLOR: '#ABC',
      BG_COLOR_TOKEN: 'alert',
    };
    expect(parse({ keyboard: [button] }).fields.keyboard).toEqual([button]);
  });
});

describe('attach forms', () => {
  const blocks = [
    { MESSAGE: 'Build [B]#41[/B]' },
    { LINK: { NAME: 'Logs', LINK: '/company/ci/41/' } },
    { GRID: [{ DISPLAY: 'LINE', NAME: 'Branch', VALUE: 'main' }] },
    { IMAGE: [{ LINK: 'https://ci.example/chart.png' }] },
    { FILE: [{ LINK: 'https://ci.example/log.txt', NAME: 'log.txt', SIZE: 1200 }] },
    { USER: { NAME: 'CI', AVATAR: 'https://ci.example/a.png' } },
    { DELIMITER: { SIZE: 200, COLOR: '#c8c8c8' } },
  ];

  it('accepts the bare block array and the full form unchanged', () => {
    expect(parse({ attach: blocks }).fields.attach).toEqual(blocks);
    const full = { ID: 1, COLOR_TOKEN: 'primary', COLOR: '#29619b', BLOCKS: blocks };
    expect(parse({ attach: full }).fields.attach).toEqual(full);
  });

  it('gives an empty DELIMITER its documented SIZE, since {} has no form inside batch', () => {
    expect(parse({ attach: [{ DELIMITER: {} }] }).fields.attach).toEqual([{ DELIMITER: { SIZE: 200 } }]);
  });

  it.each([
    [
      'a block with two keys',
      [{ MESSAGE: 'a', LINK: { LINK: '/x' } }],
      'fields.attach[0]',
      'exactly one key',
    ],
    ['an unknown block type', [{ VIDEO: { LINK: '/x' } }], 'fields.attach[0]', 'MESSAGE, LINK, USER'],
    ['an ftp link', [{ LINK: { LINK: 'ftp://x.io/f' } }], 'fields.attach[0].LINK.LINK', 'http(s)'],
    ['a link block without LINK', [{ LINK: { NAME: 'x' } }], 'fields.attach[0].LINK.LINK', 'is required'],
    [
      'a GRID item without DISPLAY',
      [{ GRID: [{ NAME: 'a' }] }],
      'fields.attach[0].GRID[0].DISPLAY',
      'required',
    ],
    ['an unknown full-form key', { BLOCKS: blocks, TITLE: 'x' }, 'fields.attach.TITLE', 'ID, COLOR_TOKEN'],
    ['a full form without BLOCKS', { ID: 1 }, 'fields.attach.BLOCKS', 'is required'],
    ['a full form with no blocks', { BLOCKS: [] }, 'fields.attach.BLOCKS', 'send "N" to remove'],
    ['a string', 'x', 'fields.attach', 'array of blocks'],
    ['a lower-case "n"', 'n', 'fields.attach', '"N", "" or [] to remove'],
    ['a colour name', { COLOR: 'red', BLOCKS: blocks }, 'fields.attach.COLOR', 'HEX colour'],
    [
      'an unknown COLOR_TOKEN',
      { COLOR_TOKEN: 'danger', BLOCKS: blocks },
      'fields.attach.COLOR_TOKEN',
      'base',
    ],
    [
      'a GRID colour of 5 digits',
      [{ GRID: [{ DISPLAY: 'LINE', NAME: 'a', COLOR: '#12345' }] }],
      'fields.attach[0].GRID[0].COLOR',
      'HEX colour',
    ],
    [
      'a GRID COLOR_TOKEN out of the list',
      [{ GRID: [{ DISPLAY: 'LINE', NAME: 'a', COLOR_TOKEN: 'red' }] }],
      'fields.attach[0].GRID[0].COLOR_TOKEN',
      'primary, secondary, alert, base',
    ],
    [
      'a DELIMITER colour without "#"',
      [{ DELIMITER: { COLOR: 'c8c8c8' } }],
      'fields.attach[0].DELIMITER.COLOR',
      'HEX',
    ],
  ])('refuses %s, naming the field and the rule', (_name, attach, field, rule) => {
    const error = refusal({ attach });
    expect(error.field).toBe(field);
    expect(error.message).toContain(rule);
  });

  it.each([
    ['"N"', 'N'],
    ['an empty string', ''],
    ['an empty array', []],
    ['"N" with spaces', ' N '],
  ])('reads %s as "remove the attach" and stores "N", as keyboards do', (_name, attach) => {
    expect(parse({ attach }).fields.attach).toBe('N');
  });

  it('refuses an empty text with an attach removal: the message would be left empty and deleted', () => {
    const error = refusal({ message: '', attach: 'N' });
    expect(error.field).toBe('fields.message');
    expect(error.message).toContain('not its removal');
  });

  it('gives the removal back unchanged when the queue body is read again', () => {
    const { fields } = parse({ attach: [], message: 'card removed' });
    const again = parseQueuedEdit(
      { portal: 'acme', botId: BOT_ID, messageId: 789, fields },
      { editId: 'e', requestedAt: '2026-12-02T00:00:00.000Z' },
    );
    expect(again.fields).toEqual({ attach: 'N', message: 'card removed' });
  });

  it('refuses an attach nested 1,800 levels deep with a depth rule, not a crash', () => {
    let deep: unknown = { MESSAGE: 'x' };
    for (let i = 0; i < 1_800; i++) deep = [deep];
    const error = refusal({ attach: deep });
    expect(error.field).toBe('fields.attach');
    expect(error.message).toContain('levels');
  });
});

describe('isEdited', () => {
  it.each([
    [true, true],
    [false, false],
    ['Y', true],
    ['N', false],
    ['1', true],
    ['0', false],
  ])('takes %j, as imbot.v2 booleans and PHP forms write it, and stores %j', (isEdited, stored) => {
    expect(parse({ message: 'x', isEdited }).fields).toEqual({ message: 'x', isEdited: stored });
  });

  it.each([['yes'], [1], ['n'], [{}]])(
    'refuses %j, naming fields.isEdited and the values it takes',
    (isEdited) => {
      const error = refusal({ message: 'x', isEdited });
      expect(error.field).toBe('fields.isEdited');
      expect(error.message).toContain('true, false, "Y", "N", "1" or "0"');
    },
  );

  it('keeps isEdited when the queue body is read again, as the drain reads it', () => {
    const { fields } = parse({ message: 'quiet fix', isEdited: 'N' });
    const again = parseQueuedEdit(
      { portal: 'acme', botId: BOT_ID, messageId: 789, fields },
      { editId: 'e', requestedAt: '2026-12-02T00:00:00.000Z' },
    );
    expect(again.fields).toEqual({ message: 'quiet fix', isEdited: false });
  });
});

describe('empty text', () => {
  it.each([
    ['an empty message', ''],
    ['a message of spaces', '   '],
  ])('refuses %s with a 400 that says an empty text deletes the message', (_name, message) => {
    const error = refusal({ message });
    expect(error.status).toBe(400);
    expect(error.field).toBe('fields.message');
    expect(error.message).toContain('deletes a message');
  });

  it('accepts an empty message when the attach carries the content', () => {
    expect(parse({ message: '', attach: [{ MESSAGE: 'all in the card' }] }).fields.message).toBe('');
  });
});

describe('the queue size', () => {
  it('lets the largest edit the field rules allow through: it fits one SQS message', () => {
    const fields = {
      message: '😀'.repeat(20_000),
      attach: [{ MESSAGE: 'x'.repeat(59_850) }],
      keyboard: Array.from({ length: 100 }, (_, i) => ({ TEXT: 'k'.repeat(400), COMMAND: `c${i}` })),
    };
    expect(Buffer.byteLength(JSON.stringify(fields))).toBeGreaterThan(180_000);
    expect(() => parse(fields)).not.toThrow();
  });

  it('refuses fields that would not fit one SQS message, naming the largest field', () => {
    expect(() => assertFitsQueue({ message: 'x', attach: [{ MESSAGE: 'y'.repeat(270_000) }] })).toThrow(
      expect.objectContaining({
        field: 'fields.attach',
        status: 400,
        message: expect.stringContaining('262,144'),
      }),
    );
  });
});
