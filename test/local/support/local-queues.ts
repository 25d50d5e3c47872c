import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll } from 'vitest';
import { type LocalSqs, startLocalSqs } from '../../../local/sqs.ts';
import { createQueues, LOCAL_AWS, type QueueUrls } from '../../../local/stack/local-aws.ts';

export interface LocalQueues {
  sqs: LocalSqs;
  /** The real SDK's client for the emulator. */
  client: SQSClient;
  queues: QueueUrls;
}

/**
 * The SQS emulator on 127.0.0.1 with the local stack's queues (the two FIFO queues and the standard
 * portal work queue), started before the describe's tests and stopped after them. Read its fields
 * inside tests and hooks (they are set in `beforeAll`).
 */
export function localQueues(): LocalQueues {
  const local = {} as LocalQueues;
  beforeAll(async () => {
    local.sqs = await startLocalSqs();
    local.client = new SQSClient({ ...LOCAL_AWS, endpoint: local.sqs.url });
    local.queues = await createQueues(local.sqs.url, 8);
  });
  afterAll(async () => {
    local.client.destroy();
    await local.sqs.close();
  });
  return local;
}
