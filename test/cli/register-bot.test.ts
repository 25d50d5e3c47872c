import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoPortal } from '../../local/bitrix24-emulator/demo.ts';
import { type Bitrix24Emulator, startBitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { SECRET_MARKER } from '../support/harness.ts';

const root = new URL('../..', import.meta.url).pathname;
const exec = promisify(execFile);
const WEBHOOK = { userId: 3, code: `whk_${SECRET_MARKER}_register` } as const;
const FIRST = `first_${SECRET_MARKER}_token`;
const SECOND = `second_${SECRET_MARKER}_token`;

let emulator: Bitrix24Emulator;
beforeAll(async () => {
  emulator = await startBitrix24Emulator({ limits: null });
  emulator.addWebhook(WEBHOOK);
});
afterAll(() => emulator.close());

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npm run b24 -- <args>` as a child process against the emulator's webhook, with only the environment given. */
async function b24(args: string[], env: Record<string, string>, webhook = WEBHOOK): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [join(root, 'scripts/b24.ts'), ...args], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        B24_PORTAL_URL: emulator.url,
        B24_WEBHOOK_USER_ID: String(webhook.userId),
        B24_WEBHOOK_CODE: webhook.code,
        ...env,
      },
      timeout: 20_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

const register = (code: string, env: Record<string, string>) =>
  b24(['register-bot', '--code', code, '--name', 'Build bot'], env);

/** Posts a message as the bot with `token`: what the bot holds is whichever token this works with. */
async function sendAs(botId: number, token: string) {
  const run = await b24(['send', '--dialog', 'chat12', 'Build #43: running'], {
    B24_BOT_ID: String(botId),
    B24_BOT_TOKEN: token,
  });
  const messageId = Number(/Message (\d+) sent/.exec(run.stdout)?.[1]);
  return { ...run, message: Number.isInteger(messageId) ? emulator.getMessage(messageId) : undefined };
}

/** Registers `code` with FIRST and answers the bot's id. */
async function registered(code: string): Promise<number> {
  const first = await register(code, { B24_BOT_TOKEN: FIRST });
  expect(first.code, first.stderr).toBe(0);
  return Number(/Bot (\d+) registered/.exec(first.stdout)?.[1]);
}

function expectNoToken(run: Run): void {
  for (const token of [FIRST, SECOND, `third_${SECRET_MARKER}_token`]) {
    expect(run.stdout + run.stderr).not.toContain(token);
  }
}

describe('npm run b24 -- register-bot for a code already registered', () => {
  it('says in one line that the bot keeps its other token, exits 1, and send still works only with the first token', async () => {
    const botId = await registered('kept_bot');

    const again = await register('kept_bot', { B24_BOT_TOKEN: SECOND });
    expect(again.code).toBe(1);
    expect(again.stdout).not.toContain('registered');
    const lines = again.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^npm run b24 -- register-bot failed: Bot ${botId} \\(code kept_bot\\) on 127\\.0\\.0\\.1:\\d+ already exists with another token, which it keeps`,
      ),
    );
    expect(lines[0]).toContain('B24_OLD_BOT_TOKEN');
    expectNoToken(again);

    const withSecond = await sendAs(botId, SECOND);
    expect(withSecond.code).toBe(1);
    expect(withSecond.stderr).toContain('BOT_OWNERSHIP_ERROR');
    const withFirst = await sendAs(botId, FIRST);
    expect(withFirst.code, withFirst.stderr).toBe(0);
    expect(withFirst.message?.botId).toBe(botId);
  });

  it('answers the same bot, exit 0, when registered again with the token it holds', async () => {
    const botId = await registered('same_token_bot');
    const again = await register('same_token_bot', { B24_BOT_TOKEN: FIRST });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`Bot ${botId} registered`);
    expect((await sendAs(botId, FIRST)).code).toBe(0);
  });

  it('gives the bot the new token when its current one is in B24_OLD_BOT_TOKEN: send works with the new token and fails with the old', async () => {
    const botId = await registered('rotated_bot');

    const rotated = await register('rotated_bot', { B24_BOT_TOKEN: SECOND, B24_OLD_BOT_TOKEN: FIRST });
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(
      new RegExp(
        `^Bot ${botId} \\(code rotated_bot\\) on 127\\.0\\.0\\.1:\\d+ now has the token in B24_BOT_TOKEN`,
        'm',
      ),
    );
    expect(rotated.stdout).toContain(`bots.${botId}.botToken`);
    expectNoToken(rotated);

    const withSecond = await sendAs(botId, SECOND);
    expect(withSecond.code, withSecond.stderr).toBe(0);
    expect(withSecond.message?.botId).toBe(botId);
    const withFirst = await sendAs(botId, FIRST);
    expect(withFirst.code).toBe(1);
    expect(withFirst.stderr).toContain('BOT_OWNERSHIP_ERROR');
  });

  it('changes nothing and says so in one line, exit 1, when B24_OLD_BOT_TOKEN is not the bot’s token either', async () => {
    const botId = await registered('guarded_bot');

    const wrong = await register('guarded_bot', {
      B24_BOT_TOKEN: SECOND,
      B24_OLD_BOT_TOKEN: `third_${SECRET_MARKER}_token`,
    });
    expect(wrong.code).toBe(1);
    const lines = wrong.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /holds neither B24_BOT_TOKEN nor B24_OLD_BOT_TOKEN \(BOT_OWNERSHIP_ERROR\): its token is unchanged/,
    );
    expectNoToken(wrong);
    expect((await sendAs(botId, FIRST)).code).toBe(0);
    expect((await sendAs(botId, SECOND)).code).toBe(1);
  });

  it('refuses the demo portal’s build_bot a new token without its old one, as `npm start` users meet it', async () => {
    const demo = await startBitrix24Emulator({ limits: null });
    try {
      const portal = seedDemoPortal(demo);
      const env = {
        B24_PORTAL_URL: demo.url,
        B24_WEBHOOK_USER_ID: String(portal.webhook.userId),
        B24_WEBHOOK_CODE: portal.webhook.code,
      };
      const again = await b24(['register-bot', '--code', 'build_bot', '--name', 'Build bot'], {
        ...env,
        B24_BOT_TOKEN: SECOND,
      });
      expect(again.code).toBe(1);
      expect(again.stderr).toContain(`Bot ${portal.botId} (code build_bot)`);
      expect(again.stderr).toContain('already exists with another token');
      const send = await b24(['send', '--dialog', 'chat12', 'still the demo bot'], {
        ...env,
        B24_BOT_ID: String(portal.botId),
        B24_BOT_TOKEN: portal.botToken,
      });
      expect(send.code, send.stderr).toBe(0);
    } finally {
      await demo.close();
    }
  });
});
