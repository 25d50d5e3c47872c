import type { LedgerTable } from '../ledger/access.ts';
import { portalOfPk } from '../ledger/codec.ts';
import { LEDGER_KEY, WAKE_AT, WAKE_INDEX, WAKE_SHARD, WAKE_SHARDS } from '../ledger/table.ts';
import type { WakeupSender } from './portal-queue.ts';

/**
 * How long past its time a wake-up may still be on its way (or in a busy queue) before the sweep
 * sends it again. A holder's lease end counts the same: a holder that died is found this long after.
 */
export const SWEEP_GRACE_MS = 60_000;
/** Wake-up requests to the queue at once. */
const SEND_CONCURRENCY = 10;

export interface SweepSummary {
  /** Portals whose wake time had passed by more than the grace. */
  overdue: number;
  /** Of those, portals whose wake-up the queue took again. */
  woken: number;
}

/**
 * The safety net of the schedule: finds the portals whose wake time passed more than
 * `SWEEP_GRACE_MS` ago (a wake-up lost, or never sent, or a holder that died) in the wake-up index,
 * and sends each a wake-up now. It reconciles nothing itself and reads nothing of portals that are
 * not overdue: its cost follows the overdue portals, not the fleet.
 */
export async function sweep(deps: {
  table: LedgerTable;
  sender: WakeupSender;
  /** Default `SWEEP_GRACE_MS`; shorter only in tests. */
  graceMs?: number | undefined;
}): Promise<SweepSummary> {
  const before = deps.table.now() - (deps.graceMs ?? SWEEP_GRACE_MS);
  const shards = Array.from({ length: WAKE_SHARDS }, (_, i) => `w${i}`);
  const portals = (await Promise.all(shards.map((shard) => overdueOf(deps.table, shard, before)))).flat();
  const slices = Array.from({ length: SEND_CONCURRENCY }, (_, i) =>
    portals.filter((_, j) => j % SEND_CONCURRENCY === i),
  );
  const refused = (
    await Promise.all(
      slices.map((slice) =>
        slice.length === 0 ? [] : deps.sender.send(slice.map((portal) => ({ portal, at: deps.table.now() }))),
      ),
    )
  ).flat();
  return { overdue: portals.length, woken: portals.length - refused.length };
}

async function overdueOf(table: LedgerTable, shard: string, before: number): Promise<string[]> {
  const portals: string[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await table.queryPage(
      {
        IndexName: WAKE_INDEX,
        KeyConditionExpression: '#shard = :shard AND #wake < :before',
        ExpressionAttributeNames: { '#shard': WAKE_SHARD, '#wake': WAKE_AT },
        ExpressionAttributeValues: { ':shard': shard, ':before': before },
        ...(start ? { ExclusiveStartKey: start } : {}),
      },
      'list overdue wake-ups',
    );
    for (const item of page.items) {
      const portal = portalOfPk(String(item[LEDGER_KEY]));
      if (portal) portals.push(portal);
    }
    start = page.next;
  } while (start);
  return portals;
}
