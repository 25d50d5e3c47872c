import { isRecord } from '../is-record.ts';
import { isHexColor } from './rules.ts';

/**
 * The attach and the keyboard as Bitrix24's im module stores them (`CIMMessageParamAttach::
 * GetAttachByJson`, `Bitrix\Im\Bot\Keyboard::getKeyboardByJson`): what `server-size.ts` measures.
 * Read from the im sources of several versions; where they differ, the longer form is kept.
 */

/** `htmlspecialcharsbx` (ENT_COMPAT, double encoding), which the keyboard still applies to LINK. */
function htmlEscaped(text: string): string {
  return text.replace(/[&"<>]/g, (c) => ({ '&': '&amp;', '"': '&quot;', '<': '&lt;', '>': '&gt;' })[c] ?? c);
}

const LINK_LIKE = /^(?:\/|https?:\/\/)/;
/** A random colour the server puts in place of an invalid attach COLOR (`#rrggbb`). */
const SOME_COLOR = '#000000';
/** time(): the stored attach ID of current versions. */
const SOME_TIME = 1_700_000_000;
/** DELIMITER colour an older im version stores when none (or an invalid one) is given. */
const DELIMITER_COLOR = '#c6c6c6';
const KEYBOARD_ACTIONS = ['PUT', 'SEND', 'COPY', 'CALL', 'DIALOG', 'LIVECHAT', 'HELP'];

const has = (o: Record<string, unknown>, key: string) => o[key] !== undefined && o[key] !== null;
const text = (v: unknown): string =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : v === true ? '1' : '';
/** PHP's trim(): spaces, tabs, line ends, NUL and vertical tab. */
const PHP_BLANK = new Set([' ', '\t', '\n', '\r', '\u0000', '\u000b']);
function trimmed(v: unknown): string {
  const s = text(v);
  let [from, to] = [0, s.length];
  while (from < to && PHP_BLANK.has(s.charAt(from))) from++;
  while (to > from && PHP_BLANK.has(s.charAt(to - 1))) to--;
  return s.slice(from, to);
}
const linkLike = (v: unknown) => typeof v === 'string' && LINK_LIKE.test(v);
/** PHP's intval of a decoded JSON value. */
function intval(v: unknown): number {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.trunc(v) : 0;
  if (typeof v === 'boolean') return v ? 1 : 0;
  const m = typeof v === 'string' ? /^\s*[+-]?\d+/.exec(v) : null;
  return m ? Number.parseInt(m[0], 10) : 0;
}
/** The values PHP's foreach visits: an array's items, an object's values. */
const valuesOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : isRecord(v) ? Object.values(v) : []);
/** One item or a list of them, as the USER, LINK, IMAGE and FILE blocks take. */
const itemsOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : isRecord(v) ? [v] : []);
const compact = <T>(items: Array<T | undefined>): T[] => items.filter((x): x is T => x !== undefined);
/** PHP's empty(): what `!empty($x)` refuses. */
const phpEmpty = (v: unknown) =>
  v === undefined ||
  v === null ||
  v === false ||
  v === 0 ||
  v === '' ||
  v === '0' ||
  (Array.isArray(v) && v.length === 0);

type Form = Record<string, unknown>;

/** Positive integers the server keeps under their name (`intval(x) > 0`). */
function positive(from: Form, names: readonly string[], into: Form): void {
  for (const name of names) if (intval(from[name]) > 0) into[name] = intval(from[name]);
}

/**
 * The attach as the im module stores it, or undefined when it keeps no block (ATTACH_ERROR).
 * Where the stored versions differ, the longer choice: a 10-digit ID (time()) unless the given
 * one is longer, `DESCRIPTION`, a DELIMITER `COLOR`, NAMEs untrimmed; `COLOR_TOKEN` (documented
 * for v2, absent from the sources we have) is counted with its default `base`.
 */
export function serverAttachForm(attach: unknown): Form | undefined {
  const full = isRecord(attach) && has(attach, 'BLOCKS');
  const blocks = valuesOf(full ? attach.BLOCKS : attach).flatMap(blockForms);
  if (blocks.length === 0) return undefined;
  const given = full ? attach.ID : undefined;
  const form: Form = {
    ID: given !== undefined && JSON.stringify(given).length > 10 ? given : SOME_TIME,
    BLOCKS: blocks,
    DESCRIPTION: '',
    COLOR_TOKEN: full && typeof attach.COLOR_TOKEN === 'string' ? attach.COLOR_TOKEN : 'base',
  };
  if (full && has(attach, 'COLOR') && attach.COLOR !== 'CHAT') {
    form.COLOR =
      attach.COLOR === 'TRANSPARENT' ? 'transparent' : isHexColor(attach.COLOR) ? attach.COLOR : SOME_COLOR;
  }
  return form;
}

function blockForms(data: unknown): Form[] {
  if (!isRecord(data)) return [];
  if (has(data, 'USER')) return compact(itemsOf(data.USER).map(userForm)).map((u) => ({ USER: [u] }));
  if (has(data, 'LINK')) return compact(itemsOf(data.LINK).map(linkForm)).map((l) => ({ LINK: [l] }));
  if (has(data, 'RICH_LINK')) return [];
  if (has(data, 'MESSAGE')) {
    const raw = isRecord(data.MESSAGE) ? data.MESSAGE.TEXT : data.MESSAGE;
    const message = trimmed(raw);
    return message === '' ? [] : [{ MESSAGE: message }];
  }
  const list = (key: string, items: Form[]): Form[] => (items.length === 0 ? [] : [{ [key]: items }]);
  if (has(data, 'GRID')) return list('GRID', compact(valuesOf(data.GRID).map(gridItemForm)));
  if (has(data, 'IMAGE')) return list('IMAGE', compact(itemsOf(data.IMAGE).map(imageForm)));
  if (has(data, 'FILE')) return list('FILE', compact(itemsOf(data.FILE).map(fileForm)));
  if (has(data, 'DELIMITER')) {
    const d = isRecord(data.DELIMITER) ? data.DELIMITER : {};
    const color = isHexColor(d.COLOR) ? d.COLOR : DELIMITER_COLOR;
    return [{ DELIMITER: { SIZE: intval(d.SIZE) > 0 ? intval(d.SIZE) : 200, COLOR: color } }];
  }
  return [];
}

function userForm(p: unknown): Form | undefined {
  if (!isRecord(p) || trimmed(p.NAME) === '') return undefined;
  const u: Form = { NAME: text(p.NAME), AVATAR_TYPE: 'USER' };
  if (has(p, 'NETWORK_ID'))
    u.NETWORK_ID = `${text(p.NETWORK_ID).slice(0, 1)}${intval(text(p.NETWORK_ID).slice(1))}`;
  else if (intval(p.USER_ID) > 0) u.USER_ID = intval(p.USER_ID);
  else if (intval(p.CHAT_ID) > 0) [u.CHAT_ID, u.AVATAR_TYPE] = [intval(p.CHAT_ID), 'CHAT'];
  else if (intval(p.BOT_ID) > 0) [u.BOT_ID, u.AVATAR_TYPE] = [intval(p.BOT_ID), 'BOT'];
  else if (linkLike(p.LINK)) u.LINK = p.LINK;
  if (linkLike(p.AVATAR)) u.AVATAR = p.AVATAR;
  if (['CHAT', 'USER', 'BOT'].includes(text(p.AVATAR_TYPE))) u.AVATAR_TYPE = p.AVATAR_TYPE;
  return u;
}

function linkForm(p: unknown): Form | undefined {
  if (!isRecord(p)) return undefined;
  const l: Form = {};
  const named = has(p, 'NAME');
  if (has(p, 'NETWORK_ID') && named) l.NETWORK_ID = text(p.NETWORK_ID);
  else if (intval(p.USER_ID) > 0 && named) l.USER_ID = intval(p.USER_ID);
  else if (intval(p.CHAT_ID) > 0 && named) l.CHAT_ID = intval(p.CHAT_ID);
  else if (!linkLike(p.LINK)) return undefined;
  for (const name of ['NAME', 'LINK', 'DESC', 'HTML']) if (has(p, name)) l[name] = p[name];
  if (!has(p, 'HTML') && linkLike(p.PREVIEW)) {
    l.PREVIEW = p.PREVIEW;
    positive(p, ['WIDTH', 'HEIGHT'], l);
  }
  return l;
}

function gridItemForm(g: unknown): Form | undefined {
  if (!isRecord(g)) return undefined;
  if (g.DISPLAY !== 'LINE' && trimmed(g.NAME) === '' && trimmed(g.VALUE) === '') return undefined;
  const display = text(g.DISPLAY);
  const known = ['BLOCK', 'LINE', 'CARD', 'ROW', 'COLUMN', 'TABLE'].includes(display);
  const item: Form = {
    DISPLAY: !known ? 'BLOCK' : display === 'COLUMN' ? 'ROW' : display === 'CARD' ? 'LINE' : display,
    NAME: trimmed(g.NAME),
    VALUE: trimmed(g.VALUE),
  };
  if (isHexColor(g.COLOR)) item.COLOR = g.COLOR;
  if (typeof g.COLOR_TOKEN === 'string') item.COLOR_TOKEN = g.COLOR_TOKEN;
  positive(g, ['WIDTH', 'HEIGHT', 'USER_ID', 'CHAT_ID'], item);
  if (linkLike(g.LINK)) item.LINK = g.LINK;
  return item;
}

function imageForm(p: unknown): Form | undefined {
  if (!isRecord(p) || !linkLike(p.LINK)) return undefined;
  const i: Form = { LINK: p.LINK };
  if (trimmed(p.NAME) !== '') i.NAME = trimmed(p.NAME);
  positive(p, ['WIDTH', 'HEIGHT'], i);
  if (linkLike(p.PREVIEW)) i.PREVIEW = p.PREVIEW;
  return i;
}

function fileForm(p: unknown): Form | undefined {
  if (!isRecord(p) || !linkLike(p.LINK)) return undefined;
  const f: Form = { LINK: p.LINK };
  if (trimmed(p.NAME) !== '') f.NAME = trimmed(p.NAME);
  positive(p, ['SIZE'], f);
  return f;
}

/**
 * The buttons as the keyboard class stores them: every button gets `BOT_ID`, `TYPE`, `VOTE`,
 * `BLOCK`, `WAIT`, `CONTEXT`, `DISABLED` and `DISPLAY` (a command button also `COMMAND_PARAMS`),
 * about 130 characters more than it was sent with; a LINK is HTML-escaped first. `BG_COLOR_TOKEN`
 * (documented for v2, absent from the sources we have) is counted on every button with its
 * default `base`. Buttons the server drops (no TEXT, no action) are left out.
 */
export function serverKeyboardForm(buttons: unknown, botId: number): Form[] {
  return compact(
    valuesOf(buttons).map((b) => {
      if (!isRecord(b)) return undefined;
      if (b.TYPE === 'NEWLINE') return { TYPE: 'NEWLINE' };
      return has(b, 'FUNCTION') ? undefined : buttonForm(b, botId);
    }),
  );
}

function buttonForm(b: Form, botId: number): Form | undefined {
  if (typeof b.TEXT !== 'string' || trimmed(b.TEXT) === '') return undefined;
  const out: Form = { BOT_ID: botId, TYPE: 'BUTTON' };
  if (typeof b.LINK === 'string' && LINK_LIKE.test(b.LINK)) out.LINK = htmlEscaped(b.LINK);
  else if (!phpEmpty(b.APP_ID)) {
    out.APP_ID = intval(b.APP_ID);
    if (typeof b.APP_PARAMS === 'string' && trimmed(b.APP_PARAMS) !== '') out.APP_PARAMS = b.APP_PARAMS;
  } else if (KEYBOARD_ACTIONS.includes(text(b.ACTION)) && trimmed(b.ACTION_VALUE) !== '') {
    [out.ACTION, out.ACTION_VALUE] = [b.ACTION, b.ACTION_VALUE];
  } else if (botId > 0 && typeof b.COMMAND === 'string' && trimmed(b.COMMAND) !== '') {
    out.COMMAND = b.COMMAND.startsWith('/') ? b.COMMAND.slice(1) : b.COMMAND;
    out.COMMAND_PARAMS =
      typeof b.COMMAND_PARAMS === 'string' && trimmed(b.COMMAND_PARAMS) !== '' ? b.COMMAND_PARAMS : '';
  } else {
    return undefined;
  }
  Object.assign(out, {
    TEXT: trimmed(b.TEXT),
    VOTE: 'N',
    BLOCK: b.BLOCK === 'Y' ? 'Y' : 'N',
    WAIT: 'N',
    CONTEXT: b.CONTEXT === 'MOBILE' || b.CONTEXT === 'DESKTOP' ? b.CONTEXT : 'ALL',
    DISABLED: b.DISABLED === 'Y' ? 'Y' : 'N',
    DISPLAY: b.DISPLAY === 'LINE' ? 'LINE' : 'BLOCK',
    BG_COLOR_TOKEN: typeof b.BG_COLOR_TOKEN === 'string' ? b.BG_COLOR_TOKEN : 'base',
  });
  positive(b, ['WIDTH'], out);
  for (const name of ['BG_COLOR', 'TEXT_COLOR', 'OFF_BG_COLOR', 'OFF_TEXT_COLOR']) {
    if (isHexColor(b[name])) out[name] = b[name];
  }
  return out;
}
