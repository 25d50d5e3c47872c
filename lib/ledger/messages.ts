import { setTimeout as delay } from 'node:timers/promises';
import {
  type ItemUpdate,
  LedgerTable,
  type LedgerTableOptions,
  LedgerUnavailableError,
  ledgerRequest,
} from './access.ts';
import { fromItem, messagePk, portalPk, storedChars, toStoredDesired } from './codec.ts';
import { AHEAD_WITHIN_MS, aheadKeys, dirtyPage, dueKeys, indexDueAt, nextDueAt } from './dirty-index.ts';
import { HostClaims } from './host-claim.ts';
import {
  dueAt,
  type IncomingEdit,
  type LedgerError,
  type MergeResult,
  type MessageKey,
  type MessageState,
  mergeEdits,
  messageKeyText,
  type Timing,
} from './model.ts';
import { PortalItems, type PortalView, portalView } from './portal-item.ts';
import { DIRTY_PORTAL, DUE_AT, TTL_ATTRIBUTE } from './table.ts';

export type { LedgerTableOptions as LedgerOptions };
export { LedgerUnavailableError, ledgerRequest };

/** What `markApplied` found: applied and clean, applied but the desired version differs, or overtaken by a later call. */
export type AppliedMark = 'clean' | 'newer-pending' | 'overtaken';

/** Merges of one message racing each other; each retry reads the winner's state first. */
const MERGE_TRIES = 25;
/** Items this container saw last, so that a merge of a message it touched recently needs no read. */
const CACHED_ITEMS = 512;
/** Larger desired states are not kept (the cache stays within a few MB). */
const CACHED_DESIRED_CHARS = 16_384;

/**
 * The ledger in DynamoDB: one item per message, written only by single-item conditional updates
 * (no transactions). Merges are read → compute → write on `revision`; apply outcomes touch only the
 * bookkeeping, so a merge and an apply never overwrite each other's attributes. The portal items
 * of the same table are `portals`.
 */
export class Ledger {
  readonly table: LedgerTable;
  readonly portals: PortalItems;
  readonly hosts: HostClaims;
  /**
   * The item of each message as this container last read or wrote it, by pk. Every write of an item
   * increases its `revision` and merges are conditioned on it, so a stale entry costs one refused
   * write and a read, never a lost edit.
   */
  readonly #seen = new Map<string, MessageState>();

  constructor(options: LedgerTableOptions) {
    this.table = new LedgerTable(options);
    this.portals = new PortalItems(this.table);
    this.hosts = new HostClaims(this.table);
  }

  get tableName(): string {
    return this.table.tableName;
  }

  /** The message's state, read strongly consistent; an empty state when it has none. */
  async get(key: MessageKey): Promise<MessageState> {
    const pk = messagePk(key);
    return this.#remember(pk, key, await this.table.get(pk, 'read a message'));
  }

  /** States of many messages (strongly consistent, 100 keys a request), by `messageKeyText`. */
  async getMany(keys: readonly MessageKey[]): Promise<Map<string, MessageState>> {
    return (await this.#readMany(keys, [])).states;
  }

  /**
   * A look at a portal without its lease: the states of some of its messages and the portal's
   * scheduling view, strongly consistent, in one request (up to 99 messages).
   */
  async look(
    portal: string,
    keys: readonly MessageKey[],
  ): Promise<{ states: Map<string, MessageState>; view: PortalView }> {
    const { states, items } = await this.#readMany(keys, [portalPk(portal)]);
    return { states, view: portalView(items.get(portalPk(portal))) };
  }

  async #readMany(
    keys: readonly MessageKey[],
    others: readonly string[],
  ): Promise<{ states: Map<string, MessageState>; items: Map<string, Record<string, unknown>> }> {
    const unique = [...new Map(keys.map((key) => [messagePk(key), key])).values()];
    const items = await this.table.batchGet([...unique.map(messagePk), ...others], 'read messages');
    // No item, as read now: kept as an empty state (a merge from it is conditioned on no item).
    const states = new Map(
      unique.map((key) => [
        messageKeyText(key),
        this.#remember(messagePk(key), key, items.get(messagePk(key)) ?? {}),
      ]),
    );
    return { states, items };
  }

  /**
   * The drain's look before it merges, in one request where it can: the messages this container has
   * no copy of (so that each merge is one write) and the portals' items, strongly consistent.
   * Resolves with each portal's view as read.
   */
  async prefetch(keys: readonly MessageKey[], portals: readonly string[]): Promise<Map<string, PortalView>> {
    const unseen = [...new Map(keys.map((key) => [messagePk(key), key])).values()].filter(
      (key) => !this.#seen.has(messagePk(key)),
    );
    const items = await this.table.batchGet(
      [...unseen.map(messagePk), ...portals.map(portalPk)],
      'read messages',
    );
    for (const key of unseen) this.#remember(messagePk(key), key, items.get(messagePk(key)) ?? {});
    return new Map(portals.map((portal) => [portal, portalView(items.get(portalPk(portal)))]));
  }

  /**
   * Merges edits of one message (in queue order) and makes it dirty if its desired state changed;
   * `timing` gives a newly dirty message its due time. A message this container saw last is merged
   * from that copy in one write; a refused write reads the item and merges again.
   */
  async merge(
    key: MessageKey,
    edits: readonly IncomingEdit[],
    timing: Timing,
    /**
     * `ahead`: the message goes to the head of its portal's dirty set (the API's edits: a caller is
     * waiting, so the lease holder sends it before the backlog). Otherwise a dirty message keeps its
     * place, and a newly dirty one joins at its due time.
     */
    options: { ahead?: boolean } = {},
  ): Promise<MergeResult> {
    const pk = messagePk(key);
    for (let attempt = 0; attempt < MERGE_TRIES; attempt++) {
      const cached = attempt === 0 ? this.#seen.get(pk) : undefined;
      const current = cached ?? (await this.get(key));
      const result = mergeEdits(current, edits);
      if (!result.changed && !result.restamped) {
        // Nothing to write proves nothing about a cached copy (another container may have moved the
        // message on since): only a state read now is returned, or a caller could send a stale one.
        if (cached) continue;
        return result;
      }
      const now = this.table.now();
      const due = dueAt(result.state, timing);
      const ahead = options.ahead === true && due <= now + AHEAD_WITHIN_MS;
      const condition = current.revision === 0 ? 'attribute_not_exists(revision)' : 'revision = :current';
      const base = {
        ':revision': current.revision + 1,
        ':desired': toStoredDesired(result.state.desired),
        ':ttl': this.table.ttl(now),
        ...(current.revision === 0 ? {} : { ':current': current.revision }),
      };
      const written = await this.#writeMessage(
        pk,
        key,
        result.changed
          ? {
              UpdateExpression:
                'SET portal = :portal, botId = :botId, messageId = :messageId, desired = :desired, ' +
                'version = :version, revision = :revision, appliedVersion = if_not_exists(appliedVersion, :zero), ' +
                'attempts = :attempts, pendingEditIds = :pending, ' +
                `#dp = :portal, #ds = ${ahead ? ':due' : 'if_not_exists(#ds, :due)'}, #ttl = :ttl, ` +
                'dirtySince = if_not_exists(dirtySince, :now)' +
                // A version after one that failed for good counts its failing time from zero.
                (result.state.failingSince === undefined && current.failingSince !== undefined
                  ? ' REMOVE failingSince'
                  : ''),
              ConditionExpression: condition,
              ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#ds': DUE_AT, '#ttl': TTL_ATTRIBUTE },
              ExpressionAttributeValues: {
                ...base,
                ':portal': key.portal,
                ':botId': key.botId,
                ':messageId': key.messageId,
                ':version': result.state.version,
                ':zero': 0,
                ':pending': result.state.pendingEditIds,
                ':attempts': result.state.attempts,
                ':due': indexDueAt(pk, ahead ? 'ahead' : due),
                ':now': now,
              },
            }
          : // Only newer stamps of unchanged values: no new version, nothing to apply.
            {
              UpdateExpression: 'SET desired = :desired, revision = :revision, #ttl = :ttl',
              ConditionExpression: condition,
              ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
              ExpressionAttributeValues: base,
            },
        'record an edit',
      );
      if (written) return { ...result, state: written };
      // Another write of this message came first: read again (after a short, jittered pause when
      // the refused write was not merely based on an old copy).
      if (!cached) await delay(Math.floor(Math.random() * 10 * (attempt + 1)));
    }
    throw new LedgerUnavailableError(
      `Too many concurrent edits of message ${messageKeyText(key)}; try again`,
    );
  }

  /** Keys of the portal's dirty messages due by `now`, most overdue first (an eventually consistent index). */
  dirtyKeys(portal: string, limit: number, now = this.table.now()): Promise<MessageKey[]> {
    return dueKeys(this.table, portal, limit, now);
  }

  /** Keys of the portal's messages merged `ahead` (edits an API caller waits for), oldest first. */
  aheadKeys(portal: string, limit: number): Promise<MessageKey[]> {
    return aheadKeys(this.table, portal, limit);
  }

  /** One look at the portal's dirty set: the keys due by `now` and when the next one is due. */
  dirtyPage(portal: string, limit: number, now = this.table.now()) {
    return dirtyPage(this.table, portal, limit, now);
  }

  /** When the portal's earliest dirty message is due (epoch ms), or undefined when none is dirty. */
  nextDueAt(portal: string): Promise<number | undefined> {
    return nextDueAt(this.table, portal);
  }

  /**
   * Records that `version` reached Bitrix24 by a call started at `startedAt`. Calls of one portal
   * never overlap (the lease), so the call started last is the one the portal shows: the mark
   * counts only if no later call's apply is recorded. Clean when it is still the desired version;
   * `newer-pending` when edits came meanwhile (or it undid a newer apply); `overtaken` when a later
   * call's apply was recorded first: then that one's mark stands.
   */
  async markApplied(
    key: MessageKey,
    version: number,
    startedAt: number,
    timing: Timing,
  ): Promise<AppliedMark> {
    const now = this.table.now();
    const values = {
      ':v': version,
      ':now': now,
      ':started': startedAt,
      ':zero': 0,
      ':ttl': this.table.ttl(now),
    };
    const names = { '#dp': DIRTY_PORTAL, '#ds': DUE_AT, '#ttl': TTL_ATTRIBUTE };
    // The item exists (no partial item is made for a message gone by TTL) and no later apply is on it.
    // A call started in the same millisecond as the recorded one came after it: calls of a portal
    // follow one another under its lease, and each run records one call's outcomes before the next.
    const latest =
      'attribute_exists(version) AND (attribute_not_exists(appliedCallAt) OR appliedCallAt <= :started)';
    const applied =
      'SET appliedVersion = :v, appliedCallAt = :started, appliedAt = :now, lastCallAt = :started, attempts = :zero, #ttl = :ttl';
    if (
      await this.#conditional({
        UpdateExpression: `${applied}, pendingEditIds = :none REMOVE lastError, retryAt, inDoubtSince, failingSince, dirtySince, #dp, #ds`,
        ConditionExpression: `version = :v AND ${latest}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ...values, ':none': [] },
        key,
      })
    )
      return 'clean';
    if (
      await this.#conditional({
        // Not the desired version (newer edits came, or this call carried an older state than an
        // apply before it): the portal shows `version`, so the message is dirty from here.
        UpdateExpression: `${applied}, #dp = :portal, #ds = :due REMOVE lastError, retryAt, inDoubtSince, failingSince`,
        ConditionExpression: latest,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: {
          ...values,
          ':portal': key.portal,
          ':due': indexDueAt(messagePk(key), startedAt + timing.messageMinIntervalMs),
        },
        key,
      })
    )
      return 'newer-pending';
    return 'overtaken';
  }

  /**
   * Records a failed or unknown outcome: the message stays dirty until `retryAt`. `called` says a
   * request carried it (the attempt counts and the cadence starts); `inDoubt` that it may still land.
   */
  async markRetry(
    key: MessageKey,
    outcome: {
      error: LedgerError;
      retryAt: number;
      /** The message's due time after this outcome (`dueAt` of the new state). */
      dueAt: number;
      startedAt?: number | undefined;
      inDoubt: boolean;
    },
  ): Promise<void> {
    const now = this.table.now();
    const sets = ['lastError = :error', 'retryAt = :retryAt', '#ds = :due', '#ttl = :ttl'];
    const values: Record<string, unknown> = {
      ':error': outcome.error,
      ':retryAt': outcome.retryAt,
      ':due': indexDueAt(messagePk(key), outcome.dueAt),
      ':ttl': this.table.ttl(now),
    };
    if (outcome.startedAt !== undefined) {
      sets.push(
        'attempts = if_not_exists(attempts, :zero) + :one',
        'lastCallAt = :started',
        'failingSince = if_not_exists(failingSince, :started)',
      );
      Object.assign(values, { ':zero': 0, ':one': 1, ':started': outcome.startedAt });
      if (outcome.inDoubt) sets.push('inDoubtSince = :started');
    }
    await this.#conditional({
      UpdateExpression: `SET ${sets.join(', ')}`,
      // Only while dirty: a message applied or failed meanwhile keeps its state.
      ConditionExpression: 'attribute_exists(#dp)',
      ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE, '#ds': DUE_AT, '#dp': DIRTY_PORTAL },
      ExpressionAttributeValues: values,
      key,
    });
  }

  /**
   * Records that `version` failed for good (its state is on the failed-edits queue). False when a
   * newer version was merged meanwhile: that one stays dirty and is tried on its own.
   */
  async markFailed(
    key: MessageKey,
    version: number,
    error: LedgerError,
    startedAt?: number,
  ): Promise<boolean> {
    const now = this.table.now();
    return this.#conditional({
      // The failed calls stay counted (the call that failed for good among them): `GET /messages/…`
      // shows how many there were. A version merged after a failure counts from zero.
      UpdateExpression: `SET failedVersion = :v, lastError = :error, attempts = if_not_exists(attempts, :zero)${startedAt === undefined ? '' : ' + :one, lastCallAt = :started'}, #ttl = :ttl REMOVE retryAt, failingSince, dirtySince, #dp, #ds`,
      ConditionExpression: 'version = :v',
      ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#ds': DUE_AT, '#ttl': TTL_ATTRIBUTE },
      ExpressionAttributeValues: {
        ':v': version,
        ':error': error,
        ':zero': 0,
        ':ttl': this.table.ttl(now),
        ...(startedAt === undefined ? {} : { ':started': startedAt, ':one': 1 }),
      },
      key,
    });
  }

  /**
   * An outcome write whose condition decides: true when it was written. Like every write of a
   * message item, it increases the item's `revision`.
   */
  async #conditional(input: ItemUpdate & { key: MessageKey }): Promise<boolean> {
    const { key, UpdateExpression, ExpressionAttributeValues, ...rest } = input;
    const written = await this.#writeMessage(
      messagePk(key),
      key,
      {
        ...rest,
        UpdateExpression: `SET revision = if_not_exists(revision, :rev0) + :rev1, ${String(UpdateExpression).replace(/^SET /, '')}`,
        ExpressionAttributeValues: { ...ExpressionAttributeValues, ':rev0': 0, ':rev1': 1 },
      },
      'record an outcome',
    );
    return written !== undefined;
  }

  /** One write of a message item: the item as written (kept as this container's copy), or undefined when refused. */
  async #writeMessage(
    pk: string,
    key: MessageKey,
    input: ItemUpdate,
    what: string,
  ): Promise<MessageState | undefined> {
    const answer = await this.table.update(pk, { ...input, ReturnValues: 'ALL_NEW' }, what);
    if (answer?.Attributes) return this.#remember(pk, key, answer.Attributes);
    this.#seen.delete(pk);
    return undefined;
  }

  /** The state of an item just read or written, kept as this container's copy of it (bounded). */
  #remember(pk: string, key: MessageKey, item: Record<string, unknown> | undefined): MessageState {
    this.#seen.delete(pk);
    const state = fromItem(key, item);
    if (item && storedChars(item) <= CACHED_DESIRED_CHARS) {
      this.#seen.set(pk, state);
      if (this.#seen.size > CACHED_ITEMS) this.#seen.delete(this.#seen.keys().next().value as string);
    }
    return state;
  }
}
