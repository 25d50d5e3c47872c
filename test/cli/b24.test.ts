import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendFailedEdits } from '../../lib/edits/failed.ts';
import { createFifoQueue } from '../drain/support/fixtures.ts';
import { AWS, BOT, freshLedger, type Harness, startHarness, WEBHOOK } from '../support/harness.ts';

const root = new URL('../..', import.meta.url).pathname;
const exec = promisify(execFile);

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npm run b24 -- <args>` as a child process, with only the environment given. */
async function b24(args: string[], env: Record<string, string> = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [join(root, 'scripts/b24.ts'), ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      timeout: 20_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

const portalEnv = () => ({
  B24_PORTAL_URL: h.emulator.url,
  B24_WEBHOOK_USER_ID: String(WEBHOOK.userId),
  B24_WEBHOOK_CODE: WEBHOOK.code,
});
const awsEnv = () => ({
  AWS_REGION: AWS.region,
  AWS_ACCESS_KEY_ID: AWS.credentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: AWS.credentials.secretAccessKey,
  AWS_ENDPOINT_URL_DYNAMODB: h.dynamoEndpoint,
  AWS_ENDPOINT_URL_SQS: h.sqsEndpoint,
});

describe('npm run b24 -- register-bot and send', () => {
  it('registers a bot through the webhook, then posts a message whose id the update API can edit', async () => {
    const token = `tok_${randomUUID().slice(0, 8)}`;
    const registered = await b24(['register-bot', '--code', 'ci_bot', '--name', 'CI bot'], {
      ...portalEnv(),
      B24_BOT_TOKEN: token,
    });
    expect(registered.code, registered.stderr).toBe(0);
    const botId = Number(/Bot (\d+) registered/.exec(registered.stdout)?.[1]);
    expect(botId).toBeGreaterThan(BOT.id);
    expect(registered.stdout).not.toContain(token);

    const again = await b24(['register-bot', '--code', 'ci_bot', '--name', 'CI bot'], {
      ...portalEnv(),
      B24_BOT_TOKEN: token,
    });
    expect(again.stdout).toContain(`Bot ${botId} registered`);

    const sent = await b24(['send', '--dialog', 'chat12', 'Build #42: running'], {
      ...portalEnv(),
      B24_BOT_ID: String(botId),
      B24_BOT_TOKEN: token,
    });
    expect(sent.code, sent.stderr).toBe(0);
    const messageId = Number(/Message (\d+) sent/.exec(sent.stdout)?.[1]);
    const message = h.emulator.getMessage(messageId);
    expect(message?.text).toBe('Build #42: running');
    expect(message?.botId).toBe(botId);
    expect(message?.chatId).toBe(12);
    expect(sent.stdout).toContain(`{"botId":${botId},"messageId":${messageId},`);
  });

  it("ends with Bitrix24's code and description when the webhook is refused, never a trace", async () => {
    const run = await b24(['send', '--dialog', 'chat12', 'hello'], {
      ...portalEnv(),
      B24_WEBHOOK_CODE: 'not_the_code',
      B24_BOT_ID: String(BOT.id),
      B24_BOT_TOKEN: BOT.token,
    });
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toMatch(
      /^npm run b24 -- send failed: imbot\.v2\.Chat\.Message\.send on 127\.0\.0\.1:\d+ failed: INVALID_CREDENTIALS/,
    );
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('names the missing variable in one line', async () => {
    const run = await b24(['register-bot', '--code', 'x', '--name', 'X'], portalEnv());
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe(
      'npm run b24 -- register-bot: B24_BOT_TOKEN is required: a secret of your choosing, up to 40 characters. See npm run b24 -- register-bot --help.',
    );
  });
});

describe('npm run b24 -- status', () => {
  it('prints what the ledger knows of a message: desired fields, pending edit ids, version', async () => {
    const ledger = await freshLedger(h);
    const editId = randomUUID();
    const key = { portal: 'acme', botId: BOT.id, messageId: 789 };
    await ledger.merge(
      key,
      [{ ...key, fields: { message: 'Build #42: passed' }, editId, at: Date.now(), seq: '1' }],
      {
        messageMinIntervalMs: 0,
        ambiguousSettleMs: 1_000,
      },
    );
    const run = await b24(['status', 'acme', String(BOT.id), '789'], {
      ...awsEnv(),
      STATE_TABLE_NAME: ledger.tableName,
    });
    expect(run.code, run.stderr).toBe(0);
    const fate = JSON.parse(run.stdout);
    expect(fate).toMatchObject({
      portal: 'acme',
      status: 'pending',
      applied: false,
      version: 1,
      pendingEditIds: [editId],
      desired: { message: { value: 'Build #42: passed', editId } },
    });

    const unknown = await b24(['status', 'acme', String(BOT.id), '790'], {
      ...awsEnv(),
      STATE_TABLE_NAME: ledger.tableName,
    });
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout).error).toBe('MESSAGE_NOT_FOUND');
  });

  it('says in one line that the ledger could not be reached, never a trace', async () => {
    const run = await b24(['status', 'acme', '1', '2'], {
      ...awsEnv(),
      AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:9',
      STATE_TABLE_NAME: 'ledger',
    });
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toMatch(/^npm run b24 -- status failed: LEDGER_UNAVAILABLE: [^\n]+$/);
  });

  it('answers a bad portal key in one line naming the rule', async () => {
    const run = await b24(['status', 'Not A Portal', '1', '2'], { ...awsEnv(), STATE_TABLE_NAME: 't' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('portal must match ^[a-z0-9][a-z0-9-]{0,62}$');
  });
});

describe('npm run b24 -- replay-failed', () => {
  it('moves back only the failed edits with the codes asked for, each in its message group', async () => {
    // The SQS emulator names its queues on a host that need not resolve; its endpoint serves them all.
    const local = (url: string) => `${h.sqsEndpoint}${new URL(url).pathname}`;
    const edits = local(await createFifoQueue(h.sqs, `b24-edits-${randomUUID().slice(0, 8)}`, 30));
    const failed = local(await createFifoQueue(h.sqs, `b24-failed-${randomUUID().slice(0, 8)}`, 30));
    const failure = (messageId: number, errorCode: string) => ({
      body: JSON.stringify({
        portal: 'acme',
        botId: BOT.id,
        messageId,
        fields: { message: `m${messageId}` },
      }),
      groupId: `acme:${BOT.id}:${messageId}`,
      deduplicationId: randomUUID(),
      errorCode,
      errorDescription: `failed with ${errorCode}`,
      attempts: 8,
      firstRequestedAt: new Date().toISOString(),
      editIds: [randomUUID()],
    });
    const put = await sendFailedEdits([failure(1, 'PORTAL_NOT_FOUND'), failure(2, 'BOT_NOT_FOUND')], {
      queueUrl: failed,
      client: h.sqs,
    });
    expect(put.accepted).toHaveLength(2);

    const run = await b24(['replay-failed', '--code', 'PORTAL_NOT_FOUND'], {
      ...awsEnv(),
      EDITS_QUEUE_URL: edits,
      FAILED_EDITS_QUEUE_URL: failed,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('Replayed 1 failed edit(s) (codes PORTAL_NOT_FOUND); 1 left');
    const { Messages = [] } = await h.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: edits,
        MaxNumberOfMessages: 10,
        MessageSystemAttributeNames: ['All'],
      }),
    );
    expect(Messages.map((m) => [JSON.parse(m.Body ?? '{}').messageId, m.Attributes?.MessageGroupId])).toEqual(
      [[1, `acme:${BOT.id}:1`]],
    );
  });
});
