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
  small.forEach((name, i) => d.sendEdit(name, smallIds[i] ?? 0, 'small'));
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

await (async () => {
  console.log(JSON.stringify(results));
})();
void BOT;
