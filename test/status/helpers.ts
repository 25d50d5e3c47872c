import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import type { QueuedEdit } from '../../lib/edits/types.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import type { RefreshDeps } from '../../lib/status/refresh.ts';
import {
  type Bitrix24Emulator,
  type EmulatorOptions,
  startBitrix24Emulator,
} from '../../local/bitrix24-emulator/index.ts';
import { type ReconcilerSetup, reconcilerFor } from '../api/helpers.ts';
import { BOT, type Harness, PREFIX, WEBHOOK, webhookSecret } from '../support/harness.ts';

export { freshLedger, sweepLater, wakeLater } from '../api/helpers.ts';

/** 13:05 UTC, shown as 14:05 in Europe/Berlin. */
export const NOW = new Date(Date.UTC(2026, 10, 25, 13, 5));

/**
 * A clock for successive refreshes: `start` first, then 1 ms later each time. Every refresh stamps
 * its renderings with its `now`, and the ledger keeps the rendering accepted last.
 */
export function ticking(start: Date): () => Date {
  let calls = 0;
  return () => new Date(start.getTime() + calls++);
}

export interface RecordedMetric {
  name: string;
  unit: string;
  value: number;
}

/**
 * Deps wired to the harness: a fresh reconciler (a cold start's: its own pacer and memory) on
 * `ledger`, the harness's gateway and the loopback edits queue.
 */
export function depsFor(
  h: Harness,
  ledger: Ledger,
  overrides: Partial<RefreshDeps> = {},
  setup: ReconcilerSetup = {},
) {
  const metrics: RecordedMetric[] = [];
  const deps: RefreshDeps = {
    config: { statusConcurrency: 8, b24AllowHttp: true },
    reconciler: reconcilerFor(h, ledger, { ...setup, options: { callTimeoutMs: 2_000, ...setup.options } }),
    metrics: {
      addMetric(name, unit, value) {
        metrics.push({ name, unit, value });
        return this as never;
      },
    },
    now: ticking(NOW),
    ...overrides,
  };
  return { deps, metrics };
}

/** A status spec for bot 456 on `acme`, with a `none` source unless patched. */
export function spec(messageId: number, patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    portal: 'acme',
    botId: BOT.id,
    messageId,
    source: { type: 'none' },
    template: `Status of ${messageId} at {{now}}`,
    ...patch,
  };
}

/** Seeds messages written by the harness bot and returns their ids. */
export function seedMessages(emulator: Bitrix24Emulator, firstId: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) =>
    emulator.addMessage({ id: firstId + i, botId: BOT.id, chatId: 12, text: `seed ${firstId + i}` }),
  );
}

/** HTTP requests the portal received for `batch`. */
export function batchCalls(emulator: Bitrix24Emulator) {
  return emulator.calls.filter((call) => call.method === 'batch' && !call.viaBatch);
}

/** Update commands the portal ran, alone or inside a batch. */
export function updateCalls(emulator: Bitrix24Emulator) {
  return emulator.calls.filter((call) => call.method === UPDATE_METHOD);
}

/** Reads (and deletes) everything on the edits queue. */
export async function drainQueue(h: Harness): Promise<Array<{ edit: QueuedEdit; groupId: string }>> {
  const out: Array<{ edit: QueuedEdit; groupId: string }> = [];
  for (let round = 0; round < 50; round++) {
    const received = await h.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: h.editsQueueUrl,
        MaxNumberOfMessages: 10,
        MessageSystemAttributeNames: ['MessageGroupId'],
      }),
    );
    const messages = received.Messages ?? [];
    if (messages.length === 0) break;
    for (const message of messages) {
      out.push({
        edit: JSON.parse(message.Body ?? '{}') as QueuedEdit,
        groupId: message.Attributes?.MessageGroupId ?? '',
      });
    }
    await h.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: h.editsQueueUrl,
        Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
      }),
    );
  }
  return out.sort((a, b) => a.edit.messageId - b.edit.messageId);
}

/**
 * Another portal on its own emulator (so with its own bucket), with the harness's webhook and bot,
 * and its secret `${PREFIX}${name}` in the harness's Secrets Manager.
 */
export async function startPortal(
  h: Harness,
  name: string,
  options: { emulator?: EmulatorOptions; secret?: Record<string, unknown> } = {},
): Promise<Bitrix24Emulator> {
  const emulator = await startBitrix24Emulator({
    limits: null,
    now: () => h.clock.now(),
    ...options.emulator,
  });
  emulator.addWebhook(WEBHOOK);
  emulator.registerBot({ id: BOT.id, botToken: BOT.token, owner: { webhookUserId: WEBHOOK.userId } });
  h.secretsManager.setSecret(`${PREFIX}${name}`, webhookSecret(emulator.url, options.secret));
  return emulator;
}
