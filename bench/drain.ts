// Drain throughput against the emulator at real plan limits (burst 50, 2/s), measured in one run:
// the drain (two concurrent invocations, like an event source mapping with maximum concurrency 2,
// in its own process), the naive baseline (one update call per edit at the portal rate), and
// coalescing (K edits per message → commands per message). Usage:
//   npm run bench:drain [-- --edits 1600 --baseline-seconds 15 --k 5]
import { parseArgs } from 'node:util';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import type { QueuedEdit } from '../lib/edits/types.ts';

// The in-process coalescing phase would otherwise log every edit and print EMF per invocation.
process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';
const { createHandler } = await import('../functions/drain-edits.ts');
const { UPDATE_METHOD } = await import('../lib/bitrix24/imbot.ts');
const { enqueueEdits } = await import('../lib/edits/queue.ts');
const { LeakyBucket } = await import('../lib/pacing/leaky-bucket.ts');
const { standardPlan } = await import('../lib/pacing/policies.ts');
const { lambdaContext } = await import('../local/poller.ts');
const { createFifoQueue, queueDepth, sqsRecord } = await import('../test/drain/support/fixtures.ts');
const { spawnWorker } = await import('../test/drain/support/spawn-worker.ts');
const { BOT, PREFIX, startHarness } = await import('../test/support/harness.ts');

const { values } = parseArgs({
  options: {
    edits: { type: 'string', default: '1600' },
    'baseline-seconds': { type: 'string', default: '15' },
    k: { type: 'string', default: '5' },
  },
});
const EDITS = Math.min(5_000, Math.max(500, Number(values.edits)));
const BASELINE_SECONDS = Math.min(60, Math.max(5, Number(values['baseline-seconds'])));
const K = Math.min(10, Math.max(2, Number(values.k)));
const CONCURRENCY = 2;
const API_RATE_SHARE = 0.2;
const limits = standardPlan;
const share = {
  burst: (limits.burst * (1 - API_RATE_SHARE)) / CONCURRENCY,
  perSecond: (limits.perSecond * (1 - API_RATE_SHARE)) / CONCURRENCY,
};
const COMMANDS_PER_CALL = 10; // an SQS FIFO event carries at most 10 records

const h = await startHarness({ emulator: { limits } });
const newEdit = (messageId: number, text: string): QueuedEdit => ({
  portal: 'acme',
  botId: BOT.id,
  messageId,
  fields: { message: text },
  editId: crypto.randomUUID(),
  requestedAt: new Date().toISOString(),
});
const addMessages = (n: number) =>
  Array.from({ length: n }, () => h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'queued' }));

/** Batch HTTP calls in order, each with its time, status code and how many commands it carried. */
function batchCalls() {
  const calls: Array<{ at: number; code: string | undefined; commands: number }> = [];
  for (const c of h.emulator.calls) {
    if (!c.viaBatch) calls.push({ at: c.at, code: c.code, commands: 0 });
    else if (calls.length > 0) (calls.at(-1) as { commands: number }).commands += 1;
  }
  return calls;
}

/** Rate after the first `burstCalls` calls (which the bucket's burst lets through at once). */
function steadyRate(calls: Array<{ at: number; commands: number }>, burstCalls: number) {
  const steady = calls.slice(burstCalls);
  if (steady.length < 2) return { callsPerSecond: 0, editsPerSecond: 0, seconds: 0 };
  const seconds = ((steady.at(-1)?.at ?? 0) - (steady[0]?.at ?? 0)) / 1000;
  const intervals = steady.length - 1;
  // Edits carried by the calls after the first steady one, over the time they took.
  const edits = steady.slice(1).reduce((sum, c) => sum + c.commands, 0);
  return { callsPerSecond: intervals / seconds, editsPerSecond: edits / seconds, seconds };
}

// 1. The drain: EDITS distinct-message edits, two concurrent invocations in a separate process.
const drainQueue = await createFifoQueue(h.sqs, 'bench-drain', 30);
const drainIds = addMessages(EDITS);
const sent = await enqueueEdits(
  drainIds.map((id) => newEdit(id, 'drained')),
  { queueUrl: drainQueue, client: h.sqs },
);
if (sent.failed.length > 0) throw new Error(`the queue refused ${sent.failed.length} edits`);
h.emulator.reset();
const startedAt = Date.now();
const worker = spawnWorker(
  {
    sqsEndpoint: h.sqsEndpoint,
    secretsEndpoint: h.secretsManager.url,
    secretPrefix: PREFIX,
    queueUrl: drainQueue,
    maxConcurrency: CONCURRENCY,
    timeoutMs: 30_000,
    options: {
      failedEditsQueueUrl: h.failedQueueUrl,
      maxConcurrency: CONCURRENCY,
      apiRateShare: API_RATE_SHARE,
      callTimeoutMs: 10_000,
      deadlineMarginMs: 1_000,
    },
  },
  { POWERTOOLS_LOG_LEVEL: 'ERROR' },
);
await worker.ready;
for (let i = 0; i < 2_000 && (await queueDepth(h.sqs, drainQueue)) > 0; i += 1) {
  if (Date.now() - startedAt > 170_000) throw new Error('the drain did not finish within 170 s');
  await new Promise((resolve) => setTimeout(resolve, 200));
}
const stats = await worker.stop();
const drainCalls = batchCalls();
const applied = drainIds.filter((id) => h.emulator.getMessage(id)?.text === 'drained').length;
const drainSpan = ((drainCalls.at(-1)?.at ?? 0) - (drainCalls[0]?.at ?? 0)) / 1000;
const burstCalls = Math.floor(share.burst) * CONCURRENCY;
const drainSteady = steadyRate(drainCalls, burstCalls);
const portalCeiling = limits.perSecond * COMMANDS_PER_CALL;
const drainCeiling = limits.perSecond * (1 - API_RATE_SHARE) * COMMANDS_PER_CALL;
const drainQle = drainCalls.filter((c) => c.code === 'QUERY_LIMIT_EXCEEDED').length;
const wholeRunCeiling =
  (share.burst * CONCURRENCY + share.perSecond * CONCURRENCY * drainSpan) * COMMANDS_PER_CALL;

// 2. The naive way: one update call per edit, paced at the whole portal rate, same emulator.
h.emulator.reset();
const naiveIds = addMessages(limits.burst + Math.ceil(BASELINE_SECONDS * limits.perSecond) + 5);
const naiveBucket = new LeakyBucket(limits);
const naiveEnd = Date.now() + BASELINE_SECONDS * 1000;
let naiveIndex = 0;
while (Date.now() < naiveEnd && naiveIndex < naiveIds.length) {
  const wait = naiveBucket.reserve();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  await h.gateway
    .updateMessage('acme', { botId: BOT.id, messageId: naiveIds[naiveIndex] as number }, { message: 'naive' })
    .catch(() => undefined);
  naiveIndex += 1;
}
const naiveCalls = h.emulator.calls
  .filter((c) => c.method === UPDATE_METHOD)
  .map((c) => ({ at: c.at, code: c.code, commands: 1 }));
const naiveSteady = steadyRate(naiveCalls, limits.burst);
const naiveQle = naiveCalls.filter((c) => c.code === 'QUERY_LIMIT_EXCEEDED').length;

// 3. Coalescing: K edits per message, records of a group together in one event as real SQS FIFO
// delivers them (the SQS emulator hands out one message per group at a time, so events are built here).
h.emulator.reset();
const coalesceIds = addMessages(40);
const drain = createHandler({
  gateway: h.gateway,
  sqs: h.sqs,
  editsQueueUrl: drainQueue,
  options: {
    failedEditsQueueUrl: h.failedQueueUrl,
    maxConcurrency: CONCURRENCY,
    apiRateShare: API_RATE_SHARE,
  },
});
const records: SQSRecord[] = coalesceIds.flatMap((id) =>
  Array.from({ length: K }, (_, v) =>
    sqsRecord({ ...newEdit(id, `v${v + 1}`), fields: { message: `v${v + 1}` } }),
  ),
);
let handedBack = 0;
for (let i = 0; i < records.length; i += 10) {
  const response = (await drain(
    { Records: records.slice(i, i + 10) },
    lambdaContext(Date.now() + 30_000),
  )) as SQSBatchResponse;
  handedBack += response.batchItemFailures.length;
}
const commands = h.emulator.calls.filter((c) => c.method === UPDATE_METHOD).length;
const converged = coalesceIds.every((id) => h.emulator.getMessage(id)?.text === `v${K}`);
await h.close();

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const result = {
  drain: {
    edits: EDITS,
    applied,
    seconds: round(drainSpan, 1),
    calls: drainCalls.length,
    commandsPerCall: round(drainCalls.reduce((s, c) => s + c.commands, 0) / drainCalls.length),
    steadyEditsPerSecond: round(drainSteady.editsPerSecond),
    steadyCallsPerSecond: round(drainSteady.callsPerSecond, 3),
    drainCeilingEditsPerSecond: drainCeiling,
    ratioToDrainCeiling: round(drainSteady.editsPerSecond / drainCeiling),
    portalCeilingEditsPerSecond: portalCeiling,
    ratioToPortalCeiling: round(drainSteady.editsPerSecond / portalCeiling),
    wholeRunRatio: round(applied / wholeRunCeiling),
    queryLimitExceeded: drainQle,
    peakRssMiB: round((stats.peakRss ?? 0) / 2 ** 20, 1),
    pollerInvocations: stats.invocations,
  },
  naive: {
    calls: naiveCalls.length,
    steadyEditsPerSecond: round(naiveSteady.editsPerSecond),
    ratioToPortalCeiling: round(naiveSteady.editsPerSecond / portalCeiling),
    queryLimitExceeded: naiveQle,
  },
  coalescing: {
    k: K,
    messages: coalesceIds.length,
    commands,
    commandsPerMessage: round(commands / coalesceIds.length),
    handedBack,
    converged,
  },
};
console.log(
  `Drain: ${applied}/${EDITS} distinct-message edits in ${result.drain.seconds} s, ${drainCalls.length} batch calls (${result.drain.commandsPerCall} commands each)`,
);
console.log(
  `  steady state ${result.drain.steadyEditsPerSecond} edits/s vs drain ceiling ${drainCeiling}/s (2/s × (1 − ${API_RATE_SHARE}) × ${COMMANDS_PER_CALL}) = ${result.drain.ratioToDrainCeiling}; vs portal ceiling ${portalCeiling}/s = ${result.drain.ratioToPortalCeiling}`,
);
console.log(
  `  whole run incl. burst: ${result.drain.wholeRunRatio} of what the drain's share allows; QUERY_LIMIT_EXCEEDED: ${drainQle}; peak RSS of the drain process: ${result.drain.peakRssMiB} MiB`,
);
console.log(
  `Naive: ${result.naive.steadyEditsPerSecond} edits/s steady (one update per edit at 2/s) = ${result.naive.ratioToPortalCeiling} of the portal ceiling; QUERY_LIMIT_EXCEEDED: ${naiveQle}`,
);
console.log(
  `Coalescing: K=${K} edits per message → ${result.coalescing.commandsPerMessage} commands per message (${commands} commands for ${coalesceIds.length} messages), converged: ${converged}`,
);
console.log(JSON.stringify(result));
