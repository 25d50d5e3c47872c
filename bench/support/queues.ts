import { randomUUID } from 'node:crypto';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';

/**
 * In-process models of the two queues as SQS delivers them, for benchmarks that need their real
 * delivery order, which the SQS emulator does not reproduce (it hands out one record per FIFO group
 * per receive):
 * - a FIFO queue hands a group's records out together (up to 10, in order), then fills the receive
 *   with other groups' records; a group is locked while any of its records is in flight;
 * - a standard queue delivers each message once its delay has passed, in no particular order.
 * A record reported failed comes back after its visibility timeout; the others are deleted.
 */

interface Held {
  record: SQSRecord;
  group: string;
  visibleAt: number;
}

export class FifoQueueModel {
  readonly #arn: string;
  readonly #waiting: Held[] = [];
  readonly #locked = new Map<string, number>();
  #sequence = 0;
  /** Records sent, ever. */
  sent = 0;

  constructor(name = 'edits.fifo') {
    this.#arn = `arn:aws:sqs:us-east-1:000000000000:${name}`;
  }

  send(body: unknown, group: string): void {
    this.#sequence += 1;
    this.sent += 1;
    const id = randomUUID();
    const now = Date.now();
    this.#waiting.push({
      group,
      visibleAt: now,
      record: {
        messageId: id,
        receiptHandle: `model-${id}`,
        body: JSON.stringify(body),
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: String(now),
          SenderId: 'bench',
          ApproximateFirstReceiveTimestamp: String(now),
          MessageGroupId: group,
          MessageDeduplicationId: id,
          SequenceNumber: String(this.#sequence).padStart(20, '0'),
        },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: this.#arn,
        awsRegion: 'us-east-1',
      },
    });
  }

  /** Up to 10 visible records: one group's together first, then other groups', none of a locked group. */
  receive(max = 10): SQSRecord[] {
    const now = Date.now();
    const taken: Held[] = [];
    const skipped = new Set<string>();
    for (const held of this.#waiting) {
      if (taken.length >= max) break;
      if (this.#locked.has(held.group) || skipped.has(held.group)) continue;
      // A group's records go out in order: one not yet visible holds the rest of its group back.
      if (held.visibleAt > now) {
        skipped.add(held.group);
        continue;
      }
      taken.push(held);
    }
    for (const held of taken) {
      this.#waiting.splice(this.#waiting.indexOf(held), 1);
      this.#locked.set(held.group, (this.#locked.get(held.group) ?? 0) + 1);
    }
    this.#inFlight.push(...taken);
    return taken.map((held) => held.record);
  }

  readonly #inFlight: Held[] = [];

  /** Settles a received event: failed records come back after `visibilityMs`, the others are deleted. */
  settle(records: readonly SQSRecord[], response: SQSBatchResponse | undefined, visibilityMs: number): void {
    const failed = new Set(
      (response?.batchItemFailures ?? records.map((r) => ({ itemIdentifier: r.messageId }))).map(
        (f) => f.itemIdentifier,
      ),
    );
    for (const record of records) {
      const index = this.#inFlight.findIndex((held) => held.record.messageId === record.messageId);
      const [held] = this.#inFlight.splice(index, 1);
      if (!held) continue;
      const count = (this.#locked.get(held.group) ?? 1) - 1;
      if (count <= 0) this.#locked.delete(held.group);
      else this.#locked.set(held.group, count);
      if (failed.has(record.messageId)) {
        const receives = Number(held.record.attributes.ApproximateReceiveCount) + 1;
        held.record = {
          ...held.record,
          attributes: { ...held.record.attributes, ApproximateReceiveCount: String(receives) },
        };
        held.visibleAt = Date.now() + visibilityMs;
        // Back in its place: first in its group.
        const at = this.#waiting.findIndex((w) => w.group === held.group);
        this.#waiting.splice(at === -1 ? this.#waiting.length : at, 0, held);
      }
    }
  }

  get depth(): number {
    return this.#waiting.length + this.#inFlight.length;
  }
}

/** The portal work queue: a standard queue with per-message delays. */
export class DelayQueueModel {
  readonly #waiting: Array<{ record: SQSRecord; visibleAt: number }> = [];
  /** Messages sent, ever. */
  sent = 0;

  /** Sends a body due `delaySeconds` from now (SQS's whole seconds). */
  send(body: string, delaySeconds: number): void {
    this.sent += 1;
    const id = randomUUID();
    const now = Date.now();
    this.#waiting.push({
      visibleAt: now + delaySeconds * 1000,
      record: {
        messageId: id,
        receiptHandle: `model-${id}`,
        body,
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: String(now),
          SenderId: 'bench',
          ApproximateFirstReceiveTimestamp: String(now),
        },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:portal-work',
        awsRegion: 'us-east-1',
      },
    });
  }

  receive(max = 10): SQSRecord[] {
    const now = Date.now();
    const due = this.#waiting.filter((w) => w.visibleAt <= now).slice(0, max);
    for (const w of due) this.#waiting.splice(this.#waiting.indexOf(w), 1);
    return due.map((w) => w.record);
  }

  /** Failed records come back after `visibilityMs`. */
  settle(records: readonly SQSRecord[], response: SQSBatchResponse | undefined, visibilityMs: number): void {
    const failed = new Set(
      (response?.batchItemFailures ?? records.map((r) => ({ itemIdentifier: r.messageId }))).map(
        (f) => f.itemIdentifier,
      ),
    );
    for (const record of records) {
      if (failed.has(record.messageId)) this.#waiting.push({ record, visibleAt: Date.now() + visibilityMs });
    }
  }

  get depth(): number {
    return this.#waiting.length;
  }
}

type Queue = Pick<FifoQueueModel, 'receive' | 'settle'>;

/**
 * An event source mapping: `concurrency` slots, each receiving up to `batchSize` records and
 * invoking `handler`, until `stop()`. Polls every `idleMs` when the queue has nothing visible.
 */
export function consume(
  queue: Queue,
  /** The handler of slot `i` (one Lambda container each). */
  handlerFor: (slot: number) => (records: SQSRecord[]) => Promise<SQSBatchResponse | undefined>,
  options: { concurrency: number; batchSize?: number; visibilityMs?: number; idleMs?: number },
): { stop: () => Promise<void>; invocations: () => number } {
  let stopped = false;
  let invocations = 0;
  const slot = async (_: unknown, index: number) => {
    const handler = handlerFor(index);
    while (!stopped) {
      const records = queue.receive(options.batchSize ?? 10);
      if (records.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, options.idleMs ?? 10));
        continue;
      }
      invocations += 1;
      let response: SQSBatchResponse | undefined;
      try {
        response = await handler(records);
      } catch {
        response = undefined;
      }
      queue.settle(records, response, options.visibilityMs ?? 1_000);
    }
  };
  const slots = Array.from({ length: options.concurrency }, slot);
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(slots);
    },
    invocations: () => invocations,
  };
}
