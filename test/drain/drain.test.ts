import type { SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UPDATE_METHOD } from '../../lib/bitrix24/imbot.ts';
import { Ledger } from '../../lib/ledger/store.ts';
import { VirtualClock } from '../support/clock.ts';
import { BOT, type Harness, PREFIX, startHarness, webhookSecret } from '../support/harness.ts';
import { waitFor } from '../support/wait.ts';
import {
  contextWith,
  drainHandler,
  editBody,
  eventOf,
  failedIds,
  freshLedger,
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
const key = (messageId: number, portal = 'acme') => ({ portal, botId: BOT.id, messageId });
const updates = () => h.emulator.calls.filter((c) => c.method === UPDATE_METHOD);
const httpCalls = () => h.emulator.calls.filter((c) => !c.viaBatch);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The same SQS message delivered again (its retry signal came back), as SQS counts it. */
function redelivered(record: SQSRecord, receiveCount: number): SQSRecord {
  return {
    ...record,
    attributes: { ...record.attributes, ApproximateReceiveCount: String(receiveCount) },
  };
}

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
  it('applies K edits of one message as one update with their fields merged, and acknowledges all K', async () => {
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
    // One message is one command: it goes as a plain call, not inside `batch`.
    expect(httpCalls().map((c) => c.method)).toEqual([UPDATE_METHOD]);
    const state = h.emulator.getMessage(id);
    expect(state?.text).toBe('Build: passed');
    expect(state?.history).toEqual(['Build: queued', 'Build: passed']);
    expect(state?.keyboard).toBeTruthy();
    expect(state?.urlPreview).toBe(false);
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

  it('fills its call with the portal’s other dirty messages, those an earlier invocation left behind too', async () => {
    const [left, next] = [message(), message()];
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    const leftRecord = sqsRecord(editBody(left, { message: 'left behind' }));
    // No time for a call: the edit is only recorded, and its record comes back later.
    expect(failedIds(await drain(eventOf([leftRecord]), contextWith(1_000)))).toEqual([leftRecord.messageId]);
    expect(h.emulator.calls).toEqual([]);

    const response = await drain(eventOf([sqsRecord(editBody(next, { message: 'next' }))]));
    expect(failedIds(response)).toEqual([]);
    expect(httpCalls().map((c) => c.method)).toEqual(['batch']);
    expect(updates()).toHaveLength(2);
    expect(h.emulator.getMessage(left)?.text).toBe('left behind');
    expect(h.emulator.getMessage(next)?.text).toBe('next');

    // The retry signal of the message applied meanwhile is acknowledged without another call.
    h.emulator.clearCalls();
    expect(failedIds(await drain(eventOf([redelivered(leftRecord, 2)])))).toEqual([]);
    expect(h.emulator.calls).toEqual([]);
  });
});

describe('the records of a message that must wait', () => {
  it('acknowledges all but its last record, whose edits the ledger holds, and hands the last back with the delay', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, { ledger });
    h.emulator.inject({ kind: 'server-error' });
    const records = ['one', 'two', 'three'].map((text) => sqsRecord(editBody(id, { message: text })));
    const response = await drain(eventOf(records));

    const last = records[2] as SQSRecord;
    expect(failedIds(response)).toEqual([last.messageId]);
    expect([...visibilityChanges(sqs.commands)]).toEqual([[last.receiptHandle, 1]]);
    expect(h.emulator.getMessage(id)?.text).toBe('Build: queued');
    const state = await ledger.get(key(id));
    expect(state.desired.message?.value).toBe('three');
    expect(state.lastError?.code).toBe('INTERNAL_SERVER_ERROR');
  });

  it('applies the whole desired state when the retry signal comes back, edits of acknowledged records included', async () => {
    const id = message();
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    h.emulator.inject({ kind: 'server-error' });
    const keyboard = sqsRecord(editBody(id, { keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/2' }] }));
    const text = sqsRecord(editBody(id, { message: 'Build: passed' }));
    expect(failedIds(await drain(eventOf([keyboard, text])))).toEqual([text.messageId]);

    await sleep(1_100);
    expect(failedIds(await drain(eventOf([redelivered(text, 2)])))).toEqual([]);
    const state = h.emulator.getMessage(id);
    expect(state?.text).toBe('Build: passed');
    expect(state?.keyboard).toBeTruthy();
  });
});

describe('backoff handed to SQS', () => {
  const cases = [
    {
      fault: 'query-limit',
      settleMs: 5_000,
      seconds: [2, 2],
      why: '1 s drain of one request + half the 1 s jitter; no settle window, the request did not run',
    },
    {
      fault: 'operating-limit',
      settleMs: 1_000,
      seconds: [63, 63],
      why: 'reset unknown: 60 s + half the 5 s jitter',
    },
    {
      fault: 'server-error',
      settleMs: 1_000,
      seconds: [1, 1],
      why: 'half of 2 s, as long as the 1 s settle window',
    },
    {
      fault: 'server-error',
      settleMs: 5_000,
      seconds: [5, 5],
      why: 'the 5 s settle window from the call’s start outlasts half of 2 s',
    },
    {
      fault: 'html',
      settleMs: 3_000,
      seconds: [3, 3],
      why: 'the 3 s settle window: the request may have run',
    },
    { fault: 'reset', settleMs: 1_000, seconds: [1, 1], why: 'half of 2 s, as long as the settle window' },
    {
      fault: 'overload',
      settleMs: 1_000,
      seconds: [300, 303],
      why: 'until the 5 min circuit closes + jitter',
    },
  ] as const;

  it.each(cases)(
    'defers on $fault (settle window $settleMs ms) with the visibility timeout $seconds s ($why)',
    async ({ fault, settleMs, seconds }) => {
      const id = message();
      const sqs = recordingSqs(h.sqsEndpoint);
      const drain = drainHandler(h, sqs.client, { options: { ambiguousSettleMs: settleMs } });
      h.emulator.inject({ kind: fault });
      const records = [sqsRecord(editBody(id, { message: 'x' })), sqsRecord(editBody(id, { message: 'y' }))];
      const last = records[1] as SQSRecord;
      const response = await drain(eventOf(records));
      expect(failedIds(response)).toEqual([last.messageId]);
      const changes = visibilityChanges(sqs.commands);
      expect([...changes.keys()]).toEqual([last.receiptHandle]);
      expect(changes.get(last.receiptHandle)).toBeGreaterThanOrEqual(seconds[0]);
      expect(changes.get(last.receiptHandle)).toBeLessThanOrEqual(seconds[1]);
    },
  );

  it('backs off by the failed calls the ledger counts: the second server error in a row waits twice as long', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, { ledger });
    h.emulator.inject({ kind: 'server-error' }, 2);
    const record = sqsRecord(editBody(id, { message: 'x' }));
    expect(failedIds(await drain(eventOf([record])))).toEqual([record.messageId]);
    expect(visibilityChanges(sqs.commands).get(record.receiptHandle)).toBe(1);

    await sleep(1_100);
    sqs.commands.length = 0;
    const again = { ...redelivered(record, 2), receiptHandle: `${record.receiptHandle}-2` };
    expect(failedIds(await drain(eventOf([again])))).toEqual([record.messageId]);
    // Half of 2 s × 2: the second failed call of the message, whatever SQS's receive count says.
    expect(visibilityChanges(sqs.commands).get(again.receiptHandle)).toBe(2);
    expect((await ledger.get(key(id))).attempts).toBe(2);
  });

  it('keeps a message whose call timed out back until the settle window from the call’s start has passed', async () => {
    const id = message();
    const sqs = recordingSqs(h.sqsEndpoint);
    // The drain's own timeline: 2 s pass on it while the call is out.
    const clock = new VirtualClock();
    const drain = drainHandler(h, sqs.client, {
      clock,
      ledger: await freshLedger({ dynamo: h.dynamo, clock }),
      options: { callTimeoutMs: 2_000, ambiguousSettleMs: 5_000 },
    });
    h.emulator.inject({ kind: 'slow', delayMs: 2_300 });
    const record = sqsRecord(editBody(id, { message: 'late' }));
    const draining = drain(eventOf([record]));
    await waitFor(() => h.emulator.calls.length > 0, 10_000, 'the call');
    clock.advance(2_000);
    const response = await draining;
    expect(failedIds(response)).toEqual([record.messageId]);
    // The call started 2 s ago: 3 s remain of the 5 s window, more than the 1 s backoff.
    expect(visibilityChanges(sqs.commands).get(record.receiptHandle)).toBe(3);
    // It lands late, after the timeout, as the window allows for.
    await waitFor(() => h.emulator.getMessage(id)?.text === 'late', 10_000, 'the late landing');
  });

  it('opens the portal’s circuit on OVERLOAD_LIMIT, emits PortalCircuitOpen, and calls nothing until it closes', async () => {
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client);
    h.emulator.inject({ kind: 'overload' });
    const written: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (write as (...args: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
    }) as typeof process.stdout.write;
    try {
      await drain(eventOf([sqsRecord(editBody(message(), { message: 'blocked' }))]));
    } finally {
      process.stdout.write = write;
    }
    const emf = written
      .flatMap((line) => line.split('\n'))
      .filter((line) => line.includes('PortalCircuitOpen'));
    expect(emf.some((line) => JSON.parse(line).PortalCircuitOpen === 1)).toBe(true);

    // Another message of the portal, due at once, waits for the circuit too.
    h.emulator.clearCalls();
    const later = sqsRecord(editBody(message(), { message: 'still blocked' }));
    const response = await drain(eventOf([later]));
    expect(failedIds(response)).toEqual([later.messageId]);
    expect(h.emulator.calls).toEqual([]);
    expect(visibilityChanges(sqs.commands).get(later.receiptHandle)).toBeGreaterThanOrEqual(299);
  });
});

describe('independence, lease, deadline and pacing', () => {
  it('does not hold a message back behind a blocked portal’s message in the same event', async () => {
    const [behind, other] = [message(), message()];
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client);
    // (A producer that groups edits by tenant rather than by message is refused: INVALID_EDIT.)
    const blocked = sqsRecord(editBody(5, { message: 'portal down' }, { portal: 'down' }));
    const next = sqsRecord(editBody(behind, { message: 'after the blocked one' }));
    const free = sqsRecord(editBody(other, { message: 'independent' }));
    const response = await drain(eventOf([blocked, next, free]));
    expect(failedIds(response)).toEqual([blocked.messageId]);
    expect(h.emulator.getMessage(behind)?.text).toBe('after the blocked one');
    expect(h.emulator.getMessage(other)?.text).toBe('independent');
  });

  it('leaves a portal to the reconciler holding its lease: no call, the edit kept in the ledger, its record back soon', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, { ledger });
    expect((await ledger.acquireLease('acme', 'another-container', Date.now() + 10_000)).acquired).toBe(true);
    const record = sqsRecord(editBody(id, { message: 'while held' }));
    expect(failedIds(await drain(eventOf([record])))).toEqual([record.messageId]);
    expect(h.emulator.calls).toEqual([]);
    // Back after one linger and one call timeout: 0 + 2 s.
    expect(visibilityChanges(sqs.commands).get(record.receiptHandle)).toBe(2);
    expect((await ledger.get(key(id))).desired.message?.value).toBe('while held');

    await ledger.releaseLease('acme', 'another-container');
    expect(failedIds(await drain(eventOf([redelivered(record, 2)])))).toEqual([]);
    expect(h.emulator.getMessage(id)?.text).toBe('while held');
  });

  it('hands work back with a short visibility, without calling, when the deadline leaves no room for a call', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, { ledger, options: { handBackDelayMs: 1_000 } });
    const record = sqsRecord(editBody(id, { message: 'no time' }));
    const response = await drain(eventOf([record]), contextWith(2_000 + 200 - 50));
    expect(failedIds(response)).toEqual([record.messageId]);
    expect(h.emulator.calls).toEqual([]);
    expect(visibilityChanges(sqs.commands).get(record.receiptHandle)).toBe(1);
    expect((await ledger.get(key(id))).desired.message?.value).toBe('no time');
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
    for (const id of ids) expect(h.emulator.getMessage(id)?.text).toBe('paced');
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

  it('gives up with MAX_ATTEMPTS once the ledger counts maxAttempts failed calls of the message, sending its whole desired state', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, {
      ledger,
      options: { maxAttempts: 2 },
    });
    h.emulator.inject({ kind: 'server-error' }, 2);
    const keyboard = sqsRecord(editBody(id, { keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/3' }] }));
    const text = sqsRecord(editBody(id, { message: 'never' }));
    expect(failedIds(await drain(eventOf([keyboard, text])))).toEqual([text.messageId]);
    expect(await receiveAll(h.sqs, h.failedQueueUrl)).toEqual([]);

    await sleep(1_100);
    expect(failedIds(await drain(eventOf([redelivered(text, 2)])))).toEqual([]);
    expect(updates()).toHaveLength(2);
    const [failed, ...others] = await receiveAll(h.sqs, h.failedQueueUrl);
    expect(others).toEqual([]);
    expect(failed?.MessageAttributes?.errorCode?.StringValue).toBe('MAX_ATTEMPTS');
    expect(failed?.MessageAttributes?.errorDescription?.StringValue).toContain('INTERNAL_SERVER_ERROR');
    expect(failed?.MessageAttributes?.attempts?.StringValue).toBe('2');
    expect(JSON.parse(failed?.Body ?? '{}')).toMatchObject({
      messageId: id,
      fields: { message: 'never', keyboard: [{ TEXT: 'Logs', LINK: 'https://ci.example/3' }] },
    });
    const state = await ledger.get(key(id));
    expect(state.failedVersion).toBe(state.version);
    expect(state.lastError?.code).toBe('MAX_ATTEMPTS');
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

  it('keeps an invalid edit in the edits queue when the failed-edits queue does not take it', async () => {
    const drain = drainHandler(h, recordingSqs(h.sqsEndpoint).client, {
      options: { failedEditsQueueUrl: `${h.failedQueueUrl.replace('failed-edits', 'missing')}` },
    });
    const record = sqsRecord('not an edit', { groupId: 'raw-3' });
    expect(failedIds(await drain(eventOf([record])))).toEqual([record.messageId]);
  });

  it('keeps a message that failed for good dirty, its record in flight, when the failed-edits queue does not take it', async () => {
    const id = message();
    const ledger = await freshLedger(h);
    const sqs = recordingSqs(h.sqsEndpoint);
    const drain = drainHandler(h, sqs.client, {
      ledger,
      options: { failedEditsQueueUrl: `${h.failedQueueUrl.replace('failed-edits', 'missing')}` },
    });
    const record = sqsRecord(editBody(id, { message: 'unknown bot' }, { botId: 999 }));
    expect(failedIds(await drain(eventOf([record])))).toEqual([record.messageId]);
    expect(visibilityChanges(sqs.commands).get(record.receiptHandle)).toBe(1);
    const state = await ledger.get({ portal: 'acme', botId: 999, messageId: id });
    expect(state.failedVersion).toBeUndefined();
    expect(state.appliedVersion).toBeLessThan(state.version);
    expect(state.lastError?.code).toBe('FAILED_QUEUE_UNAVAILABLE');
    expect(state.lastError?.description).toContain('BOT_NOT_FOUND');
  });

  it('hands every record of a message back when the ledger cannot record its edits', async () => {
    const id = message();
    const sqs = recordingSqs(h.sqsEndpoint);
    const missing = new Ledger({ tableName: 'no-such-table', client: h.dynamo });
    const drain = drainHandler(h, sqs.client, { ledger: missing });
    const records = [sqsRecord(editBody(id, { message: 'a' })), sqsRecord(editBody(id, { message: 'b' }))];
    const response = await drain(eventOf(records));
    expect(failedIds(response)).toEqual(records.map((r) => r.messageId));
    const changes = visibilityChanges(sqs.commands);
    for (const r of records) expect(changes.get(r.receiptHandle)).toBe(1);
    expect(h.emulator.calls).toEqual([]);
  });
});
