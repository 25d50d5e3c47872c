import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../drain-core/helpers.ts';
import { BOT, type Harness, PREFIX, SECRET_MARKER, startHarness, webhookSecret } from '../support/harness.ts';
import { createFifoQueue, queueDepth, receiveAll, waitFor } from './support/fixtures.ts';
import { spawnWorker, type Worker } from './support/spawn-worker.ts';

const MESSAGES = 100;
const PRODUCERS = 4;
const EDITS_PER_PRODUCER = 500;
const KILLS = 3;

interface Accepted {
  editId: string;
  messageId: number;
  text: string;
  sequence: bigint;
}

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ emulator: { limits: { burst: 100, perSecond: 100 } } });
  h.secretsManager.setSecret(
    `${PREFIX}conv`,
    webhookSecret(h.emulator.url, { plan: undefined, limits: { burst: 100, perSecond: 100 } }),
  );
});
afterAll(() => h.close());

describe('convergence under faults', () => {
  it('leaves every message at its last accepted edit, never applies an older edit after a newer one, and accounts for every edit', async () => {
    const queueUrl = await createFifoQueue(h.sqs, 'convergence', 3);
    const ids = Array.from({ length: MESSAGES }, () =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'initial' }),
    );
    const settings = {
      sqsEndpoint: h.sqsEndpoint,
      secretsEndpoint: h.secretsManager.url,
      secretPrefix: PREFIX,
      queueUrl,
      maxConcurrency: 2,
      timeoutMs: 2_500,
      circuit: { openMs: 300, maxOpenMs: 1_000 },
      options: {
        failedEditsQueueUrl: h.failedQueueUrl,
        callTimeoutMs: 1_000,
        deadlineMarginMs: 200,
        handBackDelayMs: 0,
        maxDeferralMs: 1_000,
        serverBackoff: { baseMs: 100, capMs: 1_000 },
        maxAttempts: 50,
      },
    };
    const outputs: string[] = [];
    let worker: Worker = spawnWorker(settings);
    await worker.ready;
    h.emulator.setRandomFaults({
      rate: 0.2,
      kinds: ['query-limit', 'server-error', 'reset', 'slow', 'html', 'operating-limit'],
      slowMs: 100,
    });

    const accepted: Accepted[] = [];
    const producer = async (p: number) => {
      const random = seededRandom(p + 1);
      for (let chunk = 0; chunk < EDITS_PER_PRODUCER / 10; chunk += 1) {
        const entries = Array.from({ length: 10 }, (_, i) => {
          const messageId = ids[Math.floor(random() * ids.length)] as number;
          const editId = `p${p}-${chunk * 10 + i}`;
          const text = `${messageId}/${editId}`;
          const body = { portal: 'conv', botId: BOT.id, messageId, fields: { message: text }, editId };
          return {
            Id: String(i),
            MessageBody: JSON.stringify(body),
            MessageGroupId: `conv:${BOT.id}:${messageId}`,
            MessageDeduplicationId: editId,
            meta: { editId, messageId, text },
          };
        });
        const response = await h.sqs.send(
          new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries.map(({ meta: _, ...e }) => e) }),
        );
        for (const ok of response.Successful ?? []) {
          const { meta } = entries[Number(ok.Id)] as (typeof entries)[number];
          accepted.push({ ...meta, sequence: BigInt(ok.SequenceNumber ?? '0') });
        }
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    };
    const producing = Promise.all(Array.from({ length: PRODUCERS }, (_, p) => producer(p)));

    for (let kill = 0; kill < KILLS; kill += 1) {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      h.emulator.inject({ kind: 'overload' }, 2);
      await worker.kill();
      outputs.push(worker.output());
      worker = spawnWorker(settings);
      await worker.ready;
    }
    await producing;
    expect(accepted).toHaveLength(PRODUCERS * EDITS_PER_PRODUCER);
    await waitFor(async () => (await queueDepth(h.sqs, queueUrl)) === 0, 90_000, 'the edits queue to empty');
    await worker.stop();
    outputs.push(worker.output());
    h.emulator.setRandomFaults(null);

    // Every message ends at the last edit accepted for it, and its history never goes back in time.
    const rank = new Map(accepted.map((a) => [a.text, a.sequence]));
    const last = new Map<number, Accepted>();
    for (const a of accepted)
      if ((last.get(a.messageId)?.sequence ?? -1n) < a.sequence) last.set(a.messageId, a);
    const failed = await receiveAll(h.sqs, h.failedQueueUrl, 2_000);
    const failedEditIds = new Set(
      failed.flatMap((m) => (m.MessageAttributes?.editIds?.StringValue ?? '').split(',')),
    );
    for (const id of ids) {
      const message = h.emulator.getMessage(id);
      const lastEdit = last.get(id);
      if (lastEdit && !failedEditIds.has(lastEdit.editId)) expect(message?.text).toBe(lastEdit.text);
      const sequence = (message?.history ?? []).slice(1).map((text) => rank.get(text) ?? -1n);
      expect(sequence.every((s, i) => s >= 0n && (i === 0 || s >= (sequence[i - 1] as bigint)))).toBe(true);
    }

    // Every accepted edit was logged applied, superseded or failed (and then it is in the failed queue).
    const settled = new Map<string, string>();
    for (const line of outputs.join('\n').split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { editId?: string; outcome?: string };
      if (entry.editId && ['applied', 'superseded', 'failed'].includes(entry.outcome ?? '')) {
        settled.set(entry.editId, entry.outcome as string);
      }
    }
    const unaccounted = accepted.filter((a) => !settled.has(a.editId));
    expect(unaccounted).toEqual([]);
    for (const [editId, outcome] of settled)
      if (outcome === 'failed') expect(failedEditIds.has(editId)).toBe(true);
    for (const m of failed) expect(m.MessageAttributes?.errorCode?.StringValue).toBeTruthy();

    // The faults really happened, and no secret reached the drain's output.
    const faulted = h.emulator.calls.filter((c) => !c.viaBatch && c.httpStatus !== 200).length;
    expect(faulted / h.emulator.calls.filter((c) => !c.viaBatch).length).toBeGreaterThan(0.1);
    expect(outputs.join('\n')).not.toContain(SECRET_MARKER);
  }, 150_000);
});
