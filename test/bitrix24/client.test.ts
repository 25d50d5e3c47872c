import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createBitrix24Client } from '../../lib/bitrix24/client.ts';
import { Bitrix24Error } from '../../lib/bitrix24/errors.ts';
import { isBooleanSuccess, UPDATE_METHOD, updateParams } from '../../lib/bitrix24/imbot.ts';
import type { PortalAuth } from '../../lib/bitrix24/types.ts';
import { type Bitrix24Emulator, startBitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { BOT, WEBHOOK } from '../support/harness.ts';

let emulator: Bitrix24Emulator;
const webhook: PortalAuth = { type: 'webhook', ...WEBHOOK };
const params = (text: string) =>
  updateParams({ botId: BOT.id, messageId: 789, botToken: BOT.token }, { message: text });

async function failure(promise: Promise<unknown>): Promise<Bitrix24Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Bitrix24Error);
  return error as Bitrix24Error;
}

beforeAll(async () => {
  emulator = await startBitrix24Emulator({ limits: null });
  emulator.addWebhook(WEBHOOK);
  emulator.registerBot({ id: BOT.id, botToken: BOT.token, owner: { webhookUserId: WEBHOOK.userId } });
  emulator.addMessage({ id: 789, botId: BOT.id, chatId: 12, text: 'start' });
});
afterAll(() => emulator.close());
beforeEach(() => emulator.reset());

describe('the Bitrix24 client', () => {
  it('refuses a plain-HTTP portal unless the local switch allows it', async () => {
    expect(() => createBitrix24Client({ portalUrl: emulator.url })).toThrow(/must use https/);
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
    await expect(client.call(UPDATE_METHOD, params('over http'), { auth: webhook })).resolves.toMatchObject({
      result: expect.anything(),
    });
  });

  it('calls through the webhook path and keeps the time object', async () => {
    const client = createBitrix24Client({ portalUrl: `${emulator.url}/`, allowHttp: true });
    const outcome = await client.call(UPDATE_METHOD, params('via webhook'), { auth: webhook });
    expect(isBooleanSuccess(outcome.result)).toBe(true);
    expect(outcome.time).toMatchObject({
      operating: expect.any(Number),
      operating_reset_at: expect.any(Number),
    });
    expect(emulator.calls.at(-1)).toMatchObject({ method: UPDATE_METHOD, auth: 'webhook', httpStatus: 200 });
    expect(emulator.getMessage(789)?.text).toBe('via webhook');
  });

  it('turns an error answer into a typed error with code, status and strategy', async () => {
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
    emulator.inject({ kind: 'query-limit' });
    const error = await failure(client.call(UPDATE_METHOD, params('x'), { auth: webhook }));
    expect(error).toMatchObject({ code: 'QUERY_LIMIT_EXCEEDED', httpStatus: 503, strategy: 'rate-limit' });
  });

  it('names the method and the portal host in errors, never the webhook code or a token', async () => {
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
    for (const kind of ['server-error', 'html', 'reset'] as const) {
      emulator.inject({ kind });
      const error = await failure(client.call(UPDATE_METHOD, params('x'), { auth: webhook }));
      expect(error.message).toContain(UPDATE_METHOD);
      expect(error.message).toContain(new URL(emulator.url).host);
      expect(JSON.stringify({ message: error.message, stack: error.stack, cause: error.cause })).not.toMatch(
        /s3cr3t/,
      );
    }
  });

  it('reads an HTML answer as a server error, not a crash', async () => {
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
    emulator.inject({ kind: 'html' });
    const error = await failure(client.call(UPDATE_METHOD, params('x'), { auth: webhook }));
    expect(error).toMatchObject({ code: 'INVALID_RESPONSE', strategy: 'server', httpStatus: 502 });
  });

  it('reads a reset connection as a retryable network error', async () => {
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
    emulator.inject({ kind: 'reset' });
    const error = await failure(client.call(UPDATE_METHOD, params('x'), { auth: webhook }));
    expect(error).toMatchObject({ code: 'NETWORK_ERROR', strategy: 'server', httpStatus: undefined });
  });

  it('gives up after its timeout with a TIMEOUT error', async () => {
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true, timeoutMs: 200 });
    // The portal would answer success after a second: only the timeout makes this a failure.
    emulator.inject({ kind: 'slow', delayMs: 1_000 });
    const error = await failure(client.call(UPDATE_METHOD, params('x'), { auth: webhook }));
    expect(error).toMatchObject({ code: 'TIMEOUT', strategy: 'server' });
  });

  it('stops when the caller aborts, e.g. at the Lambda deadline', async () => {
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
    emulator.inject({ kind: 'slow', delayMs: 1_000 });
    const error = await failure(
      client.call(UPDATE_METHOD, params('x'), { auth: webhook, signal: AbortSignal.timeout(100) }),
    );
    expect(error).toMatchObject({ code: 'ABORTED', strategy: 'server' });
  });

  it('falls back on the HTTP status for an error code it does not know', async () => {
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
    emulator.inject({ kind: 'error', status: 418, code: 'BRAND_NEW_CODE', description: 'new' });
    expect(await failure(client.call(UPDATE_METHOD, params('x'), { auth: webhook }))).toMatchObject({
      code: 'BRAND_NEW_CODE',
      strategy: 'permanent',
    });
    emulator.inject({ kind: 'error', status: 504, code: 'GATEWAY_SOMETHING', description: 'new' });
    expect(await failure(client.call(UPDATE_METHOD, params('x'), { auth: webhook }))).toMatchObject({
      strategy: 'server',
    });
  });

  it('refuses answers without a result', async () => {
    const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
    const error = await failure(client.call('imbot.v2.No.Such.method', {}, { auth: webhook }));
    expect(error).toMatchObject({ code: 'ERROR_METHOD_NOT_FOUND', httpStatus: 404, strategy: 'permanent' });
  });
});

describe('update parameters', () => {
  it('puts BOT_ID beside the keyboard buttons and leaves "N" alone', () => {
    expect(updateParams({ botId: 5, messageId: 6 }, { keyboard: [{ TEXT: 'a' }] })).toEqual({
      botId: 5,
      messageId: 6,
      fields: { keyboard: { BOT_ID: 5, BUTTONS: [{ TEXT: 'a' }] } },
    });
    expect(updateParams({ botId: 5, messageId: 6 }, { keyboard: 'N' }).fields).toEqual({ keyboard: 'N' });
  });

  it('accepts both documented success shapes and nothing else', () => {
    expect(isBooleanSuccess(true)).toBe(true);
    expect(isBooleanSuccess({ result: true })).toBe(true);
    for (const other of [false, { result: false }, 'true', 1, null, {}])
      expect(isBooleanSuccess(other)).toBe(false);
  });
});
