import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/webhook.ts';
import type { WebhookDeps } from '../../lib/api/webhook.ts';
import { encodeBracketParams } from '../../lib/bitrix24/query-string.ts';
import { CallerKeys, parseCallerKey } from '../../lib/callers/index.ts';
import type { HttpResult } from '../../lib/http/responses.ts';
import { messagePk } from '../../lib/ledger/codec.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { httpApiEvent, lambdaContext } from '../support/events.ts';
import { BOT, type Harness, startHarness } from '../support/harness.ts';
import { freshLedger, purgeQueues, updateDeps, wakeLater } from './helpers.ts';

let h: Harness;
let ledger: Ledger;
let callers: CallerKeys;
let deps: WebhookDeps;
let key: string;

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
});
afterAll(async () => {
  await h.close();
});
beforeEach(async () => {
  h.emulator.reset();
  h.wakeups.clear();
  ledger = await freshLedger(h);
  callers = new CallerKeys(ledger.table, { cacheTtlMs: 0 });
  deps = { ...updateDeps(h, ledger), callers };
  ({ key } = await callers.add({ portal: 'acme', name: 'crm-sync' }));
  h.emulator.clearCalls();
});
afterEach(async () => {
  await purgeQueues(h);
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** A request as a Bitrix24 client sends it to its webhook URL, through the Lambda handler. */
async function call(
  method: string,
  body: unknown,
  options: { key?: string; form?: boolean; httpMethod?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const path = `/rest/1/${options.key ?? key}/${method}`;
  const line = { path, method: options.httpMethod ?? 'POST' };
  const event = options.form
    ? httpApiEvent(undefined, {
        ...line,
        rawBody: encodeBracketParams(body as Record<string, unknown>),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...options.headers },
      })
    : httpApiEvent(body, { ...line, headers: options.headers ?? {} });
  const result = (await createHandler(deps)(event as never, lambdaContext())) as HttpResult;
  return { status: result.statusCode, body: JSON.parse(result.body) as Record<string, unknown> };
}

const UPDATE = 'imbot.v2.Chat.Message.update';
const edit = (message: string, messageId = 789) => ({ botId: BOT.id, messageId, fields: { message } });

describe('the webhook route: a Bitrix24 client pointed at this service', () => {
  it('applies an update sent as JSON to /rest/<user>/<key>/<method> and answers imbot.v2’s nested result with a time object', async () => {
    const answer = await call(UPDATE, edit('Build #41: green'));
    expect(answer).toMatchObject({ status: 200, body: { result: { result: true } } });
    expect(answer.body.time).toMatchObject({ start: expect.any(Number), operating: expect.any(Number) });
    expect(h.emulator.getMessage(789)?.text).toBe('Build #41: green');
  });

  it('takes the method name in any case and with a .json suffix, as Bitrix24 does', async () => {
    expect((await call('imbot.v2.chat.message.update', edit('lower'))).status).toBe(200);
    expect(h.emulator.getMessage(789)?.text).toBe('lower');
    expect((await call('IMBOT.V2.CHAT.MESSAGE.UPDATE.json', edit('upper'))).status).toBe(200);
    expect(h.emulator.getMessage(789)?.text).toBe('upper');
  });

  it('applies a form-encoded body with PHP bracket names, as CRest sends it', async () => {
    const answer = await call(
      UPDATE,
      {
        botId: BOT.id,
        messageId: 789,
        fields: { message: 'from CRest', keyboard: [{ TEXT: 'Open', LINK: 'https://example.com' }] },
      },
      { form: true },
    );
    expect(answer).toMatchObject({ status: 200, body: { result: { result: true } } });
    expect(h.emulator.getMessage(789)).toMatchObject({
      text: 'from CRest',
      keyboard: { BUTTONS: [{ TEXT: 'Open', LINK: 'https://example.com' }] },
    });
  });

  it('answers a wrong key 401 INVALID_CREDENTIALS in Bitrix24’s shape, and records and sends nothing', async () => {
    const wrong = `${key.slice(0, -4)}zzzz`;
    expect(await call(UPDATE, edit('intruder'), { key: wrong })).toEqual({
      status: 401,
      body: { error: 'INVALID_CREDENTIALS', error_description: 'Invalid request credentials' },
    });
    // A Bitrix24 webhook code in the path (the docs' webhook URL form) is told what goes there instead.
    const webhookCode = await call(UPDATE, edit('intruder'), { key: 'abcdef0123456789' });
    expect(webhookCode).toMatchObject({ status: 401, body: { error: 'INVALID_CREDENTIALS' } });
    expect(webhookCode.body.error_description).toMatch(/not a caller key.*caller add/);
    expect(h.emulator.calls).toEqual([]);
    expect(await ledger.table.get(messagePk({ portal: 'acme', botId: BOT.id, messageId: 789 }), 'read')).toBe(
      undefined,
    );
  });

  it('refuses a revoked key', async () => {
    await callers.revoke(parseCallerKey(key)?.keyId as string);
    expect(await call(UPDATE, edit('after revoke'))).toMatchObject({
      status: 401,
      body: { error: 'INVALID_CREDENTIALS' },
    });
    expect(h.emulator.calls).toEqual([]);
  });

  it('answers other methods 404 ERROR_METHOD_NOT_FOUND and other HTTP methods 405, both in Bitrix24’s shape', async () => {
    expect(await call('imbot.v2.Chat.Message.send', edit('x'))).toMatchObject({
      status: 404,
      body: { error: 'ERROR_METHOD_NOT_FOUND' },
    });
    expect(await call(UPDATE, edit('x'), { httpMethod: 'GET' })).toMatchObject({
      status: 405,
      body: { error: 'METHOD_NOT_ALLOWED' },
    });
  });

  it('refuses auth in the body, saying the caller key names the portal', async () => {
    const answer = await call(UPDATE, { ...edit('x'), auth: 'token' });
    expect(answer.status).toBe(400);
    expect(answer.body.error_description).toMatch(/^auth .*caller key/);
  });

  it('passes Bitrix24’s refusal of a message the bot did not write on as its error', async () => {
    h.emulator.addMessage({ id: 5001, authorId: 1, chatId: 12, text: 'a human wrote this' });
    expect(await call(UPDATE, edit('x', 5001))).toMatchObject({
      status: 403,
      body: { error: 'ACCESS_DENIED' },
    });
  });
});

describe('batch through the webhook route', () => {
  const ids = () =>
    Array.from({ length: 50 }, (_, i) => h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: `m${i}` }));
  const command = (message: string, messageId: number) =>
    `${UPDATE}?${encodeBracketParams(edit(message, messageId))}`;

  it('applies 50 updates in one Bitrix24 call and answers each command in its slot', async () => {
    const messages = ids();
    h.emulator.clearCalls();
    const cmd = Object.fromEntries(messages.map((id) => [`m${id}`, command(`done ${id}`, id)]));
    const answer = await call('batch', { halt: 0, cmd });
    expect(answer.status).toBe(200);
    const result = answer.body.result as Record<string, Record<string, unknown>>;
    expect(Object.keys(result.result ?? {})).toHaveLength(50);
    expect(result.result?.[`m${messages[0]}`]).toEqual({ result: true });
    expect(result.result_error).toEqual([]);
    expect(Object.keys(result.result_time ?? {})).toHaveLength(50);
    expect(messages.map((id) => h.emulator.getMessage(id)?.text)).toEqual(messages.map((id) => `done ${id}`));
    expect(h.emulator.calls.filter((c) => !c.viaBatch)).toHaveLength(1);
  });

  it('answers a list of commands with lists, as PHP renders them', async () => {
    const answer = await call('batch', { cmd: [command('first', 789)] });
    expect(answer.body.result).toMatchObject({ result: [{ result: true }], result_error: [] });
  });

  it('puts a refused command’s error in its slot naming the field, and applies the others', async () => {
    const cmd = {
      good: command('good', 789),
      bad: `${UPDATE}?botId=${BOT.id}&messageId=790&fields[colour]=red`,
    };
    const answer = await call('batch', { halt: 0, cmd });
    const result = answer.body.result as Record<string, Record<string, { error_description?: string }>>;
    expect(result.result).toEqual({ good: { result: true } });
    expect(result.result_error?.bad?.error_description).toMatch(/cmd\[bad\].*colour/);
    expect(h.emulator.getMessage(789)?.text).toBe('good');
  });

  it('stops at the first refused command with halt, leaving the later ones unrecorded', async () => {
    const cmd = {
      bad: `imbot.v2.Chat.Message.send?botId=${BOT.id}`,
      later: command('later', 789),
    };
    const answer = await call('batch', { halt: 1, cmd }, { form: true });
    const result = answer.body.result as Record<string, unknown>;
    expect(result.result).toEqual([]);
    expect(result.result_error).toMatchObject({ bad: { error: 'ERROR_METHOD_NOT_FOUND' } });
    expect(h.emulator.calls).toEqual([]);
    expect(await ledger.table.get(messagePk({ portal: 'acme', botId: BOT.id, messageId: 789 }), 'read')).toBe(
      undefined,
    );
  });

  it('lists a command its message’s cadence holds back in result_deferred, and the portal’s wake-up applies it', async () => {
    deps = { ...updateDeps(h, ledger, {}, { options: { messageMinIntervalMs: 60_000 } }), callers };
    await call('batch', { cmd: { first: command('first', 789) } });
    const answer = await call('batch', { cmd: { second: command('second', 789) } });
    const result = answer.body.result as Record<string, unknown>;
    expect(result.result).toEqual({ second: { result: true } });
    expect(result.result_deferred).toEqual({
      second: { editId: expect.any(String), reason: 'MESSAGE_CADENCE' },
    });
    expect(h.emulator.getMessage(789)?.text).toBe('first');
    expect(await wakeLater(h, ledger)).toMatchObject({ applied: 1 });
    expect(h.emulator.getMessage(789)?.text).toBe('second');
  });

  it('marks a portal another run holds, so that the holder looks again for the commands it left deferred', async () => {
    expect((await ledger.portals.acquireLease('acme', 'another-run', Date.now() + 10_000)).acquired).toBe(
      true,
    );
    const before = Date.now();
    const answer = await call('batch', { cmd: { held: command('while held', 789) } });
    const result = answer.body.result as Record<string, unknown>;
    expect(result.result_deferred).toEqual({ held: { editId: expect.any(String), reason: 'LEASE_HELD' } });
    expect(h.emulator.calls).toEqual([]);
    // The holder, before it lets go, sees the portal touched after its last look, and looks again.
    expect((await ledger.portals.view('acme')).touchedAt).toBeGreaterThanOrEqual(before);
  });

  it('fails each command past 50 on its own, as Bitrix24 does', async () => {
    const messages = [...ids(), h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'extra' })];
    const cmd = messages.map((id) => command(`done ${id}`, id));
    const answer = await call('batch', { cmd });
    const result = answer.body.result as Record<string, unknown>;
    expect(result.result_error).toEqual({
      50: { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: expect.any(String) },
    });
    expect(h.emulator.getMessage(messages[50] as number)?.text).toBe('extra');
  });
});
