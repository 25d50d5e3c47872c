import { PurgeQueueCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { createHandler as createGetHandler } from '../../functions/get-message.ts';
import { createHandler as createUpdateHandler } from '../../functions/update-message.ts';
import type { UpdateMessageDeps } from '../../lib/api/update-message.ts';
import type { Clock } from '../../lib/clock.ts';
import type { HttpResult } from '../../lib/http/responses.ts';
import { LedgerTable } from '../../lib/ledger/access.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import type { PortalGateway } from '../../lib/portal/gateway.ts';
import { RECONCILE_DEFAULTS, type ReconcileOptions } from '../../lib/reconcile/options.ts';
import type { Reconciler } from '../../lib/reconcile/reconcile.ts';
import { emptyStats } from '../../lib/reconcile/send.ts';
import type { WakeupSender } from '../../lib/schedule/portal-queue.ts';
import { sweep } from '../../lib/schedule/sweep.ts';
import { laterClock } from '../support/clock.ts';
import { httpApiEvent, lambdaContext } from '../support/events.ts';
import { BOT, freshLedger, type Harness, runDueWakeups, testReconciler } from '../support/harness.ts';

/** A ledger in a table of its own: one test's edits of message 789 never set another's fate or cadence. */
export { freshLedger };

export interface ReconcilerSetup {
  gateway?: PortalGateway;
  /** The reconciler's clock; default the harness's. */
  clock?: Clock;
  /** Where its wake-ups go; default the harness's in-memory portal work queue. */
  wakeups?: WakeupSender;
  options?: Partial<ReconcileOptions>;
}

/**
 * The harness's test reconciler with the API's settings: a 1 s call timeout and the default settle
 * window, without cadence or linger unless `options` set them.
 */
export function reconcilerFor(h: Harness, ledger: Ledger, setup: ReconcilerSetup = {}): Reconciler {
  return testReconciler(
    h,
    ledger,
    { callTimeoutMs: 1_000, ambiguousSettleMs: RECONCILE_DEFAULTS.ambiguousSettleMs, ...setup.options },
    {
      ...(setup.gateway ? { gateway: setup.gateway } : {}),
      ...(setup.clock ? { clock: setup.clock } : {}),
      ...(setup.wakeups ? { wakeups: setup.wakeups } : {}),
    },
  );
}

/** The API's dependencies on the harness: its gateway and a fresh reconciler (wake-ups kept in memory). */
export function updateDeps(
  h: Harness,
  ledger: Ledger,
  overrides: Partial<UpdateMessageDeps> = {},
  setup: ReconcilerSetup = {},
): UpdateMessageDeps {
  const gateway = overrides.gateway ?? setup.gateway ?? h.gateway;
  return {
    config: { defaultPortal: undefined },
    gateway,
    reconciler: reconcilerFor(h, ledger, { ...setup, gateway }),
    ...overrides,
  };
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

function answerOf(result: HttpResult): Answer {
  return {
    status: result.statusCode,
    headers: result.headers,
    body: JSON.parse(result.body) as Record<string, unknown>,
  };
}

/** POST /rest/imbot.v2.Chat.Message.update through the Lambda handler. */
export async function postUpdate(event: unknown, deps: UpdateMessageDeps): Promise<Answer> {
  return answerOf((await createUpdateHandler(deps)(event as never, lambdaContext())) as HttpResult);
}

/** GET /messages/{portal}/{botId}/{messageId} through the Lambda handler. */
export async function getMessageAt(
  path: string,
  ledger: Ledger,
  timing = { messageMinIntervalMs: 0, ambiguousSettleMs: 65_000 },
  method = 'GET',
): Promise<Answer> {
  const event = httpApiEvent(undefined, { method, path, rawBody: '' });
  return answerOf(
    (await createGetHandler({ ledger, timing })(event as never, lambdaContext())) as HttpResult,
  );
}

/** An update of message 789 on `acme` by the harness bot. */
export function update(fields: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return httpApiEvent(
    { botId: BOT.id, messageId: 789, fields, ...extra },
    { headers: { 'x-b24-portal': 'acme' } },
  );
}

/**
 * The portal's wake-ups run by another container `laterMs` after now (past any backoff of the
 * tests), as the portal work queue's consumer would run them: what each woken portal applied.
 */
export async function wakeLater(h: Harness, ledger: Ledger, laterMs = 5 * 60_000) {
  const clock = laterClock(laterMs, h.clock);
  const stats = emptyStats();
  const reports = await runDueWakeups({ ...h, clock }, reconcilerFor(h, ledger, { clock }), 30_000, stats);
  const applied = reports.flatMap((report) => [...report.fates.values()]).filter((f) => f.kind === 'applied');
  return { portals: reports.length, applied: applied.length, calls: stats.calls };
}

/**
 * The scheduled sweep, run `laterMs` after now: sends wake-ups that are overdue by then (lost, or
 * never taken by the queue) to the harness's portal work queue.
 */
export function sweepLater(h: Harness, ledger: Ledger, laterMs = 5 * 60_000) {
  const table = new LedgerTable({
    tableName: ledger.tableName,
    client: h.dynamo,
    now: laterClock(laterMs, h.clock).now,
  });
  return sweep({ table, sender: h.wakeups });
}

/** Bodies on the failed-edits queue (up to 10), left visible for the next look. */
export async function failedEdits(h: Harness): Promise<Array<Record<string, unknown>>> {
  const out = await h.sqs.send(
    new ReceiveMessageCommand({ QueueUrl: h.failedQueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }),
  );
  return (out.Messages ?? []).map((m) => JSON.parse(m.Body ?? '{}') as Record<string, unknown>);
}

export async function purgeQueues(h: Harness): Promise<void> {
  await Promise.all(
    [h.editsQueueUrl, h.failedQueueUrl].map((QueueUrl) => h.sqs.send(new PurgeQueueCommand({ QueueUrl }))),
  );
}
