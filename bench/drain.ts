// Drain throughput against the emulator at the standard plan's real limits (burst 50, 2/s), all
// phases in one run, each ratio against the physical limit: the portal's rate × 50 commands per call.
// Two drain "containers" (two createDrain instances, each its own reconciler, pacing and lease
// owner) take events of 10 records in turn, as an event source mapping with maximum concurrency 2
// would; events are built the way a real SQS FIFO queue hands them out (one message group's records
// together). Records a drain hands back come back after their visibility timeout.
//   npm run bench:drain [-- --messages 5000 --stream-seconds 10]
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';

process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';
const { createDrain } = await import('../lib/drain/index.ts');
const { UPDATE_METHOD } = await import('../lib/bitrix24/imbot.ts');
const { Ledger } = await import('../lib/ledger/store.ts');
const { standardPlan } = await import('../lib/pacing/policies.ts');
const { createLedgerTable } = await import('../local/dynamodb.ts');
const { BOT, startHarness } = await import('../test/support/harness.ts');

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '5000' },
    'stream-seconds': { type: 'string', default: '10' },
  },
});
const MESSAGES = Math.min(20_000, Math.max(500, Number(values.messages)));
const STREAM_SECONDS = Math.min(60, Math.max(2, Number(values['stream-seconds'])));
const CONCURRENCY = 2;
const limits = standardPlan;
const PHYSICAL = limits.perSecond * 50;
const ARN = 'arn:aws:sqs:us-east-1:000000000000:edits.fifo';

const h = await startHarness({ emulator: { limits } });

/** Counts DynamoDB requests by kind, through the real client. */
const dynamoRequests = { reads: 0, writes: 0 };
h.dynamo.middlewareStack.add(
  (next, context) => async (args) => {
    const name = String(context.commandName);
    if (/^(Get|BatchGet|Query|Scan)/.test(name)) dynamoRequests.reads += 1;
    else if (/^(Update|Put|Delete)/.test(name)) dynamoRequests.writes += 1;
    return next(args);
  },
  { step: 'initialize', name: 'countRequests' },
);

let sequence = 0;
function record(messageId: number, text: string): SQSRecord {
  sequence += 1;
  const id = randomUUID();
  const body = {
    portal: 'acme',
    botId: BOT.id,
    messageId,
    fields: { message: text },
    editId: id,
    requestedAt: new Date().toISOString(),
  };
  return {
    messageId: id,
    receiptHandle: `bench-${id}`,
    body: JSON.stringify(body),
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.now()),
      SenderId: 'bench',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
      MessageGroupId: `acme:${BOT.id}:${messageId}`,
      MessageDeduplicationId: id,
      SequenceNumber: String(sequence).padStart(20, '0'),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: ARN,
    awsRegion: 'us-east-1',
  };
}

const addMessages = (n: number) =>
  Array.from({ length: n }, () => h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'queued' }));

/** A queue of events (lists of records), with handed-back records returning after their visibility. */
class EventQueue {
  readonly #ready: SQSRecord[][] = [];
  readonly #later: Array<{ at: number; record: SQSRecord }> = [];
  push(event: SQSRecord[]) {
    this.#ready.push(event);
  }
  later(record: SQSRecord, seconds: number) {
    this.#later.push({ at: Date.now() + seconds * 1000, record });
  }
  next(): SQSRecord[] | undefined {
    const now = Date.now();
    const due = this.#later.filter((l) => l.at <= now);
    if (due.length > 0) {
      for (const d of due) this.#later.splice(this.#later.indexOf(d), 1);
      for (let i = 0; i < due.length; i += 10) this.#ready.push(due.slice(i, i + 10).map((d) => d.record));
    }
    return this.#ready.shift();
  }
  get pending() {
    return this.#ready.length + this.#later.length;
  }
}

/** Runs two drains over the queue until `done()` or the time limit; returns calls and invocations. */
async function run(
  queue: EventQueue,
  apiRateShare: number,
  done: () => boolean,
  limitMs: number,
  feed?: () => void,
) {
  const table = `bench-${randomUUID()}`;
  await createLedgerTable(h.dynamo, table);
  const ledger = new Ledger({ tableName: table, client: h.dynamo });
  const drains = Array.from({ length: CONCURRENCY }, () =>
    createDrain({
      gateway: h.gateway,
      ledger,
      sqs: h.sqs,
      editsQueueUrl: h.editsQueueUrl,
      options: { failedEditsQueueUrl: h.failedQueueUrl, apiRateShare },
    }),
  );
  h.emulator.reset();
  const before = { ...dynamoRequests };
  const startedAt = Date.now();
  let invocations = 0;
  await Promise.all(
    drains.map(async (drain) => {
      while (!done() && Date.now() - startedAt < limitMs) {
        feed?.();
        const event = queue.next();
        if (!event) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        invocations += 1;
        const deadline = Date.now() + 60_000;
        const response = (await drain(
          { Records: event },
          { remainingMs: () => deadline - Date.now() },
        )) as SQSBatchResponse;
        const back = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
        // The visibility the drain asked for is in its ChangeMessageVisibility call; 1 s stands in.
        for (const r of event) if (back.has(r.messageId)) queue.later(r, 1);
      }
    }),
  );
  const seconds = (Date.now() - startedAt) / 1000;
  const calls: Array<{ at: number; commands: number; code: string | undefined }> = [];
  for (const c of h.emulator.calls) {
    if (!c.viaBatch) calls.push({ at: c.at, code: c.code, commands: c.method === UPDATE_METHOD ? 1 : 0 });
    else if (calls.length > 0) (calls.at(-1) as { commands: number }).commands += 1;
  }
  return {
    seconds,
    calls,
    invocations,
    dynamo: { reads: dynamoRequests.reads - before.reads, writes: dynamoRequests.writes - before.writes },
  };
}

/**
 * Edits per second in the steady state: over the last third of the calls (at least 10), when the
 * portal's bucket has long been full and every call waits for its token.
 */
function steady(calls: Array<{ at: number; commands: number }>) {
  const tail = calls.slice(-Math.max(10, Math.floor(calls.length / 3)));
  if (tail.length < 2) return 0;
  const seconds = ((tail.at(-1)?.at ?? 0) - (tail[0]?.at ?? 0)) / 1000;
  return tail.slice(1).reduce((sum, c) => sum + c.commands, 0) / seconds;
}

/** Edits applied over what the portal could take in the whole run: its burst plus its rate over the span. */
function wholeRun(calls: Array<{ at: number; commands: number }>, applied: number, share: number) {
  const span = ((calls.at(-1)?.at ?? 0) - (calls[0]?.at ?? 0)) / 1000;
  const capacity = (limits.burst + limits.perSecond * span) * 50 * (1 - share);
  return applied / capacity;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const results: Record<string, unknown> = {};

// 1. Distinct messages, one edit each, with API_RATE_SHARE 0 and the default 0.2.
for (const share of [0, 0.2]) {
  const ids = addMessages(MESSAGES);
  const queue = new EventQueue();
  for (let i = 0; i < ids.length; i += 10)
    queue.push(ids.slice(i, i + 10).map((id) => record(id, `distinct ${share}`)));
  const applied = () => ids.every((id) => h.emulator.getMessage(id)?.text === `distinct ${share}`);
  let checked = 0;
  const r = await run(queue, share, () => (++checked % 20 === 0 ? applied() : false), 240_000);
  const tailRate = steady(r.calls);
  // A tail faster than the portal's rate means its bucket never filled: arrival was the bottleneck,
  // and there was no steady state to measure (the whole-run ratio still is).
  const saturated = tailRate <= limits.perSecond * (1 - share) * 50 * 1.1;
  const rate = saturated ? tailRate : Number.NaN;
  const limit = PHYSICAL * (1 - share);
  const done = ids.filter((id) => h.emulator.getMessage(id)?.text === `distinct ${share}`).length;
  results[`distinct_share_${share}`] = {
    messages: MESSAGES,
    applied: done,
    seconds: round(r.seconds, 1),
    calls: r.calls.length,
    commandsPerCall: round(r.calls.reduce((s, c) => s + c.commands, 0) / r.calls.length, 1),
    steadyEditsPerSecond: saturated ? round(rate, 1) : 'n/a (bucket never full)',
    limitEditsPerSecond: limit,
    ratioToLimit: saturated ? round(rate / limit) : 'n/a',
    ratioToPhysicalLimit: saturated ? round(rate / PHYSICAL) : 'n/a',
    wholeRunRatioToLimit: round(wholeRun(r.calls, done, share)),
    queryLimitExceeded: r.calls.filter((c) => c.code === 'QUERY_LIMIT_EXCEEDED').length,
    dynamoReadsPerEdit: round(r.dynamo.reads / done),
    dynamoWritesPerEdit: round(r.dynamo.writes / done),
  };
  console.log(`distinct, API_RATE_SHARE=${share}:`, JSON.stringify(results[`distinct_share_${share}`]));
}

// 2. 100 messages × 10 interleaved edits, handed out group by group as a real FIFO does.
{
  const ids = addMessages(100);
  const queue = new EventQueue();
  const byMessage = new Map(ids.map((id) => [id, [] as SQSRecord[]]));
  for (let v = 1; v <= 10; v += 1) for (const id of ids) byMessage.get(id)?.push(record(id, `v${v}`));
  for (const id of ids) queue.push(byMessage.get(id) ?? []);
  const right = () => ids.every((id) => h.emulator.getMessage(id)?.text === 'v10');
  const r = await run(queue, 0.2, () => queue.pending === 0 && right(), 60_000);
  results.interleaved = {
    messages: 100,
    edits: 1_000,
    calls: r.calls.length,
    finalStatesRight: ids.filter((id) => h.emulator.getMessage(id)?.text === 'v10').length,
    dynamoReadsPerEdit: round(r.dynamo.reads / 1_000),
    dynamoWritesPerEdit: round(r.dynamo.writes / 1_000),
  };
  console.log('100 × 10 interleaved:', JSON.stringify(results.interleaved));
}

// 3. 1,000 edits to one message, arriving evenly over STREAM_SECONDS (a bot streaming an answer).
{
  const [id] = addMessages(1);
  const queue = new EventQueue();
  const total = 1_000;
  let fed = 0;
  const start = Date.now();
  const feed = () => {
    const due = Math.min(total, Math.floor(((Date.now() - start) / (STREAM_SECONDS * 1000)) * total));
    while (fed < due) {
      const n = Math.min(10, due - fed);
      queue.push(Array.from({ length: n }, (_, i) => record(id as number, `part ${fed + i + 1}`)));
      fed += n;
    }
  };
  const final = `part ${total}`;
  const r = await run(
    queue,
    0.2,
    () => fed === total && h.emulator.getMessage(id as number)?.text === final,
    STREAM_SECONDS * 1000 + 30_000,
    feed,
  );
  const bound = Math.ceil(STREAM_SECONDS / 1) + 2;
  results.oneMessage = {
    edits: total,
    arrivalSeconds: STREAM_SECONDS,
    calls: r.calls.length,
    boundCalls: bound,
    finalStateRight: h.emulator.getMessage(id as number)?.text === final,
    dynamoReadsPerEdit: round(r.dynamo.reads / total),
    dynamoWritesPerEdit: round(r.dynamo.writes / total),
  };
  console.log('1,000 edits to one message:', JSON.stringify(results.oneMessage));
}

await h.close();
console.log(JSON.stringify(results));
