import { randomUUID } from 'node:crypto';
import { type Message, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createHandler } from '../../../functions/drain-edits.ts';
import type { DrainDeps } from '../../../lib/drain/index.ts';
import type { ReconcileOptions } from '../../../lib/reconcile/options.ts';
import type { Reconciler } from '../../../lib/reconcile/reconcile.ts';
import { lambdaContext } from '../../../local/poller.ts';
import { AWS, BOT, freshLedger, type Harness, runDueWakeups, testReconciler } from '../../support/harness.ts';

export const ARN = 'arn:aws:sqs:us-east-1:000000000000:edits.fifo';

/** A real SQS client that also writes down every command it sends (name and input). */
export function recordingSqs(endpoint: string): {
  client: SQSClient;
  commands: Array<{ name: string; input: Record<string, unknown> }>;
} {
  const client = new SQSClient({ ...AWS, endpoint });
  const commands: Array<{ name: string; input: Record<string, unknown> }> = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push({ name: String(context.commandName), input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  return { client, commands };
}

/** The visibility timeouts the drain set, by receipt handle. */
export function visibilityChanges(
  commands: ReadonlyArray<{ name: string; input: Record<string, unknown> }>,
): Map<string, number> {
  const changes = new Map<string, number>();
  for (const { name, input } of commands) {
    if (name !== 'ChangeMessageVisibilityBatchCommand') continue;
    for (const entry of input.Entries as Array<{ ReceiptHandle: string; VisibilityTimeout: number }>) {
      changes.set(entry.ReceiptHandle, entry.VisibilityTimeout);
    }
  }
  return changes;
}

export interface EditBody {
  portal: string;
  botId: number;
  messageId: number;
  fields: Record<string, unknown>;
  editId?: string;
  requestedAt?: string;
}

export function editBody(
  messageId: number,
  fields: Record<string, unknown>,
  extra: Partial<EditBody> = {},
): EditBody {
  return { portal: 'acme', botId: BOT.id, messageId, fields, editId: randomUUID(), ...extra };
}

export function groupOf(body: { portal: string; botId: number; messageId: number }): string {
  return `${body.portal}:${body.botId}:${body.messageId}`;
}

let sequence = 0;

/**
 * An SQS record as Lambda would hand it over (several of one group may sit in one event, as in real
 * SQS), with a FIFO SequenceNumber that grows with every record made: queue order breaks ties
 * between edits sent in the same millisecond.
 */
export function sqsRecord(
  body: EditBody | string,
  options: { groupId?: string; receiveCount?: number; messageId?: string; receiptHandle?: string } = {},
): SQSRecord {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const groupId = options.groupId ?? (typeof body === 'string' ? 'acme:raw' : groupOf(body));
  const messageId = options.messageId ?? randomUUID();
  sequence += 1;
  return {
    messageId,
    receiptHandle: options.receiptHandle ?? `handle-${messageId}`,
    body: text,
    attributes: {
      ApproximateReceiveCount: String(options.receiveCount ?? 1),
      SentTimestamp: String(Date.now()),
      SenderId: '000000000000',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
      MessageGroupId: groupId,
      MessageDeduplicationId: messageId,
      SequenceNumber: String(sequence).padStart(20, '0'),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: ARN,
    awsRegion: 'us-east-1',
  };
}

export function eventOf(records: SQSRecord[]): SQSEvent {
  return { Records: records };
}

export function contextWith(remainingMs = 30_000): Context {
  return lambdaContext(Date.now() + remainingMs);
}

/**
 * Test defaults: short call timeout and margin; no linger and no cadence, so that a test's calls go
 * out at once; the shortest settle window allowed (1 s).
 */
export function testOptions(h: Harness, overrides: Partial<ReconcileOptions> = {}): ReconcileOptions {
  return {
    failedEditsQueueUrl: h.failedQueueUrl,
    callTimeoutMs: 2_000,
    deadlineMarginMs: 200,
    batchLingerMs: 0,
    messageMinIntervalMs: 0,
    ambiguousSettleMs: 1_000,
    ...overrides,
  };
}

/** A ledger on a table of its own: one test's dirty messages never fill another test's calls. */
export { freshLedger };

export type Invoke = (event: SQSEvent, context?: Context) => Promise<SQSBatchResponse>;

/**
 * The drain Lambda handler as tests invoke it: the harness's edits queue for visibility changes, its
 * in-memory portal work queue for wake-ups, and `ledger`, or else a fresh ledger made on the first
 * invocation.
 */
export function drainHandler(
  h: Harness,
  sqs: SQSClient,
  overrides: Omit<Partial<DrainDeps>, 'options'> & { options?: Partial<ReconcileOptions> } = {},
): Invoke {
  return stagesHandler(h, sqs, overrides, false);
}

/**
 * The drain as `drainHandler` has it, followed by what the portal work queue's consumer does with
 * the wake-ups it left (a reconciler on the same ledger, the same options): edits applied end to end.
 */
export function drainAndWake(
  h: Harness,
  sqs: SQSClient,
  overrides: Omit<Partial<DrainDeps>, 'options'> & { options?: Partial<ReconcileOptions> } = {},
): Invoke {
  return stagesHandler(h, sqs, overrides, true);
}

function stagesHandler(
  h: Harness,
  sqs: SQSClient,
  overrides: Omit<Partial<DrainDeps>, 'options'> & { options?: Partial<ReconcileOptions> },
  wake: boolean,
): Invoke {
  const { options, ledger, ...rest } = overrides;
  // One container: its drain handler and its reconciler (with its memory of each portal) are kept.
  let made: Promise<{ handler: ReturnType<typeof createHandler>; reconciler: Reconciler }> | undefined;
  return async (event, context = contextWith()) => {
    made ??= (async () => {
      const used = ledger ?? (await freshLedger(h));
      const handler = createHandler({
        sqs,
        editsQueueUrl: h.editsQueueUrl,
        wakeups: h.wakeups,
        ...rest,
        ledger: used,
        options: testOptions(h, options),
      });
      return { handler, reconciler: testReconciler(h, used, testOptions(h, options)) };
    })();
    const stage = await made;
    const response = (await stage.handler(event, context)) as SQSBatchResponse;
    if (wake) await runDueWakeups(h, stage.reconciler);
    return response;
  };
}

/** Receives every message currently visible in a queue (bounded), with all attributes. */
export async function receiveAll(sqs: SQSClient, queueUrl: string, max = 100): Promise<Message[]> {
  const messages: Message[] = [];
  for (let i = 0; i < 20 && messages.length < max; i += 1) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
        VisibilityTimeout: 60,
      }),
    );
    if (Messages.length === 0) break;
    messages.push(...Messages);
  }
  return messages;
}

export function failedIds(response: SQSBatchResponse): string[] {
  return response.batchItemFailures.map((f) => f.itemIdentifier);
}

/** Messages visible plus in flight (delayed ones included). */
export async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<number> {
  const { GetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0)
  );
}

/** A FIFO queue with a short visibility timeout, so that left records come back quickly. */
export async function createFifoQueue(sqs: SQSClient, name: string, visibilitySeconds = 2): Promise<string> {
  const { CreateQueueCommand } = await import('@aws-sdk/client-sqs');
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({
      QueueName: `${name}.fifo`,
      Attributes: { FifoQueue: 'true', VisibilityTimeout: String(visibilitySeconds) },
    }),
  );
  return QueueUrl as string;
}
