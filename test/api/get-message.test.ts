import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { UpdateMessageDeps } from '../../lib/api/update-message.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { httpApiEvent } from '../support/events.ts';
import { AWS, BOT, type Harness, startHarness } from '../support/harness.ts';
import {
  freshLedger,
  getMessageAt,
  postUpdate,
  purgeQueues,
  update,
  updateDeps,
  wakeLater,
} from './helpers.ts';

let h: Harness;
let ledger: Ledger;
let deps: UpdateMessageDeps;

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
  deps = updateDeps(h, ledger);
});
afterEach(async () => {
  await purgeQueues(h);
});

const look = (path = `/messages/acme/${BOT.id}/789`) => getMessageAt(path, ledger);
const time = (value: unknown) => Date.parse(String(value));

function respondAsync(fields: Record<string, unknown>) {
  const event = update(fields);
  event.headers.prefer = 'respond-async';
  return event;
}

describe('GET /messages/{portal}/{botId}/{messageId}', () => {
  it('shows an applied edit: its fields, when it was accepted and applied, and nothing pending', async () => {
    const sent = Date.now();
    const res = await postUpdate(update({ message: 'Build #41: green', urlPreview: false }), deps);
    expect(res.status).toBe(200);
    const seen = await look();
    expect(seen.status).toBe(200);
    expect(seen.body).toMatchObject({
      portal: 'acme',
      botId: BOT.id,
      messageId: 789,
      status: 'applied',
      applied: true,
      desired: {
        message: { value: 'Build #41: green', editId: expect.any(String) },
        urlPreview: { value: 'N' },
      },
      pendingEditIds: [],
    });
    const accepted = time((seen.body.desired as { message: { acceptedAt: string } }).message.acceptedAt);
    expect(accepted).toBeGreaterThanOrEqual(sent);
    expect(time(seen.body.appliedAt)).toBeGreaterThanOrEqual(accepted);
    expect(seen.body).not.toHaveProperty('lastError');
    expect(seen.body).not.toHaveProperty('nextRetryAt');
  });

  it('shows a deferred edit as pending, with the reason Bitrix24 gave and when it is tried next', async () => {
    h.emulator.inject({ kind: 'query-limit' });
    const sent = Date.now();
    const res = await postUpdate(update({ message: 'Build #42: running' }), deps);
    expect(res).toMatchObject({ status: 202, body: { reason: 'QUERY_LIMIT_EXCEEDED' } });
    const seen = await look();
    expect(seen.body).toMatchObject({
      status: 'pending',
      applied: false,
      desired: { message: { value: 'Build #42: running', editId: res.body.editId } },
      pendingEditIds: [res.body.editId],
      lastError: { code: 'QUERY_LIMIT_EXCEEDED', description: expect.any(String) },
    });
    expect(time((seen.body.lastError as { at: string }).at)).toBeGreaterThanOrEqual(sent);
    // A rate-limited message waits at least a second before it is tried again.
    expect(time(seen.body.nextRetryAt)).toBeGreaterThanOrEqual(sent + 1_000);

    await wakeLater(h, ledger);
    expect(h.emulator.getMessage(789)?.text).toBe('Build #42: running');
    expect((await look()).body).toMatchObject({ status: 'applied', applied: true, pendingEditIds: [] });
  });

  it('lists every edit still pending, oldest first, and desires the latest', async () => {
    const first = await postUpdate(respondAsync({ message: 'first' }), deps);
    const second = await postUpdate(respondAsync({ message: 'second' }), deps);
    expect((await look()).body).toMatchObject({
      status: 'pending',
      desired: { message: { value: 'second', editId: second.body.editId } },
      pendingEditIds: [first.body.editId, second.body.editId],
    });
  });

  it('gives an edit waiting only for the drain no retry time before it was accepted', async () => {
    const sent = Date.now();
    expect((await postUpdate(respondAsync({ message: 'later' }), deps)).status).toBe(202);
    const { nextRetryAt } = (await look()).body;
    expect(nextRetryAt === undefined || time(nextRetryAt) >= sent).toBe(true);
  });

  it('shows a failed edit with the code and description Bitrix24 refused it with', async () => {
    h.emulator.addMessage({ id: 5001, authorId: 1, chatId: 12, text: 'a human wrote this' });
    const event = httpApiEvent(
      { botId: BOT.id, messageId: 5001, fields: { message: 'not yours' } },
      { headers: { 'x-b24-portal': 'acme' } },
    );
    const refused = await postUpdate(event, deps);
    expect(refused).toMatchObject({ status: 403, body: { error: 'ACCESS_DENIED' } });
    const seen = await look(`/messages/acme/${BOT.id}/5001`);
    expect(seen.body).toMatchObject({
      status: 'failed',
      applied: false,
      desired: { message: { value: 'not yours' } },
      lastError: { code: 'ACCESS_DENIED', description: refused.body.error_description },
    });
    expect(seen.body).not.toHaveProperty('nextRetryAt');
  });

  it('answers 404 MESSAGE_NOT_FOUND for a message no edit was ever recorded for', async () => {
    expect(await look(`/messages/acme/${BOT.id}/424242`)).toMatchObject({
      status: 404,
      body: { error: 'MESSAGE_NOT_FOUND' },
    });
  });

  it.each([
    { field: 'portal', path: `/messages/Acme!/${BOT.id}/789`, code: 'INVALID_PORTAL' },
    { field: 'portal', path: `/messages/acme%2F..%2Fx/${BOT.id}/789`, code: 'INVALID_PORTAL' },
    { field: 'botId', path: '/messages/acme/abc/789', code: 'INVALID_REQUEST' },
    { field: 'messageId', path: `/messages/acme/${BOT.id}/0`, code: 'INVALID_REQUEST' },
    { field: 'portal', path: `/messages/acme%E0%A4%A/${BOT.id}/789`, code: 'INVALID_PORTAL' },
    { field: 'portal', path: `/messages/%/${BOT.id}/789`, code: 'INVALID_PORTAL' },
    // Past 2^53 an id rounds to another message's: refused, as the update route refuses it.
    { field: 'messageId', path: `/messages/acme/${BOT.id}/9007199254740993`, code: 'INVALID_REQUEST' },
    { field: 'botId', path: '/messages/acme/9999999999999999/789', code: 'INVALID_REQUEST' },
  ])('answers 400 $code naming $field for $path', async ({ field, path, code }) => {
    const res = await look(path);
    expect(res).toMatchObject({ status: 400, body: { error: code } });
    expect(String(res.body.error_description)).toMatch(new RegExp(`^${field} must`));
  });

  it('answers 405 for another method and 404 for a path that names no message', async () => {
    expect(await getMessageAt(`/messages/acme/${BOT.id}/789`, ledger, undefined, 'POST')).toMatchObject({
      status: 405,
    });
    expect(await look('/messages/acme/456')).toMatchObject({
      status: 404,
      body: { error: 'ERROR_METHOD_NOT_FOUND' },
    });
  });

  it('answers 503 LEDGER_UNAVAILABLE with Retry-After when DynamoDB cannot be reached', async () => {
    const dead = new DynamoDBClient({ ...AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    const res = await getMessageAt(
      `/messages/acme/${BOT.id}/789`,
      new Ledger({ tableName: 'ledger-unreachable', client: dead }),
    );
    expect(res).toMatchObject({ status: 503, body: { error: 'LEDGER_UNAVAILABLE' } });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    dead.destroy();
  });
});
