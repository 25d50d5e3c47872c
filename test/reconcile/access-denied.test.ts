import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { UpdateMessageDeps } from '../../lib/api/update-message.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { forgetRestChecks } from '../../lib/reconcile/access-denied.ts';
import { freshLedger, postUpdate, purgeQueues, update, updateDeps, wakeLater } from '../api/helpers.ts';
import { BOT, type Harness, startHarness } from '../support/harness.ts';

// ACCESS_DENIED means "not the bot's message" or "no REST access for the portal". These tests give
// Bitrix24's refusal a wording the error table does not know, so only the structure of the answer
// and the follow-up server.time can tell the two apart.

let h: Harness;
let ledger: Ledger;
let deps: UpdateMessageDeps;
const OTHER_WORDING = 'Zugriff verweigert';
const denied = (method?: string) => ({
  kind: 'error' as const,
  code: 'ACCESS_DENIED',
  status: 403,
  description: OTHER_WORDING,
  ...(method ? { method } : {}),
});

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
});
afterAll(async () => {
  await h.close();
});
beforeEach(async () => {
  h.emulator.reset();
  h.wakeups.clear();
  forgetRestChecks();
  ledger = await freshLedger(h);
  deps = updateDeps(h, ledger);
  h.emulator.clearCalls();
});
afterEach(async () => {
  await purgeQueues(h);
});

const methods = () => h.emulator.calls.map((c) => c.method);

describe('an ACCESS_DENIED whose wording is not known', () => {
  it('is the portal’s when server.time is refused too: the caller hears 502 naming the portal, not the message', async () => {
    h.emulator.inject(denied(), 2);
    const answer = await postUpdate(update({ message: 'x' }), deps);
    expect(answer.status).toBe(502);
    expect(answer.body).toMatchObject({ error: 'ACCESS_DENIED' });
    expect(answer.body.error_description).toMatch(/whole portal.*not the message/);
    expect(methods()).toContain('server.time');
  });

  it('is the message’s when server.time is served: the caller hears 403 and the edit is final', async () => {
    h.emulator.inject(denied('imbot.v2.Chat.Message.update'));
    const answer = await postUpdate(update({ message: 'x' }), deps);
    expect(answer).toMatchObject({ status: 403, body: { error: 'ACCESS_DENIED' } });
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: 789 });
    expect(state.failedVersion).toBe(state.version);
  });

  it('is tried again, naming both meanings, when the check itself fails', async () => {
    h.emulator.inject(denied('imbot.v2.Chat.Message.update'));
    h.emulator.inject({ kind: 'server-error', method: 'server.time' });
    const answer = await postUpdate(update({ message: 'after the check failed' }), deps);
    expect(answer).toMatchObject({ status: 202, body: { reason: 'ACCESS_DENIED' } });
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: 789 });
    expect(state.failedVersion).toBeUndefined();
    expect(state.lastError?.description).toMatch(
      /either the message is not the bot’s or the portal lost REST access/,
    );
    await wakeLater(h, ledger);
    expect(h.emulator.getMessage(789)?.text).toBe('after the check failed');
  });

  it('is the portal’s when a whole batch call is refused, without a check', async () => {
    const other = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'second' });
    for (const messageId of [789, other]) {
      const event = update({ message: `queued ${messageId}` }, { messageId });
      event.headers.prefer = 'respond-async';
      expect((await postUpdate(event, deps)).status).toBe(202);
    }
    h.emulator.inject(denied('batch'));
    await wakeLater(h, ledger);
    for (const messageId of [789, other]) {
      const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId });
      expect(state.lastError?.description).toMatch(/batch call itself was refused.*not the message/);
    }
    expect(methods()).not.toContain('server.time');
  });

  it('is each message’s when other commands of the same batch ran', async () => {
    const theirs = h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'a human wrote this' });
    for (const messageId of [789, theirs]) {
      const event = update({ message: `queued ${messageId}` }, { messageId });
      event.headers.prefer = 'respond-async';
      await postUpdate(event, deps);
    }
    await wakeLater(h, ledger);
    expect(h.emulator.getMessage(789)?.text).toBe('queued 789');
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: theirs });
    expect(state).toMatchObject({ lastError: { code: 'ACCESS_DENIED' } });
    expect(state.failedVersion).toBe(state.version);
    expect(methods()).not.toContain('server.time');
  });
});
