/**
 * A Lambda-like SQS event source poller for local use and tests: it receives up to `batchSize`
 * messages with all attributes, builds the SQS event Lambda would (ApproximateReceiveCount,
 * SentTimestamp, MessageGroupId, SequenceNumber…), invokes the handler with a context whose
 * `getRemainingTimeInMillis` counts down from `timeoutMs`, then deletes the records the handler did
 * not report in `batchItemFailures` and leaves the others to come back. A handler that throws or
 * runs past `timeoutMs` has its whole batch left in the queue, as Lambda does.
 *
 *   const poller = startPoller({ client, queueUrl, handler, maxConcurrency: 2 });
 *   ...
 *   await poller.stop();
 *
 * It serves FIFO and standard queues alike: a standard queue's records simply carry no
 * MessageGroupId, SequenceNumber or MessageDeduplicationId.
 *
 * Run alone (`node local/poller.ts`), it drains EDITS_QUEUE_URL with functions/drain-edits.ts and,
 * when PORTAL_QUEUE_URL is set, reconciles the portals its wake-ups name with
 * functions/reconcile-portals.ts; DRAIN_MAX_CONCURRENCY slots each, each with its own handler
 * instance like separate Lambda containers.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

export type SqsHandler = (
  event: SQSEvent,
  context: Context,
) => Promise<SQSBatchResponse | undefined> | SQSBatchResponse | undefined;

export interface PollerOptions {
  client: SQSClient;
  queueUrl: string;
  /** The function to invoke; one instance shared by every slot. Give this or `handlerFor`. */
  handler?: SqsHandler;
  /** One handler per slot (called once per slot at start), like separate Lambda containers. */
  handlerFor?: (slot: number) => SqsHandler;
  /** Concurrent invocations, like an event source mapping's maximum concurrency. Default 2. */
  maxConcurrency?: number;
  /** Records per invocation, 1..10. Default 10. */
  batchSize?: number;
  /** The function's timeout: `getRemainingTimeInMillis` counts down from it. Default 30000. */
  timeoutMs?: number;
  /** The function's name in its context (logs). Default 'drain-edits'. */
  functionName?: string;
  /** Long-poll wait of each receive, 0..20 s. Default 1. */
  waitTimeSeconds?: number;
  /** Visibility timeout of received messages. Default: the queue's own. */
  visibilityTimeoutSeconds?: number;
  /** Stop after this many invocations in all. Default: no limit (call `stop()`). */
  maxInvocations?: number;
  /** Told about receive, delete and handler errors. Default: ignored (the counters still count). */
  onError?: (error: unknown) => void;
}

export interface PollerStats {
  invocations: number;
  records: number;
  deleted: number;
  /** Records reported in batchItemFailures, or left because the handler threw or timed out. */
  leftInQueue: number;
  handlerErrors: number;
  timeouts: number;
}

export interface Poller {
  readonly stats: Readonly<PollerStats>;
  /** Stops receiving; resolves once in-flight invocations have finished and been settled. */
  stop(): Promise<void>;
  /** Resolves when every slot has stopped (after `stop()` or `maxInvocations`). */
  readonly done: Promise<void>;
}

export function startPoller(options: PollerOptions): Poller {
  const {
    client,
    queueUrl,
    maxConcurrency = 2,
    batchSize = 10,
    timeoutMs = 30_000,
    functionName = 'drain-edits',
    waitTimeSeconds = 1,
    maxInvocations = Number.POSITIVE_INFINITY,
    onError = () => undefined,
  } = options;
  if (!options.handler === !options.handlerFor)
    throw new TypeError('Expected exactly one of handler or handlerFor');
  check('maxConcurrency', maxConcurrency, 1, 1000);
  check('batchSize', batchSize, 1, 10);
  check('timeoutMs', timeoutMs, 1, 15 * 60_000);
  check('waitTimeSeconds', waitTimeSeconds, 0, 20);
  const stats: PollerStats = {
    invocations: 0,
    records: 0,
    deleted: 0,
    leftInQueue: 0,
    handlerErrors: 0,
    timeouts: 0,
  };
  const stopping = new AbortController();
  let started = 0;
  const arn = client
    .send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))
    .then((r) => r.Attributes?.QueueArn ?? `arn:aws:sqs:local:000000000000:${queueUrl.split('/').pop()}`);

  async function slot(index: number): Promise<void> {
    const handler = options.handlerFor ? options.handlerFor(index) : (options.handler as SqsHandler);
    const eventSourceARN = await arn;
    while (!stopping.signal.aborted && started < maxInvocations) {
      // Claimed before receiving, so that concurrent slots never exceed maxInvocations.
      started += 1;
      let messages: Message[];
      try {
        const received = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: batchSize,
            WaitTimeSeconds: waitTimeSeconds,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
            ...(options.visibilityTimeoutSeconds === undefined
              ? {}
              : { VisibilityTimeout: options.visibilityTimeoutSeconds }),
          }),
          { abortSignal: stopping.signal },
        );
        messages = received.Messages ?? [];
      } catch (error) {
        started -= 1;
        if (!stopping.signal.aborted) onError(error);
        await delay(100);
        continue;
      }
      if (messages.length === 0) {
        started -= 1;
        if (waitTimeSeconds === 0) await delay(50);
        continue;
      }
      await invoke(handler, messages, eventSourceARN);
    }
  }

  async function invoke(handler: SqsHandler, messages: Message[], eventSourceARN: string): Promise<void> {
    stats.invocations += 1;
    stats.records += messages.length;
    const event: SQSEvent = { Records: messages.map((m) => toSqsRecord(m, eventSourceARN)) };
    const deadline = Date.now() + timeoutMs;
    let failed: Set<string>;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const result = await Promise.race([
        Promise.resolve(handler(event, lambdaContext(deadline, functionName))),
        timedOut,
      ]);
      if (result === 'timeout') {
        stats.timeouts += 1;
        failed = new Set(event.Records.map((r) => r.messageId));
      } else {
        failed = failuresOf(result, event);
      }
    } catch (error) {
      stats.handlerErrors += 1;
      onError(error);
      failed = new Set(event.Records.map((r) => r.messageId));
    } finally {
      clearTimeout(timer);
    }
    stats.leftInQueue += failed.size;
    const done = event.Records.filter((r) => !failed.has(r.messageId));
    if (done.length === 0) return;
    try {
      const response = await client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
        }),
      );
      stats.deleted += response.Successful?.length ?? 0;
    } catch (error) {
      onError(error);
    }
  }

  const done = Promise.all(Array.from({ length: maxConcurrency }, (_, i) => slot(i))).then(() => undefined);
  return {
    stats,
    done,
    stop() {
      stopping.abort();
      return done;
    },
  };
}

/** Lambda's rule: an unknown or empty itemIdentifier fails the whole batch; no response means all succeeded. */
function failuresOf(result: SQSBatchResponse | undefined, event: SQSEvent): Set<string> {
  const all = new Set(event.Records.map((r) => r.messageId));
  const items = result?.batchItemFailures ?? [];
  const failed = new Set<string>();
  for (const { itemIdentifier } of items) {
    if (!itemIdentifier || !all.has(itemIdentifier)) return all;
    failed.add(itemIdentifier);
  }
  return failed;
}

/** A received SQS message as the record of an SQS event, the way Lambda builds it. */
export function toSqsRecord(message: Message, eventSourceARN: string): SQSRecord {
  const a = message.Attributes ?? {};
  const attributes: SQSRecord['attributes'] = {
    ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
    SentTimestamp: a.SentTimestamp ?? String(Date.now()),
    SenderId: a.SenderId ?? '000000000000',
    ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    ...(a.MessageGroupId === undefined ? {} : { MessageGroupId: a.MessageGroupId }),
    ...(a.MessageDeduplicationId === undefined ? {} : { MessageDeduplicationId: a.MessageDeduplicationId }),
    ...(a.SequenceNumber === undefined ? {} : { SequenceNumber: a.SequenceNumber }),
  };
  const messageAttributes: SQSRecord['messageAttributes'] = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = {
      dataType: value.DataType ?? 'String',
      ...(value.StringValue === undefined ? {} : { stringValue: value.StringValue }),
    };
  }
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes,
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN,
    awsRegion: eventSourceARN.split(':')[3] ?? 'local',
  };
}

/** A Lambda context whose `getRemainingTimeInMillis` counts down to `deadline` (ms since the epoch). */
export function lambdaContext(deadline: number, functionName = 'drain-edits'): Context {
  const requestId = randomUUID();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/${requestId}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

function check(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Expected ${name} to be an integer from ${min} to ${max}, got ${String(value)}`);
  }
}

if (import.meta.main) {
  const { getConfig } = await import('../lib/config.ts');
  const drainEdits = await import('../functions/drain-edits.ts');
  const reconcilePortals = await import('../functions/reconcile-portals.ts');
  const { sqsClient } = await import('../lib/edits/queue.ts');
  const config = getConfig();
  if (!config.editsQueueUrl) throw new Error('Set EDITS_QUEUE_URL to the edits queue to drain');
  const onError = (error: unknown) => console.error('poller:', error instanceof Error ? error.name : error);
  const pollers = [
    startPoller({
      client: sqsClient(),
      queueUrl: config.editsQueueUrl,
      handlerFor: () => drainEdits.createHandler(drainEdits.defaultDeps) as SqsHandler,
      maxConcurrency: config.drainMaxConcurrency,
      onError,
    }),
  ];
  if (config.portalQueueUrl) {
    pollers.push(
      startPoller({
        client: sqsClient(),
        queueUrl: config.portalQueueUrl,
        handlerFor: () => reconcilePortals.createHandler(reconcilePortals.defaultDeps) as SqsHandler,
        functionName: 'reconcile-portals',
        maxConcurrency: config.drainMaxConcurrency,
        timeoutMs: 60_000,
        onError,
      }),
    );
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void Promise.all(pollers.map((poller) => poller.stop())));
  }
  await Promise.all(pollers.map((poller) => poller.done));
}
