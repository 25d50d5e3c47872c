// Warm latency of the update-message handler against a raw fetch of the same emulator call,
// measured in the same run, and the ledger's own requests alone. Usage: npm run bench:update [-- --iterations 2000]
import { performance } from 'node:perf_hooks';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { createHandler } from '../functions/update-message.ts';
import { UPDATE_METHOD } from '../lib/bitrix24/imbot.ts';
import type { HttpResult } from '../lib/http/responses.ts';
import { Ledger } from '../lib/ledger/messages.ts';
import { Reconciler } from '../lib/reconcile/reconcile.ts';
import { sqsWakeups } from '../lib/schedule/portal-queue.ts';
import { LIMITS } from '../lib/secrets/schema.ts';
import { type CommandSpec, integerOption, parseCommandLine, runCommand } from '../scripts/cli.ts';
import { httpApiEvent, lambdaContext } from '../test/support/events.ts';
import { BOT, PREFIX, startHarness, WEBHOOK, webhookSecret } from '../test/support/harness.ts';

const COMMAND: CommandSpec = {
  name: 'npm run bench:update',
  summary: [
    'Warm latency of the update API (handler, ledger, one Bitrix24 call on loopback) against a raw',
    'fetch of the same call, with the ledger alone and a floor of two bare UpdateItems. Prints p50',
    'and p99 of each and the ratios; about 90 seconds with the defaults.',
  ].join('\n'),
  usage: '[-- --iterations <n>]',
  options: {
    iterations: {
      type: 'string',
      value: '<n>',
      default: '2000',
      description:
        'calls per series in each of the 4 rounds (100 to 20000; a quarter of them, at most 500, warm up first)',
    },
  },
  examples: ['npm run bench:update', 'npm run bench:update -- --iterations 1000'],
};
let iterations = 0;
await runCommand(COMMAND, () => {
  const args = parseCommandLine(COMMAND, process.argv.slice(2));
  if (args) iterations = integerOption(args.values, 'iterations', 100, 20_000);
});
if (iterations === 0) process.exit();
const warmup = Math.min(500, Math.floor(iterations / 4));

// DynamoDB runs beside the functions, not in their process: so does the local one here.
const h = await startHarness();
// A portal whose rate is never the limit: this measures our latency, not the portal's pacing (the
// API takes from the portal's rate bucket like every sender, and 2/s would pace these calls).
h.secretsManager.setSecret(
  `${PREFIX}acme`,
  webhookSecret(h.emulator.url, {
    plan: undefined,
    limits: { burst: LIMITS.burst.max, perSecond: LIMITS.perSecond.max },
  }),
);
// Every call edits message 789 again: the cadence (one apply per message per second) is turned off,
// so each call is a merge into the ledger plus one update, as for a message edited once.
const ledger = new Ledger({ tableName: h.ledgerTable, client: h.dynamo });
const reconciler = new Reconciler({
  ledger,
  gateway: h.gateway,
  sqs: h.sqs,
  // The portal work queue on the SQS emulator, as deployed (a wake-up is sent only when edits wait).
  wakeups: sqsWakeups({ client: h.sqs, queueUrl: h.portalQueueUrl, now: Date.now }),
  // dynalite's indexes have no lag.
  options: { failedEditsQueueUrl: h.failedQueueUrl, messageMinIntervalMs: 0, indexLagMs: 0 },
});
const handler = createHandler({ config: { defaultPortal: 'acme' }, gateway: h.gateway, reconciler });
const webhookUrl = `${h.emulator.url}/rest/${WEBHOOK.userId}/${WEBHOOK.code}/${UPDATE_METHOD}`;

async function viaHandler(i: number): Promise<void> {
  const event = httpApiEvent({ botId: BOT.id, messageId: 789, fields: { message: `handler ${i}` } });
  const result = (await handler(event as never, lambdaContext())) as HttpResult;
  if (result.statusCode !== 200) throw new Error(`handler answered ${result.statusCode}: ${result.body}`);
}

async function viaFetch(i: number): Promise<void> {
  const response = await fetch(webhookUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({
      botId: BOT.id,
      messageId: 789,
      botToken: BOT.token,
      fields: { message: `fetch ${i}` },
    }),
  });
  const body = (await response.json()) as { result?: unknown };
  if (!response.ok || !body.result) throw new Error(`fetch answered ${response.status}`);
}

/**
 * The ledger's own requests of one API call, alone, as the API makes them: the merge (one write when
 * this container saw the message last), the portal lease taken, then the applied mark, the query for
 * the portal's next due message and the lease given up.
 */
const timing = { messageMinIntervalMs: 0, ambiguousSettleMs: 65_000 };
const ledgerKey = { portal: 'acme', botId: BOT.id, messageId: 790 };
h.emulator.addMessage({ id: 790, botId: BOT.id, chatId: 12, text: 'ledger only' });
async function viaLedger(i: number): Promise<void> {
  const edit = {
    ...ledgerKey,
    fields: { message: `ledger ${i}` },
    editId: `l${i}-${Math.random()}`,
    at: Date.now(),
    seq: '',
  };
  const merged = await ledger.merge(ledgerKey, [edit], timing);
  await ledger.portals.acquireLease('acme', 'bench', Date.now() + 10_000, Date.now());
  await ledger.markApplied(ledgerKey, merged.state.version, Date.now(), timing);
  await ledger.nextDueAt('acme');
  await ledger.portals.releaseLease('acme', 'bench');
}

/**
 * The floor any durable API path pays on this DynamoDB: the edit recorded before the call and its
 * outcome after it, as two bare single-attribute UpdateItems in sequence.
 */
let floorCounter = 0;
async function viaFloor(): Promise<void> {
  for (let n = 0; n < 2; n++) {
    floorCounter += 1;
    await h.dynamo.send(
      new UpdateItemCommand({
        TableName: h.ledgerTable,
        Key: { pk: { S: 'bench#floor' } },
        UpdateExpression: 'SET n = :n',
        ConditionExpression: 'attribute_not_exists(n) OR n < :n',
        ExpressionAttributeValues: { ':n': { N: String(floorCounter) } },
      }),
    );
  }
}

async function measure(run: (i: number) => Promise<void>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await run(i);
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    await run(i);
    samples.push(performance.now() - start);
  }
  return samples.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

try {
  // Interleave the two series in rounds so that drift of the machine affects both alike.
  const rounds = 4;
  const handlerSamples: number[] = [];
  const fetchSamples: number[] = [];
  const ledgerSamples: number[] = [];
  const floorSamples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    fetchSamples.push(...(await measure(viaFetch)));
    handlerSamples.push(...(await measure(viaHandler)));
    ledgerSamples.push(...(await measure(viaLedger)));
    floorSamples.push(...(await measure(viaFloor)));
  }
  floorSamples.sort((a, b) => a - b);
  handlerSamples.sort((a, b) => a - b);
  fetchSamples.sort((a, b) => a - b);
  ledgerSamples.sort((a, b) => a - b);
  const rows = [
    ['raw fetch', pct(fetchSamples, 0.5), pct(fetchSamples, 0.99)],
    ['update-message handler', pct(handlerSamples, 0.5), pct(handlerSamples, 0.99)],
    ['ledger requests alone', pct(ledgerSamples, 0.5), pct(ledgerSamples, 0.99)],
    ['floor: 2 bare UpdateItems', pct(floorSamples, 0.5), pct(floorSamples, 0.99)],
  ] as const;
  console.log(
    `bench:update — ${rounds} rounds × ${iterations} warm calls each (after ${warmup} warm-up), Node ${process.version}`,
  );
  console.log('series                       p50 ms    p99 ms');
  for (const [name, p50, p99] of rows)
    console.log(`${name.padEnd(27)} ${p50.toFixed(3).padStart(7)} ${p99.toFixed(3).padStart(9)}`);
  const [fetchP50, handlerP50] = [rows[0][1], rows[1][1]];
  console.log(
    `p50 overhead: ${(handlerP50 - fetchP50).toFixed(3)} ms (target ≤ 5 ms); ratio handler/fetch p50: ${(handlerP50 / fetchP50).toFixed(2)}`,
  );
  console.log(
    `of which the ledger's DynamoDB requests (4, two at a time; dynalite on loopback): ${rows[2][1].toFixed(3)} ms; the rest: ${(handlerP50 - fetchP50 - rows[2][1]).toFixed(3)} ms`,
  );
  const floor = rows[0][1] + rows[3][1];
  console.log(
    `floor (raw fetch + 2 bare UpdateItems in sequence): ${floor.toFixed(3)} ms; handler p50 / floor: ${(handlerP50 / floor).toFixed(2)}`,
  );
  console.log(`p99 ratio handler/fetch: ${(rows[1][2] / rows[0][2]).toFixed(2)}`);
} finally {
  await h.close();
}
