import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createBitrix24Client } from '../../lib/bitrix24/client.ts';
import {
  callerStatusOf,
  classify,
  ERROR_TABLE,
  findErrorRow,
  Strategy,
} from '../../lib/bitrix24/error-table.ts';
import { Bitrix24Error } from '../../lib/bitrix24/errors.ts';
import { UPDATE_METHOD, updateParams } from '../../lib/bitrix24/imbot.ts';
import type { PortalAuth } from '../../lib/bitrix24/types.ts';
import { type Bitrix24Emulator, startBitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { BOT, WEBHOOK } from '../support/harness.ts';

let emulator: Bitrix24Emulator;
const webhook: PortalAuth = { type: 'webhook', ...WEBHOOK };
const PLAN_TEXT = 'REST API is available only on commercial plans';

beforeAll(async () => {
  emulator = await startBitrix24Emulator({ limits: null });
  emulator.addWebhook(WEBHOOK);
  emulator.registerBot({ id: BOT.id, botToken: BOT.token, owner: { webhookUserId: WEBHOOK.userId } });
  emulator.addMessage({ id: 789, botId: BOT.id, chatId: 12, text: 'start' });
  emulator.addMessage({ id: 800, authorId: 1, chatId: 12, text: 'a person wrote this' });
});
afterAll(() => emulator.close());
beforeEach(() => emulator.reset());

async function callFails(messageId: number): Promise<Bitrix24Error> {
  const client = createBitrix24Client({ portalUrl: emulator.url, allowHttp: true });
  const params = updateParams({ botId: BOT.id, messageId, botToken: BOT.token }, { message: 'x' });
  const error = await client.call(UPDATE_METHOD, params, { auth: webhook }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Bitrix24Error);
  return error as Bitrix24Error;
}

describe('ACCESS_DENIED, told apart by its description', () => {
  it('reads a 403 "REST API is available only on commercial plans" as the portal’s plan, and says so', async () => {
    emulator.inject({ kind: 'error', code: 'ACCESS_DENIED', status: 403, description: PLAN_TEXT });
    const error = await callFails(789);
    expect(error.strategy).toBe(Strategy.Auth);
    expect(error.message).toContain('the portal’s plan, not the message');
    expect(callerStatusOf(error.code, error.httpStatus, error.description)).toBe(502);
  });

  it('reads a 403 ACCESS_DENIED for another author’s message as the message, and says so', async () => {
    const error = await callFails(800);
    expect(error).toMatchObject({ code: 'ACCESS_DENIED', httpStatus: 403, strategy: Strategy.Permanent });
    expect(error.message).toContain('the message is not the bot’s');
    expect(callerStatusOf(error.code, error.httpStatus, error.description)).toBe(403);
  });

  it('recognises the webhook wording of the newer table ("REST is available only by subscription") at 401', () => {
    expect(classify(401, 'ACCESS_DENIED', 'REST is available only by subscription')).toBe(Strategy.Auth);
    expect(classify(403, 'ACCESS_DENIED', 'Access denied')).toBe(Strategy.Permanent);
  });
});

describe('codes the SDKs know', () => {
  it.each([
    ['authorization_error', 401],
    ['ERROR_OAUTH', 401],
    ['APPLICATION_NOT_FOUND', 401],
    ['NOT_INSTALLED', 401],
    ['WRONG_AUTH_TYPE', 403],
    ['ALLOWED_ONLY_INTRANET_USER', 403],
    ['ACCESS_ERROR', 403],
  ])('reads %s (%i) as our credentials failing, and reads the secret again', (code, status) => {
    expect(classify(status, code)).toBe(Strategy.Auth);
    expect(findErrorRow(code, status)?.refetchSecret).toBe(true);
    expect(callerStatusOf(code, status)).toBe(502);
  });

  it('answers 410 for PORTAL_DELETED, which waiting cannot cure', () => {
    expect(classify(410, 'PORTAL_DELETED')).toBe(Strategy.Permanent);
    expect(callerStatusOf('PORTAL_DELETED', 410)).toBe(410);
  });

  it.each(['CANT_EDIT_MESSAGE', 'ATTACH_OVERSIZE', 'KEYBOARD_OVERSIZE'])(
    'reads %s as the edit being wrong for good',
    (code) => {
      expect(classify(400, code)).toBe(Strategy.Permanent);
      expect(callerStatusOf(code, 400)).toBe(400);
    },
  );

  it('gives every row told apart by text a description its own pattern matches', () => {
    for (const row of ERROR_TABLE.filter((r) => r.descriptionMatch)) {
      expect(row.descriptionMatch?.test(row.description)).toBe(true);
    }
  });
});
