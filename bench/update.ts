// Warm latency of the update-message handler against a raw fetch of the same emulator call,
// measured in the same run, and the ledger's own requests alone. Usage: npm run bench:update [-- --iterations 2000]
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createHandler } from '../functions/update-message.ts';
import { UPDATE_METHOD } from '../lib/bitrix24/imbot.ts';
import { enqueueEdits } from '../lib/edits/queue.ts';
import type { HttpResult } from '../lib/http/responses.ts';
import { Ledger } from '../lib/ledger/store.ts';
import { Reconciler } from '../lib/reconcile/reconcile.ts';
import { httpApiEvent, lambdaContext } from '../test/support/events.ts';
import { BOT, startHarness, WEBHOOK } from '../test/support/harness.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '2000' } } });
const iterations = Math.min(20_000, Math.max(100, Number(values.iterations)));
const warmup = Math.min(500, Math.floor(iterations / 4));

const h = await startHarness();
// Every call edits message 789 again: the cadence (one apply per message per second) is turned off,
// so each call is a merge into the ledger plus one update, as for a message edited once.
const ledger = new Ledger({ tableName: h.ledgerTable, client: h.dynamo });
const reconciler = new Reconciler({
  ledger,
  gateway: h.gateway,
  sqs: h.sqs,
  options: { failedEditsQueueUrl: h.failedQueueUrl, messageMinIntervalMs: 0 },
});
const handler = createHandler({
  config: { defaultPortal: 'acme' },
  gateway: h.gateway,
  reconciler,
  enqueue: (edits, ids) =>
    enqueueEdits(edits, { queueUrl: h.editsQueueUrl, client: h.sqs, deduplicationIds: ids }),
});
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
 * The ledger's own requests of one API call, alone: the read and write of the merge, the portal
 * lease taken and released around the call, the applied mark.
 */
const timing = { messageMinIntervalMs: 0, ambiguousSettleMs: 65_000 };
const ledgerKey = { portal: 'acme', botId: BOT.id, messageId: 790 };
h.emulator.addMessage({ id: 790, botId: BOT.id, chatId: 12, text: 'ledger only' });
async function viaLedger(i: number): Promise<void> {
  const merged = await ledger.merge(
    ledgerKey,
    [
      {
        ...ledgerKey,
        fields: { message: `ledger ${i}` },
        editId: `l${i}-${Math.random()}`,
        at: Date.now(),
        seq: '',
      },
    ],
    timing,
  );
  await ledger.acquireLease('acme', 'bench', Date.now() + 10_000, Date.now());
  await ledger.markApplied(ledgerKey, merged.state.version, Date.now(), timing);
  await ledger.releaseLease('acme', 'bench');
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
  for (let r = 0; r < rounds; r++) {
    fetchSamples.push(...(await measure(viaFetch)));
    handlerSamples.push(...(await measure(viaHandler)));
    ledgerSamples.push(...(await measure(viaLedger)));
  }
  handlerSamples.sort((a, b) => a - b);
  fetchSamples.sort((a, b) => a - b);
  ledgerSamples.sort((a, b) => a - b);
  const rows = [
    ['raw fetch', pct(fetchSamples, 0.5), pct(fetchSamples, 0.99)],
    ['update-message handler', pct(handlerSamples, 0.5), pct(handlerSamples, 0.99)],
    ['ledger requests alone (5)', pct(ledgerSamples, 0.5), pct(ledgerSamples, 0.99)],
  ] as const;
  console.log(
    `bench:update — ${rounds} rounds × ${iterations} warm calls each (after ${warmup} warm-up), Node ${process.version}`,
  );
  console.log('series                    p50 ms    p99 ms');
  for (const [name, p50, p99] of rows)
    console.log(`${name.padEnd(24)} ${p50.toFixed(3).padStart(7)} ${p99.toFixed(3).padStart(9)}`);
  const [fetchP50, handlerP50] = [rows[0][1], rows[1][1]];
  console.log(
    `p50 overhead: ${(handlerP50 - fetchP50).toFixed(3)} ms (target ≤ 5 ms); ratio handler/fetch p50: ${(handlerP50 / fetchP50).toFixed(2)}`,
  );
  console.log(
    `of which the ledger's five DynamoDB requests (dynalite on loopback): ${rows[2][1].toFixed(3)} ms; the rest: ${(handlerP50 - fetchP50 - rows[2][1]).toFixed(3)} ms`,
  );
  console.log(`p99 ratio handler/fetch: ${(rows[1][2] / rows[0][2]).toFixed(2)}`);
} finally {
  await h.close();
}
