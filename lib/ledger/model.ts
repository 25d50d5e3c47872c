import { canonicalJson } from '../edits/canonical.ts';
import { EDIT_FIELD_NAMES, type EditFields } from '../edits/types.ts';

/**
 * The ledger's pure core: one state per message (portal, botId, messageId), what merging an edit
 * into it means, and when a dirty message may be applied next. No I/O here; `store.ts` persists it.
 */

/** The fields of an update, each merged on its own. */
export const EDIT_FIELDS = EDIT_FIELD_NAMES;
export type FieldName = (typeof EDIT_FIELDS)[number];

export interface MessageKey {
  portal: string;
  botId: number;
  messageId: number;
}

/**
 * When an edit was accepted: `at` in epoch ms (the API's `requestedAt`, or SQS's SentTimestamp),
 * then `seq` to break ties in queue order (the FIFO SequenceNumber, a decimal string; '' lowest).
 */
export interface Stamp {
  at: number;
  seq: string;
}

/** One field of the desired state, with the acceptance stamp and id of the edit that set it. */
export interface DesiredField extends Stamp {
  value: unknown;
  editId: string;
}

/** The error of the last failed apply, as the ledger keeps and shows it. */
export interface LedgerError {
  code: string;
  description: string;
  /** The HTTP status an API caller is answered with when this error fails the edit for good. */
  callerStatus?: number | undefined;
  /** Epoch ms. */
  at: number;
}

export interface MessageState extends MessageKey {
  /** Per field, the value accepted last. */
  desired: Partial<Record<FieldName, DesiredField>>;
  /** Increased by every merge that changed `desired`; 0 before the first. */
  version: number;
  /** Increased by every write of the item (merges and outcomes alike): merges are conditioned on it. */
  revision: number;
  /** The version Bitrix24 was last brought to (0: never). */
  appliedVersion: number;
  /** Epoch ms of the last apply that succeeded. */
  appliedAt?: number | undefined;
  /** Set when the version in `failedVersion` failed for good (sent to the failed-edits queue). */
  failedVersion?: number | undefined;
  /** While dirty: the stored due time (epoch ms), the dirty index's sort key. `dueAt()` is the truth. */
  dueAt?: number | undefined;
  /** When the message last became dirty (epoch ms): how long its edits have waited. */
  dirtySince?: number | undefined;
  /** Epoch ms before which the message is not applied again (backoff). */
  retryAt?: number | undefined;
  /** Failed calls since the last success. */
  attempts: number;
  /** Start (epoch ms) of the first failed call since the last success: how long it has been failing. */
  failingSince?: number | undefined;
  lastError?: LedgerError | undefined;
  /** Start (epoch ms) of the last call whose outcome is unknown: it may still land. */
  inDoubtSince?: number | undefined;
  /** Start (epoch ms) of the last call that carried this message (the cadence counts from it). */
  lastCallAt?: number | undefined;
  /** Ids of the edits merged since the last apply, oldest first (bounded). */
  pendingEditIds: string[];
}

/** An edit as it is merged: which message, which fields, and when it was accepted. */
export interface IncomingEdit extends MessageKey, Stamp {
  fields: EditFields;
  editId: string;
}

/** Most pending edit ids kept per message: enough to trace a burst, bounded for the 400 KB item. */
export const MAX_PENDING_EDIT_IDS = 20;

export function messageKeyOf(key: MessageKey): MessageKey {
  return { portal: key.portal, botId: key.botId, messageId: key.messageId };
}

export function messageKeyText(key: MessageKey): string {
  return `${key.portal}:${key.botId}:${key.messageId}`;
}

export function emptyState(key: MessageKey): MessageState {
  return {
    ...messageKeyOf(key),
    desired: {},
    version: 0,
    revision: 0,
    appliedVersion: 0,
    attempts: 0,
    pendingEditIds: [],
  };
}

/** Negative, zero or positive as `a` was accepted before, with, or after `b`. */
export function compareStamps(a: Stamp, b: Stamp): number {
  if (a.at !== b.at) return a.at - b.at;
  if (a.seq.length !== b.seq.length) return a.seq.length - b.seq.length;
  return a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
}

/**
 * Whether `edit` was accepted after `stored`. Two edits stamped in the same millisecond without a
 * queue order between them (the API, the status refresher) are told apart by arrival: the later wins.
 */
function wins(edit: Stamp, stored: Stamp): boolean {
  const order = compareStamps(edit, stored);
  return order > 0 || (order === 0 && edit.seq === '');
}

export interface MergeResult {
  state: MessageState;
  /** `desired` changed, so the version went up and the message is dirty. */
  changed: boolean;
  /**
   * The message was not dirty before this merge and is now: its portal needs a look by its due
   * time. (A message already dirty has had one made sure of when it became dirty.)
   */
  becameDirty: boolean;
  /** Only acceptance stamps moved (a later edit set a field to the value it had): store, no apply. */
  restamped: boolean;
  /** Edit ids that set at least one field. */
  contributed: string[];
  /** Edit ids every field of which was already set by an edit accepted later. */
  superseded: string[];
}

/**
 * Merges edits into a message's state, per field: an edit sets a field only if it was accepted
 * after the edit that set it last, whatever order the edits arrive in. An edit met again (same
 * edit id: a redelivered record, the API's own queue copy) changes nothing, unless the message
 * failed: then it, or a different edit that asks for the value the failed message already wants (a
 * replay from the failed-edits queue, which carries an edit id of its own, the same text sent
 * again), makes it dirty again: try once more. A record met again after a crash costs, at worst,
 * one more call that fails again and is kept again.
 */
export function mergeEdits(current: MessageState, edits: readonly IncomingEdit[]): MergeResult {
  const desired = { ...current.desired };
  const contributed: string[] = [];
  const superseded: string[] = [];
  let changed = false;
  let revived = false;
  let restamped = false;
  for (const edit of edits) {
    let took = false;
    let equal = false;
    let same = false;
    for (const field of EDIT_FIELDS) {
      const value = edit.fields[field];
      if (value === undefined) continue;
      const stored = desired[field];
      // One edit id is one acceptance, whichever path brings it again (the API's own queue copy).
      if (stored?.editId === edit.editId) same = true;
      else if (!stored || wins(edit, stored)) {
        // The later stamp is kept even for an equal value, so an edit accepted in between stays older.
        const unchanged = stored !== undefined && canonicalJson(stored.value) === canonicalJson(value);
        desired[field] = { value, at: edit.at, seq: edit.seq, editId: edit.editId };
        if (unchanged) equal = true;
        else took = true;
      }
    }
    if (took) {
      changed = true;
      contributed.push(edit.editId);
    } else if ((equal || same) && isFailed(current)) {
      // Asked again for what failed: a replay under its own id, or one of its own records moved
      // back whole (SQS's DLQ redrive). Either way, try once more; failing, it is kept again.
      revived = true;
      contributed.push(edit.editId);
    } else if (equal) {
      restamped = true;
    } else if (!same) {
      superseded.push(edit.editId);
    }
  }
  if (!changed && !revived) {
    return restamped
      ? {
          state: { ...current, desired },
          changed: false,
          becameDirty: false,
          restamped,
          contributed,
          superseded,
        }
      : { state: current, changed: false, becameDirty: false, restamped: false, contributed, superseded };
  }
  const pending = [
    ...current.pendingEditIds,
    ...contributed.filter((id) => !current.pendingEditIds.includes(id)),
  ];
  return {
    state: {
      ...current,
      desired,
      version: current.version + 1,
      // Backoff, attempts and the settle window stay: a newer edit does not end an outage. After a
      // version failed for good, the next one counts its failed calls from zero.
      attempts: isFailed(current) ? 0 : current.attempts,
      failingSince: isFailed(current) ? undefined : current.failingSince,
      pendingEditIds: pending.slice(-MAX_PENDING_EDIT_IDS),
    },
    changed: true,
    becameDirty: !isDirty(current),
    restamped: false,
    contributed,
    superseded,
  };
}

/** The desired state as the fields of one update. */
export function desiredFields(state: Pick<MessageState, 'desired'>): EditFields {
  const fields: Record<string, unknown> = {};
  for (const field of EDIT_FIELDS) {
    const entry = state.desired[field];
    if (entry) fields[field] = entry.value;
  }
  return fields as EditFields;
}

/** The last acceptance time (epoch ms) among the desired fields. */
export function lastAcceptedAt(state: Pick<MessageState, 'desired'>): number {
  return Math.max(0, ...Object.values(state.desired).map((field) => field?.at ?? 0));
}

export function isFailed(state: Pick<MessageState, 'version' | 'failedVersion'>): boolean {
  return state.failedVersion !== undefined && state.failedVersion === state.version;
}

/** Bitrix24 is behind the desired state and the message has not failed for good at this version. */
export function isDirty(state: Pick<MessageState, 'version' | 'appliedVersion' | 'failedVersion'>): boolean {
  return state.version > state.appliedVersion && !isFailed(state);
}

export interface Timing {
  /** A message is applied at most once per this many ms (0: no cadence). */
  messageMinIntervalMs: number;
  /** A message whose call's outcome is unknown is not applied again until this long after it started. */
  ambiguousSettleMs: number;
}

/** The earliest epoch ms at which a dirty message may be applied: backoff, cadence and settle window. */
export function dueAt(state: MessageState, timing: Timing): number {
  let due = state.retryAt ?? 0;
  if (timing.messageMinIntervalMs > 0 && state.lastCallAt !== undefined)
    due = Math.max(due, state.lastCallAt + timing.messageMinIntervalMs);
  if (state.inDoubtSince !== undefined) due = Math.max(due, state.inDoubtSince + timing.ambiguousSettleMs);
  return due;
}

/** What became of a message's edits, as its callers see it. */
export type MessageFate =
  | { kind: 'applied'; version: number }
  | { kind: 'pending'; version: number; dueAt: number; lastError?: LedgerError | undefined }
  | { kind: 'failed'; version: number; error: LedgerError };

export function fateOf(state: MessageState, timing: Timing): MessageFate {
  if (isFailed(state)) {
    return {
      kind: 'failed',
      version: state.version,
      error: state.lastError ?? { code: 'FAILED', description: 'The edit failed', at: 0 },
    };
  }
  if (!isDirty(state)) return { kind: 'applied', version: state.appliedVersion };
  return { kind: 'pending', version: state.version, dueAt: dueAt(state, timing), lastError: state.lastError };
}
