// Scheduling by portal under many-portal traffic, in one run, each figure beside its target and the
// same run's floor: a bare client doing 2 conditional writes per edit on the same DynamoDB
// implementation (dynalite, in its own process). Queue records are delivered as SQS FIFO delivers
// them (bench/support/queues.ts); every portal is its own Bitrix24 emulator with its own rate limit
// (the standard plan: burst 50, 2 requests/s).
//   npm run bench:scale [-- --portals 200 --per-portal 25 --big 5000 --small 50 --hot 1000 --hot-seconds 10]
import { performance } from 'node:perf_hooks';
import { type CommandSpec, integerOption, parseCommandLine, runCommand } from '../scripts/cli.ts';

process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';

const COMMAND: CommandSpec = {
  name: 'npm run bench:scale',
  summary: [
    'Many portals through the edits queue and the portal work queue: 200 portals × 25 interleaved edits,',
    'a big portal beside 50 small ones, one hot message, 20 streaming answers through the API, the sweep',
    'with 1,000 overdue portals, and one portal with 1k / 5k / 20k queued edits (CPU and memory). Prints',
    'each phase as JSON with its targets; about 5 minutes with the defaults.',
  ].join('\n'),
  usage: '[-- options]',
  options: {
    portals: {
      type: 'string',
      value: '<n>',
      default: '200',
      description: 'portals of the interleaved phase (10 to 500)',
    },
    'per-portal': {
      type: 'string',
      value: '<n>',
      default: '25',
      description: 'edits per portal there (1 to 50)',
    },
    big: {
      type: 'string',
      value: '<n>',
      default: '5000',
      description: 'edits to the big portal (500 to 20000)',
    },
    small: { type: 'string', value: '<n>', default: '50', description: 'small portals beside it (1 to 200)' },
    hot: {
      type: 'string',
      value: '<n>',
      default: '1000',
      description: 'edits to the hot message (100 to 5000)',
    },
    'hot-seconds': {
      type: 'string',
      value: '<s>',
      default: '10',
      description: 'how long they take to arrive (2 to 60)',
    },
    phases: {
      type: 'string',
      value: '<list>',
      default: 'all',
      description: 'comma-separated: interleaved,neighbours,hot,streaming,sweep,single (or all)',
    },
  },
  examples: ['npm run bench:scale', 'npm run bench:scale -- --phases interleaved,hot --portals 50'],
};

let args:
  | {
      portals: number;
      perPortal: number;
      big: number;
      small: number;
      hot: number;
      hotSeconds: number;
      phases: Set<string>;
    }
  | undefined;
await runCommand(COMMAND, () => {
  const parsed = parseCommandLine(COMMAND, process.argv.slice(2));
  if (!parsed) return;
  const phases = String(parsed.values.phases ?? 'all');
  args = {
    portals: integerOption(parsed.values, 'portals', 10, 500),
    perPortal: integerOption(parsed.values, 'per-portal', 1, 50),
    big: integerOption(parsed.values, 'big', 500, 20_000),
    small: integerOption(parsed.values, 'small', 1, 200),
    hot: integerOption(parsed.values, 'hot', 100, 5_000),
    hotSeconds: integerOption(parsed.values, 'hot-seconds', 2, 60),
    phases: new Set(
      phases === 'all'
        ? ['interleaved', 'neighbours', 'hot', 'streaming', 'sweep', 'single']
        : phases.split(','),
    ),
  };
});
if (!args) process.exit();
const A = args;

const { UpdateItemCommand } = await import('@aws-sdk/client-dynamodb');
const { startDeployment, startDynamoProcess } = await import('./support/deployment.ts');
const { standardPlan } = await import('../lib/pacing/policies.ts');
const { UPDATE_METHOD } = await import('../lib/bitrix24/imbot.ts');
const { BOT } = await import('../test/support/harness.ts');

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const results: Record<string, unknown> = {};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 50 ms until it holds or `limitMs` passes; resolves with whether it held. */
async function until(condition: () => boolean | Promise<boolean>, limitMs: number): Promise<boolean> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (await condition()) return true;
    await sleep(50);
  }
  return condition();
}

/** The floor: `edits` edits, each two conditional UpdateItems, 50 at a time, on dynalite in its own process. */
async function floor(edits: number): Promise<number> {
  const dynamo = await startDynamoProcess();
  const { createLedgerTable } = await import('../local/dynamodb.ts');
  await createLedgerTable(dynamo.client, 'floor');
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      for (let i = next++; i < edits; i = next++) {
        for (const n of [1, 2]) {
          await dynamo.client.send(
            new UpdateItemCommand({
              TableName: 'floor',
              Key: { pk: { S: `floor#${i}` } },
              UpdateExpression: 'SET n = :n',
              ConditionExpression: 'attribute_not_exists(n) OR n < :n',
              ExpressionAttributeValues: { ':n': { N: String(n) } },
            }),
          );
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await dynamo.close();
  return seconds;
}

/** Calls (HTTP requests) and commands a portal's emulator received. */
function callsOf(emulator: { calls: readonly { viaBatch: boolean; method: string }[] }) {
  const http = emulator.calls.filter((c) => !c.viaBatch);
  return { calls: http.length, commands: emulator.calls.filter((c) => c.method === UPDATE_METHOD).length };
}

// 1. 200 portals × 25 distinct edits each, sent interleaved (portal 0, 1, …, 199, 0, 1, …).
if (A.phases.has('interleaved')) {
  const edits = A.portals * A.perPortal;
  const floorSeconds = await floor(edits);
  const names = Array.from({ length: A.portals }, (_, i) => `p${i}`);
  const d = await startDeployment({
    portals: names,
    limits: standardPlan,
    drainConcurrency: 10,
    reconcileConcurrency: 10,
  });
  const ids = new Map(
    names.map((name) => [
      name,
      Array.from({ length: A.perPortal }, () => d.portals.get(name)?.message() ?? 0),
    ]),
  );
  for (let k = 0; k < A.perPortal; k += 1)
    for (const name of names) d.sendEdit(name, ids.get(name)?.[k] ?? 0, 'interleaved');
  const started = performance.now();
  d.start();
  const applied = () =>
    names.every((name) =>
      ids.get(name)?.every((id) => d.portals.get(name)?.emulator.getMessage(id)?.text === 'interleaved'),
    );
  const done = await until(applied, 180_000);
  const seconds = (performance.now() - started) / 1000;
  await d.stop();
  const perPortal = names.map((name) => callsOf(d.portals.get(name)?.emulator as never).calls);
  results.interleaved = {
    portals: A.portals,
    editsPerPortal: A.perPortal,
    allApplied: done,
    seconds: round(seconds, 1),
    editsPerSecond: round(edits / seconds, 0),
    floorSeconds: round(floorSeconds, 1),
    wallOverFloor: round(seconds / floorSeconds),
    targetSeconds: round(3 * floorSeconds + 10, 1),
    callsPerPortalMax: Math.max(...perPortal),
    callsPerPortalMean: round(perPortal.reduce((a, b) => a + b, 0) / perPortal.length),
    targetCallsPerPortal: 2,
    dynamoRequestsPerEdit: round((d.dynamo.reads + d.dynamo.writes) / edits),
    dynamoReadsPerEdit: round(d.dynamo.reads / edits),
    dynamoWritesPerEdit: round(d.dynamo.writes / edits),
    portalItemWritesPerEdit: round(
      [...d.dynamo.writesByItem]
        .filter(([pk]) => pk.startsWith('portal#'))
        .reduce((sum, [, n]) => sum + n, 0) / edits,
    ),
    targetDynamoRequestsPerEdit: 3,
    portalItemWritesByKind: Object.fromEntries(d.dynamo.portalWrites),
    wakeups: d.work.sent,
  };
  console.log('interleaved:', JSON.stringify(results.interleaved));
  await d.close();
}

// 2. A big portal's backlog, then 50 small portals with one edit each.
if (A.phases.has('neighbours')) {
  const floorSeconds = await floor(A.big);
  const small = Array.from({ length: A.small }, (_, i) => `s${i}`);
  const d = await startDeployment({
    portals: ['big', ...small],
    limits: standardPlan,
    drainConcurrency: 10,
    reconcileConcurrency: 10,
  });
  const big = d.portals.get('big');
  const bigIds = Array.from({ length: A.big }, () => big?.message() ?? 0);
  const sent = performance.now();
  for (const id of bigIds) d.sendEdit('big', id, 'backlog');
  d.start();
  // Merged when the edits queue holds only what came after them.
  await until(() => d.edits.depth === 0, 120_000);
  const bigMerged = performance.now();
  const smallIds = small.map((name) => d.portals.get(name)?.message() ?? 0);
  const smallSent = performance.now();
  for (const [i, name] of small.entries()) d.sendEdit(name, smallIds[i] ?? 0, 'small');
  const landed = new Map<string, number>();
  await until(() => {
    small.forEach((name, i) => {
      if (!landed.has(name) && d.portals.get(name)?.emulator.getMessage(smallIds[i] ?? 0)?.text === 'small')
        landed.set(name, performance.now());
    });
    return landed.size === small.length;
  }, 60_000);
  const bigDone = await until(
    () => bigIds.every((id) => big?.emulator.getMessage(id)?.text === 'backlog'),
    180_000,
  );
  const bigSeconds = (performance.now() - sent) / 1000;
  await d.stop();
  const afterSent = [...landed.values()].map((t) => (t - smallSent) / 1000).sort((a, b) => a - b);
  // The portal's physical minimum: its burst (less our one request of slack) at once, then 2 calls a second.
  const bigCalls = Math.ceil(A.big / 50);
  const physicalMin = Math.max(0, bigCalls - (standardPlan.burst - 1)) / standardPlan.perSecond;
  results.neighbours = {
    bigEdits: A.big,
    bigApplied: bigDone,
    bigSeconds: round(bigSeconds, 1),
    bigPhysicalMinimumSeconds: physicalMin,
    bigTargetSeconds: round(1.25 * physicalMin + floorSeconds, 1),
    bigMergedAfterSeconds: round((bigMerged - sent) / 1000, 1),
    smallPortals: small.length,
    smallApplied: landed.size,
    smallSecondsAfterSentP50: round(afterSent[Math.floor(afterSent.length / 2)] ?? Number.NaN),
    smallSecondsAfterSentMax: round(afterSent.at(-1) ?? Number.NaN),
    targetSmallSeconds: 3,
    bigCalls: callsOf(big?.emulator as never).calls,
    floorSeconds: round(floorSeconds, 1),
  };
  console.log('neighbours:', JSON.stringify(results.neighbours));
  await d.close();
}

// 3. One hot message: 1,000 edits over 10 s through the queue.
if (A.phases.has('hot')) {
  const d = await startDeployment({
    portals: ['hot'],
    limits: standardPlan,
    drainConcurrency: 10,
    reconcileConcurrency: 10,
  });
  const portal = d.portals.get('hot');
  const id = portal?.message() ?? 0;
  d.start();
  const started = performance.now();
  for (let n = 1; n <= A.hot; n += 1) {
    const due = started + (n / A.hot) * A.hotSeconds * 1000;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    d.sendEdit('hot', id, `part ${n}`);
  }
  const lastSent = performance.now();
  const final = `part ${A.hot}`;
  const applied = await until(() => portal?.emulator.getMessage(id)?.text === final, 60_000);
  const after = (performance.now() - lastSent) / 1000;
  await d.stop();
  results.hot = {
    edits: A.hot,
    arrivalSeconds: A.hotSeconds,
    finalApplied: applied,
    appliedSecondsAfterLastEdit: round(after),
    target: 3,
    calls: callsOf(portal?.emulator as never).calls,
    targetCalls: 15,
    recordsLeft: d.edits.depth,
  };
  console.log('hot message:', JSON.stringify(results.hot));
  await d.close();
}

// 4. 20 bots streaming answers through the API on one portal: 50 partials each, 5 a second.
if (A.phases.has('streaming')) {
  const { updateMessage } = await import('../lib/api/update-message.ts');
  const d = await startDeployment({
    portals: ['stream'],
    limits: standardPlan,
    drainConcurrency: 2,
    reconcileConcurrency: 2,
  });
  const portal = d.portals.get('stream');
  const answers = Array.from({ length: 20 }, () => portal?.message() ?? 0);
  // The API's containers: each its own reconciler (lease owner, memory of the portal).
  const containers = Array.from({ length: 5 }, () => d.container());
  d.start();
  const writesBefore = new Map(d.dynamo.writesByItem);
  const statuses = new Map<number, number>();
  const lastSent = new Map<number, number>();
  const started = performance.now();
  let request = 0;
  const streams = answers.map(async (id, a) => {
    const pending: Promise<void>[] = [];
    for (let part = 1; part <= 50; part += 1) {
      const due = started + a * 10 + part * 200;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const container = containers[request++ % containers.length] as (typeof containers)[number];
      if (part === 50) lastSent.set(id, performance.now());
      pending.push(
        updateMessage(
          {
            portal: 'stream',
            body: { botId: BOT.id, messageId: id, fields: { message: `answer ${a} part ${part}` } },
            preferAsync: false,
            idempotencyKey: undefined,
            remainingMs: () => 14_000,
          },
          { config: { defaultPortal: undefined }, ...container },
        ).then((answer) => {
          statuses.set(answer.statusCode, (statuses.get(answer.statusCode) ?? 0) + 1);
        }),
      );
    }
    await Promise.all(pending);
  });
  await Promise.all(streams);
  const landed = new Map<number, number>();
  await until(() => {
    answers.forEach((id, a) => {
      if (!landed.has(id) && portal?.emulator.getMessage(id)?.text === `answer ${a} part 50`)
        landed.set(id, performance.now());
    });
    return landed.size === answers.length;
  }, 30_000);
  const seconds = (performance.now() - started) / 1000;
  await d.stop();
  const requests = 20 * 50;
  const delta = [...d.dynamo.writesByItem].map(([pk, n]) => [pk, n - (writesBefore.get(pk) ?? 0)] as const);
  const busiest = delta.reduce((a, b) => (b[1] > a[1] ? b : a), ['', 0] as const);
  const finals = answers
    .map((id) => ((landed.get(id) ?? Number.NaN) - (lastSent.get(id) ?? 0)) / 1000)
    .sort((x, y) => x - y);
  const calls = callsOf(portal?.emulator as never);
  results.streaming = {
    answers: 20,
    partialsEach: 50,
    perSecond: 5,
    statuses: Object.fromEntries(statuses),
    serverErrors: [...statuses].filter(([code]) => code >= 500).reduce((sum, [, n]) => sum + n, 0),
    finalsLanded: landed.size,
    finalSecondsAfterLastPartialMax: round(finals.at(-1) ?? Number.NaN),
    target: 3,
    calls: calls.calls,
    callsPerSecond: round(calls.calls / seconds),
    targetCallsPerSecond: 1.5,
    busiestItem: busiest[0].replace(/#\d+#\d+$/, '#…'),
    busiestItemWritesPerRequest: round(busiest[1] / requests),
    busiestItemWritesByKind: Object.fromEntries(d.dynamo.portalWrites),
    targetBusiestWritesPerRequest: 1.5,
  };
  console.log('streaming:', JSON.stringify(results.streaming));
  await d.close();
}

// 5. The sweep with 1,000 portals whose wake-up is overdue, beside 1,000 whose wake-up is not.
if (A.phases.has('sweep')) {
  const { sweep } = await import('../lib/schedule/sweep.ts');
  const d = await startDeployment({
    portals: [],
    limits: standardPlan,
    drainConcurrency: 1,
    reconcileConcurrency: 1,
  });
  const now = Date.now();
  for (let i = 0; i < 1_000; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, j) =>
        Promise.all([
          d.ledger.portals.electWake(`overdue-${i + j}`, now - 5 * 60_000),
          d.ledger.portals.electWake(`later-${i + j}`, now + 5 * 60_000),
        ]),
      ),
    );
  }
  const reads = d.dynamo.reads;
  const writes = d.dynamo.writes;
  const started = performance.now();
  const summary = await sweep({
    table: d.ledger.table,
    sender: {
      send: async (wakeups) => {
        d.work.sent += wakeups.length;
        return [];
      },
    },
  });
  const seconds = (performance.now() - started) / 1000;
  results.sweep = {
    overduePortals: 1_000,
    notDuePortals: 1_000,
    ...summary,
    seconds: round(seconds),
    dynamoReads: d.dynamo.reads - reads,
    dynamoWrites: d.dynamo.writes - writes,
  };
  console.log('sweep:', JSON.stringify(results.sweep));
  await d.close();
}

// 6. One portal: 5,000 distinct edits at the standard plan (the ratio to its physical limit), then
// 1k / 5k / 20k queued edits without a rate limit drained by a container process of its own (its
// peak memory, the heap left after a full collection, its CPU per edit).
if (A.phases.has('single')) {
  // API_RATE_SHARE 0: the default 0.2 keeps a fifth of the burst for API callers, which caps this
  // ratio near 0.9 by design (bench:drain measures both).
  const d = await startDeployment({
    portals: ['one'],
    limits: standardPlan,
    drainConcurrency: 10,
    reconcileConcurrency: 10,
    options: { apiRateShare: 0 },
  });
  const portal = d.portals.get('one');
  const ids = Array.from({ length: 5_000 }, () => portal?.message() ?? 0);
  for (const id of ids) d.sendEdit('one', id, 'single');
  const started = Date.now();
  d.start();
  // When the drain has merged the whole backlog: until then, calls wait for merges, not for the portal.
  let mergedAt = 0;
  await until(() => {
    if (!mergedAt && d.edits.depth === 0) mergedAt = Date.now();
    return ids.every((id) => portal?.emulator.getMessage(id)?.text === 'single');
  }, 180_000);
  await d.stop();
  const http = portal?.emulator.calls.filter((c) => !c.viaBatch) ?? [];
  const span = ((http.at(-1)?.at ?? 0) - (http[0]?.at ?? 0)) / 1000;
  const capacity = (standardPlan.burst + standardPlan.perSecond * span) * 50;
  results.single = {
    apiRateShare: 0,
    edits: 5_000,
    calls: http.length,
    seconds: round(span, 1),
    ratioToPhysicalLimit: round(5_000 / capacity),
    target: 0.9,
    firstCallAfterSeconds: round(((http[0]?.at ?? started) - started) / 1000),
    backlogMergedAfterSeconds: round((mergedAt - started) / 1000),
  };
  await d.close();
  // Memory: the drain and the reconcile in a process of their own (as a Lambda container), fed
  // through the SQS emulator, with 1k, 5k and 20k edits queued before they start.
  const memory: Record<string, unknown> = {};
  // Twice: with V8's own heap sizing, and with the old space capped at 96 MiB (a heap a 256 MB
  // function leaves room for), which shows what the work needs rather than what V8 chose to keep.
  const capped: Record<string, unknown> = {};
  for (const n of [1_000, 5_000, 20_000]) {
    memory[`${n / 1000}k`] = await containerMemory(n, []);
    capped[`${n / 1000}k`] = await containerMemory(n, ['--max-old-space-size=96', '--max-semi-space-size=8']);
  }
  Object.assign(results.single as Record<string, unknown>, {
    container: memory,
    containerHeapCapped: capped,
  });
  console.log('single portal:', JSON.stringify(results.single));
}

/**
 * Peak memory and CPU of a container process that drains `n` queued edits of one portal, started
 * with `nodeOptions` (and BENCH_CONTAINER_NODE_OPTIONS, e.g. `--cpu-prof` to profile it).
 */
async function containerMemory(n: number, nodeOptions: string[]) {
  const { CreateQueueCommand, SQSClient } = await import('@aws-sdk/client-sqs');
  const { startLocalSqs } = await import('../local/sqs.ts');
  const { startSecretsManager } = await import('../local/secrets-manager.ts');
  const { startBitrix24Emulator } = await import('../local/bitrix24-emulator/index.ts');
  const { createLedgerTable } = await import('../local/dynamodb.ts');
  const { enqueueEdits } = await import('../lib/edits/queue.ts');
  const { spawnWorker } = await import('../test/drain/support/spawn-worker.ts');
  const { AWS, PREFIX, WEBHOOK, webhookSecret } = await import('../test/support/harness.ts');
  const { LIMITS } = await import('../lib/secrets/schema.ts');
  const dynamo = await startDynamoProcess();
  await createLedgerTable(dynamo.client, 'mem');
  const emulator = await startBitrix24Emulator({ limits: null });
  emulator.addWebhook(WEBHOOK);
  emulator.registerBot({ id: BOT.id, botToken: BOT.token, owner: { webhookUserId: WEBHOOK.userId } });
  const secrets = await startSecretsManager({
    secrets: {
      [`${PREFIX}mem`]: webhookSecret(emulator.url, {
        plan: undefined,
        limits: { burst: LIMITS.burst.max, perSecond: LIMITS.perSecond.max },
      }),
    },
  });
  const local = await startLocalSqs();
  const sqs = new SQSClient({ ...AWS, endpoint: local.url });
  const queueUrl = (
    await sqs.send(
      new CreateQueueCommand({
        QueueName: 'mem.fifo',
        Attributes: { FifoQueue: 'true', VisibilityTimeout: '60' },
      }),
    )
  ).QueueUrl as string;
  const portalQueueUrl = (
    await sqs.send(new CreateQueueCommand({ QueueName: 'mem-work', Attributes: { VisibilityTimeout: '60' } }))
  ).QueueUrl as string;
  const failedQueueUrl = (
    await sqs.send(
      new CreateQueueCommand({ QueueName: 'mem-failed.fifo', Attributes: { FifoQueue: 'true' } }),
    )
  ).QueueUrl as string;
  const ids = Array.from({ length: n }, () =>
    emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'queued' }),
  );
  for (let i = 0; i < ids.length; i += 100) {
    await enqueueEdits(
      ids.slice(i, i + 100).map((id) => ({
        portal: 'mem',
        botId: BOT.id,
        messageId: id,
        fields: { message: 'mem' },
        editId: `mem-${id}`,
        requestedAt: new Date().toISOString(),
      })),
      { queueUrl, client: sqs },
    );
  }
  const worker = spawnWorker(
    {
      sqsEndpoint: local.url,
      secretsEndpoint: secrets.url,
      secretPrefix: PREFIX,
      dynamoEndpoint: dynamo.url,
      ledgerTable: 'mem',
      queueUrl,
      portalQueueUrl,
      maxConcurrency: 10,
      timeoutMs: 60_000,
      options: { failedEditsQueueUrl: failedQueueUrl, indexLagMs: 0 },
    },
    {
      NODE_OPTIONS: ['--expose-gc', ...nodeOptions, process.env.BENCH_CONTAINER_NODE_OPTIONS ?? ''].join(' '),
    },
  );
  await worker.ready;
  await until(() => ids.every((id) => emulator.getMessage(id)?.text === 'mem'), 600_000);
  const stats = await worker.stop();
  sqs.destroy();
  await Promise.all([local.close(), secrets.close(), emulator.close(), dynamo.close()]);
  if (stats.cpu === undefined)
    throw new Error(`The container left no stats: ${worker.output().slice(-3000)}`);
  const cpu = stats.cpu as unknown as { user: number; system: number };
  return {
    peakRssMiB: round(Number(stats.peakRss) / 2 ** 20, 0),
    peakHeapMiB: round(Number(stats.peakHeap) / 2 ** 20, 0),
    retainedHeapMiB: round(Number(stats.retainedHeap) / 2 ** 20, 0),
    cpuMsPerEdit: round((cpu.user + cpu.system) / 1000 / n),
  };
}

console.log(JSON.stringify(results));
