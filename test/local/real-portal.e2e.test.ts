import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bitrix24Emulator, startBitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { SECRET_MARKER } from '../support/harness.ts';
import { eventually, freePorts, npmStart, readmeCurl, type StartedProcess } from './support/npm-start.ts';

// Stands in for a customer's portal: its own webhook and bot token, reached only through the
// B24_* variables, never through the stack's emulator.
const PORTAL = {
  userId: 7,
  code: `whk_${SECRET_MARKER}_portal`,
  botId: 456,
  botToken: `bot_${SECRET_MARKER}_portal`,
};

describe('npm start against a real portal', () => {
  let portal: Bitrix24Emulator;
  let stack: StartedProcess;
  let ports: Record<string, string>;

  beforeAll(async () => {
    portal = await startBitrix24Emulator({ limits: null });
    portal.addWebhook({ userId: PORTAL.userId, code: PORTAL.code });
    portal.registerBot({
      id: PORTAL.botId,
      botToken: PORTAL.botToken,
      owner: { webhookUserId: PORTAL.userId },
    });
    portal.addMessage({ id: 789, botId: PORTAL.botId, chatId: 1, text: 'Before' });
    ports = await freePorts();
    stack = npmStart({
      ...ports,
      B24_PORTAL_URL: portal.url,
      B24_WEBHOOK_USER_ID: String(PORTAL.userId),
      B24_WEBHOOK_CODE: PORTAL.code,
      B24_BOT_ID: String(PORTAL.botId),
      B24_BOT_TOKEN: PORTAL.botToken,
      // No cadence: the busy-portal edit follows the first one within a second. No linger: the API
      // calls the portal itself however soon after its last call, and so meets the fault.
      MESSAGE_MIN_INTERVAL_MS: '0',
      BATCH_LINGER_MS: '0',
    });
    await stack.waitFor(/^Ready in \d+ ms/m, 20_000);
  }, 30_000);

  afterAll(async () => {
    await stack?.kill();
    await portal?.close();
  });

  it("applies the README's curl to the portal named by B24_PORTAL_URL, with its own credentials", async () => {
    const response = await readmeCurl(`http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`);
    expect(response.status).toBe(200);
    expect(portal.getMessage(789)?.text).toBe('Updated text');
    expect(portal.calls.at(-1)).toMatchObject({ auth: 'webhook', method: 'imbot.v2.Chat.Message.update' });
  });

  it('defers through the local queue and converges on the portal when it is busy', async () => {
    portal.inject({ kind: 'query-limit' }, 1);
    const response = await fetch(`http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ botId: PORTAL.botId, messageId: 789, fields: { message: 'While busy' } }),
    });
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({ deferred: true, reason: 'QUERY_LIMIT_EXCEEDED' });
    const converged = await eventually(
      async () => portal.getMessage(789),
      (message) => message?.editCount === 2,
    );
    expect(converged?.text).toBe('While busy');
  });

  it('answers the fate of that edit from the local ledger, keyed by the portal named after the host', async () => {
    // The portal shows the edit a moment before the reconcile records it applied in the ledger.
    const fate = await eventually(
      async () => {
        const response = await fetch(`http://127.0.0.1:${ports.API_PORT}/messages/demo/${PORTAL.botId}/789`);
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      },
      (answer) => answer.body.status === 'applied',
    );
    expect(fate.status).toBe(200);
    expect(fate.body).toMatchObject({
      portal: 'demo',
      status: 'applied',
      desired: { message: { value: 'While busy' } },
    });
  });

  it('starts no emulator, says which portal it uses, and never prints the webhook code or bot token', () => {
    const output = stack.output();
    expect(output).toContain(`your portal ${new URL(portal.url).host}`);
    expect(output).not.toContain('emulator: portal');
    expect(output).toContain(`-d '{"botId":${PORTAL.botId},"messageId":<message id>,`);
    expect(output).toContain(`<message id>: a message bot ${PORTAL.botId} sent`);
    expect(output).not.toContain(SECRET_MARKER);
  });
});
