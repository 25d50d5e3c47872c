import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import { PortalPacing } from '../../lib/reconcile/pacing.ts';
import { enqueueEdits } from '../../lib/edits/queue.ts';
import type { QueuedEdit } from '../../lib/edits/types.ts';
import { AppliedFieldsCache } from '../../lib/status/change-detect.ts';
import type { RefreshDeps } from '../../lib/status/refresh.ts';
import {
  type Bitrix24Emulator,
  type EmulatorOptions,
  startBitrix24Emulator,
} from '../../local/bitrix24-emulator/index.ts';
import { BOT, type Harness, PREFIX, WEBHOOK, webhookSecret } from '../support/harness.ts';

/** 13:05 UTC, shown as 14:05 in Europe/Berlin. */
export const NOW = new Date(Date.UTC(2026, 10, 25, 13, 5));

export interface RecordedMetric {
  name: string;
  unit: string;
  value: number;
}

/** Deps wired to the harness: its gateway, the loopback edits queue, a fresh cache and pacer. */
export function depsFor(h: Harness, overrides: Partial<RefreshDeps> = {}) {
  const metrics: RecordedMetric[] = [];
  const deps: RefreshDeps = {
    config: { statusConcurrency: 8, b24AllowHttp: true },
    gateway: h.gateway,
    pacing: new PortalPacing({ concurrency: 1, apiShare: 0, now: Date.now }),
    cache: new AppliedFieldsCache(),
    enqueue: (edits) => enqueueEdits(edits, { queueUrl: h.editsQueueUrl, client: h.sqs }),
    metrics: {
      addMetric(name, unit, value) {
        metrics.push({ name, unit, value });
        return this as never;
      },
    },
    now: () => NOW,
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
  const emulator = await startBitrix24Emulator({ limits: null, ...options.emulator });
  emulator.addWebhook(WEBHOOK);
  emulator.registerBot({ id: BOT.id, botToken: BOT.token, owner: { webhookUserId: WEBHOOK.userId } });
  h.secretsManager.setSecret(`${PREFIX}${name}`, webhookSecret(emulator.url, options.secret));
  return emulator;
}
