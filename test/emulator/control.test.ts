import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { CallRecord, EmulatedMessage } from '../../local/bitrix24-emulator/index.ts';
import { type DemoSetup, postForm, postJson, send, startDemo, UPDATE } from './helpers.ts';

let setup: DemoSetup;

afterEach(async () => {
  await setup?.emu.close();
});

const control = (path: string, body?: unknown) =>
  body === undefined
    ? send(`${setup.emu.url}/_emulator/${path}`)
    : postJson(`${setup.emu.url}/_emulator/${path}`, body);

describe('control endpoints', () => {
  it('lists messages and returns one by id, or 404', async () => {
    setup = await startDemo();
    const list = await control('messages');
    expect((list.body as unknown as EmulatedMessage[]).map((m) => m.id)).toEqual([789, 790, 791, 800, 801]);
    const one = await control('messages/789');
    expect(one.body).toMatchObject({ id: 789, chatId: 12, botId: 456, text: 'Build #41: running…' });
    expect((await control('messages/5')).status).toBe(404);
  });

  it('lists the bots registered, without their tokens, and the chats made with their members', async () => {
    setup = await startDemo();
    await setup.asBot('imbot.v2.Chat.add', { fields: { title: 'Builds', userIds: [1] } });
    const bots = await control('bots');
    expect(bots.body).toEqual([{ id: 456, code: 'build_bot', type: 'bot', owner: { webhookUserId: 1 } }]);
    expect(bots.text).not.toContain(setup.demo.botToken);
    expect((await control('chats')).body).toEqual([
      {
        id: 13,
        dialogId: 'chat13',
        title: 'Builds',
        description: '',
        color: expect.stringMatching(/^#[0-9a-f]{6}$/),
        ownerId: 456,
        members: [1, 456],
      },
    ]);
  });

  it('lists the calls made so far', async () => {
    setup = await startDemo();
    await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'x' } });
    const calls = (await control('calls')).body as unknown as CallRecord[];
    expect(calls).toEqual([
      expect.objectContaining({ seq: 1, method: UPDATE, viaBatch: false, auth: 'webhook', httpStatus: 200 }),
    ]);
  });

  it('injects scripted faults a given number of times', async () => {
    setup = await startDemo();
    expect((await control('faults', { fault: { kind: 'overload' }, times: 2 })).status).toBe(200);
    const statuses = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await postJson(setup.webhook('imbot.v2.Revision.get'), {})).status);
    expect(statuses).toEqual([503, 503, 200]);
  });

  it('switches random faults on and off', async () => {
    setup = await startDemo();
    await control('faults', { random: { rate: 1, kinds: ['query-limit'] } });
    expect((await postJson(setup.webhook('imbot.v2.Revision.get'), {})).body.error).toBe(
      'QUERY_LIMIT_EXCEEDED',
    );
    await control('faults', { random: null });
    expect((await postJson(setup.webhook('imbot.v2.Revision.get'), {})).status).toBe(200);
  });

  it('rejects a fault of an unknown kind with 400, naming the kinds it knows', async () => {
    setup = await startDemo();
    const answer = await control('faults', { fault: { kind: 'meteor' } });
    expect(answer.status).toBe(400);
    expect(answer.body.error_description).toContain('server-error');
  });

  it('resets faults, calls and the bucket but keeps messages', async () => {
    setup = await startDemo({ limits: { burst: 1, perSecond: 0 } });
    await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'kept' } });
    expect((await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'no' } })).status).toBe(503);
    await control('faults', { fault: { kind: 'server-error' } });
    await control('reset', {});
    expect(setup.emu.calls).toEqual([]);
    expect(setup.emu.bucketLevel()).toBe(0);
    const after = await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'after reset' } });
    expect(after.status).toBe(200);
    expect(setup.emu.getMessage(789)?.history).toEqual(['Build #41: running…', 'kept', 'after reset']);
  });
});

describe('secrets', () => {
  it('keeps tokens, webhook codes and client secrets out of call records and control answers', async () => {
    setup = await startDemo();
    const grant = setup.emu.addOAuthApp({ clientId: 'app.s', clientSecret: 'client-secret-s' });
    const appBot = setup.emu.registerBot({ botToken: 'app_bot_token', owner: { clientId: 'app.s' } });
    const appMessage = setup.emu.addMessage({ botId: appBot, text: 'a' });
    await setup.asBot(UPDATE, { messageId: 789, fields: { message: 'x' } });
    await setup.asBot(UPDATE, { botToken: 'typo_bot_token', messageId: 789, fields: { message: 'x' } });
    await postJson(`${setup.emu.url}/rest/${UPDATE}`, {
      auth: grant.accessToken,
      botId: appBot,
      messageId: appMessage,
      fields: { message: 'b' },
    });
    await postForm(`${setup.emu.url}/rest/imbot.v2.Revision.get?auth=${grant.accessToken}`, 'x=1');
    await postJson(setup.webhook('batch'), {
      cmd: {
        a: `${UPDATE}?botId=456&botToken=my_bot_token&messageId=790&fields[message]=y`,
        b: `${UPDATE}?botId=456&botToken=typo_in_batch&messageId=790&fields[message]=y`,
      },
    });
    const refreshed = await send(
      `${setup.emu.oauthUrl}?grant_type=refresh_token&client_id=app.s&client_secret=client-secret-s&refresh_token=${grant.refreshToken}`,
    );
    const secrets = [
      'demo_webhook_code',
      'my_bot_token',
      'typo_bot_token',
      'typo_in_batch',
      'app_bot_token',
      'client-secret-s',
      grant.accessToken,
      grant.refreshToken,
      String(refreshed.body.access_token),
      String(refreshed.body.refresh_token),
    ];
    const exposed = [
      JSON.stringify(setup.emu.calls),
      (await control('calls')).text,
      (await control('messages')).text,
      (await control('messages/789')).text,
    ].join('\n');
    expect(setup.emu.calls.length).toBeGreaterThanOrEqual(8);
    for (const secret of secrets) expect(exposed).not.toContain(secret);
    expect(exposed).toContain('[redacted]');
  });

  it('never echoes a token or webhook code in an error answer', async () => {
    setup = await startDemo();
    const wrongHook = await postJson(`${setup.emu.url}/rest/1/guessed_code_123/${UPDATE}`, {});
    const wrongToken = await postJson(`${setup.emu.url}/rest/${UPDATE}`, { auth: 'guessed_token_456' });
    expect(wrongHook.text).not.toContain('guessed_code_123');
    expect(wrongToken.text).not.toContain('guessed_token_456');
  });
});

describe('demo portal CLI', () => {
  it('starts a seeded portal, prints its URL first, and exits cleanly on SIGTERM', async () => {
    const cli = fileURLToPath(new URL('../../local/bitrix24-emulator/cli.ts', import.meta.url));
    const child = spawn(process.execPath, [cli, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const lines = createInterface({ input: child.stdout });
      const [url] = (await Promise.race([
        once(lines, 'line'),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('CLI printed no URL within 10 s')), 10_000),
        ),
      ])) as [string];
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const answer = await postJson(`${url}/rest/1/demo_webhook_code/${UPDATE}`, {
        botId: 456,
        botToken: 'my_bot_token',
        messageId: 789,
        fields: { message: 'Build #41: passed' },
      });
      expect(answer.body.result).toEqual({ result: true });
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
