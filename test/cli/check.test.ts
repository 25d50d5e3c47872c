import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Bitrix24Emulator,
  type EmulatorOptions,
  startBitrix24Emulator,
} from '../../local/bitrix24-emulator/index.ts';
import { CHECK_BOT_CODE } from '../../scripts/check/setup.ts';
import { STEPS } from '../../scripts/check/steps.ts';
import { SECRET_MARKER } from '../support/harness.ts';

const root = new URL('../..', import.meta.url).pathname;
const exec = promisify(execFile);
const WEBHOOK = { userId: 5, code: `whk_${SECRET_MARKER}_check` } as const;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** An emulator standing in for the user's portal: the webhook only, as a portal has before the check. */
async function portal(options: EmulatorOptions = {}): Promise<Bitrix24Emulator> {
  const emulator = await startBitrix24Emulator(options);
  emulator.addWebhook(WEBHOOK);
  // A careless portal: every error description quotes every credential it knows.
  emulator.echoCredentials(true);
  return emulator;
}

/** `npm run b24 -- check <args>` as a child process against `emulator`, with only the environment given. */
async function check(emulator: Bitrix24Emulator | undefined, args: string[] = []): Promise<Run> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };
  if (emulator) {
    Object.assign(env, {
      B24_PORTAL_URL: emulator.url,
      B24_WEBHOOK_USER_ID: String(WEBHOOK.userId),
      B24_WEBHOOK_CODE: WEBHOOK.code,
    });
  }
  try {
    const { stdout, stderr } = await exec(
      process.execPath,
      [join(root, 'scripts/b24.ts'), 'check', ...args],
      {
        cwd: root,
        env,
        timeout: 30_000,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** The report's table rows: step name → [portal, emulator, verdict]. */
function table(report: string): Map<string, [string, string, string]> {
  const rows = new Map<string, [string, string, string]>();
  for (const line of report.split('\n')) {
    const cells = /^\| \d+ \| (.+?) \| (.+?) \| (.+?) \| (same|\*\*DIFFERENT\*\*) \|$/.exec(line);
    if (cells) rows.set(cells[1] ?? '', [cells[2] ?? '', cells[3] ?? '', cells[4] ?? '']);
  }
  return rows;
}

/** The report's lines under "Cleanup:". */
function cleanupLines(report: string): string[] {
  return (report.split('\nCleanup:\n\n')[1] ?? '').trim().split('\n');
}

/** The id of the bot the run registered, from its setup note. */
function botId(run: Run): number {
  return Number(/^- Bot (\d+) \(code `[^`]+`\) registered for this run/m.exec(run.stdout)?.[1]);
}

describe('npm run b24 -- check against a portal that answers as the emulator does', () => {
  let emulator: Bitrix24Emulator;
  let run: Run;
  let othersMessage: number;
  beforeAll(async () => {
    emulator = await portal();
    othersMessage = emulator.addMessage({ authorId: WEBHOOK.userId, chatId: 12, text: 'A person’s message' });
    run = await check(emulator);
  });
  afterAll(() => emulator.close());

  it('reports every step of the sequence the same, in a markdown table, and exits 0', () => {
    expect(run.code, run.stderr).toBe(0);
    const rows = table(run.stdout);
    expect([...rows.keys()]).toEqual(STEPS.map((step) => step.name));
    for (const [step, [, , verdict]] of rows) expect(verdict, step).toBe('same');
    expect(rows.get('update: message text')).toEqual([
      '2xx `{result: true}` + time',
      '2xx `{result: true}` + time',
      'same',
    ]);
    expect(rows.get('update: a wrong bot token')?.[0]).toBe('403 BOT_OWNERSHIP_ERROR');
    expect(run.stdout).toContain(`${STEPS.length} steps: ${STEPS.length} same, 0 DIFFERENT.`);
    expect(run.stdout).not.toContain('DIFFERENT**');
  });

  it('deletes every message it sent and leaves the portal’s other messages alone', () => {
    expect(emulator.messages().map((message) => message.id)).toEqual([othersMessage]);
    expect(run.stdout).toMatch(/^- Messages deleted: \d+, \d+\.$/m);
  });

  it('makes a chat of its own for the run and sends every message there, with no fallback note', () => {
    const chats = emulator.chats();
    expect(chats).toEqual([
      expect.objectContaining({ title: 'b24-message-editor check', ownerId: botId(run) }),
    ]);
    const dialogId = chats[0]?.dialogId;
    expect(run.stdout).toContain(
      `- Chat \`${dialogId}\` made for this run (imbot.v2.Chat.add), owned by the bot.`,
    );
    expect(run.stdout).not.toContain('private dialog');
    const sends = emulator.calls.filter((call) => call.method === 'imbot.v2.Chat.Message.send');
    expect(sends.length).toBeGreaterThan(0);
    for (const call of sends) expect((call.params as { dialogId?: unknown }).dialogId).toBe(dialogId);
  });

  it('leaves no bot registered and no member in its chat, and lists no leftover under Cleanup', () => {
    expect(emulator.bots()).toEqual([]);
    expect(emulator.chats().map((chat) => chat.members)).toEqual([[]]);
    expect(cleanupLines(run.stdout)).toEqual([
      expect.stringMatching(/^- Messages deleted: \d+, \d+\.$/),
      expect.stringMatching(/^- Messages already gone \(a delete answered ACCESS_DENIED\): \d+\.$/),
      `- The bot left \`${emulator.chats()[0]?.dialogId}\`.`,
      `- Bot ${botId(run)} unregistered.`,
    ]);
  });

  it('prints no token or webhook code', () => {
    const output = run.stdout + run.stderr;
    expect(output).not.toContain(WEBHOOK.code);
    expect(output).not.toMatch(/[0-9a-f]{32}/);
  });

  it('runs again with the same code on the same portal, the first run’s bot being gone', async () => {
    // As if a while had passed: the first run's calls have drained from the portal's rate limit.
    emulator.reset();
    const again = await check(emulator);
    expect(again.code, again.stderr).toBe(0);
    expect(emulator.bots()).toEqual([]);
    expect(emulator.messages().map((message) => message.id)).toEqual([othersMessage]);
    expect(emulator.chats().map((chat) => chat.members)).toEqual([[], []]);
  });

  it('stops with one line and exit 1, changing nothing, when an earlier check’s bot still holds the code', async () => {
    // What a check whose cleanup failed leaves: the code's bot, holding a token this run does not know.
    emulator.registerBot({
      code: CHECK_BOT_CODE,
      botToken: 'token_of_an_earlier_check',
      owner: { webhookUserId: WEBHOOK.userId },
    });
    const before = [emulator.messages(), emulator.bots(), emulator.chats()];
    emulator.reset();
    const again = await check(emulator);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    const lines = again.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^npm run b24 -- check failed: Bot \d+ \(code b24_message_editor_check\) on 127\.0\.0\.1:\d+ already exists with another token, .*--code <another code>$/,
    );
    expect([emulator.messages(), emulator.bots(), emulator.chats()]).toEqual(before);

    emulator.reset();
    const elsewhere = await check(emulator, ['--code', 'b24_message_editor_check_2']);
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    expect(emulator.messages().map((message) => message.id)).toEqual([othersMessage]);
    expect(emulator.bots()).toEqual(before[1]);
  });
});

describe('npm run b24 -- check against a portal that refuses part of the setup or the cleanup', () => {
  it('posts into the bot’s dialog with the webhook’s user, and says so, where the portal makes no chat', async () => {
    const chatless = await portal();
    try {
      chatless.inject({ kind: 'error', code: 'ACCESS_DENIED', status: 403, method: 'imbot.v2.Chat.add' });
      const run = await check(chatless);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(
        /^- imbot\.v2\.Chat\.add answered 403 ACCESS_DENIED \(Access denied .*\): the messages go/m,
      );
      expect(run.stdout).toContain(
        `: the messages go to the bot's private dialog with user ${WEBHOOK.userId} (the webhook's user) instead.`,
      );
      const sends = chatless.calls.filter((call) => call.method === 'imbot.v2.Chat.Message.send');
      expect(sends.length).toBeGreaterThan(0);
      for (const call of sends)
        expect((call.params as { dialogId?: unknown }).dialogId).toBe(String(WEBHOOK.userId));
      expect(run.stdout).not.toContain('The bot left');
      expect(chatless.bots()).toEqual([]);
    } finally {
      await chatless.close();
    }
  });

  it('names the bot it could not unregister, with the portal’s answer, and how to get rid of it, printing no credential the portal quotes', async () => {
    const refusing = await portal();
    try {
      refusing.inject({
        kind: 'error',
        code: 'BOT_UNREGISTER_FAILED',
        status: 400,
        method: 'imbot.v2.Bot.unregister',
      });
      const run = await check(refusing);
      expect(run.code, run.stderr).toBe(0);
      expect(cleanupLines(run.stdout).at(-1)).toMatch(
        /^- Bot (\d+) \(code `b24_message_editor_check`\) is still registered: imbot\.v2\.Bot\.unregister answered 400 BOT_UNREGISTER_FAILED .*Remove it in the portal/,
      );
      expect(refusing.bots().map((bot) => bot.code)).toEqual([CHECK_BOT_CODE]);
      const output = run.stdout + run.stderr;
      expect(output).not.toContain(WEBHOOK.code);
      expect(output).not.toMatch(/[0-9a-f]{32}/);
      const quoted = [...output.matchAll(/credentials seen: ([^)]*)\)/g)].map((match) => match[1]);
      expect(quoted.length).toBeGreaterThan(0);
      for (const list of quoted) expect(list?.split(', ').every((item) => item === '[redacted]')).toBe(true);
    } finally {
      await refusing.close();
    }
  });
});

describe('npm run b24 -- check against a portal that differs from the emulator', () => {
  it('marks the updates DIFFERENT and exits 1 when the portal answers the flat success shape', async () => {
    const flat = await portal({ successShape: 'flat' });
    try {
      const run = await check(flat);
      expect(run.code, run.stderr).toBe(1);
      const rows = table(run.stdout);
      expect(rows.get('update: message text')).toEqual([
        '2xx `true` + time',
        '2xx `{result: true}` + time',
        '**DIFFERENT**',
      ]);
      // What does not answer a boolean is still the same.
      expect(rows.get('send a message')?.[2]).toBe('same');
      expect(rows.get('update: a wrong bot token')?.[2]).toBe('same');
      expect(rows.get(`update: attach of 60,000 characters (lib/edits’ count)`)?.[2]).toBe('same');
      expect(run.stdout).toMatch(new RegExp(`${STEPS.length} steps: \\d+ same, \\d+ DIFFERENT\\.`));
      expect(flat.messages()).toEqual([]);
    } finally {
      await flat.close();
    }
  });

  it('still deletes the messages it sent when steps fail, and reports the steps left without a message', async () => {
    const failing = await portal();
    try {
      failing.inject({ kind: 'server-error', method: 'imbot.v2.Chat.Message.send' });
      const run = await check(failing);
      expect(run.code, run.stderr).toBe(1);
      const rows = table(run.stdout);
      expect(rows.get('send a message')).toEqual([
        '500 INTERNAL_SERVER_ERROR',
        '2xx `{id: number, uuidMap: {}}` + time',
        '**DIFFERENT**',
      ]);
      expect(rows.get('update: message text')?.[0]).toBe('not sent (no message "main": its send failed)');
      expect(rows.get('update: empty text')?.[2]).toBe('same');
      expect(failing.messages()).toEqual([]);
    } finally {
      await failing.close();
    }
  });
});

describe('npm run b24 -- check against a busy portal', () => {
  it('sends again a call the portal’s rate limit refused, so the step still compares the same', async () => {
    const busy = await portal();
    try {
      busy.inject({ kind: 'query-limit', method: 'batch' });
      const run = await check(busy);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(busy.calls.filter((call) => call.code === 'QUERY_LIMIT_EXCEEDED')).toHaveLength(1);
      expect(table(run.stdout).get('batch: two updates')?.[2]).toBe('same');
    } finally {
      await busy.close();
    }
  });
});

describe('npm run b24 -- check with a bad command line', () => {
  it('exits 2 with one line naming B24_PORTAL_URL when the portal is not given', async () => {
    const run = await check(undefined);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toEqual([
      'npm run b24 -- check: B24_PORTAL_URL is required: the portal, e.g. https://acme.bitrix24.com. See npm run b24 -- check --help.',
    ]);
  });

  it('exits 2 with one line for an option it does not know', async () => {
    const run = await check(undefined, ['--dialog', 'chat12']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^npm run b24 -- check: .*--dialog.*See npm run b24 -- check --help\.\n$/);
  });

  it('prints its usage with --help and calls nothing', async () => {
    const run = await check(undefined, ['--help']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Usage: npm run b24 -- check \[--code <code>\]$/m);
    expect(run.stdout).toContain('(default: b24_message_editor_check)');
  });
});
