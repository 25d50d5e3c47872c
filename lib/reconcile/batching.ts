import type { MessageState } from '../ledger/model.ts';

/** The options batching reads (normalised once, in options.ts). */
export interface BatchingOptions {
  /** The shortest gap between calls that are not full, and how recent a merge means "still sending". */
  batchLingerMs: number;
  /** The longest a fresh backlog waits from its oldest edit. */
  batchMaxWaitMs: number;
  maxCommandsPerCall: number;
}

/**
 * When a wake-up's call of `due` (fewer than a full call) should go instead of now, or undefined:
 * now. Edits someone waits for (merged ahead) and messages already shown that are edited again get
 * a call at most every `batchLingerMs` after the portal's last call: they progress, and calls carry
 * what came meanwhile. A fresh backlog waits while its producer is still sending (a message of it
 * became dirty, or the portal was merged into, within `batchLingerMs`), at most `batchMaxWaitMs`
 * from its oldest edit: a bulk import goes in full calls. Pure: the portal's last call, its last
 * merge (`touchedAt`) and the time come in.
 */
export function batchWait(
  due: readonly MessageState[],
  portal: { lastCallAt: number | undefined; touchedAt: number | undefined; now: number },
  options: BatchingOptions,
): number | undefined {
  const { batchLingerMs: gap, batchMaxWaitMs: maxWait, maxCommandsPerCall } = options;
  if (due.length >= maxCommandsPerCall || gap <= 0) return undefined;
  const { lastCallAt, touchedAt, now } = portal;
  const spaced = lastCallAt !== undefined && lastCallAt + gap > now ? lastCallAt + gap : undefined;
  const live = due.some((state) => (state.dueAt ?? 0) < 0 || state.appliedVersion > 0);
  if (live) return spaced;
  // Still being sent. The next look is three times the backlog's age from its oldest edit, and the
  // last one at `batchMaxWaitMs`: a long import costs about three looks (each a read and a write),
  // a short burst waits about twice its own length.
  const since = due.map((state) => state.dirtySince ?? now);
  const oldest = Math.min(...since);
  const newest = Math.max(...since, touchedAt ?? Number.NEGATIVE_INFINITY);
  const last = oldest + maxWait;
  if (newest + gap <= now || last <= now) return spaced;
  const next = Math.max(newest + gap, now + 2 * (now - oldest));
  // A look this close to the last one would only put it off to the last one: the last it is.
  return Math.max(spaced ?? 0, next > last - 2 * gap ? last : next);
}
