import { AsyncLocalStorage } from 'node:async_hooks';
import { isRecord } from '../../../lib/is-record.ts';
import type { Ledger } from '../../../lib/ledger/messages.ts';
import {
  type IncomingEdit,
  isDirty,
  isFailed,
  type MergeResult,
  type MessageKey,
  type MessageState,
  messageKeyText,
} from '../../../lib/ledger/model.ts';

/**
 * The paths an edit comes in on: the API (the update route and the webhook route for SDKs), the
 * edits queue (the drain; replays of failed edits included) and the status schedules. `other` is
 * any handler that merges edits and runs under none of them.
 */
export const EDIT_PATHS = ['api', 'queue', 'status', 'other'] as const;
export type EditPath = (typeof EDIT_PATHS)[number];

/**
 * What became of a path's edits since start. Every recorded edit is in exactly one of applied,
 * superseded, deferred, failed and unchanged: recorded is their sum. Refused ones were never recorded.
 */
export interface EditCounts {
  /** Merged into the ledger: durable from then on. */
  recorded: number;
  /** Its value reached Bitrix24 in a call. */
  applied: number;
  /** Replaced before it was applied by an edit accepted later (coalesced), so never sent. */
  superseded: number;
  /** Recorded and not applied yet: waiting in the ledger for its portal's wake-up. */
  deferred: number;
  /** Its message's version failed for good in Bitrix24 (kept with the reason). */
  failed: number;
  /** Asked for what the message already showed: nothing to send. */
  unchanged: number;
  /** Not recorded: refused as invalid (or the API could not record it); counted per request or command. */
  refused: number;
}

export type EditTotals = Record<EditPath, EditCounts>;

type Fate = 'applied' | 'superseded' | 'deferred' | 'failed' | 'unchanged';

interface TrackedEdit {
  path: EditPath;
  fate: Fate;
  /** While deferred: the message and the version that carries the edit. */
  key?: string;
  version?: number;
}

/** One message's deferred edits, and per version which edit set each desired field. */
interface MessageEdits {
  deferred: Set<string>;
  owners: Map<number, Set<string>>;
}

/** Edit ids remembered to count a redelivered edit once; the oldest settled ones are forgotten past this. */
const MAX_REMEMBERED = 100_000;

function emptyCounts(): EditCounts {
  return { recorded: 0, applied: 0, superseded: 0, deferred: 0, failed: 0, unchanged: 0, refused: 0 };
}

/** The edit ids that set a field of the state: the ones its next call carries. */
function ownersOf(state: Pick<MessageState, 'desired'>): Set<string> {
  return new Set(Object.values(state.desired).flatMap((field) => (field ? [field.editId] : [])));
}

/** The edits an invocation of a path's handler records, for its refusals. */
interface Invocation {
  path: EditPath;
  recorded: number;
}

/**
 * Counts every edit by the path it came in on and by what became of it, from what the ledger
 * answers the handlers: merge results (which edits took, which arrived superseded) and the applies
 * and failures recorded per message version. An edit still deferred when a later one replaced its
 * fields is superseded once its message is applied; an edit that set a field of the applied version
 * is applied.
 */
export class EditTally {
  readonly #counts = Object.fromEntries(EDIT_PATHS.map((path) => [path, emptyCounts()])) as EditTotals;
  readonly #edits = new Map<string, TrackedEdit>();
  readonly #messages = new Map<string, MessageEdits>();
  readonly #portals = new Set<string>();
  readonly #invocation = new AsyncLocalStorage<Invocation>();

  /** The counts now (a copy). */
  totals(): EditTotals {
    return Object.fromEntries(EDIT_PATHS.map((path) => [path, { ...this.#counts[path] }])) as EditTotals;
  }

  /** Portals edits were recorded for, in the order first seen. */
  portals(): string[] {
    return [...this.#portals];
  }

  refused(path: EditPath, count: number): void {
    if (count > 0) this.#counts[path].refused += count;
  }

  /**
   * A handler whose merges count under `path`. `refusals` says how many requests (or commands) of
   * one invocation were refused, from its result (undefined when it threw) and the edits it recorded.
   */
  handler<E, C, R>(
    path: EditPath,
    handler: (event: E, context: C) => Promise<R>,
    refusals?: (result: R | undefined, recorded: number) => number,
  ): (event: E, context: C) => Promise<R> {
    return async (event, context) => {
      const invocation: Invocation = { path, recorded: 0 };
      let result: R | undefined;
      try {
        result = await this.#invocation.run(invocation, () => handler(event, context));
        return result;
      } finally {
        if (refusals) this.refused(path, refusals(result, invocation.recorded));
      }
    };
  }

  /** A merge of `edits` into the message `key` answered `result`. */
  merged(key: MessageKey, edits: readonly IncomingEdit[], result: MergeResult): void {
    const text = messageKeyText(key);
    const { state } = result;
    const owners = ownersOf(state);
    const invocation = this.#invocation.getStore();
    this.#portals.add(key.portal);
    if (isDirty(state)) this.#message(text).owners.set(state.version, owners);
    const superseded = new Set(result.superseded);
    const revived = new Set(result.contributed);
    for (const { editId } of edits) {
      let edit = this.#edits.get(editId);
      if (!edit) {
        const path = invocation?.path ?? 'other';
        edit = { path, fate: 'unchanged' };
        this.#counts[path].recorded += 1;
        this.#counts[path].unchanged += 1;
        this.#edits.set(editId, edit);
        if (invocation) invocation.recorded += 1;
        // Met again (a redelivered record): only a failed edit asked for once more has a new fate.
      } else if (!(edit.fate === 'failed' && revived.has(editId))) continue;
      if (superseded.has(editId) || !owners.has(editId)) this.#settle(editId, edit, 'superseded');
      else if (isFailed(state)) this.#settle(editId, edit, 'failed');
      else if (!isDirty(state)) this.#settle(editId, edit, 'unchanged');
      else {
        this.#settle(editId, edit, 'deferred');
        edit.key = text;
        edit.version = state.version;
        this.#message(text).deferred.add(editId);
      }
    }
    this.#forget();
  }

  /** `version` of the message reached Bitrix24 (or failed there for good): its deferred edits up to it settle. */
  settled(key: MessageKey, version: number, outcome: 'applied' | 'failed'): void {
    const text = messageKeyText(key);
    const message = this.#messages.get(text);
    if (!message) return;
    const owners = message.owners.get(version);
    for (const editId of message.deferred) {
      const edit = this.#edits.get(editId);
      if (!edit || (edit.version ?? 0) > version) continue;
      // A version merged out of this stack's sight has no owners: its edits count as the outcome.
      this.#settle(editId, edit, !owners || owners.has(editId) ? outcome : 'superseded');
    }
    for (const seen of message.owners.keys()) if (seen <= version) message.owners.delete(seen);
    if (message.deferred.size === 0 && message.owners.size === 0) this.#messages.delete(text);
  }

  #message(text: string): MessageEdits {
    let message = this.#messages.get(text);
    if (!message) {
      message = { deferred: new Set(), owners: new Map() };
      this.#messages.set(text, message);
    }
    return message;
  }

  #settle(editId: string, edit: TrackedEdit, fate: Fate): void {
    const counts = this.#counts[edit.path];
    counts[edit.fate] -= 1;
    counts[fate] += 1;
    if (edit.fate === 'deferred' && edit.key !== undefined)
      this.#messages.get(edit.key)?.deferred.delete(editId);
    edit.fate = fate;
    if (fate !== 'deferred') {
      delete edit.key;
      delete edit.version;
    }
  }

  /** Bounds memory: the oldest settled edits are forgotten (a redelivery of one would count again). */
  #forget(): void {
    if (this.#edits.size <= MAX_REMEMBERED) return;
    for (const [editId, edit] of this.#edits) {
      if (this.#edits.size <= MAX_REMEMBERED * 0.9) break;
      if (edit.fate !== 'deferred') this.#edits.delete(editId);
    }
  }
}

/**
 * Tells the tally every merge and every apply or failure the ledger records. The handlers build
 * their ledger from the environment (lib/runtime.ts), one instance for all of them in this process:
 * the stack observes that instance rather than building handlers of its own.
 */
export function observeLedger(
  ledger: Pick<Ledger, 'merge' | 'markApplied' | 'markFailed'>,
  tally: EditTally,
): void {
  const merge = ledger.merge.bind(ledger);
  const markApplied = ledger.markApplied.bind(ledger);
  const markFailed = ledger.markFailed.bind(ledger);
  ledger.merge = async (key, edits, timing, options) => {
    const result = await merge(key, edits, timing, options);
    tally.merged(key, edits, result);
    return result;
  };
  ledger.markApplied = async (key, version, startedAt, timing) => {
    const mark = await markApplied(key, version, startedAt, timing);
    // `overtaken`: a later call's apply was recorded first, and settled the edits then.
    if (mark !== 'overtaken') tally.settled(key, version, 'applied');
    return mark;
  };
  ledger.markFailed = async (key, version, error, startedAt) => {
    const marked = await markFailed(key, version, error, startedAt);
    // Not marked: a newer version was merged meanwhile, and its own outcome settles the edits.
    if (marked) tally.settled(key, version, 'failed');
    return marked;
  };
}

function parseJson(text: unknown): unknown {
  if (typeof text !== 'string') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function entries(section: unknown): number {
  return Array.isArray(section) ? section.length : isRecord(section) ? Object.keys(section).length : 0;
}

/**
 * The API's refusals in one answer: a `batch` refuses the commands it did not record (each one is
 * in `result` or `result_error`); another request is refused when it answered an error and recorded
 * nothing (an edit that failed in Bitrix24 was recorded, and is counted as failed).
 */
export function apiRefusals(result: unknown, recorded: number): number {
  if (!isRecord(result) || typeof result.statusCode !== 'number') return recorded > 0 ? 0 : 1;
  const body = parseJson(result.body);
  const batch =
    isRecord(body) && isRecord(body.result) && 'result_error' in body.result ? body.result : undefined;
  if (batch) return Math.max(0, entries(batch.result) + entries(batch.result_error) - recorded);
  return result.statusCode >= 400 && recorded === 0 ? 1 : 0;
}

/**
 * A status run's refusals: its invalid specs, and the renderings it could not record (a source or
 * template that failed, a ledger that did not answer). `kept` messages (a failed source with
 * `onSourceError: keep`) are no edit at all.
 */
export function statusRefusals(summary: unknown, recorded: number): number {
  if (!isRecord(summary)) return 0;
  const count = (key: string) => (typeof summary[key] === 'number' ? (summary[key] as number) : 0);
  const renderings = count('updated') + count('unchanged') + count('deferred') + count('failed');
  return count('invalid') + Math.max(0, renderings - recorded);
}
