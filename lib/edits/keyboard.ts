import { ValidationError } from '../errors.ts';
import { isRecord } from '../is-record.ts';
import { COLOR_TOKENS, HEX_COLOR_RULE, isColorToken, isHexColor, isLink, LINK_RULE } from './rules.ts';

/** The `ACTION` values of the keyboard docs. */
export const KEYBOARD_ACTIONS = ['PUT', 'SEND', 'COPY', 'CALL', 'DIALOG'] as const;

/** Button fields of the keyboard docs; anything else (a lower-case `text`, a typo) is refused. */
const BUTTON_FIELDS = new Set([
  'TEXT',
  'TYPE',
  'LINK',
  'APP_ID',
  'APP_PARAMS',
  'ACTION',
  'ACTION_VALUE',
  'COMMAND',
  'COMMAND_PARAMS',
  'BLOCK',
  'DISABLED',
  'CONTEXT',
  'DISPLAY',
  'WIDTH',
  'BG_COLOR',
  'BG_COLOR_TOKEN',
  'TEXT_COLOR',
  'OFF_BG_COLOR',
  'OFF_TEXT_COLOR',
]);
const ACTION_FIELDS = ['LINK', 'COMMAND', 'ACTION', 'APP_ID'] as const;
const HEX_FIELDS = ['BG_COLOR', 'TEXT_COLOR', 'OFF_BG_COLOR', 'OFF_TEXT_COLOR'] as const;
const FORMS_RULE =
  'must be an array of buttons, an object with BUTTONS (and BOT_ID), or a JSON string of either; an empty value or "N" to remove the keyboard';

/** One button as we store and send it: upper-case keys, string or number values (`Y`/`N` for booleans). */
export type KeyboardButton = Record<string, string | number>;

/**
 * The keyboard in its one normal form: the button array, or `'N'` for "remove the keyboard".
 * Every accepted form (bare array, `{BOT_ID?, BUTTONS}`, a JSON string of either, `"N"`, `""`, `[]`,
 * `{BUTTONS: []}`) becomes one of these two, so the ledger, the single call and `batch` all see the
 * same thing. Idempotent: a normal form gives itself back.
 *
 * Throws ValidationError naming the button (`fields.keyboard[3]`) and the rule. Its size is
 * Bitrix24's to count, with the defaults it adds to every button: `assertServerSize`.
 */
export function normaliseKeyboard(
  raw: unknown,
  botId: number,
  path: string,
  code: string,
): KeyboardButton[] | 'N' {
  const fail = (where: string, rule: string) => new ValidationError(where, `${where} ${rule}`, code);
  let value = raw;
  if (typeof value === 'string') {
    const text = value.trim();
    if (text === '' || text === 'N') return 'N';
    if (!text.startsWith('[') && !text.startsWith('{')) throw fail(path, FORMS_RULE);
    try {
      value = JSON.parse(text);
    } catch {
      throw fail(path, 'is a string but not valid JSON; a keyboard string must be the JSON of the buttons');
    }
  }
  let buttons: unknown;
  if (Array.isArray(value)) {
    buttons = value;
  } else if (isRecord(value)) {
    for (const key of Object.keys(value)) {
      if (key !== 'BUTTONS' && key !== 'BOT_ID') {
        throw fail(`${path}.${key}`, 'is not a keyboard key (allowed: BUTTONS, BOT_ID)');
      }
    }
    if (value.BOT_ID !== undefined && Number(value.BOT_ID) !== botId) {
      throw fail(`${path}.BOT_ID`, `must be the bot's own id (${botId}), or left out`);
    }
    if (!Array.isArray(value.BUTTONS)) throw fail(`${path}.BUTTONS`, 'must be an array of buttons');
    buttons = value.BUTTONS;
  } else {
    throw fail(path, FORMS_RULE);
  }
  const list = buttons as unknown[];
  if (list.length === 0) return 'N';
  return list.map((button, index) => normaliseButton(button, `${path}[${index}]`, fail));
}

function normaliseButton(
  button: unknown,
  at: string,
  fail: (where: string, rule: string) => ValidationError,
): KeyboardButton {
  if (!isRecord(button)) throw fail(at, 'must be a button object');
  const out: KeyboardButton = {};
  for (const [key, value] of Object.entries(button)) {
    if (!BUTTON_FIELDS.has(key)) {
      throw fail(`${at}.${key}`, 'is not a button field (fields are upper case: TEXT, LINK, COMMAND, …)');
    }
    if (value === undefined) continue;
    // JSON true/false would go out as true/false in a single call but as Y/N inside batch.
    if (typeof value === 'boolean') out[key] = value ? 'Y' : 'N';
    else if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value)))
      out[key] = value;
    else throw fail(`${at}.${key}`, 'must be a string or a number');
  }
  if (out.TYPE !== undefined) {
    if (out.TYPE !== 'NEWLINE') throw fail(`${at}.TYPE`, 'must be "NEWLINE", the only documented type');
    if (Object.keys(out).length > 1) throw fail(at, 'is a NEWLINE and must have no other fields');
    return out;
  }
  if (typeof out.TEXT !== 'string' || out.TEXT.trim() === '') {
    throw fail(`${at}.TEXT`, 'is required: a button needs TEXT and exactly one action');
  }
  const actions = ACTION_FIELDS.filter((name) => out[name] !== undefined);
  if (actions.length !== 1) {
    throw fail(
      at,
      `needs exactly one action out of LINK, COMMAND, ACTION (with ACTION_VALUE), APP_ID; it has ${actions.length === 0 ? 'none' : actions.join(', ')}`,
    );
  }
  if (out.LINK !== undefined && !isLink(out.LINK)) throw fail(`${at}.LINK`, LINK_RULE);
  if (out.COMMAND !== undefined && (typeof out.COMMAND !== 'string' || out.COMMAND.trim() === '')) {
    throw fail(`${at}.COMMAND`, 'must be a non-empty string');
  }
  if (out.ACTION !== undefined) {
    if (!(KEYBOARD_ACTIONS as readonly unknown[]).includes(out.ACTION)) {
      throw fail(`${at}.ACTION`, `must be one of ${KEYBOARD_ACTIONS.join(', ')}`);
    }
    if (out.ACTION_VALUE === undefined || String(out.ACTION_VALUE).trim() === '') {
      throw fail(`${at}.ACTION_VALUE`, 'is required with ACTION');
    }
  } else if (out.ACTION_VALUE !== undefined) {
    throw fail(`${at}.ACTION_VALUE`, 'is only allowed with ACTION');
  }
  if (out.APP_ID !== undefined && !/^[1-9]\d{0,14}$/.test(String(out.APP_ID))) {
    throw fail(`${at}.APP_ID`, 'must be a positive integer');
  }
  if (out.COMMAND_PARAMS !== undefined && out.COMMAND === undefined) {
    throw fail(`${at}.COMMAND_PARAMS`, 'is only allowed with COMMAND');
  }
  if (out.APP_PARAMS !== undefined && out.APP_ID === undefined) {
    throw fail(`${at}.APP_PARAMS`, 'is only allowed with APP_ID');
  }
  for (const name of HEX_FIELDS) {
    if (out[name] !== undefined && !isHexColor(out[name])) throw fail(`${at}.${name}`, HEX_COLOR_RULE);
  }
  if (out.BG_COLOR_TOKEN !== undefined && !isColorToken(out.BG_COLOR_TOKEN)) {
    throw fail(`${at}.BG_COLOR_TOKEN`, `must be one of ${COLOR_TOKENS.join(', ')}`);
  }
  return out;
}
