import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler, type RefreshHandlerDeps } from '../../functions/refresh-status.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { lambdaContext } from '../support/events.ts';
import { type Harness, startHarness } from '../support/harness.ts';
import { depsFor, drainQueue, freshLedger, seedMessages, spec } from './helpers.ts';

let h: Harness;
let ledger: Ledger;

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
  seedMessages(h.emulator, 7001, 3);
});
afterAll(async () => {
  await h.close();
});
beforeEach(async () => {
  h.wakeups.clear();
  ledger = await freshLedger(h);
});
afterEach(async () => {
  await drainQueue(h);
});

/** The handler's deps; `timing` is how long one Bitrix24 request may take and the margin kept before the deadline. */
function handlerDeps(timing: { callTimeoutMs: number; deadlineMarginMs: number }): RefreshHandlerDeps {
  const { deps } = depsFor(h, ledger, {}, { options: timing });
  return {
    ...deps,
    metrics: new Metrics({ namespace: 'B24MessageEditorTest', serviceName: 'refresh-status-test' }),
  };
}

/** Runs `fn` and returns what it wrote to stdout as well (EMF metrics go there). */
async function withStdout<T>(fn: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    lines.push(String(chunk));
    return (write as (...args: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    return { result: await fn(), lines };
  } finally {
    process.stdout.write = write;
  }
}

describe('the scheduled handler', () => {
  it('refreshes the schedule input and answers with the summary, also emitted as EMF metrics', async () => {
    const handler = createHandler(handlerDeps({ callTimeoutMs: 1_000, deadlineMarginMs: 500 }));
    const event = { messages: [spec(7001, { template: 'from the schedule' }), spec(7002, { botId: -1 })] };
    const { result, lines } = await withStdout(() => handler(event, lambdaContext(15_000)));
    expect(result).toEqual({ updated: 1, unchanged: 0, deferred: 0, failed: 0, sourceErrors: 0, invalid: 1 });
    expect(h.emulator.getMessage(7001)?.text).toBe('from the schedule');

    const emf = lines
      .flatMap((line) => line.split('\n'))
      .filter((line) => line.includes('"_aws"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(emf).toHaveLength(1);
    expect(emf[0]).toMatchObject({ StatusUpdated: 1, StatusInvalid: 1, StatusFailed: 0, StatusDeferred: 0 });
  });

  it('defers to the portal’s wake-up rather than start a Bitrix24 request that could outlive the Lambda', async () => {
    h.emulator.reset();
    const handler = createHandler(handlerDeps({ callTimeoutMs: 2_000, deadlineMarginMs: 1_000 }));
    const result = await handler({ messages: [spec(7002), spec(7003)] }, lambdaContext(2_500));
    expect(result).toMatchObject({ deferred: 2, updated: 0 });
    expect(h.emulator.calls).toEqual([]);
    expect(h.wakeups.pending().map((w) => w.portal)).toEqual(['acme']);
  });
});
