import { CreateQueueCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateMessage } from '../../lib/api/update-message.ts';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import { Ledger } from '../../lib/ledger/messages.ts';
import { isDirty, isFailed } from '../../lib/ledger/model.ts';
import { PortalCircuits } from '../../lib/pacing/circuit.ts';
import { Reconciler } from '../../lib/reconcile/reconcile.ts';
import { sqsWakeups } from '../../lib/schedule/portal-queue.ts';
import { BOT, type Harness, PREFIX, SECRET_MARKER, startHarness, webhookSecret } from '../support/harness.ts';
import { seededRandom } from '../support/random.ts';
import { waitFor } from '../support/wait.ts';
import { createFifoQueue, queueDepth, receiveAll, testOptions } from './support/fixtures.ts';
import { spawnWorker, type Worker } from './support/spawn-worker.ts';

const MESSAGES = 100;
const PRODUCERS = 4;
const EDITS_PER_PRODUCER = 500;
const KILLS = 3;

type UpdateParams = { fields?: { message?: string } };

interface Accepted {
  editId: string;
  messageId: number;
  text: string;
  /** When the edit was accepted (its requestedAt, in ms): the order the ledger keeps. */
  at: number;
}

const API_EDITS = 200;

/** A message's history with, for each text, the requests that carried it (sequence, arrival ms, status). */
function historyOf(id: number, history: readonly string[]): string {
  const carried = (text: string) =>
    h.emulator.calls
      .filter((c) => c.method === UPDATE_METHOD && (c.params as UpdateParams).fields?.message === text)
      .map(
        (c) =>
          `#${c.seq} at ${c.at}${c.viaBatch ? ' in batch' : ''} -> ${c.httpStatus}${c.code ? ` ${c.code}` : ''}`,
      );
  return `message ${id}: history ${JSON.stringify(history)}; requests: ${JSON.stringify(
    Object.fromEntries(history.slice(1).map((text) => [text, carried(text)])),
  )}`;
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
  it('leaves every message at its last accepted edit across queue producers and API callers, with the drain, the reconcile and the sweep SIGKILLed, never applies an older edit after a newer one, and accounts for every edit', async () => {
    const ledger = new Ledger({ tableName: h.ledgerTable, client: h.dynamo });
    const queueUrl = await createFifoQueue(h.sqs, 'convergence', 3);
    const portalQueue = await h.sqs.send(
      new CreateQueueCommand({ QueueName: 'convergence-work', Attributes: { VisibilityTimeout: '3' } }),
    );
    const portalQueueUrl = portalQueue.QueueUrl as string;
    const ids = Array.from({ length: MESSAGES }, () =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'initial' }),
    );
    const settings = {
      sqsEndpoint: h.sqsEndpoint,
      secretsEndpoint: h.secretsManager.url,
      secretPrefix: PREFIX,
      dynamoEndpoint: h.dynamoEndpoint,
      ledgerTable: h.ledgerTable,
      queueUrl,
      portalQueueUrl,
      maxConcurrency: 2,
      timeoutMs: 2_500,
      circuit: { openMs: 300, maxOpenMs: 1_000 },
      // The sweep runs beside the drain and the reconcile in the worker, so every SIGKILL kills it
      // too (mid-sweep at times); a wake-up 2 s overdue counts as lost here.
      sweepEveryMs: 700,
      sweepGraceMs: 2_000,
      options: testOptions(h, {
        callTimeoutMs: 1_000,
        deadlineMarginMs: 200,
        handBackDelayMs: 0,
        maxDeferralMs: 1_000,
        serverBackoff: { baseMs: 100, capMs: 1_000 },
        maxAttempts: 50,
      }),
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
    // One clock for every producer and the API: each edit is stamped 1 ms after the one before, so
    // the test knows the order of acceptance exactly, whatever order the edits then travel in.
    let clock = Date.now() - 60_000;
    const stamp = () => {
      clock += 1;
      return new Date(clock);
    };
    const producer = async (p: number) => {
      const random = seededRandom(p + 1);
      for (let chunk = 0; chunk < EDITS_PER_PRODUCER / 10; chunk += 1) {
        const entries = Array.from({ length: 10 }, (_, i) => {
          const messageId = ids[Math.floor(random() * ids.length)] as number;
          const editId = `p${p}-${chunk * 10 + i}`;
          const text = `${messageId}/${editId}`;
          const requestedAt = stamp();
          const body = {
            portal: 'conv',
            botId: BOT.id,
            messageId,
            fields: { message: text },
            editId,
            requestedAt: requestedAt.toISOString(),
          };
          return {
            Id: String(i),
            MessageBody: JSON.stringify(body),
            MessageGroupId: `conv:${BOT.id}:${messageId}`,
            MessageDeduplicationId: editId,
            meta: { editId, messageId, text, at: requestedAt.getTime() },
          };
        });
        const response = await h.sqs.send(
          new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries.map(({ meta: _, ...e }) => e) }),
        );
        for (const ok of response.Successful ?? []) {
          const { meta } = entries[Number(ok.Id)] as (typeof entries)[number];
          accepted.push(meta);
        }
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    };
    // Callers of the update API edit the same messages meanwhile, through its own reconciler.
    const api = new Reconciler({
      ledger,
      gateway: h.gateway,
      sqs: h.sqs,
      wakeups: sqsWakeups({ client: h.sqs, queueUrl: portalQueueUrl, now: Date.now }),
      options: settings.options,
      // The circuit travels with the lease: every container here keeps the test's short one.
      circuits: new PortalCircuits(settings.circuit),
    });
    const apiCaller = async () => {
      const random = seededRandom(99);
      for (let n = 0; n < API_EDITS; n += 1) {
        const messageId = ids[Math.floor(random() * ids.length)] as number;
        const editId = `api-${n}`;
        const text = `${messageId}/${editId}`;
        let at = 0;
        const answer = await updateMessage(
          {
            portal: 'conv',
            body: { botId: BOT.id, messageId, fields: { message: text } },
            preferAsync: false,
            idempotencyKey: undefined,
          },
          {
            config: { defaultPortal: undefined },
            gateway: h.gateway,
            reconciler: api,
            newId: () => editId,
            now: () => {
              const date = stamp();
              at = date.getTime();
              return date;
            },
          },
        );
        // 200 applied, 202 recorded: both accepted. Anything else was refused and is not counted.
        if (answer.statusCode === 200 || answer.statusCode === 202)
          accepted.push({ editId, messageId, text, at });
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const producing = Promise.all([...Array.from({ length: PRODUCERS }, (_, p) => producer(p)), apiCaller()]);

    for (let kill = 0; kill < KILLS; kill += 1) {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      h.emulator.inject({ kind: 'overload' }, 2);
      await worker.kill();
      outputs.push(worker.output());
      worker = spawnWorker(settings);
      await worker.ready;
    }
    await producing;
    expect(accepted.filter((a) => !a.editId.startsWith('api-'))).toHaveLength(PRODUCERS * EDITS_PER_PRODUCER);
    expect(accepted.filter((a) => a.editId.startsWith('api-')).length).toBeGreaterThan(API_EDITS / 2);
    await waitFor(async () => (await queueDepth(h.sqs, queueUrl)) === 0, 90_000, 'the edits queue to empty');
    h.emulator.setRandomFaults(null);
    // The last worker's reconcile and sweep bring every message to its desired state: wake-ups a
    // killed worker took with it come back, or the sweep finds them overdue.
    await waitFor(
      async () => (await ledger.nextDueAt('conv')) === undefined,
      90_000,
      'no dirty message left',
    );
    await worker.stop();
    outputs.push(worker.output());
    const faulted = h.emulator.calls.filter((c) => !c.viaBatch && c.httpStatus !== 200).length;
    const httpCalls = h.emulator.calls.filter((c) => !c.viaBatch).length;

    const last = new Map<number, Accepted>();
    for (const a of accepted) if ((last.get(a.messageId)?.at ?? -1) < a.at) last.set(a.messageId, a);
    const failed = await receiveAll(h.sqs, h.failedQueueUrl, 2_000);
    for (const m of failed) {
      expect(m.MessageAttributes?.errorCode?.StringValue).toBeTruthy();
      expect(m.MessageAttributes?.errorDescription?.StringValue).toBeTruthy();
    }
    const failedEditIds = new Set(
      failed.flatMap((m) => (m.MessageAttributes?.editIds?.StringValue ?? '').split(',')),
    );
    const states = await ledger.getMany(
      ids.map((messageId) => ({ portal: 'conv', botId: BOT.id, messageId })),
    );

    // Nothing accepted is lost: the ledger's desired state of every message is its last accepted
    // edit, records acknowledged before their message was applied included; none is left dirty.
    for (const id of ids) {
      const state = states.get(`conv:${BOT.id}:${id}`);
      const lastEdit = last.get(id);
      expect(state && isDirty(state)).toBeFalsy();
      if (lastEdit) expect(state?.desired.message?.editId).toBe(lastEdit.editId);
    }

    // Every message ends at its last accepted edit (or that edit is in the failed-edits queue with
    // its reason), and its history never goes back in time.
    const rank = new Map(accepted.map((a) => [a.text, a.at]));
    const endsAtLast = new Set<number>();
    for (const id of ids) {
      const message = h.emulator.getMessage(id);
      const lastEdit = last.get(id);
      const state = states.get(`conv:${BOT.id}:${id}`);
      if (lastEdit && state && isFailed(state)) expect(failedEditIds.has(lastEdit.editId)).toBe(true);
      else if (lastEdit) expect(message?.text).toBe(lastEdit.text);
      if (lastEdit && message?.text === lastEdit.text) endsAtLast.add(id);
      const order = (message?.history ?? []).slice(1).map((text) => rank.get(text) ?? -1);
      const ordered = order.every((at, i) => at >= 0 && (i === 0 || at >= (order[i - 1] as number)));
      expect(ordered, ordered ? '' : historyOf(id, message?.history ?? [])).toBe(true);
    }

    // Every accepted edit is applied or superseded (its message ends at its last edit), or failed:
    // it, or the later edit that superseded it, is in the failed-edits queue with its reason.
    const unaccounted = accepted.filter((a) => {
      const lastEdit = last.get(a.messageId) as Accepted;
      return !(
        endsAtLast.has(a.messageId) ||
        failedEditIds.has(a.editId) ||
        failedEditIds.has(lastEdit.editId)
      );
    });
    expect(unaccounted).toEqual([]);

    // The faults really happened, and no secret reached the drain's output.
    expect(faulted / httpCalls).toBeGreaterThan(0.1);
    expect(outputs.join('\n')).not.toContain(SECRET_MARKER);
  }, 150_000);
});
