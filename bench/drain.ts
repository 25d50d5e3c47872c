// Drain throughput against the emulator at the plans' real limits (standard: burst 50, 2/s;
// enterprise: 250, 5/s), all phases in one run, each ratio against the physical limit: the portal's
// rate × 50 commands per call. Drain "containers" (createDrain instances, each its own reconciler,
// pacing and lease owner) take events of 10 records in turn, as an event source mapping would (2
// active of 2, 10 of 10, 2 of 10); events are built the way a real SQS FIFO queue hands them out
// (one message group's records together). Records a drain hands back come back after their
// visibility timeout. One phase adds 10 API callers (each its own container) editing other messages
// while the drain runs flat out.
//   npm run bench:drain [-- --messages 5000 --enterprise-messages 20000 --stream-seconds 10]
import { randomUUID } from 'node:crypto';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import { type CommandSpec, integerOption, parseCommandLine, runCommand } from '../scripts/cli.ts';

process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';
const { createDrain } = await import('../lib/drain/index.ts');
const { UPDATE_METHOD } = await import('../lib/bitrix24/imbot.ts');
const { Ledger } = await import('../lib/ledger/messages.ts');
const { standardPlan } = await import('../lib/pacing/policies.ts');
const { createLedgerTable } = await import('../local/dynamodb.ts');
const { BOT, startHarness } = await import('../test/support/harness.ts');

const COMMAND: CommandSpec = {
  name: 'npm run bench:drain',
  summary: [
    'The drain through the ledger on the Bitrix24 emulator at the standard and enterprise plans:',
    'distinct messages with 2 and 10 drains, the API share, API callers during a drain, interleaved',
    'edits and one hot message. Prints each phase as JSON with its ratio to the physical limit; about',
    '4 minutes with the defaults.',
  ].join('\n'),
  usage: '[-- options]',
  options: {
    messages: {
      type: 'string',
      value: '<n>',
      default: '5000',
      description: 'distinct messages of each standard-plan phase (500 to 20000)',
    },
    'enterprise-messages': {
      type: 'string',
      value: '<n>',
      default: '20000',
      description: 'distinct messages of the enterprise phase (500 to 40000)',
    },
    'stream-seconds': {
      type: 'string',
      value: '<s>',
      default: '10',
      description: 'how long the 1,000 edits of one message take to arrive (2 to 60)',
    },
  },
  examples: ['npm run bench:drain', 'npm run bench:drain -- --messages 1000 --enterprise-messages 2000'],
};
let sizes: { messages: number; enterprise: number; streamSeconds: number } | undefined;
await runCommand(COMMAND, () => {
  const args = parseCommandLine(COMMAND, process.argv.slice(2));
  if (!args) return;
  sizes = {
    messages: integerOption(args.values, 'messages', 500, 20_000),
    enterprise: integerOption(args.values, 'enterprise-messages', 500, 40_000),
    streamSeconds: integerOption(args.values, 'stream-seconds', 2, 60),
  };
});
if (!sizes) process.exit();
const MESSAGES = sizes.messages;
const ENTERPRISE_MESSAGES = sizes.enterprise;
const STREAM_SECONDS = sizes.streamSeconds;
const { enterprisePlan } = await import('../lib/pacing/policies.ts');
const { Reconciler } = await import('../lib/reconcile/reconcile.ts');
const { emptyStats } = await import('../lib/reconcile/send.ts');
const { messageKeyText } = await import('../lib/ledger/model.ts');
const { PREFIX, webhookSecret } = await import('../test/support/harness.ts');
const limits = standardPlan;
const ARN = 'arn:aws:sqs:us-east-1:000000000000:edits.fifo';

const h = await startHarness({ emulator: { limits } });
// A second portal on the enterprise plan; the emulator's bucket is switched to its limits for its phase.
h.secretsManager.setSecret(`${PREFIX}big`, webhookSecret(h.emulator.url, { plan: 'enterprise' }));

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
function record(messageId: number, text: string, portal = 'acme'): SQSRecord {
  sequence += 1;
  const id = randomUUID();
  const body = {
    portal,
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
      MessageGroupId: `${portal}:${BOT.id}:${messageId}`,
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

interface Mapping {
  /** The event source mapping's maximum concurrency (DRAIN_MAX_CONCURRENCY). */
  maxConcurrency: number;
  /** Drain invocations active at once. */
  active: number;
}
const TWO_OF_TWO: Mapping = { maxConcurrency: 2, active: 2 };

/** Runs `active` drains over the queue until `done()` or the time limit; returns calls and invocations. */
async function run(
  queue: EventQueue,
  apiRateShare: number,
  done: () => boolean,
  limitMs: number,
  feed?: () => void,
  mapping: Mapping = TWO_OF_TWO,
  ledger?: InstanceType<typeof Ledger>,
) {
  const table = `bench-${randomUUID()}`;
  if (!ledger) await createLedgerTable(h.dynamo, table);
  const shared = ledger ?? new Ledger({ tableName: table, client: h.dynamo });
  const drains = Array.from({ length: mapping.active }, () =>
    createDrain({
      gateway: h.gateway,
      ledger: shared,
      sqs: h.sqs,
      editsQueueUrl: h.editsQueueUrl,
      options: {
        failedEditsQueueUrl: h.failedQueueUrl,
        apiRateShare,
        maxConcurrency: mapping.maxConcurrency,
      },
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
 * Edits per second in the steady state: over the calls after the portal's burst (at least 10),
 * when its bucket has filled and every call waits for its token.
 */
function steady(calls: Array<{ at: number; commands: number }>, plan = limits) {
  const tail = calls.slice(plan.burst);
  if (tail.length < 10) return Number.NaN;
  const seconds = ((tail.at(-1)?.at ?? 0) - (tail[0]?.at ?? 0)) / 1000;
  return tail.slice(1).reduce((sum, c) => sum + c.commands, 0) / seconds;
}

/** Edits applied over what the portal could take in the whole run: its burst plus its rate over the span. */
function wholeRun(
  calls: Array<{ at: number; commands: number }>,
  applied: number,
  share: number,
  plan = limits,
) {
  const span = ((calls.at(-1)?.at ?? 0) - (calls[0]?.at ?? 0)) / 1000;
  const capacity = (plan.burst + plan.perSecond * span) * 50 * (1 - share);
  return applied / capacity;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const results: Record<string, unknown> = {};

interface DistinctPhase {
  name: string;
  share: number;
  mapping?: Mapping;
  portal?: string;
  plan?: typeof limits;
  messages?: number;
  /** Started with the drain, told when the drain is done, awaited after it. */
  alongside?: (
    ledger: InstanceType<typeof Ledger>,
    drained: () => boolean,
  ) => Promise<Record<string, unknown>>;
}

/** Distinct messages, one edit each: the drain's steady rate against the portal's physical limit. */
async function distinct(phase: DistinctPhase): Promise<void> {
  const { name, share, mapping = TWO_OF_TWO, portal = 'acme', plan = limits, messages = MESSAGES } = phase;
  const text = `distinct ${name}`;
  h.emulator.setLimits(plan);
  const ids = addMessages(messages);
  const queue = new EventQueue();
  for (let i = 0; i < ids.length; i += 10)
    queue.push(ids.slice(i, i + 10).map((id) => record(id, text, portal)));
  const applied = () => ids.every((id) => h.emulator.getMessage(id)?.text === text);
  let checked = 0;
  const table = `bench-${randomUUID()}`;
  await createLedgerTable(h.dynamo, table);
  const ledger = new Ledger({ tableName: table, client: h.dynamo });
  let drained = false;
  const beside = phase.alongside?.(ledger, () => drained);
  const r = await run(
    queue,
    share,
    () => (++checked % 20 === 0 ? applied() : false),
    300_000,
    undefined,
    mapping,
    ledger,
  );
  drained = true;
  const besideResult = beside ? await beside : undefined;
  h.emulator.setLimits(limits);
  const physical = plan.perSecond * 50;
  const tailRate = steady(r.calls, plan);
  // A tail faster than the portal's rate means its bucket never filled: arrival was the bottleneck,
  // and there was no steady state to measure (the whole-run ratio still is).
  // (The share is headroom: with the API idle the drain may run at the portal's whole rate.)
  const saturated = Number.isFinite(tailRate) && tailRate <= plan.perSecond * 50 * 1.1;
  const limit = physical * (1 - share);
  const done = ids.filter((id) => h.emulator.getMessage(id)?.text === text).length;
  // Anything not applied is a finding: say what the ledger and Bitrix24 know of it.
  for (const id of ids.filter((m) => h.emulator.getMessage(m)?.text !== text).slice(0, 5)) {
    const state = await ledger.get({ portal, botId: BOT.id, messageId: id });
    const answers = h.emulator.calls
      .filter((c) => c.viaBatch && (c.params as { messageId?: unknown })?.messageId === String(id))
      .map((c) => `${c.httpStatus} ${c.code ?? ''}`);
    console.log(
      `${name}: message ${id} not applied`,
      JSON.stringify({ ...state, desired: undefined, answers }),
    );
  }
  results[name] = {
    plan: `${plan.burst}/${plan.perSecond}`,
    mapping: `${mapping.active} of ${mapping.maxConcurrency} active`,
    apiRateShare: share,
    messages,
    applied: done,
    seconds: round(r.seconds, 1),
    calls: r.calls.length,
    commandsPerCall: round(r.calls.reduce((sum, c) => sum + c.commands, 0) / r.calls.length, 1),
    steadyEditsPerSecond: saturated ? round(tailRate, 1) : 'n/a (bucket never full)',
    limitEditsPerSecond: limit,
    ratioToLimit: saturated ? round(tailRate / limit) : 'n/a',
    ratioToPhysicalLimit: saturated ? round(tailRate / physical) : 'n/a',
    wholeRunRatioToLimit: round(wholeRun(r.calls, done, share, plan)),
    queryLimitExceeded: r.calls.filter((c) => c.code === 'QUERY_LIMIT_EXCEEDED').length,
    dynamoReadsPerEdit: round(r.dynamo.reads / done),
    dynamoWritesPerEdit: round(r.dynamo.writes / done),
    ...(besideResult ? { alongside: besideResult } : {}),
  };
  console.log(`${name}:`, JSON.stringify(results[name]));
}

/**
 * Ten API callers, each its own container, editing messages of their own (a new one each time)
 * for as long as the drain has work: their latency, and how many were not applied at once.
 */
async function apiCallers(ledger: InstanceType<typeof Ledger>, drainDone: () => boolean) {
  const latencies: number[] = [];
  const notApplied: Record<string, number> = {};
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      const api = new Reconciler({
        ledger,
        gateway: h.gateway,
        sqs: h.sqs,
        options: { failedEditsQueueUrl: h.failedQueueUrl },
      });
      while (!drainDone()) {
        const [id] = addMessages(1);
        const key = { portal: 'acme', botId: BOT.id, messageId: id as number };
        const startedAt = performance.now();
        const edit = { ...key, fields: { message: 'api' }, editId: randomUUID(), at: Date.now(), seq: '' };
        const { report } = await api.mergeAndApply(key, [edit], {
          remainingMs: () => 29_000,
          stats: emptyStats(),
        });
        latencies.push(performance.now() - startedAt);
        const fate = report.fates.get(messageKeyText(key));
        if (fate?.kind !== 'applied') {
          const code = fate?.kind === 'held' ? fate.code : (fate?.kind ?? 'none');
          notApplied[code] = (notApplied[code] ?? 0) + 1;
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0, 0);
  return { callers: 10, edits: latencies.length, p50Ms: at(0.5), p99Ms: at(0.99), notApplied };
}

// 1. Distinct messages, one edit each: API_RATE_SHARE 0 and the default 0.2 (2 of 2 drains active),
// then 10 of 10 and 2 of 10 active, then the drain while 10 API callers edit, then the enterprise plan.
await distinct({ name: 'distinct_share_0', share: 0 });
await distinct({ name: 'distinct_share_0.2', share: 0.2 });
await distinct({ name: 'distinct_share_0_10_of_10', share: 0, mapping: { maxConcurrency: 10, active: 10 } });
await distinct({ name: 'distinct_share_0_2_of_10', share: 0, mapping: { maxConcurrency: 10, active: 2 } });
await distinct({ name: 'distinct_share_0.2_with_10_api_callers', share: 0.2, alongside: apiCallers });
await distinct({
  name: 'enterprise_distinct_share_0',
  share: 0,
  portal: 'big',
  plan: enterprisePlan,
  messages: ENTERPRISE_MESSAGES,
});

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
