/**
 * Bitrix24's operating-time budget, kept ahead of the portal: each method may use `limitSeconds` of
 * server time per app or webhook, summed in ten baskets (one per minute of its first call, dropping
 * ten minutes after that call). Past the limit the method is refused with OPERATION_TIME_LIMIT for
 * the whole app. We model the baskets from what every answer reports (`time.operating`), spread the
 * rest of the budget once a threshold is passed, and never send a call that would cross the limit.
 * Pure: the clock is an argument; the book travels with the portal's lease.
 */

/** How many baskets make the window. */
const BASKETS = 10;

export interface OperatingPolicy {
  /** Server seconds a method may use in the window (480 on cloud portals). */
  readonly limitSeconds: number;
  /** Length of one basket in ms (a minute on cloud portals; tests scale it down). */
  readonly basketMs: number;
  /** Share of the limit past which the rest is spread until baskets drop, in (0, 1]. */
  readonly threshold: number;
}

export const cloudOperatingBudget: OperatingPolicy = Object.freeze({
  limitSeconds: 480,
  basketMs: 60_000,
  threshold: 0.8,
});

/** One basket: the basket index (epoch ms ÷ basket length), its first call's start, seconds used. */
export type Basket = readonly [index: number, firstAt: number, seconds: number];

/** What we know of one method's budget at one portal. */
export interface MethodUse {
  readonly baskets: readonly Basket[];
  /** Server seconds one command costs, from recent answers (0 until one reports a cost). */
  readonly perCommand: number;
  /** Start of the last call billed to the method. */
  readonly lastCallAt: number;
}

/** Per method (`batch`, `imbot.v2.Chat.Message.update`, …). */
export type OperatingBook = Readonly<Record<string, MethodUse>>;

/** What one answer said of one method's budget. */
export interface OperatingObservation {
  /** When the call started (our clock). */
  startedAt: number;
  /**
   * When the portal says it started the call (`time.start`, epoch ms): its basket is counted from
   * the later of the two, so neither the request's way there nor a portal clock ahead of ours makes
   * us count a basket as dropped before the portal does.
   */
  servedAt?: number | undefined;
  /** Commands the call carried (1 for a single call). */
  commands: number;
  /** `time.operating`: seconds used in the window, this call included. */
  operating: number;
}

/**
 * How long a basket lasts by our clock: the window, plus a margin for a portal clock behind ours
 * (a basket starts when the call reaches the portal, and the `time.start` it reports is then early
 * by our clock), so we never count a basket as dropped before the portal does. 2 s for minute baskets.
 */
function windowMs(policy: OperatingPolicy): number {
  return BASKETS * policy.basketMs + Math.min(policy.basketMs / 4, 2_000);
}

function live(use: MethodUse, at: number, policy: OperatingPolicy): Basket[] {
  return use.baskets.filter(([, firstAt]) => firstAt + windowMs(policy) > at);
}

function sum(baskets: readonly Basket[]): number {
  return baskets.reduce((total, [, , seconds]) => total + seconds, 0);
}

/** Seconds the method has used in the window at `at`, by our model. */
export function usedSeconds(use: MethodUse | undefined, at: number, policy: OperatingPolicy): number {
  return use ? sum(live(use, at, policy)) : 0;
}

function addToBasket(baskets: Basket[], at: number, seconds: number, policy: OperatingPolicy): Basket[] {
  const index = Math.floor(at / policy.basketMs);
  const found = baskets.find(([i]) => i === index);
  if (!found) return [...baskets, [index, at, seconds]];
  return baskets.map((b) => (b === found ? [b[0], Math.min(b[1], at), b[2] + seconds] : b));
}

/**
 * The book after an answer: what the portal reports beyond our model is this call's cost (or spend
 * we did not see, which then drops with this call's basket: later, never earlier, than the portal's).
 */
export function recordOperating(
  use: MethodUse | undefined,
  seen: OperatingObservation,
  policy: OperatingPolicy,
): MethodUse | undefined {
  if (!Number.isFinite(seen.operating) || seen.operating < 0) return use;
  const served = seen.servedAt;
  const basketAt =
    served !== undefined && Number.isFinite(served) ? Math.max(seen.startedAt, served) : seen.startedAt;
  const baskets = portalsBaskets(use, seen, basketAt, policy);
  const added = seen.operating - sum(baskets);
  if (added <= 0) {
    return use ? { ...use, baskets, lastCallAt: Math.max(use.lastCallAt, seen.startedAt) } : undefined;
  }
  const sample = added / Math.max(1, seen.commands);
  // A dearer call counts at once; cheaper ones bring the estimate down slowly.
  const perCommand =
    use && use.perCommand > 0 ? Math.max(sample, use.perCommand * 0.7 + sample * 0.3) : sample;
  return {
    baskets: addToBasket(baskets, basketAt, added, policy),
    perCommand,
    lastCallAt: Math.max(use?.lastCallAt ?? 0, seen.startedAt),
  };
}

/**
 * Our live baskets as the portal counts them when it answered. We keep a basket a margin past its
 * drop (a portal clock behind ours); when the answer counts less than we do with this call's
 * expected cost, the portal has dropped those already: so do we, oldest first. Kept, they would
 * hide this call's cost (taken for theirs) and lose it when they drop here, and the next calls
 * would cross the limit (found on a virtual clock: OPERATION_TIME_LIMIT whenever calls fell in the
 * margin). A basket dropped wrongly moves its seconds into this call's, which drops later: safe.
 */
function portalsBaskets(
  use: MethodUse | undefined,
  seen: OperatingObservation,
  at: number,
  policy: OperatingPolicy,
): Basket[] {
  const baskets = use ? live(use, seen.startedAt, policy).sort((a, b) => a[1] - b[1]) : [];
  const expected = (use?.perCommand ?? 0) * seen.commands;
  const nominalMs = BASKETS * policy.basketMs;
  let first = 0;
  let counted = sum(baskets);
  for (const [, firstAt, seconds] of baskets) {
    if (counted + expected <= seen.operating || firstAt + nominalMs > at) break;
    counted -= seconds;
    first += 1;
  }
  return baskets.slice(first);
}

/**
 * After OPERATION_TIME_LIMIT: the method is spent (by calls we did not see) until `freeAt` (when
 * Bitrix24 said its oldest basket drops, as the caller reckons it).
 */
export function markSpent(
  use: MethodUse | undefined,
  now: number,
  freeAt: number,
  policy: OperatingPolicy,
): MethodUse {
  const until = Math.max(now, freeAt);
  const baskets = use ? live(use, now, policy) : [];
  const missing = policy.limitSeconds - sum(baskets);
  const firstAt = until - windowMs(policy);
  return {
    baskets: missing > 0 ? [...baskets, [Math.floor(firstAt / policy.basketMs), firstAt, missing]] : baskets,
    perCommand: use?.perCommand ?? 0,
    lastCallAt: use?.lastCallAt ?? now,
  };
}

/**
 * How long a call of `commands` commands must wait, in ms (0: send now). Never past the limit:
 * a call that would cross it waits until enough baskets drop. Past the threshold the rest of the
 * budget is spread evenly until the next basket drops.
 */
export function operatingWaitMs(
  use: MethodUse | undefined,
  commands: number,
  now: number,
  policy: OperatingPolicy,
): number {
  if (!use || use.perCommand <= 0) return 0;
  const baskets = live(use, now, policy).sort((a, b) => a[1] - b[1]);
  const used = sum(baskets);
  const cost = commands * use.perCommand;
  const { limitSeconds } = policy;
  if (used + cost > limitSeconds) {
    // The earliest drop after which the call fits (a call dearer than the whole budget waits for all).
    let left = used;
    for (const [, firstAt, seconds] of baskets) {
      left -= seconds;
      if (left + cost <= limitSeconds || left <= 0) return Math.max(0, firstAt + windowMs(policy) - now);
    }
    return 0;
  }
  if (used + cost <= policy.threshold * limitSeconds) return 0;
  const oldest = baskets[0];
  if (!oldest) return 0;
  // Spend `remaining` evenly until the next drop: the call is due once the time since the last
  // call has earned its cost at that pace, t - last >= cost * (drop - t) / remaining.
  const remaining = limitSeconds - used;
  const drop = oldest[1] + windowMs(policy);
  const due = (use.lastCallAt * remaining + cost * drop) / (remaining + cost);
  return Math.max(0, Math.ceil(due - now));
}

/** A book read back from storage: anything malformed is dropped rather than trusted. */
export function parseOperatingBook(value: unknown): OperatingBook {
  if (typeof value !== 'object' || value === null) return {};
  const book: Record<string, MethodUse> = {};
  for (const [method, raw] of Object.entries(value)) {
    if (typeof raw !== 'object' || raw === null) continue;
    const { baskets, perCommand, lastCallAt } = raw as Record<string, unknown>;
    if (!Array.isArray(baskets) || typeof perCommand !== 'number' || typeof lastCallAt !== 'number') continue;
    const valid = baskets.filter(
      (b): b is Basket =>
        Array.isArray(b) && b.length === 3 && b.every((n) => typeof n === 'number' && Number.isFinite(n)),
    );
    book[method] = { baskets: valid, perCommand, lastCallAt };
  }
  return book;
}

/** The book without baskets that have dropped by `at` (and without methods left with none). */
export function pruneOperatingBook(book: OperatingBook, at: number, policy: OperatingPolicy): OperatingBook {
  const pruned: Record<string, MethodUse> = {};
  for (const [method, use] of Object.entries(book)) {
    const baskets = live(use, at, policy);
    if (baskets.length > 0) pruned[method] = { ...use, baskets };
  }
  return pruned;
}
