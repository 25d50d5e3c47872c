import { createHash } from 'node:crypto';
import type { LedgerTable } from './access.ts';
import { keyOfPk } from './codec.ts';
import type { MessageKey } from './model.ts';
import { DIRTY_INDEX, DIRTY_PORTAL, DUE_AT, LEDGER_KEY } from './table.ts';

/**
 * The dirty index: a sparse GSI of the messages whose desired state is not applied yet, by portal,
 * sorted by when each may be sent next. It is eventually consistent: an item dirtied a moment ago
 * may be missing from a query (the wake-up schedule allows for that, `INDEX_LAG_MS`).
 */

/**
 * How long a write may take to show in an index query. DynamoDB propagates GSI updates "within a
 * fraction of a second" normally; dynalite at once. A holder that ends a run within this of a merge
 * into its portal looks again shortly after, in case its last query missed it.
 */
export const INDEX_LAG_MS = 1_000;

/**
 * The index key of an edit someone waits for (the API's): before every real due time (a fresh
 * message's is 0), so the lease holder's next call carries it ahead of the backlog. Only for a
 * message due within `AHEAD_WITHIN_MS`: one held back for longer (backoff, settle) keeps its place,
 * or it would take a place at the head of every round until then.
 */
const AHEAD_DUE_AT = -1;
export const AHEAD_WITHIN_MS = 1_000;
/** The fraction's steps per ms: an index key lies in [due, due + 1 − 1 / INDEX_STEPS]. */
const INDEX_STEPS = 1e6;
/** Above every ahead message's index key, below every fresh one's (due at 0). */
const AHEAD_BELOW = AHEAD_DUE_AT + 1 - 0.5 / INDEX_STEPS;

/**
 * The index sort key for a message due at `due` (or `ahead` of its portal's backlog): the due time
 * plus a fraction of a millisecond drawn from the message's key, so that messages due at the same
 * moment (every fresh one is due at 0) still have distinct index keys. dynalite, the local
 * DynamoDB, tells items of one index key apart by only 24 bits of a hash of their table key: with
 * thousands of messages under one index key, two collide, one entry overwrites the other, and that
 * message drops out of the index (found by bench:drain with 10 drains: 1 of 5,000 messages never
 * applied). Real DynamoDB has no such limit; the fraction costs nothing there.
 */
export function indexDueAt(pk: string, due: number | 'ahead'): number {
  const fraction = createHash('sha256').update(pk).digest().readUInt32BE(0) / 2 ** 32;
  return (due === 'ahead' ? AHEAD_DUE_AT : due) + Math.floor(fraction * INDEX_STEPS) / INDEX_STEPS;
}

/** Keys of the portal's dirty messages due by `now`, most overdue first (ahead ones before all). */
export async function dueKeys(
  table: LedgerTable,
  portal: string,
  limit: number,
  now = table.now(),
): Promise<MessageKey[]> {
  const items = await table.query(
    {
      IndexName: DIRTY_INDEX,
      // Due within this millisecond counts as due: index keys carry a fraction of a ms.
      KeyConditionExpression: '#dp = :portal AND #ds < :before',
      ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#ds': DUE_AT },
      ExpressionAttributeValues: { ':portal': portal, ':before': Math.floor(now) + 1 },
      ScanIndexForward: true,
      Limit: limit,
    },
    'list dirty messages',
  );
  return items.flatMap((item) => keyOfPk(String(item[LEDGER_KEY])) ?? []);
}

/**
 * One look at the portal's dirty set, most overdue first: the keys due by `now` (up to `limit`),
 * and when the first one not yet due is due (undefined when none is dirty beyond them; `now` when
 * the page held only due keys, so more may be due).
 */
export async function dirtyPage(
  table: LedgerTable,
  portal: string,
  limit: number,
  now = table.now(),
): Promise<{ due: MessageKey[]; next: number | undefined }> {
  const items = await table.query(
    {
      IndexName: DIRTY_INDEX,
      KeyConditionExpression: '#dp = :portal',
      ExpressionAttributeNames: { '#dp': DIRTY_PORTAL },
      ExpressionAttributeValues: { ':portal': portal },
      ScanIndexForward: true,
      Limit: limit + 1,
    },
    'list dirty messages',
  );
  // Due within this millisecond counts as due: index keys carry a fraction of a ms.
  const before = Math.floor(now) + 1;
  const due: MessageKey[] = [];
  let next: number | undefined;
  for (const item of items) {
    const at = Number(item[DUE_AT]);
    if (at < before && due.length < limit) {
      const key = keyOfPk(String(item[LEDGER_KEY]));
      if (key) due.push(key);
    } else {
      next = at < before ? now : Math.max(0, Math.floor(at));
      break;
    }
  }
  return { due, next };
}

/** Keys of the portal's messages merged ahead (edits an API caller waits for), oldest first. */
export function aheadKeys(table: LedgerTable, portal: string, limit: number): Promise<MessageKey[]> {
  return dueKeys(table, portal, limit, AHEAD_BELOW);
}

/** When the portal's earliest dirty message is due (epoch ms; at or before now when one is due), or none. */
export async function nextDueAt(table: LedgerTable, portal: string): Promise<number | undefined> {
  const [first] = await table.query(
    {
      IndexName: DIRTY_INDEX,
      KeyConditionExpression: '#dp = :portal',
      ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#ds': DUE_AT },
      ExpressionAttributeValues: { ':portal': portal },
      ProjectionExpression: '#ds',
      ScanIndexForward: true,
      Limit: 1,
    },
    'find the next due message',
  );
  const due = first?.[DUE_AT];
  return typeof due === 'number' ? Math.max(0, Math.floor(due)) : undefined;
}
