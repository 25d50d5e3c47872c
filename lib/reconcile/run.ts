/** One reconcile run: what its caller asks of it and what it reports back. */

import type { B24Time } from '../bitrix24/types.ts';
import type { MessageFate, MessageKey, MessageState } from '../ledger/model.ts';
import type { CallStats } from './send.ts';

/** What became of a message in one reconcile: a ledger fate, or held back without a call. */
export type ReconcileFate =
  | MessageFate
  | { kind: 'held'; code: string; description: string; delayMs: number };

export interface ReconcileRun {
  /** Messages this caller cares about: sent first, and reported on. */
  hints: readonly MessageKey[];
  /**
   * `fill`: fill calls from the portal's dirty set, linger for fuller calls, pace, and send what
   * fails for good to the failed-edits queue (a wake-up, the status refresher).
   * `only`: apply the hinted messages now (and what other API callers wait for), taking the portal's
   * whole burst if need be (the API: its caller hears the outcome, so its own permanent failure is
   * recorded but not queued).
   */
  mode: 'fill' | 'only';
  remainingMs: () => number;
  signal?: AbortSignal | undefined;
  stats: CallStats;
  /** States just written by this caller's merges: the first round reads them from here, not DynamoDB. */
  known?: readonly MessageState[] | undefined;
  /** When the merges that gave `known` started: `known` is read again if another holder sent since. */
  knownAt?: number | undefined;
}

export interface ReconcileReport {
  /** Fate of each hinted message (by `messageKeyText`) and of every message this run touched. */
  fates: Map<string, ReconcileFate>;
  /** States as last seen, by `messageKeyText`. */
  states: Map<string, MessageState>;
  /** The `time` object of each applied message's answer, when Bitrix24 sent one. */
  times: Map<string, B24Time>;
  /** The run found the portal's lease held by another reconciler and left the work to it. */
  leaseHeld: boolean;
  /** When the run left the portal to be woken next (epoch ms); undefined when nothing is left. */
  nextWakeAt?: number | undefined;
}

export function emptyReport(): ReconcileReport {
  return { fates: new Map(), states: new Map(), times: new Map(), leaseHeld: false };
}
