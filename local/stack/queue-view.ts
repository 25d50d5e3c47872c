/**
 * A read-only view of the edits, failed-edits and portal work queues for the sandbox page, from the
 * SQS emulator's non-destructive inspection endpoint (`GET /_fauxqs/queues/<name>`): looking never
 * receives a message, so it never changes what the drain or the reconcile sees.
 */
export interface PendingEdit {
  editId: string;
  messageId: number | undefined;
  /** The edit's new text, shortened for the panel. */
  text: string | undefined;
  receiveCount: number;
  state: 'waiting' | 'in-flight';
  /** For in-flight edits: when they become visible again unless the drain deletes them first. */
  visibleAt?: string;
}

export interface FailedEdit {
  editId: string;
  messageId: number | undefined;
  text: string | undefined;
  errorCode: string;
  errorDescription: string;
  attempts: string | undefined;
}

/** The portal work queue's depth: portal wake-ups, by where they are. */
export interface WakeupDepth {
  /** Due now, waiting for the reconcile to receive them. */
  ready: number;
  /** Put on the queue with a delay: due later. */
  delayed: number;
  /** Received by a reconcile invocation now. */
  inFlight: number;
}

export interface QueueView {
  /** Edit records in the edits queue, ready or delayed. */
  waiting: number;
  inFlight: number;
  failed: number;
  pending: PendingEdit[];
  failures: FailedEdit[];
  wakeups: WakeupDepth;
}

interface InspectedMessage {
  messageId: string;
  body: string;
  approximateReceiveCount: number;
  messageAttributes?: Record<string, { StringValue?: string; DataType?: string }>;
}

interface InspectedQueue {
  messages: {
    ready: InspectedMessage[];
    delayed: InspectedMessage[];
    inflight: Array<{ message: InspectedMessage; visibilityDeadline: number }>;
  };
}

const LIST_LIMIT = 20;
const TEXT_LIMIT = 80;

function describeBody(body: string): Pick<PendingEdit, 'editId' | 'messageId' | 'text'> | undefined {
  try {
    const edit = JSON.parse(body) as {
      editId?: unknown;
      messageId?: unknown;
      fields?: { message?: unknown };
    };
    const text = typeof edit.fields?.message === 'string' ? edit.fields.message : undefined;
    return {
      editId: typeof edit.editId === 'string' ? edit.editId : '',
      messageId: typeof edit.messageId === 'number' ? edit.messageId : undefined,
      text: text !== undefined && text.length > TEXT_LIMIT ? `${text.slice(0, TEXT_LIMIT - 1)}…` : text,
    };
  } catch {
    return undefined;
  }
}

async function inspect(sqsUrl: string, queueName: string, signal: AbortSignal): Promise<InspectedQueue> {
  const response = await fetch(`${sqsUrl}/_fauxqs/queues/${encodeURIComponent(queueName)}`, { signal });
  if (!response.ok) throw new Error(`The SQS emulator answered ${response.status} for queue ${queueName}`);
  return (await response.json()) as InspectedQueue;
}

/** The queues' names (local/stack/local-aws.ts QUEUES). */
export async function readQueueView(
  sqsUrl: string,
  queues: { edits: string; failedEdits: string; portalWork: string },
): Promise<QueueView> {
  const signal = AbortSignal.timeout(2_000);
  const [edits, failed, portalWork] = await Promise.all([
    inspect(sqsUrl, queues.edits, signal),
    inspect(sqsUrl, queues.failedEdits, signal),
    inspect(sqsUrl, queues.portalWork, signal),
  ]);
  const waiting = [...edits.messages.ready, ...edits.messages.delayed];
  const pending: PendingEdit[] = [];
  for (const message of waiting) {
    const described = describeBody(message.body);
    if (described)
      pending.push({ ...described, receiveCount: message.approximateReceiveCount, state: 'waiting' });
  }
  for (const { message, visibilityDeadline } of edits.messages.inflight) {
    const described = describeBody(message.body);
    if (described) {
      pending.push({
        ...described,
        receiveCount: message.approximateReceiveCount,
        state: 'in-flight',
        visibleAt: new Date(visibilityDeadline).toISOString(),
      });
    }
  }
  const failedMessages = [
    ...failed.messages.ready,
    ...failed.messages.delayed,
    ...failed.messages.inflight.map((entry) => entry.message),
  ];
  const failures: FailedEdit[] = failedMessages.map((message) => {
    const attributes = message.messageAttributes ?? {};
    const described = describeBody(message.body);
    return {
      editId: described?.editId || message.messageId,
      messageId: described?.messageId,
      text: described?.text,
      errorCode: attributes.errorCode?.StringValue ?? 'UNKNOWN',
      errorDescription: attributes.errorDescription?.StringValue ?? 'No reason recorded',
      attempts: attributes.attempts?.StringValue,
    };
  });
  return {
    waiting: waiting.length,
    inFlight: edits.messages.inflight.length,
    failed: failedMessages.length,
    pending: pending.slice(0, LIST_LIMIT),
    failures: failures.slice(-LIST_LIMIT).reverse(),
    wakeups: {
      ready: portalWork.messages.ready.length,
      delayed: portalWork.messages.delayed.length,
      inFlight: portalWork.messages.inflight.length,
    },
  };
}
