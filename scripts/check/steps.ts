// The sequence `npm run b24 -- check` runs on the portal and on the emulator, as data: one entry per
// HTTP call, in order. Adding a step is adding an entry.
import type { BatchCommand } from '../../lib/bitrix24/batch.ts';
import { UPDATE_METHOD, type UpdateTarget, updateParams } from '../../lib/bitrix24/imbot.ts';
import { attachServerLength, keyboardServerLength, SERVER_JSON_LIMIT } from '../../lib/edits/server-size.ts';
import type { EditFields } from '../../lib/edits/types.ts';
import { MESSAGE_MAX_CHARACTERS } from '../../lib/edits/validate.ts';

const SEND_METHOD = 'imbot.v2.Chat.Message.send';
/** Far above any message id a portal has given out. */
const MISSING_MESSAGE_ID = 2_147_000_000;
/** The token of the wrong-token step: no bot holds it (a check bot's token is 32 hex digits). */
const WRONG_BOT_TOKEN = 'not_the_token_of_this_bot';

/** The messages the sequence sends and edits by name. */
export type MessageName = 'main' | 'emptied' | 'second';

/** What a step's request may use: the bot on this side, its dialog, and the messages sent so far. */
export interface StepContext {
  botId: number;
  botToken: string;
  dialogId: string;
  /** The id of the message sent under `name`; throws MessageNotSent when its send failed. */
  message(name: MessageName): number;
}

export class MessageNotSent extends Error {
  override name = 'MessageNotSent';
  constructor(which: MessageName) {
    super(`no message "${which}": its send failed`);
  }
}

export type Request =
  | { kind: 'call'; method: string; params: Record<string, unknown> }
  /** A `batch` call of these commands, encoded as the service encodes its own (`buildBatchCmd`). */
  | { kind: 'batch'; commands: BatchCommand[] };

export interface Step {
  /** The table's label. */
  name: string;
  /** The answer's `result.id` becomes this message's id (a send). */
  names?: MessageName;
  request(c: StepContext): Request;
}

const call = (method: string, params: Record<string, unknown>): Request => ({ kind: 'call', method, params });

function target(c: StepContext, name: MessageName): UpdateTarget {
  return { botId: c.botId, botToken: c.botToken, messageId: c.message(name) };
}

const send = (text: string) => (c: StepContext) =>
  call(SEND_METHOD, {
    botId: c.botId,
    botToken: c.botToken,
    dialogId: c.dialogId,
    fields: { message: text },
  });

/** An update as the service sends it: `updateParams`, the code of every edit it applies. */
const update =
  (fields: EditFields | ((c: StepContext) => EditFields), name: MessageName = 'main') =>
  (c: StepContext) =>
    call(UPDATE_METHOD, updateParams(target(c, name), typeof fields === 'function' ? fields(c) : fields));

/** An update in a form the service never sends (it normalises keyboards first), sent as given. */
const raw = (fields: Record<string, unknown>) => (c: StepContext) =>
  call(UPDATE_METHOD, { ...target(c, 'main'), fields });

const BUTTON = { TEXT: 'Check', ACTION: 'COPY', ACTION_VALUE: 'b24-message-editor check' };
const BLOCKS = [{ MESSAGE: '[B]Conformance check[/B]' }, { DELIMITER: { SIZE: 200, COLOR: '#c6c6c6' } }];
const count = (n: number) => n.toLocaleString('en-US');

/**
 * The padding that makes `measure(pad)` exactly `size`, found by bisection (`measure` grows with the
 * padding): the edges are measured with lib/edits' own count of Bitrix24's stored JSON.
 */
function padTo(size: number, measure: (pad: number) => number): number {
  let [low, high] = [0, size];
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (measure(middle) < size) low = middle + 1;
    else high = middle;
  }
  if (measure(low) !== size) {
    throw new RangeError(`No padding measures exactly ${size} characters (the nearest is ${measure(low)})`);
  }
  return low;
}

const attachOf = (pad: number) => [{ MESSAGE: 'x'.repeat(pad) }];
const keyboardOf = (pad: number) => [{ ...BUTTON, ACTION_VALUE: 'x'.repeat(pad) }];

/** An attach of exactly `size` characters as lib/edits counts Bitrix24's stored JSON. */
function attachOfSize(size: number): unknown[] {
  return attachOf(padTo(size, (pad) => attachServerLength(attachOf(pad))));
}

/** A keyboard of exactly `size` characters as lib/edits counts it for this bot (BOT_ID is counted). */
function keyboardOfSize(size: number, botId: number): Record<string, unknown>[] {
  return keyboardOf(padTo(size, (pad) => keyboardServerLength(keyboardOf(pad), botId)));
}

const UNDER = SERVER_JSON_LIMIT - 1;

export const STEPS: readonly Step[] = [
  { name: 'imbot.v2.Revision.get', request: () => call('imbot.v2.Revision.get', {}) },
  { name: 'send a message', names: 'main', request: send('Conformance check: sent') },
  { name: 'update: message text', request: update({ message: 'Conformance check: [B]updated[/B]' }) },
  {
    name: 'update: urlPreview "N" with a text',
    request: update({ message: 'Without a preview: https://www.bitrix24.com/', urlPreview: 'N' }),
  },
  { name: 'update: urlPreview "Y" alone', request: update({ urlPreview: 'Y' }) },
  { name: 'update: keyboard as an array', request: raw({ keyboard: [BUTTON] }) },
  { name: 'update: keyboard as {BUTTONS}', request: raw({ keyboard: { BUTTONS: [BUTTON] } }) },
  {
    name: 'update: keyboard as {BOT_ID, BUTTONS} (the service’s form)',
    request: update({ keyboard: [BUTTON] }),
  },
  {
    name: 'update: keyboard as a JSON string',
    request: raw({ keyboard: JSON.stringify({ BUTTONS: [BUTTON] }) }),
  },
  { name: 'update: keyboard removed with "N"', request: update({ keyboard: 'N' }) },
  { name: 'update: keyboard removed with ""', request: raw({ keyboard: '' }) },
  { name: 'update: keyboard removed with []', request: raw({ keyboard: [] }) },
  { name: 'update: attach as a block array', request: update({ attach: BLOCKS }) },
  { name: 'update: attach as {BLOCKS}', request: update({ attach: { COLOR_TOKEN: 'primary', BLOCKS } }) },
  { name: 'update: attach removed with "N"', request: update({ attach: 'N' }) },
  {
    name: 'update: isEdited false (undocumented; the service forwards it)',
    request: update({ message: 'Conformance check: not marked edited', isEdited: false }),
  },
  {
    name: `update: message of ${count(MESSAGE_MAX_CHARACTERS)} characters`,
    request: update(() => ({ message: 'x'.repeat(MESSAGE_MAX_CHARACTERS) })),
  },
  {
    name: `update: message of ${count(MESSAGE_MAX_CHARACTERS + 1)} characters`,
    request: update(() => ({ message: 'x'.repeat(MESSAGE_MAX_CHARACTERS + 1) })),
  },
  {
    name: `update: attach of ${count(UNDER)} characters (lib/edits’ count)`,
    request: update(() => ({ attach: attachOfSize(UNDER) })),
  },
  {
    name: `update: attach of ${count(SERVER_JSON_LIMIT)} characters (lib/edits’ count)`,
    request: update(() => ({ attach: attachOfSize(SERVER_JSON_LIMIT) })),
  },
  {
    name: `update: keyboard of ${count(UNDER)} characters (lib/edits’ count)`,
    request: update((c) => ({ keyboard: keyboardOfSize(UNDER, c.botId) })),
  },
  {
    name: `update: keyboard of ${count(SERVER_JSON_LIMIT)} characters (lib/edits’ count)`,
    request: update((c) => ({ keyboard: keyboardOfSize(SERVER_JSON_LIMIT, c.botId) })),
  },
  {
    name: 'update: a message id that does not exist',
    request: (c) =>
      call(
        UPDATE_METHOD,
        updateParams(
          { botId: c.botId, botToken: c.botToken, messageId: MISSING_MESSAGE_ID },
          { message: 'x' },
        ),
      ),
  },
  {
    name: 'update: a wrong bot token',
    request: (c) =>
      call(
        UPDATE_METHOD,
        updateParams({ ...target(c, 'main'), botToken: WRONG_BOT_TOKEN }, { message: 'x' }),
      ),
  },
  { name: 'send a message to empty', names: 'emptied', request: send('Conformance check: to be emptied') },
  { name: 'update: empty text', request: update({ message: '' }, 'emptied') },
  { name: 'update: the message emptied above', request: update({ message: 'Still here?' }, 'emptied') },
  { name: 'send a second message', names: 'second', request: send('Conformance check: second') },
  {
    name: 'batch: two updates',
    request: (c) => ({
      kind: 'batch',
      commands: [
        { key: 'm0', method: UPDATE_METHOD, params: updateParams(target(c, 'main'), { message: 'Batched' }) },
        {
          key: 'm1',
          method: UPDATE_METHOD,
          params: updateParams(target(c, 'second'), { keyboard: [BUTTON] }),
        },
      ],
    }),
  },
  {
    name: 'batch: an update and one of a message id that does not exist',
    request: (c) => ({
      kind: 'batch',
      commands: [
        {
          key: 'm0',
          method: UPDATE_METHOD,
          params: updateParams(target(c, 'main'), { message: 'Batched again' }),
        },
        {
          key: 'm1',
          method: UPDATE_METHOD,
          params: updateParams({ ...target(c, 'main'), messageId: MISSING_MESSAGE_ID }, { message: 'x' }),
        },
      ],
    }),
  },
];
