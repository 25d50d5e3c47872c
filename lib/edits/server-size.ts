import { ValidationError } from '../errors.ts';
import { isRecord } from '../is-record.ts';
import { count } from './rules.ts';
import { serverAttachForm, serverKeyboardForm } from './stored-form.ts';
import type { EditFields } from './types.ts';

/**
 * How Bitrix24 measures an attach and a keyboard, and what it measures: not the JSON we send but
 * the one its im module stores after rebuilding the value (`CIMMessageParamAttach::GetJSON`,
 * `Bitrix\Im\Bot\Keyboard::getJson`), kept only while `mb_strlen(json) < 60000`. A value at or
 * above it fails after the call, for good (ATTACH_OVERSIZE, KEYBOARD_OVERSIZE), so it is refused
 * before.
 */
export const SERVER_JSON_LIMIT = 60_000;

/**
 * Characters of `value` as PHP's `json_encode` writes it with Bitrix's default flags
 * (`JSON_HEX_TAG|JSON_HEX_AMP|JSON_HEX_APOS|JSON_HEX_QUOT`, the encoder of non-UTF portals and of
 * older im versions): `/` as `\/`, `" & ' < >` as `\u00XX`, every non-ASCII character as `\uXXXX`
 * (a pair outside the BMP). Current UTF portals leave non-ASCII as is and write `"` as `\"`; for
 * every character this count is the larger of the two, so it never falls short of either.
 */
export function serverJsonLength(value: unknown): number {
  if (typeof value === 'string') return stringLength(value);
  if (typeof value === 'number') return Number.isFinite(value) ? String(value).length : 1;
  if (typeof value === 'boolean') return value ? 4 : 5;
  if (Array.isArray(value)) {
    return value.reduce(
      (sum: number, item) => sum + serverJsonLength(item),
      2 + Math.max(0, value.length - 1),
    );
  }
  if (isRecord(value)) {
    const entries = Object.entries(value).filter(([, inner]) => inner !== undefined);
    let n = 2 + Math.max(0, entries.length - 1);
    for (const [key, inner] of entries) n += stringLength(key) + 1 + serverJsonLength(inner);
    return n;
  }
  return 4; // null
}

function stringLength(text: string): number {
  let n = 2;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) n += 6;
    else if (c === 0x2f || c === 0x5c || (c >= 0x08 && c <= 0x0d && c !== 0x0b)) n += 2;
    else if (c < 0x20 || c === 0x22 || c === 0x26 || c === 0x27 || c === 0x3c || c === 0x3e) n += 6;
    else n += 1;
  }
  return n;
}

/** Characters of the stored attach (0 when the server would keep no block). */
export function attachServerLength(attach: unknown): number {
  const form = serverAttachForm(attach);
  return form === undefined ? 0 : serverJsonLength(form);
}

export function keyboardServerLength(buttons: unknown, botId: number): number {
  return serverJsonLength(serverKeyboardForm(buttons, botId));
}

/**
 * The size rule of the attach and the keyboard, for every path through `normaliseFields`: the
 * answer names the field, Bitrix24's count and its limit.
 */
export function assertServerSize(fields: EditFields, botId: number, code: string): void {
  const sizes: Array<[string, number, string]> = [];
  if (fields.attach !== undefined && fields.attach !== 'N' && serverAttachForm(fields.attach) === undefined) {
    throw new ValidationError(
      'fields.attach',
      'fields.attach keeps no block Bitrix24 would store (blocks without content, such as a blank MESSAGE or a GRID item with neither NAME nor VALUE, are dropped): it would answer ATTACH_ERROR; send a block with content, or "N" to remove the attach',
      code,
    );
  }
  if (fields.attach !== undefined && fields.attach !== 'N') {
    sizes.push(['fields.attach', attachServerLength(fields.attach), 'ATTACH_OVERSIZE']);
  }
  if (Array.isArray(fields.keyboard)) {
    sizes.push(['fields.keyboard', keyboardServerLength(fields.keyboard, botId), 'KEYBOARD_OVERSIZE']);
  }
  for (const [field, chars, refusal] of sizes) {
    if (chars < SERVER_JSON_LIMIT) continue;
    throw new ValidationError(
      field,
      `${field} is ${count(chars)} characters as Bitrix24 counts it (the JSON it stores, with its defaults added, "/" as "\\/" and each non-ASCII character as \\uXXXX); the limit is ${count(SERVER_JSON_LIMIT)}: Bitrix24 keeps it only below that and answers ${refusal} otherwise`,
      code,
    );
  }
}
