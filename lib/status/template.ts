import Mustache from 'mustache';
import { StatusRenderError } from './errors.ts';

/** Bitrix24's limit on a message text, in characters (Unicode code points). */
/** Bitrix24's text limit, as the API's validation counts it (one definition: lib/edits/validate.ts). */
export { MESSAGE_MAX_CHARACTERS as MESSAGE_MAX_CHARS } from '../edits/validate.ts';

import { MESSAGE_MAX_CHARACTERS as MESSAGE_MAX_CHARS } from '../edits/validate.ts';
import { isRecord } from '../is-record.ts';

export interface RenderTemplateOptions {
  /** The moment shown as `now` and `nowIso`. */
  now: Date;
  /** IANA time zone `now` is shown in. */
  timezone: string;
}

/** The data every template can use, whatever its source. */
export interface BuiltinTemplateData {
  /** `now` in the spec's time zone as `YYYY-MM-DD HH:mm`, 24-hour clock, e.g. `2026-11-25 14:05`. */
  now: string;
  /** `now` in UTC as ISO 8601 with milliseconds, e.g. `2026-11-25T13:05:00.000Z`. */
  nowIso: string;
}

// Bitrix24 text is BB-code, not HTML: `<`, `&` and quotes must reach the chat as they are.
const NO_ESCAPING: Mustache.RenderOptions = { escape: (value: unknown) => String(value) };

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone);
  if (!formatter) {
    try {
      formatter = new Intl.DateTimeFormat('en-US', {
        timeZone: timezone,
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        hourCycle: 'h23',
      });
    } catch (error) {
      throw new StatusRenderError('TIMEZONE_INVALID', `Unknown time zone ${JSON.stringify(timezone)}`, {
        cause: error,
      });
    }
    formatters.set(timezone, formatter);
  }
  return formatter;
}

/** `date` in `timezone` as `YYYY-MM-DD HH:mm` (24-hour clock). */
export function formatNow(date: Date, timezone: string): string {
  const parts: Partial<Record<Intl.DateTimeFormatPartTypes, string>> = {};
  for (const part of formatterFor(timezone).formatToParts(date)) parts[part.type] = part.value;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

export function builtinTemplateData(options: RenderTemplateOptions): BuiltinTemplateData {
  return { now: formatNow(options.now, options.timezone), nowIso: options.now.toISOString() };
}

function countCodePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/**
 * Renders a status template with mustache (sections, inverted sections, dotted paths) and no
 * HTML escaping. `now` and `nowIso` (see `BuiltinTemplateData`) are always available and win over
 * source fields of the same name, because the template author does not control the source's keys.
 * A JSON array or scalar is the view itself (`{{#.}}...{{/.}}`).
 *
 * @throws StatusRenderError `TEMPLATE_INVALID`, `TIMEZONE_INVALID`, `MESSAGE_EMPTY` for a blank
 * result (an empty text may delete the message), `MESSAGE_TOO_LONG` above 20,000 code points
 * (never truncated: a cut status would be a wrong status).
 */
export function renderTemplate(template: string, data: unknown, options: RenderTemplateOptions): string {
  const builtins = builtinTemplateData(options);
  let view: unknown;
  if (isRecord(data)) view = { ...data, ...builtins };
  else if (data === null || data === undefined) view = builtins;
  else view = new Mustache.Context(data, new Mustache.Context(builtins));

  let text: string;
  try {
    text = Mustache.render(template, view, undefined, NO_ESCAPING);
  } catch (error) {
    throw new StatusRenderError('TEMPLATE_INVALID', `Template does not render: ${(error as Error).message}`, {
      cause: error,
    });
  }

  if (text.trim() === '') {
    throw new StatusRenderError(
      'MESSAGE_EMPTY',
      'Rendered message is empty; Bitrix24 may delete a message updated with an empty text',
    );
  }
  // Length in UTF-16 units is an upper bound on code points, so most texts skip the count.
  if (text.length > MESSAGE_MAX_CHARS) {
    const length = countCodePoints(text);
    if (length > MESSAGE_MAX_CHARS) {
      throw new StatusRenderError(
        'MESSAGE_TOO_LONG',
        `Rendered message is ${length.toLocaleString('en-US')} characters; the Bitrix24 limit is ${MESSAGE_MAX_CHARS.toLocaleString('en-US')}`,
      );
    }
  }
  return text;
}
