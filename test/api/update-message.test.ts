import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { UpdateMessageDeps } from '../../lib/api/update-message.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { PortalGateway } from '../../lib/portal/gateway.ts';
import { createSecretStore } from '../../lib/secrets/index.ts';
import { httpApiEvent, restApiEvent } from '../support/events.ts';
import {
  AWS,
  BOT,
  type Harness,
  OAUTH_APP,
  oauthSecret,
  PREFIX,
  startHarness,
  webhookSecret,
} from '../support/harness.ts';
import { waitFor } from '../support/wait.ts';
import {
  failedEdits,
  freshLedger,
  postUpdate,
  purgeQueues,
  type ReconcilerSetup,
  sweepLater,
  update,
  updateDeps,
  wakeLater,
} from './helpers.ts';

let h: Harness;
let ledger: Ledger;
let deps: UpdateMessageDeps;

const depsFor = (overrides: Partial<UpdateMessageDeps> = {}, setup: ReconcilerSetup = {}) =>
  updateDeps(h, ledger, overrides, setup);
const invoke = (event: unknown, d: UpdateMessageDeps = deps) => postUpdate(event, d);
const key789 = { portal: 'acme', botId: BOT.id, messageId: 789 };

/** A client of a service that is not there: port 9 on loopback refuses at once. */
const unreachable = { ...AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 };

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
  deps = depsFor();
});
afterEach(async () => {
  // Leave the queues empty for the next test.
  await purgeQueues(h);
});

describe('applying an edit now', () => {
  it('updates the message through a webhook portal and answers 200 with the time object', async () => {
    const res = await invoke(update({ message: 'Build #41: [B]green[/B]' }));
    expect(res.status).toBe(200);
    expect(res.body.result).toBe(true);
    expect(res.body.time).toMatchObject({ operating: expect.any(Number) });
    expect(h.emulator.getMessage(789)?.text).toBe('Build #41: [B]green[/B]');
  });

  it('lets ten concurrent edits of one portal share calls: every caller hears 200 and Bitrix24 receives fewer requests than edits', async () => {
    const ids = Array.from({ length: 10 }, (_, i) =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: `m${i}` }),
    );
    h.emulator.clearCalls();
    const results = await Promise.all(
      ids.map((id) => invoke(update({ message: `done ${id}` }, { messageId: id }))),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(ids.map((id) => h.emulator.getMessage(id)?.text)).toEqual(ids.map((id) => `done ${id}`));
    const requests = h.emulator.calls.filter((c) => !c.viaBatch);
    expect(requests.length).toBeLessThan(10);
  });

  it('accepts both documented success shapes of Bitrix24', async () => {
    h.emulator.setSuccessShape('flat');
    expect((await invoke(update({ message: 'flat' }))).status).toBe(200);
    h.emulator.setSuccessShape('nested');
    expect((await invoke(update({ message: 'nested' }))).status).toBe(200);
    expect(h.emulator.getMessage(789)?.history.slice(-2)).toEqual(['flat', 'nested']);
  });

  it('takes ids as digit strings and a .json suffix on the method, as Bitrix24 does', async () => {
    const event = httpApiEvent(
      { botId: '456', messageId: '789', fields: { message: 'strings' } },
      { headers: { 'x-b24-portal': 'acme' }, path: '/rest/imbot.v2.Chat.Message.update.json' },
    );
    expect((await invoke(event)).status).toBe(200);
    expect(h.emulator.getMessage(789)?.text).toBe('strings');
  });

  it('serves REST API (payload 1.0) events with headers in any case', async () => {
    const event = restApiEvent(
      { botId: 456, messageId: 789, fields: { message: 'v1' } },
      { 'X-B24-Portal': 'acme' },
    );
    expect((await invoke(event)).status).toBe(200);
    expect(h.emulator.getMessage(789)?.text).toBe('v1');
  });

  it('uses DEFAULT_PORTAL when the request names no portal', async () => {
    const event = httpApiEvent({ botId: 456, messageId: 789, fields: { message: 'default portal' } });
    expect((await invoke(event, depsFor({ config: { defaultPortal: 'acme' } }))).status).toBe(200);
    expect(h.emulator.getMessage(789)?.text).toBe('default portal');
  });

  it('sends the keyboard with BOT_ID beside BUTTONS and removes it with "N"', async () => {
    const buttons = [{ TEXT: 'Open', LINK: 'https://example.com' }];
    expect((await invoke(update({ keyboard: buttons }))).status).toBe(200);
    expect(h.emulator.getMessage(789)?.keyboard).toMatchObject({ BOT_ID: BOT.id, BUTTONS: buttons });
    expect((await invoke(update({ keyboard: 'N' }))).status).toBe(200);
    expect(h.emulator.getMessage(789)?.keyboard ?? null).toBeNull();
  });

  it('answers 200 without calling Bitrix24 again for an edit the message already shows', async () => {
    expect((await invoke(update({ message: 'Build #41: green' }))).status).toBe(200);
    h.emulator.clearCalls();
    expect(await invoke(update({ message: 'Build #41: green' }))).toMatchObject({
      status: 200,
      body: { result: true },
    });
    expect(h.emulator.calls).toEqual([]);
    expect(h.wakeups.sent).toEqual([]);
  });

  it('ignores a botToken in the request and never echoes it', async () => {
    const res = await invoke(update({ message: 'token ignored' }, { botToken: 'caller_s3cr3t_token' }));
    expect(res.status).toBe(200);
    expect(JSON.stringify(res)).not.toContain('caller_s3cr3t_token');
    expect(h.emulator.getMessage(789)?.text).toBe('token ignored');
  });
});

describe('refusing bad requests', () => {
  it.each([
    { field: 'botId', rule: 'botId is required', body: { messageId: 789, fields: { message: 'x' } } },
    {
      field: 'botId',
      rule: 'botId must be a positive integer',
      body: { botId: 0, messageId: 789, fields: { message: 'x' } },
    },
    {
      field: 'messageId',
      rule: 'messageId must be a positive integer',
      body: { botId: 456, messageId: 'abc', fields: { message: 'x' } },
    },
    {
      field: 'fields',
      rule: 'fields must contain at least one of',
      body: { botId: 456, messageId: 789, fields: {} },
    },
    {
      field: 'fields.text',
      rule: 'fields.text is not a known field',
      body: { botId: 456, messageId: 789, fields: { text: 'x' } },
    },
    {
      field: 'fields.message',
      rule: 'fields.message is 20,001 characters; the limit is 20,000',
      body: { botId: 456, messageId: 789, fields: { message: 'x'.repeat(20_001) } },
    },
    {
      field: 'fields.urlPreview',
      rule: 'must be "Y", "N", true or false',
      body: { botId: 456, messageId: 789, fields: { urlPreview: 'maybe' } },
    },
    {
      field: 'fields.keyboard',
      rule: 'or "N" to remove the keyboard',
      body: { botId: 456, messageId: 789, fields: { keyboard: 'Y' } },
    },
    {
      field: 'fields.attach',
      rule: 'the limit is 60,000',
      body: { botId: 456, messageId: 789, fields: { attach: [{ MESSAGE: 'x'.repeat(60_000) }] } },
    },
    {
      field: 'dialogId',
      rule: 'is not a known field',
      body: { botId: 456, messageId: 789, dialogId: 'chat1', fields: { message: 'x' } },
    },
    {
      // The Bitrix24 documentation's OAuth form: the credentials are this service's, never the caller's.
      field: 'auth',
      rule: 'this service holds the portal’s credentials',
      body: { botId: 456, messageId: 789, fields: { message: 'x' }, auth: 'an_access_token' },
    },
  ])('answers 400 naming $field ($rule)', async ({ field, body, rule }) => {
    const res = await invoke(httpApiEvent(body, { headers: { 'x-b24-portal': 'acme' } }));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('INVALID_REQUEST_BODY');
    expect(res.body.error_description).toContain(field);
    expect(res.body.error_description).toContain(rule);
    expect(h.emulator.calls).toHaveLength(0);
  });

  it('answers 400 MALFORMED_JSON for a body that is not JSON', async () => {
    const res = await invoke(
      httpApiEvent(null, { headers: { 'x-b24-portal': 'acme' }, rawBody: '{"botId": 4' }),
    );
    expect(res).toMatchObject({ status: 400, body: { error: 'MALFORMED_JSON' } });
  });

  it('answers 415 for a body that is not declared as JSON', async () => {
    const res = await invoke(
      httpApiEvent({ botId: 456 }, { headers: { 'x-b24-portal': 'acme', 'content-type': 'text/plain' } }),
    );
    expect(res).toMatchObject({ status: 415, body: { error: 'UNSUPPORTED_MEDIA_TYPE' } });
  });

  it('answers 405 for another HTTP method and 404 for another path', async () => {
    expect((await invoke(httpApiEvent({}, { method: 'GET' }))).status).toBe(405);
    const other = await invoke(httpApiEvent({}, { path: '/rest/imbot.v2.Chat.Message.delete' }));
    expect(other).toMatchObject({ status: 404, body: { error: 'ERROR_METHOD_NOT_FOUND' } });
  });

  it('answers 400 PORTAL_REQUIRED when neither the header nor DEFAULT_PORTAL names a portal', async () => {
    const res = await invoke(httpApiEvent({ botId: 456, messageId: 789, fields: { message: 'x' } }));
    expect(res).toMatchObject({ status: 400, body: { error: 'PORTAL_REQUIRED' } });
  });

  it('answers 400 INVALID_PORTAL for a portal key that breaks the pattern', async () => {
    const event = httpApiEvent(
      { botId: 456, messageId: 789, fields: { message: 'x' } },
      { headers: { 'x-b24-portal': 'Acme/../x' } },
    );
    expect(await invoke(event)).toMatchObject({ status: 400, body: { error: 'INVALID_PORTAL' } });
  });

  it('answers 404 PORTAL_NOT_FOUND for a portal without a secret', async () => {
    const event = httpApiEvent(
      { botId: 456, messageId: 789, fields: { message: 'x' } },
      { headers: { 'x-b24-portal': 'nowhere' } },
    );
    expect(await invoke(event)).toMatchObject({ status: 404, body: { error: 'PORTAL_NOT_FOUND' } });
  });

  it('answers 404 BOT_NOT_FOUND without calling Bitrix24 for a bot the secret does not list', async () => {
    const event = httpApiEvent(
      { botId: 999, messageId: 789, fields: { message: 'x' } },
      { headers: { 'x-b24-portal': 'acme' } },
    );
    expect(await invoke(event)).toMatchObject({ status: 404, body: { error: 'BOT_NOT_FOUND' } });
    expect(h.emulator.calls).toHaveLength(0);
  });
});

describe('one Bitrix24 portal, one secret', () => {
  it('refuses a second secret naming a portal another secret serves, naming both, and applies nothing through it', async () => {
    // `twin` names the same Bitrix24 portal (the emulator's host) as `acme`.
    h.secretsManager.setSecret(`${PREFIX}twin`, webhookSecret(h.emulator.url));
    const guarded = new PortalGateway({
      store: h.store,
      timeoutMs: 1_000,
      allowHttp: true,
      hostClaims: () => ledger.hosts,
    });
    const through = (portal: string, text: string) =>
      invoke(
        httpApiEvent(
          { botId: BOT.id, messageId: 789, fields: { message: text } },
          { headers: { 'x-b24-portal': portal } },
        ),
        depsFor({ gateway: guarded }, { gateway: guarded }),
      );
    expect((await through('acme', 'newer, via acme')).status).toBe(200);
    const refused = await through('twin', 'older, via twin');
    expect(refused).toMatchObject({ status: 502, body: { error: 'SECRET_INVALID' } });
    expect(String(refused.body.error_description)).toContain(`Secret "${PREFIX}twin" is invalid: portalUrl`);
    expect(String(refused.body.error_description)).toContain('portal "acme"');
    expect(h.emulator.getMessage(789)?.text).toBe('newer, via acme');
  });
});

describe('a desired state that would delete the message', () => {
  it('is not sent when an empty text with an attach is followed by the attach’s removal: 400, and the message stays', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    const first = await invoke(
      update({ message: '', attach: [{ MESSAGE: 'only the attach' }] }, { messageId: id }),
    );
    expect(first.status).toBe(200);
    const removal = await invoke(update({ attach: 'N' }, { messageId: id }));
    expect(removal).toMatchObject({ status: 400, body: { error: 'MESSAGE_WOULD_BE_EMPTY' } });
    // Only the first edit reached Bitrix24: the message is there, with its attach.
    expect(h.emulator.getMessage(id)).toMatchObject({ editCount: 1, attach: expect.anything() });
  });
});

describe('passing on what Bitrix24 refuses', () => {
  it('answers 403 ACCESS_DENIED for a message the bot did not write', async () => {
    h.emulator.addMessage({ id: 5001, authorId: 1, chatId: 12, text: 'a human wrote this' });
    const event = httpApiEvent(
      { botId: 456, messageId: 5001, fields: { message: 'x' } },
      { headers: { 'x-b24-portal': 'acme' } },
    );
    expect(await invoke(event)).toMatchObject({ status: 403, body: { error: 'ACCESS_DENIED' } });
    expect(h.emulator.getMessage(5001)?.text).toBe('a human wrote this');
  });

  it('records a refused edit as failed with its reason, and queues nothing since the caller heard it', async () => {
    h.emulator.addMessage({ id: 5002, authorId: 1, chatId: 12, text: 'a human wrote this too' });
    const event = httpApiEvent(
      { botId: 456, messageId: 5002, fields: { message: 'x' } },
      { headers: { 'x-b24-portal': 'acme' } },
    );
    expect((await invoke(event)).status).toBe(403);
    const state = await ledger.get({ portal: 'acme', botId: 456, messageId: 5002 });
    expect(state.failedVersion).toBe(state.version);
    expect(state.lastError?.code).toBe('ACCESS_DENIED');
    // Nothing is left to retry: no wake-up, nothing on the failed-edits queue.
    expect(h.wakeups.sent).toEqual([]);
    expect(await sweepLater(h, ledger)).toEqual({ overdue: 0, woken: 0 });
    expect(await failedEdits(h)).toEqual([]);
  });

  it('answers 403 BOT_OWNERSHIP_ERROR when the secret holds a token Bitrix24 does not accept', async () => {
    h.secretsManager.setSecret(
      `${PREFIX}wrongtoken`,
      webhookSecret(h.emulator.url, { bots: { [BOT.id]: { botToken: 'stale_s3cr3t_token' } } }),
    );
    const event = httpApiEvent(
      { botId: 456, messageId: 789, fields: { message: 'x' } },
      { headers: { 'x-b24-portal': 'wrongtoken' } },
    );
    expect(await invoke(event)).toMatchObject({ status: 403, body: { error: 'BOT_OWNERSHIP_ERROR' } });
  });

  it('answers 502 with the upstream code when our webhook credentials are refused', async () => {
    h.secretsManager.setSecret(
      `${PREFIX}badhook`,
      webhookSecret(h.emulator.url, { auth: { type: 'webhook', userId: 7, code: 'revoked_s3cr3t_code' } }),
    );
    const event = httpApiEvent(
      { botId: 456, messageId: 789, fields: { message: 'x' } },
      { headers: { 'x-b24-portal': 'badhook' } },
    );
    expect(await invoke(event)).toMatchObject({ status: 502, body: { error: 'INVALID_CREDENTIALS' } });
  });

  it('names the method and the portal host in the 502 for refused webhook credentials', async () => {
    h.secretsManager.setSecret(
      `${PREFIX}badhook2`,
      webhookSecret(h.emulator.url, { auth: { type: 'webhook', userId: 7, code: 'revoked_s3cr3t_code' } }),
    );
    const event = httpApiEvent(
      { botId: 456, messageId: 789, fields: { message: 'x' } },
      { headers: { 'x-b24-portal': 'badhook2' } },
    );
    const res = await invoke(event);
    expect(res.status).toBe(502);
    expect(String(res.body.error_description)).toContain('127.0.0.1');
  });

  it('answers 503 with Retry-After when Secrets Manager cannot be reached', async () => {
    const dead = new SecretsManagerClient(unreachable);
    const store = createSecretStore({ client: dead, prefix: PREFIX, ttlSeconds: 0 });
    const gateway = new PortalGateway({ store, timeoutMs: 1_000, allowHttp: true });
    const res = await invoke(update({ message: 'x' }), depsFor({ gateway }));
    expect(res).toMatchObject({ status: 503, body: { error: 'SECRETS_UNAVAILABLE' } });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    dead.destroy();
  });
});

describe('when the ledger cannot be reached', () => {
  it('answers 503 LEDGER_UNAVAILABLE with Retry-After and leaves the message untouched', async () => {
    const dead = new DynamoDBClient(unreachable);
    const down = new Ledger({ tableName: 'ledger-unreachable', client: dead });
    const res = await invoke(update({ message: 'not recorded' }), updateDeps(h, down));
    expect(res).toMatchObject({ status: 503, body: { error: 'LEDGER_UNAVAILABLE' } });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(h.emulator.calls).toEqual([]);
    expect(h.emulator.getMessage(789)?.history).not.toContain('not recorded');
    expect(h.wakeups.sent).toEqual([]);
    dead.destroy();
  });
});

describe('deferring to the portal’s wake-up', () => {
  it.each([
    ['query-limit', 'QUERY_LIMIT_EXCEEDED'],
    ['operating-limit', 'OPERATION_TIME_LIMIT'],
    ['overload', 'OVERLOAD_LIMIT'],
    ['server-error', 'INTERNAL_SERVER_ERROR'],
    ['html', 'INVALID_RESPONSE'],
    ['reset', 'NETWORK_ERROR'],
  ] as const)(
    'defers the edit with 202 when Bitrix24 answers %s, keeps it in the ledger and wakes its portal at its retry time',
    async (kind, reason) => {
      h.emulator.inject({ kind });
      const before = Date.now();
      const res = await invoke(update({ message: `deferred after ${kind}`, urlPreview: false }));
      expect(res).toMatchObject({ status: 202, body: { result: true, deferred: true, reason } });
      const state = await ledger.get(key789);
      expect(state.desired.message?.value).toBe(`deferred after ${kind}`);
      expect(state.desired.urlPreview?.value).toBe('N');
      expect(state.pendingEditIds).toEqual([res.body.editId]);
      // One wake-up, at the message's retry time.
      expect(h.wakeups.sent).toHaveLength(1);
      expect(h.wakeups.last('acme')?.at).toBeGreaterThan(before);
      expect(await wakeLater(h, ledger, 60 * 60_000)).toMatchObject({ applied: 1 });
      expect(h.emulator.getMessage(789)?.text).toBe(`deferred after ${kind}`);
    },
  );

  it('defers the edit when Bitrix24 does not answer within the timeout', async () => {
    h.emulator.inject({ kind: 'slow', delayMs: 1_500 });
    const res = await invoke(update({ message: 'slow portal' }));
    expect(res).toMatchObject({ status: 202, body: { deferred: true, reason: 'TIMEOUT' } });
    expect(h.wakeups.last('acme')).toBeDefined();
    // The call lands after its timeout (before the next test edits message 789).
    await waitFor(() => h.emulator.getMessage(789)?.text === 'slow portal', 10_000, 'the late landing');
  });

  it('defers without calling Bitrix24 when the caller prefers respond-async, and the wake-up applies it', async () => {
    const event = update({ message: 'later please' });
    event.headers.prefer = 'respond-async, wait=0';
    const res = await invoke(event);
    expect(res).toMatchObject({ status: 202, body: { deferred: true, reason: 'requested' } });
    expect(h.emulator.calls).toHaveLength(0);
    expect((await ledger.get(key789)).desired.message?.value).toBe('later please');
    expect(await wakeLater(h, ledger, 0)).toMatchObject({ portals: 1, applied: 1, calls: 1 });
    expect(h.emulator.getMessage(789)?.text).toBe('later please');
  });

  it('sends one wake-up for many deferred edits of a portal', async () => {
    const ids = Array.from({ length: 5 }, (_, i) =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: `m${i}` }),
    );
    for (const id of ids) {
      const event = update({ message: `later ${id}` }, { messageId: id });
      event.headers.prefer = 'respond-async';
      expect((await invoke(event)).status).toBe(202);
    }
    expect(h.wakeups.sent.map((w) => w.portal)).toEqual(['acme']);
    expect(await wakeLater(h, ledger, 0)).toMatchObject({ portals: 1, applied: 5, calls: 1 });
  });

  it('defers with 202 MESSAGE_CADENCE an edit that comes inside the message cadence, and wakes the portal when the cadence allows', async () => {
    const paced = depsFor({}, { options: { messageMinIntervalMs: 60_000 } });
    expect((await invoke(update({ message: 'first' }), paced)).status).toBe(200);
    const appliedAt = Date.now();
    const res = await invoke(update({ message: 'second, too soon' }), paced);
    expect(res).toMatchObject({ status: 202, body: { deferred: true, reason: 'MESSAGE_CADENCE' } });
    expect(h.emulator.getMessage(789)?.text).toBe('first');
    expect(h.wakeups.last('acme')?.at).toBeGreaterThanOrEqual(appliedAt + 59_000);
    await wakeLater(h, ledger, 2 * 60_000);
    expect(h.emulator.getMessage(789)?.text).toBe('second, too soon');
  });

  /**
   * Grows the portal item to DynamoDB's 400 KB item limit: a merge (the message item) is written, the
   * portal item's write after it is refused. Resolves with the undo.
   */
  async function fillPortalItem(): Promise<() => Promise<void>> {
    const pk = { S: 'portal#acme' };
    const fill = (chars: number) =>
      h.dynamo
        .send(
          new UpdateItemCommand({
            TableName: ledger.tableName,
            Key: { pk },
            UpdateExpression: 'SET filler = :filler',
            ExpressionAttributeValues: { ':filler': { S: 'x'.repeat(chars) } },
          }),
        )
        .then(
          () => true,
          () => false,
        );
    let [fits, tooBig] = [0, 409_600];
    while (tooBig - fits > 1) {
      const mid = Math.floor((fits + tooBig) / 2);
      if (await fill(mid)) fits = mid;
      else tooBig = mid;
    }
    expect(await fill(fits)).toBe(true);
    return async () => {
      await h.dynamo.send(
        new UpdateItemCommand({
          TableName: ledger.tableName,
          Key: { pk },
          UpdateExpression: 'REMOVE filler',
        }),
      );
    };
  }

  it('answers 202 RECORDED, never 503, when the ledger fails after the merge committed, and the edit is applied', async () => {
    const paced = depsFor({}, { options: { messageMinIntervalMs: 60_000 } });
    expect((await invoke(update({ message: 'first' }), paced)).status).toBe(200);
    h.wakeups.clear();
    const unfill = await fillPortalItem();
    const recorded = await invoke(update({ message: 'second, too soon' }), paced);
    expect(recorded).toMatchObject({ status: 202, body: { deferred: true, reason: 'RECORDED' } });
    // Woken straight through the portal work queue, at the message's due time.
    expect(h.wakeups.sent.map((w) => w.portal)).toEqual(['acme']);
    await unfill();
    await wakeLater(h, ledger, 2 * 60_000);
    expect(h.emulator.getMessage(789)?.text).toBe('second, too soon');
  });

  it("answers 503 EDIT_RECORDED_UNSCHEDULED when the portal work queue fails too, and the caller's retry makes sure of the wake-up", async () => {
    const down = { send: async () => ['acme'] };
    const paced = depsFor({}, { options: { messageMinIntervalMs: 60_000 } });
    expect((await invoke(update({ message: 'first' }), paced)).status).toBe(200);
    h.wakeups.clear();
    const unfill = await fillPortalItem();
    const unscheduled = await invoke(
      update({ message: 'second, too soon' }),
      depsFor({}, { options: { messageMinIntervalMs: 60_000 }, wakeups: down }),
    );
    expect(unscheduled).toMatchObject({ status: 503, body: { error: 'EDIT_RECORDED_UNSCHEDULED' } });
    expect(String(unscheduled.body.error_description)).toContain('send the same edit again');
    await unfill();
    // The retry changes nothing in the ledger, yet makes sure of the wake-up that applies it.
    const retry = await invoke(update({ message: 'second, too soon' }), paced);
    expect(retry).toMatchObject({ status: 202, body: { reason: 'MESSAGE_CADENCE' } });
    await wakeLater(h, ledger, 2 * 60_000);
    expect(h.emulator.getMessage(789)?.text).toBe('second, too soon');
  });

  it.each([
    ['refuses', { send: async (wakeups: readonly { portal: string }[]) => wakeups.map((w) => w.portal) }],
    [
      'cannot be reached',
      {
        send: async () => {
          throw new Error('unreachable');
        },
      },
    ],
  ])(
    'still answers 202 when the portal work queue %s its wake-up, and the sweep sends it once overdue',
    async (_, sender) => {
      const event = update({ message: 'queue down' });
      event.headers.prefer = 'respond-async';
      const lost = depsFor({}, { wakeups: sender });
      expect(await invoke(event, lost)).toMatchObject({
        status: 202,
        body: { deferred: true, reason: 'requested' },
      });
      expect(h.wakeups.sent).toEqual([]);
      // Not overdue yet: the sweep leaves it; past the grace, it sends the wake-up, which applies the edit.
      expect(await sweepLater(h, ledger, 0)).toEqual({ overdue: 0, woken: 0 });
      expect(await sweepLater(h, ledger, 2 * 60_000)).toEqual({ overdue: 1, woken: 1 });
      expect(await wakeLater(h, ledger, 2 * 60_000)).toMatchObject({ applied: 1 });
      expect(h.emulator.getMessage(789)?.text).toBe('queue down');
    },
  );
});

describe('credentials that change', () => {
  it('refetches a rotated secret once and repeats the call with the new bot token', async () => {
    h.emulator.registerBot({ id: 457, botToken: 'old_s3cr3t_457', owner: { webhookUserId: 7 } });
    h.emulator.addMessage({ id: 7001, botId: 457, chatId: 12, text: 'before rotation' });
    const name = `${PREFIX}rotating`;
    h.secretsManager.setSecret(
      name,
      webhookSecret(h.emulator.url, { bots: { 457: { botToken: 'old_s3cr3t_457' } } }),
    );
    const event = (text: string) =>
      httpApiEvent(
        { botId: 457, messageId: 7001, fields: { message: text } },
        { headers: { 'x-b24-portal': 'rotating' } },
      );
    expect((await invoke(event('with the old token'))).status).toBe(200);
    // The bot's token is rotated on the portal and in the secret; this container still caches the old one.
    h.emulator.registerBot({ id: 457, botToken: 'new_s3cr3t_457', owner: { webhookUserId: 7 } });
    h.secretsManager.setSecret(
      name,
      webhookSecret(h.emulator.url, { bots: { 457: { botToken: 'new_s3cr3t_457' } } }),
    );
    const before = h.secretsManager.getCount(name);
    const res = await invoke(event('with the new token'));
    expect(res.status).toBe(200);
    expect(h.emulator.getMessage(7001)?.text).toBe('with the new token');
    expect(h.secretsManager.getCount(name)).toBe(before + 1);
  });

  it('refreshes an expired OAuth token once, writes the new pair back, and applies the edit', async () => {
    h.emulator.registerBot({ id: 460, owner: { clientId: OAUTH_APP.clientId } });
    h.emulator.addMessage({ id: 8001, botId: 460, chatId: 12, text: 'oauth message' });
    const tokens = h.emulator.addOAuthApp(OAUTH_APP);
    const name = `${PREFIX}oauth-portal`;
    h.secretsManager.setSecret(
      name,
      oauthSecret(h.emulator.url, h.emulator.oauthUrl, tokens).replace('"456"', '"460"'),
    );
    h.emulator.expireAccessTokens();
    const res = await invoke(
      httpApiEvent(
        { botId: 460, messageId: 8001, fields: { message: 'after refresh' } },
        { headers: { 'x-b24-portal': 'oauth-portal' } },
      ),
    );
    expect(res.status).toBe(200);
    expect(h.emulator.getMessage(8001)?.text).toBe('after refresh');
    const stored = JSON.parse(h.secretsManager.getSecret(name) ?? '{}');
    expect(stored.auth.accessToken).not.toBe(tokens.accessToken);
    expect(stored.auth.refreshToken).not.toBe(tokens.refreshToken);
    expect(h.emulator.calls.filter((c) => c.method === 'oauth/token')).toHaveLength(1);
  });

  it('makes exactly one refresh for ten concurrent calls with an expired token', async () => {
    h.emulator.registerBot({ id: 461, owner: { clientId: 'app.concurrent' } });
    const ids = Array.from({ length: 10 }, (_, i) =>
      h.emulator.addMessage({ id: 8100 + i, botId: 461, chatId: 12, text: `m${i}` }),
    );
    const tokens = h.emulator.addOAuthApp({
      clientId: 'app.concurrent',
      clientSecret: OAUTH_APP.clientSecret,
    });
    const secret = JSON.parse(oauthSecret(h.emulator.url, h.emulator.oauthUrl, tokens));
    secret.auth.clientId = 'app.concurrent';
    secret.bots = { 461: {} };
    h.secretsManager.setSecret(`${PREFIX}oauth-many`, JSON.stringify(secret));
    const d = depsFor();
    await d.gateway.secret('oauth-many');
    h.emulator.expireAccessTokens();
    h.emulator.clearCalls();
    const results = await Promise.all(
      ids.map((id) =>
        invoke(
          httpApiEvent(
            { botId: 461, messageId: id, fields: { message: `done ${id}` } },
            { headers: { 'x-b24-portal': 'oauth-many' } },
          ),
          d,
        ),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(h.emulator.calls.filter((c) => c.method === 'oauth/token')).toHaveLength(1);
    expect(ids.map((id) => h.emulator.getMessage(id)?.text)).toEqual(ids.map((id) => `done ${id}`));
  });

  it('answers 502 invalid_grant with a clear instruction when the refresh token is no longer valid', async () => {
    h.emulator.registerBot({ id: 462, owner: { clientId: 'app.revoked' } });
    h.emulator.addMessage({ id: 8201, botId: 462, chatId: 12, text: 'x' });
    const tokens = h.emulator.addOAuthApp({ clientId: 'app.revoked', clientSecret: OAUTH_APP.clientSecret });
    const secret = JSON.parse(oauthSecret(h.emulator.url, h.emulator.oauthUrl, tokens));
    secret.auth.clientId = 'app.revoked';
    secret.bots = { 462: {} };
    h.secretsManager.setSecret(`${PREFIX}oauth-revoked`, JSON.stringify(secret));
    h.emulator.expireAccessTokens();
    h.emulator.revokeRefreshTokens();
    const res = await invoke(
      httpApiEvent(
        { botId: 462, messageId: 8201, fields: { message: 'y' } },
        { headers: { 'x-b24-portal': 'oauth-revoked' } },
      ),
    );
    expect(res).toMatchObject({ status: 502, body: { error: 'invalid_grant' } });
    expect(String(res.body.error_description)).toContain('re-authorise the app');
  });
});
