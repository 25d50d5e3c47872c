import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createDrain } from '../../lib/drain/index.ts';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { toSqsRecord } from '../../local/poller.ts';
import { postUpdate, updateDeps } from '../api/helpers.ts';
import { createFifoQueue } from '../drain/support/fixtures.ts';
import { httpApiEvent } from '../support/events.ts';
import {
  BOT,
  freshLedger,
  type Harness,
  OAUTH_APP,
  oauthSecret,
  PREFIX,
  runDueWakeups,
  SECRET_MARKER,
  startHarness,
  testReconciler,
  WEBHOOK,
} from '../support/harness.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

const LOG_FILE = join(process.cwd(), '.reports', 'handler-logs.jsonl');
const logSize = () => (existsSync(LOG_FILE) ? statSync(LOG_FILE).size : 0);
const logSince = (offset: number) =>
  existsSync(LOG_FILE) ? readFileSync(LOG_FILE).subarray(offset).toString() : '';

let h: Harness;
let ledger: Ledger;
beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  h.emulator.echoCredentials(true);
  ledger = await freshLedger(h);
});

/** Every item of the ledger table, as text. */
async function ledgerText(table: string): Promise<string> {
  const { Items = [] } = await h.dynamo.send(new ScanCommand({ TableName: table, ConsistentRead: true }));
  return JSON.stringify(Items);
}

function expectNoSecret(text: string, secrets: readonly string[]): void {
  expect(text).not.toContain(SECRET_MARKER);
  for (const secret of secrets) expect(text).not.toContain(secret);
}

describe('a Bitrix24 that quotes the credentials back in its error texts', () => {
  it('makes the emulator quote them (the premise of the tests below)', async () => {
    const theirs = h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'not the bot’s' });
    const response = await fetch(
      `${h.emulator.url}/rest/${WEBHOOK.userId}/${WEBHOOK.code}/imbot.v2.Chat.Message.update`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          botId: BOT.id,
          botToken: BOT.token,
          messageId: theirs,
          fields: { message: 'x' },
        }),
      },
    );
    const body = (await response.json()) as { error_description: string };
    // Asserted without printing it: the output watcher would rightly fail the file.
    expect(body.error_description.includes(WEBHOOK.code)).toBe(true);
    expect(body.error_description.includes(BOT.token)).toBe(true);
  });

  it('keeps every credential out of the API answer, the ledger and the log lines', async () => {
    const before = logSize();
    const theirs = h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'not the bot’s' });
    const answer = await postUpdate(
      httpApiEvent(
        { botId: BOT.id, messageId: theirs, fields: { message: 'edit' } },
        { headers: { 'x-b24-portal': 'acme' } },
      ),
      updateDeps(h, ledger),
    );
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('ACCESS_DENIED');
    expect(String(answer.body.error_description)).toContain('[redacted]');
    expectNoSecret(JSON.stringify(answer), [WEBHOOK.code, BOT.token]);
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: theirs });
    expect(state.lastError?.code).toBe('ACCESS_DENIED');
    expectNoSecret(await ledgerText(ledger.tableName), [WEBHOOK.code, BOT.token]);
    expectNoSecret(logSince(before), [WEBHOOK.code, BOT.token]);
  });

  it('keeps every credential out of the drain’s failed-edits message, its attributes, the ledger and the log lines', async () => {
    const before = logSize();
    const editsQueue = await createFifoQueue(h.sqs, `echo-${randomUUID().slice(0, 8)}`, 30);
    const failedQueue = await createFifoQueue(h.sqs, `echo-failed-${randomUUID().slice(0, 8)}`, 30);
    const options = { failedEditsQueueUrl: failedQueue, batchLingerMs: 0, messageMinIntervalMs: 0 };
    const drain = createDrain({ ledger, sqs: h.sqs, wakeups: h.wakeups, editsQueueUrl: editsQueue, options });
    const theirs = [1, 2].map(() =>
      h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'not the bot’s' }),
    );
    await enqueueEdits(
      theirs.map((messageId) => ({
        portal: 'acme',
        botId: BOT.id,
        messageId,
        fields: { message: 'edit' },
        editId: randomUUID(),
        requestedAt: new Date().toISOString(),
      })),
      { queueUrl: editsQueue, client: h.sqs },
    );
    const event = await receive(editsQueue);
    const { batchItemFailures } = await drain(event, { remainingMs: () => 30_000 });
    expect(batchItemFailures).toEqual([]);
    for (const r of event.Records)
      await h.sqs.send(new DeleteMessageCommand({ QueueUrl: editsQueue, ReceiptHandle: r.receiptHandle }));
    // The woken portal's reconcile finds both refused.
    await runDueWakeups(h, testReconciler(h, ledger, options));

    const failed = await receive(failedQueue);
    expect(failed.Records.map((r) => r.messageAttributes.errorCode?.stringValue)).toEqual([
      'ACCESS_DENIED',
      'ACCESS_DENIED',
    ]);
    expect(failed.Records[0]?.messageAttributes.errorDescription?.stringValue).toContain('[redacted]');
    expectNoSecret(JSON.stringify(failed.Records), [WEBHOOK.code, BOT.token]);
    expectNoSecret(await ledgerText(ledger.tableName), [WEBHOOK.code, BOT.token]);
    expectNoSecret(logSince(before), [WEBHOOK.code, BOT.token]);
  });

  it('keeps the OAuth client secret and tokens out of the answer when the OAuth server quotes them', async () => {
    h.emulator.registerBot({ id: 470, owner: { clientId: OAUTH_APP.clientId } });
    h.emulator.addMessage({ id: 9001, botId: 470, chatId: 12, text: 'oauth message' });
    const tokens = h.emulator.addOAuthApp(OAUTH_APP);
    h.secretsManager.setSecret(
      `${PREFIX}echo-oauth`,
      oauthSecret(h.emulator.url, h.emulator.oauthUrl, tokens).replace('"456"', '"470"'),
    );
    h.emulator.expireAccessTokens();
    h.emulator.inject({ kind: 'error', method: 'oauth/token', code: 'invalid_client', status: 401 });
    const before = logSize();
    const answer = await postUpdate(
      httpApiEvent(
        { botId: 470, messageId: 9001, fields: { message: 'after refresh' } },
        { headers: { 'x-b24-portal': 'echo-oauth' } },
      ),
      updateDeps(h, ledger),
    );
    expect(answer).toMatchObject({ status: 502, body: { error: 'invalid_client' } });
    expect(String(answer.body.error_description)).toContain('[redacted]');
    const secrets = [OAUTH_APP.clientSecret, tokens.accessToken, tokens.refreshToken];
    expectNoSecret(JSON.stringify(answer), secrets);
    expectNoSecret(await ledgerText(ledger.tableName), secrets);
    expectNoSecret(logSince(before), secrets);
  });
});

async function receive(queueUrl: string): Promise<SQSEvent> {
  const { Messages = [] } = await h.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      MessageSystemAttributeNames: ['All'],
      MessageAttributeNames: ['All'],
      VisibilityTimeout: 30,
    }),
  );
  return { Records: Messages.map((m) => toSqsRecord(m, 'arn:aws:sqs:us-east-1:000000000000:edits.fifo')) };
}
