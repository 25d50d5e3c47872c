import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import { BOT, type Harness, PREFIX, startHarness, webhookSecret } from '../support/harness.ts';
import {
  contextWith,
  drainHandler,
  editBody,
  eventOf,
  failedIds,
  receiveAll,
  recordingSqs,
  sqsRecord,
  visibilityChanges,
} from './support/fixtures.ts';

let h: Harness;

/** A fresh message authored by the harness bot. */
function message(text = 'Build: queued'): number {
  return h.emulator.addMessage({ botId: BOT.id, chatId: 12, text });
}
const updates = () => h.emulator.calls.filter((c) => c.method === UPDATE_METHOD);
const httpCalls = () => h.emulator.calls.filter((c) => !c.viaBatch);

async function drainFailedQueue() {
  const messages = await receiveAll(h.sqs, h.failedQueueUrl);
  const { DeleteMessageCommand } = await import('@aws-sdk/client-sqs');
  for (const m of messages) {
    await h.sqs.send(
      new DeleteMessageCommand({ QueueUrl: h.failedQueueUrl, ReceiptHandle: m.ReceiptHandle }),
    );
  }
  return messages;
}

beforeAll(async () => {
  h = await startHarness();
  // A portal whose Bitrix24 refuses connections, one with a tiny rate, one with room for 5/s.
  h.secretsManager.setSecret(`${PREFIX}down`, webhookSecret('http://127.0.0.1:9'));
  h.secretsManager.setSecret(
    `${PREFIX}trickle`,
    webhookSecret(h.emulator.url, { plan: undefined, limits: { burst: 1, perSecond: 0.01 } }),
  );
  h.secretsManager.setSecret(
    `${PREFIX}paced`,
    webhookSecret(h.emulator.url, { plan: undefined, limits: { burst: 1, perSecond: 5 } }),
  );
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  await drainFailedQueue();
});

describe('coalescing and packing', () => {
  it('sends K edits of one message as one command with their fields merged, and acknowledges all K', async () => {
    const id = message();
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    const bodies = [
      editBody(id, { message: 'Build: running' }),
      editBody(id, { keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/1' }] }),
      editBody(id, { message: 'Build: 50%' }),
      editBody(id, { urlPreview: false }),
      editBody(id, { message: 'Build: passed' }),
    ];
    const response = await drain(eventOf(bodies.map((b) => sqsRecord(b))));

    expect(failedIds(response)).toEqual([]);
    expect(httpCalls().map((c) => c.method)).toEqual(['batch']);
    expect(updates()).toHaveLength(1);
    const state = h.emulator.getMessage(id);
    expect(state?.text).toBe('Build: passed');
    expect(state?.history).toEqual(['Build: queued', 'Build: passed']);
    expect(state?.keyboard).toBeTruthy();
    expect(state?.urlPreview).toBe(false);
  });

  it('hands back every merged record, superseded ones too, when the merged edit does not settle', async () => {
    const id = message();
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    h.emulator.inject({ kind: 'server-error', method: 'batch' });
    const records = [editBody(id, { message: 'one' }), editBody(id, { message: 'two' })].map((b) =>
      sqsRecord(b),
    );
    const response = await drain(eventOf(records));
    expect(failedIds(response)).toEqual(records.map((r) => r.messageId));
    expect(h.emulator.getMessage(id)?.text).toBe('Build: queued');
  });

  it('packs several messages into one batch call and maps each command’s answer to its own records', async () => {
    const ours = message();
    const someoneElses = h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'written by a person' });
    const system = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'system', system: true });
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    const first = sqsRecord(editBody(ours, { message: 'a' }));
    const denied = sqsRecord(editBody(someoneElses, { message: 'hijack' }));
    const last = sqsRecord(editBody(ours, { message: 'b' }));
    const sys = sqsRecord(editBody(system, { message: 'edit a system message' }));
    const response = await drain(eventOf([first, denied, last, sys]));

    expect(httpCalls().map((c) => c.method)).toEqual(['batch']);
    expect(updates()).toHaveLength(3);
    expect(failedIds(response)).toEqual([]);
    expect(h.emulator.getMessage(ours)?.text).toBe('b');
    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    const codes = failed.map((m) => [
      JSON.parse(m.Body ?? '{}').messageId,
      m.MessageAttributes?.errorCode?.StringValue,
    ]);
    expect(codes.sort()).toEqual(
      [
        [someoneElses, 'ACCESS_DENIED'],
        [system, 'ACCESS_DENIED'],
      ].sort(),
    );
  });
});

describe('backoff handed to SQS', () => {
  const cases = [
    {
      fault: 'query-limit',
      receiveCount: 1,
      seconds: [2, 2],
      why: '1 s drain of one request + half the 1 s jitter',
    },
    {
      fault: 'operating-limit',
      receiveCount: 1,
      seconds: [63, 63],
      why: 'reset unknown: 60 s + half the 5 s jitter',
    },
    { fault: 'server-error', receiveCount: 3, seconds: [4, 4], why: 'half of 2 s × 2^2 (full jitter)' },
    { fault: 'html', receiveCount: 1, seconds: [1, 1], why: 'half of 2 s' },
    { fault: 'reset', receiveCount: 2, seconds: [2, 2], why: 'half of 2 s × 2' },
    {
      fault: 'overload',
      receiveCount: 1,
      seconds: [300, 303],
      why: 'until the 5 min circuit closes + jitter',
    },
  ] as const;

  it.each(cases)(
    'defers on $fault with the visibility timeout $seconds s ($why)',
    async ({ fault, receiveCount, seconds }) => {
      const id = message();
      const sqs = recordingSqs(h.sqsEndpoint);
      const drain = drainHandler(h, sqs.client);
      h.emulator.inject({ kind: fault, method: 'batch' });
      const records = [
        sqsRecord(editBody(id, { message: 'x' }), { receiveCount }),
        sqsRecord(editBody(id, { message: 'y' }), { receiveCount }),
      ];
      const response = await drain(eventOf(records));
      expect(failedIds(response)).toEqual(records.map((r) => r.messageId));
      const changes = visibilityChanges(sqs.commands);
      for (const r of records) {
        expect(changes.get(r.receiptHandle)).toBeGreaterThanOrEqual(seconds[0]);
        expect(changes.get(r.receiptHandle)).toBeLessThanOrEqual(seconds[1]);
      }
    },
  );

  it('defers on a slow answer past the call timeout like any ambiguous outcome', async () => {
    const id = message();
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, { options: { callTimeoutMs: 2_000 } });
    h.emulator.inject({ kind: 'slow', method: 'batch', delayMs: 2_300 });
    const record = sqsRecord(editBody(id, { message: 'late' }));
    const response = await drain(eventOf([record]));
    expect(failedIds(response)).toEqual([record.messageId]);
    expect(visibilityChanges(sqs.commands).get(record.receiptHandle)).toBe(1);
  });

  it('opens the portal’s circuit on OVERLOAD_LIMIT, emits PortalCircuitOpen, and calls nothing until it closes', async () => {
    const id = message();
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client);
    h.emulator.inject({ kind: 'overload', method: 'batch' });
    const written: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (write as (...args: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
    }) as typeof process.stdout.write;
    try {
      await drain(eventOf([sqsRecord(editBody(id, { message: 'blocked' }))]));
    } finally {
      process.stdout.write = write;
    }
    const emf = written
      .flatMap((line) => line.split('\n'))
      .filter((line) => line.includes('PortalCircuitOpen'));
    expect(emf.some((line) => JSON.parse(line).PortalCircuitOpen === 1)).toBe(true);

    h.emulator.clearCalls();
    const later = sqsRecord(editBody(id, { message: 'still blocked' }));
    const response = await drain(eventOf([later]));
    expect(failedIds(response)).toEqual([later.messageId]);
    expect(h.emulator.calls).toEqual([]);
    expect(visibilityChanges(sqs.commands).get(later.receiptHandle)).toBeGreaterThanOrEqual(299);
  });
});

describe('FIFO order, deadline and pacing', () => {
  it('hands back every later record of a message group once an earlier one is deferred', async () => {
    const id = message();
    const other = message();
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    // One producer groups edits by tenant rather than by message: the drain must still keep its order.
    const blocked = sqsRecord(editBody(5, { message: 'portal down' }, { portal: 'down' }), {
      groupId: 'tenant-1',
    });
    const behind = sqsRecord(editBody(id, { message: 'after the blocked one' }), { groupId: 'tenant-1' });
    const free = sqsRecord(editBody(other, { message: 'independent' }));
    const response = await drain(eventOf([blocked, behind, free]));
    expect(failedIds(response)).toEqual([blocked.messageId, behind.messageId]);
    expect(h.emulator.getMessage(other)?.text).toBe('independent');
  });

  it('hands work back with a short visibility, without calling, when the deadline leaves no room for a call', async () => {
    const id = message();
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, { options: { handBackDelayMs: 1_000 } });
    const record = sqsRecord(editBody(id, { message: 'no time' }));
    const response = await drain(eventOf([record]), contextWith(2_000 + 200 - 50));
    expect(failedIds(response)).toEqual([record.messageId]);
    expect(h.emulator.calls).toEqual([]);
    expect(visibilityChanges(sqs.commands).get(record.receiptHandle)).toBe(1);
  });

  it('waits for the next rate token when it comes before the deadline (pacing, not backoff)', async () => {
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, {
      options: { maxConcurrency: 1, apiRateShare: 0 },
    });
    const ids = [message(), message()];
    for (const id of ids) {
      const response = await drain(
        eventOf([sqsRecord(editBody(id, { message: 'paced' }, { portal: 'paced' }))]),
      );
      expect(failedIds(response)).toEqual([]);
    }
    const [a, b] = httpCalls();
    expect((b?.at ?? 0) - (a?.at ?? 0)).toBeGreaterThanOrEqual(190);
  });

  it('hands back with visibility = the wait when the next rate token is further away than the deadline', async () => {
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, { options: { maxConcurrency: 1, apiRateShare: 0 } });
    const first = sqsRecord(editBody(message(), { message: 'first' }, { portal: 'trickle' }));
    expect(failedIds(await drain(eventOf([first])))).toEqual([]);
    const second = sqsRecord(editBody(message(), { message: 'second' }, { portal: 'trickle' }));
    expect(failedIds(await drain(eventOf([second])))).toEqual([second.messageId]);
    // One request per 100 s: the token is about 100 s away.
    const seconds = visibilityChanges(sqs.commands).get(second.receiptHandle) ?? 0;
    expect(seconds).toBeGreaterThanOrEqual(99);
    expect(seconds).toBeLessThanOrEqual(100);
    expect(httpCalls()).toHaveLength(1);
  });
});

describe('nothing lost', () => {
  it('sends permanent failures and invalid bodies to the failed-edits queue with their reasons, then acknowledges them', async () => {
    const id = message();
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    const records = [
      sqsRecord('{"portal": "acme", "botId": 456', { groupId: 'raw-1' }),
      sqsRecord(JSON.stringify({ portal: 'acme', botId: 456, messageId: id, fields: {} }), {
        groupId: 'raw-2',
      }),
      sqsRecord(editBody(id, { message: 'unknown bot' }, { botId: 999 })),
      sqsRecord(editBody(id, { message: 'unknown portal' }, { portal: 'ghost' })),
    ];
    const response = await drain(eventOf(records));
    expect(failedIds(response)).toEqual([]);

    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    const byGroup = new Map(failed.map((m) => [m.Attributes?.MessageGroupId, m]));
    const reason = (group: string) => {
      const attributes = byGroup.get(group)?.MessageAttributes ?? {};
      return [attributes.errorCode?.StringValue, attributes.errorDescription?.StringValue];
    };
    expect(reason('raw-1')).toEqual(['INVALID_EDIT', 'body is not JSON']);
    expect(reason('raw-2')).toEqual([
      'INVALID_EDIT',
      'fields must contain at least one of message, attach, keyboard, urlPreview',
    ]);
    expect(reason(`acme:999:${id}`)).toEqual([
      'BOT_NOT_FOUND',
      'Bot 999 is not listed in the secret of portal "acme"',
    ]);
    expect(reason(`ghost:456:${id}`)[0]).toBe('PORTAL_NOT_FOUND');
    const ghost = byGroup.get(`ghost:456:${id}`);
    expect(JSON.parse(ghost?.Body ?? '')).toMatchObject({
      portal: 'ghost',
      messageId: id,
      fields: { message: 'unknown portal' },
    });
    expect(ghost?.MessageAttributes?.attempts?.StringValue).toBe('1');
    expect(ghost?.MessageAttributes?.firstRequestedAt?.StringValue).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(byGroup.get('raw-1')?.Body).toBe('{"portal": "acme", "botId": 456');
  });

  it('gives up with MAX_ATTEMPTS once an edit was received MAX_ATTEMPTS times and fails again', async () => {
    const id = message();
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, { options: { maxAttempts: 8 } });
    h.emulator.inject({ kind: 'server-error', method: 'batch' });
    const record = sqsRecord(editBody(id, { message: 'never' }), { receiveCount: 8 });
    expect(failedIds(await drain(eventOf([record])))).toEqual([]);
    const [failed] = await receiveAll(h.sqs, h.failedQueueUrl);
    expect(failed?.MessageAttributes?.errorCode?.StringValue).toBe('MAX_ATTEMPTS');
    expect(failed?.MessageAttributes?.errorDescription?.StringValue).toContain('INTERNAL_SERVER_ERROR');
    expect(failed?.MessageAttributes?.attempts?.StringValue).toBe('8');
  });

  it('refuses to drain anything without a failed-edits queue, failing the invocation so nothing is deleted', async () => {
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, {
      options: { failedEditsQueueUrl: undefined },
    });
    await expect(drain(eventOf([sqsRecord(editBody(message(), { message: 'x' }))]))).rejects.toThrow(
      /FAILED_EDITS_QUEUE_URL/,
    );
    expect(h.emulator.calls).toEqual([]);
  });

  it('keeps a failed edit in the edits queue when the failed-edits queue does not take it', async () => {
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, {
      options: { failedEditsQueueUrl: `${h.failedQueueUrl.replace('failed-edits', 'missing')}` },
    });
    const record = sqsRecord('not an edit', { groupId: 'raw-3' });
    expect(failedIds(await drain(eventOf([record])))).toEqual([record.messageId]);
  });
});
