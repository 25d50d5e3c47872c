// One portal's throughput through the edits queue and the portal work queue, against its physical
// limit (its rate × 50 commands per call), each phase measured in the same run: the standard plan
// (burst 50, 2/s) with API_RATE_SHARE 0 and 0.2, the same while 10 API callers edit other messages,
// and the enterprise plan (burst 250, 5/s). Queue records are delivered as SQS FIFO delivers them;
// DynamoDB (dynalite) runs in its own process (bench/support/deployment.ts).
//   npm run bench:drain [-- --messages 5000 --enterprise-messages 20000]
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type CommandSpec, integerOption, parseCommandLine, runCommand } from '../scripts/cli.ts';

process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';

const COMMAND: CommandSpec = {
  name: 'npm run bench:drain',
  summary: [
    'One portal through the drain and the reconcile at the standard and enterprise plans: distinct',
    'messages with the API share 0 and 0.2, the same while 10 API callers edit, and the enterprise plan.',
    'Prints each phase as JSON with its ratio to the physical limit; about 3 minutes with the defaults.',
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
  },
  examples: ['npm run bench:drain', 'npm run bench:drain -- --messages 1000 --enterprise-messages 2000'],
};
let sizes: { messages: number; enterprise: number } | undefined;
await runCommand(COMMAND, () => {
  const args = parseCommandLine(COMMAND, process.argv.slice(2));
  if (!args) return;
  sizes = {
    messages: integerOption(args.values, 'messages', 500, 20_000),
    enterprise: integerOption(args.values, 'enterprise-messages', 500, 40_000),
  };
});
if (!sizes) process.exit();
const MESSAGES = sizes.messages;
const ENTERPRISE = sizes.enterprise;

const { startDeployment } = await import('./support/deployment.ts');
const { enterprisePlan, standardPlan } = await import('../lib/pacing/policies.ts');
const { emptyStats } = await import('../lib/reconcile/send.ts');
const { messageKeyText } = await import('../lib/ledger/model.ts');
const { BOT } = await import('../test/support/harness.ts');

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const results: Record<string, unknown> = {};

interface Phase {
  name: string;
  share: number;
  plan: { burst: number; perSecond: number };
  messages: number;
  apiCallers?: boolean;
}

async function phase({ name, share, plan, messages, apiCallers }: Phase): Promise<void> {
  const d = await startDeployment({
    portals: ['acme'],
    limits: plan,
    drainConcurrency: 10,
    reconcileConcurrency: 10,
    options: { apiRateShare: share },
  });
  const portal = d.portals.get('acme');
  const ids = Array.from({ length: messages }, () => portal?.message() ?? 0);
  for (const id of ids) d.sendEdit('acme', id, name);
  const reads = d.dynamo.reads;
  const writes = d.dynamo.writes;
  d.start();
  let drained = false;
  const callers = apiCallers ? apiEdits(d, () => drained) : undefined;
  const end = Date.now() + 600_000;
  while (!ids.every((id) => portal?.emulator.getMessage(id)?.text === name) && Date.now() < end)
    await sleep(100);
  drained = true;
  const alongside = callers ? await callers : undefined;
  await d.stop();
  const applied = ids.filter((id) => portal?.emulator.getMessage(id)?.text === name).length;
  const calls = portal?.emulator.calls.filter((c) => !c.viaBatch) ?? [];
  const span = ((calls.at(-1)?.at ?? 0) - (calls[0]?.at ?? 0)) / 1000;
  // What the portal could take over the run: its burst, then its rate, 50 commands a call.
  const capacity = (plan.burst + plan.perSecond * span) * 50;
  results[name] = {
    plan: `${plan.burst}/${plan.perSecond}`,
    apiRateShare: share,
    messages,
    applied,
    seconds: round(span, 1),
    calls: calls.length,
    commandsPerCall: round(applied / Math.max(1, calls.length), 1),
    ratioToPhysicalLimit: round(applied / capacity),
    queryLimitExceeded: calls.filter((c) => c.code === 'QUERY_LIMIT_EXCEEDED').length,
    dynamoReadsPerEdit: round((d.dynamo.reads - reads) / applied),
    dynamoWritesPerEdit: round((d.dynamo.writes - writes) / applied),
    ...(alongside ? { apiCallers: alongside } : {}),
  };
  console.log(`${name}:`, JSON.stringify(results[name]));
  await d.close();
}

/**
 * Ten API callers, each its own container, editing messages of their own (a new one each time)
 * while the backlog drains: their latency, and how many were not applied while they waited.
 */
async function apiEdits(d: Awaited<ReturnType<typeof startDeployment>>, drained: () => boolean) {
  const latencies: number[] = [];
  const notApplied: Record<string, number> = {};
  await sleep(2_000);
  const portal = d.portals.get('acme');
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      const { reconciler } = d.container();
      while (!drained()) {
        const id = portal?.message() ?? 0;
        const key = { portal: 'acme', botId: BOT.id, messageId: id };
        const startedAt = performance.now();
        const edit = { ...key, fields: { message: 'api' }, editId: randomUUID(), at: Date.now(), seq: '' };
        const { report } = await reconciler.mergeAndApply(key, [edit], {
          remainingMs: () => 14_000,
          stats: emptyStats(),
        });
        latencies.push(performance.now() - startedAt);
        const fate = report.fates.get(messageKeyText(key));
        if (fate?.kind !== 'applied') {
          const code = fate?.kind === 'held' ? fate.code : (fate?.kind ?? 'none');
          notApplied[code] = (notApplied[code] ?? 0) + 1;
        }
        await sleep(500);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0, 0);
  return { callers: 10, edits: latencies.length, p50Ms: at(0.5), p99Ms: at(0.99), notApplied };
}

await phase({ name: 'distinct_share_0', share: 0, plan: standardPlan, messages: MESSAGES });
await phase({ name: 'distinct_share_0.2', share: 0.2, plan: standardPlan, messages: MESSAGES });
await phase({
  name: 'distinct_share_0.2_with_10_api_callers',
  share: 0.2,
  plan: standardPlan,
  messages: MESSAGES,
  apiCallers: true,
});
await phase({ name: 'enterprise_distinct_share_0', share: 0, plan: enterprisePlan, messages: ENTERPRISE });
console.log(JSON.stringify(results));
