import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { AppError } from '../errors.ts';
import { PORTAL_PATTERN } from '../portal-name.ts';
import { sqsBatches } from '../sqs/batches.ts';

/**
 * The portal work queue: a standard SQS queue of wake-ups, one pending per portal (elected on the
 * portal item), each delivered at its time by a per-message delay. Its body is
 * `{"portal":"<portal>","at":<epoch ms>}`; its MessageGroupId is the portal, so that SQS fair
 * queues keep one portal's backlog from delaying the others'.
 */
export interface Wakeup {
  portal: string;
  /** When the portal is due (epoch ms); delivered then, or at once when past. */
  at: number;
}

/** SQS's longest per-message delay: a later wake-up comes early, finds nothing due, and is set again. */
const MAX_DELAY_SECONDS = 900;

/** The portal work queue is not configured, or failed to take a wake-up. */
export class WakeupQueueError extends AppError {
  override name = 'WakeupQueueError';
  constructor(message: string) {
    super('PORTAL_QUEUE_UNAVAILABLE', message, 503);
  }
}

/** Whole seconds until `at`, rounded up (SQS delays are whole seconds), within SQS's range. */
export function delaySeconds(at: number, now: number): number {
  return Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil((at - now) / 1000)));
}

/** Where wake-ups go: the portal work queue in production, anything that delivers them in tests. */
export interface WakeupSender {
  /** Sends each wake-up; resolves with the portals whose wake-up the queue did not take. */
  send(wakeups: readonly Wakeup[]): Promise<string[]>;
}

/** The portal work queue through SQS (PORTAL_QUEUE_URL), ten wake-ups a request. */
export function sqsWakeups(options: {
  client: SQSClient;
  queueUrl: string | undefined;
  now: () => number;
}): WakeupSender {
  return {
    async send(wakeups) {
      const { client, queueUrl, now } = options;
      if (!queueUrl) throw new WakeupQueueError('The portal work queue is not configured (PORTAL_QUEUE_URL)');
      const refused: string[] = [];
      for (const { chunk } of sqsBatches(wakeups)) {
        try {
          const answer = await client.send(
            new SendMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: chunk.map((wakeup, i) => ({
                Id: String(i),
                MessageBody: JSON.stringify({ portal: wakeup.portal, at: wakeup.at }),
                MessageGroupId: wakeup.portal,
                DelaySeconds: delaySeconds(wakeup.at, now()),
              })),
            }),
          );
          for (const bad of answer.Failed ?? []) refused.push(chunk[Number(bad.Id)]?.portal ?? '');
        } catch {
          refused.push(...chunk.map((wakeup) => wakeup.portal));
        }
      }
      return refused;
    },
  };
}

/** A wake-up's body, or undefined when it is not one (it is then dropped: it names no portal to wake). */
export function parseWakeup(body: string): Wakeup | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { portal, at } = value as Record<string, unknown>;
  if (typeof portal !== 'string' || !PORTAL_PATTERN.test(portal)) return undefined;
  return { portal, at: typeof at === 'number' && Number.isFinite(at) ? at : 0 };
}
